//! `lrfind check` end to end through the built binary.
#![cfg(feature = "cli")]

mod common;

use common::*;

#[test]
fn a_stable_configuration_exits_zero_with_a_table_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, out, err) = run(lrfind(d).args([
        "check",
        "--seeds",
        "3",
        "--min",
        "1e-6",
        "--max",
        "1",
        "--out",
        "check.svg",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: stable"), "{out}");
    assert!(out.contains("repeat of seed 0: identical curve"), "{out}");
    let r = json(&d.join("lrfind-check.json"));
    assert_eq!(r["runs"].as_array().unwrap().len(), 3);
    assert_eq!(r["stable"], true);
    assert_eq!(r["repeatable"], true);
    let spread = r["spread_decades"].as_f64().unwrap();
    assert!(spread <= 0.3, "{spread}");
    let seeds: Vec<u64> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [0, 1, 2]);
    let svg = std::fs::read_to_string(d.join("check.svg")).unwrap();
    assert!(svg.contains("seed 2"), "every seed's curve is labelled");
}

#[test]
fn an_unstable_configuration_exits_one_and_says_why() {
    // Tiny, unsmoothed batches make each seed's curve pure noise.
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "check",
        "--seeds",
        "4",
        "--batch-size",
        "2",
        "--smooth",
        "0",
        "--skip-start",
        "0",
        "--suggest",
        "steepest",
        "--num-steps",
        "40",
        "--no-repeat",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("verdict: UNSTABLE"), "{out}");
    assert!(
        out.contains("spread over") || out.contains("no suggestion"),
        "{out}"
    );
    assert_eq!(json(&tmp.path().join("lrfind-check.json"))["stable"], false);
}

#[test]
fn a_baseline_far_from_the_median_exits_one_and_update_writes_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("base.json"), r#"{"suggested_lr": 1e-6}"#).unwrap();
    let args = [
        "check",
        "--seeds",
        "2",
        "--no-repeat",
        "--num-steps",
        "60",
        "--baseline",
        "base.json",
    ];
    let (code, out, err) = run(lrfind(d).args(args));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("from the baseline 1.000e-6"), "{out}");
    // --update-baseline rewrites it; the next check against it passes.
    let (code, out, err) = run(lrfind(d).args(args).arg("--update-baseline"));
    assert_eq!(code, 0, "{out}{err}");
    let base = json(&d.join("base.json"));
    assert!(base["suggested_lr"].as_f64().unwrap() > 1e-5);
    let (code, out, err) = run(lrfind(d).args(args));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("drift +0.000 decades"), "{out}");
}

#[test]
fn bad_check_flags_exit_two() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_usage_error(lrfind(d).args(["check", "--seeds", "1"]), "--seeds 1");
    assert_usage_error(
        lrfind(d).args(["check", "--max-spread", "-1"]),
        "--max-spread -1",
    );
    assert_usage_error(
        lrfind(d).args(["check", "--tolerance", "nan"]),
        "--tolerance NaN",
    );
    assert_usage_error(
        lrfind(d).args(["check", "--baseline", "missing.json"]),
        "--baseline missing.json",
    );
    assert_usage_error(lrfind(d).args(["check", "--update-baseline"]), "--baseline");
    assert_usage_error(
        lrfind(d).args(["check", "--min", "2", "--max", "1"]),
        "--min 2",
    );
    assert!(files(d).is_empty(), "{:?}", files(d));
}
