//! ConstantLR and LinearLR (both scale the lr by a factor until `total_iters`).

use super::base::{div, BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int};

scheduler_config! {
    /// `ConstantLR(optimizer, factor=1/3, total_iters=5, last_epoch=-1)`.
    pub struct ConstantLRConfig for "ConstantLR" {
        ;
        /// The lr is multiplied by this until `total_iters`.
        factor: f64 as Float = 1.0 / 3.0,
        /// Epochs with the reduced lr.
        total_iters: i64 as Int = 5,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl ConstantLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(0.0..=1.0).contains(&self.factor) {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("factor must be between 0 and 1, got {}", self.factor),
            ));
        }
        check_total_iters(Self::NAME, self.total_iters)?;
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<ConstantLR, ScheduleError> {
        self.validate()?;
        Sched::construct(
            groups,
            ConstantRule {
                factor: self.factor,
                total_iters: self.total_iters,
            },
        )
    }
}

scheduler_config! {
    /// `LinearLR(optimizer, start_factor=1/3, end_factor=1.0, total_iters=5, last_epoch=-1)`.
    pub struct LinearLRConfig for "LinearLR" {
        ;
        /// Factor at epoch 0.
        start_factor: f64 as Float = 1.0 / 3.0,
        /// Factor from `total_iters` on.
        end_factor: f64 as Float = 1.0,
        /// Epochs of the linear ramp.
        total_iters: i64 as Int = 5,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl LinearLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            return Err(ScheduleError::param(
                Self::NAME,
                format!(
                    "start_factor must be greater than 0 and at most 1, got {}",
                    self.start_factor
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.end_factor) {
            return Err(ScheduleError::param(
                Self::NAME,
                format!(
                    "end_factor must be between 0 and 1, got {}",
                    self.end_factor
                ),
            ));
        }
        check_total_iters(Self::NAME, self.total_iters)?;
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<LinearLR, ScheduleError> {
        self.validate()?;
        Sched::construct(
            groups,
            LinearRule {
                start_factor: self.start_factor,
                end_factor: self.end_factor,
                total_iters: self.total_iters,
            },
        )
    }
}

fn check_total_iters(name: &str, total_iters: i64) -> Result<(), ScheduleError> {
    if total_iters < 0 {
        return Err(ScheduleError::param(
            name,
            format!("total_iters must be a non-negative integer, got {total_iters}"),
        ));
    }
    Ok(())
}

/// `lr * factor` from epoch 0 until `total_iters`, then back to the full lr.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantRule {
    /// The lr is multiplied by this until `total_iters`.
    pub factor: f64,
    /// Epochs with the reduced lr.
    pub total_iters: i64,
}

impl Rule for ConstantRule {
    fn name(&self) -> &'static str {
        "ConstantLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        if st.last_epoch == 0 {
            return Ok(g.lr.iter().map(|lr| lr * self.factor).collect());
        }
        if st.last_epoch != self.total_iters {
            return Ok(g.lr.clone());
        }
        let inv = div("ConstantLR", 1.0, self.factor)?;
        Ok(g.lr.iter().map(|lr| lr * inv).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let reached = if st.last_epoch >= self.total_iters {
            1.0
        } else {
            0.0
        };
        let f = self.factor + reached * (1.0 - self.factor);
        Some(Ok(st.base_lrs.iter().map(|b| b * f).collect()))
    }
}

/// `torch.optim.lr_scheduler.ConstantLR`.
pub type ConstantLR = Sched<ConstantRule>;

impl Sched<ConstantRule> {
    /// `ConstantLR(optimizer, factor, total_iters)`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        factor: f64,
        total_iters: i64,
    ) -> Result<Self, ScheduleError> {
        ConstantLRConfig {
            factor,
            total_iters,
            ..ConstantLRConfig::new()
        }
        .init(groups)
    }
}

/// Factor moving linearly from `start_factor` to `end_factor` over `total_iters` epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearRule {
    /// Factor at epoch 0.
    pub start_factor: f64,
    /// Factor from `total_iters` on.
    pub end_factor: f64,
    /// Epochs over which the factor moves.
    pub total_iters: i64,
}

