//! Datasets: the embedded default, IDX (MNIST / Fashion-MNIST), CIFAR-10, and the hub loaders.
//!
//! Pixels stay `u8` from file to device; a batch becomes `f32` only when it is drawn.

pub mod batches;
pub mod cifar;
pub mod embedded;
#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;
pub mod image_folder;
pub mod samples;
pub mod tensors;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Scope};

pub use batches::{Batch, DeviceData};
pub use samples::{Inputs, Loaded, Samples, Targets, Task};

/// Which dataset to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// Embedded in the binary: a real MNIST slice, so the first run needs no download.
    Digits,
    /// MNIST handwritten digits (IDX files).
    Mnist,
    /// Zalando's Fashion-MNIST (IDX files).
    FashionMnist,
    /// CIFAR-10 (binary batches).
    Cifar10,
}

impl DataSource {
    /// Every dataset, in the order help text lists them.
    pub const ALL: [DataSource; 4] = [
        DataSource::Digits,
        DataSource::Mnist,
        DataSource::FashionMnist,
        DataSource::Cifar10,
    ];

    /// The name the command line and reports use.
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Digits => "digits",
            DataSource::Mnist => "mnist",
            DataSource::FashionMnist => "fashion-mnist",
            DataSource::Cifar10 => "cifar10",
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DataSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.to_ascii_lowercase().replace('_', "-");
        let norm = match norm.as_str() {
            "fashion" | "fashionmnist" => "fashion-mnist",
            "cifar-10" | "cifar" => "cifar10",
            other => other,
        };
        DataSource::ALL
            .into_iter()
            .find(|d| d.name() == norm)
            .ok_or_else(|| {
                format!("unknown dataset '{s}' (allowed: digits, mnist, fashion-mnist, cifar10)")
            })
    }
}

/// Image size of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (1 or 3).
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

impl ImageShape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// No values (a zero-sized dimension).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One split: `images` holds `labels.len()` images back to back, as bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// Pixels, image after image, channel-major.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A loaded dataset, still in host memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub source: DataSource,
    /// The shape of one image.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// Where it came from: a directory, "embedded" or "hub".
    pub origin: String,
}

/// Environment variable naming a directory that holds datasets (`$LRFIND_DATA/mnist/…`).
pub const DATA_ENV: &str = "LRFIND_DATA";

/// Loads `source`, from `dir` when given, else from the usual places, else the hub.
pub fn load(source: DataSource, dir: Option<&Path>) -> Result<Dataset> {
    match (source, dir) {
        (DataSource::Digits, Some(d)) => Err(Error::setting(
            Scope::Data,
            "data_dir",
            d.display(),
            "the embedded 'digits' dataset reads no directory (name a dataset that does: mnist, fashion-mnist, cifar10)",
        )),
        (DataSource::Digits, None) => embedded::digits(),
        (_, Some(d)) => load_dir(source, d),
        (_, None) => match default_dirs(source).into_iter().find(|d| looks_like(source, d)) {
            Some(d) => load_dir(source, &d),
            None => from_hub(source),
        },
    }
}

/// Loads `source` from files in `dir`.
pub fn load_dir(source: DataSource, dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::setting(
            Scope::Data,
            "data_dir",
            dir.display(),
            if dir.exists() {
                "not a directory"
            } else {
                "no such directory"
            },
        ));
    }
    std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (shape, train, test) = match source {
        DataSource::Cifar10 => cifar::load_dir(dir)?,
        _ => {
            let f = |stem| idx::find_file(dir, stem);
            let (shape, train) = idx::read_split(
                &f("train-images-idx3-ubyte")?,
                &f("train-labels-idx1-ubyte")?,
                10,
            )?;
            let (tshape, test) = idx::read_split(
                &f("t10k-images-idx3-ubyte")?,
                &f("t10k-labels-idx1-ubyte")?,
                10,
            )?;
            if tshape != shape {
                return Err(Error::data(
                    dir,
                    format!(
                        "test images are {}x{} but training images are {}x{}",
                        tshape.height, tshape.width, shape.height, shape.width
                    ),
                ));
            }
            (shape, train, test)
        }
    };
    Ok(Dataset {
        source,
        shape,
        classes: 10,
        train,
        test,
        // Absolute: reports and runs record it, and are read from other directories.
        origin: std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    })
}

/// Where a dataset usually already is on this machine, in search order.
pub fn default_dirs(source: DataSource) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(root) = std::env::var_os(DATA_ENV) {
        let root = PathBuf::from(root);
        dirs.push(root.join(source.name()));
        dirs.push(root.clone());
    }
    if source == DataSource::FashionMnist {
        // Debian's dataset-fashion-mnist package.
        dirs.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    }
    dirs
}

fn looks_like(source: DataSource, dir: &Path) -> bool {
    match source {
        DataSource::Cifar10 => {
            dir.join("test_batch.bin").is_file()
                || dir.join("cifar-10-batches-bin/test_batch.bin").is_file()
        }
        _ => idx::find_file(dir, "t10k-labels-idx1-ubyte").is_ok(),
    }
}

#[cfg(feature = "hub")]
fn from_hub(source: DataSource) -> Result<Dataset> {
    hub::load(source)
}

#[cfg(not(feature = "hub"))]
fn from_hub(source: DataSource) -> Result<Dataset> {
    Err(Error::DataUnavailable {
        dataset: source.to_string(),
        reason: format!(
            "no data directory given, none found in ${DATA_ENV}, and this build has no hub loader (cargo feature `hub` is off)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_leniently() {
        assert_eq!("Fashion_MNIST".parse(), Ok(DataSource::FashionMnist));
        assert_eq!("cifar-10".parse(), Ok(DataSource::Cifar10));
        let e = "imagenet".parse::<DataSource>().unwrap_err();
        assert!(e.contains("imagenet") && e.contains("allowed"), "{e}");
    }

    #[test]
    fn missing_dir_is_named() {
        let e = load(DataSource::Mnist, Some(Path::new("/no/such/dir"))).unwrap_err();
        assert_eq!(e.to_string(), "data_dir = /no/such/dir: no such directory");
    }

    #[test]
    fn fixture_slice_loads_and_agrees() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        let d = load(DataSource::Mnist, Some(&dir)).unwrap();
        assert_eq!(d.train.len(), 2000);
        assert_eq!(d.test.len(), 500);
        assert_eq!(d.train.images.len(), 2000 * 784);
        assert_eq!(d.shape.len(), 784);
    }

    #[test]
    fn missing_file_in_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(DataSource::FashionMnist, Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("no train-images-idx3-ubyte"), "{e}");
    }
}
