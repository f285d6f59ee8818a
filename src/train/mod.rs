//! A full training run: epochs over the data at a chosen LR, any scheduler, evaluation on the
//! validation split after each epoch, early stopping, checkpoints and exact resume.

pub mod run_dir;

use crate::optim::{GroupLrs, Momentum};
use candle_nn::Optimizer;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::batches::{batches_per_epoch, epoch_batches};
use crate::data::DeviceData;
use crate::device::DeviceSpec;
use crate::error::{Diverged, Error, Result, Scope};
use crate::learner::{Learner, StepLoss};
use crate::range_test::Setup;
use crate::schedule::{check_schedule, Interval, LrScheduler, ParamGroups, SchedulerConfig};

pub use run_dir::RunDir;

/// Where the training LR came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSource {
    /// Set by hand.
    Given,
    /// Read off a range-test report.
    Suggested {
        /// The report's path.
        report: String,
        /// The suggestion rule whose LR was taken.
        rule: String,
    },
}

/// Everything that defines a training run (saved as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data, model, optimizer and batch size.
    pub setup: Setup,
    /// The device, as [`DeviceSpec`] parses it (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
    /// The learning rate the optimizer starts at (a scheduler's base LR).
    pub lr: f64,
    /// Where `lr` came from.
    pub lr_source: LrSource,
    /// Total number of epochs.
    pub epochs: usize,
    /// The LR schedule, if any.
    pub scheduler: Option<SchedulerConfig>,
    /// When the scheduler steps; `None` is the scheduler's PyTorch convention.
    pub schedule_every: Option<Interval>,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: Option<usize>,
    /// Batch size of the validation pass (it does not affect training).
    pub eval_batch_size: usize,
}

impl TrainConfig {
    /// The LR that governs the run, as titles and the console say it: `lr 3.020e-3`, or
    /// `peak lr 3.020e-3 (OneCycleLR's max_lr)` when a scheduler sets the LR itself (then the
    /// optimizer's own LR is overwritten and only `max_lr` matters).
    pub fn lr_label(&self) -> String {
        let raw = self.scheduler.as_ref().map(SchedulerConfig::to_raw);
        let peak = raw
            .as_ref()
            .and_then(|r| r.peak_lrs().first().map(|(n, v)| (*n, v.cloned())));
        match peak {
            Some((name, Some(serde_json::Value::Number(n)))) => format!(
                "peak lr {:.3e} ({name}'s max_lr)",
                n.as_f64().unwrap_or(self.lr)
            ),
            Some((name, Some(v))) => format!("peak lr {v} ({name}'s max_lr, per group)"),
            Some((name, None)) => format!("peak lr {:.3e} ({name}'s max_lr)", self.lr),
            None => format!("lr {:.3e}", self.lr),
        }
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::setting(
                Scope::Train,
                "lr",
                self.lr,
                "must be a positive finite learning rate",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::setting(
                Scope::Train,
                "epochs",
                0,
                "must be at least 1",
            ));
        }
        crate::learner::check_batching(self.setup.batch_size, 1)?;
        if self.eval_batch_size == 0 {
            return Err(Error::setting(
                Scope::Train,
                "eval_batch_size",
                0,
                "must be at least 1",
            ));
        }
        self.setup.data.validate()?;
        if self.setup.data.val_split == 0.0 {
            return Err(no_validation(0.0));
        }
        self.setup.model.validate()?;
        if self.patience == Some(0) {
            return Err(Error::setting(
                Scope::Train,
                "patience",
                0,
                "must be at least 1",
            ));
        }
        self.setup.optimizer.validate()?;
        if let Some(s) = &self.scheduler {
            if s.needs_metric() && self.interval() == Interval::Step {
                return Err(Error::setting(
                    Scope::Train,
                    "schedule_every",
                    "step",
                    "ReduceLROnPlateau is fed the validation loss, so it steps once per epoch",
                ));
            }
        }
        Ok(())
    }

    /// A fingerprint of everything that defines the run except its length (`epochs` may
    /// grow on resume), stored in the checkpoint and state.json so a resume can tell that
    /// config, checkpoint and state come from one run. FNV-1a 64 over the JSON text.
    pub fn digest(&self) -> String {
        let mut c = self.clone();
        c.epochs = 0;
        let text = serde_json::to_string(&c).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The optimizer's param groups as schedulers see them: the run's LR (times each
    /// trainable group's multiplier, with param groups) and the optimizer's momentum.
    pub fn param_groups(&self) -> ParamGroups {
        let lrs: Vec<f64> = match &self.setup.param_groups {
            Some(g) => g.multipliers().iter().map(|m| self.lr * m).collect(),
            None => vec![self.lr],
        };
        let m = self.setup.optimizer.momentum();
        ParamGroups::new(lrs.clone(), Some(vec![m; lrs.len()]))
    }

    /// The stepping interval in force.
    pub fn interval(&self) -> Interval {
        match (&self.schedule_every, &self.scheduler) {
            (Some(i), _) => *i,
            (None, Some(s)) => s.default_interval(),
            (None, None) => Interval::Epoch,
        }
    }

    /// How many times the scheduler steps in the whole run.
    fn planned_steps(&self, batches: usize) -> usize {
        match self.interval() {
            Interval::Step => self.epochs.saturating_mul(batches),
            Interval::Epoch => self.epochs,
        }
    }

    /// The scheduler config with OneCycleLR's `total_steps` filled in from the run's length.
    fn scheduler_for(&self, batches: usize) -> Option<SchedulerConfig> {
        self.scheduler.clone().map(|mut s| {
            s.fill_total_steps(self.planned_steps(batches));
            s
        })
    }
}

/// Training without a validation split: nothing to score epochs on.
fn no_validation(val_split: f64) -> Error {
    Error::setting(
        Scope::Data,
        "val_split",
        val_split,
        "training scores every epoch on the validation split, and it is empty; set val_split above 0",
    )
}

/// One epoch's numbers (a line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Mean loss on the validation split.
    pub val_loss: f64,
    /// Fraction of the validation split classified correctly, in [0, 1] (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Root mean squared error on the validation split (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f64>,
    /// Mean absolute error on the validation split (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_mae: Option<f64>,
    /// LR at the epoch's first and last optimizer step.
    pub lr: f64,
    /// LR at the epoch's last optimizer step.
    pub lr_end: f64,
    /// SGD momentum / Adam beta1 at the epoch's end.
    pub momentum: f64,
    /// Wall-clock time of the epoch, validation included, in seconds.
    pub seconds: f64,
    /// The LR of every optimizer step of the epoch, when the scheduler steps per batch (a
    /// OneCycleLR peak falls between epoch boundaries); empty when the LR held all epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_lrs: Vec<f64>,
    /// The training loss through the epoch: the mean over each of at most
    /// [`TRACE_POINTS`] equal runs of consecutive batches (weighted by batch size), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train_loss_trace: Vec<f64>,
}

