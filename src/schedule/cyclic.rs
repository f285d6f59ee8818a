//! CyclicLR (cyclical learning rates, optionally cycling momentum inversely).

use std::sync::Arc;

use serde_json::Value;

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::formula::Formula;
use super::params::{
    bad, check_last_epoch, scheduler_config, Bool, Choice, Float, Int, Kind, OneOf, Opt, PerGroup,
    Str,
};

const NAME: &str = "CyclicLR";

/// The built-in amplitude policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CyclicMode {
    /// No amplitude scaling.
    Triangular,
    /// Amplitude halves every cycle.
    Triangular2,
    /// Amplitude scaled by `gamma ** iteration`.
    ExpRange,
}

impl Choice for CyclicMode {
    const ALL: &'static [(&'static str, Self)] = &[
        ("triangular", Self::Triangular),
        ("triangular2", Self::Triangular2),
        ("exp_range", Self::ExpRange),
    ];
}

/// Whether a custom `scale_fn` receives the cycle number or the iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    /// The cycle number, from 1 (PyTorch's `'cycle'`).
    Cycle,
    /// The iteration, `last_epoch` (PyTorch's `'iterations'`).
    Iterations,
}

impl Choice for ScaleMode {
    const ALL: &'static [(&'static str, Self)] =
        &[("cycle", Self::Cycle), ("iterations", Self::Iterations)];
}

/// A custom scaling policy (overrides `mode`).
#[derive(Clone)]
pub enum ScaleFn {
    /// A formula in `x`, e.g. `1/(2**(x-1))`.
    Formula(Arc<Formula>),
    /// A Rust closure (not written back to JSON).
    Func(Arc<dyn Fn(f64) -> f64 + Send + Sync>),
}

impl std::fmt::Debug for ScaleFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Formula(x) => write!(f, "Formula({:?})", x.source()),
            Self::Func(_) => f.write_str("Func(..)"),
        }
    }
}

