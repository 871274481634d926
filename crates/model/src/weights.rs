//! Reading weights from a GGUF file or a Hugging Face safetensors directory, under
//! Hugging Face tensor names (`model.layers.0.self_attn.q_proj`), so the model and the
//! adapters only ever speak one naming scheme.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QStorage, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{io_err, ModelError, Result};
use crate::layers::Linear;

/// How GGUF matrices are held in memory for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as the file stores them.
    AsStored,
    /// Requantized to Q8_0 at load (candle's kernels for Q4_1 and some other formats are
    /// scalar; Q8_0 has SIMD dot products). Matrices whose rows do not split into
    /// 32-blocks stay as stored.
    #[default]
    Q8_0,
    /// Dequantized to f32.
    F32,
    /// Q8_0 (Q4_1 matrices as stored: OpenSOC's own kernel reads them) for one-token
    /// decoding plus an f32 copy for multi-token passes (prefill): each path on its
    /// faster kernel, for about 4x the memory of the quantized weights alone.
    Mixed,
}

pub(crate) enum Weights {
    Gguf {
        path: PathBuf,
        content: gguf_file::Content,
        reader: BufReader<File>,
        format: WeightFormat,
    },
    Safetensors {
        dir: PathBuf,
        tensors: MmapedSafetensors,
    },
}

/// `model.layers.3.self_attn.q_proj.weight` -> `blk.3.attn_q.weight`.
pub(crate) fn gguf_name(hf: &str) -> String {
    let (stem, suffix) = hf.rsplit_once('.').unwrap_or((hf, "weight"));
    let mapped = match stem {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => match stem
            .strip_prefix("model.layers.")
            .and_then(|r| r.split_once('.'))
        {
            Some((n, module)) => {
                let short = match module {
                    "self_attn.q_proj" => "attn_q",
                    "self_attn.k_proj" => "attn_k",
                    "self_attn.v_proj" => "attn_v",
                    "self_attn.o_proj" => "attn_output",
                    "mlp.gate_proj" => "ffn_gate",
                    "mlp.up_proj" => "ffn_up",
                    "mlp.down_proj" => "ffn_down",
                    "input_layernorm" => "attn_norm",
                    "post_attention_layernorm" => "ffn_norm",
                    other => other,
                };
                format!("blk.{n}.{short}")
            }
            None => stem.to_string(),
        },
    };
    format!("{mapped}.{suffix}")
}

/// Row order that turns llama.cpp's interleaved-rotary layout back into Hugging Face's:
/// within each head, GGUF row `2j + i` holds HF row `i * head_dim / 2 + j`.
pub(crate) fn unpermute_rows(n_heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    let mut order = Vec::with_capacity(n_heads * head_dim);
    for h in 0..n_heads {
        for i in 0..2 {
            for j in 0..half {
                order.push(h * head_dim + 2 * j + i);
            }
        }
    }
    order
}

