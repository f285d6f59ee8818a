//! Does verifying the suggestion pick an LR that trains as well as the best of a grid? And
//! which trial length ranks LRs as full training does? The measurement behind `--verify`'s
//! defaults (README, "Verifying the suggestion").
//!
//!     cargo run --release --example verify_study -- [DATA_ROOT] [--only NAME,...] [--seeds K] [--json FILE] [--quick]
//!
//! `--quick` (for the test suite): one epoch and two grid LRs per setup.
//!
//! DATA_ROOT holds mnist/, fashion-mnist/ and tabular/ (default ../shared/data). For each
//! setup: one range test (seed 0, 1e-6..1 or the setup's range, 100 steps, `fall` rule); the
//! verification trials from the same state at the default candidates, scored on 1024
//! validation samples after 25, 50 and 100 steps (one trial run, scored three times); then
//! full training runs at constant LR (the length in the table) at every LR of a x3 grid, at
//! the `fall` suggestion and at each horizon's verified LR, K training seeds each (default
//! 2), scored on the test split (accuracy, or RMSE for regression). Costs are wall-clock,
//! measured here: sweep + trials (+ their scoring) against one training run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use lrfind::data::{self, DataConfig, DataSource, DeviceData, Source};
use lrfind::device::DeviceSpec;
use lrfind::finder::{
    self, Checkpoint, LadderMode, Rule, SweepConfig, TrainStep, Trial, TrialScore, VerifyConfig,
};
use lrfind::learner::StepLoss;
use lrfind::model::ModelConfig;
use lrfind::optim::OptimizerConfig;
use lrfind::range_test::{RangeTest, Setup, VERIFY_SAMPLES};
use lrfind::train::{LrSource, Run, TrainConfig};

const HORIZONS: [usize; 3] = [25, 50, 100];

struct Case {
    name: &'static str,
    data: DataConfig,
    model: &'static str,
    opt: (&'static str, f64, bool),
    batch: usize,
    epochs: usize,
    grid: &'static [f64],
    min_lr: f64,
    /// Pretrain on this data for this many epochs at this LR first, and fine-tune from there.
    pretrain: Option<(DataConfig, usize, f64)>,
}

fn main() -> anyhow::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let root = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let only: Option<Vec<String>> =
        flag("--only").map(|s| s.split(',').map(str::to_string).collect());
    let seeds: u64 = flag("--seeds").and_then(|s| s.parse().ok()).unwrap_or(2);
    let json_out = flag("--json").map(PathBuf::from);
    let quick = args.iter().any(|a| a == "--quick");

    let sgd_grid: &[f64] = &[3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];
    let mom_grid: &[f64] = &[1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3];
    let adam_grid: &[f64] = &[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];
    let builtin = |s: DataSource| DataConfig::builtin(s, Some(root.join(s.name())));
    let csv = |file: &str, target: Option<&str>| {
        let mut d = DataConfig::new(Source::Csv(root.join("tabular").join(file)));
        d.test_split = Some(0.2);
        if let Some(t) = target {
            d.target = vec![t.to_string()];
        }
        d
    };
    let cases = vec![
        Case {
            name: "mnist-mlp-sgd",
            data: builtin(DataSource::Mnist),
            model: "mlp",
            opt: ("sgd", 0.0, false),
            batch: 64,
            epochs: 2,
            grid: sgd_grid,
            min_lr: 1e-5,
            pretrain: None,
        },
        Case {
            name: "mnist-mlp-nesterov-b32",
            data: builtin(DataSource::Mnist),
            model: "mlp",
            opt: ("sgd", 0.9, true),
            batch: 32,
            epochs: 1,
            grid: mom_grid,
            min_lr: 1e-5,
            pretrain: None,
        },
        Case {
            name: "fashion-mlp-adamw",
            data: builtin(DataSource::FashionMnist),
            model: "mlp",
            opt: ("adamw", 0.0, false),
            batch: 64,
            epochs: 2,
            grid: adam_grid,
            min_lr: 1e-6,
            pretrain: None,
        },
        Case {
            name: "mnist-lenet-momentum",
            data: builtin(DataSource::Mnist),
            model: "lenet",
            opt: ("sgd", 0.9, false),
            batch: 64,
            epochs: 2,
            grid: mom_grid,
            min_lr: 1e-5,
            pretrain: None,
        },
        Case {
            name: "digits-mlp-adam",
            data: DataConfig::new(Source::Builtin(DataSource::Digits)),
            model: "mlp",
            opt: ("adam", 0.0, false),
            batch: 64,
            epochs: 15,
            grid: adam_grid,
            min_lr: 1e-6,
            pretrain: None,
        },
        Case {
            name: "cancer-csv-momentum",
            data: csv("breast_cancer.csv", None),
            model: "mlp",
            opt: ("sgd", 0.9, false),
            batch: 32,
            epochs: 150,
            grid: mom_grid,
            min_lr: 1e-5,
            pretrain: None,
        },
        Case {
            name: "digits8x8-csv-sgd",
            data: csv("digits8x8.csv", None),
            model: "mlp",
            opt: ("sgd", 0.0, false),
            batch: 32,
            epochs: 50,
            grid: sgd_grid,
            min_lr: 1e-5,
            pretrain: None,
        },
        Case {
            name: "cancer-regression-adam",
            data: csv("breast_cancer.csv", Some("mean_texture")),
            model: "mlp",
            opt: ("adam", 0.0, false),
            batch: 32,
            epochs: 150,
            grid: adam_grid,
            min_lr: 1e-6,
            pretrain: None,
        },
        Case {
            name: "fashion-to-mnist-adam-finetune",
            data: builtin(DataSource::Mnist),
            model: "mlp",
            opt: ("adam", 0.0, false),
            batch: 64,
            epochs: 2,
            grid: adam_grid,
            min_lr: 1e-7,
            pretrain: Some((builtin(DataSource::FashionMnist), 1, 1e-3)),
        },
    ];

