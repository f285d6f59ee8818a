//! Data: the built-in datasets (the embedded default, IDX for MNIST / Fashion-MNIST, CIFAR-10,
//! the hub loaders) and your own files (CSV; tensors and image folders plug in beside them),
//! split into train / validation / test and moved to the device.
//!
//! [`load`] reads what a [`DataConfig`] names into a [`Loaded`], carves the held-out splits
//! off it ([`split`]) and standardises table rows; [`DeviceData`] puts the result on a device.
//! Pixels stay `u8` from file to device; a batch becomes `f32` only when it is drawn.

pub mod batches;
pub mod cifar;
pub mod config;
pub mod csv;
pub mod embedded;
#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;
pub mod image_folder;
pub mod samples;
pub mod split;
pub mod tensors;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Scope};

pub use batches::{Batch, DeviceData, DeviceSplit};
pub use config::{DataConfig, ImageSize, Source, TaskKind};
pub use samples::{Inputs, Loaded, Samples, Targets, Task, MAX_CLASSES};

/// The flag [`set_interrupt`] installed.
static INTERRUPT: OnceLock<&'static AtomicBool> = OnceLock::new();

/// Lets loading be stopped: once `flag` is true (a Ctrl-C handler sets it), the readers of
/// large inputs (an image folder's images, a CSV file's rows) stop at the next image or block
/// of rows with [`Error::Interrupted`]. The first flag installed stays.
pub fn set_interrupt(flag: &'static AtomicBool) {
    let _ = INTERRUPT.set(flag);
}

/// [`Error::Interrupted`] once the flag of [`set_interrupt`] is up.
pub(crate) fn check_interrupt() -> Result<()> {
    match INTERRUPT.get() {
        Some(f) if f.load(Ordering::Relaxed) => Err(Error::Interrupted("while loading the data")),
        _ => Ok(()),
    }
}
pub use split::{HeldOut, HeldOutFrom, Splits, Standardization};
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

/// Image size, as the built-in loaders read it; everything past them speaks of a sample's
/// input shape, `[channels, height, width]` ([`ImageShape::input`]).
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

    /// The per-sample input shape, `[channels, height, width]`.
    pub fn input(&self) -> Vec<usize> {
        vec![self.channels, self.height, self.width]
    }
}

/// Class names of the built-in datasets.
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

impl DataSource {
    /// The class names, in label order.
    pub fn classes(self) -> Vec<String> {
        let names: &[&str] = match self {
            DataSource::Digits | DataSource::Mnist => &DIGITS,
            DataSource::FashionMnist => &FASHION,
            DataSource::Cifar10 => &CIFAR10,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// What its loaders hand over: images as bytes, labels as classes, its own test split.
    fn loaded(self, shape: ImageShape, train: Samples, test: Samples, origin: String) -> Loaded {
        Loaded {
            input: shape.input(),
            task: Task::Classify {
                classes: self.classes(),
            },
            train,
            test: Some(test),
            origin,
        }
    }
}

/// Image bytes and byte labels as [`Samples`].
pub fn image_samples(pixels: Vec<u8>, labels: Vec<u8>) -> Samples {
    Samples {
        x: Inputs::Pixels(pixels),
        y: Targets::Classes(labels.into_iter().map(u32::from).collect()),
    }
}

/// A dataset split and ready for a device, still in host memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What was asked for.
    pub config: DataConfig,
    /// The shape of one sample's input (`[C, H, W]` for images, `[F]` for table rows).
    pub input: Vec<usize>,
    /// Classification (with class names) or regression (with target names).
    pub task: Task,
    /// The training split (what is left after carving).
    pub train: Samples,
    /// The validation split (empty when `val_split` is 0).
    pub val: Samples,
    /// The test split, from the files or carved; only ever evaluated and reported.
    pub test: Option<Samples>,
    /// Where it came from: an absolute path, "embedded" or "hub".
    pub origin: String,
    /// The statistics table rows were standardised with (None for images, or when off).
    pub standardization: Option<Standardization>,
    /// Which split is which, and where each came from.
    pub splits: Splits,
}

/// What a report and a run directory record about the data actually used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Where it came from: an absolute path, "embedded" or "hub".
    pub origin: String,
    /// The shape of one sample's input.
    pub input: Vec<usize>,
    /// Classes (in index order) or target names.
    pub task: Task,
    /// Which split is which.
    pub splits: Splits,
    /// The standardisation applied to table rows, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardization: Option<Standardization>,
}

