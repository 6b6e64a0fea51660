//! The entry points the model's `ops` seam calls. Each `*_if_covered` function runs a
//! hand-written kernel where one covers the case (backend, dtype, shape, autodiff, CPU features)
//! and returns `None` where none does, having changed nothing: the caller then computes its
//! reference formula in burn's ops. Built without a kernel backend feature, every one of them
//! declines.
//!
//! The functions on packed weights have no reference: weights are packed only where
//! [`pack_if_covered`] succeeded, which needs the CPU kernels.

use burn::tensor::{Device, Tensor};

use crate::packed_bf16::PackedBf16;

#[cfg(feature = "flex")]
use crate::cpu;

/// What [`head_softmax_if_covered`] computes, per hidden state (row of `hidden`): everything
/// the log-softmax at its target needs.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSoftmax {
    /// log Σ exp(logits).
    pub lse: Vec<f32>,
    /// The target's logit.
    pub target_logit: Vec<f32>,
    /// The largest logit.
    pub max: Vec<f32>,
    /// `softmax(h·Wᵀ)·W`, `[n, h]` row-major, when asked for.
    pub expected_row: Option<Vec<f32>>,
}

/// Whether `device` is the CPU backend these kernels serve. There operations run on the host's
/// threads, so work is better split by sequence than within each operation (evaluation), and
/// weights can be packed.
pub fn runs_on_cpu(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// `f()` on a thread of rayon's pool where the CPU kernels use it: a product started from inside
/// the pool lets the calling thread take half of the work, where one started from outside sleeps
/// until the pool's threads finish (two wake-ups per product).
pub fn on_compute_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    {
        rayon::scope(|_| f())
    }
    #[cfg(not(feature = "flex"))]
    {
        f()
    }
}

