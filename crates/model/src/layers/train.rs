//! Training support. candle's fused kernels (`rms_norm`, `rope`, `softmax_last_dim`) have no
//! backward pass and a plain matmul also computes the gradient of a frozen weight; the ops
//! here keep fast forward kernels and add hand-written backward passes that return only
//! the gradients training needs. The inference path does not use them.

use std::borrow::Cow;
use std::cell::Cell;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Storage, Tensor, D};

use super::{Linear, RmsNorm, Rotary};
use crate::error::Result;

/// Switches and randomness of one training forward pass.
#[derive(Debug)]
pub struct TrainCtx {
    /// Dropout probability on the input of each LoRA update (PEFT's `lora_dropout`).
    pub dropout: f32,
    rng: Cell<u64>,
}

impl TrainCtx {
    /// `seed` makes the dropout masks reproducible.
    pub fn new(dropout: f32, seed: u64) -> Self {
        TrainCtx {
            dropout,
            rng: Cell::new(seed ^ 0x9E37_79B9_7F4A_7C15),
        }
    }

    /// No dropout: the forward pass is deterministic.
    pub fn eval() -> Self {
        TrainCtx::new(0.0, 0)
    }

    /// Where the dropout stream is. Restoring it replays the same masks, which is how a
    /// recomputed block (activation checkpointing) sees the masks of its first pass.
    pub fn rng_state(&self) -> u64 {
        self.rng.get()
    }

    pub fn set_rng_state(&self, state: u64) {
        self.rng.set(state);
    }

    /// The dropout of the next LoRA input; `None` without dropout.
    fn next_dropout(&self) -> Option<Dropout> {
        if self.dropout <= 0.0 {
            return None;
        }
        let mut state = self.rng.get();
        let seed = splitmix64(&mut state);
        self.rng.set(state);
        Some(Dropout {
            keep: 1.0 - self.dropout,
            seed,
        })
    }
}

/// splitmix64: the stream of dropout-mask seeds.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Inverted dropout as a pure function of `(seed, index)`: element `i` is kept (scaled by
/// `1/keep`) or zeroed by a hash of its index, so the backward pass regenerates the mask
/// instead of keeping it, and the loop vectorises (a sequential generator did not).
#[derive(Debug, Clone, Copy)]
struct Dropout {
    keep: f32,
    seed: u64,
}

impl Dropout {
    /// The factor of every element: `f(i)` is `1/keep` or 0.
    fn factors(self) -> impl Fn(usize) -> f32 {
        let threshold = (self.keep as f64 * (1u64 << 32) as f64) as u64;
        let kept = 1.0 / self.keep;
        let salt = (self.seed ^ (self.seed >> 32)) as u32;
        move |i| {
            // murmur3's finaliser over the salted index.
            let mut z = (i as u32).wrapping_mul(0x9E37_79B9) ^ salt;
            z ^= z >> 16;
            z = z.wrapping_mul(0x85EB_CA6B);
            z ^= z >> 13;
            z = z.wrapping_mul(0xC2B2_AE35);
            z ^= z >> 16;
            if (z as u64) < threshold {
                kept
            } else {
                0.0
            }
        }
    }
}

/// The contiguous f32 data of a CPU tensor's storage.
pub(super) fn f32_data<'a>(s: &'a Storage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => f32_slice(c, l),
        _ => candle_core::bail!("training ops run on the CPU"),
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("training ops expect contiguous f32 input"),
    }
}

/// How a row-major operand of [`matmul`] is read.
#[derive(Clone, Copy)]
enum Op {
    /// As stored.
    N,
    /// Transposed: a `[k, n]` operand stored as `[n, k]` (a weight), and so on.
    T,
}

