//! `lrfind schedule SPEC --steps N`: see a schedule before training with it. The table and
//! the JSON are streamed row by row (memory does not grow with `--steps`); a plot needs every
//! row in memory and is limited to [`MAX_PLOT_STEPS`].

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use anyhow::Result;

use super::invalid;
use super::out::{self, EXIT_OK};
use lrfind::plot::{self, PlotFormat, SchedulePlot};
use lrfind::report::atomic::check_writable;
use lrfind::schedule::check::check_row;
use lrfind::schedule::{check_schedule, simulate, ParamGroups, SchedulerConfig, Steps};

/// Most steps `--out` plots (every row is held in memory for the plot).
pub const MAX_PLOT_STEPS: usize = 1_000_000;
/// Steps whose values are all checked before the first line is printed; past them a bad value
/// stops the stream where it occurs.
const CHECK_AHEAD_STEPS: usize = 1_000_000;

#[derive(Args, Debug, Clone)]
pub struct ScheduleArgs {
    /// The scheduler: compact form like 'StepLR(step_size=30, gamma=0.1)', or JSON
    /// ('{"scheduler": "StepLR", "params": {...}}'), or @FILE to read JSON from a file
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// Number of scheduler.step() calls to show
    #[arg(long, value_name = "N")]
    pub steps: usize,
    /// Initial LR of each param group, comma-separated
    #[arg(
        long,
        value_name = "LR,…",
        default_value = "0.1",
        allow_hyphen_values = true
    )]
    pub lr: String,
    /// Optimizer momentum (SGD momentum / Adam beta1) that CyclicLR and OneCycleLR may cycle
    #[arg(long, value_name = "M", default_value_t = 0.9)]
    pub momentum: f64,
    /// ReduceLROnPlateau: file with one metric per step (numbers separated by whitespace, commas or newlines)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Plot the LR (and momentum) against the step (.png or .svg; at most 1000000 steps)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// --out: a log-scale LR axis (decays like 1e-3 → 1e-4 stay visible; zero LRs are left out)
    #[arg(long, requires = "out", help_heading = "Output")]
    pub log_y: bool,
    /// Print JSON {"lr": [[...]], "momentum": [[...]]} instead of a table
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Quiet: no table (with --out, only the plot); only errors (on stderr) and what --json asks for
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    #[command(flatten)]
    pub color: super::ColorArg,
}

fn parse_list(flag: &str, s: &str) -> Result<Vec<f64>> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| invalid(format!("{flag}: '{p}' is not a finite number")))
        })
        .collect()
}

pub fn run(args: &ScheduleArgs) -> Result<u8> {
    out::set_quiet(args.quiet);
    let config = match args.spec.strip_prefix('@') {
        Some(file) => {
            let text = lrfind::read::read_settings(std::path::Path::new(file), "a scheduler file")
                .map_err(|e| invalid(format!("SPEC @{e}")))?;
            SchedulerConfig::from_json(&text)?
        }
        None => SchedulerConfig::parse(&args.spec)?,
    };
    let lrs = parse_list("--lr", &args.lr)?;
    if lrs.is_empty() || lrs.iter().any(|v| *v < 0.0) {
        return Err(invalid(format!(
            "--lr {}: expected one non-negative LR per param group, e.g. 0.1 or 0.1,0.01",
            args.lr
        )));
    }
    if !args.momentum.is_finite() {
        return Err(invalid(format!(
            "--momentum {}: must be a finite number",
            args.momentum
        )));
    }
    let metrics = match &args.metrics {
        Some(p) => {
            let text = lrfind::read::read_settings(p, "a metrics file")
                .map_err(|e| invalid(format!("--metrics {e}")))?;
            Some(parse_list(&format!("--metrics {}", p.display()), &text)?)
        }
        None => None,
    };
    if let Some(out) = &args.out {
        PlotFormat::from_path(out)?;
        if args.steps > MAX_PLOT_STEPS {
            return Err(invalid(format!(
                "--steps {}: --out plots at most {MAX_PLOT_STEPS} steps; drop --out to print all of them",
                args.steps
            )));
        }
        check_writable(out)?;
    }
    let n = lrs.len();
    let groups = ParamGroups::new(lrs, Some(vec![args.momentum; n]));
    let metrics = metrics.as_deref();
    // Build errors and missing metrics first, then every value we can check before printing.
    Steps::new(&config, groups.clone(), args.steps, metrics)?;
    check_schedule(&config, &groups, args.steps.min(CHECK_AHEAD_STEPS), metrics)?;
    let with_momentum = config.cycles_momentum();
    if let Some(out) = &args.out {
        let trace = simulate(&config, groups.clone(), args.steps, metrics)?;
        plot::schedule(
            out,
            &SchedulePlot {
                lr: &trace.lr,
                momentum: trace.momentum.as_deref().filter(|_| with_momentum),
                title: config.to_string(),
                log_y: args.log_y,
            },
        )?;
    }
    if args.quiet && !args.json {
        return Ok(EXIT_OK);
    }
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let written = if args.json {
        write_json(&mut w, &config, &groups, args.steps, metrics, with_momentum)
    } else {
        write_table(&mut w, &config, &groups, args.steps, metrics, with_momentum)
    };
    match written.and_then(|()| w.flush().map_err(Out::Io)) {
        Ok(()) => Ok(EXIT_OK),
        // A closed pipe (`| head`) is the reader's choice: stop quietly, as ripgrep does.
        Err(Out::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            out::mark_stdout_closed();
            Ok(EXIT_OK)
        }
        // A full disk: the same one-line error as every other write to stdout.
        Err(Out::Io(e)) => Err(out::stdout_error(e)),
        Err(Out::Schedule(e)) => {
            let _ = w.flush();
            Err(e.into())
        }
    }
}

