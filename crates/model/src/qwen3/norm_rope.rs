//! RMSNorm and rotary embeddings for inference on the CPU (flex) backend, f32 without autodiff,
//! each one parallel pass instead of burn's chain of six or seven operations (square, mean,
//! add, sqrt, reciprocal, two products; narrow, negate, concatenate, two products, a sum), each
//! writing a fresh buffer on one thread: together ~7 % of `medtune bench eval`. Written by hand
//! (they are a few lines each); `multiversion` vectorises them for AVX-512, AVX2 and NEON.

use burn::tensor::{DType, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::flex_tensor::{contiguous, from_values};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 256;

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension, as `Qwen3RMSNorm` computes it
/// in f32; `None` when not f32 on flex without autodiff.
pub fn try_rms_norm<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<1>,
    eps: f64,
) -> Option<Tensor<D>> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || x.is_autodiff() {
        return None;
    }
    let dims = x.dims();
    let width = dims[D - 1];
    if weight.dims()[0] != width || width == 0 {
        return None;
    }
    let (xs, ws) = (contiguous(x)?, contiguous(&weight.clone().inner())?);
    let (xs, ws) = (xs.as_slice::<f32>()?, ws.as_slice::<f32>()?);
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(ROWS_PER_TASK * width)
        .zip(xs.par_chunks(ROWS_PER_TASK * width))
        .for_each(|(out, xs)| rms_norm_rows(xs, ws, eps as f32, out));
    Some(from_values(out, dims))
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (row, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mut lanes = [0.0f32; 16];
        for chunk in row.chunks(16) {
            for (s, v) in lanes.iter_mut().zip(chunk) {
                *s += v * v;
            }
        }
        let inv = 1.0 / (lanes.iter().sum::<f32>() / width as f32 + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * inv * w;
        }
    }
}

/// `x·cos + rotate_half(x)·sin` for `x` `[b, heads, t, d]` and tables `[b or 1, 1, t, d]`;
/// `None` when not f32 on flex without autodiff.
pub fn try_rope(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, heads, t, d] = x.dims();
    let [cb, one, ct, cd] = cos.dims();
    let applies = [x, cos, sin]
        .iter()
        .all(|v| v.dtype() == DType::F32 && !v.is_autodiff())
        && sin.dims() == cos.dims()
        && (one, ct, cd) == (1, t, d)
        && (cb == b || cb == 1)
        && d % 2 == 0
        && d > 0;
    if !applies {
        return None;
    }
    let (xs, cs, ss) = (contiguous(x)?, contiguous(cos)?, contiguous(sin)?);
    let (xs, cs, ss) = (
        xs.as_slice::<f32>()?,
        cs.as_slice::<f32>()?,
        ss.as_slice::<f32>()?,
    );
    let mut out = vec![0.0f32; xs.len()];
    // One task per (sequence, head): its `[t, d]` block against the sequence's tables.
    out.par_chunks_mut(t * d)
        .zip(xs.par_chunks(t * d))
        .enumerate()
        .for_each(|(bh, (out, xs))| {
            let table = if cb == 1 { 0 } else { bh / heads } * t * d;
            rope_rows(xs, &cs[table..][..t * d], &ss[table..][..t * d], d, out);
        });
    Some(from_values(out, [b, heads, t, d]))
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn rope_rows(x: &[f32], cos: &[f32], sin: &[f32], d: usize, out: &mut [f32]) {
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
            o1[i] = x1[i] * c[i] - x2[i] * s[i];
            o2[i] = x2[i] * c[half + i] + x1[i] * s[half + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::DeviceSpec;
    use crate::qwen3::Rope;

    fn diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn rms_norm_equals_burns_ops() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let x = Tensor::<3>::random([3, 300, 40], Distribution::Normal(0.0, 2.0), &device);
        let w = Tensor::<1>::random([40], Distribution::Normal(1.0, 0.3), &device);
        let eps = 1e-6;
        let got = try_rms_norm(&x, &w, eps).expect("f32 on flex");
        let inv = x
            .clone()
            .square()
            .mean_dim(2)
            .add_scalar(eps)
            .sqrt()
            .recip();
        let want = x * inv * w.unsqueeze::<3>();
        assert!(diff(got, want) < 1e-5);
    }

    #[test]
    fn rope_equals_burns_ops() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let (b, heads, t, d) = (2, 3, 7, 16);
        let rope = Rope::new(d, 1_000_000.0);
        let positions: Vec<i64> = (0..b * t).map(|i| (i % t + i / t * 5) as i64).collect();
        let tables = rope.tables(&positions, b, t, DType::F32, &device);
        let x = Tensor::<4>::random([b, heads, t, d], Distribution::Normal(0.0, 1.0), &device);
        let got = try_rope(&x, &tables.cos, &tables.sin).expect("f32 on flex");
        let half = d / 2;
        let rotated = Tensor::cat(
            vec![
                x.clone().narrow(3, half, half).neg(),
                x.clone().narrow(3, 0, half),
            ],
            3,
        );
        let want = x * tables.cos.clone() + rotated * tables.sin.clone();
        assert!(diff(got, want) < 1e-6);
    }
}
