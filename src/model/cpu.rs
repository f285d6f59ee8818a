//! The layer list's forward and backward written out over plain f32 buffers with the
//! kernels of [`super::kernels`], for models whose tensors live on the CPU.
//!
//! candle's autograd on the CPU runs a convolution's backward as a direct
//! `conv_transpose2d` loop and also computes the gradient of the input batch; here a
//! convolution is im2col + gemm, pooling keeps its argmax, normalisations keep their
//! statistics, and nothing upstream of the first layer with parameters is back-propagated.
//! Every layer's input (or output, for activations whose derivative is a function of it) is
//! kept for the backward; layers that need neither work in place. Dropout masks and the
//! running-statistics update are those of the candle path ([`ops::dropout_mask`],
//! [`ops::running_update`]), so both paths train the same model.

use candle_core::{DType, Device, Tensor};

use super::kernels::{self as k, Activation, Affine, BatchStats, NormShape, SampleStats};
use super::ops::{self, MaskSource};
use super::plan::conv_padding;
use super::{GeluApproximate, Layer, LayerSpec, Mode, Model};
use crate::error::Result;

/// What a layer's forward keeps for its backward besides its input or output.
enum Saved {
    /// Nothing more.
    None,
    /// Max pooling: each output's position in its input plane.
    Argmax(Vec<u32>),
    /// Batch norm in training: the batch's statistics.
    Batch(BatchStats),
    /// Layer norm: each sample's statistics.
    Sample(SampleStats),
    /// Dropout in training: the multipliers (0 or 1/(1−p)).
    Mask(Vec<f32>),
}

/// The kernels' activation for an activation layer.
fn activation(spec: &LayerSpec) -> Option<Activation> {
    Some(match spec {
        LayerSpec::ReLU => Activation::Relu,
        LayerSpec::LeakyReLU { negative_slope } => Activation::LeakyRelu(*negative_slope as f32),
        LayerSpec::GELU { .. } => Activation::Gelu,
        LayerSpec::SiLU => Activation::Silu,
        LayerSpec::Tanh => Activation::Tanh,
        LayerSpec::Sigmoid => Activation::Sigmoid,
        _ => return None,
    })
}

/// Whether the kernels cover a layer (not: asymmetric `padding="same"` of an even kernel,
/// the tanh-approximated GELU).
pub(super) fn supported(layer: &Layer) -> bool {
    match &layer.spec {
        LayerSpec::Conv2d {
            kernel_size,
            padding,
            ..
        } => {
            let [t, b, l, r] = conv_padding(*padding, *kernel_size);
            t == b && l == r
        }
        LayerSpec::GELU { approximate } => matches!(approximate, GeluApproximate::None),
        _ => true,
    }
}

/// Whether a layer's backward reads its input (else only its shape, saved values or output).
fn needs_input(spec: &LayerSpec) -> bool {
    match spec {
        LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } | LayerSpec::LayerNorm { .. } => true,
        LayerSpec::BatchNorm1d { .. } | LayerSpec::BatchNorm2d { .. } => true,
        s => activation(s).is_some_and(Activation::needs_input),
    }
}

/// Whether a layer's backward reads its output.
fn needs_output(spec: &LayerSpec) -> bool {
    activation(spec).is_some_and(|a| !a.needs_input())
}

/// The values of a CPU tensor as one flat vector (a copy).
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// `[C, H, W]` of a per-sample shape.
fn chw(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [c, h, w] => (*c, *h, *w),
        _ => (0, 0, 0),
    }
}

/// Runs `f` on buffer `src` in place, or on a copy when a backward reads `src` later;
/// returns the buffer holding the result.
fn in_place(
    bufs: &mut Vec<Vec<f32>>,
    pinned: &mut Vec<bool>,
    src: usize,
    f: impl FnOnce(&mut [f32]),
) -> usize {
    if pinned[src] {
        let mut y = bufs[src].clone();
        f(&mut y);
        bufs.push(y);
        pinned.push(false);
        bufs.len() - 1
    } else {
        f(&mut bufs[src]);
        src
    }
}

