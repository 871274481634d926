//! Trainable LoRA parameters attached to a model, saved in PEFT's layout.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use opensoc_model::adapter::{save_adapter, TargetModules};
use opensoc_model::layers::Lora;
use opensoc_model::{Adapter, AdapterConfig, Llama};

use crate::data::SplitMix;
use crate::error::{Result, TrainError};

/// The LoRA matrices being trained, in a fixed order: per `(layer, module)` `A` then `B`.
pub struct LoraParams {
    pub config: AdapterConfig,
    pub keys: Vec<(usize, String)>,
    /// `vars[2 i]` is `A` and `vars[2 i + 1]` is `B` of `keys[i]`.
    pub vars: Vec<Var>,
}

impl LoraParams {
    /// Creates PEFT-initialised matrices (`A` uniform in ±1/sqrt(in), `B` zero) on the
    /// targeted projections and attaches them to `model`.
    pub fn attach(model: &mut Llama, config: AdapterConfig, seed: u64) -> Result<Self> {
        let targets = match &config.target_modules {
            TargetModules::List(l) => l.clone(),
            TargetModules::Pattern(p) => {
                return Err(TrainError::Config(format!(
                    "target module pattern {p:?}: give a list of module names"
                )))
            }
        };
        let r = config.rank;
        let scale = config.scale();
        let mut rng = SplitMix(seed);
        let dev = model.device().clone();
        let mut keys = Vec::new();
        let mut vars = Vec::new();
        for (layer, module, linear) in model.projections_mut() {
            if !targets.iter().any(|t| t == module) {
                continue;
            }
            let (out_dim, in_dim) = linear.dims();
            let bound = 1.0 / (in_dim as f32).sqrt();
            let a: Vec<f32> = (0..r * in_dim).map(|_| rng.symmetric() * bound).collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (r, in_dim), &dev)?)?;
            let b = Var::zeros((out_dim, r), DType::F32, &dev)?;
            linear.set_lora(Some(Lora {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale,
            }));
            keys.push((layer, module.to_string()));
            vars.push(a);
            vars.push(b);
        }
        if keys.is_empty() {
            return Err(TrainError::Config(format!(
                "no projection matches the target modules {targets:?}"
            )));
        }
        Ok(LoraParams { config, keys, vars })
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// The matrices as PEFT names them, for [`save_adapter`].
    pub fn weights(&self) -> BTreeMap<(usize, String), (Tensor, Tensor)> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.clone(),
                    (
                        self.vars[2 * i].as_tensor().clone(),
                        self.vars[2 * i + 1].as_tensor().clone(),
                    ),
                )
            })
            .collect()
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors`.
    pub fn save(&self, dir: &Path, dtype: DType) -> Result<()> {
        Ok(save_adapter(dir, &self.config, &self.weights(), dtype)?)
    }

    /// Overwrites the values (in place: the model sees them) from tensors in `vars` order.
    pub fn set(&self, values: &[Tensor]) -> Result<()> {
        if values.len() != self.vars.len() {
            return Err(TrainError::Config(format!(
                "expected {} LoRA tensors, got {}",
                self.vars.len(),
                values.len()
            )));
        }
        for (v, t) in self.vars.iter().zip(values) {
            v.set(&t.to_device(v.device())?)?;
        }
        Ok(())
    }

    /// Takes the values of a saved adapter of the same shape (see
    /// [`TrainConfig::init_adapter`](crate::TrainConfig::init_adapter)).
    pub fn init_from(&self, adapter: &Adapter) -> Result<()> {
        if (adapter.config.rank, adapter.config.scale()) != (self.config.rank, self.config.scale())
        {
            return Err(TrainError::Config(format!(
                "initial adapter {}: r={} and scale {} differ from this run's r={} and scale {}",
                adapter.path.display(),
                adapter.config.rank,
                adapter.config.scale(),
                self.config.rank,
                self.config.scale()
            )));
        }
        let mut values = Vec::with_capacity(self.vars.len());
        for (i, key) in self.keys.iter().enumerate() {
            let (a, b) = adapter.weights.get(key).ok_or_else(|| {
                TrainError::Config(format!(
                    "initial adapter {} has no {}",
                    adapter.path.display(),
                    self.var_name(2 * i)
                ))
            })?;
            values.push(a.clone());
            values.push(b.clone());
        }
        if adapter.weights.len() != self.keys.len() {
            return Err(TrainError::Config(format!(
                "initial adapter {} targets other modules than this run",
                adapter.path.display()
            )));
        }
        for (i, (v, t)) in self.vars.iter().zip(&values).enumerate() {
            if v.dims() != t.dims() {
                return Err(TrainError::Config(format!(
                    "initial adapter {}: {} is {:?}, expected {:?}",
                    adapter.path.display(),
                    self.var_name(i),
                    t.dims(),
                    v.dims()
                )));
            }
        }
        self.set(&values)
    }

    /// Name of `vars[i]` (PEFT key), for checkpoints and error messages.
    pub fn var_name(&self, i: usize) -> String {
        let (layer, module) = &self.keys[i / 2];
        opensoc_model::adapter::peft_key(*layer, module, ['A', 'B'][i % 2])
    }
}
