//! Causal self-attention with its gradient for training on the CPU (flex) backend, f32, as a
//! custom burn autodiff operation.
//!
//! burn's autodiff records attention as its generic fallback: the whole `[t, t]` score matrix of
//! every head (the masked half included), a softmax of four ops with scalar `expf`, two batched
//! matmuls, each kv head first copied once per query head; and the backward pass walks all of it
//! again. That was ~20 % of a LoRA step on the small preset (`perf record` of `medtune bench
//! train`). Here, per (sequence, kv head) and its group of query heads, in blocks of query rows,
//! only the keys a block may see are multiplied, through medtune's GEMM ([`crate::cpu::matmul::gemm`]);
//! the forward pass keeps only each row's log-sum-exp, and the backward pass recomputes the
//! probabilities from it (flash-attention's scheme, Dao et al. 2022):
//!
//! ```text
//! P = exp(scale·Q·Kᵀ − lse)      (causal: 0 above the diagonal)
//! dV = Pᵀ·dO    dP = dO·Vᵀ    D = rowsum(P ⊙ dP)    dS = P ⊙ (dP − D)
//! dQ = scale·dS·K    dK = scale·dSᵀ·Q
//! ```
//!
//! Written by hand: no crate offers a CPU attention backward pass for burn's tensors.

use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::{
    contiguous_primitive, for_each_checkpointing, primitive_from_values,
};
use crate::cpu::matmul::gemm::{self, MatRef, PackedB};
use crate::math::fast_exp::exp_nonpositive;
use crate::math::lanes::{LANES, max_of, pairwise_sum};

/// Query rows per block: a block's scores against the keys it sees, `[64, ≤ t]`, stay in L2.
const ROW_BLOCK: usize = 64;

/// `softmax(q·kᵀ·scale + causal)·v` for `q` `[b, heads, t, d]` and `k`, `v`
/// `[b, kv_heads, t, d]` (each kv head serving `heads / kv_heads` query heads), recorded for
/// autodiff with the gradients above; `None` when this does not apply (no autodiff, another
/// backend or dtype, a key cache, a CPU without AVX-512): the caller then uses burn's attention.
pub fn causal_autodiff_if_covered(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>> {
    let [b, heads, t, d] = q.dims();
    let [kb, kv_heads, kt, kd] = k.dims();
    let applies = [q, k, v].iter().all(|x| x.dtype() == DType::F32)
        && q.is_autodiff()
        && v.dims() == k.dims()
        && (kb, kt, kd) == (b, t, d)
        && kv_heads > 0
        && heads % kv_heads == 0
        && t > 0
        && d > 0
        && crate::features::cpu().avx512f;
    if !applies {
        return None;
    }
    let dims = Dims {
        b,
        heads,
        kv_heads,
        t,
        d,
        scale,
    };
    for_each_checkpointing!(|S| {
        if let (Ok(q), Ok(k), Ok(v)) = (
            q.clone().try_into_primitive::<Autodiff<Flex, S>>(),
            k.clone().try_into_primitive::<Autodiff<Flex, S>>(),
            v.clone().try_into_primitive::<Autodiff<Flex, S>>(),
        ) {
            let inputs = Inputs {
                q: contiguous_primitive(q.primitive()),
                k: contiguous_primitive(k.primitive()),
                v: contiguous_primitive(v.primitive()),
            };
            let (out, lse) = forward(&inputs, dims)?;
            let out = primitive_from_values(out, [b, heads, t, d]);
            let out = match CausalAttention
                .prepare::<S>([q.node(), k.node(), v.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(State { inputs, lse, dims }, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            return Some(Tensor::from_primitive::<Autodiff<Flex, S>>(out));
        }
    });
    None
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub b: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub t: usize,
    pub d: usize,
    pub scale: f32,
}

impl Dims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// q, k, v as contiguous flex tensors.
#[derive(Clone, Debug)]
struct Inputs {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
}

impl Inputs {
    fn slices(&self) -> Option<(&[f32], &[f32], &[f32])> {
        Some((self.q.as_slice()?, self.k.as_slice()?, self.v.as_slice()?))
    }
}

/// What the backward pass needs: the inputs and each query row's log-sum-exp.
#[derive(Clone, Debug)]
struct State {
    inputs: Inputs,
    lse: Vec<f32>,
    dims: Dims,
}

#[derive(Debug)]
struct CausalAttention;

impl Backward<Flex, 3> for CausalAttention {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = contiguous_primitive(&grads.consume::<Flex>(&ops.node));
        let State { inputs, lse, dims } = ops.state;
        let (dq, dk, dv) = backward(&inputs, &lse, grad_out.as_slice().expect("f32"), dims);
        let [parent_q, parent_k, parent_v] = ops.parents;
        let (q_shape, kv_shape) = (
            [dims.b, dims.heads, dims.t, dims.d],
            [dims.b, dims.kv_heads, dims.t, dims.d],
        );
        for (parent, grad, shape) in [
            (parent_q, dq, q_shape),
            (parent_k, dk, kv_shape),
            (parent_v, dv, kv_shape),
        ] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, primitive_from_values(grad, shape));
            }
        }
    }
}