/// A forward pass: the buffers and, per layer, where its input lies.
struct Pass {
    /// Activation buffers; several layers may share one (Flatten, in-place layers).
    bufs: Vec<Vec<f32>>,
    /// `at[i]`: the buffer holding layer `i`'s input; `at[n]` the outputs.
    at: Vec<usize>,
    saved: Vec<Saved>,
}

impl Model {
    /// Whether [`Model::loss_and_grads`] and [`Model::forward`] take the kernels: f32
    /// weights on the CPU and every layer covered.
    pub(super) fn on_kernels(&self, x: &Tensor) -> bool {
        x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.params.iter().all(|(_, v)| v.dtype() == DType::F32)
            && self.params.first().is_none_or(|(_, v)| v.device().is_cpu())
            && self.layers.iter().all(supported)
    }

    /// Threads each gemm may use: all of the pool's for a batch that stays whole (batch
    /// statistics), else one (the learner shards the batch over the cores).
    fn gemm_threads(&self) -> usize {
        if self.uses_batch_statistics() {
            rayon::current_num_threads()
        } else {
            1
        }
    }

    /// The forward pass; `keep` keeps what the backward needs (else each input is freed
    /// as soon as it is used).
    fn kernel_forward(&self, x: &Tensor, mode: Mode, keep: bool) -> Result<Pass> {
        let rows = x.dim(0)?;
        let n = self.layers.len();
        let train = matches!(mode, Mode::Train { .. });
        let threads = self.gemm_threads();
        let mut pass = Pass {
            bufs: vec![values(x)?],
            at: vec![0],
            saved: Vec::with_capacity(n),
        };
        // Buffers a backward reads: never modified in place.
        let mut pinned = vec![false];
        let mut scratch = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let src = pass.at[i];
            if keep && needs_input(&layer.spec) {
                pinned[src] = true;
            }
            let in_len = rows * layer.input.iter().product::<usize>();
            let out_len = rows * layer.output.iter().product::<usize>();
            let w = layer
                .weight
                .as_ref()
                .map(|v| values(v.as_tensor()))
                .transpose()?;
            let b = layer
                .bias
                .as_ref()
                .map(|v| values(v.as_tensor()))
                .transpose()?;
            let missing = || candle_core::Error::Msg(format!("layer {i} has no weight"));
            let mut saved = Saved::None;
            // In place: the layer rewrites its input buffer (or only renames it).
            let dst = match &layer.spec {
                LayerSpec::Flatten => src,
                LayerSpec::Dropout { p } => match mode {
                    Mode::Train { step, first_row } if *p > 0.0 => {
                        let mask = ops::dropout_mask(
                            MaskSource {
                                seed: self.seed,
                                step,
                                layer: i,
                                first_row,
                            },
                            rows,
                            in_len / rows.max(1),
                            *p,
                        );
                        let dst = in_place(&mut pass.bufs, &mut pinned, src, |h| {
                            h.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m)
                        });
                        saved = Saved::Mask(mask);
                        dst
                    }
                    _ => src,
                },
                spec if activation(spec).is_some_and(|a| !a.needs_input()) => {
                    let act = activation(spec).unwrap_or(Activation::Relu);
                    in_place(&mut pass.bufs, &mut pinned, src, |h| {
                        k::activation_forward_in_place(act, h)
                    })
                }
                spec => {
                    let x = &pass.bufs[src][..in_len];
                    let mut y = vec![0f32; out_len];
                    match spec {
                        LayerSpec::Linear { .. } => {
                            let inputs = *layer.input.last().unwrap_or(&1);
                            let s = k::LinearShape {
                                batch: in_len / inputs.max(1),
                                inputs,
                                outputs: *layer.output.last().unwrap_or(&1),
                            };
                            let w = w.as_deref().ok_or_else(missing)?;
                            k::linear_forward(&s, x, w, b.as_deref(), &mut y, threads);
                        }
                        LayerSpec::Conv2d { .. } => {
                            let s = conv_shape(layer, rows);
                            let w = w.as_deref().ok_or_else(missing)?;
                            conv_forward(&s, x, w, b.as_deref(), &mut y, &mut scratch, threads);
                        }
                        LayerSpec::MaxPool2d {
                            kernel_size,
                            stride,
                            padding,
                        } => {
                            let s = pool_shape(layer, rows, *kernel_size, *stride, *padding);
                            let mut argmax = vec![0u32; out_len];
                            k::max_pool2d_forward(&s, x, &mut y, &mut argmax);
                            if keep {
                                saved = Saved::Argmax(argmax);
                            }
                        }
                        LayerSpec::AvgPool2d {
                            kernel_size,
                            stride,
                            padding,
                        } => {
                            let s = pool_shape(layer, rows, *kernel_size, *stride, *padding);
                            k::avg_pool2d_forward(&s, x, &mut y);
                        }
                        LayerSpec::AdaptiveAvgPool2d { .. } => {
                            k::adaptive_avg_pool2d_forward(&adaptive_shape(layer, rows), x, &mut y);
                        }
                        LayerSpec::BatchNorm1d { eps, momentum }
                        | LayerSpec::BatchNorm2d { eps, momentum } => {
                            let s = norm_shape(layer, rows);
                            let (w, b) = (w.as_deref(), b.as_deref());
                            let affine = Affine {
                                weight: w.ok_or_else(missing)?,
                                bias: b.ok_or_else(missing)?,
                            };
                            let (rm, rv) = layer.running.as_ref().ok_or_else(missing)?;
                            if train {
                                if s.count() < 2 {
                                    return Err(self.too_few_per_channel(i, rows));
                                }
                                let mut acc = vec![0f64; 2 * s.channels];
                                k::batch_norm_moments(&s, x, &mut acc);
                                let mut stats = BatchStats::default();
                                k::batch_norm_stats(s.count(), &acc, *eps, &mut stats);
                                k::batch_norm_apply(
                                    &s,
                                    x,
                                    &stats.mean,
                                    &stats.invstd,
                                    affine,
                                    &mut y,
                                );
                                // The biased variance, as the candle path hands it on.
                                let count = s.count() as f64;
                                let biased: Vec<f32> = (0..s.channels)
                                    .map(|c| {
                                        let m = acc[c] / count;
                                        (acc[s.channels + c] / count - m * m).max(0.0) as f32
                                    })
                                    .collect();
                                let cpu = &Device::Cpu;
                                let (m, v) = ops::running_update(
                                    &rm.as_tensor().detach(),
                                    &rv.as_tensor().detach(),
                                    &Tensor::from_slice(&stats.mean, s.channels, cpu)?,
                                    &Tensor::from_vec(biased, s.channels, cpu)?,
                                    s.count(),
                                    *momentum,
                                )?;
                                rm.set(&m)?;
                                rv.set(&v)?;
                                saved = Saved::Batch(stats);
                            } else {
                                k::batch_norm_eval(
                                    &s,
                                    x,
                                    &values(rm.as_tensor())?,
                                    &values(rv.as_tensor())?,
                                    affine,
                                    *eps,
                                    &mut y,
                                );
                            }
                        }
                        LayerSpec::LayerNorm { eps } => {
                            let affine = Affine {
                                weight: w.as_deref().ok_or_else(missing)?,
                                bias: b.as_deref().ok_or_else(missing)?,
                            };
                            let mut stats = SampleStats::default();
                            let features = in_len / rows.max(1);
                            k::layer_norm_forward(x, features, affine, *eps, &mut y, &mut stats);
                            saved = Saved::Sample(stats);
                        }
                        spec => {
                            // Activations whose backward reads the input.
                            let act = activation(spec).ok_or_else(|| {
                                candle_core::Error::Msg(format!("layer {i}: no kernel"))
                            })?;
                            k::activation_forward(act, x, &mut y);
                        }
                    }
                    if !pinned[src] {
                        // Nothing reads it again: free it now.
                        pass.bufs[src] = Vec::new();
                    }
                    pass.bufs.push(y);
                    pinned.push(false);
                    pass.bufs.len() - 1
                }
            };
            if keep && needs_output(&layer.spec) {
                pinned[dst] = true;
            }
            pass.at.push(dst);
            pass.saved.push(saved);
        }
        Ok(pass)
    }

    /// The outputs as a tensor `(B, output…)`.
    fn outputs_tensor(&self, pass: &mut Pass, rows: usize, take: bool) -> Result<Tensor> {
        let last = pass.at[self.layers.len()];
        let mut dims = vec![rows];
        dims.extend(
            self.layers
                .last()
                .map_or(self.input.as_slice(), |l| l.output.as_slice()),
        );
        let v = if take {
            std::mem::take(&mut pass.bufs[last])
        } else {
            pass.bufs[last].clone()
        };
        Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
    }

    /// Evaluation-mode outputs through the kernels.
    pub(super) fn kernel_eval(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.batch(x)?;
        let mut pass = self.kernel_forward(&x, Mode::Eval, false)?;
        self.outputs_tensor(&mut pass, x.dim(0)?, true)
    }

    /// [`Model::loss_and_grads`] through the kernels.
    pub(super) fn kernel_loss_and_grads(
        &self,
        x: &Tensor,
        mode: Mode,
        loss: impl FnOnce(&Tensor) -> Result<(f64, Tensor)>,
    ) -> Result<(f64, Vec<Option<Tensor>>)> {
        let x = self.batch(x)?;
        let rows = x.dim(0)?;
        let mut pass = self.kernel_forward(&x, mode, true)?;
        let out = self.outputs_tensor(&mut pass, rows, false)?;
        let (value, grad) = loss(&out)?;
        super::check_grad(&out, &grad)?;
        let mut g = values(&grad)?;
        let mut spare: Vec<f32> = Vec::new();
        let mut scratch = Vec::new();
        let threads = self.gemm_threads();
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        // Nothing before the first layer with a parameter that trains needs a gradient (a
        // frozen body: the backward stops at the first layer that trains).
        let first = self
            .layers
            .iter()
            .position(|l| self.layer_trains(l))
            .unwrap_or(self.layers.len());
        let cpu = &Device::Cpu;
        for (i, layer) in self.layers.iter().enumerate().skip(first).rev() {
            let need_dx = i > first;
            let in_len = rows * layer.input.iter().product::<usize>();
            let x = &pass.bufs[pass.at[i]];
            let y = &pass.bufs[pass.at[i + 1]];
            let w = layer
                .weight
                .as_ref()
                .map(|v| values(v.as_tensor()))
                .transpose()?;
            let missing = || candle_core::Error::Msg(format!("layer {i} has no weight"));
            let (mut dw, mut db) = (
                layer.weight.as_ref().map(|v| vec![0f32; v.elem_count()]),
                layer.bias.as_ref().map(|v| vec![0f32; v.elem_count()]),
            );
            if need_dx {
                // Kernels overwrite it: only growth is zeroed.
                spare.resize(in_len, 0.0);
            }
            let dx = need_dx.then_some(&mut spare[..]);
            // Whether `spare` now holds the input gradient (else `g` was updated in place).
            let mut swapped = need_dx;
            match (&layer.spec, &pass.saved[i]) {
                (LayerSpec::Linear { .. }, _) => {
                    let inputs = *layer.input.last().unwrap_or(&1);
                    let s = k::LinearShape {
                        batch: in_len / inputs.max(1),
                        inputs,
                        outputs: *layer.output.last().unwrap_or(&1),
                    };
                    let grads = k::LinearGrads {
                        dw: dw.as_deref_mut().ok_or_else(missing)?,
                        db: db.as_deref_mut(),
                        dx,
                    };
                    let w = w.as_deref().ok_or_else(missing)?;
                    k::linear_backward(&s, x, w, &g, grads, threads);
                }
                (LayerSpec::Conv2d { .. }, _) => {
                    let grads = k::Conv2dGrads {
                        dw: dw.as_deref_mut().ok_or_else(missing)?,
                        db: db.as_deref_mut(),
                        dx,
                    };
                    let w = w.as_deref().ok_or_else(missing)?;
                    let s = conv_shape(layer, rows);
                    conv_backward(&s, x, w, &g, grads, &mut scratch, threads);
                }
                (
                    LayerSpec::MaxPool2d {
                        kernel_size,
                        stride,
                        padding,
                    },
                    Saved::Argmax(argmax),
                ) => {
                    if let Some(dx) = dx {
                        let s = pool_shape(layer, rows, *kernel_size, *stride, *padding);
                        k::max_pool2d_backward(&s, argmax, &g, dx);
                    }
                }
                (
                    LayerSpec::AvgPool2d {
                        kernel_size,
                        stride,
                        padding,
                    },
                    _,
                ) => {
                    if let Some(dx) = dx {
                        let s = pool_shape(layer, rows, *kernel_size, *stride, *padding);
                        k::avg_pool2d_backward(&s, &g, dx);
                    }
                }
                (LayerSpec::AdaptiveAvgPool2d { .. }, _) => {
                    if let Some(dx) = dx {
                        k::adaptive_avg_pool2d_backward(&adaptive_shape(layer, rows), &g, dx);
                    }
                }
                (
                    LayerSpec::BatchNorm1d { .. } | LayerSpec::BatchNorm2d { .. },
                    Saved::Batch(stats),
                ) => {
                    let grads = k::NormGrads {
                        dx,
                        dweight: dw.as_deref_mut().ok_or_else(missing)?,
                        dbias: db.as_deref_mut().ok_or_else(missing)?,
                    };
                    let w = w.as_deref().ok_or_else(missing)?;
                    k::batch_norm_backward(&norm_shape(layer, rows), x, &g, w, stats, grads);
                }
                (LayerSpec::BatchNorm1d { eps, .. } | LayerSpec::BatchNorm2d { eps, .. }, _) => {
                    // Eval mode: a fixed per-channel affine `x·scale + shift`.
                    let s = norm_shape(layer, rows);
                    let (rm, rv) = layer.running.as_ref().ok_or_else(missing)?;
                    let (mean, scale) = (
                        values(rm.as_tensor())?,
                        k::eval_scale(&values(rv.as_tensor())?, *eps),
                    );
                    let w = w.as_deref().ok_or_else(missing)?;
                    let (dw, db) = (
                        dw.as_deref_mut().ok_or_else(missing)?,
                        db.as_deref_mut().ok_or_else(missing)?,
                    );
                    let spatial = s.spatial.max(1);
                    let mut dxo = dx;
                    for (r, gr) in g.chunks_exact(spatial).enumerate() {
                        let c = r % s.channels;
                        let xr = &x[r * spatial..(r + 1) * spatial];
                        for (&d, &v) in gr.iter().zip(xr) {
                            db[c] += d;
                            dw[c] += d * (v - mean[c]) * scale[c];
                        }
                        if let Some(dx) = dxo.as_deref_mut() {
                            let a = w[c] * scale[c];
                            for (o, &d) in dx[r * spatial..(r + 1) * spatial].iter_mut().zip(gr) {
                                *o = d * a;
                            }
                        }
                    }
                }
                (LayerSpec::LayerNorm { .. }, Saved::Sample(stats)) => {
                    let grads = k::NormGrads {
                        dx,
                        dweight: dw.as_deref_mut().ok_or_else(missing)?,
                        dbias: db.as_deref_mut().ok_or_else(missing)?,
                    };
                    let w = w.as_deref().ok_or_else(missing)?;
                    k::layer_norm_backward(x, in_len / rows.max(1), &g, w, stats, grads);
                }
                (LayerSpec::Dropout { .. }, Saved::Mask(mask)) => {
                    swapped = false;
                    g.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
                }
                (spec, _) => {
                    swapped = false;
                    if let Some(act) = activation(spec) {
                        let saved = if act.needs_input() { x } else { y };
                        k::activation_backward(act, saved, &mut g);
                    }
                    // Flatten, and dropout outside training: the gradient passes unchanged.
                }
            }
            if swapped {
                std::mem::swap(&mut g, &mut spare);
            }
            // A frozen layer above the first that trains: its weight gradient was computed
            // with the input gradient (the kernels do both in one pass) and is dropped here.
            let frozen = &self.frozen;
            let mut put =
                |slot: Option<usize>, v: Option<Vec<f32>>, var: Option<&candle_core::Var>| {
                    if let (Some(slot), Some(v), Some(var)) = (slot, v, var) {
                        if !frozen[slot] {
                            grads[slot] = Some(Tensor::from_vec(v, var.dims(), cpu)?);
                        }
                    }
                    Ok::<_, crate::error::Error>(())
                };
            put(layer.slots.0, dw, layer.weight.as_ref())?;
            put(layer.slots.1, db, layer.bias.as_ref())?;
        }
        self.check_complete(&grads)?;
        Ok((value, grads))
    }
}

