//! `lrfind [OPTIONS]` end to end through the built binary.
#![cfg(feature = "cli")]

mod common;

use common::*;

fn fixture_args(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--data".into(),
        "mnist".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "-q".into(),
    ]
}

#[test]
fn default_run_writes_png_and_report_with_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(lrfind(tmp.path()).args(["--min", "1e-6", "--max", "10", "--out", "plot.png"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("suggested learning rate:"), "{out}");
    let png = std::fs::read(tmp.path().join("plot.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000);
    let r = json(&tmp.path().join("lrfind.json"));
    assert_eq!(r["settings"]["data"]["source"]["builtin"], "digits");
    assert_eq!(r["sweep"]["min_lr"], 1e-6);
    let lrs = r["curve"]["lrs"].as_array().unwrap();
    assert_eq!(lrs[0].as_f64(), Some(1e-6));
    assert_eq!(lrs.len(), r["curve"]["losses"].as_array().unwrap().len());
    assert_eq!(lrs.len(), r["curve"]["smoothed"].as_array().unwrap().len());
    // The embedded default shows the full shape: a fall, then a blow-up inside 1e-6..10.
    assert!(
        r["stop_reason"].as_str().unwrap().starts_with("diverged"),
        "{}",
        r["stop_reason"]
    );
    let s = r["suggested_lr"].as_f64().unwrap();
    assert!(s > 1e-6 && s < 1.0, "{s}");
    assert_eq!(r["analysis"]["rules"].as_array().unwrap().len(), 6);
    assert_eq!(r["analysis"]["pinned_by_max"], false);
    assert!(r["timings"]["sweep_s"].as_f64().unwrap() > 0.0);
    assert_eq!(files(tmp.path()), ["lrfind.json", "plot.png"]);
}

#[test]
fn svg_plot_marks_the_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "--min", "1e-6", "--max", "1", "--out", "p.svg", "--report", "r.json",
    ]));
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(tmp.path().join("p.svg")).unwrap();
    let r = json(&tmp.path().join("r.json"));
    let lr = r["suggested_lr"].as_f64().unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    assert!(
        svg.contains(&format!("{lr:.3e}")),
        "suggested value not drawn"
    );
    // The dashed marker line: many two-point segments in the suggestion's red.
    let dashes = svg.lines().filter(|l| {
        l.contains("<polyline") && l.contains("#D62728") && l.matches(',').count() == 2
    });
    assert!(dashes.count() >= 10, "no dashed marker line");
    assert!(svg.contains("<circle"), "no suggestion point");
}

#[test]
fn show_rules_marks_every_rule_and_val_loss_names_the_axis() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "--min",
        "1e-6",
        "--max",
        "1",
        "--val-loss",
        "--show-rules",
        "--out",
        "p.svg",
        "--report",
        "r.json",
    ]));
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(tmp.path().join("p.svg")).unwrap();
    let r = json(&tmp.path().join("r.json"));
    let chosen = r["analysis"]["chosen_rule"].as_str().unwrap();
    for o in r["analysis"]["rules"].as_array().unwrap() {
        let rule = o["rule"].as_str().unwrap();
        let label = match o["suggestion"]["lr"].as_f64() {
            Some(lr) if rule == chosen => format!("{rule} {lr:.3e} (chosen)"),
            Some(lr) => format!("{rule} {lr:.3e}"),
            None => format!("{rule}: no suggestion"),
        };
        assert!(svg.contains(&label), "{label} not in the legend");
    }
    assert!(svg.contains("\nvalidation loss\n"), "y axis not named");
    assert!(svg.contains("validation loss (smoothed)"));
}

#[test]
fn real_mnist_slice_is_deterministic_given_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("mnist");
    for name in ["a.json", "b.json"] {
        let mut c = lrfind(tmp.path());
        c.args(fixture_args(&dir)).args([
            "--seed", "7", "--min", "1e-6", "--max", "1", "--report", name,
        ]);
        let (code, _, err) = run(&mut c);
        assert!(code == 0 || code == 1, "{err}");
    }
    let (mut a, mut b) = (
        json(&tmp.path().join("a.json")),
        json(&tmp.path().join("b.json")),
    );
    a["timings"] = serde_json::Value::Null;
    b["timings"] = serde_json::Value::Null;
    assert_eq!(a, b);
    assert_eq!(a["settings"]["seed"], 7);
    assert_eq!(a["settings"]["data"]["source"]["builtin"], "mnist");
    // a different seed gives a different curve
    let mut c = lrfind(tmp.path());
    c.args(fixture_args(&dir)).args([
        "--seed", "8", "--min", "1e-6", "--max", "1", "--report", "c.json",
    ]);
    run(&mut c);
    assert_ne!(a["curve"], json(&tmp.path().join("c.json"))["curve"]);
}

