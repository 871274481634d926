//! LoRA adapters in the Hugging Face PEFT layout: `adapter_config.json` plus
//! `adapter_model.safetensors` with keys such as
//! `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, ModelError, Result};
use crate::layers::Lora;
use crate::llama::{Llama, PROJECTIONS};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Name of the built-in adapter (its directory under `models/` in the repository).
pub const BUILTIN_ADAPTER_NAME: &str = "opensoc-smollm2-lora";
const BUILTIN_CONFIG: &str =
    include_str!("../../../models/opensoc-smollm2-lora/adapter_config.json");
const BUILTIN_WEIGHTS: &[u8] =
    include_bytes!("../../../models/opensoc-smollm2-lora/adapter_model.safetensors");

/// The fields of PEFT's `LoraConfig` that OpenSOC reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    #[serde(rename = "r")]
    pub rank: usize,
    #[serde(rename = "lora_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: TargetModules,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "default_task")]
    pub task_type: Option<String>,
    #[serde(default = "default_bias")]
    pub bias: String,
    #[serde(default = "default_peft_type")]
    pub peft_type: Option<String>,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

fn default_task() -> Option<String> {
    Some("CAUSAL_LM".into())
}
fn default_bias() -> String {
    "none".into()
}
fn default_peft_type() -> Option<String> {
    Some("LORA".into())
}

/// PEFT writes `target_modules` as a list, or as a regex string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

impl AdapterConfig {
    /// Multiplier of `B A`: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }
}

/// A loaded adapter: per `(layer, module)` the `A` (`[r, in]`) and `B` (`[out, r]`) matrices.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub config: AdapterConfig,
    pub path: PathBuf,
    pub weights: BTreeMap<(usize, String), (Tensor, Tensor)>,
}

/// `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight` -> (3, q_proj, A).
fn parse_key(key: &str) -> Option<(usize, &str, char)> {
    let rest = key.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer = layer.parse().ok()?;
    let rest = rest
        .strip_prefix("self_attn.")
        .or_else(|| rest.strip_prefix("mlp."))?;
    let (module, rest) = rest.split_once('.')?;
    // PEFT drops the adapter name when saving; older files may keep `.default`.
    let which = match rest {
        "lora_A.weight" | "lora_A.default.weight" => 'A',
        "lora_B.weight" | "lora_B.default.weight" => 'B',
        _ => return None,
    };
    Some((layer, module, which))
}

/// PEFT's key for a LoRA matrix (`which` is `'A'` or `'B'`).
pub fn peft_key(layer: usize, module: &str, which: char) -> String {
    let group = if matches!(module, "gate_proj" | "up_proj" | "down_proj") {
        "mlp"
    } else {
        "self_attn"
    };
    format!("base_model.model.model.layers.{layer}.{group}.{module}.lora_{which}.weight")
}

impl Adapter {
    /// Reads an adapter directory. Shapes are checked against a model in [`Adapter::apply`].
    pub fn load(dir: &Path) -> Result<Adapter> {
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        let config = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
        let weights = std::fs::read(&weights_path).map_err(io_err(&weights_path))?;
        Adapter::from_bytes(&config, &weights, dir)
    }

    /// The adapter shipped with OpenSOC for the default base model (SmolLM2-135M-Instruct),
    /// compiled into the binary; `models/opensoc-smollm2-lora/README.md` is its model card.
    pub fn builtin() -> Result<Adapter> {
        Adapter::from_bytes(
            BUILTIN_CONFIG,
            BUILTIN_WEIGHTS,
            Path::new(BUILTIN_ADAPTER_NAME),
        )
    }

