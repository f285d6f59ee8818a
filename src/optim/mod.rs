//! Optimizers with PyTorch's semantics, on candle's `Optimizer` trait (candle's own SGD has
//! no momentum). Their state is immutable tensors, so cloning an optimizer snapshots it.

pub mod adam;
pub mod sgd;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

/// `--optimizer` and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    Adam(AdamConfig),
    /// Adam with decoupled weight decay (PyTorch's AdamW; its default weight decay is 0.01).
    AdamW(AdamConfig),
}

impl OptimizerConfig {
    /// From the command-line flags; `weight_decay: None` takes PyTorch's default for the kind.
    pub fn from_flags(
        kind: &str,
        momentum: f64,
        nesterov: bool,
        weight_decay: Option<f64>,
        betas: (f64, f64),
        eps: f64,
    ) -> Result<Self> {
        let wd = |default: f64| weight_decay.unwrap_or(default);
        let cfg = match kind.to_ascii_lowercase().as_str() {
            "sgd" => OptimizerConfig::Sgd(SgdConfig {
                momentum,
                dampening: 0.0,
                nesterov,
                weight_decay: wd(0.0),
            }),
            "adam" => OptimizerConfig::Adam(AdamConfig {
                betas,
                eps,
                weight_decay: wd(0.0),
            }),
            "adamw" => OptimizerConfig::AdamW(AdamConfig {
                betas,
                eps,
                weight_decay: wd(0.01),
            }),
            _ => {
                return Err(Error::invalid(format!(
                    "--optimizer {kind}: unknown optimizer (allowed: sgd, adam, adamw)"
                )))
            }
        };
        if nesterov && !matches!(cfg, OptimizerConfig::Sgd(_)) {
            return Err(Error::invalid(format!(
                "--nesterov: only SGD has Nesterov momentum, not {kind}"
            )));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Sgd(c) => c.validate(),
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.validate(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
        }
    }

    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.weight_decay,
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.weight_decay,
        }
    }

    /// The momentum a scheduler may cycle: SGD's momentum or Adam's beta1.
    pub fn momentum(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.momentum,
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.betas.0,
        }
    }

    pub fn build(&self, vars: Vec<Var>, lr: f64) -> Result<AnyOptimizer> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => AnyOptimizer::Sgd(Sgd::new(vars, c.clone(), lr)),
            OptimizerConfig::Adam(c) => AnyOptimizer::Adam(Adam::new(vars, c.clone(), lr, false)),
            OptimizerConfig::AdamW(c) => AnyOptimizer::Adam(Adam::new(vars, c.clone(), lr, true)),
        })
    }
}

fn check(name: &str, v: f64, ok: bool, allowed: &str) -> Result<()> {
    if ok && v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(format!("--{name} {v}: {allowed}")))
    }
}

/// Any of our optimizers, behind one type the trainer and finder hold.
#[derive(Debug, Clone)]
pub enum AnyOptimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl AnyOptimizer {
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            AnyOptimizer::Sgd(o) => o.step(grads),
            AnyOptimizer::Adam(o) => o.step(grads),
        }
    }

    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        match self {
            AnyOptimizer::Sgd(o) => o.step_grads(grads),
            AnyOptimizer::Adam(o) => o.step_grads(grads),
        }
    }

    pub fn learning_rate(&self) -> f64 {
        match self {
            AnyOptimizer::Sgd(o) => o.lr,
            AnyOptimizer::Adam(o) => o.lr,
        }
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            AnyOptimizer::Sgd(o) => o.lr = lr,
            AnyOptimizer::Adam(o) => o.lr = lr,
        }
    }

    /// SGD momentum or Adam beta1 (what CyclicLR / OneCycleLR cycle).
    pub fn momentum(&self) -> f64 {
        match self {
            AnyOptimizer::Sgd(o) => o.config.momentum,
            AnyOptimizer::Adam(o) => o.config.betas.0,
        }
    }

    pub fn set_momentum(&mut self, m: f64) {
        match self {
            AnyOptimizer::Sgd(o) => o.config.momentum = m,
            AnyOptimizer::Adam(o) => o.config.betas.0 = m,
        }
    }

    /// State tensors by name (for checkpoints), plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        match self {
            AnyOptimizer::Sgd(o) => (o.state_tensors(), 0),
            AnyOptimizer::Adam(o) => (o.state_tensors(), o.t),
        }
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        match self {
            AnyOptimizer::Sgd(o) => o.load_state(tensors),
            AnyOptimizer::Adam(o) => {
                o.t = step;
                o.load_state(tensors)
            }
        }
    }
}

impl candle_nn::Optimizer for AnyOptimizer {
    type Config = (OptimizerConfig, f64);

    fn new(vars: Vec<Var>, (config, lr): Self::Config) -> candle_core::Result<Self> {
        config
            .build(vars, lr)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        AnyOptimizer::step(self, grads).map_err(|e| match e {
            Error::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }

    fn learning_rate(&self) -> f64 {
        AnyOptimizer::learning_rate(self)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        AnyOptimizer::set_learning_rate(self, lr)
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
mod tests {
    use super::*;

    #[test]
    fn flags_are_validated() {
        let e = OptimizerConfig::from_flags("rmsprop", 0.0, false, None, (0.9, 0.999), 1e-8)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--optimizer rmsprop: unknown optimizer (allowed: sgd, adam, adamw)"
        );
        let e =
            OptimizerConfig::from_flags("sgd", 1.5, false, None, (0.9, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().starts_with("--momentum 1.5"), "{e}");
        let e =
            OptimizerConfig::from_flags("adam", 0.0, false, None, (1.0, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().starts_with("--betas 1"), "{e}");
        let e =
            OptimizerConfig::from_flags("adam", 0.0, true, None, (0.9, 0.999), 1e-8).unwrap_err();
        assert!(e.to_string().contains("--nesterov"), "{e}");
        match OptimizerConfig::from_flags("AdamW", 0.0, false, None, (0.9, 0.999), 1e-8).unwrap() {
            OptimizerConfig::AdamW(c) => assert_eq!(c.weight_decay, 0.01),
            other => panic!("{other:?}"),
        }
    }
}
