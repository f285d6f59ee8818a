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
    // A large batch's activations are megabytes, allocated and freed every step: keep them
    // on the heap rather than a fresh mmap (and its page faults) each time. glibc raises its
    // own threshold only after a large enough free, so speed would depend on what ran first
    // (30 % at batch 512). Set before any allocation-heavy work; glibc only.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    cli::main(started)
}
