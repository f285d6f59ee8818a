//! Axes, tick placement, robust view ranges, clipping and decimation: the numeric side of the
//! figures, kept free of plotters types where possible so it can be unit-tested directly.
//!
//! Log axes are drawn as linear axes over `log10(value)` with our own ticks. That gives every
//! chart the same coordinate type, exact clipping in a linear space, and sensible ticks on
//! ranges narrower than a decade (where plotters' log coordinate places none).

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use super::format;

/// Coordinate extremes we are willing to map: keeps pixel arithmetic finite for absurd inputs.
const COORD_LIMIT: f64 = 1e300;

/// One axis: its range in coordinate space (`log10` of the data for log axes) and its ticks.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    major: Vec<f64>,
    minor: Vec<f64>,
    step: f64,
}

impl Axis {
    /// Linear axis over `[lo, hi]` (data units), with "nice" 1/2/5 ticks.
    pub(crate) fn linear(lo: f64, hi: f64) -> Self {
        let (lo, hi) = sane_range(lo, hi, COORD_LIMIT);
        let step = nice_step((hi - lo) / 6.0);
        let major = multiples(lo, hi, step, 0.0);
        let minor = multiples(lo, hi, step, 0.5);
        Self {
            lo,
            hi,
            log: false,
            major,
            minor,
            step,
        }
    }

    /// Linear axis whose ticks are whole numbers (epochs, steps).
    pub(crate) fn integer(lo: f64, hi: f64) -> Self {
        let (lo, hi) = sane_range(lo, hi, COORD_LIMIT);
        let step = nice_step((hi - lo) / 8.0).max(1.0).round();
        let major = multiples(lo, hi, step, 0.0);
        let minor = if step >= 2.0 {
            multiples(lo, hi, step, 0.5)
        } else {
            Vec::new()
        };
        Self {
            lo,
            hi,
            log: false,
            major,
            minor,
            step,
        }
    }

    /// Log axis over `[lo, hi]` (data units, both > 0; anything else is replaced by a
    /// decade around whatever is usable).
    pub(crate) fn log(lo: f64, hi: f64) -> Self {
        let lo_c = if lo > 0.0 && lo.is_finite() {
            lo.log10()
        } else {
            f64::NAN
        };
        let hi_c = if hi > 0.0 && hi.is_finite() {
            hi.log10()
        } else {
            f64::NAN
        };
        // A single point or an all-equal sweep gets a decade around it.
        let (lo, hi) = match (lo_c.is_finite(), hi_c.is_finite()) {
            (true, true) if hi_c - lo_c > 1e-9 => (lo_c, hi_c),
            (true, true) => (lo_c - 0.5, hi_c + 0.5),
            (true, false) => (lo_c - 0.5, lo_c + 0.5),
            (false, true) => (hi_c - 0.5, hi_c + 0.5),
            (false, false) => (-1.0, 1.0),
        };
        let (lo, hi) = (lo.max(-300.0), hi.min(300.0));
        let (major, minor) = log_ticks(lo, hi);
        Self {
            lo,
            hi,
            log: true,
            major,
            minor,
            step: 1.0,
        }
    }

    /// The same kind of axis with its upper end moved to coordinate `hi` (headroom for a
    /// legend that has no free spot otherwise).
    pub(crate) fn with_top(&self, hi: f64) -> Self {
        if self.log {
            Axis::log(10f64.powf(self.lo), 10f64.powf(hi))
        } else {
            Axis::linear(self.lo, hi)
        }
    }

    /// Whether this is a log axis.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_log(&self) -> bool {
        self.log
    }

    /// Data value to coordinate; `None` for values this axis cannot show at all.
    pub(crate) fn coord(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            (v.abs() <= COORD_LIMIT).then_some(v)
        }
    }

    /// Coordinate range `(lo, hi)`.
    pub(crate) fn range(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// Whether a coordinate lies within the visible range.
    pub(crate) fn contains(&self, c: f64) -> bool {
        c >= self.lo && c <= self.hi
    }

    /// Tick label for a coordinate.
    pub(crate) fn label(&self, c: f64) -> String {
        if self.log {
            format::sci(10f64.powf(c), 3)
        } else {
            let max_abs = self.lo.abs().max(self.hi.abs());
            format::linear_tick(c, self.step, max_abs)
        }
    }
}

