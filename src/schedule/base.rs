//! The optimizer state schedulers touch, the scheduler trait, and PyTorch's `LRScheduler`
//! base-class bookkeeping (`last_epoch`, `_step_count`, `_initial_step`, `_update_lr`).

use super::error::ScheduleError;

/// The optimizer state a scheduler reads and writes: PyTorch's `param_groups` reduced to the
/// keys that `torch.optim.lr_scheduler` touches. Index `i` of every vector is param group `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroups {
    /// `group["lr"]`.
    pub lr: Vec<f64>,
    /// `group["initial_lr"]`: `None` until the first scheduler's constructor does
    /// `group.setdefault("initial_lr", group["lr"])` (OneCycleLR overwrites it).
    pub initial_lr: Vec<Option<f64>>,
    /// SGD's `group["momentum"]` or Adam's `group["betas"][0]`; `None` if the optimizer has
    /// neither (then `cycle_momentum=True` is an error, as in PyTorch).
    pub momentum: Option<Vec<f64>>,
    /// `group["max_lr"]`, written by OneCycleLR and read back by it at every step.
    pub max_lr: Vec<Option<f64>>,
    /// `group["min_lr"]`, written by OneCycleLR.
    pub min_lr: Vec<Option<f64>>,
    /// `group["max_momentum"]`, written by CyclicLR / OneCycleLR when cycling momentum.
    pub max_momentum: Vec<Option<f64>>,
    /// `group["base_momentum"]`, written by CyclicLR / OneCycleLR when cycling momentum.
    pub base_momentum: Vec<Option<f64>>,
}

impl ParamGroups {
    /// One group per entry of `lrs`; `momentum` (one value per group) for SGD's momentum or
    /// Adam's beta1, `None` for optimizers without either.
    pub fn new(lrs: Vec<f64>, momentum: Option<Vec<f64>>) -> Self {
        let n = lrs.len();
        Self {
            lr: lrs,
            initial_lr: vec![None; n],
            momentum,
            max_lr: vec![None; n],
            min_lr: vec![None; n],
            max_momentum: vec![None; n],
            base_momentum: vec![None; n],
        }
    }

    /// Number of param groups.
    pub fn len(&self) -> usize {
        self.lr.len()
    }

    /// Whether there are no param groups.
    pub fn is_empty(&self) -> bool {
        self.lr.is_empty()
    }

    /// Rejects inconsistent hand-built groups before a scheduler indexes into them.
    pub(crate) fn check(&self, scheduler: &str) -> Result<(), ScheduleError> {
        let n = self.len();
        if n == 0 {
            return Err(ScheduleError::param(
                scheduler,
                "the optimizer has no param groups",
            ));
        }
        let extra = [
            ("initial_lr", self.initial_lr.len()),
            ("max_lr", self.max_lr.len()),
            ("min_lr", self.min_lr.len()),
            ("max_momentum", self.max_momentum.len()),
            ("base_momentum", self.base_momentum.len()),
            ("momentum", self.momentum.as_ref().map_or(n, Vec::len)),
        ];
        for (name, len) in extra {
            if len != n {
                return Err(ScheduleError::param(
                    scheduler,
                    format!("ParamGroups.{name} has {len} entries but there are {n} param groups"),
                ));
            }
        }
        Ok(())
    }
}

/// A learning-rate schedule. Every built-in implements it, and a custom schedule written in Rust
/// can plug in here (only `step`, `name` and `last_lr` are required).
pub trait LrScheduler: Send {
    /// PyTorch's `scheduler.step()`; `metric` is only read by ReduceLROnPlateau-like schedulers.
    fn step(&mut self, groups: &mut ParamGroups, metric: Option<f64>) -> Result<(), ScheduleError>;

    /// PyTorch's class name.
    fn name(&self) -> &str;

    /// `get_last_lr()`: the learning rates this scheduler last set.
    fn last_lr(&self) -> &[f64];

