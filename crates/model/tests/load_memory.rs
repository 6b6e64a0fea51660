//! Loading maps the checkpoint and converts tensor by tensor: peak memory stays near one copy of
//! the model, not the file plus the model. Alone in its own test binary so that the process's
//! peak RSS (VmHWM) measures this load only.

use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec, Preset};

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A shape where no single tensor dominates (the 151,936-row embedding of the presets would be
/// most of a small model, and converting one tensor needs a transient copy of it).
fn config() -> medtune_model::Qwen3Config {
    let mut cfg = Preset::Small.config();
    cfg.vocab_size = 8192;
    cfg.hidden_size = 512;
    cfg.num_hidden_layers = 8;
    cfg.intermediate_size = 1536;
    cfg
}

#[test]
#[cfg(target_os = "linux")]
fn peak_memory_during_load_is_about_one_model() {
    // The checkpoint is written by a child process (this same test binary), so that memory the
    // allocator keeps after writing cannot hide the load's own growth.
    if let Ok(out) = std::env::var("MEDTUNE_WRITE_CHECKPOINT_TO") {
        let cfg = config();
        let weights = random_weights(&cfg, ComputeDType::F32, 0);
        write_checkpoint(
            std::path::Path::new(&out),
            &cfg,
            &weights,
            ComputeDType::F32,
        )
        .unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "peak_memory_during_load_is_about_one_model",
            "--nocapture",
        ])
        .env("MEDTUNE_WRITE_CHECKPOINT_TO", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let cfg = config();
    let model_bytes = cfg.num_params() * 4;
    let before = status_kib("VmRSS:") * 1024;
    let device = DeviceSpec::Cpu.device().unwrap();
    let model = LoadedModel::from_dir(dir.path(), ComputeDType::F32, &device).unwrap();
    let peak = status_kib("VmHWM:") * 1024;
    let used = peak.saturating_sub(before);
    println!(
        "model {} MiB, peak growth during load {} MiB",
        model_bytes >> 20,
        used >> 20
    );
    assert!(
        used < model_bytes * 3 / 2,
        "load grew memory by {used} bytes for a {model_bytes}-byte model"
    );
    drop(model);
}