/// The axis is its own plotters coordinate: linear over its coordinate range, with our ticks
/// (major ticks are labelled grid lines, minor ones light grid lines).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.lo) / (self.hi - self.lo);
        let px = f64::from(limit.0) + f * f64::from(limit.1 - limit.0);
        // Data is clipped before drawing; the clamp only guards the float-to-int conversion.
        px.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Makes `[lo, hi]` finite, ordered and non-empty, widening a degenerate range around its value.
fn sane_range(lo: f64, hi: f64, limit: f64) -> (f64, f64) {
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo.min(hi), lo.max(hi)),
        (true, false) => (lo, lo),
        (false, true) => (hi, hi),
        (false, false) => (0.0, 1.0),
    };
    let (lo, hi) = (lo.clamp(-limit, limit), hi.clamp(-limit, limit));
    let scale = lo.abs().max(hi.abs());
    if hi - lo > scale * 1e-9 && hi - lo > 0.0 {
        return (lo, hi);
    }
    let half = if scale > 0.0 { scale * 0.1 } else { 1.0 };
    (lo - half, hi + half)
}

/// Rounds a raw tick spacing to 1, 2 or 5 times a power of ten.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `(k + offset) * step` for every integer k that lands in `[lo, hi]`.
fn multiples(lo: f64, hi: f64, step: f64, offset: f64) -> Vec<f64> {
    let first = (lo / step - offset).ceil();
    let last = (hi / step - offset).floor();
    if !(first.is_finite() && last.is_finite()) || last - first > 1000.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut k = first;
    while k <= last {
        let v = (k + offset) * step;
        // Snap values that are zero up to rounding, so the label reads "0".
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// Major and minor ticks of a log axis, in log10 coordinates.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let eps = 1e-9;
    let first = (lo - eps).ceil() as i64;
    let last = (hi + eps).floor() as i64;
    let decades: Vec<i64> = (first..=last).collect();
    let inside = |c: f64| c >= lo - eps && c <= hi + eps;
    let with_mantissas = |ms: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for k in (lo.floor() as i64)..=(hi.ceil() as i64) {
            for m in ms {
                let c = k as f64 + m.log10();
                if inside(c) {
                    out.push(c);
                }
            }
        }
        out
    };
    let all_mantissas = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    if decades.len() >= 4 {
        // At most ~10 labelled decades; the rest become grid lines.
        let stride = decades.len().div_ceil(10) as i64;
        let major: Vec<f64> = decades
            .iter()
            .filter(|k| k.rem_euclid(stride) == 0)
            .map(|&k| k as f64)
            .collect();
        let minor = if decades.len() <= 12 {
            with_mantissas(&all_mantissas[1..])
        } else {
            decades
                .iter()
                .filter(|k| k.rem_euclid(stride) != 0)
                .map(|&k| k as f64)
                .collect()
        };
        return (major, minor);
    }
    // Up to a few decades: 1-2-5 ticks, so a short axis (an LR decay over two decades)
    // still has several labels.
    let mut major = with_mantissas(&[1.0, 2.0, 5.0]);
    if major.len() < 3 {
        major = with_mantissas(&all_mantissas);
    }
    if major.len() < 2 {
        // Narrower than the gap between two mantissas: label the ends and the middle.
        major = vec![lo, (lo + hi) / 2.0, hi];
    }
    let minor = with_mantissas(&all_mantissas)
        .into_iter()
        .filter(|c| !major.iter().any(|m| (m - c).abs() < eps))
        .collect();
    (major, minor)
}

/// Finite minimum and maximum of `values`.
pub(crate) fn finite_span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
        })
}

