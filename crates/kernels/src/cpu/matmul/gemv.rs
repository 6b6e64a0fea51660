//! `x·Wᵀ` for a few rows of activations on the CPU (flex) backend, reading each weight once, in
//! its stored type (bf16 or f32).
//!
//! Decoding multiplies one row per sequence by every weight matrix, so it is bound by memory
//! bandwidth: the time is the time to read the weights.
//! - bf16: burn-flex 0.22.1's bf16 matmul converts both operands to f32 on every call
//!   (`ops/matmul.rs`, `matmul_bf16`), which writes and reads every weight again as f32 per token:
//!   bf16 decoding ran 17× slower than f32. Here each bf16 weight is widened in registers and
//!   accumulated in f32 — the arithmetic of burn-flex's own path (bf16 inputs, f32 products and
//!   sums, one rounding to bf16) in a different summation order.
//! - f32: the `gemm` crate packs the weight for a handful of rows (the language-model head of a
//!   batch's last tokens is 155 MB on the small preset, packed per batch); here it is read in
//!   place.
//!
//! Written by hand (no crate offers this GEMV); `multiversion` compiles it for AVX-512, AVX2 and
//! NEON and picks one at run time, `rayon` splits the weight rows across threads. Used only where
//! it pays and is exact in kind: flex tensors, both operands of one dtype (bf16 or f32), at most
//! [`MAX_ROWS`] rows, no autodiff (training keeps burn's path and its gradients).

use burn::tensor::{DType, Tensor};
use burn_flex::Flex;
use half::bf16;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::{f32_values, from_f32_values, is_f32_or_bf16};
use crate::math::lanes::{LANES, Stored};

pub use crate::rows::GEMV_MAX_ROWS as MAX_ROWS;

/// Weight rows per parallel task: enough work to amortise scheduling (≥ 256 KiB of weights for
/// hidden 1,024), few enough that two threads stay balanced on small matrices.
const ROWS_PER_TASK: usize = 128;

/// `x·wᵀ` `[m, n]` for `x` `[m, k]` and `w` `[n, k]` both bf16 or both f32, or `None` when this
/// kernel does not apply (another backend or dtype, autodiff, more than [`MAX_ROWS`] rows):
/// the caller then uses burn's matmul.
pub fn linear_if_covered(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    linear_many_if_covered(x, std::slice::from_ref(w))?.pop()
}

/// [`linear_if_covered`] for several weights that read the same `x` (q, k and v; gate and up), in one
/// parallel pass over all their rows: a decode step starts a third fewer parallel regions.
pub fn linear_many_if_covered(x: &Tensor<2>, ws: &[Tensor<2>]) -> Option<Vec<Tensor<2>>> {
    let [m, k] = x.dims();
    let dtype = x.dtype();
    if m == 0
        || m > MAX_ROWS
        || !is_f32_or_bf16(dtype)
        || x.is_autodiff()
        || ws
            .iter()
            .any(|w| w.dims()[1] != k || w.dtype() != dtype || w.is_autodiff())
    {
        return None;
    }
    let ws = ws
        .iter()
        .map(|w| w.clone().try_into_primitive::<Flex>().ok())
        .collect::<Option<Vec<_>>>()?;
    let xs = f32_values(x)?;
    let outs = if dtype == DType::F32 {
        let ws = ws
            .iter()
            .map(|w| w.as_slice::<f32>())
            .collect::<Option<Vec<_>>>()?;
        gemv(xs.as_slice(), &ws, m, k)
    } else {
        let ws = ws
            .iter()
            .map(|w| Some(bytemuck::cast_slice::<bf16, u16>(w.as_slice::<bf16>()?)))
            .collect::<Option<Vec<_>>>()?;
        gemv(xs.as_slice(), &ws, m, k)
    };
    Some(
        outs.into_iter()
            .map(|out| {
                let n = out.len() / m;
                from_f32_values(out, [m, n], dtype)
            })
            .collect(),
    )
}

/// `$kernel::<W, M>(args)` with the constant `M` = `$m` (1 to 8).
macro_rules! with_row_count {
    ($m:expr, $kernel:ident::<$w:ty>($($arg:expr),*)) => {
        match $m {
            1 => $kernel::<$w, 1>($($arg),*),
            2 => $kernel::<$w, 2>($($arg),*),
            3 => $kernel::<$w, 3>($($arg),*),
            4 => $kernel::<$w, 4>($($arg),*),
            5 => $kernel::<$w, 5>($($arg),*),
            6 => $kernel::<$w, 6>($($arg),*),
            7 => $kernel::<$w, 7>($($arg),*),
            _ => $kernel::<$w, 8>($($arg),*),
        }
    };
}

