//! Shell completion offers the values of value-taking flags (not file names), and the README's
//! install lines work on a fresh home directory.

mod common;

use std::path::Path;
use std::process::Command;

fn bin_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lrfind"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn path_with_bin() -> String {
    format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// What bash's completion function offers after `words` (the last one is being typed).
fn bash_offers(dir: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"source <(lrfind completions bash)
COMP_WORDS=({})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
_lrfind lrfind "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path_with_bin())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn bash_completes_flag_values_not_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A file that completing a name must not offer (only --data takes paths).
    std::fs::write(d.join("table.csv"), "a,b\n1,2\n").unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["lrfind", "--optimizer", ""], &["sgd", "adam", "adamw"]),
        (
            &["lrfind", "--suggest", ""],
            &["fall", "steepest", "minimum", "steep", "valley", "slide"],
        ),
        (&["lrfind", "--mode", ""], &["exp", "linear"]),
        (
            &["lrfind", "--device", ""],
            &["auto", "cpu", "cuda", "metal"],
        ),
        (
            &["lrfind", "--model", ""],
            &["mlp", "linear", "cnn", "lenet"],
        ),
        (
            &["lrfind", "--loss", ""],
            &["cross-entropy", "bce", "mse", "l1", "huber"],
        ),
        (&["lrfind", "--color", ""], &["auto", "always", "never"]),
        (&["lrfind", "train", "--optimizer", "a"], &["adam", "adamw"]),
        (
            &["lrfind", "train", "--schedule-every", ""],
            &["step", "epoch"],
        ),
        (
            &["lrfind", "check", "--suggest", "st"],
            &["steepest", "steep"],
        ),
        (
            &["lrfind", "--data", ""],
            &["digits", "mnist", "fashion-mnist", "cifar10", "table.csv"],
        ),
        (&["lrfind", "--data", "ta"], &["table.csv"]),
        (&["lrfind", "check", "--data", "f"], &["fashion-mnist"]),
    ];
    for (words, want) in cases {
        assert_eq!(bash_offers(d, words), sorted(want), "{words:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_list_the_values() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, zsh, _) = common::run(common::lrfind(tmp.path()).args(["completions", "zsh"]));
    assert_eq!(code, 0);
    for v in [
        ":KIND:(sgd adam adamw)",
        ":RULE:(fall steepest minimum steep valley slide)",
        ":MODE:(exp linear)",
        ":DEV:(auto cpu cuda metal)",
    ] {
        assert!(zsh.contains(v), "zsh lacks {v}");
    }
    let (code, fish, _) = common::run(common::lrfind(tmp.path()).args(["completions", "fish"]));
    assert_eq!(code, 0);
    let line = |flag: &str| {
        fish.lines()
            .find(|l| l.contains(&format!(" -l {flag} ")))
            .unwrap_or_else(|| panic!("no fish line for --{flag}"))
            .to_string()
    };
    assert!(
        line("optimizer").contains("-r -f -a \"sgd"),
        "{}",
        line("optimizer")
    );
    // A dataset name or a file.
    assert!(
        line("data").contains("-r -F -a \"digits"),
        "{}",
        line("data")
    );
}

/// The README's install lines, as a user pastes them, on a home directory with nothing in it.
#[test]
fn the_readme_install_lines_work_on_a_fresh_home() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let section = readme
        .split("### Shell completions and man page")
        .nth(1)
        .expect("README has the section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    // PowerShell's line and `man lrfind` (a pager) are not for sh.
    let lines: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter(|l| !l.contains("Out-String") && l.trim() != "man lrfind")
        .collect();
    assert!(lines.len() >= 8, "{lines:?}");
    let home = tempfile::tempdir().unwrap();
    let script = format!("set -e\n{}\n", lines.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("PATH", path_with_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = home.path();
    for f in [
        ".local/share/bash-completion/completions/lrfind",
        ".zfunc/_lrfind",
        ".config/fish/completions/lrfind.fish",
        ".local/share/man/man1/lrfind.1",
        ".local/share/man/man1/lrfind-check.1",
    ] {
        let len = std::fs::metadata(h.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f}: {len} bytes");
    }
}
