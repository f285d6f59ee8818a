//! Image folders in torchvision's `ImageFolder` layout: `DIR/class_name/*.png|jpg|jpeg`, or
//! `DIR/train/class_name/…` with an optional `DIR/test/class_name/…` as the test split.
//!
//! Conventions (torchvision's, where it has one):
//! - The classes are the class folders' names, sorted; each class folder is walked
//!   recursively, its folders sorted by their path as text and each folder's files by name,
//!   so the samples come in torchvision's order. A link to a folder is followed only when it
//!   stays inside its class folder: one leading out (`cat/up -> ..`) would relabel another
//!   class's images, and is refused by name.
//! - `DIR` is split into `train/` and `test/` when it has a `train` folder that itself holds
//!   folders (a class named "train" holds images). Beside `train/` only `test/` may be, with
//!   the same classes.
//! - `.png`, `.jpg` and `.jpeg` files (any case) are images, decoded by content. Other files
//!   are skipped, as torchvision skips them (a README, `.DS_Store`); so are names starting
//!   with a dot (macOS `._x.png` copies). The images torchvision reads but lrfind does not
//!   (`.bmp`, `.ppm`, `.pgm`, `.tif`, `.tiff`, `.webp`) are an error rather than silently
//!   fewer samples.
//! - Each image becomes `channels` channels: 1 is luma by the `image` crate's Rec. 709 weights
//!   (0.2126 R + 0.7152 G + 0.0722 B; PIL's `convert("L")` uses Rec. 601's 0.299/0.587/0.114),
//!   3 is RGB; alpha is dropped, as PIL's `convert("RGB")` does. Default: 1 when every image
//!   (train and test) is grayscale, else 3 (grayscale images then repeat their one channel).
//! - Each image is resized to `size` (height, width; default: the first training image's) with a
//!   bilinear (triangle) filter that widens when shrinking, the weights of PIL's
//!   `Image.resize(…, BILINEAR)` that torchvision's `Resize` uses.
//! - Pixels stay bytes, channel-major `(C, H, W)` per image.
//!
//! Limits, checked before anything is decoded (each a one-line error naming the file, the
//! value and the limit): an image's header may declare at most [`MAX_IMAGE_PIXELS`] pixels
//! and [`MAX_IMAGE_SIDE`] per side; a folder holds at most [`MAX_CLASSES`] classes; all its
//! images at the target size, `channels` planes each, at most [`MAX_FOLDER_BYTES`]. Images are
//! decoded and resized one per worker, the full-size decodes in flight together bounded by
//! [`DECODE_BUDGET`]: what is kept scales with the target size, not the files' size.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageFormat};
use rayon::prelude::*;

use crate::error::{Error, Result, Scope};

use super::samples::{Inputs, Loaded, Samples, Targets, Task, MAX_CLASSES};
use super::tensors::{io_error, origin};

/// Largest height or width lrfind resizes to, or decodes.
pub const MAX_IMAGE_SIDE: usize = 16384;

/// Most pixels one image's header may declare (8192 × 8192): a larger image is refused
/// before it is decoded (a decompression bomb declares 60000 × 60000 in a few bytes).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// Most bytes a folder's images take at their target size and channels (4 GiB).
pub const MAX_FOLDER_BYTES: u64 = 4 << 30;

/// Most bytes of full-size decodes in flight at once across the parallel workers (1 GiB);
/// an image needing more than this is decoded alone.
pub const DECODE_BUDGET: u64 = 1 << 30;

/// Extensions torchvision's `ImageFolder` reads that lrfind does not decode.
const UNSUPPORTED: [&str; 6] = ["bmp", "ppm", "pgm", "tif", "tiff", "webp"];