    /// An adapter from the contents of its two files; `dir` names it in errors.
    pub fn from_bytes(config: &str, weights: &[u8], dir: &Path) -> Result<Adapter> {
        let bad = |reason: String| ModelError::Adapter {
            path: dir.to_path_buf(),
            reason,
        };
        let config: AdapterConfig =
            serde_json::from_str(config).map_err(|e| bad(format!("{ADAPTER_CONFIG_FILE}: {e}")))?;
        if config.peft_type.as_deref().is_some_and(|t| t != "LORA") {
            return Err(bad(format!("peft_type {:?} is not LORA", config.peft_type)));
        }
        if config.use_dora || config.fan_in_fan_out || config.bias != "none" {
            return Err(bad(
                "DoRA, fan_in_fan_out and LoRA biases are not supported".into(),
            ));
        }
        if !config.rank_pattern.is_empty() || !config.alpha_pattern.is_empty() {
            return Err(bad(
                "per-module rank_pattern / alpha_pattern are not supported".into(),
            ));
        }
        if config
            .modules_to_save
            .as_ref()
            .is_some_and(|m| !m.is_empty())
        {
            return Err(bad(
                "modules_to_save (fully trained extra modules) is not supported".into(),
            ));
        }
        if config.rank == 0 {
            return Err(bad("r must be at least 1".into()));
        }
        if let TargetModules::List(list) = &config.target_modules {
            if let Some(unknown) = list.iter().find(|m| !PROJECTIONS.contains(&m.as_str())) {
                return Err(bad(format!(
                    "target module {unknown:?} is not a Llama projection ({})",
                    PROJECTIONS.join(", ")
                )));
            }
        }

        let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
            .map_err(|e| bad(format!("{ADAPTER_WEIGHTS_FILE}: {e}")))?;
        let mut halves: BTreeMap<(usize, String), (Option<Tensor>, Option<Tensor>)> =
            BTreeMap::new();
        for (key, tensor) in tensors {
            let (layer, module, which) =
                parse_key(&key).ok_or_else(|| bad(format!("unexpected tensor {key:?}")))?;
            if !PROJECTIONS.contains(&module) {
                return Err(bad(format!(
                    "tensor {key:?} targets unknown module {module:?}"
                )));
            }
            let tensor = tensor.to_dtype(DType::F32)?;
            let slot = halves.entry((layer, module.to_string())).or_default();
            if which == 'A' {
                slot.0 = Some(tensor);
            } else {
                slot.1 = Some(tensor);
            }
        }
        let mut weights = BTreeMap::new();
        for ((layer, module), pair) in halves {
            match pair {
                (Some(a), Some(b)) => {
                    weights.insert((layer, module), (a, b));
                }
                _ => {
                    return Err(bad(format!(
                        "layer {layer} {module}: lora_A and lora_B must both be present"
                    )))
                }
            }
        }
        if weights.is_empty() {
            return Err(bad("no LoRA tensors".into()));
        }
        Ok(Adapter {
            config,
            path: dir.to_path_buf(),
            weights,
        })
    }

    /// Attaches the adapter to `model`'s projections, unmerged (works on quantized
    /// weights) or merged into them. Everything is checked before anything changes.
    pub fn apply(&self, model: &mut Llama, merge: bool) -> Result<()> {
        let bad = |reason: String| ModelError::Adapter {
            path: self.path.clone(),
            reason,
        };
        let layers = model.config().num_layers;
        let r = self.config.rank;
        let mut plan = Vec::new();
        for (layer, module, linear) in model.projections_mut() {
            if let Some((a, b)) = self.weights.get(&(layer, module.to_string())) {
                let (out_dim, in_dim) = linear.dims();
                if a.dims() != [r, in_dim] || b.dims() != [out_dim, r] {
                    return Err(bad(format!(
                        "layer {layer} {module}: lora_A {:?} / lora_B {:?} do not fit a [{out_dim}, {in_dim}] weight with r={r}",
                        a.dims(),
                        b.dims()
                    )));
                }
                plan.push((layer, module, a.clone(), b.clone()));
            }
        }
        if let Some(((layer, module), _)) = self.weights.iter().find(|((l, _), _)| *l >= layers) {
            return Err(bad(format!(
                "layer {layer} {module}: the model has only {layers} layers"
            )));
        }
        let scale = self.config.scale();
        let mut plan = plan.into_iter().peekable();
        for (layer, module, linear) in model.projections_mut() {
            if plan
                .peek()
                .is_some_and(|(l, m, _, _)| *l == layer && *m == module)
            {
                if let Some((_, _, a, b)) = plan.next() {
                    linear.set_lora(Some(Lora { a, b, scale }));
                    if merge {
                        linear.merge_lora()?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes an adapter in PEFT's layout (f32 or f16 tensors).
pub fn save_adapter(
    dir: &Path,
    config: &AdapterConfig,
    weights: &BTreeMap<(usize, String), (Tensor, Tensor)>,
    dtype: DType,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tensors = std::collections::HashMap::new();
    for ((layer, module), (a, b)) in weights {
        tensors.insert(peft_key(*layer, module, 'A'), a.to_dtype(dtype)?);
        tensors.insert(peft_key(*layer, module, 'B'), b.to_dtype(dtype)?);
    }
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights_path)?;
    let json = serde_json::to_string_pretty(config).map_err(|e| ModelError::Adapter {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    std::fs::write(&config_path, json).map_err(io_err(&config_path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_keys_round_trip() {
        for module in PROJECTIONS {
            for which in ['A', 'B'] {
                let key = peft_key(7, module, which);
                assert_eq!(parse_key(&key), Some((7, module, which)));
            }
        }
        assert_eq!(
            peft_key(0, "q_proj", 'A'),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(parse_key("base_model.model.lm_head.lora_A.weight"), None);
    }

    #[test]
    fn rslora_scale() {
        let mut c: AdapterConfig =
            serde_json::from_str(r#"{"r": 16, "lora_alpha": 32, "target_modules": ["q_proj"]}"#)
                .unwrap();
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0);
    }
}
