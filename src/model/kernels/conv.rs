//! 2-D convolution (PyTorch's `Conv2d`, no dilation or groups) as im2col + gemm, image by
//! image.
//!
//! Per image the patch matrix is `K × P` (`K = Cin·kh·kw` rows, one per input channel and
//! kernel offset; `P = OH·OW` columns), so im2col copies runs of input rows, the product
//! `W (Cout × K) · col (K × P)` lands directly in the NCHW output, and the backward's
//! products are `dW += dY_b · colᵀ` and `dcol = Wᵀ · dY_b`. One image's patch matrix is small
//! enough to stay in cache (conv2 of the `cnn` preset: 288 × 121), so the backward rebuilds it
//! rather than keep the whole batch's (4.5 MB a shard there) from the forward: nothing is
//! saved but the layer's input, which the caller keeps anyway. Per-image products of that
//! size already run at ~90 GFLOP/s with gemm on one AVX-512 core (measured against one
//! product over the whole shard: no faster).

use super::gemm::{gemm, MatMut, MatRef};
use super::reduce::sum;

/// Sizes of a convolution over a batch: input `(batch, in_channels, height, width)`,
/// weight `(out_channels, in_channels, kernel.0, kernel.1)`, output
/// `(batch, out_channels, out_h, out_w)`; pairs are (rows, columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Images in the batch (or shard).
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal), at least 1.
    pub stride: (usize, usize),
    /// Zero padding on each side (top and bottom, left and right).
    pub padding: (usize, usize),
}

/// Output length along one axis (PyTorch's floor formula); 0 when the kernel does not fit or
/// the stride is 0, so a bad shape gives empty loops rather than a wrapped subtraction.
pub fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    let padded = size + 2 * padding;
    if stride == 0 || kernel == 0 || padded < kernel {
        0
    } else {
        (padded - kernel) / stride + 1
    }
}

impl Conv2dShape {
    /// Output (height, width).
    pub fn out_hw(&self) -> (usize, usize) {
        (
            out_size(self.height, self.kernel.0, self.stride.0, self.padding.0),
            out_size(self.width, self.kernel.1, self.stride.1, self.padding.1),
        )
    }

    /// Values in the input.
    pub fn in_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    /// Values in the output.
    pub fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.batch * self.out_channels * oh * ow
    }

    /// Values in the weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    /// Rows of the patch matrix: input channels × kernel offsets.
    fn patch_len(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1
    }

    /// A 1×1 kernel with stride 1 and no padding: the input image is its own patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.padding == (0, 0)
    }
}

