//! Helpers for the end-to-end tests: they run the built `lrfind` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The binary, with RUST_BACKTRACE unset so stderr is what a user sees.
pub fn lrfind(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("lrfind").expect("binary built");
    c.current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("LRFIND_DATA");
    c
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The small real MNIST slice shipped in tests/fixtures (2000 train, 500 test images).
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The full datasets in ../shared/data, when this checkout has them.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let p = root().join("../shared/data").join(name);
    if p.join("train-images-idx3-ubyte.gz").is_file() {
        Some(p)
    } else {
        say_skipped(&format!(
            "full {name} not found at {} (only CI and developer machines have it)",
            p.display()
        ));
        None
    }
}

/// Tells the person running the tests that a test skipped its work. Written straight to
/// stderr: libtest captures `eprintln!` of passing tests, which would hide the skip.
pub fn say_skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Files in a directory (names), sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a clean usage error: exit 2, one line on stderr that mentions `needle`, no panic.
pub fn assert_usage_error(cmd: &mut Command, needle: &str) -> String {
    let (code, _out, err) = run(cmd);
    assert_eq!(code, 2, "expected exit 2 for {needle:?}, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    err
}
