//! The shared look of every figure (fonts, colours, grid) and the drawing primitives built on
//! [`scale`](super::scale): panels, clipped lines, markers, dashed guides, notes, legends.

use plotters::chart::ChartContext;
use plotters::coord::CoordTranslate;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::series::DashedLineSeries;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::layout::{place, trace, wrap, Layout, PanelLayout, Placed, Rect};
use super::output::draw_err;
use super::scale::{clip, decimate, Axis};
use super::{text, PlotError};

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

/// Bold text of the given size. `FontDesc::style` would keep the regular face's glyph data
/// (plotters 0.3.7), so the bold face is asked for when the font is created.
pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().color(&TEXT)
}

/// Every chart has the same coordinate type: see [`scale`](super::scale) for why.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// Gap between title lines and what follows them.
const TITLE_GAP: i32 = 6;

/// Clears the canvas, draws the title (wrapped to the canvas width, at most three lines) and
/// returns the area below it. The title lines go into `layout`.
pub(crate) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    layout: &mut Layout,
) -> Result<DrawingArea<DB, Shift>, PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    layout.size = root.dim_in_pixel();
    let root = root.margin(10, 6, 6, 14);
    if title.trim().is_empty() {
        return Ok(root);
    }
    let (w, _) = root.dim_in_pixel();
    let (ox, oy) = (root.get_base_pixel().0, root.get_base_pixel().1);
    // A little narrower than the area, so even a long line keeps a margin on both sides.
    let max = f64::from(w) - 24.0;
    let lines = wrap(title, TITLE_SIZE, true, max, 3);
    let line_h = (text::line_height(TITLE_SIZE).ceil() as i32).max(1);
    let style = bold(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
    let cx = w as i32 / 2;
    for (i, line) in lines.iter().enumerate() {
        let y = i as i32 * line_h;
        root.draw(&Text::new(line.clone(), (cx, y), style.clone()))
            .map_err(draw_err)?;
        let lw = text::width(line, TITLE_SIZE, true).ceil() as i32;
        layout.title.push((
            line.clone(),
            Rect::new(ox + cx - lw / 2, oy + y, lw, line_h),
        ));
    }
    let used = lines.len() as i32 * line_h + TITLE_GAP;
    let (_, below) = root.split_vertically(used);
    Ok(below)
}

/// A figure with nothing to draw: the title and a short explanation, instead of an error, so a
/// run that produced no usable numbers still leaves a file that says so.
pub(crate) fn empty<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    message: &str,
) -> Result<Layout, PlotError> {
    let mut layout = Layout::default();
    let area = titled(root, title, &mut layout)?;
    let (w, h) = area.dim_in_pixel();
    let style = font(DESC_SIZE)
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(message, (w as i32 / 2, h as i32 / 2), style))
        .map_err(draw_err)?;
    Ok(layout)
}

/// What one panel shows: its axes and their descriptions (`None` hides the x description, for
/// panels stacked above another that shares the x axis).
pub(crate) struct Panel<'s> {
    pub x: &'s Axis,
    pub y: &'s Axis,
    pub x_desc: Option<&'s str>,
    pub y_desc: &'s str,
}

/// Builds a chart on `area` without drawing anything yet.
fn build<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    p: &Panel,
    y: &Axis,
) -> Result<Chart<'a, DB>, PlotError> {
    ChartBuilder::on(area)
        .margin_top(8)
        .margin_right(18)
        .x_label_area_size(if p.x_desc.is_some() { 56 } else { 32 })
        .y_label_area_size(84)
        .build_cartesian_2d(p.x.clone(), y.clone())
        .map_err(draw_err)
}

/// Draws grid, ticks and axis descriptions.
fn mesh<DB: DrawingBackend>(chart: &mut Chart<DB>, p: &Panel, y: &Axis) -> Result<(), PlotError> {
    let x_fmt = |c: &f64| p.x.label(*c);
    let y_fmt = |c: &f64| y.label(*c);
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
    mesh.draw().map_err(draw_err)
}

/// The plotting area of a chart, in canvas pixels.
fn plot_rect<DB: DrawingBackend>(chart: &Chart<DB>) -> Rect {
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    Rect {
        x0: xr.start,
        y0: yr.start,
        x1: xr.end,
        y1: yr.end,
    }
}

/// Canvas pixels along every polyline (coordinate space), clipped to the chart's view.
fn pixels<DB: DrawingBackend>(
    chart: &Chart<DB>,
    x: &Axis,
    y: &Axis,
    lines: &[&[Option<(f64, f64)>]],
) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for line in lines {
        for run in clip(line, x.range(), y.range()) {
            let px: Vec<(i32, i32)> = run
                .iter()
                .map(|p| chart.as_coord_spec().translate(p))
                .collect();
            trace(&px, &mut out);
        }
    }
    out
}

