//! Optimizers with PyTorch's semantics, each a `candle_nn::Optimizer` with a `Params…`
//! struct in candle-nn's style (candle's own SGD has no momentum): [`Sgd`], [`Adam`],
//! [`AdamW`]. Their state lives in plain tensors, so cloning an optimizer snapshots it.

pub mod adam;
pub mod groups;
pub mod per_group;
pub mod sgd;

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Scope};

pub use adam::{Adam, AdamW, ParamsAdam, ParamsAdamW};
pub use groups::{GroupConfig, GroupLrs, GroupReport, GroupRule, Grouping, ParamGroup};
pub use per_group::PerGroup;
pub use sgd::{ParamsSgd, Sgd};

/// An optimizer whose momentum a scheduler may cycle (CyclicLR, OneCycleLR): SGD's momentum,
/// Adam's beta1.
pub trait Momentum {
    /// The momentum (or beta1) in force.
    fn momentum(&self) -> f64;
    /// Sets the momentum (or beta1) for the next steps.
    fn set_momentum(&mut self, momentum: f64);
}

/// Which optimizer and its hyper-parameters (what a report stores; the LR is kept apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`.
    Sgd(ParamsSgd),
    /// `torch.optim.Adam`.
    Adam(ParamsAdam),
    /// `torch.optim.AdamW` (decoupled weight decay; its default weight decay is 0.01).
    AdamW(ParamsAdamW),
}

impl OptimizerConfig {
    /// The names [`OptimizerConfig::from_parts`] accepts.
    pub const NAMES: [&'static str; 3] = ["sgd", "adam", "adamw"];

    /// From an optimizer's name and hyper-parameters; `weight_decay: None` takes PyTorch's
    /// default for that optimizer. Momentum and Nesterov apply to SGD only.
    pub fn from_parts(
        kind: &str,
        momentum: f64,
        nesterov: bool,
        weight_decay: Option<f64>,
        betas: (f64, f64),
        eps: f64,
    ) -> Result<Self> {
        let cfg = match kind.to_ascii_lowercase().as_str() {
            "sgd" => OptimizerConfig::Sgd(ParamsSgd {
                momentum,
                nesterov,
                weight_decay: weight_decay.unwrap_or(0.0),
                ..ParamsSgd::default()
            }),
            "adam" => OptimizerConfig::Adam(ParamsAdam {
                betas,
                eps,
                weight_decay: weight_decay.unwrap_or(0.0),
                ..ParamsAdam::default()
            }),
            "adamw" => OptimizerConfig::AdamW(ParamsAdamW {
                betas,
                eps,
                weight_decay: weight_decay.unwrap_or(0.01),
                ..ParamsAdamW::default()
            }),
            _ => {
                return Err(Error::setting(
                    Scope::Optimizer,
                    "kind",
                    kind,
                    "unknown optimizer (allowed: sgd, adam, adamw)",
                ))
            }
        };
        if nesterov && !matches!(cfg, OptimizerConfig::Sgd(_)) {
            return Err(Error::setting(
                Scope::Optimizer,
                "nesterov",
                true,
                format!("only SGD has Nesterov momentum, not {kind}"),
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every hyper-parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Sgd(c) => c.validate(),
            OptimizerConfig::Adam(c) => c.validate(),
            OptimizerConfig::AdamW(c) => c.validate(),
        }
    }

    /// `sgd`, `adam` or `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
        }
    }

    /// The weight decay in force.
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.weight_decay,
            OptimizerConfig::Adam(c) => c.weight_decay,
            OptimizerConfig::AdamW(c) => c.weight_decay,
        }
    }

    /// The momentum a scheduler may cycle: SGD's momentum or Adam's beta1.
    pub fn momentum(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.momentum,
            OptimizerConfig::Adam(c) => c.betas.0,
            OptimizerConfig::AdamW(c) => c.betas.0,
        }
    }

    /// The optimizer over `vars`, starting at `lr`.
    pub fn build(&self, vars: Vec<Var>, lr: f64) -> Result<AnyOptimizer> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => {
                AnyOptimizer::Sgd(Sgd::new(vars, ParamsSgd { lr, ..c.clone() })?)
            }
            OptimizerConfig::Adam(c) => {
                AnyOptimizer::Adam(Adam::new(vars, ParamsAdam { lr, ..c.clone() })?)
            }
            OptimizerConfig::AdamW(c) => {
                AnyOptimizer::AdamW(AdamW::new(vars, ParamsAdamW { lr, ..c.clone() })?)
            }
        })
    }
}

impl OptimizerConfig {
    /// The optimizer over a [`Grouping`]'s variables, starting at base LR `lr`: each group
    /// at its multiple of it, frozen variables never updated.
    pub fn build_grouped(&self, grouping: &Grouping, lr: f64) -> Result<AnyOptimizer> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => {
                AnyOptimizer::Sgd(Sgd::grouped(grouping, ParamsSgd { lr, ..c.clone() })?)
            }
            OptimizerConfig::Adam(c) => {
                AnyOptimizer::Adam(Adam::grouped(grouping, ParamsAdam { lr, ..c.clone() })?)
            }
            OptimizerConfig::AdamW(c) => {
                AnyOptimizer::AdamW(AdamW::grouped(grouping, ParamsAdamW { lr, ..c.clone() })?)
            }
        })
    }
}

