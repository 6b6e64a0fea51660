//! Causal self-attention for inference (prompts, evaluation batches) on the CPU (flex) backend.
//!
//! burn-flex 0.22.1 runs attention over sequences up to 512 tokens with its "naive" kernel: it
//! fills the whole `[t, t]` score matrix of every head, the causally masked half included, and
//! exponentiates it with scalar `expf`; with grouped-query attention the caller must first copy
//! each key/value head once per query head. On evaluation batches that kernel was a third of the
//! forward pass. This one computes only the scores a query may see, reads each key/value head in
//! place for its whole query group, and exponentiates with a polynomial that vectorises. Written by
//! hand (no crate offers a CPU attention kernel for burn's tensors); `multiversion` compiles it
//! for AVX-512, AVX2 and NEON and picks one at run time, `rayon` runs the (batch, head) pairs in
//! parallel.
//!
//! Used only where it is exactly burn's computation: flex tensors, f32, no autodiff (training
//! keeps burn's kernel and its gradients), a causal mask and no explicit one (unpadded prompts,
//! right-padded evaluation batches, decode steps of unpadded sequences).

use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::attention::backward::{Dims, causal_forward};
use crate::cpu::flex_tensor::{
    contiguous, f32_values, from_f32_values, from_values, is_f32_or_bf16,
};
use crate::math::fast_exp::exp_nonpositive;
use crate::math::lanes::{LANES, Stored, max_of, pairwise_sum, sum_of};

/// Shortest prompt sent to the blocked GEMM path; decode steps (a cache, one or a few queries)
/// and short prompts keep the row-by-row kernel below.
const BLOCKED_MIN_LEN: usize = 32;

