//! The stability check (`lrfind check`): every seed's smoothed curve with its suggestion, and
//! the band between the lowest and highest suggestion.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::layout::Layout;
use super::output::{draw_err, save, to_svg, Figure};
use super::scale::{finite_span, interpolate, loss_view, Axis};
use super::style::{self, Boxed, Mark, Panel, Series};
use super::{format, PlotError};

/// One seed's curve in the stability check.
#[derive(Debug, Clone)]
pub struct CheckCurve<'a> {
    /// Legend entry, e.g. "seed 0".
    pub label: String,
    /// The learning rates tried, one per step.
    pub lrs: &'a [f64],
    /// The smoothed loss at each of `lrs`.
    pub smoothed: &'a [f64],
    /// This seed's suggested LR, if it gave one.
    pub suggestion: Option<f64>,
}

/// Every seed's smoothed curve, its suggestion, and the baseline suggestion if any.
#[derive(Debug, Clone)]
pub struct CheckPlot<'a> {
    /// One curve per seed.
    pub curves: Vec<CheckCurve<'a>>,
    /// A reference LR to mark with a dashed line, if any.
    pub baseline: Option<f64>,
    /// Figure title.
    pub title: String,
    /// What the y axis measures, e.g. "smoothed loss" or "smoothed validation loss".
    pub y_label: String,
}

/// Writes the check figure to `path` (`.png` or `.svg`, by extension).
pub fn check(path: &Path, plot: &CheckPlot) -> Result<(), PlotError> {
    save(path, plot)
}

/// The check figure as an SVG document.
pub fn check_svg(plot: &CheckPlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for CheckPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<Layout, PlotError> {
        draw(root, self)
    }
}

fn usable(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &CheckPlot,
) -> Result<Layout, PlotError> {
    let lrs = p
        .curves
        .iter()
        .flat_map(|c| c.lrs.iter().copied().chain(c.suggestion))
        .chain(p.baseline)
        .filter(|&v| usable(v));
    let Some((lr_lo, lr_hi)) = finite_span(lrs) else {
        return style::empty(root, &p.title, "no curves to plot");
    };
    let curves: Vec<Vec<f64>> = p.curves.iter().map(|c| c.smoothed.to_vec()).collect();
    let Some((y_lo, y_hi)) = loss_view(&curves, &[]) else {
        return style::empty(root, &p.title, "no finite loss values to plot");
    };
    let x = Axis::log(lr_lo, lr_hi);
    let y = Axis::linear(y_lo, y_hi);
    let mut layout = Layout::default();
    let area = style::titled(root, &p.title, &mut layout)?;

    let sugg: Vec<f64> = p
        .curves
        .iter()
        .filter_map(|c| c.suggestion)
        .filter(|&v| usable(v))
        .collect();
    let band = finite_span(sugg.iter().copied());
    let band_color = style::series_color(7).mix(0.18);
    let mut entries = Vec::new();
    if let Some((s_lo, s_hi)) = band {
        entries.push((
            Mark::Band(band_color),
            format!("suggestions {} – {}", format::lr(s_lo), format::lr(s_hi)),
        ));
    }
    let mut series = Vec::new();
    let mut avoid = Vec::new();
    for (i, c) in p.curves.iter().enumerate() {
        let color = style::series_color(i);
        let points: Vec<Option<(f64, f64)>> = c
            .lrs
            .iter()
            .zip(c.smoothed)
            .map(|(&lr, &v)| Some((x.coord(lr)?, y.coord(v)?)))
            .collect();
        let s = color.stroke_width(2);
        entries.push((Mark::Line(s), c.label.clone()));
        if let Some(xc) = c.suggestion.filter(|&v| usable(v)).and_then(|v| x.coord(v)) {
            avoid.push(style::vline_path(xc));
        }
        series.push(Series {
            points,
            style: s,
            dots: None,
        });
    }
    let dark = style::DARK.stroke_width(2);
    let baseline = p.baseline.filter(|&v| usable(v));
    if let Some(b) = baseline {
        entries.push((Mark::Dashed(dark), format!("baseline {}", format::lr(b))));
        if let Some(xc) = x.coord(b) {
            avoid.push(style::vline_path(xc));
        }
    }
    let mut framed = style::framed(
        &area,
        &Panel {
            x: &x,
            y: &y,
            x_desc: Some("learning rate (log scale)"),
            y_desc: &p.y_label,
        },
        &series,
        &avoid,
        vec![Boxed::Legend(entries)],
    )?;
    let y = framed.y.clone();
    // The band under the guides (drawn after the curves here, but translucent).
    if let (Some((s_lo, s_hi)), true) = (band, !sugg.is_empty()) {
        if let (Some(a), Some(b)) = (x.coord(s_lo), x.coord(s_hi)) {
            let (y0, y1) = y.range();
            framed
                .chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, y0), (b.max(a), y1)],
                    band_color.filled(),
                )))
                .map_err(draw_err)?;
        }
    }
    for (i, (c, s)) in p.curves.iter().zip(&series).enumerate() {
        let color = style::series_color(i);
        if let Some(xc) = c.suggestion.filter(|&v| usable(v)).and_then(|v| x.coord(v)) {
            style::vline(&mut framed.chart, &y, xc, color.mix(0.6).stroke_width(1))?;
            let curve: Vec<(f64, f64)> = s.points.iter().flatten().copied().collect();
            if let Some(yc) = interpolate(&curve, xc).filter(|&c| y.contains(c)) {
                style::highlight(&mut framed.chart, (xc, yc), 5, color)?;
            }
        }
    }
    if let Some(xc) = baseline.and_then(|v| x.coord(v)) {
        style::vline(&mut framed.chart, &y, xc, dark)?;
    }
    layout.panels.push(framed.finish()?);
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_band_and_baseline_are_drawn() {
        let lrs: Vec<f64> = (0..50)
            .map(|i| 1e-5 * 10f64.powf(i as f64 / 10.0))
            .collect();
        let a: Vec<f64> = lrs
            .iter()
            .map(|l| 2.3 - 1.5 / (1.0 + (-(l.log10() + 2.5) * 3.0).exp()))
            .collect();
        let b: Vec<f64> = a.iter().map(|v| v + 0.05).collect();
        let svg = check_svg(&CheckPlot {
            curves: vec![
                CheckCurve {
                    label: "seed 0".into(),
                    lrs: &lrs,
                    smoothed: &a,
                    suggestion: Some(3e-3),
                },
                CheckCurve {
                    label: "seed 1".into(),
                    lrs: &lrs,
                    smoothed: &b,
                    suggestion: Some(4e-3),
                },
            ],
            baseline: Some(2e-3),
            title: "check".into(),
            y_label: "smoothed loss".into(),
        })
        .unwrap();
        for s in ["seed 0", "seed 1", "suggestions", "baseline 2e-3"] {
            assert!(svg.contains(s), "missing {s}");
        }
        // Dashed guides are drawn as many two-point segments.
        let dashes = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.matches(',').count() == 2);
        assert!(dashes.count() >= 30, "no dashed lines");
        let none = check_svg(&CheckPlot {
            curves: vec![],
            baseline: None,
            title: "x".into(),
            y_label: "smoothed loss".into(),
        })
        .unwrap();
        assert!(none.contains("no curves"));
    }
}