/// The output columns `ow` whose input column `ow·stride + offset - pad` lies inside
/// `0..size`, as a range of `ow`.
fn valid(out: usize, size: usize, stride: usize, offset: usize, pad: usize) -> (usize, usize) {
    // ow·stride + offset ≥ pad  ⇔  ow ≥ ceil((pad - offset) / stride)
    let lo = if offset >= pad {
        0
    } else {
        (pad - offset).div_ceil(stride)
    };
    // ow·stride + offset - pad ≤ size - 1  ⇔  ow ≤ (size - 1 + pad - offset) / stride
    let hi = if size + pad > offset {
        ((size - 1 + pad - offset) / stride + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// One image's patch matrix: `col[(c·kh + i)·kw + j][oh·OW + ow] = x[c][oh·sh + i - ph][ow·sw + j - pw]`
/// (0 in the padding).
fn im2col(s: &Conv2dShape, x: &[f32], col: &mut [f32]) {
    let (oh_n, ow_n) = s.out_hw();
    let (kh, kw) = s.kernel;
    let (sh, sw) = s.stride;
    let (ph, pw) = s.padding;
    let (h, w) = (s.height, s.width);
    let p = oh_n * ow_n;
    for c in 0..s.in_channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            let (oh_lo, oh_hi) = valid(oh_n, h, sh, i, ph);
            for j in 0..kw {
                let (ow_lo, ow_hi) = valid(ow_n, w, sw, j, pw);
                let row = &mut col[((c * kh + i) * kw + j) * p..][..p];
                if s.padding == (0, 0) && sw == 1 {
                    // Every patch value is inside the image: plain row copies.
                    for (oh, out) in row.chunks_exact_mut(ow_n).enumerate() {
                        copy_run(out, &plane[(oh * sh + i) * w + j..]);
                    }
                    continue;
                }
                zero(&mut row[..oh_lo * ow_n]);
                zero(&mut row[oh_hi * ow_n..]);
                for oh in oh_lo..oh_hi {
                    let out = &mut row[oh * ow_n..(oh + 1) * ow_n];
                    zero(&mut out[..ow_lo]);
                    zero(&mut out[ow_hi..]);
                    if ow_lo >= ow_hi {
                        continue;
                    }
                    let src = &plane[(oh * sh + i - ph) * w..][..w];
                    let first = ow_lo * sw + j - pw;
                    if sw == 1 {
                        copy_run(&mut out[ow_lo..ow_hi], &src[first..]);
                    } else {
                        for (o, v) in out[ow_lo..ow_hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(sw))
                        {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst += src` for col2im's short runs: whole 8-lane blocks, then the rest.
#[inline(always)]
fn add_run(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        for (a, b) in d.iter_mut().zip(s) {
            *a += b;
        }
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a += b;
    }
}

/// `v.fill(0.0)`, skipping the call for the empty runs most rows have.
#[inline(always)]
fn zero(v: &mut [f32]) {
    if !v.is_empty() {
        v.fill(0.0);
    }
}

/// `dst.copy_from_slice(src)` for the short runs im2col copies (an output row: 11 values
/// for conv2 of the `cnn` preset): two overlapping fixed-size moves instead of a call to
/// memcpy, which made im2col twice as slow.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    // `src` may run on past the values to copy (the rest of an input row).
    let src = &src[..n];
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n < 4 {
        for (d, v) in dst.iter_mut().zip(src) {
            *d = *v;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Adds one image's patch-matrix gradient back onto its input gradient (the transpose of
/// [`im2col`]); `dx` must start zeroed.
fn col2im(s: &Conv2dShape, dcol: &[f32], dx: &mut [f32]) {
    let (oh_n, ow_n) = s.out_hw();
    let (kh, kw) = s.kernel;
    let (sh, sw) = s.stride;
    let (ph, pw) = s.padding;
    let (h, w) = (s.height, s.width);
    let p = oh_n * ow_n;
    for c in 0..s.in_channels {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            let (oh_lo, oh_hi) = valid(oh_n, h, sh, i, ph);
            for j in 0..kw {
                let (ow_lo, ow_hi) = valid(ow_n, w, sw, j, pw);
                if ow_lo >= ow_hi {
                    continue;
                }
                let row = &dcol[((c * kh + i) * kw + j) * p..][..p];
                for oh in oh_lo..oh_hi {
                    let g = &row[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
                    let dst = &mut plane[(oh * sh + i - ph) * w..][..w];
                    let first = ow_lo * sw + j - pw;
                    if sw == 1 {
                        add_run(&mut dst[first..first + g.len()], g);
                    } else {
                        for (d, v) in dst[first..].iter_mut().step_by(sw).zip(g) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv2d(x, w) + b` over NCHW slices (lengths as [`Conv2dShape`] says).
///
/// `scratch` holds one image's patch matrix between calls (grown as needed, never shrunk),
/// so a caller that keeps it allocates nothing per step.
pub fn conv2d_forward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (oh, ow) = s.out_hw();
    let (k, p, co) = (s.patch_len(), oh * ow, s.out_channels);
    let in_img = s.in_channels * s.height * s.width;
    if !s.is_pointwise() && scratch.len() < k * p {
        scratch.resize(k * p, 0.0);
    }
    let wm = MatRef::new(w, co, k);
    for n in 0..s.batch {
        let x_n = &x[n * in_img..(n + 1) * in_img];
        let y_n = &mut y[n * co * p..(n + 1) * co * p];
        let beta = match b {
            Some(b) => {
                for (row, &bias) in y_n.chunks_exact_mut(p).zip(b) {
                    row.fill(bias);
                }
                1.0
            }
            None => 0.0,
        };
        let col = if s.is_pointwise() {
            x_n
        } else {
            im2col(s, x_n, scratch);
            &scratch[..k * p]
        };
        gemm(
            MatMut::new(y_n, co, p),
            1.0,
            wm,
            MatRef::new(col, k, p),
            beta,
            1,
        );
    }
}

/// Where a convolution's backward writes its gradients (each overwritten, not added to).
#[derive(Debug)]
pub struct Conv2dGrads<'a> {
    /// Gradient of the weight, `(out_channels, in_channels, kh, kw)`.
    pub dw: &'a mut [f32],
    /// Gradient of the bias, `(out_channels)`; `None` when the layer has none.
    pub db: Option<&'a mut [f32]>,
    /// Gradient of the input, only when something upstream needs it (not for a first
    /// layer: that product is as large as the weight gradient's).
    pub dx: Option<&'a mut [f32]>,
}

/// Gradients of [`conv2d_forward`] given the output gradient `dy`: rebuilds each image's
/// patch matrix from `x` (`scratch` as in the forward; a second buffer inside it holds the
/// patch gradient when `dx` is asked for).
pub fn conv2d_backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    grads: Conv2dGrads<'_>,
    scratch: &mut Vec<f32>,
) {
    let (oh, ow) = s.out_hw();
    let (k, p, co) = (s.patch_len(), oh * ow, s.out_channels);
    let in_img = s.in_channels * s.height * s.width;
    let Conv2dGrads { dw, db, mut dx } = grads;
    let pointwise = s.is_pointwise();
    // [patch matrix | patch gradient]; the pointwise case needs only the gradient.
    let need = usize::from(!pointwise) * k * p + usize::from(dx.is_some()) * k * p;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    if let Some(db) = db {
        db.fill(0.0);
        for dy_n in dy[..s.batch * co * p].chunks_exact(co * p) {
            for (d, row) in db.iter_mut().zip(dy_n.chunks_exact(p)) {
                *d += sum(row);
            }
        }
    }
    if let Some(dx) = dx.as_deref_mut() {
        dx[..s.in_len()].fill(0.0);
    }
    let wm = MatRef::new(w, co, k);
    for n in 0..s.batch {
        let x_n = &x[n * in_img..(n + 1) * in_img];
        let dy_n = MatRef::new(&dy[n * co * p..(n + 1) * co * p], co, p);
        let (col_buf, dcol_buf) = scratch.split_at_mut(usize::from(!pointwise) * k * p);
        let col = if pointwise {
            x_n
        } else {
            im2col(s, x_n, col_buf);
            &col_buf[..]
        };
        // dW (+)= dY_n · colᵀ
        let beta = if n == 0 { 0.0 } else { 1.0 };
        let colt = MatRef::new(col, k, p).t();
        gemm(MatMut::new(dw, co, k), 1.0, dy_n, colt, beta, 1);
        if let Some(dx) = dx.as_deref_mut() {
            let dx_n = &mut dx[n * in_img..(n + 1) * in_img];
            if pointwise {
                // dX_n = Wᵀ · dY_n directly.
                gemm(MatMut::new(dx_n, k, p), 1.0, wm.t(), dy_n, 0.0, 1);
            } else {
                let dcol = &mut dcol_buf[..k * p];
                gemm(MatMut::new(dcol, k, p), 1.0, wm.t(), dy_n, 0.0, 1);
                col2im(s, dcol, dx_n);
            }
        }
    }
    if s.batch == 0 {
        dw.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, grad, loss_with, random, values, var};
    use super::*;
    use candle_core::{Device, Tensor};

    /// Rows (or columns) `o·stride` for `o` in `0..out`, to subsample a stride-1 result.
    fn every(stride: usize, out: usize) -> Tensor {
        let idx: Vec<u32> = (0..out).map(|o| (o * stride) as u32).collect();
        Tensor::new(idx.as_slice(), &Device::Cpu).unwrap()
    }

    /// candle autograd's convolution: its own `conv2d` when stride and padding are the same
    /// along both axes and the stride uses every input row and column (candle's backward
    /// gets the input gradient's size wrong otherwise); else zero padding per axis, a
    /// stride-1 `conv2d` and a subsample.
    fn reference(s: &Conv2dShape, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let (oh, ow) = s.out_hw();
        let fits =
            |size: usize, k: usize, st: usize, p: usize| (size + 2 * p - k).is_multiple_of(st);
        let native = s.stride.0 == s.stride.1
            && s.padding.0 == s.padding.1
            && fits(s.height, s.kernel.0, s.stride.0, s.padding.0)
            && fits(s.width, s.kernel.1, s.stride.1, s.padding.1);
        let y = if native {
            x.conv2d(w, s.padding.0, s.stride.0, 1, 1).unwrap()
        } else {
            let xp = x.pad_with_zeros(2, s.padding.0, s.padding.0).unwrap();
            let xp = xp.pad_with_zeros(3, s.padding.1, s.padding.1).unwrap();
            let full = xp.conv2d(w, 0, 1, 1, 1).unwrap();
            let rows = full.index_select(&every(s.stride.0, oh), 2).unwrap();
            rows.index_select(&every(s.stride.1, ow), 3).unwrap()
        };
        match b {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap(),
            None => y,
        }
    }

    fn check(s: Conv2dShape, bias: bool, seed: u64) {
        let (oh, ow) = s.out_hw();
        let what = format!("{s:?}, bias {bias}");
        let x = random(s.in_len(), seed);
        let w = random(s.weight_len(), seed + 1);
        let b = random(s.out_channels, seed + 2);
        let r = random(s.out_len(), seed + 3);
        let kdims = [s.out_channels, s.in_channels, s.kernel.0, s.kernel.1];
        let (xv, wv, bv) = (
            var(&x, &[s.batch, s.in_channels, s.height, s.width]),
            var(&w, &kdims),
            var(&b, &[s.out_channels]),
        );
        let want = reference(&s, &xv, &wv, bias.then_some(bv.as_tensor()));
        assert_eq!(want.dims(), &[s.batch, s.out_channels, oh, ow], "{what}");
        let store = loss_with(&want, &r).backward().unwrap();

        let mut scratch = Vec::new();
        let mut y = vec![f32::NAN; s.out_len()];
        conv2d_forward(&s, &x, &w, bias.then_some(&b[..]), &mut y, &mut scratch);
        close(&format!("{what}: y"), &y, &values(&want));

        let (mut dw, mut db, mut dx) = (
            vec![f32::NAN; w.len()],
            vec![f32::NAN; b.len()],
            vec![f32::NAN; x.len()],
        );
        let grads = Conv2dGrads {
            dw: &mut dw,
            db: bias.then_some(&mut db[..]),
            dx: Some(&mut dx),
        };
        conv2d_backward(&s, &x, &w, &r, grads, &mut scratch);
        close(&format!("{what}: dx"), &dx, &grad(&store, &xv));
        close(&format!("{what}: dw"), &dw, &grad(&store, &wv));
        if bias {
            close(&format!("{what}: db"), &db, &grad(&store, &bv));
        }
        // Without the input gradient: the same weight gradient.
        let mut dw2 = vec![f32::NAN; w.len()];
        let grads = Conv2dGrads {
            dw: &mut dw2,
            db: None,
            dx: None,
        };
        conv2d_backward(&s, &x, &w, &r, grads, &mut Vec::new());
        assert_eq!(dw, dw2, "{what}");
    }

    fn shape(
        (batch, in_channels, height, width): (usize, usize, usize, usize),
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Conv2dShape {
        Conv2dShape {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    #[test]
    fn the_cnn_presets_convolutions_match_candle() {
        check(shape((3, 1, 28, 28), 32, (3, 3), (1, 1), (0, 0)), true, 1);
        check(shape((2, 32, 13, 13), 64, (3, 3), (1, 1), (0, 0)), true, 2);
    }

    #[test]
    fn stride_padding_and_odd_sizes_match_candle() {
        // Stride 2 with padding on odd sizes, the kernel not dividing the size.
        check(shape((2, 3, 9, 7), 5, (3, 3), (2, 2), (1, 1)), true, 3);
        check(shape((2, 3, 10, 8), 4, (3, 3), (2, 2), (1, 1)), true, 11);
        check(shape((1, 2, 11, 10), 4, (5, 5), (3, 3), (2, 2)), false, 4);
        // Rectangular kernel, different strides and paddings per axis.
        check(shape((2, 3, 8, 13), 2, (2, 4), (1, 3), (0, 2)), true, 5);
        check(shape((2, 2, 7, 9), 3, (3, 1), (2, 1), (1, 0)), true, 6);
        // Padding as large as the kernel: whole rows of a patch matrix are padding.
        check(shape((1, 2, 5, 6), 3, (3, 3), (2, 1), (3, 2)), true, 7);
    }

    #[test]
    fn pointwise_and_whole_image_kernels_match_candle() {
        check(shape((2, 6, 5, 7), 4, (1, 1), (1, 1), (0, 0)), true, 8);
        check(shape((3, 2, 4, 5), 3, (4, 5), (1, 1), (0, 0)), true, 9);
        check(shape((2, 4, 6, 6), 3, (1, 1), (2, 2), (0, 0)), false, 10);
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        assert_eq!(out_size(28, 3, 1, 0), 26);
        assert_eq!(out_size(13, 3, 2, 1), 7);
        assert_eq!(out_size(11, 2, 2, 0), 5);
        assert_eq!(out_size(2, 3, 1, 0), 0, "kernel larger than the input");
        assert_eq!(out_size(5, 3, 0, 0), 0, "stride 0");
    }
}