/// `softmax(q·kᵀ·scale + causal) · v` for `q` `[b, heads, t, d]` and `k`, `v`
/// `[b, kv_heads, tk, d]` with `tk ≥ t` (the last `t` keys are the queries' own; query `i` sees
/// keys `..= i + tk − t`, as burn's causal offset), each kv head serving `heads / kv_heads` query
/// heads as `repeat_kv` would copy it. Returns `[b, heads, t, d]`, or `None` when this kernel does
/// not apply and burn's `attention` must run.
pub fn causal_if_covered(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>> {
    let [b, heads, t, d] = q.dims();
    let [kb, kv_heads, kt, _] = k.dims();
    if !kernel_inputs(q, k, v) || kb != b || kt < t || t == 0 {
        return None;
    }
    if t == 1 {
        return attend_newest_queries(q, k, v, scale);
    }
    if q.dtype() != DType::F32 {
        return None;
    }
    let (q, k, v) = (contiguous(q)?, contiguous(k)?, contiguous(v)?);
    let (q, k, v): (&[f32], &[f32], &[f32]) = (q.as_slice()?, k.as_slice()?, v.as_slice()?);
    if kt == t && t >= BLOCKED_MIN_LEN && crate::features::cpu().avx512f {
        // A whole prompt: blocks of query rows against the keys they see, through the GEMM
        // (the training kernel's forward pass; 2.5–3× this file's row kernel at these lengths,
        // `cargo run --release -p medtune-kernels --features flex --example attention_kernels`).
        let dims = Dims {
            b,
            heads,
            kv_heads,
            t,
            d,
            scale,
        };
        let (out, _) = causal_forward(q, k, v, dims);
        return Some(from_values(out, [b, heads, t, d]));
    }
    let group = heads / kv_heads;
    let (head_len, kv_len) = (t * d, kt * d);
    let past = kt - t;
    // Keys transposed once per kv head, shared by the query heads of its group.
    let keys_t: Vec<Vec<f32>> = (0..b * kv_heads)
        .into_par_iter()
        .map(|kv| transpose(&k[kv * kv_len..][..kv_len], kt, d))
        .collect();
    // One task per (batch, query head); each writes its own `[t, d]`, scattered below into the
    // `[b, t, heads, d]` layout the output projection reads without a copy.
    let per_head: Vec<Vec<f32>> = (0..b * heads)
        .into_par_iter()
        .map(|bh| {
            let (batch, head) = (bh / heads, bh % heads);
            let kv = batch * kv_heads + head / group;
            let mut out = vec![0.0f32; head_len];
            let mut scores = vec![0.0f32; kt];
            let k_t = &keys_t[kv];
            let (q, v) = (&q[bh * head_len..][..head_len], &v[kv * kv_len..][..kv_len]);
            let (scores, out_ref) = (&mut scores, &mut out);
            // Qwen3's head dims get a copy of the kernel that holds a row's output in registers.
            match d {
                64 => attend_head::<64>(q, k_t, v, d, past, scale, scores, out_ref),
                128 => attend_head::<128>(q, k_t, v, d, past, scale, scores, out_ref),
                32 => attend_head::<32>(q, k_t, v, d, past, scale, scores, out_ref),
                16 => attend_head::<16>(q, k_t, v, d, past, scale, scores, out_ref),
                _ => attend_head::<0>(q, k_t, v, d, past, scale, scores, out_ref),
            }
            out
        })
        .collect();
    let mut out = vec![0.0f32; b * heads * head_len];
    for (bh, head_out) in per_head.iter().enumerate() {
        let (batch, head) = (bh / heads, bh % heads);
        for (i, row) in head_out.chunks_exact(d).enumerate() {
            let at = ((batch * t + i) * heads + head) * d;
            out[at..at + d].copy_from_slice(row);
        }
    }
    Some(from_values(out, [b, t, heads, d]).swap_dims(1, 2))
}

/// One query per sequence and head (a decode step) against every cached key, f32 or bf16: the
/// keys and values are read where they are, in the cache's buffers (views with spare slots
/// after the filled ones) and in their stored type. Returns `[b, heads, 1, d]` in `q`'s dtype.
fn attend_newest_queries(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>> {
    let [b, _, kt, _] = k.dims();
    let queries: Vec<(usize, usize)> = (0..b).map(|batch| (batch, kt)).collect();
    attend_queries(q, k, v, &queries, scale)
}

/// Single queries at chosen positions: `q` `[n, heads, 1, d]`, query `i` of sequence
/// `queries[i].0` seeing the first `queries[i].1` keys of `k`, `v` `[b, kv_heads, kt, d]` (a
/// causal query at position `p` of an unpadded or right-padded sequence sees `p + 1`), as the
/// causal attention over the whole sequence computes them at those positions. f32 or bf16
/// without autodiff on flex; `None` otherwise. Returns `[n, heads, 1, d]` in `q`'s dtype.
pub fn attend_rows_if_covered(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    queries: &[(usize, usize)],
    scale: f32,
) -> Option<Tensor<4>> {
    let [n, _, one, _] = q.dims();
    let [b, _, kt, _] = k.dims();
    let applies = kernel_inputs(q, k, v)
        && (one, queries.len()) == (1, n)
        && queries
            .iter()
            .all(|&(batch, seen)| batch < b && (1..=kt).contains(&seen));
    if !applies {
        return None;
    }
    attend_queries(q, k, v, queries, scale)
}

/// What both entry points need of `q` `[_, heads, _, d]` and `k`, `v` `[_, kv_heads, _, d]`:
/// one dtype, f32 or bf16, no autodiff, keys and values of one shape, a head dim, and query
/// heads that split evenly into kv groups.
fn kernel_inputs(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> bool {
    let ([_, heads, _, d], [_, kv_heads, _, kd]) = (q.dims(), k.dims());
    let dtype = q.dtype();
    [q, k, v]
        .iter()
        .all(|x| x.dtype() == dtype && !x.is_autodiff())
        && is_f32_or_bf16(dtype)
        && v.dims() == k.dims()
        && kd == d
        && d > 0
        && kv_heads > 0
        && heads % kv_heads == 0
}

/// [`attend_rows_if_covered`] once its inputs are checked: one task per (query, kv head) for the
/// query heads of its group.
fn attend_queries(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    queries: &[(usize, usize)],
    scale: f32,
) -> Option<Tensor<4>> {
    let [n, heads, _, d] = q.dims();
    let kv_heads = k.dims()[1];
    let group = heads / kv_heads;
    let q_values = f32_values(q)?;
    let (keys, values) = (KvRows::of(k)?, KvRows::of(v)?);
    let per_kv_head = |task: usize| {
        let (query, head) = (task / kv_heads, task % kv_heads);
        let (batch, seen) = queries[query];
        let q = &q_values.as_slice()[task * group * d..][..group * d];
        let mut out = vec![0.0f32; group * d];
        let mut scores = vec![0.0f32; group * seen];
        let (scores_ref, out_ref) = (&mut scores, &mut out);
        if keys.tensor.dtype() == DType::BF16 {
            let (k, v) = (
                keys.rows::<u16>(batch, head, seen, d),
                values.rows(batch, head, seen, d),
            );
            attend_one_query::<u16>(q, k, v, d, scale, scores_ref, out_ref);
        } else {
            let (k, v) = (
                keys.rows::<f32>(batch, head, seen, d),
                values.rows(batch, head, seen, d),
            );
            attend_one_query::<f32>(q, k, v, d, scale, scores_ref, out_ref);
        }
        out
    };
    // `[n, kv_heads, group, d]` is `[n, heads, d]`: the query heads of a group are adjacent.
    let out: Vec<f32> = (0..n * kv_heads)
        .into_par_iter()
        .flat_map_iter(per_kv_head)
        .collect();
    Some(from_f32_values(out, [n, heads, 1, d], q.dtype()))
}

/// Keys or values `[b, kv_heads, kt, d]` read in place: each head's `kt` rows of `d` are
/// contiguous (the cache's buffers), the heads and sequences anywhere.
struct KvRows {
    tensor: FlexTensor,
    offset: usize,
    batch_stride: usize,
    head_stride: usize,
}

impl KvRows {
    fn of(x: &Tensor<4>) -> Option<Self> {
        let x = x.clone().try_into_primitive::<Flex>().ok()?;
        let [_, _, kt, d] = x.layout().shape().dims::<4>();
        let rows_contiguous = |x: &FlexTensor| {
            let s = x.layout().strides();
            s[3] == 1 && (s[2] == d as isize || kt == 1) && s[0] >= 0 && s[1] >= 0
        };
        let tensor = if rows_contiguous(&x) {
            x
        } else {
            x.to_contiguous()
        };
        let strides = tensor.layout().strides();
        Some(Self {
            offset: tensor.layout().start_offset(),
            batch_stride: strides[0] as usize,
            head_stride: strides[1] as usize,
            tensor,
        })
    }

    /// The first `kt` rows `[kt, d]` of one (sequence, kv head), as `E` (`u16` for bf16
    /// storage, `f32`).
    fn rows<E: bytemuck::Pod>(&self, batch: usize, head: usize, kt: usize, d: usize) -> &[E] {
        let all: &[E] = match self.tensor.dtype() {
            DType::BF16 => bytemuck::cast_slice(self.tensor.storage::<half::bf16>()),
            _ => bytemuck::cast_slice(self.tensor.storage::<f32>()),
        };
        let at = self.offset + batch * self.batch_stride + head * self.head_stride;
        &all[at..][..kt * d]
    }
}

/// The queries of one kv head's group (`q` `[group, d]`) against its keys and values
/// (`[kt, d]` each, stored as `E`): scores, softmax and the weighted sum of values into `out`
/// `[group, d]`; `scores` holds `[group, kt]`. Each key and value row is read once for the whole
/// group.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn attend_one_query<E: Stored>(
    q: &[f32],
    keys: &[E],
    values: &[E],
    d: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let kt = keys.len() / d;
    // Keys four at a time: four independent sums in flight (one key's chain of dependent adds
    // left the core waiting on each), then four reductions.
    const KEYS: usize = 4;
    let blocks = keys.chunks_exact(KEYS * d);
    let rest = blocks.remainder();
    for (block, four) in blocks.enumerate() {
        for (g, q) in q.chunks_exact(d).enumerate() {
            let mut lanes = [[0.0f32; LANES]; KEYS];
            for (c, qs) in q.chunks(LANES).enumerate() {
                for (key, lanes) in lanes.iter_mut().enumerate() {
                    let ks = &four[key * d + c * LANES..][..qs.len()];
                    for ((l, q), k) in lanes.iter_mut().zip(qs).zip(ks) {
                        *l += q * k.widen();
                    }
                }
            }
            for (key, lanes) in lanes.into_iter().enumerate() {
                scores[g * kt + block * KEYS + key] = pairwise_sum(lanes) * scale;
            }
        }
    }
    let first_rest = kt - rest.len() / d;
    for (j, key) in rest.chunks_exact(d).enumerate() {
        for (g, q) in q.chunks_exact(d).enumerate() {
            let mut lanes = [0.0f32; LANES];
            for (qs, ks) in q.chunks(LANES).zip(key.chunks(LANES)) {
                for ((l, q), k) in lanes.iter_mut().zip(qs).zip(ks) {
                    *l += q * k.widen();
                }
            }
            scores[g * kt + first_rest + j] = pairwise_sum(lanes) * scale;
        }
    }
    for (seen, out) in scores.chunks_exact_mut(kt).zip(out.chunks_exact_mut(d)) {
        let max = max_of(seen);
        for s in seen.iter_mut() {
            *s = exp_nonpositive(*s - max);
        }
        let inv_sum = 1.0 / sum_of(seen);
        out.fill(0.0);
        for (p, value) in seen.iter().zip(values.chunks_exact(d)) {
            for (o, x) in out.iter_mut().zip(value) {
                *o += p * x.widen();
            }
        }
        for o in out.iter_mut() {
            *o *= inv_sum;
        }
    }
}

/// `x` `[rows, cols]` as `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for (r, row) in x.chunks_exact(cols).enumerate() {
        for (c, value) in row.iter().enumerate() {
            out[c * rows + r] = *value;
        }
    }
    out
}

