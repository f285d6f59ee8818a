//! A schedule driving any `candle_nn::Optimizer`: step it per batch or per epoch and set the
//! optimizer's LR (and momentum, where the optimizer has one) from it.

use candle_nn::Optimizer;

use super::{Interval, LrScheduler, ParamGroups, ScheduleError, SchedulerConfig};
use crate::optim::{GroupLrs, Momentum};

/// Steps a schedule at the interval PyTorch users step it (per batch for CyclicLR and
/// OneCycleLR, per epoch for the rest, unless told otherwise) and applies it to an
/// optimizer. One param group: the optimizer's.
///
/// ```
/// use candle_core::{Device, Var};
/// use candle_nn::{Optimizer, SGD};
/// use lrfind::{SchedulerConfig, SchedulerDriver};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let w = Var::new(&[1f32], &Device::Cpu)?;
/// let mut opt = SGD::new(vec![w], 0.1)?;
/// let config = SchedulerConfig::parse("StepLR(step_size=2, gamma=0.5)")?;
/// let mut driver = SchedulerDriver::new(&config, opt.learning_rate(), None, None)?;
/// let mut seen = vec![];
/// for _epoch in 0..5 {
///     driver.apply(&mut opt);
///     seen.push(opt.learning_rate());
///     for _batch in 0..3 {
///         // … forward, opt.backward_step(&loss)? …
///         driver.after_batch(None)?;
///     }
///     driver.after_epoch(None)?;
/// }
/// assert_eq!(seen, [0.1, 0.1, 0.05, 0.05, 0.025]);
/// # Ok(())
/// # }
/// ```
pub struct SchedulerDriver {
    scheduler: Box<dyn LrScheduler>,
    groups: ParamGroups,
    interval: Interval,
}

impl SchedulerDriver {
    /// Builds `config` for an optimizer that starts at `lr` (and `momentum`, which CyclicLR
    /// and OneCycleLR cycle), stepping every `interval` (`None`: PyTorch's convention for
    /// this scheduler). Performs the scheduler's initial step, as PyTorch's constructor does.
    pub fn new(
        config: &SchedulerConfig,
        lr: f64,
        momentum: Option<f64>,
        interval: Option<Interval>,
    ) -> Result<Self, ScheduleError> {
        let mut groups = ParamGroups::new(vec![lr], momentum.map(|m| vec![m]));
        let scheduler = config.build(&mut groups)?;
        Ok(Self {
            scheduler,
            groups,
            interval: interval.unwrap_or_else(|| config.default_interval()),
        })
    }

    /// Builds `config` for an optimizer with several param groups, starting at `lrs` (one per
    /// group, as [`crate::optim::GroupLrs::group_lrs`] gives them) and `momentum` in each.
    /// Per-group values work as in PyTorch: `OneCycleLR(max_lr=[1e-4, 1e-3])` gives group
    /// `i` its own peak, a single value is every group's.
    pub fn with_groups(
        config: &SchedulerConfig,
        lrs: Vec<f64>,
        momentum: Option<f64>,
        interval: Option<Interval>,
    ) -> Result<Self, ScheduleError> {
        let n = lrs.len();
        let mut groups = ParamGroups::new(lrs, momentum.map(|m| vec![m; n]));
        let scheduler = config.build(&mut groups)?;
        Ok(Self {
            scheduler,
            groups,
            interval: interval.unwrap_or_else(|| config.default_interval()),
        })
    }

    /// Each group's learning rate for the next step.
    pub fn lrs(&self) -> &[f64] {
        &self.groups.lr
    }

    /// Sets each param group's LR to the schedule's (an optimizer with as many groups as the
    /// schedule was built for).
    pub fn apply_groups<O: GroupLrs>(&self, optimizer: &mut O) -> crate::Result<()> {
        optimizer.set_group_lrs(&self.groups.lr)
    }

    /// Drives a scheduler built elsewhere (one of yours, written in Rust) on `groups`.
    pub fn from_scheduler(
        scheduler: Box<dyn LrScheduler>,
        groups: ParamGroups,
        interval: Interval,
    ) -> Self {
        Self {
            scheduler,
            groups,
            interval,
        }
    }

    /// The learning rate the schedule gives for the next step (the first group's).
    pub fn lr(&self) -> f64 {
        self.groups.lr.first().copied().unwrap_or(f64::NAN)
    }

    /// The momentum the schedule gives, if it was given one.
    pub fn momentum(&self) -> Option<f64> {
        self.groups
            .momentum
            .as_ref()
            .and_then(|m| m.first().copied())
    }

    /// When the schedule steps.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Sets the optimizer's LR to the schedule's.
    pub fn apply<O: Optimizer>(&self, optimizer: &mut O) {
        optimizer.set_learning_rate(self.lr());
    }

    /// Sets the optimizer's momentum (SGD momentum, Adam's beta1) to the schedule's, when the
    /// schedule has one.
    pub fn apply_momentum<O: Momentum>(&self, optimizer: &mut O) {
        if let Some(m) = self.momentum() {
            optimizer.set_momentum(m);
        }
    }

    /// Call after every batch; steps a per-batch schedule. Returns whether it stepped.
    pub fn after_batch(&mut self, metric: Option<f64>) -> Result<bool, ScheduleError> {
        self.step_if(Interval::Step, metric)
    }

    /// Call after every epoch, with the validation loss for ReduceLROnPlateau; steps a
    /// per-epoch schedule. Returns whether it stepped.
    pub fn after_epoch(&mut self, metric: Option<f64>) -> Result<bool, ScheduleError> {
        self.step_if(Interval::Epoch, metric)
    }

    fn step_if(&mut self, interval: Interval, metric: Option<f64>) -> Result<bool, ScheduleError> {
        if self.interval != interval {
            return Ok(false);
        }
        self.scheduler.step(&mut self.groups, metric)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{ParamsSgd, Sgd};
    use candle_core::{Device, Var};

    #[test]
    fn one_cycle_steps_per_batch_and_cycles_momentum() {
        let w = Var::new(&[1f32], &Device::Cpu).unwrap();
        let mut opt = Sgd::new(
            vec![w],
            ParamsSgd {
                lr: 0.1,
                momentum: 0.9,
                ..ParamsSgd::default()
            },
        )
        .unwrap();
        let config = SchedulerConfig::parse("OneCycleLR(max_lr=1.0, total_steps=10)").unwrap();
        let mut d = SchedulerDriver::new(&config, 0.1, Some(0.9), None).unwrap();
        assert_eq!(d.interval(), Interval::Step);
        let (mut lrs, mut moms) = (vec![], vec![]);
        for _ in 0..10 {
            d.apply(&mut opt);
            d.apply_momentum(&mut opt);
            lrs.push(opt.learning_rate());
            moms.push(opt.momentum());
            assert!(d.after_batch(None).unwrap() || lrs.len() == 10);
            assert!(!d.after_epoch(None).unwrap());
        }
        // PyTorch: OneCycleLR(max_lr=1, total_steps=10) starts at max_lr/25 with momentum
        // 0.95 (max_momentum), peaks at step 3 (pct_start 0.3 → step 2.0 of 9) with 0.85.
        assert!((lrs[0] - 0.04).abs() < 1e-12, "{lrs:?}");
        assert!((moms[0] - 0.95).abs() < 1e-12, "{moms:?}");
        let peak = lrs.iter().cloned().fold(0.0, f64::max);
        assert!((peak - 1.0).abs() < 1e-12, "{lrs:?}");
        assert!((moms[2] - 0.85).abs() < 1e-12, "{moms:?}");
    }
}
