//! The candle side of a run: one model, its optimizer and the data on the device.
//! The range test drives it through [`TrainStep`]; the trainer through epochs.

use candle_core::Tensor;
use candle_nn::Optimizer;
use rayon::prelude::*;

use crate::data::batches::BatchOrder;
use crate::data::{Batch, DeviceData, DeviceSplit};
use crate::error::{Error, Result, Scope};
use crate::finder::{Checkpoint, TrainStep, TrialScore};
use crate::loss::{LossConfig, Metrics, Scores};
use crate::model::{Mode, Model};
use crate::optim::AnyOptimizer;

/// How each range-test step is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepLoss {
    /// The loss of the training batch the step used (Smith's original, cheapest).
    TrainBatch,
    /// The loss on a fixed subset of the validation split after the step (less noisy, one
    /// forward more).
    Validation {
        /// How many validation samples to score on (at most the split's size), spread evenly
        /// over it.
        samples: usize,
    },
}

/// One of lrfind's built-in models, its optimizer and its data: a [`TrainStep`] and
/// [`Checkpoint`] for the range test, and the engine of a training epoch.
pub struct Learner {
    /// Runs the shards of each batch in parallel (see [`Learner::step_on`]).
    pool: std::sync::Arc<rayon::ThreadPool>,
    /// The model.
    pub model: Model,
    /// Its optimizer.
    pub optimizer: AnyOptimizer,
    /// The data, on the model's device.
    pub data: DeviceData,
    order: BatchOrder,
    accumulate: usize,
    val: Option<Batch>,
    /// What it minimises, and how batches are scored.
    loss: LossConfig,
    /// Training forward passes so far (one per micro-batch): picks the dropout masks.
    passes: u64,
}

/// Everything a range test changes, to put back afterwards.
#[derive(Debug, Clone)]
pub struct LearnerState {
    weights: Vec<Tensor>,
    optimizer: AnyOptimizer,
    order: BatchOrder,
    passes: u64,
}

/// Most micro-batches in one optimizer step. Memory would allow more (they are drawn one
/// at a time), but a step must end for Ctrl-C to be heard between steps.
pub const MAX_ACCUMULATE: usize = 4096;

/// The batch size and the number of accumulated micro-batches must both be at least 1 (and
/// the latter at most [`MAX_ACCUMULATE`]).
pub fn check_batching(batch_size: usize, accumulate: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::setting(
            Scope::Batching,
            "batch_size",
            0,
            "must be at least 1",
        ));
    }
    if accumulate == 0 {
        return Err(Error::setting(
            Scope::Batching,
            "accumulate",
            0,
            "must be at least 1",
        ));
    }
    if accumulate > MAX_ACCUMULATE {
        return Err(Error::setting(
            Scope::Batching,
            "accumulate",
            accumulate,
            format!("at most {MAX_ACCUMULATE} batches per step"),
        ));
    }
    Ok(())
}

/// The loss of `b` (rows `first_row…` of a batch of `denom` rows) and its gradients.
fn loss_grads(
    model: &Model,
    loss: &LossConfig,
    b: &Batch,
    denom: usize,
    pass: u64,
    first_row: usize,
) -> Result<(f64, Vec<Option<Tensor>>)> {
    let mode = Mode::Train {
        step: pass,
        first_row,
    };
    model.loss_and_grads(&b.x, mode, |out| loss.value_and_grad(out, &b.y, denom))
}

