//! CosineAnnealingLR (the recursive, chainable form PyTorch's `step()` uses).

use std::f64::consts::PI;

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int};

scheduler_config! {
    /// `CosineAnnealingLR(optimizer, T_max, eta_min=0.0, last_epoch=-1)`.
    pub struct CosineAnnealingLRConfig for "CosineAnnealingLR" {
        /// Half a cosine period, in epochs.
        T_max: i64 as Int,
        ;
        /// The lowest lr.
        eta_min: f64 as Float = 0.0,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl CosineAnnealingLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.T_max <= 0 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("T_max must be a positive integer, got {}", self.T_max),
            ));
        }
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<CosineAnnealingLR, ScheduleError> {
        self.validate()?;
        Sched::construct(
            groups,
            CosineRule {
                t_max: self.T_max,
                eta_min: self.eta_min,
            },
        )
    }
}

/// Cosine annealing from each group's lr down to `eta_min` over `t_max` epochs, and back.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineRule {
    /// Half a cosine period, in epochs (PyTorch's `T_max`).
    pub t_max: i64,
    /// The lowest lr.
    pub eta_min: f64,
}

impl Rule for CosineRule {
    fn name(&self) -> &'static str {
        "CosineAnnealingLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let (e, t, eta) = (st.last_epoch, self.t_max as f64, self.eta_min);
        if st.is_initial {
            return Ok(g.lr.clone());
        }
        if st.step_count == 1 && e > 0 {
            return Ok(st
                .base_lrs
                .iter()
                .map(|b| eta + (b - eta) * (1.0 + (e as f64 * PI / t).cos()) / 2.0)
                .collect());
        }
        if (e - 1 - self.t_max).rem_euclid(2 * self.t_max) == 0 {
            // Just past a minimum, where the ratio below would divide by zero.
            let c = 1.0 - (PI / t).cos();
            return Ok(g
                .lr
                .iter()
                .zip(&st.base_lrs)
                .map(|(lr, b)| lr + (b - eta) * c / 2.0)
                .collect());
        }
        let ratio = (1.0 + (PI * e as f64 / t).cos()) / (1.0 + (PI * (e - 1) as f64 / t).cos());
        Ok(g.lr.iter().map(|lr| ratio * (lr - eta) + eta).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let (e, t, eta) = (st.last_epoch as f64, self.t_max as f64, self.eta_min);
        let c = 1.0 + (PI * e / t).cos();
        Some(Ok(st
            .base_lrs
            .iter()
            .map(|b| eta + (b - eta) * c / 2.0)
            .collect()))
    }
}

/// `torch.optim.lr_scheduler.CosineAnnealingLR`.
pub type CosineAnnealingLR = Sched<CosineRule>;

impl Sched<CosineRule> {
    /// `CosineAnnealingLR(optimizer, T_max, eta_min)`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(groups: &mut ParamGroups, t_max: i64, eta_min: f64) -> Result<Self, ScheduleError> {
        CosineAnnealingLRConfig {
            eta_min,
            ..CosineAnnealingLRConfig::new(t_max)
        }
        .init(groups)
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn sequence_and_past_t_max() {
        // eta_min + (1 - eta_min)(1 + cos(pi e / 2)) / 2 = 1, 0.5, 0, then back up: 0.5, 1.
        assert_close(
            &run1("CosineAnnealingLR(T_max=2)", 4),
            &[1.0, 0.5, 0.0, 0.5, 1.0],
        );
        let r = run1("CosineAnnealingLR(T_max=4, eta_min=0.1)", 4);
        let want: Vec<f64> = (0..5)
            .map(|e| 0.1 + 0.9 * (1.0 + (std::f64::consts::PI * e as f64 / 4.0).cos()) / 2.0)
            .collect();
        assert_close(&r, &want);
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("CosineAnnealingLR(T_max=0)", 1),
            "CosineAnnealingLR: T_max must be a positive integer, got 0"
        );
        assert_eq!(
            build_err("CosineAnnealingLR(T_max=-5)", 1),
            "CosineAnnealingLR: T_max must be a positive integer, got -5"
        );
        assert_eq!(
            build_err("CosineAnnealingLR()", 1),
            "CosineAnnealingLR: T_max is required (an integer)"
        );
    }
}
