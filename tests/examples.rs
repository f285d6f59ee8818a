//! Every example runs and does what its doc says (built by `cargo test` beside this test).
#![cfg(feature = "cli")]

mod common;

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/NAME, next to this test's own directory.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples"))
        .unwrap_or_else(|| PathBuf::from("examples"));
    let mut c = Command::new(dir.join(name));
    c.env_remove("RUST_BACKTRACE");
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lrfind-ex-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn custom_model_writes_report_and_plot_and_trains() {
    let d = tmp("custom");
    let out = example("custom_model").arg(&d).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("suggested learning rate"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("custom_model.json")).unwrap()).unwrap();
    assert_eq!(report["settings"]["optimizer"], "candle-nn AdamW");
    assert!(report["suggested_lr"].as_f64().unwrap() > 0.0);
    let png = std::fs::read(d.join("custom_model.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // The one-cycle run keeps lowering the loss, far below predicting 0 (mean sin²(3x) ≈ 0.5).
    // candle-nn draws its initial weights from an unseeded RNG, so only the trend is fixed.
    let losses: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.split("loss ").nth(1)?.split(',').next()?.parse().ok())
        .collect();
    assert_eq!(losses.len(), 3, "{stdout}");
    assert!(losses[2] < losses[0] && losses[2] < 0.2, "{losses:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn golden_reproduces_every_fixture_case() {
    let d = tmp("golden");
    let input = common::fixture("golden/schedulers.json");
    let out_path = d.join("out.json");
    let out = example("golden")
        .arg(&input)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
    let cases = want["cases"].as_array().unwrap();
    assert_eq!(got["cases"].as_array().unwrap().len(), cases.len());
    for (g, w) in got["cases"].as_array().unwrap().iter().zip(cases) {
        assert_eq!(g["id"], w["id"]);
        assert_eq!(g["lr"], w["expected"]["lr"], "case {}", w["id"]);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bench_runs_on_the_fixture_slice() {
    // One run of the MLP and of a convolutional preset: the bench's own job is timing on
    // the full set, the test's is that every path of it runs.
    let out = example("bench")
        .arg(common::fixture("mnist"))
        .args(["mlp,lenet", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("steps/s"), "{stdout}");
    assert!(stdout.contains("lenet"), "{stdout}");
}

#[test]
fn rule_study_reads_every_curve_on_the_fixture_slices() {
    let out = example("rule_study")
        .arg(common::root().join("tests/fixtures"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rule in ["fall", "steepest", "valley"] {
        assert!(stdout.contains(rule), "{rule}: {stdout}");
    }
}

#[test]
fn verify_study_trains_the_grid_and_the_verified_lr_on_the_fixture_slice() {
    let json = tmp("verify_study").join("study.json");
    let out = example("verify_study")
        .arg(common::root().join("tests/fixtures"))
        .args([
            "--only",
            "mnist-mlp-sgd",
            "--seeds",
            "1",
            "--quick",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| mnist-mlp-sgd | 1 epochs"), "{stdout}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &r[0];
    // Every candidate was tried at every horizon and trained; the grid's two LRs too.
    let n = r["candidates"].as_array().unwrap().len();
    assert!(n >= 3, "{r}");
    assert_eq!(r["trial_scores"].as_array().unwrap().len(), n);
    assert_eq!(r["grid"].as_array().unwrap().len(), 2);
    assert!(r["trained"].as_array().unwrap().len() >= n);
    assert!(r["default_cost_s"].as_f64().unwrap() > 0.0);
}