impl Learner {
    /// A learner that draws batches of `batch_size` from a shuffle seeded by `seed`, takes
    /// one step per `accumulate` micro-batches, and scores steps as `step_loss` says.
    pub fn new(
        model: Model,
        optimizer: AnyOptimizer,
        data: DeviceData,
        batch_size: usize,
        accumulate: usize,
        step_loss: StepLoss,
        seed: u64,
    ) -> Result<Self> {
        check_batching(batch_size, accumulate)?;
        let n = data.train_len();
        if batch_size > n {
            return Err(Error::setting(
                Scope::Batching,
                "batch_size",
                batch_size,
                format!("larger than the {n} training samples"),
            ));
        }
        let val = match step_loss {
            StepLoss::TrainBatch => None,
            StepLoss::Validation { samples } => {
                let n = data.val_len();
                let k = samples.min(n);
                if k == 0 {
                    return Err(Error::setting(
                        Scope::Batching,
                        "step_loss",
                        "validation",
                        "the validation split is empty (val_split is 0)",
                    ));
                }
                // Spread over the split: a file sorted by class gives a prefix of one class.
                let idx = spread(n, k);
                Some(data.val.gather(&idx)?)
            }
        };
        let task = data.task().clone();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Device {
                device: "cpu".into(),
                reason: format!("cannot start {threads} worker threads: {e}"),
            })?;
        Ok(Self {
            pool: std::sync::Arc::new(pool),
            order: BatchOrder::new(n, batch_size, seed),
            model,
            optimizer,
            data,
            accumulate,
            val,
            passes: 0,
            loss: LossConfig::default_for(&task),
        })
    }

    /// Trains and scores with `loss` instead of the task's default (cross-entropy for
    /// classes, MSE for values). The model must have the outputs the loss needs.
    pub fn with_loss(mut self, loss: LossConfig) -> Result<Self> {
        loss.validate()?;
        let task = self.data.task();
        loss.check_task(task)?;
        let want = loss.outputs(task);
        if self.model.outputs() != want {
            return Err(Error::setting(
                Scope::Loss,
                "loss",
                loss.name(),
                format!(
                    "needs a model with {want} outputs, this one has {}",
                    self.model.outputs()
                ),
            ));
        }
        self.loss = loss;
        Ok(self)
    }

    /// The loss it trains and scores with.
    pub fn loss(&self) -> &LossConfig {
        &self.loss
    }

    /// Sets the number of training passes already made (a resumed run continues the count,
    /// so its dropout masks are those of an uninterrupted run).
    pub fn set_passes(&mut self, passes: u64) {
        self.passes = passes;
    }

    /// One optimizer step on the given micro-batches (loss and gradients averaged over them).
    ///
    /// On the CPU each batch is cut into one shard per core, and the shards' gradients are
    /// computed in parallel and averaged (weighted by size, in a fixed order, so the result
    /// is repeatable). For small layers this beats splitting each matmul across threads.
    pub fn step_on(&mut self, batches: &[Batch], lr: f64) -> Result<f64> {
        self.step_batches(batches, Some(lr))
    }

    /// [`Learner::step_on`] at the optimizer's LRs as they are (`None`: per-group LRs a
    /// scheduler set stay), or at base LR `lr`.
    pub fn step_batches(&mut self, batches: &[Batch], lr: Option<f64>) -> Result<f64> {
        let mut it = batches.iter();
        self.step_streaming(batches.len(), lr, |_| {
            it.next().cloned().ok_or_else(|| {
                Error::setting(Scope::Batching, "accumulate", 0, "must be at least 1")
            })
        })
    }

    /// One optimizer step over `k` micro-batches drawn one at a time from `next` (gradients
    /// summed as they come): memory does not grow with `accumulate`.
    fn step_streaming(
        &mut self,
        k: usize,
        lr: Option<f64>,
        mut next: impl FnMut(&Self) -> Result<Batch>,
    ) -> Result<f64> {
        if let Some(lr) = lr {
            self.optimizer.set_learning_rate(lr);
        }
        if k == 0 {
            return Err(Error::setting(
                Scope::Batching,
                "accumulate",
                0,
                "must be at least 1",
            ));
        }
        let threads = self.pool.current_num_threads();
        let mut loss_sum = 0.0;
        let mut sum: Option<Vec<Option<Tensor>>> = None;
        for _ in 0..k {
            let b = next(self)?;
            let (model, loss) = (&self.model, &self.loss);
            let pass = self.passes;
            self.passes += 1;
            let (l, g) = self
                .pool
                .install(|| sharded_loss_and_grads(model, loss, &b, threads, pass))?;
            loss_sum += l;
            sum = Some(match sum {
                None => g,
                Some(s) => self.pool.install(|| add_all(&s, &g))?,
            });
        }
        let grads = sum.unwrap_or_default();
        let grads = if k == 1 {
            grads
        } else {
            grads
                .iter()
                .map(|g| g.as_ref().map(|g| Ok((g / k as f64)?)).transpose())
                .collect::<Result<_>>()?
        };
        let loss = loss_sum / k as f64;
        self.pool.install(|| self.optimizer.step_grads(&grads))?;
        Ok(loss)
    }

    /// Loss and metrics over the validation split's first `n` samples, in batches of
    /// `batch`.
    pub fn evaluate(&self, n: usize, batch: usize) -> Result<Metrics> {
        self.evaluate_split(&self.data.val, n, batch)
    }

    /// Loss and metrics over the whole test split, in batches of `batch` (None without a
    /// test split). Only reported: nothing is chosen on it.
    pub fn evaluate_test(&self, batch: usize) -> Result<Option<Metrics>> {
        self.data
            .test
            .as_ref()
            .map(|t| self.evaluate_split(t, t.len(), batch))
            .transpose()
    }

    /// Loss and metrics over the first `n` samples of `split`, in batches of `batch`.
    pub fn evaluate_split(&self, split: &DeviceSplit, n: usize, batch: usize) -> Result<Metrics> {
        let n = n.min(split.len());
        let batch = batch.max(1);
        let mut sums = Scores::default();
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            sums += self.score(&split.range(start, len)?)?;
            start += len;
        }
        Ok(sums.metrics(&self.loss))
    }

    /// Up to `n` samples of the validation split, spread evenly over it (a file sorted by
    /// class would give a prefix of one class): the held-out set verification trials are
    /// scored on. An error when the split is empty.
    pub fn held_out(&self, n: usize) -> Result<Batch> {
        let total = self.data.val_len();
        let k = n.min(total);
        if k == 0 {
            return Err(Error::setting(
                Scope::Batching,
                "val_split",
                0,
                "verification trials are scored on the validation split, which is empty",
            ));
        }
        let idx = spread(total, k);
        self.data.val.gather(&idx)
    }

    /// Loss (and accuracy) on a held-out batch, scored in chunks of `chunk` rows so a large
    /// set of images never needs all its activations at once.
    pub fn trial_score(&self, set: &Batch, chunk: usize) -> Result<TrialScore> {
        let (n, chunk) = (set.len(), chunk.max(1));
        let mut sums = Scores::default();
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let part = Batch {
                x: set.x.narrow(0, start, len)?,
                y: set.y.narrow(0, start, len)?,
            };
            sums += self.score(&part)?;
            start += len;
        }
        let m = sums.metrics(&self.loss);
        Ok(TrialScore {
            loss: m.loss,
            accuracy: m.accuracy,
        })
    }

    /// The loss and metric sums of one batch, in evaluation mode, without keeping a graph.
    pub fn score(&self, b: &Batch) -> Result<Scores> {
        let threads = self.pool.current_num_threads();
        let (model, loss) = (&self.model, &self.loss);
        self.pool.install(|| {
            let parts = shards(b, threads)?;
            let scored: Vec<Result<Scores>> = parts
                .par_iter()
                .map(|(p, _, _)| loss.score(&model.forward(&p.x)?.detach(), &p.y))
                .collect();
            let mut sums = Scores::default();
            for s in scored {
                sums += s?;
            }
            Ok(sums)
        })
    }
}

