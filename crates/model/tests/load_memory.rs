//! Loading maps the checkpoint and converts tensor by tensor: peak memory stays near one copy of
//! the model, not the file plus the model; loading with packed weights needs less than a plain
//! bf16 load (each weight is packed as it is loaded). Each load runs in a child process (this
//! same test binary), so that the process's peak RSS (VmHWM) measures that load only.

use std::path::Path;

use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::{LoadedModel, WeightPacking};
use medtune_model::{ComputeDType, DeviceSpec, Preset};

const TEST: &str = "peak_memory_during_load_is_about_one_model";

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

/// Runs this test in a child process with `role` (and the checkpoint folder) in its
/// environment; returns what it printed after `growth=`, in bytes (the test harness may print
/// the test's name on the same line).
fn child(role: &str, dir: &Path) -> Option<usize> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("MEDTUNE_LOAD_MEMORY_ROLE", role)
        .env("MEDTUNE_LOAD_MEMORY_DIR", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{role}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.split("growth=").nth(1)?.trim().parse().ok())
}

/// What a child does: write the checkpoint (stored as `dtype`), or load it and print its peak
/// growth.
fn run_role(role: &str, dir: &Path) {
    let cfg = config();
    let device = DeviceSpec::Cpu.device().unwrap();
    let (dtype, packing) = match role {
        "write-f32" | "write-bf16" => {
            let dtype = if role == "write-f32" {
                ComputeDType::F32
            } else {
                ComputeDType::Bf16
            };
            let weights = random_weights(&cfg, dtype, 0);
            write_checkpoint(dir, &cfg, &weights, dtype).unwrap();
            return;
        }
        "load-f32" => (ComputeDType::F32, WeightPacking::Off),
        "load-packed" => (ComputeDType::Bf16, WeightPacking::On),
        "load-bf16" => (ComputeDType::Bf16, WeightPacking::Off),
        _ => panic!("unknown role {role}"),
    };
    let before = status_kib("VmRSS:") * 1024;
    let model = LoadedModel::from_dir_packed(dir, dtype, &device, packing).unwrap();
    let peak = status_kib("VmHWM:") * 1024;
    assert_eq!(model.is_packed(), packing == WeightPacking::On);
    println!("growth={}", peak.saturating_sub(before));
}

#[test]
#[cfg(target_os = "linux")]
fn peak_memory_during_load_is_about_one_model() {
    if let (Ok(role), Ok(dir)) = (
        std::env::var("MEDTUNE_LOAD_MEMORY_ROLE"),
        std::env::var("MEDTUNE_LOAD_MEMORY_DIR"),
    ) {
        return run_role(&role, Path::new(&dir));
    }
    let params = config().num_params();
    let (f32_dir, bf16_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    child("write-f32", f32_dir.path());
    child("write-bf16", bf16_dir.path());

    let f32_bytes = params * 4;
    let used = child("load-f32", f32_dir.path()).expect("the child's growth");
    println!(
        "f32 model {} MiB, peak growth during load {} MiB",
        f32_bytes >> 20,
        used >> 20
    );
    assert!(
        used < f32_bytes * 3 / 2,
        "load grew memory by {used} bytes for a {f32_bytes}-byte model"
    );

    // Packed in 12 bits (~0.76 of the bf16 bytes), each weight as it is loaded: less than the
    // plain bf16 load needs (each held one transient copy of a tensor and the allocator's slack
    // in both: measured 60 against 72 MiB for this 50 MiB model).
    let bf16_bytes = params * 2;
    let plain = child("load-bf16", bf16_dir.path()).expect("the child's growth");
    let packed = child("load-packed", bf16_dir.path()).expect("the child's growth");
    println!(
        "bf16 model {} MiB, peak growth during load {} MiB plain, {} MiB packed",
        bf16_bytes >> 20,
        plain >> 20,
        packed >> 20
    );
    assert!(
        packed < plain && packed < bf16_bytes * 3 / 2,
        "a packed load grew memory by {packed} bytes, a plain one by {plain}, for a \
         {bf16_bytes}-byte bf16 model"
    );
}
