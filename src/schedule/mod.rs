//! Learning-rate schedules reproducing PyTorch 2.x `torch.optim.lr_scheduler` step for step
//! (the chainable `get_lr` formulas `step()` uses, not the closed forms), so a run here sees
//! the same learning rates (and momenta) as the same run in PyTorch.
//!
//! Each scheduler's file holds its typed config (`StepLRConfig`: PyTorch's parameter names as
//! fields, PyTorch's defaults, `validate()` and `init()`), its rule and its tests;
//! [`SchedulerConfig`] is the enum of them all (JSON or the compact string form of
//! [`spec`]). Build one on a [`ParamGroups`], then call [`LrScheduler::step`] once per epoch or
//! batch (see [`SchedulerConfig::default_interval`]); [`check_schedule`] refuses a schedule
//! that would produce a negative or non-finite learning rate before any training starts.

pub mod base;
pub mod chained;
pub mod check;
pub mod config;
pub mod constant;
pub mod cosine;
pub(crate) mod cursor;
pub mod cyclic;
pub mod driver;
pub mod error;
pub mod exponential;
pub mod formula;
pub mod golden;
pub mod lambda;
pub mod one_cycle;
pub mod params;
pub mod plateau;
pub mod polynomial;
pub mod sequential;
pub mod spec;
pub mod step;
pub mod warm_restarts;

pub use base::{LrScheduler, ParamGroups};
pub use chained::{ChainedScheduler, ChainedSchedulerConfig};
pub use check::{check_schedule, Steps};
pub use config::{Interval, RawConfig, SchedulerConfig};
pub use constant::{ConstantLR, ConstantLRConfig, LinearLR, LinearLRConfig};
pub use cosine::{CosineAnnealingLR, CosineAnnealingLRConfig};
pub use cyclic::{CyclicLR, CyclicLRConfig, CyclicMode, ScaleFn, ScaleMode};
pub use driver::SchedulerDriver;
pub use error::ScheduleError;
pub use exponential::{ExponentialLR, ExponentialLRConfig};
pub use formula::Formula;
pub use golden::{simulate, Trace};
pub use lambda::{
    LambdaForm, LambdaLR, LambdaLRConfig, LrLambda, LrLambdas, MultiplicativeLR,
    MultiplicativeLRConfig,
};
pub use one_cycle::{Anneal, OneCycleLR, OneCycleLRConfig};
pub use params::PerGroup;
pub use plateau::{PlateauMode, ReduceLROnPlateau, ReduceLROnPlateauConfig, ThresholdMode};
pub use polynomial::{PolynomialLR, PolynomialLRConfig};
pub use sequential::{SequentialLR, SequentialLRConfig};
pub use step::{MultiStepLR, MultiStepLRConfig, StepLR, StepLRConfig};
pub use warm_restarts::{CosineAnnealingWarmRestarts, CosineAnnealingWarmRestartsConfig};

#[cfg(test)]
pub(crate) mod testutil {
    use super::{simulate, ParamGroups, SchedulerConfig};

    /// lr rows of `spec` on SGD groups with momentum 0.9.
    pub fn run(spec: &str, lrs: &[f64], steps: usize) -> Vec<Vec<f64>> {
        trace(spec, lrs, steps).0
    }

    /// (lr rows, momentum rows).
    pub fn trace(spec: &str, lrs: &[f64], steps: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let cfg = SchedulerConfig::parse(spec).unwrap_or_else(|e| panic!("{e}"));
        let groups = ParamGroups::new(lrs.to_vec(), Some(vec![0.9; lrs.len()]));
        let t = simulate(&cfg, groups, steps, None).unwrap_or_else(|e| panic!("{e}"));
        (t.lr, t.momentum.unwrap_or_default())
    }

    /// Group 0's lr per row.
    pub fn run1(spec: &str, steps: usize) -> Vec<f64> {
        run(spec, &[1.0], steps).into_iter().map(|r| r[0]).collect()
    }

    pub fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-12 * e.abs().max(1.0),
                "row {i}: {a} != {e}\nactual:   {actual:?}\nexpected: {expected:?}"
            );
        }
    }

    /// The build error of `spec` on `n` groups.
    pub fn build_err(spec: &str, n: usize) -> String {
        let cfg = match SchedulerConfig::parse(spec) {
            Ok(c) => c,
            Err(e) => return e.to_string(),
        };
        let mut g = ParamGroups::new(vec![0.1; n], Some(vec![0.9; n]));
        match cfg.build(&mut g) {
            Ok(_) => panic!("{spec} built"),
            Err(e) => e.to_string(),
        }
    }
}
