//! CosineAnnealingWarmRestarts (SGDR), which overrides `step` with its own `T_cur` bookkeeping.

use std::f64::consts::PI;

use super::base::{BaseState, LrScheduler, ParamGroups};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int, StrictInt};

scheduler_config! {
    /// `CosineAnnealingWarmRestarts(optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1)`.
    /// `T_0` and `T_mult` must be Python ints, as PyTorch checks.
    pub struct CosineAnnealingWarmRestartsConfig for "CosineAnnealingWarmRestarts" {
        /// Epochs until the first restart.
        T_0: i64 as StrictInt,
        ;
        /// Each cycle is this many times longer than the previous one.
        T_mult: i64 as StrictInt = 1,
        /// The lowest lr.
        eta_min: f64 as Float = 0.0,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl CosineAnnealingWarmRestartsConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.T_0 <= 0 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("T_0 must be a positive integer, got {}", self.T_0),
            ));
        }
        if self.T_mult < 1 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("T_mult must be an integer >= 1, got {}", self.T_mult),
            ));
        }
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(
        &self,
        groups: &mut ParamGroups,
    ) -> Result<CosineAnnealingWarmRestarts, ScheduleError> {
        self.validate()?;
        groups.check(Self::NAME)?;
        let st = BaseState::attach(groups);
        let mut s = CosineAnnealingWarmRestarts {
            st,
            t_0: self.T_0,
            t_i: self.T_0,
            t_mult: self.T_mult,
            eta_min: self.eta_min,
            t_cur: -1,
        };
        s.initial_step(groups)?;
        Ok(s)
    }
}

/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`.
pub struct CosineAnnealingWarmRestarts {
    st: BaseState,
    t_0: i64,
    t_i: i64,
    t_mult: i64,
    eta_min: f64,
    t_cur: i64,
}

impl CosineAnnealingWarmRestarts {
    /// `CosineAnnealingWarmRestarts(optimizer, T_0, T_mult, eta_min)`: validates, then runs the
    /// initial step on `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        t_0: i64,
        t_mult: i64,
        eta_min: f64,
    ) -> Result<Self, ScheduleError> {
        CosineAnnealingWarmRestartsConfig {
            T_mult: t_mult,
            eta_min,
            ..CosineAnnealingWarmRestartsConfig::new(t_0)
        }
        .init(groups)
    }

    /// `eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2`
    fn get_lr(&self) -> Vec<f64> {
        let c = 1.0 + (PI * self.t_cur as f64 / self.t_i as f64).cos();
        self.st
            .base_lrs
            .iter()
            .map(|b| self.eta_min + (b - self.eta_min) * c / 2.0)
            .collect()
    }

    fn apply(&mut self, groups: &mut ParamGroups, values: Vec<f64>) {
        for (lr, v) in groups.lr.iter_mut().zip(values) {
            *lr = v;
        }
        self.st.last_lr = groups.lr.clone();
    }

    /// Epochs since the last restart.
    pub fn t_cur(&self) -> i64 {
        self.t_cur
    }

    /// Length of the current cycle.
    pub fn t_i(&self) -> i64 {
        self.t_i
    }
}

impl LrScheduler for CosineAnnealingWarmRestarts {
    fn step(
        &mut self,
        groups: &mut ParamGroups,
        _metric: Option<f64>,
    ) -> Result<(), ScheduleError> {
        if self.st.last_epoch < 0 {
            // step(epoch=0): the explicit-epoch branch with epoch < T_0.
            self.t_i = self.t_0;
            self.t_cur = 0;
            self.st.last_epoch = 0;
        } else {
            self.st.last_epoch += 1;
            self.t_cur += 1;
            if self.t_cur >= self.t_i {
                self.t_cur %= self.t_i;
                self.t_i *= self.t_mult;
            }
        }
        let values = self.get_lr();
        self.apply(groups, values);
        Ok(())
    }

    fn name(&self) -> &str {
        "CosineAnnealingWarmRestarts"
    }

    fn last_lr(&self) -> &[f64] {
        &self.st.last_lr
    }

    fn undo_initial_step(&mut self) {
        self.st.last_epoch -= 1;
    }

    fn restart_at_zero(&mut self, groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        // The base class's `_update_lr(0)`: only last_epoch moves; T_cur / T_i stay as they are.
        self.st.last_epoch = 0;
        let values = self.get_lr();
        self.apply(groups, values);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn restarts_with_t_mult() {
        // T_0=2, T_mult=2: T_cur 0,1 | 0,1,2,3 | 0 ... ; lr = (1 + cos(pi T_cur / T_i)) / 2
        let c = |t: f64, ti: f64| (1.0 + (PI * t / ti).cos()) / 2.0;
        assert_close(
            &run1("CosineAnnealingWarmRestarts(T_0=2, T_mult=2)", 6),
            &[
                1.0,
                c(1.0, 2.0),
                1.0,
                c(1.0, 4.0),
                c(2.0, 4.0),
                c(3.0, 4.0),
                1.0,
            ],
        );
        let mut g = ParamGroups::new(vec![1.0], None);
        let mut s = CosineAnnealingWarmRestarts::new(&mut g, 3, 1, 0.5).unwrap();
        for _ in 0..3 {
            s.step(&mut g, None).unwrap();
        }
        assert_eq!((s.t_cur(), s.t_i()), (0, 3));
        assert_eq!(g.lr, vec![1.0]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("CosineAnnealingWarmRestarts(T_0=0)", 1),
            "CosineAnnealingWarmRestarts: T_0 must be a positive integer, got 0"
        );
        assert_eq!(
            build_err("CosineAnnealingWarmRestarts(T_0=5, T_mult=0)", 1),
            "CosineAnnealingWarmRestarts: T_mult must be an integer >= 1, got 0"
        );
    }
}