/// Points per epoch in [`EpochMetrics::train_loss_trace`]: enough for a smooth line, few enough
/// for state.json.
pub const TRACE_POINTS: usize = 50;

/// What a run has done so far; with the checkpoint, enough to resume exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// The optimizer's step count.
    pub optimizer_step: u64,
    /// Metrics given to the scheduler at each of its steps (None for non-metric steps), so a
    /// resumed run can replay the scheduler to exactly the state it had.
    pub scheduler_steps: Vec<Option<f64>>,
    /// Lowest validation loss so far.
    pub best_val_loss: Option<f64>,
    /// The epoch (1-based) that reached it.
    pub best_epoch: Option<usize>,
    /// Epochs since the validation loss last improved (for `patience`).
    pub epochs_without_improvement: usize,
    /// Every finished epoch's metrics, in order.
    pub history: Vec<EpochMetrics>,
    /// [`TrainConfig::digest`] of the run this state belongs to (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The test split's loss and metrics on the weights the run ended with (after its
    /// last epoch or early stop), when the data has a test split. Reported only: nothing
    /// (early stopping, best checkpoint, ReduceLROnPlateau) ever looks at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<crate::loss::Metrics>,
}

impl TrainState {
    /// Checks a state read back from a file is self-consistent.
    pub fn validate(&self) -> Result<()> {
        if self.history.len() != self.epochs_done {
            return Err(Error::setting(
                Scope::Train,
                "epochs_done",
                self.epochs_done,
                format!("but {} epochs of metrics", self.history.len()),
            ));
        }
        if self.best_val_loss.is_some_and(|v| v.is_nan()) {
            return Err(Error::setting(
                Scope::Train,
                "best_val_loss",
                f64::NAN,
                "must be a number",
            ));
        }
        if self
            .best_epoch
            .is_some_and(|e| e == 0 || e > self.epochs_done)
        {
            return Err(Error::setting(
                Scope::Train,
                "best_epoch",
                self.best_epoch.unwrap_or_default(),
                format!("outside the {} epochs done", self.epochs_done),
            ));
        }
        Ok(())
    }
}

