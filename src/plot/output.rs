//! Rendering a figure to a PNG file, an SVG file or an SVG string, and font registration.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::layout::Layout;
use super::text::CrispText;
use super::{PlotError, PlotFormat};
use crate::report::atomic::{write_atomic, write_atomic_with};

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
            // The bitmap encoder wants a path (it picks PNG from the extension, which the
            // temporary file keeps). A drawing error is smuggled out of the io-typed callback
            // so it is reported as what it is, not as a write error.
            let mut drawing_failure = None;
            let written = write_atomic_with(path, |tmp| {
                let root = CrispText(BitMapBackend::new(tmp, fig.size())).into_drawing_area();
                if let Err(e) = fig.draw(&root) {
                    let msg = e.to_string();
                    drawing_failure = Some(e);
                    return Err(std::io::Error::other(msg));
                }
                // Encoding/saving failures are genuine I/O problems: let them become WriteError.
                root.present()
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
            if let Err(e) = written {
                return Err(drawing_failure.unwrap_or(PlotError::Write(e)));
            }
        }
    }
    Ok(())
}
