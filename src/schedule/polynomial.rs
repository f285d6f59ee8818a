//! PolynomialLR.

use super::base::{div, BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int};

scheduler_config! {
    /// `PolynomialLR(optimizer, total_iters=5, power=1.0, last_epoch=-1)`.
    pub struct PolynomialLRConfig for "PolynomialLR" {
        ;
        /// Epochs until the lr reaches 0.
        total_iters: i64 as Int = 5,
        /// The polynomial's power.
        power: f64 as Float = 1.0,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl PolynomialLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.total_iters < 0 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!(
                    "total_iters must be a non-negative integer, got {}",
                    self.total_iters
                ),
            ));
        }
        // A negative power divides by zero at total_iters (PyTorch raises there).
        if self.power < 0.0 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("power must be >= 0, got {}", self.power),
            ));
        }
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<PolynomialLR, ScheduleError> {
        self.validate()?;
        Sched::construct(
            groups,
            PolynomialRule {
                total_iters: self.total_iters,
                power: self.power,
            },
        )
    }
}

/// Decay to zero over `total_iters` as `(1 - t/T)^power`, applied step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct PolynomialRule {
    /// Epochs until the lr reaches 0.
    pub total_iters: i64,
    /// The polynomial's power.
    pub power: f64,
}

impl Rule for PolynomialRule {
    fn name(&self) -> &'static str {
        "PolynomialLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let e = st.last_epoch;
        if st.is_initial || e > self.total_iters {
            return Ok(g.lr.clone());
        }
        let t = self.total_iters as f64;
        // ((1 - e/T) / (1 - (e-1)/T)) ** power
        let num = 1.0 - div("PolynomialLR", e as f64, t)?;
        let den = 1.0 - div("PolynomialLR", (e - 1) as f64, t)?;
        let f = div("PolynomialLR", num, den)?.powf(self.power);
        Ok(g.lr.iter().map(|lr| lr * f).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let m = self.total_iters.min(st.last_epoch) as f64;
        Some(div("PolynomialLR", m, self.total_iters as f64).map(|q| {
            let f = (1.0 - q).powf(self.power);
            st.base_lrs.iter().map(|b| b * f).collect()
        }))
    }
}

/// `torch.optim.lr_scheduler.PolynomialLR`.
pub type PolynomialLR = Sched<PolynomialRule>;

impl Sched<PolynomialRule> {
    /// `PolynomialLR(optimizer, total_iters, power)`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        total_iters: i64,
        power: f64,
    ) -> Result<Self, ScheduleError> {
        PolynomialLRConfig {
            total_iters,
            power,
            ..PolynomialLRConfig::new()
        }
        .init(groups)
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn sequence() {
        // power 1: lr = (1 - e/T), then stays at 0.
        assert_close(
            &run1("PolynomialLR(total_iters=2, power=1.0)", 3),
            &[1.0, 0.5, 0.0, 0.0],
        );
        // power 2: (1 - e/4)^2 = 1, 0.5625, 0.25, 0.0625, 0
        assert_close(
            &run1("PolynomialLR(total_iters=4, power=2.0)", 4),
            &[1.0, 0.5625, 0.25, 0.0625, 0.0],
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("PolynomialLR(total_iters=-2)", 1),
            "PolynomialLR: total_iters must be a non-negative integer, got -2"
        );
        assert_eq!(
            build_err("PolynomialLR(power=-1.0)", 1),
            "PolynomialLR: power must be >= 0, got -1"
        );
    }
}
