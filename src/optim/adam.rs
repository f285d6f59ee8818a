//! `torch.optim.Adam` and `AdamW` (decoupled weight decay).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::check;
use super::groups::{GroupLrs, Grouping, Layout};
use crate::error::Result;

macro_rules! adam_params {
    ($name:ident, $opt:literal, $wd:literal, $wd_doc:literal) => {
        #[doc = concat!("`torch.optim.", $opt, "`'s hyper-parameters, with PyTorch's names and defaults.")]
        ///
        /// `lr` is where a run starts; schedules and the range test change it through
        /// `candle_nn::Optimizer::set_learning_rate`. It is not saved in reports.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Learning rate.
            #[serde(skip, default = "default_lr")]
            pub lr: f64,
            /// Decay rates of the first and second moment estimates, each in [0, 1).
            pub betas: (f64, f64),
            /// Added to the denominator for numerical stability.
            pub eps: f64,
            #[doc = $wd_doc]
            pub weight_decay: f64,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    lr: default_lr(),
                    betas: (0.9, 0.999),
                    eps: 1e-8,
                    weight_decay: $wd,
                }
            }
        }

        impl $name {
            /// Checks every field; the error names the field, the value and what is allowed.
            pub fn validate(&self) -> Result<()> {
                validate(self.lr, self.betas, self.eps, self.weight_decay)
            }
        }
    };
}

adam_params!(ParamsAdam, "Adam", 0.0, "L2 penalty added to the gradient.");
adam_params!(
    ParamsAdamW,
    "AdamW",
    0.01,
    "Decoupled weight decay: weights shrink by `lr · weight_decay` each step."
);

fn default_lr() -> f64 {
    1e-3
}

fn validate(lr: f64, (b1, b2): (f64, f64), eps: f64, weight_decay: f64) -> Result<()> {
    check("lr", lr, lr >= 0.0, "must be a finite learning rate >= 0")?;
    check(
        "betas",
        b1,
        (0.0..1.0).contains(&b1),
        "beta1 must be in [0, 1)",
    )?;
    check(
        "betas",
        b2,
        (0.0..1.0).contains(&b2),
        "beta2 must be in [0, 1)",
    )?;
    check("eps", eps, eps >= 0.0, "must be >= 0")?;
    check(
        "weight_decay",
        weight_decay,
        weight_decay >= 0.0,
        "must be >= 0",
    )
}

/// First and second moments of one parameter. On the CPU they are plain vectors updated in
/// place by one fused pass; elsewhere immutable tensors replaced each step. Either way a
/// clone of the optimizer is a snapshot of its state.
#[derive(Debug, Clone)]
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Device { m: Tensor, v: Tensor },
}

/// `torch.optim.Adam` on candle, with PyTorch's update rule, fused into one in-place pass
/// per parameter on the CPU. Cloning it snapshots its state (moments and step count).
#[derive(Debug, Clone)]
pub struct Adam(Core);

/// `torch.optim.AdamW` (decoupled weight decay) on candle; see [`Adam`].
#[derive(Debug, Clone)]
pub struct AdamW(Core);

/// What Adam and AdamW share; they differ only in how weight decay acts.
#[derive(Debug, Clone)]
struct Core {
    vars: Vec<Var>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    t: u64,
    moments: Vec<Option<Moments>>,
    /// Each variable's group (LR, weight decay) or none (frozen).
    layout: Layout,
}

/// The per-step constants of the update.
#[derive(Clone, Copy)]
struct Coeffs {
    b1: f64,
    b2: f64,
    eps: f64,
    step_size: f64,
    bc2_sqrt: f64,
    /// L2 penalty added to the gradient (Adam) …
    l2: f64,
    /// … or decoupled decay factor applied to the weights (AdamW).
    decay: f64,
}

fn on_host(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == candle_core::DType::F32 && var.is_contiguous()
}

