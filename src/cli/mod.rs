//! The command line: parse, build typed settings, run, report errors with exit codes
//! (`out::EXIT_OK` 0, `EXIT_NO_RESULT` 1, `EXIT_ERROR` 2, `EXIT_INTERRUPTED` 130).

pub mod args;
pub mod check;
pub mod errors;
pub mod find;
pub mod out;
pub mod progress;
pub mod schedule;
pub mod train;

pub use errors::{describe, invalid};

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Instant;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use out::{ColorWhen, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK};

/// Find a good learning rate with the LR range test, then train with it.
///
/// With no subcommand, runs the range test (Leslie Smith 2015): one optimizer step per
/// learning rate from --min to --max, an EMA-smoothed loss, and a suggested LR.
#[derive(Parser, Debug)]
#[command(name = "lrfind", args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub find: find::FindArgs,
}

/// `--color`, in every command that prints (read ahead of parsing: see [`parse`]).
#[derive(Args, Debug, Clone, Default)]
pub struct ColorArg {
    /// Colour the output: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(
        long,
        value_name = "WHEN",
        default_value = "auto",
        hide_possible_values = true,
        help_heading = "Output"
    )]
    pub color: ColorWhen,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train at the suggested (or a given) LR, with any PyTorch LR scheduler
    Train(Box<train::TrainArgs>),
    /// Print or plot a learning-rate schedule step by step
    Schedule(schedule::ScheduleArgs),
    /// CI gate: fail when the suggested LR is unstable across seeds or drifted from a baseline
    Check(Box<check::CheckArgs>),
    /// Print a shell completion script: bash, zsh, fish, powershell, elvish
    Completions(CompletionsArgs),
    /// Print the man page (roff): `lrfind man > lrfind.1`
    Man(ManArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct ManArgs {
    /// A subcommand's own page (lrfind-train.1, …) instead of lrfind.1
    #[arg(value_name = "COMMAND", value_parser = ["train", "schedule", "check"])]
    pub command: Option<String>,
}

/// The features this binary was built with, e.g. `0.1.0 (features: hub)`.
pub fn version() -> String {
    let features: Vec<&str> = [
        ("cuda", cfg!(feature = "cuda")),
        ("metal", cfg!(feature = "metal")),
        ("hub", cfg!(feature = "hub")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    format!("{} (features: {features})", env!("CARGO_PKG_VERSION"))
}

const EXIT_STATUS: &str = "\
  0    success: a suggested LR, a stable check, a finished run
  1    no result: no suggestion (see the report), or check found the LR unstable or drifted
  2    error: bad input or a failure, told in one line on stderr
  130  interrupted (Ctrl-C): what was finished is saved (report, run directory)";

const FIND_EXAMPLES: &str = "\
  lrfind --out lrfind.png                  Range test on the bundled digits; plot the curve
  lrfind --optimizer sgd --momentum 0.9 --min 1e-5 --max 10
  LR=$(lrfind -q --print lr)               Only the suggested LR on stdout, for scripts
  lrfind --json | jq .suggested_lr         The report on stdout, the summary on stderr
  lrfind train --use-suggested             Then train at the suggestion";

const TRAIN_EXAMPLES: &str = "\
  lrfind train --use-suggested --epochs 10          At the LR in lrfind.json
  lrfind train --use-suggested --scheduler 'OneCycleLR()'   One cycle peaking at the suggested LR
  lrfind train --lr 0.1 --optimizer sgd --momentum 0.9 --scheduler 'StepLR(step_size=2, gamma=0.1)'
  lrfind train --lr 3e-3 --epochs 2 --out-dir runs/a        Train into a named run directory
  lrfind train --resume runs/a --epochs 4           Continue it (after Ctrl-C, or for more epochs)
  lrfind train --lr 3e-3 -q --json | jq .final      One JSON object on stdout";

const SCHEDULE_EXAMPLES: &str = "\
  lrfind schedule 'StepLR(step_size=30, gamma=0.1)' --steps 100 --out step.png --log-y
  lrfind schedule 'OneCycleLR(max_lr=0.1, total_steps=100)' --steps 100 --out onecycle.png
  lrfind schedule 'CosineAnnealingWarmRestarts(T_0=10, T_mult=2)' --steps 70 --json";

const CHECK_EXAMPLES: &str = "\
  lrfind check --seeds 5                            Is the suggestion stable across seeds?
  lrfind check --baseline lr-baseline.json --update-baseline   Save a baseline
  lrfind check --baseline lr-baseline.json --out check.png     Then fail CI when the LR drifts from it
  lrfind check -q --json | jq .suggested_lr";

fn help_tail(examples: &str) -> clap::builder::StyledStr {
    let h = out::HEADING;
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("  {}", l.trim_start()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "{h}Examples:{h:#}\n{}\n\n{h}Exit status:{h:#}\n{}",
        indent(examples),
        indent(EXIT_STATUS)
    )
    .into()
}

/// The full command definition: what `--help`, the man page and completions describe.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .version(version())
        .after_help(help_tail(FIND_EXAMPLES));
    for (name, examples) in [
        ("train", TRAIN_EXAMPLES),
        ("schedule", SCHEDULE_EXAMPLES),
        ("check", CHECK_EXAMPLES),
    ] {
        cmd = cmd.mut_subcommand(name, |c| c.after_help(help_tail(examples)));
    }
    allow_negative_values(cmd)
}

/// `--batch-size -1` reaches the value parser and gets its one-line error, instead of clap
/// taking `-1` for a flag.
fn allow_negative_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(allow_negative_values)
}

/// `--color` read ahead of parsing, so that clap's own help and errors follow it too.
fn color_from_args(args: &[OsString]) -> ColorWhen {
    let mut when = ColorWhen::Auto;
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        let v = match a.as_ref() {
            "--" => break,
            "--color" => it.next().map(|v| v.into_owned()),
            s => s.strip_prefix("--color=").map(str::to_string),
        };
        when = match v.as_deref() {
            Some("always") => ColorWhen::Always,
            Some("never") => ColorWhen::Never,
            Some(_) => ColorWhen::Auto,
            None => when,
        };
    }
    when
}

