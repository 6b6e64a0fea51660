//! `x·Wᵀ`, embedding rows and dense copies for weights stored as [`PackedBf16`], on the CPU
//! (flex) backend.
//!
//! - A few rows (decoding, at most [`MAX_ROWS`]): each weight row is read once from its packed
//!   form; on x86-64 with AVX-512 BF16 the 12-bit values are rebuilt into bf16 lanes in
//!   registers (a few shifts and one three-way OR per 32 values) and multiplied with
//!   `vdpbf16ps`, whose bf16 × bf16 products are exact in f32 and summed in f32 — the
//!   arithmetic of the unpacked path (`gemv`) in another order. Elsewhere a portable loop
//!   unpacks each block and accumulates in f32.
//! - More rows (a prompt): per task, a slab of weight rows is unpacked to f32 and multiplied by
//!   `gemm` (the left operand widened once), so a bf16 prompt runs at the f32 GEMM's speed.
//!
//! Written by hand: no crate offers products over this storage. Outputs are rounded once to
//! the activations' dtype, as burn's bf16 matmul does.

use burn::tensor::{DType, Tensor};
use half::bf16;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::{contiguous, f32_values, from_f32_values, from_values};
use crate::packed_bf16::{BLOCK, PackedBf16, unpack_block};

pub use crate::rows::GEMV_MAX_ROWS as MAX_ROWS;

/// Weight rows per parallel task of the few-row kernel: ~200 KB of packed weights at hidden
/// 1,024, small enough that two threads finish a projection together.
const ROWS_PER_TASK: usize = 128;

/// Weight rows unpacked per task of the GEMM path (f32 slab of 512 KiB at hidden 1,024).
const GEMM_SLAB_ROWS: usize = 128;

/// `x·wᵀ` `[m, n]` in `x`'s dtype for `x` `[m, k]` on flex and `w` `[n, k]`.
pub fn linear(x: &Tensor<2>, w: &PackedBf16) -> Tensor<2> {
    linear_many(x, &[w]).pop().expect("one product")
}

/// [`linear`] for several weights that read the same `x` (q, k and v; gate and up): for a few
/// rows, all their weight rows in one parallel pass.
pub fn linear_many(x: &Tensor<2>, ws: &[&PackedBf16]) -> Vec<Tensor<2>> {
    let [m, k] = x.dims();
    assert!(
        ws.iter().all(|w| w.cols() == k),
        "input width {k} differs from a packed weight's"
    );
    let dtype = x.dtype();
    let bf16_rows = (dtype == DType::BF16 && m <= MAX_ROWS && crate::features::cpu().avx512_bf16)
        .then(|| contiguous(x))
        .flatten();
    let outs = match bf16_rows.as_ref().and_then(|x| x.as_slice::<bf16>()) {
        Some(xs) => few_rows(bytemuck::cast_slice::<bf16, u16>(xs), m, ws),
        None => {
            let xs = f32_values(x).unwrap_or_else(|| {
                // Another dtype (f16): compute in f32 from a widened copy.
                crate::cpu::flex_tensor::F32Values::Widened(
                    x.clone()
                        .cast(burn::tensor::FloatDType::F32)
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("f32 values"),
                )
            });
            if m <= MAX_ROWS || !crate::features::cpu().avx512f {
                few_rows_portable(xs.as_slice(), m, ws)
            } else {
                ws.iter().map(|w| gemm(xs.as_slice(), m, w)).collect()
            }
        }
    };
    let out_dtype = if matches!(dtype, DType::BF16 | DType::F32) {
        dtype
    } else {
        DType::F32
    };
    outs.into_iter()
        .zip(ws)
        .map(|(out, w)| {
            let y = from_f32_values(out, [m, w.rows()], out_dtype);
            if out_dtype == dtype {
                y
            } else {
                crate::dtype::cast_to(y, dtype)
            }
        })
        .collect()
}

/// The rows `ids` of `w` (an embedding table) as a bf16 tensor `[ids.len(), cols]`.
pub fn gather_rows(w: &PackedBf16, ids: &[usize]) -> Tensor<2> {
    let cols = w.cols();
    let mut out = vec![bf16::ZERO; ids.len() * cols];
    out.par_chunks_mut(cols)
        .zip(ids)
        .for_each(|(row, &id)| w.unpack_row(id, bytemuck::cast_slice_mut(row)));
    from_values(out, [ids.len(), cols])
}

