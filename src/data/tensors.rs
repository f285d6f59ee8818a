//! Arrays from files: a `.npy` pair, a `.npz` or a `.safetensors` file holding inputs `x` and
//! targets `y`, and optionally a test split `x_test`/`y_test`.
//!
//! Conventions (`x_key`/`y_key` rename `x`/`y`; the test arrays follow as `{x_key}_test` and
//! `{y_key}_test`, both or neither):
//! - **`.npy` pair**: `path` is the inputs file, whatever its name (`x_key` is not used), and the
//!   targets are `{y_key}.npy` beside it. A test split is `{stem}_test.npy` with
//!   `{y_key}_test.npy` beside them (`x.npy`, `y.npy`, `x_test.npy`, `y_test.npy`).
//! - **`.npz`** (`np.savez` or `np.savez_compressed`) and **`.safetensors`**: arrays by key.
//! - **Inputs**: `uint8` stays bytes ([`Inputs::Pixels`], ÷255 when a batch is drawn); any other
//!   number type (bool, integers, float16, bfloat16, float32, float64) becomes float32
//!   [`Inputs::Values`]. A sample is `x`'s shape after the first axis, except that `(n, H, W)`
//!   is read as single-channel images `(n, 1, H, W)`. Images are channel-first, as in PyTorch;
//!   a channel-last `(n, H, W, C)` array (C of 1, 3 or 4) is refused with the transpose to use.
//! - **Targets**: integers `(n,)` or `(n, 1)` are class labels. The classes are the sorted
//!   distinct values of `y` and `y_test` together, named by value: MNIST's `0…9` are classes
//!   `"0"`…`"9"` at indices 0…9, and 1-based labels `1…10` are classes `"1"`…`"10"` at
//!   indices 0…9. Floats `(n,)` or `(n, k)` are regression targets, named `y` (one column) or
//!   `y[0]`…`y[k-1]`. [`TaskKind`] overrides the number type: `Classify` takes whole-valued
//!   floats as labels, `Regress` takes integers as values.
//!
//! Files are parsed here rather than by candle's readers, which size their buffers from the
//! header (a hostile or truncated header could allocate without bound or panic) and cannot
//! tell bool from uint8: every length is checked against the bytes actually present before
//! anything is allocated from it.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::samples::{Inputs, Loaded, Samples, Targets, Task};

pub use super::config::TaskKind;

/// Loads inputs and targets (and a test split, if the file has one) from a `.npy` pair, a
/// `.npz` or a `.safetensors` file, chosen by `path`'s extension. See the module docs for the
/// keys, number types and shapes read.
pub fn load_tensors(
    path: &Path,
    x_key: &str,
    y_key: &str,
    task: Option<TaskKind>,
) -> Result<Loaded> {
    if path.is_dir() || !path.exists() {
        return Err(Error::data(
            path,
            if path.exists() {
                "not a file (tensors come in a .npy, .npz or .safetensors file)"
            } else {
                "no such file"
            },
        ));
    }
    // A device or FIFO is named as such (its name may have lost the extension on the way).
    crate::read::open_regular(path, "a tensor file")?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let bytes; // a .safetensors file's arrays borrow from it
    let st;
    let pieces = match ext.as_deref() {
        Some("npy") => npy_pair(path, y_key)?,
        Some("npz") => {
            let mut npz = Npz::open(path)?;
            let keys = npz.keys.clone();
            pick(path, &keys, |k| npz.get(k), x_key, y_key)?
        }
        Some("safetensors") => {
            bytes = crate::read::read_capped(path, "a .safetensors file", MAX_SAFETENSORS_BYTES)?;
            st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| Error::data(path, format!("not a readable .safetensors file: {e}")))?;
            let mut keys: Vec<String> = st.names().into_iter().map(String::from).collect();
            keys.sort();
            pick(
                path,
                &keys,
                |k| safetensors_array(path, &st, k),
                x_key,
                y_key,
            )?
        }
        _ => {
            return Err(Error::data(
                path,
                "unknown extension: tensors are read from .npy, .npz or .safetensors files",
            ))
        }
    };
    build(pieces, y_key, task, origin(path))
}

/// The absolute path reports record (they are read from other directories).
pub(crate) fn origin(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Number types lrfind reads from arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    Bf16,
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        use Dtype::*;
        match self {
            Bool | U8 | I8 => 1,
            U16 | I16 | F16 | Bf16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
        }
    }

    /// numpy's name, as users know it.
    fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "bool",
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            U32 => "uint32",
            I32 => "int32",
            U64 => "uint64",
            I64 => "int64",
            F16 => "float16",
            Bf16 => "bfloat16",
            F32 => "float32",
            F64 => "float64",
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64)
    }
}

/// One array as read from a file: its raw bytes, still in the file's byte order.
struct Array<'a> {
    /// The file errors name (the `.npz`/`.safetensors` container, or the `.npy` file).
    file: PathBuf,
    /// Its key (a `.npy` file's stem).
    key: String,
    shape: Vec<usize>,
    dtype: Dtype,
    big_endian: bool,
    data: Cow<'a, [u8]>,
}

/// Decodes `$a`'s elements to `$t` (f32 or f64), whatever their stored type and byte order.
macro_rules! decode {
    ($a:expr, $t:ty) => {{
        let a = $a;
        let be = a.big_endian;
        macro_rules! each {
            ($s:ty, $n:expr, $f:expr) => {
                a.data
                    .chunks_exact($n)
                    .map(|c| {
                        let mut b = [0u8; $n];
                        b.copy_from_slice(c);
                        let v = if be {
                            <$s>::from_be_bytes(b)
                        } else {
                            <$s>::from_le_bytes(b)
                        };
                        $f(v)
                    })
                    .collect::<Vec<$t>>()
            };
        }
        match a.dtype {
            Dtype::Bool => a.data.iter().map(|&b| u8::from(b != 0) as $t).collect(),
            Dtype::U8 => a.data.iter().map(|&b| b as $t).collect(),
            Dtype::I8 => a.data.iter().map(|&b| b as i8 as $t).collect(),
            Dtype::U16 => each!(u16, 2, |v| v as $t),
            Dtype::I16 => each!(i16, 2, |v| v as $t),
            Dtype::U32 => each!(u32, 4, |v| v as $t),
            Dtype::I32 => each!(i32, 4, |v| v as $t),
            Dtype::U64 => each!(u64, 8, |v| v as $t),
            Dtype::I64 => each!(i64, 8, |v| v as $t),
            Dtype::F16 => each!(u16, 2, |v| half::f16::from_bits(v).to_f64() as $t),
            Dtype::Bf16 => each!(u16, 2, |v| half::bf16::from_bits(v).to_f64() as $t),
            Dtype::F32 => each!(f32, 4, |v| v as $t),
            Dtype::F64 => each!(f64, 8, |v| v as $t),
        }
    }};
}