    /// Whether `step` needs a metric (ReduceLROnPlateau); composites reject such children.
    fn needs_metric(&self) -> bool {
        false
    }

    /// `_initial_step()`: the constructor's step, redone by SequentialLR on its first child.
    fn initial_step(&mut self, groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        self.step(groups, None)
    }

    /// SequentialLR's `recursive_undo`: step `last_epoch` back by one (composites recurse).
    fn undo_initial_step(&mut self) {}

    /// SequentialLR reaching a milestone: `_update_lr(0)`, i.e. `last_epoch = 0` and the closed
    /// form where the class has one, else `get_lr()`.
    fn restart_at_zero(&mut self, _groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        Err(ScheduleError::step(
            self.name(),
            "cannot be restarted by SequentialLR at a milestone (it has no get_lr)",
        ))
    }
}

/// The state PyTorch's `LRScheduler.__init__` sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseState {
    /// Each group's `initial_lr`: the lr the schedule starts from.
    pub base_lrs: Vec<f64>,
    /// PyTorch's `last_epoch`: -1 before construction, 0 after the initial step, +1 per step.
    pub last_epoch: i64,
    /// PyTorch's `_step_count`: calls to `step()`, the initial one included.
    pub step_count: u64,
    /// True only inside `_initial_step` (PyTorch's `_is_initial`).
    pub is_initial: bool,
    /// The lrs the last step set (`get_last_lr()`).
    pub last_lr: Vec<f64>,
}

impl BaseState {
    /// `group.setdefault("initial_lr", group["lr"])`, then `base_lrs = [initial_lr...]`.
    pub(crate) fn attach(groups: &mut ParamGroups) -> Self {
        let mut base_lrs = Vec::with_capacity(groups.len());
        for (init, lr) in groups.initial_lr.iter_mut().zip(&groups.lr) {
            base_lrs.push(*init.get_or_insert(*lr));
        }
        Self {
            base_lrs,
            last_epoch: -1,
            step_count: 0,
            is_initial: false,
            last_lr: groups.lr.clone(),
        }
    }
}

/// The per-class part of a chainable scheduler: PyTorch's `get_lr` and `_get_closed_form_lr`.
pub trait Rule: Send {
    /// PyTorch's class name, for messages.
    fn name(&self) -> &'static str;
    /// `get_lr()`, reading `st.last_epoch` (already advanced) and the groups' current lrs.
    fn get_lr(
        &mut self,
        st: &BaseState,
        groups: &mut ParamGroups,
    ) -> Result<Vec<f64>, ScheduleError>;
    /// `_get_closed_form_lr()`, for the classes that have one.
    fn closed_form(&self, _st: &BaseState) -> Option<Result<Vec<f64>, ScheduleError>> {
        None
    }
}

/// A scheduler built on PyTorch's `LRScheduler` base class: base-class state plus a [`Rule`].
/// The public scheduler types (`StepLR`, `LambdaLR`, ...) are aliases of this.
pub struct Sched<R: Rule> {
    pub(crate) st: BaseState,
    pub(crate) rule: R,
}

impl<R: Rule> Sched<R> {
    /// `LRScheduler.__init__(optimizer, last_epoch=-1)`, including `_initial_step()`.
    pub(crate) fn construct(groups: &mut ParamGroups, rule: R) -> Result<Self, ScheduleError> {
        groups.check(rule.name())?;
        let st = BaseState::attach(groups);
        let mut s = Self { st, rule };
        s.initial_step(groups)?;
        Ok(s)
    }

    /// The schedule's `last_epoch` (0 right after construction).
    pub fn last_epoch(&self) -> i64 {
        self.st.last_epoch
    }

    /// `base_lrs`: the groups' `initial_lr` when this scheduler was built.
    pub fn base_lrs(&self) -> &[f64] {
        &self.st.base_lrs
    }

    /// The rule's parameters.
    pub fn rule(&self) -> &R {
        &self.rule
    }

