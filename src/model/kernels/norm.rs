//! Batch and layer normalisation, PyTorch's formulas.
//!
//! BatchNorm (`BatchNorm1d` over `(N, C)` or `(N, C, L)`, `BatchNorm2d` over `(N, C, H, W)`:
//! one layout, `(batch, channels, spatial)`) normalises each channel with the batch's mean
//! and biased variance in training, and hands back the unbiased variance for the running
//! statistics (`running = (1 − momentum)·running + momentum·batch`, the caller's update).
//! Its training passes come in phases — per-channel sums, then the normalisation — so a
//! batch sharded over threads can add its shards' sums before normalising and get the
//! whole batch's statistics exactly; [`batch_norm_train`] and [`batch_norm_backward`] are
//! the one-shard compositions. Sums are accumulated in f64.
//!
//! LayerNorm normalises each sample over all its values (`normalized_shape` = the sample's
//! shape) with an elementwise affine of that shape.

use super::reduce;

/// Sizes of a batch-norm input `(batch, channels, spatial)`: `spatial` is `H·W` for
/// `BatchNorm2d`, 1 for `BatchNorm1d` over `(N, C)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Samples in the batch (or shard).
    pub batch: usize,
    /// Channels (features).
    pub channels: usize,
    /// Values per channel per sample.
    pub spatial: usize,
}

impl NormShape {
    /// Values in the input.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Whether the input is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per channel (batch × spatial): the count the statistics are over.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    /// Each channel's runs of values: `(channel, run)` for every sample.
    fn runs<'x>(&self, x: &'x [f32]) -> impl Iterator<Item = (usize, &'x [f32])> {
        let c = self.channels;
        x[..self.len()]
            .chunks_exact(self.spatial.max(1))
            .enumerate()
            .map(move |(i, run)| (i % c, run))
    }
}

/// A normalisation's elementwise affine: `y = x̂·weight + bias` (PyTorch's `weight` and
/// `bias`, the papers' γ and β).
#[derive(Debug, Clone, Copy)]
pub struct Affine<'a> {
    /// Scale, one per channel (batch norm) or per value of a sample (layer norm).
    pub weight: &'a [f32],
    /// Shift, likewise.
    pub bias: &'a [f32],
}

/// A training batch's statistics per channel: what the backward needs, and the unbiased
/// variance for the running statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    /// Values per channel they were computed over (the whole batch's, when sharded).
    pub count: usize,
    /// Batch mean.
    pub mean: Vec<f32>,
    /// `1 / √(biased variance + eps)`.
    pub invstd: Vec<f32>,
    /// Unbiased variance (`n / (n − 1)` × biased; the biased one when a channel has a single
    /// value), for `running_var`.
    pub var: Vec<f32>,
}

/// Adds each channel's sum and sum of squares of `x` to `acc` (`[sums (C) | squares (C)]`,
/// length `2·C`): phase one of a sharded training forward.
pub fn batch_norm_moments(s: &NormShape, x: &[f32], acc: &mut [f64]) {
    let (sums, squares) = acc.split_at_mut(s.channels);
    if s.spatial == 1 {
        // (N, C): rows of channels, accumulated across (vectorised over the channels).
        for row in x[..s.len()].chunks_exact(s.channels.max(1)) {
            for ((a, b), &v) in sums.iter_mut().zip(squares.iter_mut()).zip(row) {
                let v = f64::from(v);
                *a += v;
                *b += v * v;
            }
        }
        return;
    }
    for (c, run) in s.runs(x) {
        let (a, b) = reduce::moments(run);
        sums[c] += a;
        squares[c] += b;
    }
}

