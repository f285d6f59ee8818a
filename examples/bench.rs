//! Speed and memory of the range test and of a training epoch on MNIST (MLP 784-256-128-10,
//! SGD), the figures compared with PyTorch in `../shared/peers/README.md`.
//!
//!     cargo run --release --example bench -- [MNIST_DIR]
//!
//! MNIST_DIR defaults to ../shared/data/mnist; without it the bench says so and stops.

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

/// Largest peak RSS among finished children, in MiB.
fn children_peak_rss_mib() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

fn learner(data: &DeviceData, batch: usize) -> anyhow::Result<Learner> {
    let dev = candle_core::Device::Cpu;
    let model = Model::new(&ModelConfig::default(), data.input(), 10, 0, &dev)?;
    let opt = OptimizerConfig::from_parts("sgd", 0.0, false, None, (0.9, 0.999), 1e-8)?;
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
    // The lrfind binary built with this example: target/<profile>/examples/bench → ../lrfind.
    let bin = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lrfind"))
        .unwrap_or_default();
    if bin.is_file() {
        let report = std::env::temp_dir().join("lrfind-bench.json");
        let mut walls = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let st = Command::new(&bin)
                .args(["--data", "mnist", "--data-dir"])
                .arg(&dir)
                .args([
                    "--optimizer",
                    "sgd",
                    "--min",
                    "1e-6",
                    "--max",
                    "1",
                    "--num-steps",
                    "100",
                    "--batch-size",
                    "64",
                    "-q",
                    "--report",
                ])
                .arg(&report)
                .output()?;
            walls.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(
                st.status.code() == Some(0),
                "lrfind failed: {}",
                String::from_utf8_lossy(&st.stderr)
            );
        }
        println!(
            "whole process (lrfind, MNIST, 100 steps, batch 64, SGD): median {:.3} s over 5 runs, peak RSS {:.0} MiB",
            median(walls),
            children_peak_rss_mib()
        );
    } else {
        println!("whole process: skipped (build the lrfind binary first: cargo build --release)");
    }

    let t = Instant::now();
    let ds = data::load(&DataConfig::builtin(DataSource::Mnist, Some(dir.clone())))?;
    let data = DeviceData::new(ds, &candle_core::Device::Cpu)?;
    println!(
        "load MNIST (60k+10k, gz): {:.3} s",
        t.elapsed().as_secs_f64()
    );

    for batch in [64usize, 512] {
        let cfg = SweepConfig {
            min_lr: 1e-6,
            max_lr: 1.0,
            num_steps: 100,
            mode: LadderMode::Exp,
            diverge: f64::MAX,
            ..SweepConfig::default()
        };
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut l = learner(&data, batch)?;
            let t = Instant::now();
            run_sweep(&mut l, &cfg, &mut |_| std::ops::ControlFlow::Continue(()))?;
            times.push(t.elapsed().as_secs_f64());
        }
        let m = median(times);
        println!(
            "range test, 100 steps, batch {batch}: {m:.3} s ({:.0} steps/s), median of 5",
            100.0 / m
        );
    }

    for batch in [64usize, 512] {
        let mut l = learner(&data, batch)?;
        let n = data.train_len();
        let t = Instant::now();
        for idx in epoch_batches(n, batch, 1, 0) {
            let b = l.data.train_batch(&idx)?;
            l.step_on(std::slice::from_ref(&b), 0.1)?;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "one training epoch, batch {batch}: {s:.3} s, {:.0} samples/s",
            n as f64 / s
        );
    }
    println!("peak RSS of this bench process: {:.0} MiB", peak_rss_mib());
    Ok(())
}
