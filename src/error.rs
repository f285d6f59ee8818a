//! The library's errors: one variant per layer (settings, data, schedule, training, files),
//! each with a one-line message that names the field or file at fault and what is allowed.
//!
//! Messages name the library's *fields* (`max_lr = 0: …`), never command-line flags; the
//! `lrfind` binary maps a [`SettingError`]'s scope and field to its flag.

use std::fmt;
use std::path::PathBuf;

pub use crate::read::ReadError;
pub use crate::report::atomic::WriteError;

/// The settings a [`SettingError`] belongs to: which struct its `field` is a field of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// [`crate::finder::SweepConfig`] and the suggestion window.
    Sweep,
    /// [`crate::optim::OptimizerConfig`] and the optimizers' `Params…` structs.
    Optimizer,
    /// [`crate::model::ModelConfig`].
    Model,
    /// [`crate::loss::LossConfig`].
    Loss,
    /// Batch size, gradient accumulation and the held-out scoring set of a step.
    Batching,
    /// The dataset choice ([`crate::data::DataSource`] and its directory).
    Data,
    /// [`crate::device::DeviceSpec`].
    Device,
    /// [`crate::train::TrainConfig`] and a run directory.
    Train,
    /// [`crate::check::CheckConfig`] and its baseline.
    Check,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Sweep => "sweep",
            Scope::Optimizer => "optimizer",
            Scope::Model => "model",
            Scope::Loss => "loss",
            Scope::Batching => "batching",
            Scope::Data => "data",
            Scope::Device => "device",
            Scope::Train => "training",
            Scope::Check => "check",
        })
    }
}

/// A setting out of range: `max_lr = 0: must be a positive finite learning rate`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {allowed}")]
pub struct SettingError {
    /// Which settings struct `field` belongs to.
    pub scope: Scope,
    /// The field's name, as spelled in its struct (`max_lr`, `batch_size`).
    pub field: &'static str,
    /// The value given, as text.
    pub value: String,
    /// What is wrong and what is allowed. Other fields are named as fields too.
    pub allowed: String,
}

impl SettingError {
    /// A setting error for `field` of `scope` with the value given and what is allowed.
    pub fn new(
        scope: Scope,
        field: &'static str,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            scope,
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Training blew up: the loss or the weights stopped being finite.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("training diverged: {what} became {value} in epoch {epoch} at LR {lr:e}")]
pub struct Diverged {
    /// What stopped being finite ("the loss", "weight 1.weight").
    pub what: String,
    /// Its value, as text (NaN, inf).
    pub value: String,
    /// The epoch (from 1) it happened in.
    pub epoch: usize,
    /// The learning rate at that moment.
    pub lr: f64,
}

/// Trainable variables that got no gradient from a step: they would never train, and
/// candle-nn's optimizers skip them without a word.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "no gradient reached the trainable variable{} {}: they would never train. Likely cause: an op \
     without a backward pass in candle (the fused candle_nn::ops::layer_norm behind \
     candle_nn::LayerNorm, rms_norm, softmax_last_dim, rotary embeddings); use the slow op that has \
     one (candle_nn::ops::layer_norm_slow), or check that the loss uses them. If they are frozen on \
     purpose, declare them frozen (OptimizerStep::freeze, or a param group with multiplier 0)",
    if vars.len() == 1 { "" } else { "s" },
    vars.join(", ")
)]
pub struct NoGradient {
    /// The variables' names.
    pub vars: Vec<String>,
}

/// Everything that can go wrong in lrfind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range; names the field, the value and what is allowed.
    #[error(transparent)]
    Setting(#[from] SettingError),

    /// A data file is missing, truncated or inconsistent; names the file and the fault.
    #[error("{path}: {reason}")]
    Data {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// No copy of a dataset could be found or downloaded.
    #[error("{dataset}: {reason}")]
    DataUnavailable {
        /// The dataset's name (`mnist`).
        dataset: String,
        /// Where lrfind looked and why that failed.
        reason: String,
    },

    /// The device could not be opened or used.
    #[error("device {device}: {reason}")]
    Device {
        /// The device asked for (`cuda:1`).
        device: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A learning-rate schedule is invalid.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),

    /// The loss or the weights became NaN/inf during training.
    #[error(transparent)]
    Diverged(#[from] Diverged),

    /// A saved report, run or checkpoint cannot be used.
    #[error("{path}: {reason}")]
    Saved {
        /// The file or run directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An output file could not be written (the previous file, if any, is untouched).
    #[error(transparent)]
    Write(#[from] WriteError),

    /// Two outputs name the same file: one would overwrite the other.
    #[error(
        "{first} {} and {second} {} are the same file: one would overwrite the other; give them different paths",
        first_path.display(),
        second_path.display()
    )]
    SameFile {
        /// What the first output is (a field or flag name).
        first: String,
        /// Its path.
        first_path: PathBuf,
        /// What the second output is.
        second: String,
        /// Its path.
        second_path: PathBuf,
    },

    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file a user named is not a regular file, is larger than its use allows, or could
    /// not be read (names the file, and the size and the cap).
    #[error(transparent)]
    Read(#[from] ReadError),

    /// Ctrl-C (or another cancellation) stopped the work before it produced anything.
    #[error("interrupted {0}")]
    Interrupted(&'static str),

    /// A figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),

    /// Trainable variables got no gradient (see [`NoGradient`]).
    #[error(transparent)]
    NoGradient(#[from] NoGradient),

    /// candle failed (shapes, devices, allocation).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    /// The error a user's [`crate::finder::TrainStep`] or seed factory returned.
    #[error("{0}")]
    Step(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with lrfind's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`SettingError`] as an [`Error`].
    pub fn setting(
        scope: Scope,
        field: &'static str,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Error::Setting(SettingError::new(scope, field, value, allowed))
    }

    /// A fault in a data file.
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A fault in a saved report, run directory or checkpoint.
    pub fn saved(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Saved {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Wraps a user's error; an lrfind or candle error inside keeps its own variant.
    pub fn from_user(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let boxed = e.into();
        let boxed = match boxed.downcast::<Error>() {
            Ok(e) => return *e,
            Err(b) => b,
        };
        match boxed.downcast::<candle_core::Error>() {
            Ok(e) => Error::Candle(*e),
            Err(b) => Error::Step(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_errors_name_field_value_and_rule() {
        let e = Error::setting(
            Scope::Sweep,
            "max_lr",
            0,
            "must be a positive finite learning rate",
        );
        assert_eq!(
            e.to_string(),
            "max_lr = 0: must be a positive finite learning rate"
        );
    }

    #[test]
    fn user_errors_keep_their_kind() {
        let candle = candle_core::Error::Msg("shape".into());
        assert!(matches!(Error::from_user(candle), Error::Candle(_)));
        let ours = Error::setting(Scope::Batching, "batch_size", 0, "must be at least 1");
        assert!(matches!(Error::from_user(ours), Error::Setting(_)));
        let io = std::io::Error::other("disk on fire");
        let e = Error::from_user(io);
        assert!(matches!(e, Error::Step(_)));
        assert_eq!(e.to_string(), "disk on fire");
    }
}
