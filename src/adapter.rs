//! candle-nn adapters: the range test on a model built with `VarMap`/`VarBuilder` and any
//! `candle_nn::Optimizer`, without writing [`TrainStep`] or [`Checkpoint`] by hand.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{Optimizer, VarMap};

use crate::error::{Error, NoGradient, Result};
use crate::finder::{Checkpoint, TrainStep};
use crate::optim::groups::Grouping;

/// Weights whose variables have names: what [`OptimizerStep`] checks gradients against and
/// freezes by name.
pub trait NamedVars {
    /// Every variable with its name, in a fixed order.
    fn named_vars(&self) -> Result<Vec<(String, Var)>>;
}

/// A `VarMap`'s variables, sorted by name.
pub(crate) fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// Its keys, sorted.
impl NamedVars for VarMap {
    fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        sorted_vars(self)
    }
}

/// Named by position: `vars[0]`, `vars[1]`, ….
impl NamedVars for [Var] {
    fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        Ok(self
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("vars[{i}]"), v.clone()))
            .collect())
    }
}

/// See the `[Var]` implementation.
impl NamedVars for Vec<Var> {
    fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        self.as_slice().named_vars()
    }
}

/// The weights of a `VarMap`: deep copies by name (`Var::set` writes in place, so plain
/// clones would alias and "restore" nothing).
impl Checkpoint for VarMap {
    type State = Vec<(String, Tensor)>;

    fn save_state(&self) -> Result<Self::State> {
        let data = self.data().lock().map_err(|_| poisoned())?;
        let mut saved = data
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        saved.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(saved)
    }

    fn restore_state(&mut self, state: Self::State) -> Result<()> {
        let data = self.data().lock().map_err(|_| poisoned())?;
        for (name, tensor) in &state {
            if let Some(var) = data.get(name) {
                var.set(tensor)?;
            }
        }
        Ok(())
    }
}

fn poisoned() -> Error {
    Error::Candle(candle_core::Error::Msg(
        "the VarMap's lock is poisoned (a thread panicked while holding it)".into(),
    ))
}

/// The weights held by a list of `Var`s, restored in place.
impl Checkpoint for [Var] {
    type State = Vec<Tensor>;

    fn save_state(&self) -> Result<Self::State> {
        self.iter().map(|v| Ok(v.as_tensor().copy()?)).collect()
    }

    fn restore_state(&mut self, state: Self::State) -> Result<()> {
        for (var, tensor) in self.iter().zip(&state) {
            var.set(tensor)?;
        }
        Ok(())
    }
}

/// See the `[Var]` implementation.
impl Checkpoint for Vec<Var> {
    type State = Vec<Tensor>;

    fn save_state(&self) -> Result<Self::State> {
        self.as_slice().save_state()
    }

    fn restore_state(&mut self, state: Self::State) -> Result<()> {
        self.as_mut_slice().restore_state(state)
    }
}

/// How an [`OptimizerStep`] gets its optimizer back after a range test.
enum Restore<O> {
    /// A clone taken before the test (exact: moments, step counts).
    Snapshot(fn(&O) -> O),
    /// A fresh optimizer from the factory (its state was not copyable).
    Rebuild(Box<dyn FnMut() -> candle_core::Result<O>>),
}

/// A [`TrainStep`] and [`Checkpoint`] made of a model's weights (`P`: a `VarMap` or
/// `Vec<Var>`), any `candle_nn::Optimizer` and a closure that returns the loss tensor of
/// step `i` (pick batch `i` there). Each step sets the LR, computes the loss, back-propagates
/// and steps the optimizer.
///
/// Gradient flow: the first step checks that every trainable variable got a gradient, and
/// fails with [`NoGradient`] naming those that did not, before anything is updated (candle's
/// fused `layer_norm`, used by `candle_nn::LayerNorm`, has no backward: its weights would
/// silently never train). Variables frozen on purpose are declared with
/// [`OptimizerStep::freeze`] or [`OptimizerStep::with_groups`]; their gradients are dropped
/// before the optimizer sees them, so they never change whichever optimizer holds them.
///
/// Restoring after [`crate::find_lr`]: the weights are always put back exactly. The
/// optimizer is put back exactly when it is `Clone` ([`OptimizerStep::cloning`]: lrfind's
/// own [`crate::Sgd`], [`crate::Adam`], [`crate::AdamW`]). candle-nn's `SGD` and `AdamW`
/// keep their state private, so [`OptimizerStep::rebuilding`] builds a fresh one from a
/// factory instead: its moments restart from zero, exactly as they were if the range test
/// ran before any training (the usual case), but not if it ran mid-training.
pub struct OptimizerStep<O, P, L> {
    params: P,
    optimizer: O,
    restore: Restore<O>,
    loss: L,
    step: usize,
    /// Variables declared frozen: never checked, never updated.
    frozen: Vec<Var>,
    /// Whether the next step checks gradient flow.
    check: bool,
}