/// How a call to [`Run::train`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every epoch was trained.
    Completed,
    /// `patience` epochs passed without a lower validation loss.
    EarlyStopped,
    /// The observer asked to stop during an epoch.
    Interrupted,
}

/// Sees the run as it goes: batches (for progress; may interrupt) and finished epochs.
pub trait Observer {
    /// Called after each optimizer step with the epoch and batch (both 0-based), the number of
    /// batches per epoch, and the batch's loss; `Break` stops the run.
    fn batch(
        &mut self,
        _epoch: usize,
        _batch: usize,
        _batches: usize,
        _loss: f64,
    ) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// Called after each finished epoch, with the run in its end-of-epoch state.
    fn epoch_end(&mut self, _run: &Run, _metrics: &EpochMetrics, _improved: bool) -> Result<()> {
        Ok(())
    }
}

impl Observer for () {}

/// A training run: its config, model, optimizer and data, progress, and LR scheduler.
pub struct Run {
    /// What defines the run.
    pub config: TrainConfig,
    /// The model, its optimizer and its data.
    pub learner: Learner,
    /// Progress so far.
    pub state: TrainState,
    scheduler: Option<Box<dyn LrScheduler>>,
    groups: ParamGroups,
    batches: usize,
}

impl Run {
    /// A fresh run: model from the seed, optimizer at `config.lr`, scheduler constructed.
    pub fn new(config: TrainConfig, data: DeviceData, device: &Device) -> Result<Self> {
        config.validate()?;
        if data.val_len() == 0 {
            return Err(no_validation(config.setup.data.val_split));
        }
        let mut model = config.setup.model(&data, device)?;
        let (optimizer, _) = config.setup.optimizer_for(&mut model, config.lr)?;
        let batches = batches_per_epoch(data.train_len(), config.setup.batch_size);
        let learner = config
            .setup
            .learner(model, optimizer, &data, 1, StepLoss::TrainBatch)?;
        let mut groups = config.param_groups();
        let scheduler = match config.scheduler_for(batches) {
            Some(s) => {
                // A negative or non-finite LR anywhere in the planned run fails before training.
                check_schedule(&s, &groups, config.planned_steps(batches), None)?;
                Some(s.build(&mut groups)?)
            }
            None => None,
        };
        let state = TrainState {
            config_digest: Some(config.digest()),
            ..TrainState::default()
        };
        let mut run = Self {
            config,
            learner,
            state,
            scheduler,
            groups,
            batches,
        };
        run.apply_groups();
        Ok(run)
    }