/// `dst[m×n] = beta · lhs[m×k] · rhs[k×n]`, plus `dst` itself with `accumulate`, on
/// row-major slices through gemm (candle's own kernel), without copying any operand.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    lhs_op: Op,
    rhs: &[f32],
    rhs_op: Op,
    beta: f32,
    accumulate: bool,
) -> candle_core::Result<()> {
    if dst.len() != m * n || lhs.len() != m * k || rhs.len() != k * n {
        candle_core::bail!(
            "matmul shapes: dst {} lhs {} rhs {} for {m}x{k}x{n}",
            dst.len(),
            lhs.len(),
            rhs.len()
        );
    }
    // (column stride, row stride) of each operand as the product reads it.
    let (lhs_cs, lhs_rs) = match lhs_op {
        Op::N => (1, k),
        Op::T => (m, 1),
    };
    let (rhs_cs, rhs_rs) = match rhs_op {
        Op::N => (1, n),
        Op::T => (k, 1),
    };
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were checked above against the strides used here.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// `[.., k]` as `(rows, k)`.
fn rows(l: &Layout) -> candle_core::Result<(usize, usize)> {
    let k = l.shape().dims().last().copied().unwrap_or(1).max(1);
    Ok((l.shape().elem_count() / k, k))
}

pub(super) fn with_last_dim(shape: &Shape, n: usize) -> Shape {
    let mut dims = shape.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    Shape::from(dims)
}

/// `x Wᵀ` with a frozen `W` (`[n, k]`): the backward pass returns only the input gradient.
struct FrozenMatmul {
    w: Tensor,
}

impl FrozenMatmul {
    /// `x Wᵀ` for `m` rows of `x`.
    fn product(&self, x: &[f32], m: usize) -> candle_core::Result<Vec<f32>> {
        let (n, k) = self.w.dims2()?;
        let (ws, wl) = self.w.storage_and_layout();
        let mut y = vec![0f32; m * n];
        matmul(
            &mut y,
            (m, k, n),
            x,
            Op::N,
            f32_data(&ws, wl)?,
            Op::T,
            1.0,
            false,
        )?;
        Ok(y)
    }

    /// `g W`, the input gradient, for `m` rows of `g`.
    fn input_grad(&self, g: &[f32], m: usize) -> candle_core::Result<Vec<f32>> {
        let (n, k) = self.w.dims2()?;
        let (ws, wl) = self.w.storage_and_layout();
        let mut dx = vec![0f32; m * k];
        matmul(
            &mut dx,
            (m, n, k),
            g,
            Op::N,
            f32_data(&ws, wl)?,
            Op::N,
            1.0,
            false,
        )?;
        Ok(dx)
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, _) = rows(l)?;
        let y = self.product(f32_slice(s, l)?, m)?;
        let n = self.w.dim(0)?;
        Ok((CpuStorage::F32(y), with_last_dim(l.shape(), n)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let m = g.elem_count() / self.w.dim(0)?.max(1);
        let (gs, gl) = g.storage_and_layout();
        let dx = self.input_grad(f32_data(&gs, gl)?, m)?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// A frozen linear layer and its LoRA update as one differentiable op on `(x, A, B)`:
/// `y = x Wᵀ + s · ((x ⊙ mask) Aᵀ) Bᵀ`. Composed from candle ops, the update would keep
/// its dropout mask, dropped input and three `[rows, out]` intermediates for the backward
/// pass and make as many passes over memory; here it is three products into one buffer,
/// and the mask is regenerated from its seed when the gradients need it.
struct LoraLinear {
    base: FrozenMatmul,
    scale: f32,
    dropout: Option<Dropout>,
}

impl LoraLinear {
    /// The LoRA input: `x`, or `x ⊙ mask` under dropout.
    fn dropped<'a>(&self, x: &'a [f32]) -> Cow<'a, [f32]> {
        match self.dropout {
            None => Cow::Borrowed(x),
            Some(d) => {
                let f = d.factors();
                Cow::Owned(x.iter().enumerate().map(|(i, x)| x * f(i)).collect())
            }
        }
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        b_s: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = rows(xl)?;
        let (r, n) = (al.shape().dims2()?.0, bl.shape().dims2()?.0);
        let x = f32_slice(xs, xl)?;
        let mut y = self.base.product(x, m)?;
        let mut low = vec![0f32; m * r];
        let a = f32_slice(a_s, al)?;
        matmul(
            &mut low,
            (m, k, r),
            &self.dropped(x),
            Op::N,
            a,
            Op::T,
            self.scale,
            false,
        )?;
        matmul(
            &mut y,
            (m, r, n),
            &low,
            Op::N,
            f32_slice(b_s, bl)?,
            Op::T,
            1.0,
            true,
        )?;
        Ok((CpuStorage::F32(y), with_last_dim(xl.shape(), n)))
    }

    /// With `xd = x ⊙ mask` and `gB = g B`: `dA = s gBᵀ xd`, `dB = s gᵀ (xd Aᵀ)`,
    /// `dx = g W + s (gB A) ⊙ mask`.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (r, k) = a.dims2()?;
        let (n, _) = b.dims2()?;
        let (x, a, b, g) = (
            x.contiguous()?,
            a.contiguous()?,
            b.contiguous()?,
            g.contiguous()?,
        );
        let m = x.elem_count() / k.max(1);
        let (xs, xl) = x.storage_and_layout();
        let (as_, al) = a.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (xv, av, bv) = (f32_data(&xs, xl)?, f32_data(&as_, al)?, f32_data(&bs, bl)?);
        let gv = f32_data(&gs, gl)?;
        let s = self.scale;
        let xd = self.dropped(xv);

        let mut gb = vec![0f32; m * r];
        matmul(&mut gb, (m, n, r), gv, Op::N, bv, Op::N, 1.0, false)?;
        let mut da = vec![0f32; r * k];
        matmul(&mut da, (r, m, k), &gb, Op::T, &xd, Op::N, s, false)?;
        let mut low = vec![0f32; m * r];
        matmul(&mut low, (m, k, r), &xd, Op::N, av, Op::T, 1.0, false)?;
        let mut db = vec![0f32; n * r];
        matmul(&mut db, (n, m, r), gv, Op::T, &low, Op::N, s, false)?;

        let mut dx = self.base.input_grad(gv, m)?;
        match self.dropout {
            None => matmul(&mut dx, (m, r, k), &gb, Op::N, av, Op::N, s, true)?,
            Some(d) => {
                let mut up = vec![0f32; m * k];
                matmul(&mut up, (m, r, k), &gb, Op::N, av, Op::N, s, false)?;
                let f = d.factors();
                for (i, (d, u)) in dx.iter_mut().zip(&up).enumerate() {
                    *d += u * f(i);
                }
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(da, (r, k), dev)?),
            Some(Tensor::from_vec(db, (n, r), dev)?),
        ))
    }
}

