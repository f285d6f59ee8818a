//! Hostile-but-realistic use, end to end: outputs that are devices, links or the same file
//! twice, concurrent runs, kills, absurd sizes, files edited by hand, flat and pinned curves.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

fn data_args() -> Vec<String> {
    vec![
        "--data".into(),
        "mnist".into(),
        "--data-dir".into(),
        fixture("mnist").display().to_string(),
    ]
}

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("lrfind")
}

fn spawn(d: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(bin())
        .current_dir(d)
        .env_remove("RUST_BACKTRACE")
        .env_remove("LRFIND_DATA")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

fn wait_for(p: &Path, secs: u64) {
    let t = std::time::Instant::now();
    while !p.exists() && t.elapsed().as_secs() < secs {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(p.exists(), "{} never appeared", p.display());
}

/// Trains the fixture for `epochs` into `dir` with `extra` flags; asserts success.
fn train(d: &Path, dir: &str, epochs: &str, extra: &[&str]) {
    let (code, out, err) = run(lrfind(d)
        .args(["train", "--lr", "0.05", "--optimizer", "sgd", "-q"])
        .args(data_args())
        .args(["--epochs", epochs, "--out-dir", dir])
        .args(extra));
    assert_eq!(code, 0, "{out}{err}");
}

// ---- Files: never clobber, never mix, never leave debris ----

#[test]
fn a_device_output_is_refused_and_a_symlink_is_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let quick = ["--num-steps", "20", "-q"];
    // /dev/null: refused before any work, and still a device afterwards.
    let err = assert_usage_error(
        lrfind(d).args(quick).args(["--report", "/dev/null"]),
        "/dev/null",
    );
    assert!(err.contains("not a regular file"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // /dev/stdout is a link to a pipe here: also refused, and the link stays.
    assert_usage_error(
        lrfind(d).args(quick).args(["--report", "/dev/stdout"]),
        "/dev/stdout",
    );
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    // A directory as the plot: refused.
    std::fs::create_dir(d.join("adir.png")).unwrap();
    assert_usage_error(
        lrfind(d).args(quick).args(["--out", "adir.png"]),
        "a directory",
    );
    assert!(
        !d.join("lrfind.json").exists(),
        "nothing written on bad input"
    );
    // A symlink to a regular file: written through, the link stays a link.
    std::fs::create_dir(d.join("reports")).unwrap();
    std::fs::write(d.join("reports/real.json"), "old").unwrap();
    std::os::unix::fs::symlink("reports/real.json", d.join("link.json")).unwrap();
    let (code, _, err) = run(lrfind(d).args(quick).args(["--report", "link.json"]));
    assert!(code <= 1, "{err}");
    assert!(std::fs::symlink_metadata(d.join("link.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(json(&d.join("reports/real.json"))["tool"], "lrfind");
    assert_eq!(files(d), ["adir.png", "link.json", "reports"]);
}

#[test]
fn the_same_path_twice_is_an_error_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_usage_error(
        lrfind(d).args(["--report", "x.png", "--out", "x.png", "-q"]),
        "same file",
    );
    // Spelled differently, in check, and the baseline as the report.
    std::fs::create_dir(d.join("sub")).unwrap();
    assert_usage_error(
        lrfind(d).args(["check", "--report", "a.svg", "--out", "sub/../a.svg", "-q"]),
        "same file",
    );
    std::fs::write(d.join("b.json"), r#"{"suggested_lr": 0.001}"#).unwrap();
    assert_usage_error(
        lrfind(d).args([
            "check",
            "--baseline",
            "b.json",
            "--report",
            "./b.json",
            "-q",
        ]),
        "same file",
    );
    assert_eq!(files(d), ["b.json", "sub"]);
}

#[test]
fn a_run_directory_is_claimed_by_one_train_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dd = fixture("mnist").display().to_string();
    let args = [
        "train",
        "--lr",
        "0.003",
        "--data",
        "mnist",
        "--data-dir",
        &dd,
        "--epochs",
        "100000",
        "--out-dir",
        "run",
        "-q",
    ];
    let first = spawn(d, &args);
    wait_for(&d.join("run/config.json"), 60);
    // A second run and a resume while the first holds the directory: both refused.
    let err = assert_usage_error(
        lrfind(d).args(args).args(["--seed", "9"]),
        "another lrfind train",
    );
    assert!(err.lines().count() == 1, "{err}");
    wait_for(&d.join("run/checkpoint.safetensors"), 60);
    assert_usage_error(
        lrfind(d).args(["train", "--resume", "run", "-q"]),
        "another lrfind train",
    );
    interrupt(&first);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Released with the process: the run resumes.
    let (code, out, err) = run(lrfind(d)
        .args(["train", "--resume", "run", "--epochs"])
        .arg(
            (json(&d.join("run/state.json"))["epochs_done"]
                .as_u64()
                .unwrap()
                + 1)
            .to_string(),
        ));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn resume_refuses_config_checkpoint_and_state_from_different_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "a", "1", &[]);
    train(d, "b", "1", &["--seed", "7"]);
    // b's checkpoint into a: refused, naming the mix.
    std::fs::copy(
        d.join("b/checkpoint.safetensors"),
        d.join("a/checkpoint.safetensors"),
    )
    .unwrap();
    let err = assert_usage_error(
        lrfind(d).args(["train", "--resume", "a", "--epochs", "2", "-q"]),
        "different run",
    );
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    // Only state.json from the other run: refused too.
    train(d, "c", "1", &[]);
    std::fs::copy(d.join("b/state.json"), d.join("c/state.json")).unwrap();
    assert_usage_error(
        lrfind(d).args(["train", "--resume", "c", "--epochs", "2", "-q"]),
        "state.json belongs to a different run",
    );
}

#[test]
fn temp_files_of_killed_runs_are_removed_and_modes_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(d)
        .args([
            "train",
            "--lr",
            "0.05",
            "--epochs",
            "1",
            "--out-dir",
            "run",
            "-q",
        ])
        .args(data_args());
    // SAFETY: umask(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o027);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in files(&d.join("run")) {
        let mode = std::fs::metadata(d.join("run").join(&f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "{f}: {mode:o}");
    }
    // Leftovers of a killed lrfind (a dead pid) and of the safetensors crate's writer.
    let junk = [
        ".lrfind-tmp-4194999-1a2b.safetensors",
        ".tmpAb12Cd",
        ".lrfind-tmp-4194998-ff.json",
    ];
    for j in &junk[..2] {
        std::fs::write(d.join("run").join(j), vec![0u8; 1000]).unwrap();
    }
    std::fs::write(d.join(junk[2]), b"{").unwrap();
    // A live process's temporary file is left alone.
    let live = format!(".lrfind-tmp-{}-1.json", std::process::id());
    std::fs::write(d.join(&live), b"{").unwrap();
    let (code, out, err) = run(lrfind(d).args(["train", "--resume", "run", "--epochs", "2", "-q"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(lrfind(d).args(["--num-steps", "20", "-q"]));
    assert!(code <= 1, "{err}");
    let left: Vec<String> = files(d)
        .into_iter()
        .chain(files(&d.join("run")))
        .filter(|f| f.starts_with('.'))
        .collect();
    assert_eq!(left, [live]);
}

#[test]
fn a_train_that_cannot_start_leaves_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("bad")).unwrap();
    std::fs::write(d.join("bad/train-images-idx3-ubyte"), b"junk").unwrap();
    assert_usage_error(
        lrfind(d).args([
            "train",
            "--lr",
            "0.1",
            "--data",
            "mnist",
            "--data-dir",
            "bad",
            "--out-dir",
            "new/run",
            "-q",
        ]),
        "bad",
    );
    assert!(!d.join("new").exists());
    // The default runs/<time> is not created either.
    assert_usage_error(
        lrfind(d).args([
            "train",
            "--lr",
            "0.1",
            "--data",
            "mnist",
            "--data-dir",
            "bad",
            "-q",
        ]),
        "bad",
    );
    assert_eq!(files(d), ["bad"]);
    // A run that diverges in its first epoch has nothing to resume: no directory either.
    let (code, _, err) = run(lrfind(d)
        .args([
            "train",
            "--lr",
            "1e9",
            "--optimizer",
            "sgd",
            "--out-dir",
            "new/run",
            "-q",
        ])
        .args(data_args()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("diverged"), "{err}");
    assert_eq!(files(d), ["bad"]);
    // And the --out-dir stays usable.
    train(d, "new/run", "1", &[]);
}

#[test]
fn the_report_survives_a_plot_that_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The plot's directory vanishes during the sweep (as a full disk would fail it late).
    std::fs::create_dir(d.join("plots")).unwrap();
    let child = spawn(
        d,
        &[
            "--num-steps",
            "3000",
            "--max",
            "1e-3",
            "--out",
            "plots/p.png",
            "-q",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::remove_dir(d.join("plots")).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plots/p.png"), "{err}");
    assert_eq!(json(&d.join("lrfind.json"))["tool"], "lrfind");
    // Check: the same.
    std::fs::create_dir(d.join("plots2")).unwrap();
    let child = spawn(
        d,
        &[
            "check",
            "--seeds",
            "2",
            "--no-repeat",
            "--num-steps",
            "1500",
            "--max",
            "1e-3",
            "--model",
            "linear",
            "--out",
            "plots2/c.png",
            "-q",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::remove_dir(d.join("plots2")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        json(&d.join("lrfind-check.json"))["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Train: the epoch's measurements are on disk even though its plot failed.
    let child = spawn(
        d,
        &[
            "train",
            "--lr",
            "0.05",
            "--epochs",
            "3",
            "--out-dir",
            "run",
            "-q",
            "--data",
            "mnist",
            "--data-dir",
            &fixture("mnist").display().to_string(),
        ],
    );
    wait_for(&d.join("run/config.json"), 60);
    std::fs::create_dir(d.join("run/curves.png")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&d.join("run/state.json"))["epochs_done"], 1);
    assert!(d.join("run/metrics.jsonl").is_file());
    assert!(d.join("run/checkpoint.safetensors").is_file());
}

#[test]
fn ctrl_c_during_check_keeps_the_finished_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let child = spawn(
        d,
        &[
            "check",
            "--seeds",
            "100000",
            "--num-steps",
            "30",
            "--model",
            "linear",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(4000));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("verdict: none"), "{stdout}");
    let r = json(&d.join("lrfind-check.json"));
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["stable"], false);
    let runs = r["runs"].as_array().unwrap();
    assert!(!runs.is_empty(), "{r}");
    assert_eq!(runs[0]["seed"], 0);
}

#[test]
fn default_run_directories_are_unique_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dd = fixture("mnist").display().to_string();
    let args = [
        "train",
        "--lr",
        "0.05",
        "--epochs",
        "1",
        "--model",
        "linear",
        "-q",
        "--data",
        "mnist",
        "--data-dir",
        &dd,
    ];
    let a = spawn(d, &args);
    let b = spawn(d, &args);
    let c = spawn(d, &args);
    for ch in [a, b, c] {
        let out = ch.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = files(&d.join("runs"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    for r in &runs {
        assert!(d
            .join("runs")
            .join(r)
            .join("checkpoint.safetensors")
            .is_file());
    }
}

#[test]
fn a_relative_data_dir_is_stored_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let copy = d.join("data");
    std::fs::create_dir(&copy).unwrap();
    for f in files(&fixture("mnist")) {
        std::fs::copy(fixture("mnist").join(&f), copy.join(&f)).unwrap();
    }
    let (code, _, err) = run(lrfind(d).args([
        "--data",
        "mnist",
        "--data-dir",
        "data",
        "--min",
        "1e-5",
        "--max",
        "1",
        "-q",
    ]));
    assert_eq!(code, 0, "{err}");
    let origin = json(&d.join("lrfind.json"))["settings"]["dataset"]["origin"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&origin).is_absolute(), "{origin}");
    // From another directory, with --use-suggested, then --resume from a third.
    let other = d.join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let (code, out, err) = run(lrfind(&other).args([
        "train",
        "--use-suggested",
        "--report",
        "../lrfind.json",
        "--epochs",
        "1",
        "--out-dir",
        "run",
        "-q",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let cfg = json(&other.join("run/config.json"));
    assert!(Path::new(cfg["setup"]["data"]["data_dir"].as_str().unwrap()).is_absolute());
    // A relative --data-dir given to train is stored absolute too.
    let (code, out, err) = run(lrfind(d).args([
        "train",
        "--lr",
        "0.05",
        "--data",
        "mnist",
        "--data-dir",
        "./data",
        "--epochs",
        "1",
        "--out-dir",
        "run2",
        "-q",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) =
        run(lrfind(&other).args(["train", "--resume", "../run2", "--epochs", "2", "-q"]));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn write_errors_name_the_users_path_not_a_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (flag, path) in [("--report", "no/such/dir/r.json"), ("--out", "gone/p.png")] {
        let err = assert_usage_error(lrfind(d).args([flag, path, "-q"]), path);
        assert!(!err.contains(".lrfind-"), "{err}");
    }
}

// ---- No panics, no aborts, bounded memory ----

#[test]
fn huge_step_counts_stream_instead_of_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for n in ["18446744073709551615", "1000000000"] {
        let child = spawn(
            d,
            &["--num-steps", n, "--max", "1e-3", "--model", "linear", "-q"],
        );
        std::thread::sleep(std::time::Duration::from_millis(1500));
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("capacity"),
            "{err}"
        );
        let r = json(&d.join("lrfind.json"));
        assert_eq!(r["interrupted"], true, "{n}");
    }
    // check multiplies steps by seeds for its progress bar: no overflow either.
    let child = spawn(
        d,
        &[
            "check",
            "--num-steps",
            "18446744073709551615",
            "--model",
            "linear",
            "-q",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(130), "{err}");
}

#[test]
fn absurd_sizes_are_refused_with_the_limit_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for acc in ["18446744073709551615", "1000000000"] {
        let err = assert_usage_error(lrfind(d).args(["--accumulate", acc, "-q"]), "at most 4096");
        assert!(err.contains(acc), "{err}");
    }
    let err = assert_usage_error(
        lrfind(d).args(["--hidden", "100000,100000", "-q"]),
        "the limit is 4 GiB",
    );
    assert!(err.contains("mlp(100000-100000)"), "{err}");
    assert_usage_error(
        lrfind(d).args([
            "train",
            "--lr",
            "0.1",
            "--hidden",
            "4000000000,4000000000,10",
            "-q",
        ]),
        "the limit is 4 GiB",
    );
    assert_eq!(files(d), Vec::<String>::new());
}

#[test]
fn a_multi_member_gzip_is_accepted() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("mm");
    std::fs::create_dir(&data).unwrap();
    for f in files(&fixture("mnist")) {
        std::fs::copy(fixture("mnist").join(&f), data.join(&f)).unwrap();
    }
    // Re-pack the training images as two gzip members, as `cat a.gz b.gz` makes.
    let gz = data.join("train-images-idx3-ubyte.gz");
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let mut out = Vec::new();
    for part in [&raw[..1000], &raw[1000..]] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).unwrap();
        out.extend(enc.finish().unwrap());
    }
    std::fs::write(&gz, out).unwrap();
    let (code, _, err) = run(lrfind(d).args([
        "--data",
        "mnist",
        "--data-dir",
        "mm",
        "--num-steps",
        "20",
        "-q",
    ]));
    assert!(code <= 1, "{err}");
    assert!(!err.contains("truncated"), "{err}");
}

#[test]
// The child is reaped by wait4(2), which also gives its peak memory.
#[allow(clippy::zombie_processes)]
fn a_gzip_bomb_is_stopped_at_the_size_its_header_declares() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("bomb");
    std::fs::create_dir(&data).unwrap();
    for f in files(&fixture("mnist")) {
        std::fs::copy(fixture("mnist").join(&f), data.join(&f)).unwrap();
    }
    // The real images followed by 768 MiB of zeros: under 1 MB of gzip.
    let gz = data.join("train-images-idx3-ubyte.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&raw).unwrap();
    let zeros = vec![0u8; 1 << 24];
    for _ in 0..48 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
    let child = spawn(d, &["--data", "mnist", "--data-dir", "bomb", "-q"]);
    // wait4 gives this child's own peak memory.
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert_eq!(libc::WEXITSTATUS(status), 2);
    let mut err = String::new();
    child.stderr.unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("too long"), "{err}");
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 200, "peak {peak_mb} MB");
}

#[test]
fn a_report_edited_by_hand_is_validated_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, _, err) = run(lrfind(d).args(["--min", "1e-5", "--max", "1", "-q"]));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(d.join("lrfind.json")).unwrap();
    let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (edit, needle) in [
        (
            ("model", serde_json::json!({"kind": "mlp", "hidden": [0]})),
            "report bad.json: hidden = 0",
        ),
        (("batch_size", serde_json::json!(0)), "batch_size = 0"),
        (("accumulate", serde_json::json!(0)), "accumulate = 0"),
    ] {
        let mut bad = r.clone();
        bad["settings"][edit.0] = edit.1;
        std::fs::write(d.join("bad.json"), bad.to_string()).unwrap();
        assert_usage_error(
            lrfind(d).args(["train", "--use-suggested", "--report", "bad.json", "-q"]),
            needle,
        );
    }
    r["suggested_lr"] = serde_json::json!(-0.5);
    std::fs::write(d.join("bad.json"), r.to_string()).unwrap();
    assert_usage_error(
        lrfind(d).args(["train", "--use-suggested", "--report", "bad.json", "-q"]),
        "suggested_lr = -0.5",
    );
    assert!(!d.join("runs").exists());
}

// ---- Nothing wrong passes silently ----

/// Overwrites the first f32 of tensor `name` in a safetensors file with `value`.
fn poke_f32(path: &Path, name: &str, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + start;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_checkpoint_holding_nan_or_inf_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "run", "1", &[]);
    let ckpt = d.join("run/checkpoint.safetensors");
    let good = std::fs::read(&ckpt).unwrap();
    poke_f32(&ckpt, "1.bias", f32::NAN);
    let err = assert_usage_error(
        lrfind(d).args(["train", "--resume", "run", "--epochs", "2", "-q"]),
        "'1.bias' holds NaN",
    );
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    // Infinity in the optimizer's state (momentum buffer) too.
    train(d, "mom", "1", &["--momentum", "0.9"]);
    let ckpt = d.join("mom/checkpoint.safetensors");
    poke_f32(&ckpt, "optim.momentum_buffer.3", f32::INFINITY);
    assert_usage_error(
        lrfind(d).args(["train", "--resume", "mom", "--epochs", "2", "-q"]),
        "optim.momentum_buffer.3",
    );
    // Nothing was written over the (bad) files: final.safetensors is unchanged.
    std::fs::write(d.join("run/checkpoint.safetensors"), good).unwrap();
    let (code, out, err) = run(lrfind(d).args(["train", "--resume", "run", "--epochs", "2", "-q"]));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_flat_curve_suggests_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (opt, min, max) in [("adam", "1e-8", "1e-6"), ("sgd", "1e-7", "1e-5")] {
        let (code, out, err) =
            run(lrfind(d).args(["--optimizer", opt, "--min", min, "--max", max]));
        assert_eq!(code, 1, "{opt}: {out}{err}");
        assert!(out.contains("no real descent"), "{out}");
        let r = json(&d.join("lrfind.json"));
        assert!(r["suggested_lr"].is_null(), "{opt}");
        assert_eq!(r["pinned"], false);
        assert_usage_error(
            lrfind(d).args(["train", "--use-suggested", "--epochs", "1", "-q"]),
            "has no suggestion",
        );
    }
}

#[test]
fn a_pinned_suggestion_is_marked_warned_and_fails_check() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sgd = ["--optimizer", "sgd", "--min", "1e-4", "--max", "0.3"];
    let (code, _, err) = run(lrfind(d).args(sgd).arg("-q"));
    assert_eq!(code, 0, "{err}");
    let r = json(&d.join("lrfind.json"));
    assert_eq!(r["pinned"], true, "{r}");
    assert_eq!(r["analysis"]["pinned"], true);
    let (code, _, err) = run(lrfind(d).args([
        "train",
        "--use-suggested",
        "--epochs",
        "1",
        "--model",
        "linear",
        "--out-dir",
        "t",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("pinned by --max"),
        "{err}"
    );
    let (code, out, _) = run(lrfind(d)
        .args(["check", "--seeds", "2", "--no-repeat"])
        .args(sgd));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pinned by --max") && out.contains("--allow-pinned"),
        "{out}"
    );
    let (code, out, _) = run(lrfind(d)
        .args([
            "check",
            "--seeds",
            "2",
            "--no-repeat",
            "--allow-pinned",
            "--max-spread",
            "3",
            "-q",
        ])
        .args(sgd));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn extend_climbs_until_the_loss_turns_upward() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, out, err) = run(lrfind(d).args([
        "--optimizer",
        "sgd",
        "--min",
        "1e-4",
        "--max",
        "0.3",
        "--extend",
    ]));
    assert_eq!(code, 0, "{err}");
    let r = json(&d.join("lrfind.json"));
    let to = r["extended_to"].as_f64().unwrap();
    assert!(to > 0.3 && to <= 300.0 * (1.0 + 1e-9), "{to}");
    assert_eq!(r["pinned"], false, "{out}");
    assert!(out.contains("more past it to"), "{out}");
    // The same per-step ratio as the ladder below --max.
    let lrs: Vec<f64> = r["curve"]["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let n = lrs.len();
    assert!(n > 100);
    let want = lrs[1] / lrs[0];
    assert!((lrs[n - 1] / lrs[n - 2] / want - 1.0).abs() < 1e-9);
    // Linear: the same increment past --max.
    let (code, _, err) = run(lrfind(d).args([
        "--optimizer",
        "sgd",
        "--mode",
        "linear",
        "--min",
        "0.01",
        "--max",
        "0.3",
        "--extend",
    ]));
    assert!(code <= 1, "{err}");
    let r = json(&d.join("lrfind.json"));
    let lrs: Vec<f64> = r["curve"]["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        lrs.len() > 100 && *lrs.last().unwrap() > 0.3,
        "{}",
        lrs.len()
    );
    let step = lrs[1] - lrs[0];
    let n = lrs.len();
    assert!(((lrs[n - 1] - lrs[n - 2]) / step - 1.0).abs() < 1e-6);
}

#[test]
fn resume_with_other_epochs_refuses_to_replan_a_one_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "oc", "2", &["--scheduler", "OneCycleLR()"]);
    let err = assert_usage_error(
        lrfind(d).args(["train", "--resume", "oc", "--epochs", "4", "-q"]),
        "--epochs 4",
    );
    assert!(
        err.contains("OneCycleLR") && err.contains("2 epochs"),
        "{err}"
    );
    // Nested inside a composite: the same.
    train(
        d,
        "nested",
        "1",
        &[
            "--scheduler",
            "SequentialLR(ConstantLR(factor=0.5, total_iters=2), OneCycleLR(), milestones=[3])",
        ],
    );
    assert_usage_error(
        lrfind(d).args(["train", "--resume", "nested", "--epochs", "3", "-q"]),
        "re-plan",
    );
    // A OneCycleLR with its own total_steps does not depend on the run's length.
    train(
        d,
        "fixed",
        "1",
        &["--scheduler", "OneCycleLR(total_steps=100)"],
    );
    let (code, out, err) =
        run(lrfind(d).args(["train", "--resume", "fixed", "--epochs", "2", "-q"]));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn eval_batch_size_zero_is_refused_like_batch_size_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_usage_error(
        lrfind(d).args(["train", "--lr", "0.1", "--eval-batch-size", "0", "-q"]),
        "--eval-batch-size 0: must be at least 1",
    );
    assert_usage_error(
        lrfind(d).args(["train", "--lr", "0.1", "--batch-size", "0", "-q"]),
        "--batch-size 0: must be at least 1",
    );
    // A config.json edited to 0 is refused on resume.
    train(d, "run", "1", &[]);
    let p = d.join("run/config.json");
    let mut cfg = json(&p);
    cfg["eval_batch_size"] = serde_json::json!(0);
    std::fs::write(&p, cfg.to_string()).unwrap();
    assert_usage_error(
        lrfind(d).args(["train", "--resume", "run", "--epochs", "2", "-q"]),
        "config.json: eval_batch_size = 0: must be at least 1",
    );
    assert_eq!(files(d), ["run"]);
}

