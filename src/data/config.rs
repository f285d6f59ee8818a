//! What data to use and how to split it: [`DataConfig`]. Reports and run directories store
//! it, so `train --use-suggested` and a resumed run rebuild exactly the same splits (the split
//! has its own seed, `split_seed`: runs over training seeds compare on one validation set).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DataSource;
use crate::error::{Error, Result, Scope};

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A dataset lrfind knows by name (its own train/test split; `data_dir` says where).
    Builtin(DataSource),
    /// A CSV file with a header row.
    Csv(PathBuf),
    /// `.npy` files, an `.npz` or a `.safetensors` file with arrays `x`/`y`.
    Tensors(PathBuf),
    /// A directory in torchvision's `ImageFolder` layout (`DIR/class_name/*.png`).
    ImageFolder(PathBuf),
}

/// The prefixes that name a source's kind explicitly (`csv:data.txt`).
const PREFIXES: [(&str, Kind); 8] = [
    ("csv", Kind::Csv),
    ("tensors", Kind::Tensors),
    ("npy", Kind::Tensors),
    ("npz", Kind::Tensors),
    ("safetensors", Kind::Tensors),
    ("images", Kind::ImageFolder),
    ("image-folder", Kind::ImageFolder),
    ("imagefolder", Kind::ImageFolder),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Csv,
    Tensors,
    ImageFolder,
}

impl Kind {
    fn with(self, path: PathBuf) -> Source {
        match self {
            Kind::Csv => Source::Csv(path),
            Kind::Tensors => Source::Tensors(path),
            Kind::ImageFolder => Source::ImageFolder(path),
        }
    }
}

const ALLOWED_SOURCES: &str = "a built-in dataset (digits, mnist, fashion-mnist, cifar10), a .csv, .npy, .npz or .safetensors file, or an image-folder directory; or name the kind: csv:PATH, tensors:PATH, images:PATH";

impl Source {
    /// Reads a source as typed: a built-in name (`mnist`, which wins over a file of that
    /// name: write `./mnist` for the file), `kind:path` (`csv:`, `tensors:`/`npy:`/`npz:`/
    /// `safetensors:`, `images:`), or a path whose kind is told by its extension (`.csv`,
    /// `.npy`, `.npz`, `.safetensors`) or by being a directory (an image folder).
    pub fn parse(s: &str) -> Result<Source> {
        if let Ok(d) = s.parse::<DataSource>() {
            return Ok(Source::Builtin(d));
        }
        if let Some((prefix, rest)) = s.split_once(':') {
            let known = PREFIXES
                .iter()
                .find(|(p, _)| p.eq_ignore_ascii_case(prefix));
            if let Some((_, kind)) = known {
                if rest.is_empty() {
                    return Err(Error::setting(
                        Scope::Data,
                        "source",
                        s,
                        format!("no path after '{prefix}:'"),
                    ));
                }
                return Ok(kind.with(PathBuf::from(rest)));
            }
        }
        let path = PathBuf::from(s);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => return Ok(Source::Csv(path)),
            Some("npy" | "npz" | "safetensors") => return Ok(Source::Tensors(path)),
            _ => {}
        }
        if path.is_dir() {
            return Ok(Source::ImageFolder(path));
        }
        let why = if path.exists() {
            format!("unknown kind of file; expected {ALLOWED_SOURCES}")
        } else {
            format!("no such dataset, file or directory; expected {ALLOWED_SOURCES}")
        };
        Err(Error::setting(Scope::Data, "source", s, why))
    }

    /// The file or directory a file source reads (None for a built-in dataset).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Builtin(_) => None,
            Source::Csv(p) | Source::Tensors(p) | Source::ImageFolder(p) => Some(p),
        }
    }

    /// The kind, as the settings' error messages name it.
    fn kind_name(&self) -> &'static str {
        match self {
            Source::Builtin(_) => "a built-in dataset",
            Source::Csv(_) => "a CSV file",
            Source::Tensors(_) => "tensor files",
            Source::ImageFolder(_) => "an image folder",
        }
    }
}

