//! Randomly initialised checkpoints in Hugging Face layout (what `medtune init` writes and the
//! benchmarks build in memory), initialised as transformers does: normal(0, 0.02) for matrices,
//! ones for norms.

use std::collections::HashMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checkpoint::{HostTensor, write_atomically, write_safetensors};
use crate::config::Qwen3Config;
use crate::device::ComputeDType;
use crate::error::{ModelError, Result};

/// Every tensor name of a Qwen3 checkpoint with its shape, in file order.
pub fn tensor_shapes(cfg: &Qwen3Config) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_size;
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    let ffn = cfg.intermediate_size;
    let mut shapes = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, shape) in [
            ("input_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![q, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, q]),
            ("self_attn.q_norm.weight", vec![cfg.head_dim]),
            ("self_attn.k_norm.weight", vec![cfg.head_dim]),
            ("post_attention_layernorm.weight", vec![h]),
            ("mlp.gate_proj.weight", vec![ffn, h]),
            ("mlp.up_proj.weight", vec![ffn, h]),
            ("mlp.down_proj.weight", vec![h, ffn]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    shapes.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h]));
    }
    shapes
}

/// Standard normal samples by Box–Muller (rand 0.9 has no normal distribution in its core).
fn normal(rng: &mut StdRng, std: f32, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
        out.push(r * c);
        out.push(r * s);
    }
    out.truncate(n);
    out
}

/// Random weights for `cfg`, stored as `dtype`, reproducible from `seed`.
pub fn random_weights(
    cfg: &Qwen3Config,
    dtype: ComputeDType,
    seed: u64,
) -> HashMap<String, HostTensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    tensor_shapes(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = if shape.len() == 1 {
                vec![1.0; n]
            } else {
                normal(&mut rng, 0.02, n)
            };
            let t = HostTensor::from_f32(&values, shape, dtype);
            (name, t)
        })
        .collect()
}

/// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
pub fn write_checkpoint(
    dir: &Path,
    cfg: &Qwen3Config,
    weights: &HashMap<String, HostTensor>,
    dtype: ComputeDType,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut ordered: Vec<(String, HostTensor)> = tensor_shapes(cfg)
        .into_iter()
        .map(|(name, _)| {
            let t = weights
                .get(&name)
                .cloned()
                .ok_or_else(|| ModelError::MissingTensor {
                    path: dir.join("model.safetensors"),
                    tensor: name.clone(),
                })?;
            Ok((name, t))
        })
        .collect::<Result<_>>()?;
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&dir.join("model.safetensors"), &ordered)?;
    let config = serde_json::to_string_pretty(&cfg.to_json(dtype)).expect("config serialises");
    write_atomically(&dir.join("config.json"), |tmp| std::fs::write(tmp, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn same_seed_same_weights() {
        let cfg = Preset::Tiny.config();
        let a = random_weights(&cfg, ComputeDType::Bf16, 1);
        let b = random_weights(&cfg, ComputeDType::Bf16, 1);
        let c = random_weights(&cfg, ComputeDType::Bf16, 2);
        let name = "model.layers.1.mlp.up_proj.weight";
        assert_eq!(a[name].data, b[name].data);
        assert_ne!(a[name].data, c[name].data);
        let total: usize = a.values().map(|t| t.shape.iter().product::<usize>()).sum();
        assert_eq!(total, cfg.num_params());
    }

    #[test]
    fn normal_samples_have_the_asked_spread() {
        let mut rng = StdRng::seed_from_u64(0);
        let v = normal(&mut rng, 0.02, 100_000);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{}", var.sqrt());
    }
}
