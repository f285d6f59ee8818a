//! The embedded default dataset, `digits`: the first 8,000 training and 2,000 test images of
//! MNIST (Yann LeCun and Corinna Cortes, CC BY-SA 3.0), shipped gzip'd in `assets/digits/`.
//! Real handwriting, so the range test shows the real flat → fall → blow-up shape, offline.

use super::{idx, DataSource, Loaded};
use crate::error::Result;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../assets/digits/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../assets/digits/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../assets/digits/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../assets/digits/t10k-labels-idx1-ubyte.gz");

/// The embedded slice of MNIST (8,000 training, 2,000 test images).
pub fn digits() -> Result<Loaded> {
    let (shape, train) = idx::split_from_bytes("digits/train", TRAIN_IMAGES, TRAIN_LABELS, 10)?;
    let (_, test) = idx::split_from_bytes("digits/test", TEST_IMAGES, TEST_LABELS, 10)?;
    Ok(DataSource::Digits.loaded(shape, train, test, "embedded".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_digits_are_mnist_sized_and_use_every_class() {
        let d = super::digits().unwrap();
        assert_eq!(d.train.len(), 8000);
        assert_eq!(d.test.as_ref().map(|t| t.len()), Some(2000));
        assert_eq!(d.input, [1, 28, 28]);
        let crate::data::Targets::Classes(labels) = &d.train.y else {
            panic!("classes")
        };
        for c in 0..10u32 {
            let n = labels.iter().filter(|&&l| l == c).count();
            assert!(n > 600, "class {c}: {n}");
        }
    }
}
