//! The LR range test figure: loss against learning rate on a log axis, with the suggestion.
//!
//! It takes the finder's own types, so a custom model's sweep draws the same figure as the
//! command line's: `plot::range_test(path, &RangeTestPlot::new(&curve, &analysis))`.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::layout::{wrap, Layout};
use super::output::{draw_err, save, to_svg, Figure};
use super::scale::{finite_span, interpolate, loss_view, Axis};
use super::style::{self, Boxed, Mark, Panel, Series};
use super::{format, PlotError};
use crate::finder::{Analysis, Curve, NoSuggestion, Rule, StopReason, Suggestion, Verification};

/// Loss vs LR of an LR range test: the measured [`Curve`] and what
/// [`analyse`](crate::finder::analyse) made of it.
///
/// ```no_run
/// # fn demo(curve: &lrfind::finder::Curve, analysis: &lrfind::finder::Analysis) -> Result<(), lrfind::plot::PlotError> {
/// use lrfind::plot::{self, RangeTestPlot};
/// let figure = RangeTestPlot::new(curve, analysis)
///     .title("LR range test: my model")
///     .show_rules(true);
/// plot::range_test(std::path::Path::new("lr.png"), &figure)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RangeTestPlot<'a> {
    curve: &'a Curve,
    analysis: &'a Analysis,
    title: String,
    y_label: String,
    show_rules: bool,
    verification: Option<&'a Verification>,
    /// The param-groups note (`range_test_groups.rs`); empty for one group.
    pub(super) groups_note: Vec<String>,
    max_lr: Option<f64>,
}

impl<'a> RangeTestPlot<'a> {
    /// The figure of `curve` with the chosen suggestion of `analysis`, titled "LR range test".
    pub fn new(curve: &'a Curve, analysis: &'a Analysis) -> Self {
        Self {
            curve,
            analysis,
            title: "LR range test".into(),
            y_label: "loss".into(),
            show_rules: false,
            verification: None,
            groups_note: Vec::new(),
            max_lr: None,
        }
    }

    /// The sweep's configured `max_lr`, so the figure can say whether the sweep stopped at it
    /// or climbed past it (`extend`); without it the stop is marked at the last LR tried.
    pub fn max_lr(mut self, max_lr: f64) -> Self {
        self.max_lr = Some(max_lr).filter(|v| v.is_finite() && *v > 0.0);
        self
    }

    /// Replaces the title (wrapped to the figure's width when long).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// What the y axis measures, e.g. "validation loss" when each step was scored on held-out
    /// data; the default is "loss".
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Also mark every rule's suggestion on the curve, each labelled in the legend (the
    /// chosen one emphasised), as fastai's `lr_find(suggest_funcs=…)` does.
    pub fn show_rules(mut self, show: bool) -> Self {
        self.show_rules = show;
        self
    }

    /// Adds a second panel under the curve: each verification trial's validation loss
    /// against its LR, the verified LR marked beside the range test's suggestion.
    pub fn verification(mut self, verification: Option<&'a Verification>) -> Self {
        self.verification = verification;
        self
    }

    /// Trials worth a panel: at least one ended with a score.
    fn trials(&self) -> Option<&'a Verification> {
        self.verification
            .filter(|v| v.trials.iter().any(|t| t.score.is_some()))
    }
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
        if self.trials().is_some() {
            (900, 900)
        } else {
            (900, 600)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<Layout, PlotError> {
        draw(root, self)
    }
}

/// Colour of a rule's marker: fixed per rule, so figures compare at a glance; never the
/// curve's blue or the chosen suggestion's red.
fn rule_color(rule: Rule) -> RGBColor {
    let i = Rule::ALL.iter().position(|&r| r == rule).unwrap_or(0);
    style::series_color([1, 2, 4, 5, 6, 9][i % 6])
}

/// A fraction as a percentage with two significant digits at most: "0.16%", "3.2%", "41%".
fn percent(f: f64) -> String {
    let p = 100.0 * f.max(0.0);
    match p {
        p if p < 1.0 => format!("{p:.2}%"),
        p if p < 10.0 => format!("{p:.1}%"),
        p => format!("{p:.0}%"),
    }
}

/// `(lr, value)` pairs in data units, `None` where either is unusable on a log-x plot.
fn pairs(lrs: &[f64], values: &[f64]) -> Vec<Option<(f64, f64)>> {
    lrs.iter()
        .zip(values)
        .map(|(&lr, &v)| (lr.is_finite() && lr > 0.0 && v.is_finite()).then_some((lr, v)))
        .collect()
}

/// A suggested LR as the command line's summary prints it, so the two read the same.
fn suggested(lr: f64) -> String {
    format!("{lr:.3e}")
}

fn usable(s: &Suggestion) -> bool {
    s.lr.is_finite() && s.lr > 0.0
}

