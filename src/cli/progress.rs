//! Progress on stderr: a bar on a terminal; on any other stderr (a CI log, a file) a plain
//! line every few seconds, as cargo and pip do; nothing under `--quiet`. And Ctrl-C.

use std::cell::Cell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// Seconds between plain progress lines when stderr is not a terminal.
const PLAIN_EVERY_S: f64 = 5.0;
/// Overrides [`PLAIN_EVERY_S`] (seconds, may be 0: every update); for tests and for logs that
/// want more or fewer lines.
pub const INTERVAL_ENV: &str = "LRFIND_PROGRESS_INTERVAL";

/// The plain-line side of progress: when stderr is no terminal, one line per interval.
pub struct Lines {
    every: Option<Duration>,
    last: Cell<Instant>,
}

impl Lines {
    /// Lines are written when not `quiet` and stderr is not a terminal (the bar shows there).
    pub fn new(quiet: bool) -> Self {
        let every = (!quiet && !std::io::stderr().is_terminal()).then(|| {
            let s = std::env::var(INTERVAL_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(PLAIN_EVERY_S);
            Duration::from_secs_f64(s)
        });
        Self {
            every,
            last: Cell::new(Instant::now()),
        }
    }

    /// Writes `line()` to stderr when an interval has passed since the last line (or the
    /// start); `line` is only called then.
    pub fn tick(&self, line: impl FnOnce() -> String) {
        let Some(every) = self.every else { return };
        let now = Instant::now();
        if now.duration_since(self.last.get()) >= every {
            self.last.set(now);
            super::out::note(&format!("{}\n", line()));
        }
    }
}
