//! Command-line conventions end to end: completions, man page, help, version, scripting
//! output (--print, --json, -q), exit codes, colour, clap's errors, closed and full stdout.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ESC: char = '\x1b';

fn ok_stdout(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(args));
    assert_eq!(code, 0, "{args:?}: {err}");
    assert!(err.is_empty(), "{args:?}: {err}");
    out
}

fn has_program(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `shell check_flag script` on a generated completion script, or says it skipped.
fn script_parses(shell: &str, check: &[&str]) {
    let script = ok_stdout(&["completions", shell]);
    assert!(script.contains("lrfind") && script.contains("use-suggested"));
    if !has_program(shell) {
        say_skipped(&format!(
            "{shell} not installed: its completion script was not parsed"
        ));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(format!("lrfind.{shell}"));
    std::fs::write(&file, &script).unwrap();
    let out = std::process::Command::new(shell)
        .args(check)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell} rejects the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bash_completion_script_parses() {
    script_parses("bash", &["-n"]);
    let script = ok_stdout(&["completions", "bash"]);
    for sub in ["train", "schedule", "check", "completions", "man"] {
        assert!(script.contains(sub), "{sub}");
    }
}

#[test]
fn zsh_and_fish_completion_scripts_parse() {
    script_parses("zsh", &["-n"]);
    script_parses("fish", &["--no-execute"]);
    let ps = ok_stdout(&["completions", "powershell"]);
    assert!(ps.contains("Register-ArgumentCompleter"));
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = assert_usage_error(lrfind(tmp.path()).args(["completions", "tcsh"]), "tcsh");
    assert!(err.contains("bash"), "{err}");
}

#[test]
fn man_page_is_roff_and_names_every_subcommand() {
    let page = ok_stdout(&["man"]);
    assert!(page.contains(".TH lrfind 1"), "{page}");
    assert!(page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"));
    for sub in ["train", "schedule", "check", "completions", "man"] {
        assert!(
            page.contains(&format!("lrfind\\-{sub}(1)")),
            "{sub} missing from the SUBCOMMANDS section"
        );
    }
    // The examples and exit status are there too.
    assert!(page.contains("Exit status") && page.contains("130"));
    // A subcommand's own page carries its flags.
    let train = ok_stdout(&["man", "train"]);
    assert!(train.contains(".TH lrfind-train 1"), "{train}");
    assert!(train.contains("use\\-suggested"));
    if has_program("groff") {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("lrfind.1"), &page).unwrap();
        let out = std::process::Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(tmp.path().join("lrfind.1"))
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    } else {
        say_skipped("groff not installed: the man page was not rendered");
    }
}

#[test]
fn help_ends_with_examples_and_exit_status_and_shows_defaults_one_way() {
    for cmd in [&[][..], &["train"], &["schedule"], &["check"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = ok_stdout(&args);
        let ex = help.find("Examples:").expect("examples");
        let st = help.find("Exit status:").expect("exit status");
        assert!(ex < st, "{help}");
        let tail = &help[st..];
        for code in ["0 ", "1 ", "2 ", "130 "] {
            assert!(tail.contains(&format!("\n  {code}")), "{code}: {tail}");
        }
        assert!(help[ex..].contains("lrfind"), "{help}");
        assert!(!help.contains("(default"), "{help}");
        assert!(help.contains("[default: "), "{help}");
    }
}

#[test]
fn version_names_the_features() {
    let v = ok_stdout(&["--version"]);
    let features = if cfg!(feature = "hub") { "hub" } else { "none" };
    if !cfg!(any(feature = "cuda", feature = "metal")) {
        assert_eq!(
            v,
            format!(
                "lrfind {} (features: {features})\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
    assert_eq!(ok_stdout(&["-V"]), v);
}

#[test]
fn print_lr_prints_only_the_exact_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(["--print", "lr", "--num-steps", "60"]));
    assert_eq!(code, 0, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    let lr = r["suggested_lr"].as_f64().unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim().parse::<f64>().unwrap(), lr);
    assert!(!out.contains("e+"), "{out}");
    // The summary went to stderr.
    assert!(err.contains("suggested learning rate"), "{err}");
    // -q too: only the number, nothing on stderr.
    let (code, out2, err) =
        run(lrfind(tmp.path()).args(["-q", "--print", "lr", "--num-steps", "60"]));
    assert_eq!((code, out2.as_str(), err.as_str()), (0, out.as_str(), ""));
}

#[test]
fn check_print_lr_prints_the_median_when_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["check", "--seeds", "2", "--no-repeat", "--print", "lr"];
    let (code, out, err) = run(lrfind(tmp.path()).args(args));
    assert_eq!(code, 0, "{err}");
    let r = json(&tmp.path().join("lrfind-check.json"));
    assert_eq!(
        out.trim().parse::<f64>().unwrap(),
        r["suggested_lr"].as_f64().unwrap()
    );
    assert!(err.contains("verdict: stable"), "{err}");
    // Unstable (a spread limit nothing meets): nothing on stdout, exit 1.
    let (code, out, err) = run(lrfind(tmp.path()).args(args).args(["--max-spread", "0"]));
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("UNSTABLE"), "{err}");
}

#[test]
fn print_lr_without_a_suggestion_prints_nothing_and_exits_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(["--print", "lr", "--num-steps", "8"]));
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("no suggestion"), "{err}");
}