/// Loads the image folder `dir` (see the module docs for the layout), resizing every image
/// to `size` = (height, width) and converting it to `channels` (1 or 3) channels.
pub fn load_image_folder(
    dir: &Path,
    size: Option<(usize, usize)>,
    channels: Option<usize>,
) -> Result<Loaded> {
    check_settings(size, channels)?;
    let (train_root, test_root) = layout(dir)?;
    let train = scan(&train_root)?;
    let test = test_root
        .map(|root| -> Result<Scan> {
            let t = scan(&root)?;
            same_classes(&root, &train.classes, &t.classes)?;
            Ok(t)
        })
        .transpose()?;
    let size = match size {
        Some(s) => s,
        None => first_size(&train.files[0].0)?, // `scan` found at least two images
    };
    let images = train.files.len() + test.as_ref().map_or(0, |t| t.files.len());
    check_total(images, size, channels)?;
    let decoded = decode_all(&train.files, size, channels)?;
    let decoded_test = test
        .as_ref()
        .map(|t| decode_all(&t.files, size, channels))
        .transpose()?;
    let plane = size.0 * size.1;
    // Without a setting, grey images came back as one plane and colour ones as three.
    let all_gray = || {
        decoded
            .iter()
            .chain(decoded_test.iter().flatten())
            .all(|d| d.len() == plane)
    };
    let channels = channels.unwrap_or_else(|| if all_gray() { 1 } else { 3 });
    check_total(images, size, Some(channels))?;
    let samples = |files: &[(PathBuf, u32)], decoded: Vec<Vec<u8>>| -> Result<Samples> {
        Ok(Samples {
            x: Inputs::Pixels(assemble(dir, decoded, channels, plane)?),
            y: Targets::Classes(files.iter().map(|f| f.1).collect()),
        })
    };
    let test = match test.zip(decoded_test) {
        Some((t, d)) => Some(samples(&t.files, d)?),
        None => None,
    };
    Ok(Loaded {
        input: vec![channels, size.0, size.1],
        test,
        train: samples(&train.files, decoded)?,
        task: Task::Classify {
            classes: train.classes,
        },
        origin: origin(dir),
    })
}

/// All `images` at `size` with `channels` planes (1 when not yet known) must fit
/// [`MAX_FOLDER_BYTES`]: checked before any decoding.
fn check_total(images: usize, size: (usize, usize), channels: Option<usize>) -> Result<()> {
    let c = channels.unwrap_or(1);
    let bytes = (images as u64)
        .saturating_mul(size.0 as u64)
        .saturating_mul(size.1 as u64)
        .saturating_mul(c as u64);
    if bytes > MAX_FOLDER_BYTES {
        return Err(Error::setting(
            Scope::Data,
            "image_size",
            format!("{}x{}", size.0, size.1),
            format!(
                "{images} images of {c}x{}x{} take {bytes} bytes, more than the {MAX_FOLDER_BYTES} an image folder may take; choose a smaller image_size",
                size.0, size.1
            ),
        ));
    }
    Ok(())
}

fn check_settings(size: Option<(usize, usize)>, channels: Option<usize>) -> Result<()> {
    if let Some(c) = channels.filter(|c| !matches!(c, 1 | 3)) {
        return Err(Error::setting(
            Scope::Data,
            "channels",
            c,
            "1 (grayscale) or 3 (RGB)",
        ));
    }
    let side = 1..=MAX_IMAGE_SIDE;
    if let Some((h, w)) = size.filter(|(h, w)| !side.contains(h) || !side.contains(w)) {
        return Err(Error::setting(
            Scope::Data,
            "image_size",
            format!("{h}x{w}"),
            format!("height and width from 1 to {MAX_IMAGE_SIDE} pixels"),
        ));
    }
    Ok(())
}