impl<O, P, L> OptimizerStep<O, P, L>
where
    O: Optimizer,
    P: Checkpoint + NamedVars,
    L: FnMut(usize) -> candle_core::Result<Tensor>,
{
    /// For an optimizer whose state cannot be copied: `rebuild` makes the optimizer now and
    /// again after a range test (see the type's docs for what that restores).
    pub fn rebuilding(
        params: P,
        mut rebuild: impl FnMut() -> candle_core::Result<O> + 'static,
        loss: L,
    ) -> Result<Self> {
        let optimizer = rebuild()?;
        Ok(Self {
            params,
            optimizer,
            restore: Restore::Rebuild(Box::new(rebuild)),
            loss,
            step: 0,
            frozen: Vec::new(),
            check: true,
        })
    }

    /// For an optimizer that is `Clone`: restored exactly after a range test.
    pub fn cloning(params: P, optimizer: O, loss: L) -> Self
    where
        O: Clone,
    {
        Self {
            params,
            optimizer,
            restore: Restore::Snapshot(O::clone),
            loss,
            step: 0,
            frozen: Vec::new(),
            check: true,
        }
    }

    /// Declares the variables whose names match any of `patterns` (globs, as in
    /// [`crate::optim::GroupConfig`]) frozen on purpose: the gradient check passes them over and they are
    /// never updated. A pattern that matches no variable is an error naming it.
    pub fn freeze<S: AsRef<str>>(mut self, patterns: &[S]) -> Result<Self> {
        let named = self.params.named_vars()?;
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        let hit = crate::optim::groups::match_any("freeze", patterns, &names)?;
        for ((_, v), frozen) in named.iter().zip(hit) {
            if frozen && !self.frozen.iter().any(|f| f.id() == v.id()) {
                self.frozen.push(v.clone());
            }
        }
        Ok(self)
    }

    /// Declares a [`Grouping`]'s frozen variables (multiplier 0) frozen on purpose.
    pub fn with_groups(mut self, grouping: &Grouping) -> Self {
        self.add_frozen(grouping);
        self
    }

    fn add_frozen(&mut self, grouping: &Grouping) {
        for ((_, v), frozen) in grouping.named_vars().iter().zip(grouping.frozen_mask()) {
            if frozen && !self.frozen.iter().any(|f| f.id() == v.id()) {
                self.frozen.push(v.clone());
            }
        }
    }

    /// Turns the gradient-flow check off (a model that really leaves some trainable variable
    /// out of some losses).
    pub fn without_gradient_check(mut self) -> Self {
        self.check = false;
        self
    }

    /// Checks one step's gradients: every trainable variable must have one.
    fn check_gradients(&self, grads: &GradStore) -> Result<()> {
        let missing: Vec<String> = self
            .params
            .named_vars()?
            .into_iter()
            .filter(|(_, v)| !self.frozen.iter().any(|f| f.id() == v.id()))
            .filter(|(_, v)| grads.get(v).is_none())
            .map(|(n, _)| n)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(NoGradient { vars: missing }.into())
        }
    }

    /// The optimizer (its LR is the last one set).
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// The optimizer, to change more than the LR (momentum, through [`crate::Momentum`]).
    pub fn optimizer_mut(&mut self) -> &mut O {
        &mut self.optimizer
    }

    /// The weights.
    pub fn params(&self) -> &P {
        &self.params
    }

    /// Steps taken so far (the `i` the loss closure sees next).
    pub fn steps(&self) -> usize {
        self.step
    }
}