impl PartialEq for ScaleFn {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Formula(a), Self::Formula(b)) => a == b,
            (Self::Func(a), Self::Func(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl ScaleFn {
    /// PyTorch passes an int: the cycle number (`math.floor`) or the iteration.
    fn eval(&self, x: i64) -> Result<f64, ScheduleError> {
        match self {
            Self::Formula(f) => f.eval(x).map_err(|e| ScheduleError::step(NAME, e)),
            Self::Func(f) => Ok(f(x as f64)),
        }
    }
}

impl Kind for ScaleFn {
    type Out = ScaleFn;
    const WHAT: &'static str = "a formula string in x";
    fn read(key: &str, v: &Value) -> Result<ScaleFn, String> {
        let s = v.as_str().ok_or_else(|| bad(key, Self::WHAT, v))?;
        Formula::new(s, "x")
            .map(|f| ScaleFn::Formula(Arc::new(f)))
            .map_err(|e| format!("{key}: {e}"))
    }
    fn write(out: &ScaleFn) -> Value {
        match out {
            ScaleFn::Formula(f) => Value::String(f.source().to_string()),
            ScaleFn::Func(_) => Value::Null,
        }
    }
}

scheduler_config! {
    /// `CyclicLR(optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
    /// mode='triangular', gamma=1.0, scale_fn=None, scale_mode='cycle', cycle_momentum=True,
    /// base_momentum=0.8, max_momentum=0.9, last_epoch=-1)`.
    pub struct CyclicLRConfig for "CyclicLR" {
        /// The low end of the cycle, for every group or one per group.
        base_lr: PerGroup as PerGroup,
        /// The high end of the cycle, for every group or one per group.
        max_lr: PerGroup as PerGroup,
        ;
        /// Iterations from base_lr up to max_lr.
        step_size_up: i64 as Int = 2000,
        /// Iterations back down; `None` is `step_size_up`.
        step_size_down: Option<i64> as Opt<Int> = None,
        /// 'triangular', 'triangular2' or 'exp_range' (ignored with a `scale_fn`).
        mode: String as Str = "triangular".to_string(),
        /// exp_range's factor per iteration.
        gamma: f64 as Float = 1.0,
        /// A custom amplitude policy, a formula in `x`.
        scale_fn: Option<ScaleFn> as Opt<ScaleFn> = None,
        /// What a custom `scale_fn` receives: the cycle number or the iteration.
        scale_mode: ScaleMode as OneOf<ScaleMode> = ScaleMode::Cycle,
        /// Cycle momentum inversely to the lr.
        cycle_momentum: bool as Bool = true,
        /// The low end of the momentum cycle.
        base_momentum: PerGroup as PerGroup = PerGroup::All(0.8),
        /// The high end of the momentum cycle.
        max_momentum: PerGroup as PerGroup = PerGroup::All(0.9),
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl CyclicLRConfig {
    /// The built-in mode; an invalid one is ignored when `scale_fn` is given, as in PyTorch.
    fn cyclic_mode(&self) -> Result<CyclicMode, ScheduleError> {
        match OneOf::<CyclicMode>::read("mode", &Value::String(self.mode.clone())) {
            Ok(m) => Ok(m),
            Err(_) if self.scale_fn.is_some() => Ok(CyclicMode::Triangular),
            Err(e) => Err(ScheduleError::param(NAME, e)),
        }
    }

    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let err = |m: String| ScheduleError::param(NAME, m);
        self.cyclic_mode()?;
        if self.step_size_up < 1 {
            return Err(err(format!(
                "step_size_up must be a positive integer, got {}",
                self.step_size_up
            )));
        }
        if let Some(d) = self.step_size_down.filter(|d| *d < 0) {
            return Err(err(format!(
                "step_size_down must be a non-negative integer or None, got {d}"
            )));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(err(format!(
                "gamma must be a number > 0, got {}",
                self.gamma
            )));
        }
        check_last_epoch(NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<CyclicLR, ScheduleError> {
        groups.check(NAME)?;
        self.validate()?;
        let n = groups.len();
        let err = |m: String| ScheduleError::param(NAME, m);
        let base_lrs = self.base_lr.expand(NAME, "base_lr", n)?;
        let max_lrs = self.max_lr.expand(NAME, "max_lr", n)?;
        let up = self.step_size_up as f64;
        let down = self.step_size_down.map_or(up, |d| d as f64);
        let total_size = up + down;
        let momentum = if self.cycle_momentum {
            if groups.momentum.is_none() {
                return Err(err(
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
                        .to_string(),
                ));
            }
            let bases = self.base_momentum.expand(NAME, "base_momentum", n)?;
            let maxes = self.max_momentum.expand(NAME, "max_momentum", n)?;
            Some((bases, maxes))
        } else {
            None
        };
        // The constructor sets every group's lr to base_lr before the base class runs, and the
        // momentum to max_momentum.
        groups.lr.clone_from(&base_lrs);
        if let (Some((bases, maxes)), Some(m)) = (&momentum, groups.momentum.as_mut()) {
            m.clone_from(maxes);
            groups.max_momentum = maxes.iter().map(|x| Some(*x)).collect();
            groups.base_momentum = bases.iter().map(|x| Some(*x)).collect();
        }
        let mode = self.cyclic_mode()?;
        // Built-in modes fix the scale mode; only a custom scale_fn uses `scale_mode`.
        let scale_mode = match (&self.scale_fn, mode) {
            (Some(_), _) => self.scale_mode,
            (None, CyclicMode::ExpRange) => ScaleMode::Iterations,
            (None, _) => ScaleMode::Cycle,
        };
        let rule = CyclicRule {
            max_lrs,
            total_size,
            step_ratio: up / total_size,
            mode,
            gamma: self.gamma,
            scale_fn: self.scale_fn.clone(),
            scale_mode,
            momentum,
        };
        let mut s = Sched::construct(groups, rule)?;
        // PyTorch assigns `self.base_lrs = base_lrs` only after the initial step, which therefore
        // used the groups' `initial_lr` (an earlier scheduler's, if there was one).
        s.st.base_lrs = base_lrs;
        Ok(s)
    }
}

/// The per-iteration rule.
pub struct CyclicRule {
    max_lrs: Vec<f64>,
    total_size: f64,
    step_ratio: f64,
    mode: CyclicMode,
    gamma: f64,
    scale_fn: Option<ScaleFn>,
    scale_mode: ScaleMode,
    /// `(base_momentums, max_momentums)` when cycling momentum.
    momentum: Option<(Vec<f64>, Vec<f64>)>,
}

impl CyclicRule {
    fn scale(&self, x: f64) -> Result<f64, ScheduleError> {
        if let Some(f) = &self.scale_fn {
            return f.eval(x as i64);
        }
        Ok(match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2.0f64.powf(x - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(x),
        })
    }
}

impl Rule for CyclicRule {
    fn name(&self) -> &'static str {
        NAME
    }
    fn get_lr(&mut self, st: &BaseState, g: &mut ParamGroups) -> Result<Vec<f64>, ScheduleError> {
        let e = st.last_epoch as f64;
        let cycle = (1.0 + e / self.total_size).floor();
        let x = 1.0 + e / self.total_size - cycle;
        let scale_factor = if x <= self.step_ratio {
            x / self.step_ratio
        } else {
            (x - 1.0) / (self.step_ratio - 1.0)
        };
        let s = self.scale(match self.scale_mode {
            ScaleMode::Cycle => cycle,
            ScaleMode::Iterations => e,
        })?;
        let lrs = st
            .base_lrs
            .iter()
            .zip(&self.max_lrs)
            .map(|(base, max)| base + (max - base) * scale_factor * s)
            .collect();
        if let (Some((bases, maxes)), Some(m)) = (&self.momentum, g.momentum.as_mut()) {
            for ((slot, base), max) in m.iter_mut().zip(bases).zip(maxes) {
                *slot = max - (max - base) * scale_factor * s;
            }
        }
        Ok(lrs)
    }
}

/// `torch.optim.lr_scheduler.CyclicLR`.
pub type CyclicLR = Sched<CyclicRule>;

impl Sched<CyclicRule> {
    /// `CyclicLR(optimizer, ...)` from `config`: validates, then runs the initial step on
    /// `groups`.
    pub fn new(groups: &mut ParamGroups, config: &CyclicLRConfig) -> Result<Self, ScheduleError> {
        config.init(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, run, trace};

    #[test]
    fn triangular_with_momentum() {
        // up 2, down 2: scale 0, .5, 1, .5, 0 → lr 1 + 2s, momentum 0.9 - 0.1s
        let (lr, m) = trace("CyclicLR(base_lr=1, max_lr=3, step_size_up=2)", &[0.5], 4);
        let lr: Vec<f64> = lr.into_iter().map(|r| r[0]).collect();
        let m: Vec<f64> = m.into_iter().map(|r| r[0]).collect();
        assert_close(&lr, &[1.0, 2.0, 3.0, 2.0, 1.0]);
        assert_close(&m, &[0.9, 0.85, 0.8, 0.85, 0.9]);
    }

    #[test]
    fn triangular2_and_exp_range() {
        // Second cycle's amplitude is halved: peak 1 + 2/2 = 2.
        let r = run(
            "CyclicLR(base_lr=1, max_lr=3, step_size_up=1, step_size_down=1, mode=triangular2, cycle_momentum=False)",
            &[1.0],
            3,
        );
        assert_close(&r.concat(), &[1.0, 3.0, 1.0, 2.0]);
        // exp_range: 1 + 2 * s * 0.5^e at e = 1: 1 + 2 * 1 * 0.5 = 2
        let r = run(
            "CyclicLR(base_lr=1, max_lr=3, step_size_up=1, mode='exp_range', gamma=0.5, cycle_momentum=false)",
            &[1.0],
            1,
        );
        assert_close(&r.concat(), &[1.0, 2.0]);
    }

    #[test]
    fn custom_scale_fn_formula() {
        // scale_fn(x) = 1/x on the cycle number: peaks 3, then 1 + 2/2 = 2.
        let r = run(
            "CyclicLR(base_lr=1, max_lr=3, step_size_up=1, scale_fn='1/x', cycle_momentum=False)",
            &[1.0],
            3,
        );
        assert_close(&r.concat(), &[1.0, 3.0, 1.0, 2.0]);
    }

    #[test]
    fn initial_row_uses_earlier_initial_lr() {
        // PyTorch sets base_lrs only after its initial step, which used the groups' initial_lr
        // (0.1, set by ExponentialLR) instead of base_lr.
        let r = run(
            "ChainedScheduler(ExponentialLR(gamma=0.5), CyclicLR(base_lr=1, max_lr=3, step_size_up=2, cycle_momentum=False))",
            &[0.1],
            2,
        );
        assert_close(&r.concat(), &[0.1, 2.0, 3.0]);
    }

    #[test]
    fn errors() {
        let mut g = ParamGroups::new(vec![0.1], None);
        let e = CyclicLR::new(&mut g, &CyclicLRConfig::new(0.1.into(), 1.0.into()))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "CyclicLR: optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
        );
        assert_eq!(
            build_err("CyclicLR(base_lr=[0.1, 0.2, 0.3], max_lr=1)", 2),
            "CyclicLR: base_lr must have the same length as optimizer.param_groups. base_lr has 3 values, param_groups has 2."
        );
        assert_eq!(
            build_err("CyclicLR(base_lr=0.1, max_lr=1, step_size_up=0)", 1),
            "CyclicLR: step_size_up must be a positive integer, got 0"
        );
        assert_eq!(
            build_err("CyclicLR(base_lr=0.1, max_lr=1, mode=saw)", 1),
            "CyclicLR: mode must be one of 'triangular', 'triangular2', 'exp_range', got 'saw'"
        );
        assert_eq!(
            build_err("CyclicLR(max_lr=1)", 1),
            "CyclicLR: base_lr is required (a number or a list with one per param group)"
        );
    }
}
