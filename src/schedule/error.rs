//! The one error type of the schedule module: every message is a single line that names the
//! scheduler, the parameter, the offending value and what would have been accepted.

/// Everything that can go wrong while parsing, building or stepping a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A constructor argument has a bad type or value (`StepLR: step_size must be ...`).
    #[error("{scheduler}: {message}")]
    InvalidParam { scheduler: String, message: String },
    /// The scheduler name is not one of PyTorch's classes.
    #[error("unknown scheduler '{name}'; valid schedulers: {valid}")]
    UnknownScheduler { name: String, valid: String },
    /// A parameter name the scheduler does not take.
    #[error("{scheduler}: unknown parameter '{param}'; accepted parameters: {accepted}")]
    UnknownParam {
        scheduler: String,
        param: String,
        accepted: String,
    },
    /// The compact string form could not be parsed.
    #[error("cannot parse scheduler spec at character {position}: {message} (at '{near}')")]
    Parse {
        position: usize,
        message: String,
        near: String,
    },
    /// The JSON form could not be parsed.
    #[error("invalid scheduler JSON: {0}")]
    Json(String),
    /// A failure while stepping (PyTorch raises at `step()` time too), e.g. OneCycleLR past
    /// `total_steps`, a division by zero, or ReduceLROnPlateau stepped without a metric.
    #[error("{scheduler}: {message}")]
    Step { scheduler: String, message: String },
    /// A schedule would set a learning rate that is negative or not finite (or a momentum that
    /// is not finite); `step` 0 is the state right after construction.
    #[error("{scheduler}: the {what} at step {step} (param group {group}) would be {value}; it must be {rule}")]
    BadValue {
        scheduler: String,
        step: usize,
        group: usize,
        what: &'static str,
        value: f64,
        rule: &'static str,
    },
    /// The golden reference file is malformed.
    #[error("golden file: {0}")]
    Golden(String),
}

impl ScheduleError {
    pub(crate) fn param(scheduler: &str, message: impl Into<String>) -> Self {
        Self::InvalidParam {
            scheduler: scheduler.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn step(scheduler: &str, message: impl Into<String>) -> Self {
        Self::Step {
            scheduler: scheduler.to_string(),
            message: message.into(),
        }
    }
}
