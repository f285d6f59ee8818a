//! Pooling over NCHW slices, PyTorch's semantics (floor mode, no dilation):
//! `MaxPool2d` keeps the position of each window's maximum for its backward, `AvgPool2d`
//! counts the padding in its divisor (`count_include_pad=True`), `AdaptiveAvgPool2d` uses
//! PyTorch's bins (`start = ⌊i·H/out⌋`, `end = ⌈(i+1)·H/out⌉`).

use super::conv::out_size;
use super::reduce;

/// Sizes of a pooling layer: input `(batch, channels, height, width)`; pairs are
/// (rows, columns). PyTorch requires `padding ≤ kernel / 2`, so every window holds at least
/// one input value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dShape {
    /// Images in the batch (or shard).
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal), at least 1.
    pub stride: (usize, usize),
    /// Implicit padding on each side (−∞ for max pooling, 0 for average pooling).
    pub padding: (usize, usize),
}

impl Pool2dShape {
    /// Output (height, width).
    pub fn out_hw(&self) -> (usize, usize) {
        (
            out_size(self.height, self.kernel.0, self.stride.0, self.padding.0),
            out_size(self.width, self.kernel.1, self.stride.1, self.padding.1),
        )
    }

    /// Values in the input.
    pub fn in_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Values in the output.
    pub fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.batch * self.channels * oh * ow
    }

    /// Number of (image, channel) planes.
    fn planes(&self) -> usize {
        self.batch * self.channels
    }
}

/// Each output position's window clipped to the input, along one axis, and the window's
/// length clipped only to the padded input (the divisor of `count_include_pad`).
fn windows(out: usize, size: usize, kernel: usize, stride: usize, pad: usize) -> Vec<Window> {
    (0..out)
        .map(|o| {
            // Signed arithmetic on the padded coordinate: start may lie in the padding.
            let start = (o * stride) as isize - pad as isize;
            let end = (start + kernel as isize).min((size + pad) as isize);
            let padded = (end - start) as usize;
            let lo = start.max(0) as usize;
            let hi = (end.min(size as isize).max(0) as usize).max(lo);
            Window { lo, hi, padded }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Window {
    lo: usize,
    hi: usize,
    padded: usize,
}

/// `y` = the maximum of each window; `argmax` (same length as `y`) = its position
/// `h·W + w` in the input plane, for [`max_pool2d_backward`]. A NaN wins, as in PyTorch.
pub fn max_pool2d_forward(s: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    if s.kernel == (2, 2) && s.stride == (2, 2) && s.padding == (0, 0) {
        max_pool_2x2(s, x, y, argmax);
    } else {
        max_pool_general(s, x, y, argmax);
    }
}

fn max_pool_general(s: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow) = s.out_hw();
    let (h, w) = (s.height, s.width);
    let rows = windows(oh, h, s.kernel.0, s.stride.0, s.padding.0);
    let cols = windows(ow, w, s.kernel.1, s.stride.1, s.padding.1);
    for n in 0..s.planes() {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let out = &mut y[n * oh * ow..(n + 1) * oh * ow];
        let idx = &mut argmax[n * oh * ow..(n + 1) * oh * ow];
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let (mut best, mut at) = (f32::NEG_INFINITY, u32::MAX);
                for hh in r.lo..r.hi {
                    for ww in c.lo..c.hi {
                        let v = plane[hh * w + ww];
                        if v > best || v.is_nan() || at == u32::MAX {
                            (best, at) = (v, (hh * w + ww) as u32);
                        }
                    }
                }
                out[i * ow + j] = best;
                idx[i * ow + j] = at;
            }
        }
    }
}