/// The statistics of `count` values per channel from summed moments (see
/// [`batch_norm_moments`]).
pub fn batch_norm_stats(count: usize, acc: &[f64], eps: f64, stats: &mut BatchStats) {
    let c = acc.len() / 2;
    let n = count.max(1) as f64;
    stats.count = count;
    stats.mean.clear();
    stats.invstd.clear();
    stats.var.clear();
    for (&sum, &sq) in acc[..c].iter().zip(&acc[c..2 * c]) {
        let mean = sum / n;
        let var = (sq / n - mean * mean).max(0.0);
        stats.mean.push(mean as f32);
        stats.invstd.push((1.0 / (var + eps).sqrt()) as f32);
        let unbiased = if count > 1 { var * n / (n - 1.0) } else { var };
        stats.var.push(unbiased as f32);
    }
}

/// `y = (x − mean)·invstd·weight + bias` per channel: phase two of the training forward,
/// and the whole eval forward (with the running mean and [`eval_scale`]).
pub fn batch_norm_apply(
    s: &NormShape,
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    affine: Affine<'_>,
    y: &mut [f32],
) {
    let spatial = s.spatial.max(1);
    let scale: Vec<f32> = invstd
        .iter()
        .zip(affine.weight)
        .map(|(i, w)| i * w)
        .collect();
    let shift: Vec<f32> = (0..s.channels)
        .map(|c| affine.bias[c] - mean[c] * scale[c])
        .collect();
    if s.spatial == 1 {
        let rows = x[..s.len()].chunks_exact(s.channels.max(1));
        for (row, out) in rows.zip(y.chunks_exact_mut(s.channels.max(1))) {
            for (((o, &v), &a), &b) in out.iter_mut().zip(row).zip(&scale).zip(&shift) {
                *o = v * a + b;
            }
        }
        return;
    }
    for ((c, run), out) in s.runs(x).zip(y.chunks_exact_mut(spatial)) {
        let (scale, shift) = (scale[c], shift[c]);
        for (o, &v) in out.iter_mut().zip(run) {
            *o = v * scale + shift;
        }
    }
}

/// `1 / √(running_var + eps)` per channel, for an eval forward through [`batch_norm_apply`]
/// with the running mean.
pub fn eval_scale(running_var: &[f32], eps: f64) -> Vec<f32> {
    running_var
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect()
}

/// Training forward of one whole batch: statistics into `stats`, normalised output into `y`.
pub fn batch_norm_train(
    s: &NormShape,
    x: &[f32],
    affine: Affine<'_>,
    eps: f64,
    y: &mut [f32],
    stats: &mut BatchStats,
) {
    let mut acc = vec![0f64; 2 * s.channels];
    batch_norm_moments(s, x, &mut acc);
    batch_norm_stats(s.count(), &acc, eps, stats);
    batch_norm_apply(s, x, &stats.mean, &stats.invstd, affine, y);
}

/// Eval forward: normalised by the running statistics.
pub fn batch_norm_eval(
    s: &NormShape,
    x: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    affine: Affine<'_>,
    eps: f64,
    y: &mut [f32],
) {
    let invstd = eval_scale(running_var, eps);
    batch_norm_apply(s, x, running_mean, &invstd, affine, y);
}

/// Adds each channel's `Σ dy` and `Σ dy·x̂` (`x̂ = (x − mean)·invstd`) to `acc`
/// (`[Σ dy (C) | Σ dy·x̂ (C)]`): phase one of a sharded backward. Once summed over the
/// shards these are `dbias` and `dweight`.
pub fn batch_norm_grad_sums(
    s: &NormShape,
    x: &[f32],
    dy: &[f32],
    stats: &BatchStats,
    acc: &mut [f64],
) {
    let spatial = s.spatial.max(1);
    let (dbias, dweight) = acc.split_at_mut(s.channels);
    if s.spatial == 1 {
        let mut centred = vec![0f64; s.channels];
        let rows = x[..s.len()].chunks_exact(s.channels.max(1));
        for (row, g) in rows.zip(dy.chunks_exact(s.channels.max(1))) {
            let per_channel = centred.iter_mut().zip(dbias.iter_mut()).zip(&stats.mean);
            for (((p, b), &m), (&v, &d)) in per_channel.zip(row.iter().zip(g)) {
                *b += f64::from(d);
                *p += f64::from(d * (v - m));
            }
        }
        for ((w, p), &inv) in dweight.iter_mut().zip(&centred).zip(&stats.invstd) {
            *w += p * f64::from(inv);
        }
        return;
    }
    for ((c, run), g) in s.runs(x).zip(dy.chunks_exact(spatial)) {
        let (a, b) = reduce::sum_and_centred_dot(g, run, stats.mean[c]);
        dbias[c] += f64::from(a);
        dweight[c] += f64::from(b) * f64::from(stats.invstd[c]);
    }
}