    let dev = candle_core::Device::Cpu;
    let mut records = Vec::new();
    println!("| setup | training | fall LR → score | verified (defaults) LR → score | its cost / one training | verified at 25 / 50 / 100 steps (every candidate) | grid best LR → score | cost at 25 / 50 / 100 |");
    println!("|---|---|---|---|---|---|---|---|");
    // --only also orders: the setups run in the order named.
    let order: Vec<&Case> = match &only {
        Some(names) => names
            .iter()
            .filter_map(|n| cases.iter().find(|c| c.name == n))
            .collect(),
        None => cases.iter().collect(),
    };
    for case in order {
        let quick_case;
        let case = if quick {
            quick_case = Case {
                epochs: 1,
                grid: &case.grid[..2],
                data: case.data.clone(),
                pretrain: case.pretrain.clone(),
                ..*case
            };
            &quick_case
        } else {
            case
        };
        if let Source::Builtin(s) = &case.data.source {
            if *s != DataSource::Digits && case.data.data_dir.as_ref().is_some_and(|d| !d.is_dir())
            {
                println!(
                    "| {} | skipped: no {s} under {} |",
                    case.name,
                    root.display()
                );
                continue;
            }
        }
        if let Source::Csv(p) = &case.data.source {
            if !p.is_file() {
                println!("| {} | skipped: no {} |", case.name, p.display());
                continue;
            }
        }
        match study(case, &dev, seeds)? {
            Some(r) => {
                println!("{}", r.row);
                records.push(r.json);
                // After every setup: a long study killed half-way keeps what it measured.
                if let Some(p) = &json_out {
                    std::fs::write(p, serde_json::to_string_pretty(&records)?)?;
                }
            }
            None => println!("| {} | no suggestion |", case.name),
        }
    }
    Ok(())
}

struct Outcome {
    row: String,
    json: serde_json::Value,
}

