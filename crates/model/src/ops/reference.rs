//! The reference formulas of the [`super`] operations in burn's tensor ops: what runs on every
//! backend where no kernel covers a case, and the oracle the kernels are tested against.

use burn::tensor::activation::silu;
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::tensor::{cast_to, to_f32};

/// `x·wᵀ` `[m, n]` for `x` `[m, k]` and `w` `[n, k]` as Hugging Face stores it.
pub fn linear(x: Tensor<2>, w: Tensor<2>) -> Tensor<2> {
    x.matmul(w.transpose())
}

/// `Qwen3RMSNorm`: `x / sqrt(mean(x²) + eps)` over the last dimension in f32, cast back to `x`'s
/// dtype before the weight is applied.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let dtype = x.dtype();
    let x = to_f32(x);
    let inv_rms = x
        .clone()
        .square()
        .mean_dim(D - 1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    let normed = cast_to(x * inv_rms, dtype);
    normed * weight.unsqueeze::<D>()
}

/// `x·cos + rotate_half(x)·sin` for `x` `[b, heads, t, d]` (transformers' `apply_rotary_pos_emb`).
pub fn rope(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos + rotated * sin
}

/// `silu(gate) · up`, the SwiGLU activation.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    silu(gate) * up
}

/// Rows `ids` (`b × t`, row-major) of the embedding table `[vocab, hidden]`: `[b, t, hidden]`.
pub fn embed(table: Tensor<2>, ids: &[u32], b: usize, t: usize) -> Tensor<3> {
    let device = table.device();
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device);
    embedding(table, ids)
}

/// `softmax(q·kᵀ·scale + mask)·v` for `q` `[b, heads, t, d]` and `k`, `v` `[b, kv_heads, tk, d]`,
/// each kv head repeated for its query group (`repeat_kv`), by burn's attention. `hidden`
/// (`[b, 1, t, tk]`, true where a key is hidden from a query) is the mask; `None` is causal.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    hidden: Option<Tensor<4, Bool>>,
    scale: f64,
) -> Tensor<4> {
    let [b, heads, t, _] = q.dims();
    let [_, kv_heads, tk, _] = k.dims();
    let k = repeat_kv(k, heads / kv_heads);
    let v = repeat_kv(v, heads / kv_heads);
    let is_causal = hidden.is_none();
    let mask = hidden.map(|m| m.expand([b, heads, t, tk]));
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal,
    };
    attention(q, k, v, mask, None, options)
}

/// Single queries `q` `[n, heads, 1, d]`, query `i` of sequence `queries[i].0` seeing the first
/// `queries[i].1` keys of `k`, `v` `[b, kv_heads, kt, d]`: `[n, heads, 1, d]`.
pub fn attend_rows(
    queries: &[(usize, usize)],
    scale: f32,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
) -> Tensor<4> {
    let heads = q.dims()[1];
    let group = heads / k.dims()[1];
    let options = AttentionModuleOptions {
        scale: Some(f64::from(scale)),
        softcap: None,
        is_causal: false,
    };
    let rows = queries
        .iter()
        .enumerate()
        .map(|(i, &(row, seen))| {
            let keys =
                |x: &Tensor<4>| repeat_kv(x.clone().narrow(0, row, 1).narrow(2, 0, seen), group);
            attention(
                q.clone().narrow(0, i, 1),
                keys(&k),
                keys(&v),
                None,
                None,
                options,
            )
        })
        .collect();
    Tensor::cat(rows, 0)
}

/// `[b, kv, t, d]` → `[b, kv * n_rep, t, d]`, each kv head repeated for its query group
/// (`repeat_kv` in transformers).
fn repeat_kv(x: Tensor<4>, n_rep: usize) -> Tensor<4> {
    if n_rep == 1 {
        return x;
    }
    let [b, kv, t, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, n_rep, t, d])
        .reshape([b, kv * n_rep, t, d])
}

/// Each column's maximum `m` of `logits`, `exp(logits − m)` and its column sums.
pub fn shifted_exp(logits: Tensor<2>) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let max = logits.clone().max_dim(0);
    let shifted = (logits - max.clone()).exp();
    let sum = shifted.clone().sum_dim(0);
    (max, shifted, sum)
}
