//! The stability check (`lrfind check`): every seed's smoothed curve with its suggestion, and
//! the band between the lowest and highest suggestion.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::layout::{wrap, Layout};
use super::output::{draw_err, save, to_svg, Figure};
use super::scale::{finite_span, interpolate, loss_view, Axis};
use super::style::{self, Boxed, Mark, Panel, Series};
use super::{format, PlotError};

/// Green of a stable verdict and of the baseline's tolerance band.
const GREEN: RGBColor = RGBColor(44, 160, 44);

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
    /// The median suggestion (the check's answer), drawn as a solid line.
    pub median: Option<f64>,
    /// How far (decades, log10) the median may drift from `baseline`: a band around it.
    pub tolerance: Option<f64>,
    /// The verdict written on the figure: `(stable, text)`, e.g. `(false, "UNSTABLE: …")`.
    pub verdict: Option<(bool, String)>,
}

impl<'a> CheckPlot<'a> {
    /// A figure of `curves` and nothing else marked (set the other fields to add them).
    pub fn new(curves: Vec<CheckCurve<'a>>, title: impl Into<String>) -> Self {
        Self {
            curves,
            baseline: None,
            title: title.into(),
            y_label: "smoothed loss".into(),
            median: None,
            tolerance: None,
            verdict: None,
        }
    }
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
    let all_lrs = p
        .curves
        .iter()
        .flat_map(|c| c.lrs.iter().copied().chain(c.suggestion))
        .chain(p.baseline)
        .filter(|&v| usable(v));
    if finite_span(all_lrs).is_none() {
        return style::empty(root, &p.title, "no curves to plot");
    }
    let curves: Vec<Vec<f64>> = p.curves.iter().map(|c| c.smoothed.to_vec()).collect();
    let Some((y_lo, y_hi)) = loss_view(&curves, &[]) else {
        return style::empty(root, &p.title, "no finite loss values to plot");
    };
    let baseline = p.baseline.filter(|&v| usable(v));
    let median = p.median.filter(|&v| usable(v));
    let tol_band = baseline
        .zip(p.tolerance.filter(|t| t.is_finite() && *t > 0.0))
        .map(|(b, t)| (b / 10f64.powf(t), b * 10f64.powf(t)));
    let sugg: Vec<f64> = p
        .curves
        .iter()
        .filter_map(|c| c.suggestion)
        .filter(|&v| usable(v))
        .collect();
    // The x axis spans what is visible: each curve up to where it leaves the top of the view
    // (a range test's blow-up continues to max_lr off the chart), and every marker.
    let visible = p.curves.iter().flat_map(|c| {
        let mut out = Vec::new();
        let mut last_in = None;
        for (i, (&lr, &v)) in c.lrs.iter().zip(c.smoothed).enumerate() {
            if v.is_finite() && v <= y_hi {
                out.push(lr);
                last_in = Some(i);
            }
        }
        out.extend(last_in.and_then(|i| c.lrs.get(i + 1)).copied());
        out
    });
    let lrs = visible
        .chain(sugg.iter().copied())
        .chain(baseline)
        .chain(median)
        .chain(tol_band.map(|b| b.0))
        .chain(tol_band.map(|b| b.1))
        .filter(|&v| usable(v));
    let Some((lr_lo, lr_hi)) = finite_span(lrs) else {
        return style::empty(root, &p.title, "no finite loss values to plot");
    };
    let x = Axis::log(lr_lo, lr_hi);
    let y = Axis::linear(y_lo, y_hi);
    let mut layout = Layout::default();
    let area = style::titled(root, &p.title, &mut layout)?;

