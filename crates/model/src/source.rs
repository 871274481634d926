//! Where a model comes from: a GGUF file, a Hugging Face directory, or the hub.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::adapter::Adapter;
use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::llama::Llama;
use crate::tokenizer::Tokenizer;
use crate::weights::{WeightFormat, Weights};

/// A model reference as users write it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A `.gguf` file.
    Gguf(PathBuf),
    /// A directory with `config.json`, `tokenizer.json` and `*.safetensors`.
    HfDir(PathBuf),
    /// `hf:ORG/NAME[@REV]`: fetched from the Hugging Face hub (needs the `hub` feature).
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl FromStr for ModelSource {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("hf:") {
            let (repo, revision) = match rest.split_once('@') {
                Some((r, v)) => (r, Some(v.to_string())),
                None => (rest, None),
            };
            if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
                return Err(ModelError::Fetch(format!(
                    "{s:?}: expected hf:ORG/NAME[@REVISION]"
                )));
            }
            return Ok(ModelSource::Hub {
                repo: repo.to_string(),
                revision,
            });
        }
        let path = PathBuf::from(s);
        if path.is_dir() {
            Ok(ModelSource::HfDir(path))
        } else {
            Ok(ModelSource::Gguf(path))
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Gguf(p) | ModelSource::HfDir(p) => write!(f, "{}", p.display()),
            ModelSource::Hub {
                repo,
                revision: Some(r),
            } => write!(f, "hf:{repo}@{r}"),
            ModelSource::Hub {
                repo,
                revision: None,
            } => write!(f, "hf:{repo}"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub weight_format: WeightFormat,
}

/// A loaded model: the network and its tokenizer.
#[derive(Clone)]
pub struct Model {
    pub llama: Llama,
    pub tokenizer: Tokenizer,
    pub source: String,
}

impl Model {
    pub fn load(source: &ModelSource, opts: LoadOptions) -> Result<Model> {
        match source {
            ModelSource::Gguf(path) => Model::load_gguf(path, opts),
            ModelSource::HfDir(dir) => Model::load_hf_dir(dir),
            ModelSource::Hub { repo, revision } => {
                let dir = crate::hub::download(repo, revision.as_deref())?;
                Model::load_hf_dir(&dir)
            }
        }
    }

    pub fn load_gguf(path: &Path, opts: LoadOptions) -> Result<Model> {
        let mut weights = Weights::open_gguf(path, opts.weight_format)?;
        let content = weights.gguf().ok_or_else(|| ModelError::BadGguf {
            path: path.to_path_buf(),
            reason: "not GGUF".into(),
        })?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                found: arch,
            });
        }
        let tokenizer = Tokenizer::from_gguf(content, path)?;
        let tied = !content.tensor_infos.contains_key("output.weight");
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.shape.dims().first().copied())
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.to_path_buf(),
                name: "token_embd.weight".into(),
            })?;
        let config = LlamaConfig::from_gguf(content, path, vocab, tied)?;
        let llama = Llama::load(&mut weights, config)?;
        tracing::debug!(path = %path.display(), "Loaded GGUF model.");
        Ok(Model {
            llama,
            tokenizer,
            source: path.display().to_string(),
        })
    }

    pub fn load_hf_dir(dir: &Path) -> Result<Model> {
        let config_path = dir.join("config.json");
        let json = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let mut config = LlamaConfig::from_hf_json(&json, &config_path)?;
        let files = safetensors_files(dir)?;
        let mut weights = Weights::open_safetensors(dir, &files)?;
        // Some checkpoints leave `tie_word_embeddings` out yet have no `lm_head`.
        if !config.tie_word_embeddings && !weights.has("lm_head.weight") {
            config.tie_word_embeddings = true;
        }
        let eos = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| match &v["eos_token_id"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::Array(a) => a.first().and_then(|n| n.as_u64()),
                _ => None,
            })
            .map(|n| n as u32);
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"), eos)?;
        let llama = Llama::load(&mut weights, config)?;
        Ok(Model {
            llama,
            tokenizer,
            source: dir.display().to_string(),
        })
    }

    /// Loads a PEFT adapter directory onto this model (see [`Adapter::apply`]).
    pub fn apply_adapter(&mut self, dir: &Path, merge: bool) -> Result<Adapter> {
        let adapter = Adapter::load(dir)?;
        self.attach(&adapter, merge)?;
        Ok(adapter)
    }

    /// Applies an already loaded adapter (see [`Adapter::apply`]).
    pub fn attach(&mut self, adapter: &Adapter, merge: bool) -> Result<()> {
        adapter.apply(&mut self.llama, merge)
    }
}

/// The weight files of a directory: those named by `model.safetensors.index.json` when
/// sharded, else every `*.safetensors`.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
                path: index.clone(),
                reason: e.to_string(),
            })?;
        let mut names: Vec<String> = v["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(ModelError::BadConfig {
            path: dir.to_path_buf(),
            reason: "no *.safetensors weights in this directory".into(),
        });
    }
    Ok(files)
}
