//! The shared look of every figure (fonts, colours, grid) and the drawing primitives built on
//! [`scale`](super::scale): panels, clipped lines, markers, dashed guides, notes, legends.

use plotters::chart::{ChartContext, SeriesLabelPosition};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::series::DashedLineSeries;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::output::draw_err;
use super::scale::{clip, decimate, Axis};
use super::PlotError;

/// Font family name the embedded DejaVu Sans is registered under.
pub(crate) const FONT: &str = "sans-serif";

pub(crate) const TITLE_SIZE: f64 = 24.0;
pub(crate) const DESC_SIZE: f64 = 18.0;
pub(crate) const TICK_SIZE: f64 = 15.0;
pub(crate) const LEGEND_SIZE: f64 = 15.0;
pub(crate) const NOTE_SIZE: f64 = 16.0;

pub(crate) const TEXT: RGBColor = RGBColor(34, 34, 34);
pub(crate) const MUTED: RGBColor = RGBColor(110, 110, 110);
pub(crate) const BLUE: RGBColor = RGBColor(31, 119, 180);
pub(crate) const RED: RGBColor = RGBColor(214, 39, 40);
pub(crate) const DARK: RGBColor = RGBColor(40, 40, 40);

/// Tableau-10: distinct, print-safe colours for series that have no meaning of their own.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour of the `i`-th series.
pub(crate) fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Text style of the given size in the embedded font.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT)
}

/// Every chart has the same coordinate type: see [`scale`](super::scale) for why.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// Clears the canvas, draws the title and returns the area below it.
pub(crate) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>, PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.margin(10, 6, 6, 14);
    if title.trim().is_empty() {
        return Ok(root);
    }
    let style = (FONT, TITLE_SIZE)
        .into_font()
        .style(FontStyle::Bold)
        .color(&TEXT);
    root.titled(title, style).map_err(draw_err)
}

/// A figure with nothing to draw: the title and a short explanation, instead of an error, so a
/// run that produced no usable numbers still leaves a file that says so.
pub(crate) fn empty<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    message: &str,
) -> Result<(), PlotError> {
    let area = titled(root, title)?;
    let (w, h) = area.dim_in_pixel();
    let style = font(DESC_SIZE)
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(message, (w as i32 / 2, h as i32 / 2), style))
        .map_err(draw_err)
}

/// What one panel shows: its axes and their descriptions (`None` hides the x description, for
/// panels stacked above another that shares the x axis).
pub(crate) struct Panel<'s> {
    pub x: &'s Axis,
    pub y: &'s Axis,
    pub x_desc: Option<&'s str>,
    pub y_desc: &'s str,
}

/// Builds a chart with grid, ticks and axis descriptions on `area`.
pub(crate) fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    p: &Panel,
) -> Result<Chart<'a, DB>, PlotError> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(8)
        .margin_right(18)
        .x_label_area_size(if p.x_desc.is_some() { 56 } else { 32 })
        .y_label_area_size(84)
        .build_cartesian_2d(p.x.clone(), p.y.clone())
        .map_err(draw_err)?;
    let x_fmt = |c: &f64| p.x.label(*c);
    let y_fmt = |c: &f64| p.y.label(*c);
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_desc(p.y_desc)
        .label_style(font(TICK_SIZE))
        .axis_desc_style(font(DESC_SIZE))
        .bold_line_style(BLACK.mix(0.14))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK.mix(0.6));
    if let Some(d) = p.x_desc {
        mesh.x_desc(d);
    }
    mesh.draw().map_err(draw_err)?;
    Ok(chart)
}