/// Widens `[lo, hi]` by `frac` of its span on both sides (a degenerate range by 10% of its
/// value), so curves do not touch the frame.
pub(crate) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let (lo, hi) = sane_range(lo, hi, COORD_LIMIT);
    let pad = (hi - lo) * frac;
    (lo - pad, hi + pad)
}

/// Vertical view for loss curves that may blow up at the end (a range test always does).
///
/// Each curve is shown from its minimum up to its starting level plus half the descent, so
/// a final explosion to 1e3 (or inf) is clipped instead of flattening the interesting part.
/// `extra` values (the raw, noisy loss) always pull the view down to their minimum: the
/// lowest raw loss is the first sanity check a reader looks for, and the smoothed curve lags
/// above it. They never widen the view upwards. Returns `None` when nothing is finite.
pub(crate) fn loss_view(curves: &[Vec<f64>], extra: &[f64]) -> Option<(f64, f64)> {
    let mut view: Option<(f64, f64)> = None;
    for curve in curves {
        let finite: Vec<f64> = curve.iter().copied().filter(|v| v.is_finite()).collect();
        let Some((lo, max)) = finite_span(finite.iter().copied()) else {
            continue;
        };
        let argmin = finite.iter().position(|&v| v == lo).unwrap_or(0);
        // The level the curve descends from: the highest point before its minimum.
        let start = finite[..=argmin]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let hi = if start > lo {
            max.min(start + 0.5 * (start - lo))
        } else {
            max
        };
        view = Some(match view {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
    let (lo, hi) = match view {
        Some((lo, hi)) => match finite_span(extra.iter().copied()) {
            Some((extra_lo, _)) => (lo.min(extra_lo), hi),
            None => (lo, hi),
        },
        None if extra.iter().any(|v| v.is_finite()) => return loss_view(&[extra.to_vec()], &[]),
        None => return None,
    };
    Some(padded(lo, hi, 0.05))
}

/// Splits a polyline (coordinate space, `None` = missing point) into runs clipped to the
/// box `x` × `y`. Runs of one point are isolated points inside the box (draw them as dots).
pub(crate) fn clip(
    points: &[Option<(f64, f64)>],
    x: (f64, f64),
    y: (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let inside = |p: (f64, f64)| p.0 >= x.0 && p.0 <= x.1 && p.1 >= y.0 && p.1 <= y.1;
    let mut runs = Vec::new();
    for run in points.split(|p| p.is_none()) {
        let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
        if run.len() == 1 {
            if inside(run[0]) {
                runs.push(run);
            }
            continue;
        }
        let mut current: Vec<(f64, f64)> = Vec::new();
        for seg in run.windows(2) {
            match clip_segment(seg[0], seg[1], x, y) {
                None => {
                    if current.len() >= 2 {
                        runs.push(std::mem::take(&mut current));
                    }
                    current.clear();
                }
                Some((a, b, a_moved, b_moved)) => {
                    if current.is_empty() || a_moved {
                        if current.len() >= 2 {
                            runs.push(std::mem::take(&mut current));
                        }
                        current = vec![a];
                    }
                    current.push(b);
                    if b_moved {
                        runs.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if current.len() >= 2 {
            runs.push(current);
        }
    }
    runs
}

/// A clipped segment: its two ends, and whether each was moved by the clipping.
type Clipped = ((f64, f64), (f64, f64), bool, bool);

/// Liang–Barsky clipping of one segment; also says whether each end was moved.
fn clip_segment(a: (f64, f64), b: (f64, f64), x: (f64, f64), y: (f64, f64)) -> Option<Clipped> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    // Vertical and horizontal segments (guide lines from -1e300 to 1e300) are clamped
    // exactly: `a + t·d` would cancel to 0 at such magnitudes.
    if dx == 0.0 || dy == 0.0 {
        let inside = |v: f64, r: (f64, f64)| v >= r.0 && v <= r.1;
        let (lo, hi) = (a.0.min(b.0).max(x.0), a.0.max(b.0).min(x.1));
        let (ylo, yhi) = (a.1.min(b.1).max(y.0), a.1.max(b.1).min(y.1));
        if lo > hi || ylo > yhi {
            return None;
        }
        let clamp = |p: (f64, f64)| (p.0.clamp(lo, hi), p.1.clamp(ylo, yhi));
        let (ca, cb) = (clamp(a), clamp(b));
        let moved = |p: (f64, f64)| !(inside(p.0, x) && inside(p.1, y));
        return Some((ca, cb, moved(a), moved(b)));
    }
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x.0),
        (dx, x.1 - a.0),
        (-dy, a.1 - y.0),
        (dy, y.1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return None;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return None;
                }
                t1 = t1.min(r);
            }
        }
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    Some((at(t0), at(t1), t0 > 0.0, t1 < 1.0))
}

/// Linear interpolation of a polyline at `x` (coordinate space); `None` outside its extent.
pub(crate) fn interpolate(points: &[(f64, f64)], x: f64) -> Option<f64> {
    points.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let (a, b) = (x0.min(x1), x0.max(x1));
        if x < a || x > b {
            return None;
        }
        if x1 == x0 {
            return Some(y0);
        }
        Some(y0 + (x - x0) / (x1 - x0) * (y1 - y0))
    })
}

/// Thins a long series of points to about `max` points, keeping each bucket's minimum and
/// maximum so spikes and restarts survive (a 100k-step schedule would otherwise make a
/// multi-megabyte SVG).
pub(crate) fn decimate(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 4 {
        return points;
    }
    let bucket = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max + 2);
    for chunk in points.chunks(bucket) {
        let by_y = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
        let (Some(lo), Some(hi)) = (chunk.iter().min_by(by_y), chunk.iter().max_by(by_y)) else {
            continue;
        };
        // Keep the pair in x order so the polyline does not double back.
        if lo.0 <= hi.0 {
            out.extend([*lo, *hi]);
        } else {
            out.extend([*hi, *lo]);
        }
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        if out.first() != Some(first) {
            out.insert(0, *first);
        }
        if out.last() != Some(last) {
            out.push(*last);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_on_wide_and_narrow_ranges() {
        let a = Axis::log(1e-7, 10.0);
        assert_eq!(a.major.len(), 9);
        assert_eq!(a.label(-3.0), "1e-3");
        // Narrower than a decade: plotters' own log coordinate has no tick here.
        let a = Axis::log(2e-3, 8e-3);
        let labels: Vec<String> = a.major.iter().map(|&c| a.label(c)).collect();
        assert_eq!(
            labels,
            ["2e-3", "3e-3", "4e-3", "5e-3", "6e-3", "7e-3", "8e-3"]
        );
        let a = Axis::log(1.5e-4, 2e-2);
        let labels: Vec<String> = a.major.iter().map(|&c| a.label(c)).collect();
        assert_eq!(
            labels,
            ["2e-4", "5e-4", "1e-3", "2e-3", "5e-3", "1e-2", "2e-2"]
        );
        let a = Axis::log(3.1e-3, 3.2e-3);
        assert_eq!(a.major.len(), 3);
    }

    #[test]
    fn degenerate_axes_are_widened() {
        let a = Axis::log(1e-3, 1e-3);
        assert!(a.range().0 < -3.0 && a.range().1 > -3.0);
        let a = Axis::log(f64::NAN, -1.0);
        assert!(a.range().0 < a.range().1);
        let a = Axis::linear(2.0, 2.0);
        assert!(a.range().0 < 2.0 && a.range().1 > 2.0);
        let a = Axis::integer(1.0, 1.0);
        assert!(!a.major.is_empty());
        assert!(a.major.iter().all(|m| m.fract() == 0.0));
    }

    #[test]
    fn loss_view_clips_explosion() {
        let mut s: Vec<f64> = (0..50).map(|i| 2.3 - 1.8 * (i as f64 / 49.0)).collect();
        s.extend([1.0, 10.0, 1e3, f64::INFINITY, f64::NAN]);
        let (lo, hi) = loss_view(&[s], &[]).unwrap();
        assert!(lo < 0.5 && lo > 0.3, "{lo}");
        assert!(hi > 2.3 && hi < 3.5, "{hi}");
    }

    #[test]
    fn loss_view_reaches_the_raw_minimum_however_far_below() {
        let smoothed: Vec<f64> = (0..50).map(|i| 2.3 - 1.0 * (i as f64 / 49.0)).collect();
        // A raw dip far below the lagging smoothed curve (1.3 at its lowest).
        let raw = [2.3, 1.9, 0.2, 1.4, 50.0, f64::NAN];
        let (lo, hi) = loss_view(std::slice::from_ref(&smoothed), &raw).unwrap();
        assert!(lo < 0.2, "{lo}");
        // The raw spike to 50 does not widen the view upwards.
        let (_, hi_alone) = loss_view(&[smoothed], &[]).unwrap();
        assert!((hi - hi_alone).abs() < 0.2 * hi_alone, "{hi} vs {hi_alone}");
    }

    #[test]
    fn loss_view_handles_degenerate_input() {
        assert!(loss_view(&[], &[]).is_none());
        assert!(loss_view(&[vec![f64::NAN]], &[f64::INFINITY]).is_none());
        let (lo, hi) = loss_view(&[vec![1.0, 1.0]], &[]).unwrap();
        assert!(lo < 1.0 && hi > 1.0);
        let (lo, hi) = loss_view(&[vec![]], &[3.0, 2.0]).unwrap();
        assert!(lo < 2.0 && hi > 3.0);
    }

    #[test]
    fn guide_lines_of_huge_extent_clip_exactly() {
        // A vertical guide as vline_path makes it: from -1e300 to 1e300.
        let runs = clip(
            &[Some((0.5, -1e300)), Some((0.5, 1e300))],
            (0.0, 1.0),
            (2.0, 2.3),
        );
        assert_eq!(runs, [vec![(0.5, 2.0), (0.5, 2.3)]]);
        let runs = clip(
            &[Some((-1e300, 2.1)), Some((1e300, 2.1))],
            (0.0, 1.0),
            (2.0, 2.3),
        );
        assert_eq!(runs, [vec![(0.0, 2.1), (1.0, 2.1)]]);
        assert!(clip(
            &[Some((1.5, -1e300)), Some((1.5, 1e300))],
            (0.0, 1.0),
            (2.0, 2.3)
        )
        .is_empty());
    }

    #[test]
    fn clipping_splits_and_cuts() {
        let pts = [
            Some((0.0, 0.5)),
            Some((1.0, 2.0)),
            Some((2.0, 0.5)),
            None,
            Some((3.0, 0.5)),
            None,
        ];
        let runs = clip(&pts, (0.0, 4.0), (0.0, 1.0));
        assert_eq!(runs.len(), 3);
        let close = |a: &[(f64, f64)], b: &[(f64, f64)]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(p, q)| (p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12)
        };
        assert!(close(&runs[0], &[(0.0, 0.5), (1.0 / 3.0, 1.0)]), "{runs:?}");
        assert!(close(&runs[1], &[(5.0 / 3.0, 1.0), (2.0, 0.5)]), "{runs:?}");
        assert_eq!(runs[2], vec![(3.0, 0.5)]);
    }

    #[test]
    fn interpolation_and_decimation() {
        let pts = [(0.0, 0.0), (1.0, 2.0), (2.0, 0.0)];
        assert_eq!(interpolate(&pts, 0.5), Some(1.0));
        assert_eq!(interpolate(&pts, 3.0), None);
        let many: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (i as f64, if i == 5000 { 9.0 } else { 1.0 }))
            .collect();
        let thin = decimate(many, 1000);
        assert!(thin.len() <= 1002);
        assert!(thin.iter().any(|p| p.1 == 9.0));
        assert!(thin.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