/// The common 2×2, stride-2 case without the general loop's bookkeeping, branch-free:
/// after a ReLU half the values are 0, and ties would make branches unpredictable.
fn max_pool_2x2(s: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow) = s.out_hw();
    let (h, w) = (s.height, s.width);
    let w32 = w as u32;
    for n in 0..s.planes() {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let out = &mut y[n * oh * ow..(n + 1) * oh * ow];
        let idx = &mut argmax[n * oh * ow..(n + 1) * oh * ow];
        for i in 0..oh {
            let top = &plane[2 * i * w..][..2 * ow];
            let bottom = &plane[(2 * i + 1) * w..][..2 * ow];
            let out = &mut out[i * ow..(i + 1) * ow];
            let idx = &mut idx[i * ow..(i + 1) * ow];
            let row = (2 * i * w) as u32;
            for (j, (((o, at), t), b)) in out
                .iter_mut()
                .zip(idx.iter_mut())
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
                .enumerate()
            {
                // PyTorch's scan: a later value wins when greater, or when it is NaN.
                let (mut best, mut k) = (t[0], 0u32);
                for (v, off) in [(t[1], 1), (b[0], w32), (b[1], w32 + 1)] {
                    let take = v > best || v.is_nan();
                    best = if take { v } else { best };
                    k = if take { off } else { k };
                }
                *o = best;
                *at = row + 2 * j as u32 + k;
            }
        }
    }
}

/// `dx` = `dy` scattered to each window's maximum (summed where windows overlap).
pub fn max_pool2d_backward(s: &Pool2dShape, argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    let (oh, ow) = s.out_hw();
    let hw = s.height * s.width;
    for n in 0..s.planes() {
        // Plane by plane, so the scatter finds its zeroed plane still in L1.
        let plane = &mut dx[n * hw..(n + 1) * hw];
        plane.fill(0.0);
        let g = &dy[n * oh * ow..(n + 1) * oh * ow];
        let idx = &argmax[n * oh * ow..(n + 1) * oh * ow];
        for (&i, &v) in idx.iter().zip(g) {
            // u32::MAX marks a window with no input value (padding > kernel/2).
            if let Some(d) = plane.get_mut(i as usize) {
                *d += v;
            }
        }
    }
}

/// `y` = each window's mean, the padding counted as zeros (`count_include_pad=True`).
pub fn avg_pool2d_forward(s: &Pool2dShape, x: &[f32], y: &mut [f32]) {
    let (oh, ow) = s.out_hw();
    let (h, w) = (s.height, s.width);
    let rows = windows(oh, h, s.kernel.0, s.stride.0, s.padding.0);
    let cols = windows(ow, w, s.kernel.1, s.stride.1, s.padding.1);
    for n in 0..s.planes() {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let out = &mut y[n * oh * ow..(n + 1) * oh * ow];
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let mut sum = 0f32;
                for hh in r.lo..r.hi {
                    sum += reduce::sum(&plane[hh * w + c.lo..hh * w + c.hi]);
                }
                out[i * ow + j] = sum / (r.padded * c.padded) as f32;
            }
        }
    }
}

/// Gradient of [`avg_pool2d_forward`]: each output's gradient spread evenly over its window.
pub fn avg_pool2d_backward(s: &Pool2dShape, dy: &[f32], dx: &mut [f32]) {
    let (oh, ow) = s.out_hw();
    let (h, w) = (s.height, s.width);
    let rows = windows(oh, h, s.kernel.0, s.stride.0, s.padding.0);
    let cols = windows(ow, w, s.kernel.1, s.stride.1, s.padding.1);
    dx[..s.in_len()].fill(0.0);
    spread(s.planes(), (h, w), &rows, &cols, dy, dx);
}