/// Images per part when a whole batch's convolution is split over `threads` (None: one part).
fn conv_parts(s: &k::Conv2dShape, threads: usize) -> Option<usize> {
    (threads > 1 && s.batch >= 2 * threads).then(|| s.batch.div_ceil(threads))
}

/// [`k::conv2d_forward`], its images split over `threads` of the current pool (a batch that
/// stays whole for its batch statistics still uses every core).
fn conv_forward(
    s: &k::Conv2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut Vec<f32>,
    threads: usize,
) {
    use rayon::prelude::*;
    let Some(per) = conv_parts(s, threads) else {
        return k::conv2d_forward(s, x, w, b, y, scratch);
    };
    let (xi, yi) = (s.in_len() / s.batch, s.out_len() / s.batch);
    y[..s.out_len()]
        .par_chunks_mut(per * yi)
        .zip(x[..s.in_len()].par_chunks(per * xi))
        .for_each(|(y, x)| {
            let part = k::Conv2dShape {
                batch: x.len() / xi,
                ..*s
            };
            k::conv2d_forward(&part, x, w, b, y, &mut Vec::new());
        });
}

/// [`k::conv2d_backward`] split like [`conv_forward`]: the parts' weight and bias gradients
/// are added in order.
fn conv_backward(
    s: &k::Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    grads: k::Conv2dGrads<'_>,
    scratch: &mut Vec<f32>,
    threads: usize,
) {
    use rayon::prelude::*;
    let Some(per) = conv_parts(s, threads) else {
        return k::conv2d_backward(s, x, w, dy, grads, scratch);
    };
    let (xi, yi) = (s.in_len() / s.batch, s.out_len() / s.batch);
    let k::Conv2dGrads { dw, db, dx } = grads;
    let with_bias = db.is_some();
    let mut dx_parts: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx[..s.in_len()].chunks_mut(per * xi).map(Some).collect(),
        None => (0..s.batch.div_ceil(per)).map(|_| None).collect(),
    };
    let parts: Vec<(Vec<f32>, Vec<f32>)> = x[..s.in_len()]
        .par_chunks(per * xi)
        .zip(dy[..s.out_len()].par_chunks(per * yi))
        .zip(dx_parts.par_iter_mut())
        .map(|((x, dy), dx)| {
            let part = k::Conv2dShape {
                batch: x.len() / xi,
                ..*s
            };
            let mut dw = vec![0f32; dw.len()];
            let mut db = vec![0f32; if with_bias { s.out_channels } else { 0 }];
            let grads = k::Conv2dGrads {
                dw: &mut dw,
                db: with_bias.then_some(&mut db[..]),
                dx: dx.as_deref_mut(),
            };
            k::conv2d_backward(&part, x, w, dy, grads, &mut Vec::new());
            (dw, db)
        })
        .collect();
    dw.fill(0.0);
    let mut db = db;
    if let Some(db) = db.as_deref_mut() {
        db.fill(0.0);
    }
    for (pw, pb) in &parts {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        if let Some(db) = db.as_deref_mut() {
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
    }
}

