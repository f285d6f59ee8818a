//! IDX files (MNIST, Fashion-MNIST), raw or gzip, validated down to the last byte.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{image_samples, ImageShape, Samples};

const IMAGES_MAGIC: u32 = 0x0000_0803; // unsigned bytes, 3 dimensions
const LABELS_MAGIC: u32 = 0x0000_0801; // unsigned bytes, 1 dimension

/// Largest IDX payload lrfind reads (the header is checked against it before inflating):
/// full MNIST training images are 47 MB.
pub const MAX_IDX_BYTES: usize = 1 << 30;

/// Opens `path` as a byte stream, inflated when it starts with the gzip magic (whatever its
/// name). Every member of a multi-member gzip is read, as `gunzip` does.
pub fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    use std::io::BufRead;
    let (file, _) = crate::read::open_regular(path, "a dataset file")?;
    let mut r = std::io::BufReader::new(file);
    let head = r.fill_buf().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(flate2::bufread::MultiGzDecoder::new(r)), true))
    } else {
        Ok((Box::new(r), false))
    }
}

/// Appends up to `limit + 1` bytes of `r` to `out`; `Ok(true)` if there were more than
/// `limit` (the extra byte is left in `out`). The reader is never drained further, so a gzip
/// bomb is not inflated past what was asked for.
fn read_bounded(
    path: &Path,
    r: &mut dyn Read,
    gz: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<bool> {
    // Reserve what the header promises, within reason; a lying header costs no memory.
    out.reserve(limit.min(64 << 20));
    let start = out.len();
    r.take(limit as u64 + 1).read_to_end(out).map_err(|e| {
        if gz {
            Error::data(path, format!("corrupt gzip data: {e}"))
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    Ok(out.len() - start > limit)
}

/// Reads a whole file (inflated if gzip), failing once it passes `limit` bytes.
pub fn read_maybe_gz(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let (mut r, gz) = open_maybe_gz(path)?;
    let mut out = Vec::new();
    if read_bounded(path, &mut r, gz, limit, &mut out)? {
        return Err(Error::data(
            path,
            format!(
                "file is too long: more than {limit} bytes{}",
                if gz { " once inflated" } else { "" }
            ),
        ));
    }
    Ok(out)
}

/// Reads an IDX file: the header first, then exactly the bytes it declares (and one more,
/// to detect trailing data), so memory is bounded by the header's sizes.
fn read_idx_file(path: &Path, images: bool) -> Result<Vec<u8>> {
    let (mut r, gz) = open_maybe_gz(path)?;
    let header = if images { 16 } else { 8 };
    let mut bytes = Vec::with_capacity(header);
    // One byte past the header tells "only a header" from "data follows"; it stays in `bytes`.
    let more = read_bounded(path, &mut r, gz, header, &mut bytes)?;
    if !more {
        return Ok(bytes); // the parser names a truncated or empty file
    }
    let magic = be_u32(&bytes, 0);
    let want = if images {
        if magic != IMAGES_MAGIC {
            return Ok(bytes);
        }
        (be_u32(&bytes, 4) as usize)
            .checked_mul(be_u32(&bytes, 8) as usize)
            .and_then(|x| x.checked_mul(be_u32(&bytes, 12) as usize))
    } else {
        if magic != LABELS_MAGIC {
            return Ok(bytes);
        }
        Some(be_u32(&bytes, 4) as usize)
    };
    let want = match want {
        Some(w) if w <= MAX_IDX_BYTES => w,
        _ => {
            return Err(Error::data(
                path,
                format!(
                    "the header declares more than {} MiB of data (lrfind's limit for an IDX file)",
                    MAX_IDX_BYTES >> 20
                ),
            ))
        }
    };
    // `bytes` already holds the first payload byte.
    if want == 0 || read_bounded(path, &mut r, gz, want - 1, &mut bytes)? {
        return Err(Error::data(
            path,
            format!("more data than the {want} bytes its header declares: file is too long"),
        ));
    }
    Ok(bytes)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX image file: returns (count, height, width, pixels without the header).
pub fn parse_images(path: &Path, mut bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>)> {
    if bytes.len() < 16 {
        return Err(Error::data(
            path,
            format!("truncated IDX header ({} bytes, need 16)", bytes.len()),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != IMAGES_MAGIC {
        return Err(Error::data(
            path,
            format!(
                "not an IDX image file: magic number {magic:#010x}, expected {IMAGES_MAGIC:#010x}"
            ),
        ));
    }
    let (n, h, w) = (
        be_u32(&bytes, 4) as usize,
        be_u32(&bytes, 8) as usize,
        be_u32(&bytes, 12) as usize,
    );
    if h == 0 || w == 0 {
        return Err(Error::data(path, format!("bad image size {h}x{w}")));
    }
    let want = n
        .checked_mul(h)
        .and_then(|x| x.checked_mul(w))
        .ok_or_else(|| Error::data(path, "header dimensions overflow"))?;
    let have = bytes.len() - 16;
    if have != want {
        return Err(Error::data(
            path,
            format!(
                "{} pixel bytes for {n} images of {h}x{w} (expected {want}): file is {}",
                have,
                if have < want { "truncated" } else { "too long" }
            ),
        ));
    }
    bytes.drain(..16); // keep the buffer: no second 47 MB copy
    Ok((n, h, w, bytes))
}

/// Parses an IDX label file with labels in `0..classes`.
pub fn parse_labels(path: &Path, mut bytes: Vec<u8>, classes: usize) -> Result<Vec<u8>> {
    if bytes.len() < 8 {
        return Err(Error::data(
            path,
            format!("truncated IDX header ({} bytes, need 8)", bytes.len()),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != LABELS_MAGIC {
        return Err(Error::data(
            path,
            format!(
                "not an IDX label file: magic number {magic:#010x}, expected {LABELS_MAGIC:#010x}"
            ),
        ));
    }
    let n = be_u32(&bytes, 4) as usize;
    let have = bytes.len() - 8;
    if have != n {
        return Err(Error::data(
            path,
            format!(
                "{have} label bytes for {n} labels: file is {}",
                if have < n { "truncated" } else { "too long" }
            ),
        ));
    }
    bytes.drain(..8);
    if let Some((i, &l)) = bytes
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(Error::data(
            path,
            format!("label {l} at index {i} is out of range 0..{}", classes - 1),
        ));
    }
    Ok(bytes)
}

/// Finds `stem` in `dir` under its usual spellings: `train-images-idx3-ubyte`,
/// `train-images.idx3-ubyte`, each raw or `.gz`.
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::data(
                dir,
                format!("no {stem} or {stem}.gz in this directory (expected the four standard IDX files)"),
            )
        })
}

/// Reads one split (images + labels) from files, checking they agree.
pub fn read_split(images: &Path, labels: &Path, classes: usize) -> Result<(ImageShape, Samples)> {
    let (n, h, w, pixels) = parse_images(images, read_idx_file(images, true)?)?;
    let labels_v = parse_labels(labels, read_idx_file(labels, false)?, classes)?;
    split_from_parts(images, labels, n, h, w, pixels, labels_v)
}

/// Same as [`read_split`] for bytes already in memory (the embedded dataset).
pub fn split_from_bytes(
    name: &str,
    images: &[u8],
    labels: &[u8],
    classes: usize,
) -> Result<(ImageShape, Samples)> {
    let ip = PathBuf::from(format!("{name}/images"));
    let lp = PathBuf::from(format!("{name}/labels"));
    let inflate = |p: &Path, b: &[u8]| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(p, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    };
    let (n, h, w, pixels) = parse_images(&ip, inflate(&ip, images)?)?;
    let labels_v = parse_labels(&lp, inflate(&lp, labels)?, classes)?;
    split_from_parts(&ip, &lp, n, h, w, pixels, labels_v)
}

fn split_from_parts(
    images: &Path,
    labels: &Path,
    n: usize,
    h: usize,
    w: usize,
    pixels: Vec<u8>,
    labels_v: Vec<u8>,
) -> Result<(ImageShape, Samples)> {
    if labels_v.len() != n {
        return Err(Error::data(
            labels,
            format!(
                "{} labels but {} has {n} images",
                labels_v.len(),
                images.display()
            ),
        ));
    }
    if n == 0 {
        return Err(Error::data(images, "contains no images"));
    }
    let shape = ImageShape {
        channels: 1,
        height: h,
        width: w,
    };
    Ok((shape, image_samples(pixels, labels_v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: u32, h: u32, w: u32, extra: isize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, n, h, w] {
            v.extend(x.to_be_bytes());
        }
        let len = (n * h * w) as isize + extra;
        v.extend((0..len).map(|i| i as u8));
        v
    }

    #[test]
    fn parses_a_valid_image_file() {
        let (n, h, w, px) = parse_images(Path::new("x"), images(3, 2, 2, 0)).unwrap();
        assert_eq!((n, h, w, px.len()), (3, 2, 2, 12));
        assert_eq!(px[5], 5);
    }

    #[test]
    fn truncated_and_long_files_are_named() {
        let e = parse_images(Path::new("t.idx"), images(3, 2, 2, -1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.idx: 11 pixel bytes for 3 images of 2x2 (expected 12): file is truncated"
        );
        let e = parse_images(Path::new("t.idx"), images(3, 2, 2, 4)).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let e = parse_images(Path::new("t.idx"), vec![0, 0, 8]).unwrap_err();
        assert!(e.to_string().contains("truncated IDX header"), "{e}");
    }

    #[test]
    fn wrong_magic_is_reported() {
        let mut b = images(1, 1, 1, 0);
        b[3] = 0x01;
        let e = parse_images(Path::new("a"), b).unwrap_err();
        assert!(e.to_string().contains("magic number 0x00000801"), "{e}");
    }

    #[test]
    fn labels_out_of_range_are_reported() {
        let mut b = Vec::new();
        b.extend(LABELS_MAGIC.to_be_bytes());
        b.extend(3u32.to_be_bytes());
        b.extend([1u8, 10, 2]);
        let e = parse_labels(Path::new("l"), b, 10).unwrap_err();
        assert_eq!(e.to_string(), "l: label 10 at index 1 is out of range 0..9");
    }

    #[test]
    fn gzip_is_detected_by_content() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-extension");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&images(2, 1, 1, 0)).unwrap();
        std::fs::write(&p, enc.finish().unwrap()).unwrap();
        assert_eq!(read_maybe_gz(&p, 1000).unwrap(), images(2, 1, 1, 0));
        std::fs::write(&p, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        assert!(read_maybe_gz(&p, 1000)
            .unwrap_err()
            .to_string()
            .contains("corrupt gzip"));
    }

    fn gz(parts: &[&[u8]]) -> Vec<u8> {
        use std::io::Write;
        let mut all = Vec::new();
        for p in parts {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(p).unwrap();
            all.extend(enc.finish().unwrap());
        }
        all
    }

    #[test]
    fn a_multi_member_gzip_is_read_whole() {
        // `cat a.gz b.gz` is a valid gzip file (RFC 1952) and gunzip reads both members.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.gz");
        let whole = images(3, 2, 2, 0);
        std::fs::write(&p, gz(&[&whole[..10], &whole[10..]])).unwrap();
        let (n, _, _, px) = parse_images(&p, read_idx_file(&p, true).unwrap()).unwrap();
        assert_eq!((n, px.len()), (3, 12));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_declared_size() {
        // Header for 2 images of 1x1, then 64 MiB of zeros: reading stops one byte past the
        // declared 2 bytes, without inflating the rest.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bomb.gz");
        let mut body = images(2, 1, 1, 0);
        body.resize(64 << 20, 0);
        std::fs::write(&p, gz(&[&body])).unwrap();
        let e = read_idx_file(&p, true).unwrap_err().to_string();
        assert!(e.contains("too long") && e.contains("2 bytes"), "{e}");
        // A header declaring more than the limit is refused before reading.
        let mut h = Vec::new();
        for x in [IMAGES_MAGIC, 100_000, 1000, 1000] {
            h.extend(x.to_be_bytes());
        }
        h.extend([0u8; 100]);
        std::fs::write(&p, gz(&[&h])).unwrap();
        let e = read_idx_file(&p, true).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
        // Raw (not gzip) files get the same bound, and a short one is truncated.
        let raw = dir.path().join("raw");
        std::fs::write(&raw, images(3, 2, 2, -2)).unwrap();
        let e = parse_images(&raw, read_idx_file(&raw, true).unwrap()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