impl Dataset {
    /// Values per sample (the product of `input`).
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The description reports and run directories keep.
    pub fn summary(&self) -> DataSummary {
        DataSummary {
            origin: self.origin.clone(),
            input: self.input.clone(),
            task: self.task.clone(),
            splits: self.splits.clone(),
            standardization: self.standardization.clone(),
        }
    }
}

/// Environment variable naming a directory that holds datasets (`$LRFIND_DATA/mnist/…`).
pub const DATA_ENV: &str = "LRFIND_DATA";

/// Reads, splits and standardises the data `config` names.
pub fn load(config: &DataConfig) -> Result<Dataset> {
    config.validate()?;
    let (loaded, features) = match &config.source {
        Source::Builtin(d) => (load_builtin(*d, config.data_dir.as_deref())?, None),
        Source::Csv(p) => {
            let t = self::csv::load(p, config)?;
            (t.loaded, Some(t.features))
        }
        Source::Tensors(p) => (load_tensors(p, config)?, None),
        Source::ImageFolder(p) => (load_image_folder(p, config)?, None),
    };
    prepare(config, loaded, features)
}

/// `.npy` / `.npz` / `.safetensors` files, with the configured keys and task.
fn load_tensors(path: &Path, config: &DataConfig) -> Result<Loaded> {
    tensors::load_tensors(path, config.x_key(), config.y_key(), config.task)
}

/// An `ImageFolder` directory, at the configured size and channels.
fn load_image_folder(path: &Path, config: &DataConfig) -> Result<Loaded> {
    let size = config.image_size.map(|s| (s.height, s.width));
    image_folder::load_image_folder(path, size, config.channels)
}

/// Splits what a loader returned as `config` says, and standardises table rows with the
/// training split's statistics. `features` names the input values (CSV columns); without
/// it they are named `x[0]`, `x[1]`, … (after the tensor key).
pub fn prepare(
    config: &DataConfig,
    loaded: Loaded,
    features: Option<Vec<String>>,
) -> Result<Dataset> {
    check_loaded(&loaded)?;
    if let (Some(t), Some(_)) = (config.test_split, &loaded.test) {
        return Err(Error::setting(
            Scope::Data,
            "test_split",
            t,
            format!(
                "{} has its own test split; leave test_split unset",
                loaded.origin
            ),
        ));
    }
    let (input, task, origin) = (
        loaded.input.clone(),
        loaded.task.clone(),
        loaded.origin.clone(),
    );
    let split::Split {
        mut train,
        mut val,
        mut test,
        splits,
    } = split::split(
        loaded,
        config.val_split,
        config.test_split,
        config.split_seed,
    )?;
    let standardization = if config.standardize && input.len() == 1 {
        let names = features.unwrap_or_else(|| {
            (0..input[0])
                .map(|i| format!("{}[{i}]", config.x_key()))
                .collect()
        });
        split::standardize(names, &mut train, &mut val, test.as_mut())
    } else {
        None
    };
    Ok(Dataset {
        config: config.clone(),
        input,
        task,
        train,
        val,
        test,
        origin,
        standardization,
        splits,
    })
}

/// A loader's result must be self-consistent before anything indexes into it.
fn check_loaded(l: &Loaded) -> Result<()> {
    let bad = |why: String| Error::data(&l.origin, why);
    let d: usize = l.input.iter().product();
    if l.input.is_empty() || d == 0 {
        return Err(bad(format!("input shape {:?} holds no values", l.input)));
    }
    let outputs = l.task.outputs();
    if matches!(l.task, Task::Classify { .. }) && outputs > MAX_CLASSES {
        return Err(bad(format!(
            "{outputs} classes, more than the {MAX_CLASSES} lrfind handles"
        )));
    }
    for (name, s) in
        std::iter::once(("training", &l.train)).chain(l.test.iter().map(|t| ("test", t)))
    {
        let n = s.len();
        if s.x.len() != n * d {
            return Err(bad(format!(
                "{name} split: {} input values for {n} samples of {d}",
                s.x.len()
            )));
        }
        let same_kind = matches!(
            (&s.x, &l.train.x),
            (Inputs::Pixels(_), Inputs::Pixels(_)) | (Inputs::Values(_), Inputs::Values(_))
        );
        if !same_kind {
            return Err(bad(format!(
                "{name} split: inputs of another type than the training split's"
            )));
        }
        match (&s.y, &l.task) {
            (Targets::Classes(c), Task::Classify { .. }) => {
                if let Some(c) = c.iter().find(|&&c| c as usize >= outputs) {
                    return Err(bad(format!(
                        "{name} split: class index {c} but {outputs} classes"
                    )));
                }
            }
            (Targets::Values { values, columns }, Task::Regress { .. }) => {
                if *columns != outputs || values.len() % columns.max(&1) != 0 {
                    return Err(bad(format!(
                        "{name} split: {columns} target columns but {outputs} targets"
                    )));
                }
            }
            _ => return Err(bad(format!("{name} split: targets do not match the task"))),
        }
    }
    Ok(())
}

