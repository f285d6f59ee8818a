//! The learning rates a range test visits, one per optimizer step.

use serde::{Deserialize, Serialize};

/// How the LR rises from `min` to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LadderMode {
    /// Geometric: equal ratios between steps (the usual choice over several decades).
    Exp,
    /// Arithmetic: equal differences between steps.
    Linear,
}

impl std::str::FromStr for LadderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "exp" | "exponential" => Ok(Self::Exp),
            "linear" | "lin" => Ok(Self::Linear),
            _ => Err(format!("unknown mode '{s}' (allowed: exp, linear)")),
        }
    }
}

/// `n` learning rates from `min` to `max`: the first is exactly `min`, the last exactly `max`.
///
/// Callers validate `0 < min < max` (finite) and `n >= 2`; see `SweepConfig::validate`.
pub fn ladder(min: f64, max: f64, n: usize, mode: LadderMode) -> Vec<f64> {
    (0..n).map(|k| ladder_lr(min, max, n, mode, k)).collect()
}

/// The `k`-th learning rate of [`ladder`], computed alone so a sweep needs no array (a
/// billion-step sweep allocates nothing up front). `k >= n` continues the same ladder past
/// `max` (same ratio per step for exp, same increment for linear), as `extend` needs.
pub fn ladder_lr(min: f64, max: f64, n: usize, mode: LadderMode, k: usize) -> f64 {
    // Pin both ends exactly; the formulas may land one ulp off.
    if k == 0 {
        return min;
    }
    if n >= 2 && k == n - 1 {
        return max;
    }
    let t = k as f64 / n.saturating_sub(1).max(1) as f64;
    match mode {
        // exp(ln(min) + t·ln(max/min)) rather than min·ratio^t: one rounding less.
        LadderMode::Exp => (min.ln() + t * (max / min).ln()).exp(),
        LadderMode::Linear => min + t * (max - min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_ladder_has_exact_endpoints_and_equal_ratios() {
        let l = ladder(1e-6, 1.0, 100, LadderMode::Exp);
        assert_eq!(l.len(), 100);
        assert_eq!(l[0], 1e-6);
        assert_eq!(l[99], 1.0);
        let r = (1.0f64 / 1e-6).powf(1.0 / 99.0);
        for w in l.windows(2) {
            assert!((w[1] / w[0] - r).abs() < 1e-12, "{} {}", w[1] / w[0], r);
        }
        // 10^-3 lies exactly a half way in log space: 1e-6..1 over 7 points hits every half decade.
        let l = ladder(1e-6, 1.0, 7, LadderMode::Exp);
        for (k, v) in l.iter().enumerate() {
            let want = 10f64.powi(k as i32 - 6);
            assert!((v / want - 1.0).abs() < 1e-12, "{k}: {v} vs {want}");
        }
    }

    #[test]
    fn linear_ladder_has_exact_endpoints_and_equal_steps() {
        let l = ladder(0.001, 0.1, 34, LadderMode::Linear);
        assert_eq!(l[0], 0.001);
        assert_eq!(l[33], 0.1);
        let d = (0.1 - 0.001) / 33.0;
        for w in l.windows(2) {
            assert!((w[1] - w[0] - d).abs() < 1e-15);
        }
        assert_eq!(ladder(1.0, 3.0, 3, LadderMode::Linear), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn ladder_continues_past_max_with_the_same_step() {
        let l = ladder(1e-6, 1.0, 7, LadderMode::Exp);
        for k in 7..10 {
            let v = ladder_lr(1e-6, 1.0, 7, LadderMode::Exp, k);
            let want = 10f64.powi(k as i32 - 6);
            assert!((v / want - 1.0).abs() < 1e-12, "{k}: {v}");
        }
        assert_eq!(ladder_lr(1e-6, 1.0, 7, LadderMode::Exp, 3), l[3]);
        assert_eq!(ladder_lr(1.0, 3.0, 3, LadderMode::Linear, 5), 6.0);
        // A huge n computes any single LR without an array.
        let v = ladder_lr(1e-7, 10.0, usize::MAX, LadderMode::Exp, 1);
        assert!((v / 1e-7 - 1.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn mode_parses_case_insensitively() {
        assert_eq!("EXP".parse::<LadderMode>(), Ok(LadderMode::Exp));
        assert_eq!("linear".parse::<LadderMode>(), Ok(LadderMode::Linear));
        assert!("cubic".parse::<LadderMode>().unwrap_err().contains("cubic"));
    }
}
