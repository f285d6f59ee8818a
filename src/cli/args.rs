//! Argument groups shared by the subcommands, and their resolution into typed settings.

use std::path::PathBuf;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::Args;

use anyhow::Result;
use lrfind::data::{DataConfig, Source};
use lrfind::device::DeviceSpec;

use super::invalid;
use super::out;
use lrfind::finder::{LadderMode, Rule, SweepConfig, VerifyConfig, Window};
use lrfind::learner::StepLoss;
use lrfind::loss::LossConfig;
use lrfind::model::ModelConfig;
use lrfind::optim::{GroupConfig, OptimizerConfig};
use lrfind::range_test::{RangeTest, Setup};

/// A value parser that offers `names` to shell completion (and `possible_values`) while
/// parsing with `inner`, so values beyond the names still parse (`cuda:1`, a layer list, a
/// file) and errors stay lrfind's own.
#[derive(Clone)]
pub struct Offer<P> {
    inner: P,
    names: &'static [&'static str],
}

impl<P: TypedValueParser> TypedValueParser for Offer<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<Self::Value, clap::Error> {
        self.inner.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.names.iter().map(|n| PossibleValue::new(*n))))
    }
}

/// Any text, with `names` offered to completion.
pub fn offer(names: &'static [&'static str]) -> Offer<StringValueParser> {
    Offer {
        inner: StringValueParser::new(),
        names,
    }
}

/// `T` parsed with its `FromStr` (its message on failure), with `names` offered to completion.
pub fn offer_parsed<T>(names: &'static [&'static str]) -> Offer<impl TypedValueParser<Value = T>>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    Offer {
        inner: StringValueParser::new().try_map(|s| s.parse::<T>()),
        names,
    }
}

/// `inner` (any value parser, e.g. a function), with `names` offered to completion.
pub fn offer_with<P: TypedValueParser>(inner: P, names: &'static [&'static str]) -> Offer<P> {
    Offer { inner, names }
}

/// What completion offers for each value-taking flag that is not a path or a number.
pub const DATA_NAMES: &[&str] = &["digits", "mnist", "fashion-mnist", "cifar10"];
pub const MODEL_NAMES: &[&str] = &["mlp", "linear", "cnn", "lenet"];
pub const OPTIMIZER_NAMES: &[&str] = &["sgd", "adam", "adamw"];
pub const DEVICE_NAMES: &[&str] = &["auto", "cpu", "cuda", "metal"];
pub const LOSS_NAMES: &[&str] = &["cross-entropy", "bce", "mse", "l1", "huber"];
pub const TASK_NAMES: &[&str] = &["classify", "regress"];
pub const MODE_NAMES: &[&str] = &["exp", "linear"];
pub const RULE_NAMES: &[&str] = &["fall", "steepest", "minimum", "steep", "valley", "slide"];

