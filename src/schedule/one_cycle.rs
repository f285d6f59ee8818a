//! OneCycleLR (the 1cycle policy). Not chainable: it recomputes from values it stores in the
//! param groups (`initial_lr`, `max_lr`, `min_lr`, `max_momentum`, `base_momentum`).

use std::f64::consts::PI;

use super::base::{div, BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::params::{
    check_last_epoch, scheduler_config, Bool, Choice, Float, Int, OneOf, Opt, PerGroup,
    StrictFloat, StrictInt,
};

const NAME: &str = "OneCycleLR";

/// `anneal_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anneal {
    /// Cosine annealing (PyTorch's `'cos'`).
    Cos,
    /// Linear annealing (PyTorch's `'linear'`).
    Linear,
}

impl Anneal {
    fn apply(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

impl Choice for Anneal {
    const ALL: &'static [(&'static str, Self)] = &[("cos", Self::Cos), ("linear", Self::Linear)];
}

scheduler_config! {
    /// `OneCycleLR(optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
    /// pct_start=0.3, anneal_strategy='cos', cycle_momentum=True, base_momentum=0.85,
    /// max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
    /// last_epoch=-1)`. Give `total_steps` or `epochs` and `steps_per_epoch` (Python ints), and
    /// `pct_start` as a Python float, as PyTorch checks.
    pub struct OneCycleLRConfig for "OneCycleLR" {
        /// The peak lr, for every group or one per group.
        max_lr: PerGroup as PerGroup,
        ;
        /// Steps in the cycle.
        total_steps: Option<i64> as Opt<StrictInt> = None,
        /// With `steps_per_epoch`, instead of `total_steps`.
        epochs: Option<i64> as Opt<StrictInt> = None,
        /// With `epochs`, instead of `total_steps`.
        steps_per_epoch: Option<i64> as Opt<StrictInt> = None,
        /// Fraction of the cycle spent increasing the lr.
        pct_start: f64 as StrictFloat = 0.3,
        /// 'cos' or 'linear'.
        anneal_strategy: Anneal as OneOf<Anneal> = Anneal::Cos,
        /// Cycle momentum inversely to the lr.
        cycle_momentum: bool as Bool = true,
        /// The low end of the momentum cycle.
        base_momentum: PerGroup as PerGroup = PerGroup::All(0.85),
        /// The high end of the momentum cycle.
        max_momentum: PerGroup as PerGroup = PerGroup::All(0.95),
        /// initial_lr = max_lr / div_factor.
        div_factor: f64 as Float = 25.0,
        /// min_lr = initial_lr / final_div_factor.
        final_div_factor: f64 as Float = 1e4,
        /// A third phase annihilating the lr (fast.ai's schedule is two-phase).
        three_phase: bool as Bool = false,
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl OneCycleLRConfig {
    /// `total_steps`, or `epochs * steps_per_epoch`.
    pub fn planned_steps(&self) -> Result<i64, ScheduleError> {
        let err = |m: String| ScheduleError::param(NAME, m);
        match (self.total_steps, self.epochs, self.steps_per_epoch) {
            (Some(t), _, _) => {
                if t <= 0 {
                    return Err(err(format!(
                        "total_steps must be a positive integer, got {t}"
                    )));
                }
                Ok(t)
            }
            (None, Some(e), Some(s)) => {
                if e <= 0 {
                    return Err(err(format!("epochs must be a positive integer, got {e}")));
                }
                if s <= 0 {
                    return Err(err(format!(
                        "steps_per_epoch must be a positive integer, got {s}"
                    )));
                }
                e.checked_mul(s)
                    .ok_or_else(|| err(format!("epochs * steps_per_epoch overflows ({e} * {s})")))
            }
            _ => Err(err(
                "You must define either total_steps OR (epochs AND steps_per_epoch)".to_string(),
            )),
        }
    }

    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let err = |m: String| ScheduleError::param(NAME, m);
        self.planned_steps()?;
        if !(0.0..=1.0).contains(&self.pct_start) {
            return Err(err(format!(
                "pct_start must be a float between 0 and 1, got {}",
                self.pct_start
            )));
        }
        if !(self.div_factor.is_finite() && self.div_factor > 0.0) {
            return Err(err(format!(
                "div_factor must be > 0, got {}",
                self.div_factor
            )));
        }
        if !(self.final_div_factor.is_finite() && self.final_div_factor > 0.0) {
            return Err(err(format!(
                "final_div_factor must be > 0, got {}",
                self.final_div_factor
            )));
        }
        check_last_epoch(NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<OneCycleLR, ScheduleError> {
        groups.check(NAME)?;
        self.validate()?;
        let n = groups.len();
        let err = |m: String| ScheduleError::param(NAME, m);
        let total_steps = self.planned_steps()?;
        let total = total_steps as f64;
        let pct_start = self.pct_start;
        let phase = |end_step, start_lr, end_lr, start_momentum, end_momentum| Phase {
            end_step,
            start_lr,
            end_lr,
            start_momentum,
            end_momentum,
        };
        use Key::*;
        let phases = if self.three_phase {
            vec![
                phase(
                    pct_start * total - 1.0,
                    InitialLr,
                    MaxLr,
                    MaxMomentum,
                    BaseMomentum,
                ),
                phase(
                    2.0 * pct_start * total - 2.0,
                    MaxLr,
                    InitialLr,
                    BaseMomentum,
                    MaxMomentum,
                ),
                phase(total - 1.0, InitialLr, MinLr, MaxMomentum, MaxMomentum),
            ]
        } else {
            vec![
                phase(
                    pct_start * total - 1.0,
                    InitialLr,
                    MaxLr,
                    MaxMomentum,
                    BaseMomentum,
                ),
                phase(total - 1.0, MaxLr, MinLr, BaseMomentum, MaxMomentum),
            ]
        };
        let max_lrs = self.max_lr.expand(NAME, "max_lr", n)?;
        let momentum = if self.cycle_momentum {
            if groups.momentum.is_none() {
                return Err(err(
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
                        .to_string(),
                ));
            }
            let maxes = self.max_momentum.expand(NAME, "max_momentum", n)?;
            let bases = self.base_momentum.expand(NAME, "base_momentum", n)?;
            Some((bases, maxes))
        } else {
            None
        };
        // Overwrite (not setdefault) initial_lr, and store max_lr / min_lr in the groups.
        for (i, max_lr) in max_lrs.iter().enumerate() {
            let initial = max_lr / self.div_factor;
            groups.initial_lr[i] = Some(initial);
            groups.max_lr[i] = Some(*max_lr);
            groups.min_lr[i] = Some(initial / self.final_div_factor);
        }
        if let (Some((bases, maxes)), Some(m)) = (&momentum, groups.momentum.as_mut()) {
            m.clone_from(maxes);
            groups.max_momentum = maxes.iter().map(|x| Some(*x)).collect();
            groups.base_momentum = bases.iter().map(|x| Some(*x)).collect();
        }
        let rule = OneCycleRule {
            total_steps,
            phases,
            anneal: self.anneal_strategy,
            cycle_momentum: self.cycle_momentum,
        };
        Sched::construct(groups, rule)
    }
}

/// Which group entry a phase starts or ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    InitialLr,
    MaxLr,
    MinLr,
    MaxMomentum,
    BaseMomentum,
}

fn read(g: &ParamGroups, key: Key, i: usize) -> Result<f64, ScheduleError> {
    let v = match key {
        Key::InitialLr => g.initial_lr[i],
        Key::MaxLr => g.max_lr[i],
        Key::MinLr => g.min_lr[i],
        Key::MaxMomentum => g.max_momentum[i],
        Key::BaseMomentum => g.base_momentum[i],
    };
    v.ok_or_else(|| {
        ScheduleError::step(
            NAME,
            format!("param group {i} has no {key:?} (KeyError in PyTorch)"),
        )
    })
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    end_step: f64,
    start_lr: Key,
    end_lr: Key,
    start_momentum: Key,
    end_momentum: Key,
}

/// The per-iteration rule.
pub struct OneCycleRule {
    total_steps: i64,
    phases: Vec<Phase>,
    anneal: Anneal,
    cycle_momentum: bool,
}

impl OneCycleRule {
    /// The number of steps in the cycle.
    pub fn total_steps(&self) -> i64 {
        self.total_steps
    }
}

impl Rule for OneCycleRule {
    fn name(&self) -> &'static str {
        NAME
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let step_num = st.last_epoch;
        if step_num > self.total_steps {
            return Err(ScheduleError::step(
                NAME,
                format!(
                    "Tried to step {step_num} times. The specified number of total steps is {}",
                    self.total_steps
                ),
            ));
        }
        let step = step_num as f64;
        let mut lrs = Vec::with_capacity(g.len());
        for i in 0..g.len() {
            let mut start_step = 0.0;
            let last = self.phases.len() - 1;
            for (k, phase) in self.phases.iter().enumerate() {
                if step <= phase.end_step || k == last {
                    let pct = div(NAME, step - start_step, phase.end_step - start_step)?;
                    let lr = self.anneal.apply(
                        read(g, phase.start_lr, i)?,
                        read(g, phase.end_lr, i)?,
                        pct,
                    );
                    lrs.push(lr);
                    if self.cycle_momentum {
                        let m = self.anneal.apply(
                            read(g, phase.start_momentum, i)?,
                            read(g, phase.end_momentum, i)?,
                            pct,
                        );
                        if let Some(slot) = g.momentum.as_mut().and_then(|v| v.get_mut(i)) {
                            *slot = m;
                        }
                    }
                    break;
                }
                start_step = phase.end_step;
            }
        }
        Ok(lrs)
    }
}

/// `torch.optim.lr_scheduler.OneCycleLR`.
pub type OneCycleLR = Sched<OneCycleRule>;

impl Sched<OneCycleRule> {
    /// `OneCycleLR(optimizer, ...)` from `config`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(groups: &mut ParamGroups, config: &OneCycleLRConfig) -> Result<Self, ScheduleError> {
        config.init(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, trace};
    use crate::schedule::{simulate, SchedulerConfig};

    #[test]
    fn linear_two_phase_and_past_end() {
        // initial 0.5, max 1, min 0.1; phase ends at steps 1 and 3:
        // 0.5, 1.0, 0.55, 0.1, then PyTorch extrapolates at step 4: -0.35.
        let (lr, _) = trace(
            "OneCycleLR(max_lr=1, total_steps=4, pct_start=0.5, anneal_strategy=linear, div_factor=2, final_div_factor=5, cycle_momentum=False)",
            &[9.0],
            4,
        );
        assert_close(&lr.concat(), &[0.5, 1.0, 0.55, 0.1, -0.35]);
    }

    #[test]
    fn stepping_past_total_steps_fails() {
        let cfg = SchedulerConfig::parse("OneCycleLR(max_lr=1, total_steps=4)").unwrap();
        let mut g = ParamGroups::new(vec![0.1], Some(vec![0.9]));
        let mut s = cfg.build(&mut g).unwrap();
        for _ in 0..4 {
            s.step(&mut g, None).unwrap();
        }
        assert_eq!(
            s.step(&mut g, None).unwrap_err().to_string(),
            "OneCycleLR: Tried to step 5 times. The specified number of total steps is 4"
        );
    }

    #[test]
    fn writes_groups_and_cycles_momentum() {
        let cfg = SchedulerConfig::parse(
            "OneCycleLR(max_lr=[1.0, 2.0], epochs=2, steps_per_epoch=5, three_phase=True)",
        )
        .unwrap();
        let mut g = ParamGroups::new(vec![0.1, 0.1], Some(vec![0.9, 0.9]));
        let _ = cfg.build(&mut g).unwrap();
        assert_eq!(g.initial_lr, vec![Some(0.04), Some(0.08)]);
        assert_eq!(g.max_lr, vec![Some(1.0), Some(2.0)]);
        assert_eq!(g.min_lr, vec![Some(0.04 / 1e4), Some(0.08 / 1e4)]);
        assert_close(&g.lr, &[0.04, 0.08]);
        assert_eq!(g.momentum, Some(vec![0.95, 0.95]));
        // cos phase 1 ends at 0.3 * 10 - 1 = 2: momentum reaches base_momentum 0.85.
        let t = simulate(&cfg, ParamGroups::new(vec![0.1], Some(vec![0.9])), 2, None);
        let e = t.err().unwrap().to_string();
        assert_eq!(e, "OneCycleLR: max_lr must have the same length as optimizer.param_groups. max_lr has 2 values, param_groups has 1.");
        let (lr, m) = trace("OneCycleLR(max_lr=1.0, total_steps=10)", &[0.1], 2);
        assert_close(&[lr[2][0], m[2][0]], &[1.0, 0.85]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("OneCycleLR(max_lr=1)", 1),
            "OneCycleLR: You must define either total_steps OR (epochs AND steps_per_epoch)"
        );
        assert_eq!(
            build_err("OneCycleLR(max_lr=1, total_steps=0)", 1),
            "OneCycleLR: total_steps must be a positive integer, got 0"
        );
        assert_eq!(
            build_err("OneCycleLR(max_lr=1, total_steps=10, pct_start=1.5)", 1),
            "OneCycleLR: pct_start must be a float between 0 and 1, got 1.5"
        );
        assert_eq!(
            build_err(
                "OneCycleLR(max_lr=1, total_steps=10, anneal_strategy=exp)",
                1
            ),
            "OneCycleLR: anneal_strategy must be one of 'cos', 'linear', got 'exp'"
        );
        // pct_start * total_steps = 1: phase 1 has zero length → ZeroDivisionError in PyTorch.
        assert_eq!(
            build_err("OneCycleLR(max_lr=1, total_steps=10, pct_start=0.1)", 1),
            "OneCycleLR: float division by zero (PyTorch raises ZeroDivisionError here)"
        );
    }
}
