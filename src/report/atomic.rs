//! Atomic file output: every file lrfind writes goes through here, so a failed or
//! interrupted run never leaves a half-written file and never clobbers a good one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an output file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames it
/// into place (a rename within one filesystem is atomic on POSIX).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, bytes))
}

/// Like [`write_atomic`], for writers that want a path (plotters' bitmap encoder picks the
/// format from the extension, so the temporary path keeps `path`'s extension).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent_dir(path);
    let suffix = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut builder = tempfile::Builder::new();
    builder.prefix(".lrfind-tmp-").suffix(&suffix);
    // tempfile's default is 0600; a report or plot should get what a plain create gets
    // (0666 less the umask).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir).map_err(err)?;
    write(tmp.path()).map_err(err)?;
    // fsync before the rename so a crash cannot leave an empty file under the final name.
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Checks, before a long run, that `path` can be created: its directory exists and is
/// writable. Nothing is left behind.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(err(std::io::Error::other("is a directory")));
    }
    let dir = parent_dir(path);
    let mut probe = tempfile::Builder::new()
        .prefix(".lrfind-probe-")
        .tempfile_in(dir)
        .map_err(err)?;
    probe.write_all(b"").map_err(err)?;
    Ok(())
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
    fn failed_writer_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plot.png");
        write_atomic(&p, b"good").unwrap();
        let r = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("interrupted"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
}
