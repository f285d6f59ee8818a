//! Speed and memory of the range test and of a training epoch on MNIST, the figures compared
//! with PyTorch in `../shared/peers/README.md`: the MLP 784-256-128-10, the `cnn` and `lenet`
//! presets and a layer-list CNN with BatchNorm and Dropout, with SGD and Adam.
//!
//!     cargo run --release --example bench -- [MNIST_DIR [MODEL,… [RUNS]]]
//!
//! MNIST_DIR defaults to ../shared/data/mnist; without it the bench says so and stops.
//! MODEL picks some of `mlp,cnn,lenet,bncnn` (default all); RUNS range tests per setting
//! (default 3, the range printed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lrfind::data::batches::epoch_batches;
use lrfind::data::{self, DataConfig, DataSource, DeviceData};
use lrfind::finder::{run_sweep, LadderMode, SweepConfig};
use lrfind::learner::{Learner, StepLoss};
use lrfind::model::{Model, ModelConfig};
use lrfind::optim::OptimizerConfig;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `cmd` to its end: its exit status, wall time (s) and own peak RSS (MiB).
fn run_child(cmd: &mut Command) -> anyhow::Result<(i32, f64, f64)> {
    let t = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into values we own.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    anyhow::ensure!(r == pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        t.elapsed().as_secs_f64(),
        ru.ru_maxrss as f64 / 1024.0,
    ))
}

/// `lo–hi` of some timings.
fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.3}–{hi:.3}")
}

/// The layer-list CNN with batch norm and dropout.
const BN_CNN: &str = "Conv2d(32, 3), BatchNorm2d, ReLU, MaxPool2d(2), Conv2d(64, 3), BatchNorm2d, ReLU, MaxPool2d(2), Dropout(0.25), Flatten, Linear(128), ReLU, Dropout(0.5), Linear";

fn model_config(name: &str) -> anyhow::Result<ModelConfig> {
    Ok(match name {
        "bncnn" => ModelConfig::parse(BN_CNN, "")?,
        other => ModelConfig::parse(other, "256,128")?,
    })
}

fn learner(
    data: &DeviceData,
    model: &str,
    optimizer: &str,
    batch: usize,
) -> anyhow::Result<Learner> {
    let dev = candle_core::Device::Cpu;
    let model = Model::new(&model_config(model)?, data.input(), 10, 0, &dev)?;
    let opt = OptimizerConfig::from_parts(optimizer, 0.0, false, None, (0.9, 0.999), 1e-8)?;
    let optimizer = opt.build(model.vars(), 1e-6)?;
    Ok(Learner::new(
        model,
        optimizer,
        data.clone(),
        batch,
        1,
        StepLoss::TrainBatch,
        1,
    )?)
}

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
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"));
    if !dir.is_dir() {
        println!(
            "bench skipped: no MNIST at {} (pass the directory as the first argument)",
            dir.display()
        );
        return Ok(());
    }
    let mut args = std::env::args().skip(2);
    let models: Vec<String> = args
        .next()
        .unwrap_or_else(|| "mlp,cnn,lenet,bncnn".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let runs: usize = args.next().map_or(Ok(3), |r| r.parse())?;
    // The lrfind binary built with this example: target/<profile>/examples/bench → ../lrfind.
    let bin = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lrfind"))
        .unwrap_or_default();
    for model in ["mlp", "cnn"] {
        if !models.iter().any(|m| m == model) {
            continue;
        }
        if !bin.is_file() {
            println!(
                "whole process: skipped (build the lrfind binary first: cargo build --release)"
            );
            break;
        }
        let report = std::env::temp_dir().join("lrfind-bench.json");
        let (mut walls, mut peaks) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (code, wall, peak) = run_child(
                Command::new(&bin)
                    .args(["--data", "mnist", "--data-dir"])
                    .arg(&dir)
                    .args([
                        "--model",
                        model,
                        "--optimizer",
                        "sgd",
                        "--min",
                        "1e-6",
                        "--max",
                        "1",
                    ])
                    .args(["--num-steps", "100", "--batch-size", "64", "-q", "--report"])
                    .arg(&report),
            )?;
            anyhow::ensure!(code == 0, "lrfind failed (exit {code})");
            walls.push(wall);
            peaks.push(peak);
        }
        println!(
            "whole process (lrfind --model {model}, MNIST, 100 steps, batch 64, SGD): {} s over {runs} runs, peak RSS {} MiB",
            range(&walls),
            range(&peaks)
        );
    }

    let t = Instant::now();
    let ds = data::load(&DataConfig::builtin(DataSource::Mnist, Some(dir.clone())))?;
    let data = DeviceData::new(ds, &candle_core::Device::Cpu)?;
    println!(
        "load MNIST (60k+10k, gz): {:.3} s",
        t.elapsed().as_secs_f64()
    );

    for model in &models {
        for opt in ["sgd", "adam"] {
            for batch in [64usize, 512] {
                let cfg = SweepConfig {
                    min_lr: 1e-6,
                    max_lr: if opt == "adam" { 1e-2 } else { 1.0 },
                    num_steps: 100,
                    mode: LadderMode::Exp,
                    diverge: f64::MAX,
                    ..SweepConfig::default()
                };
                let mut times = Vec::new();
                for _ in 0..runs {
                    let mut l = learner(&data, model, opt, batch)?;
                    let t = Instant::now();
                    run_sweep(&mut l, &cfg, &mut |_| std::ops::ControlFlow::Continue(()))?;
                    times.push(t.elapsed().as_secs_f64());
                }
                let m = median(times.clone());
                println!(
                    "{model} {opt}: range test, 100 steps, batch {batch}: {} s over {runs} runs ({:.0} steps/s, {:.0} samples/s at the median)",
                    range(&times),
                    100.0 / m,
                    100.0 * batch as f64 / m
                );
            }
            let batch = 64;
            let mut l = learner(&data, model, opt, batch)?;
            let n = data.train_len();
            let lr = if opt == "adam" { 1e-3 } else { 0.05 };
            let t = Instant::now();
            for idx in epoch_batches(n, batch, 1, 0) {
                let b = l.data.train_batch(&idx)?;
                l.step_on(std::slice::from_ref(&b), lr)?;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{model} {opt}: one training epoch, batch {batch}: {s:.3} s, {:.0} samples/s, {:.0} steps/s",
                n as f64 / s,
                n.div_ceil(batch) as f64 / s
            );
        }
    }
    println!("peak RSS of this bench process: {:.0} MiB", peak_rss_mib());
    Ok(())
}
