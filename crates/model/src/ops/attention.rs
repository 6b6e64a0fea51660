//! Causal attention over the keys each query sees.

use burn::tensor::Tensor;

use super::mask::AttentionMask;
use super::reference;

/// `softmax(q·kᵀ·scale + mask)·v` for `q` `[b, heads, t, d]` and `k`, `v` `[b, kv_heads, tk, d]`
/// (grouped-query: each kv head serves `heads / kv_heads` query heads; a causal query `i` sees
/// keys `..= i + tk − t`). A kernel takes plain causal masks where it covers them, reading each
/// kv head in place instead of copying it per query head.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &AttentionMask,
    scale: f64,
) -> Tensor<4> {
    if matches!(mask, AttentionMask::Causal)
        && let Some(ctx) = medtune_kernels::causal_attention_if_covered(&q, &k, &v, scale as f32)
    {
        return ctx;
    }
    let hidden = match mask {
        AttentionMask::Causal => None,
        AttentionMask::Explicit(m) => Some((**m).clone()),
    };
    reference::causal_attention(q, k, v, hidden, scale)
}

/// Single queries at chosen positions: `q` `[n, heads, 1, d]`, query `i` of sequence
/// `queries[i].0` seeing the first `queries[i].1` keys of `k`, `v` `[b, kv_heads, kt, d]` (a causal
/// query at position `p` of an unpadded or right-padded sequence sees `p + 1`), as the causal
/// attention over the whole sequence computes them there. Returns `[n, heads, 1, d]`.
pub fn attend_rows(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    queries: &[(usize, usize)],
    scale: f32,
) -> Tensor<4> {
    medtune_kernels::attend_rows_if_covered(&q, &k, &v, queries, scale)
        .unwrap_or_else(|| reference::attend_rows(queries, scale, q, k, v))
}