/// The whole matrix as a dense bf16 tensor (for the operations that need one: exporting,
/// scoring over the vocabulary in chunks).
pub fn to_tensor(w: &PackedBf16) -> Tensor<2> {
    let values: Vec<bf16> = bytemuck::cast_vec(w.unpack());
    from_values(values, [w.rows(), w.cols()])
}

/// `$kernel::<M>(args)` with the constant `M` = `$m` (1 to 8).
macro_rules! with_row_count {
    ($m:expr, $kernel:ident($($arg:expr),*)) => {
        match $m {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            _ => $kernel::<8>($($arg),*),
        }
    };
}

/// [`dot_rows_bf16`] for `m` rows (1 to [`MAX_ROWS`]).
///
/// # Safety
/// As [`dot_rows_bf16`].
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn packed_rows(
    x: &[u16],
    m: usize,
    w: &PackedBf16,
    r0: usize,
    rows: usize,
    out: Out,
) {
    // SAFETY: the caller's contract.
    unsafe { with_row_count!(m, dot_rows_bf16(x, w, r0, rows, out)) }
}

/// A raw pointer to an output buffer that tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
// SAFETY: every task writes its own (row, column) cells only.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// The parallel tasks of a few-row pass: (weight, first row, rows).
fn tasks(ws: &[&PackedBf16]) -> Vec<(usize, usize, usize)> {
    ws.iter()
        .enumerate()
        .flat_map(|(i, w)| {
            (0..w.rows())
                .step_by(ROWS_PER_TASK)
                .map(move |r0| (i, r0, ROWS_PER_TASK.min(w.rows() - r0)))
        })
        .collect()
}

/// `x·wᵀ` for each `w`, f32 `[m, n]`, `x` bf16 bits `[m, k]`, by the AVX-512 BF16 kernel.
fn few_rows(x: &[u16], m: usize, ws: &[&PackedBf16]) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0f32; m * w.rows()]).collect();
    let ptrs: Vec<Out> = outs.iter_mut().map(|o| Out(o.as_mut_ptr())).collect();
    tasks(ws).into_par_iter().for_each(|(i, r0, rows)| {
        let (w, out) = (ws[i], ptrs[i]);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked AVX-512F/BW/BF16 ([`crate::features`]); x holds m rows
        // of w.cols(); the task writes cells (row, r0..r0 + rows) of an m × w.rows() buffer.
        unsafe {
            with_row_count!(m, dot_rows_bf16(x, w, r0, rows, out))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (x, w, r0, rows, out);
    });
    outs
}