/// Output `[b, heads, t, d]` and log-sum-exp `[b, heads, t]`.
fn forward(inputs: &Inputs, dims: Dims) -> Option<(Vec<f32>, Vec<f32>)> {
    let (q, k, v) = inputs.slices()?;
    Some(causal_forward(q, k, v, dims))
}

/// Causal attention without a key cache by row blocks through the GEMM: the output
/// `[b, heads, t, d]` and each query row's log-sum-exp `[b, heads, t]`, for contiguous f32 `q`
/// `[b, heads, t, d]` and `k`, `v` `[b, kv_heads, t, d]`.
pub fn causal_forward(q: &[f32], k: &[f32], v: &[f32], dims: Dims) -> (Vec<f32>, Vec<f32>) {
    let Dims {
        b,
        heads,
        t,
        d,
        scale,
        ..
    } = dims;
    let group = dims.group();
    let mut out = vec![0.0f32; b * heads * t * d];
    let mut lse = vec![0.0f32; b * heads * t];
    // One task per (sequence, kv head): its query heads' outputs are one contiguous block.
    out.par_chunks_mut(group * t * d)
        .zip(lse.par_chunks_mut(group * t))
        .enumerate()
        .for_each(|(task, (out, lse))| {
            let (kh, vh) = (&k[task * t * d..][..t * d], &v[task * t * d..][..t * d]);
            // Kᵀ packed once for every block of every query head of the group.
            let keys_t = PackedB::new(MatRef::transposed(kh, d), d, t);
            let mut probs = vec![0.0f32; ROW_BLOCK * t];
            let mut inv_sum = [0.0f32; ROW_BLOCK];
            for g in 0..group {
                let head = task * group + g;
                let qh = &q[head * t * d..][..t * d];
                let (out, lse) = (&mut out[g * t * d..][..t * d], &mut lse[g * t..][..t]);
                for i0 in (0..t).step_by(ROW_BLOCK) {
                    let (rows, seen) = (ROW_BLOCK.min(t - i0), (i0 + ROW_BLOCK).min(t));
                    let p = &mut probs[..rows * seen];
                    scores(&qh[i0 * d..], &keys_t, rows, seen, d, p);
                    let lse = &mut lse[i0..i0 + rows];
                    softmax_rows(p, i0, seen, scale, lse, &mut inv_sum[..rows]);
                    // O = P·V[..seen], then each row divided by its sum.
                    let out = &mut out[i0 * d..][..rows * d];
                    gemm::gemm(
                        rows,
                        d,
                        seen,
                        MatRef::row_major(p, seen),
                        MatRef::row_major(vh, d),
                        out,
                        d,
                        false,
                    );
                    for (row, inv) in out.chunks_exact_mut(d).zip(&inv_sum) {
                        row.iter_mut().for_each(|x| *x *= inv);
                    }
                }
            }
        });
    (out, lse)
}

/// `q_rows·k[..seen]ᵀ` `[rows, seen]`, unscaled, from the packed `kᵀ`.
fn scores(q_rows: &[f32], keys_t: &PackedB, rows: usize, seen: usize, d: usize, out: &mut [f32]) {
    gemm::gemm_packed(
        rows,
        seen,
        MatRef::row_major(q_rows, d),
        keys_t,
        out,
        seen,
        false,
    );
}

