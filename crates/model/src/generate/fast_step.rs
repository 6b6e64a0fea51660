//! The CPU's whole-step decode path (`medtune_kernels::cpu::decode`), fed from the model through
//! its accessors: which weights and norms a step reads, the new tokens' rotary rows, and the
//! cache's buffers, which the step fills in place.

use medtune_kernels::cpu::decode::{
    StepInput, StepLayer, StepModel, StepNorm, StepShape, StepWeight, decode_logits_if_covered,
    step_path_wanted,
};

use crate::device::ComputeDType;
use crate::ops::StoredWeight;
use crate::qwen3::{ForwardBatch, KvCache, Linear, LoadedModel, RmsNorm};

/// The logits `[rows · vocab]` of one decode step (one new token per row of `batch`) after
/// `cache`, which it extends, computed by every CPU thread at once, or `None`, changing nothing
/// but the cache's spare capacity, where that path does not cover the case (another backend or
/// dtype, LoRA, padding, more than 8 rows, a CPU without AVX-512): the caller then runs
/// [`LoadedModel::forward`].
pub fn decode_step_logits(
    model: &LoadedModel,
    batch: &ForwardBatch,
    cache: &mut KvCache,
) -> Option<Vec<f32>> {
    let step_bytes = model.config.num_params() * model.dtype.dtype().size();
    let fits = matches!(model.dtype, ComputeDType::F32 | ComputeDType::Bf16)
        && batch.seq == 1
        && batch.segments.is_none()
        && batch.valid.iter().all(|&v| v)
        && cache.batch == batch.batch
        && cache.past > 0
        && cache.valid.iter().all(|&v| v)
        && cache.layers.iter().all(Option::is_some);
    if !fits || !step_path_wanted(step_bytes) {
        return None;
    }
    let plan = step_model(model)?;
    let hd = model.config.head_dim;
    let mut cos = vec![0.0f32; batch.batch * hd];
    let mut sin = vec![0.0f32; batch.batch * hd];
    for ((&pos, c), s) in batch
        .positions
        .iter()
        .zip(cos.chunks_exact_mut(hd))
        .zip(sin.chunks_exact_mut(hd))
    {
        model.rope.fill_row(pos, c, s);
    }
    let input = StepInput {
        ids: batch.ids.clone(),
        cos,
        sin,
    };
    cache.reserve(1);
    let logits = decode_logits_if_covered(&plan, input, &mut cache.layers, cache.past)?;
    cache.commit(batch.batch, batch.seq, &batch.valid, &batch.positions);
    Some(logits)
}

/// Everything a step reads of the model, or `None` where a layer carries LoRA or a weight is not
/// one the step's kernels read.
fn step_model(model: &LoadedModel) -> Option<StepModel> {
    let m = &model.model;
    let layers = m
        .layers
        .iter()
        .map(|l| {
            let (a, f) = (&l.self_attn, &l.mlp);
            Some(StepLayer {
                input_norm: norm(&l.input_layernorm)?,
                post_norm: norm(&l.post_attention_layernorm)?,
                q_norm: norm(&a.q_norm)?,
                k_norm: norm(&a.k_norm)?,
                q: linear(&a.q_proj)?,
                k: linear(&a.k_proj)?,
                v: linear(&a.v_proj)?,
                o: linear(&a.o_proj)?,
                gate: linear(&f.gate_proj)?,
                up: linear(&f.up_proj)?,
                down: linear(&f.down_proj)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let cfg = &model.config;
    Some(StepModel {
        shape: StepShape {
            hidden_size: cfg.hidden_size,
            num_attention_heads: cfg.num_attention_heads,
            num_key_value_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            intermediate_size: cfg.intermediate_size,
        },
        embeddings: weight(m.embeddings_stored())?,
        layers,
        final_norm: norm(&m.norm)?,
        head: weight(m.head_stored())?,
        bf16: model.dtype == ComputeDType::Bf16,
    })
}

fn linear(linear: &Linear) -> Option<StepWeight> {
    weight(linear.without_adapter()?)
}

fn weight(w: StoredWeight) -> Option<StepWeight> {
    match w {
        StoredWeight::Packed(p) => Some(StepWeight::Packed(p.clone())),
        StoredWeight::Dense(w) => StepWeight::dense(w),
    }
}

fn norm(norm: &RmsNorm) -> Option<StepNorm> {
    StepNorm::new(&norm.weight.val(), norm.eps)
}