/// Why streaming stopped.
enum Out {
    Io(io::Error),
    Schedule(lrfind::schedule::ScheduleError),
}

impl From<io::Error> for Out {
    fn from(e: io::Error) -> Self {
        Out::Io(e)
    }
}

impl From<lrfind::schedule::ScheduleError> for Out {
    fn from(e: lrfind::schedule::ScheduleError) -> Self {
        Out::Schedule(e)
    }
}

/// Calls `row(k, groups)` for every checked row of the schedule.
fn each_row(
    config: &SchedulerConfig,
    groups: &ParamGroups,
    steps: usize,
    metrics: Option<&[f64]>,
    mut row: impl FnMut(usize, &ParamGroups) -> io::Result<()>,
) -> std::result::Result<(), Out> {
    let mut rows = Steps::new(config, groups.clone(), steps, metrics)?;
    while let Some((k, g)) = rows.next_row()? {
        check_row(config.name(), k, g)?;
        row(k, g)?;
    }
    Ok(())
}

fn write_table(
    w: &mut impl Write,
    config: &SchedulerConfig,
    groups: &ParamGroups,
    steps: usize,
    metrics: Option<&[f64]>,
    with_momentum: bool,
) -> std::result::Result<(), Out> {
    let n = groups.len();
    let mut header = String::from(" step");
    for g in 0..n {
        header.push_str(&format!("  {:>13}", format!("lr[{g}]")));
    }
    if with_momentum {
        for g in 0..n {
            header.push_str(&format!("  {:>10}", format!("mom[{g}]")));
        }
    }
    writeln!(w, "{header}")?;
    each_row(config, groups, steps, metrics, |k, g| {
        write!(w, "{k:>5}")?;
        for v in &g.lr {
            write!(w, "  {v:>13.6e}")?;
        }
        if with_momentum {
            for v in g.momentum.iter().flatten() {
                write!(w, "  {v:>10.6}")?;
            }
        }
        writeln!(w)
    })
}

/// `{"scheduler": ..., "lr": [[...], ...], "momentum": [[...], ...]}`, one row per line; the
/// momentum rows come from a second run of the (deterministic) schedule.
fn write_json(
    w: &mut impl Write,
    config: &SchedulerConfig,
    groups: &ParamGroups,
    steps: usize,
    metrics: Option<&[f64]>,
    with_momentum: bool,
) -> std::result::Result<(), Out> {
    let row_json = |v: &[f64]| serde_json::to_string(v).unwrap_or_default();
    // Serializing a Map/Vec/str tree cannot fail.
    let scheduler = serde_json::to_string(config).unwrap_or_default();
    write!(w, "{{\"scheduler\": {scheduler},\n\"lr\": [")?;
    each_row(config, groups, steps, metrics, |k, g| {
        let sep = if k == 0 { "\n" } else { ",\n" };
        write!(w, "{sep}{}", row_json(&g.lr))
    })?;
    write!(w, "\n]")?;
    if with_momentum {
        write!(w, ",\n\"momentum\": [")?;
        each_row(config, groups, steps, metrics, |k, g| {
            let sep = if k == 0 { "\n" } else { ",\n" };
            write!(w, "{sep}{}", row_json(g.momentum.as_deref().unwrap_or(&[])))
        })?;
        write!(w, "\n]")?;
    }
    writeln!(w, "}}")?;
    Ok(())
}
