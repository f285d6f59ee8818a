//! A learning-rate schedule step by step (`lrfind schedule`): one line per param group, and
//! momentum in a second panel when the schedule cycles it.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::layout::Layout;
use super::output::{save, to_svg, Figure};
use super::scale::{finite_span, padded, Axis};
use super::style::{self, Boxed, Mark, Panel, Series};
use super::PlotError;

/// A schedule's learning rate (and momentum) at every step, one column per param group.
#[derive(Debug, Clone)]
pub struct SchedulePlot<'a> {
    /// Rows = steps (row 0 after construction), columns = param groups.
    pub lr: &'a [Vec<f64>],
    /// Momentum (or Adam's beta1) in the same layout, for schedules that cycle it.
    pub momentum: Option<&'a [Vec<f64>]>,
    /// Usually the scheduler's spec; wrapped onto more lines when too long for the width.
    pub title: String,
    /// A log-scale LR axis, so 1e-3 and 1e-4 stay apart (zero LRs are then left out).
    pub log_y: bool,
}

/// Writes the schedule figure to `path` (`.png` or `.svg`, by extension).
pub fn schedule(path: &Path, plot: &SchedulePlot) -> Result<(), PlotError> {
    save(path, plot)
}

/// The schedule figure as an SVG document.
pub fn schedule_svg(plot: &SchedulePlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for SchedulePlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, if self.momentum.is_some() { 800 } else { 520 })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<Layout, PlotError> {
        draw(root, self)
    }
}

/// A group's values as the optimizer sees them: row `i`'s value holds from step `i` until step
/// `i + 1` replaces it, so the line is a staircase (StepLR's drops are vertical, not slanted).
/// Equal neighbours share one horizontal run, with no repeated corners (a zero-length segment
/// makes a notch in a thick plotters line); a value off the axis (zero on a log axis) is a gap.
fn staircase(y: &Axis, values: impl Iterator<Item = Option<f64>>) -> Vec<Option<(f64, f64)>> {
    let mut out: Vec<Option<(f64, f64)>> = Vec::new();
    for (i, v) in values.enumerate() {
        let (x0, x1) = (i as f64, i as f64 + 1.0);
        match v.and_then(|v| y.coord(v)) {
            None => out.push(None),
            Some(c) => match out.last_mut() {
                Some(Some(last)) if last.1 == c => last.0 = x1,
                _ => out.extend([Some((x0, c)), Some((x1, c))]),
            },
        }
    }
    out
}

