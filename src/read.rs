//! Reading the files a user names: regular files only, never more than a stated number of
//! bytes, and never an allocation that aborts.
//!
//! Every file lrfind reads (data, model and weight files, reports, baselines, a run
//! directory's files) is opened here. The open itself cannot hang: it is made with
//! `O_NONBLOCK`, so a FIFO with no writer opens at once, and the *opened descriptor* is then
//! checked (`fstat`), not the path, so a link to `/dev/zero` or to a FIFO is caught however it
//! is reached. Anything but a regular file is refused by name; a regular file larger than
//! the cap its use allows is refused with its size and the cap, before anything is read.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest settings file read (a model file, a scheduler file, a report, a baseline, a run's
/// `config.json`/`state.json`/`dataset.json`): 64 MiB, far above any lrfind writes.
pub const MAX_SETTINGS_BYTES: u64 = 64 << 20;

/// Largest weights or checkpoint file read (`--init-from`, `checkpoint.safetensors`):
/// 16 GiB, room for the largest model lrfind builds (4 GiB of weights, gradients and Adam's
/// state) with its optimizer state.
pub const MAX_WEIGHTS_BYTES: u64 = 16 << 30;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is (or leads to) a directory, a device, a FIFO or a socket.
    #[error("{}: {kind}, not a regular file (lrfind reads {what} from regular files only)", path.display())]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// What it is ("a FIFO", "a character device", …).
        kind: &'static str,
        /// What lrfind wanted to read from it.
        what: &'static str,
    },
    /// The file is larger than its use allows.
    #[error("{}: {size} bytes, more than the {limit} bytes lrfind reads from {what}", path.display())]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// Its size (at least; a file still growing is cut off at `limit + 1`).
        size: u64,
        /// The cap.
        limit: u64,
        /// What the file is.
        what: &'static str,
    },
    /// Memory for the contents could not be had.
    #[error("{}: cannot allocate {bytes} bytes to read {what}", path.display())]
    NoMemory {
        /// The path as given.
        path: PathBuf,
        /// The bytes asked for.
        bytes: u64,
        /// What the file is.
        what: &'static str,
    },
    /// The operating system refused (no such file, no permission, an I/O error).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
        move |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a file type is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (following links) for reading, if it is a regular file; returns it with its
/// size. `what` names the file's use in errors ("a CSV file").
pub fn open_regular(path: &Path, what: &'static str) -> Result<(File, u64), ReadError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO without a writer would block a plain open forever.
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(ReadError::io(path))?;
    let meta = file.metadata().map_err(ReadError::io(path))?; // fstat: the file opened
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
            what,
        });
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // Back to blocking reads (no effect on a regular file on Linux; tidy elsewhere).
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fd = file.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok((file, meta.len()))
}

/// Opens `path` like [`open_regular`] and refuses it when larger than `limit` bytes.
pub fn open_capped(path: &Path, what: &'static str, limit: u64) -> Result<(File, u64), ReadError> {
    let (file, len) = open_regular(path, what)?;
    if len > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: len,
            limit,
            what,
        });
    }
    Ok((file, len))
}

/// Reserves `bytes` more in `buf`, or says the memory is not there (never aborts).
pub fn reserve<T>(
    buf: &mut Vec<T>,
    items: usize,
    path: &Path,
    what: &'static str,
) -> Result<(), ReadError> {
    buf.try_reserve_exact(items)
        .map_err(|_| ReadError::NoMemory {
            path: path.to_path_buf(),
            bytes: (items as u64).saturating_mul(std::mem::size_of::<T>() as u64),
            what,
        })
}

/// The whole of the regular file `path`, refused when larger than `limit` bytes (checked
/// before reading, and again while reading for a file that grows).
pub fn read_capped(path: &Path, what: &'static str, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_capped(path, what, limit)?;
    let mut out = Vec::new();
    reserve(
        &mut out,
        usize::try_from(len).unwrap_or(usize::MAX),
        path,
        what,
    )?;
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(ReadError::io(path))?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: out.len() as u64,
            limit,
            what,
        });
    }
    Ok(out)
}

/// The regular file `path` as UTF-8 text, at most `limit` bytes.
pub fn read_text_capped(path: &Path, what: &'static str, limit: u64) -> Result<String, ReadError> {
    let bytes = read_capped(path, what, limit)?;
    String::from_utf8(bytes).map_err(|_| ReadError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })
}

/// A settings file (JSON) as text: a regular file of at most [`MAX_SETTINGS_BYTES`].
pub fn read_settings(path: &Path, what: &'static str) -> Result<String, ReadError> {
    read_text_capped(path, what, MAX_SETTINGS_BYTES)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let e = read_settings(Path::new("/dev/zero"), "a model file").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: a character device, not a regular file (lrfind reads a model file from regular files only)"
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_settings(&link, "x"),
            Err(ReadError::NotRegular { .. })
        ));
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.path().join("f.csv");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo, "a CSV file").unwrap_err().to_string();
        assert!(e.contains("a FIFO (named pipe), not a regular file"), "{e}");
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(&fifo, &via).unwrap();
        assert!(matches!(
            open_regular(&via, "x"),
            Err(ReadError::NotRegular { .. })
        ));
        let e = open_regular(dir.path(), "x").unwrap_err().to_string();
        assert!(e.contains("a directory, not a regular file"), "{e}");
    }

    #[test]
    fn a_file_over_its_cap_is_refused_with_size_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; 101]).unwrap();
        let e = read_text_capped(&p, "a report", 100)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: 101 bytes, more than the 100 bytes lrfind reads from a report",
                p.display()
            )
        );
        assert_eq!(read_text_capped(&p, "a report", 101).unwrap().len(), 101);
    }
}