/// One entry of a legend: how its sample looks and what it says.
#[derive(Clone)]
pub(crate) enum Mark {
    Line(ShapeStyle),
    Dashed(ShapeStyle),
    /// A line with a dot on it (per-epoch series).
    LineDot(ShapeStyle),
    /// A dot of this radius; `true` gives it the white ring of a highlight.
    Dot(RGBColor, u32, bool),
    Band(RGBAColor),
}

/// A box to place on a panel where it covers no data.
#[derive(Clone)]
pub(crate) enum Boxed {
    Legend(Vec<(Mark, String)>),
    /// Lines of text in one colour (warnings about the curve).
    Note(Vec<String>, RGBColor),
}

const BOX_PAD: i32 = 8;
const SAMPLE_W: i32 = 26;
const SAMPLE_GAP: i32 = 8;

fn row_height(size: f64) -> i32 {
    text::line_height(size).ceil() as i32 + 4
}

impl Boxed {
    fn size(&self) -> (i32, i32) {
        let widest = |lines: &mut dyn Iterator<Item = &String>, size| {
            lines
                .map(|l| text::width(l, size, false).ceil() as i32)
                .max()
                .unwrap_or(0)
        };
        match self {
            Boxed::Legend(entries) => {
                let w = widest(&mut entries.iter().map(|e| &e.1), LEGEND_SIZE);
                let h = entries.len() as i32 * row_height(LEGEND_SIZE);
                (2 * BOX_PAD + SAMPLE_W + SAMPLE_GAP + w, 2 * BOX_PAD + h - 4)
            }
            Boxed::Note(lines, _) => {
                let w = widest(&mut lines.iter(), NOTE_SIZE);
                let h = lines.len() as i32 * row_height(NOTE_SIZE);
                (2 * BOX_PAD + w, 2 * BOX_PAD + h - 4)
            }
        }
    }

    fn lines(&self) -> Vec<String> {
        match self {
            Boxed::Legend(e) => e.iter().map(|e| e.1.clone()).collect(),
            Boxed::Note(l, _) => l.clone(),
        }
    }
}

/// A chart whose legend and notes sit where they cover no data: [`framed`] places them (giving
/// the y axis headroom when no spot is free), draws the mesh and the series; the caller draws
/// anything else and then [`Framed::finish`] draws the boxes on top.
pub(crate) struct Framed<'a, DB: DrawingBackend> {
    pub chart: Chart<'a, DB>,
    /// The y axis as drawn (possibly with headroom added).
    pub y: Axis,
    pub layout: PanelLayout,
    boxes: Vec<Boxed>,
}

/// A series to draw on a framed panel: a polyline in coordinate space (`None` breaks it),
/// optionally with a dot at every point.
pub(crate) struct Series {
    pub points: Vec<Option<(f64, f64)>>,
    pub style: ShapeStyle,
    pub dots: Option<(u32, RGBColor)>,
}

/// See [`Framed`]. `avoid` are further polylines (coordinate space) the boxes must not cover,
/// e.g. a guide line or markers drawn later.
pub(crate) fn framed<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    p: &Panel,
    series: &[Series],
    avoid: &[Vec<Option<(f64, f64)>>],
    boxes: Vec<Boxed>,
) -> Result<Framed<'a, DB>, PlotError> {
    let lines: Vec<&[Option<(f64, f64)>]> = series
        .iter()
        .map(|s| s.points.as_slice())
        .chain(avoid.iter().map(Vec::as_slice))
        .collect();
    let sizes: Vec<(i32, i32)> = boxes.iter().map(Boxed::size).collect();
    let mut y = p.y.clone();
    let mut attempt = 0;
    let (chart, rects, data) = loop {
        let chart = build(area, p, &y)?;
        let plot = plot_rect(&chart);
        let data = pixels(&chart, p.x, &y, &lines);
        let mut rects: Vec<Rect> = Vec::new();
        let mut worst = 0;
        for &size in &sizes {
            let (r, hits) = place(plot, size, &data, &rects);
            if hits > 0 {
                worst = worst.max(size.1);
            }
            rects.push(r);
        }
        // No free spot: raise the top of the y axis so a band above the data is empty.
        let need = worst + 2 * 10 + 8;
        let h = plot.height();
        if worst == 0 || attempt == 3 || need > h / 2 {
            break (chart, rects, data);
        }
        attempt += 1;
        let (lo, hi) = y.range();
        y = y.with_top(lo + (hi - lo) * f64::from(h) / f64::from(h - need));
    };
    let mut chart = chart;
    mesh(&mut chart, p, &y)?;
    for s in series {
        line(&mut chart, p.x, &y, &s.points, s.style)?;
        if let Some((r, color)) = s.dots {
            markers(&mut chart, p.x, &y, &s.points, r, color)?;
        }
    }
    let layout = PanelLayout {
        plot: plot_rect(&chart),
        x: p.x.clone(),
        y: y.clone(),
        y_desc: p.y_desc.to_string(),
        data,
        boxes: boxes
            .iter()
            .zip(&rects)
            .map(|(b, r)| Placed {
                legend: matches!(b, Boxed::Legend(_)),
                lines: b.lines(),
                rect: *r,
            })
            .collect(),
    };
    Ok(Framed {
        chart,
        y,
        layout,
        boxes,
    })
}