/// Draws a polyline given in coordinate space (`None` breaks it), clipped to the chart; an
/// isolated point becomes a dot. The legend entry, if any, is attached once.
pub(crate) fn line<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    x: &Axis,
    y: &Axis,
    points: &[Option<(f64, f64)>],
    style: ShapeStyle,
    label: Option<&str>,
) -> Result<bool, PlotError> {
    let mut labelled = false;
    for run in clip(points, x.range(), y.range()) {
        // A million-step sweep would make a 100 MB SVG; a few thousand points look the same.
        let run = decimate(run, 4000);
        let anno = if run.len() >= 2 {
            chart.draw_series(LineSeries::new(run, style))
        } else {
            let r = style.stroke_width.max(2) + 1;
            chart.draw_series(run.into_iter().map(|p| Circle::new(p, r, style.filled())))
        }
        .map_err(draw_err)?;
        if let (Some(l), false) = (label, labelled) {
            anno.label(l).legend(move |(px, py)| {
                PathElement::new(vec![(px - 12, py), (px + 12, py)], style)
            });
            labelled = true;
        }
    }
    Ok(labelled)
}

/// Dots at the given coordinates, skipping those outside the view (no legend).
pub(crate) fn markers<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    x: &Axis,
    y: &Axis,
    points: &[Option<(f64, f64)>],
    radius: u32,
    color: RGBColor,
) -> Result<(), PlotError> {
    let visible = points
        .iter()
        .flatten()
        .filter(|(px, py)| x.contains(*px) && y.contains(*py))
        .map(|&p| Circle::new(p, radius, color.filled()));
    chart.draw_series(visible).map_err(draw_err)?;
    Ok(())
}

/// A highlighted point: a filled dot with a white ring, so it stands out on top of a line.
pub(crate) fn highlight<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    at: (f64, f64),
    radius: u32,
    color: RGBColor,
) -> Result<(), PlotError> {
    chart
        .draw_series([
            Circle::new(at, radius + 2, WHITE.filled()),
            Circle::new(at, radius, color.filled()),
        ])
        .map_err(draw_err)?;
    Ok(())
}

/// A dashed vertical line across the whole view at coordinate `xc`, with an optional legend
/// entry (dashed too, so the legend matches).
pub(crate) fn vline<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    y: &Axis,
    xc: f64,
    style: ShapeStyle,
    label: Option<&str>,
) -> Result<(), PlotError> {
    let (y0, y1) = y.range();
    let anno = chart
        .draw_series(DashedLineSeries::new(vec![(xc, y0), (xc, y1)], 8, 5, style))
        .map_err(draw_err)?;
    if let Some(l) = label {
        anno.label(l).legend(move |(px, py)| {
            DashedPathElement::new(vec![(px - 12, py), (px + 12, py)], 5, 3, style)
        });
    }
    Ok(())
}

/// Which side of its anchor a note sits on.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Left,
    Right,
}

/// Picks the side with more room: notes for anchors in the right part of the chart go left.
pub(crate) fn side_for(x: &Axis, xc: f64) -> Side {
    if x.frac(xc) > 0.62 {
        Side::Left
    } else {
        Side::Right
    }
}

/// A short text on a translucent white box, offset from the anchor `at` (coordinate space) by
/// a few pixels to `side` and `dy` pixels down, so it stays legible over grid and curves.
pub(crate) fn note<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    at: (f64, f64),
    side: Side,
    dy: i32,
    text: &str,
    color: RGBColor,
) -> Result<(), PlotError> {
    let style = font(NOTE_SIZE).color(&color);
    let (w, h) = chart
        .plotting_area()
        .estimate_text_size(text, &style)
        .map_err(draw_err)?;
    let (w, h) = (w as i32, h as i32);
    let pad = 4;
    let x0 = match side {
        Side::Right => 8,
        Side::Left => -8 - w - 2 * pad,
    };
    let element = EmptyElement::at(at)
        + Rectangle::new(
            [(x0, dy), (x0 + w + 2 * pad, dy + h + 2 * pad)],
            WHITE.mix(0.85).filled(),
        )
        + Text::new(text.to_string(), (x0 + pad, dy + pad), style);
    chart
        .draw_series(std::iter::once(element))
        .map_err(draw_err)?;
    Ok(())
}

/// Draws the legend box of every labelled series.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .legend_area_size(30)
        .background_style(WHITE.mix(0.88))
        .border_style(BLACK.mix(0.25))
        .label_font(font(LEGEND_SIZE))
        .draw()
        .map_err(draw_err)
}
