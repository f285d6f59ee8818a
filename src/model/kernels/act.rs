//! Elementwise activations (PyTorch's definitions), their gradients, and dropout with a
//! given mask.
//!
//! The backward works in place on the output gradient and reads one saved buffer: the
//! layer's output where the derivative is a function of it (ReLU, Tanh, Sigmoid), its input
//! otherwise ([`Activation::needs_input`]), so a caller keeps only one of them.

/// Defines a function whose body is compiled twice: for the baseline target and with AVX2 +
/// FMA, the latter chosen at run time when the CPU has them. The crate is built for plain
/// x86-64, where the compiler leaves the activations' exp/erfc loops scalar; with AVX2 they
/// run 2× faster (GELU: 4.6 → 2.2 ns a value). Only for those: the rest measured no faster
/// or slower with AVX2 (in-place selects become masked stores, which are slow on AMD).
/// gemm dispatches on its own.
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn multiversioned_body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    multiversioned_body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            multiversioned_body($($arg),*)
        }
    };
}

use super::math;

/// An elementwise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, `slope·x` otherwise.
    LeakyRelu(f32),
    /// The exact GELU, `x·Φ(x)` (PyTorch's default, not the tanh approximation).
    Gelu,
    /// `x·σ(x)`.
    Silu,
    /// `tanh(x)`.
    Tanh,
    /// `σ(x) = 1 / (1 + e^(−x))`.
    Sigmoid,
}

/// 1/√2 and 1/√(2π).
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + math::exp(-x))
}

/// Φ(x) = ½·erfc(−x/√2): erfc keeps the relative precision in the lower tail, where
/// `1 + erf` would cancel.
#[inline(always)]
fn phi(x: f32) -> f32 {
    0.5 * math::erfc(-x * FRAC_1_SQRT_2)
}

impl Activation {
    /// Whether [`activation_backward`] wants the layer's input (else its output).
    pub fn needs_input(self) -> bool {
        matches!(
            self,
            Activation::LeakyRelu(_) | Activation::Gelu | Activation::Silu
        )
    }

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            // `x > 0` keeps PyTorch's choices at 0 and NaN (relu(NaN) = NaN).
            Activation::Relu => {
                if x > 0.0 || x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(slope) => {
                if x > 0.0 {
                    x
                } else {
                    x * slope
                }
            }
            Activation::Gelu => x * phi(x),
            Activation::Silu => x * sigmoid(x),
            Activation::Tanh => math::tanh(x),
            Activation::Sigmoid => sigmoid(x),
        }
    }

    /// d activation / dx, from the input or the output as [`Activation::needs_input`] says.
    #[inline(always)]
    fn derivative(self, saved: f32) -> f32 {
        match self {
            Activation::Relu => f32::from(u8::from(saved > 0.0)),
            Activation::LeakyRelu(slope) => {
                if saved > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Activation::Gelu => {
                let x = saved;
                phi(x) + x * FRAC_1_SQRT_2PI * math::exp(-0.5 * x * x)
            }
            Activation::Silu => {
                let s = sigmoid(saved);
                s * (1.0 + saved * (1.0 - s))
            }
            Activation::Tanh => 1.0 - saved * saved,
            Activation::Sigmoid => saved * (1.0 - saved),
        }
    }
}

/// Runs `$body` with `$a` bound to `$act` as a constant variant, so every activation gets
/// its own loop with the `match` folded away (and vectorised).
macro_rules! per_variant {
    ($act:expr, |$a:ident| $body:expr) => {
        match $act {
            Activation::Relu => {
                let $a = Activation::Relu;
                $body
            }
            Activation::LeakyRelu(slope) => {
                let $a = Activation::LeakyRelu(slope);
                $body
            }
            Activation::Gelu => {
                let $a = Activation::Gelu;
                $body
            }
            Activation::Silu => {
                let $a = Activation::Silu;
                $body
            }
            Activation::Tanh => {
                let $a = Activation::Tanh;
                $body
            }
            Activation::Sigmoid => {
                let $a = Activation::Sigmoid;
                $body
            }
        }
    };
}

impl Activation {
    /// Whether it calls exp or erfc: those loops get the AVX2 build.
    fn transcendental(self) -> bool {
        matches!(
            self,
            Activation::Gelu | Activation::Silu | Activation::Tanh | Activation::Sigmoid
        )
    }
}

/// `y = act(x)`.
pub fn activation_forward(act: Activation, x: &[f32], y: &mut [f32]) {
    #[inline(always)]
    fn body(act: Activation, x: &[f32], y: &mut [f32]) {
        per_variant!(act, |a| {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = a.apply(v);
            }
        })
    }
    multiversion! {
        fn fast(act: Activation, x: &[f32], y: &mut [f32]) {
            body(act, x, y)
        }
    }
    if act.transcendental() {
        fast(act, x, y)
    } else {
        body(act, x, y)
    }
}

/// `x = act(x)` in place (fine for the activations whose backward reads the output).
pub fn activation_forward_in_place(act: Activation, x: &mut [f32]) {
    #[inline(always)]
    fn body(act: Activation, x: &mut [f32]) {
        per_variant!(act, |a| {
            for v in x.iter_mut() {
                *v = a.apply(*v);
            }
        })
    }
    multiversion! {
        fn fast(act: Activation, x: &mut [f32]) {
            body(act, x)
        }
    }
    if act.transcendental() {
        fast(act, x)
    } else {
        body(act, x)
    }
}

