//! Matrix product on f32 slices through the `gemm` crate (the one candle's CPU matmul uses;
//! it picks its SIMD kernels at run time): row-major views, transposes as swapped strides,
//! BLAS's `alpha`/`beta` convention.

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A writable matrix view, laid out like [`MatRef`].
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// One past the largest offset a `rows × cols` view with these strides touches (0 if empty).
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    }
}

impl<'a> MatRef<'a> {
    /// The first `rows × cols` values of `data`, row-major.
    ///
    /// Panics when `data` is shorter (a caller's bug: shapes come from a validated model).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides (a sub-matrix, or a column-major block).
    ///
    /// Panics when the view reaches past `data`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            span(rows, cols, row_stride, col_stride) <= data.len(),
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) past {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

impl<'a> MatMut<'a> {
    /// The first `rows × cols` values of `data`, row-major.
    ///
    /// Panics when `data` is shorter.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides. The strides must not make two elements alias
    /// (checked: the smaller stride times its extent must not reach the larger).
    ///
    /// Panics when the view reaches past `data` or aliases.
    pub fn strided(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            span(rows, cols, row_stride, col_stride) <= data.len(),
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) past {} values",
            data.len()
        );
        // Distinct (i, j) must be distinct offsets, or the product would race with itself.
        let ok = (rows <= 1 || row_stride > 0)
            && (cols <= 1 || col_stride > 0)
            && (rows <= 1
                || cols <= 1
                || row_stride >= cols * col_stride
                || col_stride >= rows * row_stride);
        assert!(
            ok,
            "matrix view {rows}x{cols} with strides {row_stride}, {col_stride} aliases"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            data: self.data,
        }
    }
}

/// `c = alpha · a · b + beta · c` (BLAS's convention; with `beta = 0` the old `c` is never
/// read, so it may hold anything, NaN included).
///
/// `threads` ≤ 1 runs on the calling thread; more lets gemm split the product over that
/// many threads of the current rayon pool (worth it only for products of a few MFLOP and
/// up: the batch is usually sharded over the cores instead).
///
/// Panics when the shapes do not chain (`a` is m×k, `b` k×n, `c` m×n): a caller's bug.
pub fn gemm(c: MatMut<'_>, alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "gemm shapes do not chain: {}x{} · {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if threads <= 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    let s = |x: usize| x as isize;
    // SAFETY: the views were checked to lie inside their slices (`span`), the destination
    // does not alias itself, and `&mut` keeps it apart from `a` and `b`. gemm's own
    // convention is dst = alpha·dst + beta·lhs·rhs, hence the swapped scalars.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            s(c.col_stride),
            s(c.row_stride),
            beta != 0.0,
            a.data.as_ptr(),
            s(a.col_stride),
            s(a.row_stride),
            b.data.as_ptr(),
            s(b.col_stride),
            s(b.row_stride),
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop.
    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut c = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    s += f64::from(a.data[i * a.row_stride + p * a.col_stride])
                        * f64::from(b.data[p * b.row_stride + j * b.col_stride]);
                }
                c[i * b.cols + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn products_with_transposes_strides_and_accumulation() {
        let a: Vec<f32> = (0..35).map(|i| ((i * 7) % 11) as f32 - 5.0).collect(); // 5x7
        let b: Vec<f32> = (0..21).map(|i| ((i * 5) % 13) as f32 * 0.5 - 3.0).collect(); // 7x3
        let want = naive(MatRef::new(&a, 5, 7), MatRef::new(&b, 7, 3));
        // Plain.
        let mut c = vec![f32::NAN; 15];
        gemm(
            MatMut::new(&mut c, 5, 3),
            1.0,
            MatRef::new(&a, 5, 7),
            MatRef::new(&b, 7, 3),
            0.0,
            1,
        );
        assert_eq!(c, want);
        // Both operands stored transposed: aᵀ is 7x5 row-major, so a = (aᵀ)ᵀ.
        let at: Vec<f32> = (0..35).map(|i| a[(i % 5) * 7 + i / 5]).collect();
        let bt: Vec<f32> = (0..21).map(|i| b[(i % 7) * 3 + i / 7]).collect();
        let mut c2 = vec![0f32; 15];
        let (ta, tb) = (MatRef::new(&at, 7, 5).t(), MatRef::new(&bt, 3, 7).t());
        gemm(MatMut::new(&mut c2, 5, 3), 1.0, ta, tb, 0.0, 1);
        assert_eq!(c2, want);
        // Accumulate: c = 2·a·b + 0.5·c, into a column-major destination, two threads.
        let mut c3 = vec![1f32; 15];
        gemm(
            MatMut::new(&mut c3, 3, 5).t(),
            2.0,
            MatRef::new(&a, 5, 7),
            MatRef::new(&b, 7, 3),
            0.5,
            2,
        );
        for i in 0..5 {
            for j in 0..3 {
                assert_eq!(c3[j * 5 + i], 2.0 * want[i * 3 + j] + 0.5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "aliases")]
    fn an_aliasing_destination_is_refused() {
        let mut v = [0f32; 6];
        let _ = MatMut::strided(&mut v, 3, 2, 1, 1);
    }

    #[test]
    #[should_panic(expected = "past")]
    fn a_view_past_its_slice_is_refused() {
        let v = [0f32; 5];
        let _ = MatRef::new(&v, 2, 3);
    }
}
