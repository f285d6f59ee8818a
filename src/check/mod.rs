//! `lrfind check`: is the suggested LR stable across seeds, repeatable, and where it was?

use std::ops::ControlFlow;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::describe;
use crate::error::{Error, Result};
use crate::finder::{Curve, StepEvent};
use crate::range_test::RangeTest;
use crate::report::atomic::write_atomic;
use crate::report::{RangeTestReport, RunSettings};

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub range_test: RangeTest,
    /// Number of seeds: `seed, seed+1, …`.
    pub seeds: usize,
    /// Largest allowed log10(max/min) of the suggestions, in decades.
    pub max_spread: f64,
    /// The LR a baseline suggested, and where it came from.
    pub baseline: Option<(f64, String)>,
    /// Largest allowed |log10(median / baseline)|, in decades.
    pub tolerance: f64,
    /// Re-run the first seed and require an identical curve.
    pub repeat: bool,
    /// Accept suggestions pinned by `--max` (by default they count as unstable: the number
    /// is bounded by the range, not measured).
    pub allow_pinned: bool,
}

/// One seed's range test, reduced to what the check needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    pub seed: u64,
    pub suggestion: Option<f64>,
    pub rule: String,
    pub pinned_by_max: bool,
    /// A suggestion pinned by `--max` (see [`crate::finder::Analysis::pinned`]).
    #[serde(default)]
    pub pinned: bool,
    /// The measured curve, with why it stopped.
    pub curve: Curve,
    pub seconds: f64,
}

/// `lrfind check`'s report (also usable as a baseline: `suggested_lr` is the median).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub tool: String,
    pub version: String,
    pub settings: RunSettings,
    pub sweep: crate::finder::SweepConfig,
    pub rule: crate::finder::Rule,
    pub runs: Vec<SeedRun>,
    /// Median suggestion (geometric middle for an even count).
    pub suggested_lr: Option<f64>,
    /// log10(max/min) of the suggestions, in decades.
    pub spread_decades: Option<f64>,
    /// Standard deviation of log10(suggestion).
    pub std_log10: Option<f64>,
    pub max_spread: f64,
    pub baseline_lr: Option<f64>,
    pub baseline_source: Option<String>,
    pub drift_decades: Option<f64>,
    pub tolerance: f64,
    /// None when the repeat was skipped.
    pub repeatable: Option<bool>,
    pub stable: bool,
    pub failures: Vec<String>,
    /// Stopped by Ctrl-C: `runs` holds the seeds finished before it, and there is no verdict
    /// (`stable` is false).
    #[serde(default)]
    pub interrupted: bool,
}

/// Median, spread (decades) and standard deviation of log10 of `lrs`.
pub fn stats(lrs: &[f64]) -> Option<(f64, f64, f64)> {
    if lrs.is_empty() || lrs.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let mut logs: Vec<f64> = lrs.iter().map(|v| v.log10()).collect();
    logs.sort_by(f64::total_cmp);
    let n = logs.len();
    let median = if n % 2 == 1 {
        logs[n / 2]
    } else {
        (logs[n / 2 - 1] + logs[n / 2]) / 2.0
    };
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64;
    Some((10f64.powf(median), logs[n - 1] - logs[0], var.sqrt()))
}

/// Reads the LR a baseline file suggested: a check report (its median) or a range-test report.
pub fn read_baseline(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!(
            "--baseline {}: {e} (make one with --update-baseline)",
            path.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("--baseline {}: not JSON ({e})", path.display())))?;
    v.get("suggested_lr")
        .and_then(serde_json::Value::as_f64)
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "--baseline {}: no suggested_lr in it (expected an lrfind or lrfind check report)",
                path.display()
            ))
        })
}

fn seed_run(r: &RangeTestReport) -> SeedRun {
    SeedRun {
        seed: r.settings.seed,
        suggestion: r.suggested_lr,
        rule: r.rule.to_string(),
        pinned_by_max: r.analysis.pinned_by_max,
        pinned: r.analysis.pinned,
        curve: r.curve.clone(),
        seconds: r.timings.sweep_s,
    }
}

