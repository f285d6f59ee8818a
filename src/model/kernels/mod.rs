//! Fast CPU kernels for every layer of the layer list, as plain functions over f32 slices
//! in PyTorch's layouts (NCHW activations, `(out, in, kh, kw)` weights).
//!
//! They run on the calling thread: the caller shards a batch over the cores, one shard per
//! core, as the MLP's written-out backward does. Only the matrix product takes a thread
//! count ([`gemm::gemm`]), for a batch that must stay whole (batch statistics). Each
//! backward overwrites its gradients and computes the input gradient only when given a
//! buffer for it. Shapes come from a validated model: a slice too short for its shape is a
//! caller's bug and panics (the gemm views check bounds, the rest through slice indexing).
//!
//! The tests compare every kernel with candle's autograd on random inputs (relative error
//! ≤ 1e-4, measured as the largest difference over the largest reference value).

pub mod act;
pub mod conv;
pub mod gemm;
pub mod linear;
mod math;
pub mod norm;
pub mod pool;
mod reduce;

pub use act::{
    activation_backward, activation_forward, activation_forward_in_place, dropout_backward,
    dropout_forward, Activation,
};
pub use conv::{conv2d_backward, conv2d_forward, Conv2dGrads, Conv2dShape};
pub use gemm::{gemm, MatMut, MatRef};
pub use linear::{linear_backward, linear_forward, LinearGrads, LinearShape};
pub use norm::{
    batch_norm_apply, batch_norm_backward, batch_norm_dx, batch_norm_eval, batch_norm_grad_sums,
    batch_norm_moments, batch_norm_stats, batch_norm_train, eval_scale, layer_norm_backward,
    layer_norm_forward, Affine, BatchStats, NormGrads, NormShape, SampleStats,
};
pub use pool::{
    adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
    avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward, AdaptivePoolShape, Pool2dShape,
};

/// What the kernels' tests share: seeded random inputs and candle round trips.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Device, Tensor, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` values uniform in [-1, 1) from `seed`.
    pub fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// A candle variable of `dims` holding `v`.
    pub fn var(v: &[f32], dims: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_vec(v.to_vec(), dims, &Device::Cpu).unwrap()).unwrap()
    }

    /// A constant tensor of `dims` holding `v`.
    pub fn tensor(v: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), dims, &Device::Cpu).unwrap()
    }

    /// The values of `t`, flattened.
    pub fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// `max |got − want| / max |want|`.
    pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
        assert_eq!(got.len(), want.len(), "lengths differ");
        let diff = got
            .iter()
            .zip(want)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        let scale = want.iter().map(|b| f64::from(b.abs())).fold(0.0, f64::max);
        if diff == 0.0 {
            0.0
        } else {
            diff / scale
        }
    }

    /// Asserts `got` is within relative error 1e-4 of `want` (and that both are finite).
    pub fn close(what: &str, got: &[f32], want: &[f32]) {
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{what}: non-finite value"
        );
        let e = rel_err(got, want);
        assert!(e <= 1e-4, "{what}: relative error {e:e}");
    }

    /// `Σ out·r` for a fixed random `r`: a scalar loss whose gradient with respect to `out`
    /// is `r`, which the hand-written backward is given as `dy`.
    pub fn loss_with(out: &Tensor, r: &[f32]) -> Tensor {
        out.mul(&tensor(r, out.dims())).unwrap().sum_all().unwrap()
    }

    /// The gradient autograd found for `v`.
    pub fn grad(store: &candle_core::backprop::GradStore, v: &Var) -> Vec<f32> {
        values(store.get(v).expect("a gradient"))
    }
}
