//! The candle side of a run: one model, its optimizer and the data on the device.
//! The range test drives it through [`TrainStep`]; the trainer through epochs.

use candle_core::Tensor;

use crate::data::batches::BatchOrder;
use crate::data::{Batch, DeviceData};
use crate::error::{Error, Result};
use crate::finder::{Checkpoint, TrainStep};
use crate::model::Model;
use crate::optim::AnyOptimizer;

/// How each range-test step is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepLoss {
    /// The loss of the training batch the step used (Smith's original, cheapest).
    TrainBatch,
    /// The loss on a fixed held-out subset after the step (less noisy, one forward more).
    Validation { samples: usize },
}

pub struct Learner {
    pub model: Model,
    pub optimizer: AnyOptimizer,
    pub data: DeviceData,
    order: BatchOrder,
    batch_size: usize,
    accumulate: usize,
    val: Option<Batch>,
}

/// Everything a range test changes, to put back afterwards.
#[derive(Debug, Clone)]
pub struct LearnerState {
    weights: Vec<Tensor>,
    optimizer: AnyOptimizer,
    order: BatchOrder,
}

/// Mean cross-entropy of `logits` against class indices `y`.
pub fn loss(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(logits, y)?)
}

impl Learner {
    pub fn new(
        model: Model,
        optimizer: AnyOptimizer,
        data: DeviceData,
        batch_size: usize,
        accumulate: usize,
        step_loss: StepLoss,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid("--batch-size 0: must be at least 1"));
        }
        if accumulate == 0 {
            return Err(Error::invalid("--accumulate 0: must be at least 1"));
        }
        let n = data.train_len();
        if batch_size > n {
            return Err(Error::invalid(format!(
                "--batch-size {batch_size}: larger than the {n} training images"
            )));
        }
        let val = match step_loss {
            StepLoss::TrainBatch => None,
            StepLoss::Validation { samples } => {
                let k = samples.min(data.test_len());
                if k == 0 {
                    return Err(Error::invalid("--val-loss: the test split is empty"));
                }
                Some(data.test_range(0, k)?)
            }
        };
        Ok(Self {
            order: BatchOrder::new(n, batch_size, seed),
            model,
            optimizer,
            data,
            batch_size,
            accumulate,
            val,
        })
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// One optimizer step on the given micro-batches (gradients averaged over them).
    pub fn step_on(&mut self, batches: &[Batch], lr: f64) -> Result<f64> {
        self.optimizer.set_learning_rate(lr);
        let mut total: Option<Tensor> = None;
        for b in batches {
            let l = loss(&self.model.forward(&b.x)?, &b.y)?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        let total = total.ok_or_else(|| Error::invalid("a step needs at least one batch"))?;
        let mean = (total / batches.len() as f64)?;
        let grads = mean.backward()?;
        self.optimizer.step(&grads)?;
        Ok(mean.to_scalar::<f32>()? as f64)
    }

    /// Mean loss and accuracy over a split's first `n` test images, in batches.
    pub fn evaluate(&self, n: usize, batch: usize) -> Result<(f64, f64)> {
        let n = n.min(self.data.test_len());
        let (mut loss_sum, mut correct) = (0.0f64, 0u64);
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let b = self.data.test_range(start, len)?;
            let (l, c) = self.score(&b)?;
            loss_sum += l * len as f64;
            correct += c;
            start += len;
        }
        Ok((loss_sum / n.max(1) as f64, correct as f64 / n.max(1) as f64))
    }

    /// (mean loss, number correct) on one batch, without keeping a graph.
    pub fn score(&self, b: &Batch) -> Result<(f64, u64)> {
        let logits = self.model.forward(&b.x)?.detach();
        let l = loss(&logits, &b.y)?.to_scalar::<f32>()? as f64;
        let pred = logits.argmax(1)?;
        let c = pred.eq(&b.y)?.to_dtype(candle_core::DType::U32)?.sum_all()?.to_scalar::<u32>()?;
        Ok((l, c as u64))
    }
}

impl TrainStep for Learner {
    fn train_step(&mut self, lr: f64) -> Result<f64> {
        let mut batches = Vec::with_capacity(self.accumulate);
        for _ in 0..self.accumulate {
            let idx = self.order.next_batch().to_vec();
            batches.push(self.data.train_batch(&idx)?);
        }
        let train_loss = self.step_on(&batches, lr)?;
        match &self.val {
            None => Ok(train_loss),
            Some(v) => Ok(self.score(v)?.0),
        }
    }
}

impl Checkpoint for Learner {
    type State = LearnerState;

    fn save_state(&self) -> Result<LearnerState> {
        Ok(LearnerState {
            weights: self.model.snapshot()?,
            optimizer: self.optimizer.clone(),
            order: self.order.clone(),
        })
    }

    fn restore_state(&mut self, s: LearnerState) -> Result<()> {
        self.model.restore(&s.weights)?;
        self.optimizer = s.optimizer;
        self.order = s.order;
        Ok(())
    }
}
