//! `lrfind check`: exit 0 when the suggestion is stable (and near the baseline), 1 when not.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;

use super::args::{SetupArgs, SweepArgs};
use super::find::PrintWhat;
use super::out::{self, Human, EXIT_INTERRUPTED, EXIT_NO_RESULT, EXIT_OK};
use super::progress;
use anyhow::Result;
use lrfind::check::{read_baseline, run_check, CheckConfig, CheckReport};

use super::invalid;
use lrfind::learner::StepLoss;
use lrfind::plot::{self, CheckCurve, CheckPlot, PlotFormat};
use lrfind::report::atomic::{check_distinct, check_writable};

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub setup: SetupArgs,
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Number of seeds (--seed, --seed+1, …), each a full range test
    #[arg(long, value_name = "K", default_value_t = 5, help_heading = "Check")]
    pub seeds: usize,
    /// Fail when the suggestions spread over more than this many decades (log10 max/min)
    #[arg(
        long,
        value_name = "D",
        default_value_t = 0.3,
        help_heading = "Check",
        allow_hyphen_values = true
    )]
    pub max_spread: f64,
    /// A report saved earlier (lrfind or lrfind check JSON) to compare the median with
    #[arg(long, value_name = "FILE", help_heading = "Check")]
    pub baseline: Option<PathBuf>,
    /// Fail when the median is further than this many decades from the baseline
    #[arg(
        long,
        value_name = "D",
        default_value_t = 0.25,
        help_heading = "Check",
        allow_hyphen_values = true
    )]
    pub tolerance: f64,
    /// Write this run's result to --baseline (atomically) instead of comparing with it
    #[arg(long, requires = "baseline", help_heading = "Check")]
    pub update_baseline: bool,
    /// Accept suggestions pinned by --max (the loss never turned upward); by default they fail the check
    #[arg(long, help_heading = "Check")]
    pub allow_pinned: bool,
    /// Skip re-running the first seed to prove the curve is deterministic
    #[arg(long, help_heading = "Check")]
    pub no_repeat: bool,
    /// Where to write the check's JSON report
    #[arg(
        long,
        value_name = "FILE",
        default_value = "lrfind-check.json",
        help_heading = "Output"
    )]
    pub report: PathBuf,
    /// Plot every seed's smoothed curve and suggestion (.png or .svg)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Print the check's JSON report on stdout (the table then goes to stderr)
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Print only this on stdout: lr (the median suggestion, shortest exact form; nothing and
    /// exit 1 unless stable). The table then goes to stderr
    #[arg(
        long,
        value_name = "WHAT",
        conflicts_with = "json",
        hide_possible_values = true,
        help_heading = "Output"
    )]
    pub print: Option<super::find::PrintWhat>,
    /// Quiet: no progress bar, no table; only errors (on stderr) and what --json asks for
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    #[command(flatten)]
    pub color: super::ColorArg,
}

