//! Find a good learning rate with the LR range test (Leslie Smith 2015, §3.3), then train
//! with it — on [candle](https://github.com/huggingface/candle).
//!
//! The range test takes one optimizer step per learning rate, rising exponentially from
//! `min_lr` to `max_lr`, smooths the loss, stops once it diverges, and reads a suggestion off
//! the curve. All the finder needs from a model is [`TrainStep`]: "take one step at this LR
//! and say the loss". A closure will do:
//!
//! ```
//! use std::ops::ControlFlow;
//! use candle_core::{Device, Tensor, Var};
//! use candle_nn::{Optimizer, SGD};
//! use lrfind::{analyse, run_sweep, Rule, SweepConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A tiny least-squares model: y = w·x.
//! let dev = Device::Cpu;
//! let x = Tensor::new(&[[1f32], [2.], [3.], [4.]], &dev)?;
//! let y = Tensor::new(&[[2f32], [4.], [6.], [8.]], &dev)?;
//! let w = Var::new(&[[0.1f32]], &dev)?;
//! let mut opt = SGD::new(vec![w.clone()], 1e-3)?;
//! let mut step = |lr: f64| -> candle_core::Result<f64> {
//!     opt.set_learning_rate(lr);
//!     let loss = x.matmul(w.as_tensor())?.sub(&y)?.sqr()?.mean_all()?;
//!     opt.backward_step(&loss)?;
//!     Ok(loss.to_scalar::<f32>()? as f64)
//! };
//! let config = SweepConfig { min_lr: 1e-5, max_lr: 1.0, num_steps: 60, ..SweepConfig::default() };
//! let curve = run_sweep(&mut step, &config, &mut |_| ControlFlow::Continue(()))?;
//! let analysis = analyse(&curve, &config, Rule::Fall);
//! let lr = analysis.suggestion.map(|s| s.lr).expect("a suggestion");
//! assert!(lr > 1e-4 && lr < 0.2, "{lr}");
//! # Ok(())
//! # }
//! ```
//!
//! [`find_lr`] does the same and puts the model back as it found it (weights and optimizer,
//! through [`Checkpoint`]); [`OptimizerStep`] turns a candle-nn model's loss closure and any
//! `candle_nn::Optimizer` into a step that can do that. Around the finder:
//! [`RangeTestReport`] (JSON), `plot` (PNG/SVG figures, cargo feature `plot`),
//! [`check_stability`] (is the suggestion stable across seeds?), and [`schedule`] — every
//! `torch.optim.lr_scheduler`, exactly, with a [`SchedulerDriver`] that steps any candle
//! optimizer.
//!
//! The rest is the pipeline the `lrfind` command line runs on its built-in data and models:
//! [`data`] → [`model`] / [`optim`] → [`learner`] → [`range_test`] → [`train`], with [`check`]
//! across seeds.

#![warn(missing_docs)]

pub mod adapter;
pub mod check;
pub mod data;
pub mod device;
pub mod error;
pub mod finder;
pub mod learner;
pub mod loss;
pub mod model;
pub mod optim;
pub mod plot;
pub mod range_test;
pub mod read;
pub mod report;
pub mod schedule;
pub mod train;

pub use adapter::{NamedVars, OptimizerStep};
pub use check::{check_stability, Baseline, Stability, StabilityConfig};
pub use error::{Error, NoGradient, Result, Scope, SettingError};
pub use finder::{
    analyse, find_lr, run_sweep, Analysis, Checkpoint, Curve, LadderMode, Rule, StepEvent,
    StopReason, Suggestion, SweepConfig, TrainStep, Window,
};
pub use optim::{
    Adam, AdamW, GroupConfig, GroupLrs, Grouping, Momentum, ParamsAdam, ParamsAdamW, ParamsSgd,
    PerGroup, Sgd,
};
pub use report::{Description, RangeTestReport};
pub use schedule::{SchedulerConfig, SchedulerDriver};

#[cfg(test)]
mod fine_tuning_tests;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use candle_core::Tensor;

    /// The bits of every value of `t`: equality means bit-for-bit equal weights.
    pub fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>());
        v.expect("an f32 tensor")
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    /// The real MNIST fixture as bytes: (training images, labels, test images, labels).
    pub fn mnist_fixture() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        let l = crate::data::load_builtin(crate::data::DataSource::Mnist, Some(&dir))
            .expect("the MNIST fixture");
        let test = l.test.expect("the fixture's test split");
        let ((tri, trl), (tei, tel)) = (l.train.pixels_and_labels(), test.pixels_and_labels());
        (tri, trl, tei, tel)
    }
}
