//! The command line: parse, build typed settings, run, report errors with exit codes
//! (0 ok, 1 no suggestion / unstable, 2 bad input or failure).

pub mod args;
pub mod check;
pub mod errors;
pub mod find;
pub mod progress;
pub mod schedule;
pub mod train;

pub use errors::{describe, invalid};

use std::time::Instant;

use clap::{Parser, Subcommand};

/// Find a good learning rate with the LR range test, then train with it.
///
/// With no subcommand, runs the range test (Leslie Smith 2015): one optimizer step per
/// learning rate from --min to --max, an EMA-smoothed loss, and a suggested LR.
#[derive(Parser, Debug)]
#[command(name = "lrfind", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub find: find::FindArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train at the suggested (or a given) LR, with any PyTorch LR scheduler
    Train(Box<train::TrainArgs>),
    /// Print or plot a learning-rate schedule step by step
    Schedule(schedule::ScheduleArgs),
    /// CI gate: fail when the suggested LR is unstable across seeds or drifted from a baseline
    Check(Box<check::CheckArgs>),
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli, started: Instant) -> anyhow::Result<u8> {
    progress::install_ctrlc();
    match &cli.command {
        None => find::run(&cli.find, started),
        Some(Command::Train(a)) => train::run(a),
        Some(Command::Schedule(a)) => schedule::run(a),
        Some(Command::Check(a)) => check::run(a),
    }
}