fn check(field: &'static str, v: f64, ok: bool, allowed: &str) -> Result<()> {
    if ok && v.is_finite() {
        Ok(())
    } else {
        Err(Error::setting(Scope::Optimizer, field, v, allowed))
    }
}

/// A library error inside candle's `Optimizer` methods, which return candle's error.
fn to_candle(e: Error) -> candle_core::Error {
    match e {
        Error::Candle(c) => c,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

/// Any of lrfind's optimizers, behind one type (what the built-in pipeline holds).
#[derive(Debug, Clone)]
pub enum AnyOptimizer {
    /// [`Sgd`].
    Sgd(Sgd),
    /// [`Adam`].
    Adam(Adam),
    /// [`AdamW`].
    AdamW(AdamW),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            AnyOptimizer::Sgd($o) => $e,
            AnyOptimizer::Adam($o) => $e,
            AnyOptimizer::AdamW($o) => $e,
        }
    };
}

impl AnyOptimizer {
    /// One update with gradients aligned with the parameters (None: skipped).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        each!(self, o => o.step_grads(grads))
    }

    /// State tensors by name (for checkpoints), plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        match self {
            AnyOptimizer::Sgd(o) => (o.state_tensors(), 0),
            AnyOptimizer::Adam(o) => (o.state_tensors(), o.steps()),
            AnyOptimizer::AdamW(o) => (o.state_tensors(), o.steps()),
        }
    }

    /// Loads what [`AnyOptimizer::state`] saved.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        match self {
            AnyOptimizer::Sgd(o) => o.load_state(tensors),
            AnyOptimizer::Adam(o) => o.load_state(tensors, step),
            AnyOptimizer::AdamW(o) => o.load_state(tensors, step),
        }
    }
}

impl GroupLrs for AnyOptimizer {
    fn group_lrs(&self) -> Vec<f64> {
        each!(self, o => o.group_lrs())
    }

    fn set_group_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        each!(self, o => o.set_group_lrs(lrs))
    }
}

impl Momentum for AnyOptimizer {
    fn momentum(&self) -> f64 {
        each!(self, o => o.momentum())
    }

    fn set_momentum(&mut self, m: f64) {
        each!(self, o => o.set_momentum(m))
    }
}

impl Optimizer for AnyOptimizer {
    type Config = (OptimizerConfig, f64);

    fn new(vars: Vec<Var>, (config, lr): Self::Config) -> candle_core::Result<Self> {
        config.build(vars, lr).map_err(to_candle)
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<()> {
        each!(self, o => o.step(grads))
    }

    fn learning_rate(&self) -> f64 {
        each!(self, o => o.learning_rate())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        each!(self, o => o.set_learning_rate(lr))
    }
}

/// The parameter (mutable) and gradient slices of a CPU in-place op's operands: both must be
/// contiguous f32 of one length. Shared by the fused SGD and Adam updates.
pub(crate) fn f32_operands<'a>(
    op: &str,
    s1: &'a mut candle_core::CpuStorage,
    l1: &candle_core::Layout,
    s2: &'a candle_core::CpuStorage,
    l2: &candle_core::Layout,
) -> candle_core::Result<(&'a mut [f32], &'a [f32])> {
    use candle_core::CpuStorage::F32;
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        candle_core::bail!("{op}: non-contiguous operands");
    };
    let (F32(p), F32(g)) = (s1, s2) else {
        candle_core::bail!("{op}: f32 operands expected");
    };
    let (p, g) = (&mut p[a0..a1], &g[b0..b1]);
    if p.len() != g.len() {
        candle_core::bail!("{op}: operand lengths differ");
    }
    Ok((p, g))
}

/// Saved buffers keyed `"{prefix}.{index}"`, one per parameter; a missing one means that
/// parameter had no state yet (it never got a gradient), as in PyTorch.
fn load_buffers(tensors: &HashMap<String, Tensor>, prefix: &str, n: usize) -> Vec<Option<Tensor>> {
    (0..n)
        .map(|i| tensors.get(&format!("{prefix}.{i}")).cloned())
        .collect()
}

#[cfg(test)]
mod group_steps;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_parameters_are_validated_by_field() {
        let e = OptimizerConfig::from_parts("rmsprop", 0.0, false, None, (0.9, 0.999), 1e-8)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kind = rmsprop: unknown optimizer (allowed: sgd, adam, adamw)"
        );
        let e =
            OptimizerConfig::from_parts("sgd", 1.5, false, None, (0.9, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().starts_with("momentum = 1.5"), "{e}");
        let e =
            OptimizerConfig::from_parts("adam", 0.0, false, None, (1.0, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().starts_with("betas = 1"), "{e}");
        let e =
            OptimizerConfig::from_parts("adam", 0.0, true, None, (0.9, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().starts_with("nesterov = true"), "{e}");
        match OptimizerConfig::from_parts("AdamW", 0.0, false, None, (0.9, 0.999), 1e-8).unwrap() {
            OptimizerConfig::AdamW(c) => assert_eq!(c.weight_decay, 0.01),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_keep_their_optimizer_format() {
        let c = OptimizerConfig::from_parts("adamw", 0.0, false, None, (0.9, 0.999), 1e-8).unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"kind":"adamw","betas":[0.9,0.999],"eps":1e-8,"weight_decay":0.01}"#
        );
        let c = OptimizerConfig::from_parts("sgd", 0.9, true, None, (0.9, 0.999), 1e-8).unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"kind":"sgd","momentum":0.9,"dampening":0.0,"nesterov":true,"weight_decay":0.0}"#
        );
    }
}