    /// Continues a run from its checkpoint: weights, optimizer state, and the scheduler
    /// replayed through the steps it took.
    pub fn resume(
        config: TrainConfig,
        data: DeviceData,
        device: &Device,
        state: TrainState,
        checkpoint: &HashMap<String, Tensor>,
        checkpoint_path: &std::path::Path,
    ) -> Result<Self> {
        let mut run = Self::new(config, data, device)?;
        run.learner
            .model
            .load_tensors(checkpoint_path, checkpoint)?;
        let optim: HashMap<String, Tensor> = checkpoint
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|k| (k.to_string(), v.clone())))
            .collect();
        // A buffer of the wrong shape would index past a parameter in the fused update.
        let vars = run.learner.model.named_vars();
        for (k, t) in &optim {
            let i = k.rsplit('.').next().and_then(|i| i.parse::<usize>().ok());
            match i.and_then(|i| vars.get(i)) {
                Some((_, v)) if v.dims() == t.dims() && t.dtype().is_float() => {}
                _ => {
                    return Err(Error::data(
                        checkpoint_path,
                        format!(
                            "optimizer state 'optim.{k}' does not match the model's parameters"
                        ),
                    ))
                }
            }
        }
        run.learner
            .optimizer
            .load_state(&optim, state.optimizer_step)?;
        if let Some(s) = run.scheduler.as_mut() {
            for m in &state.scheduler_steps {
                s.step(&mut run.groups, *m)?;
            }
        }
        run.state = state;
        // One training pass per batch: the dropout masks continue where the run stopped.
        let passes = run.state.epochs_done as u64 * run.batches as u64;
        run.learner.set_passes(passes);
        // Runs from before digests get one from now on.
        if run.state.config_digest.is_none() {
            run.state.config_digest = Some(run.config.digest());
        }
        run.apply_groups();
        Ok(run)
    }

    /// Drives the run with a schedule written in Rust instead of `config.scheduler`
    /// (`interval` says whether it steps per batch or per epoch; one whose `needs_metric` is
    /// true is fed the validation loss each epoch). Its state is not saved in
    /// checkpoints: to resume, set it again and it is replayed through the recorded steps.
    pub fn set_scheduler(
        &mut self,
        mut scheduler: Box<dyn LrScheduler>,
        interval: Interval,
    ) -> Result<()> {
        let mut groups = self.config.param_groups();
        scheduler.initial_step(&mut groups)?;
        for m in &self.state.scheduler_steps {
            scheduler.step(&mut groups, *m)?;
        }
        self.scheduler = Some(scheduler);
        self.groups = groups;
        self.config.scheduler = None;
        self.config.schedule_every = Some(interval);
        self.apply_groups();
        Ok(())
    }

    fn apply_groups(&mut self) {
        // One LR per trainable group, as the scheduler left them (lengths agree: both come
        // from the same rules).
        if self
            .learner
            .optimizer
            .set_group_lrs(&self.groups.lr)
            .is_err()
        {
            if let Some(lr) = self.groups.lr.first() {
                self.learner.optimizer.set_learning_rate(*lr);
            }
        }
        if let Some(m) = self.groups.momentum.as_ref().and_then(|m| m.first()) {
            self.learner.optimizer.set_momentum(*m);
        }
    }

    fn step_scheduler(&mut self, metric: Option<f64>) -> Result<()> {
        if let Some(s) = self.scheduler.as_mut() {
            s.step(&mut self.groups, metric)?;
            self.state.scheduler_steps.push(metric);
            self.apply_groups();
        }
        Ok(())
    }

    /// The name of the scheduler driving the LR, if any (for titles).
    pub fn scheduler_name(&self) -> Option<&str> {
        self.scheduler.as_deref().map(|s| s.name())
    }

    /// Optimizer steps per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    /// Model weights and optimizer state (prefixed `optim.`) for a checkpoint.
    pub fn checkpoint_tensors(&self) -> HashMap<String, Tensor> {
        let mut t = self.learner.model.tensors();
        let (optim, _) = self.learner.optimizer.state();
        t.extend(optim.into_iter().map(|(k, v)| (format!("optim.{k}"), v)));
        t
    }

    /// Scores the test split (if any) into `state.test`.
    fn evaluate_test(&mut self) -> Result<()> {
        self.state.test = self.learner.evaluate_test(self.config.eval_batch_size)?;
        Ok(())
    }

    /// Trains the remaining epochs.
    pub fn train(&mut self, observer: &mut dyn Observer) -> Result<Outcome> {
        let interval = self.config.interval();
        let n = self.learner.data.train_len();
        let bs = self.config.setup.batch_size;
        while self.state.epochs_done < self.config.epochs {
            let epoch = self.state.epochs_done;
            let t = Instant::now();
            let lr_start = self.learner.optimizer.learning_rate();
            let mut lr_end = lr_start;
            let (mut loss_sum, mut seen) = (0.0, 0usize);
            let mut step_lrs = Vec::new();
            let order = epoch_batches(n, bs, self.config.setup.order_seed(), epoch);
            let bins = order.len().clamp(1, TRACE_POINTS);
            let mut trace = vec![(0.0f64, 0usize); bins];
            for (i, idx) in order.iter().enumerate() {
                let batch = self.learner.data.train_batch(idx)?;
                let lr = self.learner.optimizer.learning_rate();
                lr_end = lr;
                if interval == Interval::Step {
                    step_lrs.push(lr);
                }
                // The LRs the scheduler set, per group.
                let loss = self
                    .learner
                    .step_batches(std::slice::from_ref(&batch), None)?;
                if !loss.is_finite() {
                    return Err(Diverged {
                        what: "the loss".into(),
                        value: loss.to_string(),
                        epoch: epoch + 1,
                        lr,
                    }
                    .into());
                }
                loss_sum += loss * idx.len() as f64;
                seen += idx.len();
                let bin = &mut trace[i * bins / order.len()];
                bin.0 += loss * idx.len() as f64;
                bin.1 += idx.len();
                if interval == Interval::Step {
                    self.step_scheduler(None)?;
                }
                if observer.batch(epoch, i, order.len(), loss).is_break() {
                    return Ok(Outcome::Interrupted);
                }
            }
            // A NaN can hide in weights that ReLU masks while the loss stays finite: never
            // let one reach a checkpoint over the last good one.
            if let Some(name) = crate::model::non_finite_tensor(&self.learner.model.tensors())? {
                return Err(Diverged {
                    what: format!("the weights of '{name}'"),
                    value: "NaN or infinite (nothing was saved over the last good checkpoint)"
                        .into(),
                    epoch: epoch + 1,
                    lr: lr_end,
                }
                .into());
            }
            let val = self
                .learner
                .evaluate(self.learner.data.val_len(), self.config.eval_batch_size)?;
            let val_loss = val.loss;
            if interval == Interval::Epoch {
                let needs = self.scheduler.as_ref().is_some_and(|s| s.needs_metric());
                self.step_scheduler(needs.then_some(val_loss))?;
            }
            let improved = self.state.best_val_loss.is_none_or(|b| val_loss < b);
            if improved {
                self.state.best_val_loss = Some(val_loss);
                self.state.best_epoch = Some(epoch + 1);
                self.state.epochs_without_improvement = 0;
            } else {
                self.state.epochs_without_improvement += 1;
            }
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                train_loss: loss_sum / seen.max(1) as f64,
                val_loss,
                val_accuracy: val.accuracy,
                val_rmse: val.rmse,
                val_mae: val.mae,
                lr: lr_start,
                lr_end,
                momentum: self.learner.optimizer.momentum(),
                seconds: t.elapsed().as_secs_f64(),
                step_lrs,
                train_loss_trace: trace
                    .iter()
                    .filter(|b| b.1 > 0)
                    .map(|b| b.0 / b.1 as f64)
                    .collect(),
            };
            self.state.epochs_done += 1;
            self.state.optimizer_step = self.learner.optimizer.state().1;
            self.state.history.push(metrics.clone());
            let stop = self
                .config
                .patience
                .is_some_and(|p| self.state.epochs_without_improvement >= p);
            // The last epoch's state (saved by the observer) carries the test scores.
            if stop || self.state.epochs_done >= self.config.epochs {
                self.evaluate_test()?;
            }
            observer.epoch_end(self, &metrics, improved)?;
            if stop {
                return Ok(Outcome::EarlyStopped);
            }
        }
        Ok(Outcome::Completed)
    }
}