/// RMSNorm with a frozen weight, row by row on the slices (one pass each way; composed from
/// candle ops, its backward pass alone would be eight passes over memory).
struct RmsNormOp {
    w: Tensor,
    eps: f32,
}

impl RmsNormOp {
    /// `1 / sqrt(mean(x²) + eps)` of one row.
    fn inv_rms(&self, x: &[f32]) -> f32 {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
        1.0 / (ms + self.eps).sqrt()
    }
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms-norm-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, k) = rows(l)?;
        let x = f32_slice(s, l)?;
        let (ws, wl) = self.w.storage_and_layout();
        let w = f32_data(&ws, wl)?;
        let mut y = vec![0f32; x.len()];
        for (yr, xr) in y.chunks_exact_mut(k).zip(x.chunks_exact(k)) {
            let r = self.inv_rms(xr);
            for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
                *y = x * r * w;
            }
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// y = x·r·w with r = 1/sqrt(mean(x²)+eps): dx = r·(g w) − x·r³·mean(g w x).
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (x, g) = (x.contiguous()?, g.contiguous()?);
        let k = x.dim(D::Minus1)?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (ws, wl) = self.w.storage_and_layout();
        let (xv, gv, w) = (f32_data(&xs, xl)?, f32_data(&gs, gl)?, f32_data(&ws, wl)?);
        let mut dx = vec![0f32; xv.len()];
        for ((d, x), g) in dx
            .chunks_exact_mut(k)
            .zip(xv.chunks_exact(k))
            .zip(gv.chunks_exact(k))
        {
            let r = self.inv_rms(x);
            let dot = g
                .iter()
                .zip(w)
                .zip(x)
                .map(|((g, w), x)| g * w * x)
                .sum::<f32>()
                / k as f32;
            let c = dot * r * r * r;
            for (((d, g), w), x) in d.iter_mut().zip(g).zip(w).zip(x) {
                *d = r * g * w - x * c;
            }
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Rotary embedding, rotate-halves layout, on `[.., t, d]` with `cos`/`sin` `[t, d/2]`. It
/// is a rotation, so its gradient is the inverse rotation: the same loop with `-sin`.
struct RopeOp {
    cos: Tensor,
    sin: Tensor,
}

impl RopeOp {
    fn rotate(&self, x: &[f32], d: usize, sign: f32) -> candle_core::Result<Vec<f32>> {
        let (cs, cl) = self.cos.storage_and_layout();
        let (ss, sl) = self.sin.storage_and_layout();
        let (cos, sin) = (f32_data(&cs, cl)?, f32_data(&ss, sl)?);
        let half = d / 2;
        let t = cos.len() / half.max(1);
        if half == 0 || !d.is_multiple_of(2) || t == 0 || !x.len().is_multiple_of(t * d) {
            candle_core::bail!("rope: {} values for {t} positions of width {d}", x.len());
        }
        let mut y = vec![0f32; x.len()];
        for (i, (yr, xr)) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate() {
            let p = (i % t) * half;
            let (c, s) = (&cos[p..p + half], &sin[p..p + half]);
            let (x1, x2) = xr.split_at(half);
            let (y1, y2) = yr.split_at_mut(half);
            for j in 0..half {
                let sj = sign * s[j];
                y1[j] = x1[j] * c[j] - x2[j] * sj;
                y2[j] = x2[j] * c[j] + x1[j] * sj;
            }
        }
        Ok(y)
    }
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "rope-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, d) = rows(l)?;
        let y = self.rotate(f32_slice(s, l)?, d, 1.0)?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let d = g.dim(D::Minus1)?;
        let (gs, gl) = g.storage_and_layout();
        let dx = self.rotate(f32_data(&gs, gl)?, d, -1.0)?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// `softmax(scale · x)` over the last dimension with a causal mask (query `i` of `t`
/// sees keys `0..=i`), on `[.., t, t]` scores. Saves the separate mask tensor and the
/// masked copy of the scores that a composed version would keep for the backward pass.
struct CausalSoftmax {
    scale: f32,
}

/// Runs `f` on chunks of whole rows of `out` in parallel (candle's thread count).
fn par_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = out.len() / row.max(1);
    let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
    let per = rows.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(per * row).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (k, r) in chunk.chunks_mut(row).enumerate() {
                    f(c * per + k, r);
                }
            });
        }
    });
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        let t = dims.last().copied().unwrap_or(0);
        let q = if dims.len() >= 2 {
            dims[dims.len() - 2]
        } else {
            1
        };
        if q != t {
            candle_core::bail!("causal-softmax expects square scores, got {dims:?}");
        }
        let data = s.as_slice::<f32>()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("causal-softmax expects contiguous input");
        };
        let src = &data[a..b];
        let mut out = vec![0f32; src.len()];
        let scale = self.scale;
        par_rows(&mut out, t, |r, dst| {
            let i = r % t;
            let x = &src[r * t..r * t + i + 1];
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
            let mut sum = 0.0;
            for (d, &v) in dst.iter_mut().zip(x) {
                *d = (v * scale - max).exp();
                sum += *d;
            }
            let inv = 1.0 / sum;
            for d in &mut dst[..=i] {
                *d *= inv;
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    /// dx = scale · y ⊙ (g − Σ g⊙y); masked entries have y = 0.
    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let t = y.dim(D::Minus1)?;
        let yv = y.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gv = g.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; yv.len()];
        let scale = self.scale;
        par_rows(&mut out, t, |r, dst| {
            let n = r % t + 1;
            let y = &yv[r * t..r * t + n];
            let g = &gv[r * t..r * t + n];
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((d, &y), &g) in dst.iter_mut().zip(y).zip(g) {
                *d = scale * y * (g - dot);
            }
        });
        Ok(Some(Tensor::from_vec(out, y.shape(), y.device())?))
    }
}

