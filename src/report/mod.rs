//! The range test's JSON report: what `lrfind train --use-suggested` and `lrfind check` read.

pub mod atomic;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::finder::analysis::Analysis;
use crate::finder::{Curve, Rule, SweepConfig};
use crate::learner::StepLoss;
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;

/// Every setting that determines a range test's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub data: DataSource,
    /// The directory the data was read from ("embedded" / "hub" otherwise).
    pub data_origin: String,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub seed: u64,
    pub device: String,
    pub batch_size: usize,
    pub accumulate: usize,
    pub step_loss: StepLoss,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub load_s: f64,
    pub sweep_s: f64,
    pub total_s: f64,
    pub steps_per_s: f64,
}

/// `lrfind.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeTestReport {
    pub tool: String,
    pub version: String,
    pub settings: RunSettings,
    pub sweep: SweepConfig,
    pub rule: Rule,
    pub curve: Curve,
    pub analysis: Analysis,
    /// The suggested LR (`analysis.suggestion.lr`), at the top level for scripts.
    pub suggested_lr: Option<f64>,
    /// The suggestion is pinned by `--max` (`analysis.pinned`), at the top level for scripts.
    #[serde(default)]
    pub pinned: bool,
    /// With `--extend`: the highest LR the sweep reached past `--max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_to: Option<f64>,
    pub stop_reason: String,
    pub interrupted: bool,
    pub timings: Timings,
}

impl RangeTestReport {
    pub fn to_json(&self) -> String {
        // Serialising plain data to a String cannot fail; keep a readable fallback anyway.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        atomic::write_atomic(path, text.as_bytes())?;
        Ok(())
    }

    /// Reads a report, with an error that says how to make one.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Report {
            path: path.to_path_buf(),
            reason: format!(
                "{e}; run `lrfind --report {}` first to make one",
                path.display()
            ),
        })?;
        let report: Self = serde_json::from_str(&text).map_err(|e| Error::Report {
            path: path.to_path_buf(),
            reason: format!(
                "not an lrfind range-test report ({e}); run `lrfind --report {}` to make one",
                path.display()
            ),
        })?;
        report.validate().map_err(|e| Error::Report {
            path: path.to_path_buf(),
            reason: format!(
                "{e}; run `lrfind --report {}` to make a fresh one",
                path.display()
            ),
        })?;
        Ok(report)
    }

    /// A report read back from a file is checked like flags: a hand-edited value must fail
    /// here with a message, not panic or mislead later.
    pub fn validate(&self) -> Result<()> {
        self.settings.model.validate()?;
        self.settings.optimizer.validate()?;
        crate::learner::check_batching(self.settings.batch_size, self.settings.accumulate)?;
        self.sweep.validate()?;
        if let Some(lr) = self.suggested_lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::invalid(format!(
                    "suggested_lr {lr}: must be a positive finite learning rate"
                )));
            }
        }
        Ok(())
    }
}