impl Array<'_> {
    /// A data error naming the file and the key: `data.npz: 'y' …`.
    fn fail(&self, what: impl fmt::Display) -> Error {
        Error::data(&self.file, format!("'{}' {what}", self.key))
    }

    fn shape_text(&self) -> String {
        tuple(&self.shape)
    }

    fn samples(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    fn to_f32(&self) -> Vec<f32> {
        decode!(self, f32)
    }

    fn to_f64(&self) -> Vec<f64> {
        decode!(self, f64)
    }

    /// The values as float32, refusing NaN and infinities (sample `i / per_sample`).
    fn finite_f32(&self) -> Result<Vec<f32>> {
        let v = self.to_f32();
        let per = self.shape.iter().skip(1).product::<usize>().max(1);
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            let as32 = if self.dtype == Dtype::F64 {
                " (as float32)"
            } else {
                ""
            };
            return Err(self.fail(format!("holds {}{as32} in sample {}", v[i], i / per)));
        }
        Ok(v)
    }
}

/// A shape as numpy prints it: `(100,)`, `(100, 28, 28)`.
fn tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Maps an I/O error to [`Error::Io`] naming `path`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Most bytes one array may hold (a `.npy` file, or an `.npz` member inflated): 2 GiB.
pub const MAX_ARRAY_BYTES: u64 = 2 << 30;

/// Most bytes of a `.safetensors` data file (inputs and targets, train and test): 4 GiB.
pub const MAX_SAFETENSORS_BYTES: u64 = 4 << 30;

/// Most bytes of a `.npy` header (numpy writes a few hundred).
const MAX_NPY_HEADER: usize = 1 << 20;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Where a `.npy` image's data starts and what it holds, from its header (`bytes` holds at
/// least the header; the data need not be there yet).
struct NpyLayout {
    start: usize,
    shape: Vec<usize>,
    dtype: Dtype,
    big_endian: bool,
    /// Data bytes the header declares.
    want: usize,
}

/// Bytes of the fixed part of a `.npy` header: magic, version and header length.
const NPY_PREFIX: usize = 12;

/// The header length field of a `.npy` prefix: (where the header starts, its length).
fn npy_header_len(fail: &dyn Fn(String) -> Error, bytes: &[u8]) -> Result<(usize, usize)> {
    if bytes.len() < 10 || !bytes.starts_with(NPY_MAGIC) {
        return Err(fail(if bytes.starts_with(NPY_MAGIC) || bytes.is_empty() {
            "has a truncated .npy header".into()
        } else {
            "is not a .npy array (no \\x93NUMPY magic at its start)".into()
        }));
    }
    // Version 1.0 stores the header length in 2 bytes, 2.0 and 3.0 in 4.
    let (len_at, len_bytes) = match bytes[6] {
        1 => (8, 2),
        2 | 3 => (8, 4),
        v => {
            return Err(fail(format!(
                "is .npy version {v}.{}, which lrfind does not read (1.0 to 3.0)",
                bytes[7]
            )))
        }
    };
    let header_len = bytes
        .get(len_at..len_at + len_bytes)
        .map(|b| {
            b.iter()
                .rev()
                .fold(0usize, |acc, &x| (acc << 8) | x as usize)
        })
        .ok_or_else(|| fail("has a truncated .npy header".into()))?;
    if header_len > MAX_NPY_HEADER {
        return Err(fail(format!(
            "has a .npy header of {header_len} bytes, more than the {MAX_NPY_HEADER} lrfind reads"
        )));
    }
    Ok((len_at + len_bytes, header_len))
}

fn npy_layout(fail: &dyn Fn(String) -> Error, bytes: &[u8]) -> Result<NpyLayout> {
    let (at, header_len) = npy_header_len(fail, bytes)?;
    let start = at + header_len;
    let header = bytes
        .get(at..start)
        .ok_or_else(|| fail("has a truncated .npy header".into()))?;
    let header = String::from_utf8_lossy(header);
    let (descr, fortran, shape) = parse_npy_header(&header)
        .map_err(|why| fail(format!("has an unreadable .npy header ({why})")))?;
    if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(fail(
            "is stored in Fortran (column-major) order: save np.ascontiguousarray of it".into(),
        ));
    }
    let (dtype, big_endian) = npy_dtype(descr).map_err(|kind| {
        fail(format!(
            "has dtype '{descr}' ({kind}), which lrfind does not read: give integers, floats or bool"
        ))
    })?;
    let want = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            fail(format!(
                "declares shape {}, too large to hold",
                tuple(&shape)
            ))
        })?;
    if want as u64 > MAX_ARRAY_BYTES {
        return Err(fail(format!(
            "declares {} {} ({want} bytes), more than the {MAX_ARRAY_BYTES} bytes lrfind reads from one array",
            tuple(&shape),
            dtype.name()
        )));
    }
    Ok(NpyLayout {
        start,
        shape,
        dtype,
        big_endian,
        want,
    })
}

/// Parses a whole `.npy` image (header and data) named `key` inside `file`.
fn parse_npy(file: &Path, key: &str, mut bytes: Vec<u8>) -> Result<Array<'static>> {
    let fail = |what: String| Error::data(file, format!("'{key}' {what}"));
    let NpyLayout {
        start,
        shape,
        dtype,
        big_endian,
        want,
    } = npy_layout(&fail, &bytes)?;
    let have = bytes.len() - start;
    if have != want {
        return Err(fail(format!(
            "holds {have} data bytes but its header declares {} {} ({want} bytes): the file is {}",
            tuple(&shape),
            dtype.name(),
            if have < want { "truncated" } else { "too long" }
        )));
    }
    bytes.drain(..start); // keep the buffer: no second copy of the data
    Ok(Array {
        file: file.to_path_buf(),
        key: key.to_string(),
        shape,
        dtype,
        big_endian,
        data: Cow::Owned(bytes),
    })
}

