//! StepLR and MultiStepLR.

use std::collections::BTreeMap;

use super::base::{bisect_right, floor_div, BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{check_last_epoch, scheduler_config, Float, Int, IntList};

scheduler_config! {
    /// `StepLR(optimizer, step_size, gamma=0.1, last_epoch=-1)`.
    pub struct StepLRConfig for "StepLR" {
        /// Epochs between two decays.
        step_size: i64 as Int,
        ;
        /// Multiplicative factor of each decay.
        gamma: f64 as Float = 0.1,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl StepLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.step_size <= 0 {
            return Err(ScheduleError::param(
                Self::NAME,
                format!(
                    "step_size must be a positive integer, got {}",
                    self.step_size
                ),
            ));
        }
        check_gamma(Self::NAME, self.gamma)?;
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<StepLR, ScheduleError> {
        self.validate()?;
        Sched::construct(
            groups,
            StepRule {
                step_size: self.step_size,
                gamma: self.gamma,
            },
        )
    }
}

scheduler_config! {
    /// `MultiStepLR(optimizer, milestones, gamma=0.1, last_epoch=-1)`.
    pub struct MultiStepLRConfig for "MultiStepLR" {
        /// Epochs at which to decay (need not be sorted; a repeated one decays once per copy).
        milestones: Vec<i64> as IntList,
        ;
        /// Multiplicative factor of each decay.
        gamma: f64 as Float = 0.1,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl MultiStepLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if let Some(m) = self.milestones.iter().find(|m| **m < 0) {
            return Err(ScheduleError::param(
                Self::NAME,
                format!("milestones must be non-negative integers, got {m}"),
            ));
        }
        check_gamma(Self::NAME, self.gamma)?;
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<MultiStepLR, ScheduleError> {
        self.validate()?;
        let mut counter = BTreeMap::new();
        for m in &self.milestones {
            *counter.entry(*m).or_insert(0u32) += 1;
        }
        Sched::construct(
            groups,
            MultiStepRule {
                milestones: counter,
                gamma: self.gamma,
            },
        )
    }
}

fn check_gamma(name: &str, gamma: f64) -> Result<(), ScheduleError> {
    // PyTorch accepts any gamma; <= 0 only ever yields zero or sign-flipping learning rates.
    if gamma.is_finite() && gamma > 0.0 {
        Ok(())
    } else {
        Err(ScheduleError::param(
            name,
            format!("gamma must be a number > 0, got {gamma}"),
        ))
    }
}

/// Multiply by `gamma` every `step_size` epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRule {
    /// Epochs between two decays.
    pub step_size: i64,
    /// Multiplicative factor of learning rate decay.
    pub gamma: f64,
}

impl Rule for StepRule {
    fn name(&self) -> &'static str {
        "StepLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let e = st.last_epoch;
        if e == 0 || e.rem_euclid(self.step_size) != 0 {
            return Ok(g.lr.clone());
        }
        Ok(g.lr.iter().map(|lr| lr * self.gamma).collect())
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let k = floor_div(st.last_epoch, self.step_size) as f64;
        Some(Ok(st
            .base_lrs
            .iter()
            .map(|b| b * self.gamma.powf(k))
            .collect()))
    }
}

/// `torch.optim.lr_scheduler.StepLR`.
pub type StepLR = Sched<StepRule>;

impl Sched<StepRule> {
    /// `StepLR(optimizer, step_size, gamma)`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        step_size: i64,
        gamma: f64,
    ) -> Result<Self, ScheduleError> {
        StepLRConfig {
            gamma,
            ..StepLRConfig::new(step_size)
        }
        .init(groups)
    }
}

/// Multiply by `gamma` (once per occurrence) at each milestone.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepRule {
    /// `Counter(milestones)`.
    pub milestones: BTreeMap<i64, u32>,
    /// Multiplicative factor of learning rate decay.
    pub gamma: f64,
}

