//! ExponentialLR.

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int};

scheduler_config! {
    /// `ExponentialLR(optimizer, gamma, last_epoch=-1)`.
    pub struct ExponentialLRConfig for "ExponentialLR" {
        /// Multiplicative factor per epoch.
        gamma: f64 as Float,
        ;
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl ExponentialLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("gamma must be a number > 0, got {}", self.gamma),
            ));
        }
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<ExponentialLR, ScheduleError> {
        self.validate()?;
        Sched::construct(groups, ExponentialRule { gamma: self.gamma })
    }
}

/// Multiply by `gamma` every epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialRule {
    /// Multiplicative factor of learning rate decay.
    pub gamma: f64,
}

impl Rule for ExponentialRule {
    fn name(&self) -> &'static str {
        "ExponentialLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        // The constructor's step must not decay (PyTorch checks `_is_initial`).
        if st.is_initial {
            return Ok(g.lr.clone());
        }
        Ok(g.lr.iter().map(|lr| lr * self.gamma).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let f = self.gamma.powf(st.last_epoch as f64);
        Some(Ok(st.base_lrs.iter().map(|b| b * f).collect()))
    }
}

/// `torch.optim.lr_scheduler.ExponentialLR`.
pub type ExponentialLR = Sched<ExponentialRule>;

impl Sched<ExponentialRule> {
    /// `ExponentialLR(optimizer, gamma)`: validates, then runs the initial step on `groups`.
    pub fn new(groups: &mut ParamGroups, gamma: f64) -> Result<Self, ScheduleError> {
        ExponentialLRConfig::new(gamma).init(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, run1};
    use crate::schedule::LrScheduler;

    #[test]
    fn sequence() {
        // lr_e = lr_{e-1} * gamma; the constructor's step does not decay.
        assert_close(
            &run1("ExponentialLR(gamma=0.5)", 3),
            &[1.0, 0.5, 0.25, 0.125],
        );
    }

    #[test]
    fn typed_constructor_and_errors() {
        let mut g = ParamGroups::new(vec![0.2, 0.4], None);
        let mut s = ExponentialLR::new(&mut g, 0.5).unwrap();
        s.step(&mut g, None).unwrap();
        assert_eq!(g.lr, vec![0.1, 0.2]);
        assert_eq!(s.last_lr(), &[0.1, 0.2]);
        assert_eq!(s.last_epoch(), 1);
        assert_eq!(
            build_err("ExponentialLR()", 1),
            "ExponentialLR: gamma is required (a number)"
        );
        assert_eq!(
            build_err("ExponentialLR(gamma=-0.5)", 1),
            "ExponentialLR: gamma must be a number > 0, got -0.5"
        );
        assert_eq!(
            build_err("ExponentialLR(gamma='x')", 1),
            "ExponentialLR: gamma must be a number, got \"x\""
        );
    }
}
