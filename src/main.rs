//! `lrfind`: the command line on top of the library. Everything under `cli/` is this
//! binary's own: the library never sees clap, progress bars or flags.

mod cli;

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let started = Instant::now();
    // lrfind spreads each step over the cores itself (one batch shard per core), so candle's
    // matmuls run on one thread each; with RAYON_NUM_THREADS unset candle would also re-read
    // the CPU topology on every matmul. Set before any thread starts; an explicit value wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    cli::main(started)
}