/// `k` indices spread evenly over `0..n` (a file sorted by class would give a prefix of one
/// class): the held-out samples a step or a trial is scored on.
fn spread(n: usize, k: usize) -> Vec<u32> {
    (0..k).map(|i| (i * n / k) as u32).collect()
}

/// Cuts a batch into up to `n` contiguous shards of at least 16 rows, with their sizes and
/// first rows.
fn shards(b: &Batch, n: usize) -> Result<Vec<(Batch, usize, usize)>> {
    let rows = b.len();
    let n = n.min(rows / 16).max(1);
    if n == 1 || !b.x.device().is_cpu() {
        return Ok(vec![(b.clone(), rows, 0)]);
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = rows / n + usize::from(i < rows % n);
        out.push((
            Batch {
                x: b.x.narrow(0, start, len)?,
                y: b.y.narrow(0, start, len)?,
            },
            len,
            start,
        ));
        start += len;
    }
    Ok(out)
}

/// Sums two gradient lists (a frozen parameter has none in either).
fn add_all(a: &[Option<Tensor>], b: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
    Ok(a.iter()
        .zip(b)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x + y).map(Some),
            _ => Ok(None),
        })
        .collect::<candle_core::Result<_>>()?)
}

/// Mean loss and gradients of one batch, its shards computed in parallel on the current pool
/// (in one piece when the model normalises over the batch).
fn sharded_loss_and_grads(
    model: &Model,
    loss: &LossConfig,
    b: &Batch,
    threads: usize,
    pass: u64,
) -> Result<(f64, Vec<Option<Tensor>>)> {
    let threads = if model.uses_batch_statistics() {
        1
    } else {
        threads
    };
    let parts = shards(b, threads)?;
    let rows: usize = parts.iter().map(|p| p.1).sum();
    if parts.len() == 1 {
        return loss_grads(model, loss, b, rows, pass, 0);
    }
    let results: Vec<Result<(f64, Vec<Option<Tensor>>)>> = parts
        .par_iter()
        .map(|(p, _, start)| loss_grads(model, loss, p, rows, pass, *start))
        .collect();
    let mut loss = 0.0;
    let mut sum: Option<Vec<Option<Tensor>>> = None;
    for r in results {
        let (l, g) = r?;
        loss += l;
        sum = Some(match sum {
            None => g,
            Some(s) => add_all(&s, &g)?,
        });
    }
    Ok((loss, sum.unwrap_or_default()))
}

