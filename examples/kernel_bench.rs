//! Speed of one forward + backward of the `cnn` preset (Conv2d(32,3), ReLU, MaxPool2d(2),
//! Conv2d(64,3), ReLU, MaxPool2d(2), Flatten, Linear(128), ReLU, Linear(10) on 1×28×28)
//! built from `lrfind::model::kernels`, against candle's autograd on the same model.
//!
//!     cargo run --release --example kernel_bench [-- STEPS]
//!
//! Per shard size (32, 64 images): one shard on one thread (forward + backward), and a
//! whole step of two shards on two threads (both shards' gradients summed, then an SGD
//! update), in ms per step (median of 5 rounds of STEPS steps, default 100). Cross-entropy
//! and its gradient are computed inline. The inputs are random: the work is dense, so the
//! time does not depend on the data.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use lrfind::model::kernels::{
    activation_backward, activation_forward_in_place, conv2d_backward, conv2d_forward,
    linear_backward, linear_forward, max_pool2d_backward, max_pool2d_forward, Activation,
    Conv2dGrads, Conv2dShape, LinearGrads, LinearShape, Pool2dShape,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLASSES: usize = 10;

/// The cnn's parameters, PyTorch order: conv1.w, conv1.b, conv2.w, conv2.b, fc1.w, fc1.b,
/// fc2.w, fc2.b.
#[derive(Clone)]
struct Params(Vec<Vec<f32>>);

impl Params {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        Self(vec![
            uniform(32 * 9, 9),
            uniform(32, 9),
            uniform(64 * 32 * 9, 288),
            uniform(64, 288),
            uniform(128 * 1600, 1600),
            uniform(128, 1600),
            uniform(CLASSES * 128, 128),
            uniform(CLASSES, 128),
        ])
    }

    fn zeros_like(&self) -> Self {
        Self(self.0.iter().map(|p| vec![0.0; p.len()]).collect())
    }
}

/// Shapes of the layers for a shard of `b` images.
struct Shapes {
    conv1: Conv2dShape,
    pool1: Pool2dShape,
    conv2: Conv2dShape,
    pool2: Pool2dShape,
    fc1: LinearShape,
    fc2: LinearShape,
}

impl Shapes {
    fn new(b: usize) -> Self {
        let conv = |cin, hw, cout| Conv2dShape {
            batch: b,
            in_channels: cin,
            height: hw,
            width: hw,
            out_channels: cout,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (0, 0),
        };
        let pool = |c, hw| Pool2dShape {
            batch: b,
            channels: c,
            height: hw,
            width: hw,
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        };
        Self {
            conv1: conv(1, 28, 32),
            pool1: pool(32, 26),
            conv2: conv(32, 13, 64),
            pool2: pool(64, 11),
            fc1: LinearShape {
                batch: b,
                inputs: 1600,
                outputs: 128,
            },
            fc2: LinearShape {
                batch: b,
                inputs: 128,
                outputs: CLASSES,
            },
        }
    }
}

/// Every buffer one shard's step needs, allocated once.
struct Shard {
    s: Shapes,
    x: Vec<f32>,
    y: Vec<u32>,
    a1: Vec<f32>,
    p1: Vec<f32>,
    i1: Vec<u32>,
    a2: Vec<f32>,
    p2: Vec<f32>,
    i2: Vec<u32>,
    h: Vec<f32>,
    logits: Vec<f32>,
    // Gradients of the activations.
    dh: Vec<f32>,
    dp2: Vec<f32>,
    da2: Vec<f32>,
    dp1: Vec<f32>,
    da1: Vec<f32>,
    scratch: Vec<f32>,
    grads: Params,
}

