//! Is the suggested LR stable across seeds, repeatable, and where it was?
//!
//! [`check_stability`] works on any model: give it a closure that builds a fresh
//! [`TrainStep`] for a seed. [`run_check`] is the same check on lrfind's built-in pipeline,
//! with the settings in its report.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::device::describe;
use crate::error::{Error, Result, Scope};
use crate::finder::{
    analyse, run_sweep, Analysis, Curve, Rule, StepEvent, SweepConfig, TrainStep, Verification,
};
use crate::range_test::RangeTest;
use crate::report::atomic::write_atomic;
use crate::report::RunSettings;

/// An LR to compare the median suggestion with, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// The baseline's suggested LR.
    pub lr: f64,
    /// Where it came from (a file name), for messages.
    pub source: String,
}

/// What a stability check demands, whatever the model.
#[derive(Debug, Clone, PartialEq)]
pub struct StabilityConfig {
    /// One range test per seed.
    pub seeds: Vec<u64>,
    /// The range test's settings.
    pub sweep: SweepConfig,
    /// The rule whose suggestion is checked.
    pub rule: Rule,
    /// Largest allowed log10(max/min) of the suggestions, in decades.
    pub max_spread: f64,
    /// The median must stay within `tolerance` decades of this.
    pub baseline: Option<Baseline>,
    /// Largest allowed |log10(median / baseline)|, in decades.
    pub tolerance: f64,
    /// Re-run the first seed and require an identical curve.
    pub repeat: bool,
    /// Accept suggestions pinned by `max_lr` (by default they count as unstable: the number
    /// is bounded by the range, not measured).
    pub allow_pinned: bool,
}

impl StabilityConfig {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.seeds.len() < 2 {
            return Err(Error::setting(
                Scope::Check,
                "seeds",
                self.seeds.len(),
                "need at least 2 seeds to measure a spread",
            ));
        }
        for (field, v) in [
            ("max_spread", self.max_spread),
            ("tolerance", self.tolerance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::setting(
                    Scope::Check,
                    field,
                    v,
                    "must be a non-negative number of decades",
                ));
            }
        }
        self.sweep.validate()
    }
}

/// One seed's range test, reduced to what the check needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed the step was built with.
    pub seed: u64,
    /// The rule's suggestion, if it made one.
    pub suggestion: Option<f64>,
    /// The rule's name.
    pub rule: String,
    /// The loss never turned upward before the range's end.
    pub pinned_by_max: bool,
    /// A suggestion pinned by `max_lr` (see [`crate::finder::Analysis::pinned`]).
    #[serde(default)]
    pub pinned: bool,
    /// The measured curve, with why it stopped.
    pub curve: Curve,
    /// Seconds the sweep took.
    pub seconds: f64,
    /// The suggestion verified by trials, when the check verifies: what is gated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_lr: Option<f64>,
    /// The verification trials, when the check verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

impl SeedRun {
    /// The LR the check judges: the verified one when the check verifies, else the rule's.
    pub fn gated(&self) -> Option<f64> {
        self.verified_lr.or(self.suggestion)
    }
}

/// The verdict of a stability check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// One entry per seed run, in order (fewer than asked when interrupted).
    pub runs: Vec<SeedRun>,
    /// Median suggestion (geometric middle for an even count).
    pub suggested_lr: Option<f64>,
    /// log10(max/min) of the suggestions, in decades.
    pub spread_decades: Option<f64>,
    /// Standard deviation of log10(suggestion).
    pub std_log10: Option<f64>,
    /// log10(median / baseline), when there is a baseline.
    pub drift_decades: Option<f64>,
    /// None when the repeat was skipped (or not reached).
    pub repeatable: Option<bool>,
    /// The observer stopped the check before every seed ran: there is no verdict.
    pub interrupted: bool,
    /// No failures, and every seed ran.
    pub stable: bool,
    /// Why it is not stable, one sentence each.
    pub failures: Vec<String>,
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
pub fn read_baseline(path: &Path) -> Result<Baseline> {
    let text = crate::read::read_settings(path, "a baseline")?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::saved(path, format!("not JSON ({e})")))?;
    let lr = v
        .get("suggested_lr")
        .and_then(serde_json::Value::as_f64)
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| {
            Error::saved(
                path,
                "no suggested_lr in it (expected an lrfind or lrfind check report)",
            )
        })?;
    Ok(Baseline {
        lr,
        source: path.display().to_string(),
    })
}