/// For weight rows `r0..r0 + rows` of `w` and each of the `M` rows `x_i` (bf16 bits):
/// `out[i·n + r] = x_i · w_r`.
///
/// Per half block of 32 values: the sign/mantissa bytes widened to 16-bit lanes give the sign
/// (`<< 15`) and mantissa (`>> 1`), the 16 code bytes widened give the exponents of the first 16
/// values from their low nibbles (`<< 7`) and of the next 16 from the high ones (`<< 3`), masked
/// and offset by the block's base; one OR of the three makes 32 bf16 values.
///
/// # Safety
/// AVX-512F, BW and BF16 are available; `x` holds `M` rows of `w.cols()` values; `out` points to
/// an `M × w.rows()` buffer of which only this task's cells are written concurrently.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn dot_rows_bf16<const M: usize>(
    x: &[u16],
    w: &PackedBf16,
    r0: usize,
    rows: usize,
    out: Out,
) {
    use std::arch::x86_64::*;
    let (k, n) = (w.cols(), w.rows());
    assert!(x.len() >= M * k && r0 + rows <= n);
    let blocks_per_row = k / BLOCK;
    let (sm, codes, bases) = (w.sign_mantissa(), w.exponent_codes(), w.bases());
    // Streamed once: fetch 4 KiB of sign/mantissa bytes (and the codes of the same values)
    // ahead.
    let ahead = crate::cpu::prefetch::AHEAD_BYTES;
    let exponent_mask = _mm512_set1_epi16(0x0780);
    let as_bh = |v: __m512i| -> __m512bh {
        // SAFETY: both are 512 bits of plain data.
        unsafe { std::mem::transmute(v) }
    };
    // The side table's blocks come in block order: the next one this task meets.
    let mut next_escaped = w.first_escaped_from(r0 * blocks_per_row);
    for r in r0..r0 + rows {
        // Two accumulators per row: the two half blocks' dot products do not wait on each other.
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        for kb in 0..blocks_per_row {
            let b = r * blocks_per_row + kb;
            let c = kb * BLOCK;
            // SAFETY: the block lies inside the packed arrays (b < rows·cols/64) and columns
            // c..c+64 inside each of x's rows; prefetches may point past the end.
            unsafe {
                crate::cpu::prefetch::prefetch_streamed(
                    sm.as_ptr().wrapping_add(b * BLOCK + ahead),
                );
                crate::cpu::prefetch::prefetch_streamed(
                    codes.as_ptr().wrapping_add(b * BLOCK / 2 + ahead / 2),
                );
                let halves: [__m512i; 2] = if bases[b] == crate::packed_bf16::ESCAPED {
                    let (at, values) = w.escaped(next_escaped);
                    assert_eq!(at, b, "escaped blocks are met in order");
                    next_escaped += 1;
                    [
                        _mm512_loadu_si512(values.as_ptr().cast()),
                        _mm512_loadu_si512(values.as_ptr().add(32).cast()),
                    ]
                } else {
                    let base = _mm512_set1_epi16((i16::from(bases[b])) << 7);
                    let half = |g: usize| {
                        let s = _mm512_cvtepu8_epi16(_mm256_loadu_si256(
                            sm.as_ptr().add(b * BLOCK + 32 * g).cast(),
                        ));
                        let n16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(
                            codes.as_ptr().add(b * BLOCK / 2 + 16 * g).cast(),
                        ));
                        let e = _mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(_mm256_slli_epi16::<7>(n16)),
                            _mm256_slli_epi16::<3>(n16),
                        );
                        let e = _mm512_add_epi16(_mm512_and_si512(e, exponent_mask), base);
                        _mm512_ternarylogic_epi32::<0xFE>(
                            _mm512_slli_epi16::<15>(s),
                            _mm512_srli_epi16::<1>(s),
                            e,
                        )
                    };
                    [half(0), half(1)]
                };
                for (i, acc) in acc.iter_mut().enumerate() {
                    for (g, (acc, values)) in acc.iter_mut().zip(halves).enumerate() {
                        let xs = _mm512_loadu_si512(x.as_ptr().add(i * k + c + 32 * g).cast());
                        *acc = _mm512_dpbf16_ps(*acc, as_bh(xs), as_bh(values));
                    }
                }
            }
        }
        for (i, [a, b]) in acc.into_iter().enumerate() {
            // SAFETY: cell (i, r) of the M × n buffer belongs to this task.
            unsafe { *out.0.add(i * n + r) = _mm512_reduce_add_ps(_mm512_add_ps(a, b)) };
        }
    }
}

/// `x·wᵀ` for each `w`, f32 `[m, n]`, `x` f32 `[m, k]`, by the portable loop.
fn few_rows_portable(x: &[f32], m: usize, ws: &[&PackedBf16]) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0f32; m * w.rows()]).collect();
    let ptrs: Vec<Out> = outs.iter_mut().map(|o| Out(o.as_mut_ptr())).collect();
    tasks(ws).into_par_iter().for_each(|(i, r0, rows)| {
        let (w, out) = (ws[i], ptrs[i]);
        let n = w.rows();
        let mut values = [0.0f32; BLOCK];
        let mut bits = [0u16; BLOCK];
        for r in r0..r0 + rows {
            let mut sums = vec![0.0f32; m];
            for kb in 0..w.cols() / BLOCK {
                unpack_block(w.block(r * w.cols() / BLOCK + kb), &mut bits);
                for (v, b) in values.iter_mut().zip(&bits) {
                    *v = f32::from_bits(u32::from(*b) << 16);
                }
                for (i, sum) in sums.iter_mut().enumerate() {
                    *sum += dot(&x[i * w.cols() + kb * BLOCK..][..BLOCK], &values);
                }
            }
            for (i, sum) in sums.into_iter().enumerate() {
                // SAFETY: cell (i, r) of the m × n buffer belongs to this task.
                unsafe { *out.0.add(i * n + r) = sum };
            }
        }
    });
    outs
}

