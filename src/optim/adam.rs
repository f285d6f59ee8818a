//! `torch.optim.Adam` and `AdamW` (decoupled weight decay).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::check;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    pub fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
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
        check("eps", self.eps, self.eps >= 0.0, "must be >= 0")?;
        check(
            "weight-decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "must be >= 0",
        )
    }
}

#[derive(Debug, Clone)]
pub struct Adam {
    vars: Vec<Var>,
    pub config: AdamConfig,
    pub lr: f64,
    decoupled: bool,
    pub(super) t: u64,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
}

impl Adam {
    pub fn new(vars: Vec<Var>, config: AdamConfig, lr: f64, decoupled: bool) -> Self {
        let n = vars.len();
        Self {
            vars,
            config,
            lr,
            decoupled,
            t: 0,
            m: vec![None; n],
            v: vec![None; n],
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let g: Vec<Option<Tensor>> = self.vars.iter().map(|v| grads.get(v).cloned()).collect();
        self.step_grads(&g)
    }

    /// One update with gradients aligned with the parameters (None: no gradient, skipped).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.t += 1;
        let (b1, b2) = self.config.betas;
        let wd = self.config.weight_decay;
        // PyTorch reads the group's current beta1 here too, so momentum cycling affects it.
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.t as i32)).sqrt();
        let step_size = self.lr / bc1;
        for (((var, m), v), g) in self
            .vars
            .iter()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grads)
        {
            let Some(g) = g else { continue };
            // Detached: moments that kept their autograd history would keep every earlier
            // step's tensors alive.
            let mut p = var.as_tensor().detach();
            let g = g.detach();
            let g = if wd != 0.0 && !self.decoupled {
                (g + (&p * wd)?)?
            } else {
                g
            };
            if wd != 0.0 && self.decoupled {
                p = (p * (1.0 - self.lr * wd))?;
            }
            let m_new = match m.take() {
                None => (&g * (1.0 - b1))?,
                Some(m) => ((m * b1)? + (&g * (1.0 - b1))?)?,
            };
            let g2 = g.sqr()?;
            let v_new = match v.take() {
                None => (g2 * (1.0 - b2))?,
                Some(v) => ((v * b2)? + (g2 * (1.0 - b2))?)?,
            };
            let denom = v_new.sqrt()?.affine(1.0 / bc2_sqrt, self.config.eps)?;
            let update = (m_new.div(&denom)? * step_size)?;
            var.set(&(p - update)?)?;
            *m = Some(m_new);
            *v = Some(v_new);
        }
        Ok(())
    }

    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                out.insert(format!("exp_avg.{i}"), m.clone());
                out.insert(format!("exp_avg_sq.{i}"), v.clone());
            }
        }
        out
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.m = super::load_buffers(tensors, "exp_avg", self.vars.len())?;
        self.v = super::load_buffers(tensors, "exp_avg_sq", self.vars.len())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `torch.optim.Adam(lr=0.1, weight_decay=0.01)` on loss = Σw², written out in f64 from
    /// PyTorch's documented update (m, v, bias corrections, eps outside the sqrt).
    /// The first step is exactly lr·sign(g) up to eps: 1 → 0.9, -2 → -1.9.
    #[test]
    fn adam_matches_pytorchs_update_rule() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = AdamConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut opt = Adam::new(vec![w.clone()], cfg, 0.1, false);
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
        let cfg = AdamConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = Adam::new(vec![w.clone()], cfg, 0.1, false);
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
    fn adamw_decays_weights_even_with_zero_gradient() {
        let w = Var::new(&[2.0f32], &Device::Cpu).unwrap();
        let cfg = AdamConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.5,
        };
        let mut opt = Adam::new(vec![w.clone()], cfg, 0.1, true);
        // loss = (w - stop_grad(w))²: gradient 0, so only the decoupled decay acts:
        // 2·(1 - 0.1·0.5) = 1.9. (candle drops `w·0` from the graph, hence this form.)
        let d = (w.as_tensor() - w.as_tensor().detach()).unwrap();
        let loss = d.sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let got = w.to_vec1::<f32>().unwrap()[0];
        assert!((got - 1.9).abs() < 1e-6, "{got}");
    }
}
