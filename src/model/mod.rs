//! The models a range test or training run can use, initialised from a seed.
//!
//! candle's CPU RNG cannot be seeded, so weights are drawn here from ChaCha8 with PyTorch's
//! default scheme (U(±1/√fan_in) for weights and biases): same seed, same bits.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageShape;
use crate::error::{Error, Result, Scope};

pub mod kernels;

/// Which architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// Fully connected, ReLU between layers.
    Mlp {
        /// Width of each hidden layer, input side first.
        hidden: Vec<usize>,
    },
    /// Multinomial logistic regression.
    Linear,
    /// conv3x3(32) → ReLU → pool2 → conv3x3(64) → ReLU → pool2 → fc(128) → ReLU → fc.
    Cnn,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp {
            hidden: vec![256, 128],
        }
    }
}

impl ModelConfig {
    /// From a model's name (`mlp`, `linear`, `cnn`) and, for `mlp`, its hidden widths
    /// (`256,128`).
    pub fn parse(kind: &str, hidden: &str) -> Result<Self> {
        match kind.to_ascii_lowercase().as_str() {
            "mlp" => {
                let m = ModelConfig::Mlp {
                    hidden: parse_hidden(hidden)?,
                };
                m.validate()?;
                Ok(m)
            }
            "linear" => Ok(ModelConfig::Linear),
            "cnn" => Ok(ModelConfig::Cnn),
            _ => Err(Error::setting(
                Scope::Model,
                "kind",
                kind,
                "unknown model (allowed: mlp, linear, cnn)",
            )),
        }
    }

    /// A short name for titles and reports (`mlp(256-128)`).
    pub fn name(&self) -> String {
        match self {
            ModelConfig::Mlp { hidden } => format!(
                "mlp({})",
                hidden
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join("-")
            ),
            ModelConfig::Linear => "linear".into(),
            ModelConfig::Cnn => "cnn".into(),
        }
    }
}

/// Largest model lrfind builds: weights, gradients and optimizer state together (Adam keeps
/// two f32 moments per weight), checked before anything is allocated.
pub const MAX_MODEL_BYTES: u128 = 4 << 30;

/// Bytes per parameter in the worst case: weight, gradient, Adam's two moments (f32 each).
const BYTES_PER_PARAM: u128 = 16;

impl ModelConfig {
    /// Checks a model read from flags or a file: widths at least 1, size within
    /// [`MAX_MODEL_BYTES`] (for MNIST-sized 784-pixel input; [`Model::new`] rechecks with
    /// the real input size).
    pub fn validate(&self) -> Result<()> {
        self.check_size(
            ImageShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            10,
        )
    }

    /// Number of parameters for inputs of `shape` and `classes` outputs (None on overflow).
    pub fn param_count(&self, shape: ImageShape, classes: usize) -> Option<u128> {
        let lin = |i: u128, o: u128| i.checked_mul(o)?.checked_add(o);
        let input = shape.len() as u128;
        let classes = classes as u128;
        match self {
            ModelConfig::Linear => lin(input, classes),
            ModelConfig::Mlp { hidden } => {
                let mut total: u128 = 0;
                let mut fan_in = input;
                for &h in hidden {
                    total = total.checked_add(lin(fan_in, h as u128)?)?;
                    fan_in = h as u128;
                }
                total.checked_add(lin(fan_in, classes)?)
            }
            ModelConfig::Cnn => {
                let after = |s: usize| (s.saturating_sub(2)) / 2;
                let (h, w) = (after(after(shape.height)), after(after(shape.width)));
                let conv = (shape.channels as u128 * 9 + 1) * 32 + (32 * 9 + 1) * 64;
                Some(conv + lin(64 * (h * w) as u128, 128)? + lin(128, classes)?)
            }
        }
    }

