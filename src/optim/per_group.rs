//! One candle-nn optimizer per param group: how to give candle-nn's `SGD` or `AdamW` (one
//! LR each) discriminative learning rates.

use candle_core::backprop::GradStore;
use candle_core::Var;
use candle_nn::Optimizer;

use super::groups::{GroupLrs, Grouping};
use crate::error::{Error, Result, Scope};

/// Any `candle_nn::Optimizer`, one per trainable group of a [`Grouping`], each at its
/// multiple of one base LR. `set_learning_rate` sets the base (the range test sweeps it with
/// the ratios fixed); [`GroupLrs`] sets each group's LR (per-group schedules). Frozen
/// variables are in no optimizer, so they are never updated.
///
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::{Optimizer, VarBuilder, VarMap};
/// use lrfind::optim::{GroupConfig, PerGroup};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let _body = candle_nn::linear(4, 8, vb.pp("body"))?;
/// let _head = candle_nn::linear(8, 2, vb.pp("head"))?;
/// let grouping = GroupConfig::parse("body.*=0.1, head.*=1")?.resolve_varmap(&varmap)?;
/// let mut opt = PerGroup::new(&grouping, 1e-3, |vars, lr| {
///     candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW { lr, ..Default::default() })
/// })?;
/// opt.set_learning_rate(1e-2);
/// assert_eq!(opt.optimizers()[0].learning_rate(), 1e-2 * 0.1);
/// # Ok(())
/// # }
/// ```
pub struct PerGroup<O> {
    optimizers: Vec<O>,
    multipliers: Vec<f64>,
    base: f64,
}

impl<O: Optimizer> PerGroup<O> {
    /// One optimizer per trainable group of `grouping`, made by `make(vars, lr)` with the
    /// group's variables and its LR at base LR `lr`.
    pub fn new(
        grouping: &Grouping,
        lr: f64,
        mut make: impl FnMut(Vec<Var>, f64) -> candle_core::Result<O>,
    ) -> Result<Self> {
        let named = grouping.named_vars();
        let mut optimizers = Vec::with_capacity(grouping.groups.len());
        for g in &grouping.groups {
            let vars = g
                .names
                .iter()
                .filter_map(|n| named.iter().find(|(m, _)| m == n).map(|(_, v)| v.clone()))
                .collect();
            optimizers.push(make(vars, lr * g.multiplier)?);
        }
        Ok(Self {
            optimizers,
            multipliers: grouping.multipliers(),
            base: lr,
        })
    }

    /// The optimizers, in group order.
    pub fn optimizers(&self) -> &[O] {
        &self.optimizers
    }

    /// The optimizers, to change more than the LR.
    pub fn optimizers_mut(&mut self) -> &mut [O] {
        &mut self.optimizers
    }
}

impl<O: Optimizer> Optimizer for PerGroup<O> {
    /// The grouping, the base LR and the factory of one group's optimizer.
    type Config = (Grouping, f64, fn(Vec<Var>, f64) -> candle_core::Result<O>);

    /// `vars` is ignored: the grouping names them.
    fn new(_vars: Vec<Var>, (grouping, lr, make): Self::Config) -> candle_core::Result<Self> {
        Self::new(&grouping, lr, make).map_err(super::to_candle)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        for o in &mut self.optimizers {
            o.step(grads)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.base
    }

    /// Sets the base LR: each group's optimizer gets `lr` × its multiplier.
    fn set_learning_rate(&mut self, lr: f64) {
        self.base = lr;
        for (o, m) in self.optimizers.iter_mut().zip(&self.multipliers) {
            o.set_learning_rate(lr * m);
        }
    }
}

impl<O: Optimizer> GroupLrs for PerGroup<O> {
    fn group_lrs(&self) -> Vec<f64> {
        self.optimizers.iter().map(|o| o.learning_rate()).collect()
    }

    fn set_group_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.optimizers.len() {
            return Err(Error::setting(
                Scope::Optimizer,
                "group_lrs",
                format!("{lrs:?}"),
                format!(
                    "needs one learning rate per param group ({} groups)",
                    self.optimizers.len()
                ),
            ));
        }
        for (o, lr) in self.optimizers.iter_mut().zip(lrs) {
            o.set_learning_rate(*lr);
        }
        if let (Some(l), Some(m)) = (lrs.first(), self.multipliers.first()) {
            self.base = l / m;
        }
        Ok(())
    }
}
