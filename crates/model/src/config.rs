//! Hyper-parameters of a Llama-family model, read from GGUF metadata or `config.json`.

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    fn validate(self, path: &Path) -> Result<Self> {
        let bad = |reason: String| ModelError::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        if self.num_heads == 0 || self.num_kv_heads == 0 || self.num_layers == 0 {
            return Err(bad("heads and layers must be non-zero".into()));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(bad(format!(
                "{} attention heads are not a multiple of {} key-value heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head dimension {} must be even",
                self.head_dim
            )));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.intermediate_size == 0 {
            return Err(bad(
                "vocabulary, hidden and feed-forward sizes must be non-zero".into(),
            ));
        }
        Ok(self)
    }

    /// Reads `llama.*` metadata; `tied` says whether the file lacks `output.weight`.
    pub(crate) fn from_gguf(
        content: &gguf_file::Content,
        path: &Path,
        vocab_size: usize,
        tied: bool,
    ) -> Result<Self> {
        let md = &content.metadata;
        let missing = |key: &str| ModelError::BadGguf {
            path: path.to_path_buf(),
            reason: format!("metadata key {key} is missing or has the wrong type"),
        };
        let get_u = |key: &str| -> Result<usize> {
            md.get(key)
                .and_then(|v| {
                    v.to_u32()
                        .ok()
                        .map(|x| x as usize)
                        .or(v.to_u64().ok().map(|x| x as usize))
                })
                .ok_or_else(|| missing(key))
        };
        let get_f = |key: &str| md.get(key).and_then(|v| v.to_f32().ok());
        let hidden_size = get_u("llama.embedding_length")?;
        let num_heads = get_u("llama.attention.head_count")?;
        let num_kv_heads = get_u("llama.attention.head_count_kv").unwrap_or(num_heads);
        let head_dim =
            get_u("llama.rope.dimension_count").unwrap_or(hidden_size / num_heads.max(1));
        LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size: get_u("llama.feed_forward_length")?,
            num_layers: get_u("llama.block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rope_theta: get_f("llama.rope.freq_base").unwrap_or(10_000.0),
            rms_norm_eps: get_f("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
            max_position_embeddings: get_u("llama.context_length").unwrap_or(4096),
            tie_word_embeddings: tied,
        }
        .validate(path)
    }

    /// Reads a Hugging Face `config.json` of a `LlamaForCausalLM`.
    pub fn from_hf_json(json: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| ModelError::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let raw: HfConfig =
            serde_json::from_str(json).map_err(|e| bad(format!("invalid config.json: {e}")))?;
        let is_llama = raw.model_type.as_deref() == Some("llama")
            || raw.architectures.iter().any(|a| a == "LlamaForCausalLM");
        if !is_llama {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                found: raw
                    .model_type
                    .or(raw.architectures.first().cloned())
                    .unwrap_or_else(|| "unknown".into()),
            });
        }
        if let Some(scaling) = raw.rope_scaling.filter(|v| !v.is_null()) {
            return Err(bad(format!("rope_scaling {scaling} is not supported")));
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        LlamaConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1)),
            rope_theta: raw.rope_theta.unwrap_or(10_000.0),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        }
        .validate(path)
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f32>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    rope_scaling: Option<serde_json::Value>,
}
