//! What a new user trips over (issue 20): the suggestion into OneCycleLR/CyclicLR, which LR
//! governs, progress in CI logs, and text that must agree with what happened.

mod common;

use common::{json, lrfind, run};

/// Numbers of 8 or more digits in a row: an LR printed to full precision.
fn long_number(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|d| d.len() >= 8)
        .map(str::to_string)
}

#[test]
fn the_suggestion_fills_one_cycle_max_lr_and_the_console_says_which_lr_governs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, _, err) = run(lrfind(d).args(["-q", "--num-steps", "60"]));
    assert_eq!(code, 0, "{err}");
    let lr = json(&d.join("lrfind.json"))["suggested_lr"]
        .as_f64()
        .unwrap();
    let (code, out, err) = run(lrfind(d).args([
        "train",
        "--use-suggested",
        "--scheduler",
        "OneCycleLR()",
        "--epochs",
        "1",
        "--out-dir",
        "one",
        "--plot-format",
        "svg",
    ]));
    assert_eq!(code, 0, "{err}");
    let config = json(&d.join("one/config.json"));
    assert_eq!(config["scheduler"]["params"]["max_lr"].as_f64(), Some(lr));
    assert_eq!(config["lr"].as_f64(), Some(lr));
    let peak = format!("peak lr {lr:.3e} (OneCycleLR's max_lr)");
    let header = out.lines().next().unwrap();
    assert!(header.contains(&peak), "{header}");
    assert!(header.contains("suggested by the fall rule"), "{header}");
    // Rounded for people: no 17-digit LR in the header (the config keeps it exact).
    assert_eq!(long_number(header), None, "{header}");
    let svg = std::fs::read_to_string(d.join("one/curves.svg")).unwrap();
    // The title's text, its wrapped lines joined again.
    let text: Vec<&str> = svg.lines().filter(|l| !l.starts_with('<')).collect();
    assert!(
        text.join(" ").contains(&peak.replace('\'', "&apos;")),
        "the plot title does not say which LR governs: {text:?}"
    );

    // CyclicLR takes --lr as its max_lr.
    let (code, _, err) = run(lrfind(d).args([
        "train",
        "--lr",
        "0.01",
        "--scheduler",
        "CyclicLR(base_lr=0.001, step_size_up=20)",
        "--epochs",
        "1",
        "--out-dir",
        "cyc",
        "-q",
    ]));
    assert_eq!(code, 0, "{err}");
    let config = json(&d.join("cyc/config.json"));
    assert_eq!(config["scheduler"]["params"]["max_lr"].as_f64(), Some(0.01));

    // max_lr alone is the run's LR.
    let (code, out, err) = run(lrfind(d).args([
        "train",
        "--scheduler",
        "OneCycleLR(max_lr=0.02)",
        "--epochs",
        "1",
        "--out-dir",
        "own",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&d.join("own/config.json"))["lr"].as_f64(), Some(0.02));
    assert!(
        out.contains("peak lr 2.000e-2 (OneCycleLR's max_lr)"),
        "{out}"
    );
}

#[test]
fn an_lr_that_a_scheduler_would_ignore_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, _, err) = run(lrfind(d).args(["-q", "--num-steps", "60"]));
    assert_eq!(code, 0, "{err}");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--lr", "3e-3", "--scheduler", "OneCycleLR(max_lr=0.01)"],
            "--lr 3e-3: OneCycleLR(max_lr=0.01) sets the LR itself",
        ),
        (
            &["--use-suggested", "--scheduler", "OneCycleLR(max_lr=0.01)"],
            "--use-suggested: OneCycleLR(max_lr=0.01) sets the LR itself",
        ),
        (
            &[
                "--lr",
                "0.1",
                "--scheduler",
                "SequentialLR(ConstantLR(factor=0.5, total_iters=2), CyclicLR(base_lr=1e-3, max_lr=0.05), milestones=[2])",
            ],
            "--lr 0.1: CyclicLR(max_lr=0.05) sets the LR itself",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = run(lrfind(d)
            .arg("train")
            .args(args)
            .args(["--out-dir", "never"]));
        assert_eq!(code, 2, "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!d.join("never").exists());
    }
}

