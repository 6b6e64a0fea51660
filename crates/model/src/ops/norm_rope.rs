//! RMSNorm and rotary position embedding.

use burn::tensor::Tensor;

use super::reference;

/// `Qwen3RMSNorm` over the last dimension: statistics in f32, cast back before the weight.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D> {
    medtune_kernels::rms_norm_if_covered(&x, weight, eps)
        .unwrap_or_else(|| reference::rms_norm(x, weight.clone(), eps))
}

/// `x·cos + rotate_half(x)·sin` for `x` `[b, heads, t, d]` and tables `[b or 1, 1, t, d]`.
pub fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    medtune_kernels::rope_if_covered(&x, cos, sin)
        .unwrap_or_else(|| reference::rope(x, cos.clone(), sin.clone()))
}
