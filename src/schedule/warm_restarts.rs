//! CosineAnnealingWarmRestarts (SGDR), which overrides `step` with its own `T_cur` bookkeeping.

use std::f64::consts::PI;

use super::base::{BaseState, LrScheduler, ParamGroups};
use super::config::Params;
use super::error::ScheduleError;

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
    pub fn new(
        groups: &mut ParamGroups,
        t_0: i64,
        t_mult: i64,
        eta_min: f64,
    ) -> Result<Self, ScheduleError> {
        const NAME: &str = "CosineAnnealingWarmRestarts";
        if t_0 <= 0 {
            return Err(ScheduleError::param(
                NAME,
                format!("T_0 must be a positive integer, got {t_0}"),
            ));
        }
        if t_mult < 1 {
            return Err(ScheduleError::param(
                NAME,
                format!("T_mult must be an integer >= 1, got {t_mult}"),
            ));
        }
        groups.check(NAME)?;
        let st = BaseState::attach(groups);
        let mut s = Self {
            st,
            t_0,
            t_i: t_0,
            t_mult,
            eta_min,
            t_cur: -1,
        };
        s.initial_step(groups)?;
        Ok(s)
    }

    pub(crate) fn from_params(p: &Params, groups: &mut ParamGroups) -> Result<Self, ScheduleError> {
        Self::new(
            groups,
            p.req_int("T_0")?,
            p.int("T_mult", 1)?,
            p.float("eta_min", 0.0)?,
        )
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