/// The training root and the test root, if `dir` is split into `train/` and `test/`.
fn layout(dir: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            if dir.exists() {
                "not a directory (an image folder is DIR/class_name/*.png)"
            } else {
                "no such directory"
            },
        ));
    }
    let subdirs = visible_subdirs(dir)?;
    let train = dir.join("train");
    let split = subdirs.iter().any(|d| d == "train") && !visible_subdirs(&train)?.is_empty();
    if !split {
        return Ok((dir.to_path_buf(), None));
    }
    let others: Vec<&str> = subdirs
        .iter()
        .map(String::as_str)
        .filter(|d| !matches!(*d, "train" | "test"))
        .collect();
    if !others.is_empty() {
        return Err(Error::data(
            dir,
            format!(
                "holds train/ and also {}: beside train/ only test/ is read (rename a validation folder to test/ to use it as the test split)",
                others.iter().map(|o| format!("{o}/")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let test = subdirs
        .iter()
        .any(|d| d == "test")
        .then(|| dir.join("test"));
    Ok((train, test))
}

/// An entry's name, which must be UTF-8 (class names go into reports).
fn entry_name(entry: &std::fs::DirEntry) -> Result<String> {
    entry
        .file_name()
        .into_string()
        .map_err(|_| Error::data(entry.path(), "the name is not valid UTF-8"))
}

/// Sorted names of the folders in `dir` (following links), hidden ones left out.
fn visible_subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.path().is_dir() {
            out.push(entry_name(&entry)?);
        }
    }
    out.sort();
    Ok(out)
}

/// The classes under one root and every image file with its class index, in order.
struct Scan {
    classes: Vec<String>,
    files: Vec<(PathBuf, u32)>,
}

fn scan(root: &Path) -> Result<Scan> {
    let classes = visible_subdirs(root)?;
    match classes.as_slice() {
        [] => {
            return Err(Error::data(
                root,
                "no class folders: an image folder holds one folder of images per class (DIR/class_name/*.png)",
            ))
        }
        [only] => {
            return Err(Error::data(
                root,
                format!("one class folder only ('{only}'): classification needs at least two"),
            ))
        }
        many if many.len() > MAX_CLASSES => {
            return Err(Error::data(
                root,
                format!(
                    "{} class folders, more than the {MAX_CLASSES} classes lrfind handles",
                    many.len()
                ),
            ))
        }
        _ => {}
    }
    let mut files = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        super::check_interrupt()?;
        let dir = root.join(class);
        let images = class_images(&dir)?;
        if images.is_empty() {
            return Err(Error::data(
                &dir,
                "no .png, .jpg or .jpeg images in this class folder",
            ));
        }
        files.extend(images.into_iter().map(|p| (p, i as u32)));
    }
    Ok(Scan { classes, files })
}

/// The images under a class folder in torchvision's order:
/// `for root, _, names in sorted(os.walk(dir, followlinks=True)): for name in sorted(names)`.
fn class_images(class_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![class_dir.to_path_buf()];
    let mut seen = HashSet::new(); // a link back up the tree is walked once
    let home = std::fs::canonicalize(class_dir).map_err(io_error(class_dir))?;
    while let Some(dir) = stack.pop() {
        if !seen.insert(std::fs::canonicalize(&dir).map_err(io_error(&dir))?) {
            continue;
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let name = entry_name(&entry)?;
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                // A link out of the class folder would read another folder's images as
                // this class's (`cat/up -> ..` reads every class as "cat").
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    let target = std::fs::canonicalize(&path).map_err(io_error(&path))?;
                    if !target.starts_with(&home) {
                        return Err(Error::data(
                            &path,
                            format!(
                                "a link to {}, outside its class folder {}: lrfind follows no folder link that leaves a class (it would read other images as this class); remove the link or copy the images in",
                                target.display(),
                                class_dir.display()
                            ),
                        ));
                    }
                }
                stack.push(path);
                continue;
            }
            let ext = Path::new(&name)
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
                files.push(path);
            } else if UNSUPPORTED.contains(&ext.as_str()) {
                return Err(Error::data(
                    &path,
                    format!("a .{ext} image, which lrfind does not read (it reads .png, .jpg and .jpeg): convert it or move it out"),
                ));
            }
        }
        files.sort();
        folders.push((dir.to_string_lossy().into_owned(), files));
    }
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(folders.into_iter().flat_map(|f| f.1).collect())
}

fn same_classes(test_root: &Path, train: &[String], test: &[String]) -> Result<()> {
    if train == test {
        return Ok(());
    }
    let missing: Vec<&str> = train
        .iter()
        .filter(|c| !test.contains(c))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = test
        .iter()
        .filter(|c| !train.contains(c))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("no {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("{} not in train/", extra.join(", ")));
    }
    Err(Error::data(
        test_root,
        format!(
            "test classes differ from the training ones: {}",
            parts.join("; ")
        ),
    ))
}

/// Opens an image (a regular file), checking by content that it is a PNG or a JPEG.
fn reader(path: &Path) -> Result<image::io::Reader<std::io::BufReader<std::fs::File>>> {
    let (file, _) = crate::read::open_regular(path, "an image")?;
    let mut r = image::io::Reader::new(std::io::BufReader::new(file));
    // The name's format unless the content says otherwise, as `Reader::open` does.
    if let Ok(f) = ImageFormat::from_path(path) {
        r.set_format(f);
    }
    let r = r.with_guessed_format().map_err(io_error(path))?;
    match r.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(r),
        Some(other) => Err(Error::data(
            path,
            format!("a {other:?} image, which lrfind does not read (it reads PNG and JPEG)"),
        )),
        None => Err(Error::data(path, "not a PNG or JPEG image")),
    }
}

