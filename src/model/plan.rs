//! Shape inference before anything is allocated: each layer's input and output shape per
//! sample, and the tensors it owns, as PyTorch's lazy modules would infer them. A layer
//! that cannot take its input (a `Conv2d` on table rows, a size that shrinks below 1) is
//! refused here, naming the layer and the shapes.

use super::config::ModelConfig;
use super::spec::{LayerSpec, Padding, Pair};
use crate::error::Result;

/// Largest model lrfind builds: weights, gradients and optimizer state together (Adam keeps
/// two f32 moments per weight), checked before anything is allocated.
pub const MAX_MODEL_BYTES: u128 = 4 << 30;

/// Bytes per parameter in the worst case: weight, gradient, Adam's two moments (f32 each).
const BYTES_PER_PARAM: u128 = 16;

/// Most values one layer may output per sample (1 GiB of f32): beyond it a batch cannot fit.
pub const MAX_VALUES_PER_SAMPLE: usize = 1 << 28;

/// How a tensor starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// U(±1/√fan_in) from the seeded stream (PyTorch's Linear and Conv2d default).
    Uniform {
        /// Inputs feeding one output.
        fan_in: usize,
    },
    /// All ones (norm weights, running variances).
    Ones,
    /// All zeros (norm biases, running means).
    Zeros,
}

/// One tensor a layer owns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorPlan {
    /// `weight`, `bias`, `running_mean` or `running_var`.
    pub suffix: &'static str,
    /// Its shape.
    pub dims: Vec<usize>,
    /// How it starts.
    pub init: Init,
    /// Trained by the optimizer (false: a buffer such as a running mean).
    pub trainable: bool,
}

/// One layer with its shapes inferred.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerPlan {
    /// Its input, per sample.
    pub input: Vec<usize>,
    /// Its output, per sample.
    pub output: Vec<usize>,
    /// What it owns, weight before bias (the order the seeded stream fills them).
    pub tensors: Vec<TensorPlan>,
}

/// A shape as users read it: `[32, 5, 5]`.
fn show(s: &[usize]) -> String {
    format!("{s:?}")
}

/// What kind of input a shape is, for messages.
fn kind(s: &[usize]) -> String {
    match s.len() {
        1 => format!("{} (one row of {} values)", show(s), s[0]),
        3 => format!("{} (C, H, W)", show(s)),
        _ => show(s),
    }
}

fn uniform(suffix: &'static str, dims: Vec<usize>, fan_in: usize) -> TensorPlan {
    TensorPlan {
        suffix,
        dims,
        init: Init::Uniform { fan_in },
        trainable: true,
    }
}

fn filled(suffix: &'static str, dims: Vec<usize>, init: Init, trainable: bool) -> TensorPlan {
    TensorPlan {
        suffix,
        dims,
        init,
        trainable,
    }
}

/// Output size of a window sliding over `size` values (PyTorch's floor formula); None
/// when no window fits.
fn slide(size: usize, before: usize, after: usize, kernel: usize, stride: usize) -> Option<usize> {
    let padded = size.checked_add(before)?.checked_add(after)?;
    padded
        .checked_sub(kernel)
        .map(|room| room / stride.max(1) + 1)
}

/// Padding above/below and left/right of a `Conv2d` input.
pub(crate) fn conv_padding(padding: Padding, kernel: Pair) -> [usize; 4] {
    match padding {
        Padding::Zeros(p) => [p.h, p.h, p.w, p.w],
        Padding::Valid => [0; 4],
        // PyTorch: total k-1, the smaller half first.
        Padding::Same => {
            let (th, tw) = (kernel.h - 1, kernel.w - 1);
            [th / 2, th - th / 2, tw / 2, tw - tw / 2]
        }
    }
}

/// `[C, H, W]` or the message saying what the layer needs instead.
fn image(name: &str, input: &[usize]) -> Result<(usize, usize, usize), String> {
    match input {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!(
            "{name} needs images [C, H, W], but its input is {}",
            kind(input)
        )),
    }
}

