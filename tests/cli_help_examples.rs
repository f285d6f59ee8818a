//! Every example printed by `--help` (the range test's and each subcommand's) runs as written,
//! in order, in one fresh directory, and exits 0; an example's `| jq PATH` must find PATH in
//! the JSON it prints.

mod common;

use common::{lrfind, run};

/// The example lines of one `--help`: the indented lines under "Examples:".
fn examples(dir: &std::path::Path, sub: Option<&str>) -> Vec<String> {
    let mut cmd = lrfind(dir);
    if let Some(s) = sub {
        cmd.arg(s);
    }
    let (code, help, err) = run(cmd.args(["--help", "--color", "never"]));
    assert_eq!(code, 0, "{err}");
    help.lines()
        .skip_while(|l| l.trim() != "Examples:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// A shell-like split of an example's command (single quotes group words), its description
/// (after two spaces) dropped, `LR=$(…)` unwrapped, and the jq filter after `|` if any.
fn command(line: &str) -> (Vec<String>, Option<String>) {
    let cmd = line.split("  ").next().unwrap_or("");
    let cmd = cmd
        .strip_prefix("LR=$(")
        .map_or(cmd, |c| c.trim_end_matches(')'));
    let (cmd, jq) = match cmd.split_once(" | ") {
        Some((c, p)) => (c, Some(p.trim().to_string())),
        None => (cmd, None),
    };
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
    if !word.is_empty() {
        words.push(word);
    }
    (words, jq)
}

/// `jq .a.b` on a JSON value, for the simple paths the examples use.
fn jq_path<'a>(v: &'a serde_json::Value, filter: &str) -> Option<&'a serde_json::Value> {
    let path = filter.strip_prefix("jq ")?.trim();
    path.trim_start_matches('.')
        .split('.')
        .filter(|k| !k.is_empty())
        .try_fold(v, |v, k| v.get(k))
}

#[test]
fn every_help_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut n = 0;
    // The range test's first: the others read the report it writes.
    for sub in [None, Some("train"), Some("schedule"), Some("check")] {
        let lines = examples(d, sub);
        assert!(lines.len() >= 3, "{sub:?}: {lines:?}");
        for line in lines {
            let (words, jq) = command(&line);
            assert_eq!(words[0], "lrfind", "{line}");
            let (code, out, err) = run(lrfind(d).args(&words[1..]));
            assert_eq!(code, 0, "`{line}` exited {code}: {err}");
            assert!(!err.contains("panicked"), "{line}: {err}");
            if let Some(filter) = jq {
                let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| {
                    panic!("{line}: stdout is not one JSON object ({e}): {out}")
                });
                let got = jq_path(&v, &filter);
                assert!(
                    got.is_some_and(|g| !g.is_null()),
                    "{line}: {filter} finds nothing in {v}"
                );
            }
            if line.starts_with("LR=$(") {
                let lr: f64 = out
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{line}: {out}"));
                assert!(lr > 0.0);
            }
            n += 1;
        }
    }
    assert_eq!(n, 18);
    // What the examples promise was made.
    for f in [
        "lrfind.png",
        "onecycle.png",
        "step.png",
        "check.png",
        "lr-baseline.json",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    assert!(d.join("runs/a/state.json").is_file());
    let state = common::json(&d.join("runs/a/state.json"));
    assert_eq!(
        state["epochs_done"], 4,
        "the resume example continued the run"
    );
}
