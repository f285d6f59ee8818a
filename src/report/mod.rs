//! A range test's JSON report (what a training run at the suggestion reads back), and
//! atomic file output.

pub mod atomic;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::{DataConfig, DataSummary};
use crate::error::{Error, Result, Scope};
use crate::finder::{analyse, Analysis, Curve, Rule, SweepConfig, Verification};
use crate::learner::StepLoss;
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;

/// Every setting that determines a range test's numbers on the built-in pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The data asked for: source, options and split (what `train --use-suggested` reuses).
    pub data: DataConfig,
    /// The data found: where it was read from, its shape, classes or targets, which split
    /// is validation and which is test, and the standardisation applied.
    pub dataset: DataSummary,
    /// The architecture.
    pub model: ModelConfig,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Seed of the weights and the data order.
    pub seed: u64,
    /// Where it ran ("cpu", "cuda:0").
    pub device: String,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per step.
    pub accumulate: usize,
    /// How each step was scored.
    pub step_loss: StepLoss,
    /// The loss minimised (absent in reports from before losses were chosen: cross-entropy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<crate::loss::LossConfig>,
    /// The pretrained weights the model started from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
    /// Param groups (fine-tuning): patterns, LR multipliers, frozen parts, no-decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_groups: Option<crate::optim::GroupConfig>,
}

/// What a report says about a run on your own model: your words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// The model ("resnet18, ImageNet weights").
    pub model: String,
    /// The data ("my-dataset v3, 80/20 split").
    pub data: String,
    /// The optimizer ("candle-nn AdamW, weight decay 0.01").
    pub optimizer: String,
}

impl Description {
    /// A description from the model's, the data's and the optimizer's names.
    pub fn new(
        model: impl Into<String>,
        data: impl Into<String>,
        optimizer: impl Into<String>,
    ) -> Self {
        Self {
            model: model.into(),
            data: data.into(),
            optimizer: optimizer.into(),
        }
    }
}

/// How long the parts of a range test took, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading the data and moving it to the device.
    pub load_s: f64,
    /// The sweep itself.
    pub sweep_s: f64,
    /// The whole process, as the caller measured it.
    pub total_s: f64,
    /// Steps per second of the sweep.
    pub steps_per_s: f64,
}

/// A range test's JSON report (`lrfind.json`). `S` describes the run: [`RunSettings`] for
/// the built-in pipeline, or [`Description`] (or any serde type) for your own model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeTestReport<S = RunSettings> {
    /// "lrfind".
    pub tool: String,
    /// lrfind's version.
    pub version: String,
    /// What ran.
    pub settings: S,
    /// The range test's settings.
    pub sweep: SweepConfig,
    /// The rule whose suggestion is `suggested_lr`.
    pub rule: Rule,
    /// The measured curve.
    pub curve: Curve,
    /// Every rule's suggestion, and whether the range was wide enough.
    pub analysis: Analysis,
    /// The suggested LR (`analysis.suggestion.lr`), at the top level for scripts.
    pub suggested_lr: Option<f64>,
    /// The suggestion is pinned by `max_lr` (`analysis.pinned`), at the top level for scripts.
    #[serde(default)]
    pub pinned: bool,
    /// With `extend`: the highest LR the sweep reached past `max_lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_to: Option<f64>,
    /// Why the sweep ended, in words.
    pub stop_reason: String,
    /// The suggestion verified by short training trials (`verification.verified_lr`), at the
    /// top level for scripts: what `train --use-suggested` trains at when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_lr: Option<f64>,
    /// The verification trials, when the range test was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The sweep was stopped before its end by the observer (Ctrl-C).
    pub interrupted: bool,
    /// How long it took.
    pub timings: Timings,
    /// With param groups: the sweep moved the base LR with the groups' ratios fixed; each
    /// group with its parameters and its LR at the suggestion (empty: one group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub param_groups: Vec<crate::optim::GroupReport>,
}

impl<S> RangeTestReport<S> {
    /// The report of `curve`, measured with `sweep`, analysed with `rule`.
    pub fn new(
        settings: S,
        sweep: &SweepConfig,
        rule: Rule,
        curve: Curve,
        timings: Timings,
    ) -> Self {
        let analysis = analyse(&curve, sweep, rule);
        RangeTestReport {
            tool: "lrfind".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings,
            sweep: sweep.clone(),
            rule,
            suggested_lr: analysis.suggestion.as_ref().map(|s| s.lr),
            pinned: analysis.pinned,
            extended_to: curve.lrs.last().copied().filter(|&lr| lr > sweep.max_lr),
            stop_reason: curve.stop.to_string(),
            verified_lr: None,
            verification: None,
            interrupted: curve.stop.is_interrupted(),
            curve,
            analysis,
            timings,
            param_groups: Vec::new(),
        }
    }

    /// Lists `grouping`'s groups with their LRs at the suggestion (the curve's LRs are the
    /// base LR, which each group multiplies).
    pub fn with_groups(mut self, grouping: &crate::optim::Grouping) -> Self {
        self.param_groups = grouping.report(self.suggested_lr);
        self
    }
}

impl<S> RangeTestReport<S> {
    /// The report with `verification` attached (and its verified LR at the top level). An
    /// interrupted verification chooses nothing: the suggestion then stands unverified.
    pub fn with_verification(mut self, verification: Verification) -> Self {
        self.verified_lr = verification.verified_lr;
        self.interrupted |= verification.interrupted;
        self.verification = Some(verification);
        self
    }

    /// The LR to train at: the verified one when there is one, else the suggestion.
    pub fn best_lr(&self) -> Option<f64> {
        self.verified_lr.or(self.suggested_lr)
    }
}

impl<S: Serialize> RangeTestReport<S> {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data to a String cannot fail; keep a readable fallback anyway.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        atomic::write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

impl<S: DeserializeOwned> RangeTestReport<S> {
    /// Reads a report written by [`RangeTestReport::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::read::read_settings(path, "a range-test report")?;
        let report: Self = serde_json::from_str(&text)
            .map_err(|e| Error::saved(path, format!("not an lrfind range-test report ({e})")))?;
        report
            .check_numbers()
            .map_err(|e| Error::saved(path, e.to_string()))?;
        Ok(report)
    }
}

impl<S> RangeTestReport<S> {
    /// What a hand-edited report could break whatever `S` is: the sweep and the suggestion.
    fn check_numbers(&self) -> Result<()> {
        self.sweep.validate()?;
        for (field, lr) in [
            ("suggested_lr", self.suggested_lr),
            ("verified_lr", self.verified_lr),
        ] {
            let Some(lr) = lr else { continue };
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::setting(
                    Scope::Sweep,
                    field,
                    lr,
                    "must be a positive finite learning rate",
                ));
            }
        }
        Ok(())
    }
}

impl RangeTestReport<RunSettings> {
    /// A report read back from a file is checked like settings: a hand-edited value must fail
    /// here with a message, not panic or mislead later.
    pub fn validate(&self) -> Result<()> {
        self.settings.data.validate()?;
        self.settings.model.validate()?;
        self.settings.optimizer.validate()?;
        if let Some(g) = &self.settings.param_groups {
            g.validate()?;
        }
        crate::learner::check_batching(self.settings.batch_size, self.settings.accumulate)?;
        self.check_numbers()
    }
}
