//! RMSNorm and rotary embeddings on the CPU (flex) backend in f32, each one parallel pass
//! instead of burn's chain of six or seven operations (square, mean, add, sqrt, reciprocal, two
//! products; narrow, negate, concatenate, two products, a sum), each writing a fresh buffer on
//! one thread: together ~7 % of `medtune bench eval`. Under autodiff (training) each is one
//! custom operation whose backward pass is one pass too (the norm's weight is frozen, as every
//! base weight in LoRA training):
//!
//! ```text
//! RMSNorm  y = x·r·w, r = 1/√(mean(x²) + ε):   ∂x = r·g − x·r³·mean(g ⊙ x),  g = w ⊙ ∂y
//! RoPE     y₁ = x₁c − x₂s,  y₂ = x₂c + x₁s:      ∂x₁ = ∂y₁c + ∂y₂s,  ∂x₂ = ∂y₂c − ∂y₁s
//! ```
//!
//! Written by hand (they are a few lines each); `multiversion` vectorises them for AVX-512,
//! AVX2 and NEON.

use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_flex::{Flex, FlexTensor};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::{
    F32Values, contiguous, contiguous_primitive, f32_values, for_each_checkpointing,
    from_f32_values, is_f32_or_bf16, primitive_from_values,
};
use crate::math::lanes::{LANES, pairwise_sum};