/// Runs the range test once per seed on a fresh step from `make(seed)`, then judges the
/// suggestions. `observe(run_index, total_runs, event)` sees every step; `Break` stops the
/// check, which then has no verdict but keeps the runs it finished.
pub fn check_stability<M, E, F>(
    config: &StabilityConfig,
    make: F,
    observe: &mut dyn FnMut(usize, usize, &StepEvent) -> ControlFlow<()>,
) -> Result<Stability>
where
    M: TrainStep,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: FnMut(u64) -> std::result::Result<M, E>,
{
    check_stability_verified(config, make, &mut |_, _| Ok(None), observe)
}

/// [`check_stability`], with `verify(step, analysis)` called after each seed's sweep that
/// has a suggestion (e.g. [`crate::range_test::verify_learner`]): a verification that
/// chooses an LR makes that LR the one judged for the seed.
pub fn check_stability_verified<M, E, F>(
    config: &StabilityConfig,
    mut make: F,
    verify: &mut dyn FnMut(&mut M, &Analysis) -> Result<Option<Verification>>,
    observe: &mut dyn FnMut(usize, usize, &StepEvent) -> ControlFlow<()>,
) -> Result<Stability>
where
    M: TrainStep,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: FnMut(u64) -> std::result::Result<M, E>,
{
    config.validate()?;
    let total = config.seeds.len() + usize::from(config.repeat);
    let mut one = |k: usize, seed: u64| -> Result<SeedRun> {
        let mut step = make(seed).map_err(Error::from_user)?;
        let t = Instant::now();
        let curve = run_sweep(&mut step, &config.sweep, &mut |e| observe(k, total, e))?;
        let analysis = analyse(&curve, &config.sweep, config.rule);
        let verification = if analysis.suggestion.is_some() && !curve.stop.is_interrupted() {
            verify(&mut step, &analysis)?
        } else {
            None
        };
        Ok(SeedRun {
            seed,
            suggestion: analysis.suggestion.as_ref().map(|s| s.lr),
            rule: config.rule.to_string(),
            pinned_by_max: analysis.pinned_by_max,
            pinned: analysis.pinned,
            curve,
            seconds: t.elapsed().as_secs_f64(),
            verified_lr: verification.as_ref().and_then(|v| v.verified_lr),
            verification,
        })
    };
    let mut runs = Vec::new();
    let mut interrupted = false;
    for (k, &seed) in config.seeds.iter().enumerate() {
        let run = one(k, seed)?;
        if run.curve.stop.is_interrupted() {
            // Keep the seeds that finished; the cut-off one would only mislead.
            interrupted = true;
            break;
        }
        runs.push(run);
    }
    let mut repeatable = None;
    if config.repeat && !interrupted {
        let again = one(config.seeds.len(), config.seeds[0])?;
        interrupted = again.curve.stop.is_interrupted();
        if !interrupted {
            repeatable = Some(again.curve == runs[0].curve);
        }
    }
    Ok(judge(config, runs, repeatable, interrupted))
}

