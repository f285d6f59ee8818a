//! Per-epoch training curves (`lrfind train`): losses, accuracy and LR against epoch.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::layout::Layout;
use super::output::{save, to_svg, Figure};
use super::scale::{finite_span, padded, Axis};
use super::style::{self, Boxed, Mark, Panel, Series};
use super::PlotError;

/// The metric drawn under the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvalMetric {
    /// Classification accuracy, in [0, 1].
    #[default]
    Accuracy,
    /// Root mean squared error (regression).
    Rmse,
}

/// One training run, one entry per finished epoch (epoch `e` is drawn at x = e, the end of
/// its training; the LR it trained with spans e - 1 to e).
#[derive(Debug, Clone)]
pub struct CurvesPlot<'a> {
    /// The finished epochs, 1-based.
    pub epochs: &'a [usize],
    /// Mean training loss of each epoch.
    pub train_loss: &'a [f64],
    /// Loss on the held-out split named by `eval_split`.
    pub eval_loss: &'a [f64],
    /// The split's metric per epoch, as `eval_metric` says: accuracy in [0, 1] (drawn as
    /// percent) or RMSE.
    pub eval_accuracy: &'a [f64],
    /// Which metric `eval_accuracy` holds.
    pub eval_metric: EvalMetric,
    /// What the held-out split is, as the labels should say it: "test" when the evaluation
    /// data is the test set, "validation" for a split carved from the training data.
    pub eval_split: String,
    /// LR at each epoch's first step.
    pub lr: &'a [f64],
    /// `(epoch position, LR)` of every optimizer step when the LR changes within epochs
    /// (step `j` of `n` in epoch `e` at `e - 1 + j / n`); empty to draw `lr` per epoch.
    pub step_lr: &'a [(f64, f64)],
    /// The training loss through each epoch, `(epoch position, loss)` (batch `j` of `n` in
    /// epoch `e` near `e - 1 + j / n`), already smoothed; drawn as a thin line under the
    /// per-epoch means. Empty for none.
    pub train_trace: &'a [(f64, f64)],
    /// The epoch with the lowest held-out loss, marked on the loss panel.
    pub best_epoch: Option<usize>,
    /// Usually the model, data, optimizer, LR and scheduler.
    pub title: String,
}

impl CurvesPlot<'_> {
    /// Whether the LR changed during the run; a constant LR gets no panel (the title says it).
    fn lr_varies(&self) -> bool {
        let values = self
            .lr
            .iter()
            .chain(self.step_lr.iter().map(|p| &p.1))
            .copied()
            .filter(|v| v.is_finite());
        finite_span(values).is_some_and(|(lo, hi)| hi > lo * (1.0 + 1e-12))
    }
}

/// Writes the curves figure to `path` (`.png` or `.svg`, by extension).
pub fn curves(path: &Path, plot: &CurvesPlot) -> Result<(), PlotError> {
    save(path, plot)
}

/// The curves figure as an SVG document.
pub fn curves_svg(plot: &CurvesPlot) -> Result<String, PlotError> {
    to_svg(plot)
}

impl Figure for CurvesPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (900, if self.lr_varies() { 900 } else { 660 })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<Layout, PlotError> {
        draw(root, self)
    }
}