fn permute_qtensor_rows(q: &QTensor, order: &[usize]) -> Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    debug_assert_eq!(row_bytes * rows, data.len());
    let mut out = Vec::with_capacity(data.len());
    for &r in order {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(Cow::Owned(out), &Device::Cpu, q.dtype())?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

impl Weights {
    pub(crate) fn open_gguf(path: &Path, format: WeightFormat) -> Result<Self> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| ModelError::BadGguf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Weights::Gguf {
            path: path.to_path_buf(),
            content,
            reader,
            format,
        })
    }

    /// The GGUF header (metadata and tensor table), for GGUF weights.
    pub(crate) fn gguf(&self) -> Option<&gguf_file::Content> {
        match self {
            Weights::Gguf { content, .. } => Some(content),
            Weights::Safetensors { .. } => None,
        }
    }

    pub(crate) fn open_safetensors(dir: &Path, files: &[PathBuf]) -> Result<Self> {
        // SAFETY: the files are memory-mapped read-only; OpenSOC never writes them while
        // a model is loaded.
        let tensors =
            unsafe { MmapedSafetensors::multi(files) }.map_err(|e| ModelError::BadConfig {
                path: dir.to_path_buf(),
                reason: format!("cannot read safetensors: {e}"),
            })?;
        Ok(Weights::Safetensors {
            dir: dir.to_path_buf(),
            tensors,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Weights::Gguf { path, .. } => path,
            Weights::Safetensors { dir, .. } => dir,
        }
    }

    pub(crate) fn has(&self, hf_name: &str) -> bool {
        match self {
            Weights::Gguf { content, .. } => content.tensor_infos.contains_key(&gguf_name(hf_name)),
            Weights::Safetensors { tensors, .. } => tensors.get(hf_name).is_ok(),
        }
    }

    fn missing(&self, name: &str) -> ModelError {
        ModelError::MissingTensor {
            path: self.path().to_path_buf(),
            name: name.to_string(),
        }
    }

    fn check_shape(&self, name: &str, found: &[usize], expected: &[usize]) -> Result<()> {
        if found == expected {
            return Ok(());
        }
        Err(ModelError::ShapeMismatch {
            path: self.path().to_path_buf(),
            name: name.to_string(),
            found: found.to_vec(),
            expected: expected.to_vec(),
        })
    }

    fn qtensor(&mut self, hf_name: &str) -> Result<QTensor> {
        let Weights::Gguf {
            path,
            content,
            reader,
            ..
        } = self
        else {
            return Err(self.missing(hf_name));
        };
        let name = gguf_name(hf_name);
        if !content.tensor_infos.contains_key(&name) {
            return Err(ModelError::MissingTensor {
                path: path.clone(),
                name,
            });
        }
        content
            .tensor(reader, &name, &Device::Cpu)
            .map_err(|e| ModelError::BadGguf {
                path: path.clone(),
                reason: format!("tensor {name}: {e}"),
            })
    }

    /// A dense f32 tensor of the expected shape (norms, embeddings).
    pub(crate) fn dense(&mut self, hf_name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match self {
            Weights::Gguf { .. } => {
                let q = self.qtensor(hf_name)?;
                q.dequantize(&Device::Cpu)?
            }
            Weights::Safetensors { tensors, .. } => tensors
                .load(hf_name, &Device::Cpu)
                .map_err(|_| self.missing(hf_name))?
                .to_dtype(DType::F32)?,
        };
        self.check_shape(hf_name, t.dims(), shape)?;
        Ok(t)
    }

    /// A linear layer `[out, in]`. `rotary_heads` marks q/k projections of GGUF files,
    /// whose rows are reordered back to the Hugging Face rotary layout.
    pub(crate) fn linear(
        &mut self,
        hf_name: &str,
        out_in: (usize, usize),
        rotary_heads: Option<(usize, usize)>,
    ) -> Result<Linear> {
        let expected = [out_in.0, out_in.1];
        match self {
            Weights::Safetensors { .. } => Linear::from_dense(self.dense(hf_name, &expected)?),
            Weights::Gguf { format, .. } => {
                let format = *format;
                let mut q = self.qtensor(hf_name)?;
                self.check_shape(hf_name, q.shape().dims(), &expected)?;
                if let Some((heads, head_dim)) = rotary_heads {
                    q = permute_qtensor_rows(&q, &unpermute_rows(heads, head_dim))?;
                }
                convert(q, format)
            }
        }
    }
}

/// Applies the in-memory weight format to one GGUF matrix.
pub(crate) fn convert(q: QTensor, format: WeightFormat) -> Result<Linear> {
    let dense_types = [GgmlDType::F32, GgmlDType::F16, GgmlDType::BF16];
    match format {
        WeightFormat::AsStored => Linear::from_qtensor(q),
        WeightFormat::F32 => Linear::from_dense(q.dequantize(&Device::Cpu)?),
        WeightFormat::Mixed => {
            let dense = q.dequantize(&Device::Cpu)?;
            let mut linear = match q.dtype() {
                GgmlDType::Q4_1 => Linear::from_qtensor(q)?,
                _ => convert(q, WeightFormat::Q8_0)?,
            };
            linear.set_dense_copy(Some(dense))?;
            Ok(linear)
        }
        WeightFormat::Q8_0 => {
            let in_dim = q.shape().dims().last().copied().unwrap_or(0);
            if q.dtype() == GgmlDType::Q8_0
                || dense_types.contains(&q.dtype())
                || in_dim % GgmlDType::Q8_0.block_size() != 0
            {
                Linear::from_qtensor(q)
            } else {
                let dense = q.dequantize(&Device::Cpu)?;
                Linear::from_qtensor(QTensor::quantize(&dense, GgmlDType::Q8_0)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_gguf() {
        assert_eq!(
            gguf_name("model.layers.12.self_attn.o_proj.weight"),
            "blk.12.attn_output.weight"
        );
        assert_eq!(
            gguf_name("model.layers.0.mlp.down_proj.weight"),
            "blk.0.ffn_down.weight"
        );
        assert_eq!(
            gguf_name("model.layers.3.post_attention_layernorm.weight"),
            "blk.3.ffn_norm.weight"
        );
        assert_eq!(gguf_name("model.embed_tokens.weight"), "token_embd.weight");
        assert_eq!(gguf_name("lm_head.weight"), "output.weight");
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // llama.cpp's converter: w.reshape(heads, 2, hd/2, ..).swapaxes(1, 2): HF row
        // h*hd + i*hd/2 + j goes to GGUF row h*hd + 2j + i.
        let (heads, hd) = (3, 8);
        let mut gguf = vec![0; heads * hd];
        for h in 0..heads {
            for i in 0..2 {
                for j in 0..hd / 2 {
                    gguf[h * hd + 2 * j + i] = h * hd + i * hd / 2 + j;
                }
            }
        }
        let order = unpermute_rows(heads, hd);
        let back: Vec<usize> = order.iter().map(|&r| gguf[r]).collect();
        assert_eq!(back, (0..heads * hd).collect::<Vec<_>>());
    }
}
