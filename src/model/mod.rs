//! The models a range test or training run can use: a layer list in PyTorch's vocabulary
//! (presets such as `mlp` and `lenet` are layer lists too), its shapes inferred from the data
//! and its weights drawn from a seed.
//!
//! candle's CPU RNG cannot be seeded, so weights are drawn here from ChaCha8 with PyTorch's
//! default scheme (U(±1/√fan_in) for Linear and Conv2d weights and biases, in layer order,
//! weight first; norms start at weight 1, bias 0): same seed, same bits. Tensors are named as
//! in an `nn.Sequential`'s `state_dict` (`"3.weight"`, `"1.running_mean"`), so PyTorch weights
//! load with [`Model::init_from`].

mod config;
mod cpu;
mod io;
pub mod kernels;
mod ops;
mod plan;
pub mod spec;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{ModelConfig, PRESETS};
pub use io::non_finite_tensor;
pub use plan::{MAX_BATCH_BYTES, MAX_MODEL_BYTES, MAX_VALUES_PER_SAMPLE};
pub use spec::{GeluApproximate, LayerSpec, Padding, Pair, SpecError};

use crate::error::{Error, Result};
use ops::{MaskSource, Pool};
use plan::Init;

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inference: dropout off, batch norms use their running statistics.
    Eval,
    /// Training: dropout on, batch norms use the batch's statistics and update their running
    /// ones.
    Train {
        /// Which training forward pass this is (a new number for every micro-batch): dropout
        /// masks differ from pass to pass.
        step: u64,
        /// Index of the batch's first row in the whole batch, when this is a shard of one:
        /// a row's dropout mask depends on its global index, so shards see the same masks
        /// as the whole batch.
        first_row: usize,
    },
}

/// One layer of a built model, with its shapes and tensors.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// What it is.
    pub spec: LayerSpec,
    /// Its input shape, per sample.
    pub input: Vec<usize>,
    /// Its output shape, per sample.
    pub output: Vec<usize>,
    /// Its weight, if any.
    pub weight: Option<Var>,
    /// Its bias, if any.
    pub bias: Option<Var>,
    /// Running mean and variance (batch norms).
    pub running: Option<(Var, Var)>,
    /// Positions of the weight and bias in [`Model::named_vars`].
    pub slots: (Option<usize>, Option<usize>),
}

/// A model built from a [`ModelConfig`] for samples of one shape, with named, seeded
/// parameters and buffers.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    input: Vec<usize>,
    outputs: usize,
    seed: u64,
    layers: Vec<Layer>,
    /// Trainable, sorted by name, so optimizers and checkpoints see one fixed order.
    params: Vec<(String, Var)>,
    /// Running statistics: saved and restored, never given to the optimizer; sorted by name.
    buffers: Vec<(String, Var)>,
    /// Only Linear, ReLU and Flatten on flat inputs: the hand-written backward applies.
    fully_connected: bool,
    /// Per parameter (in `params` order): frozen, so no gradient is computed for it.
    frozen: Vec<bool>,
}

/// PyTorch's default init, drawn in layer order from one seeded stream.
fn init_tensor(
    rng: &mut ChaCha8Rng,
    dims: &[usize],
    init: Init,
    device: &Device,
) -> Result<Tensor> {
    Ok(match init {
        Init::Uniform { fan_in } => {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            Tensor::from_vec(v, dims, device)?
        }
        Init::Ones => Tensor::ones(dims, DType::F32, device)?,
        Init::Zeros => Tensor::zeros(dims, DType::F32, device)?,
    })
}

