//! Text for the PNG figures, laid out and rasterised here instead of by plotters.
//!
//! plotters' ab_glyph text path (0.3.7) has two faults that show in every PNG: each glyph is
//! placed at its bounding box's left edge instead of at its pen position (the left side
//! bearing is dropped, and the pen is truncated to whole pixels), which gives "s moothed";
//! and `FontDesc::style` keeps the regular face's data, so a bold title renders regular.
//! Here glyphs are placed at subpixel pen positions (advance + kerning), their coverage is
//! accumulated in one buffer and blended once, in the face the style asks for. Sizes and
//! anchors follow the SVG backend (`font-size` = size / 1.24, the baseline 0.76 em below a
//! top anchor, 0.5 ex below a centre anchor), so a PNG and an SVG of a figure agree.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::style::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontTransform,
};

/// What plotters' SVG backend divides a text size by to get the CSS font size.
const SVG_SIZE_RATIO: f64 = 1.24;

struct Face {
    font: FontRef<'static>,
    /// Pixel scale per em: ab_glyph scales by the ascent-to-descent height, not the em.
    height_per_em: f32,
    /// x-height in em, for centre anchors ("0.5ex" in the SVG).
    x_height: f32,
}

impl Face {
    fn new(bytes: &'static [u8]) -> Option<Self> {
        let font = FontRef::try_from_slice(bytes).ok()?;
        let upem = font.units_per_em()?;
        // ab_glyph keeps an outline's top (font units, y up) in `bounds.min.y`.
        let x_height = font
            .outline(font.glyph_id('x'))
            .map_or(0.55, |o| o.bounds.min.y / upem);
        Some(Self {
            height_per_em: font.height_unscaled() / upem,
            x_height,
            font,
        })
    }

    fn scale(&self, em: f32) -> PxScale {
        PxScale::from(em * self.height_per_em)
    }
}

struct Faces {
    regular: Face,
    bold: Face,
}

/// The embedded DejaVu Sans faces (the ones registered with plotters for the SVG layout).
fn faces() -> Option<&'static Faces> {
    static FACES: OnceLock<Option<Faces>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            Some(Faces {
                regular: Face::new(dejavu::sans::regular())?,
                bold: Face::new(dejavu::sans::bold())?,
            })
        })
        .as_ref()
}

fn face(bold: bool) -> Option<&'static Face> {
    faces().map(|f| if bold { &f.bold } else { &f.regular })
}

/// The em size in pixels a text of plotters size `size` is drawn at.
fn em(size: f64) -> f32 {
    (size / SVG_SIZE_RATIO) as f32
}

/// Pen positions of each glyph of `text` (baseline at y = 0) and the advance width.
fn layout(face: &Face, em: f32, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
    let scaled = face.font.as_scaled(face.scale(em));
    let mut pen = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        glyphs.push((id, pen));
        pen += scaled.h_advance(id);
        prev = Some(id);
    }
    (glyphs, pen)
}

/// Width in pixels of `text` at plotters size `size`, as drawn: the advance widths with
/// kerning. Used to wrap titles and size legends so they fit on the canvas.
pub(crate) fn width(text: &str, size: f64, bold: bool) -> f64 {
    face(bold).map_or(text.chars().count() as f64 * size * 0.5, |f| {
        f64::from(layout(f, em(size), text).1)
    })
}

/// Height in pixels of one line of text at plotters size `size` (ascent + descent).
pub(crate) fn line_height(size: f64) -> f64 {
    face(false).map_or(size, |f| f64::from(em(size) * f.height_per_em))
}

/// Coverage of `text` drawn with its anchor at the origin, unrotated: `(origin, width,
/// coverage)` with `origin` the buffer's top-left pixel relative to the anchor and the
/// coverage row-major, `width` pixels a row.
fn rasterise(
    text: &str,
    size: f64,
    bold: bool,
    h: HPos,
    v: VPos,
) -> Option<((i32, i32), usize, Vec<f32>)> {
    let face = face(bold)?;
    let em = em(size);
    let (glyphs, advance) = layout(face, em, text);
    let dx = match h {
        HPos::Left => 0.0,
        HPos::Center => -advance / 2.0,
        HPos::Right => -advance,
    };
    let baseline = match v {
        VPos::Top => 0.76 * em,
        VPos::Center => 0.5 * face.x_height * em,
        VPos::Bottom => -0.5 * face.x_height * em,
    };
    let scale = face.scale(em);
    let outlined: Vec<_> = glyphs
        .into_iter()
        .filter_map(|(id, pen)| {
            let glyph = id.with_scale_and_position(scale, point(dx + pen, baseline));
            face.font.outline_glyph(glyph)
        })
        .collect();
    let (mut x0, mut y0, mut x1, mut y1) = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
    for g in &outlined {
        let b = g.px_bounds();
        x0 = x0.min(b.min.x as i32);
        y0 = y0.min(b.min.y as i32);
        x1 = x1.max(b.max.x as i32);
        y1 = y1.max(b.max.y as i32);
    }
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let (w, hgt) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let mut cover = vec![0.0f32; w * hgt];
    for g in &outlined {
        let b = g.px_bounds();
        let (ox, oy) = (b.min.x as i32 - x0, b.min.y as i32 - y0);
        g.draw(|x, y, c| {
            let (px, py) = (ox + x as i32, oy + y as i32);
            if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < hgt {
                // Neighbouring glyphs may share an edge pixel: add, then clamp once.
                cover[py as usize * w + px as usize] += c;
            }
        });
    }
    Some(((x0, y0), w, cover))
}

