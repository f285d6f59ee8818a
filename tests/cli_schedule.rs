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