#[test]
fn raw_idx_files_read_like_gz() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    for f in files(&fixture("mnist")) {
        let gz = std::fs::read(fixture("mnist").join(&f)).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        std::fs::write(raw.join(f.trim_end_matches(".gz")), out).unwrap();
    }
    let mut c = lrfind(tmp.path());
    c.args(fixture_args(&raw))
        .args(["--num-steps", "30", "--report", "raw.json"]);
    let (_, _, err) = run(&mut c);
    assert!(!err.contains("error"), "{err}");
    let mut c = lrfind(tmp.path());
    c.args(fixture_args(&fixture("mnist")))
        .args(["--num-steps", "30", "--report", "gz.json"]);
    run(&mut c);
    assert_eq!(
        json(&tmp.path().join("raw.json"))["curve"],
        json(&tmp.path().join("gz.json"))["curve"]
    );
}

#[test]
fn full_mnist_from_shared_data_suggests_an_lr_that_descends() {
    let Some(dir) = shared_data("mnist") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut c = lrfind(tmp.path());
    c.args(fixture_args(&dir)).args([
        "--seed",
        "7",
        "--optimizer",
        "adam",
        "--min",
        "1e-6",
        "--max",
        "1",
    ]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    let s = r["suggested_lr"].as_f64().unwrap();
    // Adam on MNIST: the fall lies well inside 1e-4..1e-1
    assert!((1e-4..1e-1).contains(&s), "{s} {out}");
}

#[test]
fn plain_sgd_up_to_one_says_the_suggestion_is_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(lrfind(tmp.path()).args(["--optimizer", "sgd", "--min", "1e-6", "--max", "1"]));
    assert_eq!(code, 0, "{err}");
    // A warning: on stderr, with the wider range written as a person would (not 99.99999…).
    assert!(
        err.contains("warning: the loss never turned upward up to --max 1:"),
        "{err}"
    );
    assert!(err.contains("(e.g. --max 100)"), "{err}");
    assert!(!out.contains("pinned"), "{out}");
    assert_eq!(
        json(&tmp.path().join("lrfind.json"))["analysis"]["pinned_by_max"],
        true
    );
}

#[test]
fn no_suggestion_exits_one_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(["--num-steps", "8"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("no suggestion") && out.contains("too few points"),
        "{out}"
    );
    let r = json(&tmp.path().join("lrfind.json"));
    assert!(r["suggested_lr"].is_null());
}