/// The verdict on finished runs.
fn judge(
    config: &StabilityConfig,
    runs: Vec<SeedRun>,
    repeatable: Option<bool>,
    interrupted: bool,
) -> Stability {
    let mut failures = Vec::new();
    if interrupted {
        failures.push(format!(
            "interrupted after {} of {} seeds: no verdict",
            runs.len(),
            config.seeds.len()
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
    let lrs: Vec<f64> = runs.iter().filter_map(SeedRun::gated).collect();
    let st = if !interrupted && lrs.len() == runs.len() {
        stats(&lrs)
    } else {
        None
    };
    // One sentence for every pinned seed: the advice is the same for all of them.
    let pinned: Vec<&SeedRun> = runs
        .iter()
        .filter(|r| r.pinned && !config.allow_pinned)
        .collect();
    if !pinned.is_empty() {
        let list = |f: &dyn Fn(&SeedRun) -> String| {
            pinned.iter().map(|r| f(r)).collect::<Vec<_>>().join(", ")
        };
        failures.push(format!(
            "{} {} {} pinned by max_lr {} ({}; the loss never turned upward); widen the range, set extend, or set allow_pinned",
            if pinned.len() == 1 { "seed" } else { "seeds" },
            list(&|r| r.seed.to_string()),
            if pinned.len() == 1 { "is" } else { "are" },
            config.sweep.max_lr,
            list(&|r| format!("{:.3e}", r.suggestion.unwrap_or(f64::NAN))),
        ));
    }
    let (median, spread, std) = match st {
        Some((m, s, d)) => (Some(m), Some(s), Some(d)),
        None => (None, None, None),
    };
    if let Some(s) = spread {
        if s > config.max_spread {
            failures.push(format!(
                "suggestions spread over {s:.3} decades (max/min {}), more than max_spread {}",
                crate::finder::sweep::ratio(10f64.powf(s)),
                config.max_spread
            ));
        }
    }
    let drift = match (&config.baseline, median) {
        (Some(b), Some(m)) => Some((m / b.lr).log10()),
        _ => None,
    };
    if let (Some(d), Some(b), Some(m)) = (drift, &config.baseline, median) {
        if d.abs() > config.tolerance {
            failures.push(format!(
                "median {m:.3e} is {:.3} decades from the baseline {:.3e} ({}), more than tolerance {}",
                d.abs(),
                b.lr,
                b.source,
                config.tolerance
            ));
        }
    }
    if repeatable == Some(false) {
        failures.push(format!(
            "seed {} gave a different curve when run again: the range test is not deterministic",
            config.seeds[0]
        ));
    }
    Stability {
        runs,
        suggested_lr: median,
        spread_decades: spread,
        std_log10: std,
        drift_decades: drift,
        repeatable,
        interrupted,
        stable: failures.is_empty(),
        failures,
    }
}

/// `lrfind check` on the built-in pipeline: what to check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The range test; its seed is the first of `seeds` consecutive ones.
    pub range_test: RangeTest,
    /// Number of seeds: `seed, seed+1, …`.
    pub seeds: usize,
    /// Largest allowed log10(max/min) of the suggestions, in decades.
    pub max_spread: f64,
    /// The LR a baseline suggested.
    pub baseline: Option<Baseline>,
    /// Largest allowed |log10(median / baseline)|, in decades.
    pub tolerance: f64,
    /// Re-run the first seed and require an identical curve.
    pub repeat: bool,
    /// Accept suggestions pinned by `max_lr`.
    pub allow_pinned: bool,
}

/// A stability check's report (also usable as a baseline: `suggested_lr` is the median).
/// `S` describes the run: [`RunSettings`] for the built-in pipeline, or your own
/// (e.g. [`crate::report::Description`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport<S = RunSettings> {
    /// "lrfind check".
    pub tool: String,
    /// lrfind's version.
    pub version: String,
    /// What was checked.
    pub settings: S,
    /// The range test's settings.
    pub sweep: SweepConfig,
    /// The rule whose suggestion was checked.
    pub rule: Rule,
    /// One entry per seed run.
    pub runs: Vec<SeedRun>,
    /// Median suggestion (geometric middle for an even count).
    pub suggested_lr: Option<f64>,
    /// log10(max/min) of the suggestions, in decades.
    pub spread_decades: Option<f64>,
    /// Standard deviation of log10(suggestion).
    pub std_log10: Option<f64>,
    /// The spread allowed.
    pub max_spread: f64,
    /// The baseline's LR.
    pub baseline_lr: Option<f64>,
    /// Where the baseline came from.
    pub baseline_source: Option<String>,
    /// log10(median / baseline).
    pub drift_decades: Option<f64>,
    /// The drift allowed.
    pub tolerance: f64,
    /// None when the repeat was skipped.
    pub repeatable: Option<bool>,
    /// Stopped before every seed ran: no verdict.
    #[serde(default)]
    pub interrupted: bool,
    /// The verdict.
    pub stable: bool,
    /// Why it is not stable.
    pub failures: Vec<String>,
}

impl<S> CheckReport<S> {
    /// The report of `stability`, measured under `config`, on a run described by `settings`.
    pub fn new(settings: S, config: &StabilityConfig, stability: Stability) -> Self {
        CheckReport {
            tool: "lrfind check".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings,
            sweep: config.sweep.clone(),
            rule: config.rule,
            runs: stability.runs,
            suggested_lr: stability.suggested_lr,
            spread_decades: stability.spread_decades,
            std_log10: stability.std_log10,
            max_spread: config.max_spread,
            baseline_lr: config.baseline.as_ref().map(|b| b.lr),
            baseline_source: config.baseline.as_ref().map(|b| b.source.clone()),
            drift_decades: stability.drift_decades,
            tolerance: config.tolerance,
            repeatable: stability.repeatable,
            interrupted: stability.interrupted,
            stable: stability.stable,
            failures: stability.failures,
        }
    }
}

impl<S: Serialize> CheckReport<S> {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

/// Runs the check on the built-in pipeline: the data is loaded once for every seed.
pub fn run_check(
    config: &CheckConfig,
    observe: &mut dyn FnMut(usize, usize, &StepEvent) -> ControlFlow<()>,
) -> Result<CheckReport> {
    let rt = &config.range_test;
    let stability = StabilityConfig {
        seeds: (0..config.seeds as u64)
            .map(|k| rt.setup.seed.wrapping_add(k))
            .collect(),
        sweep: rt.sweep.clone(),
        rule: rt.rule,
        max_spread: config.max_spread,
        baseline: config.baseline.clone(),
        tolerance: config.tolerance,
        repeat: config.repeat,
        allow_pinned: config.allow_pinned,
    };
    stability.validate()?;
    rt.validate()?;
    let device = rt.device.open()?;
    let data = rt.setup.device_data(&device)?;
    let verdict = check_stability_verified(
        &stability,
        |seed| {
            let mut t = rt.clone();
            t.setup.seed = seed;
            t.learner(&data, &device)
        },
        &mut |learner, analysis| match &rt.verify {
            Some(v) => crate::range_test::verify_learner(learner, analysis, v, &mut |_| {
                ControlFlow::Continue(())
            })
            .map(Some),
            None => Ok(None),
        },
        observe,
    )?;
    let settings = RunSettings {
        device: describe(&device),
        ..rt.settings(&data.summary)
    };
    Ok(CheckReport::new(settings, &stability, verdict))
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
        assert_eq!(read_baseline(&p).unwrap().lr, 0.003);
        std::fs::write(&p, r#"{"suggested_lr": null}"#).unwrap();
        assert!(read_baseline(&p)
            .unwrap_err()
            .to_string()
            .contains("no suggested_lr"));
        let e = read_baseline(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json"), "{e}");
    }
}

#[cfg(test)]
mod generic_tests {
    use super::*;
    use crate::finder::SweepConfig;

    /// An analytic curve whose minimum sits at `at`: falls from 1 to 0 on a log scale, then
    /// blows up.
    fn curve_at(at: f64) -> impl FnMut(f64) -> std::result::Result<f64, Error> {
        move |lr: f64| {
            let x = (lr / at).log10();
            let base = |x: f64| 1.0 / (1.0 + (4.0 * (x + 1.0)).exp()) + 0.01;
            Ok(if x < 0.0 {
                base(x)
            } else {
                base(0.0) + 50.0 * x * x
            })
        }
    }

    fn config(seeds: Vec<u64>) -> StabilityConfig {
        StabilityConfig {
            seeds,
            sweep: SweepConfig {
                min_lr: 1e-6,
                max_lr: 10.0,
                num_steps: 100,
                smooth: 0.0,
                ..SweepConfig::default()
            },
            rule: Rule::Fall,
            max_spread: 0.3,
            baseline: None,
            tolerance: 0.25,
            repeat: true,
            allow_pinned: false,
        }
    }

    #[test]
    fn a_custom_model_that_is_stable_passes() {
        let v = check_stability(
            &config(vec![1, 2, 3]),
            |_seed| Ok::<_, Error>(curve_at(1e-2)),
            &mut |_, _, _| ControlFlow::Continue(()),
        )
        .unwrap();
        assert!(v.stable, "{:?}", v.failures);
        assert_eq!(v.runs.len(), 3);
        assert_eq!(v.repeatable, Some(true));
        assert!(v.spread_decades.unwrap() < 1e-12);
    }

    #[test]
    fn seeds_that_move_the_minimum_by_a_decade_are_unstable() {
        let v = check_stability(
            &config(vec![0, 1]),
            |seed| Ok::<_, Error>(curve_at(if seed == 0 { 1e-3 } else { 1e-2 })),
            &mut |_, _, _| ControlFlow::Continue(()),
        )
        .unwrap();
        assert!(!v.stable);
        let spread = v.spread_decades.unwrap();
        assert!((spread - 1.0).abs() < 0.05, "{spread}");
        assert!(
            v.failures[0].contains("more than max_spread 0.3"),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn an_interrupted_check_keeps_its_finished_runs_and_has_no_verdict() {
        let v = check_stability(
            &config(vec![0, 1, 2]),
            |_| Ok::<_, Error>(curve_at(1e-2)),
            &mut |k, _, e| {
                if k == 1 && e.step == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert!(v.interrupted && !v.stable);
        // The seed cut off mid-sweep is dropped: only finished ones are kept.
        assert_eq!(v.runs.len(), 1);
        assert!(!v.runs[0].curve.stop.is_interrupted());
        assert_eq!(v.failures, ["interrupted after 1 of 3 seeds: no verdict"]);
    }

    #[test]
    fn a_factory_error_is_the_users_error() {
        let e = check_stability(
            &config(vec![0, 1]),
            |_| {
                Err::<fn(f64) -> std::result::Result<f64, Error>, _>(std::io::Error::other(
                    "no GPU today",
                ))
            },
            &mut |_, _, _| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "no GPU today");
    }
}