macro_rules! adam_optimizer {
    ($opt:ident, $params:ident, $decoupled:literal) => {
        impl candle_nn::Optimizer for $opt {
            type Config = $params;

            fn new(vars: Vec<Var>, p: $params) -> candle_core::Result<Self> {
                p.validate().map_err(super::to_candle)?;
                let layout = Layout::single(vars.len(), p.lr);
                Ok(Self::from_parts(vars, &p, layout))
            }

            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                let g: Vec<Option<Tensor>> =
                    self.0.vars.iter().map(|v| grads.get(v).cloned()).collect();
                self.0.step_grads(&g).map_err(super::to_candle)
            }

            fn learning_rate(&self) -> f64 {
                self.0.lr
            }

            /// Sets the base LR: each group trains at `lr` × its multiplier.
            fn set_learning_rate(&mut self, lr: f64) {
                self.0.lr = lr;
                self.0.layout.set_base(lr);
            }
        }

        impl GroupLrs for $opt {
            fn group_lrs(&self) -> Vec<f64> {
                self.0.layout.lrs().to_vec()
            }

            fn set_group_lrs(&mut self, lrs: &[f64]) -> Result<()> {
                self.0.layout.set_lrs(lrs)?;
                self.0.lr = self.0.layout.base();
                Ok(())
            }
        }

        impl super::Momentum for $opt {
            /// beta1, which CyclicLR and OneCycleLR cycle.
            fn momentum(&self) -> f64 {
                self.0.betas.0
            }

            fn set_momentum(&mut self, momentum: f64) {
                self.0.betas.0 = momentum;
            }
        }

        impl $opt {
            /// The optimizer over a [`Grouping`]'s variables: each group at its multiple of
            /// `p.lr` (and its own weight decay, if set), frozen variables never updated and
            /// given no moments.
            pub fn grouped(grouping: &Grouping, p: $params) -> Result<Self> {
                p.validate()?;
                Ok(Self::from_parts(grouping.vars(), &p, grouping.layout(p.lr)))
            }

            /// A fresh optimizer (no moments, step 0) over `vars`, laid out in groups.
            fn from_parts(vars: Vec<Var>, p: &$params, layout: Layout) -> Self {
                let n = vars.len();
                Self(Core {
                    vars,
                    lr: p.lr,
                    betas: p.betas,
                    eps: p.eps,
                    weight_decay: p.weight_decay,
                    decoupled: $decoupled,
                    t: 0,
                    moments: vec![None; n],
                    layout,
                })
            }

            /// The hyper-parameters in force (with the current LR and beta1).
            pub fn params(&self) -> $params {
                $params {
                    lr: self.0.lr,
                    betas: self.0.betas,
                    eps: self.0.eps,
                    weight_decay: self.0.weight_decay,
                }
            }

            /// One update with gradients aligned with the parameters (None: skipped).
            pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
                self.0.step_grads(grads)
            }

            /// Steps taken so far (PyTorch's `state["step"]`).
            pub fn steps(&self) -> u64 {
                self.0.t
            }

            /// Moments by name (`exp_avg.{i}`, `exp_avg_sq.{i}`), for checkpoints.
            pub fn state_tensors(&self) -> HashMap<String, Tensor> {
                self.0.state_tensors()
            }

            /// Loads moments saved by `state_tensors` and the step count.
            pub fn load_state(
                &mut self,
                tensors: &HashMap<String, Tensor>,
                steps: u64,
            ) -> Result<()> {
                self.0.t = steps;
                self.0.load_state(tensors)
            }
        }
    };
}

adam_optimizer!(Adam, ParamsAdam, false);
adam_optimizer!(AdamW, ParamsAdamW, true);