/// A 2-D window layer's output `[C, H', W']`, or why the window does not fit.
fn windows(
    name: &str,
    input: &[usize],
    out_c: usize,
    kernel: Pair,
    stride: Pair,
    pad: [usize; 4],
) -> Result<Vec<usize>, String> {
    let (_, h, w) = image(name, input)?;
    match (
        slide(h, pad[0], pad[1], kernel.h, stride.h),
        slide(w, pad[2], pad[3], kernel.w, stride.w),
    ) {
        (Some(oh), Some(ow)) => Ok(vec![out_c, oh, ow]),
        _ => Err(format!(
            "its {}x{} window does not fit the input {} with padding ({}, {}): the size would shrink below 1",
            kernel.h,
            kernel.w,
            show(input),
            pad[0],
            pad[2]
        )),
    }
}

/// Shapes and tensors of one layer on `input`. `outputs` is what a `Linear` without
/// `out_features` gets.
fn plan_layer(layer: &LayerSpec, input: &[usize], outputs: usize) -> Result<LayerPlan, String> {
    let same = |tensors| {
        Ok(LayerPlan {
            input: input.to_vec(),
            output: input.to_vec(),
            tensors,
        })
    };
    let (output, tensors) = match layer {
        LayerSpec::Linear { out_features, bias } => {
            if input.len() >= 3 {
                return Err(format!(
                    "Linear acts on the last dimension, but its input is {}: put Flatten before it",
                    kind(input)
                ));
            }
            let fan_in = *input.last().unwrap_or(&0);
            let out = out_features.unwrap_or(outputs);
            let mut output = input.to_vec();
            if let Some(last) = output.last_mut() {
                *last = out;
            }
            let mut t = vec![uniform("weight", vec![out, fan_in], fan_in)];
            if *bias {
                t.push(uniform("bias", vec![out], fan_in));
            }
            (output, t)
        }
        LayerSpec::Conv2d {
            out_channels,
            kernel_size: k,
            stride,
            padding,
            bias,
        } => {
            let output = windows(
                "Conv2d",
                input,
                *out_channels,
                *k,
                *stride,
                conv_padding(*padding, *k),
            )?;
            let c = input[0];
            let fan_in = c.saturating_mul(k.h).saturating_mul(k.w);
            let mut t = vec![uniform("weight", vec![*out_channels, c, k.h, k.w], fan_in)];
            if *bias {
                t.push(uniform("bias", vec![*out_channels], fan_in));
            }
            (output, t)
        }
        LayerSpec::MaxPool2d {
            kernel_size: k,
            stride,
            padding: p,
        }
        | LayerSpec::AvgPool2d {
            kernel_size: k,
            stride,
            padding: p,
        } => {
            let c = image(layer.name(), input)?.0;
            let s = stride.unwrap_or(*k);
            (
                windows(layer.name(), input, c, *k, s, [p.h, p.h, p.w, p.w])?,
                Vec::new(),
            )
        }
        LayerSpec::AdaptiveAvgPool2d { output_size } => {
            let c = image("AdaptiveAvgPool2d", input)?.0;
            (vec![c, output_size.h, output_size.w], Vec::new())
        }
        LayerSpec::BatchNorm1d { .. } | LayerSpec::BatchNorm2d { .. } => {
            let is_2d = matches!(layer, LayerSpec::BatchNorm2d { .. });
            let fits = if is_2d {
                input.len() == 3
            } else {
                matches!(input.len(), 1 | 2)
            };
            if !fits {
                let (wants, other) = if is_2d {
                    ("images [C, H, W]", "BatchNorm1d")
                } else {
                    ("[features] or [channels, length]", "BatchNorm2d")
                };
                return Err(format!(
                    "{} needs {wants}, but its input is {}: use {other}",
                    layer.name(),
                    kind(input)
                ));
            }
            let c = input[0];
            let t = vec![
                filled("weight", vec![c], Init::Ones, true),
                filled("bias", vec![c], Init::Zeros, true),
                filled("running_mean", vec![c], Init::Zeros, false),
                filled("running_var", vec![c], Init::Ones, false),
            ];
            (input.to_vec(), t)
        }
        LayerSpec::LayerNorm { .. } => {
            let t = vec![
                filled("weight", input.to_vec(), Init::Ones, true),
                filled("bias", input.to_vec(), Init::Zeros, true),
            ];
            (input.to_vec(), t)
        }
        LayerSpec::Flatten => (vec![input.iter().product()], Vec::new()),
        LayerSpec::Dropout { .. }
        | LayerSpec::ReLU
        | LayerSpec::LeakyReLU { .. }
        | LayerSpec::GELU { .. }
        | LayerSpec::SiLU
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid => return same(Vec::new()),
    };
    Ok(LayerPlan {
        input: input.to_vec(),
        output,
        tensors,
    })
}

