//! Writing a loaded model back out as a Hugging Face checkpoint (used by `medtune merge`).

use std::path::Path;

use super::lora::LoraTarget;
use super::model::Qwen3;
use crate::checkpoint::{HostTensor, write_atomically, write_safetensors};
use crate::config::Qwen3Config;
use crate::device::ComputeDType;
use crate::error::{ModelError, Result};

impl Qwen3 {
    /// Every base weight under its Hugging Face name, stored as `dtype`. Adapters must have been
    /// merged first.
    pub fn hf_tensors(&self, dtype: ComputeDType) -> Result<Vec<(String, HostTensor)>> {
        if !self.loras().is_empty() {
            return Err(ModelError::Invalid(
                "merge the LoRA adapters before exporting the base weights".into(),
            ));
        }
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            HostTensor::from_tensor(self.embed_weight(), dtype),
        )];
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            for target in LoraTarget::ALL {
                out.push((
                    format!("{p}.{}.weight", target.path()),
                    HostTensor::from_tensor(self.linear(i, target).weight(), dtype),
                ));
            }
            for (name, norm) in [
                ("input_layernorm", &layer.input_layernorm),
                ("post_attention_layernorm", &layer.post_attention_layernorm),
                ("self_attn.q_norm", &layer.self_attn.q_norm),
                ("self_attn.k_norm", &layer.self_attn.k_norm),
            ] {
                out.push((
                    format!("{p}.{name}.weight"),
                    HostTensor::from_tensor(norm.weight.val(), dtype),
                ));
            }
        }
        out.push((
            "model.norm.weight".into(),
            HostTensor::from_tensor(self.norm.weight.val(), dtype),
        ));
        if let Some(head) = &self.lm_head {
            out.push((
                "lm_head.weight".into(),
                HostTensor::from_tensor(head.weight(), dtype),
            ));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Writes config.json and model.safetensors into `dir`.
    pub fn save_checkpoint(
        &self,
        dir: &Path,
        config: &Qwen3Config,
        dtype: ComputeDType,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let tensors = self.hf_tensors(dtype)?;
        write_safetensors(&dir.join("model.safetensors"), &tensors)?;
        let text = serde_json::to_string_pretty(&config.to_json(dtype)).expect("json");
        write_atomically(&dir.join("config.json"), |tmp| std::fs::write(tmp, text))
    }
}
