//! Your own data from the command line: CSV files, splits, standardisation, bad data.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};

use common::{files, json, lrfind, root, run};

fn tabular(name: &str) -> PathBuf {
    root().join("tests/fixtures/tabular").join(name)
}

/// Exit 2 with one line on stderr containing every needle, and nothing written in `dir`.
fn assert_refused(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let before = files(dir);
    let (code, out, err) = run(lrfind(dir).args(args));
    assert_eq!(code, 2, "{args:?}: {out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert_eq!(files(dir), before, "{args:?} wrote something");
    err
}

#[test]
fn iris_range_test_reports_classes_splits_and_standardisation() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = tabular("iris.csv");
    let (code, out, err) = run(lrfind(tmp.path())
        .arg("--data")
        .arg(&iris)
        .args(["--hidden", "16", "--batch-size", "16", "--num-steps", "40"])
        .args([
            "--min",
            "1e-4",
            "--max",
            "10",
            "--test-split",
            "0.2",
            "--val-loss",
            "-q",
        ]));
    assert!(code == 0 || code == 1, "{out}{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    let s = &r["settings"];
    assert_eq!(
        s["data"]["source"]["csv"].as_str().unwrap(),
        std::fs::canonicalize(&iris).unwrap().to_str().unwrap()
    );
    assert_eq!(s["data"]["test_split"], 0.2);
    let d = &s["dataset"];
    assert_eq!(d["input"], serde_json::json!([4]));
    assert_eq!(
        d["task"]["classify"]["classes"],
        serde_json::json!(["setosa", "versicolor", "virginica"])
    );
    // 150 rows: 30 test and 15 validation carved off, stratified (10 and 5 per class).
    assert_eq!(d["splits"]["train"], 105);
    assert_eq!(d["splits"]["validation"]["samples"], 15);
    assert_eq!(d["splits"]["validation"]["from"], "carved");
    assert_eq!(d["splits"]["test"]["samples"], 30);
    let st = &d["standardization"];
    assert_eq!(st["features"][0], "sepal_length_cm");
    assert_eq!(st["mean"].as_array().unwrap().len(), 4);
    assert!(r["curve"]["lrs"].as_array().unwrap().len() > 10);
}

#[test]
fn training_at_the_suggestion_rebuilds_the_same_data() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, out, err) = run(lrfind(d)
        .arg("--data")
        .arg(format!("csv:{}", tabular("breast_cancer.csv").display()))
        .args(["--hidden", "32", "--batch-size", "32", "--num-steps", "60"])
        .args(["--min", "1e-5", "--max", "10", "-q"]));
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&d.join("lrfind.json"));
    assert_eq!(
        report["settings"]["dataset"]["task"]["classify"]["classes"],
        serde_json::json!(["0", "1"])
    );
    let (code, out, err) = run(lrfind(d).args([
        "train",
        "--use-suggested",
        "--epochs",
        "3",
        "--out-dir",
        "run",
        "-q",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    // The run directory records the same data description as the report.
    let saved = json(&d.join("run/dataset.json"));
    assert_eq!(saved, report["settings"]["dataset"]);
    let cfg = json(&d.join("run/config.json"));
    assert_eq!(cfg["setup"]["data"], report["settings"]["data"]);
    let last = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    // Standardised features: a small MLP separates the classes within three epochs.
    let acc = last["val_accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "validation accuracy {acc}");
    // A resume checks the data is still what the run started on.
    let mut edited = json(&d.join("run/dataset.json"));
    edited["splits"]["train"] = serde_json::json!(1);
    std::fs::write(d.join("run/dataset.json"), edited.to_string()).unwrap();
    let (code, _, err) = run(lrfind(d).args(["train", "--resume", "run", "--epochs", "4", "-q"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the data is not what the run started on: its splits changed"),
        "{err}"
    );
}

#[test]
fn a_bad_csv_is_one_line_naming_file_line_and_column_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("bad.csv"), "a,b,label\n1,2,x\n3,oops,y\n5,6,x\n").unwrap();
    assert_refused(
        d,
        &["--data", "bad.csv"],
        &["bad.csv: line 3, column 'b': 'oops' is not a number"],
    );
    assert_refused(
        d,
        &[
            "train",
            "--lr",
            "0.1",
            "--data",
            "bad.csv",
            "--out-dir",
            "run",
        ],
        &["bad.csv: line 3, column 'b': 'oops' is not a number"],
    );
    std::fs::write(d.join("ragged.csv"), "a,b,label\n1,2,x\n3,4\n").unwrap();
    assert_refused(
        d,
        &["--data", "ragged.csv"],
        &["ragged.csv: line 3: 2 fields, but the header has 3 columns"],
    );
    assert_refused(
        d,
        &["--data", "bad.csv", "--target", "kind"],
        &["no target column 'kind'; the columns are: a, b, label"],
    );
    std::fs::write(d.join("na.csv"), "a,y\n1,0.5\n2,1.5\n3,NA\n").unwrap();
    assert_refused(
        d,
        &["--data", "na.csv"],
        &[
            "line 4, column 'y': 'NA' is not a number",
            "or pass --task classify",
        ],
    );
}

#[test]
fn data_settings_are_named_by_their_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let iris = tabular("iris.csv");
    let iris = iris.to_str().unwrap();
    for (args, want) in [
        (
            vec!["--data", iris, "--val-split", "1"],
            "--val-split 1: must be a fraction in [0, 1) (0: no validation split)",
        ),
        (
            vec!["--data", iris, "--val-split", "0.5", "--test-split", "0.5"],
            "--test-split 0.5: with --val-split 0.5 leaves nothing to train on",
        ),
        (
            vec!["--data", "mnist", "--test-split", "0.2"],
            "--test-split 0.2: mnist has its own test split; leave --test-split unset",
        ),
        (
            vec!["--data", "mnist", "--target", "y"],
            "--target y: applies to CSV files only, not to a built-in dataset",
        ),
        (
            vec!["--data", iris, "--task", "cluster"],
            "--task cluster: expected classify or regress",
        ),
        (
            vec!["--data", iris, "--channels", "3"],
            "--channels 3: applies to image folders only, not to a CSV file",
        ),
        (
            vec!["--data", "nothing-here.txt"],
            "--data nothing-here.txt: no such dataset, file or directory",
        ),
    ] {
        assert_refused(d, &args, &[want]);
    }
    // Training needs a validation split to score epochs on.
    assert_refused(
        d,
        &["train", "--lr", "0.1", "--data", iris, "--val-split", "0"],
        &["--val-split 0: training scores every epoch on the validation split"],
    );
    // Five rows cannot give a 10 % validation split.
    std::fs::write(d.join("tiny.csv"), "a,y\n1,x\n2,y\n3,x\n4,y\n").unwrap();
    assert_refused(
        d,
        &["--data", "tiny.csv", "--batch-size", "2"],
        &[
            "--val-split 0.1: leaves no validation sample of the 4 in",
            "tiny.csv",
        ],
    );
}

#[test]
fn a_regression_target_reaches_the_report() {
    // y = 2a - b: float targets make a regression; the loss is not this test's business,
    // the data description is (the range test may fail at the loss until regression lands).
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut text = String::from("a,b,y\n");
    for i in 0..50 {
        let (a, b) = (i as f64 * 0.1, (i % 7) as f64);
        text.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 0.25));
    }
    std::fs::write(d.join("reg.csv"), text).unwrap();
    let config = lrfind::data::DataConfig::new(lrfind::data::Source::Csv(d.join("reg.csv")));
    let ds = lrfind::data::load(&config).unwrap();
    assert_eq!(
        ds.task,
        lrfind::data::Task::Regress {
            targets: vec!["y".into()]
        }
    );
    assert_eq!((ds.train.len(), ds.val.len()), (45, 5));
    let dev = candle_core::Device::Cpu;
    let data = lrfind::data::DeviceData::new(ds, &dev).unwrap();
    let b = data.train_batch(&[0, 1]).unwrap();
    assert_eq!(b.y.dims(), [2, 1]);
    assert_eq!(b.y.dtype(), candle_core::DType::F32);
}
