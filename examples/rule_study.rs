//! How stable is each suggestion rule across seeds, and how well does its LR train?
//! The measurement behind the default rule (README, "Choosing the default rule").
//!
//!     cargo run --release --example rule_study -- [DATA_ROOT] [--train EPOCHS] [--train-seeds K]
//!
//! DATA_ROOT holds mnist/ and fashion-mnist/ (default ../shared/data). For each setup, five
//! seeds run the range test (1e-6 → 1, 100 steps, batch 64, MLP 784-256-128-10, as in the
//! peers' figures); every rule reads every curve. With --train, each rule's median LR and a
//! few fixed LRs around it train for EPOCHS epochs and report test accuracy, the mean over K
//! training seeds (default 1): one run's final accuracy moves by ±0.5 points from seed to seed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lrfind::check::stats;
use lrfind::data::{self, DataConfig, DataSource, DeviceData};
use lrfind::device::DeviceSpec;
use lrfind::finder::{suggest, LadderMode, Rule, SweepConfig, Window};
use lrfind::learner::StepLoss;
use lrfind::model::ModelConfig;
use lrfind::optim::OptimizerConfig;
use lrfind::range_test::{RangeTest, Setup};
use lrfind::train::{LrSource, Run, TrainConfig};

fn main() -> anyhow::Result<()> {
    // A large batch's activations are megabytes, allocated and freed every step: keep them
    // on the heap rather than a fresh mmap (and its page faults) each time. glibc raises its
    // own threshold only after a large enough free, so speed would depend on what ran first
    // (30 % at batch 512). Set before any allocation-heavy work; glibc only.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    // One matmul thread each: lrfind shards every batch over the cores itself.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Positional DATA_ROOT: the first argument that is neither a flag nor a flag's value.
    let root = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| PathBuf::from(a))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let train_epochs: Option<usize> = args
        .iter()
        .position(|a| a == "--train")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let train_seeds: u64 = args
        .iter()
        .position(|a| a == "--train-seeds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    let dump: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| Some(PathBuf::from(args.get(i + 1)?)));
    let mut dumped = Vec::new();
    let dev = candle_core::Device::Cpu;
    let setups = [
        (DataSource::Mnist, "sgd"),
        (DataSource::Mnist, "adam"),
        (DataSource::FashionMnist, "sgd"),
        (DataSource::FashionMnist, "adam"),
        (DataSource::Digits, "adam"),
    ];
    println!(
        "| setup | rule | median | max/min | std log10 |{}",
        if train_epochs.is_some() {
            " accuracy at median |"
        } else {
            ""
        }
    );
    println!(
        "|---|---|---|---|---|{}",
        if train_epochs.is_some() { "---|" } else { "" }
    );
    for (source, opt) in setups {
        let dir = match source {
            DataSource::Digits => None,
            _ => Some(root.join(source.name())),
        };
        if dir.as_ref().is_some_and(|d| !d.is_dir()) {
            println!("| {source} | skipped: no data at {} |", root.display());
            continue;
        }
        let config = DataConfig::builtin(source, dir.clone());
        let data = DeviceData::new(data::load(&config)?, &dev)?;
        let setup = Setup {
            data: config,
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::from_parts(opt, 0.0, false, None, (0.9, 0.999), 1e-8)?,
            seed: 0,
            batch_size: 64,
            loss: None,
            init_from: None,
            param_groups: None,
        };
        let rt = RangeTest {
            setup: setup.clone(),
            device: DeviceSpec::Cpu,
            accumulate: 1,
            step_loss: StepLoss::TrainBatch,
            sweep: SweepConfig {
                min_lr: 1e-6,
                max_lr: 1.0,
                num_steps: 100,
                mode: LadderMode::Exp,
                ..SweepConfig::default()
            },
            rule: Rule::Steepest,
            verify: None,
        };
        let mut per_rule: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for seed in 0..5 {
            let mut t = rt.clone();
            t.setup.seed = seed;
            let r = t.run_on(&data, &dev, &mut |_| std::ops::ControlFlow::Continue(()))?;
            let (lrs, raw, sm) = r.curve.finite();
            dumped.push(serde_json::json!({"setup": format!("{source} {opt}"), "seed": seed, "lrs": lrs, "raw": raw, "smoothed": sm}));
            for rule in Rule::ALL {
                if let Ok(s) = suggest(rule, &lrs, &sm, Window::default()) {
                    per_rule.entry(rule.name()).or_default().push(s.lr);
                }
            }
        }
        for rule in Rule::ALL {
            let v = per_rule.get(rule.name()).cloned().unwrap_or_default();
            let label = format!("{source} {opt}");
            match stats(&v) {
                Some((m, spread, sd)) if v.len() == 5 => {
                    let acc = match train_epochs {
                        Some(e) => format!(
                            " {:.2} % |",
                            100.0 * train_acc(&setup, &data, &dev, m, e, train_seeds)?
                        ),
                        None => String::new(),
                    };
                    println!(
                        "| {label} | {} | {m:.3e} | {:.2} | {sd:.3} |{acc}",
                        rule.name(),
                        10f64.powf(spread)
                    );
                }
                _ => println!(
                    "| {label} | {} | no suggestion for {} of 5 seeds | | |",
                    rule.name(),
                    5 - v.len()
                ),
            }
        }
        if let Some(e) = train_epochs {
            let fixed: &[f64] = if opt == "sgd" {
                &[0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0]
            } else {
                &[1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2]
            };
            for &lr in fixed {
                println!(
                    "| {source} {opt} | fixed | {lr:.3e} | | | {:.2} % |",
                    100.0 * train_acc(&setup, &data, &dev, lr, e, train_seeds)?
                );
            }
        }
    }
    if let Some(p) = dump {
        std::fs::write(p, serde_json::to_string(&dumped)?)?;
    }
    Ok(())
}

fn train_acc(
    setup: &Setup,
    data: &DeviceData,
    dev: &candle_core::Device,
    lr: f64,
    epochs: usize,
    seeds: u64,
) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for seed in 0..seeds {
        sum += train_acc_seed(setup, data, dev, lr, epochs, seed)?;
    }
    Ok(sum / seeds as f64)
}

fn train_acc_seed(
    setup: &Setup,
    data: &DeviceData,
    dev: &candle_core::Device,
    lr: f64,
    epochs: usize,
    seed: u64,
) -> anyhow::Result<f64> {
    let cfg = TrainConfig {
        setup: Setup {
            seed,
            ..setup.clone()
        },
        device: "cpu".into(),
        lr,
        lr_source: LrSource::Given,
        epochs,
        scheduler: None,
        schedule_every: None,
        patience: None,
        eval_batch_size: 1000,
    };
    let mut run = Run::new(cfg, data.clone(), dev)?;
    match run.train(&mut ()) {
        Ok(_) => Ok(run
            .state
            .history
            .last()
            .and_then(|m| m.val_accuracy)
            .unwrap_or(0.0)),
        Err(_) => Ok(0.1), // diverged: chance level
    }
}
