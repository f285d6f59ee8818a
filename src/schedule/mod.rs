#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("x")]
    X,
}
