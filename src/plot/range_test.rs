//! The LR range test figure: loss against learning rate on a log axis, with the suggestion.

use std::path::Path;

use plotters::chart::SeriesLabelPosition;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::output::{save, to_svg, Figure};
use super::scale::{finite_span, interpolate, loss_view, Axis};
use super::style::{self, Panel};
use super::{format, PlotError};

/// The learning rate a finder suggests, and where it sits on the smoothed curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub lr: f64,
    /// Smoothed loss at `lr`; if not finite, the point is placed on the smoothed curve.
    pub loss: f64,
    /// Text shown next to the marker, e.g. "suggested 3.16e-3 (steepest)". When empty, the
    /// figure writes "suggested <lr>".
    pub label: String,
}

/// Loss vs LR of an LR range test.
#[derive(Debug, Clone)]
pub struct RangeTestPlot<'a> {
    pub lrs: &'a [f64],
    pub losses: &'a [f64],
    pub smoothed: &'a [f64],
    pub suggestion: Option<Suggestion>,
    pub title: String,
}

/// Writes the range-test figure to `path` (`.png` or `.svg`, by extension).
pub fn range_test(path: &Path, plot: &RangeTestPlot) -> Result<(), PlotError> {
    save(path, plot)
}

/// The range-test figure as an SVG document.
pub fn range_test_svg(plot: &RangeTestPlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for RangeTestPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw(root, self)
    }
}

