//! `lrfind [OPTIONS]`: the LR range test.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::args::{SetupArgs, SweepArgs};
use super::out::{self, Human, EXIT_INTERRUPTED, EXIT_NO_RESULT, EXIT_OK};
use super::progress;
use anyhow::Result;
use lrfind::learner::StepLoss;
use lrfind::plot::{self, PlotFormat, RangeTestPlot};
use lrfind::report::atomic::{check_distinct, check_writable};
use lrfind::report::RangeTestReport;

#[derive(Args, Debug, Clone)]
pub struct FindArgs {
    #[command(flatten)]
    pub setup: SetupArgs,
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Plot loss vs LR to this file (.png or .svg)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Mark every rule's suggestion on the plot (the chosen one emphasised)
    #[arg(long, help_heading = "Output")]
    pub show_rules: bool,
    /// Where to write the JSON report
    #[arg(
        long,
        value_name = "FILE",
        default_value = "lrfind.json",
        help_heading = "Output"
    )]
    pub report: PathBuf,
    /// Also print the JSON report on stdout (the summary then goes to stderr)
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Print only this on stdout: lr (the suggested LR, shortest exact form; nothing and exit 1
    /// without a suggestion). The summary then goes to stderr
    #[arg(
        long,
        value_name = "WHAT",
        conflicts_with = "json",
        hide_possible_values = true,
        help_heading = "Output"
    )]
    pub print: Option<PrintWhat>,
    /// Quiet: no progress bar, no summary; only errors (on stderr) and what --json / --print ask for
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    #[command(flatten)]
    pub color: super::ColorArg,
}

/// `--print`: the one value a script wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintWhat {
    /// The suggested learning rate
    Lr,
}

/// Runs the range test; exit code 0 with a suggestion, 1 without one, 130 on Ctrl-C.
pub fn run(args: &FindArgs, started: Instant) -> Result<u8> {
    out::set_quiet(args.quiet);
    let setup = args.setup.resolve(None)?;
    let rt = args.sweep.range_test(setup, args.setup.device(None)?)?;
    // Fail on bad output paths in a second, not after the sweep.
    if let Some(out) = &args.out {
        PlotFormat::from_path(out)?;
        check_writable(out)?;
    }
    check_writable(&args.report)?;
    if let Some(out) = &args.out {
        check_distinct(&[("--report", &args.report), ("--out", out)])?;
    }

    let pb = progress::bar(
        rt.sweep.num_steps as u64,
        args.quiet,
        "{spinner} range test [{bar:30}] {pos}/{len} eta {eta} {msg}",
    );
    let lines = progress::Lines::new(args.quiet);
    let mut report = rt.run(&mut |e| {
        pb.set_position(e.step as u64 + 1);
        pb.set_message(format!("lr {:.2e} loss {:.4}", e.lr, e.smoothed));
        lines.tick(|| {
            format!(
                "range test: step {}/{}, lr {:.2e}, smoothed loss {:.4}",
                e.step + 1,
                rt.sweep.num_steps,
                e.lr,
                e.smoothed
            )
        });
        if progress::should_stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    pb.finish_and_clear();
    report.timings.total_s = started.elapsed().as_secs_f64();

    // The measurement first: if the plot cannot be written (disk full), the report is kept.
    report.write(&args.report)?;
    if let Some(out) = &args.out {
        write_plot(&report, out, args.show_rules)?;
    }

    if args.json {
        out::print(&format!("{}\n", report.to_json()))?;
    }
    if let (Some(PrintWhat::Lr), Some(lr)) = (args.print, report.suggested_lr) {
        out::print(&format!("{}\n", out::num(lr)))?;
    }
    Human::new(args.json || args.print.is_some(), args.quiet).say(&summary(&report, args))?;
    for w in warnings(&report) {
        out::warn(w);
    }
    Ok(if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.suggested_lr.is_some() {
        EXIT_OK
    } else {
        EXIT_NO_RESULT
    })
}

fn write_plot(report: &RangeTestReport, out: &std::path::Path, show_rules: bool) -> Result<()> {
    let title = format!(
        "LR range test: {} on {}, {}",
        report.settings.model.name(),
        report.settings.data.name(),
        report.settings.optimizer.name()
    );
    let y_label = match report.settings.step_loss {
        StepLoss::Validation { .. } => "validation loss",
        StepLoss::TrainBatch => "loss",
    };
    let figure = RangeTestPlot::new(&report.curve, &report.analysis)
        .title(title)
        .y_label(y_label)
        .show_rules(show_rules)
        .max_lr(report.sweep.max_lr);
    plot::range_test(out, &figure)?;
    Ok(())
}

/// Said on stderr, after the summary.
fn warnings(r: &RangeTestReport) -> Vec<String> {
    let mut w = Vec::new();
    if r.analysis.pinned_by_max {
        let (upto, reach) = match r.extended_to {
            Some(to) => (to, format!("{to:.3e} (extended past --max)")),
            None => (
                r.sweep.max_lr,
                format!("--max {}", out::num(r.sweep.max_lr)),
            ),
        };
        let widen = format!(
            "widen the range (e.g. --max {}) or pass --extend",
            out::num_times_pow10(upto, 2)
        );
        // Only a suggestion can be pinned; without one the range is simply too narrow.
        w.push(if r.suggested_lr.is_some() {
            format!(
                "the loss never turned upward up to {reach}: the suggestion is pinned by the range, not by an observed blow-up; {widen}"
            )
        } else {
            format!("the loss never turned upward up to {reach}; {widen}")
        });
    }
    if r.interrupted {
        w.push("interrupted; the report holds the steps measured so far".into());
    }
    w
}

fn summary(r: &RangeTestReport, args: &FindArgs) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let a = &r.analysis;
    match (&a.suggestion, &a.no_suggestion) {
        (Some(sg), _) => {
            let _ = writeln!(
                s,
                "suggested learning rate: {} ({} rule)",
                out::paint(out::GOOD, format!("{:.3e}", sg.lr)),
                sg.rule
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(
                s,
                "{} from the {} rule: {}",
                out::paint(out::BAD, "no suggestion"),
                a.chosen_rule,
                super::errors::flags_for_fields(&why.to_string())
            );
        }
        (None, None) => {}
    }
    let others: Vec<String> = a
        .rules
        .iter()
        .filter(|o| o.rule != a.chosen_rule)
        .map(|o| match &o.suggestion {
            Some(sg) => format!("{} {:.3e}", o.rule, sg.lr),
            None => format!("{} -", o.rule),
        })
        .collect();
    let _ = writeln!(s, "  other rules: {}", others.join(", "));
    // Ranges as typed (1.25e-7 stays 1.25e-7), not rounded.
    let (taken, planned) = (r.curve.lrs.len(), r.sweep.num_steps);
    let (min, max) = (out::num(r.sweep.min_lr), out::num(r.sweep.max_lr));
    let steps = match r.extended_to {
        Some(to) if taken > planned => format!(
            "{taken} steps: {planned} from {min} to --max {max}, then {} more past it to {to:.3e} (--extend)",
            taken - planned
        ),
        _ => format!("{taken} of {planned} steps, {min} → {max}"),
    };
    let _ = writeln!(s, "  sweep: {steps}, {}", r.stop_reason);
    let _ = writeln!(
        s,
        "  {:.2} s in all ({:.0} steps/s); wrote {}{}",
        r.timings.total_s,
        r.timings.steps_per_s,
        args.report.display(),
        args.out
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default()
    );
    s
}
