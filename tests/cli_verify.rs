//! `--verify` end to end: trials after the sweep, the verified LR in the report, the plot,
//! `--print lr`, `train --use-suggested` and `check`; and a converged model's noise curve.
#![cfg(feature = "cli")]

mod common;

use common::*;

#[test]
fn verify_tries_lrs_around_the_suggestion_and_reports_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "--min",
        "1e-6",
        "--max",
        "1",
        "--verify",
        "--verify-steps",
        "30",
        "--out",
        "p.svg",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified learning rate:"), "{out}");
    assert!(out.contains("verification: "), "{out}");
    let r = json(&tmp.path().join("lrfind.json"));
    let v = &r["verification"];
    let suggested = r["suggested_lr"].as_f64().unwrap();
    assert_eq!(v["suggested_lr"].as_f64(), Some(suggested));
    assert_eq!(v["steps"], 30);
    let trials = v["trials"].as_array().unwrap();
    assert!((3..=4).contains(&trials.len()), "{trials:?}");
    // The suggestion itself, a third and three times it are all tried, ascending.
    let lrs: Vec<f64> = trials.iter().map(|t| t["lr"].as_f64().unwrap()).collect();
    assert!(lrs.windows(2).all(|w| w[0] < w[1]), "{lrs:?}");
    for f in [1.0 / 3.0, 1.0, 3.0] {
        assert!(
            lrs.iter()
                .any(|lr| (lr / (suggested * f) - 1.0).abs() < 1e-9),
            "x{f} missing from {lrs:?}"
        );
    }
    // Every trial has its curve and score. The best is the lowest validation loss; the
    // verified LR the highest one at least 1.5x below it that learnt (else the best).
    let start = v["start"]["loss"].as_f64().unwrap();
    let mut best = (f64::INFINITY, f64::NAN);
    let mut scored = Vec::new();
    for t in trials {
        assert_eq!(t["losses"].as_array().unwrap().len(), 30);
        let loss = t["score"]["loss"].as_f64().unwrap();
        let acc = t["score"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        let lr = t["lr"].as_f64().unwrap();
        scored.push((lr, loss));
        if loss < best.0 {
            best = (loss, lr);
        }
    }
    let want = scored
        .iter()
        .filter(|(lr, loss)| *lr <= best.1 / 1.5 && *loss < start)
        .map(|p| p.0)
        .reduce(f64::max)
        .unwrap_or(best.1);
    let verified = r["verified_lr"].as_f64().unwrap();
    assert_eq!(verified, want, "{scored:?}");
    let best_index = v["best"].as_u64().unwrap() as usize;
    assert_eq!(trials[best_index]["lr"].as_f64(), Some(best.1));
    assert_eq!(v["verified_lr"].as_f64(), Some(verified));
    assert!(start > best.0);
    // The second panel: its axis, the trials' legend and the verified LR.
    let svg = std::fs::read_to_string(tmp.path().join("p.svg")).unwrap();
    assert!(svg.contains("trial validation loss"), "no trial panel");
    assert!(svg.contains("validation loss after 30 steps"));
    assert!(
        svg.contains(&format!("verified {verified:.3e}")),
        "{verified}"
    );
    assert!(svg.contains(&format!("suggested {suggested:.3e}")));
}

#[test]
fn the_verified_lr_is_what_print_lr_prints_and_train_trains_at() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "--min",
        "1e-6",
        "--max",
        "1",
        "--verify",
        "--verify-steps",
        "20",
        "--print",
        "lr",
    ]));
    assert_eq!(code, 0, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    let verified = r["verified_lr"].as_f64().unwrap();
    assert_eq!(out.trim().parse::<f64>().unwrap(), verified);
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "train",
        "--use-suggested",
        "--epochs",
        "1",
        "--out-dir",
        "run",
        "-q",
    ]));
    assert_eq!(code, 0, "{err}");
    let config = json(&tmp.path().join("run/config.json"));
    assert_eq!(config["lr"].as_f64(), Some(verified));
    assert_eq!(config["lr_source"]["rule"], "fall, verified");
}

