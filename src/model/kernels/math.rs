//! exp, tanh and erfc in f32 without calls or branches, so the activation loops vectorise
//! (the libm calls cost 3 to 20 ns a value: GELU on one conv layer's output took longer than
//! the rest of the step). Accuracy: a few ulp for exp and tanh, ≤ 1.2e-7 relative (plus
//! the exp's) for erfc — also in the tails, where `1 − erf` would cancel (there the f32 x²
//! in the exponent brings it to 4e-6 at erfc ≈ 1e-19). NaN propagates.

/// Clamps the argument so `2^n` stays a normal f32 (n in −126..=127): under −87.3 `exp`
/// gives ≈ 1e-38 rather than 0, over 88.3 ≈ 2e38 rather than inf.
const EXP_LO: f32 = -87.3;
const EXP_HI: f32 = 88.3;

/// `e^x` (Cephes' expf: round `x/ln 2` to `n`, a degree-6 polynomial on the remainder,
/// `2^n` put in the exponent bits).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // clamp (unlike f32::max/min) keeps a NaN.
    let x = x.clamp(EXP_LO, EXP_HI);
    // Round to nearest with the 1.5·2^23 trick (f32::round is a libm call on baseline x86).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // n's integer value sits in t's low mantissa bits; n + 127 is a normal exponent.
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    e * scale
}

/// `tanh(x)`: Cephes' odd polynomial near 0, `1 − 2/(e^{2|x|} + 1)` beyond.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let z = x * x;
    let mut p = -5.704_988_7e-3;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let a = x.abs();
    let large = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let large = if x < 0.0 { -large } else { large };
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// `erfc(x)` (Numerical Recipes' `erfcc`: Chebyshev fit with fractional error below 1.2e-7
/// everywhere; for x < 0, `2 − erfc(−x)`).
#[inline(always)]
pub(crate) fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    let r = t * exp(-z * z + p);
    if x < 0.0 {
        2.0 - r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest relative error of `f` against `want` on `n` points of `[lo, hi]`.
    fn worst(f: fn(f32) -> f32, want: fn(f64) -> f64, lo: f32, hi: f32) -> f64 {
        let n = 200_001;
        (0..n)
            .map(|i| {
                let x = lo + (hi - lo) * i as f32 / (n - 1) as f32;
                let w = want(f64::from(x));
                (f64::from(f(x)) - w).abs() / w.abs().max(1e-30)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_tanh_erfc_are_accurate_to_f32() {
        assert!(worst(exp, f64::exp, -87.0, 88.3) < 3e-7);
        assert!(worst(tanh, f64::tanh, -10.0, 10.0) < 3e-7);
        // f64 reference erfc from libm, down to 1e-19 in the tail. There the f32 rounding of
        // x² in the exponent (relative 6e-8 of ~41) dominates the fit's own 1.2e-7.
        assert!(worst(erfc, libm::erfc, -6.0, 2.0) < 1e-6);
        assert!(worst(erfc, libm::erfc, 2.0, 6.4) < 5e-6);
    }

    #[test]
    fn edges_saturate_and_nan_propagates() {
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) < 1e-37 && exp(-200.0) >= 0.0);
        assert!(exp(200.0) > 1e38 && exp(200.0).is_finite());
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert_eq!(erfc(-10.0), 2.0);
        assert!(exp(f32::NAN).is_nan() && tanh(f32::NAN).is_nan() && erfc(f32::NAN).is_nan());
    }
}