/// The dot product of two blocks, in lanes.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; crate::math::lanes::LANES];
    for (a, b) in a
        .chunks_exact(crate::math::lanes::LANES)
        .zip(b.chunks_exact(crate::math::lanes::LANES))
    {
        for ((l, a), b) in lanes.iter_mut().zip(a).zip(b) {
            *l += a * b;
        }
    }
    crate::math::lanes::pairwise_sum(lanes)
}

/// `x·wᵀ` f32 `[m, n]` for many rows: slabs of weight rows unpacked to f32 and multiplied by
/// `gemm`, one slab per task.
fn gemm(x: &[f32], m: usize, w: &PackedBf16) -> Vec<f32> {
    use crate::cpu::matmul::gemm::{MatRef, gemm};
    let (n, k) = (w.rows(), w.cols());
    let slabs: Vec<(usize, Vec<f32>)> = (0..n)
        .into_par_iter()
        .step_by(GEMM_SLAB_ROWS)
        .map(|r0| {
            let rows = GEMM_SLAB_ROWS.min(n - r0);
            let mut slab = vec![0.0f32; rows * k];
            let mut bits = vec![0u16; k];
            for (r, row) in slab.chunks_exact_mut(k).enumerate() {
                w.unpack_row(r0 + r, &mut bits);
                for (v, b) in row.iter_mut().zip(&bits) {
                    *v = f32::from_bits(u32::from(*b) << 16);
                }
            }
            let mut block = vec![0.0f32; m * rows];
            gemm(
                m,
                rows,
                k,
                MatRef::row_major(x, k),
                MatRef::transposed(&slab, k),
                &mut block,
                rows,
                false,
            );
            (r0, block)
        })
        .collect();
    let mut out = vec![0.0f32; m * n];
    for (r0, block) in slabs {
        let rows = block.len() / m;
        for (i, part) in block.chunks_exact(rows).enumerate() {
            out[i * n + r0..][..rows].copy_from_slice(part);
        }
    }
    out
}

/// A flex bf16 tensor `[rows, cols]` packed, or `None` when it is not one or its width is not a
/// whole number of blocks.
pub fn pack_tensor(w: &Tensor<2>) -> Option<PackedBf16> {
    if w.dtype() != DType::BF16 || w.is_autodiff() {
        return None;
    }
    let [rows, cols] = w.dims();
    let stored = contiguous(w)?;
    let bits: &[u16] = bytemuck::cast_slice(stored.as_slice::<bf16>()?);
    PackedBf16::pack_parallel(bits, rows, cols)
}

impl PackedBf16 {
    /// [`PackedBf16::pack`] with the blocks packed on rayon's threads, straight into place.
    pub fn pack_parallel(bits: &[u16], rows: usize, cols: usize) -> Option<Self> {
        // Blocks per task: 256 KiB of bf16.
        const BLOCKS: usize = 2048;
        let mut packed = Self::for_shape(rows, cols)?;
        assert_eq!(bits.len(), rows * cols, "bits hold rows × cols values");
        let (sm, codes, bases) = packed.parts_mut();
        let escaped: Vec<usize> = bits
            .par_chunks(BLOCKS * BLOCK)
            .zip(sm.par_chunks_mut(BLOCKS * BLOCK))
            .zip(codes.par_chunks_mut(BLOCKS * BLOCK / 2))
            .zip(bases.par_chunks_mut(BLOCKS))
            .enumerate()
            .flat_map_iter(|(t, (((bits, sm), codes), bases))| {
                crate::packed_bf16::pack_blocks(bits, sm, codes, bases)
                    .into_iter()
                    .map(move |b| t * BLOCKS + b)
            })
            .collect();
        packed.set_escaped(bits, escaped);
        Some(packed)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, FloatDType};

    use super::*;

    fn random_bf16(rows: usize, cols: usize, std: f64) -> Tensor<2> {
        let device = crate::cpu::test_device();
        Tensor::<2>::random([rows, cols], Distribution::Normal(0.0, std), &device)
            .cast(FloatDType::BF16)
    }

