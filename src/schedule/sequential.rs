//! SequentialLR: hands control from one child to the next at each milestone.

use serde_json::{Map, Value};

use super::base::{bisect_right, LrScheduler, ParamGroups};
use super::chained::{build_all, check_children};
use super::config::SchedulerConfig;
use super::error::ScheduleError;
use super::params::{check_last_epoch, Int, IntList, Kind, Params};

const NAME: &str = "SequentialLR";

/// `SequentialLR(optimizer, schedulers, milestones, last_epoch=-1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialLRConfig {
    /// The schedulers in the order they take over.
    pub schedulers: Vec<SchedulerConfig>,
    /// The epochs at which the next scheduler takes over (one fewer than the schedulers).
    pub milestones: Vec<i64>,
    /// Only -1 (a fresh start).
    pub last_epoch: i64,
}

impl SequentialLRConfig {
    /// PyTorch's class name.
    pub const NAME: &'static str = NAME;
    /// Its keyword arguments besides the child schedulers.
    pub const PARAMS: &'static [&'static str] = &["milestones", "last_epoch"];

    /// Runs `schedulers[i]` until `milestones[i]`, then the next one; `last_epoch` is -1.
    pub fn new(schedulers: Vec<SchedulerConfig>, milestones: Vec<i64>) -> Self {
        Self {
            schedulers,
            milestones,
            last_epoch: -1,
        }
    }

    pub(crate) fn from_params(
        p: &Params,
        schedulers: Vec<SchedulerConfig>,
    ) -> Result<Self, ScheduleError> {
        Ok(Self {
            schedulers,
            milestones: p.required::<IntList>("milestones")?,
            last_epoch: p.optional::<Int>("last_epoch", -1)?,
        })
    }

    pub(crate) fn to_params(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("milestones".into(), IntList::write(&self.milestones));
        if self.last_epoch != -1 {
            m.insert("last_epoch".into(), Int::write(&self.last_epoch));
        }
        m
    }

    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check_children(NAME, &self.schedulers)?;
        check_last_epoch(NAME, self.last_epoch)
    }

    /// Builds every child in order on `groups`, then the sequence (see [`SequentialLR::new`]).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<SequentialLR, ScheduleError> {
        self.validate()?;
        let children = build_all(&self.schedulers, groups)?;
        SequentialLR::new(groups, children, self.milestones.clone())
    }
}

/// `torch.optim.lr_scheduler.SequentialLR`.
pub struct SequentialLR {
    children: Vec<Box<dyn LrScheduler>>,
    milestones: Vec<i64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl SequentialLR {
    /// `children` must already be built on `groups`. As in PyTorch, construction resets every
    /// group's lr to `initial_lr`, undoes the children's initial steps (`last_epoch -= 1`,
    /// recursively) and redoes the initial step of the child in charge at epoch 0 only:
    /// `schedulers[bisect_right(milestones, 0)]`, the first one unless a milestone is <= 0.
    pub fn new(
        groups: &mut ParamGroups,
        mut children: Vec<Box<dyn LrScheduler>>,
        milestones: Vec<i64>,
    ) -> Result<Self, ScheduleError> {
        let err = |m: String| ScheduleError::param(NAME, m);
        if children.is_empty() {
            return Err(err(
                "expects at least one scheduler, but got no scheduler".to_string()
            ));
        }
        if let Some(i) = children.iter().position(|c| c.needs_metric()) {
            return Err(err(format!(
                "does not support ReduceLROnPlateau (its step needs a metric), but got one at index {i}"
            )));
        }
        if milestones.len() != children.len() - 1 {
            return Err(err(format!(
                "expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers {} and the number of milestones to be equal to {}",
                children.len(),
                milestones.len()
            )));
        }
        // PyTorch bisects unsorted milestones silently; a decreasing list is never intended.
        if milestones.windows(2).any(|w| w[1] < w[0]) {
            return Err(err(format!(
                "milestones must be non-decreasing, got {milestones:?}"
            )));
        }
        for (i, (lr, init)) in groups.lr.iter_mut().zip(&groups.initial_lr).enumerate() {
            *lr = init.ok_or_else(|| {
                err(format!(
                    "param group {i} has no initial_lr (no child scheduler set it)"
                ))
            })?;
        }
        for c in &mut children {
            c.undo_initial_step();
        }
        let first = bisect_right(&milestones, 0);
        children[first].initial_step(groups)?;
        let last_lr = children[first].last_lr().to_vec();
        Ok(Self {
            children,
            milestones,
            last_epoch: 0,
            last_lr,
        })
    }

    /// The child schedulers.
    pub fn children(&self) -> &[Box<dyn LrScheduler>] {
        &self.children
    }
}

impl LrScheduler for SequentialLR {
    fn step(
        &mut self,
        groups: &mut ParamGroups,
        _metric: Option<f64>,
    ) -> Result<(), ScheduleError> {
        self.last_epoch += 1;
        let idx = bisect_right(&self.milestones, self.last_epoch);
        let child = &mut self.children[idx];
        if idx > 0 && self.milestones[idx - 1] == self.last_epoch {
            child.restart_at_zero(groups)?;
        } else {
            child.step(groups, None)?;
        }
        self.last_lr = child.last_lr().to_vec();
        Ok(())
    }

