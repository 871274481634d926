//! The building blocks of the Llama block: RMSNorm, rotary embeddings and linear layers
//! that can carry a LoRA adapter.

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        RmsNorm {
            weight,
            eps: eps as f32,
        }
    }

    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(RmsNorm {
            weight: self.weight.to_device(device)?,
            eps: self.eps,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &xs.contiguous()?,
            &self.weight,
            self.eps,
        )?)
    }
}

/// Rotary position embeddings in the Hugging Face layout (rotate halves).
///
/// GGUF files store q/k rows permuted for the interleaved variant; the loader undoes that
/// permutation so one layout serves both formats and PEFT adapters apply unchanged.
#[derive(Debug, Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub fn new(head_dim: usize, theta: f32, max_len: usize, device: &Device) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / head_dim as f32))
            .collect();
        let n = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, n), device)?;
        let positions = Tensor::arange(0u32, max_len as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_len, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(Rotary {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
        })
    }

    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Rotary {
            cos: self.cos.to_device(device)?,
            sin: self.sin.to_device(device)?,
        })
    }

    pub fn max_len(&self) -> usize {
        self.cos.dims()[0]
    }

    /// `xs`: `[batch, heads, seq, head_dim]`, positions `offset..offset + seq`.
    pub fn apply(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = xs.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        Ok(candle_nn::rotary_emb::rope(&xs.contiguous()?, &cos, &sin)?)
    }
}

/// Low-rank update `scale * B A` of a linear layer, PEFT convention:
/// `a` is `[r, in]`, `b` is `[out, r]`.
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

/// A linear layer without bias whose weight may stay quantized, optionally carrying an
/// unmerged LoRA update.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: QMatMul,
    /// An f32 copy for passes over many rows (see [`DENSE_MIN_ROWS`]).
    dense: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
    lora: Option<Lora>,
}

/// Which weight a layer with a dense copy multiplies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The dense copy from [`DENSE_MIN_ROWS`] rows on, the stored weight below: fastest
    /// for one sequence.
    ByRows,
    /// The dense copy for every pass, whatever its size. A sequence in a batched pass then
    /// gets the same numbers whatever else is in the batch ([`crate::Llama::forward_batch`]
    /// runs it as [`Kernels::Split`]).
    Dense,
    /// The dense copy (or the stored weight where it is f32), the first this many rows by
    /// the few-rows product (decode steps: no weight packing), the others by gemm.
    /// A row's numbers depend only on which of the two it is in.
    Split(usize),
}

/// From this many rows (tokens) on, a layer with a dense copy multiplies in f32: batched
/// f32 gemm beats candle's quantized kernels for prefill (about 3x on AVX-512), while
/// one-token decoding is memory-bound and faster on the quantized weights (4-8x smaller).
pub const DENSE_MIN_ROWS: usize = 8;

impl Linear {
    pub fn from_qtensor(q: QTensor) -> Result<Self> {
        let (out_dim, in_dim) = q.shape().dims2()?;
        Ok(Linear {
            weight: QMatMul::from_qtensor(q)?,
            dense: None,
            in_dim,
            out_dim,
            lora: None,
        })
    }