/// (height, width) of an image, from its header alone, within the limits.
fn first_size(path: &Path) -> Result<(usize, usize)> {
    let (w, h) = reader(path)?.into_dimensions().map_err(|e| {
        Error::data(
            path,
            format!("unreadable image (corrupt or truncated): {e}"),
        )
    })?;
    let pixels = u64::from(w) * u64::from(h);
    let side = MAX_IMAGE_SIDE as u32;
    if pixels > MAX_IMAGE_PIXELS || w > side || h > side {
        return Err(Error::data(
            path,
            format!(
                "its header declares {w}x{h} pixels, more than lrfind decodes ({MAX_IMAGE_PIXELS} pixels, {MAX_IMAGE_SIDE} a side); shrink the image or move it out"
            ),
        ));
    }
    Ok((h as usize, w as usize))
}

/// Decodes an image whose header [`first_size`] has checked (the decoder is held to the
/// same limits, so a header that changes between the two reads changes nothing).
fn decode(path: &Path) -> Result<DynamicImage> {
    let mut r = reader(path)?;
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE as u32);
    limits.max_image_height = Some(MAX_IMAGE_SIDE as u32);
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8); // RGBA, 16 bits a channel
    r.limits(limits);
    r.decode().map_err(|e| {
        Error::data(
            path,
            format!("unreadable image (corrupt or truncated): {e}"),
        )
    })
}

/// Bytes of memory the decodes in flight may take together: a worker takes its image's share
/// before decoding and gives it back after resizing.
struct Budget {
    left: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    fn new() -> Self {
        Self {
            left: Mutex::new(DECODE_BUDGET),
            freed: Condvar::new(),
        }
    }

    /// Waits for `want` bytes (at most the whole budget: a bigger image runs alone).
    fn take(&self, want: u64) -> u64 {
        let want = want.min(DECODE_BUDGET);
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        while *left < want {
            left = self.freed.wait(left).unwrap_or_else(|p| p.into_inner());
        }
        *left -= want;
        want
    }

    fn give(&self, n: u64) {
        *self.left.lock().unwrap_or_else(|p| p.into_inner()) += n;
        self.freed.notify_all();
    }
}

/// Every image at `size`, channel-major: `channels` channels when given, else one for a
/// grayscale image and three for a colour one.
fn decode_all(
    files: &[(PathBuf, u32)],
    size: (usize, usize),
    channels: Option<usize>,
) -> Result<Vec<Vec<u8>>> {
    let (h, w) = (size.0 as u32, size.1 as u32);
    let budget = Budget::new();
    let one = |path: &Path| -> Result<Vec<u8>> {
        super::check_interrupt()?;
        let (sh, sw) = first_size(path)?;
        // The decode (up to RGBA), its 8-bit conversion and the resize's f32 intermediate.
        let need = (sh * sw) as u64 * 7 + (sw as u64 * u64::from(h) * 16);
        let held = budget.take(need);
        let out = decode_one(path, (h, w), channels);
        budget.give(held);
        out
    };
    // In parallel, then the first error in file order, so the message does not vary.
    let all: Vec<Result<Vec<u8>>> = files.par_iter().map(|(p, _)| one(p)).collect();
    all.into_iter().collect()
}

/// One image at (`h`, `w`), channel-major (see [`decode_all`]).
fn decode_one(path: &Path, (h, w): (u32, u32), channels: Option<usize>) -> Result<Vec<u8>> {
    {
        let img = decode(path)?;
        let gray = matches!(
            img.color(),
            ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
        );
        // Resizing works on each channel alone with the same weights, so converting a grey
        // image to RGB later (repeating its plane) equals converting it first.
        if channels.unwrap_or(if gray { 1 } else { 3 }) == 1 {
            let mut luma = img.to_luma8();
            drop(img);
            if luma.dimensions() != (w, h) {
                luma = image::imageops::resize(&luma, w, h, FilterType::Triangle);
            }
            Ok(luma.into_raw())
        } else {
            let mut rgb = img.to_rgb8();
            drop(img);
            if rgb.dimensions() != (w, h) {
                rgb = image::imageops::resize(&rgb, w, h, FilterType::Triangle);
            }
            Ok(to_planes(rgb.as_raw(), 3))
        }
    }
}