impl std::fmt::Display for Source {
    /// A built-in dataset's name, or `kind:path` (which [`Source::parse`] reads back).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin(d) => write!(f, "{d}"),
            Source::Csv(p) => write!(f, "csv:{}", p.display()),
            Source::Tensors(p) => write!(f, "tensors:{}", p.display()),
            Source::ImageFolder(p) => write!(f, "images:{}", p.display()),
        }
    }
}

/// Classification or regression, when a CSV or tensor file's targets could be read either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Class labels (text, or whole numbers).
    Classify,
    /// Real-valued targets.
    Regress,
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "classify" | "classification" => Ok(TaskKind::Classify),
            "regress" | "regression" => Ok(TaskKind::Regress),
            _ => Err(Error::setting(
                Scope::Data,
                "task",
                s,
                "expected classify or regress",
            )),
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskKind::Classify => "classify",
            TaskKind::Regress => "regress",
        })
    }
}

/// The size images are resized to (an image folder's `image_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

/// Largest side an image is resized to.
pub const MAX_IMAGE_SIDE: usize = 4096;

impl std::str::FromStr for ImageSize {
    type Err = Error;
    /// `HxW` (`28x28`) or one number for a square.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::setting(
                Scope::Data,
                "image_size",
                s,
                "expected HxW (e.g. 28x28) or one number for a square",
            )
        };
        let (h, w) = match s.split_once(['x', 'X', '×']) {
            Some((h, w)) => (h.trim(), w.trim()),
            None => (s.trim(), s.trim()),
        };
        let size = ImageSize {
            height: h.parse().map_err(|_| bad())?,
            width: w.parse().map_err(|_| bad())?,
        };
        size.validate()?;
        Ok(size)
    }
}

impl ImageSize {
    fn validate(&self) -> Result<()> {
        let ok = |v: usize| (1..=MAX_IMAGE_SIDE).contains(&v);
        if ok(self.height) && ok(self.width) {
            Ok(())
        } else {
            Err(Error::setting(
                Scope::Data,
                "image_size",
                self,
                format!("each side must be 1 to {MAX_IMAGE_SIDE} pixels"),
            ))
        }
    }
}

impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}

/// The default fraction of the training data held out for validation.
pub const DEFAULT_VAL_SPLIT: f64 = 0.1;

fn default_val_split() -> f64 {
    DEFAULT_VAL_SPLIT
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Which data, read how, split how. Options that do not apply to the source must stay unset
/// ([`DataConfig::validate`] names the first that is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the samples come from.
    pub source: Source,
    /// Built-in datasets: the directory with their files (None: `$LRFIND_DATA`, the usual
    /// places, then the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// CSV: the target column(s) by name; empty means the last column. More than one is a
    /// regression on several targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<String>,
    /// CSV: the feature columns by name, in this order; empty means every other column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// CSV and tensors: classification or regression, overriding what the targets suggest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskKind>,
    /// Tensors: the inputs' array name (None: `x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_key: Option<String>,
    /// Tensors: the targets' array name (None: `y`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_key: Option<String>,
    /// Image folders: the size every image is resized to (None: the first image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,
    /// Image folders: 1 (grey) or 3 (RGB) channels (None: 1 when every image is grey, else 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Fraction of the training data held out for validation, in [0, 1) (0: none).
    #[serde(default = "default_val_split")]
    pub val_split: f64,
    /// Fraction of the training data held out as a test split, in (0, 1), for sources whose
    /// files give none (an error for those that do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_split: Option<f64>,
    /// Standardise rank-1 inputs (table rows) with the training split's mean and std.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub standardize: bool,
    /// Seed of the train/validation/test split (independent of the training seed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub split_seed: u64,
}

impl Default for DataConfig {
    /// The embedded `digits` dataset, split by default.
    fn default() -> Self {
        Self::new(Source::Builtin(DataSource::Digits))
    }
}

impl From<DataSource> for DataConfig {
    fn from(d: DataSource) -> Self {
        Self::new(Source::Builtin(d))
    }
}