/// `(lr, value)` pairs in data units, `None` where either is unusable on a log-x plot.
fn pairs(lrs: &[f64], values: &[f64]) -> Vec<Option<(f64, f64)>> {
    lrs.iter()
        .zip(values)
        .map(|(&lr, &v)| (lr.is_finite() && lr > 0.0 && v.is_finite()).then_some((lr, v)))
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &RangeTestPlot,
) -> Result<(), PlotError> {
    let raw = pairs(plot.lrs, plot.losses);
    let smooth = pairs(plot.lrs, plot.smoothed);
    let has_smooth = smooth.iter().any(Option::is_some);
    // Without a smoothed curve the raw loss is the main line.
    let (main, faint) = if has_smooth {
        (smooth, raw)
    } else {
        (raw, Vec::new())
    };
    let suggestion = plot
        .suggestion
        .as_ref()
        .filter(|s| s.lr.is_finite() && s.lr > 0.0);

    let lrs = main
        .iter()
        .chain(&faint)
        .flatten()
        .map(|p| p.0)
        .chain(suggestion.map(|s| s.lr));
    let (Some((lr_lo, lr_hi)), true) = (finite_span(lrs), main.iter().any(Option::is_some)) else {
        return style::empty(root, &plot.title, "no finite loss values to plot");
    };
    let values = |pts: &[Option<(f64, f64)>]| pts.iter().flatten().map(|p| p.1).collect();
    let faint_values: Vec<f64> = values(&faint);
    let Some((y_lo, y_hi)) = loss_view(&[values(&main)], &faint_values) else {
        return style::empty(root, &plot.title, "no finite loss values to plot");
    };
    let x = Axis::log(lr_lo, lr_hi);
    let y = Axis::linear(y_lo, y_hi);

    let area = style::titled(root, &plot.title)?;
    let mut chart = style::panel(
        &area,
        &Panel {
            x: &x,
            y: &y,
            x_desc: Some("learning rate (log scale)"),
            y_desc: "loss",
        },
    )?;
    let to_coord = |pts: &[Option<(f64, f64)>]| -> Vec<Option<(f64, f64)>> {
        pts.iter()
            .map(|p| p.and_then(|(a, b)| Some((x.coord(a)?, y.coord(b)?))))
            .collect()
    };
    let main_c = to_coord(&main);
    let faint_c = to_coord(&faint);

    // Raw loss first and faint, so the smoothed curve reads on top of the noise.
    style::line(
        &mut chart,
        &x,
        &y,
        &faint_c,
        style::BLUE.mix(0.3).stroke_width(1),
        Some("loss (raw)"),
    )?;
    let main_label = if has_smooth {
        "loss (smoothed)"
    } else {
        "loss"
    };
    style::line(
        &mut chart,
        &x,
        &y,
        &main_c,
        style::BLUE.stroke_width(3),
        Some(main_label),
    )?;

    if let Some(s) = suggestion {
        let Some(xc) = x.coord(s.lr) else {
            return Ok(());
        };
        style::vline(
            &mut chart,
            &y,
            xc,
            style::RED.stroke_width(2),
            Some("suggestion"),
        )?;
        // Prefer the reported loss; fall back to the curve itself.
        let curve: Vec<(f64, f64)> = main_c.iter().flatten().copied().collect();
        let yc = y
            .coord(s.loss)
            .or_else(|| interpolate(&curve, xc))
            .filter(|&c| y.contains(c));
        if let Some(yc) = yc {
            style::highlight(&mut chart, (xc, yc), 6, style::RED)?;
        }
        let text = if s.label.trim().is_empty() {
            format!("suggested {}", format::lr(s.lr))
        } else {
            s.label.clone()
        };
        let side = style::side_for(&x, xc);
        style::note(&mut chart, (xc, y.range().1), side, 8, &text, style::RED)?;
    }
    // The curve starts high on the left and ends high on the right: lower left is free.
    style::legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typical sweep: flat, a descent, then divergence to 1e3 and NaN at the very end.
    fn sweep() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = 120;
        let lrs: Vec<f64> = (0..n)
            .map(|i| 1e-7 * 10f64.powf(8.0 * i as f64 / (n - 1) as f64))
            .collect();
        let mut losses = Vec::new();
        let mut smoothed = Vec::new();
        let mut avg = 0.0;
        for (i, lr) in lrs.iter().enumerate() {
            let t = lr.log10();
            let base = 2.3 - 1.6 / (1.0 + (-(t + 3.5) * 2.0).exp());
            let blowup = if t > -1.5 {
                10f64.powf((t + 1.5) * 3.0) - 1.0
            } else {
                0.0
            };
            let noise = 0.15 * ((i as f64 * 12.9898).sin() * 43758.5453).fract();
            let l = base + blowup + noise;
            losses.push(l);
            avg = if i == 0 { l } else { 0.9 * avg + 0.1 * l };
            smoothed.push(avg);
        }
        losses[n - 2] = f64::INFINITY;
        losses[n - 1] = f64::NAN;
        smoothed[n - 1] = f64::NAN;
        (lrs, losses, smoothed)
    }

    fn plot<'a>(lrs: &'a [f64], losses: &'a [f64], smoothed: &'a [f64]) -> RangeTestPlot<'a> {
        RangeTestPlot {
            lrs,
            losses,
            smoothed,
            suggestion: Some(Suggestion {
                lr: 3.16e-4,
                loss: f64::NAN,
                label: "suggested 3.16e-4 (steepest)".into(),
            }),
            title: "LR range test: mnist-mlp".into(),
        }
    }

    fn no_temp_files(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains("lrfind-tmp")
        })
    }

    #[test]
    fn svg_shows_suggestion_point_and_dashed_line() {
        let (lrs, losses, smoothed) = sweep();
        let svg = range_test_svg(&plot(&lrs, &losses, &smoothed)).unwrap();
        assert!(svg.contains("suggested 3.16e-4 (steepest)"));
        assert!(svg.contains("learning rate (log scale)"));
        assert!(svg.contains("LR range test: mnist-mlp"));
        // The dashed line is many short two-point segments in the suggestion colour.
        let red = "stroke=\"#D62728\"";
        let dashes = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains(red))
            .filter(|l| l.matches(',').count() == 2);
        assert!(dashes.count() >= 10, "no dashed suggestion line");
        assert!(svg.contains("<circle") && svg.contains("fill=\"#D62728\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_label_falls_back_to_value() {
        let (lrs, losses, smoothed) = sweep();
        let mut p = plot(&lrs, &losses, &smoothed);
        if let Some(s) = p.suggestion.as_mut() {
            s.label.clear();
        }
        assert!(range_test_svg(&p).unwrap().contains("suggested 3.16e-4"));
    }

    #[test]
    fn png_is_written_atomically() {
        let (lrs, losses, smoothed) = sweep();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("range.PNG");
        range_test(&path, &plot(&lrs, &losses, &smoothed)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        assert!(no_temp_files(dir.path()));
        // SVG to the same directory as well.
        let svg = dir.path().join("range.svg");
        range_test(&svg, &plot(&lrs, &losses, &smoothed)).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    }

    #[test]
    fn unknown_extension_is_rejected_before_writing() {
        let (lrs, losses, smoothed) = sweep();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("range.jpg");
        let e = range_test(&path, &plot(&lrs, &losses, &smoothed)).unwrap_err();
        assert!(matches!(e, PlotError::UnsupportedFormat { .. }));
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_directory_is_a_write_error_and_leaves_nothing() {
        let (lrs, losses, smoothed) = sweep();
        let dir = tempfile::tempdir().unwrap();
        for name in ["range.png", "range.svg"] {
            let path = dir.path().join("missing").join(name);
            let e = range_test(&path, &plot(&lrs, &losses, &smoothed)).unwrap_err();
            assert!(matches!(e, PlotError::Write(_)), "{e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let nan = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let cases: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![
            (vec![], vec![], vec![]),
            (vec![1e-3], vec![2.0], vec![2.0]),
            (vec![1e-3, 1e-2, 1e-1], vec![2.0; 3], vec![2.0; 3]),
            (vec![1e-3, 1e-2, 1e-1], nan.to_vec(), nan.to_vec()),
            (nan.to_vec(), vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0]),
            (vec![0.0, -1.0, 1e-3], vec![1.0, 2.0, 3.0], vec![]),
            (vec![1e-3, 1e-2], vec![1.0, 2.0, 3.0], vec![1.0]),
            (vec![1e-300, 1e300], vec![-1e300, 1e300], vec![0.0, 0.0]),
        ];
        for (lrs, losses, smoothed) in &cases {
            let mut p = plot(lrs, losses, smoothed);
            let svg = range_test_svg(&p).unwrap();
            assert!(svg.starts_with("<svg"));
            p.suggestion = Some(Suggestion {
                lr: f64::NAN,
                loss: f64::INFINITY,
                label: String::new(),
            });
            range_test_svg(&p).unwrap();
        }
        let (lrs, losses, smoothed) = (&cases[0].0, &cases[0].1, &cases[0].2);
        let svg = range_test_svg(&plot(lrs, losses, smoothed)).unwrap();
        assert!(svg.contains("no finite loss values"));
    }
}
