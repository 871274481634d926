//! `hf:ORG/NAME[@REV]` models from the Hugging Face hub, downloaded into its usual cache.

use std::path::PathBuf;

use crate::error::{ModelError, Result};

#[cfg(feature = "hub")]
pub fn download(repo: &str, revision: Option<&str>) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};

    let err = |e: hf_hub::api::sync::ApiError| ModelError::Fetch(format!("hf:{repo}: {e}"));
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(err)?;
    let repo_api = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.unwrap_or("main").to_string(),
    ));
    let config = repo_api.get("config.json").map_err(err)?;
    repo_api.get("tokenizer.json").map_err(err)?;
    match repo_api.get("model.safetensors.index.json") {
        Ok(index) => {
            let text =
                std::fs::read_to_string(&index).map_err(|e| ModelError::Fetch(e.to_string()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::Fetch(format!("{}: {e}", index.display())))?;
            let mut shards: Vec<&str> = v["weight_map"]
                .as_object()
                .map(|m| m.values().filter_map(|f| f.as_str()).collect())
                .unwrap_or_default();
            shards.sort_unstable();
            shards.dedup();
            for shard in shards {
                repo_api.get(shard).map_err(err)?;
            }
        }
        Err(_) => {
            repo_api.get("model.safetensors").map_err(err)?;
        }
    }
    config
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| ModelError::Fetch(format!("hf:{repo}: unexpected cache layout")))
}

#[cfg(not(feature = "hub"))]
pub fn download(repo: &str, _revision: Option<&str>) -> Result<PathBuf> {
    Err(ModelError::Fetch(format!(
        "hf:{repo}: this build has no hub support (build with the `hub` feature), \
         or download the model and pass its directory"
    )))
}