impl Rule for MultiStepRule {
    fn name(&self) -> &'static str {
        "MultiStepLR"
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        match self.milestones.get(&st.last_epoch) {
            None => Ok(g.lr.clone()),
            Some(&count) => {
                let f = self.gamma.powf(f64::from(count));
                Ok(g.lr.iter().map(|lr| lr * f).collect())
            }
        }
    }
    fn closed_form(&self, st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        let sorted: Vec<i64> = self
            .milestones
            .iter()
            .flat_map(|(m, c)| std::iter::repeat_n(*m, *c as usize))
            .collect();
        let k = bisect_right(&sorted, st.last_epoch) as f64;
        Some(Ok(st
            .base_lrs
            .iter()
            .map(|b| b * self.gamma.powf(k))
            .collect()))
    }
}

/// `torch.optim.lr_scheduler.MultiStepLR`.
pub type MultiStepLR = Sched<MultiStepRule>;

impl Sched<MultiStepRule> {
    /// `milestones` need not be sorted; a repeated milestone multiplies by `gamma` once per copy.
    pub fn new(
        groups: &mut ParamGroups,
        milestones: &[i64],
        gamma: f64,
    ) -> Result<Self, ScheduleError> {
        MultiStepLRConfig {
            gamma,
            ..MultiStepLRConfig::new(milestones.to_vec())
        }
        .init(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn steplr_sequence() {
        // lr = 1 * 0.5^(e // 3)
        assert_close(
            &run1("StepLR(step_size=3, gamma=0.5)", 7),
            &[1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25],
        );
        // default gamma 0.1
        assert_close(&run1("StepLR(step_size=1)", 2), &[1.0, 0.1, 0.1 * 0.1]);
    }

    #[test]
    fn steplr_errors() {
        assert_eq!(
            build_err("StepLR(step_size=0)", 1),
            "StepLR: step_size must be a positive integer, got 0"
        );
        assert_eq!(
            build_err("StepLR(step_size=2, gamma=0)", 1),
            "StepLR: gamma must be a number > 0, got 0"
        );
        assert_eq!(
            build_err("StepLR()", 1),
            "StepLR: step_size is required (an integer)"
        );
        assert_eq!(
            build_err("StepLR(step_size=2.5)", 1),
            "StepLR: step_size must be an integer, got 2.5"
        );
    }

    #[test]
    fn multistep_repeated_and_zero_milestones() {
        // Milestone 0 applies in the constructor's step; a repeated milestone applies gamma twice.
        assert_close(
            &run1("MultiStepLR(milestones=[0, 2, 2], gamma=0.5)", 3),
            &[0.5, 0.5, 0.125, 0.125],
        );
        // Unsorted milestones work as PyTorch's Counter does.
        assert_close(
            &run1("MultiStepLR(milestones=[3, 1])", 3),
            &[1.0, 0.1, 0.1, 0.1 * 0.1],
        );
    }

    #[test]
    fn multistep_errors() {
        assert_eq!(
            build_err("MultiStepLR(milestones=[-1])", 1),
            "MultiStepLR: milestones must be non-negative integers, got -1"
        );
        assert_eq!(
            build_err("MultiStepLR(milestones=5)", 1),
            "MultiStepLR: milestones must be a list of integers, got 5"
        );
    }

    #[test]
    fn closed_forms() {
        let mut g = ParamGroups::new(vec![1.0], None);
        let s = StepLR::new(&mut g, 2, 0.5).unwrap();
        let st = BaseState {
            last_epoch: 5,
            ..s.st.clone()
        };
        assert_eq!(s.rule.closed_form(&st).unwrap().unwrap(), vec![0.25]);
        let m = MultiStepLR::new(&mut g, &[4, 1, 4], 0.5).unwrap();
        let st = BaseState {
            last_epoch: 4,
            ..m.st.clone()
        };
        assert_eq!(m.rule.closed_form(&st).unwrap().unwrap(), vec![0.125]);
    }
}