    fn check_size(&self, shape: ImageShape, classes: usize) -> Result<()> {
        if let ModelConfig::Mlp { hidden } = self {
            if hidden.is_empty() || hidden.contains(&0) {
                return Err(Error::setting(
                    Scope::Model,
                    "hidden",
                    widths(hidden),
                    "expected comma-separated positive layer widths, e.g. 256,128",
                ));
            }
        }
        let bytes = self
            .param_count(shape, classes)
            .and_then(|n| n.checked_mul(BYTES_PER_PARAM));
        match bytes {
            Some(b) if b <= MAX_MODEL_BYTES => Ok(()),
            _ => Err(Error::setting(
                Scope::Model,
                "hidden",
                match self {
                    ModelConfig::Mlp { hidden } => widths(hidden),
                    other => other.name(),
                },
                format!("the {} model would need {} of memory for its weights, gradients and optimizer state; the limit is {} GiB (at most {} parameters)",
                self.name(),
                bytes.map_or("more than 2^128 bytes".into(), |b| format!(
                    "{:.1} GiB",
                    b as f64 / f64::from(1u32 << 30)
                )),
                MAX_MODEL_BYTES >> 30,
                MAX_MODEL_BYTES / BYTES_PER_PARAM
            ))),
        }
    }
}

/// `256,128`.
fn widths(hidden: &[usize]) -> String {
    hidden
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The name of the first tensor holding a NaN or an infinity, if any.
pub fn non_finite_tensor<'a>(
    tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
) -> Result<Option<String>> {
    let mut named: Vec<(&String, &Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, t) in named {
        if !t.dtype().is_float() {
            continue;
        }
        // The sum in f64 is finite exactly when every f32 element is (no f32 sum overflows it).
        let s = t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        if !s.is_finite() {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    let bad = || {
        Error::setting(
            Scope::Model,
            "hidden",
            s,
            "expected comma-separated positive layer widths, e.g. 256,128",
        )
    };
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if v.is_empty() || v.contains(&0) {
        return Err(bad());
    }
    Ok(v)
}

#[derive(Debug, Clone)]
enum Layer {
    /// `wi`/`bi`: positions of the weight and bias in the name-sorted parameter list.
    Linear {
        w: Var,
        b: Var,
        wi: usize,
        bi: usize,
    },
    Conv {
        w: Var,
        b: Var,
    },
    Relu,
    MaxPool2,
    Flatten,
}

/// A classifier over images of `shape`, with named, seeded parameters.
#[derive(Debug, Clone)]
pub struct Model {
    /// Rows of the identity: one-hot targets by `index_select`.
    eye: Tensor,
    config: ModelConfig,
    shape: ImageShape,
    layers: Vec<Layer>,
    /// Sorted by name, so optimizers and checkpoints see one fixed order.
    params: Vec<(String, Var)>,
}

struct Init {
    rng: ChaCha8Rng,
    device: Device,
    params: Vec<(String, Var)>,
}

impl Init {
    fn uniform(&mut self, name: String, dims: &[usize], fan_in: usize) -> Result<Var> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        let var = Var::from_tensor(&Tensor::from_vec(v, dims, &self.device)?)?;
        self.params.push((name, var.clone()));
        Ok(var)
    }

    fn linear(&mut self, name: &str, fan_in: usize, out: usize) -> Result<Layer> {
        let w = self.uniform(format!("{name}.weight"), &[out, fan_in], fan_in)?;
        let b = self.uniform(format!("{name}.bias"), &[out], fan_in)?;
        Ok(Layer::Linear { w, b, wi: 0, bi: 0 })
    }

    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize) -> Result<Layer> {
        let fan_in = cin * k * k;
        let w = self.uniform(format!("{name}.weight"), &[cout, cin, k, k], fan_in)?;
        let b = self.uniform(format!("{name}.bias"), &[cout], fan_in)?;
        Ok(Layer::Conv { w, b })
    }
}