impl Core {
    /// One update with gradients aligned with the parameters (None: no gradient, skipped).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.t += 1;
        let (b1, b2) = self.betas;
        // PyTorch reads the group's current beta1 here too, so momentum cycling affects it.
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.t as i32)).sqrt();
        for (i, ((var, state), g)) in self
            .vars
            .iter()
            .zip(&mut self.moments)
            .zip(grads)
            .enumerate()
        {
            let Some(g) = g else { continue };
            // Frozen: no update and no moments, whatever gradient came.
            let Some(lr) = self.layout.lr(i) else {
                continue;
            };
            let wd = self.layout.weight_decay(i, self.weight_decay);
            let c = Coeffs {
                b1,
                b2,
                eps: self.eps,
                step_size: lr / bc1,
                bc2_sqrt,
                l2: if self.decoupled { 0.0 } else { wd },
                decay: if self.decoupled { 1.0 - lr * wd } else { 1.0 },
            };
            // Detached: moments that kept their autograd history would keep every earlier
            // step's tensors alive.
            let g = g.detach();
            if state.is_none() {
                *state = Some(if on_host(var) {
                    let n = var.elem_count();
                    Moments::Host {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    }
                } else {
                    Moments::Device {
                        m: var.zeros_like()?,
                        v: var.zeros_like()?,
                    }
                });
            }
            match state {
                Some(Moments::Host { m, v }) => {
                    let op = FusedAdam {
                        c,
                        m: std::cell::RefCell::new(m),
                        v: std::cell::RefCell::new(v),
                    };
                    var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
                }
                Some(Moments::Device { m, v }) => {
                    let p = var.as_tensor().detach();
                    let g = if c.l2 != 0.0 { (g + (&p * c.l2)?)? } else { g };
                    let p = if c.decay != 1.0 { (p * c.decay)? } else { p };
                    *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
                    *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let denom = v.sqrt()?.affine(1.0 / c.bc2_sqrt, c.eps)?;
                    let update = (m.div(&denom)? * c.step_size)?;
                    var.set(&(p - update)?)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (state, var)) in self.moments.iter().zip(&self.vars).enumerate() {
            let (m, v) = match state {
                Some(Moments::Host { m, v }) => {
                    let dims = var.dims();
                    match (
                        Tensor::from_slice(m, dims, &candle_core::Device::Cpu),
                        Tensor::from_slice(v, dims, &candle_core::Device::Cpu),
                    ) {
                        (Ok(m), Ok(v)) => (m, v),
                        _ => continue,
                    }
                }
                Some(Moments::Device { m, v }) => (m.clone(), v.clone()),
                None => continue,
            };
            out.insert(format!("exp_avg.{i}"), m);
            out.insert(format!("exp_avg_sq.{i}"), v);
        }
        out
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let m = super::load_buffers(tensors, "exp_avg", self.vars.len());
        let v = super::load_buffers(tensors, "exp_avg_sq", self.vars.len());
        self.moments = Vec::with_capacity(self.vars.len());
        for ((var, m), v) in self.vars.iter().zip(m).zip(v) {
            self.moments.push(match (m, v) {
                (Some(m), Some(v)) if on_host(var) => Some(Moments::Host {
                    m: m.flatten_all()?
                        .to_dtype(candle_core::DType::F32)?
                        .to_vec1()?,
                    v: v.flatten_all()?
                        .to_dtype(candle_core::DType::F32)?
                        .to_vec1()?,
                }),
                (Some(m), Some(v)) => Some(Moments::Device {
                    m: m.to_device(var.device())?,
                    v: v.to_device(var.device())?,
                }),
                _ => None,
            });
        }
        Ok(())
    }
}

/// One pass over a CPU parameter: weight decay, both moments and the update, in place
/// (the tensor form takes thirteen passes and as many allocations).
struct FusedAdam<'a> {
    c: Coeffs,
    m: std::cell::RefCell<&'a mut Vec<f32>>,
    v: std::cell::RefCell<&'a mut Vec<f32>>,
}

