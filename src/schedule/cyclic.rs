//! CyclicLR (cyclical learning rates, optionally cycling momentum inversely).

use std::sync::Arc;

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::config::Params;
use super::error::ScheduleError;
use super::lambda::Formula;

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

/// Whether a custom `scale_fn` receives the cycle number or the iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    Cycle,
    Iterations,
}

/// A custom scaling policy (overrides `mode`).
#[derive(Clone)]
pub enum ScaleFn {
    /// A formula in `x`, e.g. `1/(2^(x-1))`.
    Formula(Arc<Formula>),
    /// A Rust closure.
    Func(Arc<dyn Fn(f64) -> f64 + Send + Sync>),
}

impl ScaleFn {
    fn eval(&self, x: f64) -> Result<f64, ScheduleError> {
        match self {
            Self::Formula(f) => f.eval(x),
            Self::Func(f) => Ok(f(x)),
        }
    }
}

/// The constructor arguments. `base_lr`, `max_lr`, `base_momentum` and `max_momentum` hold one
/// value (for every group) or one per group.
#[derive(Clone)]
pub struct CyclicParams {
    pub base_lr: Vec<f64>,
    pub max_lr: Vec<f64>,
    pub step_size_up: i64,
    /// `None`: the same as `step_size_up`.
    pub step_size_down: Option<i64>,
    pub mode: CyclicMode,
    pub gamma: f64,
    pub scale_fn: Option<ScaleFn>,
    pub scale_mode: ScaleMode,
    pub cycle_momentum: bool,
    pub base_momentum: Vec<f64>,
    pub max_momentum: Vec<f64>,
}

impl CyclicParams {
    /// PyTorch's defaults for everything but the required `base_lr` and `max_lr`.
    pub fn new(base_lr: f64, max_lr: f64) -> Self {
        Self {
            base_lr: vec![base_lr],
            max_lr: vec![max_lr],
            step_size_up: 2000,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
            scale_fn: None,
            scale_mode: ScaleMode::Cycle,
            cycle_momentum: true,
            base_momentum: vec![0.8],
            max_momentum: vec![0.9],
        }
    }
}

/// PyTorch's `_format_param` on an already-read vector.
pub(crate) fn per_group(
    sched: &str,
    name: &str,
    v: &[f64],
    n: usize,
) -> Result<Vec<f64>, ScheduleError> {
    match v.len() {
        1 => Ok(vec![v[0]; n]),
        len if len == n => Ok(v.to_vec()),
        len => Err(ScheduleError::param(
            sched,
            format!(
                "{name} must have the same length as optimizer.param_groups. {name} has {len} values, param_groups has {n}."
            ),
        )),
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
            return f.eval(x);
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
    pub fn new(groups: &mut ParamGroups, p: CyclicParams) -> Result<Self, ScheduleError> {
        groups.check(NAME)?;
        let n = groups.len();
        let err = |m: String| ScheduleError::param(NAME, m);
        let base_lrs = per_group(NAME, "base_lr", &p.base_lr, n)?;
        let max_lrs = per_group(NAME, "max_lr", &p.max_lr, n)?;
        if p.step_size_up < 1 {
            return Err(err(format!(
                "step_size_up must be a positive integer, got {}",
                p.step_size_up
            )));
        }
        if let Some(d) = p.step_size_down.filter(|d| *d < 0) {
            return Err(err(format!(
                "step_size_down must be a non-negative integer or None, got {d}"
            )));
        }
        if !(p.gamma.is_finite() && p.gamma > 0.0) {
            return Err(err(format!("gamma must be a number > 0, got {}", p.gamma)));
        }
        let up = p.step_size_up as f64;
        let down = p.step_size_down.map_or(up, |d| d as f64);
        let total_size = up + down;
        let momentum = if p.cycle_momentum {
            if groups.momentum.is_none() {
                return Err(err(
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
                        .to_string(),
                ));
            }
            let bases = per_group(NAME, "base_momentum", &p.base_momentum, n)?;
            let maxes = per_group(NAME, "max_momentum", &p.max_momentum, n)?;
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
        // Built-in modes fix the scale mode; only a custom scale_fn uses `scale_mode`.
        let scale_mode = match (&p.scale_fn, p.mode) {
            (Some(_), _) => p.scale_mode,
            (None, CyclicMode::ExpRange) => ScaleMode::Iterations,
            (None, _) => ScaleMode::Cycle,
        };
        let rule = CyclicRule {
            max_lrs,
            total_size,
            step_ratio: up / total_size,
            mode: p.mode,
            gamma: p.gamma,
            scale_fn: p.scale_fn,
            scale_mode,
            momentum,
        };
        let mut s = Sched::construct(groups, rule)?;
        // PyTorch assigns `self.base_lrs = base_lrs` only after the initial step, which therefore
        // used the groups' `initial_lr` (an earlier scheduler's, if there was one).
        s.st.base_lrs = base_lrs;
        Ok(s)
    }

    pub(crate) fn from_params(p: &Params, groups: &mut ParamGroups) -> Result<Self, ScheduleError> {
        let n = groups.len();
        let mode = match p.choice(
            "mode",
            "triangular",
            &["triangular", "triangular2", "exp_range"],
        ) {
            Ok(m) => match m.as_str() {
                "triangular2" => CyclicMode::Triangular2,
                "exp_range" => CyclicMode::ExpRange,
                _ => CyclicMode::Triangular,
            },
            // PyTorch ignores an invalid mode when scale_fn is given.
            Err(_) if p.get("scale_fn").is_some() => CyclicMode::Triangular,
            Err(e) => return Err(e),
        };
        let scale_fn = match p.get("scale_fn") {
            None => None,
            Some(serde_json::Value::String(s)) => {
                Some(ScaleFn::Formula(Arc::new(Formula::new(s, "x", NAME)?)))
            }
            Some(v) => {
                return Err(p.err(format!("scale_fn must be a formula string in x, got {v}")))
            }
        };
        let scale_mode = match p
            .choice("scale_mode", "cycle", &["cycle", "iterations"])?
            .as_str()
        {
            "iterations" => ScaleMode::Iterations,
            _ => ScaleMode::Cycle,
        };
        Self::new(
            groups,
            CyclicParams {
                base_lr: p.per_group("base_lr", None, n)?,
                max_lr: p.per_group("max_lr", None, n)?,
                step_size_up: p.int("step_size_up", 2000)?,
                step_size_down: p.opt_int("step_size_down")?,
                mode,
                gamma: p.float("gamma", 1.0)?,
                scale_fn,
                scale_mode,
                cycle_momentum: p.bool("cycle_momentum", true)?,
                base_momentum: p.per_group("base_momentum", Some(0.8), n)?,
                max_momentum: p.per_group("max_momentum", Some(0.9), n)?,
            },
        )
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
        let e = CyclicLR::new(&mut g, CyclicParams::new(0.1, 1.0))
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