fn study(case: &Case, dev: &candle_core::Device, seeds: u64) -> anyhow::Result<Option<Outcome>> {
    let data = DeviceData::new(data::load(&case.data)?, dev)?;
    let regression = matches!(data.task(), lrfind::data::Task::Regress { .. });
    let (kind, momentum, nesterov) = case.opt;
    let mut setup = Setup {
        data: case.data.clone(),
        model: ModelConfig::parse(case.model, "256,128")?,
        optimizer: OptimizerConfig::from_parts(kind, momentum, nesterov, None, (0.9, 0.999), 1e-8)?,
        seed: 0,
        batch_size: case.batch,
        loss: None,
        init_from: None,
        param_groups: None,
    };
    let _tmp = tempdir();
    if let Some((source, epochs, lr)) = &case.pretrain {
        let path = _tmp.join(format!("{}-pretrained.safetensors", case.name));
        let pre = Setup {
            data: source.clone(),
            ..setup.clone()
        };
        let pre_data = DeviceData::new(data::load(source)?, dev)?;
        let mut run = Run::new(train_config(&pre, *lr, *epochs), pre_data, dev)?;
        run.train(&mut ())?;
        candle_core::safetensors::save(&run.learner.model.tensors(), &path)?;
        setup.init_from = Some(path);
    }
    let rt = RangeTest {
        setup: setup.clone(),
        device: DeviceSpec::Cpu,
        accumulate: 1,
        step_loss: StepLoss::TrainBatch,
        sweep: SweepConfig {
            min_lr: case.min_lr,
            max_lr: 1.0,
            num_steps: 100,
            mode: LadderMode::Exp,
            ..SweepConfig::default()
        },
        rule: Rule::Fall,
        verify: None,
    };
    let t = Instant::now();
    let report = rt.run_on(&data, dev, &mut |_| std::ops::ControlFlow::Continue(()))?;
    let sweep_s = t.elapsed().as_secs_f64();
    let Some(fall) = report.suggested_lr else {
        return Ok(None);
    };

    // What the defaults really cost: the range test and the library's verification, timed.
    let t = Instant::now();
    let verified_run = RangeTest {
        verify: Some(VerifyConfig::default()),
        ..rt.clone()
    }
    .run_on(&data, dev, &mut |_| std::ops::ControlFlow::Continue(()))?;
    let verified_cost_s = t.elapsed().as_secs_f64();
    let default_verified = verified_run.verified_lr;

    // The trials: one run per candidate, scored after each horizon.
    let mut learner = rt.learner(&data, dev)?;
    // Every candidate a wider verification could try, so the study can judge subsets.
    let wide = VerifyConfig {
        factors: vec![0.1, 1.0 / 3.0, 1.0, 3.0],
        max_trials: 6,
        ..VerifyConfig::default()
    };
    let cands = finder::candidates(&report.analysis, &wide);
    let set = learner.held_out(VERIFY_SAMPLES)?;
    let saved = learner.save_state()?;
    let t = Instant::now();
    let start = learner.trial_score(&set, 512)?;
    let mut scores: Vec<Vec<Option<TrialScore>>> = Vec::new();
    let mut cost = [0.0f64; HORIZONS.len()];
    let mut elapsed_steps = 0.0;
    let base = t.elapsed().as_secs_f64();
    for c in &cands {
        learner.restore_state(saved.clone())?;
        let mut row = Vec::new();
        let mut step = 0;
        let mut dead = false;
        for (h, &horizon) in HORIZONS.iter().enumerate() {
            let t = Instant::now();
            while step < horizon && !dead {
                dead = !learner.train_step(c.lr)?.is_finite();
                step += 1;
            }
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let s = if dead {
                None
            } else {
                let s = learner.trial_score(&set, 512)?;
                s.loss.is_finite().then_some(s)
            };
            let score_s = t.elapsed().as_secs_f64();
            // A trial of `horizon` steps costs its steps so far and one scoring.
            elapsed_steps += train_s;
            cost[h] += elapsed_steps + score_s;
            row.push(s);
            if h == HORIZONS.len() - 1 {
                elapsed_steps = 0.0;
            }
        }
        scores.push(row);
    }
    learner.restore_state(saved)?;
    drop(learner);

    // The library's own selection rule, applied to the scores at each horizon.
    let chosen: Vec<Option<f64>> = (0..HORIZONS.len())
        .map(|h| {
            let trials: Vec<Trial> = cands
                .iter()
                .zip(&scores)
                .map(|(c, s)| Trial {
                    lr: c.lr,
                    origin: c.origin.clone(),
                    losses: Vec::new(),
                    score: s[h],
                    diverged: s[h].is_none(),
                })
                .collect();
            finder::verify::choose(&trials, start.loss)
                .1
                .map(|i| trials[i].lr)
        })
        .collect();

    // Full training.
    let mut trained: BTreeMap<u64, f64> = BTreeMap::new();
    let mut train_s = 0.0;
    let mut runs = 0;
    let mut score_of = |lr: f64, trained: &mut BTreeMap<u64, f64>| -> anyhow::Result<f64> {
        if let Some(v) = trained.get(&lr.to_bits()) {
            return Ok(*v);
        }
        let mut sum = 0.0;
        for seed in 0..seeds {
            let s = Setup {
                seed,
                ..setup.clone()
            };
            let t = Instant::now();
            let mut run = Run::new(train_config(&s, lr, case.epochs), data.clone(), dev)?;
            let v = match run.train(&mut ()) {
                // The test split when there is one, else the last epoch's validation.
                Ok(_) => match (&run.state.test, run.state.history.last()) {
                    (Some(m), _) if regression => m.rmse.unwrap_or(f64::INFINITY),
                    (Some(m), _) => 100.0 * m.accuracy.unwrap_or(0.0),
                    (None, Some(e)) if regression => e.val_rmse.unwrap_or(f64::INFINITY),
                    (None, Some(e)) => 100.0 * e.val_accuracy.unwrap_or(0.0),
                    (None, None) => anyhow::bail!("no epoch trained"),
                },
                // Diverged: chance level (or no fit).
                Err(_) => {
                    if regression {
                        f64::INFINITY
                    } else {
                        100.0 / data.task().outputs() as f64
                    }
                }
            };
            train_s += t.elapsed().as_secs_f64();
            runs += 1;
            sum += v;
        }
        let v = sum / seeds as f64;
        trained.insert(lr.to_bits(), v);
        Ok(v)
    };
    let better = |a: f64, b: f64| if regression { a < b } else { a > b };
    let mut grid = Vec::new();
    for &lr in case.grid {
        grid.push((lr, score_of(lr, &mut trained)?));
    }
    let best = grid
        .iter()
        .copied()
        .reduce(|a, b| if better(b.1, a.1) { b } else { a })
        .expect("a grid");
    let fall_score = score_of(fall, &mut trained)?;
    let default_score = match default_verified {
        Some(lr) => Some((lr, score_of(lr, &mut trained)?)),
        None => None,
    };
    // Every candidate, so any selection rule over the trials can be judged afterwards.
    for c in &cands {
        score_of(c.lr, &mut trained)?;
    }
    let mut verified = Vec::new();
    for lr in chosen.iter().flatten() {
        verified.push((*lr, score_of(*lr, &mut trained)?));
    }
    let one_run = train_s / runs as f64;
    let unit = if regression { "" } else { " %" };
    let fmt = |(lr, v): (f64, f64)| format!("{lr:.2e} → {v:.2}{unit}");
    let row = format!(
        "| {} | {} epochs, batch {} ({} steps/epoch) | {} | {} | {:.3} | {} | {} | {} |",
        case.name,
        case.epochs,
        case.batch,
        data.train_len().div_ceil(case.batch),
        fmt((fall, fall_score)),
        default_score.map_or("-".into(), fmt),
        verified_cost_s / one_run,
        verified
            .iter()
            .map(|v| fmt(*v))
            .collect::<Vec<_>>()
            .join(" / "),
        fmt(best),
        cost.iter()
            .map(|c| format!("{:.3}", (sweep_s + base + c) / one_run))
            .collect::<Vec<_>>()
            .join(" / "),
    );
    let json = serde_json::json!({
        "setup": case.name,
        "regression": regression,
        "fall": [fall, fall_score],
        "candidates": cands.iter().map(|c| serde_json::json!({"lr": c.lr, "origin": c.origin})).collect::<Vec<_>>(),
        "start": [start.loss, start.accuracy],
        "trial_scores": scores,
        "horizons": HORIZONS,
        "verified": chosen,
        "grid": grid,
        "trained": trained.iter().map(|(k, v)| (f64::from_bits(*k), *v)).collect::<Vec<_>>(),
        "sweep_s": sweep_s,
        "default_verified": default_score,
        "default_cost_s": verified_cost_s,
        "trial_cost_s": cost,
        "one_training_s": one_run,
    });
    Ok(Some(Outcome { row, json }))
}

fn train_config(setup: &Setup, lr: f64, epochs: usize) -> TrainConfig {
    TrainConfig {
        setup: setup.clone(),
        device: "cpu".into(),
        lr,
        lr_source: LrSource::Given,
        epochs,
        scheduler: None,
        schedule_every: None,
        patience: None,
        eval_batch_size: 1000,
    }
}

fn tempdir() -> PathBuf {
    let p = std::env::temp_dir().join(format!("lrfind-verify-study-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&p);
    p
}
