//! CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`).

use std::path::Path;

use crate::error::{Error, Result};

use super::{image_samples, ImageShape, Samples};

const RECORD: usize = 1 + 3 * 32 * 32;
/// One CIFAR-10 image: 3×32×32.
pub const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

/// The directory that holds the batches: `dir` itself or its `cifar-10-batches-bin/`.
fn batches_dir(dir: &Path) -> Result<std::path::PathBuf> {
    for d in [dir.to_path_buf(), dir.join("cifar-10-batches-bin")] {
        if d.join("test_batch.bin").is_file() {
            return Ok(d);
        }
    }
    Err(Error::data(
        dir,
        "no test_batch.bin here or in cifar-10-batches-bin/ (expected the CIFAR-10 binary version)",
    ))
}

fn read_batches(files: &[std::path::PathBuf]) -> Result<Samples> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for f in files {
        // A real batch holds 10,000 records; allow five times that before calling it too long.
        let bytes = super::idx::read_maybe_gz(f, 50_000 * RECORD)?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::data(
                f,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records: file is truncated or not a CIFAR-10 batch",
                    bytes.len()
                ),
            ));
        }
        for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] >= 10 {
                return Err(Error::data(
                    f,
                    format!("label {} in record {i} is out of range 0..9", rec[0]),
                ));
            }
            labels.push(rec[0]);
            images.extend_from_slice(&rec[1..]);
        }
    }
    Ok(image_samples(images, labels))
}

/// Loads train (the five data batches) and test splits.
pub fn load_dir(dir: &Path) -> Result<(ImageShape, Samples, Samples)> {
    let d = batches_dir(dir)?;
    let train: Vec<_> = (1..=5)
        .map(|i| d.join(format!("data_batch_{i}.bin")))
        .collect();
    if let Some(missing) = train.iter().find(|p| !p.is_file()) {
        return Err(Error::data(missing, "missing CIFAR-10 training batch"));
    }
    let train = read_batches(&train)?;
    let test = read_batches(&[d.join("test_batch.bin")])?;
    Ok((SHAPE, train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_batches_and_rejects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |label: u8| {
            let mut r = vec![label];
            r.extend(std::iter::repeat_n(label * 10, RECORD - 1));
            r
        };
        for i in 1..=5 {
            std::fs::write(
                dir.path().join(format!("data_batch_{i}.bin")),
                [rec(i), rec(0)].concat(),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), rec(9)).unwrap();
        let (shape, train, test) = load_dir(dir.path()).unwrap();
        assert_eq!(shape.len(), 3072);
        assert_eq!(train.len(), 10);
        let crate::data::Targets::Classes(labels) = &train.y else {
            panic!("classes")
        };
        assert_eq!(labels[..4], [1, 0, 2, 0]);
        assert_eq!(test.x, crate::data::Inputs::Pixels(vec![90; RECORD - 1]));

        std::fs::write(dir.path().join("test_batch.bin"), &rec(9)[..100]).unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("truncated"),
            "{e}"
        );
        let e = load_dir(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("no test_batch.bin"), "{e}");
    }
}
