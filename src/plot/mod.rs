#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("x")]
    X,
}