/// Parses the Python dict literal numpy writes:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 28, 28), }`.
fn parse_npy_header(h: &str) -> std::result::Result<(&str, bool, Vec<usize>), String> {
    let body = h
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("not a Python dict")?;
    let value = |key: &str| -> std::result::Result<&str, String> {
        let pat = format!("'{key}':");
        let at = body.find(&pat).ok_or_else(|| format!("no '{key}'"))?;
        Ok(body[at + pat.len()..].trim_start())
    };
    let descr = value("descr")?;
    let descr = match descr.strip_prefix('\'') {
        Some(rest) => &rest[..rest.find('\'').ok_or("unterminated 'descr'")?],
        None if descr.starts_with('[') => return Err("a structured dtype (record array)".into()),
        None => return Err("'descr' is not a string".into()),
    };
    let fortran = value("fortran_order")?;
    let fortran = if fortran.starts_with("True") {
        true
    } else if fortran.starts_with("False") {
        false
    } else {
        return Err("'fortran_order' is neither True nor False".into());
    };
    let shape = value("shape")?
        .strip_prefix('(')
        .and_then(|s| s.find(')').map(|end| &s[..end]))
        .ok_or("'shape' is not a tuple")?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| format!("'shape' holds '{d}'"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((descr, fortran, shape))
}

/// A numpy type string (`<f4`, `|u1`, `>i8`) as a dtype and whether it is big-endian; for an
/// unsupported one, what it holds.
fn npy_dtype(descr: &str) -> std::result::Result<(Dtype, bool), &'static str> {
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let dtype = match code {
        "b1" | "?" => Dtype::Bool,
        "u1" | "B" => Dtype::U8,
        "i1" | "b" => Dtype::I8,
        "u2" | "H" => Dtype::U16,
        "i2" | "h" => Dtype::I16,
        "u4" | "I" => Dtype::U32,
        "i4" | "i" => Dtype::I32,
        "u8" | "Q" => Dtype::U64,
        "i8" | "q" => Dtype::I64,
        "f2" | "e" => Dtype::F16,
        "f4" | "f" => Dtype::F32,
        "f8" | "d" => Dtype::F64,
        _ => {
            return Err(match code.chars().next() {
                Some('U') => "unicode strings",
                Some('S' | 'a') => "byte strings",
                Some('O') => "Python objects",
                Some('c') => "complex numbers",
                Some('M' | 'm') => "dates or times",
                Some('V') => "raw bytes",
                Some('f') => "floats of a size lrfind does not read",
                _ => "an unknown type",
            })
        }
    };
    let big = match order {
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        _ => false,
    };
    Ok((dtype, big && dtype.size() > 1))
}

/// The arrays a file provides.
struct Pieces<'a> {
    x: Array<'a>,
    y: Array<'a>,
    test: Option<(Array<'a>, Array<'a>)>,
}

/// `path` (the inputs) and `{y_key}.npy` beside it, with `{stem}_test.npy`/`{y_key}_test.npy`.
fn npy_pair(path: &Path, y_key: &str) -> Result<Pieces<'static>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem == y_key {
        return Err(Error::data(
            path,
            format!("is the targets file (y_key = {y_key}): give the inputs file, with {y_key}.npy beside it"),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let y_path = dir.join(format!("{y_key}.npy"));
    if !y_path.is_file() {
        return Err(Error::data(
            path,
            format!("no {y_key}.npy beside it: a .npy pair is the inputs file and the targets file named after y_key ({y_key}.npy)"),
        ));
    }
    let read = |p: &Path, key: &str| {
        let cap = MAX_ARRAY_BYTES + (NPY_PREFIX + MAX_NPY_HEADER) as u64;
        parse_npy(p, key, crate::read::read_capped(p, "a .npy file", cap)?)
    };
    let x = read(path, &stem)?;
    let y = read(&y_path, y_key)?;
    let xt = dir.join(format!("{stem}_test.npy"));
    let yt = dir.join(format!("{y_key}_test.npy"));
    let test = match (xt.is_file(), yt.is_file()) {
        (true, true) => Some((
            read(&xt, &format!("{stem}_test"))?,
            read(&yt, &format!("{y_key}_test"))?,
        )),
        (false, false) => None,
        (has_x, _) => {
            let (there, missing) = if has_x { (&xt, &yt) } else { (&yt, &xt) };
            return Err(Error::data(
                there,
                format!(
                    "has no {} beside it: give both test files or neither",
                    missing.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
    };
    Ok(Pieces { x, y, test })
}

/// A `.npz` file: a zip archive of `.npy` members named `{key}.npy`.
struct Npz {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    /// Member names without `.npy`, sorted.
    keys: Vec<String>,
}

impl Npz {
    fn open(path: &Path) -> Result<Self> {
        let (file, _) = crate::read::open_regular(path, "a .npz file")?;
        let zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::data(path, format!("not a readable .npz (zip) file: {e}")))?;
        let mut keys = zip
            .file_names_raw()
            .map(|n| {
                let n = String::from_utf8_lossy(n);
                n.strip_suffix(".npy").unwrap_or(&n).to_string()
            })
            .collect::<Vec<_>>();
        keys.sort();
        Ok(Npz {
            path: path.to_path_buf(),
            zip,
            keys,
        })
    }

    fn get(&mut self, key: &str) -> Result<Option<Array<'static>>> {
        if !self.keys.iter().any(|k| k == key) {
            return Ok(None);
        }
        let path = &self.path;
        let corrupt = |e: &dyn fmt::Display| {
            Error::data(
                path,
                format!("'{key}' cannot be read from the archive: {e}"),
            )
        };
        let mut member = self
            .zip
            .by_name(&format!("{key}.npy"))
            .map_err(|e| corrupt(&e))?;
        let size = member.size();
        let cap = MAX_ARRAY_BYTES + (NPY_PREFIX + MAX_NPY_HEADER) as u64;
        if size > cap {
            return Err(Error::data(
                path,
                format!("'{key}' inflates to {size} bytes (as the archive declares), more than the {MAX_ARRAY_BYTES} bytes lrfind reads from one array"),
            ));
        }
        // The .npy header first: the data it declares bounds what is inflated, whatever the
        // archive says, so a member that inflates past it is never held.
        let fail = |what: String| Error::data(path, format!("'{key}' {what}"));
        let mut buf = Vec::new();
        let mut more = |buf: &mut Vec<u8>, n: usize| -> Result<()> {
            crate::read::reserve(buf, n, path, "a .npz member")?;
            Read::by_ref(&mut member)
                .take(n as u64)
                .read_to_end(buf)
                .map_err(|e| corrupt(&e))?;
            Ok(())
        };
        more(&mut buf, NPY_PREFIX)?;
        let (at, header_len) = npy_header_len(&fail, &buf)?;
        let have = buf.len();
        more(&mut buf, (at + header_len).saturating_sub(have))?;
        let layout = npy_layout(&fail, &buf)?;
        let total = layout.start + layout.want;
        if total as u64 != size {
            return Err(corrupt(&format!(
                "its .npy header declares {total} bytes where the archive declares {size}"
            )));
        }
        // One byte past the end tells a member that inflates further than it says.
        let have = buf.len();
        more(&mut buf, total + 1 - have)?;
        if buf.len() != total {
            return Err(corrupt(&format!(
                "{} bytes where the archive declares {size}",
                if buf.len() > total {
                    format!("more than {total}")
                } else {
                    buf.len().to_string()
                }
            )));
        }
        drop(member);
        parse_npy(path, key, buf).map(Some)
    }
}

/// The array `key` of a `.safetensors` file, borrowing its bytes.
fn safetensors_array<'a>(
    path: &Path,
    st: &safetensors::SafeTensors<'a>,
    key: &str,
) -> Result<Option<Array<'a>>> {
    use safetensors::Dtype as S;
    let Ok(view) = st.tensor(key) else {
        return Ok(None);
    };
    let dtype = match view.dtype() {
        S::BOOL => Dtype::Bool,
        S::U8 => Dtype::U8,
        S::I8 => Dtype::I8,
        S::U16 => Dtype::U16,
        S::I16 => Dtype::I16,
        S::U32 => Dtype::U32,
        S::I32 => Dtype::I32,
        S::U64 => Dtype::U64,
        S::I64 => Dtype::I64,
        S::F16 => Dtype::F16,
        S::BF16 => Dtype::Bf16,
        S::F32 => Dtype::F32,
        S::F64 => Dtype::F64,
        other => {
            return Err(Error::data(
                path,
                format!("'{key}' has dtype {other:?}, which lrfind does not read: give integers, floats or bool"),
            ))
        }
    };
    let shape = view.shape().to_vec();
    // safetensors checks this too; a mismatch here would decode garbage, so check again.
    let want = shape
        .iter()
        .try_fold(dtype.size(), |a, &d| a.checked_mul(d));
    if want != Some(view.data().len()) {
        return Err(Error::data(
            path,
            format!(
                "'{key}' holds {} bytes, not what shape {} of {} needs",
                view.data().len(),
                tuple(&shape),
                dtype.name()
            ),
        ));
    }
    Ok(Some(Array {
        file: path.to_path_buf(),
        key: key.to_string(),
        shape,
        dtype,
        big_endian: false, // safetensors is little-endian by definition
        data: Cow::Borrowed(view.data()),
    }))
}

/// Looks up `x_key`, `y_key` and their `_test` pair in a keyed file.
fn pick<'a>(
    path: &Path,
    keys: &[String],
    mut get: impl FnMut(&str) -> Result<Option<Array<'a>>>,
    x_key: &str,
    y_key: &str,
) -> Result<Pieces<'a>> {
    let mut need = |key: &str, field: &str| -> Result<Array<'a>> {
        get(key)?.ok_or_else(|| {
            Error::data(
                path,
                format!(
                    "no array '{key}' ({field}; arrays present: {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
            )
        })
    };
    let x = need(x_key, "x_key")?;
    let y = need(y_key, "y_key")?;
    let (xt, yt) = (format!("{x_key}_test"), format!("{y_key}_test"));
    let test = match (get(&xt)?, get(&yt)?) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        (a, _) => {
            let (there, missing) = if a.is_some() { (&xt, &yt) } else { (&yt, &xt) };
            return Err(Error::data(
                path,
                format!(
                    "'{there}' is present but '{missing}' is not: give both test arrays or neither"
                ),
            ));
        }
    };
    Ok(Pieces { x, y, test })
}

