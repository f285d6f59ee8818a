//! PolynomialLR.

use super::base::{div, BaseState, ParamGroups, Rule, Sched};
use super::config::Params;
use super::error::ScheduleError;

/// Decay to zero over `total_iters` as `(1 - t/T)^power`, applied step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct PolynomialRule {
    pub total_iters: i64,
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
    pub fn new(
        groups: &mut ParamGroups,
        total_iters: i64,
        power: f64,
    ) -> Result<Self, ScheduleError> {
        if total_iters < 0 {
            return Err(ScheduleError::param(
                "PolynomialLR",
                format!("total_iters must be a non-negative integer, got {total_iters}"),
            ));
        }
        // A negative power divides by zero at total_iters (PyTorch raises there).
        if power < 0.0 {
            return Err(ScheduleError::param(
                "PolynomialLR",
                format!("power must be >= 0, got {power}"),
            ));
        }
        Sched::construct(groups, PolynomialRule { total_iters, power })
    }

    pub(crate) fn from_params(p: &Params, groups: &mut ParamGroups) -> Result<Self, ScheduleError> {
        Self::new(groups, p.int("total_iters", 5)?, p.float("power", 1.0)?)
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
