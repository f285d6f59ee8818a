//! IDX files (MNIST, Fashion-MNIST), raw or gzip, validated down to the last byte.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{ImageShape, Split};

const IMAGES_MAGIC: u32 = 0x0000_0803; // unsigned bytes, 3 dimensions
const LABELS_MAGIC: u32 = 0x0000_0801; // unsigned bytes, 1 dimension

/// Reads a whole file, inflating it when it starts with the gzip magic (whatever its name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        // IDX files are a few dozen MB at most; reserve a guess to avoid regrowth.
        let mut out = Vec::with_capacity(raw.len() * 5);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
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
pub fn read_split(images: &Path, labels: &Path, classes: usize) -> Result<(ImageShape, Split)> {
    let (n, h, w, pixels) = parse_images(images, read_maybe_gz(images)?)?;
    let labels_v = parse_labels(labels, read_maybe_gz(labels)?, classes)?;
    split_from_parts(images, labels, n, h, w, pixels, labels_v)
}

/// Same as [`read_split`] for bytes already in memory (the embedded dataset).
pub fn split_from_bytes(
    name: &str,
    images: &[u8],
    labels: &[u8],
    classes: usize,
) -> Result<(ImageShape, Split)> {
    let ip = PathBuf::from(format!("{name}/images"));
    let lp = PathBuf::from(format!("{name}/labels"));
    let inflate = |p: &Path, b: &[u8]| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
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
) -> Result<(ImageShape, Split)> {
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
    Ok((
        shape,
        Split {
            images: pixels,
            labels: labels_v,
        },
    ))
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
        assert_eq!(read_maybe_gz(&p).unwrap(), images(2, 1, 1, 0));
        std::fs::write(&p, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        assert!(read_maybe_gz(&p)
            .unwrap_err()
            .to_string()
            .contains("corrupt gzip"));
    }
}
