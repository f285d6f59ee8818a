//! The candle-datasets hub loaders, for when the data is nowhere on disk and the network allows.

use candle_core::{DType, Tensor};

use super::{cifar, image_samples, DataSource, ImageShape, Loaded, Samples, DATA_ENV};
use crate::error::{Error, Result};

fn to_split(images: &Tensor, labels: &Tensor) -> candle_core::Result<Samples> {
    // The loaders give f32 in [0, 1]; back to the bytes they came from.
    let n = images.dim(0)?;
    let images = (images.reshape((n, ()))? * 255.0)?
        .round()?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    let labels = labels.to_dtype(DType::U8)?.to_vec1::<u8>()?;
    Ok(image_samples(images, labels))
}

/// Downloads `source` with candle-datasets (needs the network).
pub fn load(source: DataSource) -> Result<Loaded> {
    let got = match source {
        DataSource::Mnist => candle_datasets::vision::mnist::load(),
        DataSource::FashionMnist => candle_datasets::vision::fashion_mnist::load(),
        DataSource::Cifar10 => candle_datasets::vision::cifar::load(),
        DataSource::Digits => return super::embedded::digits(),
    };
    let unavailable = |e: String| Error::DataUnavailable {
        dataset: source.to_string(),
        reason: format!(
            "no data directory given, none found in ${DATA_ENV}, and the hub download failed ({e})"
        ),
    };
    let d = got.map_err(|e| unavailable(first_line(&e.to_string())))?;
    let conv = || -> candle_core::Result<(Samples, Samples)> {
        Ok((
            to_split(&d.train_images, &d.train_labels)?,
            to_split(&d.test_images, &d.test_labels)?,
        ))
    };
    let (train, test) = conv().map_err(|e| unavailable(first_line(&e.to_string())))?;
    let shape = match source {
        DataSource::Cifar10 => cifar::SHAPE,
        _ => ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        },
    };
    if d.labels != 10 {
        return Err(unavailable(format!("{} classes, expected 10", d.labels)));
    }
    Ok(source.loaded(shape, train, test, "hub".into()))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
