//! Argument groups shared by the subcommands, and their resolution into typed settings.

use std::path::PathBuf;

use clap::Args;

use anyhow::Result;
use lrfind::data::DataSource;
use lrfind::device::DeviceSpec;

use super::invalid;
use lrfind::finder::{LadderMode, Rule, SweepConfig, Window};
use lrfind::learner::StepLoss;
use lrfind::model::ModelConfig;
use lrfind::optim::OptimizerConfig;
use lrfind::range_test::{RangeTest, Setup};

/// Data, model, optimizer, seed, batch, device. Unset flags take the defaults shown (for
/// `lrfind train`, the range-test report's values first).
#[derive(Args, Debug, Clone, Default)]
pub struct SetupArgs {
    /// Dataset: digits (embedded MNIST slice, no download), mnist, fashion-mnist, cifar10 [default: digits]
    #[arg(long, value_name = "NAME", help_heading = "Data")]
    pub data: Option<DataSource>,
    /// Directory with the dataset's files (IDX raw or .gz; CIFAR-10 binary batches)
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    pub data_dir: Option<PathBuf>,
    /// Model: mlp, linear, cnn [default: mlp]
    #[arg(long, value_name = "KIND", help_heading = "Model")]
    pub model: Option<String>,
    /// Hidden layer widths of the MLP [default: 256,128]
    #[arg(long, value_name = "W,W,…", help_heading = "Model")]
    pub hidden: Option<String>,
    /// Optimizer: sgd, adam, adamw [default: adam]
    #[arg(long, value_name = "KIND", help_heading = "Optimizer")]
    pub optimizer: Option<String>,
    /// SGD momentum [default: 0]
    #[arg(
        long,
        value_name = "M",
        help_heading = "Optimizer",
        allow_hyphen_values = true
    )]
    pub momentum: Option<f64>,
    /// SGD Nesterov momentum
    #[arg(long, help_heading = "Optimizer")]
    pub nesterov: bool,
    /// Weight decay [default: 0; adamw 0.01]
    #[arg(
        long,
        value_name = "WD",
        help_heading = "Optimizer",
        allow_hyphen_values = true
    )]
    pub weight_decay: Option<f64>,
    /// Adam betas [default: 0.9,0.999]
    #[arg(long, value_name = "B1,B2", value_parser = parse_betas, help_heading = "Optimizer")]
    pub betas: Option<(f64, f64)>,
    /// Adam epsilon [default: 1e-8]
    #[arg(long, value_name = "EPS", help_heading = "Optimizer")]
    pub eps: Option<f64>,
    /// Seed of the initial weights and the data order [default: 0]
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub seed: Option<u64>,
    /// Batch size [default: 64]
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub batch_size: Option<usize>,
    /// Device: auto, cpu, cuda[:N], metal[:N] [default: auto]
    #[arg(long, value_name = "DEV", help_heading = "Run")]
    pub device: Option<String>,
}

