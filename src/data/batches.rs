//! The dataset on the device (once, as bytes) and the seeded order batches are drawn in.

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Dataset, ImageShape};
use crate::error::Result;

/// A dataset moved to the device: pixels stay `u8` there until a batch needs them.
#[derive(Debug, Clone)]
pub struct DeviceData {
    /// Training images, `(n, channels, height, width)` as bytes (converted per batch).
    pub train_x: Tensor,
    /// Training labels, `(n,)`.
    pub train_y: Tensor,
    /// Held-out images.
    pub test_x: Tensor,
    /// Held-out labels.
    pub test_y: Tensor,
    /// The shape of one image.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
}

/// One batch: `x` is f32 `(B, C·H·W)` in [0, 1], `y` the u32 class indices.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs, f32 in [0, 1].
    pub x: Tensor,
    /// Class indices (u32).
    pub y: Tensor,
}

impl DeviceData {
    /// Moves `ds` to `device`. On the CPU the byte buffers are taken over without a copy.
    pub fn new(ds: Dataset, device: &Device) -> Result<Self> {
        let d = ds.shape.len();
        let split = |images: Vec<u8>, labels: Vec<u8>| -> Result<(Tensor, Tensor)> {
            let n = labels.len();
            let x = Tensor::from_vec(images, (n, d), device)?;
            let y: Vec<u32> = labels.into_iter().map(u32::from).collect();
            let y = Tensor::from_vec(y, n, device)?;
            Ok((x, y))
        };
        let (train_x, train_y) = split(ds.train.images, ds.train.labels)?;
        let (test_x, test_y) = split(ds.test.images, ds.test.labels)?;
        Ok(Self {
            train_x,
            train_y,
            test_x,
            test_y,
            shape: ds.shape,
            classes: ds.classes,
        })
    }

    /// Number of training samples.
    pub fn train_len(&self) -> usize {
        self.train_y.dims1().unwrap_or(0)
    }

    /// Number of held-out samples.
    pub fn test_len(&self) -> usize {
        self.test_y.dims1().unwrap_or(0)
    }

    /// Gathers rows `idx` of (`x`, `y`) and turns the pixels into f32 in [0, 1].
    pub fn gather(x: &Tensor, y: &Tensor, idx: &[u32]) -> Result<Batch> {
        let ids = Tensor::from_slice(idx, idx.len(), x.device())?;
        Ok(Batch {
            x: scale(&x.index_select(&ids, 0)?)?,
            y: y.index_select(&ids, 0)?,
        })
    }

    /// The training samples at `idx`, as f32 inputs and labels.
    pub fn train_batch(&self, idx: &[u32]) -> Result<Batch> {
        Self::gather(&self.train_x, &self.train_y, idx)
    }

    /// Test rows `start..start+len`, in order (evaluation needs no shuffle).
    pub fn test_range(&self, start: usize, len: usize) -> Result<Batch> {
        Ok(Batch {
            x: scale(&self.test_x.narrow(0, start, len)?)?,
            y: self.test_y.narrow(0, start, len)?,
        })
    }
}

fn scale(x: &Tensor) -> Result<Tensor> {
    Ok(x.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?)
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
        let x = Tensor::from_vec(vec![0u8, 255, 51, 102], (2, 2), &dev).unwrap();
        let y = Tensor::from_vec(vec![3u32, 4], 2, &dev).unwrap();
        let b = DeviceData::gather(&x, &y, &[1, 0]).unwrap();
        let v: Vec<f32> = b.x.flatten_all().unwrap().to_vec1().unwrap();
        for (got, want) in v.iter().zip([0.2f32, 0.4, 0.0, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
        assert_eq!(b.y.to_vec1::<u32>().unwrap(), vec![4, 3]);
    }
}
