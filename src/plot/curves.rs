//! Per-epoch training curves (`lrfind train`): losses, accuracy and LR against epoch.

use std::path::Path;

use plotters::chart::SeriesLabelPosition;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::output::{save, to_svg, Figure};
use super::scale::{finite_span, padded, Axis};
use super::style::{self, Panel};
use super::PlotError;

/// One training run, one entry per finished epoch.
#[derive(Debug, Clone)]
pub struct CurvesPlot<'a> {
    pub epochs: &'a [usize],
    pub train_loss: &'a [f64],
    pub val_loss: &'a [f64],
    /// In [0, 1]; drawn as percent.
    pub val_accuracy: &'a [f64],
    pub lr: &'a [f64],
    pub title: String,
}

pub fn curves(path: &Path, plot: &CurvesPlot) -> Result<(), PlotError> {
    save(path, plot)
}

pub fn curves_svg(plot: &CurvesPlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for CurvesPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 900)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw(root, self)
    }
}

/// One labelled per-epoch series: a line with a dot at each epoch (`None` values are gaps).
fn epoch_line<DB: DrawingBackend>(
    chart: &mut style::Chart<DB>,
    x: &Axis,
    y: &Axis,
    epochs: &[usize],
    values: &[f64],
    color: RGBColor,
    label: &str,
) -> Result<(), PlotError> {
    let points: Vec<Option<(f64, f64)>> = epochs
        .iter()
        .zip(values)
        .map(|(&e, &v)| y.coord(v).map(|c| (e as f64, c)))
        .collect();
    style::line(chart, x, y, &points, color.stroke_width(3), Some(label))?;
    style::markers(chart, x, y, &points, 4, color)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &CurvesPlot,
) -> Result<(), PlotError> {
    let Some((e_lo, e_hi)) = finite_span(p.epochs.iter().map(|&e| e as f64)) else {
        return style::empty(root, &p.title, "no finished epoch to plot");
    };
    // One epoch still gets a readable axis around it.
    let x = Axis::integer(e_lo - 0.5, e_hi + 0.5);
    let area = style::titled(root, &p.title)?;
    let panels = area.split_evenly((3, 1));

    // Losses.
    let losses = p
        .train_loss
        .iter()
        .chain(p.val_loss)
        .copied()
        .filter(|v| v.is_finite());
    if let Some((lo, hi)) = finite_span(losses) {
        let (lo, hi) = padded(lo, hi, 0.08);
        let y = Axis::linear(lo.max(0.0), hi);
        let mut chart = style::panel(
            &panels[0],
            &Panel {
                x: &x,
                y: &y,
                x_desc: None,
                y_desc: "loss",
            },
        )?;
        epoch_line(
            &mut chart,
            &x,
            &y,
            p.epochs,
            p.train_loss,
            style::BLUE,
            "train loss",
        )?;
        let orange = style::series_color(1);
        epoch_line(
            &mut chart,
            &x,
            &y,
            p.epochs,
            p.val_loss,
            orange,
            "validation loss",
        )?;
        style::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }

    // Accuracy, in percent.
    let acc: Vec<f64> = p.val_accuracy.iter().map(|a| a * 100.0).collect();
    if let Some((lo, hi)) = finite_span(acc.iter().copied()) {
        let (lo, hi) = padded(lo, hi, 0.15);
        let y = Axis::linear(lo.max(0.0), hi.min(100.0).max(lo + 0.1));
        let mut chart = style::panel(
            &panels[1],
            &Panel {
                x: &x,
                y: &y,
                x_desc: None,
                y_desc: "val accuracy (%)",
            },
        )?;
        let green = style::series_color(2);
        epoch_line(
            &mut chart,
            &x,
            &y,
            p.epochs,
            &acc,
            green,
            "validation accuracy",
        )?;
        style::legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }

    // Learning rate: log scale when it spans more than a decade.
    let lrs = p.lr.iter().copied().filter(|v| v.is_finite() && *v > 0.0);
    if let Some((lo, hi)) = finite_span(lrs) {
        let y = if hi / lo > 10.0 {
            Axis::log(lo, hi)
        } else {
            Axis::linear(0.0, hi * 1.1)
        };
        let mut chart = style::panel(
            &panels[2],
            &Panel {
                x: &x,
                y: &y,
                x_desc: Some("epoch"),
                y_desc: "learning rate",
            },
        )?;
        let purple = style::series_color(4);
        epoch_line(
            &mut chart,
            &x,
            &y,
            p.epochs,
            p.lr,
            purple,
            "LR at epoch start",
        )?;
        style::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_panels_with_labels_and_a_single_epoch_works() {
        let svg = curves_svg(&CurvesPlot {
            epochs: &[1, 2, 3],
            train_loss: &[0.5, 0.2, 0.1],
            val_loss: &[0.3, 0.2, 0.15],
            val_accuracy: &[0.9, 0.95, 0.97],
            lr: &[0.1, 0.01, 0.001],
            title: "run".into(),
        })
        .unwrap();
        for s in [
            "train loss",
            "validation loss",
            "validation accuracy",
            "learning rate",
            "epoch",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
        let one = curves_svg(&CurvesPlot {
            epochs: &[1],
            train_loss: &[0.5],
            val_loss: &[f64::NAN],
            val_accuracy: &[0.9],
            lr: &[0.1],
            title: "one".into(),
        })
        .unwrap();
        assert!(one.contains("validation accuracy"));
        assert!(curves_svg(&CurvesPlot {
            epochs: &[],
            train_loss: &[],
            val_loss: &[],
            val_accuracy: &[],
            lr: &[],
            title: "none".into()
        })
        .unwrap()
        .contains("no finished epoch"));
    }

    #[test]
    fn png_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("curves.png");
        curves(
            &p,
            &CurvesPlot {
                epochs: &[1, 2],
                train_loss: &[1.0, 0.5],
                val_loss: &[0.9, 0.6],
                val_accuracy: &[0.5, 0.7],
                lr: &[0.1, 0.1],
                title: "t".into(),
            },
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