/// How targets are read, decided by the training targets (and [`TaskKind`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Classes,
    Values { columns: usize },
}

fn build(p: Pieces, y_key: &str, task: Option<TaskKind>, origin: String) -> Result<Loaded> {
    let Pieces { mut x, y, test } = p;
    same_length(&x, &y)?;
    let input = input_shape(&x)?;
    let kind = target_kind(&y, task)?;
    if let Some((xt, yt)) = &test {
        check_test(&x, &y, &input, kind, xt, yt)?;
    }
    let train_x = inputs(&mut x)?;
    let (test_x, yt) = match test {
        Some((mut xt, yt)) => (Some(inputs(&mut xt)?), Some(yt)),
        None => (None, None),
    };
    let (task, train_y, test_y) = match kind {
        Kind::Classes => classes(&y, yt.as_ref())?,
        Kind::Values { columns } => {
            let names = if columns == 1 {
                vec![y_key.to_string()]
            } else {
                (0..columns).map(|c| format!("{y_key}[{c}]")).collect()
            };
            let train_y = values(&y, columns, true)?;
            let test_y = yt.as_ref().map(|t| values(t, columns, false)).transpose()?;
            (Task::Regress { targets: names }, train_y, test_y)
        }
    };
    Ok(Loaded {
        input,
        task,
        train: Samples {
            x: train_x,
            y: train_y,
        },
        test: test_x.zip(test_y).map(|(x, y)| Samples { x, y }),
        origin,
    })
}

/// The test arrays must fit what the training arrays decided: sample shape, bytes or
/// numbers, and the kind of targets.
fn check_test(
    x: &Array,
    y: &Array,
    input: &[usize],
    kind: Kind,
    xt: &Array,
    yt: &Array,
) -> Result<()> {
    same_length(xt, yt)?;
    let ti = input_shape(xt)?;
    if ti != input {
        return Err(xt.fail(format!(
            "samples are {} but '{}' samples are {}",
            tuple(&ti),
            x.key,
            tuple(input)
        )));
    }
    if (xt.dtype == Dtype::U8) != (x.dtype == Dtype::U8) {
        return Err(xt.fail(format!(
            "is {} but '{}' is {}: give both as uint8 (pixels) or both as numbers",
            xt.dtype.name(),
            x.key,
            x.dtype.name()
        )));
    }
    let forced = match kind {
        Kind::Classes => TaskKind::Classify,
        Kind::Values { .. } => TaskKind::Regress,
    };
    if target_kind(yt, Some(forced))? != kind {
        return Err(yt.fail(format!(
            "has shape {} but '{}' has shape {}: give both the same number of target columns",
            yt.shape_text(),
            y.key,
            y.shape_text()
        )));
    }
    Ok(())
}

fn same_length(x: &Array, y: &Array) -> Result<()> {
    if x.shape.is_empty() || y.shape.is_empty() {
        let a = if x.shape.is_empty() { x } else { y };
        return Err(a.fail("is a single number (shape ()): give one row per sample"));
    }
    if x.samples() != y.samples() {
        return Err(y.fail(format!(
            "has {} samples but '{}' has {}: inputs and targets need one row each per sample",
            y.samples(),
            x.key,
            x.samples()
        )));
    }
    Ok(())
}

/// The shape of one sample, checked: at least one value, channel-first images.
fn input_shape(x: &Array) -> Result<Vec<usize>> {
    if x.shape.len() < 2 {
        return Err(x.fail(format!(
            "has shape {}: inputs are (n, features) or (n, C, H, W), one row per sample",
            x.shape_text()
        )));
    }
    if x.shape.contains(&0) {
        return Err(x.fail(format!("is empty: shape {}", x.shape_text())));
    }
    let mut input = x.shape[1..].to_vec();
    if input.len() == 2 {
        input.insert(0, 1); // (n, H, W): one channel
    }
    if input.len() == 3 && input[0] > 4 && matches!(input[2], 1 | 3 | 4) {
        return Err(x.fail(format!(
            "has shape {}, channel-last images (n, H, W, C) by the look of it; lrfind reads PyTorch's (n, C, H, W): save x.transpose(0, 3, 1, 2)",
            x.shape_text()
        )));
    }
    Ok(input)
}

/// The inputs as samples: bytes stay bytes, anything else becomes finite float32.
fn inputs(x: &mut Array) -> Result<Inputs> {
    if x.dtype == Dtype::U8 {
        return Ok(Inputs::Pixels(std::mem::take(&mut x.data).into_owned()));
    }
    Ok(Inputs::Values(x.finite_f32()?))
}

