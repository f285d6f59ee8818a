//! The whole range test on lrfind's own models: data → model → sweep → analysis → report.
//! (For your own model, call [`crate::finder::find_lr`] with a [`crate::finder::TrainStep`].)

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{self, DataConfig, DataSummary, Dataset, DeviceData, Task};
use crate::device::{describe, DeviceSpec};
use crate::error::{Error, Result, Scope};
use crate::finder::{
    self, Analysis, Rule, StepEvent, SweepConfig, TrialEvent, Verification, VerifyConfig,
};
use crate::learner::{Learner, StepLoss};
use crate::loss::LossConfig;
use crate::model::{Model, ModelConfig};
use crate::optim::{AnyOptimizer, GroupConfig, Grouping, OptimizerConfig};
use crate::report::{RangeTestReport, RunSettings, Timings};

/// Data, model and optimizer: what a range test and a training run share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// The data: where it comes from and how it is split.
    pub data: DataConfig,
    /// The architecture.
    pub model: ModelConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Seed of the weights and the data order.
    pub seed: u64,
    /// Samples per batch.
    pub batch_size: usize,
    /// The loss (None: cross-entropy for classes, MSE for values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossConfig>,
    /// Pretrained weights (safetensors) to start from instead of the seeded init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Param groups: LR multipliers and frozen parts by name pattern (None: one group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_groups: Option<GroupConfig>,
}

impl Setup {
    /// Reads the data into host memory, split.
    pub fn load_data(&self) -> Result<Dataset> {
        data::load(&self.data)
    }

    /// Loads the data and moves it to `device` (`data.summary` says where it came from).
    pub fn device_data(&self, device: &candle_core::Device) -> Result<DeviceData> {
        DeviceData::new(self.load_data()?, device)
    }

    /// The loss for `task`: the one set, checked against the task, or the task's default.
    pub fn loss_for(&self, task: &Task) -> Result<LossConfig> {
        let loss = self.loss.unwrap_or_else(|| LossConfig::default_for(task));
        loss.validate()?;
        loss.check_task(task)?;
        Ok(loss)
    }

    /// The model for this seed, with the outputs the loss needs; its weights depend on the
    /// seed alone, or come from `init_from`.
    pub fn model(&self, data: &DeviceData, device: &candle_core::Device) -> Result<Model> {
        let loss = self.loss_for(data.task())?;
        let model = Model::new(
            &self.model,
            data.input(),
            loss.outputs(data.task()),
            self.seed,
            device,
        )?;
        if let Some(path) = &self.init_from {
            model.init_from(path)?;
        }
        Ok(model)
    }

    /// The model's parameters in their groups (one group without `param_groups`). Biases
    /// and norm weights are the no-decay ones.
    pub fn grouping(&self, model: &Model) -> Result<Grouping> {
        match &self.param_groups {
            None => Ok(Grouping::single(model.named_vars())),
            Some(g) => {
                let no_decay = model.no_decay_names();
                g.resolve(model.named_vars(), |name, _| {
                    no_decay.iter().any(|n| n == name)
                })
            }
        }
    }

    /// The optimizer for `model` at base LR `lr`, over its groups; frozen parameters are
    /// marked in the model, so no gradient is computed for them. Returns the grouping too.
    pub fn optimizer_for(&self, model: &mut Model, lr: f64) -> Result<(AnyOptimizer, Grouping)> {
        let grouping = self.grouping(model)?;
        let optimizer = if self.param_groups.is_none() {
            self.optimizer.build(model.vars(), lr)?
        } else {
            model.set_frozen(grouping.frozen_mask())?;
            self.optimizer.build_grouped(&grouping, lr)?
        };
        Ok((optimizer, grouping))
    }

    /// A learner for this setup: its model, `optimizer`, the data, and the loss.
    pub fn learner(
        &self,
        model: Model,
        optimizer: crate::optim::AnyOptimizer,
        data: &DeviceData,
        accumulate: usize,
        step_loss: StepLoss,
    ) -> Result<Learner> {
        let loss = self.loss_for(data.task())?;
        // Before the first batch: a layer too large for a batch is an error, not an abort.
        model.check_batch_memory(self.batch_size)?;
        Learner::new(
            model,
            optimizer,
            data.clone(),
            self.batch_size,
            accumulate,
            step_loss,
            self.order_seed(),
        )?
        .with_loss(loss)
    }

    /// The data order gets its own stream, so seeds vary order and weights independently.
    pub fn order_seed(&self) -> u64 {
        self.seed ^ 0x9e37_79b9_7f4a_7c15
    }
}

/// A range test to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeTest {
    /// Data, model and optimizer.
    pub setup: Setup,
    /// Where to run.
    pub device: DeviceSpec,
    /// Micro-batches per step.
    pub accumulate: usize,
    /// How each step is scored.
    pub step_loss: StepLoss,
    /// The ladder, smoothing and stop.
    pub sweep: SweepConfig,
    /// The rule whose suggestion is reported.
    pub rule: Rule,
    /// Verify the suggestion with short training trials after the sweep (None: don't).
    pub verify: Option<VerifyConfig>,
}

/// Validation samples (at most; spread over the split) each verification trial is scored on.
pub const VERIFY_SAMPLES: usize = 1024;

