//! Matrix product for a few rows against a row-major f32 weight, without packing.
//!
//! A decode step multiplies one row per sequence (a batch of eight: eight rows) by every
//! weight. A general gemm first packs the weight into panels, which for so few rows costs
//! more than the product; here each weight row is streamed once and multiplied with all
//! the input rows, so the step is bound by reading the weight, not by copying it.
//!
//! Each output element is the same arithmetic whatever the other rows of the call: eight
//! lanes of fused multiply-adds over `k` in order, then the lanes summed in a fixed order,
//! then the tail of `k`. A sequence's numbers therefore never depend on the rows beside it.

/// Rows of `x` multiplied together per weight row: `ROWS x COLS` accumulators stay in
/// registers.
const ROWS: usize = 4;
const COLS: usize = 2;

/// `out[r * n + c] = Σ_i x[r * k + i] · w[c * k + i]` for `x` `[m, k]` and `w` `[n, k]`.
pub fn matmul(x: &[f32], w: &[f32], out: &mut [f32], m: usize, n: usize, k: usize) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    let col_tiles = n.div_ceil(COLS);
    let out_ptr = out.as_mut_ptr() as usize;
    let run = |tiles: std::ops::Range<usize>| {
        for tile in tiles {
            let c0 = tile * COLS;
            let cols = COLS.min(n - c0);
            let mut r0 = 0;
            while r0 < m {
                let rows = ROWS.min(m - r0);
                let mut acc = [[0f32; COLS]; ROWS];
                dot_tile(x, w, k, r0, rows, c0, cols, &mut acc);
                for (r, row) in acc.iter().enumerate().take(rows) {
                    for (c, v) in row.iter().enumerate().take(cols) {
                        // SAFETY: `out` holds `m * n` elements (asserted above) and every
                        // (row, column) belongs to exactly one column tile, so concurrent
                        // workers never write the same element.
                        unsafe { *(out_ptr as *mut f32).add((r0 + r) * n + c0 + c) = *v };
                    }
                }
                r0 += rows;
            }
        }
    };
    super::on_pool(col_tiles, m * n * k, run);
}

#[allow(clippy::too_many_arguments)]
fn dot_tile(
    x: &[f32],
    w: &[f32],
    k: usize,
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
    acc: &mut [[f32; COLS]; ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time); the slices hold the
        // rows and columns of the tile (asserted by `matmul`).
        unsafe { avx2::dot_tile(x, w, k, r0, rows, c0, cols, acc) };
        return;
    }
    for r in 0..rows {
        let xr = &x[(r0 + r) * k..(r0 + r + 1) * k];
        for c in 0..cols {
            let wc = &w[(c0 + c) * k..(c0 + c + 1) * k];
            acc[r][c] = lanes_then_tail(xr, wc);
        }
    }
}

/// The portable path, in the order of the vector one: eight lanes, summed pairwise, then
/// the tail.
fn lanes_then_tail(x: &[f32], w: &[f32]) -> f32 {
    let body = x.len() / 8 * 8;
    let mut lanes = [0f32; 8];
    for (xs, ws) in x[..body].chunks_exact(8).zip(w[..body].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = xs[l].mul_add(ws[l], lanes[l]);
        }
    }
    let mut sum = hsum(lanes);
    for (a, b) in x[body..].iter().zip(&w[body..]) {
        sum = a.mul_add(*b, sum);
    }
    sum
}

fn hsum(l: [f32; 8]) -> f32 {
    let q = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let p = [q[0] + q[2], q[1] + q[3]];
    p[0] + p[1]
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{hsum, COLS, ROWS};
    use std::arch::x86_64::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_tile(
        x: &[f32],
        w: &[f32],
        k: usize,
        r0: usize,
        rows: usize,
        c0: usize,
        cols: usize,
        acc: &mut [[f32; COLS]; ROWS],
    ) {
        let body = k / 8 * 8;
        let mut v = [[_mm256_setzero_ps(); COLS]; ROWS];
        let xp = x.as_ptr().add(r0 * k);
        let wp = w.as_ptr().add(c0 * k);
        if rows == ROWS && cols == COLS {
            // The full tile, unrolled so the accumulators stay in registers.
            let mut i = 0;
            while i < body {
                let w0 = _mm256_loadu_ps(wp.add(i));
                let w1 = _mm256_loadu_ps(wp.add(k + i));
                for (r, vr) in v.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(xp.add(r * k + i));
                    vr[0] = _mm256_fmadd_ps(xv, w0, vr[0]);
                    vr[1] = _mm256_fmadd_ps(xv, w1, vr[1]);
                }
                i += 8;
            }
        } else {
            for (r, vr) in v.iter_mut().enumerate().take(rows) {
                for (c, vc) in vr.iter_mut().enumerate().take(cols) {
                    let mut i = 0;
                    while i < body {
                        let xv = _mm256_loadu_ps(xp.add(r * k + i));
                        let wv = _mm256_loadu_ps(wp.add(c * k + i));
                        *vc = _mm256_fmadd_ps(xv, wv, *vc);
                        i += 8;
                    }
                }
            }
        }
        for r in 0..rows {
            for c in 0..cols {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), v[r][c]);
                let mut sum = hsum(lanes);
                for i in body..k {
                    sum = (*xp.add(r * k + i)).mul_add(*wp.add(c * k + i), sum);
                }
                acc[r][c] = sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn equals_a_plain_product_and_each_row_is_independent_of_the_others() {
        // Odd sizes: partial row and column tiles, and a tail of k.
        for (m, n, k) in [(1, 7, 5), (3, 9, 37), (8, 64, 576), (11, 130, 77)] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let mut out = vec![0f32; m * n];
            matmul(&x, &w, &mut out, m, n, k);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                        .sum();
                    let got = out[r * n + c] as f64;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "({m},{n},{k}) [{r},{c}] {got} {want}"
                    );
                }
                // The same row alone gives the same bits.
                let mut alone = vec![0f32; n];
                matmul(&x[r * k..(r + 1) * k], &w, &mut alone, 1, n, k);
                assert_eq!(alone, out[r * n..(r + 1) * n], "({m},{n},{k}) row {r}");
            }
        }
    }

    #[test]
    fn the_portable_path_sums_in_the_vector_order() {
        let (n, k) = (6, 45);
        let x = data(k, 3);
        let w = data(n * k, 4);
        let mut out = vec![0f32; n];
        matmul(&x, &w, &mut out, 1, n, k);
        for c in 0..n {
            assert_eq!(out[c], lanes_then_tail(&x, &w[c * k..(c + 1) * k]));
        }
    }
}
