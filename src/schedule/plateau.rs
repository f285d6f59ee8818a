//! ReduceLROnPlateau.

use super::base::{LrScheduler, ParamGroups};
use super::error::ScheduleError;
use super::params::{scheduler_config, Choice, Float, Int, OneOf, PerGroup};

const NAME: &str = "ReduceLROnPlateau";

/// `mode`: whether lower (`Min`) or higher (`Max`) metrics are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

impl Choice for PlateauMode {
    const ALL: &'static [(&'static str, Self)] = &[("min", Self::Min), ("max", Self::Max)];
}

/// `threshold_mode`: compare against `best * (1 ± threshold)` or `best ± threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative: `best * (1 ± threshold)`.
    Rel,
    /// Absolute: `best ± threshold`.
    Abs,
}

impl Choice for ThresholdMode {
    const ALL: &'static [(&'static str, Self)] = &[("rel", Self::Rel), ("abs", Self::Abs)];
}

scheduler_config! {
    /// `ReduceLROnPlateau(optimizer, mode='min', factor=0.1, patience=10, threshold=1e-4,
    /// threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-8)`.
    pub struct ReduceLROnPlateauConfig for "ReduceLROnPlateau" {
        ;
        /// Whether lower or higher metrics are better.
        mode: PlateauMode as OneOf<PlateauMode> = PlateauMode::Min,
        /// new_lr = lr * factor.
        factor: f64 as Float = 0.1,
        /// Bad epochs tolerated before reducing.
        patience: i64 as Int = 10,
        /// What counts as an improvement.
        threshold: f64 as Float = 1e-4,
        /// Relative or absolute threshold.
        threshold_mode: ThresholdMode as OneOf<ThresholdMode> = ThresholdMode::Rel,
        /// Epochs to wait after a reduction.
        cooldown: i64 as Int = 0,
        /// Lower bound of the lr, for every group or one per group.
        min_lr: PerGroup as PerGroup = PerGroup::All(0.0),
        /// Reductions smaller than this are skipped.
        eps: f64 as Float = 1e-8,
    }
}