/// Runs the check; exit code 0 when stable, 1 when not, 130 on Ctrl-C.
pub fn run(args: &CheckArgs) -> Result<u8> {
    out::set_quiet(args.quiet);
    let setup = args.setup.resolve(None)?;
    let range_test = args.sweep.range_test(setup, args.setup.device(None)?)?;
    if let Some(out) = &args.out {
        PlotFormat::from_path(out)?;
        check_writable(out)?;
    }
    check_writable(&args.report)?;
    // Every output a distinct file, and the baseline never overwritten by accident.
    let mut outputs: Vec<(&str, &std::path::Path)> = vec![("--report", &args.report)];
    if let Some(out) = &args.out {
        outputs.push(("--out", out));
    }
    if let Some(b) = &args.baseline {
        outputs.push(("--baseline", b));
    }
    check_distinct(&outputs)?;
    let baseline = match (&args.baseline, args.update_baseline) {
        (Some(p), false) => Some(read_baseline(p).map_err(|e| {
            invalid(format!(
                "--baseline {}: {} (make one with --update-baseline)",
                p.display(),
                super::describe(&e.into())
            ))
        })?),
        (Some(p), true) => {
            check_writable(p)?;
            None
        }
        _ => None,
    };
    let config = CheckConfig {
        range_test,
        seeds: args.seeds,
        max_spread: args.max_spread,
        baseline,
        tolerance: args.tolerance,
        repeat: !args.no_repeat,
        allow_pinned: args.allow_pinned,
    };
    let runs = config.seeds.saturating_add(usize::from(config.repeat));
    let pb = progress::bar(
        runs.saturating_mul(config.range_test.sweep.num_steps) as u64,
        args.quiet,
        "{spinner} check [{bar:30}] eta {eta} {msg}",
    );
    let steps = config.range_test.sweep.num_steps;
    let lines = progress::Lines::new(args.quiet);
    let result = run_check(&config, &mut |k, total, e| {
        pb.set_position(k.saturating_mul(steps).saturating_add(e.step + 1) as u64);
        pb.set_message(format!("run {}/{total} lr {:.2e}", k + 1, e.lr));
        lines.tick(|| {
            format!(
                "check: run {}/{total}, step {}/{steps}, lr {:.2e}",
                k + 1,
                e.step + 1,
                e.lr
            )
        });
        if progress::should_stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    pb.finish_and_clear();
    let report = result?;

    // The measurement first, the plot last: a full disk may cost the picture, not the report.
    report.write(&args.report)?;
    if let (Some(p), true, false) = (&args.baseline, args.update_baseline, report.interrupted) {
        report.write(p)?;
    }
    if let Some(out) = &args.out {
        write_plot(&report, out)?;
    }
    if args.json {
        out::print(&format!("{}\n", report.to_json()))?;
    }
    if let (Some(PrintWhat::Lr), Some(lr), true) = (args.print, report.suggested_lr, report.stable)
    {
        out::print(&format!("{}\n", out::num(lr)))?;
    }
    let human = Human::new(args.json || args.print.is_some(), args.quiet);
    human.say(&table(&report))?;
    if args.update_baseline && !report.interrupted {
        if let Some(p) = &args.baseline {
            human.say(&format!("baseline written to {}\n", p.display()))?;
        }
    }
    if report.interrupted {
        out::warn(format!(
            "interrupted: {} holds the seeds run so far; no verdict",
            args.report.display()
        ));
    }
    Ok(if report.interrupted || progress::interrupted() {
        EXIT_INTERRUPTED
    } else if report.stable {
        EXIT_OK
    } else {
        EXIT_NO_RESULT
    })
}

fn write_plot(r: &CheckReport, out: &std::path::Path) -> Result<()> {
    let finite: Vec<(Vec<f64>, Vec<f64>)> = r
        .runs
        .iter()
        .map(|run| {
            let (lrs, _, smoothed) = run.curve.finite();
            (lrs, smoothed)
        })
        .collect();
    let curves = r
        .runs
        .iter()
        .zip(&finite)
        .map(|(run, (lrs, sm))| CheckCurve {
            label: format!("seed {}", run.seed),
            lrs,
            smoothed: sm,
            suggestion: run.gated(),
        })
        .collect();
    plot::check(
        out,
        &CheckPlot {
            curves,
            baseline: r.baseline_lr,
            title: format!(
                "lrfind check: {} on {}, {} ({} rule)",
                r.settings.model.name(),
                r.settings.data.name(),
                r.settings.optimizer.name(),
                r.rule
            ),
            y_label: match r.settings.step_loss {
                StepLoss::Validation { .. } => "smoothed validation loss",
                StepLoss::TrainBatch => "smoothed loss",
            }
            .into(),
            median: r.suggested_lr,
            tolerance: r.baseline_lr.map(|_| r.tolerance),
            verdict: Some((r.stable, verdict(r, false))),
        },
    )?;
    Ok(())
}

fn table(r: &CheckReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let verified = r.runs.iter().any(|run| run.verification.is_some());
    if verified {
        let _ = writeln!(
            s,
            "{:>6}  {:>11}  {:>11}  {:<9} stop",
            "seed", "verified", "suggestion", "rule"
        );
    } else {
        let _ = writeln!(s, "{:>6}  {:>11}  {:<9} stop", "seed", "suggestion", "rule");
    }
    for run in &r.runs {
        let lr = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3e}"));
        let verified_col = if verified {
            format!("{:>11}  ", lr(run.verified_lr))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{:>6}  {verified_col}{:>11}  {:<9} {}{}",
            run.seed,
            lr(run.suggestion),
            run.rule,
            run.curve.stop,
            if run.pinned { " (pinned by --max)" } else { "" }
        );
    }
    if let (Some(m), Some(sp), Some(sd)) = (r.suggested_lr, r.spread_decades, r.std_log10) {
        let _ = writeln!(
            s,
            "median {m:.3e}, spread {sp:.3} decades (max/min {}, limit {}), std(log10) {sd:.3}",
            lrfind::finder::sweep::ratio(10f64.powf(sp)),
            r.max_spread
        );
    }
    if let (Some(b), Some(d)) = (r.baseline_lr, r.drift_decades) {
        let _ = writeln!(
            s,
            "baseline {b:.3e}: drift {d:+.3} decades (limit {})",
            r.tolerance
        );
    }
    match r.repeatable {
        Some(true) => {
            let _ = writeln!(s, "repeat of seed {}: identical curve", r.settings.seed);
        }
        Some(false) => {
            let _ = writeln!(s, "repeat of seed {}: DIFFERENT curve", r.settings.seed);
        }
        None => {}
    }
    let _ = writeln!(s, "{}", verdict(r, true));
    s
}

/// The verdict line, as the table (`styled`) and the figure say it.
fn verdict(r: &CheckReport, styled: bool) -> String {
    let paint = |style, text: &str| {
        if styled {
            out::paint(style, text)
        } else {
            text.to_string()
        }
    };
    if r.interrupted {
        format!(
            "verdict: none: interrupted after {} seed(s); the report keeps them",
            r.runs.len()
        )
    } else if r.stable {
        format!("verdict: {}", paint(out::GOOD, "stable"))
    } else {
        format!(
            "verdict: {}: {}",
            paint(out::BAD, "UNSTABLE"),
            super::errors::flags_for_fields(&r.failures.join("; "))
        )
    }
}