/// Draws `text` on a pixel backend at `pos` with plotters' anchor and rotation semantics.
pub(crate) fn draw<DB: DrawingBackend, S: BackendTextStyle>(
    backend: &mut DB,
    text: &str,
    style: &S,
    pos: BackendCoord,
) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
    let color = style.color();
    if color.alpha == 0.0 || text.is_empty() {
        return Ok(());
    }
    let bold = matches!(style.style(), FontStyle::Bold);
    let anchor = style.anchor();
    let Some(((ox, oy), w, cover)) =
        rasterise(text, style.size(), bold, anchor.h_pos, anchor.v_pos)
    else {
        return Ok(());
    };
    let trans = style.transform();
    for (i, &c) in cover.iter().enumerate() {
        if c <= 0.0 {
            continue;
        }
        let (x, y) = (ox + (i % w) as i32, oy + (i / w) as i32);
        let (x, y) = match trans {
            FontTransform::None => (x, y),
            // Same rotations as plotters' `FontTransform::transform` and the SVG `rotate()`.
            FontTransform::Rotate90 => (-y, x),
            FontTransform::Rotate180 => (-x, -y),
            FontTransform::Rotate270 => (y, -x),
        };
        let alpha = color.alpha * f64::from(c.min(1.0));
        backend.draw_pixel(
            (pos.0 + x, pos.1 + y),
            BackendColor {
                alpha,
                rgb: color.rgb,
            },
        )?;
    }
    Ok(())
}

/// A pixel backend whose text is drawn by [`draw`] instead of plotters' glyph path.
pub(crate) struct CrispText<DB>(pub DB);

impl<DB: DrawingBackend> DrawingBackend for CrispText<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        draw(&mut self.0, text, style, pos)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    /// Renders one line of text on a white RGB buffer and returns its ink columns' darkness.
    fn ink(text: &str, size: f64, bold: bool) -> (Vec<f64>, (u32, u32)) {
        let dims = (400u32, 60u32);
        let mut buf = vec![255u8; (dims.0 * dims.1 * 3) as usize];
        {
            let backend = CrispText(BitMapBackend::with_buffer(&mut buf, dims));
            let root = backend.into_drawing_area();
            super::super::output::ensure_fonts().unwrap();
            let face = if bold {
                FontStyle::Bold
            } else {
                FontStyle::Normal
            };
            let font = (super::super::style::FONT, size, face)
                .into_font()
                .color(&BLACK);
            root.draw_text(text, &font, (10, 10)).unwrap();
            root.present().unwrap();
        }
        let cols = (0..dims.0)
            .map(|x| {
                (0..dims.1)
                    .map(|y| 255.0 - f64::from(buf[((y * dims.0 + x) * 3) as usize]))
                    .sum()
            })
            .collect();
        (cols, dims)
    }

    /// Ink extent `[first, last]` of a column profile.
    fn extent(cols: &[f64]) -> (usize, usize) {
        let first = cols.iter().position(|&c| c > 20.0).unwrap();
        let last = cols.len() - 1 - cols.iter().rev().position(|&c| c > 20.0).unwrap();
        (first, last)
    }

    #[test]
    fn ink_spans_the_measured_width_from_the_anchor() {
        let (cols, _) = ink("loss (smoothed)", 18.0, false);
        let (first, last) = extent(&cols);
        let w = width("loss (smoothed)", 18.0, false);
        // 'l' and ')' sit within a pixel or two of the advance box.
        assert!((first as f64 - 10.0).abs() <= 2.0, "starts at {first}");
        assert!(
            ((last - first) as f64 - w).abs() <= 3.0,
            "{last} - {first} vs {w}"
        );
    }

    #[test]
    fn repeated_letters_are_evenly_spaced() {
        // Equal glyphs must be equal advances apart: find each 'm's gap column.
        let text = "m m m m m m m m";
        let (cols, _) = ink(text, 18.0, false);
        let (first, last) = extent(&cols);
        let mut starts = Vec::new();
        let mut inside = false;
        for (x, &c) in cols.iter().enumerate().take(last + 1).skip(first) {
            if c > 20.0 && !inside {
                starts.push(x as f64);
            }
            inside = c > 20.0;
        }
        assert_eq!(starts.len(), 8, "{starts:?}");
        let advance = width("m ", 18.0, false);
        for (i, s) in starts.iter().enumerate() {
            let expected = starts[0] + i as f64 * advance;
            assert!(
                (s - expected).abs() <= 1.0,
                "glyph {i} at {s}, expected {expected}"
            );
        }
    }

    #[test]
    fn bold_is_drawn_bold() {
        let (regular, _) = ink("bold title", 24.0, false);
        let (bold, _) = ink("bold title", 24.0, true);
        let sum = |c: &[f64]| c.iter().sum::<f64>();
        // DejaVu Sans Bold's stems are about 1.4x as wide as the regular's.
        assert!(
            sum(&bold) > 1.25 * sum(&regular),
            "{} vs {}",
            sum(&bold),
            sum(&regular)
        );
        assert!(width("bold title", 24.0, true) > width("bold title", 24.0, false));
    }
}
