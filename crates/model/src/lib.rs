//! The OpenSOC inference engine: one Llama implementation on candle, loaded from GGUF
//! (weights stay quantized) or Hugging Face safetensors, with LoRA adapters in the PEFT
//! layout wrapped around its linear layers.
//!
//! ```no_run
//! use opensoc_model::{GenerateOptions, LoadOptions, Model, ModelSource};
//! # fn main() -> Result<(), opensoc_model::ModelError> {
//! let source: ModelSource = "SmolLM2-135M-Instruct.Q4_1.gguf".parse()?;
//! let model = Model::load(&source, LoadOptions::default())?;
//! let prompt = model.tokenizer.encode_prompt("### Instruction:\nSay hi.\n\n### Response:\n")?;
//! let out = model.generate(&prompt, &GenerateOptions::default(), None)?;
//! println!("{}", out.text);
//! # Ok(()) }
//! ```

pub mod adapter;
pub mod bench;
pub mod config;
mod error;
pub mod fetch;
mod generate;
mod hub;
pub mod layers;
pub mod llama;
mod source;
pub mod tokenizer;
mod weights;

pub use adapter::{Adapter, AdapterConfig};
pub use config::LlamaConfig;
pub use error::{ModelError, Result};
pub use generate::{Finish, GenerateOptions, Generation, PrefixCache};
pub use layers::Kernels;
pub use llama::{BatchItem, KvCache, Llama};
pub use source::{LoadOptions, Model, ModelSource};
pub use tokenizer::Tokenizer;
pub use weights::WeightFormat;