/// [`dot_rows`] with AVX-512 intrinsics, for weights of either type: the M accumulators stay in
/// registers and each lane sum is one reduction (the portable loop spilled them to the stack and
/// summed lanes one by one: 6 GB/s on the small preset's head, `--example gemm_kernels`).
///
/// # Safety
/// AVX-512F is available; `k` is a multiple of 16; `x` holds M rows of `k`; `out` holds M values
/// per row of `rows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot_rows_avx512<W: Stored, const M: usize>(
    x: &[f32],
    k: usize,
    rows: &[W],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    // The weights stream from memory and are read once: ask for the line 4 KiB ahead now.
    let ahead = crate::cpu::prefetch::AHEAD_BYTES / std::mem::size_of::<W>();
    let count = rows.len() / k;
    assert!(x.len() >= M * k && out.len() >= count * M);
    for (r, row) in rows.chunks_exact(k).enumerate() {
        let mut acc = [_mm512_setzero_ps(); M];
        for c in (0..k).step_by(16) {
            // SAFETY: c + 16 ≤ k (k is a multiple of 16), inside `row` and each of x's rows.
            unsafe {
                let w = W::load16(row.as_ptr().add(c));
                crate::cpu::prefetch::prefetch_streamed(row.as_ptr().wrapping_add(c + ahead));
                for (i, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(i * k + c)), w, *acc);
                }
            }
        }
        for (i, acc) in acc.into_iter().enumerate() {
            out[i * count + r] = _mm512_reduce_add_ps(acc);
        }
    }
}

/// [`dot_rows_avx512`] for `m` rows (1 to [`MAX_ROWS`]).
///
/// # Safety
/// As [`dot_rows_avx512`].
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn dense_rows<W: Stored>(
    x: &[f32],
    m: usize,
    k: usize,
    rows: &[W],
    out: &mut [f32],
) {
    // SAFETY: the caller's contract.
    unsafe { with_row_count!(m, dot_rows_avx512::<W>(x, k, rows, out)) }
}

/// `x·wᵀ` in f32, `[m, n]`, for f32 `x` `[m, k]` and each `w` `[n, k]` of `ws`.
fn gemv<W: Stored>(x: &[f32], ws: &[&[W]], m: usize, k: usize) -> Vec<Vec<f32>> {
    // Each task writes one contiguous block, `[m, its weight rows]`, copied into place below.
    let mut blocks: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0f32; w.len() / k * m]).collect();
    let tasks: Vec<(&mut [f32], &[W])> = blocks
        .iter_mut()
        .zip(ws)
        .flat_map(|(out, w)| {
            out.chunks_mut(ROWS_PER_TASK * m)
                .zip(w.chunks(ROWS_PER_TASK * k))
        })
        .collect();
    tasks.into_par_iter().for_each(|(out, rows)| {
        #[cfg(target_arch = "x86_64")]
        if k.is_multiple_of(16) && crate::features::cpu().avx512f {
            // SAFETY: AVX-512F was detected; k is a multiple of 16; x holds m rows of k,
            // `out` m values per weight row of the task.
            unsafe { with_row_count!(m, dot_rows_avx512::<W>(x, k, rows, out)) };
            return;
        }
        with_row_count!(m, dot_rows::<W>(x, k, rows, out))
    });
    if m == 1 {
        return blocks;
    }
    blocks
        .into_iter()
        .map(|blocks| {
            let n = blocks.len() / m;
            let mut out = vec![0.0f32; m * n];
            for (t, block) in blocks.chunks(ROWS_PER_TASK * m).enumerate() {
                let rows = block.len() / m;
                for (i, part) in block.chunks_exact(rows).enumerate() {
                    out[i * n + t * ROWS_PER_TASK..][..rows].copy_from_slice(part);
                }
            }
            out
        })
        .collect()
}