impl Model {
    /// The model `config` for inputs of `shape` and `classes` outputs, its weights drawn from
    /// `seed` with PyTorch's default init.
    pub fn new(
        config: &ModelConfig,
        shape: ImageShape,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        // Before any allocation: a zero width would make U(±1/√0) (a panic in rand), and
        // `hidden = [100000, 100000]` would abort on a 40 GB allocation.
        config.check_size(shape, classes)?;
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
            params: Vec::new(),
        };
        let mut layers = Vec::new();
        match config {
            ModelConfig::Linear => layers.push(init.linear("fc1", shape.len(), classes)?),
            ModelConfig::Mlp { hidden } => {
                let mut fan_in = shape.len();
                for (i, &h) in hidden.iter().enumerate() {
                    layers.push(init.linear(&format!("fc{}", i + 1), fan_in, h)?);
                    layers.push(Layer::Relu);
                    fan_in = h;
                }
                layers.push(init.linear(&format!("fc{}", hidden.len() + 1), fan_in, classes)?);
            }
            ModelConfig::Cnn => {
                let after = |s: usize| (s.saturating_sub(2)) / 2; // conv3 (valid), then pool 2
                let (h, w) = (after(after(shape.height)), after(after(shape.width)));
                if h == 0 || w == 0 {
                    return Err(Error::setting(
                        Scope::Model,
                        "kind",
                        "cnn",
                        format!(
                            "images of {}x{} are too small (need at least 10x10)",
                            shape.height, shape.width
                        ),
                    ));
                }
                layers.push(init.conv("conv1", shape.channels, 32, 3)?);
                layers.push(Layer::Relu);
                layers.push(Layer::MaxPool2);
                layers.push(init.conv("conv2", 32, 64, 3)?);
                layers.push(Layer::Relu);
                layers.push(Layer::MaxPool2);
                layers.push(Layer::Flatten);
                layers.push(init.linear("fc1", 64 * h * w, 128)?);
                layers.push(Layer::Relu);
                layers.push(init.linear("fc2", 128, classes)?);
            }
        }
        let mut params = init.params;
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let pos = |v: &Var| {
            params
                .iter()
                .position(|(_, p)| p.id() == v.id())
                .unwrap_or(0)
        };
        for layer in &mut layers {
            if let Layer::Linear { w, b, wi, bi } = layer {
                (*wi, *bi) = (pos(w), pos(b));
            }
        }
        let eye = Tensor::eye(classes, DType::F32, device)?;
        Ok(Self {
            eye,
            config: config.clone(),
            shape,
            layers,
            params,
        })
    }

    /// What it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits for a batch `x` of shape `(B, C·H·W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        if matches!(self.config, ModelConfig::Cnn) {
            let s = self.shape;
            h = h.reshape((h.dim(0)?, s.channels, s.height, s.width))?;
        }
        for layer in &self.layers {
            h = match layer {
                Layer::Linear { w, b, .. } => h.matmul(&w.t()?)?.broadcast_add(b)?,
                Layer::Conv { w, b } => {
                    h.conv2d(w, 0, 1, 1, 1)?
                        .broadcast_add(&b.reshape((1, (), 1, 1))?)?
                }
                Layer::Relu => h.relu()?,
                Layer::MaxPool2 => h.max_pool2d(2)?,
                Layer::Flatten => h.flatten_from(1)?,
            };
        }
        Ok(h)
    }

    /// Mean cross-entropy on a batch and its gradient for every parameter (in
    /// [`Model::named_vars`] order).
    ///
    /// Fully connected models take a hand-written backward pass: candle's autograd also
    /// computes the gradient of the input batch (the largest matmul of the step, unused) and
    /// accumulates every gradient into a fresh zero tensor. The CNN uses autograd.
    pub fn loss_and_grads(&self, x: &Tensor, y: &Tensor) -> Result<(f64, Vec<Tensor>)> {
        self.loss_and_grads_over(x, y, x.dim(0)?)
    }

    /// Like [`Model::loss_and_grads`] with the per-example losses summed and divided by
    /// `denom` instead of the batch size: a shard of a larger batch passes the whole batch's
    /// size, so shard results just add up.
    pub fn loss_and_grads_over(
        &self,
        x: &Tensor,
        y: &Tensor,
        denom: usize,
    ) -> Result<(f64, Vec<Tensor>)> {
        let batch = x.dim(0)?;
        let scale = batch as f64 / denom.max(1) as f64;
        if matches!(self.config, ModelConfig::Cnn) {
            let loss = (candle_nn::loss::cross_entropy(&self.forward(x)?, y)? * scale)?;
            let grads = loss.backward()?;
            let g = self
                .params
                .iter()
                .map(|(n, v)| match grads.get(v) {
                    Some(g) => Ok(g.detach()),
                    None => Err(candle_core::Error::Msg(format!("no gradient reached {n}")).into()),
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok((loss.to_scalar::<f32>()? as f64, g));
        }
        // Forward, keeping each layer's input and pre-activation.
        let mut inputs = Vec::new();
        let mut pre = Vec::new();
        let mut h = x.clone();
        for layer in &self.layers {
            match layer {
                // Detached weights: this pass builds no autograd graph, so nothing it
                // returns keeps earlier tensors alive.
                Layer::Linear { w, b, .. } => {
                    inputs.push(h.clone());
                    h = h
                        .matmul(&w.as_tensor().detach().t()?)?
                        .broadcast_add(&b.as_tensor().detach())?;
                }
                Layer::Relu => {
                    pre.push(h.clone());
                    h = h.relu()?;
                }
                _ => {
                    return Err(candle_core::Error::Msg(
                        "unexpected layer in a fully connected model".into(),
                    )
                    .into())
                }
            }
        }
        // Cross-entropy: loss = -mean(log_softmax(z)[y]); dL/dz = (softmax(z) - onehot(y)) / B.
        let lsm = candle_nn::ops::log_softmax(&h, 1)?;
        let onehot = self.eye.index_select(y, 0)?;
        let loss = (lsm.mul(&onehot)?.sum_all()? * (-1.0 / denom.max(1) as f64))?;
        let mut dz = ((lsm.exp()? - &onehot)? * (1.0 / denom.max(1) as f64))?;
        let ones = Tensor::ones((1, batch), DType::F32, x.device())?;
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        let linears: Vec<_> = self
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Linear { w, wi, bi, .. } => Some((w, *wi, *bi)),
                _ => None,
            })
            .collect();
        for (k, (w, wi, bi)) in linears.iter().enumerate().rev() {
            grads[*wi] = Some(dz.t()?.matmul(&inputs[k])?);
            grads[*bi] = Some(ones.matmul(&dz)?.squeeze(0)?);
            if k > 0 {
                // Through the weights, then the ReLU: keep where its input was positive.
                let da = dz.matmul(&w.as_tensor().detach())?;
                let mask = pre[k - 1].gt(0f32)?.to_dtype(DType::F32)?;
                dz = da.mul(&mask)?;
            }
        }
        let grads = grads
            .into_iter()
            .zip(&self.params)
            .map(|(g, (n, _))| {
                g.ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {n}")).into())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((loss.to_scalar::<f32>()? as f64, grads))
    }

    /// Parameters, sorted by name.
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Its parameters, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Deep copies of every parameter (`Var::set` writes in place, so clones would alias).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(_, v)| Ok(v.as_tensor().copy()?))
            .collect()
    }

    /// Puts back weights taken by [`Model::snapshot`].
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.params.iter().zip(snapshot) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Parameters by name, for checkpoints.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Loads parameters saved by [`Model::tensors`] (a safetensors checkpoint).
    pub fn load_tensors(&self, path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mine = tensors
            .iter()
            .filter(|(k, _)| self.params.iter().any(|(n, _)| n == *k));
        if let Some(name) = non_finite_tensor(mine)? {
            return Err(Error::data(
                path,
                format!("tensor '{name}' holds NaN or infinite values"),
            ));
        }
        for (name, v) in &self.params {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::saved(path, format!("checkpoint has no tensor '{name}'")))?;
            if t.dims() != v.dims() {
                return Err(Error::saved(
                    path,
                    format!(
                        "tensor '{name}' is {:?}, the model needs {:?}",
                        t.dims(),
                        v.dims()
                    ),
                ));
            }
            v.set(&t.to_dtype(DType::F32)?.to_device(v.device())?)?;
        }
        Ok(())
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: ImageShape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    #[test]
    fn same_seed_same_bits_other_seed_other_bits() {
        let dev = Device::Cpu;
        let cfg = ModelConfig::default();
        let a = Model::new(&cfg, MNIST, 10, 7, &dev).unwrap();
        let b = Model::new(&cfg, MNIST, 10, 7, &dev).unwrap();
        let c = Model::new(&cfg, MNIST, 10, 8, &dev).unwrap();
        let flat = |m: &Model| -> Vec<f32> {
            m.vars()
                .iter()
                .flat_map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
        assert_eq!(
            a.num_params(),
            784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
        );
        let names: Vec<&str> = a.named_vars().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "fc1.bias",
                "fc1.weight",
                "fc2.bias",
                "fc2.weight",
                "fc3.bias",
                "fc3.weight"
            ]
        );
        // PyTorch's bound U(±1/sqrt(fan_in)): 1/28 for fc1, 1/16 for fc2; and it is used.
        for (name, v) in a.named_vars() {
            let bound = if name.starts_with("fc1") {
                1.0 / 28.0
            } else if name.starts_with("fc2") {
                1.0 / 16.0
            } else {
                1.0 / 128f32.sqrt()
            };
            let w: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(
                max <= bound && (name.ends_with("bias") || max > 0.9 * bound),
                "{name}: {max} vs {bound}"
            );
        }
    }

    #[test]
    fn every_architecture_gives_logits_per_class() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((3, 784), DType::F32, &dev).unwrap();
        for cfg in [
            ModelConfig::default(),
            ModelConfig::Linear,
            ModelConfig::Cnn,
        ] {
            let m = Model::new(&cfg, MNIST, 10, 1, &dev).unwrap();
            assert_eq!(m.forward(&x).unwrap().dims(), &[3, 10], "{cfg:?}");
        }
        let cifar = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let m = Model::new(&ModelConfig::Cnn, cifar, 10, 1, &dev).unwrap();
        let x = Tensor::zeros((2, 3072), DType::F32, &dev).unwrap();
        assert_eq!(m.forward(&x).unwrap().dims(), &[2, 10]);
    }

    #[test]
    fn hand_written_backward_matches_autograd() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (5, 784), &dev).unwrap();
        let y = Tensor::new(&[3u32, 0, 9, 3, 7], &dev).unwrap();
        for cfg in [
            ModelConfig::Mlp {
                hidden: vec![32, 16],
            },
            ModelConfig::Linear,
        ] {
            let m = Model::new(&cfg, MNIST, 10, 4, &dev).unwrap();
            let (loss, grads) = m.loss_and_grads(&x, &y).unwrap();
            let auto = candle_nn::loss::cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
            assert!((loss - auto.to_scalar::<f32>().unwrap() as f64).abs() < 1e-5);
            let store = auto.backward().unwrap();
            for ((name, v), g) in m.named_vars().iter().zip(&grads) {
                let want = store.get(v).unwrap();
                let diff = (g - want).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "{name}");
                assert_eq!(g.dims(), v.dims(), "{name}");
                assert!(!g.track_op(), "{name}: gradient carries an autograd graph");
            }
        }
    }

    #[test]
    fn snapshot_restores_bit_for_bit() {
        let dev = Device::Cpu;
        let m = Model::new(&ModelConfig::Linear, MNIST, 10, 3, &dev).unwrap();
        let snap = m.snapshot().unwrap();
        let before: Vec<f32> = m.vars()[1].flatten_all().unwrap().to_vec1().unwrap();
        m.vars()[1]
            .set(&m.vars()[1].affine(2.0, 1.0).unwrap())
            .unwrap();
        m.restore(&snap).unwrap();
        let after: Vec<f32> = m.vars()[1].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn bad_model_flags_are_explained() {
        assert_eq!(
            ModelConfig::parse("resnet", "").unwrap_err().to_string(),
            "kind = resnet: unknown model (allowed: mlp, linear, cnn)"
        );
        assert!(ModelConfig::parse("mlp", "256,0")
            .unwrap_err()
            .to_string()
            .contains("hidden = 256,0"));
        assert_eq!(
            ModelConfig::parse("MLP", "64").unwrap(),
            ModelConfig::Mlp { hidden: vec![64] }
        );
    }
}
