//! `lrfind train`: a full training run at the suggested (or a given) LR.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::ProgressBar;

use super::args::SetupArgs;
use super::out::{self, Human, EXIT_INTERRUPTED, EXIT_OK};
use super::progress;
use anyhow::Result;

use super::invalid;
use lrfind::plot::PlotFormat;
use lrfind::report::RangeTestReport;
use lrfind::schedule::{Interval, RawConfig, SchedulerConfig};
use lrfind::train::{self, EpochMetrics, LrSource, Observer, Outcome, Run, RunDir, TrainConfig};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Train at the LR suggested by the range-test report (--report)
    #[arg(long, conflicts_with = "lr", help_heading = "Learning rate")]
    pub use_suggested: bool,
    /// Train at this LR (no report needed)
    #[arg(
        long,
        value_name = "LR",
        help_heading = "Learning rate",
        allow_hyphen_values = true
    )]
    pub lr: Option<f64>,
    /// The range-test report to read data/model/optimizer/seed/batch size and the suggestion from
    #[arg(
        long,
        value_name = "FILE",
        default_value = "lrfind.json",
        help_heading = "Learning rate"
    )]
    pub report: PathBuf,
    /// With --use-suggested: verify the suggestion with short training trials before training
    /// (unless the report already holds a verification, as `lrfind --verify` writes), and
    /// train at the verified LR
    #[arg(long, help_heading = "Learning rate")]
    pub verify: bool,
    /// Optimizer steps per verification trial
    #[arg(
        long,
        value_name = "N",
        default_value_t = lrfind::finder::verify::DEFAULT_STEPS,
        help_heading = "Learning rate"
    )]
    pub verify_steps: usize,

    #[command(flatten)]
    pub setup: SetupArgs,

    /// Number of epochs [default: 5; with --resume: the run's own]
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub epochs: Option<usize>,
    /// LR scheduler, PyTorch style, e.g. 'StepLR(step_size=30, gamma=0.1)', 'OneCycleLR(max_lr=0.1)',
    /// 'ReduceLROnPlateau(mode=min, patience=5)'; names are case-insensitive
    #[arg(
        long,
        value_name = "SPEC",
        conflicts_with = "scheduler_file",
        help_heading = "Training"
    )]
    pub scheduler: Option<String>,
    /// LR scheduler from a JSON file: {"scheduler": "StepLR", "params": {...}, "children": [...]}
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    pub scheduler_file: Option<PathBuf>,
    /// When the scheduler steps: step (every batch) or epoch; ReduceLROnPlateau, fed the
    /// validation loss, always per epoch [default: as in PyTorch: step for OneCycleLR and
    /// CyclicLR, epoch for the others]
    #[arg(long, value_name = "WHEN", value_parser = super::args::offer_with(parse_interval, &["step", "epoch"]), hide_possible_values = true, help_heading = "Training")]
    pub schedule_every: Option<Interval>,
    /// Stop early after this many epochs without a lower validation loss
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub patience: Option<usize>,
    /// Batch size for evaluation
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        help_heading = "Training"
    )]
    pub eval_batch_size: usize,

    /// Run directory [default: runs/<timestamp>]
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub out_dir: Option<PathBuf>,
    /// Continue the run in DIR from its last finished epoch (with --epochs: up to that many)
    #[arg(long, value_name = "DIR", help_heading = "Output", conflicts_with_all = ["use_suggested", "lr", "scheduler", "scheduler_file", "out_dir"])]
    pub resume: Option<PathBuf>,
    /// Format of the curves plot: png or svg
    #[arg(
        long,
        value_parser = super::args::offer(&["png", "svg"]),
        hide_possible_values = true,
        value_name = "FMT",
        default_value = "png",
        help_heading = "Output"
    )]
    pub plot_format: String,
    /// Print the run's result as one JSON object on stdout (the epoch lines then go to stderr)
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Quiet: no progress bars, no epoch lines; only errors (on stderr) and what --json asks for
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    #[command(flatten)]
    pub color: super::ColorArg,
}

fn parse_interval(s: &str) -> std::result::Result<Interval, String> {
    match s.to_ascii_lowercase().as_str() {
        "step" | "batch" => Ok(Interval::Step),
        "epoch" => Ok(Interval::Epoch),
        _ => Err(format!("'{s}' is not step or epoch")),
    }
}