/// One series per param group, and the legend naming them; a single group needs no legend
/// (the y axis says what the line is).
fn group_lines(y: &Axis, rows: &[Vec<f64>], what: &str) -> (Vec<Series>, Vec<Boxed>) {
    let groups = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut series = Vec::new();
    let mut entries = Vec::new();
    for g in 0..groups {
        let points = staircase(y, rows.iter().map(|r| r.get(g).copied()));
        let style = style::series_color(g).stroke_width(2);
        entries.push((Mark::Line(style), format!("{what}, group {g}")));
        series.push(Series {
            points,
            style,
            dots: None,
        });
    }
    let boxes = if groups > 1 {
        vec![Boxed::Legend(entries)]
    } else {
        Vec::new()
    };
    (series, boxes)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &SchedulePlot,
) -> Result<Layout, PlotError> {
    let Some((lo, hi)) = finite_span(p.lr.iter().flatten().copied()) else {
        return style::empty(root, &p.title, "no learning rates to plot");
    };
    // Row i holds from step i to i + 1: the axis ends where the last row's step does.
    let x = Axis::integer(0.0, p.lr.len().max(1) as f64);
    let mut layout = Layout::default();
    let area = style::titled(root, &p.title, &mut layout)?;
    let (top, bottom) = match p.momentum {
        Some(_) => {
            let (a, b) = area.split_vertically(area.dim_in_pixel().1 * 3 / 5);
            (a, Some(b))
        }
        None => (area, None),
    };
    let positive = finite_span(p.lr.iter().flatten().copied().filter(|v| *v > 0.0));
    let (y, y_desc) = match (p.log_y, positive) {
        (true, Some((plo, phi))) => (Axis::log(plo / 1.5, phi * 1.5), "learning rate (log scale)"),
        _ => {
            // From zero (LRs are never negative), with a little room above the peak.
            let (ylo, yhi) = padded(lo.min(0.0), hi, 0.05);
            (
                Axis::linear(if lo >= 0.0 { ylo.max(0.0) } else { ylo }, yhi),
                "learning rate",
            )
        }
    };
    let (series, boxes) = group_lines(&y, p.lr, "lr");
    let framed = style::framed(
        &top,
        &Panel {
            x: &x,
            y: &y,
            x_desc: bottom.is_none().then_some("step"),
            y_desc,
        },
        &series,
        &[],
        boxes,
    )?;
    layout.panels.push(framed.finish()?);
    if let (Some(rows), Some(area)) = (p.momentum, bottom) {
        if let Some((mlo, mhi)) = finite_span(rows.iter().flatten().copied()) {
            let (mlo, mhi) = padded(mlo, mhi, 0.1);
            let y = Axis::linear(mlo, mhi);
            let (series, boxes) = group_lines(&y, rows, "momentum");
            let framed = style::framed(
                &area,
                &Panel {
                    x: &x,
                    y: &y,
                    x_desc: Some("step"),
                    y_desc: "momentum",
                },
                &series,
                &[],
                boxes,
            )?;
            layout.panels.push(framed.finish()?);
        }
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::layout::Rect;
    use crate::plot::output::render_svg;

    /// CosineAnnealingWarmRestarts(T_0=10, T_mult=2): rows 0..=70, the last one a restart.
    fn warm_restarts(base: f64) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        let (mut t, mut len) = (0usize, 10usize);
        for _ in 0..71 {
            let lr = base * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / len as f64).cos());
            out.push(vec![lr]);
            t += 1;
            if t == len {
                t = 0;
                len *= 2;
            }
        }
        out
    }

    #[test]
    fn a_long_spec_title_is_wrapped_within_the_canvas() {
        let lr = warm_restarts(0.1);
        let spec = "SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95), milestones=[5])";
        let plot = SchedulePlot {
            lr: &lr,
            momentum: None,
            title: spec.into(),
            log_y: false,
        };
        let (svg, layout) = render_svg(&plot).unwrap();
        let canvas = Rect::new(0, 0, 900, 520);
        assert!(layout.title.len() >= 2, "{:?}", layout.title);
        for (line, r) in &layout.title {
            assert!(r.inside(&canvas), "{line}: {r:?}");
            assert!(svg.contains(line.as_str()));
            assert!(r.width() as f64 >= crate::plot::text::width(line, 24.0, true) - 1.0);
        }
        let words: Vec<&str> = layout.title.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(words.join(" "), spec);
    }

    #[test]
    fn one_group_has_no_legend_and_a_legend_never_covers_the_curve() {
        let lr = warm_restarts(0.1);
        let (svg, layout) = render_svg(&SchedulePlot {
            lr: &lr,
            momentum: None,
            title: "CosineAnnealingWarmRestarts(T_0=10, T_mult=2)".into(),
            log_y: false,
        })
        .unwrap();
        assert!(layout.panels[0].boxes.is_empty());
        assert!(!svg.contains("group 0"));
        // Two groups whose restarts reach the top everywhere: the legend still finds room.
        let two: Vec<Vec<f64>> = lr
            .iter()
            .zip(warm_restarts(0.05))
            .map(|(a, b)| vec![a[0], b[0]])
            .collect();
        let (svg, layout) = render_svg(&SchedulePlot {
            lr: &two,
            momentum: None,
            title: "x".into(),
            log_y: false,
        })
        .unwrap();
        let panel = &layout.panels[0];
        let legend = panel.legend().unwrap();
        assert!(svg.contains("lr, group 1"));
        assert!(legend.rect.inside(&panel.plot));
        assert!(!panel.data.is_empty());
        let covered = panel
            .data
            .iter()
            .filter(|p| legend.rect.contains(**p))
            .count();
        assert_eq!(covered, 0, "legend {:?}", legend.rect);
    }

    #[test]
    fn groups_and_momentum_are_labelled() {
        let lr = vec![vec![0.1, 0.01], vec![0.05, 0.005], vec![0.025, 0.0025]];
        let m = vec![vec![0.9, 0.9], vec![0.85, 0.85], vec![0.95, 0.95]];
        let svg = schedule_svg(&SchedulePlot {
            lr: &lr,
            momentum: Some(&m),
            title: "StepLR".into(),
            log_y: false,
        })
        .unwrap();
        for s in ["lr, group 0", "lr, group 1", "momentum, group 1", "step"] {
            assert!(svg.contains(s), "missing {s}");
        }
        let empty: Vec<Vec<f64>> = vec![];
        assert!(schedule_svg(&SchedulePlot {
            lr: &empty,
            momentum: None,
            title: "x".into(),
            log_y: false,
        })
        .unwrap()
        .contains("no learning rates"));
    }

    /// The `points` of every `<polyline>` in `color`, parsed.
    fn polylines(svg: &str, color: &str) -> Vec<Vec<(f64, f64)>> {
        svg.lines()
            .filter(|l| l.contains("<polyline") && l.contains(color))
            .filter_map(|l| {
                let pts = l.split("points=\"").nth(1)?.split('"').next()?;
                Some(
                    pts.split_whitespace()
                        .filter_map(|p| {
                            let (a, b) = p.split_once(',')?;
                            Some((a.parse().ok()?, b.parse().ok()?))
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn step_lr_is_a_staircase_and_log_y_separates_small_lrs() {
        // StepLR(step_size=30, gamma=0.1) from 0.1 over 100 steps.
        let lr: Vec<Vec<f64>> = (0..100).map(|i| vec![0.1 * 0.1f64.powi(i / 30)]).collect();
        let plot = |log_y| SchedulePlot {
            lr: &lr,
            momentum: None,
            title: "StepLR(step_size=30, gamma=0.1)".into(),
            log_y,
        };
        let blue = "stroke=\"#1F77B4\"";
        for log_y in [false, true] {
            let (svg, layout) = render_svg(&plot(log_y)).unwrap();
            let pts: Vec<(f64, f64)> = polylines(&svg, blue).into_iter().flatten().collect();
            assert!(pts.len() >= 8, "{pts:?}");
            // Every segment is horizontal or vertical: no slanted drop.
            for w in pts.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                assert!(x0 == x1 || y0 == y1, "slanted segment {w:?}");
            }
            // Four levels, each a horizontal run: 0.1, 0.01, 1e-3, 1e-4.
            let mut levels: Vec<f64> = pts.iter().map(|p| p.1).collect();
            levels.sort_by(f64::total_cmp);
            levels.dedup();
            assert_eq!(levels.len(), 4, "{levels:?}");
            let y = &layout.panels[0].y;
            assert_eq!(y.is_log(), log_y);
            assert_eq!(svg.contains("learning rate (log scale)"), log_y);
            // On a log axis 1e-3 and 1e-4 are as far apart as 0.1 and 0.01; on a linear one
            // they are a small fraction of that.
            let px = |v: f64| y.coord(v).unwrap();
            let gap = |a, b| (px(a) - px(b)).abs() / (px(0.1) - px(0.01)).abs();
            if log_y {
                assert!((gap(1e-3, 1e-4) - 1.0).abs() < 1e-9);
            } else {
                assert!(gap(1e-3, 1e-4) < 0.02);
            }
        }
    }
}