impl ReduceLROnPlateauConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let err = |m: String| ScheduleError::param(NAME, m);
        if self.factor >= 1.0 {
            return Err(err(format!("factor must be < 1.0, got {}", self.factor)));
        }
        if self.factor < 0.0 {
            return Err(err(format!("factor must be >= 0, got {}", self.factor)));
        }
        if self.patience < 0 {
            return Err(err(format!(
                "patience must be a non-negative integer, got {}",
                self.patience
            )));
        }
        if self.cooldown < 0 {
            return Err(err(format!(
                "cooldown must be a non-negative integer, got {}",
                self.cooldown
            )));
        }
        if self.eps < 0.0 {
            return Err(err(format!("eps must be >= 0, got {}", self.eps)));
        }
        Ok(())
    }

    /// Validates, then builds the scheduler (no initial step, as in PyTorch).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<ReduceLROnPlateau, ScheduleError> {
        groups.check(NAME)?;
        self.validate()?;
        let min_lrs = match &self.min_lr {
            PerGroup::All(x) => vec![*x; groups.len()],
            PerGroup::Each(v) if v.len() == groups.len() => v.clone(),
            PerGroup::Each(v) => {
                return Err(ScheduleError::param(
                    NAME,
                    format!("expected {} min_lrs, got {}", groups.len(), v.len()),
                ))
            }
        };
        Ok(ReduceLROnPlateau {
            best: ReduceLROnPlateau::mode_worse(self.mode),
            p: self.clone(),
            min_lrs,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
            last_lr: groups.lr.clone(),
        })
    }
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau`. It does not run PyTorch's base constructor:
/// no initial step and no `initial_lr` in the groups.
pub struct ReduceLROnPlateau {
    p: ReduceLROnPlateauConfig,
    min_lrs: Vec<f64>,
    best: f64,
    num_bad_epochs: i64,
    cooldown_counter: i64,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl ReduceLROnPlateau {
    /// `ReduceLROnPlateau(optimizer, ...)` from `config`: validates, then attaches to `groups`.
    pub fn new(
        groups: &mut ParamGroups,
        config: &ReduceLROnPlateauConfig,
    ) -> Result<Self, ScheduleError> {
        config.init(groups)
    }

    fn mode_worse(mode: PlateauMode) -> f64 {
        match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.p.threshold;
        match (self.p.mode, self.p.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs without improvement counted so far.
    pub fn num_bad_epochs(&self) -> i64 {
        self.num_bad_epochs
    }
}

impl LrScheduler for ReduceLROnPlateau {
    fn step(&mut self, groups: &mut ParamGroups, metric: Option<f64>) -> Result<(), ScheduleError> {
        let current = metric.ok_or_else(|| {
            ScheduleError::step(NAME, "step() needs the monitored metric, got none")
        })?;
        self.last_epoch += 1;
        if self.is_better(current, self.best) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0; // bad epochs in cooldown do not count
        }
        if self.num_bad_epochs > self.p.patience {
            for (lr, min_lr) in groups.lr.iter_mut().zip(&self.min_lrs) {
                let old = *lr;
                let new = py_max(old * self.p.factor, *min_lr);
                if old - new > self.p.eps {
                    *lr = new;
                }
            }
            self.cooldown_counter = self.p.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = groups.lr.clone();
        Ok(())
    }

    fn name(&self) -> &str {
        NAME
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn needs_metric(&self) -> bool {
        true
    }

    fn initial_step(&mut self, _groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        Ok(())
    }
}

/// Python's `max(a, b)`.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::build_err;
    use crate::schedule::{simulate, SchedulerConfig};

    fn lrs(spec: &str, lr: &[f64], metrics: &[f64]) -> Vec<Vec<f64>> {
        let cfg = SchedulerConfig::parse(spec).unwrap();
        let g = ParamGroups::new(lr.to_vec(), None);
        simulate(&cfg, g, metrics.len(), Some(metrics)).unwrap().lr
    }

    #[test]
    fn min_mode_patience() {
        // patience=1: the 2nd bad epoch in a row reduces (1 → 0.5), then counting restarts.
        let r = lrs(
            "ReduceLROnPlateau(factor=0.5, patience=1)",
            &[1.0],
            &[1.0, 1.0, 1.0, 1.0, 1.0],
        );
        let r: Vec<f64> = r.into_iter().map(|x| x[0]).collect();
        assert_eq!(r, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn max_mode_abs_threshold_and_cooldown() {
        // Improvements below threshold 0.1 do not count; cooldown 2 ignores two bad epochs.
        let m = [1.0, 1.05, 1.05, 1.05, 1.05, 1.05];
        let r = lrs(
            "ReduceLROnPlateau(mode='max', threshold_mode=abs, threshold=0.1, patience=0, cooldown=2, factor=0.5)",
            &[1.0],
            &m,
        );
        let r: Vec<f64> = r.into_iter().map(|x| x[0]).collect();
        assert_eq!(r, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn min_lr_per_group_and_eps() {
        let r = lrs(
            "ReduceLROnPlateau(factor=0.5, patience=0, min_lr=[0.3, 0.0], eps=0.1)",
            &[1.0, 1.0],
            &[1.0, 2.0, 2.0, 2.0, 2.0],
        );
        // group 0 stops at min_lr 0.3; group 1 stops once a reduction is <= eps (0.125 → 0.0625).
        assert_eq!(r[2], vec![0.5, 0.5]);
        assert_eq!(r[3], vec![0.3, 0.25]);
        assert_eq!(r[4], vec![0.3, 0.125]);
        assert_eq!(r[5], vec![0.3, 0.125]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("ReduceLROnPlateau(factor=1.0)", 1),
            "ReduceLROnPlateau: factor must be < 1.0, got 1"
        );
        assert_eq!(
            build_err("ReduceLROnPlateau(mode='avg')", 1),
            "ReduceLROnPlateau: mode must be one of 'min', 'max', got 'avg'"
        );
        assert_eq!(
            build_err("ReduceLROnPlateau(min_lr=[0.1, 0.2, 0.3])", 2),
            "ReduceLROnPlateau: expected 2 min_lrs, got 3"
        );
        assert_eq!(
            build_err("ReduceLROnPlateau(patience=-1)", 1),
            "ReduceLROnPlateau: patience must be a non-negative integer, got -1"
        );
        let mut g = ParamGroups::new(vec![0.1], None);
        let mut s = ReduceLROnPlateau::new(&mut g, &ReduceLROnPlateauConfig::new()).unwrap();
        assert_eq!(
            s.step(&mut g, None).unwrap_err().to_string(),
            "ReduceLROnPlateau: step() needs the monitored metric, got none"
        );
        // No initial step and no initial_lr, as in PyTorch.
        assert_eq!(g.initial_lr, vec![None]);
    }
}
