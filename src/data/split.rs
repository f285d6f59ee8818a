//! Train / validation / test splits and the standardisation of table rows.
//!
//! The held-out splits are carved from the loaded training samples with a seeded shuffle
//! (ChaCha8 from `split_seed`, never the training seed): the test split first, then the
//! validation split. For classes the carving is stratified: each class is shuffled on its own
//! stream and gives its share of each split, the shares rounded by largest remainder so the
//! split sizes are exactly `round(fraction · n)`; every class keeps at least one training
//! sample. Which samples a class gives depends only on that class's samples, in file order.
//! Within each split, samples keep their file order.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::samples::{Inputs, Loaded, Samples, Targets};
use crate::error::{Error, Result, Scope};

/// Where a held-out split came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum HeldOutFrom {
    /// Carved off the loaded training samples.
    Carved {
        /// The fraction of them asked for.
        fraction: f64,
        /// Stratified by class (classification) or a plain random draw (regression).
        stratified: bool,
        /// The split's seed.
        split_seed: u64,
    },
    /// Given by the files (MNIST's `t10k`, CIFAR-10's `test_batch`, `x_test`, `DIR/test`).
    Files,
}

/// One held-out split: its size and origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Number of samples.
    pub samples: usize,
    /// Where they came from.
    #[serde(flatten)]
    pub from: HeldOutFrom,
}

/// Which split is which, for reports and run directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    /// Samples trained on.
    pub train: usize,
    /// The validation split: the only held-out data anything is chosen on (the range test's
    /// validation loss, early stopping, the best checkpoint, ReduceLROnPlateau). None when
    /// `val_split` is 0.
    pub validation: Option<HeldOut>,
    /// The test split: only evaluated and reported, never used to choose anything.
    pub test: Option<HeldOut>,
}

/// Per-feature statistics of the training split, applied as `(x - mean) / std` to every split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Feature names, in input order.
    pub features: Vec<String>,
    /// Mean of each feature over the training split.
    pub mean: Vec<f64>,
    /// Population standard deviation of each feature (1 where it was 0: a constant feature
    /// is centred, not blown up).
    pub std: Vec<f64>,
}

impl Standardization {
    /// The statistics of `x` (rows of `features.len()` values).
    pub fn fit(x: &[f32], features: Vec<String>) -> Self {
        let d = features.len().max(1);
        let n = (x.len() / d).max(1) as f64;
        let mut mean = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 && sd.is_finite() {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            features,
            mean,
            std,
        }
    }

    /// Standardises rows of `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len().max(1);
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = ((f64::from(*v) - m) / s) as f32;
            }
        }
    }
}

/// Sample indices of each split, each in ascending (file) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carved {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub val: Vec<usize>,
    /// Test samples (empty unless a test fraction was asked for).
    pub test: Vec<usize>,
}

