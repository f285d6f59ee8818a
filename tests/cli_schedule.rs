//! `lrfind schedule` end to end, and the golden example program.
#![cfg(feature = "cli")]

mod common;

use common::*;

#[test]
fn prints_a_step_lr_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "schedule",
        "steplr(step_size=2, gamma=0.5)",
        "--steps",
        "4",
    ]));
    assert_eq!(code, 0, "{err}");
    let lrs: Vec<f64> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
}

#[test]
fn json_output_has_lr_and_momentum_for_one_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "schedule",
        "OneCycleLR(max_lr=1.0, total_steps=10)",
        "--steps",
        "10",
        "--lr",
        "0.1,0.2",
        "--json",
        "--out",
        "s.png",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lr"].as_array().unwrap().len(), 11);
    // max_lr / div_factor 25 in every group (PyTorch gets 0.04000000000000003 too)
    assert!((v["lr"][0][1].as_f64().unwrap() - 0.04).abs() < 1e-15);
    assert_eq!(v["momentum"][0][0].as_f64(), Some(0.95));
    assert_eq!(v["scheduler"]["scheduler"], "OneCycleLR");
    let png = std::fs::read(tmp.path().join("s.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}

#[test]
fn plateau_reads_metrics_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("m.txt"), "1.0\n1.0\n1.0\n1.0\n").unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "schedule",
        "ReduceLROnPlateau(patience=1, factor=0.5)",
        "--steps",
        "4",
        "--metrics",
        "m.txt",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Step 1 sets best = 1; steps 2 and 3 are no better (bad epochs 1, 2 > patience 1), so
    // step 3 halves the LR and resets the count; step 4 is bad epoch 1 again.
    let lr: Vec<f64> = v["lr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_f64().unwrap())
        .collect();
    assert_eq!(lr, [0.1, 0.1, 0.1, 0.05, 0.05]);
}

#[test]
fn bad_specs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_usage_error(
        lrfind(d).args(["schedule", "NoSuchLR()", "--steps", "3"]),
        "NoSuchLR",
    );
    assert_usage_error(
        lrfind(d).args(["schedule", "StepLR(step_size=2", "--steps", "3"]),
        "cannot parse scheduler spec",
    );
    assert_usage_error(
        lrfind(d).args(["schedule", "ReduceLROnPlateau()", "--steps", "3"]),
        "metric",
    );
    assert_usage_error(
        lrfind(d).args([
            "schedule",
            "StepLR(step_size=2)",
            "--steps",
            "3",
            "--lr",
            "x",
        ]),
        "--lr",
    );
    assert_usage_error(
        lrfind(d).args([
            "schedule",
            "StepLR(step_size=2)",
            "--steps",
            "3",
            "--out",
            "a.gif",
        ]),
        "a.gif",
    );
    assert!(files(d).is_empty());
}

/// `cargo test` builds the examples; run the golden one on the shipped PyTorch goldens and
/// check it wrote every case, every value as PyTorch computed it.
#[test]
fn golden_example_reproduces_the_pytorch_file() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/golden");
    if !example.is_file() {
        say_skipped(&format!("{} not built", example.display()));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = fixture("golden/schedulers.json");
    let out = tmp.path().join("out.json");
    let st = std::process::Command::new(&example)
        .arg(&input)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let want = json(&input);
    let got = json(&out);
    let cases = want["cases"].as_array().unwrap();
    assert_eq!(got["cases"].as_array().unwrap().len(), cases.len());
    for (w, g) in cases.iter().zip(got["cases"].as_array().unwrap()) {
        assert_eq!(w["id"], g["id"]);
        for key in ["lr", "momentum"] {
            let Some(rows) = w["expected"][key].as_array() else {
                assert!(g.get(key).is_none(), "{}: unexpected {key}", w["id"]);
                continue;
            };
            let grows = g[key].as_array().unwrap();
            assert_eq!(rows.len(), grows.len(), "{}", w["id"]);
            for (r, gr) in rows.iter().zip(grows) {
                for (e, a) in r.as_array().unwrap().iter().zip(gr.as_array().unwrap()) {
                    let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
                    assert!(
                        (a - e).abs() <= (1e-9 * e.abs()).max(1e-15),
                        "{}: {a} vs {e}",
                        w["id"]
                    );
                }
            }
        }
    }
}