/// Causal attention weights for training: `softmax(scale · scores)` with future keys
/// masked, `scores` being `[.., t, t]`; differentiable.
pub fn causal_softmax_train(scores: &Tensor, scale: f64) -> Result<Tensor> {
    if !scores.device().is_cpu() {
        return composed::causal_softmax(scores, scale);
    }
    Ok(scores.contiguous()?.apply_op1(CausalSoftmax {
        scale: scale as f32,
    })?)
}

impl RmsNorm {
    /// Differentiable RMSNorm (frozen weight) for training.
    pub fn forward_train(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() {
            return composed::rms_norm(xs, &self.weight, self.eps);
        }
        Ok(xs.contiguous()?.apply_op1(RmsNormOp {
            w: self.weight.clone(),
            eps: self.eps,
        })?)
    }
}

impl Rotary {
    /// Differentiable [`Rotary::apply`] for training.
    pub fn apply_train(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = xs.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?.contiguous()?;
        let sin = self.sin.narrow(0, offset, seq)?.contiguous()?;
        if !xs.device().is_cpu() {
            return composed::rope(xs, &cos, &sin);
        }
        Ok(xs.contiguous()?.apply_op1(RopeOp { cos, sin })?)
    }
}

impl Linear {
    /// Training forward pass: the base weight is frozen (its gradient is never computed;
    /// a quantized weight is dequantized per call, so load f32 weights for training), the
    /// LoRA matrices get gradients when they are `Var`s, dropout applies to the LoRA input.
    pub fn forward_train(&self, xs: &Tensor, ctx: &TrainCtx) -> Result<Tensor> {
        let w = self.dequantize()?;
        let xs = xs.contiguous()?;
        let dropout = self.lora.as_ref().and_then(|_| ctx.next_dropout());
        if !xs.device().is_cpu() {
            return composed::linear(&xs, &w, self.lora.as_ref(), dropout);
        }
        Ok(match &self.lora {
            None => xs.apply_op1(FrozenMatmul { w })?,
            Some(lora) => xs.apply_op3(
                &lora.a,
                &lora.b,
                LoraLinear {
                    base: FrozenMatmul { w },
                    scale: lora.scale as f32,
                    dropout,
                },
            )?,
        })
    }
}

