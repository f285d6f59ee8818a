//! Progress bars on stderr, hidden under `--quiet` or when stderr is not a terminal, and Ctrl-C.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set by the Ctrl-C handler; loops check it between steps and stop cleanly.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Loops stop on Ctrl-C, and once the reader of stdout has gone (`lrfind train | head -1`).
pub fn should_stop() -> bool {
    interrupted() || super::out::stdout_closed()
}

/// First Ctrl-C: finish the current step and write what was measured. Second: exit now.
pub fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(super::out::EXIT_INTERRUPTED.into());
        }
        // Not eprintln!: a panic in the handler thread would abort.
        super::out::note("\ninterrupted: finishing the current step and saving what was measured (Ctrl-C again to abort)\n");
    });
}

pub fn visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

pub fn bar(len: u64, quiet: bool, template: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len),
        if visible(quiet) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

pub fn multi(quiet: bool) -> MultiProgress {
    MultiProgress::with_draw_target(if visible(quiet) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    })
}
