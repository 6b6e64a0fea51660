//! Flags shared by every command that loads a model, and the loading itself.

use std::path::PathBuf;

use anyhow::{Context, Result};
use medtune_model::checkpoint::resolve_model_dir;
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec};

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A model folder in Hugging Face layout, or a hub id such as Qwen/Qwen3-1.7B.
    #[arg(long)]
    pub model: String,
    /// cpu, cuda[:N], rocm[:N], vulkan[:N] or metal.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Compute dtype: f32, bf16 or f16 (weights are converted on load).
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDType,
    /// A LoRA adapter folder in PEFT's format (adapter_config.json + adapter_model.safetensors),
    /// applied on top of the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl ModelArgs {
    pub fn model_dir(&self) -> Result<PathBuf> {
        Ok(resolve_model_dir(&self.model)?)
    }

    pub fn load(&self) -> Result<(LoadedModel, PathBuf)> {
        let dir = self.model_dir()?;
        let device = self.device.device()?;
        let mut model = LoadedModel::from_dir(&dir, self.dtype, &device)
            .with_context(|| format!("loading model from {}", dir.display()))?;
        if let Some(adapter) = &self.adapter {
            model
                .model
                .load_adapter(adapter, &device)
                .with_context(|| format!("loading the adapter in {}", adapter.display()))?;
        }
        Ok((model, dir))
    }
}

/// Parses `1,2,3` into token ids.
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("--ids: `{s}` is not a token id"))
        })
        .collect()
}

/// Checks that every id fits the model's vocabulary.
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    if ids.is_empty() {
        anyhow::bail!("no input tokens");
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        anyhow::bail!("token id {bad} is outside the model's vocabulary of {vocab}");
    }
    Ok(())
}