#[test]
fn train_verify_runs_the_trials_when_the_report_has_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args(["--min", "1e-6", "--max", "1", "-q"]));
    assert_eq!(code, 0, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    assert!(r.get("verification").is_none());
    let suggested = r["suggested_lr"].as_f64().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "train",
        "--use-suggested",
        "--verify",
        "--verify-steps",
        "20",
        "--epochs",
        "1",
        "--out-dir",
        "run",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("verified learning rate"), "{err}");
    let config = json(&tmp.path().join("run/config.json"));
    let lr = config["lr"].as_f64().unwrap();
    assert!(lr >= suggested / 10.0 && lr <= suggested * 3.0 * (1.0 + 1e-9));
    // The same verification as the range test's own: deterministic, so the same LR.
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "--min",
        "1e-6",
        "--max",
        "1",
        "-q",
        "--verify",
        "--verify-steps",
        "20",
        "--report",
        "v.json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&tmp.path().join("v.json"))["verified_lr"].as_f64(),
        Some(lr)
    );
    // --verify means nothing without a report's suggestion.
    let (code, _, err) = run(lrfind(tmp.path()).args(["train", "--lr", "0.01", "--verify"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--use-suggested"), "{err}");
}

#[test]
fn check_gates_on_the_verified_lr() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args([
        "check",
        "--seeds",
        "2",
        "--min",
        "1e-6",
        "--max",
        "1",
        "--verify",
        "--verify-steps",
        "10",
        "--max-spread",
        "2",
    ]));
    assert!(code == 0 || code == 1, "{err}");
    assert!(out.contains("verified"), "{out}");
    let r = json(&tmp.path().join("lrfind-check.json"));
    let runs = r["runs"].as_array().unwrap();
    let verified: Vec<f64> = runs
        .iter()
        .map(|run| run["verified_lr"].as_f64().unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    // The median of two is their geometric middle: of the verified LRs, not the rule's.
    let median = r["suggested_lr"].as_f64().unwrap();
    assert!(
        (median / (verified[0] * verified[1]).sqrt() - 1.0).abs() < 1e-9,
        "{median} {verified:?}"
    );
}

#[test]
fn a_converged_models_noise_curve_gets_no_suggestion() {
    // Train the default model well, then run the range test from its weights over LRs too
    // small to change it: a flat curve of noise, which must not get a number.
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "train",
        "--lr",
        "3e-3",
        "--epochs",
        "3",
        "--out-dir",
        "run",
        "-q",
    ]));
    assert_eq!(code, 0, "{err}");
    let mut refused = 0;
    for seed in ["0", "1", "2"] {
        let (code, out, err) = run(lrfind(tmp.path()).args([
            "--init-from",
            "run/final.safetensors",
            "--min",
            "1e-7",
            "--max",
            "1e-3",
            "--seed",
            seed,
        ]));
        assert_eq!(code, 1, "seed {seed}: {out}{err}");
        assert!(out.contains("no suggestion"), "{out}");
        let r = json(&tmp.path().join("lrfind.json"));
        assert!(r["suggested_lr"].is_null());
        let why = &r["analysis"]["no_suggestion"]["reason"];
        if why == "within_noise" {
            refused += 1;
            let n = &r["analysis"]["noise"];
            assert_eq!(n["passed"], false);
            assert!(n["ratio"].as_f64().unwrap() < n["need"].as_f64().unwrap());
            assert!(
                out.contains("no clear descent") && out.contains("converged"),
                "{out}"
            );
        } else {
            assert_eq!(why, "no_real_descent", "{r}");
        }
        // No suggestion, so nothing is "pinned".
        assert!(!err.contains("pinned"), "{err}");
    }
    assert!(refused >= 1, "the noise test refused none of the three");
}
