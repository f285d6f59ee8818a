use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

fn main() -> ExitCode {
    let started = Instant::now();
    lrfind::init_threads();
    let cli = lrfind::cli::Cli::parse();
    match lrfind::cli::run(cli, started) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: candle errors may carry a backtrace after the first line.
            let msg = e.to_string();
            eprintln!("error: {}", msg.lines().next().unwrap_or("unknown error"));
            ExitCode::from(2)
        }
    }
}
