//! `lrfind [OPTIONS]`: the LR range test.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::args::{SetupArgs, SweepArgs};
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
    /// No progress bar
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
}

/// Runs the range test; exit code 0 with a suggestion, 1 without one.
pub fn run(args: &FindArgs, started: Instant) -> Result<u8> {
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
        "{spinner} range test [{bar:30}] {pos}/{len} {msg}",
    );
    let mut report = rt.run(&mut |e| {
        pb.set_position(e.step as u64 + 1);
        pb.set_message(format!("lr {:.2e} loss {:.4}", e.lr, e.smoothed));
        if progress::interrupted() {
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

    let summary = summary(&report, args);
    if args.json {
        println!("{}", report.to_json());
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(if report.suggested_lr.is_some() { 0 } else { 1 })
}

fn write_plot(report: &RangeTestReport, out: &std::path::Path, show_rules: bool) -> Result<()> {
    let title = format!(
        "LR range test: {} on {}, {}",
        report.settings.model.name(),
        report.settings.data,
        report.settings.optimizer.name()
    );
    let y_label = match report.settings.step_loss {
        StepLoss::Validation { .. } => "validation loss",
        StepLoss::TrainBatch => "loss",
    };
    let figure = RangeTestPlot::new(&report.curve, &report.analysis)
        .title(title)
        .y_label(y_label)
        .show_rules(show_rules);
    plot::range_test(out, &figure)?;
    Ok(())
}

fn summary(r: &RangeTestReport, args: &FindArgs) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let a = &r.analysis;
    match (&a.suggestion, &a.no_suggestion) {
        (Some(sg), _) => {
            let _ = writeln!(
                s,
                "suggested learning rate: {:.3e} ({} rule)",
                sg.lr, sg.rule
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "no suggestion from the {} rule: {why}", a.chosen_rule);
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
    let _ = writeln!(
        s,
        "  sweep: {} of {} steps, {:.1e} → {:.1e}, {}",
        r.curve.lrs.len(),
        r.sweep.num_steps,
        r.sweep.min_lr,
        r.sweep.max_lr,
        r.stop_reason
    );
    if let Some(to) = r.extended_to {
        let _ = writeln!(
            s,
            "  extended past --max {} to {to:.3e} (--extend)",
            r.sweep.max_lr
        );
    }
    if a.pinned {
        let upto = r.extended_to.unwrap_or(r.sweep.max_lr);
        let _ = writeln!(
            s,
            "warning: the loss never turned upward up to {upto:.3e}: the suggestion is pinned by the range, not by an observed blow-up; widen the range (e.g. --max {:.0e}) or pass --extend",
            upto * 100.0
        );
    }
    if r.interrupted {
        let _ = writeln!(
            s,
            "warning: interrupted; the report holds the steps measured so far"
        );
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
