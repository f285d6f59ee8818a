//! Error text for the command line: the library names fields (`max_lr = 0: …`), the user
//! typed flags (`--max 0: …`). This is the one place that maps one to the other.

use lrfind::error::{Error, Scope, SettingError};

/// A usage error raised by the command line itself (its message names the flag already).
pub fn invalid(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::msg(msg.into())
}

/// The flag that sets `field` of `scope`.
fn flag(scope: Scope, field: &str) -> String {
    let name = match (scope, field) {
        (Scope::Sweep, "min_lr") => "min",
        (Scope::Sweep, "max_lr") => "max",
        (Scope::Optimizer, "kind") => "optimizer",
        (Scope::Model, "kind") => "model",
        (Scope::Model, "layers") => "model",
        (Scope::Loss, "delta") => "huber-delta",
        (Scope::Data, "source") => "data",
        (Scope::Data, "standardize") => "no-standardize",
        (Scope::Batching, "step_loss") => "val-loss",
        (Scope::Train, "schedule_every") => "schedule-every",
        (Scope::Train, "out_dir") => "out-dir",
        _ => return format!("--{}", field.replace('_', "-")),
    };
    format!("--{name}")
}

/// Field names that other fields' messages mention, with the flag a user knows them by.
const MENTIONED: [(&str, &str); 12] = [
    ("set allow_pinned", "pass --allow-pinned"),
    ("set extend", "use --extend"),
    ("max_lr", "--max"),
    ("min_lr", "--min"),
    ("num_steps", "--num-steps"),
    ("batch_size", "--batch-size"),
    ("max_spread", "--max-spread"),
    ("tolerance", "--tolerance"),
    ("val_split", "--val-split"),
    ("test_split", "--test-split"),
    ("x_key", "--x-key"),
    ("image_size", "--image-size"),
];

/// Settings that data-file messages mention (only these phrases: the rest of such a message
/// quotes the user's file, column names included).
const DATA_MENTIONED: [(&str, &str); 2] = [
    ("or set task to classify", "or pass --task classify"),
    ("; task classify needs", "; --task classify needs"),
];

/// `text` with the fields it mentions named by their flags.
pub fn flags_for_fields(text: &str) -> String {
    let mut out = text.to_string();
    for (field, flag) in MENTIONED {
        out = out.replace(field, flag);
    }
    out
}

fn setting(e: &SettingError) -> String {
    let allowed = flags_for_fields(&e.allowed);
    match (e.scope, e.field) {
        // Switches have no value worth echoing.
        (Scope::Optimizer, "nesterov") => format!("--nesterov: {allowed}"),
        (Scope::Batching, "step_loss") => format!("--val-loss: {allowed}"),
        _ => format!("{} {}: {allowed}", flag(e.scope, e.field), e.value),
    }
}

/// How to get a built-in dataset that was not found: its files and where to put them, or a
/// build that downloads it.
fn get_dataset(dataset: &str) -> String {
    let files = if dataset.contains("cifar") {
        "the CIFAR-10 binary batches (data_batch_1.bin … data_batch_5.bin, test_batch.bin, from cifar-10-binary.tar.gz)"
    } else {
        "its four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"
    };
    let hub = if cfg!(feature = "hub") {
        ""
    } else {
        ", or build lrfind with `--features hub` to download it"
    };
    format!("put {files} in a directory and pass --data-dir DIR (or set LRFIND_DATA=DIR){hub}")
}

/// The one-line message for an error, in the command line's terms.
pub fn describe(e: &anyhow::Error) -> String {
    let text = match e.downcast_ref::<Error>() {
        Some(Error::Setting(s)) => setting(s),
        Some(Error::DataUnavailable { dataset, .. }) => format!("{e}; {}", get_dataset(dataset)),
        Some(Error::Diverged(d)) => format!("{d}; try a lower --lr"),
        Some(Error::Data { .. }) => DATA_MENTIONED
            .iter()
            .fold(e.to_string(), |t, (from, to)| t.replace(from, to)),
        Some(Error::Device { device, reason }) => format!("--device {device}: {reason}"),
        _ => e.to_string(),
    };
    // One line: candle errors may carry a backtrace after the first.
    text.lines().next().unwrap_or("unknown error").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_flags() {
        let e = anyhow::Error::from(Error::setting(
            Scope::Sweep,
            "min_lr",
            1,
            "must be below max_lr (1)",
        ));
        assert_eq!(describe(&e), "--min 1: must be below --max (1)");
        let e = anyhow::Error::from(Error::setting(
            Scope::Batching,
            "batch_size",
            0,
            "must be at least 1",
        ));
        assert_eq!(describe(&e), "--batch-size 0: must be at least 1");
        let e = anyhow::Error::from(Error::setting(
            Scope::Optimizer,
            "kind",
            "rmsprop",
            "unknown optimizer (allowed: sgd, adam, adamw)",
        ));
        assert_eq!(
            describe(&e),
            "--optimizer rmsprop: unknown optimizer (allowed: sgd, adam, adamw)"
        );
    }
}