impl Rule for LinearRule {
    fn name(&self) -> &'static str {
        "LinearLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let e = st.last_epoch;
        if e == 0 {
            return Ok(g.lr.iter().map(|lr| lr * self.start_factor).collect());
        }
        if st.is_initial || e > self.total_iters {
            return Ok(g.lr.clone());
        }
        let (s, t) = (self.start_factor, self.end_factor);
        // lr * (1 + (end - start) / (total * start + (e - 1) * (end - start)))
        let den = self.total_iters as f64 * s + (e - 1) as f64 * (t - s);
        let f = 1.0 + div("LinearLR", t - s, den)?;
        Ok(g.lr.iter().map(|lr| lr * f).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let (s, t) = (self.start_factor, self.end_factor);
        let m = self.total_iters.min(st.last_epoch) as f64;
        Some(
            div("LinearLR", (t - s) * m, self.total_iters as f64)
                .map(|q| st.base_lrs.iter().map(|b| b * (s + q)).collect()),
        )
    }
}

/// `torch.optim.lr_scheduler.LinearLR`.
pub type LinearLR = Sched<LinearRule>;

impl Sched<LinearRule> {
    /// `LinearLR(optimizer, start_factor, end_factor, total_iters)`: validates, then runs the
    /// initial step on `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        start_factor: f64,
        end_factor: f64,
        total_iters: i64,
    ) -> Result<Self, ScheduleError> {
        LinearLRConfig {
            start_factor,
            end_factor,
            total_iters,
            ..LinearLRConfig::new()
        }
        .init(groups)
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn constant_sequence() {
        // lr * factor for e < total_iters, then lr / factor once at e == total_iters.
        assert_close(
            &run1("ConstantLR(factor=0.5, total_iters=2)", 3),
            &[0.5, 0.5, 1.0, 1.0],
        );
        // Defaults: factor 1/3, total_iters 5.
        let r = run1("ConstantLR", 5);
        assert_close(&r[..5], &[1.0 / 3.0; 5]);
        assert_close(&r[5..], &[1.0]);
    }

    #[test]
    fn constant_total_iters_zero_stays_scaled() {
        // PyTorch: epoch 0 applies the factor, and e == total_iters never comes again.
        assert_close(
            &run1("ConstantLR(factor=0.5, total_iters=0)", 3),
            &[0.5, 0.5, 0.5, 0.5],
        );
    }

    #[test]
    fn linear_sequence() {
        // factor: 0.5, 0.75, 1.0 (start + (end-start) * e/total), then constant.
        assert_close(
            &run1("LinearLR(start_factor=0.5, total_iters=2)", 3),
            &[0.5, 0.75, 1.0, 1.0],
        );
        assert_close(
            &run1(
                "LinearLR(start_factor=1.0, end_factor=0.5, total_iters=2)",
                3,
            ),
            &[1.0, 0.75, 0.5, 0.5],
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("ConstantLR(factor=1.5)", 1),
            "ConstantLR: factor must be between 0 and 1, got 1.5"
        );
        assert_eq!(
            build_err("ConstantLR(total_iters=-1)", 1),
            "ConstantLR: total_iters must be a non-negative integer, got -1"
        );
        assert_eq!(
            build_err("LinearLR(start_factor=0)", 1),
            "LinearLR: start_factor must be greater than 0 and at most 1, got 0"
        );
        assert_eq!(
            build_err("LinearLR(end_factor=2)", 1),
            "LinearLR: end_factor must be between 0 and 1, got 2"
        );
    }

    #[test]
    fn factor_zero_fails_at_total_iters_like_python() {
        let cfg =
            crate::schedule::SchedulerConfig::parse("ConstantLR(factor=0, total_iters=1)").unwrap();
        let g = crate::schedule::ParamGroups::new(vec![1.0], None);
        let e = crate::schedule::simulate(&cfg, g, 1, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ConstantLR: float division by zero (PyTorch raises ZeroDivisionError here)"
        );
    }
}