    pub fn from_dense(w: Tensor) -> Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        Ok(Linear {
            weight: QMatMul::Tensor(w.to_dtype(DType::F32)?),
            dense: None,
            in_dim,
            out_dim,
            lora: None,
        })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_dim, self.in_dim)
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, QMatMul::QTensor(_))
    }

    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    pub fn set_lora(&mut self, lora: Option<Lora>) {
        self.lora = lora;
    }

    /// Keeps an f32 copy of the weight (`[out, in]`, normally the exact dequantization of
    /// the file's tensor) for multi-row passes; `None` drops it.
    pub fn set_dense_copy(&mut self, dense: Option<Tensor>) -> Result<()> {
        if let Some(w) = &dense {
            if w.dims() != [self.out_dim, self.in_dim] || w.dtype() != DType::F32 {
                return Err(candle_core::Error::Msg(format!(
                    "dense copy {:?} {:?} does not fit an f32 [{}, {}] weight",
                    w.dims(),
                    w.dtype(),
                    self.out_dim,
                    self.in_dim
                ))
                .into());
            }
        }
        self.dense = dense;
        Ok(())
    }

    /// Keeps only the dense copy where there is one, freeing the quantized weight: for
    /// callers whose passes all take the dense copy anyway (batched analysis).
    pub fn drop_quantized(&mut self) {
        if let Some(w) = self.dense.take() {
            self.weight = QMatMul::Tensor(w);
        }
    }

    /// The weight as a dense f32 `[out, in]` tensor.
    pub fn dequantize(&self) -> Result<Tensor> {
        if let Some(w) = &self.dense {
            return Ok(w.clone());
        }
        Ok(match &self.weight {
            QMatMul::QTensor(q) => q.dequantize(&q.device())?,
            QMatMul::Tensor(w) => w.clone(),
            QMatMul::TensorF16(w) => w.to_dtype(DType::F32)?,
        })
    }

    /// This layer on `device`, its weight as a dense f32 tensor: what the training pass
    /// multiplies with (the quantized kernels and the few-rows product are CPU paths).
    pub fn to_device(&self, device: &Device) -> Result<Linear> {
        let lora = match &self.lora {
            None => None,
            Some(l) => Some(Lora {
                a: l.a.to_device(device)?,
                b: l.b.to_device(device)?,
                scale: l.scale,
            }),
        };
        Ok(Linear {
            weight: QMatMul::Tensor(self.dequantize()?.to_device(device)?),
            dense: None,
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            lora,
        })
    }

    /// Folds the LoRA update into the weight: `W + scale * B A`. A quantized weight is
    /// requantized to its own format, which costs a little precision.
    pub fn merge_lora(&mut self) -> Result<()> {
        let Some(lora) = self.lora.take() else {
            return Ok(());
        };
        let delta = (lora.b.matmul(&lora.a)? * lora.scale)?;
        let merged = (self.dequantize()? + delta)?;
        self.weight = match &self.weight {
            QMatMul::QTensor(q) => QMatMul::from_qtensor(QTensor::quantize(&merged, q.dtype())?)?,
            _ => QMatMul::Tensor(merged.clone()),
        };
        if self.dense.is_some() {
            self.dense = Some(merged);
        }
        Ok(())
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, Kernels::ByRows)
    }

    /// [`Linear::forward`] with the choice between the dense copy and the stored weight
    /// made by `kernels`.
    pub fn forward_with(&self, xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let rows = xs.elem_count() / self.in_dim.max(1);
        let dense = match kernels {
            Kernels::ByRows => rows >= DENSE_MIN_ROWS,
            Kernels::Dense => true,
            Kernels::Split(_) => false,
        };
        let f32_weight = match &self.weight {
            QMatMul::Tensor(w) if w.dtype() == DType::F32 => Some(w),
            _ => self.dense.as_ref(),
        };
        let ys = match (&self.dense, kernels, f32_weight) {
            (_, Kernels::Split(few), Some(w)) => split_product(xs, w, few)?,
            (Some(w), _, _) if dense => xs.broadcast_matmul(&w.t()?)?,
            _ => self.stored_product(xs)?,
        };
        match &self.lora {
            None => Ok(ys),
            Some(lora) => {
                let low = xs.broadcast_matmul(&lora.a.t()?)?;
                let up = low.broadcast_matmul(&lora.b.t()?)?;
                Ok((ys + (up * lora.scale)?)?)
            }
        }
    }

    /// `xs Wᵀ` with the weight as stored: Q4_1 and Q8_0 blocks through
    /// [`quantized::matmul`], the rest through candle.
    fn stored_product(&self, xs: &Tensor) -> Result<Tensor> {
        let stored = match &self.weight {
            QMatMul::QTensor(q) if xs.device().is_cpu() => {
                quantized::Blocks::of(q.dtype()).map(|format| (q, format))
            }
            _ => None,
        };
        let Some((q, format)) = stored else {
            return Ok(self.weight.forward(xs)?);
        };
        let (n, k) = (self.out_dim, self.in_dim);
        let rows = xs.elem_count() / k.max(1);
        let x = xs.flatten_all()?.to_vec1::<f32>()?;
        let mut y = vec![0f32; rows * n];
        quantized::matmul(format, &x, &q.data()?, &mut y, rows, n, k);
        Ok(Tensor::from_vec(
            y,
            train::with_last_dim(xs.shape(), n),
            xs.device(),
        )?)
    }
}

