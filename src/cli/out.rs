//! Everything the command line prints, and the exit codes.
//!
//! Results go to stdout through [`print`] only: a closed pipe (`lrfind … | head -1`) is not an
//! error there (output stops and lrfind ends quietly with status 0, as ripgrep does), while any
//! other write failure (a full disk: `> /dev/full`) is one. Notes, warnings and errors go to
//! stderr and never fail. Text may carry ANSI styling; anstream strips it again for a stream
//! that is not a terminal, under `NO_COLOR`, or with `--color never`.

use std::fmt::Display;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};

use anyhow::Result;

/// Success: a suggestion, a stable check, a finished run.
pub const EXIT_OK: u8 = 0;
/// The command ran but has no result: no suggestion, or `check` found the LR unstable.
pub const EXIT_NO_RESULT: u8 = 1;
/// Bad input or a failure, told in one line on stderr (clap's own usage errors too).
pub const EXIT_ERROR: u8 = 2;
/// Stopped by Ctrl-C (128 + SIGINT); what was finished is saved.
pub const EXIT_INTERRUPTED: u8 = 130;

pub const GOOD: Style = AnsiColor::Green.on_default().bold();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// Section headings in `--help`, as clap draws its own.
pub const HEADING: Style = Style::new().bold().underline();

static QUIET: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `--color`: when to colour the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    pub fn apply(self) {
        match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        }
        .write_global();
    }

    pub fn clap(self) -> clap::ColorChoice {
        match self {
            ColorWhen::Auto => clap::ColorChoice::Auto,
            ColorWhen::Always => clap::ColorChoice::Always,
            ColorWhen::Never => clap::ColorChoice::Never,
        }
    }
}

/// `-q`: nothing on stdout but what --json / --print ask for, nothing on stderr but errors.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// True once a write to stdout found the pipe closed; lrfind then stops and exits 0.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// For writers of their own (the streamed `schedule` table): the reader has gone.
pub fn mark_stdout_closed() {
    STDOUT_CLOSED.store(true, Ordering::SeqCst);
}

/// A failure to write stdout other than a closed pipe, as one line.
pub fn stdout_error(e: io::Error) -> anyhow::Error {
    anyhow::anyhow!("stdout: {e}")
}

/// Notes and warnings stay off stderr under `-q`, and once the reader of stdout has gone.
fn silent() -> bool {
    QUIET.load(Ordering::SeqCst) || stdout_closed()
}

/// `text` in `style` (stripped again where colour is off).
pub fn paint(style: Style, text: impl Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Writes `text` to stdout as is. A closed pipe stops output without an error; any other
/// failure (ENOSPC) is an error.
pub fn print(text: &str) -> Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            mark_stdout_closed();
            Ok(())
        }
        Err(e) => Err(stdout_error(e)),
    }
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it.
fn stderr(text: &str) {
    let mut err = anstream::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// A status line on stderr (not under `-q`).
pub fn note(text: &str) {
    if !silent() {
        stderr(text);
    }
}

/// `warning: …` on stderr (not under `-q`).
pub fn warn(msg: impl Display) {
    if !silent() {
        stderr(&format!("{}: {msg}\n", paint(WARN, "warning")));
    }
}

/// `error: …` on stderr, always: the first line of `msg` only (candle errors may carry a
/// backtrace after it).
pub fn error(msg: impl Display) {
    let msg = msg.to_string();
    let line = msg.lines().next().unwrap_or("unknown error");
    stderr(&format!("{}: {line}\n", paint(BAD, "error")));
}

/// Where a command's human-readable lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Human {
    Stdout,
    /// stdout carries machine output (--json, --print).
    Stderr,
    /// `-q`.
    Off,
}

impl Human {
    pub fn new(machine_output: bool, quiet: bool) -> Self {
        match (quiet, machine_output) {
            (true, _) => Human::Off,
            (false, true) => Human::Stderr,
            (false, false) => Human::Stdout,
        }
    }

    pub fn say(self, text: &str) -> Result<()> {
        match self {
            Human::Stdout => print(text),
            Human::Stderr => {
                note(text);
                Ok(())
            }
            Human::Off => Ok(()),
        }
    }
}

/// A float in its shortest round-trip form: plain (`0.003`) or exponent (`1e-7`), whichever
/// is shorter. Parsing it back gives exactly `v`.
pub fn num(v: f64) -> String {
    let plain = format!("{v}");
    let exp = format!("{v:e}");
    if exp.len() < plain.len() {
        exp
    } else {
        plain
    }
}

/// `v × 10^k` as a person would write it (`1e-6` × 100 is `1e-4`, not
/// `0.00009999999999999999`): the decimal exponent of `v`'s shortest form is shifted.
pub fn num_times_pow10(v: f64, k: i32) -> String {
    let s = format!("{v:e}");
    let shifted = s
        .split_once('e')
        .and_then(|(m, e)| Some(format!("{m}e{}", e.parse::<i32>().ok()? + k)))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(v * 10f64.powi(k));
    num(shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shortest_and_round_trip() {
        for (v, s) in [
            (1e-7, "1e-7"),
            (0.5, "0.5"),
            (10.0, "10"),
            (1000.0, "1e3"),
            (0.003, "3e-3"),
            (0.25, "0.25"),
            (3.019_951_720_402_016e-3, "0.003019951720402016"),
            (1.2345678e-5, "1.2345678e-5"),
        ] {
            assert_eq!(num(v), s);
            assert_eq!(num(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn scaling_keeps_the_typed_digits() {
        // The plain product is 9.999999999999999e-5.
        assert_ne!(1e-6 * 100.0, 1e-4);
        assert_eq!(num_times_pow10(1e-6, 2), "1e-4");
        assert_eq!(num_times_pow10(3e-3, 2), "0.3");
        assert_eq!(num_times_pow10(10.0, 2), "1e3");
        assert_eq!(num_times_pow10(0.07, 2), "7");
    }

    #[test]
    fn human_lines_follow_machine_output_and_quiet() {
        assert_eq!(Human::new(false, false), Human::Stdout);
        assert_eq!(Human::new(true, false), Human::Stderr);
        assert_eq!(Human::new(true, true), Human::Off);
        assert_eq!(Human::new(false, true), Human::Off);
    }
}
