//! Atomic file output: every file lrfind writes goes through here, so a failed or
//! interrupted run never leaves a half-written file and never clobbers a good one.
//!
//! Policy for the path given:
//! - a symlink is written through: its final target is replaced (atomically, in the target's
//!   own directory), the link itself stays;
//! - an existing path that is (or resolves to) anything but a regular file — a device such as
//!   `/dev/null`, a directory, a FIFO, a socket, a terminal, a pipe — is refused: lrfind
//!   replaces files by renaming over them, which must never happen to a device (as root it
//!   would succeed).
//!
//! The bytes go to an unnamed file (Linux `O_TMPFILE`) that only gets a name once complete, a
//! moment before the rename, so a kill leaves nothing behind. Where the filesystem has no
//! `O_TMPFILE` a named `.lrfind-tmp-<pid>-…` file is used instead, and the next lrfind that
//! writes into that directory removes such files whose process is gone.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Prefix of every temporary name lrfind creates.
pub const TMP_PREFIX: &str = ".lrfind-tmp-";

/// Why an output file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    /// The file that was being written.
    pub path: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub source: std::io::Error,
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn not_regular(path: &Path, what: &str) -> WriteError {
    WriteError {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!(
            "exists and is {what}, not a regular file (lrfind only replaces regular files; name a file path)"
        )),
    }
}

fn kind_of(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a FIFO or pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Where writing `path` lands: symlinks followed to their final target, which must be a
/// regular file or not exist yet. Errors name `path` as the user gave it.
pub fn output_target(path: &Path) -> Result<PathBuf, WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    // The kernel's own view first: it also follows "magic" links such as /dev/stdout →
    // /proc/self/fd/1 → pipe:[…], which cannot be resolved by reading the links.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => return std::fs::canonicalize(path).map_err(err),
        Ok(m) => return Err(not_regular(path, kind_of(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    // Does not exist, or is a dangling symlink: write through to where the link points.
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p).map_err(err)?;
                p = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&p).join(link)
                };
            }
            Ok(m) if m.is_file() => return Ok(p),
            Ok(m) => return Err(not_regular(path, kind_of(&m))),
            Err(_) => return Ok(p),
        }
    }
    Err(err(std::io::Error::other(
        "too many levels of symbolic links",
    )))
}