    let band = finite_span(sugg.iter().copied());
    let band_color = style::series_color(7).mix(0.3);
    let tol_color = GREEN.mix(0.13);
    let dark = style::DARK.stroke_width(2);
    let mut entries = Vec::new();
    if let Some((s_lo, s_hi)) = band {
        entries.push((
            Mark::Band(band_color),
            format!("suggestions {} – {}", format::lr(s_lo), format::lr(s_hi)),
        ));
    }
    if let Some(m) = median {
        entries.push((Mark::Line(dark), format!("median {}", format::lr(m))));
    }
    if let Some(b) = baseline {
        entries.push((
            Mark::Dashed(style::MUTED.stroke_width(2)),
            format!("baseline {}", format::lr(b)),
        ));
    }
    if let (Some(_), Some(t)) = (tol_band, p.tolerance) {
        entries.push((
            Mark::Band(tol_color),
            format!("baseline ± {t} decades (tolerance)"),
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
    for v in median.iter().chain(&baseline) {
        if let Some(xc) = x.coord(*v) {
            avoid.push(style::vline_path(xc));
        }
    }
    let mut boxes = vec![Boxed::Legend(entries)];
    if let Some((stable, text)) = &p.verdict {
        let color = if *stable { GREEN } else { style::RED };
        boxes.push(Boxed::Note(
            wrap(text, style::NOTE_SIZE, false, 420.0, 4),
            color,
        ));
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
        boxes,
    )?;
    let y = framed.y.clone();
    let (y0, y1) = y.range();
    // A band at least 1.2 % of the axis wide, so agreeing seeds still show one.
    let (xa, xb) = x.range();
    let min_w = 0.012 * (xb - xa);
    let mut bands = Vec::new();
    if let Some((lo, hi)) = tol_band {
        bands.push((lo, hi, tol_color, 0.0));
    }
    if let (Some((s_lo, s_hi)), true) = (band, !sugg.is_empty()) {
        bands.push((s_lo, s_hi, band_color, min_w));
    }
    for (lo, hi, color, min_w) in bands {
        if let (Some(a), Some(b)) = (x.coord(lo), x.coord(hi)) {
            let (a, b) = if b - a < min_w {
                let mid = (a + b) / 2.0;
                (mid - min_w / 2.0, mid + min_w / 2.0)
            } else {
                (a, b)
            };
            framed
                .chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a.max(xa), y0), (b.min(xb), y1)],
                    color.filled(),
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
        style::vline(&mut framed.chart, &y, xc, style::MUTED.stroke_width(2))?;
    }
    if let Some(xc) = median.and_then(|v| x.coord(v)) {
        framed
            .chart
            .draw_series(LineSeries::new(vec![(xc, y0), (xc, y1)], dark))
            .map_err(draw_err)?;
    }
    layout.panels.push(framed.finish()?);
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::output::render_svg;

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
            median: Some(3.5e-3),
            tolerance: Some(0.25),
            verdict: Some((true, "verdict: stable".into())),
        })
        .unwrap();
        for s in [
            "seed 0",
            "seed 1",
            "suggestions",
            "baseline 2e-3",
            "median 3.5e-3",
            "baseline ± 0.25 decades (tolerance)",
            "verdict: stable",
        ] {
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
            median: None,
            tolerance: None,
            verdict: None,
        })
        .unwrap();
        assert!(none.contains("no curves"));
    }

    /// Seeds that agree, a blow-up continuing to 10 off the top of the view, and an unstable
    /// verdict: the band is visible, the axis ends near where the curves leave the view.
    #[test]
    fn a_narrow_band_shows_and_the_axis_ends_with_the_curves() {
        let lrs: Vec<f64> = (0..71)
            .map(|i| 1e-5 * 10f64.powf(i as f64 / 10.0))
            .collect();
        // Falls around 3e-3, blows up past 0.3 (to 1e3 at 10).
        let loss = |l: f64| {
            let t = l.log10();
            let blow = if t > -0.5 {
                10f64.powf((t + 0.5) * 2.0) - 1.0
            } else {
                0.0
            };
            2.3 - 1.5 / (1.0 + (-(t + 2.5) * 3.0).exp()) + blow
        };
        let a: Vec<f64> = lrs.iter().map(|&l| loss(l)).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 0.02).collect();
        let curves = vec![
            CheckCurve {
                label: "seed 0".into(),
                lrs: &lrs,
                smoothed: &a,
                suggestion: Some(3.30e-3),
            },
            CheckCurve {
                label: "seed 1".into(),
                lrs: &lrs,
                smoothed: &b,
                suggestion: Some(3.31e-3),
            },
        ];
        let mut plot = CheckPlot::new(curves, "check");
        plot.median = Some(3.305e-3);
        plot.verdict = Some((false, "verdict: UNSTABLE: drifted".into()));
        let (svg, layout) = render_svg(&plot).unwrap();
        let panel = &layout.panels[0];
        // The x axis stops within a step or two of where the curves leave the view (~0.7),
        // not at 10.
        let (_, hi) = panel.x.range();
        assert!(hi < 0.2, "x axis runs to 10^{hi}");
        // The suggestion band: a grey rectangle at least 1 % of the plot wide.
        let grey = "fill=\"#7F7F7F\"";
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.contains("<rect") && l.contains(grey))
            .filter_map(|l| l.split("width=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        let plot_w = f64::from(panel.plot.width());
        assert!(
            widths
                .iter()
                .any(|&w| w >= 0.01 * plot_w && w < 0.1 * plot_w),
            "{widths:?}"
        );
        // The verdict is on the figure, in red, clear of the data.
        assert!(svg.contains("verdict: UNSTABLE: drifted"));
        let note = panel.boxes.iter().find(|b| !b.legend).unwrap();
        assert_eq!(
            panel
                .data
                .iter()
                .filter(|p| note.rect.contains(**p))
                .count(),
            0
        );
        assert!(svg.contains(&format!("median {}", format::lr(3.305e-3))));
    }
}