#[test]
fn quiet_is_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(["-q", "--num-steps", "60"]));
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    // Errors still show.
    let (code, out, err) = run(lrfind(tmp.path()).args(["-q", "--min", "2", "--max", "1"]));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("error: --min 2"), "{err}");
    let (code, out, err) =
        run(lrfind(tmp.path()).args(["schedule", "StepLR(step_size=1)", "--steps", "3", "-q"]));
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    // What --json asks for still comes.
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "schedule",
        "StepLR(step_size=1)",
        "--steps",
        "3",
        "-q",
        "--json",
    ]));
    assert_eq!((code, err.as_str()), (0, ""));
    one_object(&out);
}

/// stdout is exactly one JSON object.
fn one_object(out: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not one JSON value ({e}): {out}"));
    assert!(v.is_object(), "{out}");
    v
}

#[test]
fn json_on_every_command_is_one_object_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, out, err) = run(lrfind(d).args(["--json", "--num-steps", "60"]));
    assert_eq!(code, 0, "{err}");
    let v = one_object(&out);
    assert_eq!(v, json(&d.join("lrfind.json")));
    assert!(err.contains("suggested learning rate"), "{err}");

    let (code, out, err) = run(lrfind(d).args([
        "check",
        "--json",
        "--seeds",
        "2",
        "--no-repeat",
        "--num-steps",
        "60",
    ]));
    assert!(code == 0 || code == 1, "{err}");
    let v = one_object(&out);
    assert_eq!(v, json(&d.join("lrfind-check.json")));
    assert!(err.contains("verdict:"), "{err}");

    let (code, out, err) = run(lrfind(d).args([
        "train",
        "--json",
        "--lr",
        "0.003",
        "--epochs",
        "1",
        "--out-dir",
        "run",
    ]));
    assert_eq!(code, 0, "{err}");
    let v = one_object(&out);
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["epochs_done"], 1);
    assert_eq!(v["lr"], 0.003);
    assert_eq!(v["run_dir"], "run");
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(v["final"], first);
    assert!(err.contains("epoch 1/1"), "{err}");

    let (code, out, err) = run(lrfind(d).args([
        "schedule",
        "StepLR(step_size=2, gamma=0.5)",
        "--steps",
        "4",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v = one_object(&out);
    // The initial LR, then one row per step.
    assert_eq!(
        v["lr"],
        serde_json::json!([[0.1], [0.1], [0.05], [0.05], [0.025]])
    );
    assert_eq!(err, "");
}

#[test]
fn exit_codes_zero_one_two() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_eq!(run(lrfind(d).args(["-q", "--num-steps", "60"])).0, 0);
    assert_eq!(run(lrfind(d).args(["-q", "--num-steps", "8"])).0, 1);
    assert_eq!(run(lrfind(d).args(["-q", "--num-steps", "0"])).0, 2);
    assert_eq!(run(lrfind(d).args(["train", "--lr", "-1"])).0, 2);
    assert_eq!(
        run(lrfind(d).args(["schedule", "Nope()", "--steps", "2"])).0,
        2
    );
}

fn wait_with_timeout(mut child: Child, secs: u64) -> std::process::Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("lrfind did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_check_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrfind"))
        .current_dir(tmp.path())
        .args([
            "check",
            "--seeds",
            "2",
            "--num-steps",
            "1000000",
            "--max",
            "1e-3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_with_timeout(child, 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The partial report is still written.
    assert_eq!(
        json(&tmp.path().join("lrfind-check.json"))["interrupted"],
        true
    );
}

#[test]
fn colour_follows_the_flag_no_color_and_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let args = ["--num-steps", "60"];
    // Piped: no colour, even where the terminal would have it.
    let (_, out, _) = run(lrfind(d).args(args).env_remove("CLICOLOR_FORCE"));
    assert!(!out.contains(ESC), "{out:?}");
    let (_, out, _) = run(lrfind(d).args(args).args(["--color", "always"]));
    assert!(out.contains(ESC), "{out:?}");
    assert!(out.contains("suggested learning rate"));
    // CLICOLOR_FORCE stands for a terminal here: NO_COLOR and --color never win over it.
    let (_, out, _) = run(lrfind(d).args(args).env("CLICOLOR_FORCE", "1"));
    assert!(out.contains(ESC), "{out:?}");
    let (_, out, _) = run(lrfind(d)
        .args(args)
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1"));
    assert!(!out.contains(ESC), "{out:?}");
    let (_, out, _) = run(lrfind(d)
        .args(args)
        .args(["--color", "never"])
        .env("CLICOLOR_FORCE", "1"));
    assert!(!out.contains(ESC), "{out:?}");
    // Errors too; --color works after a subcommand as well.
    let bad = ["train", "--lr", "-1", "--color"];
    let (_, _, err) = run(lrfind(d).args(bad).arg("always"));
    assert!(err.starts_with("\x1b[") && err.contains("error"), "{err:?}");
    let (_, _, err) = run(lrfind(d).args(bad).arg("never").env("CLICOLOR_FORCE", "1"));
    assert!(err.starts_with("error: --lr -1"), "{err:?}");
}

#[test]
fn clap_errors_are_one_line_with_a_hint_and_exit_two() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, start) in [
        (
            &["--batch-size", "-1"][..],
            "error: --batch-size -1: not a whole number",
        ),
        (&["--min", "abc"], "error: --min abc: not a number"),
        (&["--nope"], "error: unexpected argument '--nope'"),
        (&["trian"], "error: "),
        (&["schedule"], "error: missing --steps, <SPEC>"),
        (
            &["train", "--lr", "1", "--use-suggested"],
            "error: --lr cannot be used with --use-suggested",
        ),
        (&["completions"], "error: missing <SHELL>"),
        (
            &["--color", "sometimes"],
            "error: --color sometimes: expected one of",
        ),
    ] {
        let (code, out, err) = run(lrfind(tmp.path()).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(start), "{args:?}: {err}");
        assert!(err.trim_end().ends_with("(see --help)"), "{args:?}: {err}");
    }
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn help_and_version_go_to_stdout_with_exit_zero() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["train", "--help"],
        &["--version"],
    ] {
        let out = ok_stdout(args);
        assert!(out.contains("lrfind"), "{args:?}");
    }
}

