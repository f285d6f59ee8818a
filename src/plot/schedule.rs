//! A learning-rate schedule step by step (`lrfind schedule`): one line per param group, and
//! momentum in a second panel when the schedule cycles it.

use std::path::Path;

use plotters::chart::SeriesLabelPosition;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::output::{save, to_svg, Figure};
use super::scale::{finite_span, padded, Axis};
use super::style::{self, Panel};
use super::PlotError;

#[derive(Debug, Clone)]
pub struct SchedulePlot<'a> {
    /// Rows = steps (row 0 after construction), columns = param groups.
    pub lr: &'a [Vec<f64>],
    pub momentum: Option<&'a [Vec<f64>]>,
    pub title: String,
}

pub fn schedule(path: &Path, plot: &SchedulePlot) -> Result<(), PlotError> {
    save(path, plot)
}

pub fn schedule_svg(plot: &SchedulePlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for SchedulePlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, if self.momentum.is_some() { 800 } else { 520 })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw(root, self)
    }
}

fn group_lines<DB: DrawingBackend>(
    chart: &mut style::Chart<DB>,
    x: &Axis,
    y: &Axis,
    rows: &[Vec<f64>],
    what: &str,
) -> Result<(), PlotError> {
    let groups = rows.iter().map(Vec::len).max().unwrap_or(0);
    for g in 0..groups {
        let pts: Vec<Option<(f64, f64)>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| r.get(g).and_then(|&v| y.coord(v)).map(|c| (i as f64, c)))
            .collect();
        let label = if groups > 1 {
            format!("{what}, group {g}")
        } else {
            what.to_string()
        };
        style::line(
            chart,
            x,
            y,
            &pts,
            style::series_color(g).stroke_width(2),
            Some(&label),
        )?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &SchedulePlot,
) -> Result<(), PlotError> {
    let Some((lo, hi)) = finite_span(p.lr.iter().flatten().copied()) else {
        return style::empty(root, &p.title, "no learning rates to plot");
    };
    let x = Axis::integer(0.0, (p.lr.len().max(2) - 1) as f64);
    let area = style::titled(root, &p.title)?;
    let (top, bottom) = match p.momentum {
        Some(_) => {
            let (a, b) = area.split_vertically(area.dim_in_pixel().1 * 3 / 5);
            (a, Some(b))
        }
        None => (area, None),
    };
    // From zero (LRs are never negative), with a little room above the peak.
    let (ylo, yhi) = padded(lo.min(0.0), hi, 0.05);
    let y = Axis::linear(if lo >= 0.0 { ylo.max(0.0) } else { ylo }, yhi);
    let mut chart = style::panel(
        &top,
        &Panel {
            x: &x,
            y: &y,
            x_desc: bottom.is_none().then_some("step"),
            y_desc: "learning rate",
        },
    )?;
    group_lines(&mut chart, &x, &y, p.lr, "lr")?;
    style::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    if let (Some(rows), Some(area)) = (p.momentum, bottom) {
        if let Some((mlo, mhi)) = finite_span(rows.iter().flatten().copied()) {
            let (mlo, mhi) = padded(mlo, mhi, 0.1);
            let y = Axis::linear(mlo, mhi);
            let mut chart = style::panel(
                &area,
                &Panel {
                    x: &x,
                    y: &y,
                    x_desc: Some("step"),
                    y_desc: "momentum",
                },
            )?;
            group_lines(&mut chart, &x, &y, rows, "momentum")?;
            // Momentum moves against the LR: where the LR panel is empty, this one is full.
            style::legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_momentum_are_labelled() {
        let lr = vec![vec![0.1, 0.01], vec![0.05, 0.005], vec![0.025, 0.0025]];
        let m = vec![vec![0.9, 0.9], vec![0.85, 0.85], vec![0.95, 0.95]];
        let svg = schedule_svg(&SchedulePlot {
            lr: &lr,
            momentum: Some(&m),
            title: "StepLR".into(),
        })
        .unwrap();
        for s in ["lr, group 0", "lr, group 1", "momentum, group 1", "step"] {
            assert!(svg.contains(s), "missing {s}");
        }
        let empty: Vec<Vec<f64>> = vec![];
        assert!(schedule_svg(&SchedulePlot {
            lr: &empty,
            momentum: None,
            title: "x".into()
        })
        .unwrap()
        .contains("no learning rates"));
    }
}
