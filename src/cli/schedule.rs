//! `lrfind schedule SPEC --steps N`: see a schedule before training with it.

use std::path::PathBuf;

use clap::Args;

use anyhow::Result;

use super::invalid;
use lrfind::plot::{self, PlotFormat, SchedulePlot};
use lrfind::report::atomic::check_writable;
use lrfind::schedule::{simulate, ParamGroups, SchedulerConfig};

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
    /// Plot the LR (and momentum) against the step (.png or .svg)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print JSON {"lr": [[...]], "momentum": [[...]]} instead of a table
    #[arg(long)]
    pub json: bool,
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
    let config = match args.spec.strip_prefix('@') {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| invalid(format!("SPEC @{file}: {e}")))?;
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
    let metrics = match &args.metrics {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| invalid(format!("--metrics {}: {e}", p.display())))?;
            Some(parse_list(&format!("--metrics {}", p.display()), &text)?)
        }
        None => None,
    };
    if let Some(out) = &args.out {
        PlotFormat::from_path(out)?;
        check_writable(out)?;
    }
    let n = lrs.len();
    let groups = ParamGroups::new(lrs, Some(vec![args.momentum; n]));
    let trace = simulate(&config, groups, args.steps, metrics.as_deref())?;
    let momentum = config
        .cycles_momentum()
        .then_some(trace.momentum.as_deref())
        .flatten();
    if let Some(out) = &args.out {
        plot::schedule(
            out,
            &SchedulePlot {
                lr: &trace.lr,
                momentum,
                title: config.to_string(),
            },
        )?;
    }
    if args.json {
        let mut v = serde_json::json!({ "scheduler": config, "lr": trace.lr });
        if let Some(m) = momentum {
            v["momentum"] = serde_json::json!(m);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let mut header = String::from(" step");
        for g in 0..n {
            header.push_str(&format!("  {:>13}", format!("lr[{g}]")));
        }
        if momentum.is_some() {
            for g in 0..n {
                header.push_str(&format!("  {:>10}", format!("mom[{g}]")));
            }
        }
        println!("{header}");
        for (i, row) in trace.lr.iter().enumerate() {
            let mut line = format!("{i:>5}");
            for v in row {
                line.push_str(&format!("  {v:>13.6e}"));
            }
            if let Some(m) = momentum.and_then(|m| m.get(i)) {
                for v in m {
                    line.push_str(&format!("  {v:>10.6}"));
                }
            }
            println!("{line}");
        }
    }
    Ok(0)
}