#[test]
fn a_resumed_run_records_the_same_bits_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Adam and ReduceLROnPlateau: the state read back (metrics, best loss, the plateau's
    // replayed metrics) must be the exact floats written.
    let common = [
        "--optimizer",
        "adam",
        "--scheduler",
        "ReduceLROnPlateau(patience=0, factor=0.5, threshold=0.5)",
    ];
    let lr = ["--lr", "0.003", "-q"];
    let (code, out, err) = run(lrfind(d)
        .arg("train")
        .args(lr)
        .args(common)
        .args(data_args())
        .args(["--epochs", "3", "--out-dir", "whole"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(lrfind(d)
        .arg("train")
        .args(lr)
        .args(common)
        .args(data_args())
        .args(["--epochs", "1", "--out-dir", "parts"]));
    assert_eq!(code, 0, "{out}{err}");
    for e in ["2", "3"] {
        let (code, out, err) =
            run(lrfind(d).args(["train", "--resume", "parts", "--epochs", e, "-q"]));
        assert_eq!(code, 0, "{out}{err}");
    }
    // Compare the text: shortest round-trip printing, so equal text is equal bits.
    let lines = |dir: &str| -> Vec<String> {
        std::fs::read_to_string(d.join(dir).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| l.split(",\"seconds\"").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(lines("whole").len(), 3);
    assert_eq!(lines("parts"), lines("whole"));
    let state = |dir: &str| {
        let mut s = json(&d.join(dir).join("state.json"));
        s["history"] = serde_json::Value::Null;
        s.to_string()
    };
    assert_eq!(state("parts"), state("whole"));
}