/// The sentences the figure writes about the curve itself: flat, pinned, or no suggestion.
/// Flat is the finder's verdict (the chosen rule found no real descent), so the figure and
/// the summary never disagree.
fn warnings(plot: &RangeTestPlot, max_chars: f64) -> Vec<String> {
    let a = plot.analysis;
    let (flat, fall) = match a.no_suggestion {
        Some(NoSuggestion::NoDescent) => (true, 0.0),
        Some(NoSuggestion::NoRealDescent { fall, .. }) => (true, fall),
        _ => (false, 0.0),
    };
    let top = plot
        .curve
        .lrs
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::max);
    let top = top.map_or("?".into(), format::lr);
    let mut text = String::new();
    let fell = percent(fall);
    if flat && a.pinned_by_max {
        text = format!(
            "Flat and pinned by the range: the smoothed {} fell only {fell} and never turned upward up to the largest LR tried ({top}), so no learning rate in the range has trained the model yet; try higher ones.",
            plot.y_label
        );
    } else if flat {
        text = format!(
            "Flat curve: the smoothed {} fell only {fell} before it rose, so no learning rate in the range trained the model; try lower ones.",
            plot.y_label
        );
    } else if a.pinned_by_max && a.suggestion.is_some() {
        text = format!(
            "Pinned by the range: the {} never turned upward up to the largest LR tried ({top}), so the suggestion is bounded by max_lr, not by an observed blow-up; widen the range.",
            plot.y_label
        );
    }
    if let (None, Some(why)) = (&a.suggestion, &a.no_suggestion) {
        if !flat {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!(
                "No suggestion from the {} rule: {why}.",
                a.chosen_rule
            ));
        }
    }
    if text.is_empty() {
        return Vec::new();
    }
    wrap(&text, style::NOTE_SIZE, false, max_chars, 5)
}

/// Where the sweep stopped (its LR) and why, as the legend says it.
fn stop_mark(plot: &RangeTestPlot) -> Option<(f64, String)> {
    let lrs = &plot.curve.lrs;
    let last = *lrs.last().filter(|v| v.is_finite() && **v > 0.0)?;
    let at = |step: usize| lrs.get(step).copied().filter(|v| v.is_finite() && *v > 0.0);
    let past = plot
        .max_lr
        .filter(|m| last > m * (1.0 + 1e-9))
        .map(|m| format!(", extended past max_lr {}", format::lr(m)))
        .unwrap_or_default();
    Some(match plot.curve.stop {
        StopReason::Diverged { step, .. } => {
            let lr = at(step).unwrap_or(last);
            (
                lr,
                format!(
                    "stop: diverged at step {} ({}){past}",
                    step + 1,
                    format::lr(lr)
                ),
            )
        }
        StopReason::NonFiniteLoss { step } => {
            let lr = at(step).unwrap_or(last);
            (
                lr,
                format!(
                    "stop: loss NaN/inf at step {} ({}){past}",
                    step + 1,
                    format::lr(lr)
                ),
            )
        }
        StopReason::Interrupted { step } => {
            let lr = at(step).unwrap_or(last);
            (
                lr,
                format!("stop: interrupted after step {}{past}", step + 1),
            )
        }
        StopReason::Completed => match plot.max_lr {
            Some(m) if last > m * (1.0 + 1e-9) => (
                last,
                format!(
                    "stop: extended past max_lr {} to {}",
                    format::lr(m),
                    format::lr(last)
                ),
            ),
            Some(m) => (last, format!("stop: reached max_lr {}", format::lr(m))),
            None => (
                last,
                format!("stop: end of the range ({})", format::lr(last)),
            ),
        },
    })
}