fn conv_shape(layer: &Layer, rows: usize) -> k::Conv2dShape {
    let (c, h, w) = chw(&layer.input);
    let (co, kernel, stride, padding) = match &layer.spec {
        LayerSpec::Conv2d {
            kernel_size,
            stride,
            padding,
            ..
        } => {
            let [t, _, l, _] = conv_padding(*padding, *kernel_size);
            (
                layer.output.first().copied().unwrap_or(0),
                (kernel_size.h, kernel_size.w),
                (stride.h, stride.w),
                (t, l),
            )
        }
        _ => (0, (1, 1), (1, 1), (0, 0)),
    };
    k::Conv2dShape {
        batch: rows,
        in_channels: c,
        height: h,
        width: w,
        out_channels: co,
        kernel,
        stride,
        padding,
    }
}

fn pool_shape(
    layer: &Layer,
    rows: usize,
    kernel: super::Pair,
    stride: Option<super::Pair>,
    padding: super::Pair,
) -> k::Pool2dShape {
    let (c, h, w) = chw(&layer.input);
    let stride = stride.unwrap_or(kernel);
    k::Pool2dShape {
        batch: rows,
        channels: c,
        height: h,
        width: w,
        kernel: (kernel.h, kernel.w),
        stride: (stride.h, stride.w),
        padding: (padding.h, padding.w),
    }
}