/// Values per sample, if it fits in a usize.
fn volume(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Every layer's shapes on samples of `input`, ending in `outputs` values. Errors carry the
/// index of the layer at fault (the last one when the output is wrong).
pub(crate) fn plan(
    layers: &[LayerSpec],
    input: &[usize],
    outputs: usize,
) -> Result<Vec<LayerPlan>, (usize, String)> {
    if input.is_empty() || input.contains(&0) || volume(input).is_none() {
        return Err((0, format!("the input shape {} has no values", show(input))));
    }
    let last_linear = layers
        .iter()
        .rposition(|l| matches!(l, LayerSpec::Linear { .. }));
    let mut shape = input.to_vec();
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        if let LayerSpec::Linear {
            out_features: None, ..
        } = layer
        {
            if Some(i) != last_linear {
                return Err((
                    i,
                    "only the last Linear may leave out out_features (it gets the number of outputs)"
                        .into(),
                ));
            }
        }
        let p = plan_layer(layer, &shape, outputs).map_err(|m| (i, m))?;
        if volume(&p.output).is_none() {
            return Err((i, too_many(&p.output)));
        }
        shape = p.output.clone();
        out.push(p);
    }
    if shape != [outputs] {
        let hint = if shape.len() == 1 {
            "end with a Linear without out_features"
        } else {
            "end with Flatten and a Linear without out_features"
        };
        return Err((
            layers.len().saturating_sub(1),
            format!(
                "the model outputs {} per sample, but the task needs [{outputs}]: {hint}",
                show(&shape)
            ),
        ));
    }
    Ok(out)
}

fn too_many(shape: &[usize]) -> String {
    format!(
        "its output {} is more than {MAX_VALUES_PER_SAMPLE} values per sample",
        show(shape)
    )
}

/// Refuses a layer whose output per sample passes [`MAX_VALUES_PER_SAMPLE`] (checked after
/// the size, which names the limit users meet first).
pub(crate) fn check_values(plan: &[LayerPlan]) -> Result<(), (usize, String)> {
    match plan
        .iter()
        .position(|l| volume(&l.output).is_none_or(|n| n > MAX_VALUES_PER_SAMPLE))
    {
        Some(i) => Err((i, too_many(&plan[i].output))),
        None => Ok(()),
    }
}

/// Trainable scalars in a plan (None on overflow).
pub(crate) fn param_count(plan: &[LayerPlan]) -> Option<u128> {
    plan.iter()
        .flat_map(|l| &l.tensors)
        .filter(|t| t.trainable)
        .try_fold(0u128, |a, t| {
            let n = t
                .dims
                .iter()
                .try_fold(1u128, |n, &d| n.checked_mul(d as u128))?;
            a.checked_add(n)
        })
}

/// Most bytes one batch's forward and backward may need for the values its layers produce
/// (8 GiB), checked from the layer shapes before the first batch.
pub const MAX_BATCH_BYTES: u128 = 8 << 30;

/// Bytes per sample that layer `spec` (input `input`, output `output`) holds in a forward and
/// backward pass: its output, kept for the backward, and the gradient with respect to it
/// (f32 each); for a convolution also its unfolded input (one row of `C·kh·kw` values per
/// output position) and that buffer's gradient.
fn layer_batch_bytes(spec: &LayerSpec, input: &[usize], output: &[usize]) -> u128 {
    let vol = |s: &[usize]| s.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    let mut values = vol(output).saturating_mul(2);
    if let (LayerSpec::Conv2d { kernel_size, .. }, [c, ..], [_, oh, ow]) = (spec, input, output) {
        let unfolded = vol(&[*c, kernel_size.h, kernel_size.w, *oh, *ow]);
        values = values.saturating_add(unfolded.saturating_mul(2));
    }
    values.saturating_mul(4)
}