/// Parses the command line. `Err(code)`: clap answered by itself: `--help` / `--version` on
/// stdout (0), or a usage error in one line on stderr (2).
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Cli, u8> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let color = color_from_args(&args);
    color.apply();
    let matches = command()
        .color(color.clap())
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    matches.map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let text = e.render().ansi().to_string();
            match out::print(&text) {
                Ok(()) => EXIT_OK,
                Err(err) => {
                    out::error(err);
                    EXIT_ERROR
                }
            }
        }
        _ => {
            out::error(usage_error(&e));
            EXIT_ERROR
        }
    })
}

/// clap's error in one line plus a hint, like lrfind's own: `--batch-size -1: not a whole
/// number (see --help)`.
pub fn usage_error(e: &clap::Error) -> String {
    let ctx = |k: ContextKind| e.get(k).map(|v| context_text(v, false));
    let arg = e
        .get(ContextKind::InvalidArg)
        .map(|v| context_text(v, true));
    let value = ctx(ContextKind::InvalidValue);
    let line = match (e.kind(), arg, value) {
        (ErrorKind::ValueValidation, Some(arg), Some(value)) => {
            let why = std::error::Error::source(e)
                .map(parse_failure)
                .unwrap_or_else(|| "invalid value".into());
            format!("{arg} {value}: {why}")
        }
        (ErrorKind::InvalidValue, Some(arg), Some(value)) => {
            let valid = ctx(ContextKind::ValidValue).unwrap_or_default();
            let did_you_mean = ctx(ContextKind::SuggestedValue)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            if value.is_empty() {
                format!("{arg} needs a value, one of: {valid}")
            } else {
                format!("{arg} {value}: expected one of {valid}{did_you_mean}")
            }
        }
        (ErrorKind::ArgumentConflict, Some(arg), _) => {
            match e.get(ContextKind::PriorArg).map(|v| context_text(v, true)) {
                Some(prior) => format!("{arg} cannot be used with {prior}"),
                None => first_line(e),
            }
        }
        (ErrorKind::MissingRequiredArgument, Some(arg), _) => format!("missing {arg}"),
        _ => first_line(e),
    };
    format!("{line} (see --help)")
}

