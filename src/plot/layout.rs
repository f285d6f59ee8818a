//! Where things go on a figure: pixel rectangles, the free spot for a legend or a note, title
//! wrapping, and the [`Layout`] record every figure returns so tests can check what was drawn
//! (the title fits, the legend is off the data, the raw minimum is in view) without pixels.

use super::scale::Axis;
use super::text;

/// A pixel rectangle, `[x0, x1) × [y0, y1)`, in canvas coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub(crate) fn new(x0: i32, y0: i32, w: i32, h: i32) -> Self {
        Self {
            x0,
            y0,
            x1: x0 + w,
            y1: y0 + h,
        }
    }

    pub(crate) fn width(&self) -> i32 {
        self.x1 - self.x0
    }

    pub(crate) fn height(&self) -> i32 {
        self.y1 - self.y0
    }

    pub(crate) fn contains(&self, p: (i32, i32)) -> bool {
        p.0 >= self.x0 && p.0 < self.x1 && p.1 >= self.y0 && p.1 < self.y1
    }

    pub(crate) fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }

    pub(crate) fn grow(&self, m: i32) -> Rect {
        Rect {
            x0: self.x0 - m,
            y0: self.y0 - m,
            x1: self.x1 + m,
            y1: self.y1 + m,
        }
    }
}

/// A box placed on a panel: the legend or a note, with its text.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Placed {
    pub legend: bool,
    pub lines: Vec<String>,
    pub rect: Rect,
}

/// One chart panel as drawn.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct PanelLayout {
    /// The plotting area (inside the axes).
    pub plot: Rect,
    pub x: Axis,
    pub y: Axis,
    pub y_desc: String,
    /// Pixels along every data series drawn (sampled every couple of pixels).
    pub data: Vec<(i32, i32)>,
    pub boxes: Vec<Placed>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl PanelLayout {
    pub(crate) fn legend(&self) -> Option<&Placed> {
        self.boxes.iter().find(|b| b.legend)
    }
}

/// What a figure drew, for tests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub size: (u32, u32),
    /// Title lines and their pixel boxes (measured with the font they are drawn in).
    pub title: Vec<(String, Rect)>,
    pub panels: Vec<PanelLayout>,
}

/// Pixels along a polyline, one every ~2 px, so a box between two far-apart vertices still
/// sees the segment that crosses it.
pub(crate) fn trace(points: &[(i32, i32)], out: &mut Vec<(i32, i32)>) {
    if let [only] = points {
        out.push(*only);
    }
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
        let n = (dx.abs().max(dy.abs()) / 2.0).ceil().max(1.0) as i32;
        for k in 0..=n {
            let t = f64::from(k) / f64::from(n);
            out.push((a.0 + (dx * t).round() as i32, a.1 + (dy * t).round() as i32));
        }
    }
}

/// Gap between a placed box and the plot frame.
const INSET: i32 = 10;
/// Clearance a box keeps from data pixels.
const CLEARANCE: i32 = 6;

/// The spot for a `size` box inside `plot` that covers the fewest `data` pixels and no
/// `taken` box, preferring the corners (top right first), then the edges. Returns the box and
/// how many data pixels it covers (0 = free).
pub(crate) fn place(
    plot: Rect,
    size: (i32, i32),
    data: &[(i32, i32)],
    taken: &[Rect],
) -> (Rect, usize) {
    let (w, h) = size;
    let (xl, xr) = (plot.x0 + INSET, plot.x1 - INSET - w);
    let (yt, yb) = (plot.y0 + INSET, plot.y1 - INSET - h);
    let xm = (xl + xr) / 2;
    let ym = (yt + yb) / 2;
    // Corners first, then the middles of the edges, then a sweep along top and bottom.
    let mut spots = vec![
        (xr, yt),
        (xl, yt),
        (xr, yb),
        (xl, yb),
        (xm, yt),
        (xm, yb),
        (xr, ym),
        (xl, ym),
    ];
    for k in 1..8 {
        let x = xl + (xr - xl) * k / 8;
        spots.push((x, yt));
        spots.push((x, yb));
    }
    let mut best: Option<(Rect, usize)> = None;
    for (x, y) in spots {
        let r = Rect::new(x.max(plot.x0), y.max(plot.y0), w, h);
        if taken.iter().any(|t| t.grow(CLEARANCE).intersects(&r)) {
            continue;
        }
        let zone = r.grow(CLEARANCE);
        let hits = data.iter().filter(|p| zone.contains(**p)).count();
        if best.as_ref().is_none_or(|(_, b)| hits < *b) {
            best = Some((r, hits));
        }
        if hits == 0 {
            break;
        }
    }
    // Everything taken: the top-right corner is as good as any.
    best.unwrap_or((Rect::new(xr.max(plot.x0), yt, w, h), data.len()))
}