/// Verifies `analysis`'s suggestion on `learner` (see [`finder::verify`]): trials from the
/// learner's current state at the candidate LRs, each scored on the same held-out samples;
/// the learner is put back as it was. An error when there is no suggestion to verify.
pub fn verify_learner(
    learner: &mut Learner,
    analysis: &Analysis,
    config: &VerifyConfig,
    observe: &mut dyn FnMut(&TrialEvent) -> ControlFlow<()>,
) -> Result<Verification> {
    let Some(s) = &analysis.suggestion else {
        return Err(Error::setting(
            Scope::Sweep,
            "verify",
            "on",
            "there is no suggestion to verify",
        ));
    };
    let candidates = finder::candidates(analysis, config);
    let set = learner.held_out(VERIFY_SAMPLES)?;
    finder::verify(
        learner,
        &candidates,
        s.lr,
        config,
        |l: &mut Learner| l.trial_score(&set, 512),
        observe,
    )
}

impl RangeTest {
    /// Checks every setting that needs no data, so bad input fails before any work.
    pub fn validate(&self) -> Result<()> {
        self.setup.data.validate()?;
        self.sweep.validate()?;
        if let Some(v) = &self.verify {
            v.validate()?;
        }
        self.setup.model.validate()?;
        self.setup.optimizer.validate()?;
        if let Some(g) = &self.setup.param_groups {
            g.validate()?;
        }
        crate::learner::check_batching(self.setup.batch_size, self.accumulate)
    }

    /// The learner for this range test's seed, on data already on the device.
    pub fn learner(&self, data: &DeviceData, device: &candle_core::Device) -> Result<Learner> {
        Ok(self.grouped_learner(data, device)?.0)
    }

    /// [`RangeTest::learner`] and its param groups.
    pub fn grouped_learner(
        &self,
        data: &DeviceData,
        device: &candle_core::Device,
    ) -> Result<(Learner, Grouping)> {
        self.validate()?;
        let mut model = self.setup.model(data, device)?;
        let (optimizer, grouping) = self.setup.optimizer_for(&mut model, self.sweep.min_lr)?;
        let learner =
            self.setup
                .learner(model, optimizer, data, self.accumulate, self.step_loss)?;
        Ok((learner, grouping))
    }

    /// The report's description of this run on `data` (the device is filled in by whoever
    /// opened it).
    pub fn settings(&self, data: &DataSummary) -> RunSettings {
        RunSettings {
            data: self.setup.data.clone(),
            dataset: data.clone(),
            model: self.setup.model.clone(),
            optimizer: self.setup.optimizer.clone(),
            seed: self.setup.seed,
            device: String::new(),
            batch_size: self.setup.batch_size,
            accumulate: self.accumulate,
            step_loss: self.step_loss,
            loss: self.setup.loss_for(&data.task).ok(),
            init_from: self.setup.init_from.clone(),
            param_groups: self.setup.param_groups.clone(),
        }
    }

    /// Runs it on data already on the device (`lrfind check` loads once for every seed).
    pub fn run_on(
        &self,
        data: &DeviceData,
        device: &candle_core::Device,
        observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
    ) -> Result<RangeTestReport> {
        self.run_verified_on(data, device, observe, &mut |_| ControlFlow::Continue(()))
    }

    /// [`RangeTest::run_on`], with an observer for the verification trials too. Without a
    /// suggestion (or after Ctrl-C) nothing is verified.
    pub fn run_verified_on(
        &self,
        data: &DeviceData,
        device: &candle_core::Device,
        observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
        observe_trial: &mut dyn FnMut(&TrialEvent) -> ControlFlow<()>,
    ) -> Result<RangeTestReport> {
        let (mut learner, grouping) = self.grouped_learner(data, device)?;
        let t = Instant::now();
        let curve = finder::find_lr(&mut learner, &self.sweep, observe)?;
        let sweep_s = t.elapsed().as_secs_f64();
        let settings = RunSettings {
            device: describe(device),
            ..self.settings(&data.summary)
        };
        let steps = curve.lrs.len();
        let report = RangeTestReport::new(
            settings,
            &self.sweep,
            self.rule,
            curve,
            Timings {
                load_s: 0.0,
                sweep_s,
                total_s: 0.0,
                steps_per_s: steps as f64 / sweep_s.max(1e-9),
            },
        );
        let report = match self.setup.param_groups {
            Some(_) => report.with_groups(&grouping),
            None => report,
        };
        match &self.verify {
            Some(v) if report.analysis.suggestion.is_some() && !report.interrupted => {
                let verification =
                    verify_learner(&mut learner, &report.analysis, v, observe_trial)?;
                Ok(report.with_verification(verification))
            }
            _ => Ok(report),
        }
    }

    /// Loads the data, opens the device and runs.
    pub fn run(
        &self,
        observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
    ) -> Result<RangeTestReport> {
        self.run_verified(observe, &mut |_| ControlFlow::Continue(()))
    }

    /// [`RangeTest::run`] with an observer for the verification trials too.
    pub fn run_verified(
        &self,
        observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
        observe_trial: &mut dyn FnMut(&TrialEvent) -> ControlFlow<()>,
    ) -> Result<RangeTestReport> {
        // Bad settings fail before the data is read; run_on checks them again for its
        // own callers, which costs nothing.
        self.validate()?;
        let t = Instant::now();
        let device = self.device.open()?;
        let data = self.setup.device_data(&device)?;
        let load_s = t.elapsed().as_secs_f64();
        let mut report = self.run_verified_on(&data, &device, observe, observe_trial)?;
        report.timings.load_s = load_s;
        Ok(report)
    }
}
