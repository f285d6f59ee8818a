//! `torch.optim.SGD`: momentum, dampening, Nesterov, L2 weight decay.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::check;
use super::groups::{GroupLrs, Grouping, Layout};
use crate::error::{Error, Result, Scope};

/// `torch.optim.SGD`'s hyper-parameters, with PyTorch's names and defaults.
///
/// `lr` is where a run starts; schedules and the range test change it through
/// `candle_nn::Optimizer::set_learning_rate`. It is not saved in reports (their LR lives
/// elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamsSgd {
    /// Learning rate.
    #[serde(skip, default = "default_lr")]
    pub lr: f64,
    /// Momentum factor in [0, 1); 0 = plain SGD.
    pub momentum: f64,
    /// Dampening of the momentum's gradient term.
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and no dampening).
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

fn default_lr() -> f64 {
    1e-3
}

impl Default for ParamsSgd {
    fn default() -> Self {
        Self {
            lr: default_lr(),
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl ParamsSgd {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        check(
            "lr",
            self.lr,
            self.lr >= 0.0,
            "must be a finite learning rate >= 0",
        )?;
        check(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "must be in [0, 1)",
        )?;
        check(
            "dampening",
            self.dampening,
            (0.0..=1.0).contains(&self.dampening),
            "must be in [0, 1]",
        )?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "must be >= 0",
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::setting(
                Scope::Optimizer,
                "nesterov",
                true,
                format!(
                    "needs momentum > 0 and zero dampening (got momentum {}, dampening {})",
                    self.momentum, self.dampening
                ),
            ));
        }
        Ok(())
    }
}

/// `torch.optim.SGD` on candle: momentum, dampening, Nesterov, L2 weight decay, with
/// PyTorch's update rule. Cloning it snapshots its state (momentum buffers).
#[derive(Debug, Clone)]
pub struct Sgd {
    vars: Vec<Var>,
    params: ParamsSgd,
    /// Momentum buffers, created on the first step as in PyTorch (`buf = g`).
    bufs: Vec<Option<Tensor>>,
    /// Each variable's group (LR, weight decay) or none (frozen).
    layout: Layout,
}

impl candle_nn::Optimizer for Sgd {
    type Config = ParamsSgd;

    fn new(vars: Vec<Var>, params: ParamsSgd) -> candle_core::Result<Self> {
        params.validate().map_err(super::to_candle)?;
        let bufs = vec![None; vars.len()];
        let layout = Layout::single(vars.len(), params.lr);
        Ok(Self {
            vars,
            params,
            bufs,
            layout,
        })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let g: Vec<Option<Tensor>> = self.vars.iter().map(|v| grads.get(v).cloned()).collect();
        self.step_grads(&g).map_err(super::to_candle)
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    /// Sets the base LR: each group trains at `lr` × its multiplier.
    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        self.layout.set_base(lr);
    }
}

impl GroupLrs for Sgd {
    fn group_lrs(&self) -> Vec<f64> {
        self.layout.lrs().to_vec()
    }

    fn set_group_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        self.layout.set_lrs(lrs)?;
        self.params.lr = self.layout.base();
        Ok(())
    }
}

impl super::Momentum for Sgd {
    fn momentum(&self) -> f64 {
        self.params.momentum
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.params.momentum = momentum;
    }
}

impl Sgd {
    /// SGD over a [`Grouping`]'s variables: each group at its multiple of `params.lr`, frozen
    /// variables never updated and given no momentum buffer.
    pub fn grouped(grouping: &Grouping, params: ParamsSgd) -> Result<Self> {
        params.validate()?;
        let vars = grouping.vars();
        Ok(Self {
            bufs: vec![None; vars.len()],
            layout: grouping.layout(params.lr),
            vars,
            params,
        })
    }

    /// The hyper-parameters in force (with the current LR and momentum).
    pub fn params(&self) -> &ParamsSgd {
        &self.params
    }