/// One (batch, head) pair: for each query row `i`, the scores against keys `0..=past + i`, their
/// softmax, and the weighted sum of values, into `out[i]`. The keys come transposed (`k_t`,
/// `[d, tk]`) so that a query's scores accumulate along the keys, in full vectors, with no
/// horizontal sum per key. `D` is the head dim when known at compile time (0: only at run time).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
#[allow(clippy::too_many_arguments)]
fn attend_head<const D: usize>(
    q: &[f32],
    k_t: &[f32],
    v: &[f32],
    d: usize,
    past: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    for (i, (q_row, out_row)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let seen = &mut scores[..=past + i];
        seen.fill(0.0);
        for (q, k_dim) in q_row.iter().zip(k_t.chunks_exact(k_t.len() / d)) {
            let q = q * scale;
            for (s, k) in seen.iter_mut().zip(k_dim) {
                *s += q * k;
            }
        }
        let max = max_of(seen);
        for s in seen.iter_mut() {
            *s = exp_nonpositive(*s - max);
        }
        let inv_sum = 1.0 / sum_of(seen);
        if D > 0 {
            let mut acc = [0.0f32; D];
            for (p, v_row) in seen.iter().zip(v.chunks_exact(D)) {
                for (a, x) in acc.iter_mut().zip(v_row) {
                    *a += p * x;
                }
            }
            for (o, a) in out_row.iter_mut().zip(&acc) {
                *o = a * inv_sum;
            }
        } else {
            out_row.fill(0.0);
            for (p, v_row) in seen.iter().zip(v.chunks_exact(d)) {
                for (o, x) in out_row.iter_mut().zip(v_row) {
                    *o += p * x;
                }
            }
            for o in out_row.iter_mut() {
                *o *= inv_sum;
            }
        }
    }
}