impl Shard {
    fn new(b: usize, params: &Params, seed: u64) -> Self {
        let s = Shapes::new(b);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = (0..b * 784).map(|_| rng.random_range(0.0..1.0)).collect();
        let y = (0..b)
            .map(|_| rng.random_range(0..CLASSES as u32))
            .collect();
        Self {
            x,
            y,
            a1: vec![0.0; s.conv1.out_len()],
            p1: vec![0.0; s.pool1.out_len()],
            i1: vec![0; s.pool1.out_len()],
            a2: vec![0.0; s.conv2.out_len()],
            p2: vec![0.0; s.pool2.out_len()],
            i2: vec![0; s.pool2.out_len()],
            h: vec![0.0; b * 128],
            logits: vec![0.0; b * CLASSES],
            dh: vec![0.0; b * 128],
            dp2: vec![0.0; s.pool2.out_len()],
            da2: vec![0.0; s.conv2.out_len()],
            dp1: vec![0.0; s.pool1.out_len()],
            da1: vec![0.0; s.conv1.out_len()],
            scratch: Vec::new(),
            grads: params.zeros_like(),
            s,
        }
    }

    /// Forward and backward; the loss is the shard's summed cross-entropy over `denom`.
    fn step(&mut self, p: &Params, denom: usize) -> f64 {
        self.step_timed(p, denom, &mut Phases::off())
    }

    fn step_timed(&mut self, p: &Params, denom: usize, t: &mut Phases) -> f64 {
        let s = &self.s;
        let w = &p.0;
        let relu = Activation::Relu;
        conv2d_forward(
            &s.conv1,
            &self.x,
            &w[0],
            Some(&w[1]),
            &mut self.a1,
            &mut self.scratch,
        );
        t.mark("conv1 fwd");
        activation_forward_in_place(relu, &mut self.a1);
        t.mark("relu1 fwd");
        max_pool2d_forward(&s.pool1, &self.a1, &mut self.p1, &mut self.i1);
        t.mark("pool1 fwd");
        conv2d_forward(
            &s.conv2,
            &self.p1,
            &w[2],
            Some(&w[3]),
            &mut self.a2,
            &mut self.scratch,
        );
        t.mark("conv2 fwd");
        activation_forward_in_place(relu, &mut self.a2);
        t.mark("relu2 fwd");
        max_pool2d_forward(&s.pool2, &self.a2, &mut self.p2, &mut self.i2);
        t.mark("pool2 fwd");
        linear_forward(&s.fc1, &self.p2, &w[4], Some(&w[5]), &mut self.h, 1);
        t.mark("fc1 fwd");
        activation_forward_in_place(relu, &mut self.h);
        t.mark("relu3 fwd");
        linear_forward(&s.fc2, &self.h, &w[6], Some(&w[7]), &mut self.logits, 1);
        t.mark("fc2 fwd");
        // Cross-entropy; the logits become their gradient (softmax − onehot) / denom.
        let mut loss = 0.0f64;
        for (row, &t) in self.logits.chunks_exact_mut(CLASSES).zip(&self.y) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
            loss += f64::from(sum.ln() + max - row[t as usize]);
            for (k, v) in row.iter_mut().enumerate() {
                let softmax = (*v - max).exp() / sum;
                *v = (softmax - f32::from(u8::from(k == t as usize))) / denom as f32;
            }
        }
        t.mark("loss");
        let g = &mut self.grads.0;
        let [g0, g1, g2, g3, g4, g5, g6, g7] = &mut g[..] else {
            unreachable!("eight parameters")
        };
        let grads = LinearGrads {
            dw: g6,
            db: Some(g7),
            dx: Some(&mut self.dh),
        };
        linear_backward(&s.fc2, &self.h, &w[6], &self.logits, grads, 1);
        t.mark("fc2 bwd");
        activation_backward(relu, &self.h, &mut self.dh);
        t.mark("relu3 bwd");
        let grads = LinearGrads {
            dw: g4,
            db: Some(g5),
            dx: Some(&mut self.dp2),
        };
        linear_backward(&s.fc1, &self.p2, &w[4], &self.dh, grads, 1);
        t.mark("fc1 bwd");
        max_pool2d_backward(&s.pool2, &self.i2, &self.dp2, &mut self.da2);
        t.mark("pool2 bwd");
        activation_backward(relu, &self.a2, &mut self.da2);
        t.mark("relu2 bwd");
        let grads = Conv2dGrads {
            dw: g2,
            db: Some(g3),
            dx: Some(&mut self.dp1),
        };
        conv2d_backward(
            &s.conv2,
            &self.p1,
            &w[2],
            &self.da2,
            grads,
            &mut self.scratch,
        );
        t.mark("conv2 bwd");
        max_pool2d_backward(&s.pool1, &self.i1, &self.dp1, &mut self.da1);
        t.mark("pool1 bwd");
        activation_backward(relu, &self.a1, &mut self.da1);
        t.mark("relu1 bwd");
        let grads = Conv2dGrads {
            dw: g0,
            db: Some(g1),
            dx: None,
        };
        conv2d_backward(
            &s.conv1,
            &self.x,
            &w[0],
            &self.da1,
            grads,
            &mut self.scratch,
        );
        t.mark("conv1 bwd");
        loss / denom as f64
    }
}