impl<O, P, L> TrainStep for OptimizerStep<O, P, L>
where
    O: Optimizer,
    P: Checkpoint + NamedVars,
    L: FnMut(usize) -> candle_core::Result<Tensor>,
{
    type Error = Error;

    fn train_step(&mut self, lr: f64) -> Result<f64> {
        self.optimizer.set_learning_rate(lr);
        let loss = (self.loss)(self.step)?;
        let mut grads = loss.backward()?;
        if self.check {
            // Before the update: a failing check leaves the weights untouched.
            self.check_gradients(&grads)?;
            self.check = false;
        }
        for v in &self.frozen {
            grads.remove(v.as_tensor());
        }
        self.optimizer.step(&grads)?;
        self.step += 1;
        Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }
}

/// The weights' snapshot, the optimizer's (when it can be cloned) and the step count. Clone
/// when the weights' snapshot is (the optimizer's is shared, and copied when put back), so
/// one snapshot can be put back many times (verification trials).
pub struct OptimizerStepState<O, S> {
    weights: S,
    optimizer: Option<std::sync::Arc<O>>,
    step: usize,
}

impl<O, S: Clone> Clone for OptimizerStepState<O, S> {
    fn clone(&self) -> Self {
        Self {
            weights: self.weights.clone(),
            optimizer: self.optimizer.clone(),
            step: self.step,
        }
    }
}

impl<O, P, L> Checkpoint for OptimizerStep<O, P, L>
where
    O: Optimizer,
    P: Checkpoint + NamedVars,
    L: FnMut(usize) -> candle_core::Result<Tensor>,
{
    type State = OptimizerStepState<O, P::State>;

    fn save_state(&self) -> Result<Self::State> {
        Ok(OptimizerStepState {
            weights: self.params.save_state()?,
            optimizer: match &self.restore {
                Restore::Snapshot(copy) => Some(std::sync::Arc::new(copy(&self.optimizer))),
                Restore::Rebuild(_) => None,
            },
            step: self.step,
        })
    }

    fn restore_state(&mut self, state: Self::State) -> Result<()> {
        self.params.restore_state(state.weights)?;
        if let Some(o) = state.optimizer {
            self.optimizer = match std::sync::Arc::try_unwrap(o) {
                Ok(o) => o,
                // Still shared with another clone of the snapshot: copy it.
                Err(shared) => match &mut self.restore {
                    Restore::Snapshot(copy) => copy(&shared),
                    Restore::Rebuild(make) => make()?,
                },
            };
        } else if let Restore::Rebuild(make) = &mut self.restore {
            self.optimizer = make()?;
        }
        self.step = state.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finder::{find_lr, SweepConfig};
    use crate::optim::{AdamW, ParamsAdamW};
    use candle_core::Device;
    use candle_nn::{linear, Module, VarBuilder};
    use std::ops::ControlFlow;

    fn bits(varmap: &VarMap) -> Vec<Vec<u32>> {
        let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.iter()
            .map(|(_, v)| crate::testutil::bits(v.as_tensor()))
            .collect()
    }

    fn data() -> (Tensor, Tensor) {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 64., &dev)
            .unwrap()
            .affine(1.0 / 32.0, -1.0)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let y = (&x * 3.0).unwrap().sin().unwrap();
        (x, y)
    }

    fn sweep() -> SweepConfig {
        SweepConfig {
            min_lr: 1e-4,
            max_lr: 1.0,
            num_steps: 30,
            ..SweepConfig::default()
        }
    }

    #[test]
    fn a_cloneable_optimizer_and_the_weights_come_back_exactly() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let l1 = linear(1, 16, vb.pp("l1")).unwrap();
        let l2 = linear(16, 1, vb.pp("l2")).unwrap();
        let (x, y) = data();
        let loss =
            move |_i: usize| candle_nn::loss::mse(&l2.forward(&l1.forward(&x)?.tanh()?)?, &y);
        let opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default()).unwrap();
        let mut step = OptimizerStep::cloning(varmap.clone(), opt, loss);
        for _ in 0..3 {
            step.train_step(0.01).unwrap();
        }
        let before = bits(&varmap);
        let moments_before = step.optimizer().state_tensors().len();
        let curve = find_lr(&mut step, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
        assert!(curve.lrs.len() > 5);
        assert_eq!(bits(&varmap), before);
        assert_eq!(step.steps(), 3);
        assert_eq!(step.optimizer().steps(), 3);
        assert_eq!(step.optimizer().state_tensors().len(), moments_before);
    }

    #[test]
    fn candle_nns_adamw_is_rebuilt_and_the_weights_come_back() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let l1 = linear(1, 16, vb.pp("l1")).unwrap();
        let l2 = linear(16, 1, vb.pp("l2")).unwrap();
        let (x, y) = data();
        let vars = varmap.clone();
        let mut step = OptimizerStep::rebuilding(
            varmap.clone(),
            move || candle_nn::AdamW::new(vars.all_vars(), candle_nn::ParamsAdamW::default()),
            move |_i| candle_nn::loss::mse(&l2.forward(&l1.forward(&x)?.tanh()?)?, &y),
        )
        .unwrap();
        let before = bits(&varmap);
        let curve = find_lr(&mut step, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
        assert!(curve.lrs.len() > 5);
        assert_eq!(bits(&varmap), before);
        // A fresh optimizer: its LR is the factory's again, not the sweep's last.
        assert_eq!(step.optimizer().learning_rate(), 0.001);
        assert_eq!(step.steps(), 0);
    }

    #[test]
    fn var_lists_restore_in_place() {
        let w = Var::new(&[1f32, 2.], &Device::Cpu).unwrap();
        let mut vars = vec![w.clone()];
        let saved = vars.save_state().unwrap();
        w.set(&Tensor::new(&[5f32, 6.], &Device::Cpu).unwrap())
            .unwrap();
        vars.restore_state(saved).unwrap();
        assert_eq!(w.to_vec1::<f32>().unwrap(), [1., 2.]);
    }
}