/// "--batch-size <N>" → "--batch-size"; a positional "<SPEC>" stays as it is.
fn flag(s: &str) -> String {
    match s.split_once(' ') {
        Some((f, _)) if f.starts_with('-') => f.to_string(),
        _ => s.to_string(),
    }
}

/// A context value as text; argument names (`as_flags`) without their value names.
fn context_text(v: &ContextValue, as_flags: bool) -> String {
    let f = |s: &String| if as_flags { flag(s) } else { s.clone() };
    match v {
        ContextValue::String(s) => f(s),
        ContextValue::Strings(s) => s.iter().map(f).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// What a standard number parser said, in words a user reads.
fn parse_failure(source: &(dyn std::error::Error + 'static)) -> String {
    use std::num::IntErrorKind;
    if let Some(e) = source.downcast_ref::<std::num::ParseIntError>() {
        return match e.kind() {
            IntErrorKind::Empty => "needs a value".into(),
            IntErrorKind::PosOverflow => format!("too large (at most {})", usize::MAX),
            _ => "not a whole number (0, 1, 2, …)".into(),
        };
    }
    if source.downcast_ref::<std::num::ParseFloatError>().is_some() {
        return "not a number".into();
    }
    source.to_string()
}

/// clap's own message, its tips joined onto the same line, without "error: " and usage.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !line.is_empty() {
            parts.push(line.strip_prefix("tip: ").unwrap_or(line).to_string());
        }
    }
    parts.join("; ")
}

/// The whole program: parse, run, print the error, map the exit code.
pub fn main(started: Instant) -> ExitCode {
    let code = match parse(std::env::args_os()) {
        Ok(cli) => match run(cli, started) {
            Ok(code) => code,
            Err(e) => {
                if let Some(lrfind::Error::Interrupted(when)) = e.downcast_ref::<lrfind::Error>() {
                    // Ctrl-C before anything was measured: nothing written, nothing replaced.
                    out::warn(format!(
                        "interrupted {when}: nothing was measured and no file was written"
                    ));
                    return ExitCode::from(EXIT_INTERRUPTED);
                }
                if !out::stdout_closed() {
                    out::error(describe(&e));
                }
                EXIT_ERROR
            }
        },
        Err(code) => code,
    };
    // The reader of stdout left (`| head`): lrfind stopped early on purpose; not a failure.
    ExitCode::from(if out::stdout_closed() { EXIT_OK } else { code })
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli, started: Instant) -> anyhow::Result<u8> {
    progress::install_ctrlc();
    lrfind::data::set_interrupt(&progress::INTERRUPTED);
    match &cli.command {
        None => find::run(&cli.find, started),
        Some(Command::Train(a)) => train::run(a),
        Some(Command::Schedule(a)) => schedule::run(a),
        Some(Command::Check(a)) => check::run(a),
        Some(Command::Completions(a)) => {
            out::print(&completion_script(a.shell))?;
            Ok(EXIT_OK)
        }
        Some(Command::Man(a)) => {
            let mut buf = Vec::new();
            man_page(a.command.as_deref())
                .render(&mut buf)
                .map_err(|e| anyhow::anyhow!("man page: {e}"))?;
            out::print(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_OK)
        }
    }
}