/// Adds `dy[i][j] / divisor` over window `(rows[i], cols[j])` of each plane of `dx`.
fn spread(
    planes: usize,
    (h, w): (usize, usize),
    rows: &[Window],
    cols: &[Window],
    dy: &[f32],
    dx: &mut [f32],
) {
    let (oh, ow) = (rows.len(), cols.len());
    for n in 0..planes {
        let plane = &mut dx[n * h * w..(n + 1) * h * w];
        let g = &dy[n * oh * ow..(n + 1) * oh * ow];
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let v = g[i * ow + j] / (r.padded * c.padded) as f32;
                for hh in r.lo..r.hi {
                    for d in &mut plane[hh * w + c.lo..hh * w + c.hi] {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// Sizes of an adaptive average pooling: input `(batch, channels, height, width)` to
/// `(batch, channels, out.0, out.1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptivePoolShape {
    /// Images in the batch (or shard).
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output (height, width), each at least 1.
    pub out: (usize, usize),
}

impl AdaptivePoolShape {
    /// Values in the input.
    pub fn in_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Values in the output.
    pub fn out_len(&self) -> usize {
        self.batch * self.channels * self.out.0 * self.out.1
    }
}

/// PyTorch's adaptive bins along one axis: `[⌊i·size/out⌋, ⌈(i+1)·size/out⌉)`.
fn bins(out: usize, size: usize) -> Vec<Window> {
    (0..out)
        .map(|i| {
            let lo = i * size / out;
            let hi = ((i + 1) * size).div_ceil(out);
            Window {
                lo,
                hi,
                padded: hi - lo,
            }
        })
        .collect()
}

/// `y` = the mean of each adaptive bin.
pub fn adaptive_avg_pool2d_forward(s: &AdaptivePoolShape, x: &[f32], y: &mut [f32]) {
    let (oh, ow) = s.out;
    let (h, w) = (s.height, s.width);
    let rows = bins(oh, h);
    let cols = bins(ow, w);
    for n in 0..s.batch * s.channels {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let out = &mut y[n * oh * ow..(n + 1) * oh * ow];
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let mut sum = 0f32;
                for hh in r.lo..r.hi {
                    sum += reduce::sum(&plane[hh * w + c.lo..hh * w + c.hi]);
                }
                out[i * ow + j] = sum / (r.padded * c.padded) as f32;
            }
        }
    }
}

/// Gradient of [`adaptive_avg_pool2d_forward`].
pub fn adaptive_avg_pool2d_backward(s: &AdaptivePoolShape, dy: &[f32], dx: &mut [f32]) {
    let rows = bins(s.out.0, s.height);
    let cols = bins(s.out.1, s.width);
    dx[..s.in_len()].fill(0.0);
    spread(
        s.batch * s.channels,
        (s.height, s.width),
        &rows,
        &cols,
        dy,
        dx,
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, grad, loss_with, random, tensor, values, var};
    use super::*;
    use candle_core::{Device, Tensor};

    /// candle autograd's pooling built from ops it can differentiate for any stride and
    /// padding (its own `max_pool2d`/`avg_pool2d` backward handles only stride = kernel on
    /// sizes the kernel divides): pad (−1e30 for max, 0 for mean), gather each kernel
    /// offset's strided grid with `index_select`, stack, reduce.
    fn reference(s: &Pool2dShape, x: &Tensor, max: bool) -> Tensor {
        let (oh, ow) = s.out_hw();
        let (ph, pw) = s.padding;
        let (hp, wp) = (s.height + 2 * ph, s.width + 2 * pw);
        let xp = x.pad_with_zeros(2, ph, ph).unwrap();
        let xp = xp.pad_with_zeros(3, pw, pw).unwrap();
        let xp = if max {
            let fill: Vec<f32> = (0..hp * wp)
                .map(|i| {
                    let (r, c) = (i / wp, i % wp);
                    let inside = r >= ph && r < ph + s.height && c >= pw && c < pw + s.width;
                    if inside {
                        0.0
                    } else {
                        -1e30
                    }
                })
                .collect();
            xp.broadcast_add(&tensor(&fill, &[hp, wp])).unwrap()
        } else {
            xp
        };
        let grid = |k: usize, st: usize, out: usize| {
            let idx: Vec<u32> = (0..out).map(|o| (o * st + k) as u32).collect();
            Tensor::new(idx.as_slice(), &Device::Cpu).unwrap()
        };
        let mut parts = Vec::new();
        for i in 0..s.kernel.0 {
            for j in 0..s.kernel.1 {
                let t = xp.index_select(&grid(i, s.stride.0, oh), 2).unwrap();
                parts.push(t.index_select(&grid(j, s.stride.1, ow), 3).unwrap());
            }
        }
        let stacked = Tensor::stack(&parts, 4).unwrap();
        if max {
            stacked.max(4).unwrap()
        } else {
            stacked.mean(4).unwrap()
        }
    }

    fn shape(
        (batch, channels, height, width): (usize, usize, usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Pool2dShape {
        Pool2dShape {
            batch,
            channels,
            height,
            width,
            kernel,
            stride,
            padding,
        }
    }

    fn check(s: Pool2dShape, seed: u64) {
        let what = format!("{s:?}");
        let dims = [s.batch, s.channels, s.height, s.width];
        let x = random(s.in_len(), seed);
        let r = random(s.out_len(), seed + 1);
        for max in [true, false] {
            let xv = var(&x, &dims);
            let want = reference(&s, &xv, max);
            let store = loss_with(&want, &r).backward().unwrap();
            let mut y = vec![f32::NAN; s.out_len()];
            let mut dx = vec![f32::NAN; s.in_len()];
            if max {
                let mut idx = vec![0u32; s.out_len()];
                max_pool2d_forward(&s, &x, &mut y, &mut idx);
                max_pool2d_backward(&s, &idx, &r, &mut dx);
            } else {
                avg_pool2d_forward(&s, &x, &mut y);
                avg_pool2d_backward(&s, &r, &mut dx);
            }
            close(&format!("{what} max {max}: y"), &y, &values(&want));
            close(&format!("{what} max {max}: dx"), &dx, &grad(&store, &xv));
        }
    }

    #[test]
    fn pooling_matches_candle_with_stride_padding_and_odd_sizes() {
        // The cnn preset's pools: 26x26 and 11x11 (odd: the last row and column unused).
        check(shape((2, 3, 26, 26), (2, 2), (2, 2), (0, 0)), 1);
        check(shape((2, 3, 11, 11), (2, 2), (2, 2), (0, 0)), 2);
        // Overlapping windows with padding, odd sizes, the kernel not dividing the size.
        check(shape((2, 2, 9, 8), (3, 3), (2, 2), (1, 1)), 3);
        check(shape((1, 3, 7, 10), (3, 2), (1, 2), (1, 1)), 4);
        check(shape((2, 2, 10, 9), (5, 4), (3, 2), (2, 1)), 5);
        check(shape((1, 2, 6, 7), (2, 3), (3, 1), (0, 1)), 6);
    }

    #[test]
    fn candles_own_avg_pool_agrees_where_its_backward_applies() {
        let s = shape((2, 3, 8, 6), (2, 2), (2, 2), (0, 0));
        let x = random(s.in_len(), 7);
        let r = random(s.out_len(), 8);
        let xv = var(&x, &[2, 3, 8, 6]);
        let want = xv.avg_pool2d(2).unwrap();
        let store = loss_with(&want, &r).backward().unwrap();
        let (mut y, mut dx) = (vec![0f32; s.out_len()], vec![0f32; s.in_len()]);
        avg_pool2d_forward(&s, &x, &mut y);
        avg_pool2d_backward(&s, &r, &mut dx);
        close("y", &y, &values(&want));
        close("dx", &dx, &grad(&store, &xv));
    }

    #[test]
    fn max_pool_gradient_goes_whole_to_each_maximum() {
        // candle 0.11.1's own max_pool2d backward scales this by 1/k² (0.25 here) and, on
        // sizes the kernel does not divide, upsamples to the wrong windows: not a reference.
        let s = shape((1, 1, 3, 4), (2, 2), (2, 2), (0, 0));
        let x = [1.0, 2.0, 8.0, 7.0, 4.0, 3.0, 5.0, 6.0, 9.0, 9.0, 9.0, 9.0];
        let (mut y, mut idx) = ([0f32; 2], [0u32; 2]);
        max_pool2d_forward(&s, &x, &mut y, &mut idx);
        assert_eq!((y, idx), ([4.0, 8.0], [4, 2]));
        let mut dx = [f32::NAN; 12];
        max_pool2d_backward(&s, &idx, &[10.0, 20.0], &mut dx);
        let want = [0.0, 0.0, 20.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(dx, want);
    }

    #[test]
    fn max_pool_keeps_the_first_maximum_and_a_nan() {
        // 1x1x2x4, two 2x2 windows: a tie (first in row-major order wins) and a NaN.
        let x = [1.0, 3.0, f32::NAN, 0.0, 3.0, 2.0, 5.0, 4.0];
        let s = shape((1, 1, 2, 4), (2, 2), (2, 2), (0, 0));
        let (mut y, mut idx) = ([0f32; 2], [0u32; 2]);
        max_pool2d_forward(&s, &x, &mut y, &mut idx);
        assert_eq!(y[0], 3.0);
        assert!(y[1].is_nan());
        assert_eq!(idx, [1, 2]);
        // The general loop chooses the same.
        let (mut y2, mut idx2) = ([0f32; 2], [0u32; 2]);
        max_pool_general(&s, &x, &mut y2, &mut idx2);
        assert_eq!((y2[0], idx2), (3.0, idx));
    }

    #[test]
    fn avg_pool_counts_the_padding() {
        // PyTorch: F.avg_pool2d(torch.arange(1., 5.).view(1,1,2,2), 2, stride=1, padding=1)
        // = [[0.25, 0.75, 0.5], [1.0, 2.5, 1.5], [0.75, 1.75, 1.0]].
        let s = shape((1, 1, 2, 2), (2, 2), (1, 1), (1, 1));
        let mut y = [0f32; 9];
        avg_pool2d_forward(&s, &[1.0, 2.0, 3.0, 4.0], &mut y);
        assert_eq!(y, [0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);
    }

    fn adaptive_reference(s: &AdaptivePoolShape, x: &Tensor) -> Tensor {
        // Each bin's mean through narrow + mean, stacked back into the grid.
        let (rows, cols) = (bins(s.out.0, s.height), bins(s.out.1, s.width));
        let mut out_rows = Vec::new();
        for r in &rows {
            let mut out_cols = Vec::new();
            for c in &cols {
                let t = x.narrow(2, r.lo, r.hi - r.lo).unwrap();
                let t = t.narrow(3, c.lo, c.hi - c.lo).unwrap();
                out_cols.push(t.mean_keepdim(2).unwrap().mean_keepdim(3).unwrap());
            }
            out_rows.push(Tensor::cat(&out_cols, 3).unwrap());
        }
        Tensor::cat(&out_rows, 2).unwrap()
    }

    #[test]
    fn adaptive_pooling_matches_a_hand_computed_case() {
        // PyTorch: F.adaptive_avg_pool2d(torch.arange(15.).view(1,1,5,3), (2,2)): rows
        // [0,3) and [2,5), columns [0,2) and [1,3); x = 3·row + column, so bin (0,0) is
        // 3·1 + 0.5 = [[3.5, 4.5], [9.5, 10.5]].
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let s = AdaptivePoolShape {
            batch: 1,
            channels: 1,
            height: 5,
            width: 3,
            out: (2, 2),
        };
        let mut y = [0f32; 4];
        adaptive_avg_pool2d_forward(&s, &x, &mut y);
        assert_eq!(y, [3.5, 4.5, 9.5, 10.5]);
        // Its gradient: each bin's 1/6 on its six inputs; row 2, in both left bins, gets two.
        let mut dx = [0f32; 15];
        adaptive_avg_pool2d_backward(&s, &[6.0, 0.0, 6.0, 0.0], &mut dx);
        let want = [
            1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0,
        ];
        assert_eq!(dx, want);
    }

    #[test]
    fn adaptive_pooling_matches_candle_and_finite_differences() {
        for (h, w, out) in [
            (7, 5, (3, 2)),
            (6, 6, (4, 4)),
            (5, 9, (1, 1)),
            (3, 4, (5, 7)),
        ] {
            let s = AdaptivePoolShape {
                batch: 2,
                channels: 3,
                height: h,
                width: w,
                out,
            };
            let what = format!("{s:?}");
            let x = random(s.in_len(), 11);
            let r = random(s.out_len(), 12);
            let xv = var(&x, &[2, 3, h, w]);
            let want = adaptive_reference(&s, &xv);
            let store = loss_with(&want, &r).backward().unwrap();
            let (mut y, mut dx) = (vec![0f32; s.out_len()], vec![0f32; s.in_len()]);
            adaptive_avg_pool2d_forward(&s, &x, &mut y);
            adaptive_avg_pool2d_backward(&s, &r, &mut dx);
            close(&format!("{what}: y"), &y, &values(&want));
            close(&format!("{what}: dx"), &dx, &grad(&store, &xv));
            // Central differences of Σ r·y, in f64 on the f32 kernel (it is linear, so a
            // large step loses nothing but rounding).
            let loss = |x: &[f32]| {
                let mut y = vec![0f32; s.out_len()];
                adaptive_avg_pool2d_forward(&s, x, &mut y);
                y.iter().zip(&r).map(|(a, b)| f64::from(a * b)).sum::<f64>()
            };
            for i in (0..x.len()).step_by(7) {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += 0.5;
                down[i] -= 0.5;
                let fd = (loss(&up) - loss(&down)) / 1.0;
                assert!((fd - f64::from(dx[i])).abs() < 1e-5, "{what}: {i}");
            }
        }
    }
}
