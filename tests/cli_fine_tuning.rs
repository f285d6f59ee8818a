//! Fine-tuning from the command line: param groups, frozen layers, the report and
//! `train --use-suggested` keeping them.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;

fn mnist() -> String {
    fixture("mnist").display().to_string()
}

/// A tensor's raw bytes by name, from a safetensors file.
fn tensors(path: &Path) -> HashMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

#[test]
fn bad_groups_are_one_line_errors_naming_the_pattern_or_the_names() {
    let d = tempfile::tempdir().unwrap();
    let names = "1.bias, 1.weight, 3.bias, 3.weight, 5.bias, 5.weight";
    let err = assert_usage_error(
        lrfind(d.path()).args(["--param-groups", "1.*=0.1"]),
        "--param-groups 1.*=0.1: no pattern matches 3.bias, 3.weight, 5.bias, 5.weight",
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert_usage_error(
        lrfind(d.path()).args(["--param-groups", "1.*=0.1, head.*=1, *=1"]),
        &format!("--param-groups head.*: matches no parameter (the parameters: {names})"),
    );
    assert_usage_error(
        lrfind(d.path()).args(["--freeze", "body.*"]),
        "body.*: matches no parameter",
    );
    assert_usage_error(
        lrfind(d.path()).args(["--param-groups", "1.*=-2, *=1"]),
        "--param-groups 1.*: multiplier -2 (allowed: a finite number >= 0; 0 freezes)",
    );
    assert_usage_error(
        lrfind(d.path()).args(["--freeze", "*"]),
        "--param-groups *=0, *=1: every parameter is frozen: nothing would train",
    );
    // Nothing was written.
    assert!(files(d.path()).is_empty(), "{:?}", files(d.path()));
}

/// Pretrain, then fine-tune the head only from those weights: the report lists the groups
/// at the suggestion, `train --use-suggested` keeps them, and the frozen body in the
/// fine-tuned weights is the pretrained body, byte for byte.
#[test]
fn fine_tuning_the_head_keeps_the_body_and_the_groups() {
    let d = tempfile::tempdir().unwrap();
    let data = mnist();
    let common = ["--data", "mnist", "--data-dir", &data, "--batch-size", "64"];
    let (code, _, err) = run(lrfind(d.path())
        .args([
            "train",
            "--lr",
            "1e-3",
            "--epochs",
            "1",
            "--out-dir",
            "pre",
            "-q",
        ])
        .args(common));
    assert_eq!(code, 0, "{err}");
    let pre = d.path().join("pre/final.safetensors");
    let (code, out, err) = run(lrfind(d.path())
        .args(common)
        .args(["--init-from", pre.to_str().unwrap()])
        .args(["--param-groups", "[13].*=0, 5.*=1", "--no-decay-norm-bias"])
        .args(["--optimizer", "adamw", "--min", "1e-5", "--max", "1"])
        // A pretrained model's batch losses are noisy next to its small fall (0.91x the noise
        // here: no suggestion); scored on held-out samples the fall is 58x its noise.
        .args(["--val-loss"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("param groups (the sweep moved the base LR, ratios fixed): 5.* "),
        "{out}"
    );
    let report = json(&d.path().join("lrfind.json"));
    let lr = report["suggested_lr"].as_f64().unwrap();
    let groups = report["param_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0]["pattern"], "5.*");
    assert_eq!(groups[0]["lr"].as_f64(), Some(lr));
    assert_eq!(
        groups[0]["params"],
        serde_json::json!(["5.bias", "5.weight"])
    );
    assert_eq!(groups[1]["frozen"], true);
    assert_eq!(groups[1]["lr"].as_f64(), Some(0.0));
    let (code, _, err) = run(lrfind(d.path()).args([
        "train",
        "--use-suggested",
        "--epochs",
        "1",
        "--out-dir",
        "ft",
        "-q",
    ]));
    assert_eq!(code, 0, "{err}");
    let config = json(&d.path().join("ft/config.json"));
    assert_eq!(
        config["setup"]["param_groups"],
        report["settings"]["param_groups"]
    );
    assert_eq!(config["setup"]["param_groups"]["no_decay_norm_bias"], true);
    let (before, after) = (
        tensors(&pre),
        tensors(&d.path().join("ft/final.safetensors")),
    );
    for name in ["1.weight", "1.bias", "3.weight", "3.bias"] {
        assert_eq!(before[name], after[name], "{name} frozen");
    }
    for name in ["5.weight", "5.bias"] {
        assert_ne!(before[name], after[name], "{name} trained");
    }
    // The checkpoint holds no optimizer state for the frozen tensors.
    let ck = tensors(&d.path().join("ft/checkpoint.safetensors"));
    let mut optim: Vec<&String> = ck.keys().filter(|k| k.starts_with("optim.")).collect();
    optim.sort();
    assert_eq!(
        optim,
        [
            "optim.exp_avg.4",
            "optim.exp_avg.5",
            "optim.exp_avg_sq.4",
            "optim.exp_avg_sq.5"
        ]
    );
}

/// Per-group values for a scheduler, as in PyTorch: one max_lr per trainable group (max_lr
/// governs: no --lr beside it).
#[test]
fn one_cycle_takes_one_max_lr_per_group() {
    let d = tempfile::tempdir().unwrap();
    let data = mnist();
    let train = |sched: &str, dir: &str| {
        run(lrfind(d.path()).args([
            "train",
            "--data",
            "mnist",
            "--data-dir",
            &data,
            "--epochs",
            "1",
            "--param-groups",
            "[13].*=0.1, 5.*=1",
            "--scheduler",
            sched,
            "--out-dir",
            dir,
            "--json",
            "-q",
        ]))
    };
    let (code, out, err) = train("OneCycleLR(max_lr=[1e-4, 1e-2])", "a");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The recorded LR is the base LR, the first group's over its multiplier (0.1): its
    // cycle peaks at its own max_lr, 1e-4, so the base at 1e-3.
    let lrs = v["history"][0]["step_lrs"].as_array().unwrap();
    let peak = lrs.iter().filter_map(|x| x.as_f64()).fold(0.0, f64::max);
    assert!((peak - 1e-3).abs() < 1e-6, "{peak}");
    assert_usage_error(
        lrfind(d.path()).args([
            "train",
            "--data",
            "mnist",
            "--data-dir",
            &data,
            "--epochs",
            "1",
            "--param-groups",
            "[13].*=0.1, 5.*=1",
            "--scheduler",
            "OneCycleLR(max_lr=[1e-4, 1e-3, 1e-2])",
            "--out-dir",
            "b",
        ]),
        "max_lr",
    );
}
