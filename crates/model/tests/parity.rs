//! Sameness with Hugging Face transformers: logits and greedy continuations of tiny random Qwen3
//! checkpoints made by `tools/make_fixtures.py` (see tests/fixtures/README.md).

mod common;

use common::{Golden, fixtures, max_abs_diff, test_device};
use medtune_model::ComputeDType;
use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};
use medtune_model::qwen3::{ForwardBatch, LoadedModel, PaddingSide, WeightPacking};

const FIXTURES: [&str; 3] = ["tied_gqa", "untied_hd32", "mha_sharded"];
/// f32 tolerance the foundation issue sets.
const F32_TOL: f32 = 1e-4;

fn load(name: &str, dtype: ComputeDType) -> LoadedModel {
    LoadedModel::from_dir(&fixtures().join(name), dtype, &test_device())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ids_u32(v: &[i64]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}

/// The real tokens of each row of the golden batch (it is left-padded; its mask marks them).
fn golden_batch_sequences(golden: &Golden) -> Vec<Vec<u32>> {
    let [rows, seq] = golden.shape("batch_input_ids")[..] else {
        panic!("batch_input_ids must be 2-D")
    };
    let ids = golden.i64("batch_input_ids");
    let mask = golden.i64("batch_attention_mask");
    (0..rows)
        .map(|r| {
            (0..seq)
                .filter(|&t| mask[r * seq + t] == 1)
                .map(|t| ids[r * seq + t] as u32)
                .collect()
        })
        .collect()
}

#[test]
fn f32_logits_match_transformers() {
    for name in FIXTURES {
        let golden = Golden::open(&fixtures().join(name).join("golden.safetensors"));
        let model = load(name, ComputeDType::F32);
        let ids = ids_u32(&golden.i64("input_ids"));
        let ours = model.sequence_logits(&ids);
        let diff = max_abs_diff(&ours, &golden.f32("logits_f32"));
        println!("{name}: f32 max |Δlogit| = {diff:.3e}");
        assert!(diff <= F32_TOL, "{name}: f32 logits differ by {diff}");
    }
}

/// bf16 keeps 8 significant bits, so each rounding step is off by up to 2⁻⁸ ≈ 0.4 % relative.
/// transformers and medtune round at different places (burn's fused attention works in f32,
/// transformers' eager path rounds scores to bf16), so the two bf16 results are compared with
/// the f32 reference rather than with each other: ours must be at least as close to it as
/// transformers' own bf16 run is (with a 2× margin), and within 5 % of the logit range. f16
/// (10 significant bits) must meet the same bound. A device without bf16 arithmetic (Vulkan)
/// must refuse bf16 with a message naming the alternatives.
#[test]
fn half_precision_logits_are_as_close_to_f32_as_transformers_bf16() {
    let device = test_device();
    let mut dtypes = vec![ComputeDType::F16];
    if device.supports_dtype(ComputeDType::Bf16.dtype()) {
        dtypes.push(ComputeDType::Bf16);
    } else {
        let err = LoadedModel::from_dir(&fixtures().join("tied_gqa"), ComputeDType::Bf16, &device)
            .err()
            .expect("bf16 must be refused here")
            .to_string();
        assert!(err.contains("--dtype f16"), "{err}");
    }
    for dtype in dtypes {
        for name in FIXTURES {
            let golden = Golden::open(&fixtures().join(name).join("golden.safetensors"));
            let model = load(name, dtype);
            let ids = ids_u32(&golden.i64("input_ids"));
            let ours = model.sequence_logits(&ids);
            let reference = golden.f32("logits_f32");
            let theirs = golden.f32("logits_bf16");
            let ours_err = max_abs_diff(&ours, &reference);
            let theirs_err = max_abs_diff(&theirs, &reference);
            let range = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
            println!(
                "{name}: {dtype} max |Δ| vs f32: medtune {ours_err:.3e}, transformers bf16 \
                 {theirs_err:.3e}, |logit| max {range:.3}"
            );
            assert!(
                ours_err <= 2.0 * theirs_err.max(range * 2f32.powi(-8)),
                "{name} {dtype}"
            );
            assert!(ours_err <= 0.05 * range, "{name} {dtype}");
        }
    }
}

#[test]
fn padded_batches_match_unbatched_and_transformers() {
    for name in FIXTURES {
        let golden = Golden::open(&fixtures().join(name).join("golden.safetensors"));
        let model = load(name, ComputeDType::F32);
        let seq = golden.shape("batch_input_ids")[1];
        let want = golden.f32("batch_logits_f32");
        let vocab = model.config.vocab_size;
        let seqs = golden_batch_sequences(&golden);
        for side in [PaddingSide::Left, PaddingSide::Right] {
            let batch = ForwardBatch::padded(&seqs, side, 0);
            let logits = model.batch_logits(&batch);
            for (r, s) in seqs.iter().enumerate() {
                let alone = model.sequence_logits(s);
                let offset = match side {
                    PaddingSide::Left => seq - s.len(),
                    PaddingSide::Right => 0,
                };
                let at = |t: usize| (r * seq + offset + t) * vocab;
                let in_batch: Vec<f32> = (0..s.len())
                    .flat_map(|t| logits[at(t)..at(t) + vocab].to_vec())
                    .collect();
                let d_alone = max_abs_diff(&in_batch, &alone);
                assert!(d_alone <= F32_TOL, "{name} {side:?} row {r}: {d_alone}");
                let hf_at = |t: usize| (r * seq + (seq - s.len()) + t) * vocab;
                let hf: Vec<f32> = (0..s.len())
                    .flat_map(|t| want[hf_at(t)..hf_at(t) + vocab].to_vec())
                    .collect();
                let d_hf = max_abs_diff(&in_batch, &hf);
                assert!(
                    d_hf <= F32_TOL,
                    "{name} {side:?} row {r} vs transformers: {d_hf}"
                );
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt_ids: Vec<u32>,
    new_ids: Vec<u32>,
}

#[test]
fn greedy_continuations_match_transformers() {
    for name in FIXTURES {
        let text = std::fs::read_to_string(fixtures().join(name).join("greedy.json")).unwrap();
        let want: Greedy = serde_json::from_str(&text).unwrap();
        let model = load(name, ComputeDType::F32);
        let config = GenerateConfig {
            max_new_tokens: want.new_ids.len(),
            stop_ids: vec![],
            sampling: SamplingConfig::greedy(),
            pad_id: 0,
        };
        let got = generate(
            &model,
            std::slice::from_ref(&want.prompt_ids),
            &config,
            |_, _| true,
        );
        assert_eq!(got[0], want.new_ids, "{name}");
        // Two prompts of different lengths in one left-padded batch give the same tokens.
        let short = want.prompt_ids[..3].to_vec();
        let alone = generate(&model, std::slice::from_ref(&short), &config, |_, _| true);
        let both = generate(
            &model,
            &[want.prompt_ids.clone(), short],
            &config,
            |_, _| true,
        );
        assert_eq!(both[0], want.new_ids, "{name}: batched row 0");
        assert_eq!(both[1], alone[0], "{name}: batched row 1");
    }
}

/// `forward_rows` (the last layer for chosen slots only) gives the hidden states `forward`
/// gives at those slots: right padding and no padding take the CPU's selected-query path, left
/// padding (an explicit mask) the whole last layer; in f32 and in bf16 (f16 where the device has
/// no bf16). On other backends every case takes the whole last layer.
#[test]
fn selected_rows_equal_the_whole_forward_at_those_rows() {
    for name in FIXTURES {
        let golden = Golden::open(&fixtures().join(name).join("golden.safetensors"));
        let seqs = golden_batch_sequences(&golden);
        // Half precision as this device computes it (Vulkan has no bf16: f16 there).
        let half = if test_device().supports_dtype(ComputeDType::Bf16.dtype()) {
            ComputeDType::Bf16
        } else {
            ComputeDType::F16
        };
        for (dtype, tol) in [(ComputeDType::F32, F32_TOL), (half, 0.05)] {
            let model = load(name, dtype);
            for side in [PaddingSide::Right, PaddingSide::Left] {
                let batch = ForwardBatch::padded(&seqs, side, 0);
                let t = batch.seq;
                // Each row's last real token, and the first slot of row 0.
                let mut picked: Vec<usize> = seqs
                    .iter()
                    .enumerate()
                    .map(|(r, s)| match side {
                        PaddingSide::Right => r * t + s.len() - 1,
                        PaddingSide::Left => r * t + t - 1,
                    })
                    .collect();
                picked.push(match side {
                    PaddingSide::Right => 0,
                    PaddingSide::Left => t - seqs[0].len(),
                });
                let host = |x: burn::tensor::Tensor<2>| -> Vec<f32> {
                    x.cast(burn::tensor::FloatDType::F32)
                        .into_data()
                        .try_to_vec()
                        .unwrap()
                };
                let got = host(model.forward_rows(&batch, &picked));
                let whole = model.forward(&batch, None);
                let [b, _, h] = whole.dims();
                let index: Vec<i64> = picked.iter().map(|&r| r as i64).collect();
                let index = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
                    burn::tensor::TensorData::new(index, [picked.len()]),
                    &whole.device(),
                );
                let want = host(whole.reshape([b * t, h]).select(0, index));
                let largest = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff <= tol * largest.max(1.0),
                    "{name} {dtype} {side:?}: differs by {diff} (largest {largest})"
                );
            }
        }
    }
}

fn load_packed(name: &str) -> LoadedModel {
    LoadedModel::from_dir_packed(
        &fixtures().join(name),
        ComputeDType::Bf16,
        &test_device(),
        WeightPacking::On,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A bf16 model with its weights packed in 12 bits (`packed_bf16`) computes what the plain bf16
/// model computes: the same values are read, so the two differ only by the order of f32 sums
/// before each rounding to bf16 (well under one bf16 step of the logit range, 2⁻⁷ allowed), and
/// it meets the bf16 bound against transformers' f32 logits. Its greedy continuation, decoded
/// through the KV cache by the few-row kernel, is the plain model's. `tied_gqa` packs every
/// weight, `untied_hd32` all but `down_proj` (width 96 is not a whole number of 64-value
/// blocks), `mha_sharded` none (hidden 48). Only the CPU backend packs.
#[test]
fn packed_bf16_weights_compute_the_plain_bf16_model() {
    let device = test_device();
    if !device.supports_dtype(ComputeDType::Bf16.dtype()) {
        return; // Vulkan: bf16 is refused (checked above) and nothing is packed there.
    }
    for name in FIXTURES {
        let golden = Golden::open(&fixtures().join(name).join("golden.safetensors"));
        let (plain, packed) = (load(name, ComputeDType::Bf16), load_packed(name));
        let should_pack = plain.on_cpu() && name != "mha_sharded";
        assert_eq!(packed.is_packed(), should_pack, "{name}");
        if !should_pack {
            continue;
        }
        let ratio = packed.weight_bytes() as f64 / plain.weight_bytes() as f64;
        println!("{name}: packed weights take {ratio:.3} of the bf16 bytes");
        assert!(ratio < 0.85, "{name}: {ratio}");

        let ids = ids_u32(&golden.i64("input_ids"));
        let (ours, theirs) = (packed.sequence_logits(&ids), plain.sequence_logits(&ids));
        let reference = golden.f32("logits_f32");
        let range = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
        let vs_plain = max_abs_diff(&ours, &theirs);
        let vs_f32 = max_abs_diff(&ours, &reference);
        let hf_err = max_abs_diff(&golden.f32("logits_bf16"), &reference);
        println!("{name}: packed vs plain bf16 {vs_plain:.3e}, vs f32 {vs_f32:.3e}");
        assert!(vs_plain <= range * 2f32.powi(-7), "{name}: {vs_plain}");
        assert!(vs_f32 <= 2.0 * hf_err.max(range * 2f32.powi(-8)), "{name}");

        let text = std::fs::read_to_string(fixtures().join(name).join("greedy.json")).unwrap();
        let want: Greedy = serde_json::from_str(&text).unwrap();
        let config = GenerateConfig {
            max_new_tokens: want.new_ids.len(),
            stop_ids: vec![],
            sampling: SamplingConfig::greedy(),
            pad_id: 0,
        };
        let prompt = std::slice::from_ref(&want.prompt_ids);
        let got = generate(&packed, prompt, &config, |_, _| true);
        let plain_got = generate(&plain, prompt, &config, |_, _| true);
        assert_eq!(got[0], plain_got[0], "{name}: packed vs plain bf16 greedy");
    }
}

/// Decoding a packed model through the KV cache, one token per step (the few-row kernel), gives
/// the logits the whole sequence gives in one pass (the GEMM over unpacked slabs), at every
/// position: the two product paths read the same weights.
#[test]
fn packed_decode_steps_equal_the_whole_sequence() {
    let device = test_device();
    if !device.supports_dtype(ComputeDType::Bf16.dtype()) {
        return;
    }
    let model = load_packed("tied_gqa");
    if !model.is_packed() {
        return; // not the CPU backend
    }
    let golden = Golden::open(&fixtures().join("tied_gqa").join("golden.safetensors"));
    let ids = ids_u32(&golden.i64("input_ids"));
    let whole = model.sequence_logits(&ids);
    let vocab = model.config.vocab_size;
    let range = whole.iter().fold(0f32, |m, x| m.max(x.abs()));
    let mut cache = model.new_cache();
    for (t, &id) in ids.iter().enumerate() {
        let positions = [t as i64];
        let batch = ForwardBatch::from_parts(1, 1, vec![id], vec![true], &positions);
        let hidden = model.forward(&batch, Some(&mut cache));
        let step: Vec<f32> = model.model.logits(hidden).into_data().try_to_vec().unwrap();
        let diff = max_abs_diff(&step, &whole[t * vocab..(t + 1) * vocab]);
        assert!(diff <= range * 2f32.powi(-7), "position {t}: {diff}");
    }
}
