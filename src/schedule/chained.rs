//! ChainedScheduler: steps every child in order on the same groups, each reading the lrs the
//! previous one left, so chainable (multiplicative) updates compose.

use super::base::{LrScheduler, ParamGroups};
use super::config::SchedulerConfig;
use super::error::ScheduleError;

const NAME: &str = "ChainedScheduler";

/// `ChainedScheduler(schedulers)`: no keyword arguments of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedSchedulerConfig {
    /// The chained schedulers, built in order on the same optimizer.
    pub schedulers: Vec<SchedulerConfig>,
}

impl ChainedSchedulerConfig {
    /// PyTorch's class name.
    pub const NAME: &'static str = NAME;
    /// It takes no keyword arguments, only child schedulers.
    pub const PARAMS: &'static [&'static str] = &[];

    /// Chains `schedulers`: every step steps each of them, in order.
    pub fn new(schedulers: Vec<SchedulerConfig>) -> Self {
        Self { schedulers }
    }

    /// The children's structure (their values are checked when each is built).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check_children(NAME, &self.schedulers)
    }

    /// Builds every child in order on `groups` (each running its initial step), then the chain.
    pub fn init(&self, groups: &mut ParamGroups) -> Result<ChainedScheduler, ScheduleError> {
        self.validate()?;
        let children = build_all(&self.schedulers, groups)?;
        ChainedScheduler::new(groups, children)
    }
}

/// A composite needs children, none of which may need a metric.
pub(crate) fn check_children(
    name: &str,
    children: &[SchedulerConfig],
) -> Result<(), ScheduleError> {
    if children.is_empty() {
        return Err(ScheduleError::param(
            name,
            "expects at least one child scheduler, but got none",
        ));
    }
    if let Some(i) = children.iter().position(SchedulerConfig::needs_metric) {
        return Err(ScheduleError::param(
            name,
            format!(
                "does not support ReduceLROnPlateau (its step needs a metric), but got one at index {i}"
            ),
        ));
    }
    Ok(())
}

/// Builds the children in order on the same groups, as one does in Python before passing them.
pub(crate) fn build_all(
    children: &[SchedulerConfig],
    groups: &mut ParamGroups,
) -> Result<Vec<Box<dyn LrScheduler>>, ScheduleError> {
    children.iter().map(|c| c.build(groups)).collect()
}

/// `torch.optim.lr_scheduler.ChainedScheduler`.
pub struct ChainedScheduler {
    children: Vec<Box<dyn LrScheduler>>,
    last_lr: Vec<f64>,
}

impl ChainedScheduler {
    /// `children` must already be built on `groups` (their constructors have stepped); unlike
    /// the other classes, this constructor does not step again.
    pub fn new(
        groups: &ParamGroups,
        children: Vec<Box<dyn LrScheduler>>,
    ) -> Result<Self, ScheduleError> {
        if children.is_empty() {
            return Err(ScheduleError::param(
                NAME,
                "expects at least one scheduler to be chained, but got no scheduler",
            ));
        }
        if let Some(i) = children.iter().position(|c| c.needs_metric()) {
            return Err(ScheduleError::param(
                NAME,
                format!(
                    "does not support ReduceLROnPlateau (its step needs a metric), but got one at index {i}"
                ),
            ));
        }
        Ok(Self {
            children,
            last_lr: groups.lr.clone(),
        })
    }

    /// The chained schedulers.
    pub fn children(&self) -> &[Box<dyn LrScheduler>] {
        &self.children
    }
}

impl LrScheduler for ChainedScheduler {
    fn step(
        &mut self,
        groups: &mut ParamGroups,
        _metric: Option<f64>,
    ) -> Result<(), ScheduleError> {
        for c in &mut self.children {
            c.step(groups, None)?;
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

    // initial_step: the default (a plain step of every child) is what PyTorch's inherited
    // `_initial_step` does: `_is_initial` is set on the chain, not on its children.

    fn undo_initial_step(&mut self) {
        for c in &mut self.children {
            c.undo_initial_step();
        }
    }

    fn restart_at_zero(&mut self, _groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        Err(ScheduleError::step(
            NAME,
            "cannot be restarted by SequentialLR at a milestone (PyTorch raises NotImplementedError: it has no get_lr)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::testutil::{assert_close, build_err, run1};

    #[test]
    fn composes_multiplicatively() {
        // Constant(0.5 until 2) then ×0.9 per step: 0.5, 0.45, 0.45*2*0.9 = 0.81, 0.729
        assert_close(
            &run1(
                "ChainedScheduler(ConstantLR(factor=0.5, total_iters=2), ExponentialLR(gamma=0.9))",
                3,
            ),
            &[0.5, 0.45, 0.81, 0.729],
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("ChainedScheduler()", 1),
            "ChainedScheduler: expects at least one child scheduler, but got none"
        );
        assert_eq!(
            build_err("ChainedScheduler(StepLR(step_size=1), ReduceLROnPlateau())", 1),
            "ChainedScheduler: does not support ReduceLROnPlateau (its step needs a metric), but got one at index 1"
        );
    }
}