    /// A weight with some blocks that must be stored whole (a zero beside normal values).
    fn weight_with_escapes(rows: usize, cols: usize) -> (Tensor<2>, PackedBf16) {
        let w = random_bf16(rows, cols, 0.02);
        let mut bits: Vec<u16> = bytemuck::cast_vec(w.into_data().try_to_vec::<bf16>().unwrap());
        for r in (0..rows).step_by(7) {
            bits[r * cols + (r * 13) % cols] = 0;
        }
        let packed = PackedBf16::pack(&bits, rows, cols).unwrap();
        assert!(
            packed.escaped_share().0 > 0,
            "the test needs escaped blocks"
        );
        let values: Vec<bf16> = bytemuck::cast_vec(bits);
        (from_values(values, [rows, cols]), packed)
    }

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> (f32, f32) {
        let (a, b) = (a.cast(FloatDType::F32), b.cast(FloatDType::F32));
        let scale = b.clone().abs().max().into_scalar::<f32>();
        ((a - b).abs().max().into_scalar::<f32>(), scale)
    }

    /// The packed kernels against burn's bf16 matmul of the unpacked weight, for every row count
    /// of the few-row kernel and for the GEMM path, with escaped blocks and a row count that is
    /// not a whole number of tasks.
    #[test]
    fn products_equal_burns_matmul_of_the_unpacked_weight() {
        let (k, n) = (192, 300);
        let (dense, packed) = weight_with_escapes(n, k);
        assert_eq!(to_tensor(&packed).into_data(), dense.clone().into_data());
        for m in [1, 2, 3, 5, 8, 9, 40] {
            let x = random_bf16(m, k, 1.0);
            let got = linear(&x, &packed);
            assert_eq!(got.dims(), [m, n]);
            assert_eq!(got.dtype(), DType::BF16);
            let want = x.matmul(dense.clone().transpose());
            // Both sum exact f32 products and round once to bf16: the order of the sums moves
            // a result by at most one bf16 step (2⁻⁸ relative to the largest).
            let (diff, scale) = max_diff(got, want);
            assert!(
                diff <= scale / 128.0,
                "m={m}: differs by {diff} (scale {scale})"
            );
        }
    }

    #[test]
    fn f32_inputs_take_the_portable_and_gemm_paths() {
        let (k, n) = (128, 70);
        let (dense, packed) = weight_with_escapes(n, k);
        let dense = dense.cast(FloatDType::F32);
        for m in [1, 4, 20] {
            let x = random_bf16(m, k, 1.0).cast(FloatDType::F32);
            let got = linear(&x, &packed);
            assert_eq!(got.dtype(), DType::F32);
            let (diff, scale) = max_diff(got, x.matmul(dense.clone().transpose()));
            assert!(
                diff <= scale * 1e-5,
                "m={m}: differs by {diff} (scale {scale})"
            );
        }
    }

    #[test]
    fn several_weights_in_one_pass_equal_one_product_each() {
        let k = 128;
        let ws: Vec<PackedBf16> = [256, 64, 100]
            .into_iter()
            .map(|n| pack_tensor(&random_bf16(n, k, 0.02)).unwrap())
            .collect();
        let refs: Vec<&PackedBf16> = ws.iter().collect();
        for m in [1, 3] {
            let x = random_bf16(m, k, 1.0);
            let many = linear_many(&x, &refs);
            for (got, w) in many.into_iter().zip(&ws) {
                assert_eq!(got.into_data(), linear(&x, w).into_data());
            }
        }
    }

    #[test]
    fn gathered_rows_are_the_embedding_rows() {
        let (dense, packed) = weight_with_escapes(50, 64);
        let ids = [0, 7, 7, 49, 14];
        let got = gather_rows(&packed, &ids);
        let index: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let index = Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(index, [ids.len()]),
            &dense.device(),
        );
        assert_eq!(got.into_data(), dense.select(0, index).into_data());
    }

    #[test]
    fn parallel_packing_equals_packing_at_once() {
        // Several tasks' worth of blocks, with escaped ones in more than one task.
        let (rows, cols) = (2100, 128);
        let (dense, _) = weight_with_escapes(rows, cols);
        let bits: Vec<u16> =
            bytemuck::cast_vec(dense.clone().into_data().try_to_vec::<bf16>().unwrap());
        let parallel = pack_tensor(&dense).unwrap();
        assert_eq!(parallel, PackedBf16::pack(&bits, rows, cols).unwrap());
        assert!(parallel.escaped_share().0 > 10);
        let w = dense;
        assert!(pack_tensor(&w.cast(FloatDType::F32)).is_none());
    }
}