fn target_kind(y: &Array, task: Option<TaskKind>) -> Result<Kind> {
    if y.dtype == Dtype::Bool {
        return Err(y.fail(
            "holds bool: class labels must be integers (y.astype(int)) and regression targets floats",
        ));
    }
    let columns = match y.shape.as_slice() {
        [_] => 1,
        [_, k] => *k,
        _ => {
            return Err(y.fail(format!(
                "has shape {}: targets are (n,) or (n, k)",
                y.shape_text()
            )))
        }
    };
    if y.shape.contains(&0) {
        return Err(y.fail(format!("is empty: shape {}", y.shape_text())));
    }
    let classify = match task {
        Some(TaskKind::Classify) => true,
        Some(TaskKind::Regress) => false,
        None => !y.dtype.is_float(),
    };
    if classify && columns != 1 {
        return Err(y.fail(format!(
            "has shape {}: class labels are one per sample, (n,) or (n, 1); for {columns} regression targets give floats or task = regress",
            y.shape_text()
        )));
    }
    Ok(if classify {
        Kind::Classes
    } else {
        Kind::Values { columns }
    })
}

/// Whole numbers of `y` as labels.
fn labels(y: &Array) -> Result<Vec<i64>> {
    const EXACT: f64 = (1u64 << 53) as f64; // beyond this, f64 (and float targets) are not exact
    let v = y.to_f64();
    if let Some(i) = v
        .iter()
        .position(|l| !l.is_finite() || l.fract() != 0.0 || l.abs() > EXACT)
    {
        return Err(y.fail(format!(
            "holds {} in sample {i}, which is not a class label (a whole number up to 2^53 in size)",
            v[i]
        )));
    }
    Ok(v.iter().map(|&l| l as i64).collect())
}

/// Classes from the labels of `y` and `y_test` together: sorted distinct values.
fn classes(y: &Array, test: Option<&Array>) -> Result<(Task, Targets, Option<Targets>)> {
    let train = labels(y)?;
    let test = test.map(labels).transpose()?;
    let in_train: BTreeSet<i64> = train.iter().copied().collect();
    if in_train.len() < 2 {
        return Err(y.fail(format!(
            "has one class only ({}): classification needs at least two",
            train[0]
        )));
    }
    let mut all = in_train;
    all.extend(test.iter().flatten().copied());
    let all: Vec<i64> = all.into_iter().collect();
    let index = |ls: Vec<i64>| -> Targets {
        // Every label is in `all` by construction.
        Targets::Classes(
            ls.iter()
                .map(|l| all.binary_search(l).unwrap_or(0) as u32)
                .collect(),
        )
    };
    let task = Task::Classify {
        classes: all.iter().map(|c| c.to_string()).collect(),
    };
    let train = index(train);
    let test = test.map(index);
    Ok((task, train, test))
}