/// Runs the check. `observe(run_index, total_runs, event)` sees every step; Break stops.
pub fn run_check(
    config: &CheckConfig,
    observe: &mut dyn FnMut(usize, usize, &StepEvent) -> ControlFlow<()>,
) -> Result<CheckReport> {
    if config.seeds < 2 {
        return Err(Error::invalid(format!(
            "--seeds {}: need at least 2 seeds to measure a spread",
            config.seeds
        )));
    }
    for (flag, v) in [
        ("max-spread", config.max_spread),
        ("tolerance", config.tolerance),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::invalid(format!(
                "--{flag} {v}: must be a non-negative number of decades"
            )));
        }
    }
    let rt = &config.range_test;
    rt.validate()?;
    let device = rt.device.open()?;
    let (data, origin) = rt.setup.device_data(&device)?;
    let total = config.seeds.saturating_add(usize::from(config.repeat));
    let mut reports = Vec::new();
    let mut interrupted = false;
    for k in 0..config.seeds {
        let mut t = rt.clone();
        t.setup.seed = rt.setup.seed.wrapping_add(k as u64);
        let r = t.run_on(&data, &device, &origin, &mut |e| observe(k, total, e))?;
        if r.interrupted {
            // Keep the seeds that finished; the cut-off one would only mislead.
            interrupted = true;
            break;
        }
        reports.push(r);
    }
    let repeatable = if config.repeat && !interrupted {
        let again = rt.run_on(&data, &device, &origin, &mut |e| {
            observe(config.seeds, total, e)
        })?;
        interrupted = again.interrupted;
        (!interrupted).then(|| again.curve == reports[0].curve)
    } else {
        None
    };
    let settings = RunSettings {
        data: rt.setup.data,
        data_origin: origin.clone(),
        model: rt.setup.model.clone(),
        optimizer: rt.setup.optimizer.clone(),
        seed: rt.setup.seed,
        device: describe(&device),
        batch_size: rt.setup.batch_size,
        accumulate: rt.accumulate,
        step_loss: rt.step_loss,
    };

    let runs: Vec<SeedRun> = reports.iter().map(seed_run).collect();
    let mut failures = Vec::new();
    if interrupted {
        failures.push(format!(
            "interrupted after {} of {} seeds: no verdict",
            runs.len(),
            config.seeds
        ));
    }
    for r in &runs {
        if r.suggestion.is_none() {
            failures.push(format!(
                "seed {} gave no suggestion ({})",
                r.seed, r.curve.stop
            ));
        }
    }
    let lrs: Vec<f64> = runs.iter().filter_map(|r| r.suggestion).collect();
    let st = if !interrupted && lrs.len() == runs.len() {
        stats(&lrs)
    } else {
        None
    };
    for r in &runs {
        if r.pinned && !config.allow_pinned {
            failures.push(format!(
                "seed {}: the suggestion {:.3e} is pinned by --max {} (the loss never turned upward); widen the range or use --extend, or pass --allow-pinned",
                r.seed,
                r.suggestion.unwrap_or(f64::NAN),
                rt.sweep.max_lr
            ));
        }
    }
    let (median, spread, std) = match st {
        Some((m, s, d)) => (Some(m), Some(s), Some(d)),
        None => (None, None, None),
    };
    if let Some(s) = spread {
        if s > config.max_spread {
            failures.push(format!(
                "suggestions spread over {s:.3} decades (max/min {}), more than --max-spread {}",
                crate::finder::sweep::ratio(10f64.powf(s)),
                config.max_spread
            ));
        }
    }
    let drift = match (&config.baseline, median) {
        (Some((b, _)), Some(m)) => Some((m / b).log10()),
        _ => None,
    };
    if let (Some(d), Some((b, src))) = (drift, &config.baseline) {
        if d.abs() > config.tolerance {
            failures.push(format!(
                "median {:.3e} is {:.3} decades from the baseline {b:.3e} ({src}), more than --tolerance {}",
                median.unwrap_or(f64::NAN),
                d.abs(),
                config.tolerance
            ));
        }
    }
    if repeatable == Some(false) {
        failures.push(format!(
            "seed {} gave a different curve when run again: the range test is not deterministic",
            rt.setup.seed
        ));
    }
    Ok(CheckReport {
        tool: "lrfind check".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        settings,
        sweep: rt.sweep.clone(),
        rule: rt.rule,
        runs,
        suggested_lr: median,
        spread_decades: spread,
        std_log10: std,
        max_spread: config.max_spread,
        baseline_lr: config.baseline.as_ref().map(|b| b.0),
        baseline_source: config.baseline.as_ref().map(|b| b.1.clone()),
        drift_decades: drift,
        tolerance: config.tolerance,
        repeatable,
        stable: failures.is_empty(),
        failures,
        interrupted,
    })
}

impl CheckReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        // log10: -3, -2, -1 → median 1e-2, spread 2 decades, std sqrt(2/3)
        let (m, s, d) = stats(&[1e-3, 1e-1, 1e-2]).unwrap();
        assert!((m - 1e-2).abs() < 1e-15);
        assert!((s - 2.0).abs() < 1e-12);
        assert!((d - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // even count: geometric middle of 1e-2 and 1e-1
        let (m, _, _) = stats(&[1e-3, 1e-2, 1e-1, 1.0]).unwrap();
        assert!((m - 10f64.powf(-1.5)).abs() < 1e-15);
        assert!(stats(&[]).is_none());
        assert!(stats(&[0.0, 1.0]).is_none());
    }

    #[test]
    fn baseline_reads_suggested_lr_and_explains_faults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        std::fs::write(&p, r#"{"suggested_lr": 0.003}"#).unwrap();
        assert_eq!(read_baseline(&p).unwrap(), 0.003);
        std::fs::write(&p, r#"{"suggested_lr": null}"#).unwrap();
        assert!(read_baseline(&p)
            .unwrap_err()
            .to_string()
            .contains("no suggested_lr"));
        let e = read_baseline(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--baseline") && e.contains("--update-baseline"),
            "{e}"
        );
    }
}