impl candle_core::InplaceOp2 for FusedAdam<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let (p, g) = super::f32_operands("fused-adam", s1, l1, s2, l2)?;
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        if p.len() != m.len() || p.len() != v.len() {
            candle_core::bail!("fused-adam: moments and parameter lengths differ");
        }
        let c = self.c;
        // f64 coefficients, f32 storage: the same arithmetic the tensor path does.
        let (b1, b2) = (c.b1 as f32, c.b2 as f32);
        let (ob1, ob2) = ((1.0 - c.b1) as f32, (1.0 - c.b2) as f32);
        let (inv_bc2, eps, step, l2, decay) = (
            (1.0 / c.bc2_sqrt) as f32,
            c.eps as f32,
            c.step_size as f32,
            c.l2 as f32,
            c.decay as f32,
        );
        let update = |(((p, g), m), v): (((&mut f32, &f32), &mut f32), &mut f32)| {
            let gi = *g + l2 * *p;
            *m = b1 * *m + ob1 * gi;
            *v = b2 * *v + ob2 * gi * gi;
            *p = *p * decay - step * *m / (v.sqrt() * inv_bc2 + eps);
        };
        // Chunks of 16k run on the current pool's threads (the learner's, one per core);
        // zipped iterators let the compiler vectorise the sqrt and division.
        const CHUNK: usize = 1 << 14;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                p.iter_mut()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .for_each(update)
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    /// `torch.optim.Adam(lr=0.1, weight_decay=0.01)` on loss = Σw², written out in f64 from
    /// PyTorch's documented update (m, v, bias corrections, eps outside the sqrt).
    /// The first step is exactly lr·sign(g) up to eps: 1 → 0.9, -2 → -1.9.
    #[test]
    fn adam_matches_pytorchs_update_rule() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = ParamsAdam {
            lr: 0.1,
            weight_decay: 0.01,
            ..ParamsAdam::default()
        };
        let mut opt = Adam::new(vec![w.clone()], cfg).unwrap();
        let (mut p, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=5 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            for i in 0..2 {
                let g = 2.0 * p[i] + 0.01 * p[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let denom = v[i].sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8;
                p[i] -= 0.1 / (1.0 - 0.9f64.powi(t)) * m[i] / denom;
            }
            if t == 1 {
                assert!((p[0] - 0.9).abs() < 1e-7 && (p[1] + 1.9).abs() < 1e-7);
            }
        }
        let got = w.to_vec1::<f32>().unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-5, "{got:?} vs {p:?}");
        }
    }

    #[test]
    fn state_keeps_no_autograd_history() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = ParamsAdam {
            lr: 0.1,
            weight_decay: 0.1,
            ..ParamsAdam::default()
        };
        let mut opt = Adam::new(vec![w.clone()], cfg).unwrap();
        for _ in 0..3 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let state = opt.state_tensors();
        assert_eq!(state.len(), 2);
        // A tracked moment would chain every earlier step's tensors (a leak of ~1 GB an epoch).
        assert!(state.values().all(|t| !t.track_op()));
    }

    #[test]
    fn saved_state_loads_back_and_continues_identically() {
        let run = |resume: bool| {
            let w = Var::new(&[0.5f32, -1.5, 2.0], &Device::Cpu).unwrap();
            let cfg = ParamsAdamW {
                lr: 0.05,
                betas: (0.8, 0.99),
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            };
            let mut opt = AdamW::new(vec![w.clone()], cfg.clone()).unwrap();
            let step = |o: &mut AdamW| {
                let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
                o.step(&loss.backward().unwrap()).unwrap();
            };
            step(&mut opt);
            step(&mut opt);
            if resume {
                let (state, t) = (opt.state_tensors(), opt.steps());
                opt = AdamW::new(vec![w.clone()], cfg).unwrap();
                opt.load_state(&state, t).unwrap();
            }
            step(&mut opt);
            w.to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn adamw_decays_weights_even_with_zero_gradient() {
        let w = Var::new(&[2.0f32], &Device::Cpu).unwrap();
        let cfg = ParamsAdamW {
            lr: 0.1,
            weight_decay: 0.5,
            ..ParamsAdamW::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], cfg).unwrap();
        // loss = (w - stop_grad(w))²: gradient 0, so only the decoupled decay acts:
        // 2·(1 - 0.1·0.5) = 1.9. (candle drops `w·0` from the graph, hence this form.)
        let d = (w.as_tensor() - w.as_tensor().detach()).unwrap();
        let loss = d.sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let got = w.to_vec1::<f32>().unwrap()[0];
        assert!((got - 1.9).abs() < 1e-6, "{got}");
    }
}