/// `path` made absolute (symlinks resolved when it exists).
pub fn absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn parse_betas(s: &str) -> std::result::Result<(f64, f64), String> {
    let bad = || format!("'{s}' is not two numbers B1,B2 (e.g. 0.9,0.999)");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

impl SetupArgs {
    /// Settings from these flags over `base` (a report's) or the defaults.
    pub fn resolve(&self, base: Option<&Setup>) -> Result<Setup> {
        let model = match (&self.model, &self.hidden, base) {
            (None, None, Some(b)) => b.model.clone(),
            (kind, hidden, _) => {
                let base_kind = base.map(|b| match b.model {
                    ModelConfig::Mlp { .. } => "mlp",
                    ModelConfig::Linear => "linear",
                    ModelConfig::Cnn => "cnn",
                    ModelConfig::Lenet => "lenet",
                    ModelConfig::Layers { .. } => "layers",
                });
                let kind = kind.as_deref().or(base_kind).unwrap_or("mlp");
                if hidden.is_some() && !kind.eq_ignore_ascii_case("mlp") {
                    return Err(invalid(format!(
                        "--hidden: only the mlp model has hidden layers, not {kind}"
                    )));
                }
                ModelConfig::parse(kind, hidden.as_deref().unwrap_or("256,128"))?
            }
        };
        Ok(Setup {
            data: self
                .data
                .or(base.map(|b| b.data))
                .unwrap_or(DataSource::Digits),
            // Stored absolute: a report or run read from another directory must still find it.
            data_dir: self
                .data_dir
                .as_deref()
                .map(absolute)
                .or_else(|| base.and_then(|b| b.data_dir.clone())),
            model,
            optimizer: self.optimizer(base.map(|b| &b.optimizer))?,
            seed: self.seed.or(base.map(|b| b.seed)).unwrap_or(0),
            batch_size: self.batch_size.or(base.map(|b| b.batch_size)).unwrap_or(64),
        })
    }

    fn optimizer(&self, base: Option<&OptimizerConfig>) -> Result<OptimizerConfig> {
        let kind = self
            .optimizer
            .clone()
            .or(base.map(|b| b.name().to_string()))
            .unwrap_or_else(|| "adam".into());
        let (b_sgd, b_adam) = match base {
            Some(OptimizerConfig::Sgd(c)) => (Some(c), None),
            Some(OptimizerConfig::Adam(c)) => (None, Some((c.betas, c.eps))),
            Some(OptimizerConfig::AdamW(c)) => (None, Some((c.betas, c.eps))),
            None => (None, None),
        };
        let same_kind = base.is_some_and(|b| b.name().eq_ignore_ascii_case(&kind));
        let cfg = OptimizerConfig::from_parts(
            &kind,
            self.momentum.or(b_sgd.map(|c| c.momentum)).unwrap_or(0.0),
            self.nesterov || b_sgd.is_some_and(|c| c.nesterov),
            self.weight_decay.or(base
                .filter(|_| same_kind)
                .map(OptimizerConfig::weight_decay)),
            self.betas.or(b_adam.map(|c| c.0)).unwrap_or((0.9, 0.999)),
            self.eps.or(b_adam.map(|c| c.1)).unwrap_or(1e-8),
        )?;
        if !matches!(cfg, OptimizerConfig::Sgd(_)) && self.momentum.is_some() {
            return Err(invalid(format!(
                "--momentum: {kind} has no momentum flag (its beta1 is set with --betas)"
            )));
        }
        if let (OptimizerConfig::Sgd(_), true) = (&cfg, self.betas.is_some() || self.eps.is_some())
        {
            return Err(invalid(
                "--betas/--eps: only adam and adamw take them, not sgd",
            ));
        }
        Ok(cfg)
    }

    pub fn device(&self, base: Option<&str>) -> Result<DeviceSpec> {
        Ok(self.device.as_deref().or(base).unwrap_or("auto").parse()?)
    }
}

/// The range test's own flags.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Lowest learning rate (the first step uses exactly this)
    #[arg(
        long = "min",
        value_name = "LR",
        default_value = "1e-7",
        help_heading = "Sweep",
        allow_hyphen_values = true
    )]
    pub min_lr: f64,
    /// Highest learning rate (the last step uses exactly this)
    #[arg(
        long = "max",
        value_name = "LR",
        default_value_t = 10.0,
        help_heading = "Sweep",
        allow_hyphen_values = true
    )]
    pub max_lr: f64,
    /// How the LR rises: exp (geometric) or linear
    #[arg(
        long,
        value_name = "MODE",
        default_value = "exp",
        help_heading = "Sweep"
    )]
    pub mode: LadderMode,
    /// Number of optimizer steps, one per learning rate
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Sweep")]
    pub num_steps: usize,
    /// When the loss has not turned upward by --max, keep climbing the same ladder (at most
    /// three more decades) until it does
    #[arg(long, help_heading = "Sweep")]
    pub extend: bool,
    /// Gradient accumulation: batches per optimizer step
    #[arg(long, value_name = "K", default_value_t = 1, help_heading = "Sweep")]
    pub accumulate: usize,
    /// Score each step on a fixed held-out subset (the first N test images) instead of its training batch
    #[arg(long, help_heading = "Sweep")]
    pub val_loss: bool,
    /// Held-out images used by --val-loss
    #[arg(long, value_name = "N", default_value_t = 512, help_heading = "Sweep")]
    pub val_samples: usize,
    /// EMA smoothing factor in [0, 1); 0 turns smoothing off
    #[arg(
        long,
        value_name = "BETA",
        default_value_t = 0.98,
        help_heading = "Sweep",
        allow_hyphen_values = true
    )]
    pub smooth: f64,
    /// Stop once the smoothed loss exceeds this many times the best so far
    #[arg(
        long,
        value_name = "X",
        default_value_t = 4.0,
        help_heading = "Sweep",
        allow_hyphen_values = true
    )]
    pub diverge: f64,
    /// Suggestion rule: fall, steepest, minimum, steep, valley, slide
    #[arg(
        long,
        value_name = "RULE",
        default_value = "fall",
        help_heading = "Suggestion"
    )]
    pub suggest: Rule,
    /// Points skipped at the start of the curve by the rules
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "Suggestion"
    )]
    pub skip_start: usize,
    /// Points skipped at the end of the curve by the rules
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "Suggestion"
    )]
    pub skip_end: usize,
}

impl SweepArgs {
    pub fn range_test(&self, setup: Setup, device: DeviceSpec) -> Result<RangeTest> {
        let rt = RangeTest {
            setup,
            device,
            accumulate: self.accumulate,
            step_loss: if self.val_loss {
                StepLoss::Validation {
                    samples: self.val_samples,
                }
            } else {
                StepLoss::TrainBatch
            },
            sweep: SweepConfig {
                min_lr: self.min_lr,
                max_lr: self.max_lr,
                num_steps: self.num_steps,
                mode: self.mode,
                smooth: self.smooth,
                diverge: self.diverge,
                window: Window {
                    skip_start: self.skip_start,
                    skip_end: self.skip_end,
                },
                extend: self.extend,
            },
            rule: self.suggest,
        };
        if self.val_loss && self.val_samples == 0 {
            return Err(invalid("--val-samples 0: must be at least 1"));
        }
        rt.validate()?;
        Ok(rt)
    }
}
