//! Losses and metrics, with PyTorch's definitions (`nn.CrossEntropyLoss`,
//! `nn.BCEWithLogitsLoss`, `nn.MSELoss`, `nn.L1Loss`, `nn.HuberLoss`, mean reduction).
//!
//! A loss gives its value and its gradient with respect to the model's outputs in closed
//! form, from candle ops (so on any device): the model back-propagates that gradient, and
//! nothing here builds an autograd graph.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::Task;
use crate::error::{Error, Result, Scope};

/// Which loss, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LossConfig {
    /// Softmax cross-entropy over one output per class (`nn.CrossEntropyLoss`).
    CrossEntropy {
        /// Weight moved from the true class to a uniform distribution over all classes,
        /// in [0, 1).
        #[serde(default)]
        label_smoothing: f64,
    },
    /// Binary cross-entropy on one logit (`nn.BCEWithLogitsLoss`); two classes only, the
    /// second is the positive one.
    Bce,
    /// Mean squared error (`nn.MSELoss`).
    Mse,
    /// Mean absolute error (`nn.L1Loss`).
    L1,
    /// Huber loss (`nn.HuberLoss`): quadratic within `delta` of the target, linear beyond.
    Huber {
        /// Where quadratic turns linear (> 0; PyTorch's default 1).
        delta: f64,
    },
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig::CrossEntropy {
            label_smoothing: 0.0,
        }
    }
}

/// The names [`LossConfig::parse`] accepts.
pub const LOSS_NAMES: &str = "cross-entropy, bce, mse, l1, huber";

impl LossConfig {
    /// PyTorch's usual choice for the task: cross-entropy for classes, MSE for values.
    pub fn default_for(task: &Task) -> Self {
        match task {
            Task::Classify { .. } => LossConfig::default(),
            Task::Regress { .. } => LossConfig::Mse,
        }
    }

