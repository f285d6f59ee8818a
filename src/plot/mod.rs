//! Figures: the LR range test, per-epoch training curves, LR schedules and the stability check.
//!
//! Every figure is drawn by one generic `draw` function, so the same code renders a PNG file,
//! an SVG file and an SVG string (tests, embedding). Files go through
//! [`crate::report::atomic`], so a failed plot never leaves a half-written file behind.
//! Fonts come from the `dejavu` crate and are registered on first use: no system fonts are
//! needed and callers have nothing to set up. PNG text is laid out by `text` (subpixel
//! glyph positions, kerning, a real bold face), matching the SVG's.
//!
//! Legends and notes are placed where they cover no data (the y axis gets headroom when no
//! spot is free), and a legend with a single entry is left out: the axis names the line.
//!
//! The drawing functions need the cargo feature `plot` (on by default); [`PlotFormat`] and
//! [`PlotError`] are always there, so code that names a figure's path builds without it.

#[cfg(feature = "plot")]
mod check;
#[cfg(feature = "plot")]
mod curves;
#[cfg(feature = "plot")]
mod format;
#[cfg(feature = "plot")]
mod layout;
#[cfg(feature = "plot")]
mod output;
#[cfg(feature = "plot")]
mod range_test;
#[cfg(feature = "plot")]
mod range_test_groups;
#[cfg(feature = "plot")]
mod scale;
#[cfg(feature = "plot")]
mod schedule;
#[cfg(feature = "plot")]
mod style;
#[cfg(feature = "plot")]
mod text;

use std::path::{Path, PathBuf};

#[cfg(feature = "plot")]
pub use check::{check, check_svg, CheckCurve, CheckPlot};
#[cfg(feature = "plot")]
pub use curves::{curves, curves_svg, CurvesPlot, EvalMetric};
#[cfg(feature = "plot")]
pub use range_test::{range_test, range_test_svg, RangeTestPlot};
#[cfg(feature = "plot")]
pub use schedule::{schedule, schedule_svg, SchedulePlot};

/// Why a figure could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output path's extension names no format we can write.
    #[error("cannot plot to {}: unsupported file extension (allowed: .png, .svg)", path.display())]
    UnsupportedFormat {
        /// The path asked for.
        path: PathBuf,
    },
    /// The embedded font could not be loaded (a broken build, not bad input).
    #[error("cannot load the plot font: {0}")]
    Font(String),
    /// plotters failed while drawing.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// The finished figure could not be written (the previous file, if any, is untouched).
    #[error(transparent)]
    Write(#[from] crate::report::atomic::WriteError),
}

/// Output format of a figure file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// A PNG bitmap.
    Png,
    /// An SVG document.
    Svg,
}

impl PlotFormat {
    /// `.png` or `.svg`, in any case. Cheap and side-effect free, so the CLI can reject a bad
    /// output path before a long run starts.
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(PlotError::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension_ignores_case() {
        assert_eq!(
            PlotFormat::from_path(Path::new("a/b.png")).unwrap(),
            PlotFormat::Png
        );
        assert_eq!(
            PlotFormat::from_path(Path::new("B.SVG")).unwrap(),
            PlotFormat::Svg
        );
        assert_eq!(
            PlotFormat::from_path(Path::new("x.Png")).unwrap(),
            PlotFormat::Png
        );
    }

    #[test]
    fn unknown_extension_names_path_and_allowed_formats() {
        for p in ["out/plot.jpg", "plot", "plot.png.bak", ".svg"] {
            let e = PlotFormat::from_path(Path::new(p)).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(p), "{msg}");
            assert!(msg.contains("allowed: .png, .svg"), "{msg}");
        }
    }
}
