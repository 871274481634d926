//! LoRA fine-tuning of the OpenSOC Llama on labelled security logs, on the CPU (or, with the
//! `cuda` feature, a GPU: [`opensoc_model::Llama::to_device`]).
//!
//! Base weights stay frozen (GGUF dequantized to f32, or safetensors); only the LoRA
//! matrices get gradients and AdamW state. Each sequence is its own micro-batch, so no
//! padding is ever computed, and the loss is on the response tokens by default. Long log
//! text is shortened in the middle with a visible marker; a response is never truncated.
//! The result is a Hugging Face PEFT adapter directory that `opensoc analyze --adapter`
//! and PEFT both load.
//!
//! ```no_run
//! use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};
//! use opensoc_train::{data, prepare, TrainConfig, Trainer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = fetch::ensure_default_model()?;
//! let opts = LoadOptions { weight_format: WeightFormat::F32 };
//! let model = Model::load(&ModelSource::Gguf(path), opts)?;
//! let file = std::path::Path::new("soc_train.json");
//! let (records, skipped) = data::load_records(file)?;
//! let config = TrainConfig::default();
//! let prepared = prepare(&model, &records, skipped, file, &config)?;
//! let mut trainer = Trainer::new(model, config, std::path::Path::new("out"))?;
//! let summary = trainer.run(&prepared, false, |event| println!("{event:?}"))?;
//! println!("best validation loss {:?}", summary.best_val_loss);
//! # Ok(()) }
//! ```

pub mod data;
mod error;
pub mod lora;
pub mod optim;
mod trainer;

pub use error::{Result, TrainError};
pub use lora::LoraParams;
pub use trainer::{
    block_activation_bytes, install_ctrlc_handler, prepare, recomputed_blocks, sequence_grads,
    sequence_loss, validation_loss, Event, Prepared, Summary, TrainConfig, Trainer, BEST_DIR,
    CHECKPOINT_DIR, DEFAULT_ACTIVATION_MEMORY_MB, LAST_DIR, LOG_FILE, STOP,
};
