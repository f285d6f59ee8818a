//! lrfind: find a good learning rate with the LR range test, then train with it — on candle.
//!
//! The pipeline, one module each: [`data`] → [`model`] / [`optim`] → [`finder`] (sweep,
//! smoothing, suggestion) → [`report`] / [`plot`] → [`schedule`] → [`train`], with
//! [`check`] running the finder across seeds. The finder needs only [`finder::TrainStep`],
//! so it works on any candle model.

pub mod check;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod finder;
pub mod learner;
pub mod model;
pub mod optim;
pub mod plot;
pub mod range_test;
pub mod report;
pub mod schedule;
pub mod train;

pub use error::{Error, Result};