/// Shares of `total` for groups of sizes `sizes` in proportion to them, rounded by largest
/// remainder (ties to the lower index): they add up to exactly `total`.
fn shares(sizes: &[usize], fraction: f64) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    let total = (fraction * n as f64).round() as usize;
    let exact: Vec<f64> = sizes.iter().map(|&s| fraction * s as f64).collect();
    let mut out: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = total.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // Stable sort: equal remainders keep index order.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra)
    });
    for i in order {
        if left == 0 {
            break;
        }
        if out[i] < sizes[i] {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

/// Carves test (`test` fraction) and validation (`val` fraction) samples off samples with
/// targets `y`, seeded by `seed`; stratified by class for class targets.
pub fn carve(y: &Targets, val: f64, test: f64, seed: u64) -> Carved {
    let groups: Vec<Vec<usize>> = match y {
        Targets::Classes(c) => {
            let k = c.iter().max().map_or(0, |&m| m as usize + 1);
            let mut g = vec![Vec::new(); k];
            for (i, &cls) in c.iter().enumerate() {
                g[cls as usize].push(i);
            }
            g
        }
        Targets::Values { .. } => vec![(0..y.len()).collect()],
    };
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let n_test = shares(&sizes, test);
    let n_val = shares(&sizes, val);
    let mut out = Carved {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for (g, mut idx) in groups.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(g as u64);
        idx.shuffle(&mut rng);
        let (mut t, mut v) = (n_test[g], n_val[g]);
        // Every class keeps a training sample: validation gives way first.
        while !idx.is_empty() && t + v >= idx.len() {
            if v > 0 {
                v -= 1;
            } else {
                t -= 1;
            }
        }
        out.test.extend_from_slice(&idx[..t]);
        out.val.extend_from_slice(&idx[t..t + v]);
        out.train.extend_from_slice(&idx[t + v..]);
    }
    out.train.sort_unstable();
    out.val.sort_unstable();
    out.test.sort_unstable();
    out
}

/// A fraction asked for must leave at least one sample in its split.
fn check_sizes(origin: &str, y: &Targets, c: &Carved, val: f64, test: Option<f64>) -> Result<()> {
    let n = y.len();
    // Classes too small to give a sample: every class keeps one for training.
    let (classes, single) = match y {
        Targets::Classes(cls) => {
            let k = cls.iter().max().map_or(0, |&m| m as usize + 1);
            let mut count = vec![0usize; k];
            for &c in cls {
                count[c as usize] += 1;
            }
            let present = count.iter().filter(|&&s| s > 0).count();
            (present, count.iter().filter(|&&s| s == 1).count())
        }
        Targets::Values { .. } => (0, 0),
    };
    let too_few = |field: &'static str, f: f64, which: &str| {
        let why = if single * 2 > classes && (0.5 / f).ceil() as usize <= n {
            format!(
                "leaves no {which} sample of the {n} in {origin}: {single} of its {classes} classes have a single sample, which each keeps for training (a class needs at least 2 samples to give one to a held-out split); give more samples per class, or set {field} to 0"
            )
        } else {
            format!(
                "leaves no {which} sample of the {n} in {origin} (that takes at least {} samples)",
                (0.5 / f).ceil() as usize
            )
        };
        Error::setting(Scope::Data, field, f, why)
    };
    if val > 0.0 && c.val.is_empty() {
        return Err(too_few("val_split", val, "validation"));
    }
    match test {
        Some(t) if c.test.is_empty() => Err(too_few("test_split", t, "test")),
        _ => Ok(()),
    }
}

/// The three splits of `loaded`, and their description.
pub struct Split {
    /// Training samples.
    pub train: Samples,
    /// Validation samples (possibly none).
    pub val: Samples,
    /// Test samples, from the files or carved.
    pub test: Option<Samples>,
    /// Which is which.
    pub splits: Splits,
}

/// Splits `loaded` as `val`/`test` fractions and `seed` say; `test` must be None when the
/// files give a test split (checked by the caller, who knows which option to name).
pub fn split(loaded: Loaded, val: f64, test: Option<f64>, seed: u64) -> Result<Split> {
    let d: usize = loaded.input.iter().product();
    let n = loaded.train.len();
    if n == 0 {
        return Err(Error::data(&loaded.origin, "no training samples"));
    }
    let carved = carve(&loaded.train.y, val, test.unwrap_or(0.0), seed);
    check_sizes(&loaded.origin, &loaded.train.y, &carved, val, test)?;
    let stratified = matches!(loaded.train.y, Targets::Classes(_));
    let held = |samples: usize, fraction: f64| HeldOut {
        samples,
        from: HeldOutFrom::Carved {
            fraction,
            stratified,
            split_seed: seed,
        },
    };
    let splits = Splits {
        train: carved.train.len(),
        validation: (val > 0.0).then(|| held(carved.val.len(), val)),
        test: match (&loaded.test, test) {
            (Some(t), _) => Some(HeldOut {
                samples: t.len(),
                from: HeldOutFrom::Files,
            }),
            (None, Some(f)) => Some(held(carved.test.len(), f)),
            (None, None) => None,
        },
    };
    let val_s = loaded.train.select(&carved.val, d);
    let test_s = match (loaded.test, test) {
        (Some(t), _) => Some(t),
        (None, Some(_)) => Some(loaded.train.select(&carved.test, d)),
        (None, None) => None,
    };
    // Nothing carved: keep the buffer (47 MB for MNIST) instead of copying it.
    let train = if carved.train.len() == n {
        loaded.train
    } else {
        loaded.train.select(&carved.train, d)
    };
    Ok(Split {
        train,
        val: val_s,
        test: test_s,
        splits,
    })
}

/// Standardises the value inputs of `train`, `val` and `test` with `train`'s statistics.
pub fn standardize(
    features: Vec<String>,
    train: &mut Samples,
    val: &mut Samples,
    test: Option<&mut Samples>,
) -> Option<Standardization> {
    let Inputs::Values(x) = &train.x else {
        return None;
    };
    let st = Standardization::fit(x, features);
    for s in [Some(train), Some(val), test].into_iter().flatten() {
        if let Inputs::Values(x) = &mut s.x {
            st.apply(x);
        }
    }
    Some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(counts: &[usize]) -> Targets {
        // Interleaved, as in a shuffled file.
        let mut y = Vec::new();
        let max = counts.iter().max().copied().unwrap_or(0);
        for i in 0..max {
            for (c, &n) in counts.iter().enumerate() {
                if i < n {
                    y.push(c as u32);
                }
            }
        }
        Targets::Classes(y)
    }

    fn count(y: &Targets, idx: &[usize], class: u32) -> usize {
        let Targets::Classes(c) = y else { panic!() };
        idx.iter().filter(|&&i| c[i] == class).count()
    }

    #[test]
    fn largest_remainder_shares_add_up() {
        // The MNIST fixture's training class counts: round(0.1 * n_c) would give 199.
        let sizes = [196, 229, 202, 219, 203, 174, 197, 191, 185, 204];
        let s = shares(&sizes, 0.1);
        assert_eq!(s.iter().sum::<usize>(), 200);
        // Each class gives floor or ceil of its exact share; the largest remainders
        // (0.9 for 229 and 219) round up.
        assert_eq!(s, [20, 23, 20, 22, 20, 17, 20, 19, 19, 20]);
        assert_eq!(shares(&[3, 3, 3], 0.5), [2, 2, 1]);
        assert_eq!(shares(&[10], 0.0), [0]);
    }

    #[test]
    fn stratified_carving_counts_per_class() {
        let y = classes(&[50, 30, 20]);
        let c = carve(&y, 0.1, 0.2, 0);
        assert_eq!((c.train.len(), c.val.len(), c.test.len()), (70, 10, 20));
        for (class, (v, t)) in [(0u32, (5, 10)), (1, (3, 6)), (2, (2, 4))] {
            assert_eq!(count(&y, &c.val, class), v, "class {class}");
            assert_eq!(count(&y, &c.test, class), t, "class {class}");
        }
        let mut all = [c.train.clone(), c.val.clone(), c.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(c.val.windows(2).all(|w| w[0] < w[1]), "file order");
    }

    #[test]
    fn every_class_keeps_a_training_sample() {
        // Classes of 1 and 2 samples with half held out for validation and 40 % for test.
        let y = classes(&[1, 2, 40]);
        let c = carve(&y, 0.5, 0.4, 3);
        for class in 0..3 {
            assert!(count(&y, &c.train, class) >= 1, "class {class}");
        }
        assert_eq!(count(&y, &c.train, 2), 4);
    }

    #[test]
    fn the_split_depends_on_split_seed_only_and_per_class() {
        let y = classes(&[40, 40]);
        let a = carve(&y, 0.25, 0.0, 7);
        assert_eq!(a, carve(&y, 0.25, 0.0, 7));
        assert_ne!(a.val, carve(&y, 0.25, 0.0, 8).val);
        // Class 0's samples listed first instead of interleaved: it still gives the same
        // samples (by their rank within the class).
        let Targets::Classes(c) = &y else { panic!() };
        let rank = |idx: &[usize], ys: &[u32], class: u32| -> Vec<usize> {
            let members: Vec<usize> = (0..ys.len()).filter(|&i| ys[i] == class).collect();
            idx.iter()
                .filter(|&&i| ys[i] == class)
                .map(|i| members.iter().position(|m| m == i).unwrap())
                .collect()
        };
        let mut sorted = c.clone();
        sorted.sort_unstable();
        let b = carve(&Targets::Classes(sorted.clone()), 0.25, 0.0, 7);
        for class in 0..2 {
            assert_eq!(rank(&a.val, c, class), rank(&b.val, &sorted, class));
        }
    }

    #[test]
    fn regression_carving_is_a_plain_draw() {
        let y = Targets::Values {
            values: (0..20).map(|v| v as f32).collect(),
            columns: 1,
        };
        let c = carve(&y, 0.1, 0.25, 0);
        assert_eq!((c.train.len(), c.val.len(), c.test.len()), (13, 2, 5));
    }

    #[test]
    fn too_few_samples_are_named() {
        let y = classes(&[2, 2]);
        let loaded = Loaded {
            input: vec![1],
            task: crate::data::Task::Classify {
                classes: vec!["a".into(), "b".into()],
            },
            train: Samples {
                x: Inputs::Values(vec![0.0; 4]),
                y,
            },
            test: None,
            origin: "/d/t.csv".into(),
        };
        let e = split(loaded.clone(), 0.1, None, 0)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "val_split = 0.1: leaves no validation sample of the 4 in /d/t.csv (that takes at least 5 samples)"
        );
        let s = split(loaded.clone(), 0.0, Some(0.5), 0).ok().unwrap();
        assert_eq!((s.train.len(), s.val.len()), (2, 0));
        assert_eq!(s.splits.validation, None);
        assert_eq!(s.test.map(|t| t.len()), Some(2));
    }

    #[test]
    fn standardisation_uses_population_std_and_maps_zero_to_one() {
        // Feature a: 1, 2, 3, 4 -> mean 2.5, var (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
        let x = vec![1.0f32, 7.0, 2.0, 7.0, 3.0, 7.0, 4.0, 7.0];
        let st = Standardization::fit(&x, vec!["a".into(), "b".into()]);
        assert_eq!(st.mean, [2.5, 7.0]);
        assert_eq!(st.std, [1.25f64.sqrt(), 1.0]);
        let mut y = vec![2.5f32, 9.0];
        st.apply(&mut y);
        assert_eq!(y, [0.0, 2.0]);
    }
}