/// Marker radii for suggestions drawn in `order` at `points`: where several sit on the same
/// spot (rules that agree), each one drawn earlier is a ring around the later ones, so every
/// rule stays visible. `base` is each one's own radius.
fn ring_radii(points: &[Option<(f64, f64)>], base: &[u32], x_span: f64, y_span: f64) -> Vec<u32> {
    let same = |a: (f64, f64), b: (f64, f64)| {
        (a.0 - b.0).abs() <= 0.004 * x_span && (a.1 - b.1).abs() <= 0.008 * y_span
    };
    let mut radii = base.to_vec();
    for i in (0..points.len()).rev() {
        let Some(p) = points[i] else { continue };
        for j in i + 1..points.len() {
            if points[j].is_some_and(|q| same(p, q)) {
                // Past the later marker and its white ring, with a band of its own colour.
                radii[i] = radii[i].max(radii[j] + 2 + 3);
            }
        }
    }
    radii
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &RangeTestPlot,
) -> Result<Layout, PlotError> {
    let (lrs, losses, smoothed) = plot.curve.finite();
    let raw = pairs(&lrs, &losses);
    let smooth = pairs(&lrs, &smoothed);
    let has_smooth = smooth.iter().any(Option::is_some);
    // Without a smoothed curve the raw loss is the main line.
    let (main, faint) = if has_smooth {
        (smooth, raw)
    } else {
        (raw, Vec::new())
    };
    let a = plot.analysis;
    let chosen = a.suggestion.as_ref().filter(|s| usable(s));
    // With show_rules every rule that suggested something; otherwise the chosen one only.
    let shown: Vec<&Suggestion> = if plot.show_rules {
        a.rules
            .iter()
            .filter_map(|o| o.suggestion.as_ref())
            .filter(|s| usable(s))
            .collect()
    } else {
        chosen.into_iter().collect()
    };

    let stop = stop_mark(plot);
    let all_lrs = main
        .iter()
        .chain(&faint)
        .flatten()
        .map(|p| p.0)
        .chain(shown.iter().map(|s| s.lr))
        .chain(stop.as_ref().map(|s| s.0))
        .chain(plot.max_lr)
        .chain(
            plot.trials()
                .into_iter()
                .flat_map(|v| v.trials.iter().map(|t| t.lr)),
        );
    let (Some((lr_lo, lr_hi)), true) = (finite_span(all_lrs), main.iter().any(Option::is_some))
    else {
        return style::empty(root, &plot.title, "no finite loss values to plot");
    };
    let values = |pts: &[Option<(f64, f64)>]| pts.iter().flatten().map(|p| p.1).collect();
    let faint_values: Vec<f64> = values(&faint);
    let Some((y_lo, y_hi)) = loss_view(&[values(&main)], &faint_values) else {
        return style::empty(root, &plot.title, "no finite loss values to plot");
    };
    let x = Axis::log(lr_lo, lr_hi);
    let y = Axis::linear(y_lo, y_hi);
    let to_coord = |pts: &[Option<(f64, f64)>]| -> Vec<Option<(f64, f64)>> {
        pts.iter()
            .map(|p| p.and_then(|(a, b)| Some((x.coord(a)?, y.coord(b)?))))
            .collect()
    };
    let main_c = to_coord(&main);
    let faint_c = to_coord(&faint);
    let curve_c: Vec<(f64, f64)> = main_c.iter().flatten().copied().collect();
    // Where each shown suggestion sits: on the smoothed curve at its LR.
    let at = |s: &Suggestion| -> Option<(f64, f64)> {
        let xc = x.coord(s.lr)?;
        let yc = y.coord(s.loss).or_else(|| interpolate(&curve_c, xc))?;
        Some((xc, yc))
    };

    let mut layout = Layout::default();
    let whole = style::titled(root, &plot.title, &mut layout)?;
    // With trials the curve takes the top 62 %, the trials the rest.
    let (area, below) = match plot.trials() {
        Some(_) => {
            let h = whole.dim_in_pixel().1 as f64;
            let (top, bottom) = whole.split_vertically((0.62 * h) as i32);
            (top, Some(bottom))
        }
        None => (whole, None),
    };
    let label = &plot.y_label;
    let mut entries = Vec::new();
    let mut series = Vec::new();
    if !faint_c.is_empty() {
        // Raw loss first and faint, so the smoothed curve reads on top of the noise.
        let s = style::BLUE.mix(0.45).stroke_width(1);
        series.push(Series {
            points: faint_c,
            style: s,
            dots: None,
        });
        entries.push((Mark::Line(s), format!("{label} (raw)")));
    }
    let s = style::BLUE.stroke_width(3);
    series.push(Series {
        points: main_c,
        style: s,
        dots: None,
    });
    entries.push((
        Mark::Line(s),
        if has_smooth {
            format!("{label} (smoothed)")
        } else {
            label.clone()
        },
    ));
    let red = style::RED.stroke_width(2);
    let mut avoid = Vec::new();
    if let Some(c) = chosen {
        let text = if plot.show_rules {
            format!("{} {} (chosen)", c.rule, suggested(c.lr))
        } else {
            format!("suggested {} ({})", suggested(c.lr), c.rule)
        };
        entries.push((Mark::Dashed(red), text));
        if let Some(xc) = x.coord(c.lr) {
            avoid.push(style::vline_path(xc));
        }
    }
    if plot.show_rules {
        for o in &a.rules {
            let text = match o.suggestion.as_ref().filter(|s| usable(s)) {
                Some(s) if Some(s) == chosen => continue,
                Some(s) => format!("{} {}", o.rule, suggested(s.lr)),
                None => format!("{}: no suggestion", o.rule),
            };
            let color = if o.suggestion.is_some() {
                rule_color(o.rule)
            } else {
                style::MUTED
            };
            entries.push((Mark::Dot(color, 5, false), text));
        }
        avoid.extend(shown.iter().filter_map(|&s| at(s)).map(|p| vec![Some(p)]));
    }
    // Where and why the sweep stopped; past max_lr (extend), max_lr itself too.
    let stop_style = style::MUTED.stroke_width(2);
    let extended = plot
        .max_lr
        .zip(stop.as_ref())
        .filter(|(m, s)| s.0 > m * (1.0 + 1e-9))
        .map(|(m, _)| m);
    if let Some((lr, text)) = &stop {
        entries.push((Mark::Line(stop_style), text.clone()));
        if let Some(xc) = x.coord(*lr) {
            avoid.push(style::vline_path(xc));
        }
    }
    if let Some(m) = extended {
        entries.push((
            Mark::Dashed(style::MUTED.stroke_width(1)),
            format!("max_lr {}", format::lr(m)),
        ));
        if let Some(xc) = x.coord(m) {
            avoid.push(style::vline_path(xc));
        }
    }
    // The markers themselves, not only their guide lines, must stay clear of the boxes.
    avoid.extend(shown.iter().filter_map(|&s| at(s)).map(|p| {
        let (dx, dy) = (
            0.01 * (x.range().1 - x.range().0),
            0.02 * (y.range().1 - y.range().0),
        );
        vec![
            Some((p.0 - dx, p.1)),
            Some((p.0 + dx, p.1)),
            None,
            Some((p.0, p.1 - dy)),
            Some((p.0, p.1 + dy)),
        ]
    }));
    let mut boxes = vec![Boxed::Legend(entries)];
    let notes = warnings(plot, 380.0);
    if !notes.is_empty() {
        boxes.push(Boxed::Note(notes, style::RED));
    }
    if !plot.groups_note.is_empty() {
        boxes.push(Boxed::Note(plot.groups_note.clone(), style::MUTED));
    }
    let mut framed = style::framed(
        &area,
        &Panel {
            x: &x,
            y: &y,
            x_desc: Some("learning rate (log scale)"),
            y_desc: label,
        },
        &series,
        &avoid,
        boxes,
    )?;
    let y = framed.y.clone();
    let (y0, y1) = y.range();
    if let Some(xc) = stop.as_ref().and_then(|s| x.coord(s.0)) {
        framed
            .chart
            .draw_series(LineSeries::new(vec![(xc, y0), (xc, y1)], stop_style))
            .map_err(draw_err)?;
    }
    if let Some(xc) = extended.and_then(|m| x.coord(m)) {
        style::vline(&mut framed.chart, &y, xc, style::MUTED.stroke_width(1))?;
    }
    if let Some(c) = chosen {
        if let Some(xc) = x.coord(c.lr) {
            style::vline(&mut framed.chart, &y, xc, red)?;
        }
    }
    // Other rules under the chosen one, so the emphasised marker stays on top; rules that
    // agree are rings around each other.
    let order: Vec<&Suggestion> = shown
        .iter()
        .copied()
        .filter(|&s| Some(s) != chosen)
        .chain(chosen)
        .collect();
    let points: Vec<Option<(f64, f64)>> = order
        .iter()
        .map(|&s| at(s).filter(|p| y.contains(p.1) && x.contains(p.0)))
        .collect();
    let base: Vec<u32> = order
        .iter()
        .map(|&s| if Some(s) == chosen { 7 } else { 5 })
        .collect();
    let (xa, xb) = x.range();
    let radii = ring_radii(&points, &base, xb - xa, y1 - y0);
    for ((&s, p), r) in order.iter().zip(&points).zip(radii) {
        if let Some(p) = p {
            let color = if Some(s) == chosen {
                style::RED
            } else {
                rule_color(s.rule)
            };
            style::highlight(&mut framed.chart, *p, r, color)?;
        }
    }
    layout.panels.push(framed.finish()?);
    if let (Some(v), Some(below)) = (plot.trials(), below) {
        if let Some(panel) = draw_trials(&below, v, &x, chosen)? {
            layout.panels.push(panel);
        }
    }
    Ok(layout)
}