/// Rows `i0..` of raw scores `[rows, seen]` → their unnormalised causal softmax in place,
/// exp(scale·s − max) (0 above the diagonal), each row's log-sum-exp of the scaled scores into
/// `lse` and the reciprocal of its sum into `inv_sum` (the output rows are scaled after the
/// product with V: one pass fewer over the block).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn softmax_rows(
    p: &mut [f32],
    i0: usize,
    seen: usize,
    scale: f32,
    lse: &mut [f32],
    inv_sum: &mut [f32],
) {
    let rows = p
        .chunks_exact_mut(seen)
        .zip(lse.iter_mut().zip(inv_sum.iter_mut()));
    for (r, (row, (lse, inv_sum))) in rows.enumerate() {
        let (visible, hidden) = row.split_at_mut(i0 + r + 1);
        hidden.fill(0.0);
        let max = max_of(visible) * scale;
        let mut lanes = [0.0f32; LANES];
        for chunk in visible.chunks_mut(LANES) {
            for (x, s) in chunk.iter_mut().zip(lanes.iter_mut()) {
                *x = exp_nonpositive(*x * scale - max);
                *s += *x;
            }
        }
        let sum = pairwise_sum(lanes);
        *inv_sum = 1.0 / sum;
        *lse = max + sum.ln();
    }
}

/// Gradients of q `[b, heads, t, d]`, k and v `[b, kv_heads, t, d]` for the output gradient
/// `grad_out` `[b, heads, t, d]`.
fn backward(
    inputs: &Inputs,
    lse: &[f32],
    grad_out: &[f32],
    dims: Dims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims {
        b,
        heads,
        kv_heads,
        t,
        d,
        scale,
    } = dims;
    let (q, k, v) = inputs.slices().expect("f32 inputs");
    let group = dims.group();
    let mut dq = vec![0.0f32; b * heads * t * d];
    let mut dk = vec![0.0f32; b * kv_heads * t * d];
    let mut dv = vec![0.0f32; b * kv_heads * t * d];
    dq.par_chunks_mut(group * t * d)
        .zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d)))
        .enumerate()
        .for_each(|(task, (dq, (dk, dv)))| {
            let (kh, vh) = (&k[task * t * d..][..t * d], &v[task * t * d..][..t * d]);
            let keys_t = PackedB::new(MatRef::transposed(kh, d), d, t);
            let values_t = PackedB::new(MatRef::transposed(vh, d), d, t);
            let mut probs = vec![0.0f32; ROW_BLOCK * t];
            let mut dprobs = vec![0.0f32; ROW_BLOCK * t];
            for g in 0..group {
                let head = task * group + g;
                let (qh, doh) = (
                    &q[head * t * d..][..t * d],
                    &grad_out[head * t * d..][..t * d],
                );
                let (lse, dq) = (&lse[head * t..][..t], &mut dq[g * t * d..][..t * d]);
                for i0 in (0..t).step_by(ROW_BLOCK) {
                    let (rows, seen) = (ROW_BLOCK.min(t - i0), (i0 + ROW_BLOCK).min(t));
                    let (q_blk, do_blk) = (&qh[i0 * d..][..rows * d], &doh[i0 * d..][..rows * d]);
                    let p = &mut probs[..rows * seen];
                    scores(q_blk, &keys_t, rows, seen, d, p);
                    recompute_probs(p, i0, seen, scale, &lse[i0..i0 + rows]);
                    // dV[..seen] += Pᵀ·dO
                    gemm::gemm(
                        seen,
                        d,
                        rows,
                        MatRef::transposed(p, seen),
                        MatRef::row_major(do_blk, d),
                        dv,
                        d,
                        true,
                    );
                    // dP = dO·V[..seen]ᵀ
                    let dp = &mut dprobs[..rows * seen];
                    gemm::gemm_packed(
                        rows,
                        seen,
                        MatRef::row_major(do_blk, d),
                        &values_t,
                        dp,
                        seen,
                        false,
                    );
                    // dS·scale, into dp
                    score_grads(p, dp, seen, scale);
                    // dQ = dS·K[..seen]
                    gemm::gemm(
                        rows,
                        d,
                        seen,
                        MatRef::row_major(dp, seen),
                        MatRef::row_major(kh, d),
                        &mut dq[i0 * d..],
                        d,
                        false,
                    );
                    // dK[..seen] += dSᵀ·Q
                    gemm::gemm(
                        seen,
                        d,
                        rows,
                        MatRef::transposed(dp, seen),
                        MatRef::row_major(q_blk, d),
                        dk,
                        d,
                        true,
                    );
                }
            }
        });
    (dq, dk, dv)
}