fn adaptive_shape(layer: &Layer, rows: usize) -> k::AdaptivePoolShape {
    let (c, h, w) = chw(&layer.input);
    let (_, oh, ow) = chw(&layer.output);
    k::AdaptivePoolShape {
        batch: rows,
        channels: c,
        height: h,
        width: w,
        out: (oh, ow),
    }
}

fn norm_shape(layer: &Layer, rows: usize) -> NormShape {
    NormShape {
        batch: rows,
        channels: layer.input.first().copied().unwrap_or(1),
        spatial: layer.input.iter().skip(1).product(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{spec, ModelConfig};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const CPU: Device = Device::Cpu;

    fn layers(text: &str) -> ModelConfig {
        ModelConfig::Layers {
            layers: spec::parse_layers(text).unwrap(),
        }
    }

    fn random(dims: &[usize], seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_vec(v, dims, &CPU).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// `max |got − want| / max |want|` ≤ 1e-4, the scale at least `floor`: a gradient that is
    /// zero in exact arithmetic (a bias before a batch norm) is rounding noise in both paths,
    /// measured against the model's gradients.
    fn close(what: &str, got: &Tensor, want: &Tensor, floor: f32) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes");
        let (g, w) = (flat(got), flat(want));
        let diff = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = w.iter().map(|b| b.abs()).fold(0f32, f32::max);
        assert!(g.iter().all(|v| v.is_finite()), "{what}: non-finite");
        assert!(
            diff <= 1e-4 * scale.max(floor),
            "{what}: difference {diff:e}, largest value {scale:e}"
        );
    }

    /// `Σ out·r` for a fixed random `r`: every output gets its own gradient.
    fn loss_with(r: &Tensor) -> impl FnOnce(&Tensor) -> Result<(f64, Tensor)> + '_ {
        move |out: &Tensor| {
            let v = out.mul(r)?.sum_all()?.to_scalar::<f32>()?;
            Ok((f64::from(v), r.clone()))
        }
    }

    /// Loss, gradients, running statistics (train) and eval outputs of the kernels equal
    /// autograd's on `batch` random samples.
    fn matches_autograd(cfg: &ModelConfig, input: &[usize], batch: usize, mode: Mode) {
        let what = format!("{} {mode:?}", cfg.name());
        let m = Model::new(cfg, input, 3, 5, &CPU).unwrap();
        assert!(m.on_kernels(&random(&[1, 1], 0)), "{what}: kernels");
        let x = random(&[batch, input.iter().product()], 1);
        let out_dims: Vec<usize> = std::iter::once(batch)
            .chain(m.layers.last().unwrap().output.iter().copied())
            .collect();
        let r = random(&out_dims, 2);
        let snap = m.snapshot().unwrap();
        let (loss, grads) = m.kernel_loss_and_grads(&x, mode, loss_with(&r)).unwrap();
        let buffers: Vec<Tensor> = m
            .named_buffers()
            .iter()
            .map(|(_, v)| v.as_tensor().copy().unwrap())
            .collect();
        m.restore(&snap).unwrap();
        let (want, auto) = m.autograd_loss_and_grads(&x, mode, loss_with(&r)).unwrap();
        assert!(
            (loss - want).abs() <= 1e-4 * want.abs().max(1e-2),
            "{what}: loss {loss} vs {want}"
        );
        assert_eq!(grads.len(), m.named_vars().len());
        let all =
            |g: Vec<Option<Tensor>>| -> Vec<Tensor> { g.into_iter().map(Option::unwrap).collect() };
        let (grads, auto) = (all(grads), all(auto));
        let largest = auto
            .iter()
            .flat_map(flat)
            .map(f32::abs)
            .fold(0f32, f32::max);
        for ((name, _), (g, a)) in m.named_vars().iter().zip(grads.iter().zip(&auto)) {
            close(&format!("{what} {name}"), g, a, 0.1 * largest);
        }
        for (((name, v), b), s) in m.named_buffers().iter().zip(&buffers).zip(&snap) {
            close(&format!("{what} {name}"), b, v.as_tensor(), 1e-2);
            if matches!(mode, Mode::Train { .. }) {
                assert!(flat(b) != flat(s), "{what} {name}: updated");
            }
        }
        // Evaluation outputs.
        let got = m.kernel_eval(&x).unwrap();
        let want = m.forward_t(&x, Mode::Eval).unwrap();
        close(&format!("{what} eval"), &got, &want, 1e-2);
        m.restore(&snap).unwrap();
    }

    const TRAIN: Mode = Mode::Train {
        step: 3,
        first_row: 5,
    };

    #[test]
    fn every_layer_kind_matches_autograd() {
        for (text, input) in [
            // Stride, padding, odd and non-square sizes, no bias.
            ("Conv2d(5, 3, stride=2, padding=1), ReLU, Flatten, Linear", &[3usize, 9, 7][..]),
            (
                "Conv2d(4, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), Tanh, Conv2d(3, 1), Sigmoid, Flatten, Linear",
                &[2, 8, 7],
            ),
            ("Conv2d(3, 2), MaxPool2d(3, stride=2, padding=1), Flatten, Linear", &[2, 9, 8]),
            ("Conv2d(3, 2), MaxPool2d((2, 3)), LeakyReLU(0.1), Flatten, Linear", &[1, 9, 10]),
            ("Conv2d(3, 1), AvgPool2d(3, stride=2, padding=1), Flatten, Linear", &[2, 9, 8]),
            ("Conv2d(3, 1), AdaptiveAvgPool2d((2, 3)), GELU, Flatten, Linear", &[2, 7, 9]),
            ("Conv2d(4, 3, padding=1), BatchNorm2d(momentum=0.3), SiLU, Flatten, Linear", &[2, 5, 5]),
            ("Conv2d(4, 3, padding='same'), LayerNorm, ReLU, Dropout(0.3), Flatten, Linear", &[2, 5, 6]),
            ("Flatten, Linear(6), BatchNorm1d, ReLU, Dropout(0.5), Linear(5), LayerNorm, Tanh, Linear", &[7]),
            ("Linear(6), ReLU, Dropout(0.2), ReLU, Linear", &[5]),
            // Layers without parameters first: no gradient flows back through them.
            ("ReLU, MaxPool2d(2), Conv2d(3, 3), Flatten, Linear(bias=False)", &[1, 8, 8]),
        ] {
            let cfg = layers(text);
            matches_autograd(&cfg, input, 11, TRAIN);
            matches_autograd(&cfg, input, 6, Mode::Eval);
        }
    }

    #[test]
    fn presets_and_a_batch_norm_cnn_match_autograd() {
        for cfg in [
            ModelConfig::Cnn,
            ModelConfig::Lenet,
            layers("Conv2d(8, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2), Conv2d(16, 3), BatchNorm2d, ReLU, Dropout(0.25), MaxPool2d(2), Flatten, Linear(32), ReLU, Dropout(0.5), Linear"),
        ] {
            matches_autograd(&cfg, &[1, 28, 28], 9, TRAIN);
        }
    }

    #[test]
    fn other_models_keep_their_paths() {
        // The tanh GELU and asymmetric "same" padding have no kernel.
        for text in [
            "Conv2d(2, 3), GELU(approximate='tanh'), Flatten, Linear",
            "Conv2d(2, 2, padding='same'), Flatten, Linear",
        ] {
            let m = Model::new(&layers(text), &[1, 6, 6], 3, 0, &CPU).unwrap();
            assert!(!m.on_kernels(&random(&[1, 36], 0)), "{text}");
        }
        // A batch norm in training still refuses one value per channel.
        let m = Model::new(&layers("Linear(4), BatchNorm1d, Linear"), &[3], 2, 0, &CPU).unwrap();
        let x = random(&[1, 3], 0);
        let err = m
            .loss_and_grads(&x, TRAIN, loss_with(&random(&[1, 2], 1)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one value per channel"), "{err}");
    }
}
