//! The one error type of the schedule module: every message is a single line that names the
//! scheduler, the parameter, the offending value and what would have been accepted.

/// Everything that can go wrong while parsing, building or stepping a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A constructor argument has a bad type or value (`StepLR: step_size must be ...`).
    #[error("{scheduler}: {message}")]
    InvalidParam {
        /// PyTorch's class name.
        scheduler: String,
        /// What is wrong, naming the parameter and its value.
        message: String,
    },
    /// The scheduler name is not one of PyTorch's classes.
    #[error("unknown scheduler '{name}'; valid schedulers: {valid}")]
    UnknownScheduler {
        /// The name given.
        name: String,
        /// PyTorch's class names, comma-separated.
        valid: String,
    },
    /// A parameter name the scheduler does not take.
    #[error("{scheduler}: unknown parameter '{param}'; accepted parameters: {accepted}")]
    UnknownParam {
        /// PyTorch's class name.
        scheduler: String,
        /// The name given.
        param: String,
        /// The parameters it takes, comma-separated.
        accepted: String,
    },
    /// The compact string form could not be parsed.
    #[error("cannot parse scheduler spec at character {position}: {message} (at '{near}')")]
    Parse {
        /// Character index (0-based) where parsing failed.
        position: usize,
        /// What was expected or found.
        message: String,
        /// The text from there on (a few characters), or "end of input".
        near: String,
    },
    /// The JSON form could not be parsed.
    #[error("invalid scheduler JSON: {0}")]
    Json(String),
    /// A failure while stepping (PyTorch raises at `step()` time too), e.g. OneCycleLR past
    /// `total_steps`, a division by zero, or ReduceLROnPlateau stepped without a metric.
    #[error("{scheduler}: {message}")]
    Step {
        /// PyTorch's class name.
        scheduler: String,
        /// What went wrong.
        message: String,
    },
    /// A schedule would set a learning rate that is negative or not finite (or a momentum that
    /// is not finite); `step` 0 is the state right after construction.
    #[error("{scheduler}: the {what} at step {step} (param group {group}) would be {value}; it must be {rule}")]
    BadValue {
        /// PyTorch's class name of the top-level scheduler.
        scheduler: String,
        /// Row index: 0 after construction, k after the k-th step.
        step: usize,
        /// Index of the param group.
        group: usize,
        /// "learning rate" or "momentum".
        what: &'static str,
        /// The offending value.
        value: f64,
        /// What it must be, e.g. "finite and >= 0".
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
