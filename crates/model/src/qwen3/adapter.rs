//! LoRA adapters in PEFT's on-disk format: `adapter_model.safetensors` (f32, names
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{x}_proj.lora_{A|B}.weight`) and
//! `adapter_config.json`. Every tensor in a file must land on a module: a name PEFT would
//! silently ignore is an error here, since such an adapter "loads" and does nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device};
use serde_json::{Value, json};

use super::layers::Linear;
use super::lora::{Lora, LoraConfig, LoraTarget, lora_rng, scale};
use super::model::Qwen3;
use crate::checkpoint::{
    HostTensor, WeightFiles, WeightSource, write_atomically, write_safetensors,
};
use crate::device::ComputeDType;
use crate::error::{ModelError, Result};

pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// PEFT's tensor name for one LoRA factor.
pub fn peft_name(layer: usize, target: LoraTarget, factor: char) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{factor}.weight",
        target.path()
    )
}

/// Parses a PEFT tensor name into (layer, target, 'A' | 'B').
fn parse_peft_name(name: &str) -> Option<(usize, LoraTarget, char)> {
    let rest = name.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer = layer.parse().ok()?;
    let rest = rest.strip_suffix(".weight")?;
    let (path, factor) = rest.rsplit_once(".lora_")?;
    let factor = match factor {
        "A" => 'A',
        "B" => 'B',
        _ => return None,
    };
    let target = LoraTarget::ALL.into_iter().find(|t| t.path() == path)?;
    Some((layer, target, factor))
}

impl Qwen3 {
    pub fn linear(&self, layer: usize, target: LoraTarget) -> &Linear {
        let l = &self.layers[layer];
        match target {
            LoraTarget::Q => &l.self_attn.q_proj,
            LoraTarget::K => &l.self_attn.k_proj,
            LoraTarget::V => &l.self_attn.v_proj,
            LoraTarget::O => &l.self_attn.o_proj,
            LoraTarget::Gate => &l.mlp.gate_proj,
            LoraTarget::Up => &l.mlp.up_proj,
            LoraTarget::Down => &l.mlp.down_proj,
        }
    }

    pub fn linear_mut(&mut self, layer: usize, target: LoraTarget) -> &mut Linear {
        let l = &mut self.layers[layer];
        match target {
            LoraTarget::Q => &mut l.self_attn.q_proj,
            LoraTarget::K => &mut l.self_attn.k_proj,
            LoraTarget::V => &mut l.self_attn.v_proj,
            LoraTarget::O => &mut l.self_attn.o_proj,
            LoraTarget::Gate => &mut l.mlp.gate_proj,
            LoraTarget::Up => &mut l.mlp.up_proj,
            LoraTarget::Down => &mut l.mlp.down_proj,
        }
    }

    /// Adds fresh adapters (A random, B zero) to every targeted linear of every layer.
    pub fn attach_lora(&mut self, cfg: &LoraConfig, seed: u64, device: &Device) {
        let mut rng = lora_rng(seed);
        for layer in 0..self.layers.len() {
            for &target in &cfg.targets {
                let linear = self.linear_mut(layer, target);
                let (inp, out) = (linear.in_features(), linear.out_features());
                linear.lora = Some(Lora::init(
                    cfg.rank,
                    inp,
                    out,
                    cfg.scale(),
                    cfg.dropout,
                    &mut rng,
                    device,
                ));
            }
        }
    }

    /// Every adapter as (layer, target, lora).
    pub fn loras(&self) -> Vec<(usize, LoraTarget, &Lora)> {
        let mut out = Vec::new();
        for layer in 0..self.layers.len() {
            for target in LoraTarget::ALL {
                if let Some(l) = &self.linear(layer, target).lora {
                    out.push((layer, target, l));
                }
            }
        }
        out
    }

    /// Number of trainable (LoRA) parameters.
    pub fn num_lora_params(&self) -> usize {
        self.loras()
            .iter()
            .map(|(_, _, l)| l.a.shape().num_elements() + l.b.shape().num_elements())
            .sum()
    }

    /// The adapters as host f32 tensors under PEFT's names, sorted by name.
    pub fn lora_tensors(&self) -> Vec<(String, HostTensor)> {
        let mut out = Vec::new();
        for (layer, target, lora) in self.loras() {
            for (factor, t) in [('A', lora.a.val()), ('B', lora.b.val())] {
                out.push((
                    peft_name(layer, target, factor),
                    HostTensor::from_tensor(t, ComputeDType::F32),
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`, each file written
    /// to a temporary name and renamed, so a reader never sees a half-written adapter. Refuses
    /// to write an adapter holding NaN or infinity.
    pub fn save_adapter(&self, dir: &Path, cfg: &LoraConfig, base_model: &str) -> Result<()> {
        let tensors = self.lora_tensors();
        if tensors.is_empty() {
            return Err(ModelError::Invalid(
                "the model has no LoRA adapter to save".into(),
            ));
        }
        for (name, t) in &tensors {
            let bad = t
                .data
                .chunks_exact(4)
                .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
            if bad {
                return Err(ModelError::Invalid(format!(
                    "refusing to save an adapter with NaN/Inf values (in `{name}`)"
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let config = adapter_config_json(cfg, base_model);
        let text = serde_json::to_string_pretty(&config).expect("json");
        write_atomically(&dir.join(ADAPTER_CONFIG), |tmp| std::fs::write(tmp, text))?;
        write_safetensors(&dir.join(ADAPTER_WEIGHTS), &tensors)
    }

    /// Loads a PEFT adapter folder onto this model (replacing any adapter it had). Tensors stay
    /// f32; `dropout` is taken from the config (it only acts during training).
    pub fn load_adapter(&mut self, dir: &Path, device: &Device) -> Result<AdapterInfo> {
        let info = AdapterInfo::read(dir)?;
        let weights_path = dir.join(ADAPTER_WEIGHTS);
        if !weights_path.is_file() {
            return Err(ModelError::Config {
                path: weights_path,
                message:
                    "not found (PEFT adapters are adapter_model.safetensors; .bin is not read)"
                        .into(),
            });
        }
        let files = WeightFiles::open_files(dir, std::slice::from_ref(&weights_path))?;
        let mut pairs: BTreeMap<(usize, LoraTarget), [Option<String>; 2]> = BTreeMap::new();
        for name in files.names() {
            let Some((layer, target, factor)) = parse_peft_name(name) else {
                return Err(ModelError::Config {
                    path: weights_path.clone(),
                    message: format!(
                        "tensor `{name}` does not name a LoRA factor of a Qwen3 linear layer \
                         (expected base_model.model.model.layers.N.self_attn|mlp.X_proj.lora_A|B.weight); \
                         PEFT would ignore it silently and the adapter would do nothing"
                    ),
                });
            };
            if layer >= self.layers.len() {
                return Err(ModelError::Config {
                    path: weights_path.clone(),
                    message: format!(
                        "tensor `{name}` is for layer {layer}, but the model has {} layers",
                        self.layers.len()
                    ),
                });
            }
            pairs.entry((layer, target)).or_default()[usize::from(factor == 'B')] =
                Some(name.to_string());
        }
        for ((layer, target), [a, b]) in pairs {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(ModelError::Config {
                    path: weights_path.clone(),
                    message: format!(
                        "layer {layer} {target}: lora_A and lora_B must both be present"
                    ),
                });
            };
            let module = format!("model.layers.{layer}.{}", target.path());
            let (rank, alpha) = info.rank_alpha(&module);
            let linear = self.linear_mut(layer, target);
            let (inp, out) = (linear.in_features(), linear.out_features());
            let a = files.load::<2>(&a, [rank, inp], ComputeDType::F32, device)?;
            let b = files.load::<2>(&b, [out, rank], ComputeDType::F32, device)?;
            linear.lora = Some(Lora::from_tensors(
                a,
                b,
                scale(alpha, rank, info.use_rslora),
                info.dropout,
            ));
        }
        Ok(info)
    }

    /// Folds every adapter into its base weight (`W + s·B·A`, in f32, stored back in the base
    /// dtype) and removes the adapters.
    pub fn merge_lora(&mut self) {
        for layer in 0..self.layers.len() {
            for target in LoraTarget::ALL {
                let linear = self.linear_mut(layer, target);
                if let Some(lora) = linear.lora.take() {
                    let w = linear.weight();
                    let dtype: DType = w.dtype();
                    let merged =
                        crate::tensor::cast_to(crate::tensor::to_f32(w) + lora.dense(), dtype);
                    *linear = Linear::new(merged);
                }
            }
        }
    }
}

/// What an adapter_config.json says.
#[derive(Clone, Debug)]
pub struct AdapterInfo {
    pub path: PathBuf,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub use_rslora: bool,
    pub base_model: Option<String>,
    rank_pattern: HashMap<String, usize>,
    alpha_pattern: HashMap<String, f64>,
}

impl AdapterInfo {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        let err = |message: String| ModelError::Config {
            path: path.clone(),
            message,
        };
        let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(err(format!(
                "peft_type is `{peft_type}`; only LORA adapters are supported"
            )));
        }
        for unsupported in ["use_dora"] {
            if v.get(unsupported).and_then(Value::as_bool) == Some(true) {
                return Err(err(format!("`{unsupported}: true` is not supported")));
            }
        }
        if let Some(bias) = v
            .get("bias")
            .and_then(Value::as_str)
            .filter(|b| *b != "none")
        {
            return Err(err(format!(
                "bias `{bias}` is not supported (only \"none\")"
            )));
        }
        let rank = v
            .get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| err("field `r` is missing or not an integer".into()))?
            as usize;
        let alpha = v
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| err("field `lora_alpha` is missing or not a number".into()))?;
        let map = |key: &str| -> Vec<(String, Value)> {
            v.get(key)
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let rank_pattern = map("rank_pattern")
            .into_iter()
            .map(|(k, v)| {
                v.as_u64()
                    .map(|r| (k.clone(), r as usize))
                    .ok_or_else(|| err(format!("rank_pattern[`{k}`] is not an integer")))
            })
            .collect::<Result<_>>()?;
        let alpha_pattern = map("alpha_pattern")
            .into_iter()
            .map(|(k, v)| {
                v.as_f64()
                    .map(|a| (k.clone(), a))
                    .ok_or_else(|| err(format!("alpha_pattern[`{k}`] is not a number")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            rank,
            alpha,
            dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
            use_rslora: v
                .get("use_rslora")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            base_model: v
                .get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
            rank_pattern,
            alpha_pattern,
            path,
        })
    }

    /// Rank and alpha for a module path such as `model.layers.3.self_attn.q_proj`, honouring
    /// PEFT's `rank_pattern`/`alpha_pattern` (a key matches when it equals the path or a
    /// dot-separated suffix of it).
    pub fn rank_alpha(&self, module: &str) -> (usize, f64) {
        let matches = |key: &str| module == key || module.ends_with(&format!(".{key}"));
        let rank = self
            .rank_pattern
            .iter()
            .find(|(k, _)| matches(k))
            .map_or(self.rank, |(_, r)| *r);
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(k, _)| matches(k))
            .map_or(self.alpha, |(_, a)| *a);
        (rank, alpha)
    }
}

/// adapter_config.json with the keys PEFT writes.
pub fn adapter_config_json(cfg: &LoraConfig, base_model: &str) -> Value {
    let targets: Vec<&str> = cfg.targets.iter().map(|t| t.module_name()).collect();
    json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": cfg.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": cfg.rslora,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_names_round_trip() {
        let n = peft_name(3, LoraTarget::Gate, 'B');
        assert_eq!(
            n,
            "base_model.model.model.layers.3.mlp.gate_proj.lora_B.weight"
        );
        assert_eq!(parse_peft_name(&n), Some((3, LoraTarget::Gate, 'B')));
        // One `model.` too few: PEFT ignores it silently; we refuse it.
        assert_eq!(
            parse_peft_name("base_model.model.layers.3.mlp.gate_proj.lora_B.weight"),
            None
        );
        assert_eq!(
            parse_peft_name("model.layers.0.self_attn.q_proj.lora_A.weight"),
            None
        );
    }
}