    fn apply(&mut self, groups: &mut ParamGroups, values: Vec<f64>) {
        for (lr, v) in groups.lr.iter_mut().zip(values) {
            *lr = v;
        }
        self.st.last_lr = groups.lr.clone();
    }
}

impl<R: Rule> LrScheduler for Sched<R> {
    fn step(
        &mut self,
        groups: &mut ParamGroups,
        _metric: Option<f64>,
    ) -> Result<(), ScheduleError> {
        self.st.step_count += 1;
        self.st.last_epoch += 1;
        let values = self.rule.get_lr(&self.st, groups)?;
        self.apply(groups, values);
        Ok(())
    }

    fn name(&self) -> &str {
        self.rule.name()
    }

    fn last_lr(&self) -> &[f64] {
        &self.st.last_lr
    }

    fn initial_step(&mut self, groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        self.st.step_count = 0;
        self.st.is_initial = true;
        let r = self.step(groups, None);
        self.st.is_initial = false;
        r
    }

    fn undo_initial_step(&mut self) {
        self.st.last_epoch -= 1;
    }

    fn restart_at_zero(&mut self, groups: &mut ParamGroups) -> Result<(), ScheduleError> {
        self.st.last_epoch = 0;
        let values = match self.rule.closed_form(&self.st) {
            Some(v) => v?,
            None => self.rule.get_lr(&self.st, groups)?,
        };
        self.apply(groups, values);
        Ok(())
    }
}

/// Python's float `/`, which raises ZeroDivisionError instead of producing inf/NaN.
pub(crate) fn div(scheduler: &str, a: f64, b: f64) -> Result<f64, ScheduleError> {
    if b == 0.0 {
        Err(ScheduleError::step(
            scheduler,
            "float division by zero (PyTorch raises ZeroDivisionError here)",
        ))
    } else {
        Ok(a / b)
    }
}

/// Python's `bisect.bisect_right`, step for step, so unsorted input behaves the same too.
pub(crate) fn bisect_right(a: &[i64], x: i64) -> usize {
    let (mut lo, mut hi) = (0usize, a.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if x < a[mid] {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Python's `a // b` for integers (floor division); `b` is checked non-zero by the caller.
pub(crate) fn floor_div(a: i64, b: i64) -> i64 {
    let q = a / b;
    if a % b != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisect_matches_python() {
        assert_eq!(bisect_right(&[5, 20], 4), 0);
        assert_eq!(bisect_right(&[5, 20], 5), 1);
        assert_eq!(bisect_right(&[5, 20], 25), 2);
        assert_eq!(bisect_right(&[5, 5, 7], 5), 2);
        assert_eq!(bisect_right(&[], 3), 0);
    }

    #[test]
    fn floor_div_matches_python() {
        assert_eq!(floor_div(7, 2), 3);
        assert_eq!(floor_div(-7, 2), -4);
        assert_eq!(floor_div(7, -2), -4);
        assert_eq!(floor_div(-7, -2), 3);
        assert_eq!(floor_div(0, 5), 0);
    }

    #[test]
    fn setdefault_initial_lr_keeps_first() {
        let mut g = ParamGroups::new(vec![0.1, 0.2], None);
        let a = BaseState::attach(&mut g);
        g.lr = vec![0.5, 0.6];
        let b = BaseState::attach(&mut g);
        assert_eq!(a.base_lrs, vec![0.1, 0.2]);
        assert_eq!(b.base_lrs, vec![0.1, 0.2]);
    }

    #[test]
    fn inconsistent_groups_rejected() {
        let g = ParamGroups::new(vec![0.1, 0.2], Some(vec![0.9]));
        let e = g.check("StepLR").unwrap_err();
        assert_eq!(
            e.to_string(),
            "StepLR: ParamGroups.momentum has 1 entries but there are 2 param groups"
        );
        let e = ParamGroups::new(vec![], None).check("StepLR").unwrap_err();
        assert_eq!(e.to_string(), "StepLR: the optimizer has no param groups");
    }
}