/// For each weight row `r` of `rows` (`[rows, k]`) and each of the `M` activation rows `x_i`,
/// `out[i·rows + r] = x_i · r`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn dot_rows<W: Stored, const M: usize>(x: &[f32], k: usize, rows: &[W], out: &mut [f32]) {
    let body = k / LANES * LANES;
    let count = rows.len() / k;
    for (r, row) in rows.chunks_exact(k).enumerate() {
        let mut acc = [[0.0f32; LANES]; M];
        for c in (0..body).step_by(LANES) {
            let mut w = [0.0f32; LANES];
            for (w, stored) in w.iter_mut().zip(&row[c..c + LANES]) {
                *w = stored.widen();
            }
            for (acc, x) in acc.iter_mut().zip(x.chunks_exact(k)) {
                for ((a, x), w) in acc.iter_mut().zip(&x[c..c + LANES]).zip(&w) {
                    *a += x * w;
                }
            }
        }
        for (i, (acc, x)) in acc.iter().zip(x.chunks_exact(k)).enumerate() {
            let mut sum: f32 = acc.iter().sum();
            for c in body..k {
                sum += x[c] * row[c].widen();
            }
            out[i * count + r] = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, FloatDType};

    use super::*;

    #[test]
    fn equals_burns_f32_matmul() {
        let device = crate::cpu::test_device();
        // k = 100: the portable loop; k = 64: the AVX-512 kernel where the CPU has it.
        for k in [100, 64] {
            equals_burns_f32_matmul_at(k, &device);
        }
    }

    fn equals_burns_f32_matmul_at(k: usize, device: &burn::tensor::Device) {
        let device = device.clone();
        let n = 300;
        let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
        for m in 1..=MAX_ROWS {
            let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
            let got = linear_if_covered(&x, &w).expect("f32 rows on flex are covered");
            assert_eq!(got.dims(), [m, n]);
            let want = x.matmul(w.clone().transpose());
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-4, "m={m}: differs by {diff}");
        }
    }

    #[test]
    fn several_weights_in_one_pass_equal_one_product_each() {
        let device = crate::cpu::test_device();
        let k = 64;
        // Row counts below, at and above one task's share, as q, k and v or gate and up.
        let ws: Vec<Tensor<2>> = [300, 128, 70]
            .into_iter()
            .map(|n| Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device))
            .collect();
        for m in [1, 3] {
            let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
            let got = linear_many_if_covered(&x, &ws).expect("f32 rows on flex are covered");
            assert_eq!(got.len(), ws.len());
            for (got, w) in got.into_iter().zip(&ws) {
                let want = x.clone().matmul(w.clone().transpose());
                assert_eq!(got.dims(), want.dims());
                let diff = (got - want).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-4, "m={m}: differs by {diff}");
            }
        }
    }

    #[test]
    fn equals_burns_bf16_matmul() {
        let device = crate::cpu::test_device();
        // n not a multiple of the task size; k = 64 takes the AVX-512 kernel where the CPU has
        // it, k = 100 (not a multiple of the lane count) the portable loop.
        let n = 300;
        for k in [64, 100] {
            let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device)
                .cast(FloatDType::BF16);
            for m in 1..=MAX_ROWS {
                let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device)
                    .cast(FloatDType::BF16);
                let got = linear_if_covered(&x, &w).expect("bf16 rows on flex are covered");
                assert_eq!(got.dims(), [m, n]);
                assert_eq!(got.dtype(), DType::BF16);
                let want = x.clone().matmul(w.clone().transpose());
                let got = got.cast(FloatDType::F32);
                let want = want.cast(FloatDType::F32);
                // Both sum f32 products and round once to bf16 (8 bits of mantissa): summation
                // order moves a result by at most one bf16 step, 2⁻⁸ relative.
                let scale = want.clone().abs().max().into_scalar::<f32>();
                let diff = (got - want).abs().max().into_scalar::<f32>();
                assert!(
                    diff <= scale / 128.0,
                    "k={k} m={m}: differs by {diff} (scale {scale})"
                );
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let device = crate::cpu::test_device();
        let (k, n) = (100, 300);
        let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device)
            .cast(FloatDType::BF16);
        let many = Tensor::<2>::zeros([MAX_ROWS + 1, k], &device).cast(FloatDType::BF16);
        assert!(
            linear_if_covered(&many, &w).is_none(),
            "prefill-sized inputs go to gemm"
        );
        let f32_x = Tensor::<2>::zeros([1, k], &device);
        assert!(
            linear_if_covered(&f32_x, &w).is_none(),
            "mixed dtypes go to burn"
        );
        let strided = w.clone().transpose();
        let x = Tensor::<2>::zeros([1, n], &device).cast(FloatDType::BF16);
        assert!(
            linear_if_covered(&x, &strided).is_none(),
            "a transposed view is not read as rows"
        );
    }
}