/// A path's identity for "the same file twice" checks: its resolved target with the
/// directory canonicalised (the file itself may not exist yet).
pub fn output_identity(path: &Path) -> PathBuf {
    let target = output_target(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = parent_dir(&target);
    let dir = std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    match target.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Fails when two of the named paths are the same file (a report and a plot both `x.png`):
/// one output would silently replace the other. `paths` pairs a flag with its value.
pub fn check_distinct(paths: &[(&str, &Path)]) -> crate::error::Result<()> {
    let ids: Vec<PathBuf> = paths.iter().map(|(_, p)| output_identity(p)).collect();
    for i in 0..paths.len() {
        for j in i + 1..paths.len() {
            if ids[i] == ids[j] || same_inode(paths[i].1, paths[j].1) {
                return Err(crate::error::Error::SameFile {
                    first: paths[i].0.to_string(),
                    first_path: paths[i].1.to_path_buf(),
                    second: paths[j].0.to_string(),
                    second_path: paths[j].1.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// A fresh temporary name in `dir`: `.lrfind-tmp-<pid>-<n><ext>`. The pid lets a later run
/// tell a dead process's leftovers from a live one's file.
fn temp_name(dir: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TMP_PREFIX}{}-{nanos:08x}{n}{ext}",
        std::process::id()
    ))
}

/// Creates a new file with mode 0666 less the umask (what a plain create gives).
fn create_new(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o666);
    }
    o.open(path)
}

/// An unnamed file in `dir` (Linux `O_TMPFILE`); `None` where the filesystem has none.
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> Option<File> {
    None
}

/// Gives an `O_TMPFILE` file the name `name` (fails if `name` exists).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, name: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let to = CString::new(name.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _name: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// Removes temporary files a killed lrfind left in `dir`: `.lrfind-tmp-<pid>-…` of a process
/// that is gone, and older-style `.lrfind-tmp-…`/`.lrfind-probe-…` names over an hour old.
/// Each directory is swept once per process.
pub fn remove_stale_temps(dir: &Path) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Ok(mut g) = SWEPT.lock() {
        if !g.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let rest = match name
            .strip_prefix(TMP_PREFIX)
            .or_else(|| name.strip_prefix(".lrfind-probe-"))
        {
            Some(r) => r,
            None => continue,
        };
        let stale = match rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        {
            Some(pid) => pid != std::process::id() && !process_alive(pid),
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600),
        };
        if stale && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: complete in a temporary file in the target's
/// directory, synced, then renamed over the target (atomic on POSIX). File mode is 0666
/// less the umask.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let target = output_target(path)?;
    let dir = parent_dir(&target);
    remove_stale_temps(dir);
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = temp_name(dir, &ext);
    let named = match unnamed_file(dir) {
        Some(mut f) => {
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(err)?;
            // Named only now, complete, for the instant before the rename.
            link_unnamed(&f, &tmp).is_ok()
        }
        None => false,
    };
    if !named {
        let written = create_new(&tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Checks, before a long run, that `path` can be written: not a device or directory, its
/// directory exists and is writable. Nothing is left behind; errors name `path`.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let target = output_target(path)?;
    let dir = parent_dir(&target);
    if unnamed_file(dir).is_some() {
        return Ok(());
    }
    let probe = temp_name(dir, "");
    let r = create_new(&probe).map(drop);
    let _ = std::fs::remove_file(&probe);
    r.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plot.png");
        write_atomic(&p, b"good").unwrap();
        // A directory where the file should go: the write fails, nothing else changes.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn result_is_not_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_atomic(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        // Same as a plain create in the same directory under the same umask.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{mode:o} vs {want:o}");
    }

    #[test]
    fn unwritable_directory_is_reported() {
        let e = check_writable(Path::new("/nonexistent-dir/x.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.json"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_and_symlinks_written_through() {
        let e = write_atomic(Path::new("/dev/null"), b"x").unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A dangling link creates its target.
        let dangling = dir.path().join("d.json");
        std::os::unix::fs::symlink("made.json", &dangling).unwrap();
        write_atomic(&dangling, b"m").unwrap();
        assert_eq!(std::fs::read(dir.path().join("made.json")).unwrap(), b"m");
        // A link to a directory is refused.
        let dl = dir.path().join("dirlink");
        std::os::unix::fs::symlink("/tmp", &dl).unwrap();
        assert!(write_atomic(&dl, b"x")
            .unwrap_err()
            .to_string()
            .contains("a directory"));
    }

    #[test]
    fn same_file_twice_is_caught_through_links_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("x.png");
        let b = dir.path().join("sub/../x.png");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = check_distinct(&[("report", &a), ("plot", &b)]).unwrap_err();
        assert!(e.to_string().contains("same file"), "{e}");
        check_distinct(&[("report", &a), ("plot", &dir.path().join("y.png"))]).unwrap();
        #[cfg(unix)]
        {
            let l = dir.path().join("l.png");
            std::os::unix::fs::symlink("x.png", &l).unwrap();
            assert!(check_distinct(&[("report", &a), ("plot", &l)]).is_err());
        }
    }

    #[cfg(unix)]
    #[test]
    fn stale_temps_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304+ is above Linux's pid_max, so no such process exists.
        let dead = dir.path().join(format!("{TMP_PREFIX}4194999-abc.json"));
        let live = dir
            .path()
            .join(format!("{TMP_PREFIX}{}-abc.json", std::process::id()));
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&live, b"x").unwrap();
        write_atomic(&dir.path().join("r.json"), b"{}").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
    }

    #[test]
    fn probe_errors_name_the_users_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-sub/r.json");
        let e = check_writable(&p).unwrap_err().to_string();
        assert!(
            e.contains("missing-sub/r.json") && !e.contains(".lrfind-"),
            "{e}"
        );
    }
}