/// Refuses a batch of `batch` samples whose forward and backward would need more than
/// [`MAX_BATCH_BYTES`]; the error (index, message) names the layer needing the most.
pub(crate) fn check_batch<'a>(
    layers: impl IntoIterator<Item = (&'a LayerSpec, &'a [usize], &'a [usize])>,
    input: &[usize],
    batch: usize,
) -> Result<(), (usize, String)> {
    let vol = input
        .iter()
        .fold(1u128, |a, &d| a.saturating_mul(d as u128));
    let mut total = vol.saturating_mul(4); // the batch itself
    let (mut worst, mut worst_bytes, mut worst_out) = (0, 0u128, Vec::new());
    for (i, (spec, inp, out)) in layers.into_iter().enumerate() {
        let b = layer_batch_bytes(spec, inp, out);
        total = total.saturating_add(b);
        if b > worst_bytes {
            (worst, worst_bytes, worst_out) = (i, b, out.to_vec());
        }
    }
    let total = total.saturating_mul(batch as u128);
    if total <= MAX_BATCH_BYTES {
        return Ok(());
    }
    let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
    Err((
        worst,
        format!(
            "a batch of {batch} would need {:.1} GiB for the values its forward and backward produce, {:.1} GiB of it for this layer's output {} per sample; the limit is {} GiB: use a smaller batch_size or a smaller layer",
            gib(total),
            gib(worst_bytes.saturating_mul(batch as u128)),
            show(&worst_out),
            MAX_BATCH_BYTES >> 30
        ),
    ))
}

