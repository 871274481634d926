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
    in_dim: usize,
    out_dim: usize,
    lora: Option<Lora>,
}

impl Linear {
    pub fn from_qtensor(q: QTensor) -> Result<Self> {
        let (out_dim, in_dim) = q.shape().dims2()?;
        Ok(Linear {
            weight: QMatMul::from_qtensor(q)?,
            in_dim,
            out_dim,
            lora: None,
        })
    }

    pub fn from_dense(w: Tensor) -> Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        Ok(Linear {
            weight: QMatMul::Tensor(w.to_dtype(DType::F32)?),
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

    /// The weight as a dense f32 `[out, in]` tensor.
    pub fn dequantize(&self) -> Result<Tensor> {
        Ok(match &self.weight {
            QMatMul::QTensor(q) => q.dequantize(&q.device())?,
            QMatMul::Tensor(w) => w.clone(),
            QMatMul::TensorF16(w) => w.to_dtype(DType::F32)?,
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
            _ => QMatMul::Tensor(merged),
        };
        Ok(())
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.weight.forward(xs)?;
        match &self.lora {
            None => Ok(ys),
            Some(lora) => {
                let low = xs.broadcast_matmul(&lora.a.t()?)?;
                let up = low.broadcast_matmul(&lora.b.t()?)?;
                Ok((ys + (up * lora.scale)?)?)
            }
        }
    }
}

/// Numerically stable softmax over the last dimension, in f32.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(&xs.to_dtype(DType::F32)?)?)
}

/// Argmax over the last dimension of a `[vocab]` logits vector.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}
