//! The golden reference format (`schedulers.json`, produced by real PyTorch) and [`simulate`],
//! which runs any config the way the golden generator ran PyTorch.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::base::ParamGroups;
use super::check::Steps;
use super::config::{RawConfig, SchedulerConfig};
use super::error::ScheduleError;

/// Every group's lr (and momentum, where the optimizer has one) after construction (row 0) and
/// after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The lr rows, one value per group.
    pub lr: Vec<Vec<f64>>,
    /// The momentum rows, one value per group; `None` when the optimizer has no momentum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<Vec<Vec<f64>>>,
}

/// Builds `config` on `groups` and steps it `steps` times, passing `metrics[i]` to the
/// (i+1)-th step when given (required when the schedule needs a metric).
pub fn simulate(
    config: &SchedulerConfig,
    groups: ParamGroups,
    steps: usize,
    metrics: Option<&[f64]>,
) -> Result<Trace, ScheduleError> {
    let mut rows = Steps::new(config, groups, steps, metrics)?;
    // Grows as it goes: a huge `steps` fails on memory only if the rows really get there.
    let cap = steps.min(1 << 16) + 1;
    let mut lr = Vec::with_capacity(cap);
    let mut momentum: Option<Vec<Vec<f64>>> = None;
    while let Some((_, g)) = rows.next_row()? {
        lr.push(g.lr.clone());
        if let Some(m) = &g.momentum {
            momentum
                .get_or_insert_with(|| Vec::with_capacity(cap))
                .push(m.clone());
        }
    }
    Ok(Trace { lr, momentum })
}

/// A whole golden file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenFile {
    /// The PyTorch version that produced the expected values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_version: Option<String>,
    /// The script that generated the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<String>,
    /// The cases, in file order.
    pub cases: Vec<GoldenCase>,
}

impl GoldenFile {
    /// Parses a golden file's JSON text.
    pub fn from_json(text: &str) -> Result<Self, ScheduleError> {
        serde_json::from_str(text).map_err(|e| ScheduleError::Golden(e.to_string()))
    }

    /// Reads and parses the golden file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScheduleError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScheduleError::Golden(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
            .map_err(|e| ScheduleError::Golden(format!("{}: {e}", path.display())))
    }
}

/// One case: a scheduler config, an optimizer, a step count, and (optionally) expected values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenCase {
    /// Unique name of the case.
    pub id: String,
    /// PyTorch's class name.
    pub scheduler: String,
    /// Keyword arguments, by PyTorch's names.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The optimizer the schedule drives.
    pub optimizer: GoldenOptimizer,
    /// Number of `step()` calls after construction.
    pub steps: usize,
    /// The metric passed to each step (ReduceLROnPlateau), one per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<f64>>,
    /// The child schedulers of a composite, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<RawConfig>,
    /// What PyTorch computed, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<GoldenExpected>,
}

/// `{"kind": "SGD", "lrs": [...], "momentum": m}` or `{"kind": "Adam", "lrs": [...], "betas": [b1, b2]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenOptimizer {
    /// PyTorch's optimizer class name, e.g. "SGD" or "Adam".
    pub kind: String,
    /// Initial lr of each param group.
    pub lrs: Vec<f64>,
    /// SGD's momentum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Adam's `(beta1, beta2)`; `beta1` plays the momentum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<Vec<f64>>,
}

/// `expected.lr` / `expected.momentum`: `steps + 1` rows of one value per group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenExpected {
    /// Expected lrs.
    pub lr: Vec<Vec<f64>>,
    /// Expected momenta, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<Vec<Vec<f64>>>,
}

/// The first value of a case outside tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The case's id.
    pub id: String,
    /// Row index: 0 after construction, k after the k-th step.
    pub step: usize,
    /// Index of the param group.
    pub group: usize,
    /// "lr" or "momentum".
    pub what: &'static str,
    /// The value computed here.
    pub actual: f64,
    /// PyTorch's value.
    pub expected: f64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: first bad {} at step {} group {}: got {:e}, expected {:e} (diff {:e})",
            self.id,
            self.what,
            self.step,
            self.group,
            self.actual,
            self.expected,
            (self.actual - self.expected).abs()
        )
    }
}

/// `|actual - expected| <= max(1e-9 * |expected|, 1e-15)`.
pub fn within_tolerance(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= (1e-9 * expected.abs()).max(1e-15)
}

impl GoldenCase {
    /// The scheduler config (name, params, children).
    pub fn config(&self) -> Result<SchedulerConfig, ScheduleError> {
        SchedulerConfig::from_raw(RawConfig {
            scheduler: self.scheduler.clone(),
            params: self.params.clone(),
            children: self.children.clone(),
        })
    }

    /// The optimizer's param groups: SGD/RMSprop expose `momentum` (default 0), the Adam family
    /// `betas[0]` (default 0.9); others whichever of the two is given.
    pub fn param_groups(&self) -> Result<ParamGroups, ScheduleError> {
        let o = &self.optimizer;
        if o.lrs.is_empty() {
            return Err(ScheduleError::Golden(format!(
                "case {}: optimizer.lrs is empty",
                self.id
            )));
        }
        let beta1 = o.betas.as_ref().and_then(|b| b.first().copied());
        let m = match o.kind.to_ascii_lowercase().as_str() {
            "sgd" | "rmsprop" => Some(o.momentum.unwrap_or(0.0)),
            "adam" | "adamw" | "nadam" | "radam" | "adamax" => Some(beta1.unwrap_or(0.9)),
            _ => o.momentum.or(beta1),
        };
        let n = o.lrs.len();
        Ok(ParamGroups::new(o.lrs.clone(), m.map(|m| vec![m; n])))
    }

