//! Runs every case of a golden-format file and writes the computed values:
//! `cargo run --release --example golden -- IN.json OUT.json`
//! writes `{"cases": [{"id": ..., "lr": [[...], ...], "momentum": [[...], ...]}]}`, one row per
//! step (row 0 right after construction). `momentum` is written for cases whose expected data
//! has it, or, for cases without `expected`, when the schedule cycles momentum.
//! Errors: one line on stderr, exit code 2; a case that fails aborts the run, naming the case.

use std::path::Path;
use std::process::ExitCode;

use lrfind::report::atomic::write_atomic;
use lrfind::schedule::golden::GoldenFile;
use serde_json::{json, Value};

fn run(input: &Path, output: &Path) -> Result<(), String> {
    let file = GoldenFile::load(input).map_err(|e| e.to_string())?;
    let mut cases = Vec::with_capacity(file.cases.len());
    for case in &file.cases {
        let config = case
            .config()
            .map_err(|e| format!("case {}: {e}", case.id))?;
        let trace = case.run().map_err(|e| format!("case {}: {e}", case.id))?;
        let want_momentum = match &case.expected {
            Some(exp) => exp.momentum.is_some(),
            None => config.cycles_momentum(),
        };
        let mut out = json!({ "id": case.id, "lr": trace.lr });
        if want_momentum {
            let m = trace.momentum.ok_or_else(|| {
                format!("case {}: the optimizer has no momentum to report", case.id)
            })?;
            out["momentum"] = json!(m);
        }
        cases.push(out);
    }
    let text = serde_json::to_string(&json!({ "cases": Value::Array(cases) }))
        .map_err(|e| format!("cannot serialize the results: {e}"))?;
    write_atomic(output, text.as_bytes()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: golden IN.json OUT.json");
        return ExitCode::from(2);
    };
    match run(Path::new(input), Path::new(output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
