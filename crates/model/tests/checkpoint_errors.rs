//! Bad checkpoints fail with messages naming the file and tensor; good ones load in every
//! stored dtype.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{max_abs_diff, test_device};
use medtune_model::checkpoint::{HostTensor, write_safetensors};
use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, Qwen3Config};
use safetensors::Dtype;

fn tiny_config() -> Qwen3Config {
    let mut cfg = medtune_model::Preset::Tiny.config();
    cfg.vocab_size = 96;
    cfg.tie_word_embeddings = false;
    cfg
}

fn write(dir: &Path, weights: &HashMap<String, HostTensor>, dtype: ComputeDType) {
    write_checkpoint(dir, &tiny_config(), weights, dtype).unwrap();
}

fn load_err(dir: &Path) -> String {
    match LoadedModel::from_dir(dir, ComputeDType::F32, &test_device()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_stored_dtype_loads_to_the_same_values() {
    let cfg = tiny_config();
    let ids = [1u32, 5, 9, 33, 2];
    let mut results = Vec::new();
    // Values rounded to bf16 are exact in f16 (small range) and f32, so all three must agree.
    let bf16 = random_weights(&cfg, ComputeDType::Bf16, 3);
    let as_f32: HashMap<String, HostTensor> = bf16
        .iter()
        .map(|(k, t)| {
            let values: Vec<f32> = t
                .data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            (k.clone(), (values, t.shape.clone()))
        })
        .map(|(k, (v, s))| (k, HostTensor::from_f32(&v, s, ComputeDType::F32)))
        .collect();
    for (dtype, weights) in [(ComputeDType::Bf16, &bf16), (ComputeDType::F32, &as_f32)] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), weights, dtype);
        let model = LoadedModel::from_dir(dir.path(), ComputeDType::F32, &test_device()).unwrap();
        results.push(model.sequence_logits(&ids));
    }
    let f16: HashMap<String, HostTensor> = as_f32
        .iter()
        .map(|(k, t)| {
            let v: Vec<f32> = bytemuck_f32(&t.data);
            (
                k.clone(),
                HostTensor::from_f32(&v, t.shape.clone(), ComputeDType::F16),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &f16, ComputeDType::F16);
    let model = LoadedModel::from_dir(dir.path(), ComputeDType::F32, &test_device()).unwrap();
    results.push(model.sequence_logits(&ids));
    assert_eq!(max_abs_diff(&results[0], &results[1]), 0.0);
    // f16 has a smaller exponent range: values below 6e-5 become subnormal, so allow a hair.
    assert!(max_abs_diff(&results[0], &results[2]) < 1e-5);
}

fn bytemuck_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn missing_tensor_is_named() {
    let mut weights = random_weights(&tiny_config(), ComputeDType::F32, 0);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &weights, ComputeDType::F32);
    // Rewrite the file without one tensor.
    weights.remove("model.layers.1.self_attn.k_norm.weight");
    let mut list: Vec<(String, HostTensor)> = weights.into_iter().collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&dir.path().join("model.safetensors"), &list).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("model.layers.1.self_attn.k_norm.weight"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn wrong_shape_is_named() {
    let mut weights = random_weights(&tiny_config(), ComputeDType::F32, 0);
    weights.insert(
        "model.layers.0.mlp.up_proj.weight".into(),
        HostTensor::from_f32(&[0.0; 64 * 7], vec![7, 64], ComputeDType::F32),
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &weights, ComputeDType::F32);
    let err = load_err(dir.path());
    assert!(err.contains("model.layers.0.mlp.up_proj.weight"), "{err}");
    assert!(
        err.contains("[7, 64]") && err.contains("[128, 64]"),
        "{err}"
    );
}

#[test]
fn unsupported_tensor_dtype_is_named() {
    let mut weights = random_weights(&tiny_config(), ComputeDType::F32, 0);
    let norm = weights.get_mut("model.norm.weight").unwrap();
    norm.dtype = Dtype::I32;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &weights, ComputeDType::F32);
    let err = load_err(dir.path());
    assert!(
        err.contains("model.norm.weight") && err.contains("I32"),
        "{err}"
    );
}

#[test]
fn truncated_file_is_reported() {
    let weights = random_weights(&tiny_config(), ComputeDType::F32, 0);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &weights, ComputeDType::F32);
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn wrong_architecture_and_missing_weights_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("config.json") && err.contains("LlamaForCausalLM"),
        "{err}"
    );

    let cfg = tiny_config().to_json(ComputeDType::F32).to_string();
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("no model.safetensors"), "{err}");
}
