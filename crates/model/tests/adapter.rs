//! PEFT-format adapters: save/load round trip, merge, and refusing names PEFT would ignore.

mod common;

use common::{fixtures, max_abs_diff, test_device};
use medtune_model::ComputeDType;
use medtune_model::checkpoint::{HostTensor, write_safetensors};
use medtune_model::qwen3::{ADAPTER_WEIGHTS, LoadedModel, LoraConfig, LoraTarget};

const IDS: [u32; 7] = [3, 17, 200, 45, 9, 311, 2];

fn base() -> LoadedModel {
    LoadedModel::from_dir(
        &fixtures().join("tied_gqa"),
        ComputeDType::F32,
        &test_device(),
    )
    .unwrap()
}

/// A model with a non-trivial adapter (B set away from zero so it changes the output).
fn adapted() -> (LoadedModel, LoraConfig) {
    let mut model = base();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.05,
        targets: LoraTarget::parse_list("q,v,down").unwrap(),
        rslora: false,
    };
    let device = model.device.clone();
    model.model.attach_lora(&cfg, 1, &device);
    for layer in 0..model.model.num_layers() {
        for target in [LoraTarget::Q, LoraTarget::V, LoraTarget::Down] {
            let lora = model.model.linear_mut(layer, target).lora.as_mut().unwrap();
            let [out, r] = lora.b.dims();
            let b = burn::tensor::Tensor::<2>::random(
                [out, r],
                burn::tensor::Distribution::Normal(0.0, 0.2),
                &device,
            );
            lora.b = burn::module::Param::from_tensor(b);
        }
    }
    (model, cfg)
}

#[test]
fn a_fresh_adapter_changes_nothing() {
    let plain = base().sequence_logits(&IDS);
    let mut model = base();
    let device = model.device.clone();
    let cfg = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
        rslora: false,
    };
    model.model.attach_lora(&cfg, 0, &device);
    assert_eq!(max_abs_diff(&plain, &model.sequence_logits(&IDS)), 0.0);
}

#[test]
fn trainable_parameter_count_of_the_inspiring_job() {
    // Qwen3-1.7B, r=8, q and v: 1,605,632 trainable parameters. Counted from shapes, on a
    // 1-layer model with 1.7B's per-layer dimensions.
    let cfg = medtune_model::Preset::Qwen3_1_7b.config();
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    let per_layer = 8 * (cfg.hidden_size + q) + 8 * (cfg.hidden_size + kv);
    assert_eq!(per_layer * cfg.num_hidden_layers, 1_605_632);
}

#[test]
fn save_load_round_trip_and_merge() {
    let (model, cfg) = adapted();
    let with_adapter = model.sequence_logits(&IDS);
    let plain = base().sequence_logits(&IDS);
    assert!(
        max_abs_diff(&with_adapter, &plain) > 1e-3,
        "test adapter must matter"
    );

    let dir = tempfile::tempdir().unwrap();
    model
        .model
        .save_adapter(dir.path(), &cfg, "tied_gqa")
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["r"], 4);

    let mut loaded = base();
    let device = loaded.device.clone();
    let info = loaded.model.load_adapter(dir.path(), &device).unwrap();
    assert_eq!(info.rank, 4);
    assert_eq!(
        loaded.model.num_lora_params(),
        model.model.num_lora_params()
    );
    let d = max_abs_diff(&loaded.sequence_logits(&IDS), &with_adapter);
    assert!(d <= 1e-6, "round trip changed logits by {d}");

    loaded.model.merge_lora();
    assert!(loaded.model.loras().is_empty());
    let d = max_abs_diff(&loaded.sequence_logits(&IDS), &with_adapter);
    assert!(d <= 1e-4, "merged model differs by {d}");

    // The merged checkpoint written out loads as a plain model with the same logits.
    let out = tempfile::tempdir().unwrap();
    loaded
        .model
        .save_checkpoint(out.path(), &loaded.config, ComputeDType::F32)
        .unwrap();
    let reloaded = LoadedModel::from_dir(out.path(), ComputeDType::F32, &test_device()).unwrap();
    let d = max_abs_diff(&reloaded.sequence_logits(&IDS), &with_adapter);
    assert!(d <= 1e-4, "merged checkpoint differs by {d}");
}

#[test]
fn names_peft_would_ignore_are_refused() {
    let (model, cfg) = adapted();
    let dir = tempfile::tempdir().unwrap();
    model
        .model
        .save_adapter(dir.path(), &cfg, "tied_gqa")
        .unwrap();
    // Rewrite with one `model.` too few: PEFT loads this with a warning and does nothing.
    let wrong: Vec<(String, HostTensor)> = model
        .model
        .lora_tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                n.replacen("base_model.model.model.", "base_model.model.", 1),
                t,
            )
        })
        .collect();
    write_safetensors(&dir.path().join(ADAPTER_WEIGHTS), &wrong).unwrap();
    let mut fresh = base();
    let device = fresh.device.clone();
    let err = fresh
        .model
        .load_adapter(dir.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapter_model.safetensors"), "{err}");
    assert!(err.contains("would ignore it silently"), "{err}");
}

#[test]
fn nan_adapters_are_never_saved() {
    let (mut model, cfg) = adapted();
    let lora = model
        .model
        .linear_mut(0, LoraTarget::Q)
        .lora
        .as_mut()
        .unwrap();
    lora.a = burn::module::Param::from_tensor(lora.a.val().div_scalar(0.0));
    let dir = tempfile::tempdir().unwrap();
    let err = model
        .model
        .save_adapter(dir.path(), &cfg, "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN"), "{err}");
    assert!(!dir.path().join(ADAPTER_WEIGHTS).exists());
}
