use candle_core::{DType, Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (64, 784), &d)?;
    let w = Tensor::randn(0f32, 1.0, (256, 784), &d)?;
    let g = Tensor::randn(0f32, 1.0, (64, 256), &d)?;
    for (name, f) in [
        (
            "x@wT",
            Box::new(|| x.matmul(&w.t()?)) as Box<dyn Fn() -> candle_core::Result<Tensor>>,
        ),
        (
            "x@wT contiguous",
            Box::new(|| x.matmul(&w.t()?.contiguous()?)),
        ),
        ("gT@x (dW)", Box::new(|| g.t()?.matmul(&x))),
        ("g@w (dx)", Box::new(|| g.matmul(&w))),
        ("sum0", Box::new(|| g.sum(0))),
        ("relu", Box::new(|| g.relu())),
        (
            "u8->f32",
            Box::new(|| x.to_dtype(DType::U8)?.to_dtype(DType::F32)),
        ),
    ] {
        for _ in 0..20 {
            f()?;
        }
        let t = Instant::now();
        let n = 500;
        for _ in 0..n {
            f()?;
        }
        let dt = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "{name}: {:.1} us, {:.1} GFLOP/s (if 64x784x256)",
            dt * 1e6,
            2.0 * 64.0 * 784.0 * 256.0 / dt / 1e9
        );
    }
    Ok(())
}