/// The training ops composed from candle's own ops, for devices other than the CPU (the
/// fused ops above read CPU slices): the same functions and dropout masks, with candle's
/// kernels and backward passes, at the memory cost the fused ops avoid. Tested against
/// the fused ops on the CPU.
mod composed {
    use candle_core::{Tensor, D};

    use super::Dropout;
    use crate::error::Result;
    use crate::layers::{causal_mask, Lora};

    pub(super) fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
        let t = scores.dim(D::Minus1)?;
        let masked = (scores * scale)?.broadcast_add(&causal_mask(t, t, scores.device())?)?;
        Ok(candle_nn::ops::softmax(&masked, D::Minus1)?)
    }

    pub(super) fn rms_norm(xs: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
        let ms = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (ms + eps as f64)?.sqrt()?.recip()?;
        Ok(xs.broadcast_mul(&inv)?.broadcast_mul(w)?)
    }

    /// Rotate-halves layout, `cos`/`sin` `[t, d/2]`.
    pub(super) fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let half = xs.dim(D::Minus1)? / 2;
        let (x1, x2) = (
            xs.narrow(D::Minus1, 0, half)?,
            xs.narrow(D::Minus1, half, half)?,
        );
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        let cos = Tensor::cat(&[cos, cos], D::Minus1)?;
        let sin = Tensor::cat(&[sin, sin], D::Minus1)?;
        Ok((xs.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
    }

    /// `x Wᵀ + s · ((x ⊙ mask) Aᵀ) Bᵀ`; the mask is built on the host from the same
    /// seed as the fused op's, so both devices drop the same elements.
    pub(super) fn linear(
        xs: &Tensor,
        w: &Tensor,
        lora: Option<&Lora>,
        dropout: Option<Dropout>,
    ) -> Result<Tensor> {
        let ys = xs.broadcast_matmul(&w.t()?)?;
        let Some(lora) = lora else {
            return Ok(ys);
        };
        let dropped = match dropout {
            None => xs.clone(),
            Some(d) => {
                let mask: Vec<f32> = (0..xs.elem_count()).map(d.factors()).collect();
                (xs * Tensor::from_vec(mask, xs.shape(), xs.device())?)?
            }
        };
        let low = dropped.broadcast_matmul(&lora.a.t()?)?;
        let up = low.broadcast_matmul(&lora.b.t()?)?;
        Ok((ys + (up * lora.scale)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Lora;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY)
    }

    /// Values and the gradients of `sum(f(x) * g)` with respect to `vars`.
    fn value_and_grads(y: Tensor, g: &Tensor, vars: &[&Var]) -> (Tensor, Vec<Tensor>) {
        let store = (&y * g).unwrap().sum_all().unwrap().backward().unwrap();
        let grads = vars
            .iter()
            .map(|v| store.get(v.as_tensor()).unwrap().clone())
            .collect();
        (y, grads)
    }

    fn assert_same(fused: (Tensor, Vec<Tensor>), composed: (Tensor, Vec<Tensor>), what: &str) {
        let d = max_diff(&fused.0, &composed.0);
        assert!(d < 1e-4, "{what}: values differ by {d}");
        for (i, (f, c)) in fused.1.iter().zip(&composed.1).enumerate() {
            let d = max_diff(f, c);
            assert!(d < 1e-4, "{what}: gradient {i} differs by {d}");
        }
    }

    /// The fused op against the composed one (the path of other devices), values and all
    /// three gradients, with and without dropout.
    #[test]
    fn lora_linear_equals_composed_ops() {
        let dev = Device::Cpu;
        let (m, k, r, n) = (7, 24, 4, 10);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (1, m, n), &dev).unwrap();
        for dropout in [
            None,
            Some(Dropout {
                keep: 0.75,
                seed: 99,
            }),
        ] {
            let x = Var::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
            let a = Var::randn(0f32, 0.5, (r, k), &dev).unwrap();
            let b = Var::randn(0f32, 0.5, (n, r), &dev).unwrap();
            let op = LoraLinear {
                base: FrozenMatmul { w: w.clone() },
                scale: 1.5,
                dropout,
            };
            let vars = [&x, &a, &b];
            let fused = x.apply_op3(&a, &b, op).unwrap();
            let lora = Lora {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale: 1.5,
            };
            let plain = composed::linear(&x, &w, Some(&lora), dropout).unwrap();
            assert_same(
                value_and_grads(fused, &g, &vars),
                value_and_grads(plain, &g, &vars),
                &format!("{dropout:?}"),
            );
        }
        // Without an adapter: the frozen product and its input gradient.
        let x = Var::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let fused = x.apply_op1(FrozenMatmul { w: w.clone() }).unwrap();
        let plain = composed::linear(&x, &w, None, None).unwrap();
        assert_same(
            value_and_grads(fused, &g, &[&x]),
            value_and_grads(plain, &g, &[&x]),
            "frozen",
        );
    }

    /// RMSNorm, rotary embedding and the causal softmax: fused against composed, values
    /// and input gradients, on shapes as the attention uses them.
    #[test]
    fn norm_rope_and_softmax_equal_composed_ops() {
        let dev = Device::Cpu;
        let (heads, t, d) = (3, 5, 8);
        let x = Var::randn(0f32, 1.0, (1, heads, t, d), &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (1, heads, t, d), &dev).unwrap();

        let norm = RmsNorm::new(Tensor::randn(0f32, 1.0, d, &dev).unwrap(), 1e-5);
        let fused = x.apply_op1(RmsNormOp {
            w: norm.weight.clone(),
            eps: norm.eps,
        });
        let plain = composed::rms_norm(&x, &norm.weight, norm.eps).unwrap();
        assert_same(
            value_and_grads(fused.unwrap(), &g, &[&x]),
            value_and_grads(plain, &g, &[&x]),
            "rms norm",
        );

        let rotary = Rotary::new(d, 10_000.0, 16, &dev).unwrap();
        let (cos, sin) = (
            rotary.cos.narrow(0, 2, t).unwrap().contiguous().unwrap(),
            rotary.sin.narrow(0, 2, t).unwrap().contiguous().unwrap(),
        );
        let fused = x.apply_op1(RopeOp {
            cos: cos.clone(),
            sin: sin.clone(),
        });
        let plain = composed::rope(&x, &cos, &sin).unwrap();
        assert_same(
            value_and_grads(fused.unwrap(), &g, &[&x]),
            value_and_grads(plain, &g, &[&x]),
            "rope",
        );

        let scores = Var::randn(0f32, 2.0, (1, heads, t, t), &dev).unwrap();
        let gs = Tensor::randn(0f32, 1.0, (1, heads, t, t), &dev).unwrap();
        let fused = scores.apply_op1(CausalSoftmax { scale: 0.5 }).unwrap();
        let plain = composed::causal_softmax(&scores, 0.5).unwrap();
        assert_same(
            value_and_grads(fused, &gs, &[&scores]),
            value_and_grads(plain, &gs, &[&scores]),
            "causal softmax",
        );
    }

    #[test]
    fn dropout_masks_are_a_function_of_the_seed() {
        let mask = |seed| -> Vec<f32> {
            (0..10_000)
                .map(Dropout { keep: 0.9, seed }.factors())
                .collect()
        };
        let a = mask(5);
        assert_eq!(a, mask(5));
        let b = mask(6);
        let both = a.iter().zip(&b).filter(|(x, y)| **x == 0.0 && **y == 0.0);
        // Independent masks at p = 0.1 share about 1 % of their zeros.
        assert!(both.count() < 200);
        let dropped = a.iter().filter(|&&f| f == 0.0).count();
        assert!(
            (850..1150).contains(&dropped),
            "{dropped} of 10000 dropped at p = 0.1"
        );
        assert!(a.iter().all(|&f| f == 0.0 || (f - 1.0 / 0.9).abs() < 1e-6));
    }
}
