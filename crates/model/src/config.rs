//! `config.json` of a Hugging Face Qwen3 checkpoint, in both the transformers 4.51 layout the hub
//! repositories ship (top-level `rope_theta`, `torch_dtype`) and the transformers 5 layout
//! (`rope_parameters`, `dtype`), plus the presets `medtune init` and `medtune bench` build.

use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::device::ComputeDType;
use crate::error::{ModelError, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// The dtype the weights were saved in, when config.json says.
    pub torch_dtype: Option<ComputeDType>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

fn get_usize(v: &Value, key: &str, path: &Path) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| ModelError::Config {
            path: path.to_path_buf(),
            message: format!("field `{key}` is missing or not a non-negative integer"),
        })
}

impl Qwen3Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&value, path)
    }

    /// Parses a config value; `path` is only used in error messages.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let err = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let archs: Vec<&str> = v
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if model_type != "qwen3" && !archs.contains(&"Qwen3ForCausalLM") {
            return Err(err(format!(
                "unsupported architecture (model_type `{model_type}`, architectures {archs:?}): \
                 medtune runs Qwen3 dense models (model_type `qwen3`, Qwen3ForCausalLM)"
            )));
        }
        let hidden_size = get_usize(v, "hidden_size", path)?;
        let num_attention_heads = get_usize(v, "num_attention_heads", path)?;
        let num_key_value_heads = v
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .unwrap_or(num_attention_heads);
        let head_dim = v
            .get("head_dim")
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        // transformers 5 moved rope settings into `rope_parameters`; 4.x keeps them top-level.
        let rope = v.get("rope_parameters").filter(|r| !r.is_null());
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| v.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0);
        let rope_type = rope
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .or_else(|| {
                v.get("rope_scaling")
                    .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            })
            .and_then(Value::as_str)
            .unwrap_or("default");
        if rope_type != "default" {
            return Err(err(format!(
                "rope type `{rope_type}` is not supported yet (only the default RoPE of Qwen3)"
            )));
        }
        let dtype_name = v
            .get("dtype")
            .or_else(|| v.get("torch_dtype"))
            .and_then(Value::as_str);
        let torch_dtype = dtype_name.and_then(|d| ComputeDType::from_str(d).ok());
        let token_id = |key: &str| {
            let id = v.get(key)?;
            id.as_u64()
                .or_else(|| id.as_array()?.first()?.as_u64())
                .map(|x| x as u32)
        };
        let cfg = Self {
            vocab_size: get_usize(v, "vocab_size", path)?,
            hidden_size,
            intermediate_size: get_usize(v, "intermediate_size", path)?,
            num_hidden_layers: get_usize(v, "num_hidden_layers", path)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: v
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            max_position_embeddings: v
                .get("max_position_embeddings")
                .and_then(Value::as_u64)
                .unwrap_or(40_960) as usize,
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            torch_dtype,
            bos_token_id: token_id("bos_token_id"),
            eos_token_id: token_id("eos_token_id"),
        };
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim
            ));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return Err("vocab_size, hidden_size and num_hidden_layers must be > 0".into());
        }
        Ok(())
    }

    /// config.json as the hub's Qwen3 repositories ship it (transformers 4.51), with the
    /// transformers 5 `rope_parameters`/`dtype` keys added so both versions read it unchanged.
    pub fn to_json(&self, saved_dtype: ComputeDType) -> Value {
        json!({
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": self.bos_token_id.unwrap_or(151_643),
            "eos_token_id": self.eos_token_id.unwrap_or(151_645),
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "max_window_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": null,
            "rope_theta": self.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "sliding_window": null,
            "use_sliding_window": false,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": saved_dtype.hf_name(),
            "dtype": saved_dtype.hf_name(),
            "use_cache": true,
            "vocab_size": self.vocab_size,
        })
    }

    /// Parameter count (tied embeddings counted once).
    pub fn num_params(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let per_layer =
            h * q * 2 + h * kv * 2 + 3 * h * self.intermediate_size + 2 * h + 2 * self.head_dim;
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + h + per_layer * self.num_hidden_layers
    }
}

/// Model shapes `medtune init` and `medtune bench` build without a download. The Qwen3 ones
/// copy the published configs; `tiny` and `small` are the shapes of the reference timings in
/// `../shared/notes/reference-figures.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Tiny,
    Small,
    Qwen3_0_6b,
    Qwen3_1_7b,
}

impl Preset {
    pub const ALL: [Preset; 4] = [Self::Tiny, Self::Small, Self::Qwen3_0_6b, Self::Qwen3_1_7b];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Small => "small",
            Self::Qwen3_0_6b => "qwen3-0.6b",
            Self::Qwen3_1_7b => "qwen3-1.7b",
        }
    }

    /// The configuration, with Qwen3's 151,936-token vocabulary.
    pub fn config(self) -> Qwen3Config {
        // (hidden, layers, heads, kv heads, head_dim, intermediate)
        let (h, l, nh, nkv, hd, ffn) = match self {
            Self::Tiny => (64, 2, 4, 2, 16, 128),
            Self::Small => (256, 4, 8, 4, 32, 768),
            Self::Qwen3_0_6b => (1024, 28, 16, 8, 128, 3072),
            Self::Qwen3_1_7b => (2048, 28, 16, 8, 128, 6144),
        };
        Qwen3Config {
            vocab_size: 151_936,
            hidden_size: h,
            intermediate_size: ffn,
            num_hidden_layers: l,
            num_attention_heads: nh,
            num_key_value_heads: nkv,
            head_dim: hd,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            max_position_embeddings: 40_960,
            tie_word_embeddings: true,
            torch_dtype: Some(ComputeDType::Bf16),
            bos_token_id: Some(151_643),
            eos_token_id: Some(151_645),
        }
    }
}

impl FromStr for Preset {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.name()).collect();
                ModelError::Invalid(format!(
                    "unknown preset `{s}`: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_1_7b_has_its_published_size() {
        // Qwen3-1.7B: "1.7B parameters, 1.4B non-embedding" on its model card.
        let cfg = Preset::Qwen3_1_7b.config();
        assert_eq!(cfg.num_params(), 1_720_574_976);
        let embed = cfg.vocab_size * cfg.hidden_size;
        assert_eq!(cfg.num_params() - embed - cfg.hidden_size, 1_409_408_000);
    }

    #[test]
    fn reads_both_config_layouts() {
        let p = Path::new("config.json");
        let old = json!({"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4, "rope_theta": 5000.0, "torch_dtype": "bfloat16"});
        let new = json!({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}, "dtype": "bfloat16"});
        let a = Qwen3Config::from_json(&old, p).unwrap();
        let b = Qwen3Config::from_json(&new, p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rope_theta, 5000.0);
        assert_eq!(a.torch_dtype, Some(ComputeDType::Bf16));
        let round = Qwen3Config::from_json(&a.to_json(ComputeDType::Bf16), p).unwrap();
        assert_eq!(round.rope_theta, a.rope_theta);
    }

    #[test]
    fn rejects_other_architectures() {
        let v = json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"]});
        let e = Qwen3Config::from_json(&v, Path::new("x/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x/config.json") && e.contains("unsupported architecture"),
            "{e}"
        );
    }
}