/// The gradient-flow check on a real candle-nn model: Embedding → LayerNorm → Linear → GELU,
/// residual, Linear head (a transformer block's shape).
#[cfg(test)]
mod gradient_flow {
    use super::*;
    use crate::finder::{find_lr, SweepConfig};
    use crate::optim::{AdamW, GroupConfig, GroupLrs, ParamsAdamW, PerGroup};
    use candle_core::{DType, Device, Module};
    use candle_nn::{embedding, layer_norm, linear, VarBuilder};
    use std::ops::ControlFlow;

    /// Which layer norm the block uses.
    #[derive(Clone, Copy)]
    enum Norm {
        /// `candle_nn::LayerNorm`: the fused `ops::layer_norm`, which has no backward.
        Fused,
        /// `candle_nn::ops::layer_norm_slow`, made of ops that have one.
        Slow,
    }

    type Loss = Box<dyn FnMut(usize) -> candle_core::Result<Tensor>>;

    fn model(norm: Norm) -> (VarMap, Loss) {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let (vocab, dim) = (16, 8);
        let emb = embedding(vocab, dim, vb.pp("emb")).unwrap();
        let ln = layer_norm(dim, 1e-5, vb.pp("ln")).unwrap();
        let fc = linear(dim, dim, vb.pp("fc")).unwrap();
        let head = linear(dim, vocab, vb.pp("head")).unwrap();
        // Next-token prediction on a fixed sequence.
        let ids: Vec<u32> = (0..64).map(|i| (i * 7 % 16) as u32).collect();
        let x = Tensor::new(&ids[..63], &dev).unwrap();
        let y = Tensor::new(&ids[1..], &dev).unwrap();
        let (w, b) = (ln.weight().clone(), ln.bias().cloned().unwrap());
        let loss = move |_i: usize| {
            let e = emb.forward(&x)?;
            let n = match norm {
                Norm::Fused => ln.forward(&e)?,
                Norm::Slow => candle_nn::ops::layer_norm_slow(&e, &w, &b, 1e-5)?,
            };
            let h = (&e + fc.forward(&n)?.gelu_erf()?)?;
            candle_nn::loss::cross_entropy(&head.forward(&h)?, &y)
        };
        (varmap, Box::new(loss))
    }

    fn sweep() -> SweepConfig {
        SweepConfig {
            min_lr: 1e-4,
            max_lr: 1.0,
            num_steps: 30,
            ..SweepConfig::default()
        }
    }

