//! Data of any kind, as loaders hand it over: inputs (bytes or floats) and targets (classes or
//! values), before it is split and moved to a device.

use serde::{Deserialize, Serialize};

/// Most classes a dataset may have (2^20): every loader refuses more, naming the count.
/// A model's last layer has a row per class, so more would not fit anyway.
pub const MAX_CLASSES: usize = 1 << 20;

/// The inputs of a set of samples, sample after sample, each of the dataset's input shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Image bytes; a batch turns them into f32 in [0, 1] (÷ 255) only when it is drawn.
    Pixels(Vec<u8>),
    /// Feature values, used as they are (after standardisation, where that applies).
    Values(Vec<f32>),
}

impl Inputs {
    /// Number of scalars (samples × values per sample).
    pub fn len(&self) -> usize {
        match self {
            Inputs::Pixels(v) => v.len(),
            Inputs::Values(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The targets of a set of samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per sample, into [`Task::Classify`]'s class list.
    Classes(Vec<u32>),
    /// `columns` values per sample (regression), sample after sample.
    Values {
        /// The values, row-major.
        values: Vec<f32>,
        /// Values per sample (at least 1).
        columns: usize,
    },
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values { values, columns } => values.len() / (*columns).max(1),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A set of samples: `y.len()` inputs back to back in `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Inputs.
    pub x: Inputs,
    /// Targets, one entry (or row) per sample.
    pub y: Targets,
}

impl Samples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// What is learnt: classes (by name, in a stable order) or regression targets (by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Classification; class `i` is `classes[i]`.
    Classify {
        /// Class names, index order.
        classes: Vec<String>,
    },
    /// Regression on one or more target columns.
    Regress {
        /// Target names, column order.
        targets: Vec<String>,
    },
}

impl Task {
    /// Outputs a model needs: one per class (one logit for binary cross-entropy is the
    /// loss's business), one per target column.
    pub fn outputs(&self) -> usize {
        match self {
            Task::Classify { classes } => classes.len(),
            Task::Regress { targets } => targets.len(),
        }
    }
}

/// What a file loader returns, before the validation split is carved off.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The shape of one sample's input: `[channels, height, width]` for images, `[features]`
    /// for rows.
    pub input: Vec<usize>,
    /// Classification or regression, with names.
    pub task: Task,
    /// The training samples (the validation split is carved from these later).
    pub train: Samples,
    /// A test split the files themselves provide (`x_test`/`y_test`, `DIR/test`), if any.
    pub test: Option<Samples>,
    /// Where it came from (an absolute path).
    pub origin: String,
}

impl Inputs {
    /// The samples at `idx` (in that order), `per_sample` values each.
    pub fn select(&self, idx: &[usize], per_sample: usize) -> Inputs {
        fn pick<T: Copy>(v: &[T], idx: &[usize], d: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * d);
            for &i in idx {
                out.extend_from_slice(&v[i * d..(i + 1) * d]);
            }
            out
        }
        match self {
            Inputs::Pixels(v) => Inputs::Pixels(pick(v, idx, per_sample)),
            Inputs::Values(v) => Inputs::Values(pick(v, idx, per_sample)),
        }
    }
}

impl Targets {
    /// The targets of the samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Targets {
        match self {
            Targets::Classes(c) => Targets::Classes(idx.iter().map(|&i| c[i]).collect()),
            Targets::Values { values, columns } => {
                let k = *columns;
                let mut out = Vec::with_capacity(idx.len() * k);
                for &i in idx {
                    out.extend_from_slice(&values[i * k..(i + 1) * k]);
                }
                Targets::Values {
                    values: out,
                    columns: k,
                }
            }
        }
    }
}

impl Samples {
    /// The samples at `idx` (indices below [`Samples::len`]), in that order; `per_sample`
    /// is the number of input values of one sample.
    pub fn select(&self, idx: &[usize], per_sample: usize) -> Samples {
        Samples {
            x: self.x.select(idx, per_sample),
            y: self.y.select(idx),
        }
    }
}

#[cfg(test)]
impl Samples {
    /// The image bytes and class labels (as bytes) of a built-in dataset's split, for tests
    /// that rebuild the same images in other file formats.
    pub(crate) fn pixels_and_labels(&self) -> (Vec<u8>, Vec<u8>) {
        let px = match &self.x {
            Inputs::Pixels(p) => p.clone(),
            Inputs::Values(_) => panic!("not an image split"),
        };
        let labels = match &self.y {
            Targets::Classes(c) => c.iter().map(|&c| c as u8).collect(),
            Targets::Values { .. } => panic!("not a classification split"),
        };
        (px, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_picks_whole_samples_in_the_order_asked() {
        let s = Samples {
            x: Inputs::Values(vec![0., 1., 10., 11., 20., 21.]),
            y: Targets::Values {
                values: vec![0.5, 1.5, 2.5],
                columns: 1,
            },
        };
        let t = s.select(&[2, 0], 2);
        assert_eq!(t.x, Inputs::Values(vec![20., 21., 0., 1.]));
        assert_eq!(
            t.y,
            Targets::Values {
                values: vec![2.5, 0.5],
                columns: 1
            }
        );
        let p = Samples {
            x: Inputs::Pixels(vec![1, 2, 3]),
            y: Targets::Classes(vec![7, 8, 9]),
        };
        let q = p.select(&[1], 1);
        assert_eq!(
            (q.x, q.y),
            (Inputs::Pixels(vec![2]), Targets::Classes(vec![8]))
        );
    }
}
