//! Product of a few f32 rows with a weight kept in the GGUF file's own Q4_1 or Q8_0 blocks.
//!
//! One-token decoding reads every weight once per token, so its speed is the bytes it
//! reads. The default model's projections are stored as Q4_1 (20 bytes per 32 weights) and
//! its tied output head as Q8_0 (34 bytes); candle multiplies Q4_1 with scalar code only,
//! which is why decoding used to run on Q8_0 copies of the projections. Here the
//! activations are quantized per 32-block to 8 bits (llama.cpp's Q8_1: a scale `d` and
//! `s = d · Σq`) and each block's integer dot product with the weights runs on AVX2, so a
//! step reads the file's bytes and no more. Per block, `Σ w·x` is `d_w d_x Σ q_w q_x`, plus
//! `m_w s_x` for Q4_1's offset; the integer part is exact.

use candle_core::quantized::GgmlDType;
use half::f16;

/// Weights per block.
const QK: usize = 32;

/// The block formats this product reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// `d`, `m` (f16), 16 bytes of nibbles: byte `j` holds weight `j` in its low half and
    /// weight `j + 16` in its high half; `w = d·q + m`.
    Q4_1,
    /// `d` (f16), 32 signed bytes; `w = d·q`.
    Q8_0,
}

impl Blocks {
    pub fn of(dtype: GgmlDType) -> Option<Blocks> {
        match dtype {
            GgmlDType::Q4_1 => Some(Blocks::Q4_1),
            GgmlDType::Q8_0 => Some(Blocks::Q8_0),
            _ => None,
        }
    }

    const fn bytes(self) -> usize {
        match self {
            Blocks::Q4_1 => 20,
            Blocks::Q8_0 => 34,
        }
    }
}

/// One 32-block of an activation row quantized to 8 bits.
#[derive(Clone, Copy)]
struct Q8Block {
    qs: [i8; QK],
    d: f32,
    /// `d · Σ qs`: what Q4_1's offset `m` multiplies.
    s: f32,
}

fn quantize_row(x: &[f32], out: &mut Vec<Q8Block>) {
    for chunk in x.chunks_exact(QK) {
        let amax = chunk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(chunk) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        // Scales rounded to f16 as llama.cpp's and candle's blocks store them, so a
        // product agrees with theirs up to summation order.
        out.push(Q8Block {
            qs,
            d: f16::from_f32(d).to_f32(),
            s: f16::from_f32(d * sum as f32).to_f32(),
        });
    }
}

/// `out[r * n + c] = Σ_i x[r * k + i] · W[c, i]` for `x` `[m, k]` and `w` the `n` rows of a
/// `[n, k]` matrix in `format` as stored (`k / 32` blocks per row); `k` is a multiple of 32.
pub fn matmul(format: Blocks, x: &[f32], w: &[u8], out: &mut [f32], m: usize, n: usize, k: usize) {
    assert!(k.is_multiple_of(QK), "{format:?} rows of {k} weights");
    let blocks = k / QK;
    let row_bytes = blocks * format.bytes();
    assert!(x.len() >= m * k && w.len() >= n * row_bytes && out.len() >= m * n);
    let mut xq = Vec::with_capacity(m * blocks);
    for r in 0..m {
        quantize_row(&x[r * k..(r + 1) * k], &mut xq);
    }
    let xq = &xq;
    let out_ptr = out.as_mut_ptr() as usize;
    let run = |cols: std::ops::Range<usize>| {
        let mut acc = vec![0f32; m];
        for c in cols {
            dot_row(format, &w[c * row_bytes..(c + 1) * row_bytes], xq, &mut acc);
            for (r, v) in acc.iter().enumerate() {
                // SAFETY: `out` holds `m * n` elements (asserted above) and every column
                // belongs to exactly one work item, so workers never write the same element.
                unsafe { *(out_ptr as *mut f32).add(r * n + c) = *v };
            }
        }
    };
    super::on_pool(n, m * n * k, run);
}