    fn bits(varmap: &VarMap) -> Vec<(String, Vec<u32>)> {
        sorted_vars(varmap)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n, crate::testutil::bits(v.as_tensor())))
            .collect()
    }

    fn step(varmap: &VarMap, loss: Loss) -> OptimizerStep<AdamW, VarMap, Loss> {
        let opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default()).unwrap();
        OptimizerStep::cloning(varmap.clone(), opt, loss)
    }

    #[test]
    fn candle_nns_fused_layer_norm_is_caught_naming_its_variables() {
        let (varmap, loss) = model(Norm::Fused);
        let before = bits(&varmap);
        let mut s = step(&varmap, loss);
        let e = find_lr(&mut s, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap_err();
        match &e {
            Error::NoGradient(n) => assert_eq!(n.vars, ["ln.bias", "ln.weight"]),
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(
            text.starts_with(
                "no gradient reached the trainable variables ln.bias, ln.weight: they would never train."
            ),
            "{text}"
        );
        assert!(text.contains("candle_nn::ops::layer_norm_slow"), "{text}");
        // Checked before the update: nothing moved.
        assert_eq!(bits(&varmap), before);
        // candle-nn's own optimizer behind OptimizerStep is checked the same way.
        let (varmap, loss) = model(Norm::Fused);
        let vars = varmap.clone();
        let mut s = OptimizerStep::rebuilding(
            varmap.clone(),
            move || candle_nn::AdamW::new(vars.all_vars(), candle_nn::ParamsAdamW::default()),
            loss,
        )
        .unwrap();
        assert!(matches!(s.train_step(1e-3), Err(Error::NoGradient(_))));
    }

    #[test]
    fn the_slow_layer_norm_passes_the_check_and_trains_it() {
        let (varmap, loss) = model(Norm::Slow);
        let mut s = step(&varmap, loss);
        let before = bits(&varmap);
        let curve = find_lr(&mut s, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
        assert!(curve.lrs.len() > 5);
        assert_eq!(bits(&varmap), before, "restored after the test");
        s.train_step(1e-2).unwrap();
        for ((name, a), (_, b)) in bits(&varmap).iter().zip(&before) {
            assert_ne!(a, b, "{name} trained");
        }
    }

    #[test]
    fn a_variable_frozen_on_purpose_passes_and_never_moves() {
        let (varmap, loss) = model(Norm::Fused);
        let before = bits(&varmap);
        let mut s = step(&varmap, loss).freeze(&["ln.*"]).unwrap();
        find_lr(&mut s, &sweep(), &mut |_| ControlFlow::Continue(())).unwrap();
        for _ in 0..3 {
            s.train_step(1e-2).unwrap();
        }
        for ((name, a), (_, b)) in bits(&varmap).iter().zip(&before) {
            assert_eq!(a == b, name.starts_with("ln."), "{name}");
        }
        // A pattern that freezes nothing is an error naming it.
        let (varmap, loss) = model(Norm::Slow);
        let e = step(&varmap, loss).freeze(&["lm.*"]).err().unwrap();
        assert!(
            e.to_string().starts_with(
                "freeze = lm.*: matches no variable (the variables: emb.weight, fc.bias"
            ),
            "{e}"
        );
    }

    /// A frozen group of a grouping is frozen on purpose; candle-nn's AdamW, one per group,
    /// moves each group at its multiple of the base LR.
    #[test]
    fn groups_with_candle_nns_optimizer_one_per_group() {
        let (varmap, loss) = model(Norm::Fused);
        let grouping = GroupConfig::parse("ln.*=0, emb.*=0.1, *=1")
            .unwrap()
            .resolve_varmap(&varmap)
            .unwrap();
        let before = bits(&varmap);
        let g = grouping.clone();
        let mut s = OptimizerStep::rebuilding(
            varmap.clone(),
            move || {
                PerGroup::new(&g, 1e-3, |vars, lr| {
                    candle_nn::AdamW::new(
                        vars,
                        candle_nn::ParamsAdamW {
                            lr,
                            ..Default::default()
                        },
                    )
                })
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
            },
            loss,
        )
        .unwrap()
        .with_groups(&grouping);
        s.train_step(0.5).unwrap();
        assert_eq!(s.optimizer().group_lrs(), [0.05, 0.5]);
        let after = bits(&varmap);
        for ((name, a), (_, b)) in after.iter().zip(&before) {
            assert_eq!(a == b, name.starts_with("ln."), "{name}");
        }
    }
}
