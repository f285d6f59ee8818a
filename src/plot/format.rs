//! Number formatting for tick labels and annotations.

/// Scientific notation with at most `sig` significant digits and no trailing zeros:
/// `3.16e-3`, `1e-4`, `2.5e1`. Learning rates read best this way.
pub(crate) fn sci(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let s = format!("{:.*e}", sig.saturating_sub(1), x);
    match s.split_once('e') {
        Some((mantissa, exp)) if mantissa.contains('.') => {
            let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
            format!("{mantissa}e{exp}")
        }
        _ => s,
    }
}

/// A learning rate for annotations and legends: three significant digits.
pub(crate) fn lr(x: f64) -> String {
    sci(x, 3)
}

/// Formats tick labels of a linear axis whose ticks are `step` apart: just enough decimals to
/// tell neighbouring ticks apart, switching to scientific notation for very small or very large
/// magnitudes (e.g. a linear learning-rate axis).
pub(crate) fn linear_tick(value: f64, step: f64, max_abs: f64) -> String {
    if value.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let step = step.abs().max(f64::MIN_POSITIVE);
    if !(1e-2..1e5).contains(&max_abs) {
        let sig = (max_abs.log10().floor() - step.log10().floor() + 1.0).clamp(1.0, 6.0);
        return sci(value, sig as usize);
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    // A step like 0.25 needs one decimal more than its leading digit suggests.
    let decimals = if (step * 10f64.powi(decimals as i32)).fract().abs() > 1e-6 {
        decimals + 1
    } else {
        decimals
    };
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sci_trims_zeros() {
        assert_eq!(sci(3.16e-3, 3), "3.16e-3");
        assert_eq!(sci(1e-4, 3), "1e-4");
        assert_eq!(sci(3.0000000000000005e-3, 3), "3e-3");
        assert_eq!(sci(0.0, 3), "0");
        assert_eq!(sci(f64::NAN, 3), "NaN");
        assert_eq!(lr(0.0031622), "3.16e-3");
    }

    #[test]
    fn linear_ticks_are_readable() {
        assert_eq!(linear_tick(2.5, 0.5, 3.0), "2.5");
        assert_eq!(linear_tick(2.0, 0.5, 3.0), "2.0");
        assert_eq!(linear_tick(2.25, 0.25, 3.0), "2.25");
        assert_eq!(linear_tick(40.0, 20.0, 100.0), "40");
        assert_eq!(linear_tick(1.5e-3, 5e-4, 3e-3), "1.5e-3");
        assert_eq!(linear_tick(1e-17, 0.1, 1.0), "0");
    }
}