/// Spawns lrfind with stdout piped, reads `lines` lines, closes the pipe, and waits.
fn close_after_lines(args: &[&str], lines: usize) -> (std::process::Output, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrfind"))
        .current_dir(tmp.path())
        .env_remove("RUST_BACKTRACE")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "stdout ended early");
    }
    drop(reader);
    (wait_with_timeout(child, 120), tmp)
}

#[test]
fn a_closed_stdout_ends_lrfind_quietly() {
    // `lrfind schedule … | head -2`: far more rows than a pipe buffers.
    let (out, _tmp) = close_after_lines(
        &[
            "schedule",
            "StepLR(step_size=1, gamma=0.99)",
            "--steps",
            "200000",
        ],
        2,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    // `lrfind --json | true`.
    let (out, _tmp) = close_after_lines(&["--json", "--num-steps", "30"], 0);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn train_into_head_stops_after_the_saved_epoch_without_a_panic() {
    let (out, tmp) = close_after_lines(
        &[
            "train",
            "--lr",
            "0.003",
            "--epochs",
            "1000",
            "--out-dir",
            "run",
        ],
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    let state = json(&tmp.path().join("run/state.json"));
    let done = state["epochs_done"].as_u64().unwrap();
    assert!((1..1000).contains(&done), "{done}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["schedule", "StepLR(step_size=1)", "--steps", "5"][..],
        &["--print", "lr", "--num-steps", "60"],
        &["--version"],
        &["man"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("lrfind"))
            .current_dir(tmp.path())
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: stdout: No space left on device"),
            "{err}"
        );
    }
}

#[test]
fn warnings_go_to_stderr_only_with_numbers_as_typed() {
    let tmp = tempfile::tempdir().unwrap();
    // Plain SGD still descends at 0.646: the suggestion is pinned by --max, and the advice is
    // 0.646 × 100, which in floating point is 64.60000000000001.
    let (code, out, err) =
        run(lrfind(tmp.path()).args(["--optimizer", "sgd", "--min", "1e-6", "--max", "0.646"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("warning"), "{out}");
    assert!(
        err.contains("warning: the loss never turned upward up to --max 0.646:"),
        "{err}"
    );
    assert!(err.contains("(e.g. --max 64.6)"), "{err}");
    // The summary gives the range as typed, not rounded.
    assert!(out.contains("1e-6 → 0.646,"), "{out}");
}