/// Runs and asserts exit 2 with `needle` on stderr and nothing on stdout.
fn refused(args: &[&str], needle: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(args));
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(out.is_empty(), "printed before failing: {out}");
    assert!(files(tmp.path()).is_empty());
    err
}

#[test]
fn negative_or_non_finite_learning_rates_exit_2() {
    let s = |spec: &str, needle: &str| refused(&["schedule", spec, "--steps", "20"], needle);
    let e = s("LambdaLR(lr_lambda=\"-1\")", "");
    assert_eq!(
        e.trim_end(),
        "error: LambdaLR: the learning rate at step 0 (param group 0) would be -0.1; it must be finite and >= 0"
    );
    s(
        "LambdaLR(lr_lambda='0/0')",
        "LambdaLR: formula '0/0' at epoch=0: division by zero",
    );
    s("LambdaLR(lr_lambda='1/(epoch-epoch)')", "division by zero");
    s(
        "ExponentialLR(gamma=1e308)",
        "ExponentialLR: the learning rate at step 2 (param group 0) would be inf",
    );
    // Our own: a CyclicLR whose custom scale_fn turns negative in its third cycle, and the JSON
    // output refuses too.
    refused(
        &[
            "schedule",
            "CyclicLR(base_lr=0.1, max_lr=1, step_size_up=2, scale_fn='3 - x', cycle_momentum=False)",
            "--steps",
            "20",
            "--json",
        ],
        "CyclicLR: the learning rate at step 13 (param group 0) would be -",
    );
}

#[test]
fn train_refuses_a_bad_schedule_before_loading_data() {
    // The data directory does not exist: the schedule's error must come first.
    refused(
        &[
            "train",
            "--data",
            "mnist",
            "--data-dir",
            "no/such/dir",
            "--lr",
            "0.1",
            "--epochs",
            "3",
            "--scheduler",
            "LambdaLR(lr_lambda='1 - epoch/2')",
        ],
        "LambdaLR: the learning rate at step 3 (param group 0) would be -0.05",
    );
}

#[test]
fn pytorch_type_checks_are_errors() {
    refused(
        &[
            "schedule",
            "CosineAnnealingWarmRestarts(T_0=5.0)",
            "--steps",
            "3",
        ],
        "T_0 must be an integer (PyTorch requires an int, not a float like 5.0), got 5.0",
    );
    refused(
        &[
            "schedule",
            "OneCycleLR(max_lr=1, total_steps=10, pct_start=1)",
            "--steps",
            "3",
        ],
        "pct_start must be a float (PyTorch refuses the integer 1; write 1.0), got 1",
    );
}

#[test]
fn huge_step_counts_stream_and_plots_are_limited() {
    refused(
        &[
            "schedule",
            "StepLR(step_size=2)",
            "--steps",
            "1000000000",
            "--out",
            "s.png",
        ],
        "--steps 1000000000: --out plots at most 1000000 steps",
    );
    // usize::MAX steps: the table streams; the reader stops after a few lines and the program
    // ends quietly (broken pipe), without allocating for every row.
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = assert_cmd::cargo::cargo_bin("lrfind");
    for json in [false, true] {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "schedule",
            "StepLR(step_size=2)",
            "--steps",
            "18446744073709551615",
        ]);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Vec<String> = (0..4).map(|_| lines.next().unwrap().unwrap()).collect();
        drop(lines);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(err.is_empty(), "{err}");
        if json {
            assert!(
                first[0].starts_with("{\"scheduler\": {\"scheduler\":\"StepLR\""),
                "{first:?}"
            );
            assert_eq!(first[2], "[0.1],");
        } else {
            assert_eq!(
                first[1].split_whitespace().collect::<Vec<_>>(),
                ["0", "1.000000e-1"]
            );
        }
    }
}