impl DataConfig {
    /// `source` with every option at its default.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            data_dir: None,
            target: Vec::new(),
            features: Vec::new(),
            task: None,
            x_key: None,
            y_key: None,
            image_size: None,
            channels: None,
            val_split: DEFAULT_VAL_SPLIT,
            test_split: None,
            standardize: true,
            split_seed: 0,
        }
    }

    /// A built-in dataset read from `dir` (None: the usual places).
    pub fn builtin(source: DataSource, dir: Option<PathBuf>) -> Self {
        Self {
            data_dir: dir,
            ..Self::new(Source::Builtin(source))
        }
    }

    /// The inputs' array name in tensor files.
    pub fn x_key(&self) -> &str {
        self.x_key.as_deref().unwrap_or("x")
    }

    /// The targets' array name in tensor files.
    pub fn y_key(&self) -> &str {
        self.y_key.as_deref().unwrap_or("y")
    }

    /// A short name for titles and messages: the built-in name or the file's name.
    pub fn name(&self) -> String {
        match &self.source {
            Source::Builtin(d) => d.to_string(),
            Source::Csv(p) | Source::Tensors(p) | Source::ImageFolder(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
        }
    }

    /// The same config with its paths absolute (symlinks resolved where they exist), so a
    /// report or run read from another directory still finds the data.
    pub fn with_absolute_paths(mut self) -> Self {
        let abs = |p: &Path| {
            std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        self.data_dir = self.data_dir.as_deref().map(abs);
        match &mut self.source {
            Source::Builtin(_) => {}
            Source::Csv(p) | Source::Tensors(p) | Source::ImageFolder(p) => *p = abs(p),
        }
        self
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        self.check_fractions()?;
        self.check_applies()?;
        self.check_csv_columns()?;
        if let Some(size) = &self.image_size {
            size.validate()?;
        }
        if let Some(c) = self.channels {
            if c != 1 && c != 3 {
                return Err(Error::setting(
                    Scope::Data,
                    "channels",
                    c,
                    "expected 1 (grey) or 3 (RGB)",
                ));
            }
        }
        for (field, key) in [("x_key", &self.x_key), ("y_key", &self.y_key)] {
            if key.as_deref().is_some_and(|k| k.trim().is_empty()) {
                return Err(Error::setting(
                    Scope::Data,
                    field,
                    "''",
                    "must name an array",
                ));
            }
        }
        if matches!(self.source, Source::Tensors(_)) && self.x_key() == self.y_key() {
            return Err(Error::setting(
                Scope::Data,
                "y_key",
                self.y_key(),
                "must differ from x_key",
            ));
        }
        Ok(())
    }

    fn check_fractions(&self) -> Result<()> {
        let v = self.val_split;
        if !(v.is_finite() && (0.0..1.0).contains(&v)) {
            return Err(Error::setting(
                Scope::Data,
                "val_split",
                v,
                "must be a fraction in [0, 1) (0: no validation split)",
            ));
        }
        if let Some(t) = self.test_split {
            if !(t.is_finite() && t > 0.0 && t < 1.0) {
                return Err(Error::setting(
                    Scope::Data,
                    "test_split",
                    t,
                    "must be a fraction in (0, 1)",
                ));
            }
            if v + t >= 1.0 {
                return Err(Error::setting(
                    Scope::Data,
                    "test_split",
                    t,
                    format!("with val_split {v} leaves nothing to train on: the two must add up to less than 1"),
                ));
            }
        }
        Ok(())
    }

    /// Options that only some sources read must not be set for the others.
    fn check_applies(&self) -> Result<()> {
        let src = &self.source;
        let (csv, tensors, images, builtin) = (
            matches!(src, Source::Csv(_)),
            matches!(src, Source::Tensors(_)),
            matches!(src, Source::ImageFolder(_)),
            matches!(src, Source::Builtin(_)),
        );
        let not_for = |field: &'static str, value: String, applies: &str| {
            Error::setting(
                Scope::Data,
                field,
                value,
                format!("applies to {applies} only, not to {}", src.kind_name()),
            )
        };
        if let (false, Some(d)) = (builtin, &self.data_dir) {
            return Err(not_for(
                "data_dir",
                d.display().to_string(),
                "the built-in datasets",
            ));
        }
        if let (Source::Builtin(DataSource::Digits), Some(d)) = (src, &self.data_dir) {
            return Err(Error::setting(
                Scope::Data,
                "data_dir",
                d.display(),
                "the embedded 'digits' dataset reads no directory (name a dataset that does: mnist, fashion-mnist, cifar10)",
            ));
        }
        if !csv && !self.target.is_empty() {
            return Err(not_for("target", self.target.join(","), "CSV files"));
        }
        if !csv && !self.features.is_empty() {
            return Err(not_for("features", self.features.join(","), "CSV files"));
        }
        if let (false, Some(t)) = (csv || tensors, self.task) {
            return Err(not_for("task", t.to_string(), "CSV and tensor files"));
        }
        for (field, key) in [("x_key", &self.x_key), ("y_key", &self.y_key)] {
            if let (false, Some(k)) = (tensors, key) {
                return Err(not_for(field, k.clone(), "tensor files"));
            }
        }
        if let (false, Some(s)) = (images, &self.image_size) {
            return Err(not_for("image_size", s.to_string(), "image folders"));
        }
        if let (false, Some(c)) = (images, self.channels) {
            return Err(not_for("channels", c.to_string(), "image folders"));
        }
        if let (Source::Builtin(d), Some(t)) = (src, self.test_split) {
            return Err(Error::setting(
                Scope::Data,
                "test_split",
                t,
                format!("{d} has its own test split; leave test_split unset"),
            ));
        }
        Ok(())
    }

    fn check_csv_columns(&self) -> Result<()> {
        let dup = |names: &[String]| {
            names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n))
                .map(|(_, n)| n.clone())
        };
        for (field, names) in [("target", &self.target), ("features", &self.features)] {
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(Error::setting(
                    Scope::Data,
                    field,
                    names.join(","),
                    "a column name is empty",
                ));
            }
            if let Some(n) = dup(names) {
                return Err(Error::setting(
                    Scope::Data,
                    field,
                    names.join(","),
                    format!("names column '{n}' twice"),
                ));
            }
        }
        if let Some(n) = self.features.iter().find(|f| self.target.contains(f)) {
            return Err(Error::setting(
                Scope::Data,
                "features",
                self.features.join(","),
                format!("'{n}' is also the target"),
            ));
        }
        if self.target.len() > 1 && self.task == Some(TaskKind::Classify) {
            return Err(Error::setting(
                Scope::Data,
                "target",
                self.target.join(","),
                "classification takes one target column (several are a regression)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &DataConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn sources_parse_by_name_prefix_extension_and_directory() {
        let p = |s: &str| Source::parse(s).unwrap();
        assert_eq!(p("mnist"), Source::Builtin(DataSource::Mnist));
        assert_eq!(p("a/b.CSV"), Source::Csv("a/b.CSV".into()));
        assert_eq!(p("x.npz"), Source::Tensors("x.npz".into()));
        assert_eq!(p("w.safetensors"), Source::Tensors("w.safetensors".into()));
        assert_eq!(p("csv:data.txt"), Source::Csv("data.txt".into()));
        assert_eq!(p("Images:pics"), Source::ImageFolder("pics".into()));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(p(d), Source::ImageFolder(d.into()));
        // Display reads back.
        for s in [p("x.npz"), p("csv:t.txt"), p(d), p("cifar10")] {
            assert_eq!(Source::parse(&s.to_string()).unwrap(), s);
        }
        let e = Source::parse("nope.txt").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "source = nope.txt: no such dataset, file or directory; expected a built-in"
            ),
            "{e}"
        );
        let e = Source::parse("csv:").unwrap_err().to_string();
        assert_eq!(e, "source = csv:: no path after 'csv:'");
    }

    #[test]
    fn fractions_are_checked() {
        let mut c = DataConfig::new(Source::Csv("a.csv".into()));
        assert!(c.validate().is_ok());
        c.val_split = 1.0;
        assert_eq!(
            err(&c),
            "val_split = 1: must be a fraction in [0, 1) (0: no validation split)"
        );
        c.val_split = 0.0;
        assert!(c.validate().is_ok());
        c.val_split = 0.5;
        c.test_split = Some(0.5);
        assert_eq!(
            err(&c),
            "test_split = 0.5: with val_split 0.5 leaves nothing to train on: the two must add up to less than 1"
        );
        c.test_split = Some(0.0);
        assert_eq!(err(&c), "test_split = 0: must be a fraction in (0, 1)");
        c.val_split = f64::NAN;
        assert!(err(&c).starts_with("val_split = NaN"));
    }

    #[test]
    fn options_for_other_sources_are_refused_by_name() {
        let mut c = DataConfig::builtin(DataSource::Mnist, None);
        c.target = vec!["y".into()];
        assert_eq!(
            err(&c),
            "target = y: applies to CSV files only, not to a built-in dataset"
        );
        let mut c = DataConfig::builtin(DataSource::Mnist, None);
        c.test_split = Some(0.2);
        assert_eq!(
            err(&c),
            "test_split = 0.2: mnist has its own test split; leave test_split unset"
        );
        let mut c = DataConfig::new(Source::Csv("a.csv".into()));
        c.data_dir = Some("d".into());
        assert!(err(&c).starts_with("data_dir = d: applies to the built-in datasets only"));
        c.data_dir = None;
        c.channels = Some(3);
        assert_eq!(
            err(&c),
            "channels = 3: applies to image folders only, not to a CSV file"
        );
        let mut c = DataConfig::new(Source::ImageFolder("d".into()));
        c.channels = Some(2);
        assert_eq!(err(&c), "channels = 2: expected 1 (grey) or 3 (RGB)");
        let mut c = DataConfig::new(Source::Tensors("a.npz".into()));
        c.y_key = Some("x".into());
        assert_eq!(err(&c), "y_key = x: must differ from x_key");
        let c = DataConfig::builtin(DataSource::Digits, Some("d".into()));
        assert!(err(&c).contains("reads no directory"));
    }

    #[test]
    fn csv_columns_are_checked() {
        let mut c = DataConfig::new(Source::Csv("a.csv".into()));
        c.features = vec!["a".into(), "b".into(), "a".into()];
        assert_eq!(err(&c), "features = a,b,a: names column 'a' twice");
        c.features = vec!["a".into(), "y".into()];
        c.target = vec!["y".into()];
        assert_eq!(err(&c), "features = a,y: 'y' is also the target");
        c.features.clear();
        c.target = vec!["y".into(), "z".into()];
        c.task = Some(TaskKind::Classify);
        assert!(err(&c).starts_with("target = y,z: classification takes one target column"));
    }

    #[test]
    fn image_sizes_parse() {
        let s: ImageSize = "28x32".parse().unwrap();
        assert_eq!((s.height, s.width), (28, 32));
        let s: ImageSize = "64".parse().unwrap();
        assert_eq!((s.height, s.width), (64, 64));
        let e = "0x5".parse::<ImageSize>().unwrap_err().to_string();
        assert_eq!(e, "image_size = 0x5: each side must be 1 to 4096 pixels");
        assert!("axb".parse::<ImageSize>().is_err());
    }

    #[test]
    fn a_config_round_trips_through_json_and_defaults_fill_in() {
        let mut c = DataConfig::new(Source::Csv("/d/iris.csv".into()));
        c.target = vec!["species".into()];
        c.test_split = Some(0.2);
        c.standardize = false;
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<DataConfig>(&text).unwrap(), c);
        let d: DataConfig = serde_json::from_str(r#"{"source": {"builtin": "mnist"}}"#).unwrap();
        assert_eq!(d, DataConfig::builtin(DataSource::Mnist, None));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"source":{"builtin":"mnist"},"val_split":0.1}"#
        );
    }
}