/// The verification panel: each trial's held-out loss at its end against its LR (on the
/// curve's LR axis), diverged trials along the top, the verified LR marked in green beside
/// the suggestion's red guide.
fn draw_trials<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    v: &Verification,
    x: &Axis,
    suggestion: Option<&Suggestion>,
) -> Result<Option<super::layout::PanelLayout>, PlotError> {
    let scored: Vec<(f64, f64)> = v
        .trials
        .iter()
        .filter_map(|t| Some((t.lr, t.score?.loss)))
        .filter(|(lr, l)| lr.is_finite() && *lr > 0.0 && l.is_finite())
        .collect();
    let values = scored.iter().map(|p| p.1).chain([v.start.loss]);
    let Some((lo, hi)) = super::scale::finite_span(values) else {
        return Ok(None);
    };
    let (lo, hi) = super::scale::padded(lo, hi, 0.12);
    let y = Axis::linear(lo, hi.max(lo + 1e-9));
    let pts: Vec<Option<(f64, f64)>> = scored
        .iter()
        .map(|&(lr, l)| Some((x.coord(lr)?, y.coord(l)?)))
        .collect();
    let green = style::series_color(2);
    let trials_style = style::DARK.stroke_width(2);
    let series = vec![Series {
        points: pts.clone(),
        style: trials_style,
        dots: Some((5, style::DARK)),
    }];
    let mut entries = vec![(
        Mark::LineDot(trials_style),
        format!("validation loss after {} steps", v.steps),
    )];
    let start_style = style::MUTED.stroke_width(1);
    entries.push((Mark::Dashed(start_style), "before the trials".to_string()));
    let mut avoid = Vec::new();
    let chosen = v.chosen.and_then(|i| v.trials.get(i));
    let best = v
        .best
        .filter(|&b| Some(b) != v.chosen)
        .and_then(|i| v.trials.get(i));
    if let Some(b) = best {
        entries.push((
            Mark::Dot(style::DARK, 7, true),
            format!("lowest after {} steps {}", v.steps, suggested(b.lr)),
        ));
    }
    if let Some(c) = chosen {
        entries.push((
            Mark::Dot(green, 7, true),
            format!("verified {} ({})", suggested(c.lr), c.origin),
        ));
        if let Some(xc) = x.coord(c.lr) {
            avoid.push(style::vline_path(xc));
        }
    }
    if let Some(s) = suggestion {
        entries.push((
            Mark::Dashed(style::RED.stroke_width(2)),
            format!("suggested {} ({})", suggested(s.lr), s.rule),
        ));
        if let Some(xc) = x.coord(s.lr) {
            avoid.push(style::vline_path(xc));
        }
    }
    let diverged: Vec<f64> = v
        .trials
        .iter()
        .filter(|t| t.diverged)
        .map(|t| t.lr)
        .collect();
    if !diverged.is_empty() {
        entries.push((
            Mark::Dot(style::RED, 5, false),
            format!("diverged ({})", diverged.len()),
        ));
    }
    let mut boxes = vec![Boxed::Legend(entries)];
    if v.none_improved {
        boxes.push(Boxed::Note(
            vec!["No trial beat the starting weights.".to_string()],
            style::RED,
        ));
    }
    let mut framed = style::framed(
        area,
        &Panel {
            x,
            y: &y,
            x_desc: Some("learning rate (log scale)"),
            y_desc: "trial validation loss",
        },
        &series,
        &avoid,
        boxes,
    )?;
    let y = framed.y.clone();
    if let Some(yc) = y.coord(v.start.loss) {
        let (x0, x1) = x.range();
        framed
            .chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, yc), (x1, yc)],
                6,
                4,
                start_style,
            ))
            .map_err(super::output::draw_err)?;
    }
    if let Some(xc) = suggestion.and_then(|s| x.coord(s.lr)) {
        style::vline(&mut framed.chart, &y, xc, style::RED.stroke_width(2))?;
    }
    if let Some(xc) = chosen.and_then(|c| x.coord(c.lr)) {
        style::vline(&mut framed.chart, &y, xc, green.stroke_width(2))?;
    }
    let (_, y_top) = y.range();
    let top: Vec<Option<(f64, f64)>> = diverged
        .iter()
        .map(|&lr| Some((x.coord(lr)?, y_top)))
        .collect();
    style::markers(&mut framed.chart, x, &y, &top, 5, style::RED)?;
    let at = |t: &crate::finder::Trial| Some((x.coord(t.lr)?, y.coord(t.score?.loss)?));
    for (t, color) in [(best, style::DARK), (chosen, green)] {
        if let Some(p) = t
            .and_then(at)
            .filter(|p| y.contains(p.1) && x.contains(p.0))
        {
            style::highlight(&mut framed.chart, p, 7, color)?;
        }
    }
    Ok(Some(framed.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finder::{analyse, StopReason};
    use crate::plot::output::render_svg;

    /// A typical sweep: flat, a descent, then divergence to 1e3, and a non-finite end.
    fn sweep() -> Curve {
        let n = 120;
        let lrs: Vec<f64> = (0..n)
            .map(|i| 1e-7 * 10f64.powf(8.0 * i as f64 / (n - 1) as f64))
            .collect();
        let mut losses = Vec::new();
        for (i, lr) in lrs.iter().enumerate() {
            let t = lr.log10();
            let base = 2.3 - 1.6 / (1.0 + (-(t + 3.5) * 2.0).exp());
            let blowup = if t > -1.5 {
                10f64.powf((t + 1.5) * 3.0) - 1.0
            } else {
                0.0
            };
            let noise = 0.15 * ((i as f64 * 12.9898).sin() * 43758.5453).fract();
            losses.push(base + blowup + noise);
        }
        // One lucky batch far below the smoothed curve: the raw minimum.
        losses[70] = 0.05;
        curve_of(lrs, losses, StopReason::Completed, n - 2)
    }

    /// A curve from raw losses, smoothed like the finder does, finite up to `finite`.
    fn curve_of(lrs: Vec<f64>, losses: Vec<f64>, stop: StopReason, finite: usize) -> Curve {
        let smoothed = crate::finder::smooth(&losses, 0.9);
        let opt = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(i, &x)| (i < finite).then_some(x))
                .collect()
        };
        Curve {
            losses: opt(&losses),
            smoothed: opt(&smoothed),
            lrs,
            stop,
        }
    }

    fn analysis(c: &Curve) -> Analysis {
        analyse(c, &crate::finder::SweepConfig::default(), Rule::Fall)
    }

    fn no_temp_files(dir: &Path) -> bool {
        std::fs::read_dir(dir).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains("lrfind-tmp")
        })
    }

    fn figure(c: &Curve, a: &Analysis) -> (String, Layout) {
        render_svg(&RangeTestPlot::new(c, a).title("LR range test: mnist-mlp")).unwrap()
    }

    #[test]
    fn svg_shows_suggestion_point_and_dashed_line() {
        let c = sweep();
        let a = analysis(&c);
        let s = a.suggestion.clone().unwrap();
        let (svg, _) = figure(&c, &a);
        assert!(svg.contains(&format!("suggested {:.3e} (fall)", s.lr)));
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
    fn the_raw_minimum_is_inside_the_view_and_the_blow_up_is_not() {
        let c = sweep();
        let a = analysis(&c);
        let (_, layout) = figure(&c, &a);
        let (_, losses, smoothed) = c.finite();
        let raw_min = losses.iter().copied().fold(f64::INFINITY, f64::min);
        let y = &layout.panels[0].y;
        assert_eq!(raw_min, 0.05);
        assert!(y.contains(y.coord(raw_min).unwrap()), "{:?}", y.range());
        // The smoothed minimum lags well above the raw one; the view still reaches it.
        let sm_min = smoothed.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(sm_min > 0.5);
        // The divergence (losses up to ~1e3) does not squash the view.
        assert!(y.range().1 < 5.0, "{:?}", y.range());
    }

    #[test]
    fn title_fits_and_legend_is_off_the_data() {
        let c = sweep();
        let a = analysis(&c);
        let long = "LR range test: a model with a very long description on a data set with an even longer name, adamw";
        let fig = RangeTestPlot::new(&c, &a).title(long).show_rules(true);
        let (svg, layout) = render_svg(&fig).unwrap();
        let canvas = super::super::layout::Rect::new(0, 0, 900, 600);
        assert!(layout.title.len() >= 2, "{:?}", layout.title);
        for (line, r) in &layout.title {
            assert!(r.inside(&canvas), "{line}: {r:?}");
            assert!(svg.contains(line.as_str()), "{line}");
        }
        let panel = &layout.panels[0];
        let legend = panel.legend().unwrap();
        assert!(legend.rect.inside(&panel.plot));
        let covered = panel.data.iter().filter(|p| legend.rect.contains(**p));
        assert_eq!(covered.count(), 0, "legend {:?} covers data", legend.rect);
    }

    #[test]
    fn show_rules_marks_every_rule_and_emphasises_the_chosen_one() {
        let c = sweep();
        let a = analysis(&c);
        let plain = figure(&c, &a).0;
        let (svg, layout) = render_svg(&RangeTestPlot::new(&c, &a).show_rules(true)).unwrap();
        let legend = layout.panels[0].legend().unwrap();
        let suggested = a.rules.iter().filter(|o| o.suggestion.is_some()).count();
        assert!(suggested >= 4, "{:?}", a.rules);
        for o in &a.rules {
            let Some(s) = o.suggestion.as_ref() else {
                assert!(legend.lines.contains(&format!("{}: no suggestion", o.rule)));
                continue;
            };
            let fill = {
                let c = if o.rule == a.chosen_rule {
                    style::RED
                } else {
                    rule_color(o.rule)
                };
                format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2)
            };
            // One marker per rule (the chosen one's red also marks nothing else).
            let markers = svg
                .lines()
                .filter(|l| l.contains("<circle") && l.contains(&fill))
                .count();
            assert!(markers >= 1, "no marker for {}", o.rule);
            let text = format!("{} {:.3e}", o.rule, s.lr);
            assert!(
                legend.lines.iter().any(|l| l.contains(&text)),
                "{text} not in {:?}",
                legend.lines
            );
            if o.rule != a.chosen_rule {
                assert!(
                    !plain.contains(&fill),
                    "{} marked without show_rules",
                    o.rule
                );
            }
        }
        // The chosen marker is the big one (radius 7, ring 9).
        assert!(svg.contains("r=\"7\"") && plain.contains("r=\"7\""));
    }

    #[test]
    fn pinned_and_flat_curves_say_so() {
        // Still falling at the end of the range: pinned.
        let lrs: Vec<f64> = (0..100)
            .map(|i| 1e-6 * 10f64.powf(i as f64 / 24.75))
            .collect();
        let falling: Vec<f64> = (0..100).map(|i| 2.3 - 0.015 * i as f64).collect();
        let c = curve_of(lrs.clone(), falling, StopReason::Completed, 100);
        let a = analysis(&c);
        assert!(a.pinned_by_max);
        let (svg, layout) = figure(&c, &a);
        assert!(svg.contains("Pinned by the range"), "no pinned note");
        let note = layout.panels[0].boxes.iter().find(|b| !b.legend).unwrap();
        assert!(note.lines.join(" ").contains("largest LR tried (1e-2)"));
        for b in &layout.panels[0].boxes {
            assert_eq!(
                layout.panels[0]
                    .data
                    .iter()
                    .filter(|p| b.rect.contains(**p))
                    .count(),
                0
            );
        }
        // Noise around a level: flat.
        let flat_losses: Vec<f64> = (0..100)
            .map(|i| 2.30 + 0.01 * ((i as f64 * 12.9898).sin() * 43758.5453).fract())
            .collect();
        let c = curve_of(lrs, flat_losses.clone(), StopReason::Completed, 100);
        let (svg, layout) = figure(&c, &analysis(&c));
        assert!(svg.contains("Flat and pinned by the range"), "no flat note");
        let note = layout.panels[0].boxes.iter().find(|b| !b.legend).unwrap();
        let text = note.lines.join(" ");
        assert!(
            text.contains("fell only 0."),
            "the fall is not quantified: {text}"
        );
        // Flat, then a blow-up: flat but not pinned.
        let mut rise = flat_losses.clone();
        rise.extend((0..20).map(|i| 2.4 + 0.5 * i as f64));
        let lrs40: Vec<f64> = (0..120)
            .map(|i| 1e-6 * 10f64.powf(i as f64 / 24.0))
            .collect();
        let c = curve_of(lrs40, rise, StopReason::Completed, 120);
        let a = analysis(&c);
        assert!(!a.pinned_by_max);
        let (svg, layout) = figure(&c, &a);
        let note = layout.panels[0].boxes.iter().find(|b| !b.legend).unwrap();
        assert!(
            svg.contains("Flat curve") && note.lines.join(" ").contains("try lower ones"),
            "no flat note"
        );
        assert!(!svg.contains("Pinned"));
        // A healthy curve says neither.
        let c = sweep();
        let (svg, layout) = figure(&c, &analysis(&c));
        assert!(!svg.contains("Flat") && !svg.contains("Pinned"));
        assert_eq!(layout.panels[0].boxes.len(), 1);
    }

    #[test]
    fn the_y_label_follows_the_measure() {
        let c = sweep();
        let a = analysis(&c);
        let svg = range_test_svg(&RangeTestPlot::new(&c, &a).y_label("validation loss")).unwrap();
        assert!(svg.contains("\nvalidation loss\n"));
        assert!(svg.contains("validation loss (smoothed)"));
    }

    #[test]
    fn png_is_written_atomically() {
        let c = sweep();
        let a = analysis(&c);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("range.PNG");
        range_test(&path, &RangeTestPlot::new(&c, &a)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        assert!(no_temp_files(dir.path()));
        // SVG to the same directory as well.
        let svg = dir.path().join("range.svg");
        range_test(&svg, &RangeTestPlot::new(&c, &a)).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    }

    #[test]
    fn unknown_extension_is_rejected_before_writing() {
        let c = sweep();
        let a = analysis(&c);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("range.jpg");
        let e = range_test(&path, &RangeTestPlot::new(&c, &a)).unwrap_err();
        assert!(matches!(e, PlotError::UnsupportedFormat { .. }));
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_directory_is_a_write_error_and_leaves_nothing() {
        let c = sweep();
        let a = analysis(&c);
        let dir = tempfile::tempdir().unwrap();
        for name in ["range.png", "range.svg"] {
            let path = dir.path().join("missing").join(name);
            let e = range_test(&path, &RangeTestPlot::new(&c, &a)).unwrap_err();
            assert!(matches!(e, PlotError::Write(_)), "{e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let nan = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (vec![], vec![]),
            (vec![1e-3], vec![2.0]),
            (vec![1e-3, 1e-2, 1e-1], vec![2.0; 3]),
            (vec![1e-3, 1e-2, 1e-1], nan.to_vec()),
            (nan.to_vec(), vec![1.0, 2.0, 3.0]),
            (vec![0.0, -1.0, 1e-3], vec![1.0, 2.0, 3.0]),
            (vec![1e-300, 1e300], vec![-1e300, 1e300]),
        ];
        for (lrs, losses) in &cases {
            let n = losses.len();
            let c = curve_of(lrs.clone(), losses.clone(), StopReason::Completed, n);
            let mut a = analysis(&c);
            let svg = range_test_svg(&RangeTestPlot::new(&c, &a).show_rules(true)).unwrap();
            assert!(svg.starts_with("<svg"));
            a.suggestion = Some(Suggestion {
                rule: Rule::Fall,
                lr: f64::NAN,
                loss: f64::INFINITY,
                index: 0,
            });
            range_test_svg(&RangeTestPlot::new(&c, &a)).unwrap();
        }
        let c = curve_of(vec![], vec![], StopReason::Completed, 0);
        let svg = range_test_svg(&RangeTestPlot::new(&c, &analysis(&c))).unwrap();
        assert!(svg.contains("no finite loss values"));
    }

    #[test]
    fn the_stop_is_marked_with_its_reason() {
        // Diverged: the sweep() curve stops with a NaN; mark a divergence at step 100.
        let mut c = sweep();
        c.stop = StopReason::Diverged {
            step: 99,
            smoothed: 9.0,
            best: 1.0,
        };
        let a = analysis(&c);
        let svg = range_test_svg(&RangeTestPlot::new(&c, &a).max_lr(10.0)).unwrap();
        let at = format::lr(c.lrs[99]);
        assert!(
            svg.contains(&format!("stop: diverged at step 100 ({at})")),
            "{at}"
        );
        // Completed at max_lr, and past it with extend (max_lr then gets its own guide).
        let lrs: Vec<f64> = (0..100)
            .map(|i| 1e-6 * 10f64.powf(i as f64 / 24.75))
            .collect();
        let falling: Vec<f64> = (0..100).map(|i| 2.3 - 0.015 * i as f64).collect();
        let c = curve_of(lrs, falling, StopReason::Completed, 100);
        let a = analysis(&c);
        let svg = range_test_svg(&RangeTestPlot::new(&c, &a).max_lr(1e-2)).unwrap();
        assert!(svg.contains("stop: reached max_lr 1e-2"));
        assert!(!svg.contains("extended"));
        let svg = range_test_svg(&RangeTestPlot::new(&c, &a).max_lr(1e-3)).unwrap();
        assert!(
            svg.contains("stop: extended past max_lr 1e-3 to 1e-2"),
            "no extend"
        );
        assert!(svg.contains(">\nmax_lr 1e-3\n<") || svg.contains("max_lr 1e-3\n"));
        // The stop line is a grey vertical line at the last LR.
        let grey = "stroke=\"#6E6E6E\"";
        assert!(svg
            .lines()
            .any(|l| l.contains("<polyline") && l.contains(grey)));
    }

    /// The boxes keep clear of the suggestion's guide line and the stop line on a pinned curve
    /// whose loss view is far from zero (guide lines used to be clipped to y = 0, off the view,
    /// so a legend could sit on them).
    #[test]
    fn boxes_keep_clear_of_the_guide_lines() {
        let lrs: Vec<f64> = (0..100)
            .map(|i| 1e-4 * 10f64.powf(i as f64 * 3.5 / 99.0))
            .collect();
        let losses: Vec<f64> = lrs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                2.31 - 0.25 * (l / 0.3).powf(0.8)
                    + 0.01 * ((i as f64 * 12.9898).sin() * 43758.5453).fract()
            })
            .collect();
        let c = curve_of(lrs, losses, StopReason::Completed, 100);
        let a = analysis(&c);
        assert!(a.pinned_by_max && a.suggestion.is_some(), "{a:?}");
        let (_, layout) = render_svg(&RangeTestPlot::new(&c, &a).max_lr(0.3164)).unwrap();
        let panel = &layout.panels[0];
        let canvas = super::super::layout::Rect::new(0, 0, 900, 600);
        assert!(panel.data.iter().all(|p| canvas.contains(*p)));
        let (xa, xb) = panel.x.range();
        let px = |lr: f64| {
            let t = (panel.x.coord(lr).unwrap() - xa) / (xb - xa);
            panel.plot.x0 + (t * f64::from(panel.plot.width())).round() as i32
        };
        let guides = [
            px(a.suggestion.as_ref().unwrap().lr),
            px(*c.lrs.last().unwrap()),
        ];
        assert_eq!(panel.boxes.len(), 2);
        for b in &panel.boxes {
            for g in guides {
                assert!(
                    g < b.rect.x0 - 2 || g > b.rect.x1 + 2,
                    "box {:?} covers the guide at x = {g}",
                    b.rect
                );
            }
        }
    }

    #[test]
    fn rules_that_agree_are_rings_around_each_other() {
        let c = sweep();
        let mut a = analysis(&c);
        // Give steep the chosen rule's LR, and slide valley's.
        let pick = |a: &Analysis, r: Rule| {
            a.rules
                .iter()
                .find(|o| o.rule == r)
                .and_then(|o| o.suggestion.clone())
                .unwrap()
        };
        let chosen = a.suggestion.clone().unwrap();
        let valley = pick(&a, Rule::Valley);
        for o in &mut a.rules {
            let same_as = match o.rule {
                Rule::Steep => &chosen,
                Rule::Slide => &valley,
                _ => continue,
            };
            o.suggestion = Some(Suggestion {
                rule: o.rule,
                ..same_as.clone()
            });
        }
        let svg = range_test_svg(&RangeTestPlot::new(&c, &a).show_rules(true)).unwrap();
        // (cx, cy, r) of the filled circles in `color`.
        let circles = |c: RGBColor| -> Vec<(String, String, u32)> {
            let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
            svg.lines()
                .filter(|l| l.contains("<circle") && l.contains(&fill))
                .filter_map(|l| {
                    let attr = |k: &str| {
                        l.split(&format!(" {k}=\""))
                            .nth(1)?
                            .split('"')
                            .next()
                            .map(str::to_string)
                    };
                    Some((attr("cx")?, attr("cy")?, attr("r")?.parse().ok()?))
                })
                .collect()
        };
        for (under, over) in [
            (rule_color(Rule::Steep), style::RED),
            (rule_color(Rule::Valley), rule_color(Rule::Slide)),
        ] {
            let top = circles(over);
            let ring = circles(under);
            let overlap = ring.iter().find_map(|r| {
                top.iter()
                    .find(|t| t.0 == r.0 && t.1 == r.1)
                    .map(|t| (r.2, t.2))
            });
            // Drawn first and larger than the later marker plus its white ring.
            let (r_under, r_over) = overlap.expect("markers at the same spot");
            assert!(r_under > r_over + 2, "{r_under} vs {r_over}");
        }
    }
}
