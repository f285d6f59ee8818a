//! Each layer's forward pass from candle ops, so it runs (and back-propagates through candle's
//! autograd) on any device and dtype. candle has no padded, overlapping or adaptive pooling,
//! and its pooling backward is exact only when the kernel equals the stride and divides the
//! input (it maps gradients back by nearest-neighbour upsampling): inputs are cropped to the
//! windows' extent first, and other windows are gathered explicitly.

use candle_core::{Device, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::plan::conv_padding;
use super::spec::{Padding, Pair};
use crate::error::Result;

/// `x Wᵀ + b` on the last dimension of `(B, F)` or `(B, C, F)`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = if x.rank() == 2 {
        x.matmul(&w.t()?)?
    } else {
        x.broadcast_matmul(&w.t()?)?
    };
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Keeps rows (dim 2) and columns (dim 3) `[0, h)` × `[0, w)`: the part windows read.
fn crop(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    let x = if h < xh {
        x.narrow(2, 0, h)?
    } else {
        x.clone()
    };
    Ok(if w < xw { x.narrow(3, 0, w)? } else { x })
}

/// Every `stride`-th index from `start`, `n` of them, as a u32 index tensor.
fn every(start: usize, stride: usize, n: usize, device: &Device) -> Result<Tensor> {
    let idx: Vec<u32> = (0..n).map(|o| (start + o * stride) as u32).collect();
    Ok(Tensor::from_vec(idx, n, device)?)
}

/// 2-D convolution with PyTorch's stride and padding (ints or pairs, `'same'`, `'valid'`).
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: Pair,
    padding: Padding,
) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let (_, _, h, wd) = x.dims4()?;
    let [top, bottom, left, right] = conv_padding(padding, Pair { h: kh, w: kw });
    let oh = (h + top + bottom - kh) / stride.h + 1;
    let ow = (wd + left + right - kw) / stride.w + 1;
    // candle's own padding and stride when they are square and every input row and column
    // is read (its backward sizes the input gradient from the height alone).
    let exact = (h + top + bottom - kh) % stride.h == 0 && (wd + left + right - kw) % stride.w == 0;
    let y = if top == bottom && left == right && top == left && stride.h == stride.w && exact {
        x.conv2d(w, top, stride.h, 1, 1)?
    } else {
        let x = x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let x = crop(&x, (oh - 1) * stride.h + kh, (ow - 1) * stride.w + kw)?;
        if stride.h == stride.w {
            x.conv2d(w, 0, stride.h, 1, 1)?
        } else {
            let y = x.conv2d(w, 0, 1, 1, 1)?;
            let dev = x.device();
            y.index_select(&every(0, stride.h, oh, dev)?, 2)?
                .index_select(&every(0, stride.w, ow, dev)?, 3)?
        }
    };
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
        None => y,
    })
}

/// How a pooling window is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    /// The maximum (padding counts as -∞).
    Max,
    /// The mean (padding zeros counted).
    Avg,
}

/// `x` with `p` rows above and below and `p` columns each side filled with `value`.
fn pad_with(x: &Tensor, p: Pair, value: f64) -> Result<Tensor> {
    let padded = x.pad_with_zeros(2, p.h, p.h)?.pad_with_zeros(3, p.w, p.w)?;
    if value == 0.0 {
        return Ok(padded);
    }
    let (_, _, h, w) = padded.dims4()?;
    let mut border = vec![0f32; h * w];
    for (i, v) in border.iter_mut().enumerate() {
        let (r, c) = (i / w, i % w);
        if r < p.h || r >= h - p.h || c < p.w || c >= w - p.w {
            *v = value as f32;
        }
    }
    let border = Tensor::from_vec(border, (1, 1, h, w), x.device())?.to_dtype(x.dtype())?;
    Ok(padded.broadcast_add(&border)?)
}