/// Interleaved `HWC` pixels as `CHW` planes.
fn to_planes(hwc: &[u8], c: usize) -> Vec<u8> {
    let plane = hwc.len() / c;
    let mut out = vec![0u8; hwc.len()];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            out[k * plane + i] = v;
        }
    }
    out
}

/// All images back to back with `channels` planes each (a one-plane image repeated when
/// three are wanted).
fn assemble(dir: &Path, decoded: Vec<Vec<u8>>, channels: usize, plane: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::read::reserve(
        &mut out,
        decoded.len() * channels * plane,
        dir,
        "an image folder",
    )?;
    // Each image is dropped once copied: the folder is held about once, not twice.
    for d in decoded {
        if d.len() == channels * plane {
            out.extend_from_slice(&d);
        } else {
            for _ in 0..channels {
                out.extend_from_slice(&d);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    use crate::testutil::mnist_fixture as mnist;

    fn digit(images: &[u8], i: usize) -> &[u8] {
        &images[i * 784..(i + 1) * 784]
    }

    fn gray(px: &[u8], w: u32, h: u32) -> GrayImage {
        GrayImage::from_raw(w, h, px.to_vec()).unwrap()
    }

    /// Writes the first `per_class` images of each digit as `root/{digit}/{index:05}.png`;
    /// returns the indices written in the order the folder lists them (class, then name).
    fn image_folder(root: &Path, images: &[u8], labels: &[u8], per_class: usize) -> Vec<usize> {
        let mut order = Vec::new();
        for d in 0..10u8 {
            let dir = root.join(d.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let idx: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] == d)
                .take(per_class)
                .collect();
            for &i in &idx {
                gray(digit(images, i), 28, 28)
                    .save(dir.join(format!("{i:05}.png")))
                    .unwrap();
            }
            order.extend(idx);
        }
        order
    }

    fn pixels(l: &Loaded) -> &[u8] {
        match &l.train.x {
            Inputs::Pixels(p) => p,
            other => panic!("not pixels: {other:?}"),
        }
    }

    fn err(dir: &Path) -> String {
        load_image_folder(dir, None, None).unwrap_err().to_string()
    }

    #[test]
    fn mnist_pngs_give_the_idx_pixels_and_labels() {
        let (x, y, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let order = image_folder(dir.path(), &x, &y, 2);
        let l = load_image_folder(dir.path(), None, None).unwrap();
        assert_eq!(l.input, vec![1, 28, 28]);
        let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        assert_eq!(l.task, Task::Classify { classes: names });
        let want: Vec<u8> = order.iter().flat_map(|&i| digit(&x, i).to_vec()).collect();
        assert_eq!(pixels(&l), want.as_slice());
        let labels: Vec<u32> = order.iter().map(|&i| y[i] as u32).collect();
        assert_eq!(l.train.y, Targets::Classes(labels));
        assert!(l.test.is_none());
        assert_eq!(
            l.origin,
            std::fs::canonicalize(dir.path())
                .unwrap()
                .display()
                .to_string()
        );
    }

    #[test]
    fn train_and_test_folders_are_the_two_splits() {
        let (x, y, xt, yt) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let train = image_folder(&dir.path().join("train"), &x, &y, 1);
        let test = image_folder(&dir.path().join("test"), &xt, &yt, 2);
        let l = load_image_folder(dir.path(), None, None).unwrap();
        let want: Vec<u8> = train.iter().flat_map(|&i| digit(&x, i).to_vec()).collect();
        assert_eq!(pixels(&l), want.as_slice());
        let t = l.test.unwrap();
        let want: Vec<u8> = test.iter().flat_map(|&i| digit(&xt, i).to_vec()).collect();
        assert_eq!(t.x, Inputs::Pixels(want));
        assert_eq!(
            t.y,
            Targets::Classes(test.iter().map(|&i| yt[i] as u32).collect())
        );
        // A validation folder beside them is named, not ignored.
        std::fs::create_dir(dir.path().join("val")).unwrap();
        assert_eq!(
            err(dir.path()),
            format!(
                "{}: holds train/ and also val/: beside train/ only test/ is read (rename a validation folder to test/ to use it as the test split)",
                dir.path().display()
            )
        );
        std::fs::remove_dir(dir.path().join("val")).unwrap();
        // Test classes must be the training ones.
        std::fs::rename(dir.path().join("test/9"), dir.path().join("test/nine")).unwrap();
        std::fs::remove_dir_all(dir.path().join("test/8")).unwrap();
        assert_eq!(
            err(dir.path()),
            format!(
                "{}: test classes differ from the training ones: no 8, 9; nine not in train/",
                dir.path().join("test").display()
            )
        );
    }

    #[test]
    fn files_come_in_torchvision_order_and_other_files_are_skipped() {
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("sub/deep")).unwrap();
        std::fs::create_dir_all(a.join("sub b")).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let files = [
            ("a/z.PNG", 0),
            ("a/m.png", 1),
            ("a/sub/c.jpg", 2), // a PNG under a .jpg name: decoded by content
            ("a/sub b/d.png", 3),
            ("a/sub/deep/e.png", 4),
            ("b/x.png", 5),
        ];
        for (name, i) in files {
            gray(digit(&x, i), 28, 28)
                .save_with_format(dir.path().join(name), ImageFormat::Png)
                .unwrap();
        }
        std::fs::write(a.join("README.txt"), "notes").unwrap();
        std::fs::write(a.join(".DS_Store"), [0u8; 8]).unwrap();
        std::fs::write(a.join("._m.png"), [0u8; 8]).unwrap();
        std::fs::create_dir(dir.path().join(".ipynb_checkpoints")).unwrap();
        let l = load_image_folder(dir.path(), None, None).unwrap();
        // torchvision sorts os.walk's folders as strings: "a" < "a/sub" < "a/sub b" <
        // "a/sub/deep" (' ' before '/'), which is not depth-first; names sorted in each.
        let want: Vec<u8> = [1, 0, 2, 3, 4, 5]
            .iter()
            .flat_map(|&i| digit(&x, i).to_vec())
            .collect();
        assert_eq!(pixels(&l), want.as_slice());
        assert_eq!(l.train.y, Targets::Classes(vec![0, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn shrinking_uses_pil_bilinear_weights() {
        // PIL's BILINEAR weights (torchvision's Resize) from 28 to 14: output pixel o averages
        // input pixels 2o-1, 2o, 2o+1, 2o+2 with weights 1, 3, 3, 1 (a triangle of radius 2
        // around 2o+1), renormalised where they fall outside the image; separable (rows, then
        // columns). The image crate rounds once at the end (PIL after each pass: it may
        // differ from this by 1).
        let (x, y, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let order = image_folder(dir.path(), &x, &y, 1);
        let l = load_image_folder(dir.path(), Some((14, 14)), None).unwrap();
        assert_eq!(l.input, vec![1, 14, 14]);
        let weights = |o: usize| -> Vec<(usize, f64)> {
            let taps = [
                (2 * o as i64 - 1, 1.0),
                (2 * o as i64, 3.0),
                (2 * o as i64 + 1, 3.0),
                (2 * o as i64 + 2, 1.0),
            ];
            let inside: Vec<(usize, f64)> = taps
                .iter()
                .filter(|(i, _)| (0..28).contains(i))
                .map(|&(i, w)| (i as usize, w))
                .collect();
            let sum: f64 = inside.iter().map(|t| t.1).sum();
            inside.into_iter().map(|(i, w)| (i, w / sum)).collect()
        };
        let (mut checked, mut near_half) = (0, 0);
        for (k, &i) in order.iter().enumerate() {
            let src = digit(&x, i);
            let got = &pixels(&l)[k * 196..(k + 1) * 196];
            for oy in 0..14 {
                for ox in 0..14 {
                    let mut v = 0.0;
                    for (iy, wy) in weights(oy) {
                        for (ix, wx) in weights(ox) {
                            v += wy * wx * src[iy * 28 + ix] as f64;
                        }
                    }
                    // The crate sums in f32: a value within 1e-3 of .5 may round either way.
                    if (v.fract() - 0.5).abs() < 1e-3 {
                        near_half += 1;
                        continue;
                    }
                    assert_eq!(
                        got[oy * 14 + ox],
                        v.round() as u8,
                        "image {i} at ({oy}, {ox}): {v}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 1900 && near_half < 60,
            "{checked} checked, {near_half} skipped"
        );
    }

    #[test]
    fn rgb_images_are_planes_or_the_crates_luma() {
        // Three digits as the R, G and B channels of one image, per class.
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let mut rgbs = Vec::new();
        for (c, base) in [("p", 0), ("q", 3)] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
            let mut img = RgbImage::new(28, 28);
            for (i, px) in img.pixels_mut().enumerate() {
                *px = image::Rgb([0, 1, 2].map(|k| digit(&x, base + k)[i]));
            }
            img.save(dir.path().join(c).join("a.png")).unwrap();
            rgbs.push((base, img));
        }
        let l = load_image_folder(dir.path(), None, None).unwrap();
        assert_eq!(l.input, vec![3, 28, 28]);
        let want: Vec<u8> = rgbs
            .iter()
            .flat_map(|(b, _)| {
                (0..3)
                    .flat_map(|k| digit(&x, b + k).to_vec())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(pixels(&l), want.as_slice());
        // One channel: the image crate's own RGB→luma conversion.
        let l = load_image_folder(dir.path(), None, Some(1)).unwrap();
        assert_eq!(l.input, vec![1, 28, 28]);
        let want: Vec<u8> = rgbs
            .iter()
            .flat_map(|(_, img)| DynamicImage::ImageRgb8(img.clone()).to_luma8().into_raw())
            .collect();
        assert_eq!(pixels(&l), want.as_slice());
        // Which is Rec. 709 in integers, truncated: (2126 R + 7152 G + 722 B) / 10000.
        let rec709: Vec<u8> = rgbs
            .iter()
            .flat_map(|(_, img)| {
                img.pixels()
                    .map(|p| {
                        ((2126 * p[0] as u32 + 7152 * p[1] as u32 + 722 * p[2] as u32) / 10000)
                            as u8
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(pixels(&l), rec709.as_slice());
        // A grey image beside colour ones repeats its channel.
        gray(digit(&x, 7), 28, 28)
            .save(dir.path().join("q").join("b.png"))
            .unwrap();
        let l = load_image_folder(dir.path(), None, None).unwrap();
        let g = &pixels(&l)[2 * 3 * 784..];
        assert_eq!(g, digit(&x, 7).repeat(3).as_slice());
    }

    #[test]
    fn a_jpeg_decodes_as_the_image_crate_decodes_it() {
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        for (c, i) in [("a", 0), ("b", 1)] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
            gray(digit(&x, i), 28, 28)
                .save(dir.path().join(c).join("img.jpeg"))
                .unwrap();
        }
        let l = load_image_folder(dir.path(), None, None).unwrap();
        assert_eq!(l.input, vec![1, 28, 28]);
        let back = image::open(dir.path().join("a/img.jpeg"))
            .unwrap()
            .to_luma8();
        assert_eq!(&pixels(&l)[..784], back.as_raw().as_slice());
        // Lossy, but close to the original digit.
        let err: f64 = back
            .as_raw()
            .iter()
            .zip(digit(&x, 0))
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / 784.0;
        assert!(err < 8.0, "mean abs error {err}");
    }

    #[test]
    fn sizes_default_to_the_first_image() {
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        for c in ["a", "b"] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
        }
        let small =
            image::imageops::resize(&gray(digit(&x, 0), 28, 28), 10, 12, FilterType::Triangle);
        small.save(dir.path().join("a/1.png")).unwrap();
        gray(digit(&x, 1), 28, 28)
            .save(dir.path().join("b/1.png"))
            .unwrap();
        let l = load_image_folder(dir.path(), None, None).unwrap();
        assert_eq!(l.input, vec![1, 12, 10]);
        assert_eq!(&pixels(&l)[..120], small.as_raw().as_slice());
        let big =
            image::imageops::resize(&gray(digit(&x, 1), 28, 28), 10, 12, FilterType::Triangle);
        assert_eq!(&pixels(&l)[120..], big.as_raw().as_slice());
    }

    #[test]
    fn bad_folders_are_named() {
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            err(&d.join("none")),
            format!("{}: no such directory", d.join("none").display())
        );
        std::fs::write(d.join("f.png"), "x").unwrap();
        assert_eq!(
            err(&d.join("f.png")),
            format!(
                "{}: not a directory (an image folder is DIR/class_name/*.png)",
                d.join("f.png").display()
            )
        );
        assert_eq!(
            err(d),
            format!(
                "{}: no class folders: an image folder holds one folder of images per class (DIR/class_name/*.png)",
                d.display()
            )
        );
        std::fs::create_dir(d.join("cat")).unwrap();
        gray(digit(&x, 0), 28, 28)
            .save(d.join("cat/1.png"))
            .unwrap();
        assert_eq!(
            err(d),
            format!(
                "{}: one class folder only ('cat'): classification needs at least two",
                d.display()
            )
        );
        std::fs::create_dir(d.join("dog")).unwrap();
        std::fs::write(d.join("dog/notes.txt"), "no images here").unwrap();
        assert_eq!(
            err(d),
            format!(
                "{}: no .png, .jpg or .jpeg images in this class folder",
                d.join("dog").display()
            )
        );
        // Truncated PNG: the error names the file.
        let full = std::fs::read(d.join("cat/1.png")).unwrap();
        std::fs::write(d.join("dog/2.png"), &full[..full.len() / 2]).unwrap();
        let e = err(d);
        assert!(
            e.starts_with(&format!(
                "{}: unreadable image (corrupt or truncated): ",
                d.join("dog/2.png").display()
            )),
            "{e}"
        );
        // Text under an image name.
        std::fs::write(d.join("dog/2.png"), "not an image at all").unwrap();
        let e = err(d);
        assert!(
            e.starts_with(&format!(
                "{}: unreadable image (corrupt or truncated): ",
                d.join("dog/2.png").display()
            )),
            "{e}"
        );
        // A truncated JPEG.
        let jpg = d.join("dog/2.jpg");
        std::fs::remove_file(d.join("dog/2.png")).unwrap();
        let mut bytes = Vec::new();
        image::DynamicImage::ImageLuma8(gray(digit(&x, 0), 28, 28))
            .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        std::fs::write(&jpg, &bytes[..bytes.len() / 2]).unwrap();
        let e = err(d);
        assert!(
            e.starts_with(&format!(
                "{}: unreadable image (corrupt or truncated): ",
                jpg.display()
            )),
            "{e}"
        );
        std::fs::remove_file(&jpg).unwrap();
        // A format torchvision reads and lrfind does not.
        std::fs::write(d.join("dog/3.bmp"), "BM").unwrap();
        assert_eq!(
            err(d),
            format!(
                "{}: a .bmp image, which lrfind does not read (it reads .png, .jpg and .jpeg): convert it or move it out",
                d.join("dog/3.bmp").display()
            )
        );
    }

    #[test]
    fn a_folder_link_leaving_its_class_is_refused_by_name() {
        let (x, _, _, _) = mnist();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for c in ["a", "b"] {
            std::fs::create_dir_all(d.join(c).join("sub")).unwrap();
            gray(digit(&x, 0), 28, 28)
                .save(d.join(c).join("sub/1.png"))
                .unwrap();
        }
        // Links to folders inside the class are followed, each folder walked once whatever
        // the cycles.
        std::os::unix::fs::symlink(d.join("a/sub"), d.join("a/again")).unwrap();
        std::os::unix::fs::symlink("..", d.join("a/sub/loop")).unwrap();
        let l = load_image_folder(d, None, None).unwrap();
        assert_eq!(l.train.y, Targets::Classes(vec![0, 1]));
        // One leading out would read b's images as a's.
        std::os::unix::fs::symlink("..", d.join("a/up")).unwrap();
        let e = err(d);
        assert!(
            e.starts_with(&format!("{}: a link to ", d.join("a/up").display()))
                && e.contains("outside its class folder"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_image_folder(dir.path(), None, Some(2)).unwrap_err();
        assert_eq!(e.to_string(), "channels = 2: 1 (grayscale) or 3 (RGB)");
        let e = load_image_folder(dir.path(), Some((0, 28)), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image_size = 0x28: height and width from 1 to 16384 pixels"
        );
    }
}