/// burn's causal attention (its naive kernel at these lengths) with the kv heads repeated as
/// transformers' `repeat_kv` does: the reference the CPU kernels are tested against.
#[cfg(test)]
pub(crate) fn burn_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
) -> Tensor<4> {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    let [b, heads, _, d] = q.dims();
    let [_, kv_heads, kt, _] = k.dims();
    let repeat = |x: Tensor<4>| {
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv_heads, heads / kv_heads, kt, d])
            .reshape([b, heads, kt, d])
    };
    let options = AttentionModuleOptions {
        scale: Some(scale as f64),
        softcap: None,
        is_causal: true,
    };
    attention(q, repeat(k), repeat(v), None, None, options)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn equals_burns_causal_attention() {
        let device = crate::cpu::test_device();
        // Head dims below, at and beyond one vector of lanes; GQA 2:1 and 1:1; one query; keys
        // already cached before the queries (a decode step, a continued prompt); prompts of 32
        // tokens or more take the blocked path, over one block and over three.
        for (b, heads, kv_heads, t, kt, d) in [
            (2, 4, 2, 37, 37, 20),
            (1, 4, 2, 150, 150, 32),
            (1, 2, 2, 5, 5, 16),
            (3, 2, 1, 1, 1, 64),
            (2, 4, 2, 1, 30, 24),
            (1, 2, 1, 6, 19, 32),
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let q = Tensor::<4>::random([b, heads, t, d], normal, &device);
            let k = Tensor::<4>::random([b, kv_heads, kt, d], normal, &device);
            // A strided view, as the model's `swap_dims` produces.
            let v = Tensor::<4>::random([b, kt, kv_heads, d], normal, &device).swap_dims(1, 2);
            let scale = 1.0 / (d as f32).sqrt();
            let got = causal_if_covered(&q, &k, &v, scale).expect("f32 on flex is covered");
            let want = burn_causal_attention(q, k, v, scale);
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(
                diff <= 1e-5,
                "{b}x{heads}/{kv_heads}x{t}/{kt}x{d}: differs by {diff}"
            );
        }
    }

    #[test]
    fn decode_steps_read_cache_buffers_in_place_in_f32_and_bf16() {
        use burn::tensor::FloatDType;
        let device = crate::cpu::test_device();
        let normal = Distribution::Normal(0.0, 1.0);
        // (batch, heads, kv heads, cached keys, spare slots, head dim)
        for (b, heads, kv_heads, kt, spare, d) in [(1, 4, 2, 9, 7, 32), (2, 6, 3, 40, 0, 20)] {
            let q = Tensor::<4>::random([b, heads, 1, d], normal, &device);
            // Keys and values as the cache holds them: the first `kt` slots of longer buffers.
            let buffer = || Tensor::<4>::random([b, kv_heads, kt + spare, d], normal, &device);
            let (k, v) = (buffer().narrow(2, 0, kt), buffer().narrow(2, 0, kt));
            let scale = 1.0 / (d as f32).sqrt();
            let want = burn_causal_attention(q.clone(), k.clone(), v.clone(), scale);
            let got = causal_if_covered(&q, &k, &v, scale).expect("f32 decode on flex is covered");
            let diff = (got - want.clone()).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-5, "f32 {b}x{heads}x{kt}: differs by {diff}");

            // bf16: the same arithmetic on the rounded inputs, one rounding of the output.
            let half = |x: Tensor<4>| x.cast(FloatDType::BF16);
            let (q, k, v) = (half(q), half(k), half(v));
            let got = causal_if_covered(&q, &k, &v, scale).expect("bf16 decode on flex is covered");
            assert_eq!(got.dtype(), burn::tensor::DType::BF16);
            let wide = |x: Tensor<4>| x.cast(FloatDType::F32);
            let want = burn_causal_attention(wide(q), wide(k), wide(v), scale);
            let diff = (wide(got) - want.clone()).abs().max().into_scalar::<f32>();
            let largest = want.abs().max().into_scalar::<f32>();
            assert!(
                diff <= largest / 128.0,
                "bf16 {b}x{heads}x{kt}: differs by {diff}"
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let device = crate::cpu::test_device();
        let x = Tensor::<4>::zeros([1, 2, 3, 4], &device);
        let shorter = Tensor::<4>::zeros([1, 2, 2, 4], &device);
        assert!(
            causal_if_covered(&x, &shorter, &shorter, 1.0).is_none(),
            "fewer keys than queries"
        );
        let half = x.clone().cast(burn::tensor::FloatDType::BF16);
        assert!(
            causal_if_covered(&half, &half, &half, 1.0).is_none(),
            "bf16 prompts"
        );
        let tracked = x.clone().autodiff();
        assert!(
            causal_if_covered(&tracked, &x, &x, 1.0).is_none(),
            "autodiff"
        );
    }
}