/// Regression targets, finite; for the training split every column must vary.
fn values(y: &Array, columns: usize, train: bool) -> Result<Targets> {
    let v = y.finite_f32()?;
    if train {
        for c in 0..columns {
            let first = v[c];
            if v.iter().skip(c).step_by(columns).all(|&t| t == first) {
                let which = if columns == 1 {
                    String::new()
                } else {
                    format!("column {c} ")
                };
                return Err(y.fail(format!(
                    "{which}is constant ({first}): a regression target must vary"
                )));
            }
        }
    }
    Ok(Targets::Values { values: v, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    /// The first `n` training and test images and labels of the real MNIST fixture.
    fn mnist(n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let (tri, trl, tei, tel) = crate::testutil::mnist_fixture();
        (
            tri[..n * 784].to_vec(),
            trl[..n].to_vec(),
            tei[..n * 784].to_vec(),
            tel[..n].to_vec(),
        )
    }

    fn t_u8(v: &[u8], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn t_i64(v: &[u8]) -> Tensor {
        let v: Vec<i64> = v.iter().map(|&l| l as i64).collect();
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu).unwrap()
    }

    fn t_f32(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn classes_of(l: &Loaded) -> &[u32] {
        match &l.train.y {
            Targets::Classes(c) => c,
            other => panic!("not classes: {other:?}"),
        }
    }

    fn digit_names() -> Vec<String> {
        (0..10).map(|d| d.to_string()).collect()
    }

    fn load(p: &Path) -> Result<Loaded> {
        load_tensors(p, "x", "y", None)
    }

    fn err(p: &Path) -> String {
        load(p).unwrap_err().to_string()
    }

    /// A `.npy` image written by hand, for types candle cannot write.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = NPY_MAGIC.to_vec();
        b.extend([1, 0]);
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    /// A `.npz` of raw `.npy` members, stored or deflated.
    fn npz(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts: zip::write::SimpleFileOptions =
            zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in members {
            z.start_file(format!("{name}.npy"), opts).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }

    fn xy_npz(dir: &Path, x: Tensor, y: Tensor) -> PathBuf {
        let p = dir.join("d.npz");
        Tensor::write_npz(&[("x", x), ("y", y)], &p).unwrap();
        p
    }

    #[test]
    fn npz_of_mnist_bytes_gives_the_idx_pixels_and_labels() {
        let (x, y, xt, yt) = mnist(100);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist.npz");
        Tensor::write_npz(
            &[
                ("x", t_u8(&x, &[100, 28, 28])),
                ("y", t_i64(&y)),
                ("x_test", t_u8(&xt, &[100, 28, 28])),
                ("y_test", t_i64(&yt)),
            ],
            &p,
        )
        .unwrap();
        let l = load(&p).unwrap();
        assert_eq!(l.input, vec![1, 28, 28]);
        assert_eq!(
            l.task,
            Task::Classify {
                classes: digit_names()
            }
        );
        assert_eq!(l.train.x, Inputs::Pixels(x));
        let want: Vec<u32> = y.iter().map(|&l| l as u32).collect();
        assert_eq!(classes_of(&l), want.as_slice());
        let test = l.test.unwrap();
        assert_eq!(test.x, Inputs::Pixels(xt));
        assert_eq!(
            test.y,
            Targets::Classes(yt.iter().map(|&l| l as u32).collect())
        );
        assert_eq!(
            l.origin,
            std::fs::canonicalize(&p).unwrap().display().to_string()
        );
    }

    #[test]
    fn safetensors_of_mnist_bytes_with_channels_and_u8_labels() {
        let (x, y, _, _) = mnist(50);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist.safetensors");
        let ts = [
            ("images".to_string(), t_u8(&x, &[50, 1, 28, 28])),
            ("labels".to_string(), t_u8(&y, &[50])),
        ];
        candle_core::safetensors::save(&ts.into_iter().collect(), &p).unwrap();
        let l = load_tensors(&p, "images", "labels", None).unwrap();
        assert_eq!(l.input, vec![1, 28, 28]);
        assert_eq!(l.train.x, Inputs::Pixels(x));
        let want: Vec<u32> = y.iter().map(|&l| l as u32).collect();
        assert_eq!(classes_of(&l), want.as_slice());
        assert!(l.test.is_none());
        // The default keys are not there: the error lists what is.
        let e = load(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: no array 'x' (x_key; arrays present: images, labels)",
                p.display()
            )
        );
    }

    #[test]
    fn npy_pair_with_test_files_and_compressed_npz_agree() {
        let (x, y, xt, yt) = mnist(30);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        t_u8(&x, &[30, 784]).write_npy(d.join("x.npy")).unwrap();
        t_i64(&y).write_npy(d.join("y.npy")).unwrap();
        t_u8(&xt, &[30, 784])
            .write_npy(d.join("x_test.npy"))
            .unwrap();
        t_i64(&yt).write_npy(d.join("y_test.npy")).unwrap();
        let a = load(&d.join("x.npy")).unwrap();
        assert_eq!(a.input, vec![784]);
        assert_eq!(a.train.x, Inputs::Pixels(x.clone()));
        assert_eq!(a.test.as_ref().unwrap().x, Inputs::Pixels(xt.clone()));
        // The same files inside a deflated zip (np.savez_compressed) read the same.
        let z = d.join("c.npz");
        let member = |n: &str| std::fs::read(d.join(format!("{n}.npy"))).unwrap();
        npz(
            &z,
            &[
                ("x", member("x")),
                ("y", member("y")),
                ("x_test", member("x_test")),
                ("y_test", member("y_test")),
            ],
            true,
        );
        let b = load(&z).unwrap();
        assert_eq!((a.train, a.test, a.task), (b.train, b.test, b.task));
        // One test file without the other.
        std::fs::remove_file(d.join("y_test.npy")).unwrap();
        assert_eq!(
            err(&d.join("x.npy")),
            format!(
                "{}: has no y_test.npy beside it: give both test files or neither",
                d.join("x_test.npy").display()
            )
        );
    }

    #[test]
    fn numpy_written_npz_reads() {
        // tests/fixtures/tensors/numpy.npz, written by numpy 2.4.6 (deflated, zip64 members):
        //   np.savez_compressed("numpy.npz", x=np.arange(24, dtype=np.uint8).reshape(4, 6),
        //       y=np.array([3, 1, 3, 2]), x_test=np.arange(6, dtype=np.uint8).reshape(1, 6),
        //       y_test=np.array([2]),
        //       features=(np.arange(6, dtype=np.float64).reshape(3, 2) / 4).astype(">f8"),
        //       targets=np.array([[0.5, 1.0], [0.25, -1.0], [2.0, 3.0]], dtype=np.float32))
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensors/numpy.npz");
        let l = load(&p).unwrap();
        assert_eq!(l.input, vec![6]);
        assert_eq!(l.train.x, Inputs::Pixels((0..24).collect()));
        let names = ["1", "2", "3"].map(String::from).to_vec();
        assert_eq!(l.task, Task::Classify { classes: names });
        assert_eq!(l.train.y, Targets::Classes(vec![2, 0, 2, 1]));
        let t = l.test.unwrap();
        assert_eq!(t.x, Inputs::Pixels((0..6).collect()));
        assert_eq!(t.y, Targets::Classes(vec![1]));
        // Big-endian float64 inputs and float32 two-column targets, picked by key.
        let l = load_tensors(&p, "features", "targets", None).unwrap();
        assert_eq!(l.input, vec![2]);
        assert_eq!(
            l.train.x,
            Inputs::Values(vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
        );
        assert_eq!(
            l.train.y,
            Targets::Values {
                values: vec![0.5, 1.0, 0.25, -1.0, 2.0, 3.0],
                columns: 2
            }
        );
        assert_eq!(
            l.task,
            Task::Regress {
                targets: vec!["targets[0]".into(), "targets[1]".into()]
            }
        );
        assert!(l.test.is_none());
    }

    #[test]
    fn float_inputs_of_every_width_become_f32() {
        let (x, y, _, _) = mnist(20);
        let scaled: Vec<f32> = x.iter().map(|&p| p as f32 / 255.0).collect();
        let dir = tempfile::tempdir().unwrap();
        for dt in [DType::F16, DType::BF16, DType::F32, DType::F64] {
            let xt = t_f32(&scaled, &[20, 1, 28, 28]).to_dtype(dt).unwrap();
            // The reference: candle's own conversion back to f32.
            let want = xt.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            let want: Vec<f32> = want.to_vec1().unwrap();
            let p = dir.path().join(format!("{dt:?}.safetensors"));
            let ts = [("x".to_string(), xt), ("y".to_string(), t_i64(&y))];
            candle_core::safetensors::save(&ts.into_iter().collect(), &p).unwrap();
            let l = load(&p).unwrap();
            assert_eq!(l.input, vec![1, 28, 28], "{dt:?}");
            assert_eq!(l.train.x, Inputs::Values(want), "{dt:?}");
        }
    }

    #[test]
    fn big_endian_and_small_ints_decode() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut xb = Vec::new();
        for v in [1i32, -2, 300, 7] {
            xb.extend(v.to_be_bytes());
        }
        std::fs::write(d.join("x.npy"), npy(">i4", "(2, 2)", &xb)).unwrap();
        std::fs::write(d.join("y.npy"), npy("|i1", "(2,)", &[(-1i8) as u8, 1])).unwrap();
        let l = load(&d.join("x.npy")).unwrap();
        assert_eq!(l.train.x, Inputs::Values(vec![1.0, -2.0, 300.0, 7.0]));
        assert_eq!(
            l.task,
            Task::Classify {
                classes: vec!["-1".into(), "1".into()]
            }
        );
        assert_eq!(l.train.y, Targets::Classes(vec![0, 1]));
    }

    #[test]
    fn labels_map_sorted_distinct_values_of_train_and_test() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let x = t_f32(&[0.0, 1.0, 2.0, 3.0, 4.0], &[5, 1]);
        let y = Tensor::new(&[10i64, 5, 10, 1, 5], &Device::Cpu).unwrap();
        let xt = t_f32(&[9.0, 8.0], &[2, 1]);
        let yt = Tensor::new(&[7i64, 1], &Device::Cpu).unwrap();
        Tensor::write_npz(&[("x", x), ("y", y), ("x_test", xt), ("y_test", yt)], &p).unwrap();
        let l = load(&p).unwrap();
        let names = ["1", "5", "7", "10"].map(String::from).to_vec();
        assert_eq!(l.task, Task::Classify { classes: names });
        assert_eq!(l.train.y, Targets::Classes(vec![3, 1, 3, 0, 1]));
        assert_eq!(l.test.unwrap().y, Targets::Classes(vec![2, 0]));
    }

    #[test]
    fn float_targets_are_regression_unless_told_to_classify() {
        let dir = tempfile::tempdir().unwrap();
        let x = t_f32(&[0.0, 1.0, 2.0, 3.0], &[4, 1]);
        let p = xy_npz(dir.path(), x.clone(), t_f32(&[1.0, 0.0, 1.0, 2.0], &[4]));
        let l = load_tensors(&p, "x", "y", None).unwrap();
        assert_eq!(
            l.task,
            Task::Regress {
                targets: vec!["y".into()]
            }
        );
        assert_eq!(
            l.train.y,
            Targets::Values {
                values: vec![1.0, 0.0, 1.0, 2.0],
                columns: 1
            }
        );
        let l = load_tensors(&p, "x", "y", Some(TaskKind::Classify)).unwrap();
        assert_eq!(l.train.y, Targets::Classes(vec![1, 0, 1, 2]));
        // Two columns.
        let p = xy_npz(
            dir.path(),
            x.clone(),
            t_f32(&[1.0, 5.0, 2.0, 5.0, 3.0, 6.0, 4.0, 5.0], &[4, 2]),
        );
        let l = load(&p).unwrap();
        assert_eq!(
            l.task,
            Task::Regress {
                targets: vec!["y[0]".into(), "y[1]".into()]
            }
        );
        // Integers as values when told to regress.
        let p = xy_npz(dir.path(), x.clone(), t_i64(&[3, 1, 4, 1]));
        let l = load_tensors(&p, "x", "y", Some(TaskKind::Regress)).unwrap();
        assert_eq!(
            l.train.y,
            Targets::Values {
                values: vec![3.0, 1.0, 4.0, 1.0],
                columns: 1
            }
        );
        // Non-whole floats cannot be classes.
        let p = xy_npz(dir.path(), x, t_f32(&[1.0, 0.5, 1.0, 2.0], &[4]));
        let e = load_tensors(&p, "x", "y", Some(TaskKind::Classify)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 'y' holds 0.5 in sample 1, which is not a class label (a whole number up to 2^53 in size)",
                p.display()
            )
        );
    }

    #[test]
    fn bad_targets_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let x = || t_f32(&[0.0, 1.0, 2.0, 3.0], &[4, 1]);
        let case = |y: Tensor| {
            let p = xy_npz(dir.path(), x(), y);
            let e = err(&p);
            e.strip_prefix(&format!("{}: ", p.display()))
                .unwrap_or(&e)
                .to_string()
        };
        assert_eq!(
            case(t_i64(&[1, 2, 3])),
            "'y' has 3 samples but 'x' has 4: inputs and targets need one row each per sample"
        );
        assert_eq!(
            case(t_i64(&[2, 2, 2, 2])),
            "'y' has one class only (2): classification needs at least two"
        );
        assert_eq!(
            case(t_f32(&[1.5; 4], &[4])),
            "'y' is constant (1.5): a regression target must vary"
        );
        assert_eq!(
            case(t_f32(&[1.0, 2.0, 1.0, 3.0, 1.0, 4.0, 1.0, 5.0], &[4, 2])),
            "'y' column 0 is constant (1): a regression target must vary"
        );
        assert_eq!(
            case(t_f32(&[0.0; 8], &[4, 1, 2])),
            "'y' has shape (4, 1, 2): targets are (n,) or (n, k)"
        );
        assert_eq!(
            case(t_f32(&[1.0, f32::NAN, 0.0, 2.0], &[4])),
            "'y' holds NaN in sample 1"
        );
        assert_eq!(
            case(t_f32(&[1.0, 2.0, f32::INFINITY, 0.0], &[4])),
            "'y' holds inf in sample 2"
        );
        let ints = Tensor::new(&[[1i64, 2], [3, 4], [5, 6], [7, 8]], &Device::Cpu).unwrap();
        assert_eq!(
            case(ints),
            "'y' has shape (4, 2): class labels are one per sample, (n,) or (n, 1); for 2 regression targets give floats or task = regress"
        );
    }

    #[test]
    fn bool_and_string_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        t_f32(&[0.0, 1.0], &[2, 1])
            .write_npy(d.join("x.npy"))
            .unwrap();
        std::fs::write(d.join("y.npy"), npy("|b1", "(2,)", &[0, 1])).unwrap();
        assert_eq!(
            err(&d.join("x.npy")),
            format!(
                "{}: 'y' holds bool: class labels must be integers (y.astype(int)) and regression targets floats",
                d.join("y.npy").display()
            )
        );
        std::fs::write(
            d.join("y.npy"),
            npy("<U1", "(2,)", &[b'a', 0, 0, 0, b'b', 0, 0, 0]),
        )
        .unwrap();
        assert_eq!(
            err(&d.join("x.npy")),
            format!(
                "{}: 'y' has dtype '<U1' (unicode strings), which lrfind does not read: give integers, floats or bool",
                d.join("y.npy").display()
            )
        );
        // A bool input is a 0/1 feature.
        std::fs::write(d.join("x.npy"), npy("|b1", "(2, 1)", &[1, 0])).unwrap();
        t_i64(&[0, 1]).write_npy(d.join("y.npy")).unwrap();
        assert_eq!(
            load(&d.join("x.npy")).unwrap().train.x,
            Inputs::Values(vec![1.0, 0.0])
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let y = || t_i64(&[0, 1, 0, 1]);
        let case = |x: Tensor| {
            let p = xy_npz(dir.path(), x, y());
            let e = err(&p);
            e.strip_prefix(&format!("{}: ", p.display()))
                .unwrap_or(&e)
                .to_string()
        };
        assert_eq!(
            case(t_f32(&[0.0; 4], &[4])),
            "'x' has shape (4,): inputs are (n, features) or (n, C, H, W), one row per sample"
        );
        assert_eq!(case(t_f32(&[], &[4, 0])), "'x' is empty: shape (4, 0)");
        assert_eq!(
            case(t_f32(
                &[0.0, 1.0, f32::NAN, 2.0, 0.0, 0.0, 1.0, 1.0],
                &[4, 2]
            )),
            "'x' holds NaN in sample 1"
        );
        assert_eq!(
            case(t_u8(&[0; 4 * 8 * 8 * 3], &[4, 8, 8, 3])),
            "'x' has shape (4, 8, 8, 3), channel-last images (n, H, W, C) by the look of it; lrfind reads PyTorch's (n, C, H, W): save x.transpose(0, 3, 1, 2)"
        );
        let p = dir.path().join("e.npz");
        Tensor::write_npz(&[("x", t_f32(&[], &[0, 3])), ("y", t_i64(&[]))], &p).unwrap();
        assert!(
            err(&p).ends_with("'x' is empty: shape (0, 3)"),
            "{}",
            err(&p)
        );
    }

    #[test]
    fn test_arrays_must_match_the_training_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let x = || t_f32(&[0.0, 1.0, 2.0, 3.0], &[2, 2]);
        let y = || t_i64(&[0, 1]);
        Tensor::write_npz(
            &[
                ("x", x()),
                ("y", y()),
                ("x_test", t_f32(&[0.0; 3], &[1, 3])),
                ("y_test", t_i64(&[1])),
            ],
            &p,
        )
        .unwrap();
        assert_eq!(
            err(&p),
            format!(
                "{}: 'x_test' samples are (3,) but 'x' samples are (2,)",
                p.display()
            )
        );
        Tensor::write_npz(
            &[
                ("x", x()),
                ("y", y()),
                ("x_test", t_u8(&[0, 1], &[1, 2])),
                ("y_test", t_i64(&[1])),
            ],
            &p,
        )
        .unwrap();
        assert_eq!(
            err(&p),
            format!(
                "{}: 'x_test' is uint8 but 'x' is float32: give both as uint8 (pixels) or both as numbers",
                p.display()
            )
        );
        Tensor::write_npz(&[("x", x()), ("y", y()), ("x_test", x())], &p).unwrap();
        assert_eq!(
            err(&p),
            format!(
                "{}: 'x_test' is present but 'y_test' is not: give both test arrays or neither",
                p.display()
            )
        );
        Tensor::write_npz(
            &[
                ("x", x()),
                ("y", t_f32(&[0.0, 1.0], &[2])),
                ("x_test", x()),
                ("y_test", t_f32(&[0.0; 4], &[2, 2])),
            ],
            &p,
        )
        .unwrap();
        assert_eq!(
            err(&p),
            format!(
                "{}: 'y_test' has shape (2, 2) but 'y' has shape (2,): give both the same number of target columns",
                p.display()
            )
        );
    }

    #[test]
    fn corrupt_and_hostile_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        t_i64(&[0, 1]).write_npy(d.join("y.npy")).unwrap();
        let x = d.join("x.npy");
        let bytes = npy("<f4", "(2, 3)", &[0u8; 24]);
        let at = |b: &[u8]| {
            std::fs::write(&x, b).unwrap();
            let e = err(&x);
            e.strip_prefix(&format!("{}: ", x.display()))
                .unwrap_or(&e)
                .to_string()
        };
        assert_eq!(
            at(&bytes[..bytes.len() - 5]),
            "'x' holds 19 data bytes but its header declares (2, 3) float32 (24 bytes): the file is truncated"
        );
        assert_eq!(at(&bytes[..40]), "'x' has a truncated .npy header");
        assert_eq!(at(b""), "'x' has a truncated .npy header");
        assert_eq!(
            at(b"PK\x03\x04 not numpy at all"),
            "'x' is not a .npy array (no \\x93NUMPY magic at its start)"
        );
        // A header declaring petabytes allocates nothing; one that overflows is refused.
        assert_eq!(
            at(&npy("<f8", "(1000000000000, 1000)", &[0u8; 8])),
            "'x' declares (1000000000000, 1000) float64 (8000000000000000 bytes), more than the 2147483648 bytes lrfind reads from one array"
        );
        assert_eq!(
            at(&npy("<f8", "(18446744073709551615, 2)", &[])),
            "'x' declares shape (18446744073709551615, 2), too large to hold"
        );
        assert_eq!(
            at(&npy("<f4", "(2, -3)", &[])),
            "'x' has an unreadable .npy header ('shape' holds '-3')"
        );
        let mut f = bytes.clone();
        let at_false = f.windows(5).position(|w| w == b"False").unwrap();
        f[at_false..at_false + 5].copy_from_slice(b"True ");
        assert_eq!(
            at(&f),
            "'x' is stored in Fortran (column-major) order: save np.ascontiguousarray of it"
        );
        let mut v = bytes.clone();
        v[6] = 9;
        assert_eq!(
            at(&v),
            "'x' is .npy version 9.0, which lrfind does not read (1.0 to 3.0)"
        );
        // Truncated and garbage containers.
        let z = d.join("d.npz");
        let x4 = || t_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        Tensor::write_npz(&[("x", x4()), ("y", t_i64(&[0, 1]))], &z).unwrap();
        let full = std::fs::read(&z).unwrap();
        std::fs::write(&z, &full[..full.len() / 2]).unwrap();
        assert!(
            err(&z).starts_with(&format!("{}: not a readable .npz (zip) file", z.display())),
            "{}",
            err(&z)
        );
        // A corrupted member (flipped data byte) fails its CRC.
        let mut c = full.clone();
        let at_data = full
            .windows(4)
            .position(|w| w == 1f32.to_le_bytes())
            .unwrap();
        c[at_data + 3] ^= 0x01; // 1.0 becomes 1.0 * 2^2: a valid float, a wrong checksum
        std::fs::write(&z, &c).unwrap();
        let e = err(&z);
        assert_eq!(
            e,
            format!(
                "{}: 'x' cannot be read from the archive: Invalid checksum",
                z.display()
            )
        );
        let s = d.join("d.safetensors");
        let ts = [
            ("x".to_string(), t_f32(&[0.0; 4], &[2, 2])),
            ("y".to_string(), t_i64(&[0, 1])),
        ];
        candle_core::safetensors::save(&ts.into_iter().collect(), &s).unwrap();
        let full = std::fs::read(&s).unwrap();
        std::fs::write(&s, &full[..full.len() - 3]).unwrap();
        assert!(
            err(&s).starts_with(&format!(
                "{}: not a readable .safetensors file",
                s.display()
            )),
            "{}",
            err(&s)
        );
        std::fs::write(&s, [0xffu8; 16]).unwrap();
        assert!(
            err(&s).contains("not a readable .safetensors file"),
            "{}",
            err(&s)
        );
    }

    #[test]
    fn paths_and_pairs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            err(&d.join("none.npz")),
            format!("{}: no such file", d.join("none.npz").display())
        );
        assert_eq!(
            err(d),
            format!(
                "{}: not a file (tensors come in a .npy, .npz or .safetensors file)",
                d.display()
            )
        );
        let csv = d.join("t.csv");
        std::fs::write(&csv, "a,b\n").unwrap();
        assert_eq!(
            err(&csv),
            format!(
                "{}: unknown extension: tensors are read from .npy, .npz or .safetensors files",
                csv.display()
            )
        );
        t_f32(&[0.0, 1.0], &[2, 1])
            .write_npy(d.join("inputs.npy"))
            .unwrap();
        assert_eq!(
            err(&d.join("inputs.npy")),
            format!(
                "{}: no y.npy beside it: a .npy pair is the inputs file and the targets file named after y_key (y.npy)",
                d.join("inputs.npy").display()
            )
        );
        t_i64(&[0, 1]).write_npy(d.join("y.npy")).unwrap();
        assert_eq!(
            err(&d.join("y.npy")),
            format!(
                "{}: is the targets file (y_key = y): give the inputs file, with y.npy beside it",
                d.join("y.npy").display()
            )
        );
        // Renamed targets: `labels.npy` beside `inputs.npy`.
        std::fs::rename(d.join("y.npy"), d.join("labels.npy")).unwrap();
        let l = load_tensors(&d.join("inputs.npy"), "x", "labels", None).unwrap();
        assert_eq!(l.train.y, Targets::Classes(vec![0, 1]));
    }
}