/// Data, model, optimizer, seed, batch, device. Unset flags take the defaults shown (for
/// `lrfind train`, the range-test report's values first).
#[derive(Args, Debug, Clone, Default)]
pub struct SetupArgs {
    /// Data: digits (embedded MNIST slice, no download), mnist, fashion-mnist, cifar10, or your
    /// own: a .csv file, .npy/.npz/.safetensors tensors, an image-folder directory (or name the
    /// kind: csv:PATH, tensors:PATH, images:PATH) [default: digits]
    #[arg(
        long,
        value_name = "NAME|PATH",
        help_heading = "Data",
        value_parser = offer(DATA_NAMES),
        hide_possible_values = true
    )]
    pub data: Option<String>,
    /// Directory with a built-in dataset's files (IDX raw or .gz; CIFAR-10 binary batches)
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    pub data_dir: Option<PathBuf>,
    /// CSV: the target column (several, comma-separated, for a regression on each) [default: the last column]
    #[arg(long, value_name = "COL[,COL…]", help_heading = "Data")]
    pub target: Option<String>,
    /// CSV: the feature columns [default: every column but the target]
    #[arg(long, value_name = "COL,COL,…", help_heading = "Data")]
    pub features: Option<String>,
    /// CSV and tensors: classify or regress, whatever the targets look like [default: integer or text
    /// labels classify, other numbers regress]
    #[arg(
        long,
        value_name = "TASK",
        help_heading = "Data",
        value_parser = offer(TASK_NAMES),
        hide_possible_values = true
    )]
    pub task: Option<String>,
    /// Tensors: the inputs' array name [default: x]
    #[arg(long, value_name = "KEY", help_heading = "Data")]
    pub x_key: Option<String>,
    /// Tensors: the targets' array name [default: y]
    #[arg(long, value_name = "KEY", help_heading = "Data")]
    pub y_key: Option<String>,
    /// Image folders: resize every image to HxW [default: the first image's size]
    #[arg(long, value_name = "HxW", help_heading = "Data")]
    pub image_size: Option<String>,
    /// Image folders: 1 (grey) or 3 (RGB) channels [default: 1 when every image is grey, else 3]
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub channels: Option<usize>,
    /// Fraction of the training data held out for validation (what --val-loss, early stopping, the
    /// best checkpoint and ReduceLROnPlateau use); 0 for none [default: 0.1]
    #[arg(
        long,
        value_name = "F",
        help_heading = "Data",
        allow_hyphen_values = true
    )]
    pub val_split: Option<f64>,
    /// Fraction of the training data held out as a test split (only evaluated, never used to
    /// choose anything), for data whose files have none
    #[arg(
        long,
        value_name = "F",
        help_heading = "Data",
        allow_hyphen_values = true
    )]
    pub test_split: Option<f64>,
    /// Seed of the train/validation/test split (kept apart from --seed, so runs over seeds share
    /// one validation set) [default: 0]
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub split_seed: Option<u64>,
    /// Leave table features as they are (by default they are standardised with the training
    /// split's mean and standard deviation)
    #[arg(long, help_heading = "Data")]
    pub no_standardize: bool,
    /// Model: a preset (mlp, linear, cnn, lenet) or a layer list in PyTorch's words, sizes
    /// inferred, e.g. 'Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Flatten, Linear(128), ReLU,
    /// Dropout(0.25), Linear' (the last Linear gets the number of classes) [default: mlp]
    #[arg(
        long,
        value_name = "PRESET|LAYERS",
        help_heading = "Model",
        conflicts_with = "model_file",
        value_parser = offer(MODEL_NAMES),
        hide_possible_values = true
    )]
    pub model: Option<String>,
    /// The model as JSON: an array of layers ({"type": "Conv2d", "out_channels": 32, "kernel_size": 3}, …)
    #[arg(long, value_name = "FILE", help_heading = "Model")]
    pub model_file: Option<PathBuf>,
    /// Start from these weights (safetensors; names as PyTorch's nn.Sequential state_dict: 0.weight, …)
    #[arg(long, value_name = "FILE", help_heading = "Model")]
    pub init_from: Option<PathBuf>,
    /// Loss: cross-entropy, bce (two classes, one logit), mse, l1, huber [default: cross-entropy
    /// for classes, mse for values]
    #[arg(
        long,
        value_name = "LOSS",
        help_heading = "Model",
        value_parser = offer(LOSS_NAMES),
        hide_possible_values = true
    )]
    pub loss: Option<String>,
    /// Cross-entropy label smoothing, in [0, 1) [default: 0]
    #[arg(
        long,
        value_name = "F",
        help_heading = "Model",
        allow_hyphen_values = true
    )]
    pub label_smoothing: Option<f64>,
    /// Huber loss: where quadratic turns linear [default: 1]
    #[arg(
        long,
        value_name = "D",
        help_heading = "Model",
        allow_hyphen_values = true
    )]
    pub huber_delta: Option<f64>,
    /// Hidden layer widths of the MLP [default: 256,128]
    #[arg(long, value_name = "W,W,…", help_heading = "Model")]
    pub hidden: Option<String>,
    /// Optimizer: sgd, adam, adamw [default: adam]
    #[arg(
        long,
        value_name = "KIND",
        help_heading = "Optimizer",
        value_parser = offer(OPTIMIZER_NAMES),
        hide_possible_values = true
    )]
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
    /// Param groups for fine-tuning: comma-separated PATTERN=MULTIPLIER, globs on the parameter
    /// names (0.weight, 3.bias, …), first match wins, each group at MULTIPLIER × the LR (0
    /// freezes it), e.g. '[0-3].*=0.1, *=1'; the range test sweeps the LR with the ratios fixed
    #[arg(long, value_name = "GROUPS", help_heading = "Optimizer")]
    pub param_groups: Option<String>,
    /// Freeze the parameters matching PATTERN (a glob; repeatable): no update, no optimizer
    /// state, no gradient computed
    #[arg(long, value_name = "PATTERN", help_heading = "Optimizer")]
    pub freeze: Vec<String>,
    /// No weight decay for biases and normalisation weights
    #[arg(long, help_heading = "Optimizer")]
    pub no_decay_norm_bias: bool,
    /// Seed of the initial weights and the data order [default: 0]
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub seed: Option<u64>,
    /// Batch size [default: 64]
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub batch_size: Option<usize>,
    /// Device: auto, cpu, cuda[:N], metal[:N] [default: auto]
    #[arg(
        long,
        value_name = "DEV",
        help_heading = "Run",
        value_parser = offer(DEVICE_NAMES),
        hide_possible_values = true
    )]
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
            _ if self.model_file.is_some() => {
                if self.hidden.is_some() {
                    return Err(invalid(
                        "--hidden: the model comes from --model-file, which has no hidden widths to set",
                    ));
                }
                let path = self
                    .model_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                ModelConfig::from_file(path)?
            }
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
            data: self.data_config(base.map(|b| &b.data))?,
            model,
            optimizer: self.optimizer(base.map(|b| &b.optimizer))?,
            seed: self.seed.or(base.map(|b| b.seed)).unwrap_or(0),
            batch_size: self.batch_size.or(base.map(|b| b.batch_size)).unwrap_or(64),
            loss: self.loss_config(base.and_then(|b| b.loss))?,
            init_from: self
                .init_from
                .as_deref()
                .map(absolute)
                .or_else(|| base.and_then(|b| b.init_from.clone())),
            param_groups: self.param_groups(base.and_then(|b| b.param_groups.as_ref()))?,
        })
    }

    /// `--param-groups`, `--freeze` and `--no-decay-norm-bias` over the report's groups (kept
    /// as they are when none is given). Frozen patterns go first: they win over the groups.
    fn param_groups(&self, base: Option<&GroupConfig>) -> Result<Option<GroupConfig>> {
        let mut cfg = match &self.param_groups {
            Some(spec) => GroupConfig::parse(spec)?,
            None => base.cloned().unwrap_or_default(),
        };
        if !self.freeze.is_empty() {
            let mut rules = GroupConfig::new();
            for p in &self.freeze {
                rules = rules.freeze(p.trim());
            }
            if cfg.rules.is_empty() {
                rules = rules.group("*", 1.0);
            }
            rules.rules.extend(cfg.rules);
            cfg.rules = rules.rules;
        }
        cfg.no_decay_norm_bias |= self.no_decay_norm_bias;
        cfg.validate()?;
        Ok((!cfg.is_empty()).then_some(cfg))
    }

    /// `--loss` with its settings, over the report's loss; None leaves it to the task.
    fn loss_config(&self, base: Option<LossConfig>) -> Result<Option<LossConfig>> {
        let (smoothing, delta) = (self.label_smoothing, self.huber_delta);
        let name = match (&self.loss, base) {
            (Some(name), _) => name.clone(),
            (None, Some(b)) if smoothing.is_none() && delta.is_none() => return Ok(Some(b)),
            (None, Some(b)) => b.name().to_string(),
            (None, None) if smoothing.is_some() => "cross-entropy".into(),
            (None, None) if delta.is_some() => "huber".into(),
            (None, None) => return Ok(None),
        };
        Ok(Some(LossConfig::parse(&name, smoothing, delta)?))
    }

    /// The `--data` source, with its path absolute.
    pub fn source(&self) -> Result<Option<Source>> {
        Ok(match self.data.as_deref() {
            Some(s) => Some(
                DataConfig::new(Source::parse(s)?)
                    .with_absolute_paths()
                    .source,
            ),
            None => None,
        })
    }

    /// The data settings from these flags over `base` (a report's) or the defaults. Paths are
    /// stored absolute: a report or run read from another directory must still find them.
    fn data_config(&self, base: Option<&DataConfig>) -> Result<DataConfig> {
        let mut c = match (self.source()?, base) {
            (None, Some(b)) => b.clone(),
            (Some(s), Some(b)) if s == b.source => b.clone(),
            (Some(s), _) => DataConfig::new(s),
            (None, None) => DataConfig::default(),
        };
        let list = |s: &str| s.split(',').map(|c| c.trim().to_string()).collect();
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(absolute(d));
        }
        if let Some(t) = &self.target {
            c.target = list(t);
        }
        if let Some(f) = &self.features {
            c.features = list(f);
        }
        if let Some(t) = &self.task {
            c.task = Some(t.parse()?);
        }
        if let Some(k) = &self.x_key {
            c.x_key = Some(k.clone());
        }
        if let Some(k) = &self.y_key {
            c.y_key = Some(k.clone());
        }
        if let Some(s) = &self.image_size {
            c.image_size = Some(s.parse()?);
        }
        if let Some(n) = self.channels {
            c.channels = Some(n);
        }
        if let Some(v) = self.val_split {
            c.val_split = v;
        }
        if let Some(t) = self.test_split {
            c.test_split = Some(t);
        }
        if let Some(s) = self.split_seed {
            c.split_seed = s;
        }
        if self.no_standardize {
            c.standardize = false;
        }
        c.validate()?;
        Ok(c.with_absolute_paths())
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
        default_value_t = DEFAULT_MAX_LR,
        help_heading = "Sweep",
        allow_hyphen_values = true
    )]
    pub max_lr: f64,
    /// How the LR rises: exp (geometric) or linear
    #[arg(
        long,
        value_name = "MODE",
        default_value = "exp",
        help_heading = "Sweep",
        value_parser = offer_parsed::<LadderMode>(MODE_NAMES),
        hide_possible_values = true
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
    /// Score each step on a fixed subset of the validation split (N samples spread over it) instead of its training batch
    #[arg(long, help_heading = "Sweep")]
    pub val_loss: bool,
    /// Validation samples used by --val-loss
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
        help_heading = "Suggestion",
        value_parser = offer_parsed::<Rule>(RULE_NAMES),
        hide_possible_values = true
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
    /// Verify the suggestion: after the sweep, short training trials from the same weights
    /// and batches at LRs around it (x1/3, x1, x3 and the closest other rule's suggestion),
    /// each scored by validation loss; the verified LR is the trial a notch below the best
    /// (a full run does best a little below a short trial's best)
    #[arg(long, help_heading = "Verification")]
    pub verify: bool,
    /// Optimizer steps per verification trial
    #[arg(
        long,
        value_name = "N",
        default_value_t = lrfind::finder::verify::DEFAULT_STEPS,
        help_heading = "Verification"
    )]
    pub verify_steps: usize,
}