/// Max or average pooling with PyTorch's kernel, stride and padding.
///
/// Max pooling never uses candle's `max_pool2d`: its backward (candle 0.11) scales the
/// gradient of a unique maximum by 1/k² and misplaces it when the window does not divide the
/// input. The windows are stacked along a new dimension instead, and the first maximum of
/// each is gathered (so it alone takes the gradient, as in PyTorch).
pub(crate) fn pool2d(x: &Tensor, pool: Pool, k: Pair, s: Pair, p: Pair) -> Result<Tensor> {
    let x = if p.h + p.w > 0 {
        let fill = match pool {
            Pool::Max => f64::NEG_INFINITY,
            Pool::Avg => 0.0,
        };
        pad_with(x, p, fill)?
    } else {
        x.clone()
    };
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = ((h - k.h) / s.h + 1, (w - k.w) / s.w + 1);
    if k == s && pool == Pool::Avg {
        // Exact: the input cropped to whole windows, so the backward's upsampling lines up.
        let x = crop(&x, oh * k.h, ow * k.w)?;
        return Ok(x.avg_pool2d_with_stride((k.h, k.w), (s.h, s.w))?);
    }
    // Each window's values along a new last dimension: (B, C, H', W', kh·kw).
    let stacked = if k == s {
        crop(&x, oh * k.h, ow * k.w)?
            .reshape((b, c, oh, k.h, ow, k.w))?
            .permute((0, 1, 2, 4, 3, 5))?
            .reshape((b, c, oh, ow, k.h * k.w))?
    } else {
        let dev = x.device();
        let mut taps = Vec::with_capacity(k.h * k.w);
        for di in 0..k.h {
            let rows = x.index_select(&every(di, s.h, oh, dev)?, 2)?;
            for dj in 0..k.w {
                taps.push(rows.index_select(&every(dj, s.w, ow, dev)?, 3)?);
            }
        }
        Tensor::stack(&taps, 4)?
    };
    Ok(match pool {
        Pool::Max => {
            let at = stacked.argmax_keepdim(4)?;
            stacked.gather(&at, 4)?.squeeze(4)?
        }
        Pool::Avg => stacked.mean(4)?,
    })
}

/// Mean over `[floor(i·n/o), ceil((i+1)·n/o))` of dimension `dim` for each of `o` bins.
fn adaptive_mean(x: &Tensor, dim: usize, o: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    if n % o == 0 && n / o == 1 {
        return Ok(x.clone());
    }
    let bins = (0..o)
        .map(|i| {
            let start = i * n / o;
            let end = ((i + 1) * n).div_ceil(o);
            Ok(x.narrow(dim, start, end - start)?.mean_keepdim(dim)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&bins, dim)?)
}

/// PyTorch's adaptive average pooling to `out` bins (rows, then columns: the mean over a
/// rectangle is the mean of its row means).
pub(crate) fn adaptive_avg_pool2d(x: &Tensor, out: Pair) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h % out.h == 0 && w % out.w == 0 {
        let k = (h / out.h, w / out.w);
        return Ok(x.avg_pool2d_with_stride(k, k)?);
    }
    adaptive_mean(&adaptive_mean(x, 2, out.h)?, 3, out.w)
}

/// Dimensions a batch norm averages over: all but the channels (dim 1).
fn stat_dims(rank: usize) -> Vec<usize> {
    std::iter::once(0).chain(2..rank).collect()
}

/// `(1, C, 1, …)` for a per-channel vector broadcast against a rank-`rank` batch.
fn per_channel(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut dims = vec![1; rank];
    dims[1] = v.elem_count();
    Ok(v.reshape(dims)?)
}

/// Batch normalisation with the batch's own statistics: the output, and the batch mean and
/// biased variance per channel (for the running statistics).
pub(crate) fn batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = stat_dims(x.rank());
    let mean = x.mean_keepdim(dims.clone())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims)?;
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&per_channel(w, x.rank())?)?
        .broadcast_add(&per_channel(b, x.rank())?)?;
    Ok((y, mean.flatten_all()?, var.flatten_all()?))
}