    fn name(&self) -> &str {
        NAME
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    // initial_step: the default (`self.step()`) is PyTorch's inherited `_initial_step`.

    /// PyTorch's `recursive_undo` only decrements leaves, never a nested SequentialLR itself.
    fn undo_initial_step(&mut self) {
        for c in &mut self.children {
            c.undo_initial_step();
        }
    }

    fn restart_at_zero(&mut self, _groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        Err(ScheduleError::step(
            NAME,
            "cannot be restarted by an outer SequentialLR at a milestone (PyTorch raises NotImplementedError: it has no get_lr)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::testutil::{assert_close, build_err, run1};
    use crate::schedule::{simulate, ParamGroups, SchedulerConfig};

    #[test]
    fn warmup_then_exponential() {
        // LinearLR 0.5 → 1 over 2 steps; at milestone 3 ExponentialLR restarts from its closed
        // form at epoch 0 (base_lr = 1), then halves.
        assert_close(
            &run1(
                "SequentialLR(LinearLR(start_factor=0.5, total_iters=2), ExponentialLR(gamma=0.5), milestones=[3])",
                5,
            ),
            &[0.5, 0.75, 1.0, 1.0, 0.5, 0.25],
        );
        // The keyword form is the same schedule.
        assert_eq!(
            SchedulerConfig::parse(
                "SequentialLR(schedulers=[ConstantLR(), StepLR(step_size=2)], milestones=[3])"
            )
            .unwrap(),
            SchedulerConfig::parse("SequentialLR(ConstantLR, StepLR(step_size=2), milestones=[3])")
                .unwrap(),
        );
    }

    /// PyTorch re-does the initial step of `schedulers[bisect_right(milestones, 0)]`:
    /// ```python
    /// opt = SGD([torch.zeros(1)], lr=1.0)
    /// s = SequentialLR(opt, [ConstantLR(opt, factor=0.5, total_iters=2),
    ///                        ExponentialLR(opt, gamma=0.5)], milestones=[0])
    /// # lr: 1.0, then 0.5, 0.25 (ConstantLR never runs)
    /// ```
    #[test]
    fn first_milestone_at_or_below_zero_starts_with_a_later_child() {
        let seq = "SequentialLR(ConstantLR(factor=0.5, total_iters=2), ExponentialLR(gamma=0.5), milestones=[0])";
        assert_close(&run1(seq, 2), &[1.0, 0.5, 0.25]);
        // Nested in a ChainedScheduler, with a second child after it.
        assert_close(
            &run1(
                &format!("ChainedScheduler({seq}, ConstantLR(factor=0.5, total_iters=1))"),
                2,
            ),
            &[0.5, 0.5, 0.25],
        );
        // Equal milestones: bisect_right([0, 0], 0) = 2, so the third child starts; and at
        // [2, 2] the second child never runs: the third restarts at epoch 2.
        assert_close(
            &run1(
                "SequentialLR(ConstantLR(factor=0.5), StepLR(step_size=1, gamma=0.1), ExponentialLR(gamma=0.5), milestones=[0, 0])",
                2,
            ),
            &[1.0, 0.5, 0.25],
        );
        assert_close(
            &run1(
                "SequentialLR(ConstantLR(factor=0.5), StepLR(step_size=1, gamma=0.1), ExponentialLR(gamma=0.5), milestones=[2, 2])",
                4,
            ),
            &[0.5, 0.5, 1.0, 0.5, 0.25],
        );
        // A negative milestone acts like 0.
        assert_close(
            &run1(
                "SequentialLR(ConstantLR(factor=0.5, total_iters=2), ExponentialLR(gamma=0.5), milestones=[-3])",
                1,
            ),
            &[1.0, 0.5],
        );
    }

    #[test]
    fn composite_child_cannot_restart() {
        let cfg = SchedulerConfig::parse(
            "SequentialLR(StepLR(step_size=5), ChainedScheduler(ExponentialLR(gamma=0.5)), milestones=[1])",
        )
        .unwrap();
        let e = simulate(&cfg, ParamGroups::new(vec![1.0], None), 1, None).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("ChainedScheduler: cannot be restarted"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("SequentialLR(StepLR(step_size=1), StepLR(step_size=2), milestones=[])", 1),
            "SequentialLR: expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers 2 and the number of milestones to be equal to 0"
        );
        assert_eq!(
            build_err("SequentialLR(StepLR(step_size=1), StepLR(step_size=2), StepLR(step_size=3), milestones=[5, 2])", 1),
            "SequentialLR: milestones must be non-decreasing, got [5, 2]"
        );
        assert_eq!(
            build_err("SequentialLR(StepLR(step_size=1))", 1),
            "SequentialLR: milestones is required (a list of integers)"
        );
    }
}