/// Raw scores → P = exp(scale·s − lse), 0 above the diagonal.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn recompute_probs(p: &mut [f32], i0: usize, seen: usize, scale: f32, lse: &[f32]) {
    for (r, (row, lse)) in p.chunks_exact_mut(seen).zip(lse).enumerate() {
        let (visible, hidden) = row.split_at_mut(i0 + r + 1);
        hidden.fill(0.0);
        for x in visible.iter_mut() {
            // ≤ 0 up to rounding: lse is at least the row's largest scaled score.
            *x = exp_nonpositive((*x * scale - lse).min(0.0));
        }
    }
}

/// dP → scale·P ⊙ (dP − rowsum(P ⊙ dP)), in place.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn score_grads(p: &[f32], dp: &mut [f32], seen: usize, scale: f32) {
    for (p_row, dp_row) in p.chunks_exact(seen).zip(dp.chunks_exact_mut(seen)) {
        let mut lanes = [0.0f32; LANES];
        for (p, g) in p_row.chunks(LANES).zip(dp_row.chunks(LANES)) {
            for ((acc, p), g) in lanes.iter_mut().zip(p).zip(g) {
                *acc += p * g;
            }
        }
        let dot = pairwise_sum(lanes);
        for (g, p) in dp_row.iter_mut().zip(p_row) {
            *g = scale * p * (*g - dot);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::cpu::attention::prompt::burn_causal_attention;

    #[test]
    fn output_and_gradients_equal_burns_attention() {
        if !crate::features::cpu().avx512f {
            eprintln!("no AVX-512F here: the operation is never used on this CPU");
            return;
        }
        let device = crate::cpu::test_device().autodiff();
        // Two row blocks (the second short), GQA groups of 3, a head dim off the lane width.
        for (b, heads, kv_heads, t, d) in [(2, 6, 2, 70, 40), (1, 2, 2, 5, 16)] {
            let normal = Distribution::Normal(0.0, 1.0);
            let q = Tensor::<4>::random([b, heads, t, d], normal, &device);
            let k = Tensor::<4>::random([b, kv_heads, t, d], normal, &device);
            let v = Tensor::<4>::random([b, kv_heads, t, d], normal, &device);
            let r = Tensor::<4>::random([b, heads, t, d], normal, &device);
            let scale = 1.0 / (d as f32).sqrt();
            let run = |ours: bool| {
                let (q, k, v) = (
                    q.clone().require_grad(),
                    k.clone().require_grad(),
                    v.clone().require_grad(),
                );
                let out = if ours {
                    causal_autodiff_if_covered(&q, &k, &v, scale).expect("autodiff f32 on flex")
                } else {
                    burn_causal_attention(q.clone(), k.clone(), v.clone(), scale)
                };
                let grads = (out.clone() * r.clone()).sum().backward();
                let grad = |x: &Tensor<4>| x.grad(&grads).expect("a gradient");
                (out.inner(), grad(&q), grad(&k), grad(&v))
            };
            let (ours, theirs) = (run(true), run(false));
            let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
            assert!(diff(ours.0, theirs.0) < 1e-5, "output");
            assert!(diff(ours.1, theirs.1) < 1e-4, "dq");
            assert!(diff(ours.2, theirs.2) < 1e-4, "dk");
            assert!(diff(ours.3, theirs.3) < 1e-4, "dv");
        }
        let plain = Tensor::<4>::zeros([1, 2, 3, 4], &crate::cpu::test_device());
        assert!(causal_autodiff_if_covered(&plain, &plain, &plain, 0.5).is_none());
    }
}