/// Batch normalisation with running statistics (evaluation).
pub(crate) fn batch_norm_eval(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let r = x.rank();
    Ok(x.broadcast_sub(&per_channel(mean, r)?)?
        .broadcast_div(&per_channel(&(var + eps)?.sqrt()?, r)?)?
        .broadcast_mul(&per_channel(w, r)?)?
        .broadcast_add(&per_channel(b, r)?)?)
}

/// The new running statistics after a batch with `mean` and biased `var` over `n` values per
/// channel, as PyTorch updates them: `(1 - m)·old + m·new`, the variance unbiased.
pub(crate) fn running_update(
    old_mean: &Tensor,
    old_var: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    n: usize,
    momentum: f64,
) -> Result<(Tensor, Tensor)> {
    let unbiased = (var.detach() * (n as f64 / (n - 1) as f64))?;
    let m = ((old_mean * (1.0 - momentum))? + (mean.detach() * momentum)?)?;
    let v = ((old_var * (1.0 - momentum))? + (unbiased * momentum)?)?;
    Ok((m, v))
}

/// Normalises each sample over all its values, then scales and shifts elementwise.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let dims: Vec<usize> = (1..x.rank()).collect();
    let mean = x.mean_keepdim(dims.clone())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims)?;
    Ok(centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(&w.unsqueeze(0)?)?
        .broadcast_add(&b.unsqueeze(0)?)?)
}

/// x for x > 0, `slope`·x below (any slope, unlike `max(x, slope·x)`).
pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok((x.relu()? - (x.neg()?.relu()? * slope)?)?)
}

/// Where a dropout mask comes from: the same (seed, step, layer, global row) always gives the
/// same row of the mask, however the batch is cut into shards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskSource {
    /// The model's seed.
    pub seed: u64,
    /// Which training forward pass.
    pub step: u64,
    /// The layer's index.
    pub layer: usize,
    /// Global index of the batch's first row.
    pub first_row: usize,
}

/// The dropout multipliers for `rows` rows of `per_row` values: 0 with probability `p`,
/// 1/(1-p) otherwise. Each row reads its own stretch of one ChaCha8 stream per (seed, layer,
/// step), found by seeking, so rows need not be drawn in order.
pub(crate) fn dropout_mask(src: MaskSource, rows: usize, per_row: usize, p: f64) -> Vec<f32> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&src.seed.to_le_bytes());
    key[8..16].copy_from_slice(&(src.layer as u64).to_le_bytes());
    key[16..].copy_from_slice(b"lrfind dropout\0\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(src.step);
    // Keep a value when its 32-bit draw is at least p·2³² (never when p = 1).
    let threshold = (p * 4_294_967_296.0).round() as u64;
    let scale = if p < 1.0 {
        (1.0 / (1.0 - p)) as f32
    } else {
        0.0
    };
    let mut mask = Vec::with_capacity(rows * per_row);
    for r in 0..rows {
        rng.set_word_pos((src.first_row + r) as u128 * per_row as u128);
        mask.extend((0..per_row).map(|_| {
            if u64::from(rng.next_u32()) >= threshold {
                scale
            } else {
                0.0
            }
        }));
    }
    mask
}

/// Dropout on a batch: `x` times its mask (nothing to do for p = 0).
pub(crate) fn dropout(x: &Tensor, p: f64, src: MaskSource) -> Result<Tensor> {
    if p == 0.0 {
        return Ok(x.clone());
    }
    let rows = x.dim(0)?;
    let per_row = x.elem_count() / rows.max(1);
    let mask = dropout_mask(src, rows, per_row, p);
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// The sigmoid, from candle-nn (it has a backward on every device).
pub(crate) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(x)?)
}

