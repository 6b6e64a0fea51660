//! The model FLOPs a LoRA training step requires, for `mfu`: what the computation needs, not
//! what the kernels happen to do (no recomputation, no padding, the head only where it is
//! applied).
//!
//! For each micro-batch of `T` real tokens, `S` supervised positions and sequences of lengths
//! `t_i`, with `N` the frozen body's projection weights, `N_lora` the adapters' parameters, `V`
//! the vocabulary, `h` the hidden size, `L` layers of `n_h` query heads of `d` dimensions:
//!
//! ```text
//! body      4·N·T            forward 2·N·T, and the input gradient through frozen weights 2·N·T
//! LoRA      6·N_lora·T       forward, input gradient and weight gradient, 2·N_lora·T each
//! head      4·V·h·S          forward and input gradient, at the supervised positions only
//! attention 6·L·n_h·d·Σ t_i² causal q·kᵀ and p·v forward (2·n_h·d·t² a layer), backward twice that
//! ```
//!
//! The embedding lookup and the element-wise work (norms, RoPE, SwiGLU, softmax) are left out,
//! as is customary: they are a small share and memory-bound.

use medtune_model::Qwen3Config;

use crate::loss::TrainBatch;

/// The FLOPs a step over `batches` requires, for a model of `config` with `lora_params` trainable
/// adapter parameters.
pub fn step_flops(config: &Qwen3Config, lora_params: usize, batches: &[TrainBatch]) -> f64 {
    batches
        .iter()
        .map(|b| batch_flops(config, lora_params, b))
        .sum()
}

/// The FLOPs of one micro-batch (see the module's documentation).
pub fn batch_flops(config: &Qwen3Config, lora_params: usize, batch: &TrainBatch) -> f64 {
    let h = config.hidden_size as f64;
    let (q, kv) = (
        (config.num_attention_heads * config.head_dim) as f64,
        (config.num_key_value_heads * config.head_dim) as f64,
    );
    let per_layer = 2.0 * h * q + 2.0 * h * kv + 3.0 * h * config.intermediate_size as f64;
    let body = per_layer * config.num_hidden_layers as f64;
    let tokens = batch.num_tokens() as f64;
    let supervised = batch.num_targets() as f64;
    let squares: f64 = sequence_lengths(batch)
        .into_iter()
        .map(|t| (t * t) as f64)
        .sum();
    4.0 * body * tokens
        + 6.0 * lora_params as f64 * tokens
        + 4.0 * config.vocab_size as f64 * h * supervised
        + 6.0 * config.num_hidden_layers as f64 * q * squares
}

/// The lengths of the batch's sequences: each row's real tokens, or each packed sample.
fn sequence_lengths(batch: &TrainBatch) -> Vec<usize> {
    let inputs = &batch.inputs;
    let mut lengths = Vec::new();
    for row in 0..inputs.batch {
        let slots = row * inputs.seq..(row + 1) * inputs.seq;
        let mut current: Option<(u32, usize)> = None;
        for slot in slots {
            if !inputs.valid[slot] {
                continue;
            }
            let sample = inputs.segments.as_ref().map_or(0, |s| s[slot]);
            match &mut current {
                Some((s, n)) if *s == sample => *n += 1,
                _ => {
                    lengths.extend(current.map(|(_, n)| n));
                    current = Some((sample, 1));
                }
            }
        }
        lengths.extend(current.map(|(_, n)| n));
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;
    use medtune_model::Preset;

    #[test]
    fn counts_each_term_once_and_packed_samples_apart() {
        let config = Preset::Tiny.config();
        let (h, v) = (config.hidden_size as f64, config.vocab_size as f64);
        let q = (config.num_attention_heads * config.head_dim) as f64;
        let layers = config.num_hidden_layers as f64;
        // Two sequences of 5 and 3 tokens, the last 2 of each supervised (the first token is
        // never predicted).
        let one = TrainBatch::from_sequences(&[((1..6).collect(), 3), ((1..4).collect(), 1)], 0);
        assert_eq!((one.num_tokens(), one.num_targets()), (8, 4));
        let base = batch_flops(&config, 0, &one);
        let with_lora = batch_flops(&config, 1000, &one);
        assert_eq!(with_lora - base, 6.0 * 1000.0 * 8.0);
        // The same samples packed in one row: the same tokens and targets, the same t².
        let packed =
            TrainBatch::from_packs(&[vec![((1..6).collect(), 3), ((1..4).collect(), 1)]], 0);
        assert_eq!(batch_flops(&config, 0, &packed), base);
        // Only the head and attention terms depend on targets and lengths.
        let no_targets =
            TrainBatch::from_sequences(&[((1..6).collect(), 5), ((1..4).collect(), 3)], 0);
        assert_eq!(
            base - batch_flops(&config, 0, &no_targets),
            4.0 * v * h * 4.0
        );
        assert_eq!(sequence_lengths(&one), vec![5, 3]);
        let attention = 6.0 * layers * q * (25.0 + 9.0);
        assert!(attention < base && attention > 0.0);
    }
}