impl Model {
    /// The model `config` for samples of shape `input` (`[C, H, W]` images, `[F]` table rows)
    /// with `outputs` values out (classes or regression targets), its weights drawn from
    /// `seed` with PyTorch's default init. Every shape is inferred and the size checked
    /// before anything is allocated.
    pub fn new(
        config: &ModelConfig,
        input: &[usize],
        outputs: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config.check_layers()?;
        let specs = config.layer_list();
        let plan = plan::plan(&specs, input, outputs)
            .map_err(|(i, m)| config.layer_error(i, &specs[i], m))?;
        // Before any allocation: `hidden = [100000, 100000]` would abort on a 40 GB one.
        plan::check_size(config, &plan)?;
        plan::check_values(&plan).map_err(|(i, m)| config.layer_error(i, &specs[i], m))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        let mut layers = Vec::with_capacity(specs.len());
        for (i, (spec, lp)) in specs.into_iter().zip(plan).enumerate() {
            let mut layer = Layer {
                spec,
                input: lp.input,
                output: lp.output,
                weight: None,
                bias: None,
                running: None,
                slots: (None, None),
            };
            let mut running_mean = None;
            for t in &lp.tensors {
                let var = Var::from_tensor(&init_tensor(&mut rng, &t.dims, t.init, device)?)?;
                let name = format!("{i}.{}", t.suffix);
                match t.suffix {
                    "weight" => layer.weight = Some(var.clone()),
                    "bias" => layer.bias = Some(var.clone()),
                    "running_mean" => running_mean = Some(var.clone()),
                    _ => layer.running = running_mean.take().map(|m| (m, var.clone())),
                }
                if t.trainable {
                    params.push((name, var));
                } else {
                    buffers.push((name, var));
                }
            }
            layers.push(layer);
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        buffers.sort_by(|a, b| a.0.cmp(&b.0));
        let slot = |v: &Option<Var>| {
            v.as_ref()
                .and_then(|v| params.iter().position(|(_, p)| p.id() == v.id()))
        };
        for l in &mut layers {
            l.slots = (slot(&l.weight), slot(&l.bias));
        }
        let fully_connected = layers.iter().all(|l| match l.spec {
            LayerSpec::Linear { .. } => l.input.len() == 1,
            LayerSpec::ReLU | LayerSpec::Flatten => true,
            _ => false,
        });
        let frozen = vec![false; params.len()];
        Ok(Self {
            config: config.clone(),
            input: input.to_vec(),
            outputs,
            seed,
            layers,
            params,
            buffers,
            fully_connected,
            frozen,
        })
    }

    /// Freezes parameters (one flag per [`Model::named_vars`] entry): the backward computes
    /// no gradient for them ([`Model::loss_and_grads`] gives `None`), and none at all below
    /// the first layer with a trainable parameter.
    pub fn set_frozen(&mut self, frozen: Vec<bool>) -> Result<()> {
        if frozen.len() != self.params.len() {
            return Err(candle_core::Error::Msg(format!(
                "{} frozen flags for {} parameters",
                frozen.len(),
                self.params.len()
            ))
            .into());
        }
        self.frozen = frozen;
        Ok(())
    }

    /// Per parameter, whether it is frozen.
    pub fn frozen(&self) -> &[bool] {
        &self.frozen
    }

    /// Whether the parameter in `slot` trains.
    fn trains(&self, slot: Option<usize>) -> bool {
        slot.is_some_and(|i| !self.frozen[i])
    }

    /// Whether layer `l` has a parameter that trains.
    fn layer_trains(&self, l: &Layer) -> bool {
        self.trains(l.slots.0) || self.trains(l.slots.1)
    }

    /// The names of the parameters that get no weight decay with `no_decay_norm_bias`:
    /// every bias and the weights of batch and layer norms.
    pub fn no_decay_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            if l.bias.is_some() {
                out.push(format!("{i}.bias"));
            }
            if l.weight.is_some()
                && matches!(
                    l.spec,
                    LayerSpec::BatchNorm1d { .. }
                        | LayerSpec::BatchNorm2d { .. }
                        | LayerSpec::LayerNorm { .. }
                )
            {
                out.push(format!("{i}.weight"));
            }
        }
        out
    }

    /// A layer's weight or bias as the forward uses it: detached when frozen, so candle's
    /// autograd computes no gradient for it.
    fn param(&self, slot: Option<usize>, v: Option<&Var>) -> Option<Tensor> {
        v.map(|v| match slot {
            Some(i) if self.frozen[i] => v.as_tensor().detach(),
            _ => v.as_tensor().clone(),
        })
    }

    /// What it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The shape of one sample it takes.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// Values out per sample.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Refuses a batch of `batch` samples whose forward and backward would need more than
    /// [`MAX_BATCH_BYTES`] for the values the layers produce (computed from the layer shapes,
    /// before any batch runs); the error names the layer needing the most.
    pub fn check_batch_memory(&self, batch: usize) -> Result<()> {
        let layers = self
            .layers
            .iter()
            .map(|l| (&l.spec, l.input.as_slice(), l.output.as_slice()));
        plan::check_batch(layers, &self.input, batch)
            .map_err(|(i, m)| self.config.layer_error(i, &self.layers[i].spec, m))
    }

    /// Each layer with its output shape per sample, input side first.
    pub fn layer_shapes(&self) -> Vec<(&LayerSpec, &[usize])> {
        self.layers
            .iter()
            .map(|l| (&l.spec, l.output.as_slice()))
            .collect()
    }

    /// Whether a training pass depends on the whole batch at once (batch norm): such a batch
    /// must not be cut into shards that each see only part of it.
    pub fn uses_batch_statistics(&self) -> bool {
        self.layers.iter().any(|l| l.running.is_some())
    }

    /// `x` as a batch of samples: `(B, prod(input))` flat rows (or already `(B, input…)`)
    /// reshaped to `(B, input…)`.
    fn batch(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let per: usize = self.input.iter().product();
        if dims.len() == self.input.len() + 1 && dims[1..] == self.input[..] {
            return Ok(x.clone());
        }
        if dims.len() == 2 && dims[1] == per {
            let mut shape = vec![dims[0]];
            shape.extend(&self.input);
            return Ok(x.reshape(shape)?);
        }
        Err(candle_core::Error::Msg(format!(
            "a batch of shape {dims:?} does not hold samples of shape {:?}",
            self.input
        ))
        .into())
    }

    /// Outputs (logits) for a batch `x` of shape `(B, prod(input))`, in evaluation mode
    /// (through the CPU kernels when the model is on the CPU and not fully connected).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.fully_connected && self.on_kernels(x) {
            return self.kernel_eval(x);
        }
        self.forward_t(x, Mode::Eval)
    }

    /// Outputs for a batch in either mode. In [`Mode::Train`] batch norms update their
    /// running statistics as a side effect.
    pub fn forward_t(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = self.batch(x)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = self.apply(i, layer, &h, mode)?;
        }
        Ok(h)
    }

    fn apply(&self, index: usize, layer: &Layer, h: &Tensor, mode: Mode) -> Result<Tensor> {
        let w = self.param(layer.slots.0, layer.weight.as_ref());
        let b = self.param(layer.slots.1, layer.bias.as_ref());
        let (w, b) = (w.as_ref(), b.as_ref());
        let missing = || candle_core::Error::Msg(format!("layer {index} has no weight"));
        Ok(match &layer.spec {
            LayerSpec::Linear { .. } => ops::linear(h, w.ok_or_else(missing)?, b)?,
            LayerSpec::Conv2d {
                stride, padding, ..
            } => ops::conv2d(h, w.ok_or_else(missing)?, b, *stride, *padding)?,
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            } => ops::pool2d(
                h,
                Pool::Max,
                *kernel_size,
                stride.unwrap_or(*kernel_size),
                *padding,
            )?,
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => ops::pool2d(
                h,
                Pool::Avg,
                *kernel_size,
                stride.unwrap_or(*kernel_size),
                *padding,
            )?,
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                ops::adaptive_avg_pool2d(h, *output_size)?
            }
            LayerSpec::BatchNorm1d { eps, momentum } | LayerSpec::BatchNorm2d { eps, momentum } => {
                let (w, b) = (w.ok_or_else(missing)?, b.ok_or_else(missing)?);
                let (rm, rv) = layer.running.as_ref().ok_or_else(missing)?;
                match mode {
                    Mode::Eval => {
                        ops::batch_norm_eval(h, w, b, rm.as_tensor(), rv.as_tensor(), *eps)?
                    }
                    Mode::Train { .. } => {
                        self.batch_norm_train(index, h, (w, b), (rm, rv), *eps, *momentum)?
                    }
                }
            }
            LayerSpec::LayerNorm { eps } => {
                ops::layer_norm(h, w.ok_or_else(missing)?, b.ok_or_else(missing)?, *eps)?
            }
            LayerSpec::Dropout { p } => match mode {
                Mode::Eval => h.clone(),
                Mode::Train { step, first_row } => ops::dropout(
                    h,
                    *p,
                    MaskSource {
                        seed: self.seed,
                        step,
                        layer: index,
                        first_row,
                    },
                )?,
            },
            LayerSpec::ReLU => h.relu()?,
            LayerSpec::LeakyReLU { negative_slope } => ops::leaky_relu(h, *negative_slope)?,
            LayerSpec::GELU { approximate } => match approximate {
                GeluApproximate::None => h.gelu_erf()?,
                GeluApproximate::Tanh => h.gelu()?,
            },
            LayerSpec::SiLU => h.silu()?,
            LayerSpec::Tanh => h.tanh()?,
            LayerSpec::Sigmoid => ops::sigmoid(h)?,
            LayerSpec::Flatten => h.flatten_from(1)?,
        })
    }

    /// Batch norm on the batch's statistics, updating the running ones as PyTorch does.
    fn batch_norm_train(
        &self,
        index: usize,
        h: &Tensor,
        (w, b): (&Tensor, &Tensor),
        (rm, rv): (&Var, &Var),
        eps: f64,
        momentum: f64,
    ) -> Result<Tensor> {
        let per_channel = h.elem_count() / h.dim(1)?.max(1);
        if per_channel < 2 {
            return Err(self.too_few_per_channel(index, h.dim(0)?));
        }
        let (y, mean, var) = ops::batch_norm_train(h, w, b, eps)?;
        let (m, v) = ops::running_update(
            &rm.as_tensor().detach(),
            &rv.as_tensor().detach(),
            &mean,
            &var,
            per_channel,
            momentum,
        )?;
        rm.set(&m)?;
        rv.set(&v)?;
        Ok(y)
    }

    /// A batch norm in training given a batch with one value per channel.
    fn too_few_per_channel(&self, index: usize, rows: usize) -> Error {
        let layer = &self.layers[index];
        let mut dims = vec![rows];
        dims.extend(&layer.input);
        self.config.layer_error(
            index,
            &layer.spec,
            format!("in training it needs more than one value per channel, got a batch of shape {dims:?}"),
        )
    }

    /// The loss of a batch and its gradient for every parameter (in [`Model::named_vars`]
    /// order, detached; `None` exactly for the frozen ones). `loss` gets the outputs and returns the loss value and its gradient
    /// with respect to the outputs; the model back-propagates that gradient.
    ///
    /// Models of only Linear, ReLU and Flatten take a hand-written backward pass: candle's
    /// autograd also computes the gradient of the input batch (the largest matmul of the
    /// step, unused) and accumulates every gradient into a fresh zero tensor. Other models
    /// with f32 tensors on the CPU run the written-out pass over the CPU kernels
    /// (`cpu.rs`); on other devices, candle's autograd (and its own kernels).
    pub fn loss_and_grads(
        &self,
        x: &Tensor,
        mode: Mode,
        loss: impl FnOnce(&Tensor) -> Result<(f64, Tensor)>,
    ) -> Result<(f64, Vec<Option<Tensor>>)> {
        if self.fully_connected {
            return self.fc_loss_and_grads(x, loss);
        }
        if self.on_kernels(x) {
            return self.kernel_loss_and_grads(x, mode, loss);
        }
        self.autograd_loss_and_grads(x, mode, loss)
    }

    /// [`Model::loss_and_grads`] through candle's autograd, for any model.
    pub(crate) fn autograd_loss_and_grads(
        &self,
        x: &Tensor,
        mode: Mode,
        loss: impl FnOnce(&Tensor) -> Result<(f64, Tensor)>,
    ) -> Result<(f64, Vec<Option<Tensor>>)> {
        let out = self.forward_t(x, mode)?;
        let (value, grad) = loss(&out.detach())?;
        check_grad(&out, &grad)?;
        // d(sum(out · g))/dθ = gᵀ · d out/dθ: the given gradient, back-propagated.
        let store = (&out * grad.detach())?.sum_all()?.backward()?;
        let grads = self
            .params
            .iter()
            .zip(&self.frozen)
            .map(|((_, v), &frozen)| match store.get(v) {
                _ if frozen => Ok(None),
                Some(g) => Ok(Some(g.detach())),
                None => Ok(Some(v.zeros_like()?)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((value, grads))
    }

    /// The hand-written backward of a fully connected model.
    fn fc_loss_and_grads(
        &self,
        x: &Tensor,
        loss: impl FnOnce(&Tensor) -> Result<(f64, Tensor)>,
    ) -> Result<(f64, Vec<Option<Tensor>>)> {
        let batch = x.dim(0)?;
        // Forward on flat rows, keeping each Linear's and ReLU's input. Detached weights:
        // this pass builds no autograd graph, so nothing it returns keeps earlier tensors
        // alive.
        let mut h = if x.rank() == 2 {
            x.clone()
        } else {
            x.flatten_from(1)?
        };
        let mut saved: Vec<Option<Tensor>> = vec![None; self.layers.len()];
        for (i, layer) in self.layers.iter().enumerate() {
            match &layer.spec {
                LayerSpec::Linear { .. } => {
                    saved[i] = Some(h.clone());
                    let w = layer.weight.as_ref().map(|w| w.as_tensor().detach());
                    let w = w.ok_or_else(|| {
                        candle_core::Error::Msg(format!("layer {i} has no weight"))
                    })?;
                    h = h.matmul(&w.t()?)?;
                    if let Some(b) = &layer.bias {
                        h = h.broadcast_add(&b.as_tensor().detach())?;
                    }
                }
                LayerSpec::ReLU => {
                    saved[i] = Some(h.clone());
                    h = h.relu()?;
                }
                _ => {}
            }
        }
        let (value, mut dz) = loss(&h)?;
        check_grad(&h, &dz)?;
        let ones = Tensor::ones((1, batch), DType::F32, x.device())?;
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        // Nothing below the first layer that trains needs a gradient (a frozen body: the
        // backward stops at the head).
        let first = self
            .layers
            .iter()
            .position(|l| matches!(l.spec, LayerSpec::Linear { .. }) && self.layer_trains(l))
            .unwrap_or(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate().skip(first).rev() {
            let Some(input) = &saved[i] else { continue };
            match &layer.spec {
                LayerSpec::Linear { .. } => {
                    if let (Some(wi), _) = layer.slots {
                        if !self.frozen[wi] {
                            grads[wi] = Some(dz.t()?.matmul(input)?);
                        }
                    }
                    if let (_, Some(bi)) = layer.slots {
                        if !self.frozen[bi] {
                            grads[bi] = Some(ones.matmul(&dz)?.squeeze(0)?);
                        }
                    }
                    if i > first {
                        if let Some(w) = &layer.weight {
                            dz = dz.matmul(&w.as_tensor().detach())?;
                        }
                    }
                }
                // Through the ReLU: keep where its input was positive.
                _ => dz = dz.mul(&input.gt(0f32)?.to_dtype(DType::F32)?)?,
            }
        }
        self.check_complete(&grads)?;
        Ok((value, grads))
    }

    /// Every parameter that trains has its gradient (the gradient-flow check of the built-in
    /// models: it never fails unless a backward pass here is wrong).
    pub(crate) fn check_complete(&self, grads: &[Option<Tensor>]) -> Result<()> {
        let missing: Vec<String> = grads
            .iter()
            .zip(&self.params)
            .zip(&self.frozen)
            .filter(|((g, _), &frozen)| g.is_none() && !frozen)
            .map(|((_, (n, _)), _)| n.clone())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(crate::error::NoGradient { vars: missing }.into())
        }
    }

    /// Trainable parameters, sorted by name.
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Its trainable parameters, sorted by name (what an optimizer gets).
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Buffers (batch norms' running statistics), sorted by name: saved and restored with
    /// the weights, never trained.
    pub fn named_buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// Parameters then buffers.
    fn all_tensors(&self) -> impl Iterator<Item = &(String, Var)> {
        self.params.iter().chain(&self.buffers)
    }

    /// Deep copies of every parameter and buffer (`Var::set` writes in place, so clones
    /// would alias).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.all_tensors()
            .map(|(_, v)| Ok(v.as_tensor().copy()?))
            .collect()
    }

    /// Puts back weights and buffers taken by [`Model::snapshot`].
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.all_tensors().zip(snapshot) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// The loss's gradient must have the outputs' shape.
fn check_grad(out: &Tensor, grad: &Tensor) -> Result<()> {
    if grad.dims() != out.dims() {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "the loss gradient has shape {:?}, the outputs {:?}",
            grad.dims(),
            out.dims()
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
