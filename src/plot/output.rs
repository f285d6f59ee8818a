//! Rendering a figure to a PNG file, an SVG file or an SVG string, and font registration.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::layout::Layout;
use super::text::CrispText;
use super::{PlotError, PlotFormat};
use crate::report::atomic::write_atomic;

/// A figure: a fixed size and one generic drawing routine shared by every backend, which
/// reports what it placed where.
pub(crate) trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<Layout, PlotError>;
}

/// Maps any plotters drawing error into ours (backend error types differ per backend).
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Registers the embedded DejaVu fonts under "sans-serif" once per process. Without the `ttf`
/// feature plotters has no system-font lookup, and both backends need a font to lay out text.
pub(crate) fn ensure_fonts() -> Result<(), PlotError> {
    static FONTS: OnceLock<Result<(), String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            // `InvalidFont` is neither Debug nor Display, so it is mapped to a message here.
            register_font(
                super::style::FONT,
                FontStyle::Normal,
                dejavu::sans::regular(),
            )
            .map_err(|_| "DejaVu Sans regular".to_string())?;
            register_font(super::style::FONT, FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "DejaVu Sans bold".to_string())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// Renders `fig` as an SVG document in memory.
pub(crate) fn to_svg<F: Figure>(fig: &F) -> Result<String, PlotError> {
    Ok(render_svg(fig)?.0)
}

/// Renders `fig` as SVG and returns the document with the layout it was drawn with.
pub(crate) fn render_svg<F: Figure>(fig: &F) -> Result<(String, Layout), PlotError> {
    ensure_fonts()?;
    let mut svg = String::new();
    let layout = {
        let root = SVGBackend::with_string(&mut svg, fig.size()).into_drawing_area();
        let layout = fig.draw(&root)?;
        root.present().map_err(draw_err)?;
        layout
    };
    Ok((svg, layout))
}

/// Writes `fig` to `path`, in the format its extension names, atomically.
pub(crate) fn save<F: Figure>(path: &Path, fig: &F) -> Result<(), PlotError> {
    let format = PlotFormat::from_path(path)?;
    ensure_fonts()?;
    match format {
        PlotFormat::Svg => {
            // Render fully before touching the file system: a drawing error writes nothing.
            let svg = to_svg(fig)?;
            write_atomic(path, svg.as_bytes())?;
        }
        PlotFormat::Png => {
            // Drawn and encoded in memory, then written through the atomic path: a drawing
            // error writes nothing, and no named temporary file can outlive a kill.
            let (w, h) = fig.size();
            let mut rgb = vec![0u8; (w as usize) * (h as usize) * 3];
            {
                let root =
                    CrispText(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
                fig.draw(&root)?;
                root.present().map_err(draw_err)?;
            }
            let mut png = Vec::new();
            {
                use image::ImageEncoder;
                image::codecs::png::PngEncoder::new(&mut png)
                    .write_image(&rgb, w, h, image::ColorType::Rgb8)
                    .map_err(|e| PlotError::Draw(format!("PNG encoding: {e}")))?;
            }
            write_atomic(path, &png)?;
        }
    }
    Ok(())
}