/// The values of `x` as f64 (for tests and checks).
#[cfg(test)]
pub(crate) fn values(x: &Tensor) -> Vec<f64> {
    x.to_dtype(candle_core::DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("a float tensor")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    const CPU: Device = Device::Cpu;

    /// A deterministic f64 tensor with distinct values (no ties for max pooling).
    fn ramp(dims: &[usize], seed: u64) -> Tensor {
        let n: usize = dims.iter().product();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f64> = (0..n)
            .map(|_| f64::from(rng.next_u32()) / 4_294_967_296.0 * 2.0 - 1.0)
            .collect();
        Tensor::from_vec(v, dims, &CPU).unwrap()
    }

    /// PyTorch's pooling written out with loops: windows over a -∞- or zero-padded input.
    fn pool_reference(x: &Tensor, pool: Pool, k: Pair, s: Pair, p: Pair) -> Vec<f64> {
        let (b, c, h, w) = x.dims4().unwrap();
        let v = values(x);
        let (oh, ow) = ((h + 2 * p.h - k.h) / s.h + 1, (w + 2 * p.w - k.w) / s.w + 1);
        let mut out = Vec::new();
        for n in 0..b * c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = if pool == Pool::Max {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    };
                    for di in 0..k.h {
                        for dj in 0..k.w {
                            let (r, q) = (
                                (i * s.h + di) as isize - p.h as isize,
                                (j * s.w + dj) as isize - p.w as isize,
                            );
                            if r < 0 || q < 0 || r >= h as isize || q >= w as isize {
                                continue;
                            }
                            let x = v[n * h * w + r as usize * w + q as usize];
                            acc = if pool == Pool::Max {
                                acc.max(x)
                            } else {
                                acc + x
                            };
                        }
                    }
                    out.push(if pool == Pool::Max {
                        acc
                    } else {
                        acc / (k.h * k.w) as f64
                    });
                }
            }
        }
        out
    }

    /// d(sum(f(x) · g))/dx by central differences, one input value at a time.
    fn numeric_grad(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, g: &Tensor) -> Vec<f64> {
        let base = values(x);
        let h = 1e-6;
        (0..base.len())
            .map(|i| {
                let at = |d: f64| {
                    let mut v = base.clone();
                    v[i] += d;
                    let t = Tensor::from_vec(v, x.shape(), &CPU).unwrap();
                    (f(&t) * g)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap()
                };
                (at(h) - at(-h)) / (2.0 * h)
            })
            .collect()
    }

    /// candle's gradient of sum(f(x) · g) with respect to x.
    fn autograd(f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, g: &Tensor) -> Vec<f64> {
        let var = candle_core::Var::from_tensor(x).unwrap();
        let out = f(var.as_tensor());
        let store = (out * g).unwrap().sum_all().unwrap().backward().unwrap();
        values(store.get(var.as_tensor()).unwrap())
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn pooling_matches_the_loops_forward_and_backward() {
        let sq = Pair::square;
        let cases = [
            (Pool::Max, sq(2), sq(2), sq(0), [2, 3, 7, 5]),
            (Pool::Max, sq(3), sq(3), sq(0), [1, 2, 9, 11]),
            (Pool::Max, sq(3), sq(2), sq(1), [2, 2, 8, 7]),
            (
                Pool::Max,
                Pair { h: 2, w: 3 },
                Pair { h: 1, w: 2 },
                Pair { h: 1, w: 1 },
                [1, 2, 5, 6],
            ),
            (Pool::Avg, sq(2), sq(2), sq(0), [2, 3, 7, 5]),
            (Pool::Avg, sq(2), sq(2), sq(1), [1, 2, 6, 6]),
            (Pool::Avg, sq(3), sq(1), sq(1), [1, 2, 5, 4]),
            (
                Pool::Avg,
                Pair { h: 3, w: 2 },
                Pair { h: 2, w: 3 },
                sq(0),
                [1, 1, 8, 9],
            ),
        ];
        for (i, (pool, k, s, p, dims)) in cases.into_iter().enumerate() {
            let x = ramp(&dims, i as u64);
            let f = move |x: &Tensor| pool2d(x, pool, k, s, p).unwrap();
            let y = f(&x);
            let what = format!("{pool:?} k={k} s={s} p={p} on {dims:?}");
            assert_close(
                &values(&y),
                &pool_reference(&x, pool, k, s, p),
                1e-12,
                &what,
            );
            let g = ramp(y.dims(), 100 + i as u64);
            assert_close(
                &autograd(&f, &x, &g),
                &numeric_grad(&f, &x, &g),
                1e-6,
                &what,
            );
        }
    }

    /// The first of tied maxima takes the gradient, as in PyTorch.
    #[test]
    fn tied_maxima_give_the_gradient_to_the_first() {
        let x = Tensor::new(
            &[[[[1f64, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]],
            &CPU,
        )
        .unwrap();
        let f = |x: &Tensor| {
            pool2d(
                x,
                Pool::Max,
                Pair::square(2),
                Pair::square(1),
                Pair::square(0),
            )
            .unwrap()
        };
        let g = Tensor::ones((1, 1, 2, 2), DType::F64, &CPU).unwrap();
        // Windows at (0,0), (0,1), (1,0), (1,1) all find their first 1 at (0,0), (0,1), (1,0), (1,1).
        assert_eq!(
            autograd(&f, &x, &g),
            [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
        // Non-overlapping windows too: a window of four equal values gives all to its first.
        let x = Tensor::new(&[[[[2f64, 2.0, 0.0, 1.0], [2.0, 2.0, 1.0, 0.0]]]], &CPU).unwrap();
        let f = |x: &Tensor| {
            pool2d(
                x,
                Pool::Max,
                Pair::square(2),
                Pair::square(2),
                Pair::square(0),
            )
            .unwrap()
        };
        let g = Tensor::new(&[[[[5f64, 7.0]]]], &CPU).unwrap();
        assert_eq!(
            autograd(&f, &x, &g),
            [5.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    /// Why max pooling avoids candle's own op: its backward gives a unique maximum 1/k² of
    /// the gradient. When this test fails, candle has fixed it and `pool2d` may use it.
    #[test]
    fn candles_max_pool_backward_is_still_scaled() {
        let x = Tensor::new(&[[[[1f64, 2.0], [3.0, 4.0]]]], &CPU).unwrap();
        let f = |x: &Tensor| x.max_pool2d(2).unwrap();
        let g = Tensor::ones((1, 1, 1, 1), DType::F64, &CPU).unwrap();
        assert_eq!(autograd(&f, &x, &g), [0.0, 0.0, 0.0, 0.25]);
    }

    #[test]
    fn convolution_gradients_for_every_padding_and_stride() {
        let sq = Pair::square;
        let cases = [
            (sq(1), Padding::Zeros(sq(0)), [2, 2, 6, 5], [3, 2, 3, 3]),
            (sq(2), Padding::Zeros(sq(1)), [2, 2, 7, 6], [3, 2, 3, 3]),
            (sq(2), Padding::Zeros(sq(0)), [1, 2, 8, 7], [2, 2, 3, 3]),
            (sq(2), Padding::Zeros(sq(0)), [2, 2, 7, 9], [2, 2, 3, 3]),
            (sq(3), Padding::Zeros(sq(2)), [1, 1, 8, 8], [2, 1, 4, 4]),
            (sq(2), Padding::Zeros(sq(1)), [1, 1, 7, 7], [2, 1, 3, 3]),
            (
                Pair { h: 2, w: 1 },
                Padding::Zeros(Pair { h: 1, w: 2 }),
                [1, 1, 7, 5],
                [2, 1, 3, 5],
            ),
            (sq(1), Padding::Same, [1, 2, 5, 6], [2, 2, 4, 3]),
            (sq(3), Padding::Valid, [1, 1, 9, 10], [1, 1, 2, 2]),
        ];
        for (i, (stride, padding, xd, wd)) in cases.into_iter().enumerate() {
            let x = ramp(&xd, i as u64);
            let w = ramp(&wd, 50 + i as u64);
            let b = ramp(&wd[..1], 70 + i as u64);
            let what = format!("stride={stride} padding={padding} x={xd:?} w={wd:?}");
            let fx = |x: &Tensor| conv2d(x, &w, Some(&b), stride, padding).unwrap();
            let y = fx(&x);
            // Forward against candle's own symmetric conv on an explicitly padded input.
            let [t, bo, l, r] = conv_padding(padding, Pair { h: wd[2], w: wd[3] });
            let padded = x
                .pad_with_zeros(2, t, bo)
                .unwrap()
                .pad_with_zeros(3, l, r)
                .unwrap();
            let dense = padded.conv2d(&w, 0, 1, 1, 1).unwrap();
            let (oh, ow) = (y.dim(2).unwrap(), y.dim(3).unwrap());
            let want = dense
                .index_select(&every(0, stride.h, oh, &CPU).unwrap(), 2)
                .unwrap()
                .index_select(&every(0, stride.w, ow, &CPU).unwrap(), 3)
                .unwrap()
                .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
                .unwrap();
            assert_close(&values(&y), &values(&want), 1e-12, &what);
            let g = ramp(y.dims(), 100 + i as u64);
            assert_close(
                &autograd(&fx, &x, &g),
                &numeric_grad(&fx, &x, &g),
                1e-6,
                &what,
            );
            let fw = |w: &Tensor| conv2d(&x, w, Some(&b), stride, padding).unwrap();
            assert_close(
                &autograd(&fw, &w, &g),
                &numeric_grad(&fw, &w, &g),
                1e-6,
                &what,
            );
        }
    }

    /// PyTorch's adaptive average pooling written out: bin i spans
    /// [floor(i·n/o), ceil((i+1)·n/o)).
    fn adaptive_reference(x: &Tensor, o: Pair) -> Vec<f64> {
        let (b, c, h, w) = x.dims4().unwrap();
        let v = values(x);
        let mut out = Vec::new();
        for n in 0..b * c {
            for i in 0..o.h {
                for j in 0..o.w {
                    let (r0, r1) = (i * h / o.h, ((i + 1) * h).div_ceil(o.h));
                    let (c0, c1) = (j * w / o.w, ((j + 1) * w).div_ceil(o.w));
                    let mut s = 0.0;
                    for r in r0..r1 {
                        for q in c0..c1 {
                            s += v[n * h * w + r * w + q];
                        }
                    }
                    out.push(s / ((r1 - r0) * (c1 - c0)) as f64);
                }
            }
        }
        out
    }

    #[test]
    fn adaptive_pooling_uses_pytorch_bins() {
        // 5 → 3 bins: [0, 2), [1, 4), [3, 5); 5 → 7 bins repeat rows; 4 → 2 divides.
        for (i, (dims, o)) in [
            ([1, 1, 5, 4], Pair { h: 3, w: 2 }),
            ([2, 3, 5, 4], Pair { h: 7, w: 4 }),
            ([1, 2, 6, 9], Pair { h: 3, w: 3 }),
            ([1, 2, 7, 7], Pair::square(1)),
            ([1, 1, 10, 3], Pair { h: 4, w: 2 }),
        ]
        .into_iter()
        .enumerate()
        {
            let x = ramp(&dims, i as u64);
            let f = move |x: &Tensor| adaptive_avg_pool2d(x, o).unwrap();
            let y = f(&x);
            let what = format!("{dims:?} → {o}");
            assert_eq!(y.dims(), [dims[0], dims[1], o.h, o.w], "{what}");
            assert_close(&values(&y), &adaptive_reference(&x, o), 1e-12, &what);
            let g = ramp(y.dims(), 50 + i as u64);
            assert_close(
                &autograd(&f, &x, &g),
                &numeric_grad(&f, &x, &g),
                1e-6,
                &what,
            );
        }
    }

    #[test]
    fn batch_norm_follows_pytorch_formulas() {
        // Two samples of two channels of 1x2 values: per channel mean and biased variance
        // over the four values, the running statistics with the unbiased variance.
        let x = Tensor::new(
            &[[[[1f64, 2.0]], [[0.0, 4.0]]], [[[3.0, 6.0]], [[2.0, 2.0]]]],
            &CPU,
        )
        .unwrap();
        let w = Tensor::new(&[2f64, 0.5], &CPU).unwrap();
        let b = Tensor::new(&[0.1f64, -1.0], &CPU).unwrap();
        let (y, mean, var) = batch_norm_train(&x, &w, &b, 1e-5).unwrap();
        let (m0, m1) = (3.0, 2.0);
        let (v0, v1) = ((4.0 + 1.0 + 0.0 + 9.0) / 4.0, (4.0 + 4.0 + 0.0 + 0.0) / 4.0);
        assert_close(&values(&mean), &[m0, m1], 1e-12, "mean");
        assert_close(&values(&var), &[v0, v1], 1e-12, "var");
        let n = |v: f64, m: f64, var: f64, w: f64, b: f64| (v - m) / (var + 1e-5f64).sqrt() * w + b;
        let want = [
            n(1.0, m0, v0, 2.0, 0.1),
            n(2.0, m0, v0, 2.0, 0.1),
            n(0.0, m1, v1, 0.5, -1.0),
            n(4.0, m1, v1, 0.5, -1.0),
            n(3.0, m0, v0, 2.0, 0.1),
            n(6.0, m0, v0, 2.0, 0.1),
            n(2.0, m1, v1, 0.5, -1.0),
            n(2.0, m1, v1, 0.5, -1.0),
        ];
        assert_close(&values(&y), &want, 1e-12, "train output");
        let (rm, rv) = running_update(
            &Tensor::new(&[0f64, 1.0], &CPU).unwrap(),
            &Tensor::new(&[1f64, 2.0], &CPU).unwrap(),
            &mean,
            &var,
            4,
            0.1,
        )
        .unwrap();
        assert_close(
            &values(&rm),
            &[0.9 * 0.0 + 0.1 * m0, 0.9 * 1.0 + 0.1 * m1],
            1e-12,
            "running mean",
        );
        assert_close(
            &values(&rv),
            &[0.9 + 0.1 * v0 * 4.0 / 3.0, 1.8 + 0.1 * v1 * 4.0 / 3.0],
            1e-12,
            "running var",
        );
        let e = batch_norm_eval(&x, &w, &b, &rm, &rv, 1e-5).unwrap();
        let rmv = values(&rm);
        let rvv = values(&rv);
        assert_close(
            &values(&e.narrow(0, 0, 1).unwrap().flatten_all().unwrap()),
            &[
                n(1.0, rmv[0], rvv[0], 2.0, 0.1),
                n(2.0, rmv[0], rvv[0], 2.0, 0.1),
                n(0.0, rmv[1], rvv[1], 0.5, -1.0),
                n(4.0, rmv[1], rvv[1], 0.5, -1.0),
            ],
            1e-12,
            "eval output",
        );
        // Rank 2 (BatchNorm1d on features): statistics over the batch only.
        let x = Tensor::new(&[[1f64, 10.0], [3.0, 30.0]], &CPU).unwrap();
        let (y, mean, var) = batch_norm_train(&x, &w, &b, 1e-5).unwrap();
        assert_close(&values(&mean), &[2.0, 20.0], 1e-12, "1d mean");
        assert_close(&values(&var), &[1.0, 100.0], 1e-12, "1d var");
        assert_close(
            &values(&y),
            &[
                n(1.0, 2.0, 1.0, 2.0, 0.1),
                n(10.0, 20.0, 100.0, 0.5, -1.0),
                n(3.0, 2.0, 1.0, 2.0, 0.1),
                n(30.0, 20.0, 100.0, 0.5, -1.0),
            ],
            1e-12,
            "1d out",
        );
        // And its gradient through the batch statistics.
        let x = ramp(&[3, 2, 2, 2], 4);
        let g = ramp(&[3, 2, 2, 2], 5);
        let f = |x: &Tensor| batch_norm_train(x, &w, &b, 1e-5).unwrap().0;
        assert_close(
            &autograd(&f, &x, &g),
            &numeric_grad(&f, &x, &g),
            1e-5,
            "bn grad",
        );
    }

    #[test]
    fn layer_norm_normalises_each_sample() {
        let x = Tensor::new(&[[1f64, 2.0, 3.0, 6.0], [0.0, 0.0, 1.0, -1.0]], &CPU).unwrap();
        let w = Tensor::new(&[1f64, 2.0, 1.0, 0.5], &CPU).unwrap();
        let b = Tensor::new(&[0f64, 0.0, 1.0, 0.0], &CPU).unwrap();
        let y = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let (m, v) = (3.0, (4.0 + 1.0 + 0.0 + 9.0) / 4.0);
        let s = (v + 1e-5f64).sqrt();
        let s2 = (0.5 + 1e-5f64).sqrt();
        assert_close(
            &values(&y),
            &[
                (1.0 - m) / s,
                2.0 * (2.0 - m) / s,
                (3.0 - m) / s + 1.0,
                0.5 * (6.0 - m) / s,
                0.0,
                0.0,
                1.0 / s2 + 1.0,
                -0.5 / s2,
            ],
            1e-12,
            "layer norm",
        );
    }

    #[test]
    fn activations() {
        let x = Tensor::new(&[-2f64, -0.5, 0.0, 1.5], &CPU).unwrap();
        assert_close(
            &values(&leaky_relu(&x, 0.1).unwrap()),
            &[-0.2, -0.05, 0.0, 1.5],
            1e-12,
            "leaky",
        );
        assert_close(
            &values(&leaky_relu(&x, -2.0).unwrap()),
            &[4.0, 1.0, 0.0, 1.5],
            1e-12,
            "leaky < 0",
        );
        let sig: Vec<f64> = [-2f64, -0.5, 0.0, 1.5]
            .iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        assert_close(&values(&sigmoid(&x).unwrap()), &sig, 1e-12, "sigmoid");
    }

    #[test]
    fn dropout_masks_depend_on_seed_step_layer_and_global_row_only() {
        let src = MaskSource {
            seed: 7,
            step: 3,
            layer: 2,
            first_row: 0,
        };
        let whole = dropout_mask(src, 10, 33, 0.25);
        let a = dropout_mask(
            MaskSource {
                first_row: 0,
                ..src
            },
            4,
            33,
            0.25,
        );
        let b = dropout_mask(
            MaskSource {
                first_row: 4,
                ..src
            },
            6,
            33,
            0.25,
        );
        assert_eq!(
            [a, b].concat(),
            whole,
            "shards see the rows of the whole batch"
        );
        assert_eq!(
            dropout_mask(src, 10, 33, 0.25),
            whole,
            "same inputs, same mask"
        );
        for other in [
            MaskSource { step: 4, ..src },
            MaskSource { layer: 3, ..src },
            MaskSource { seed: 8, ..src },
        ] {
            assert_ne!(dropout_mask(other, 10, 33, 0.25), whole);
        }
        // Values are 0 or 1/(1-p), about p of them zero.
        let big = dropout_mask(src, 100, 1000, 0.25);
        let zeros = big.iter().filter(|v| **v == 0.0).count() as f64 / big.len() as f64;
        assert!((zeros - 0.25).abs() < 0.005, "{zeros}");
        assert!(big
            .iter()
            .all(|v| *v == 0.0 || *v == (1.0f64 / 0.75) as f32));
        assert!(dropout_mask(src, 3, 5, 1.0).iter().all(|v| *v == 0.0));
        assert!(dropout_mask(src, 3, 5, 0.0).iter().all(|v| *v == 1.0));
    }
}
