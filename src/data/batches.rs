//! The dataset on the device (once, as bytes) and the seeded order batches are drawn in.

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{DataSummary, Dataset, Inputs, Samples, Targets, Task};
use crate::error::{Error, Result, Scope};

/// One split on the device. Pixels stay `u8` there until a batch needs them.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// Inputs, `(n, values per sample)`: `u8` pixels or `f32` values.
    pub x: Tensor,
    /// Targets: `u32` class indices `(n,)`, or `f32` values `(n, k)`.
    pub y: Tensor,
}

impl DeviceSplit {
    /// Moves `s` (samples of `d` values each) to `device`; on the CPU the buffers are taken
    /// over without a copy.
    pub fn new(s: Samples, d: usize, device: &Device) -> Result<Self> {
        let n = s.len();
        let x = match s.x {
            Inputs::Pixels(v) => Tensor::from_vec(v, (n, d), device)?,
            Inputs::Values(v) => Tensor::from_vec(v, (n, d), device)?,
        };
        let y = match s.y {
            Targets::Classes(c) => Tensor::from_vec(c, n, device)?,
            Targets::Values { values, columns } => Tensor::from_vec(values, (n, columns), device)?,
        };
        Ok(Self { x, y })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `idx`, as a batch.
    pub fn gather(&self, idx: &[u32]) -> Result<Batch> {
        let ids = Tensor::from_slice(idx, idx.len(), self.x.device())?;
        Ok(Batch {
            x: to_f32(&self.x.index_select(&ids, 0)?)?,
            y: self.y.index_select(&ids, 0)?,
        })
    }

    /// Samples `start..start+len`, in order (evaluation needs no shuffle).
    pub fn range(&self, start: usize, len: usize) -> Result<Batch> {
        Ok(Batch {
            x: to_f32(&self.x.narrow(0, start, len)?)?,
            y: self.y.narrow(0, start, len)?,
        })
    }
}

/// A dataset moved to the device: training, validation and (if any) test splits.
#[derive(Debug, Clone)]
pub struct DeviceData {
    /// The training split.
    pub train: DeviceSplit,
    /// The validation split (no samples when `val_split` is 0).
    pub val: DeviceSplit,
    /// The test split, if the data has one.
    pub test: Option<DeviceSplit>,
    /// Where the data came from, its shape, task, splits and standardisation.
    pub summary: DataSummary,
}

/// One batch: `x` is f32 `(B, values per sample)` (pixels in [0, 1]); `y` is u32 class
/// indices `(B,)` or f32 targets `(B, k)`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs, f32.
    pub x: Tensor,
    /// Class indices (u32) or target values (f32).
    pub y: Tensor,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DeviceData {
    /// Moves `ds` to `device`.
    pub fn new(ds: Dataset, device: &Device) -> Result<Self> {
        let summary = ds.summary();
        let d = ds.input_len();
        Ok(Self {
            train: DeviceSplit::new(ds.train, d, device)?,
            val: DeviceSplit::new(ds.val, d, device)?,
            test: ds
                .test
                .map(|t| DeviceSplit::new(t, d, device))
                .transpose()?,
            summary,
        })
    }

    /// The shape of one sample's input.
    pub fn input(&self) -> &[usize] {
        &self.summary.input
    }

    /// Values per sample.
    pub fn input_len(&self) -> usize {
        self.summary.input.iter().product()
    }

    /// Classification (with class names) or regression (with target names).
    pub fn task(&self) -> &Task {
        &self.summary.task
    }

    /// Number of training samples.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    /// Number of validation samples.
    pub fn val_len(&self) -> usize {
        self.val.len()
    }

    /// Number of test samples (0 without a test split).
    pub fn test_len(&self) -> usize {
        self.test.as_ref().map_or(0, DeviceSplit::len)
    }

    /// The training samples at `idx`, as a batch.
    pub fn train_batch(&self, idx: &[u32]) -> Result<Batch> {
        self.train.gather(idx)
    }

    /// Validation samples `start..start+len`, in order.
    pub fn val_range(&self, start: usize, len: usize) -> Result<Batch> {
        self.val.range(start, len)
    }

    /// Test samples `start..start+len`, in order; an error without a test split.
    pub fn test_range(&self, start: usize, len: usize) -> Result<Batch> {
        match &self.test {
            Some(t) => t.range(start, len),
            None => Err(Error::setting(
                Scope::Data,
                "test_split",
                "none",
                "the data has no test split (set test_split to carve one)",
            )),
        }
    }
}

/// A batch's inputs as f32: bytes scaled to [0, 1], values as they are.
fn to_f32(x: &Tensor) -> Result<Tensor> {
    Ok(match x.dtype() {
        DType::U8 => x.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?,
        DType::F32 => x.clone(),
        _ => x.to_dtype(DType::F32)?,
    })
}

/// A seeded shuffle of `0..n` that reshuffles at each epoch's end.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    rng: ChaCha8Rng,
    perm: Vec<u32>,
    pos: usize,
    batch_size: usize,
}

