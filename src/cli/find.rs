//! `lrfind [OPTIONS]`: the LR range test.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::args::{SetupArgs, SweepArgs};
use super::out::{self, Human, EXIT_INTERRUPTED, EXIT_NO_RESULT, EXIT_OK};
use super::progress;
use anyhow::Result;
use lrfind::finder::{Edge, Verification};
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
    let trials_pb = std::cell::OnceCell::new();
    let mut report = rt.run_verified(
        &mut |e| {
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
        },
        &mut |e| {
            let tpb = trials_pb.get_or_init(|| {
                pb.finish_and_clear();
                progress::bar(
                    (e.trials * e.steps) as u64,
                    args.quiet,
                    "{spinner} verifying [{bar:30}] {pos}/{len} eta {eta} {msg}",
                )
            });
            tpb.set_position((e.trial * e.steps + e.step + 1) as u64);
            tpb.set_message(format!(
                "trial {}/{} lr {:.2e} loss {:.4}",
                e.trial + 1,
                e.trials,
                e.lr,
                e.loss
            ));
            lines.tick(|| {
                format!(
                    "verification: trial {}/{}, lr {:.2e}, step {}/{}, loss {:.4}",
                    e.trial + 1,
                    e.trials,
                    e.lr,
                    e.step + 1,
                    e.steps,
                    e.loss
                )
            });
            if progress::should_stop() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    pb.finish_and_clear();
    if let Some(t) = trials_pb.get() {
        t.finish_and_clear();
    }
    report.timings.total_s = started.elapsed().as_secs_f64();
    if report.interrupted && report.curve.lrs.is_empty() {
        // Nothing measured: the previous report (if any) is worth more than an empty one.
        out::warn(format!(
            "interrupted before the first step: nothing was measured; {} left as it was",
            args.report.display()
        ));
        return Ok(EXIT_INTERRUPTED);
    }

    // The measurement first: if the plot cannot be written (disk full), the report is kept.
    report.write(&args.report)?;
    if let Some(out) = &args.out {
        write_plot(&report, out, args.show_rules)?;
    }

    if args.json {
        out::print(&format!("{}\n", report.to_json()))?;
    }
    if let (Some(PrintWhat::Lr), Some(lr)) = (args.print, report.best_lr()) {
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
        .max_lr(report.sweep.max_lr)
        .verification(report.verification.as_ref())
        .param_groups(&report.param_groups);
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
    if let Some(edge) = r.analysis.edge {
        let lr = r.analysis.suggestion.as_ref().map_or(0.0, |s| s.lr);
        w.push(match edge {
            Edge::First => format!(
                "the suggestion {} sits on the first usable step: the loss was already falling where the curve starts, so the answer may lie lower; lower --min{}",
                out::num(lr),
                if r.verification.is_some() { "" } else { " or pass --verify" }
            ),
            Edge::Last => format!(
                "the suggestion {} sits on the last usable step: the curve ends right after it, so it is bounded by the range",
                out::num(lr)
            ),
        });
    }
    if let Some(v) = &r.verification {
        if v.none_improved {
            w.push(format!(
                "no verification trial beat the starting weights' validation loss ({:.4}) in {} steps: the model may have converged, or every candidate is too high",
                v.start.loss, v.steps
            ));
        } else if v.chosen.is_none() && !v.interrupted {
            w.push(
                "every verification trial diverged: the suggestion stands unverified; lower --max"
                    .into(),
            );
        }
    }
    if r.interrupted {
        w.push("interrupted; the report holds the steps measured so far".into());
    }
    w
}

/// The verification's lines of the summary: one per trial, the chosen one marked.
fn verification_summary(v: &Verification) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  verification: {} trials of {} steps from the same start (validation loss {:.4}), {:.2} s; + lowest validation loss, * verified (the next lower LR: a full run does best a notch below a short trial's best)",
        v.trials.len(),
        v.steps,
        v.start.loss,
        v.seconds
    );
    for (i, t) in v.trials.iter().enumerate() {
        let mark = match (v.chosen == Some(i), v.best == Some(i)) {
            (true, _) => "*",
            (false, true) => "+",
            _ => " ",
        };
        let score = match (t.score, t.diverged) {
            (Some(sc), _) => match sc.accuracy {
                Some(a) => format!("val loss {:.4}, accuracy {:.2} %", sc.loss, 100.0 * a),
                None => format!("val loss {:.4}", sc.loss),
            },
            (None, true) => "diverged".into(),
            (None, false) => "not finished".into(),
        };
        let _ = writeln!(s, "  {mark} {:.3e} {:<9} {score}", t.lr, t.origin);
    }
    s
}

/// The param groups' LRs at the suggestion, on one line.
fn group_lrs(r: &RangeTestReport) -> String {
    let each: Vec<String> = r
        .param_groups
        .iter()
        .map(|g| match g.lr {
            _ if g.frozen => format!("{} frozen", g.pattern),
            Some(lr) => format!("{} {lr:.3e}", g.pattern),
            None => format!("{} ×{}", g.pattern, g.multiplier),
        })
        .collect();
    format!(
        "param groups (the sweep moved the base LR, ratios fixed): {}",
        each.join(", ")
    )
}

fn summary(r: &RangeTestReport, args: &FindArgs) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let a = &r.analysis;
    match (&a.suggestion, &a.no_suggestion) {
        (Some(sg), _) => match r.verified_lr {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "verified learning rate: {} (the best of {} trials; the {} rule suggested {:.3e})",
                    out::paint(out::GOOD, format!("{v:.3e}")),
                    r.verification.as_ref().map_or(0, |v| v.trials.len()),
                    sg.rule,
                    sg.lr
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "suggested learning rate: {} ({} rule)",
                    out::paint(out::GOOD, format!("{:.3e}", sg.lr)),
                    sg.rule
                );
            }
        },
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
    if !r.param_groups.is_empty() {
        let _ = writeln!(s, "  {}", group_lrs(r));
    }
    if let Some(v) = &r.verification {
        s.push_str(&verification_summary(v));
    }
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