#[test]
fn progress_lines_reach_a_ci_log_but_not_with_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // stderr is a pipe here, as in CI; an interval of 0 prints every update (not timed).
    let env = ("LRFIND_PROGRESS_INTERVAL", "0");
    // Up to 0.01 Adam does not diverge: all 30 steps run.
    let short = ["--num-steps", "30", "--max", "0.01"];
    let (code, _, err) = run(lrfind(d).env(env.0, env.1).args(short));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("range test: step 1/30, lr 1.00e-7"), "{err}");
    assert!(err.contains("range test: step 30/30"), "{err}");
    let (code, _, err) = run(lrfind(d).env(env.0, env.1).args(short).arg("-q"));
    assert_eq!(code, 0);
    assert_eq!(err, "");
    let (code, _, err) = run(lrfind(d).env(env.0, env.1).args([
        "train",
        "--lr",
        "1e-3",
        "--epochs",
        "1",
        "--out-dir",
        "r",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("train: epoch 1/1, batch 1/"), "{err}");
    let (code, _, err) = run(lrfind(d)
        .env(env.0, env.1)
        .args(["check", "--seeds", "2", "--no-repeat"])
        .args(short));
    assert!(code == 0 || code == 1, "{err}");
    assert!(err.contains("check: run 2/2, step 30/30"), "{err}");
    // A long interval: the first line waits for it.
    let (_, _, err) = run(lrfind(d).env(env.0, "3600").args(["--num-steps", "30"]));
    assert!(!err.contains("range test: step"), "{err}");
}

#[test]
fn step_counts_agree_and_extend_says_how_far_it_went() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Adam up to 10 diverges before the end: the step it stopped at is the last one taken.
    let (code, out, err) = run(lrfind(d).args(["--num-steps", "100"]));
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains("sweep:")).unwrap();
    let num_after = |s: &str, pat: &str| -> usize {
        let rest = &s[s.find(pat).unwrap_or_else(|| panic!("{pat} in {s}")) + pat.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let taken = num_after(line, "sweep: ");
    assert!(line.contains(&format!("{taken} of 100 steps")), "{line}");
    assert_eq!(num_after(line, "diverged at step "), taken, "{line}");
    let r = json(&d.join("lrfind.json"));
    assert_eq!(r["curve"]["lrs"].as_array().unwrap().len(), taken);

    // Plain SGD is still falling at 0.01: --extend climbs past it.
    let (code, out, err) = run(lrfind(d).args([
        "--optimizer",
        "sgd",
        "--min",
        "1e-6",
        "--max",
        "0.01",
        "--extend",
    ]));
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains("sweep:")).unwrap();
    let taken = num_after(line, "sweep: ");
    assert!(taken > 100, "{line}");
    assert!(
        line.contains(&format!(
            "{taken} steps: 100 from 1e-6 to --max 0.01, then {} more past it",
            taken - 100
        )),
        "{line}"
    );
    assert!(!line.contains("of 100 steps"), "{line}");
}

#[test]
fn messages_name_flags_and_numbers_as_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (args, want) in [
        (
            &["--max", "1e-8"][..],
            "error: --max 1e-8: must be above --min (1e-7, its default)",
        ),
        (
            &["--min", "20"][..],
            "error: --min 20: must be below --max (10, its default)",
        ),
        (
            &["--min", "0.5", "--max", "0.1"][..],
            "error: --min 0.5: must be below --max (0.1)",
        ),
    ] {
        let err = common::assert_usage_error(lrfind(d).args(args), want);
        assert!(!err.contains("0.0000001"), "{err}");
    }
    // A range below where the model learns: no suggestion, and no word of a pinned one.
    let (code, out, err) = run(lrfind(d).args(["--min", "1e-8", "--max", "1e-6"]));
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("no suggestion"), "{out}");
    assert!(!err.contains("the suggestion is pinned"), "{err}");
    assert!(
        err.contains("never turned upward up to --max 1e-6"),
        "{err}"
    );
    // train --use-suggested then speaks flags, not the library's field names.
    let (code, _, err) = run(lrfind(d).args(["train", "--use-suggested"]));
    assert_eq!(code, 2);
    assert!(err.contains("has no suggestion"), "{err}");
    for field in ["max_lr", "set extend", "min_lr"] {
        assert!(!err.contains(field), "{field} in {err}");
    }
    // --help says what --channels defaults to.
    let (_, help, _) = run(lrfind(d).arg("--help"));
    assert!(
        help.contains("[default: 1 when every image is grey, else 3]"),
        "{help}"
    );
}

#[test]
fn check_gives_the_pinned_advice_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, _) = run(lrfind(tmp.path()).args([
        "check",
        "--seeds",
        "3",
        "--no-repeat",
        "--optimizer",
        "sgd",
        "--min",
        "1e-4",
        "--max",
        "0.3",
    ]));
    assert_eq!(code, 1, "{out}");
    let verdict = out.lines().find(|l| l.starts_with("verdict:")).unwrap();
    assert!(
        verdict.contains("seeds 0, 1, 2 are pinned by --max 0.3"),
        "{verdict}"
    );
    assert_eq!(verdict.matches("--allow-pinned").count(), 1, "{verdict}");
}

#[test]
fn a_missing_dataset_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    for (data, files) in [
        ("mnist", "train-images-idx3-ubyte.gz"),
        ("cifar10", "data_batch_1.bin"),
    ] {
        let err = common::assert_usage_error(lrfind(tmp.path()).args(["--data", data]), files);
        assert_eq!(err.lines().count(), 1, "{err}");
        for hint in ["--data-dir DIR", "LRFIND_DATA"] {
            assert!(err.contains(hint), "{hint} not in {err}");
        }
        assert_eq!(
            err.contains("--features hub"),
            !cfg!(feature = "hub"),
            "{err}"
        );
    }
}