/// `--min` and `--max` when not given (also in their `#[arg]`s).
const DEFAULT_MIN_LR: f64 = 1e-7;
const DEFAULT_MAX_LR: f64 = 10.0;

impl SweepArgs {
    /// The verification asked for (None without --verify).
    pub fn verify_config(&self) -> Option<VerifyConfig> {
        self.verify.then(|| VerifyConfig {
            steps: self.verify_steps,
            ..VerifyConfig::default()
        })
    }

    /// `--min` ≥ `--max`, blamed on the flag the user typed (a flag at its default value
    /// counts as not typed), with both values as typed.
    fn range_error(&self) -> Option<String> {
        let (min, max) = (self.min_lr, self.max_lr);
        if !(min.is_finite() && max.is_finite() && min > 0.0 && max > 0.0) || min < max {
            return None;
        }
        let (n, x) = (out::num(min), out::num(max));
        Some(match (min != DEFAULT_MIN_LR, max != DEFAULT_MAX_LR) {
            (false, true) => format!(
                "--max {x}: must be above --min ({n}, its default); pass a lower --min too, e.g. --min {}",
                out::num_times_pow10(max, -3)
            ),
            (true, false) => format!(
                "--min {n}: must be below --max ({x}, its default); pass a higher --max too, e.g. --max {}",
                out::num_times_pow10(min, 3)
            ),
            _ => format!("--min {n}: must be below --max ({x})"),
        })
    }

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
            verify: self.verify_config(),
        };
        if self.val_loss && self.val_samples == 0 {
            return Err(invalid("--val-samples 0: must be at least 1"));
        }
        if let Some(e) = self.range_error() {
            return Err(invalid(e));
        }
        rt.validate()?;
        Ok(rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_names_are_the_ones_the_library_takes() {
        let mut rules: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        let mut offered = RULE_NAMES.to_vec();
        rules.sort();
        offered.sort();
        assert_eq!(rules, offered);
        for m in MODE_NAMES {
            m.parse::<LadderMode>().unwrap();
        }
        for m in MODEL_NAMES {
            ModelConfig::parse(m, "8").unwrap();
        }
        for o in OPTIMIZER_NAMES {
            OptimizerConfig::from_parts(o, 0.0, false, None, (0.9, 0.999), 1e-8).unwrap();
        }
        for d in DEVICE_NAMES {
            d.parse::<DeviceSpec>().unwrap();
        }
        for l in LOSS_NAMES {
            LossConfig::parse(l, None, None).unwrap();
        }
        for d in DATA_NAMES {
            Source::parse(d).unwrap();
        }
    }
}