/// `values` as a flex primitive of `like`'s shape.
fn flex_like(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    primitive_from_values(values, like.layout().shape().clone())
}

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 256;

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension, as `Qwen3RMSNorm` computes it
/// in f32, recorded as one operation under autodiff; `None` when not f32 on flex or when the
/// weight is trained.
pub fn rms_norm_if_covered<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<1>,
    eps: f64,
) -> Option<Tensor<D>> {
    let dims = x.dims();
    let width = dims[D - 1];
    if weight.dtype() != x.dtype()
        || weight.is_require_grad()
        || weight.dims()[0] != width
        || width == 0
    {
        return None;
    }
    let weight = weight.clone().inner();
    if !x.is_autodiff() && is_f32_or_bf16(x.dtype()) {
        // bf16 (decoding a bf16 model): computed in f32 and rounded once at the end, where
        // transformers also rounds the normalised value before the weight's product.
        let (xs, ws) = (f32_values(x)?, f32_values(&weight)?);
        let (out, _) = rms_norm(xs.as_slice(), ws.as_slice(), eps as f32);
        return Some(from_f32_values(out, dims, x.dtype()));
    }
    if x.dtype() != DType::F32 {
        return None;
    }
    let weight = contiguous(&weight)?;
    for_each_checkpointing!(|S| {
        if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex, S>>() {
            let input = contiguous_primitive(x.primitive());
            let (out, inv_rms) = rms_norm(input.as_slice()?, weight.as_slice()?, eps as f32);
            let out = flex_like(out, &input);
            let out = match RmsNormOp
                .prepare::<S>([x.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((input, weight, inv_rms), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            return Some(Tensor::from_primitive::<Autodiff<Flex, S>>(out));
        }
    });
    None
}

/// The normalised rows and each row's 1/√(mean(x²) + ε).
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let width = weight.len();
    let mut out = vec![0.0f32; x.len()];
    let mut inv_rms = vec![0.0f32; x.len() / width];
    out.par_chunks_mut(ROWS_PER_TASK * width)
        .zip(inv_rms.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(ROWS_PER_TASK * width))
        .for_each(|((out, inv), x)| rms_norm_rows(x, weight, eps, out, inv));
    (out, inv_rms)
}

#[derive(Debug)]
struct RmsNormOp;

impl Backward<Flex, 1> for RmsNormOp {
    /// The input, the (frozen) weight and each row's 1/rms.
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (input, weight, inv_rms) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous_primitive(&grad);
            let (x, w) = (
                input.as_slice::<f32>().unwrap(),
                weight.as_slice::<f32>().unwrap(),
            );
            let dy = grad.as_slice::<f32>().expect("f32");
            let width = w.len();
            let mut dx = vec![0.0f32; x.len()];
            dx.par_chunks_mut(ROWS_PER_TASK * width)
                .zip(x.par_chunks(ROWS_PER_TASK * width))
                .zip(dy.par_chunks(ROWS_PER_TASK * width))
                .zip(inv_rms.par_chunks(ROWS_PER_TASK))
                .for_each(|(((dx, x), dy), inv)| rms_norm_grad_rows(x, w, dy, inv, dx));
            flex_like(dx, &input)
        });
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn rms_norm_grad_rows(x: &[f32], weight: &[f32], dy: &[f32], inv_rms: &[f32], dx: &mut [f32]) {
    let width = weight.len();
    let rows = x.chunks_exact(width).zip(dy.chunks_exact(width));
    for (((x, dy), dx), &r) in rows.zip(dx.chunks_exact_mut(width)).zip(inv_rms) {
        let mut lanes = [0.0f32; LANES];
        for ((xs, ds), ws) in x.chunks(16).zip(dy.chunks(16)).zip(weight.chunks(16)) {
            for (((s, x), d), w) in lanes.iter_mut().zip(xs).zip(ds).zip(ws) {
                *s += x * d * w;
            }
        }
        let mean = pairwise_sum(lanes) / width as f32;
        let k = r * r * r * mean;
        for (((o, x), d), w) in dx.iter_mut().zip(x).zip(dy).zip(weight) {
            *o = r * w * d - x * k;
        }
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn rms_norm_rows(
    x: &[f32],
    weight: &[f32],
    eps: f32,
    out: &mut [f32],
    inv_rms: &mut [f32],
) {
    let width = weight.len();
    let rows = x.chunks_exact(width).zip(out.chunks_exact_mut(width));
    for ((row, out), inv_rms) in rows.zip(inv_rms.iter_mut()) {
        let mut lanes = [0.0f32; LANES];
        for chunk in row.chunks(16) {
            for (s, v) in lanes.iter_mut().zip(chunk) {
                *s += v * v;
            }
        }
        let inv = 1.0 / (pairwise_sum(lanes) / width as f32 + eps).sqrt();
        *inv_rms = inv;
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * inv * w;
        }
    }
}

/// `x·cos + rotate_half(x)·sin` for `x` `[b, heads, t, d]` and tables `[b or 1, 1, t, d]`,
/// recorded as one operation under autodiff; `None` when not f32 on flex.
pub fn rope_if_covered(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, heads, t, d] = x.dims();
    let [cb, one, ct, cd] = cos.dims();
    let dtype = x.dtype();
    let applies = [x, cos, sin].iter().all(|v| v.dtype() == dtype)
        && (dtype == DType::F32 || (dtype == DType::BF16 && !x.is_autodiff()))
        && !cos.is_require_grad()
        && !sin.is_require_grad()
        && sin.dims() == cos.dims()
        && (one, ct, cd) == (1, t, d)
        && (cb == b || cb == 1)
        && d % 2 == 0
        && d > 0;
    if !applies {
        return None;
    }
    let tables = Tables {
        cos: f32_values(&cos.clone().inner())?,
        sin: f32_values(&sin.clone().inner())?,
        per_sequence: cb != 1,
        heads,
        t,
        d,
    };
    if !x.is_autodiff() {
        // bf16: in f32, rounded once (transformers rounds each of its four products and sums).
        let xs = f32_values(x)?;
        let out = tables.rotate(xs.as_slice(), false)?;
        return Some(from_f32_values(out, [b, heads, t, d], dtype));
    }
    for_each_checkpointing!(|S| {
        if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex, S>>() {
            let input = contiguous_primitive(x.primitive());
            let out = flex_like(tables.rotate(input.as_slice()?, false)?, &input);
            let out = match RopeOp.prepare::<S>([x.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(tables, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            return Some(Tensor::from_primitive::<Autodiff<Flex, S>>(out));
        }
    });
    None
}

/// cos and sin `[b or 1, 1, t, d]`, contiguous.
#[derive(Clone, Debug)]
struct Tables {
    cos: F32Values,
    sin: F32Values,
    per_sequence: bool,
    heads: usize,
    t: usize,
    d: usize,
}

impl Tables {
    /// The rotation of `x` `[b, heads, t, d]`, or its transpose (`inverse`: the backward pass,
    /// the rotation by −angle).
    fn rotate(&self, x: &[f32], inverse: bool) -> Option<Vec<f32>> {
        let (cs, ss) = (self.cos.as_slice(), self.sin.as_slice());
        let (heads, block) = (self.heads, self.t * self.d);
        let mut out = vec![0.0f32; x.len()];
        // One task per (sequence, head): its `[t, d]` block against the sequence's tables.
        out.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .enumerate()
            .for_each(|(bh, (out, xs))| {
                let table = if self.per_sequence { bh / heads } else { 0 } * block;
                let (c, s) = (&cs[table..][..block], &ss[table..][..block]);
                rope_rows(xs, c, s, self.d, if inverse { -1.0 } else { 1.0 }, out);
            });
        Some(out)
    }
}

#[derive(Debug)]
struct RopeOp;

impl Backward<Flex, 1> for RopeOp {
    type State = Tables;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let tables = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous_primitive(&grad);
            let dx = tables
                .rotate(grad.as_slice().expect("f32"), true)
                .expect("f32 tables");
            flex_like(dx, &grad)
        });
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn rope_rows(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    d: usize,
    direction: f32,
    out: &mut [f32],
) {
    let half = d / 2;
    for (((x, c), s), o) in x
        .chunks_exact(d)
        .zip(cos.chunks_exact(d))
        .zip(sin.chunks_exact(d))
        .zip(out.chunks_exact_mut(d))
    {
        let (x1, x2) = x.split_at(half);
        let (o1, o2) = o.split_at_mut(half);
        for i in 0..half {
            let (s1, s2) = (direction * s[i], direction * s[half + i]);
            o1[i] = x1[i] * c[i] - x2[i] * s1;
            o2[i] = x2[i] * c[half + i] + x1[i] * s2;
        }
    }
}

// Tested against the model's reference formulas (`medtune_model::ops`), where they live.
