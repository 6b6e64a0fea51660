//! Resolving `--model`: a local folder, or a hub id such as `Qwen/Qwen3-1.7B` through `hf-hub`
//! (its cache honours `HF_HOME`; `HF_HUB_OFFLINE=1` reads the cache only).

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};

use crate::error::{ModelError, Result};

const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";
/// Files beside the weights that the text side (tokenizer, chat template) needs.
pub const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
];

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
        .unwrap_or(false)
}

fn hint(id: &str) -> String {
    format!(
        "download it on a machine with internet (e.g. `huggingface-cli download {id} --local-dir DIR`) \
         and pass `--model DIR`, a folder with config.json, model.safetensors (or \
         model.safetensors.index.json and its shards) and tokenizer.json"
    )
}

/// Returns a folder holding `config.json` and the weights for `model`, which is either a path
/// to such a folder or a Hugging Face model id (`org/name`, optionally `org/name@revision`).
pub fn resolve_model_dir(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        if !path.join("config.json").is_file() {
            return Err(ModelError::Config {
                path: path.join("config.json"),
                message: "not found: a model folder needs config.json beside its weights".into(),
            });
        }
        return Ok(path.to_path_buf());
    }
    let looks_like_id = model.split('/').count() == 2 && !model.starts_with('.') && !path.exists();
    if !looks_like_id {
        return Err(ModelError::Invalid(format!(
            "model `{model}`: no such folder, and not a hub id of the form org/name"
        )));
    }
    let (id, revision) = match model.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (model.to_string(), "main".to_string()),
    };
    let repo = Repo::with_revision(id.clone(), hf_hub::RepoType::Model, revision);
    if offline() {
        from_cache(&id, &repo)
    } else {
        download(&id, repo)
    }
}

fn from_cache(id: &str, repo: &Repo) -> Result<PathBuf> {
    let cache = Cache::from_env().repo(repo.clone());
    let config = cache.get("config.json").ok_or_else(|| {
        ModelError::Hub(format!(
            "model `{id}` is not in the Hugging Face cache ({}) and HF_HUB_OFFLINE is set: {}",
            Cache::from_env().path().display(),
            hint(id)
        ))
    })?;
    let dir = config
        .parent()
        .expect("cached file has a folder")
        .to_path_buf();
    let weights_present = cache.get(SINGLE).is_some() || cache.get(INDEX).is_some();
    if !weights_present {
        return Err(ModelError::Hub(format!(
            "model `{id}`: config.json is cached but its weights are not, and HF_HUB_OFFLINE is set: {}",
            hint(id)
        )));
    }
    Ok(dir)
}

fn download(id: &str, repo: Repo) -> Result<PathBuf> {
    let fail = |what: &str, e: hf_hub::api::sync::ApiError| {
        ModelError::Hub(format!(
            "could not fetch {what} of `{id}` from the Hugging Face hub ({e}). If this machine is \
             offline, {}",
            hint(id)
        ))
    };
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| fail("the API client", e))?;
    let api = api.repo(repo);
    let config = api.get("config.json").map_err(|e| fail("config.json", e))?;
    match api.get(INDEX) {
        Ok(index) => {
            for shard in shard_names(&index)? {
                api.get(&shard).map_err(|e| fail(&shard, e))?;
            }
        }
        Err(_) => {
            api.get(SINGLE).map_err(|e| fail(SINGLE, e))?;
        }
    }
    for side in SIDE_FILES {
        // Optional files: a model may lack some of them.
        let _ = api.get(side);
    }
    Ok(config
        .parent()
        .expect("cached file has a folder")
        .to_path_buf())
}

/// Copies the side files (tokenizer, chat template, generation config) that exist in `from`
/// into `to`, so a derived checkpoint is usable on its own.
pub fn copy_side_files(from: &Path, to: &Path) -> Result<()> {
    for name in SIDE_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).map_err(|e| ModelError::io(&src, e))?;
        }
    }
    Ok(())
}

/// The distinct shard file names listed by a `model.safetensors.index.json`.
pub(crate) fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: index.to_path_buf(),
            source,
        })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Config {
            path: index.to_path_buf(),
            message: "field `weight_map` is missing or not an object".into(),
        })?;
    let mut names: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    // An offline cache miss is tested through the binary (`crates/cli/tests/cli.rs`), whose
    // environment a test can set without `unsafe`.

    #[test]
    fn a_missing_path_is_not_mistaken_for_a_hub_id() {
        let err = resolve_model_dir("./no/such/dir").unwrap_err().to_string();
        assert!(err.contains("no such folder"), "{err}");
    }
}
