//! Packing several examples into one row changes nothing but speed: with the block-diagonal mask
//! and per-sample positions, every target's log-likelihood equals the unpacked one.

use std::path::Path;

use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec};
use medtune_train::loss::{TrainBatch, target_nll_sum};

#[test]
fn packed_rows_give_the_unpacked_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/untied_hd32");
    let device = DeviceSpec::Cpu.device().unwrap();
    let model = LoadedModel::from_dir(&dir, ComputeDType::F32, &device).unwrap();
    let samples: Vec<(Vec<u32>, usize)> = vec![
        ((1..12).collect(), 5),
        ((100..107).collect(), 3),
        ((200..220).collect(), 15),
        ((300..304).collect(), 1),
        ((400..409).collect(), 8),
    ];
    let unpacked = TrainBatch::from_sequences(&samples, 0);
    let packed = TrainBatch::from_packs(
        &[
            vec![samples[0].clone(), samples[1].clone(), samples[3].clone()],
            vec![samples[2].clone(), samples[4].clone()],
        ],
        0,
    );
    assert_eq!(packed.num_targets(), unpacked.num_targets());
    assert_eq!(packed.inputs.batch, 2);
    let a = target_nll_sum(&model, &unpacked);
    let b = target_nll_sum(&model, &packed);
    assert!(
        (a - b).abs() <= 1e-5 * a.abs(),
        "unpacked {a} vs packed {b}"
    );
    // Without the block-diagonal mask the samples would see each other: prove it matters.
    let mut leaky = packed.clone();
    leaky.inputs.segments = None;
    let c = target_nll_sum(&model, &leaky);
    assert!(
        (a - c).abs() > 1e-3 * a.abs(),
        "the mask must matter: {a} vs {c}"
    );
}