#[test]
fn json_flag_prints_the_report_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lrfind(tmp.path()).args(["--json", "--num-steps", "40", "-q"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    assert_eq!(v, json(&tmp.path().join("lrfind.json")));
    // -q: the summary that --json sends to stderr is silenced too.
    assert_eq!(err, "");
}

#[test]
fn linear_mode_and_val_loss_and_accumulate_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lrfind(tmp.path()).args([
        "--mode",
        "linear",
        "--min",
        "1e-4",
        "--max",
        "0.05",
        "--num-steps",
        "30",
        "--val-loss",
        "--accumulate",
        "2",
        "--model",
        "linear",
        "-q",
    ]));
    assert!(code == 0 || code == 1, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    let lrs: Vec<f64> = r["curve"]["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(lrs[0], 1e-4);
    let d = lrs[1] - lrs[0];
    assert!((lrs[2] - lrs[1] - d).abs() < 1e-12, "linear ladder");
    assert_eq!(r["settings"]["accumulate"], 2);
    assert_eq!(r["settings"]["step_loss"]["validation"]["samples"], 512);
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_two_and_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--min", "1", "--max", "0.1"],
            "--min 1: must be below --max",
        ),
        (&["--min", "-1"], "--min -1: must be a positive finite"),
        (&["--min", "0"], "--min 0"),
        (&["--max", "inf"], "--max inf"),
        (&["--min", "nan"], "--min NaN"),
        (&["--num-steps", "1"], "--num-steps 1"),
        (&["--smooth", "1"], "--smooth 1: must be in [0, 1)"),
        (&["--smooth", "-0.1"], "--smooth -0.1"),
        (&["--batch-size", "0"], "--batch-size 0"),
        (&["--diverge", "1"], "--diverge 1"),
        (
            &["--data", "imagenet"],
            "--data imagenet: no such dataset, file or directory",
        ),
        (&["--model", "resnet"], "--model resnet: unknown model"),
        (&["--device", "tpu"], "--device tpu: unknown device"),
        (&["--optimizer", "lbfgs"], "--optimizer lbfgs"),
        (&["--suggest", "best"], "unknown rule 'best'"),
        (&["--mode", "cubic"], "unknown mode 'cubic'"),
        (
            &["--data", "mnist", "--data-dir", "/no/such/dir"],
            "--data-dir /no/such/dir: no such directory",
        ),
        (&["--out", "plot.jpg"], "plot.jpg"),
        (&["--out", "/no/such/dir/plot.png"], "/no/such/dir/plot.png"),
        (&["--report", "/no/such/dir/r.json"], "/no/such/dir/r.json"),
        (&["--hidden", "256,x"], "--hidden 256,x"),
    ];
    for (args, needle) in cases {
        let err = assert_usage_error(lrfind(d).args(*args), needle);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        // clap adds a usage hint after its own one-line errors; ours are exactly one line
        assert!(lines[0].starts_with("error:"), "{args:?}: {err}");
        assert!(files(d).is_empty(), "{args:?} left files: {:?}", files(d));
    }
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    assert_usage_error(
        lrfind(tmp.path()).args(["--device", "cuda"]),
        "--device cuda:0: this build of lrfind has no CUDA support",
    );
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn truncated_and_corrupt_idx_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for f in files(&fixture("mnist")) {
        std::fs::copy(fixture("mnist").join(&f), bad.join(&f)).unwrap();
    }
    // Truncate the raw training images: decompress, cut, store raw.
    let gz = std::fs::read(bad.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    std::fs::remove_file(bad.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(bad.join("train-images-idx3-ubyte"), &raw[..raw.len() - 100]).unwrap();
    let mut c = lrfind(tmp.path());
    c.args(["--data", "mnist", "--data-dir"]).arg(&bad);
    assert_usage_error(&mut c, "train-images-idx3-ubyte: 1567900 pixel bytes for 2000 images of 28x28 (expected 1568000): file is truncated");
    // Corrupt gzip
    std::fs::write(bad.join("train-images-idx3-ubyte"), &raw).unwrap();
    let mut lab = std::fs::read(bad.join("train-labels-idx1-ubyte.gz")).unwrap();
    let n = lab.len();
    lab[n / 2] ^= 0xff;
    lab[n / 2 + 1] ^= 0xff;
    std::fs::write(bad.join("train-labels-idx1-ubyte.gz"), lab).unwrap();
    let mut c = lrfind(tmp.path());
    c.args(["--data", "mnist", "--data-dir"]).arg(&bad);
    assert_usage_error(&mut c, "train-labels-idx1-ubyte.gz");
    // Labels that disagree with the images in count
    std::fs::copy(
        fixture("mnist").join("t10k-labels-idx1-ubyte.gz"),
        bad.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let mut c = lrfind(tmp.path());
    c.args(["--data", "mnist", "--data-dir"]).arg(&bad);
    assert_usage_error(&mut c, "500 labels but");
    assert_eq!(files(tmp.path()), ["bad"]);
}

#[test]
fn failed_run_keeps_the_previous_report() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("lrfind.json"), "{\"good\": true}").unwrap();
    assert_usage_error(
        lrfind(tmp.path()).args(["--min", "2", "--max", "1"]),
        "--min 2",
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("lrfind.json")).unwrap(),
        "{\"good\": true}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_sweep_and_writes_what_was_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("lrfind");
    let child = std::process::Command::new(bin)
        .current_dir(tmp.path())
        .args(["--num-steps", "1000000", "--max", "1e-3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("warning: interrupted"), "{stderr}");
    let r = json(&tmp.path().join("lrfind.json"));
    assert_eq!(r["interrupted"], true);
    assert!(r["curve"]["lrs"].as_array().unwrap().len() > 10);
    assert!(r["stop_reason"]
        .as_str()
        .unwrap()
        .starts_with("interrupted"));
}

#[test]
fn a_named_dataset_is_found_under_lrfind_data() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("datasets");
    std::fs::create_dir_all(root.join("mnist")).unwrap();
    for f in files(&fixture("mnist")) {
        std::fs::copy(fixture("mnist").join(&f), root.join("mnist").join(&f)).unwrap();
    }
    let (code, _, err) = run(lrfind(tmp.path()).env("LRFIND_DATA", &root).args([
        "--data",
        "mnist",
        "--num-steps",
        "20",
        "-q",
    ]));
    assert!(code == 0 || code == 1, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    assert_eq!(
        r["settings"]["dataset"]["origin"],
        root.join("mnist").display().to_string()
    );
}

#[test]
fn fashion_mnist_slice_runs_with_sgd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("fashion-mnist");
    let (code, _, err) = run(lrfind(tmp.path())
        .args(["--data", "fashion-mnist", "--data-dir"])
        .arg(&dir)
        .args([
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--min",
            "1e-5",
            "--max",
            "10",
            "-q",
        ]));
    assert!(code == 0 || code == 1, "{err}");
    let r = json(&tmp.path().join("lrfind.json"));
    assert_eq!(r["settings"]["data"]["source"]["builtin"], "fashion-mnist");
    assert_eq!(r["settings"]["optimizer"]["momentum"], 0.9);
    // SGD with momentum up to 10 blows up inside the range.
    assert_eq!(r["analysis"]["pinned_by_max"], false);
}