/// Loads built-in `source`, from `dir` when given, else from the usual places, else the hub.
pub fn load_builtin(source: DataSource, dir: Option<&Path>) -> Result<Loaded> {
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

/// Loads built-in `source` from files in `dir`.
pub fn load_dir(source: DataSource, dir: &Path) -> Result<Loaded> {
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
    // Absolute: reports and runs record it, and are read from other directories.
    let origin = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    Ok(source.loaded(shape, train, test, origin))
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
fn from_hub(source: DataSource) -> Result<Loaded> {
    hub::load(source)
}

#[cfg(not(feature = "hub"))]
fn from_hub(source: DataSource) -> Result<Loaded> {
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

    fn tabular(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tabular")
            .join(name)
    }

    #[test]
    fn names_parse_leniently() {
        assert_eq!("Fashion_MNIST".parse(), Ok(DataSource::FashionMnist));
        assert_eq!("cifar-10".parse(), Ok(DataSource::Cifar10));
        let e = "imagenet".parse::<DataSource>().unwrap_err();
        assert!(e.contains("imagenet") && e.contains("allowed"), "{e}");
    }

    #[test]
    fn missing_dir_is_named() {
        let c = DataConfig::builtin(DataSource::Mnist, Some("/no/such/dir".into()));
        let e = load(&c).unwrap_err();
        assert_eq!(e.to_string(), "data_dir = /no/such/dir: no such directory");
    }

    #[test]
    fn fixture_slice_loads_and_agrees() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        let d = load(&DataConfig::builtin(DataSource::Mnist, Some(dir))).unwrap();
        // 10 % of the 2,000 training images held out, stratified; t10k is the test split.
        assert_eq!((d.train.len(), d.val.len()), (1800, 200));
        assert_eq!(d.test.as_ref().map(Samples::len), Some(500));
        assert_eq!(d.train.x.len(), 1800 * 784);
        assert_eq!((d.input.clone(), d.input_len()), (vec![1, 28, 28], 784));
        assert_eq!(d.task.outputs(), 10);
        assert_eq!(d.standardization, None, "images are never standardised");
        let s = d.summary();
        assert_eq!(s.splits.test.unwrap().from, HeldOutFrom::Files);
        assert_eq!(
            s.splits.validation.unwrap().from,
            HeldOutFrom::Carved {
                fraction: 0.1,
                stratified: true,
                split_seed: 0
            }
        );
    }

    #[test]
    fn missing_file_in_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_builtin(DataSource::FashionMnist, Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("no train-images-idx3-ubyte"), "{e}");
    }

    #[test]
    fn iris_is_split_stratified_and_standardised_with_training_statistics() {
        let mut c = DataConfig::new(Source::Csv(tabular("iris.csv")));
        c.val_split = 0.2;
        c.test_split = Some(0.2);
        let d = load(&c).unwrap();
        // 50 per class: 10 to test, 10 to validation, 30 to training, in each class.
        assert_eq!((d.train.len(), d.val.len()), (90, 30));
        assert_eq!(d.test.as_ref().map(Samples::len), Some(30));
        for s in [&d.train, &d.val, d.test.as_ref().unwrap()] {
            let Targets::Classes(y) = &s.y else { panic!() };
            let per: Vec<usize> = (0..3)
                .map(|k| y.iter().filter(|&&c| c == k).count())
                .collect();
            assert_eq!(per[0], per[1]);
            assert_eq!(per[1], per[2]);
        }
        // The training split's statistics, standardised: mean 0 and population std 1.
        let st = d.standardization.clone().unwrap();
        assert_eq!(st.features.len(), 4);
        let Inputs::Values(x) = &d.train.x else {
            panic!()
        };
        for f in 0..4 {
            let col: Vec<f64> = x.chunks(4).map(|r| f64::from(r[f])).collect();
            let m = col.iter().sum::<f64>() / 90.0;
            let v = col.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 90.0;
            assert!(
                m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5,
                "feature {f}: {m} {v}"
            );
        }
        // Same split seed: same split, whatever else changes; another seed: another split.
        assert_eq!(load(&c).unwrap().val, d.val);
        c.split_seed = 1;
        assert_ne!(load(&c).unwrap().val, d.val);
    }

    #[test]
    fn iris_statistics_match_hand_computed_values() {
        // With val_split 0 every row trains: the whole file's statistics (numpy:
        // X.mean(0) = [5.8433, 3.0573, 3.758, 1.1993], X.std(0) = [0.82530, 0.43441,
        // 1.75940, 0.75969], population std as np.std's default ddof=0).
        let mut c = DataConfig::new(Source::Csv(tabular("iris.csv")));
        c.val_split = 0.0;
        let d = load(&c).unwrap();
        let st = d.standardization.unwrap();
        let want_mean = [5.843333, 3.057333, 3.758, 1.199333];
        let want_std = [0.825301, 0.434411, 1.759404, 0.759693];
        for f in 0..4 {
            assert!((st.mean[f] - want_mean[f]).abs() < 1e-5, "{:?}", st.mean);
            assert!((st.std[f] - want_std[f]).abs() < 1e-5, "{:?}", st.std);
        }
        // Off: the raw values.
        c.standardize = false;
        let d = load(&c).unwrap();
        assert_eq!(d.standardization, None);
        let Inputs::Values(x) = &d.train.x else {
            panic!()
        };
        assert_eq!(x[..4], [5.1, 3.5, 1.4, 0.2]);
    }

    #[test]
    fn a_test_split_from_the_files_refuses_test_split() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
        let loaded = load_builtin(DataSource::Mnist, Some(&dir)).unwrap();
        let mut c = DataConfig::new(Source::Csv("x.csv".into()));
        c.test_split = Some(0.1);
        let e = prepare(&c, loaded, None).unwrap_err().to_string();
        assert!(
            e.starts_with("test_split = 0.1: ")
                && e.ends_with("has its own test split; leave test_split unset"),
            "{e}"
        );
    }

    #[test]
    fn more_classes_than_the_bound_are_refused_with_the_count() {
        let loaded = Loaded {
            input: vec![1],
            task: Task::Classify {
                classes: (0..=MAX_CLASSES).map(|c| c.to_string()).collect(),
            },
            train: Samples {
                x: Inputs::Values(vec![0.0, 1.0]),
                y: Targets::Classes(vec![0, 1]),
            },
            test: None,
            origin: "/d/x.csv".into(),
        };
        let c = DataConfig::new(Source::Csv("/d/x.csv".into()));
        let e = prepare(&c, loaded, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "/d/x.csv: 1048577 classes, more than the 1048576 lrfind handles"
        );
    }

    #[test]
    fn an_inconsistent_loader_result_is_an_error_not_a_panic() {
        let loaded = Loaded {
            input: vec![3],
            task: Task::Classify {
                classes: vec!["a".into(), "b".into()],
            },
            train: Samples {
                x: Inputs::Values(vec![0.0; 5]),
                y: Targets::Classes(vec![0, 1]),
            },
            test: None,
            origin: "/d/x.npz".into(),
        };
        let c = DataConfig::new(Source::Tensors("/d/x.npz".into()));
        let e = prepare(&c, loaded.clone(), None).unwrap_err().to_string();
        assert_eq!(
            e,
            "/d/x.npz: training split: 5 input values for 2 samples of 3"
        );
        let mut bad = loaded;
        bad.train.x = Inputs::Values(vec![0.0; 6]);
        bad.train.y = Targets::Classes(vec![0, 2]);
        let e = prepare(&c, bad, None).unwrap_err().to_string();
        assert_eq!(e, "/d/x.npz: training split: class index 2 but 2 classes");
    }
}