/// The completion script for `shell`. `--data` takes a dataset name or a path, which
/// clap_complete's static scripts cannot say: bash and fish are told to offer files too.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command(), "lrfind", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    let names = args::DATA_NAMES.join(" ");
    match shell {
        clap_complete::Shell::Bash => {
            let only = format!("$(compgen -W \"{names}\" -- \"${{cur}}\")");
            let both = format!("{only} $(compgen -f -- \"${{cur}}\")");
            script.replace(
                &format!("COMPREPLY=({only})"),
                &format!("COMPREPLY=({both})"),
            )
        }
        clap_complete::Shell::Fish => {
            script
                .lines()
                .map(|l| {
                    if l.contains(" -l data ") {
                        l.replacen(" -r -f -a ", " -r -F -a ", 1)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        _ => script,
    }
}

fn man_page(sub: Option<&str>) -> clap_mangen::Man {
    let mut cmd = command();
    cmd.build();
    match sub.and_then(|s| cmd.find_subcommand(s)) {
        Some(s) => {
            let name = format!("lrfind-{}", s.get_name());
            clap_mangen::Man::new(s.clone().name(name).version(version()))
        }
        None => clap_mangen::Man::new(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }

    /// The words of an example line: the command before its description (two spaces), without
    /// `LR=$(…)` and pipes, single quotes removed.
    fn example_words(line: &str) -> Vec<String> {
        let cmd = line.trim().split("  ").next().unwrap_or("");
        let cmd = cmd
            .strip_prefix("LR=$(")
            .map_or(cmd, |c| c.trim_end_matches(')'));
        let cmd = cmd.split(" | ").next().unwrap_or("");
        let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
        for c in cmd.chars() {
            match c {
                '\'' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        words.push(word);
        words
    }

    #[test]
    fn every_help_example_parses() {
        let all = [
            FIND_EXAMPLES,
            TRAIN_EXAMPLES,
            SCHEDULE_EXAMPLES,
            CHECK_EXAMPLES,
        ];
        let mut n = 0;
        for line in all.iter().flat_map(|e| e.lines()) {
            let words = example_words(line);
            assert_eq!(words[0], "lrfind", "{line}");
            let parsed = command().try_get_matches_from(&words);
            assert!(parsed.is_ok(), "{line}: {:?}", parsed.err());
            n += 1;
        }
        assert_eq!(n, 18);
        assert_eq!(
            example_words("  LR=$(lrfind -q --print lr)    For scripts"),
            ["lrfind", "-q", "--print", "lr"]
        );
        // The scheduler specs in them are valid too.
        for line in all.iter().flat_map(|e| e.lines()) {
            let words = example_words(line);
            if let Some(i) = words
                .iter()
                .position(|w| w == "--scheduler" || w == "schedule")
            {
                // A OneCycleLR without max_lr gets it from the LR the run trains at.
                let mut raw = lrfind::schedule::RawConfig::parse(&words[i + 1]).unwrap();
                raw.fill_max_lr(3e-3);
                lrfind::schedule::SchedulerConfig::from_raw(raw).unwrap();
            }
        }
    }

    #[test]
    fn color_is_read_ahead_of_parsing() {
        let a = |v: &[&str]| color_from_args(&v.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(a(&["lrfind"]), ColorWhen::Auto);
        assert_eq!(a(&["lrfind", "--color", "never"]), ColorWhen::Never);
        assert_eq!(a(&["lrfind", "train", "--color=always"]), ColorWhen::Always);
        assert_eq!(a(&["lrfind", "--", "--color=always"]), ColorWhen::Auto);
    }

    #[test]
    fn usage_errors_are_one_line_with_a_hint() {
        let err = |args: &[&str]| {
            let e = command()
                .try_get_matches_from(args.iter().copied())
                .unwrap_err();
            usage_error(&e)
        };
        assert_eq!(
            err(&["lrfind", "--batch-size", "-1"]),
            "--batch-size -1: not a whole number (0, 1, 2, …) (see --help)"
        );
        assert_eq!(
            err(&["lrfind", "--min", "abc"]),
            "--min abc: not a number (see --help)"
        );
        let e = err(&["lrfind", "--mode", "expo"]);
        assert!(e.starts_with("--mode expo: unknown mode 'expo'"), "{e}");
        let e = err(&["lrfind", "--color", "sometimes"]);
        assert!(
            e.starts_with("--color sometimes: expected one of auto, always, never"),
            "{e}"
        );
        let e = err(&["lrfind", "train", "--lr", "1", "--use-suggested"]);
        assert!(e.contains("cannot be used with"), "{e}");
        let e = err(&["lrfind", "schedule", "StepLR(step_size=1)"]);
        assert!(e.starts_with("missing --steps"), "{e}");
        let e = err(&["lrfind", "schedule"]);
        assert!(e.contains("--steps") && e.contains("<SPEC>"), "{e}");
        let e = err(&["lrfind", "--bach-size", "3"]);
        assert!(
            e.contains("--bach-size") && e.contains("--batch-size"),
            "{e}"
        );
        for args in [
            &["lrfind", "--batch-size", "-1"][..],
            &["lrfind", "--nope"],
            &["lrfind", "trian"],
            &["lrfind", "schedule"],
        ] {
            let e = err(args);
            assert!(!e.contains('\n') && e.ends_with("(see --help)"), "{e}");
        }
    }
}
