//! Fully connected layer `y = x·Wᵀ + b` (PyTorch's `Linear`: weight `(out, in)`).

use super::gemm::{gemm, MatMut, MatRef};

/// Sizes of a linear layer over a batch: `x` is `(batch, inputs)`, the weight
/// `(outputs, inputs)`, `y` `(batch, outputs)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    /// Rows in the batch (or shard).
    pub batch: usize,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
}

/// `y = x·Wᵀ + b`; `threads` as in [`gemm()`].
pub fn linear_forward(
    s: &LinearShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    threads: usize,
) {
    let y = &mut y[..s.batch * s.outputs];
    let beta = match b {
        Some(b) => {
            for row in y.chunks_exact_mut(s.outputs.max(1)) {
                row.copy_from_slice(&b[..s.outputs]);
            }
            1.0
        }
        None => 0.0,
    };
    let xm = MatRef::new(x, s.batch, s.inputs);
    let wt = MatRef::new(w, s.outputs, s.inputs).t();
    gemm(
        MatMut::new(y, s.batch, s.outputs),
        1.0,
        xm,
        wt,
        beta,
        threads,
    );
}

/// Where a linear layer's backward writes its gradients (each overwritten).
#[derive(Debug)]
pub struct LinearGrads<'a> {
    /// Weight gradient `dyᵀ·x`, `(outputs, inputs)`.
    pub dw: &'a mut [f32],
    /// Bias gradient (column sums of `dy`); `None` without a bias.
    pub db: Option<&'a mut [f32]>,
    /// Input gradient `dy·W`, `(batch, inputs)`; `None` when nothing upstream needs it.
    pub dx: Option<&'a mut [f32]>,
}

/// Gradients of [`linear_forward`] given the output gradient `dy`.
pub fn linear_backward(
    s: &LinearShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    grads: LinearGrads<'_>,
    threads: usize,
) {
    let dym = MatRef::new(dy, s.batch, s.outputs);
    let xm = MatRef::new(x, s.batch, s.inputs);
    let dw = MatMut::new(grads.dw, s.outputs, s.inputs);
    gemm(dw, 1.0, dym.t(), xm, 0.0, threads);
    if let Some(db) = grads.db {
        let db = &mut db[..s.outputs];
        db.fill(0.0);
        for row in dy[..s.batch * s.outputs].chunks_exact(s.outputs.max(1)) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
    if let Some(dx) = grads.dx {
        let wm = MatRef::new(w, s.outputs, s.inputs);
        let dx = MatMut::new(dx, s.batch, s.inputs);
        gemm(dx, 1.0, dym, wm, 0.0, threads);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, grad, loss_with, random, values, var};
    use super::*;

    #[test]
    fn linear_matches_candle() {
        for (s, bias, threads) in [
            (
                LinearShape {
                    batch: 32,
                    inputs: 1600,
                    outputs: 128,
                },
                true,
                1,
            ),
            (
                LinearShape {
                    batch: 7,
                    inputs: 13,
                    outputs: 5,
                },
                false,
                2,
            ),
        ] {
            let what = format!("{s:?}");
            let x = random(s.batch * s.inputs, 1);
            let w = random(s.outputs * s.inputs, 2);
            let b = random(s.outputs, 3);
            let r = random(s.batch * s.outputs, 4);
            let xv = var(&x, &[s.batch, s.inputs]);
            let wv = var(&w, &[s.outputs, s.inputs]);
            let bv = var(&b, &[s.outputs]);
            let mut want = xv.matmul(&wv.t().unwrap()).unwrap();
            if bias {
                want = want.broadcast_add(&bv).unwrap();
            }
            let store = loss_with(&want, &r).backward().unwrap();
            let mut y = vec![f32::NAN; s.batch * s.outputs];
            linear_forward(&s, &x, &w, bias.then_some(&b[..]), &mut y, threads);
            close(&format!("{what}: y"), &y, &values(&want));
            let (mut dx, mut dw, mut db) = (
                vec![f32::NAN; x.len()],
                vec![f32::NAN; w.len()],
                vec![f32::NAN; b.len()],
            );
            let grads = LinearGrads {
                dw: &mut dw,
                db: bias.then_some(&mut db[..]),
                dx: Some(&mut dx),
            };
            linear_backward(&s, &x, &w, &r, grads, threads);
            close(&format!("{what}: dx"), &dx, &grad(&store, &xv));
            close(&format!("{what}: dw"), &dw, &grad(&store, &wv));
            if bias {
                close(&format!("{what}: db"), &db, &grad(&store, &bv));
            }
        }
    }
}