    /// One update with gradients aligned with the parameters (None: no gradient, skipped).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        let c = &self.params;
        for (i, ((var, buf), g)) in self
            .vars
            .iter()
            .zip(self.bufs.iter_mut())
            .zip(grads)
            .enumerate()
        {
            let Some(g) = g else { continue };
            // Frozen: no update and no state, whatever gradient came.
            let Some(lr) = self.layout.lr(i) else {
                continue;
            };
            let weight_decay = self.layout.weight_decay(i, c.weight_decay);
            // Detached: a buffer that kept its autograd history would keep every earlier
            // step's tensors alive.
            let p = var.as_tensor().detach();
            let g = g.detach();
            let mut g = if weight_decay != 0.0 {
                (g + (&p * weight_decay)?)?
            } else {
                g
            };
            if c.momentum != 0.0 {
                let b = match buf.take() {
                    None => g.clone(),
                    Some(b) => ((b * c.momentum)? + (&g * (1.0 - c.dampening))?)?,
                };
                g = if c.nesterov {
                    (g + (&b * c.momentum)?)?
                } else {
                    b.clone()
                };
                *buf = Some(b);
            }
            axpy(var, -lr, &g)?;
        }
        Ok(())
    }

    /// Momentum buffers by name (`momentum_buffer.{i}`), for checkpoints.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        self.bufs
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.as_ref()
                    .map(|b| (format!("momentum_buffer.{i}"), b.clone()))
            })
            .collect()
    }

    /// Loads buffers saved by [`Sgd::state_tensors`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.bufs = super::load_buffers(tensors, "momentum_buffer", self.vars.len());
        Ok(())
    }
}

/// `var += alpha · g`. On the CPU in place in one pass (the generic form allocates two
/// temporaries and copies back: three passes over every weight, each step).
pub(crate) fn axpy(var: &Var, alpha: f64, g: &Tensor) -> Result<()> {
    let p = var.as_tensor();
    if p.device().is_cpu()
        && p.dtype() == candle_core::DType::F32
        && p.is_contiguous()
        && p.shape() == g.shape()
    {
        let g = g.contiguous()?;
        p.inplace_op2(&g, &Axpy(alpha as f32))?;
    } else {
        var.set(&(p.detach() + (g * alpha)?)?)?;
    }
    Ok(())
}

struct Axpy(f32);

impl candle_core::InplaceOp2 for Axpy {
    fn name(&self) -> &'static str {
        "axpy"
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let (p, g) = super::f32_operands("axpy", s1, l1, s2, l2)?;
        for (x, y) in p.iter_mut().zip(g) {
            *x += self.0 * y;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    /// Reference from PyTorch 2.x:
    /// ```python
    /// w = torch.tensor([1.0, -2.0], requires_grad=True)
    /// opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    /// for _ in range(3):
    ///     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
    /// ```
    /// By hand: g = 2w + 0.01w = 2.01w. Step 1: buf = g, d = g + 0.9 buf = 1.9 g.
    #[test]
    fn nesterov_momentum_weight_decay_match_pytorch_by_hand() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = ParamsSgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            ..ParamsSgd::default()
        };
        let mut opt = Sgd::new(vec![w.clone()], cfg).unwrap();
        // Hand-rolled reference in f64 of the same update rule.
        let mut p = [1.0f64, -2.0];
        let mut buf: Option<[f64; 2]> = None;
        for _ in 0..3 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            let g = [2.01 * p[0], 2.01 * p[1]];
            let b = match buf {
                None => g,
                Some(b) => [0.9 * b[0] + g[0], 0.9 * b[1] + g[1]],
            };
            buf = Some(b);
            for i in 0..2 {
                p[i] -= 0.1 * (g[i] + 0.9 * b[i]);
            }
        }
        let got = w.to_vec1::<f32>().unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-6, "{got:?} vs {p:?}");
        }
        // After step 1, w = w0·(1 - 0.1·1.9·2.01) = w0·0.6181: a hand value for the first step.
        assert!((0.6181f64.powi(1) - (1.0 - 0.1 * 1.9 * 2.01)).abs() < 1e-12);
    }

    #[test]
    fn plain_sgd_is_p_minus_lr_g() {
        let w = Var::new(&[3.0f32], &Device::Cpu).unwrap();
        let cfg = ParamsSgd {
            lr: 0.25,
            ..ParamsSgd::default()
        };
        let mut opt = Sgd::new(vec![w.clone()], cfg).unwrap();
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert_eq!(w.to_vec1::<f32>().unwrap(), vec![3.0 - 0.25 * 6.0]);
    }
}