/// One weight row against every quantized activation row (`xq`: `acc.len()` rows of
/// blocks): `acc[r]` for row `r`.
fn dot_row(format: Blocks, row: &[u8], xq: &[Q8Block], acc: &mut [f32]) {
    let blocks = row.len() / format.bytes();
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked at run time); `row` holds
        // `blocks` blocks and `xq` `blocks` per entry of `acc` (asserted by `matmul`).
        unsafe {
            match format {
                Blocks::Q4_1 => avx2::dot_row_q4_1(row, xq, blocks, acc),
                Blocks::Q8_0 => avx2::dot_row_q8_0(row, xq, blocks, acc),
            }
        }
        return;
    }
    for (r, a) in acc.iter_mut().enumerate() {
        *a = portable_dot(format, row, &xq[r * blocks..(r + 1) * blocks]);
    }
}

/// One weight row against one quantized activation row, without SIMD.
fn portable_dot(format: Blocks, row: &[u8], xr: &[Q8Block]) -> f32 {
    let half = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    row.chunks_exact(format.bytes())
        .zip(xr)
        .map(|(b, x)| match format {
            Blocks::Q4_1 => {
                let sumi: i32 = (0..QK / 2)
                    .map(|j| {
                        let q = b[4 + j];
                        (q & 0x0F) as i32 * x.qs[j] as i32 + (q >> 4) as i32 * x.qs[j + 16] as i32
                    })
                    .sum();
                half(b, 0) * x.d * sumi as f32 + half(b, 2) * x.s
            }
            Blocks::Q8_0 => {
                let sumi: i32 = (0..QK)
                    .map(|j| b[2 + j] as i8 as i32 * x.qs[j] as i32)
                    .sum();
                half(b, 0) * x.d * sumi as f32
            }
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Blocks, Q8Block};
    use std::arch::x86_64::*;

    /// Rows of activations per pass over the weight row: their accumulators stay in
    /// registers while each weight block is loaded once.
    const ROWS: usize = 4;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_row_q4_1(row: &[u8], xq: &[Q8Block], blocks: usize, acc: &mut [f32]) {
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut r0 = 0;
        while r0 < acc.len() {
            let rows = ROWS.min(acc.len() - r0);
            let mut vacc = [_mm256_setzero_ps(); ROWS];
            let mut macc = [0f32; ROWS];
            for b in 0..blocks {
                let p = row.as_ptr().add(b * Blocks::Q4_1.bytes());
                // d and m, the block's two f16 values, converted together.
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                let d = _mm_cvtss_f32(dm);
                let m = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1));
                let nib = _mm_loadu_si128(p.add(4) as *const __m128i);
                let lo = _mm_and_si128(nib, low);
                let hi = _mm_and_si128(_mm_srli_epi16(nib, 4), low);
                let wq = _mm256_set_m128i(hi, lo);
                for r in 0..rows {
                    let x = &xq[(r0 + r) * blocks + b];
                    let xv = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
                    // Unsigned 4-bit times signed 8-bit, pairs summed: at most 2·15·127.
                    let pairs = _mm256_maddubs_epi16(wq, xv);
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    vacc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), sums, vacc[r]);
                    macc[r] += m * x.s;
                }
            }
            for r in 0..rows {
                acc[r0 + r] = hsum(vacc[r]) + macc[r];
            }
            r0 += rows;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_row_q8_0(row: &[u8], xq: &[Q8Block], blocks: usize, acc: &mut [f32]) {
        let ones = _mm256_set1_epi16(1);
        let mut r0 = 0;
        while r0 < acc.len() {
            let rows = ROWS.min(acc.len() - r0);
            let mut vacc = [_mm256_setzero_ps(); ROWS];
            for b in 0..blocks {
                let p = row.as_ptr().add(b * Blocks::Q8_0.bytes());
                let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
                    (p as *const u16).read_unaligned() as i32,
                )));
                let w = _mm256_loadu_si256(p.add(2) as *const __m256i);
                // maddubs multiplies unsigned by signed: |w| times x with w's sign.
                let wabs = _mm256_sign_epi8(w, w);
                for r in 0..rows {
                    let x = &xq[(r0 + r) * blocks + b];
                    let xv = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
                    let pairs = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, w));
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    vacc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), sums, vacc[r]);
                }
            }
            for r in 0..rows {
                acc[r0 + r] = hsum(vacc[r]);
            }
            r0 += rows;
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    const FORMATS: [(Blocks, GgmlDType); 2] = [
        (Blocks::Q4_1, GgmlDType::Q4_1),
        (Blocks::Q8_0, GgmlDType::Q8_0),
    ];

    /// Random weights through candle's quantizer, so the block layout is the one GGUF
    /// files and candle use, and their exact dequantization.
    fn weights(dtype: GgmlDType, n: usize, k: usize, offset: f64) -> (QTensor, Vec<f32>) {
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)
            .and_then(|t| t.affine(1.0, offset))
            .unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let dense = q.dequantize(&Device::Cpu).unwrap();
        (q, dense.flatten_all().unwrap().to_vec1().unwrap())
    }

    fn activations(m: usize, k: usize) -> Vec<f32> {
        Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1())
            .unwrap()
    }

    /// Against the f32 product with the dequantized weights: the only difference is the
    /// 8-bit rounding of the activations (well under 1 % of the sum of the terms' sizes),
    /// for one row and for several (a remainder of the 4-row passes included), on serial
    /// and threaded sizes.
    #[test]
    fn equals_the_dequantized_product() {
        for (format, dtype) in FORMATS {
            for (m, n, k) in [(1, 7, 64), (1, 300, 576), (5, 33, 96), (8, 130, 1536)] {
                let (q, dense) = weights(dtype, n, k, m as f64 * 0.1);
                let x = activations(m, k);
                let mut out = vec![0f32; m * n];
                matmul(format, &x, &q.data().unwrap(), &mut out, m, n, k);
                for r in 0..m {
                    for c in 0..n {
                        let terms = (0..k).map(|i| x[r * k + i] as f64 * dense[c * k + i] as f64);
                        let exact: f64 = terms.clone().sum();
                        let size: f64 = terms.map(f64::abs).sum();
                        let got = out[r * n + c] as f64;
                        assert!(
                            (got - exact).abs() <= 0.01 * size,
                            "{format:?} {m}x{n}x{k} [{r},{c}]: {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }

    /// A row's result does not depend on the other rows of the call (a sequence's
    /// numbers never depend on its neighbours in a batch).
    #[test]
    fn each_row_alone_gives_the_same_bits() {
        let (m, n, k) = (6, 40, 192);
        for (format, dtype) in FORMATS {
            let (q, _) = weights(dtype, n, k, 0.3);
            let x = activations(m, k);
            let w = q.data().unwrap();
            let mut all = vec![0f32; m * n];
            matmul(format, &x, &w, &mut all, m, n, k);
            for r in 0..m {
                let mut one = vec![0f32; n];
                matmul(format, &x[r * k..(r + 1) * k], &w, &mut one, 1, n, k);
                assert_eq!(one, all[r * n..(r + 1) * n], "{format:?} row {r}");
            }
        }
    }

    /// The vector path against the portable one on the same quantized input: the
    /// integer parts are exact, so they differ only by float summation order. Q8_0
    /// weights of -128 (which the vector path's sign trick must handle) included.
    #[test]
    fn vector_and_portable_paths_agree() {
        let k = 256;
        for (format, dtype) in FORMATS {
            let (q, _) = weights(dtype, 9, k, 0.5);
            let mut w = q.data().unwrap().into_owned();
            if format == Blocks::Q8_0 {
                w[2] = 0x80;
                w[34 + 7] = 0x80;
            }
            let mut xq = Vec::new();
            quantize_row(&activations(1, k), &mut xq);
            for (c, row) in w.chunks_exact(k / QK * format.bytes()).enumerate() {
                let mut fast = [0f32];
                dot_row(format, row, &xq, &mut fast);
                let portable = portable_dot(format, row, &xq);
                let tol = 1e-4 * portable.abs().max(1.0);
                assert!((fast[0] - portable).abs() <= tol, "{format:?} row {c}");
            }
        }
    }
}
