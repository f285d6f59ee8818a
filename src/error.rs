//! The library's error type: every failure a user can cause, typed, with a one-line message.

use std::path::PathBuf;

use crate::report::atomic::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range; the message names the flag, the value and what is allowed.
    #[error("{0}")]
    InvalidArgument(String),

    /// A data file is missing, truncated or inconsistent; the message names the file and the fault.
    #[error("{path}: {reason}")]
    Data { path: PathBuf, reason: String },

    #[error("{0}")]
    DataUnavailable(String),

    #[error("device: {0}")]
    Device(String),

    #[error("report {path}: {reason}")]
    Report { path: PathBuf, reason: String },

    #[error(transparent)]
    Write(#[from] WriteError),

    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),

    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
