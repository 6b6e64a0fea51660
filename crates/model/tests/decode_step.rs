//! The CPU's whole-step decode path (`generate::decode_step_logits`, every thread at once on plain
//! slices) against the tensor path (`LoadedModel::forward` + `logits`): the same kernels and the
//! same roundings, so the same logits to the bit, step after step, for f32, bf16 and packed bf16
//! weights, one row and several, whichever path ran the steps before.

mod common;

use common::{fixtures, test_device};
use medtune_model::ComputeDType;
use medtune_model::qwen3::{ForwardBatch, KvCache, LoadedModel, PaddingSide, WeightPacking};

fn load(name: &str, dtype: ComputeDType, packing: WeightPacking) -> LoadedModel {
    LoadedModel::from_dir_packed(&fixtures().join(name), dtype, &test_device(), packing)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Whether the whole-step path can run here (the CPU backend on x86-64 with AVX-512, and its
/// BF16 dot products for packed weights, unless `MEDTUNE_KERNELS=portable` hides them).
fn step_path_available(model: &LoadedModel) -> bool {
    let cpu = medtune_model::ops::cpu_features();
    model.on_cpu() && cpu.avx512f && (!model.is_packed() || cpu.avx512_bf16)
}

/// Takes the step path for these tiny models too (by default only models that read at least
/// 16 MiB per step take it).
fn step_path_always() {
    medtune_model::generate::set_step_policy(medtune_model::generate::StepPolicy::Always);
}

fn tensor_step(model: &LoadedModel, batch: &ForwardBatch, cache: &mut KvCache) -> Vec<f32> {
    let hidden = model.forward(batch, Some(cache));
    model.model.logits(hidden).into_data().try_to_vec().unwrap()
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Prefills `prompts` (of one length) into two caches, then decodes `steps` greedy tokens
/// through the step path in one and the tensor path in the other, comparing the logits of each
/// step exactly. Every third step runs the tensor path in both, so each path continues a
/// cache the other wrote.
fn compare(model: &LoadedModel, prompts: &[Vec<u32>], steps: usize, label: &str) {
    let rows = prompts.len();
    let vocab = model.config.vocab_size;
    let prefill = ForwardBatch::padded(prompts, PaddingSide::Left, 0);
    let (mut ours, mut theirs) = (model.new_cache(), model.new_cache());
    let first = tensor_step(model, &prefill, &mut ours);
    tensor_step(model, &prefill, &mut theirs);
    let seq = prefill.seq;
    let mut next: Vec<u32> = (0..rows)
        .map(|r| argmax(&first[((r + 1) * seq - 1) * vocab..][..vocab]))
        .collect();
    for step in 0..steps {
        let batch = ForwardBatch::from_parts(
            rows,
            1,
            next.clone(),
            vec![true; rows],
            ours.next_positions(),
        );
        let want = tensor_step(model, &batch, &mut theirs);
        let got = if step % 3 == 2 {
            tensor_step(model, &batch, &mut ours)
        } else {
            medtune_model::generate::decode_step_logits(model, &batch, &mut ours)
                .unwrap_or_else(|| panic!("{label}: the step path declined step {step}"))
        };
        assert_eq!(got.len(), want.len(), "{label} step {step}");
        if let Some(i) = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits())
        {
            panic!(
                "{label} step {step}: logit {i} differs: {} vs {}",
                got[i], want[i]
            );
        }
        assert_eq!(ours.len(), theirs.len());
        next = (0..rows)
            .map(|r| argmax(&want[r * vocab..][..vocab]))
            .collect();
    }
}

#[test]
fn decode_steps_take_the_same_values_as_the_tensor_path() {
    step_path_always();
    let prompts = [
        vec![215, 98, 144, 54, 485, 378, 284, 52],
        vec![3, 17, 400, 11, 0, 96, 301, 7],
        vec![1, 2, 3, 4, 5, 6, 7, 8],
    ];
    let mut ran = 0;
    for name in ["tied_gqa", "untied_hd32", "mha_sharded"] {
        for (dtype, packing) in [
            (ComputeDType::F32, WeightPacking::Off),
            (ComputeDType::Bf16, WeightPacking::Off),
            (ComputeDType::Bf16, WeightPacking::On),
        ] {
            let device = test_device();
            if !device.supports_dtype(dtype.dtype()) {
                continue;
            }
            let model = load(name, dtype, packing);
            if !step_path_available(&model) {
                let mut cache = model.new_cache();
                tensor_step(&model, &ForwardBatch::single(&prompts[0]), &mut cache);
                let batch = ForwardBatch::from_parts(1, 1, vec![1], vec![true], &[8]);
                assert!(
                    medtune_model::generate::decode_step_logits(&model, &batch, &mut cache)
                        .is_none()
                );
                continue;
            }
            let label = format!("{name} {dtype} packed={}", model.is_packed());
            compare(&model, &prompts[..1], 12, &label);
            compare(&model, &prompts, 8, &format!("{label}, 3 rows"));
            ran += 1;
        }
    }
    // On a CPU whose kernels the step needs (and not forced portable), every model took it.
    let cpu = medtune_model::ops::cpu_features();
    if test_device() == medtune_model::DeviceSpec::Cpu.device().unwrap()
        && cpu.avx512f
        && cpu.avx512_bf16
    {
        assert_eq!(ran, 9, "every model took the step path");
    }
}
