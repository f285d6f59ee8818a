//! Exponential moving average of the loss, with bias correction.

/// Running EMA: `avg_k = β·avg_{k-1} + (1-β)·x_k` from `avg_0 = 0`, reported as
/// `avg_k / (1 - β^k)` so that the first smoothed value equals the first loss exactly
/// (Lightning's version is one step off and starts at about half the real loss).
#[derive(Debug, Clone)]
pub struct Ema {
    beta: f64,
    avg: f64,
    beta_pow: f64,
}

impl Ema {
    /// `beta` in `[0, 1)`; 0 turns smoothing off.
    pub fn new(beta: f64) -> Self {
        Self {
            beta,
            avg: 0.0,
            beta_pow: 1.0,
        }
    }

    /// Feeds one loss and returns the bias-corrected smoothed value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.avg = self.beta * self.avg + (1.0 - self.beta) * x;
        self.beta_pow *= self.beta;
        self.avg / (1.0 - self.beta_pow)
    }
}

/// Smooths a whole series (convenience for tests and re-analysis of a saved curve).
pub fn smooth(xs: &[f64], beta: f64) -> Vec<f64> {
    let mut ema = Ema::new(beta);
    xs.iter().map(|&x| ema.update(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // β = 0.9, x = [2, 4, 3]:
        // avg1 = 0.2            → 0.2 / 0.1           = 2
        // avg2 = 0.18 + 0.4     = 0.58 → 0.58 / 0.19  = 3.0526315789…
        // avg3 = 0.522 + 0.3    = 0.822 → 0.822/0.271 = 3.0332103321…
        let s = smooth(&[2.0, 4.0, 3.0], 0.9);
        assert!((s[0] - 2.0).abs() < 1e-15);
        assert!((s[1] - 0.58 / 0.19).abs() < 1e-14);
        assert!((s[2] - 0.822 / 0.271).abs() < 1e-14);
    }

    #[test]
    fn first_value_is_the_first_loss_for_any_beta() {
        for beta in [0.0, 0.5, 0.98, 0.999] {
            assert!((smooth(&[1.2345], beta)[0] - 1.2345).abs() < 1e-12);
        }
    }

    #[test]
    fn zero_beta_is_identity_and_constant_stays_constant() {
        assert_eq!(smooth(&[3.0, 1.0, 2.0], 0.0), vec![3.0, 1.0, 2.0]);
        for v in smooth(&[0.7; 50], 0.98) {
            assert!((v - 0.7).abs() < 1e-12);
        }
    }
}