/// `grad *= act'(x)` in place: the output gradient becomes the input gradient. `saved` is
/// the layer's input when [`Activation::needs_input`], else its output.
pub fn activation_backward(act: Activation, saved: &[f32], grad: &mut [f32]) {
    #[inline(always)]
    fn body(act: Activation, saved: &[f32], grad: &mut [f32]) {
        per_variant!(act, |a| {
            for (g, &s) in grad.iter_mut().zip(saved) {
                // A select, not a product, for ReLU: 0·inf would be NaN.
                *g = match a {
                    Activation::Relu => {
                        if s > 0.0 {
                            *g
                        } else {
                            0.0
                        }
                    }
                    _ => *g * a.derivative(s),
                };
            }
        })
    }
    multiversion! {
        fn fast(act: Activation, saved: &[f32], grad: &mut [f32]) {
            body(act, saved, grad)
        }
    }
    if act.transcendental() {
        fast(act, saved, grad)
    } else {
        body(act, saved, grad)
    }
}

/// Dropout with probability `p` given the kept positions: `y = x / (1 − p)` where `keep`,
/// else 0 (PyTorch's inverted dropout; `p = 1` zeroes everything).
pub fn dropout_forward(x: &[f32], keep: &[bool], p: f32, y: &mut [f32]) {
    let scale = dropout_scale(p);
    for ((o, &v), &k) in y.iter_mut().zip(x).zip(keep) {
        *o = if k { v * scale } else { 0.0 };
    }
}

/// Gradient of [`dropout_forward`], in place: `grad = grad / (1 − p)` where kept, else 0.
pub fn dropout_backward(keep: &[bool], p: f32, grad: &mut [f32]) {
    let scale = dropout_scale(p);
    for (g, &k) in grad.iter_mut().zip(keep) {
        *g = if k { *g * scale } else { 0.0 };
    }
}

fn dropout_scale(p: f32) -> f32 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, grad, loss_with, random, values, var};
    use super::*;

    #[test]
    fn activations_and_gradients_match_candle() {
        // Wide enough for GELU's and the sigmoid's tails.
        let x: Vec<f32> = random(500, 1).iter().map(|v| v * 8.0).collect();
        let r = random(500, 2);
        let cases = [
            Activation::Relu,
            Activation::LeakyRelu(0.01),
            Activation::LeakyRelu(-0.3),
            Activation::Gelu,
            Activation::Silu,
            Activation::Tanh,
            Activation::Sigmoid,
        ];
        for act in cases {
            let xv = var(&x, &[500]);
            let t = xv.as_tensor();
            let want = match act {
                Activation::Relu => t.relu(),
                // PyTorch: x if x > 0 else slope·x, as relu(x) − slope·relu(−x).
                Activation::LeakyRelu(slope) => {
                    let neg = t.neg().unwrap().relu().unwrap();
                    t.relu().unwrap() - (neg * f64::from(slope)).unwrap()
                }
                Activation::Gelu => t.gelu_erf(),
                Activation::Silu => t.silu(),
                Activation::Tanh => t.tanh(),
                Activation::Sigmoid => candle_nn::ops::sigmoid(t),
            }
            .unwrap();
            let store = loss_with(&want, &r).backward().unwrap();
            let mut y = vec![f32::NAN; 500];
            activation_forward(act, &x, &mut y);
            close(&format!("{act:?}: y"), &y, &values(&want));
            let mut in_place = x.clone();
            activation_forward_in_place(act, &mut in_place);
            assert_eq!(in_place, y, "{act:?}");
            let mut g = r.clone();
            let saved = if act.needs_input() { &x } else { &y };
            activation_backward(act, saved, &mut g);
            close(&format!("{act:?}: dx"), &g, &grad(&store, &xv));
        }
    }

    #[test]
    fn gelu_keeps_its_relative_precision_in_the_tail() {
        // x·Φ(x) in f64 from the complementary error function's asymptotic-free value:
        // Φ(−5) = 2.866515718791939e-7, Φ(−9) = 1.1285884059538408e-19 (scipy.special.ndtr).
        let mut y = [0f32; 2];
        activation_forward(Activation::Gelu, &[-5.0, -9.0], &mut y);
        let want = [
            -5.0 * 2.866_515_718_791_939e-7,
            -9.0 * 1.128_588_405_953_840_8e-19,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((f64::from(*a) / b - 1.0).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn relu_gradient_at_zero_is_zero_like_pytorch() {
        let x = [0.0, -1.0, 2.0];
        let mut y = [0f32; 3];
        activation_forward(Activation::Relu, &x, &mut y);
        let mut g = [1.0, 1.0, 1.0];
        activation_backward(Activation::Relu, &y, &mut g);
        assert_eq!(g, [0.0, 0.0, 1.0]);
    }

    #[test]
    fn dropout_scales_what_it_keeps() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let keep = [true, false, true, false];
        let mut y = [f32::NAN; 4];
        dropout_forward(&x, &keep, 0.5, &mut y);
        assert_eq!(y, [2.0, 0.0, 6.0, 0.0]);
        let mut g = [1.0, 1.0, 1.0, 1.0];
        dropout_backward(&keep, 0.5, &mut g);
        assert_eq!(g, [2.0, 0.0, 2.0, 0.0]);
        dropout_forward(&x, &[true; 4], 1.0, &mut y);
        assert_eq!(y, [0.0; 4], "p = 1 drops everything");
    }
}