/// CPU time of this thread, in seconds (unaffected by other processes' load).
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Per-phase CPU time of a shard's step, when on.
struct Phases {
    on: bool,
    last: f64,
    totals: Vec<(&'static str, f64)>,
}

impl Phases {
    fn off() -> Self {
        Self {
            on: false,
            last: 0.0,
            totals: Vec::new(),
        }
    }

    fn on() -> Self {
        Self {
            on: true,
            last: thread_cpu_s(),
            totals: Vec::new(),
        }
    }

    fn mark(&mut self, name: &'static str) {
        if !self.on {
            return;
        }
        let now = thread_cpu_s();
        match self.totals.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += now - self.last,
            None => self.totals.push((name, now - self.last)),
        }
        self.last = now;
    }
}

/// SGD on the sum of two shards' gradients.
fn sgd(p: &mut Params, a: &Params, b: &Params, lr: f32) {
    for ((w, ga), gb) in p.0.iter_mut().zip(&a.0).zip(&b.0) {
        for ((w, x), y) in w.iter_mut().zip(ga).zip(gb) {
            *w -= lr * (x + y);
        }
    }
}

/// CPU time of the whole process (all threads), in seconds.
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Median wall ms and process CPU ms per call of `f` over 5 rounds of `steps` calls (after
/// a warm-up). On a loaded machine the CPU time shows the work, the wall time the wait.
fn time(steps: usize, mut f: impl FnMut()) -> Timing {
    for _ in 0..steps.min(10) {
        f();
    }
    let mut rounds: Vec<(f64, f64)> = (0..5)
        .map(|_| {
            let (t, c) = (Instant::now(), process_cpu_s());
            for _ in 0..steps {
                f();
            }
            let per = |x: f64| x * 1e3 / steps as f64;
            (per(t.elapsed().as_secs_f64()), per(process_cpu_s() - c))
        })
        .collect();
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    Timing {
        wall: rounds[2].0,
        cpu: rounds[2].1,
    }
}

/// Milliseconds per step.
struct Timing {
    wall: f64,
    cpu: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cell = format!("{:.2} ({:.2})", self.wall, self.cpu);
        write!(f, "{cell:>18}")
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The same model through candle's autograd.
struct CandleCnn {
    vars: Vec<Var>,
}

impl CandleCnn {
    fn new(p: &Params) -> candle_core::Result<Self> {
        let dims: [&[usize]; 8] = [
            &[32, 1, 3, 3],
            &[32],
            &[64, 32, 3, 3],
            &[64],
            &[128, 1600],
            &[128],
            &[CLASSES, 128],
            &[CLASSES],
        ];
        let vars =
            p.0.iter()
                .zip(dims)
                .map(|(v, d)| Var::from_tensor(&Tensor::from_vec(v.clone(), d, &Device::Cpu)?))
                .collect::<candle_core::Result<_>>()?;
        Ok(Self { vars })
    }

    fn step(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<f32> {
        let v = &self.vars;
        let bias = |b: &Var| b.reshape((1, (), 1, 1));
        let h = x.conv2d(&v[0], 0, 1, 1, 1)?.broadcast_add(&bias(&v[1])?)?;
        let h = h.relu()?.max_pool2d(2)?;
        let h = h.conv2d(&v[2], 0, 1, 1, 1)?.broadcast_add(&bias(&v[3])?)?;
        let h = h.relu()?.max_pool2d(2)?.flatten_from(1)?;
        let h = h.matmul(&v[4].t()?)?.broadcast_add(&v[5])?.relu()?;
        let logits = h.matmul(&v[6].t()?)?.broadcast_add(&v[7])?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)?;
        let grads = loss.backward()?;
        for var in v {
            grads
                .get(var)
                .ok_or(candle_core::Error::Msg("no grad".into()))?;
        }
        loss.to_scalar::<f32>()
    }
}

fn candle_batch(b: usize, seed: u64) -> candle_core::Result<(Tensor, Tensor)> {
    let shard = Shard::new(b, &Params::new(0), seed);
    let x = Tensor::from_vec(shard.x, (b, 1, 28, 28), &Device::Cpu)?;
    let y = Tensor::from_vec(shard.y, b, &Device::Cpu)?.to_dtype(DType::U32)?;
    Ok((x, y))
}

fn main() -> anyhow::Result<()> {
    // One gemm thread in candle too: each shard runs on its own core.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let params = Params::new(0);
    println!(
        "cnn forward + backward, wall ms per step (process CPU ms), median of 5 x {steps} steps"
    );
    println!("load average before: {}", load_average());
    println!("{:<44} {:>18} {:>18}", "", "kernels", "candle autograd");
    if std::env::var_os("KERNEL_BENCH_PROFILE").is_some() {
        for b in [32, 64] {
            let mut shard = Shard::new(b, &params, 1);
            let mut phases = Phases::on();
            for _ in 0..steps {
                phases.last = thread_cpu_s();
                shard.step_timed(&params, b, &mut phases);
            }
            let total: f64 = phases.totals.iter().map(|(_, t)| t).sum();
            println!(
                "one shard of {b}: {:.2} ms CPU per step",
                total * 1e3 / steps as f64
            );
            for (name, t) in &phases.totals {
                println!("  {name:<10} {:7.3} ms", t * 1e3 / steps as f64);
            }
        }
    }
    for b in [32, 64] {
        // One shard on one thread.
        let mut shard = Shard::new(b, &params, 1);
        let ours = time(steps, || {
            shard.step(&params, b);
        });
        let cnn = CandleCnn::new(&params)?;
        let (x, y) = candle_batch(b, 1)?;
        let theirs = time(steps.div_ceil(5), || {
            cnn.step(&x, &y).expect("candle step");
        });
        println!(
            "{:<44} {ours} {theirs}",
            format!("one shard of {b}, one thread")
        );
        // A whole step: two shards on two threads, gradients summed, SGD.
        let (mut s0, mut s1) = (Shard::new(b, &params, 2), Shard::new(b, &params, 3));
        let mut p = params.clone();
        let ours = time(steps, || {
            let pr = &p;
            pool.install(|| {
                rayon::join(|| s0.step(pr, 2 * b), || s1.step(pr, 2 * b));
            });
            sgd(&mut p, &s0.grads, &s1.grads, 1e-6);
        });
        let (x0, y0) = candle_batch(b, 2)?;
        let (x1, y1) = candle_batch(b, 3)?;
        let theirs = time(steps.div_ceil(5), || {
            pool.install(|| {
                let (r0, r1) = rayon::join(|| cnn.step(&x0, &y0), || cnn.step(&x1, &y1));
                r0.and(r1).expect("candle step");
            });
        });
        println!(
            "{:<44} {ours} {theirs}",
            format!("batch {} = two shards of {b} on two threads", 2 * b)
        );
    }
    println!("load average after: {}", load_average());
    Ok(())
}
