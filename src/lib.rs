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

/// Keeps candle's matrix products on one thread each, for processes that run lrfind's loops.
///
/// lrfind parallelises a step across cores itself (one batch shard per core), which beats
/// splitting small matmuls; and with `RAYON_NUM_THREADS` unset candle re-reads
/// `/proc/cpuinfo` on every matmul. Call it first thing in `main`, before any thread starts;
/// it leaves an explicit `RAYON_NUM_THREADS` alone.
pub fn init_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}