impl<DB: DrawingBackend> Framed<'_, DB> {
    /// Draws the legend and notes in their places, and hands back the panel's layout.
    pub(crate) fn finish(self) -> Result<PanelLayout, PlotError> {
        let plot = self.layout.plot;
        let area = self.chart.plotting_area().strip_coord_spec();
        for (b, placed) in self.boxes.iter().zip(&self.layout.boxes) {
            let r = placed.rect;
            let (x0, y0) = (r.x0 - plot.x0, r.y0 - plot.y0);
            let (x1, y1) = (x0 + r.width(), y0 + r.height());
            area.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                WHITE.mix(0.9).filled(),
            ))
            .map_err(draw_err)?;
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.mix(0.25)))
                .map_err(draw_err)?;
            match b {
                Boxed::Legend(entries) => {
                    let row = row_height(LEGEND_SIZE);
                    for (i, (mark, label)) in entries.iter().enumerate() {
                        let cy = y0 + BOX_PAD + i as i32 * row + (row - 4) / 2;
                        let sx = x0 + BOX_PAD;
                        sample(&area, mark, (sx, cy))?;
                        let style = font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
                        area.draw(&Text::new(
                            label.clone(),
                            (sx + SAMPLE_W + SAMPLE_GAP, cy),
                            style,
                        ))
                        .map_err(draw_err)?;
                    }
                }
                Boxed::Note(lines, color) => {
                    let row = row_height(NOTE_SIZE);
                    for (i, l) in lines.iter().enumerate() {
                        let cy = y0 + BOX_PAD + i as i32 * row + (row - 4) / 2;
                        let style = font(NOTE_SIZE)
                            .color(color)
                            .pos(Pos::new(HPos::Left, VPos::Center));
                        area.draw(&Text::new(l.clone(), (x0 + BOX_PAD, cy), style))
                            .map_err(draw_err)?;
                    }
                }
            }
        }
        Ok(self.layout)
    }
}

/// A legend sample, `SAMPLE_W` wide, starting at `(x, cy)` (pixels in `area`).
fn sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    mark: &Mark,
    (x, cy): (i32, i32),
) -> Result<(), PlotError> {
    let ends = vec![(x, cy), (x + SAMPLE_W, cy)];
    let mid = (x + SAMPLE_W / 2, cy);
    match mark {
        Mark::Line(s) => area.draw(&PathElement::new(ends, *s)),
        Mark::Dashed(s) => area.draw(&DashedPathElement::new(ends, 5, 3, *s)),
        Mark::LineDot(s) => {
            area.draw(&PathElement::new(ends, *s)).map_err(draw_err)?;
            area.draw(&Circle::new(mid, 4, s.color.filled()))
        }
        Mark::Dot(c, r, ring) => {
            if *ring {
                area.draw(&Circle::new(mid, r + 2, WHITE.filled()))
                    .map_err(draw_err)?;
            }
            area.draw(&Circle::new(mid, *r, c.filled()))
        }
        Mark::Band(c) => area.draw(&Rectangle::new(
            [(x, cy - 6), (x + SAMPLE_W, cy + 6)],
            c.filled(),
        )),
    }
    .map_err(draw_err)
}

/// Draws a polyline given in coordinate space (`None` breaks it), clipped to the chart; an
/// isolated point becomes a dot.
pub(crate) fn line<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    x: &Axis,
    y: &Axis,
    points: &[Option<(f64, f64)>],
    style: ShapeStyle,
) -> Result<(), PlotError> {
    for run in clip(points, x.range(), y.range()) {
        // A million-step sweep would make a 100 MB SVG; a few thousand points look the same.
        let run = decimate(run, 4000);
        if run.len() >= 2 {
            chart.draw_series(LineSeries::new(run, style))
        } else {
            let r = style.stroke_width.max(2) + 1;
            chart.draw_series(run.into_iter().map(|p| Circle::new(p, r, style.filled())))
        }
        .map_err(draw_err)?;
    }
    Ok(())
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

/// A dashed vertical line across the whole view at coordinate `xc`.
pub(crate) fn vline<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    y: &Axis,
    xc: f64,
    style: ShapeStyle,
) -> Result<(), PlotError> {
    let (y0, y1) = y.range();
    chart
        .draw_series(DashedLineSeries::new(vec![(xc, y0), (xc, y1)], 8, 5, style))
        .map_err(draw_err)?;
    Ok(())
}

/// The obstacle a vertical guide at `xc` makes, for [`framed`]'s placement.
pub(crate) fn vline_path(xc: f64) -> Vec<Option<(f64, f64)>> {
    vec![Some((xc, -1e300)), Some((xc, 1e300))]
}