/// Splits `text` into lines no wider than `max` pixels at `size` (bold or not), breaking at
/// spaces; a word too long for a line is cut with an ellipsis, and so is a last line when
/// more than `max_lines` would be needed.
pub(crate) fn wrap(text: &str, size: f64, bold: bool, max: f64, max_lines: usize) -> Vec<String> {
    let fits = |s: &str| text::width(s, size, bold) <= max;
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if fits(&candidate) {
            current = candidate;
        } else {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            current = if fits(word) {
                word.to_string()
            } else {
                shorten(word, &fits)
            };
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines.max(1) {
        lines.truncate(max_lines.max(1));
        if let Some(last) = lines.last_mut() {
            *last = shorten(&format!("{last} …"), &fits);
        }
    }
    lines
}

/// The longest prefix of `s` that fits with a trailing ellipsis.
fn shorten(s: &str, fits: &dyn Fn(&str) -> bool) -> String {
    let chars: Vec<char> = s.trim_end_matches('…').chars().collect();
    for n in (0..=chars.len()).rev() {
        let candidate: String = chars[..n].iter().collect::<String>() + "…";
        if fits(&candidate) {
            return candidate;
        }
    }
    "…".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_prefers_a_free_corner() {
        let plot = Rect::new(0, 0, 400, 300);
        // A line along the top edge: the free corners are at the bottom.
        let mut data = Vec::new();
        trace(&[(0, 20), (399, 20)], &mut data);
        let (r, hits) = place(plot, (100, 40), &data, &[]);
        assert_eq!(hits, 0);
        assert!(r.y0 > 100, "{r:?}");
        assert!(r.inside(&plot));
        // Data everywhere: nothing is free, and it says so.
        let mut all = Vec::new();
        for y in (0..300).step_by(5) {
            trace(&[(0, y), (399, y)], &mut all);
        }
        assert!(place(plot, (100, 40), &all, &[]).1 > 0);
        // A taken box is avoided.
        let (a, _) = place(plot, (100, 40), &[], &[]);
        let (b, _) = place(plot, (100, 40), &[], &[a]);
        assert!(!a.intersects(&b));
    }

    #[test]
    fn trace_samples_long_segments() {
        let mut out = Vec::new();
        trace(&[(0, 0), (100, 0)], &mut out);
        assert!(out.len() >= 50);
        assert!(out.contains(&(50, 0)));
    }

    #[test]
    fn wrap_breaks_at_spaces_and_fits() {
        let spec = "SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95), milestones=[5])";
        let lines = wrap(spec, 24.0, true, 600.0, 3);
        assert!(lines.len() >= 2, "{lines:?}");
        for l in &lines {
            assert!(text::width(l, 24.0, true) <= 600.0, "{l}");
        }
        assert_eq!(lines.join(" "), spec);
        // A single unbreakable word is shortened with an ellipsis.
        let long = "x".repeat(200);
        let cut = wrap(&long, 24.0, true, 300.0, 3);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].ends_with('…'));
        assert!(text::width(&cut[0], 24.0, true) <= 300.0);
        // Too many lines: the last one says it was cut.
        let many = "word ".repeat(200);
        let lines = wrap(&many, 24.0, true, 300.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'));
    }
}