impl TrainStep for Learner {
    type Error = Error;

    fn train_step(&mut self, lr: f64) -> Result<f64> {
        // Batches are drawn one at a time: `accumulate = 1000000000` needs no array of them.
        let mut order = std::mem::replace(&mut self.order, BatchOrder::new(0, 1, 0));
        let r = self.step_streaming(self.accumulate, Some(lr), |me| {
            let idx = order.next_batch();
            me.data.train_batch(idx)
        });
        self.order = order;
        let train_loss = r?;
        match &self.val {
            None => Ok(train_loss),
            Some(v) => Ok(self.score(v)?.metrics(&self.loss).loss),
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
            passes: self.passes,
        })
    }

    fn restore_state(&mut self, s: LearnerState) -> Result<()> {
        self.model.restore(&s.weights)?;
        self.optimizer = s.optimizer;
        self.order = s.order;
        self.passes = s.passes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, DataConfig, DataSource};
    use crate::finder::{find_lr, SweepConfig};
    use crate::model::ModelConfig;
    use crate::optim::OptimizerConfig;
    use candle_core::Device;
    use std::ops::ControlFlow;

    /// Batch norm and dropout: running statistics and the pass count are state too.
    fn norm_dropout() -> ModelConfig {
        ModelConfig::parse(
            "Flatten, Linear(16), BatchNorm1d, ReLU, Dropout(0.3), Linear",
            "",
        )
        .unwrap()
    }

    fn mlp() -> ModelConfig {
        ModelConfig::Mlp { hidden: vec![32] }
    }

    fn learner(opt: &str) -> Learner {
        learner_with(opt, &mlp())
    }

    fn learner_with(opt: &str, model: &ModelConfig) -> Learner {
        learner_on(mnist(), opt, model, StepLoss::TrainBatch).unwrap()
    }

    fn mnist() -> DataConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        DataConfig::builtin(DataSource::Mnist, Some(dir))
    }

    fn learner_on(
        data: DataConfig,
        opt: &str,
        model: &ModelConfig,
        step_loss: StepLoss,
    ) -> Result<Learner> {
        let dev = Device::Cpu;
        let ds = data::load(&data).unwrap();
        let data = DeviceData::new(ds, &dev).unwrap();
        let model = Model::new(model, data.input(), data.task().outputs(), 1, &dev).unwrap();
        let cfg = OptimizerConfig::from_parts(
            opt,
            0.9 * f64::from(u8::from(opt == "sgd")),
            false,
            None,
            (0.9, 0.999),
            1e-8,
        )
        .unwrap();
        let optimizer = cfg.build(model.vars(), 0.01).unwrap();
        Learner::new(model, optimizer, data, 32, 1, step_loss, 9)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn the_validation_step_loss_scores_a_spread_of_the_validation_split() {
        let l = learner_on(mnist(), "sgd", &mlp(), StepLoss::Validation { samples: 50 }).unwrap();
        // 200 validation images, 50 asked for: every fourth.
        let v = l.val.as_ref().unwrap();
        let idx: Vec<u32> = (0..50).map(|i| i * 4).collect();
        let want = l.data.val.gather(&idx).unwrap();
        assert_eq!(values(&v.x), values(&want.x));
        assert_eq!(
            v.y.to_vec1::<u32>().unwrap(),
            want.y.to_vec1::<u32>().unwrap()
        );
        let mut none = mnist();
        none.val_split = 0.0;
        let e = learner_on(none, "sgd", &mlp(), StepLoss::Validation { samples: 50 })
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "step_loss = validation: the validation split is empty (val_split is 0)"
        );
    }

    #[test]
    fn evaluate_scores_validation_and_evaluate_test_the_test_split() {
        let l = learner("sgd");
        let m = l.evaluate(usize::MAX, 64).unwrap();
        let (vl, va) = (m.loss, m.accuracy.unwrap());
        let s = l.score(&l.data.val_range(0, 200).unwrap()).unwrap();
        let (vl1, va1) = (s.loss_sum / 200.0, s.correct);
        assert!((vl - vl1).abs() < 1e-5, "{vl} {vl1}");
        assert_eq!(va, va1 as f64 / 200.0);
        let m = l.evaluate_test(128).unwrap().unwrap();
        let (tl, ta) = (m.loss, m.accuracy.unwrap());
        let s = l.score(&l.data.test_range(0, 500).unwrap()).unwrap();
        let (tl1, ta1) = (s.loss_sum / 500.0, s.correct);
        assert!((tl - tl1).abs() < 1e-5, "{tl} {tl1}");
        assert_eq!(ta, ta1 as f64 / 500.0);
        assert_ne!(vl.to_bits(), tl.to_bits(), "two different splits");
        // A table with no test split: nothing to report.
        let iris = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tabular/iris.csv");
        let l = learner_on(
            DataConfig::new(crate::data::Source::Csv(iris)),
            "adam",
            &mlp(),
            StepLoss::TrainBatch,
        )
        .unwrap();
        assert_eq!(l.evaluate_test(64).unwrap(), None);
        assert_eq!(l.data.train_len(), 135);
    }

    /// Weights and buffers, bit for bit.
    fn weights(l: &Learner) -> Vec<Vec<u32>> {
        l.model
            .snapshot()
            .unwrap()
            .iter()
            .map(crate::testutil::bits)
            .collect()
    }

    #[test]
    fn the_range_test_leaves_model_and_optimizer_as_they_were() {
        let mlp = ModelConfig::Mlp { hidden: vec![32] };
        for (opt, model) in [("sgd", &mlp), ("adam", &mlp), ("adam", &norm_dropout())] {
            let learner = |opt| learner_with(opt, model);
            let mut a = learner(opt);
            // Some training first, so there is optimizer state (momentum buffers, moments).
            for _ in 0..3 {
                a.train_step(0.01).unwrap();
            }
            let before = weights(&a);
            let lr_before = a.optimizer.learning_rate();
            let cfg = SweepConfig {
                min_lr: 1e-4,
                max_lr: 1.0,
                num_steps: 25,
                ..SweepConfig::default()
            };
            let curve = find_lr(&mut a, &cfg, &mut |_| ControlFlow::Continue(())).unwrap();
            assert!(curve.lrs.len() > 5);
            assert_eq!(weights(&a), before, "{opt}: weights changed");
            assert_eq!(a.optimizer.learning_rate(), lr_before);
            // The next step equals that of a twin that never ran the sweep: same weights,
            // optimizer state and batch order.
            let mut b = learner(opt);
            for _ in 0..3 {
                b.train_step(0.01).unwrap();
            }
            let (la, lb) = (a.train_step(0.01).unwrap(), b.train_step(0.01).unwrap());
            assert_eq!(la.to_bits(), lb.to_bits(), "{opt}");
            assert_eq!(weights(&a), weights(&b), "{opt}");
        }
    }

    #[test]
    fn sharded_gradients_equal_the_whole_batch_gradient() {
        let dropout =
            ModelConfig::parse("Flatten, Linear(32), ReLU, Dropout(0.3), Linear", "").unwrap();
        for model in [
            ModelConfig::Mlp { hidden: vec![32] },
            dropout,
            norm_dropout(),
        ] {
            let l = learner_with("sgd", &model);
            let idx: Vec<u32> = (0..64).collect();
            let b = l.data.train_batch(&idx).unwrap();
            let ce = LossConfig::default();
            let (whole_loss, whole) = loss_grads(&l.model, &ce, &b, 64, 5, 0).unwrap();
            let (loss, sharded) = l
                .pool
                .install(|| sharded_loss_and_grads(&l.model, &ce, &b, 2, 5))
                .unwrap();
            assert!((loss - whole_loss).abs() < 1e-6, "{model:?}");
            let max_diff = |a: &[Option<Tensor>], b: &[Option<Tensor>]| {
                a.iter()
                    .zip(b)
                    .map(|(g, w)| (g.as_ref().unwrap(), w.as_ref().unwrap()))
                    .map(|(g, w)| {
                        (g - w)
                            .unwrap()
                            .abs()
                            .unwrap()
                            .max_all()
                            .unwrap()
                            .to_scalar::<f32>()
                            .unwrap()
                    })
                    .fold(0f32, f32::max)
            };
            assert!(max_diff(&sharded, &whole) < 1e-6, "{model:?}");
            if model != (ModelConfig::Mlp { hidden: vec![32] }) {
                // Another pass draws other dropout masks.
                let (_, other) = loss_grads(&l.model, &ce, &b, 64, 6, 0).unwrap();
                assert!(max_diff(&other, &whole) > 1e-4, "{model:?}");
            }
        }
    }
}