/// Input gradient from the whole batch's summed `[Σ dy | Σ dy·x̂]` ([`batch_norm_grad_sums`]):
/// `dx = weight·invstd·(dy − Σdy/n − x̂·Σdy·x̂/n)`, `n = stats.count`. Phase two of the
/// backward.
pub fn batch_norm_dx(
    s: &NormShape,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    stats: &BatchStats,
    sums: &[f64],
    dx: &mut [f32],
) {
    let spatial = s.spatial.max(1);
    let n = stats.count.max(1) as f64;
    let c_n = s.channels;
    // Per channel: dx = a·dy + b·(x − mean) + k, with x̂ = (x − mean)·invstd folded in.
    let coef: Vec<(f32, f32, f32, f32)> = (0..c_n)
        .map(|c| {
            let inv = f64::from(stats.invstd[c]);
            let a = f64::from(weight[c]) * inv;
            let b = -a * inv * sums[c_n + c] / n;
            let k = -a * sums[c] / n;
            (a as f32, b as f32, k as f32, stats.mean[c])
        })
        .collect();
    if s.spatial == 1 {
        let c = c_n.max(1);
        let rows = x[..s.len()].chunks_exact(c).zip(dy.chunks_exact(c));
        for ((row, g), out) in rows.zip(dx.chunks_exact_mut(c)) {
            for (((o, &v), &d), &(a, b, k, mean)) in out.iter_mut().zip(row).zip(g).zip(&coef) {
                *o = a * d + b * (v - mean) + k;
            }
        }
        return;
    }
    let runs = s.runs(x).zip(dy.chunks_exact(spatial));
    for (((c, run), g), out) in runs.zip(dx.chunks_exact_mut(spatial)) {
        let (a, b, k, mean) = coef[c];
        for ((o, &v), &d) in out.iter_mut().zip(run).zip(g) {
            *o = a * d + b * (v - mean) + k;
        }
    }
}

/// Where a normalisation's backward writes (each overwritten).
#[derive(Debug)]
pub struct NormGrads<'a> {
    /// Input gradient; `None` when nothing upstream needs it.
    pub dx: Option<&'a mut [f32]>,
    /// Gradient of the affine's weight.
    pub dweight: &'a mut [f32],
    /// Gradient of the affine's bias.
    pub dbias: &'a mut [f32],
}

/// Training backward of one whole batch, with the statistics its forward saved.
pub fn batch_norm_backward(
    s: &NormShape,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    stats: &BatchStats,
    grads: NormGrads<'_>,
) {
    let mut acc = vec![0f64; 2 * s.channels];
    batch_norm_grad_sums(s, x, dy, stats, &mut acc);
    for (d, &a) in grads.dbias.iter_mut().zip(&acc[..s.channels]) {
        *d = a as f32;
    }
    for (d, &a) in grads.dweight.iter_mut().zip(&acc[s.channels..]) {
        *d = a as f32;
    }
    if let Some(dx) = grads.dx {
        batch_norm_dx(s, x, dy, weight, stats, &acc, dx);
    }
}

/// Per-sample statistics a layer norm's backward needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleStats {
    /// Each sample's mean.
    pub mean: Vec<f32>,
    /// Each sample's `1 / √(biased variance + eps)`.
    pub invstd: Vec<f32>,
}