/// A per-epoch series: a line with a dot at each epoch (non-finite values are gaps).
fn epoch_series(y: &Axis, epochs: &[usize], values: &[f64], color: RGBColor) -> Series {
    let points = epochs
        .iter()
        .zip(values)
        .map(|(&e, &v)| y.coord(v).map(|c| (e as f64, c)))
        .collect();
    Series {
        points,
        style: color.stroke_width(3),
        dots: Some((4, color)),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &CurvesPlot,
) -> Result<Layout, PlotError> {
    let Some((e_lo, e_hi)) = finite_span(p.epochs.iter().map(|&e| e as f64)) else {
        return style::empty(root, &p.title, "no finished epoch to plot");
    };
    let trace: Vec<(f64, f64)> = p
        .train_trace
        .iter()
        .copied()
        .filter(|(e, v)| e.is_finite() && v.is_finite())
        .collect();
    let lr_varies = p.lr_varies();
    // Epoch e's dot sits at its end. From where something is drawn: the start of the first
    // epoch when the trace or the LR fills it, else half an epoch before the first dot.
    let from = if trace.is_empty() && !lr_varies {
        e_lo - 0.5
    } else {
        e_lo - 1.0
    };
    let x = Axis::integer(from, e_hi + 0.04 * (e_hi - from));
    let mut layout = Layout::default();
    let area = style::titled(root, &p.title, &mut layout)?;
    let panels = area.split_evenly((if lr_varies { 3 } else { 2 }, 1));
    let split = p.eval_split.trim();
    let split = if split.is_empty() { "held-out" } else { split };

    // Losses: train and held-out, so the legend names both.
    let losses = p
        .train_loss
        .iter()
        .chain(p.eval_loss)
        .copied()
        .chain(trace.iter().map(|t| t.1))
        .filter(|v| v.is_finite());
    if let Some((lo, hi)) = finite_span(losses) {
        let (lo, hi) = padded(lo, hi, 0.08);
        let y = Axis::linear(lo.max(0.0), hi);
        let orange = style::series_color(1);
        let mut series = Vec::new();
        let mut entries = Vec::new();
        if !trace.is_empty() {
            let faint = style::BLUE.mix(0.5).stroke_width(1);
            series.push(Series {
                points: trace.iter().map(|&(e, v)| Some((e, y.coord(v)?))).collect(),
                style: faint,
                dots: None,
            });
            entries.push((Mark::Line(faint), "train loss (through the epoch)".into()));
        }
        let train = epoch_series(&y, p.epochs, p.train_loss, style::BLUE);
        let eval = epoch_series(&y, p.epochs, p.eval_loss, orange);
        entries.push((Mark::LineDot(train.style), "train loss (epoch mean)".into()));
        entries.push((Mark::LineDot(eval.style), format!("{split} loss")));
        series.extend([train, eval]);
        // The best epoch: a ring on its held-out loss.
        let best = p.best_epoch.and_then(|b| {
            let i = p.epochs.iter().position(|&e| e == b)?;
            let v = p.eval_loss.get(i).copied().filter(|v| v.is_finite())?;
            Some((b as f64, y.coord(v)?, v))
        });
        let green = style::series_color(2);
        if let Some((e, _, v)) = best {
            entries.push((
                Mark::Dot(green, 7, true),
                format!("best: epoch {e} ({split} loss {v:.4})"),
            ));
        }
        let avoid: Vec<Vec<Option<(f64, f64)>>> =
            best.iter().map(|&(e, c, _)| vec![Some((e, c))]).collect();
        let mut framed = style::framed(
            &panels[0],
            &Panel {
                x: &x,
                y: &y,
                x_desc: None,
                y_desc: "loss",
            },
            &series,
            &avoid,
            vec![Boxed::Legend(entries)],
        )?;
        if let Some((e, c, _)) = best.filter(|b| framed.y.contains(b.1)) {
            style::highlight(&mut framed.chart, (e, c), 7, green)?;
            style::highlight(&mut framed.chart, (e, c), 4, orange)?;
        }
        layout.panels.push(framed.finish()?);
    }

    // Accuracy in percent, or RMSE: one series, named by the axis.
    let percent = p.eval_metric == EvalMetric::Accuracy;
    let scale = if percent { 100.0 } else { 1.0 };
    let acc: Vec<f64> = p.eval_accuracy.iter().map(|a| a * scale).collect();
    if let Some((lo, hi)) = finite_span(acc.iter().copied()) {
        let (lo, hi) = padded(lo, hi, 0.15);
        let top = if percent { hi.min(100.0) } else { hi };
        let y = Axis::linear(lo.max(0.0), top.max(lo + 0.1 * scale / 100.0));
        let desc = if percent {
            format!("{split} accuracy (%)")
        } else {
            format!("{split} RMSE")
        };
        let framed = style::framed(
            &panels[1],
            &Panel {
                x: &x,
                y: &y,
                // The bottom panel when a constant LR has none.
                x_desc: (!lr_varies).then_some("epoch"),
                y_desc: &desc,
            },
            &[epoch_series(&y, p.epochs, &acc, style::series_color(2))],
            &[],
            Vec::new(),
        )?;
        layout.panels.push(framed.finish()?);
    }

    // Learning rate: every step when recorded, else a step function per epoch; log scale
    // when it spans more than a decade.
    let per_step: Vec<(f64, f64)> = p
        .step_lr
        .iter()
        .copied()
        .filter(|(e, v)| e.is_finite() && v.is_finite() && *v > 0.0)
        .collect();
    // Each epoch's LR held from e - 1 to e: a staircase, without repeated corners (a
    // zero-length segment makes a notch in a thick plotters line).
    let mut per_epoch: Vec<(f64, f64)> = Vec::new();
    for (&e, &v) in p.epochs.iter().zip(p.lr) {
        if !(v.is_finite() && v > 0.0) {
            continue;
        }
        let (start, end) = ((e as f64 - 1.0, v), (e as f64, v));
        match per_epoch.last_mut() {
            // The same LR as the epoch before: extend its step.
            Some(last) if *last == start => *last = end,
            _ => per_epoch.extend([start, end]),
        }
    }
    let pts = if per_step.is_empty() {
        &per_epoch
    } else {
        &per_step
    };
    let lr_span = finite_span(pts.iter().map(|p| p.1)).filter(|_| lr_varies);
    if let Some((lo, hi)) = lr_span {
        let log = hi / lo > 10.0;
        let y = if log {
            Axis::log(lo / 1.3, hi * 1.3)
        } else {
            Axis::linear(0.0, hi * 1.1)
        };
        let desc = if log {
            "learning rate (log scale)"
        } else {
            "learning rate"
        };
        let purple = style::series_color(4);
        let series = Series {
            points: pts.iter().map(|&(e, v)| Some((e, y.coord(v)?))).collect(),
            style: purple.stroke_width(if per_step.is_empty() { 3 } else { 2 }),
            dots: None,
        };
        let framed = style::framed(
            &panels[2],
            &Panel {
                x: &x,
                y: &y,
                x_desc: Some("epoch"),
                y_desc: desc,
            },
            &[series],
            &[],
            Vec::new(),
        )?;
        layout.panels.push(framed.finish()?);
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::output::render_svg;

    fn plot<'a>(step_lr: &'a [(f64, f64)], lr: &'a [f64]) -> CurvesPlot<'a> {
        CurvesPlot {
            epochs: &[1, 2, 3],
            train_loss: &[0.5, 0.2, 0.1],
            eval_loss: &[0.3, 0.2, 0.15],
            eval_accuracy: &[0.9, 0.95, 0.97],
            eval_metric: EvalMetric::Accuracy,
            eval_split: "test".into(),
            lr,
            step_lr,
            train_trace: &[],
            best_epoch: None,
            title: "mlp on mnist, adam at 1e-2, StepLR(step_size=1, gamma=0.1)".into(),
        }
    }

    #[test]
    fn panels_name_the_split_and_a_single_epoch_works() {
        let (svg, layout) = render_svg(&plot(&[], &[0.1, 0.01, 0.001])).unwrap();
        for s in [
            "train loss",
            "test loss",
            "test accuracy (%)",
            "learning rate (log scale)",
            "epoch",
            "StepLR(step_size=1, gamma=0.1)",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
        assert!(!svg.contains("validation"));
        // Only the loss panel has two series, so only it has a legend, off the data.
        assert_eq!(layout.panels.len(), 3);
        let legends: Vec<_> = layout.panels.iter().filter_map(|p| p.legend()).collect();
        assert_eq!(legends.len(), 1);
        let loss = &layout.panels[0];
        let l = loss.legend().unwrap();
        assert_eq!(l.lines, ["train loss (epoch mean)", "test loss"]);
        assert_eq!(loss.data.iter().filter(|p| l.rect.contains(**p)).count(), 0);
        // A later real validation split just changes the labels.
        let mut v = plot(&[], &[0.1, 0.1, 0.1]);
        v.eval_split = "validation".into();
        let svg = curves_svg(&v).unwrap();
        assert!(svg.contains("validation loss") && svg.contains("validation accuracy (%)"));
        assert!(!svg.contains("test loss"));
        // A constant LR gets no panel (the title gives it); the x axis is named below accuracy.
        assert!(!svg.contains("learning rate"));
        assert!(svg.contains("\nepoch\n"));

        let one = curves_svg(&CurvesPlot {
            epochs: &[1],
            train_loss: &[0.5],
            eval_loss: &[f64::NAN],
            eval_accuracy: &[0.9],
            eval_metric: EvalMetric::Accuracy,
            eval_split: "test".into(),
            lr: &[0.1],
            step_lr: &[],
            train_trace: &[],
            best_epoch: Some(1),
            title: "one".into(),
        })
        .unwrap();
        assert!(one.contains("test accuracy"));
        assert!(curves_svg(&CurvesPlot {
            epochs: &[],
            train_loss: &[],
            eval_loss: &[],
            eval_accuracy: &[],
            eval_metric: EvalMetric::Accuracy,
            eval_split: String::new(),
            lr: &[],
            step_lr: &[],
            train_trace: &[],
            best_epoch: None,
            title: "none".into()
        })
        .unwrap()
        .contains("no finished epoch"));
    }

    #[test]
    fn per_step_lrs_show_a_one_cycle_peak_between_epochs() {
        // A one-cycle shape over 3 epochs of 10 steps, peaking inside epoch 1.
        let steps: Vec<(f64, f64)> = (0..30)
            .map(|i| {
                let lr = if i <= 5 {
                    0.004 + 0.096 * i as f64 / 5.0
                } else {
                    0.1 - 0.099 * (i - 5) as f64 / 24.0
                };
                (i as f64 / 10.0, lr)
            })
            .collect();
        let starts = [steps[0].1, steps[10].1, steps[20].1];
        let (_, layout) = render_svg(&plot(&steps, &starts)).unwrap();
        let lr = &layout.panels[2];
        // The peak (0.1) is inside the view although no epoch starts near it.
        let peak = steps.iter().map(|s| s.1).fold(0.0, f64::max);
        assert!(starts.iter().all(|&s| s < 0.9 * peak));
        assert!(lr.y.contains(lr.y.coord(peak).unwrap()));
        assert!(lr.y.is_log() && lr.y_desc.contains("log scale"));
        // Every step is drawn: the traced pixels span the first epoch too.
        let min_x = lr.data.iter().map(|p| p.0).min().unwrap();
        assert!(min_x <= lr.plot.x0 + 2, "{min_x} vs {}", lr.plot.x0);
    }

    #[test]
    fn png_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("curves.png");
        curves(&p, &plot(&[], &[0.1, 0.1, 0.1])).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_trace_fills_each_epoch_and_the_best_epoch_is_marked() {
        // Three epochs of 10 trace points each, falling; the best held-out loss at epoch 2.
        let trace: Vec<(f64, f64)> = (0..30)
            .map(|i| {
                (
                    (i as f64 + 0.5) / 10.0,
                    0.8 * (-(i as f64) / 12.0).exp() + 0.05,
                )
            })
            .collect();
        let mut p = plot(&[], &[0.1, 0.1, 0.1]);
        p.train_trace = &trace;
        p.best_epoch = Some(2);
        let (svg, layout) = render_svg(&p).unwrap();
        // Two panels: no LR panel for a constant LR.
        assert_eq!(layout.panels.len(), 2);
        let loss = &layout.panels[0];
        let legend = loss.legend().unwrap();
        assert!(legend
            .lines
            .contains(&"train loss (through the epoch)".to_string()));
        assert!(legend
            .lines
            .contains(&"best: epoch 2 (test loss 0.2000)".to_string()));
        // The trace is drawn from the first epoch's start: pixels near the left edge.
        let min_x = loss.data.iter().map(|q| q.0).min().unwrap();
        assert!(min_x <= loss.plot.x0 + loss.plot.width() / 20);
        // The best epoch's ring: a green circle of radius 7 (white ring 9).
        assert!(svg.contains("r=\"7\"") && svg.contains("fill=\"#2CA02C\""));
        assert_eq!(
            loss.data
                .iter()
                .filter(|q| legend.rect.contains(**q))
                .count(),
            0
        );
    }
}