/// Opens the device named in `config` and loads its data.
pub fn prepare(config: &TrainConfig) -> Result<(Device, DeviceData)> {
    let device: DeviceSpec = config.device.parse()?;
    let device = device.open()?;
    let data = config.setup.device_data(&device)?;
    Ok((device, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, DataConfig, DataSource};
    use crate::model::ModelConfig;
    use crate::optim::OptimizerConfig;
    use crate::schedule::ScheduleError;

    fn config(epochs: usize) -> TrainConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        TrainConfig {
            setup: Setup {
                data: DataConfig::builtin(DataSource::Mnist, Some(dir)),
                model: ModelConfig::Linear,
                optimizer: OptimizerConfig::from_parts("sgd", 0.0, false, None, (0.9, 0.999), 1e-8)
                    .unwrap(),
                seed: 1,
                batch_size: 500,
                loss: None,
                init_from: None,
                param_groups: None,
            },
            device: "cpu".into(),
            lr: 0.1,
            lr_source: LrSource::Given,
            epochs,
            scheduler: None,
            schedule_every: None,
            patience: None,
            eval_batch_size: 250,
        }
    }

    /// Halves the LR at every step: a schedule written in Rust.
    struct Halve(Vec<f64>);

    impl LrScheduler for Halve {
        fn step(&mut self, g: &mut ParamGroups, _m: Option<f64>) -> Result<(), ScheduleError> {
            for lr in &mut g.lr {
                *lr *= 0.5;
            }
            self.0 = g.lr.clone();
            Ok(())
        }
        fn name(&self) -> &str {
            "Halve"
        }
        fn last_lr(&self) -> &[f64] {
            &self.0
        }
        fn initial_step(&mut self, g: &mut ParamGroups) -> Result<(), ScheduleError> {
            self.0 = g.lr.clone();
            Ok(())
        }
    }

    #[test]
    fn a_custom_rust_scheduler_drives_the_run() {
        let cfg = config(3);
        let ds = data::load(&cfg.setup.data).unwrap();
        let dev = Device::Cpu;
        let mut run = Run::new(cfg, DeviceData::new(ds, &dev).unwrap(), &dev).unwrap();
        run.set_scheduler(Box::new(Halve(vec![])), Interval::Epoch)
            .unwrap();
        assert_eq!(run.train(&mut ()).unwrap(), Outcome::Completed);
        let lrs: Vec<f64> = run.state.history.iter().map(|m| m.lr).collect();
        assert_eq!(lrs, [0.1, 0.05, 0.025]);
        // Per batch: 1800 training images (200 are validation) / 500 = 4 halvings an epoch.
        let cfg = config(1);
        let ds = data::load(&cfg.setup.data).unwrap();
        let mut run = Run::new(cfg, DeviceData::new(ds, &dev).unwrap(), &dev).unwrap();
        run.set_scheduler(Box::new(Halve(vec![])), Interval::Step)
            .unwrap();
        run.train(&mut ()).unwrap();
        assert_eq!(run.state.history[0].lr_end, 0.1 / 8.0);
        // Each step's LR is recorded: the schedule inside the epoch is visible.
        assert_eq!(run.state.history[0].step_lrs, [0.1, 0.05, 0.025, 0.0125]);
    }

    #[test]
    fn patience_stops_early() {
        let mut cfg = config(20);
        cfg.lr = 50.0; // far too high: the validation loss will not keep improving
        cfg.patience = Some(1);
        let ds = data::load(&cfg.setup.data).unwrap();
        let dev = Device::Cpu;
        let mut run = Run::new(cfg, DeviceData::new(ds, &dev).unwrap(), &dev).unwrap();
        match run.train(&mut ()) {
            Ok(o) => {
                assert_eq!(o, Outcome::EarlyStopped);
                assert!(run.state.epochs_done < 20);
            }
            // Diverging to NaN is the other honest ending at LR 50.
            Err(e) => assert!(e.to_string().contains("diverged"), "{e}"),
        }
    }

    /// Records whether a checkpoint would have been written.
    struct Saves(usize);

    impl Observer for Saves {
        fn epoch_end(&mut self, _: &Run, _: &EpochMetrics, _: bool) -> Result<()> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn weights_that_turn_non_finite_stop_the_run_before_any_save() {
        // A NaN in a hidden unit's bias is masked by ReLU (max(NaN, 0) = 0 in candle), so
        // the loss stays finite: only the weight check can catch it.
        let mut cfg = config(2);
        cfg.setup.model = ModelConfig::Mlp { hidden: vec![8] };
        let ds = data::load(&cfg.setup.data).unwrap();
        let dev = Device::Cpu;
        let mut run = Run::new(cfg, DeviceData::new(ds, &dev).unwrap(), &dev).unwrap();
        let (_, bias) = run
            .learner
            .model
            .named_vars()
            .iter()
            .find(|(n, _)| n == "1.bias")
            .unwrap()
            .clone();
        let mut b: Vec<f32> = bias.to_vec1().unwrap();
        b[0] = f32::NAN;
        bias.set(&Tensor::from_vec(b, 8, &dev).unwrap()).unwrap();
        let mut saves = Saves(0);
        let e = run.train(&mut saves).unwrap_err().to_string();
        assert!(e.contains("NaN") && e.contains("epoch 1"), "{e}");
        assert_eq!(saves.0, 0, "no checkpoint after non-finite weights");
    }

    #[test]
    fn a_checkpoint_with_non_finite_weights_is_refused_by_name() {
        let cfg = config(1);
        let ds = data::load(&cfg.setup.data).unwrap();
        let dev = Device::Cpu;
        let run = Run::new(cfg, DeviceData::new(ds, &dev).unwrap(), &dev).unwrap();
        let mut t = run.learner.model.tensors();
        let w = t["1.weight"].clone();
        let inf = (w.ones_like().unwrap() * f64::INFINITY).unwrap();
        t.insert("1.weight".into(), inf);
        let e = run
            .learner
            .model
            .load_tensors(std::path::Path::new("ck.safetensors"), &t)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ck.safetensors: tensor '1.weight' holds NaN or infinite values"
        );
    }
}