/// Refuses a model whose weights, gradients and optimizer state would pass
/// [`MAX_MODEL_BYTES`].
pub(crate) fn check_size(config: &ModelConfig, plan: &[LayerPlan]) -> Result<()> {
    let bytes = param_count(plan).and_then(|n| n.checked_mul(BYTES_PER_PARAM));
    match bytes {
        Some(b) if b <= MAX_MODEL_BYTES => Ok(()),
        _ => Err(config.error(format!(
            "the {} model would need {} of memory for its weights, gradients and optimizer state; the limit is {} GiB (at most {} parameters)",
            config.name(),
            bytes.map_or("more than 2^128 bytes".into(), |b| format!(
                "{:.1} GiB",
                b as f64 / f64::from(1u32 << 30)
            )),
            MAX_MODEL_BYTES >> 30,
            MAX_MODEL_BYTES / BYTES_PER_PARAM
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::parse_layers;

    fn shapes(text: &str, input: &[usize], outputs: usize) -> Vec<Vec<usize>> {
        let layers = parse_layers(text).unwrap();
        plan(&layers, input, outputs)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .into_iter()
            .map(|l| l.output)
            .collect()
    }

    fn fault(text: &str, input: &[usize], outputs: usize) -> (usize, String) {
        plan(&parse_layers(text).unwrap(), input, outputs).unwrap_err()
    }

    #[test]
    fn shapes_follow_pytorch() {
        assert_eq!(
            shapes(
                "Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Conv2d(64, 3), ReLU, MaxPool2d(2), \
                 Flatten, Linear(128), ReLU, Dropout(0.25), Linear",
                &[1, 28, 28],
                10
            ),
            [
                vec![32, 28, 28],
                vec![32, 28, 28],
                vec![32, 14, 14],
                vec![64, 12, 12],
                vec![64, 12, 12],
                vec![64, 6, 6],
                vec![2304],
                vec![128],
                vec![128],
                vec![128],
                vec![10]
            ]
        );
        // Strides, asymmetric kernels, 'same' with an even kernel, pooling with padding,
        // adaptive pooling up and down, norms keep shapes.
        assert_eq!(
            shapes(
                "Conv2d(4, (3, 5), stride=(2, 1), padding=(1, 2)), BatchNorm2d, \
                 Conv2d(4, 4, padding='same'), MaxPool2d(3, stride=2, padding=1), \
                 AvgPool2d((2, 3), stride=1), AdaptiveAvgPool2d((5, 1)), LayerNorm, Flatten, \
                 BatchNorm1d, Linear",
                &[3, 9, 7],
                2
            ),
            [
                vec![4, 5, 7],
                vec![4, 5, 7],
                vec![4, 5, 7],
                vec![4, 3, 4],
                vec![4, 2, 2],
                vec![4, 5, 1],
                vec![4, 5, 1],
                vec![20],
                vec![20],
                vec![2]
            ]
        );
        // PyTorch's Linear acts on the last dimension of a [C, L] input.
        assert_eq!(
            shapes("Linear(6), BatchNorm1d, Flatten, Linear", &[4, 5], 3),
            [vec![4, 6], vec![4, 6], vec![24], vec![3]]
        );
    }

    #[test]
    fn tensors_and_fan_in() {
        let p = plan(
            &parse_layers(
                "Conv2d(6, 5, padding=2, bias=False), BatchNorm2d, Flatten, LayerNorm, Linear",
            )
            .unwrap(),
            &[3, 4, 4],
            10,
        )
        .unwrap();
        let t: Vec<(&str, Vec<usize>, Init, bool)> = p
            .iter()
            .flat_map(|l| {
                l.tensors
                    .iter()
                    .map(|t| (t.suffix, t.dims.clone(), t.init, t.trainable))
            })
            .collect();
        assert_eq!(
            t,
            [
                (
                    "weight",
                    vec![6, 3, 5, 5],
                    Init::Uniform { fan_in: 75 },
                    true
                ),
                ("weight", vec![6], Init::Ones, true),
                ("bias", vec![6], Init::Zeros, true),
                ("running_mean", vec![6], Init::Zeros, false),
                ("running_var", vec![6], Init::Ones, false),
                ("weight", vec![96], Init::Ones, true),
                ("bias", vec![96], Init::Zeros, true),
                ("weight", vec![10, 96], Init::Uniform { fan_in: 96 }, true),
                ("bias", vec![10], Init::Uniform { fan_in: 96 }, true),
            ]
        );
        assert_eq!(param_count(&p), Some(450 + 12 + 192 + 970));
    }

    #[test]
    fn layers_that_cannot_take_their_input_are_named() {
        assert_eq!(
            fault("Conv2d(8, 3), Flatten, Linear", &[13], 3),
            (
                0,
                "Conv2d needs images [C, H, W], but its input is [13] (one row of 13 values)"
                    .into()
            )
        );
        assert_eq!(
            fault("Conv2d(8, 3), Linear(10)", &[1, 28, 28], 10),
            (1, "Linear acts on the last dimension, but its input is [8, 26, 26] (C, H, W): put Flatten before it".into())
        );
        assert_eq!(
            fault("Conv2d(8, 5), MaxPool2d(2), Conv2d(8, 5), MaxPool2d(2), Conv2d(8, 5), Flatten, Linear", &[1, 16, 16], 10),
            (4, "its 5x5 window does not fit the input [8, 1, 1] with padding (0, 0): the size would shrink below 1".into())
        );
        assert_eq!(
            fault("Flatten, BatchNorm2d, Linear", &[1, 4, 4], 2),
            (1, "BatchNorm2d needs images [C, H, W], but its input is [16] (one row of 16 values): use BatchNorm1d".into())
        );
        assert_eq!(
            fault("BatchNorm1d, Flatten, Linear", &[1, 4, 4], 2),
            (0, "BatchNorm1d needs [features] or [channels, length], but its input is [1, 4, 4] (C, H, W): use BatchNorm2d".into())
        );
        assert_eq!(
            fault("Flatten, Linear, ReLU, Linear", &[4], 2),
            (
                1,
                "only the last Linear may leave out out_features (it gets the number of outputs)"
                    .into()
            )
        );
        assert_eq!(
            fault("Flatten, Linear(5)", &[4], 2),
            (1, "the model outputs [5] per sample, but the task needs [2]: end with a Linear without out_features".into())
        );
        assert_eq!(
            fault("Conv2d(2, 1)", &[1, 4, 4], 2),
            (0, "the model outputs [2, 4, 4] per sample, but the task needs [2]: end with Flatten and a Linear without out_features".into())
        );
        let big = plan(
            &parse_layers("Conv2d(100000, 1), Flatten, Linear").unwrap(),
            &[1, 100, 100],
            2,
        )
        .unwrap();
        assert_eq!(
            check_values(&big),
            Err((
                0,
                "its output [100000, 100, 100] is more than 268435456 values per sample".into()
            ))
        );
        assert_eq!(
            fault("Flatten, Linear", &[3, 0, 2], 2).1,
            "the input shape [3, 0, 2] has no values"
        );
    }

    #[test]
    fn size_limit_counts_trainable_values() {
        let m = ModelConfig::Layers {
            layers: parse_layers("Flatten, Linear(100000), ReLU, Linear(100000), Linear").unwrap(),
        };
        let p = plan(&m.layer_list(), &[784], 10).unwrap();
        assert_eq!(
            check_size(&m, &p).unwrap_err().to_string(),
            "layers = Flatten, Linear(100000), ReLU, Linear(100000), Linear: the Flatten, \
             Linear(100000), ReLU, Linear(100000), Linear model would need 150.2 GiB of memory for \
             its weights, gradients and optimizer state; the limit is 4 GiB (at most 268435456 parameters)"
        );
    }
}
