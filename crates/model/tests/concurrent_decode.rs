//! Generations on several threads at once (a file of its own: the test takes the whole-step
//! decode path from under the other tests, which check that it runs).

mod common;

use common::{fixtures, test_device};
use medtune_model::ComputeDType;
use medtune_model::qwen3::{LoadedModel, WeightPacking};

fn load(name: &str, dtype: ComputeDType, packing: WeightPacking) -> LoadedModel {
    LoadedModel::from_dir_packed(&fixtures().join(name), dtype, &test_device(), packing)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Takes the step path for these tiny models too (by default only models that read at least
/// 16 MiB per step take it).
fn step_path_always() {
    medtune_model::generate::set_step_policy(medtune_model::generate::StepPolicy::Always);
}

/// Generations on several threads at once: one step at a time takes the step path (it holds
/// every thread of the pool), the others take the tensor path meanwhile; each generation gives
/// the tokens it gives alone, and none waits forever.
#[test]
fn concurrent_generations_give_their_own_tokens() {
    step_path_always();
    use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};
    let model = load("tied_gqa", ComputeDType::Bf16, WeightPacking::On);
    let config = GenerateConfig {
        max_new_tokens: 40,
        stop_ids: vec![],
        sampling: SamplingConfig::greedy(),
        pad_id: 0,
    };
    let prompts: Vec<Vec<u32>> = (0..4u32)
        .map(|i| (0..6).map(|t| (i * 37 + t * 11) % 500).collect())
        .collect();
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| generate(&model, std::slice::from_ref(p), &config, |_, _| true).remove(0))
        .collect();
    let together: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let (model, config) = (&model, &config);
                s.spawn(move || {
                    generate(model, std::slice::from_ref(p), config, |_, _| true).remove(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
}