/// `xs Wᵀ` with the first `few` rows of `xs` (`[..., k]`, rows in flattened order) by the
/// few-rows product and the others by gemm.
fn split_product(xs: &Tensor, w: &Tensor, few: usize) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let rows = xs.elem_count() / k.max(1);
    let few = few.min(rows);
    // The product reads the weight's slice in place; any other layout takes gemm.
    if few == 0 || !w.is_contiguous() {
        return Ok(xs.broadcast_matmul(&w.t()?)?);
    }
    let flat = xs.reshape((rows, k))?;
    let x = flat.narrow(0, 0, few)?.flatten_all()?.to_vec1::<f32>()?;
    let mut y = vec![0f32; few * n];
    {
        let (ws, wl) = w.storage_and_layout();
        few_rows::matmul(&x, train::f32_data(&ws, wl)?, &mut y, few, n, k);
    }
    let mut ys = Tensor::from_vec(y, (few, n), xs.device())?;
    if few < rows {
        let rest = flat.narrow(0, few, rows - few)?.matmul(&w.t()?)?;
        ys = Tensor::cat(&[ys, rest], 0)?;
    }
    Ok(ys.reshape(train::with_last_dim(xs.shape(), n))?)
}

/// `[t, total]` additive mask: query `i` (at position `total - t + i`) sees keys up to itself.
pub(crate) fn causal_mask(t: usize, total: usize, device: &Device) -> Result<Tensor> {
    let past = total - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (t, total), device)?)
}

/// Numerically stable softmax over the last dimension, in f32.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(&xs.to_dtype(DType::F32)?)?)
}

/// Argmax over the last dimension of a `[vocab]` logits vector.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}

/// Runs `run` over the work items `0..items` on candle's thread pool, or on this thread
/// when the whole call is `macs` multiply-adds too few to be worth waking the pool.
fn on_pool(items: usize, macs: usize, run: impl Fn(std::ops::Range<usize>) + Sync) {
    if macs < 1 << 16 {
        run(0..items);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(items, run);
    }
}

mod few_rows;
mod quantized;
mod train;

pub use train::{causal_softmax_train, TrainCtx};

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY)
    }

    /// A Q8_0 layer with the f32 copy of its own dequantized weight, and a LoRA update.
    fn mixed() -> (Linear, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (48, 64), &dev).unwrap();
        let q = QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q8_0).unwrap();
        let dense = q.dequantize(&dev).unwrap();
        let mut linear = Linear::from_qtensor(q).unwrap();
        linear.set_dense_copy(Some(dense.clone())).unwrap();
        linear.set_lora(Some(Lora {
            a: Tensor::randn(0f32, 0.1, (4, 64), &dev).unwrap(),
            b: Tensor::randn(0f32, 0.1, (48, 4), &dev).unwrap(),
            scale: 2.0,
        }));
        (linear, dense)
    }

    #[test]
    fn dense_copy_serves_many_rows_and_the_quantized_weight_one() {
        let (linear, dense) = mixed();
        let plain = {
            let mut l = linear.clone();
            l.set_dense_copy(None).unwrap();
            l
        };
        let dev = Device::Cpu;
        let many = Tensor::randn(0f32, 1.0, (1, DENSE_MIN_ROWS, 64), &dev).unwrap();
        let one = many.narrow(1, 0, 1).unwrap();
        // One row: exactly the quantized path.
        let a = linear.forward(&one).unwrap();
        assert_eq!(max_diff(&a, &plain.forward(&one).unwrap()), 0.0);
        // Many rows: the f32 product (plus the same LoRA term).
        let lora = linear.lora().cloned().unwrap();
        let low = many.broadcast_matmul(&lora.a.t().unwrap()).unwrap();
        let up = low.broadcast_matmul(&lora.b.t().unwrap()).unwrap();
        let expected =
            (many.broadcast_matmul(&dense.t().unwrap()).unwrap() + (up * 2.0).unwrap()).unwrap();
        assert!(max_diff(&linear.forward(&many).unwrap(), &expected) < 1e-5);
        // The quantized path rounds the activations to 8 bits: close, not equal.
        let q = plain.forward(&many).unwrap();
        assert!(max_diff(&q, &expected) > 0.0 && max_diff(&q, &expected) < 0.5);
    }

    #[test]
    fn merging_updates_the_dense_copy_too() {
        let (linear, _) = mixed();
        let mut merged = linear.clone();
        merged.merge_lora().unwrap();
        let many = Tensor::randn(0f32, 1.0, (1, 2 * DENSE_MIN_ROWS, 64), &Device::Cpu).unwrap();
        let diff = max_diff(
            &merged.forward(&many).unwrap(),
            &linear.forward(&many).unwrap(),
        );
        assert!(diff < 1e-4, "{diff}");
    }
}
