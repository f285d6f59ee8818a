//! The range test on your own candle model: implement `TrainStep` (one step at a given LR,
//! returning the loss) and, to get the model back untouched, `Checkpoint`.
//!
//!     cargo run --release --example custom_model
//!
//! Here: a two-layer network built with candle-nn's `VarBuilder`, trained with candle-nn's
//! own `AdamW`, on a synthetic regression task (y = sin(3x) + noise).

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use candle_nn::{linear, AdamW, Linear, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use lrfind::finder::{analyse, find_lr, Checkpoint, Rule, SweepConfig, TrainStep};

struct MyModel {
    varmap: VarMap,
    l1: Linear,
    l2: Linear,
    opt: AdamW,
    x: Tensor,
    y: Tensor,
}

impl MyModel {
    fn new() -> anyhow::Result<Self> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let l1 = linear(1, 64, vb.pp("l1"))?;
        let l2 = linear(64, 1, vb.pp("l2"))?;
        let opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
        // Fixed inputs on a grid; deterministic "noise".
        let xs: Vec<f32> = (0..512).map(|i| i as f32 / 256.0 - 1.0).collect();
        let ys: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| (3.0 * x).sin() + 0.05 * ((i * 7919) % 13) as f32 / 13.0)
            .collect();
        Ok(Self {
            varmap,
            l1,
            l2,
            opt,
            x: Tensor::from_vec(xs, (512, 1), &dev)?,
            y: Tensor::from_vec(ys, (512, 1), &dev)?,
        })
    }
}

impl TrainStep for MyModel {
    fn train_step(&mut self, lr: f64) -> lrfind::Result<f64> {
        self.opt.set_learning_rate(lr);
        let pred = self.l2.forward(&self.l1.forward(&self.x)?.tanh()?)?;
        let loss = candle_nn::loss::mse(&pred, &self.y)?;
        self.opt.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }
}

impl Checkpoint for MyModel {
    // Deep copies: `Var::set` writes in place, so a plain clone would alias. (candle-nn's
    // AdamW keeps its moments private; a fresh one after the test is the honest restore.)
    type State = Vec<(String, Tensor)>;

    fn save_state(&self) -> lrfind::Result<Self::State> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| lrfind::Error::invalid("poisoned"))?;
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    fn restore_state(&mut self, state: Self::State) -> lrfind::Result<()> {
        {
            let data = self
                .varmap
                .data()
                .lock()
                .map_err(|_| lrfind::Error::invalid("poisoned"))?;
            for (k, t) in &state {
                if let Some(v) = data.get(k) {
                    v.set(t)?;
                }
            }
        }
        self.opt = AdamW::new(self.varmap.all_vars(), ParamsAdamW::default())?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    lrfind::init_threads();
    let mut model = MyModel::new()?;
    let config = SweepConfig {
        min_lr: 1e-5,
        max_lr: 10.0,
        num_steps: 120,
        ..SweepConfig::default()
    };
    let curve = find_lr(&mut model, &config, &mut |_| ControlFlow::Continue(()))?;
    let analysis = analyse(&curve, config.window, Rule::Fall);
    println!("{} steps, {}", curve.lrs.len(), curve.stop);
    for r in &analysis.rules {
        match &r.suggestion {
            Some(s) => println!("  {:<9} {:.3e}", r.rule.name(), s.lr),
            None => println!(
                "  {:<9} - ({})",
                r.rule.name(),
                r.error.as_deref().unwrap_or("")
            ),
        }
    }
    match analysis.suggestion {
        Some(s) => println!("suggested learning rate: {:.3e} ({} rule)", s.lr, s.rule),
        None => println!("no suggestion: {:?}", analysis.no_suggestion),
    }
    Ok(())
}