    /// From a name (`cross-entropy`, `bce`, `mse`, `l1`, `huber`), the label smoothing (for
    /// cross-entropy only) and Huber's delta (for Huber only; default 1).
    pub fn parse(name: &str, label_smoothing: Option<f64>, delta: Option<f64>) -> Result<Self> {
        let norm = name.to_ascii_lowercase().replace('_', "-");
        let cfg = match norm.as_str() {
            "cross-entropy" | "crossentropy" | "ce" => LossConfig::CrossEntropy {
                label_smoothing: label_smoothing.unwrap_or(0.0),
            },
            "bce" | "binary-cross-entropy" => LossConfig::Bce,
            "mse" => LossConfig::Mse,
            "l1" | "mae" => LossConfig::L1,
            "huber" => LossConfig::Huber {
                delta: delta.unwrap_or(1.0),
            },
            _ => {
                return Err(Error::setting(
                    Scope::Loss,
                    "loss",
                    name,
                    format!("unknown loss (allowed: {LOSS_NAMES})"),
                ))
            }
        };
        if let Some(s) = label_smoothing {
            if !matches!(cfg, LossConfig::CrossEntropy { .. }) {
                return Err(Error::setting(
                    Scope::Loss,
                    "label_smoothing",
                    s,
                    "applies to the cross-entropy loss only",
                ));
            }
        }
        if let Some(d) = delta {
            if !matches!(cfg, LossConfig::Huber { .. }) {
                return Err(Error::setting(
                    Scope::Loss,
                    "delta",
                    d,
                    "applies to the huber loss only",
                ));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The name [`LossConfig::parse`] reads.
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::CrossEntropy { .. } => "cross-entropy",
            LossConfig::Bce => "bce",
            LossConfig::Mse => "mse",
            LossConfig::L1 => "l1",
            LossConfig::Huber { .. } => "huber",
        }
    }

    /// Checks the settings on their own.
    pub fn validate(&self) -> Result<()> {
        match *self {
            LossConfig::CrossEntropy { label_smoothing }
                if !(0.0..1.0).contains(&label_smoothing) =>
            {
                Err(Error::setting(
                    Scope::Loss,
                    "label_smoothing",
                    label_smoothing,
                    "must be in [0, 1)",
                ))
            }
            LossConfig::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                Err(Error::setting(
                    Scope::Loss,
                    "delta",
                    delta,
                    "must be a positive finite number",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether this loss fits the task: class losses for classes (BCE for two classes only),
    /// value losses for regression.
    pub fn check_task(&self, task: &Task) -> Result<()> {
        match (self, task) {
            (LossConfig::CrossEntropy { .. }, Task::Classify { .. }) => Ok(()),
            (LossConfig::Bce, Task::Classify { classes }) if classes.len() == 2 => Ok(()),
            (LossConfig::Bce, Task::Classify { classes }) => Err(Error::setting(
                Scope::Loss,
                "loss",
                "bce",
                format!(
                    "binary cross-entropy needs exactly 2 classes, the data has {} (use cross-entropy)",
                    classes.len()
                ),
            )),
            (LossConfig::Mse | LossConfig::L1 | LossConfig::Huber { .. }, Task::Regress { .. }) => {
                Ok(())
            }
            (_, Task::Classify { .. }) => Err(Error::setting(
                Scope::Loss,
                "loss",
                self.name(),
                "is a regression loss but the target is classes (allowed here: cross-entropy, bce; or regress on the target)",
            )),
            (_, Task::Regress { .. }) => Err(Error::setting(
                Scope::Loss,
                "loss",
                self.name(),
                "is a classification loss but the target is values (allowed here: mse, l1, huber; or classify the target)",
            )),
        }
    }

    /// Outputs the model needs: one per class, one logit for BCE, one per target column.
    pub fn outputs(&self, task: &Task) -> usize {
        match self {
            LossConfig::Bce => 1,
            _ => task.outputs(),
        }
    }

    /// The loss of `out` (the model's outputs, `(B, k)`) against `y` (u32 classes `(B,)` or
    /// f32 values `(B, k)`): the per-sample losses summed and divided by `denom` (the batch
    /// size, or the whole batch's size for a shard of it, so shards add up), and its gradient
    /// with respect to `out`.
    pub fn value_and_grad(&self, out: &Tensor, y: &Tensor, denom: usize) -> Result<(f64, Tensor)> {
        let d = denom.max(1) as f64;
        match *self {
            LossConfig::CrossEntropy { label_smoothing: e } => {
                let classes = out.dim(1)?;
                let lsm = candle_nn::ops::log_softmax(out, D::Minus1)?;
                let onehot = one_hot(y, classes)?;
                // Target distribution (1-e)·onehot + e/C: PyTorch's label smoothing.
                let target = if e > 0.0 {
                    onehot.affine(1.0 - e, e / classes as f64)?
                } else {
                    onehot
                };
                let loss = (lsm.mul(&target)?.sum_all()?.to_dtype(DType::F64)? * (-1.0 / d))?;
                let grad = ((lsm.exp()? - target)? * (1.0 / d))?;
                Ok((loss.to_scalar::<f64>()?, grad))
            }
            LossConfig::Bce => {
                let t = y.to_dtype(DType::F32)?.reshape(out.shape())?;
                // max(z, 0) - z·t + log(1 + e^-|z|): stable for any z.
                let l =
                    ((out.relu()? - out.mul(&t)?)? + (out.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                let loss = l.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? / d;
                let grad = ((candle_nn::ops::sigmoid(out)? - t)? * (1.0 / d))?;
                Ok((loss, grad))
            }
            LossConfig::Mse | LossConfig::L1 | LossConfig::Huber { .. } => {
                let t = y.reshape(out.shape())?;
                let n = d * out.dim(1)? as f64; // mean over every value, as PyTorch
                let diff = (out - t)?;
                let (l, g) = match *self {
                    LossConfig::Mse => (diff.sqr()?, (&diff * 2.0)?),
                    LossConfig::L1 => (diff.abs()?, diff.sign()?),
                    LossConfig::Huber { delta } => {
                        let a = diff.abs()?;
                        let inside = a.le(delta)?;
                        let quad = (diff.sqr()? * 0.5)?;
                        let lin = ((&a - 0.5 * delta)? * delta)?;
                        let clipped = diff.clamp(-delta, delta)?;
                        (inside.where_cond(&quad, &lin)?, clipped)
                    }
                    _ => unreachable!("matched above"),
                };
                let loss = l.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? / n;
                Ok((loss, (g * (1.0 / n))?))
            }
        }
    }

    /// Sums for the metrics of one batch: the loss summed over samples, and correct
    /// predictions (classes) or error sums (values).
    pub fn score(&self, out: &Tensor, y: &Tensor) -> Result<Scores> {
        let n = out.dim(0)?;
        let (loss, _) = self.value_and_grad(out, y, 1)?;
        let mut s = Scores {
            samples: n,
            loss_sum: loss,
            ..Scores::default()
        };
        match self {
            LossConfig::CrossEntropy { .. } => {
                s.correct = count(&out.argmax(D::Minus1)?.eq(y)?)?;
            }
            LossConfig::Bce => {
                let pred = out.gt(0f32)?.squeeze(1)?.to_dtype(DType::U32)?;
                s.correct = count(&pred.eq(y)?)?;
            }
            _ => {
                let diff = (out - y.reshape(out.shape())?)?.to_dtype(DType::F64)?;
                s.values = diff.elem_count();
                s.abs_sum = diff.abs()?.sum_all()?.to_scalar::<f64>()?;
                s.sq_sum = diff.sqr()?.sum_all()?.to_scalar::<f64>()?;
            }
        }
        Ok(s)
    }

    /// Whether the loss is for classes (so accuracy is its metric).
    pub fn is_classification(&self) -> bool {
        matches!(self, LossConfig::CrossEntropy { .. } | LossConfig::Bce)
    }
}

/// The `(B, classes)` one-hot of class indices `y`, written by indexing the targets (a
/// scatter of B ones): memory grows with the batch's logits, never with classes², and the
/// values are those of the identity's rows, so losses and gradients are unchanged bit for bit.
fn one_hot(y: &Tensor, classes: usize) -> Result<Tensor> {
    let b = y.dim(0)?;
    let idx = y.to_dtype(DType::U32)?.reshape((b, 1))?;
    let ones = Tensor::ones((b, 1), DType::F32, y.device())?;
    let zeros = Tensor::zeros((b, classes), DType::F32, y.device())?;
    Ok(zeros.scatter_add(&idx, &ones, 1)?)
}

fn count(mask: &Tensor) -> Result<u64> {
    Ok(mask.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as u64)
}

/// Running sums over batches, turned into [`Metrics`] at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Samples seen.
    pub samples: usize,
    /// The loss summed over samples (mean loss × samples).
    pub loss_sum: f64,
    /// Correct class predictions.
    pub correct: u64,
    /// Target values seen (samples × columns), for regression.
    pub values: usize,
    /// Sum of absolute errors (regression).
    pub abs_sum: f64,
    /// Sum of squared errors (regression).
    pub sq_sum: f64,
}

impl std::ops::AddAssign for Scores {
    fn add_assign(&mut self, o: Scores) {
        self.samples += o.samples;
        self.loss_sum += o.loss_sum;
        self.correct += o.correct;
        self.values += o.values;
        self.abs_sum += o.abs_sum;
        self.sq_sum += o.sq_sum;
    }
}

/// Loss and metrics over a split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss per sample.
    pub loss: f64,
    /// Fraction of correct predictions (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Root mean squared error over every target value (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Mean absolute error over every target value (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
}

impl Scores {
    /// The metrics these sums give, for a loss of `kind`.
    pub fn metrics(&self, kind: &LossConfig) -> Metrics {
        let n = self.samples.max(1) as f64;
        let v = self.values.max(1) as f64;
        let regress = !kind.is_classification();
        Metrics {
            loss: self.loss_sum / n,
            accuracy: (!regress).then(|| self.correct as f64 / n),
            rmse: regress.then(|| (self.sq_sum / v).sqrt()),
            mae: regress.then(|| self.abs_sum / v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn dev() -> Device {
        Device::Cpu
    }

    #[test]
    fn the_one_hot_is_the_identity_rows_without_the_identity() {
        let y = Tensor::new(&[2u32, 0, 4, 2], &dev()).unwrap();
        let got = one_hot(&y, 5).unwrap();
        let eye = Tensor::eye(5, DType::F32, &dev())
            .unwrap()
            .index_select(&y, 0)
            .unwrap();
        assert_eq!(got.dims(), [4, 5]);
        assert_eq!(got.to_vec2::<f32>().unwrap(), eye.to_vec2::<f32>().unwrap());
        // 100,000 classes: a batch's rows only (an identity would be 40 GB).
        let y = Tensor::new(&[99_999u32, 7], &dev()).unwrap();
        let got = one_hot(&y, 100_000).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!((got[0][99_999], got[1][7]), (1.0, 1.0));
        assert_eq!(got.iter().flatten().sum::<f32>(), 2.0);
    }

    fn logits() -> Tensor {
        Tensor::new(&[[1.0f32, -2.0, 0.5], [0.0, 3.0, -1.0]], &dev()).unwrap()
    }

    /// The gradient against candle autograd on the same loss written with candle ops.
    fn check_grad(
        cfg: LossConfig,
        out: &Tensor,
        y: &Tensor,
        reference: impl Fn(&Tensor) -> Tensor,
    ) {
        let v = Var::from_tensor(out).unwrap();
        let l = reference(v.as_tensor());
        let g = l.backward().unwrap();
        let want = g.get(&v).unwrap();
        let (value, grad) = cfg.value_and_grad(out, y, out.dim(0).unwrap()).unwrap();
        let lv = l.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (value - lv).abs() < 1e-5 * lv.abs().max(1.0),
            "{cfg:?}: {value} vs {lv}"
        );
        let diff = (grad - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6, "{cfg:?}");
    }

    #[test]
    fn cross_entropy_matches_pytorch_with_and_without_smoothing() {
        let y = Tensor::new(&[2u32, 1], &dev()).unwrap();
        // torch.nn.functional.cross_entropy(torch.tensor([[1,-2,.5],[0,3,-1]]), torch.tensor([2,1]))
        // = 0.5602…: -(log_softmax[0][2] + log_softmax[1][1]) / 2, by hand:
        let lse0 = (1f64.exp() + (-2f64).exp() + 0.5f64.exp()).ln();
        let lse1 = (1f64 + 3f64.exp() + (-1f64).exp()).ln();
        let want = ((lse0 - 0.5) + (lse1 - 3.0)) / 2.0;
        let (v, _) = LossConfig::default()
            .value_and_grad(&logits(), &y, 2)
            .unwrap();
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
        // Smoothing 0.1: (1-0.1)·nll + 0.1·mean_c(-log p_c), per sample, then the mean.
        let e = 0.1;
        let mean_nll0 = (3.0 * lse0 - (1.0 - 2.0 + 0.5)) / 3.0;
        let mean_nll1 = (3.0 * lse1 - (0.0 + 3.0 - 1.0)) / 3.0;
        let want = ((1.0 - e) * ((lse0 - 0.5) + (lse1 - 3.0)) + e * (mean_nll0 + mean_nll1)) / 2.0;
        let cfg = LossConfig::CrossEntropy { label_smoothing: e };
        let (v, _) = cfg.value_and_grad(&logits(), &y, 2).unwrap();
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
        for cfg in [LossConfig::default(), cfg] {
            check_grad(cfg, &logits(), &y, |o| {
                let lsm = candle_nn::ops::log_softmax(o, 1).unwrap();
                let e = match cfg {
                    LossConfig::CrossEntropy { label_smoothing } => label_smoothing,
                    _ => 0.0,
                };
                let t = one_hot(&y, 3).unwrap().affine(1.0 - e, e / 3.0).unwrap();
                (lsm.mul(&t).unwrap().sum_all().unwrap() * -0.5).unwrap()
            });
        }
    }

    #[test]
    fn bce_is_stable_and_matches_the_formula() {
        let out = Tensor::new(&[[2.0f32], [-1.0], [40.0], [-40.0]], &dev()).unwrap();
        let y = Tensor::new(&[1u32, 1, 0, 0], &dev()).unwrap();
        // -log σ(2), -log σ(-1), -log(1-σ(40)) = 40 (+tiny), -log(1-σ(-40)) ≈ 0.
        let sp = |z: f64| (1.0 + (-z).exp()).ln();
        let want = (sp(2.0) + sp(-1.0) + 40.0 + sp(40.0)) / 4.0;
        let (v, _) = LossConfig::Bce.value_and_grad(&out, &y, 4).unwrap();
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
        // The gradient on moderate logits, against autograd through the naive formula
        // (which is -inf in f32 at 40: the reason for the stable form).
        let out = Tensor::new(&[[2.0f32], [-1.0], [0.3]], &dev()).unwrap();
        let y = Tensor::new(&[1u32, 0, 1], &dev()).unwrap();
        let t = y.to_dtype(DType::F32).unwrap().reshape((3, 1)).unwrap();
        check_grad(LossConfig::Bce, &out, &y, |o| {
            let p = candle_nn::ops::sigmoid(o).unwrap();
            let q = (p.ones_like().unwrap() - &p).unwrap();
            let l = ((&t * p.log().unwrap()).unwrap()
                + ((t.ones_like().unwrap() - &t).unwrap() * q.log().unwrap()).unwrap())
            .unwrap();
            (l.sum_all().unwrap() * (-1.0 / 3.0)).unwrap()
        });
    }

    #[test]
    fn regression_losses_match_pytorch_means() {
        let out = Tensor::new(&[[1.0f32, 0.25], [3.0, -2.0]], &dev()).unwrap();
        let y = Tensor::new(&[[0.5f32, 0.0], [0.0, 0.0]], &dev()).unwrap();
        // Differences 0.5, 0.25, 3, -2 over 4 values.
        let cases = [
            (LossConfig::Mse, (0.25 + 0.0625 + 9.0 + 4.0) / 4.0),
            (LossConfig::L1, (0.5 + 0.25 + 3.0 + 2.0) / 4.0),
            // delta 1: 0.5·0.25, 0.5·0.0625, 1·(3-0.5), 1·(2-0.5)
            (
                LossConfig::Huber { delta: 1.0 },
                (0.125 + 0.03125 + 2.5 + 1.5) / 4.0,
            ),
        ];
        for (cfg, want) in cases {
            let (v, _) = cfg.value_and_grad(&out, &y, 2).unwrap();
            assert!((v - want).abs() < 1e-6, "{cfg:?}: {v} vs {want}");
            check_grad(cfg, &out, &y, |o| {
                let d = (o - &y).unwrap();
                let l = match cfg {
                    LossConfig::Mse => d.sqr().unwrap(),
                    LossConfig::L1 => d.abs().unwrap(),
                    _ => {
                        let a = d.abs().unwrap();
                        let m = a.le(1.0).unwrap();
                        m.where_cond(&(d.sqr().unwrap() * 0.5).unwrap(), &(a - 0.5).unwrap())
                            .unwrap()
                    }
                };
                (l.sum_all().unwrap() * 0.25).unwrap()
            });
        }
        // PyTorch's L1 gradient at a zero difference is sign(0) = 0.
        let (_, g) = LossConfig::L1.value_and_grad(&y, &y, 2).unwrap();
        assert_eq!(
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    #[test]
    fn metrics_from_scores() {
        let y = Tensor::new(&[2u32, 0], &dev()).unwrap();
        let cfg = LossConfig::default();
        let s = cfg.score(&logits(), &y).unwrap();
        assert_eq!((s.samples, s.correct), (2, 0));
        let y = Tensor::new(&[0u32, 1], &dev()).unwrap();
        let mut s = cfg.score(&logits(), &y).unwrap();
        s += cfg
            .score(&logits(), &Tensor::new(&[0u32, 0], &dev()).unwrap())
            .unwrap();
        let m = s.metrics(&cfg);
        assert_eq!(m.accuracy, Some(3.0 / 4.0));
        assert_eq!((m.rmse, m.mae), (None, None));
        let out = Tensor::new(&[[1.0f32], [4.0]], &dev()).unwrap();
        let t = Tensor::new(&[[0.0f32], [0.0]], &dev()).unwrap();
        let m = LossConfig::Mse
            .score(&out, &t)
            .unwrap()
            .metrics(&LossConfig::Mse);
        assert_eq!(m.rmse, Some((17.0f64 / 2.0).sqrt()));
        assert_eq!(m.mae, Some(2.5));
        assert_eq!(m.loss, 8.5);
        assert_eq!(m.accuracy, None);
        let bce = LossConfig::Bce;
        let out = Tensor::new(&[[2.0f32], [-1.0], [0.5]], &dev()).unwrap();
        let y = Tensor::new(&[1u32, 1, 0], &dev()).unwrap();
        assert_eq!(bce.score(&out, &y).unwrap().correct, 1);
    }

    #[test]
    fn names_settings_and_tasks_are_checked() {
        let classes = Task::Classify {
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let values = Task::Regress {
            targets: vec!["price".into()],
        };
        assert_eq!(LossConfig::default_for(&classes), LossConfig::default());
        assert_eq!(LossConfig::default_for(&values), LossConfig::Mse);
        assert_eq!(
            LossConfig::parse("Huber", None, Some(2.0)).unwrap(),
            LossConfig::Huber { delta: 2.0 }
        );
        assert_eq!(
            LossConfig::parse("hinge", None, None)
                .unwrap_err()
                .to_string(),
            format!("loss = hinge: unknown loss (allowed: {LOSS_NAMES})")
        );
        assert!(LossConfig::parse("cross-entropy", Some(1.0), None)
            .unwrap_err()
            .to_string()
            .starts_with("label_smoothing = 1: must be in [0, 1)"));
        assert!(LossConfig::parse("mse", Some(0.1), None).is_err());
        assert!(LossConfig::parse("huber", None, Some(0.0)).is_err());
        let e = LossConfig::Bce
            .check_task(&classes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly 2 classes, the data has 3"), "{e}");
        assert!(LossConfig::Mse.check_task(&classes).is_err());
        assert!(LossConfig::default().check_task(&values).is_err());
        assert!(LossConfig::L1.check_task(&values).is_ok());
        assert_eq!(LossConfig::Bce.outputs(&classes), 1);
        assert_eq!(LossConfig::Mse.outputs(&values), 1);
        let json = serde_json::to_string(&LossConfig::Huber { delta: 0.5 }).unwrap();
        assert_eq!(json, r#"{"kind":"huber","delta":0.5}"#);
        assert_eq!(
            serde_json::from_str::<LossConfig>(r#"{"kind":"cross-entropy"}"#).unwrap(),
            LossConfig::default()
        );
    }
}