impl BatchOrder {
    /// An endless, seeded sequence of shuffled batches of `batch_size` out of `n` samples.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut rng);
        Self {
            rng,
            perm,
            pos: 0,
            batch_size: batch_size.min(n).max(1),
        }
    }

    /// The next full batch; wraps into a fresh shuffle when the epoch has too few left
    /// (a range test may need more batches than one epoch holds).
    pub fn next_batch(&mut self) -> &[u32] {
        if self.pos + self.batch_size > self.perm.len() {
            self.perm.shuffle(&mut self.rng);
            self.pos = 0;
        }
        let b = &self.perm[self.pos..self.pos + self.batch_size];
        self.pos += self.batch_size;
        b
    }

    /// One epoch in batches, the last one possibly short (PyTorch's `drop_last=False`).
    pub fn epoch(&mut self) -> Vec<Vec<u32>> {
        self.perm.shuffle(&mut self.rng);
        self.pos = 0;
        self.perm
            .chunks(self.batch_size)
            .map(<[u32]>::to_vec)
            .collect()
    }
}

/// The batches of training epoch `epoch` (0-based): a pure function of (n, batch size, seed,
/// epoch), so a resumed run sees exactly the order the uninterrupted one would have.
pub fn epoch_batches(n: usize, batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.shuffle(&mut rng);
    perm.chunks(batch_size.max(1))
        .map(<[u32]>::to_vec)
        .collect()
}

/// Number of batches of one epoch (with the last short batch).
pub fn batches_per_epoch(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_seeded_and_covers_an_epoch() {
        let mut a = BatchOrder::new(10, 3, 7);
        let mut b = BatchOrder::new(10, 3, 7);
        let ea = a.epoch();
        assert_eq!(ea, b.epoch());
        assert_eq!(ea.len(), 4);
        assert_eq!(ea[3].len(), 1);
        let mut all: Vec<u32> = ea.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let mut c = BatchOrder::new(10, 3, 8);
        assert_ne!(c.epoch(), ea);
    }

    #[test]
    fn epoch_batches_depend_on_epoch_and_seed_only() {
        let a = epoch_batches(100, 32, 5, 3);
        assert_eq!(a, epoch_batches(100, 32, 5, 3));
        assert_ne!(a, epoch_batches(100, 32, 5, 4));
        assert_ne!(a, epoch_batches(100, 32, 6, 3));
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), [32, 32, 32, 4]);
    }

    #[test]
    fn next_batch_wraps_with_full_batches() {
        let mut o = BatchOrder::new(5, 2, 1);
        let bs: Vec<Vec<u32>> = (0..5).map(|_| o.next_batch().to_vec()).collect();
        assert!(bs.iter().all(|b| b.len() == 2));
        assert_ne!(bs[0], bs[1]);
    }

    #[test]
    fn gather_scales_bytes_to_unit_floats() {
        let dev = Device::Cpu;
        let s = Samples {
            x: Inputs::Pixels(vec![0u8, 255, 51, 102]),
            y: Targets::Classes(vec![3, 4]),
        };
        let split = DeviceSplit::new(s, 2, &dev).unwrap();
        assert_eq!(split.x.dtype(), DType::U8, "bytes on the device");
        let b = split.gather(&[1, 0]).unwrap();
        let v: Vec<f32> = b.x.flatten_all().unwrap().to_vec1().unwrap();
        for (got, want) in v.iter().zip([0.2f32, 0.4, 0.0, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
        assert_eq!(b.y.to_vec1::<u32>().unwrap(), vec![4, 3]);
    }

    #[test]
    fn values_and_regression_targets_pass_through() {
        let dev = Device::Cpu;
        let s = Samples {
            x: Inputs::Values(vec![1.5, -2.0, 0.25, 4.0, 9.0, 8.0]),
            y: Targets::Values {
                values: vec![0.1, 0.2, 1.1, 1.2, 2.1, 2.2],
                columns: 2,
            },
        };
        let split = DeviceSplit::new(s, 2, &dev).unwrap();
        let b = split.range(1, 2).unwrap();
        assert_eq!(b.x.to_vec2::<f32>().unwrap(), [[0.25, 4.0], [9.0, 8.0]]);
        assert_eq!(b.y.to_vec2::<f32>().unwrap(), [[1.1, 1.2], [2.1, 2.2]]);
        assert_eq!(split.gather(&[0]).unwrap().y.dims(), [1, 2]);
        // An empty split is a valid split of no samples.
        let none = Samples {
            x: Inputs::Values(vec![]),
            y: Targets::Classes(vec![]),
        };
        assert!(DeviceSplit::new(none, 2, &dev).unwrap().is_empty());
    }
}