/// Layer norm over `batch` samples of `features` values each (`x` is `batch × features`):
/// `y = x̂·weight + bias`, the affine's two of length `features`.
pub fn layer_norm_forward(
    x: &[f32],
    features: usize,
    affine: Affine<'_>,
    eps: f64,
    y: &mut [f32],
    stats: &mut SampleStats,
) {
    stats.mean.clear();
    stats.invstd.clear();
    let f = features.max(1);
    for (row, out) in x.chunks_exact(f).zip(y.chunks_exact_mut(f)) {
        let n = row.len() as f64;
        // One pass in f64 (x² summed in f64 loses nothing to cancellation at f32 inputs).
        let (sum, squares) = reduce::moments(row);
        let mean = sum / n;
        let var = (squares / n - mean * mean).max(0.0);
        let inv = 1.0 / (var + eps).sqrt();
        let (mean, inv) = (mean as f32, inv as f32);
        let (weight, bias) = (affine.weight, affine.bias);
        for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(weight).zip(bias) {
            *o = (v - mean) * inv * g + b;
        }
        stats.mean.push(mean);
        stats.invstd.push(inv);
    }
}

/// Gradients of [`layer_norm_forward`]: with `g = dy·weight`,
/// `dx = invstd·(g − mean(g) − x̂·mean(g·x̂))`, `dweight = Σₙ dy·x̂`, `dbias = Σₙ dy`.
pub fn layer_norm_backward(
    x: &[f32],
    features: usize,
    dy: &[f32],
    weight: &[f32],
    stats: &SampleStats,
    grads: NormGrads<'_>,
) {
    let f = features.max(1);
    let NormGrads {
        mut dx,
        dweight,
        dbias,
    } = grads;
    dweight.fill(0.0);
    dbias.fill(0.0);
    let mut xhat = vec![0f32; f];
    for (n, (row, g)) in x.chunks_exact(f).zip(dy.chunks_exact(f)).enumerate() {
        let (mean, inv) = (stats.mean[n], stats.invstd[n]);
        let (mut sum_g, mut sum_gx) = (0f64, 0f64);
        for (i, (&v, &d)) in row.iter().zip(g).enumerate() {
            let xh = (v - mean) * inv;
            xhat[i] = xh;
            dweight[i] += d * xh;
            dbias[i] += d;
            let gg = d * weight[i];
            sum_g += f64::from(gg);
            sum_gx += f64::from(gg * xh);
        }
        if let Some(dx) = dx.as_deref_mut() {
            let fl = f as f64;
            let (mg, mgx) = ((sum_g / fl) as f32, (sum_gx / fl) as f32);
            let out = &mut dx[n * f..(n + 1) * f];
            for (((o, &d), &gm), &xh) in out.iter_mut().zip(g).zip(weight).zip(&xhat) {
                *o = inv * (d * gm - mg - xh * mgx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, grad, loss_with, random, values, var};
    use super::*;
    use candle_core::Tensor;

    const EPS: f64 = 1e-5;

    fn affine<'a>(weight: &'a [f32], bias: &'a [f32]) -> Affine<'a> {
        Affine { weight, bias }
    }

    /// PyTorch's training-mode batch norm from candle ops: `(N, C, L)`, statistics over
    /// dims 0 and 2, biased variance.
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> (Tensor, Tensor, Tensor) {
        let c = x.dim(1).unwrap();
        let mean = x.mean_keepdim(2).unwrap().mean_keepdim(0).unwrap();
        let centred = x.broadcast_sub(&mean).unwrap();
        let var = centred.sqr().unwrap().mean_keepdim(2).unwrap();
        let var = var.mean_keepdim(0).unwrap();
        let y = centred
            .broadcast_div(&(var.clone() + EPS).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&gamma.reshape((1, c, 1)).unwrap())
            .unwrap()
            .broadcast_add(&beta.reshape((1, c, 1)).unwrap())
            .unwrap();
        (y, mean, var)
    }

    fn check_batch_norm(s: NormShape, seed: u64) {
        let what = format!("{s:?}");
        let dims = [s.batch, s.channels, s.spatial];
        // An offset and a spread per channel, as real activations have.
        let x: Vec<f32> = random(s.len(), seed)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = (i / s.spatial) % s.channels;
                3.0 * c as f32 + v * (1.0 + c as f32)
            })
            .collect();
        let gamma = random(s.channels, seed + 1);
        let beta = random(s.channels, seed + 2);
        let r = random(s.len(), seed + 3);
        let (xv, gv, bv) = (
            var(&x, &dims),
            var(&gamma, &[s.channels]),
            var(&beta, &[s.channels]),
        );
        let (want, mean, biased) = reference(&xv, &gv, &bv);
        let store = loss_with(&want, &r).backward().unwrap();

        let mut y = vec![f32::NAN; s.len()];
        let mut stats = BatchStats::default();
        batch_norm_train(&s, &x, affine(&gamma, &beta), EPS, &mut y, &mut stats);
        close(&format!("{what}: y"), &y, &values(&want));
        close(&format!("{what}: mean"), &stats.mean, &values(&mean));
        let n = s.count() as f32;
        let unbiased: Vec<f32> = values(&biased).iter().map(|v| v * n / (n - 1.0)).collect();
        close(&format!("{what}: var"), &stats.var, &unbiased);

        let (mut dx, mut dg, mut db) = (
            vec![f32::NAN; s.len()],
            vec![f32::NAN; s.channels],
            vec![f32::NAN; s.channels],
        );
        let grads = NormGrads {
            dx: Some(&mut dx),
            dweight: &mut dg,
            dbias: &mut db,
        };
        batch_norm_backward(&s, &x, &r, &gamma, &stats, grads);
        close(&format!("{what}: dx"), &dx, &grad(&store, &xv));
        close(&format!("{what}: dgamma"), &dg, &grad(&store, &gv));
        close(&format!("{what}: dbeta"), &db, &grad(&store, &bv));
    }

    #[test]
    fn batch_norm_training_matches_candle() {
        // BatchNorm1d over (N, C), BatchNorm2d over (N, C, H, W) with odd sizes.
        check_batch_norm(
            NormShape {
                batch: 16,
                channels: 5,
                spatial: 1,
            },
            1,
        );
        check_batch_norm(
            NormShape {
                batch: 3,
                channels: 4,
                spatial: 7 * 5,
            },
            2,
        );
    }

    #[test]
    fn sharded_batch_norm_equals_the_whole_batch() {
        // Two shards' sums added, then each shard normalised: the whole batch's numbers.
        for spatial in [1, 4] {
            sharded_equals_whole(NormShape {
                batch: 6,
                channels: 3,
                spatial,
            });
        }
    }

    fn sharded_equals_whole(s: NormShape) {
        let x = random(s.len(), 5);
        let dy = random(s.len(), 6);
        let (gamma, beta) = (random(3, 7), random(3, 8));
        let mut whole_stats = BatchStats::default();
        let mut whole = vec![0f32; s.len()];
        batch_norm_train(
            &s,
            &x,
            affine(&gamma, &beta),
            EPS,
            &mut whole,
            &mut whole_stats,
        );
        let (mut wdx, mut wdg, mut wdb) = (vec![0f32; s.len()], [0f32; 3], [0f32; 3]);
        let grads = NormGrads {
            dx: Some(&mut wdx),
            dweight: &mut wdg,
            dbias: &mut wdb,
        };
        batch_norm_backward(&s, &x, &dy, &gamma, &whole_stats, grads);

        let half = NormShape { batch: 3, ..s };
        let (x0, x1) = x.split_at(half.len());
        let (dy0, dy1) = dy.split_at(half.len());
        let mut acc = vec![0f64; 6];
        batch_norm_moments(&half, x0, &mut acc);
        batch_norm_moments(&half, x1, &mut acc);
        let mut stats = BatchStats::default();
        batch_norm_stats(s.count(), &acc, EPS, &mut stats);
        assert_eq!(stats, whole_stats);
        let mut sums = vec![0f64; 6];
        batch_norm_grad_sums(&half, x0, dy0, &stats, &mut sums);
        batch_norm_grad_sums(&half, x1, dy1, &stats, &mut sums);
        let mut y = vec![0f32; s.len()];
        let mut dx = vec![0f32; s.len()];
        for (k, (xs, dys)) in [(x0, dy0), (x1, dy1)].into_iter().enumerate() {
            let range = k * half.len()..(k + 1) * half.len();
            let (m, inv) = (&stats.mean, &stats.invstd);
            batch_norm_apply(
                &half,
                xs,
                m,
                inv,
                affine(&gamma, &beta),
                &mut y[range.clone()],
            );
            batch_norm_dx(&half, xs, dys, &gamma, &stats, &sums, &mut dx[range]);
        }
        assert_eq!(y, whole);
        close("dx", &dx, &wdx);
        let dg: Vec<f32> = sums[3..].iter().map(|&v| v as f32).collect();
        close("dgamma", &dg, &wdg);
    }

    #[test]
    fn batch_norm_eval_uses_the_running_statistics() {
        // PyTorch: bn.eval(); y = (x − running_mean) / √(running_var + eps)·weight + bias.
        let s = NormShape {
            batch: 2,
            channels: 2,
            spatial: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut y = [0f32; 8];
        let running = ([1.0, -1.0], [4.0, 0.25]);
        let a = affine(&[2.0, 1.0], &[0.5, 0.0]);
        batch_norm_eval(&s, &x, &running.0, &running.1, a, 0.0, &mut y);
        // Channel 0: (x − 1)/2·2 + 0.5 = x − 0.5; channel 1: (x + 1)/0.5 = 2x + 2.
        assert_eq!(y, [0.5, 1.5, 8.0, 10.0, 4.5, 5.5, 16.0, 18.0]);
    }

    #[test]
    fn layer_norm_matches_candle() {
        // LayerNorm over a whole sample, e.g. (C, H, W) = (3, 5, 4): 60 values.
        let (batch, features) = (4, 60);
        let x: Vec<f32> = random(batch * features, 9)
            .iter()
            .enumerate()
            .map(|(i, v)| 2.0 + v * (1.0 + (i / features) as f32))
            .collect();
        let gamma = random(features, 10);
        let beta = random(features, 11);
        let r = random(batch * features, 12);
        let (xv, gv, bv) = (
            var(&x, &[batch, features]),
            var(&gamma, &[features]),
            var(&beta, &[features]),
        );
        let mean = xv.mean_keepdim(1).unwrap();
        let centred = xv.broadcast_sub(&mean).unwrap();
        let var_ = centred.sqr().unwrap().mean_keepdim(1).unwrap();
        let want = centred
            .broadcast_div(&(var_ + EPS).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&gv)
            .unwrap()
            .broadcast_add(&bv)
            .unwrap();
        let store = loss_with(&want, &r).backward().unwrap();

        let mut y = vec![f32::NAN; x.len()];
        let mut stats = SampleStats::default();
        layer_norm_forward(&x, features, affine(&gamma, &beta), EPS, &mut y, &mut stats);
        close("y", &y, &values(&want));
        let (mut dx, mut dg, mut db) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; features],
            vec![f32::NAN; features],
        );
        let grads = NormGrads {
            dx: Some(&mut dx),
            dweight: &mut dg,
            dbias: &mut db,
        };
        layer_norm_backward(&x, features, &r, &gamma, &stats, grads);
        close("dx", &dx, &grad(&store, &xv));
        close("dgamma", &dg, &grad(&store, &gv));
        close("dbeta", &db, &grad(&store, &bv));
    }
}
