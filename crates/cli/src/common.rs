//! Flags shared by every command that loads a model, and the loading itself.

use std::path::PathBuf;

use anyhow::{Context, Result};
use medtune_model::checkpoint::resolve_model_dir;
use medtune_model::qwen3::{LoadedModel, WeightPacking};
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
        self.load_packed(WeightPacking::Off)
    }

    fn load_packed(&self, packing: WeightPacking) -> Result<(LoadedModel, PathBuf)> {
        let dir = self.model_dir()?;
        let device = self.device.device()?;
        let mut model = LoadedModel::from_dir_packed(&dir, self.dtype, &device, packing)
            .with_context(|| format!("loading model from {}", dir.display()))?;
        if model.is_packed() {
            tracing::info!(
                "weights packed for decoding: {:.1} MiB",
                model.weight_bytes() as f64 / (1 << 20) as f64
            );
        }
        if let Some(adapter) = &self.adapter {
            model
                .model
                .load_adapter(adapter, &device)
                .with_context(|| format!("loading the adapter in {}", adapter.display()))?;
        }
        Ok((model, dir))
    }
}

/// How a model loaded to generate holds its weights (generate, ask, serve, bench forward).
#[derive(clap::Args, Debug, Clone)]
pub struct PackingArgs {
    /// Hold bf16 weights packed losslessly in 12 bits per value for CPU decoding: the same
    /// values in a quarter less memory, and a quarter fewer bytes read per token. `auto` packs
    /// with --device cpu --dtype bf16 where the CPU has AVX-512 BF16; `on` wherever the model
    /// is bf16 on the CPU; `off` never.
    #[arg(long, default_value = "auto")]
    pub packed_weights: WeightPacking,
}

impl PackingArgs {
    /// Refuses `on` where it cannot apply.
    pub fn check(&self, dtype: ComputeDType, device: &DeviceSpec) -> Result<()> {
        if self.packed_weights == WeightPacking::On
            && (dtype != ComputeDType::Bf16 || *device != DeviceSpec::Cpu)
        {
            anyhow::bail!(
                "--packed-weights on needs a bf16 model on the CPU (--device cpu --dtype bf16)"
            );
        }
        Ok(())
    }
}

impl ModelArgs {
    /// [`ModelArgs::load`] with the weights packed as `packing` asks, each as it is loaded.
    pub fn load_for_generation(&self, packing: &PackingArgs) -> Result<(LoadedModel, PathBuf)> {
        packing.check(self.dtype, &self.device)?;
        self.load_packed(packing.packed_weights)
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