    /// Runs the case as the golden generator ran PyTorch.
    pub fn run(&self) -> Result<Trace, ScheduleError> {
        simulate(
            &self.config()?,
            self.param_groups()?,
            self.steps,
            self.metrics.as_deref(),
        )
    }

    /// Compares a trace with `expected`; `Ok` when there is nothing to compare against.
    pub fn check(&self, trace: &Trace) -> Result<(), Mismatch> {
        let Some(exp) = &self.expected else {
            return Ok(());
        };
        let mut tables = vec![("lr", &exp.lr, Some(&trace.lr))];
        if let Some(m) = &exp.momentum {
            tables.push(("momentum", m, trace.momentum.as_ref()));
        }
        for (what, expected, actual) in tables {
            for (step, erow) in expected.iter().enumerate() {
                let arow = actual.and_then(|a| a.get(step));
                for (group, e) in erow.iter().enumerate() {
                    let a = arow.and_then(|r| r.get(group)).copied().unwrap_or(f64::NAN);
                    if !within_tolerance(a, *e) {
                        return Err(Mismatch {
                            id: self.id.clone(),
                            step,
                            group,
                            what,
                            actual: a,
                            expected: *e,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs and checks every case; returns one line per failing case (empty when all pass).
pub fn check_file(file: &GoldenFile) -> Vec<String> {
    file.cases
        .iter()
        .filter_map(|case| match case.run() {
            Err(e) => Some(format!("{}: error: {e}", case.id)),
            Ok(trace) => case.check(&trace).err().map(|m| m.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_path(path: &Path) {
        let file = GoldenFile::load(path).unwrap_or_else(|e| panic!("{e}"));
        let failures = check_file(&file);
        for f in &failures {
            eprintln!("FAIL {f}");
        }
        println!(
            "{}: {}/{} golden cases pass",
            path.display(),
            file.cases.len() - failures.len(),
            file.cases.len()
        );
        assert!(
            failures.is_empty(),
            "{} of {} golden cases failed:\n{}",
            failures.len(),
            file.cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn golden_fixture() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/schedulers.json");
        check_path(&path);
    }

    #[test]
    fn golden_shared() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden/schedulers.json");
        if path.exists() {
            check_path(&path);
        } else {
            // Straight to stderr: libtest hides println! of passing tests.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {} does not exist (the shipped copy in tests/fixtures was checked)",
                path.display()
            );
        }
    }

    #[test]
    fn tolerance() {
        assert!(within_tolerance(0.1, 0.1));
        assert!(within_tolerance(1.0 + 1e-10, 1.0));
        assert!(!within_tolerance(1.0 + 1e-8, 1.0));
        assert!(within_tolerance(1e-16, 0.0));
        assert!(!within_tolerance(f64::NAN, 0.0));
    }

    #[test]
    fn mismatch_reports_first_bad_step() {
        let case: GoldenCase = serde_json::from_value(serde_json::json!({
            "id": "x", "scheduler": "StepLR", "params": {"step_size": 2, "gamma": 0.5},
            "optimizer": {"kind": "SGD", "lrs": [1.0], "momentum": 0.0}, "steps": 3,
            "expected": {"lr": [[1.0], [1.0], [0.5], [0.4]]}
        }))
        .unwrap();
        let trace = case.run().unwrap();
        let m = case.check(&trace).unwrap_err();
        assert_eq!((m.step, m.group, m.what), (3, 0, "lr"));
        assert!(m
            .to_string()
            .starts_with("x: first bad lr at step 3 group 0"));
    }

    #[test]
    fn simulate_requires_metrics_for_plateau() {
        let cfg = SchedulerConfig::parse("ReduceLROnPlateau(patience=0)").unwrap();
        let e = simulate(&cfg, ParamGroups::new(vec![0.1], None), 3, Some(&[1.0])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ReduceLROnPlateau: needs one metric per step: 3 steps but 1 metrics"
        );
    }

    /// Golden metrics are Python reprs: read back correctly rounded (serde_json's
    /// `float_roundtrip`), a metric exactly at ReduceLROnPlateau's threshold stays "not better".
    #[test]
    fn metrics_at_the_threshold_read_back_exactly() {
        let mut x = 0.5f64;
        for i in 0..2000 {
            // Metrics with 16-17 significant digits, where a fast parser goes one ulp off.
            x = (x * 3.987 + i as f64 * 1e-3).fract() + 0.1;
            let at = x * (1.0 - 1e-4);
            let case: GoldenCase = serde_json::from_str(&format!(
                r#"{{"id": "t", "scheduler": "ReduceLROnPlateau", "params": {{"patience": 0, "factor": 0.5}},
                    "optimizer": {{"kind": "SGD", "lrs": [1.0]}}, "steps": 2, "metrics": [{x:?}, {at:?}]}}"#
            ))
            .unwrap();
            assert_eq!(case.metrics.as_deref(), Some(&[x, at][..]), "{x:?} {at:?}");
            // Step 1 sets best = x; `at` is not < best * (1 - threshold): a bad epoch, halved.
            assert_eq!(case.run().unwrap().lr[2], vec![0.5], "{x:?} {at:?}");
        }
    }
}
