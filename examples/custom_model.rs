//! The range test on your own candle-nn model with candle-nn's AdamW, then a short
//! one-cycle training run at the suggestion. Writes custom_model.json and custom_model.png.
//!
//!     cargo run --release --example custom_model [OUT_DIR]

use std::ops::ControlFlow;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{linear, AdamW, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use lrfind::{find_lr, plot, Description, OptimizerStep, RangeTestReport, Rule, SchedulerConfig};
use lrfind::{SchedulerDriver, SweepConfig, TrainStep};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    // y = sin(3x) on a grid over [-1, 1), fitted by a 1-64-1 tanh network.
    let dev = Device::Cpu;
    let x = Tensor::arange(0f32, 512., &dev)?
        .affine(1. / 256., -1.)?
        .unsqueeze(1)?;
    let y = (&x * 3.)?.sin()?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let (l1, l2) = (linear(1, 64, vb.pp("l1"))?, linear(64, 1, vb.pp("l2"))?);
    let loss = move |_step: usize| candle_nn::loss::mse(&l2.forward(&l1.forward(&x)?.tanh()?)?, &y);
    let vars = varmap.clone();
    let adamw = move || AdamW::new(vars.all_vars(), ParamsAdamW::default());
    let mut model = OptimizerStep::rebuilding(varmap, adamw, loss)?;

    // The range test; the weights are put back afterwards and AdamW rebuilt.
    let sweep = SweepConfig::default(); // 1e-7 → 10 in 100 exponential steps
    let curve = find_lr(&mut model, &sweep, &mut |_| ControlFlow::Continue(()))?;
    let about = Description::new("mlp 1-64-1", "y = sin(3x)", "candle-nn AdamW");
    let report = RangeTestReport::new(about, &sweep, Rule::Fall, curve, Default::default());
    report.write(&out.join("custom_model.json"))?;
    let figure = plot::RangeTestPlot::new(&report.curve, &report.analysis).title("custom model");
    plot::range_test(&out.join("custom_model.png"), &figure)?;
    let Some(lr) = report.suggested_lr else {
        anyhow::bail!("no suggestion: {:?}", report.analysis.no_suggestion);
    };
    println!("suggested learning rate: {lr:.3e} ({})", report.stop_reason);

    // 300 steps of one-cycle training peaking at the suggestion, stepped per batch (candle-nn
    // keeps AdamW's beta1 private, so the cycle leaves momentum alone).
    let one_cycle = SchedulerConfig::parse(&format!(
        "OneCycleLR(max_lr={lr}, total_steps=300, cycle_momentum=False)"
    ))?;
    let mut schedule = SchedulerDriver::new(&one_cycle, lr, None, None)?;
    for step in 0..300 {
        let loss = model.train_step(schedule.lr())?;
        schedule.after_batch(None)?;
        if step % 100 == 99 {
            println!("step {}: loss {loss:.5}", step + 1);
        }
    }
    Ok(())
}
