//! The library as an outside crate uses it: a candle-nn model and optimizer, the range test,
//! the report, the stability check and a schedule, through the public API only.

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use candle_nn::{linear, Linear, Module, Optimizer, VarBuilder, VarMap};
use lrfind::{
    check_stability, find_lr, Description, OptimizerStep, RangeTestReport, Rule, SchedulerConfig,
    SchedulerDriver, StabilityConfig, SweepConfig, TrainStep,
};

/// y = sin(3x) + a seeded ripple, fitted by a 1-32-1 tanh net whose init depends on `seed`.
fn problem(seed: u64) -> candle_core::Result<(VarMap, Linear, Linear, Tensor, Tensor)> {
    let dev = Device::Cpu;
    let x = Tensor::arange(0f32, 256., &dev)?
        .affine(1. / 128., -1.)?
        .unsqueeze(1)?;
    let y = (&x * 3.)?.sin()?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let l1 = linear(1, 32, vb.pp("l1"))?;
    let l2 = linear(32, 1, vb.pp("l2"))?;
    // candle's CPU init is not seedable: set the weights from the seed instead.
    for (i, (name, var)) in {
        let mut v: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    .into_iter()
    .enumerate()
    {
        let n = var.elem_count();
        let vals: Vec<f32> = (0..n)
            .map(|k| {
                let h = (seed + 1)
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(((i * 1000 + k) as u64).wrapping_mul(1442695040888963407));
                ((h >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    * if name.ends_with("weight") { 1.5 } else { 0.2 }
            })
            .collect();
        var.set(&Tensor::from_vec(vals, var.shape(), &dev)?)?;
    }
    Ok((varmap, l1, l2, x, y))
}

// OptimizerStep fails with lrfind's error: candle's, or a typed `NoGradient` from its check.
fn step_for(seed: u64) -> anyhow::Result<impl TrainStep<Error = lrfind::Error>> {
    let (varmap, l1, l2, x, y) = problem(seed)?;
    let vars = varmap.clone();
    Ok(OptimizerStep::rebuilding(
        varmap,
        move || candle_nn::AdamW::new(vars.all_vars(), candle_nn::ParamsAdamW::default()),
        move |_| candle_nn::loss::mse(&l2.forward(&l1.forward(&x)?.tanh()?)?, &y),
    )?)
}

fn sweep() -> SweepConfig {
    SweepConfig {
        min_lr: 1e-5,
        max_lr: 10.0,
        num_steps: 100,
        ..SweepConfig::default()
    }
}

#[test]
fn range_test_report_round_trip_on_a_candle_nn_model() {
    let (varmap, l1, l2, x, y) = problem(3).unwrap();
    let before = l1.weight().to_vec2::<f32>().unwrap();
    let weight = l1.weight().clone();
    let vars = varmap.clone();
    let mut model = OptimizerStep::rebuilding(
        varmap,
        move || candle_nn::AdamW::new(vars.all_vars(), candle_nn::ParamsAdamW::default()),
        move |_| candle_nn::loss::mse(&l2.forward(&l1.forward(&x)?.tanh()?)?, &y),
    )
    .unwrap();
    let curve = find_lr(&mut model, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
    // The weights came back, bit for bit (they are shared with the VarMap).
    assert_eq!(weight.to_vec2::<f32>().unwrap(), before);
    let about = Description {
        model: "1-32-1 tanh".into(),
        data: "sin(3x)".into(),
        optimizer: "candle-nn AdamW".into(),
    };
    let report = RangeTestReport::new(about, &sweep(), Rule::Fall, curve, Default::default());
    let lr = report.suggested_lr.expect("a suggestion");
    // Adam on a small smooth regression: the fall rule lands between 1e-3 and 0.3.
    assert!((1e-3..0.3).contains(&lr), "{lr}");
    let dir = std::env::temp_dir().join(format!("lrfind-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.json");
    report.write(&path).unwrap();
    let back: RangeTestReport<Description> = RangeTestReport::read(&path).unwrap();
    assert_eq!(back, report);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stability_check_on_a_custom_model() {
    let config = StabilityConfig {
        seeds: vec![0, 1, 2],
        sweep: sweep(),
        rule: Rule::Fall,
        max_spread: 0.5,
        baseline: None,
        tolerance: 0.25,
        repeat: true,
        allow_pinned: false,
    };
    let v = check_stability(&config, step_for, &mut |_, _, _| ControlFlow::Continue(())).unwrap();
    assert_eq!(v.runs.len(), 3);
    assert_eq!(
        v.repeatable,
        Some(true),
        "the same seed must give the same curve"
    );
    assert!(v.spread_decades.is_some(), "{:?}", v.failures);
}

#[test]
fn a_schedule_drives_candle_nns_own_sgd() {
    let w = candle_core::Var::new(&[1f32], &Device::Cpu).unwrap();
    let mut opt = candle_nn::SGD::new(vec![w], 1.0).unwrap();
    // PyTorch: CosineAnnealingLR(T_max=4) from lr 1: 1, 0.853553, 0.5, 0.146447, 0.
    let cfg = SchedulerConfig::parse("CosineAnnealingLR(T_max=4)").unwrap();
    let mut d = SchedulerDriver::new(&cfg, opt.learning_rate(), None, None).unwrap();
    let mut lrs = vec![];
    for _ in 0..5 {
        d.apply(&mut opt);
        lrs.push(opt.learning_rate());
        d.after_epoch(None).unwrap();
    }
    let want = [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0];
    for (a, b) in lrs.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{lrs:?}");
    }
}

#[test]
fn verify_a_custom_models_suggestion_with_trials() {
    use lrfind::finder::{analyse, candidates, verify, TrialScore, VerifyConfig};
    let (varmap, l1, l2, x, y) = problem(3).unwrap();
    let weight = l1.weight().clone();
    let before = weight.to_vec2::<f32>().unwrap();
    let vars = varmap.clone();
    let (l1b, l2b, xb, yb) = (l1.clone(), l2.clone(), x.clone(), y.clone());
    let mut model = OptimizerStep::rebuilding(
        varmap,
        move || candle_nn::AdamW::new(vars.all_vars(), candle_nn::ParamsAdamW::default()),
        move |_| candle_nn::loss::mse(&l2b.forward(&l1b.forward(&xb)?.tanh()?)?, &yb),
    )
    .unwrap();
    let curve = find_lr(&mut model, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
    let analysis = analyse(&curve, &sweep(), Rule::Fall);
    let suggested = analysis.suggestion.as_ref().expect("a suggestion").lr;
    let config = VerifyConfig {
        steps: 40,
        ..VerifyConfig::default()
    };
    let tried = candidates(&analysis, &config);
    assert!(tried.len() >= 3);
    // Your own score: here the loss on held-out points between the training ones.
    let xv = (&x + 1. / 256.).unwrap();
    let yv = (&xv * 3.).unwrap().sin().unwrap();
    let score = |_: &mut _| -> candle_core::Result<TrialScore> {
        let loss = candle_nn::loss::mse(&l2.forward(&l1.forward(&xv)?.tanh()?)?, &yv)?;
        Ok(TrialScore {
            loss: f64::from(loss.to_scalar::<f32>()?),
            accuracy: None,
        })
    };
    let v = verify(&mut model, &tried, suggested, &config, score, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    // Every trial trained from the same weights, so each first loss is the same.
    let first: Vec<f64> = v.trials.iter().map(|t| t.losses[0].unwrap()).collect();
    assert!(first.windows(2).all(|w| w[0] == w[1]), "{first:?}");
    let best = v.best.unwrap();
    let chosen = v.chosen.unwrap();
    assert!(v.trials[chosen].lr <= v.trials[best].lr);
    assert!(v.trials[best].score.unwrap().loss < v.start.loss);
    assert_eq!(v.verified_lr, Some(v.trials[chosen].lr));
    // And the model came back as it was.
    assert_eq!(weight.to_vec2::<f32>().unwrap(), before);
}