/// The scheduler as given, untyped: the peak LR of a OneCycleLR or CyclicLR may still have to
/// be filled in (see [`resolve`]).
fn scheduler_raw(args: &TrainArgs) -> Result<Option<RawConfig>> {
    match (&args.scheduler, &args.scheduler_file) {
        (Some(spec), _) => Ok(Some(RawConfig::parse(spec)?)),
        (None, Some(file)) => {
            let text = lrfind::read::read_settings(file, "a scheduler file")
                .map_err(|e| invalid(format!("--scheduler-file {e}")))?;
            Ok(Some(RawConfig::parse(text.trim_start()).map_err(|e| {
                invalid(format!("--scheduler-file {}: {e}", file.display()))
            })?))
        }
        (None, None) => Ok(None),
    }
}

/// `max_lr` as the user wrote it: `0.01`, `[0.01, 0.001]`.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), out::num),
        other => other.to_string(),
    }
}

/// The run's settings from the flags and, with --use-suggested, the report.
///
/// A OneCycleLR or CyclicLR sets the LR itself and peaks at its `max_lr`, so the run's LR
/// comes from exactly one place: `max_lr` is filled from --lr or the suggestion when not
/// given, and giving it as well as --lr or --use-suggested is refused (one of them would be
/// silently ignored).
fn resolve(args: &TrainArgs) -> Result<TrainConfig> {
    let epochs = args.epochs.unwrap_or(5);
    let mut raw = scheduler_raw(args)?;
    let peaks: Vec<(&'static str, Option<serde_json::Value>)> = raw
        .as_ref()
        .map(|r| {
            r.peak_lrs()
                .into_iter()
                .map(|(n, v)| (n, v.cloned()))
                .collect()
        })
        .unwrap_or_default();
    let given_max = peaks
        .iter()
        .find_map(|(n, v)| v.as_ref().map(|v| (*n, v.clone())));
    let conflict = |flag: &str, lr: f64| {
        given_max.as_ref().map(|(name, v)| {
            let (given, ignored, peak) = if flag == "--use-suggested" {
                (
                    flag.to_string(),
                    format!("the suggested {lr:.3e}"),
                    "the suggestion".to_string(),
                )
            } else {
                let lr = out::num(lr);
                (format!("{flag} {lr}"), flag.to_string(), lr)
            };
            invalid(format!(
                "{given}: {name}(max_lr={}) sets the LR itself (it peaks at max_lr), so {ignored} would be ignored; drop max_lr to peak at {peak}, or drop {flag}",
                value_text(v),
            ))
        })
    };
    let (setup, lr, source, device) = if args.use_suggested {
        let bad_report = |e: lrfind::Error| {
            let text = e.to_string();
            let prefix = format!("{}: ", args.report.display());
            invalid(format!(
                "report {}: {}; run `lrfind --report {}` to make one",
                args.report.display(),
                text.strip_prefix(&prefix).unwrap_or(&text),
                args.report.display()
            ))
        };
        let report: RangeTestReport = RangeTestReport::read(&args.report).map_err(bad_report)?;
        // Read back from a file a person may have edited: checked like flags.
        report.validate().map_err(bad_report)?;
        if let Some(d) = args.setup.source()? {
            if d != report.settings.data.source {
                let given = args.setup.data.as_deref().unwrap_or_default();
                return Err(invalid(format!(
                    "--data {given}: the report {} is from a range test on {}; run `lrfind --data {given}` first, or pass --lr",
                    args.report.display(),
                    report.settings.data.source
                )));
            }
        }
        let lr = report.suggested_lr.ok_or_else(|| {
            invalid(format!(
                "--use-suggested: the report {} has no suggestion ({}); rerun the range test with a wider range, or pass --lr",
                args.report.display(),
                report
                    .analysis
                    .no_suggestion
                    .as_ref()
                    .map_or("none".into(), |e| super::errors::flags_for_fields(&e.to_string()))
            ))
        })?;
        if let Some(e) = conflict("--use-suggested", lr) {
            return Err(e);
        }
        if report.analysis.pinned {
            out::warn(format!(
                "the suggestion {lr:.3e} in {} is pinned by --max {}: the loss never turned upward, so this LR is bounded by the range, not measured; rerun the range test with a higher --max or --extend",
                args.report.display(),
                out::num(report.sweep.max_lr)
            ));
        }
        let base = lrfind::range_test::Setup {
            data: report.settings.data.clone(),
            model: report.settings.model.clone(),
            optimizer: report.settings.optimizer.clone(),
            seed: report.settings.seed,
            batch_size: report.settings.batch_size,
            loss: report.settings.loss,
            init_from: report.settings.init_from.clone(),
            param_groups: report.settings.param_groups.clone(),
        };
        let setup = args.setup.resolve(Some(&base))?;
        let device = args.setup.device(None)?;
        let (lr, rule) = match (report.verified_lr, args.verify) {
            (Some(v), _) => (v, format!("{}, verified", report.rule)),
            (None, true) => (
                verify_now(args, &report, &setup, &device)?,
                format!("{}, verified", report.rule),
            ),
            (None, false) => (lr, report.rule.to_string()),
        };
        let source = LrSource::Suggested {
            report: args.report.display().to_string(),
            rule,
        };
        (setup, lr, source, device)
    } else if args.verify {
        return Err(invalid(
            "--verify checks a range test's suggestion: it needs --use-suggested (with --lr the LR is yours)",
        ));
    } else if let Some(lr) = args.lr {
        if let Some(e) = conflict("--lr", lr) {
            return Err(e);
        }
        (
            args.setup.resolve(None)?,
            lr,
            LrSource::Given,
            args.setup.device(None)?,
        )
    } else if let Some((name, v)) = &given_max {
        // The scheduler's own peak is the run's LR (per group: the first group's).
        let lr = match v {
            serde_json::Value::Array(a) => a.first().and_then(serde_json::Value::as_f64),
            v => v.as_f64(),
        }
        .ok_or_else(|| invalid(format!("--scheduler: {name}'s max_lr {v} is not a number")))?;
        (
            args.setup.resolve(None)?,
            lr,
            LrSource::Given,
            args.setup.device(None)?,
        )
    } else {
        let or_peak = match peaks.first() {
            Some((name, _)) => format!(", or give {name} its max_lr"),
            None => String::new(),
        };
        return Err(invalid(format!(
            "lrfind train needs --use-suggested (with a report from `lrfind`) or --lr LR{or_peak}"
        )));
    };
    let scheduler = match raw.as_mut() {
        Some(r) => {
            r.fill_max_lr(lr);
            Some(
                SchedulerConfig::from_raw(r.clone()).map_err(|e| match &args.scheduler_file {
                    Some(f) => invalid(format!("--scheduler-file {}: {e}", f.display())),
                    None => e.into(),
                })?,
            )
        }
        None => None,
    };
    let config = TrainConfig {
        setup,
        device: device.to_string(),
        lr,
        lr_source: source,
        epochs,
        scheduler,
        schedule_every: args.schedule_every,
        patience: args.patience,
        eval_batch_size: args.eval_batch_size,
    };
    config.validate()?;
    // Run the scheduler (built on scratch groups) over the planned epochs, a lower bound on its
    // steps, so a bad parameter or a negative or non-finite LR fails before any data loads;
    // Run::new checks the exact plan.
    if let Some(s) = &config.scheduler {
        let mut s = s.clone();
        s.fill_total_steps(1_000_000);
        lrfind::schedule::check_schedule(&s, &config.param_groups(), config.epochs, None)?;
    }
    Ok(config)
}

/// Verifies the report's suggestion on the training setup (short trials from its starting
/// weights) and returns the verified LR, saying what the trials found.
fn verify_now(
    args: &TrainArgs,
    report: &RangeTestReport,
    setup: &lrfind::range_test::Setup,
    device: &lrfind::device::DeviceSpec,
) -> Result<f64> {
    let config = lrfind::finder::VerifyConfig {
        steps: args.verify_steps,
        ..Default::default()
    };
    let rt = lrfind::range_test::RangeTest {
        setup: setup.clone(),
        device: *device,
        accumulate: report.settings.accumulate,
        step_loss: report.settings.step_loss,
        sweep: report.sweep.clone(),
        rule: report.rule,
        verify: Some(config.clone()),
    };
    rt.validate()?;
    let dev = rt.device.open()?;
    let data = rt.setup.device_data(&dev)?;
    let mut learner = rt.learner(&data, &dev)?;
    let v =
        lrfind::range_test::verify_learner(&mut learner, &report.analysis, &config, &mut |_| {
            if progress::should_stop() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
    if v.interrupted {
        return Err(invalid(
            "interrupted during the verification trials: nothing trained",
        ));
    }
    let lr = v.verified_lr.ok_or_else(|| {
        invalid(format!(
            "--verify: every trial diverged, from {} to {}; rerun the range test with a lower --max, or pass --lr",
            out::num(v.trials.first().map_or(0.0, |t| t.lr)),
            out::num(v.trials.last().map_or(0.0, |t| t.lr))
        ))
    })?;
    out::note(&format!(
        "verified learning rate {lr:.3e}: the best of {} trials of {} steps ({:.1} s); the {} rule suggested {:.3e}\n",
        v.trials.len(),
        v.steps,
        v.seconds,
        report.rule,
        v.suggested_lr
    ));
    Ok(lr)
}

/// `runs/<UTC time to the millisecond>`; [`RunDir::create_unique`] adds `-2`, `-3`, … if
/// another run took that name in the same millisecond.
fn default_out_dir() -> PathBuf {
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    PathBuf::from("runs").join(ts.replace(':', "-").trim_end_matches('Z'))
}

/// Whether the scheduler's plan depends on the run's length (OneCycleLR without its own
/// `total_steps`/`epochs`): then `--epochs` cannot change on resume without re-planning.
fn plans_over_run_length(s: &SchedulerConfig) -> bool {
    let (mut a, mut b) = (s.clone(), s.clone());
    a.fill_total_steps(1);
    b.fill_total_steps(2);
    a != b
}

/// The command line's observer: the run directory plus progress bars and per-epoch lines.
struct Console {
    dir: RunDir,
    epochs_bar: ProgressBar,
    batch_bar: ProgressBar,
    total_epochs: usize,
    human: Human,
    /// Plain progress lines when stderr is not a terminal.
    lines: progress::Lines,
    /// A failure to write an epoch line to stdout (a full disk), raised after the epoch is saved.
    write_error: Option<anyhow::Error>,
}

impl Observer for Console {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize, loss: f64) -> ControlFlow<()> {
        if batch == 0 {
            self.batch_bar.set_length(batches as u64);
            self.batch_bar.set_position(0);
            self.batch_bar.reset_eta();
        }
        self.batch_bar.inc(1);
        if batch.is_multiple_of(16) {
            self.batch_bar.set_message(format!("loss {loss:.4}"));
        }
        let total = self.total_epochs;
        self.lines.tick(|| {
            format!(
                "train: epoch {}/{total}, batch {}/{batches}, loss {loss:.4}",
                epoch + 1,
                batch + 1
            )
        });
        if progress::should_stop() || self.write_error.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn epoch_end(&mut self, run: &Run, m: &EpochMetrics, improved: bool) -> lrfind::Result<()> {
        self.dir.epoch_end(run, m, improved)?;
        self.epochs_bar.inc(1);
        let line = format!(
            "epoch {}/{}: train loss {:.4}, val loss {:.4}, {}, lr {:.3e}{}, {:.1} s\n",
            m.epoch,
            self.total_epochs,
            m.train_loss,
            m.val_loss,
            val_metrics(m.val_accuracy, m.val_rmse, m.val_mae),
            m.lr,
            if (m.lr_end - m.lr).abs() > 1e-15 * m.lr.abs() {
                format!(" → {:.3e}", m.lr_end)
            } else {
                String::new()
            },
            m.seconds
        );
        let human = self.human;
        match self.epochs_bar.suspend(|| human.say(&line)) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Stop at the next batch, as for Ctrl-C, and report the error then.
                self.write_error = Some(e);
                Ok(())
            }
        }
    }
}

/// Trains; exit code 0 when the run finished (or stopped early), 130 on Ctrl-C.
pub fn run(args: &TrainArgs) -> Result<u8> {
    out::set_quiet(args.quiet);
    let human = Human::new(args.json, args.quiet);
    let plot_format = PlotFormat::from_path(Path::new(&format!("curves.{}", args.plot_format)))?;
    let (mut run, dir) = match &args.resume {
        Some(path) => {
            let device = args.setup.device(None)?.open()?;
            let (dir, mut config, state, ckpt) = RunDir::open(path, &device)
                .map_err(|e| invalid(format!("--resume {}", super::describe(&e.into()))))?;
            if let Some(e) = args.epochs {
                if e < state.epochs_done {
                    return Err(invalid(format!(
                        "--epochs {e}: the run in {} has already finished {} epochs",
                        path.display(),
                        state.epochs_done
                    )));
                }
                if e != config.epochs
                    && config.scheduler.as_ref().is_some_and(plans_over_run_length)
                {
                    return Err(invalid(format!(
                        "--epochs {e}: the run in {} plans its OneCycleLR over {} epochs; changing the length on resume would re-plan the cycle mid-run; resume without --epochs, or start a new run",
                        path.display(),
                        config.epochs
                    )));
                }
                config.epochs = e;
            }
            let data = config.setup.device_data(&device)?;
            dir.check_dataset(&data.summary)?;
            let run = Run::resume(
                config,
                data,
                &device,
                state,
                &ckpt,
                &dir.file(train::run_dir::CHECKPOINT),
            )?;
            dir.write_config(&run.config)?;
            dir.write_dataset(&run.learner.data.summary)?;
            human.say(&format!(
                "resuming {} after epoch {} of {}\n",
                path.display(),
                run.state.epochs_done,
                run.config.epochs
            ))?;
            (run, dir)
        }
        None => {
            let config = resolve(args)?;
            // Fail on a directory holding a run now, not after loading the data.
            if let Some(out) = &args.out_dir {
                RunDir::precheck(out)?;
            }
            // Data first: a run that cannot start (bad data) creates no directory.
            let (device, data) = train::prepare(&config)?;
            let run = Run::new(config, data, &device)?;
            let mut dir = match &args.out_dir {
                Some(out) => RunDir::create(out, plot_format)?,
                None => RunDir::create_unique(&default_out_dir(), plot_format)?,
            };
            let written = dir
                .write_config(&run.config)
                .and_then(|()| dir.write_dataset(&run.learner.data.summary));
            if let Err(e) = written {
                for f in [train::run_dir::CONFIG, train::run_dir::DATASET] {
                    let _ = std::fs::remove_file(dir.file(f));
                }
                dir.remove_if_unused();
                return Err(e.into());
            }
            human.say(&format!(
                "training {} on {} with {}, {}{}{}, {} epoch(s) → {}\n",
                run.config.setup.model.name(),
                run.config.setup.data.name(),
                run.config.setup.optimizer.name(),
                run.config.lr_label(),
                match &run.config.lr_source {
                    LrSource::Suggested { report, rule } =>
                        format!(", suggested by the {rule} rule in {report}"),
                    LrSource::Given => String::new(),
                },
                run.config
                    .scheduler
                    .as_ref()
                    .map(|s| format!(", {}", s.to_short_string()))
                    .unwrap_or_default(),
                run.config.epochs,
                dir.path.display()
            ))?;
            (run, dir)
        }
    };
    let multi = progress::multi(args.quiet);
    let epochs_bar = multi.add(progress::bar(
        run.config.epochs as u64,
        args.quiet,
        "epochs [{bar:20}] {pos}/{len} {elapsed} eta {eta}",
    ));
    epochs_bar.set_position(run.state.epochs_done as u64);
    // A resumed run's finished epochs took no time here: estimate from this session's only.
    epochs_bar.reset_eta();
    let batch_bar = multi.add(progress::bar(
        run.batches_per_epoch() as u64,
        args.quiet,
        "batches [{bar:30}] {pos}/{len} eta {eta} {msg}",
    ));
    let total_epochs = run.config.epochs;
    let mut obs = Console {
        dir: dir.clone(),
        epochs_bar,
        batch_bar,
        total_epochs,
        human,
        lines: progress::Lines::new(args.quiet),
        write_error: None,
    };
    let outcome = run.train(&mut obs);
    obs.batch_bar.finish_and_clear();
    obs.epochs_bar.finish_and_clear();
    let write_error = obs.write_error.take();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            // A new run that failed before finishing an epoch has nothing to resume: take
            // back its config.json and dataset.json (and the directory, if this run made it), so the
            // --out-dir is free again.
            if args.resume.is_none() && run.state.epochs_done == 0 {
                drop(obs);
                for f in [train::run_dir::CONFIG, train::run_dir::DATASET] {
                    let _ = std::fs::remove_file(dir.file(f));
                }
                let mut dir = dir;
                dir.remove_if_unused();
            }
            return Err(e.into());
        }
    };
    if let Some(e) = write_error {
        return Err(e);
    }
    if out::stdout_closed() {
        // The reader left (`| head`): the finished epochs are saved; end quietly.
        return Ok(EXIT_OK);
    }
    let s = &run.state;
    if args.json {
        out::print(&format!("{}\n", result_json(&run, &dir, outcome)))?;
    }
    match outcome {
        Outcome::Completed | Outcome::EarlyStopped => {
            if outcome == Outcome::EarlyStopped {
                human.say(&format!(
                    "early stop: no lower validation loss for {} epochs\n",
                    s.epochs_without_improvement
                ))?;
            }
            if let Some(m) = s.history.last() {
                human.say(&format!(
                    "final: {}, val loss {:.4}; best val loss {:.4} at epoch {}; files in {}\n",
                    out::paint(
                        out::GOOD,
                        val_metrics(m.val_accuracy, m.val_rmse, m.val_mae)
                    ),
                    m.val_loss,
                    s.best_val_loss.unwrap_or(f64::NAN),
                    s.best_epoch.unwrap_or(0),
                    dir.path.display()
                ))?;
            }
            if let Some(t) = &s.test {
                human.say(&format!(
                    "test (reported only, chose nothing): {}, loss {:.4}\n",
                    metrics_text("test", t.accuracy, t.rmse, t.mae),
                    t.loss
                ))?;
            }
            Ok(EXIT_OK)
        }
        Outcome::Interrupted if args.resume.is_none() && s.epochs_done == 0 => {
            // Nothing to resume: give the directory back, so a new run can take it.
            let path = dir.path.clone();
            drop(obs);
            for f in [train::run_dir::CONFIG, train::run_dir::DATASET] {
                let _ = std::fs::remove_file(dir.file(f));
            }
            let mut dir = dir;
            dir.remove_if_unused();
            out::warn(format!(
                "interrupted during epoch 1: no epoch finished, so nothing was kept in {}",
                path.display()
            ));
            Ok(EXIT_INTERRUPTED)
        }
        Outcome::Interrupted => {
            out::warn(format!(
                "interrupted during epoch {}: {} holds everything up to epoch {}; continue with `lrfind train --resume {}`",
                s.epochs_done + 1,
                dir.path.display(),
                s.epochs_done,
                dir.path.display()
            ));
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// `val acc 97.10%` or `val rmse 0.41, val mae 0.30`.
fn val_metrics(acc: Option<f64>, rmse: Option<f64>, mae: Option<f64>) -> String {
    metrics_text("val", acc, rmse, mae)
}

fn metrics_text(split: &str, acc: Option<f64>, rmse: Option<f64>, mae: Option<f64>) -> String {
    match (acc, rmse, mae) {
        (Some(a), _, _) => format!("{split} acc {:.2}%", a * 100.0),
        (None, Some(r), Some(m)) => format!("{split} rmse {r:.4}, {split} mae {m:.4}"),
        _ => String::new(),
    }
}

/// `--json`: the run's result, one object.
fn result_json(run: &Run, dir: &RunDir, outcome: Outcome) -> serde_json::Value {
    let s = &run.state;
    serde_json::json!({
        "run_dir": dir.path,
        "outcome": outcome,
        "lr": run.config.lr,
        "epochs": run.config.epochs,
        "epochs_done": s.epochs_done,
        "best_val_loss": s.best_val_loss,
        "best_epoch": s.best_epoch,
        "final": s.history.last(),
        "test": s.test,
        "history": s.history,
    })
}