/// Writes each entry point: with `flex`, its CPU kernels' expression; without, `None`.
macro_rules! entry_points {
    ($(
        $(#[$doc:meta])*
        fn $name:ident $(<const $d:ident: usize>)? ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty
            => $cpu:expr;
    )*) => {$(
        $(#[$doc])*
        pub fn $name $(<const $d: usize>)? ($($arg: $ty),*) -> Option<$ret> {
            #[cfg(feature = "flex")]
            {
                $cpu
            }
            #[cfg(not(feature = "flex"))]
            {
                let _ = ($($arg,)*);
                None
            }
        }
    )*};
}

entry_points! {
    /// `x·wᵀ` `[m, n]` for `x` `[m, k]` and `w` `[n, k]` as stored: the few-row GEMV (decoding,
    /// f32 or bf16 read in place), the f32 GEMM (prompts, batches), or the same GEMM in both
    /// directions under autodiff for a frozen weight (training).
    fn linear_if_covered(x: &Tensor<2>, w: &Tensor<2>) -> Tensor<2>
        => cpu::matmul::gemv::linear_if_covered(x, w)
            .or_else(|| cpu::matmul::gemm::linear_if_covered(x, w))
            .or_else(|| cpu::matmul::frozen::linear_if_covered(x, w));

    /// [`linear_if_covered`] for several weights that read the same `x` (q, k and v; gate and
    /// up), in one parallel pass over all their rows: the few-row GEMV only.
    fn linear_many_if_covered(x: &Tensor<2>, ws: &[Tensor<2>]) -> Vec<Tensor<2>>
        => cpu::matmul::gemv::linear_many_if_covered(x, ws);

    /// `silu(x·gateᵀ) · (x·upᵀ)` by one GEMM that keeps both sums in registers (f32 inference of
    /// 16 rows or more).
    fn gate_up_swiglu_if_covered(x: &Tensor<3>, gate: &Tensor<2>, up: &Tensor<2>) -> Tensor<3>
        => cpu::matmul::gate_up::gate_up_swiglu_if_covered(x, gate, up);

    /// `silu(gate) · up` in one pass (f32 or bf16 inference), or as one custom autodiff
    /// operation (f32 training).
    fn swiglu_if_covered<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Tensor<D>
        => cpu::pointwise::swiglu::swiglu_if_covered(gate, up)
            .or_else(|| cpu::pointwise::swiglu::swiglu_autodiff_if_covered(gate, up));

    /// `Qwen3RMSNorm` over the last dimension (f32 statistics), one operation under autodiff.
    fn rms_norm_if_covered<const D: usize>(x: &Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D>
        => cpu::pointwise::norm_rope::rms_norm_if_covered(x, weight, eps);

    /// `x·cos + rotate_half(x)·sin` for `x` `[b, heads, t, d]`, one operation under autodiff.
    fn rope_if_covered(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4>
        => cpu::pointwise::norm_rope::rope_if_covered(x, cos, sin);

    /// Causal grouped-query attention `softmax(q·kᵀ·scale + causal)·v` for `q`
    /// `[b, heads, t, d]` and `k`, `v` `[b, kv_heads, tk, d]` (no `repeat_kv` copies): inference
    /// kernels (prompt, decode step over a cache), or training's forward and backward as one
    /// autodiff operation.
    fn causal_attention_if_covered(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, scale: f32) -> Tensor<4>
        => cpu::attention::prompt::causal_if_covered(q, k, v, scale)
            .or_else(|| cpu::attention::backward::causal_autodiff_if_covered(q, k, v, scale));

    /// Single queries `q` `[n, heads, 1, d]`, query `i` of sequence `queries[i].0` seeing the
    /// first `queries[i].1` keys of `k`, `v` `[b, kv_heads, kt, d]`.
    fn attend_rows_if_covered(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, queries: &[(usize, usize)], scale: f32) -> Tensor<4>
        => cpu::attention::prompt::attend_rows_if_covered(q, k, v, queries, scale);

    /// Each column's maximum `m` of f32 `logits`, `exp(logits − m)` and its column sums.
    fn shifted_exp_if_covered(logits: &Tensor<2>) -> (Tensor<2>, Tensor<2>, Tensor<2>)
        => cpu::pointwise::column_softmax::shifted_exp_if_covered(logits);

    /// [`HeadSoftmax`] of `hidden·headᵀ` (f32 `hidden` `[n, h]`, `head` `[vocab, h]`, one target
    /// per row) in one parallel pass over the head, with `softmax·W` when `expected_rows`.
    fn head_softmax_if_covered(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], expected_rows: bool) -> HeadSoftmax
        => cpu::pointwise::fused_head::head_softmax_if_covered(hidden, head, targets, expected_rows);

    /// `w` packed in 12 bits per value (lossless), when it is a bf16 weight on the CPU backend
    /// whose width is a whole number of blocks.
    fn pack_if_covered(w: &Tensor<2>) -> PackedBf16
        => cpu::matmul::packed::pack_tensor(w);
}

/// Whether this CPU runs the packed few-row kernel fast enough for packing to pay (AVX-512 BF16).
pub fn packing_pays() -> bool {
    crate::features::cpu().avx512_bf16
}

/// `x·wᵀ` for each packed `w` of `ws` (all reading `x` `[m, k]`), in `x`'s dtype.
pub fn packed_linear_many(x: &Tensor<2>, ws: &[&PackedBf16]) -> Vec<Tensor<2>> {
    #[cfg(feature = "flex")]
    {
        cpu::matmul::packed::linear_many(x, ws)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, ws);
        unreachable!("weights are packed only by the CPU kernels")
    }
}

/// A packed weight as a dense bf16 tensor.
pub fn packed_to_dense(w: &PackedBf16) -> Tensor<2> {
    #[cfg(feature = "flex")]
    {
        cpu::matmul::packed::to_tensor(w)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = w;
        unreachable!("weights are packed only by the CPU kernels")
    }
}

/// Rows `ids` of a packed weight (embeddings), `[ids.len(), cols]` bf16.
pub fn packed_rows(w: &PackedBf16, ids: &[usize]) -> Tensor<2> {
    #[cfg(feature = "flex")]
    {
        cpu::matmul::packed::gather_rows(w, ids)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (w, ids);
        unreachable!("weights are packed only by the CPU kernels")
    }
}
