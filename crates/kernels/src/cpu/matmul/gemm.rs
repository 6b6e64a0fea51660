//! A single-precision matrix product for the CPU (flex) backend on x86-64 with AVX-512.
//!
//! burn-flex multiplies through the `gemm` crate, which packs both operands on every call and
//! reaches 85–100 GFLOP/s on this project's shapes (hidden 256–1,024, 64–2,048 rows) against
//! 140–170 for PyTorch's MKL on the same two cores (`cargo run --release -p medtune-kernels --features flex
//! --example matmul_layout`). Here only one operand is ever packed, and not even that when the
//! right-hand side is already laid out `[k, n]` row by row: the left-hand side is read in place
//! with any strides (its elements are broadcast from memory), so a transposed view costs nothing.
//! The micro-kernel holds a 12 × 32 block of the result in 24 AVX-512 registers.
//!
//! Written by hand: no crate offers a GEMM that reads a strided left operand without packing it.
//! Callers fall back to burn's matmul on CPUs without AVX-512F ([`crate::features`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use crate::cpu::flex_tensor::{contiguous, from_values};

use crate::rows::GEMM_MIN_ROWS as MIN_ROWS;

/// `x·wᵀ` `[m, n]` for f32 `x` `[m, k]` and f32 `w` `[n, k]` (a weight as stored), or `None`
/// when this kernel does not apply (another backend or dtype, autodiff, fewer than
/// [`MIN_ROWS`] rows, a CPU without AVX-512): the caller then uses burn's matmul.
pub fn linear_if_covered(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    let ([m, k], [n, k_w]) = (x.dims(), w.dims());
    if m < MIN_ROWS
        || k != k_w
        || x.dtype() != DType::F32
        || w.dtype() != DType::F32
        || x.is_autodiff()
        || w.is_autodiff()
        || !crate::features::cpu().avx512f
    {
        return None;
    }
    let (x, w) = (contiguous(x)?, contiguous(w)?);
    let (xs, ws) = (x.as_slice::<f32>()?, w.as_slice::<f32>()?);
    let out = matmul_parallel(m, n, k, MatRef::row_major(xs, k), MatRef::transposed(ws, k));
    Some(from_values(out, [m, n]))
}

/// A read-only matrix: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns (a view, nothing is copied).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// The columns from `j0` on.
    fn skip_cols(self, j0: usize) -> Self {
        Self {
            data: &self.data[j0 * self.cs..],
            ..self
        }
    }

    /// The rows from `i0` on.
    fn skip_rows(self, i0: usize) -> Self {
        Self {
            data: &self.data[i0 * self.rs..],
            ..self
        }
    }

    fn t(self) -> Self {
        Self {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// The right-hand operand as the kernel reads it.
#[derive(Clone, Copy)]
enum Rhs<'a> {
    View(MatRef<'a>),
    Packed(&'a PackedB),
}

/// A right-hand operand `[k, n]` packed once for several products (attention's keys, read by
/// every block of query rows): per depth block of `KC`, panels of `NR` columns,
/// `[panel][kk][NR]`, zero-padded.
pub struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedB {
    pub fn new(b: MatRef, k: usize, n: usize) -> Self {
        check_bounds(k, n, &b);
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; k * panels * NR];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            pack_b(
                b.t(),
                k0,
                kc,
                n,
                &mut data[k0 * panels * NR..][..kc * panels * NR],
            );
        }
        Self { data, k, n }
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// [`gemm`] with a packed right-hand side, of which the first `n` columns are used.
pub fn gemm_packed(
    m: usize,
    n: usize,
    a: MatRef,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let k = b.k;
    assert!(crate::features::cpu().avx512f, "gemm needs AVX-512F");
    assert!(n <= b.n, "more columns than were packed");
    check_bounds(m, k, &a);
    check_output(m, n, c, ldc);
    if m == 0 || n == 0 || k == 0 {
        return gemm(m, n, k, a, MatRef::row_major(&[], n), c, ldc, accumulate);
    }
    // SAFETY: AVX-512F checked, a and c bounds checked above, b packed for k × n.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        gemm_avx512(m, n, k, a, Rhs::Packed(b), c.as_mut_ptr(), ldc, accumulate)
    }
}

/// Rows of the result a micro-kernel computes.
const MR: usize = 12;
/// Columns of the result a micro-kernel computes: two AVX-512 vectors.
const NR: usize = 32;
/// The depth of one pass: a 12 × 256 block of A (12 KiB) stays in L1, a 256 × 32 panel of B
/// (32 KiB) in L1/L2.
const KC: usize = 256;
/// Rows of A one pass walks before moving to the next panel of B (96 KiB of A at KC = 256,
/// in L2).
const MC: usize = 96;

/// `c = a·b` (or `c += a·b` when `accumulate`), `a` `[m, k]`, `b` `[k, n]`, `c` row-major
/// `[m, n]` with row stride `ldc`, on the calling thread. Panics without AVX-512F ([`crate::features`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    check_output(m, n, c, ldc);
    // SAFETY: c holds the m × n block at row stride ldc (checked above).
    unsafe { gemm_unchecked(m, n, k, a, b, c.as_mut_ptr(), ldc, accumulate) }
}

/// [`gemm`] into a raw block of c whose bounds the caller has checked; a, b checked here.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_unchecked(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    assert!(crate::features::cpu().avx512f, "gemm needs AVX-512F");
    check_bounds(m, k, &a);
    check_bounds(k, n, &b);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of the block, inside c by the caller's check.
                unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n).fill(0.0) };
            }
        }
        return;
    }
    // SAFETY: AVX-512F was checked above; a and b were bounds-checked, c by the caller.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        gemm_avx512(m, n, k, a, Rhs::View(b), c, ldc, accumulate)
    }
}

/// [`gemm`] with the columns of the result split across rayon's threads (rows, when there are
/// too few columns to share).
#[allow(clippy::too_many_arguments)]
pub fn gemm_parallel(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    check_output(m, n, c, ldc);
    // SAFETY: c holds the m × n block at row stride ldc (checked above).
    unsafe { gemm_parallel_unchecked(m, n, k, a, b, c.as_mut_ptr(), ldc, accumulate) }
}

/// `a·b` `[m, n]` in a new row-major buffer, across threads. The buffer is not zeroed first:
/// every element is written once by the product (zeroing it was ~3 % of an evaluation).
pub fn matmul_parallel(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f32> {
    if k == 0 {
        return vec![0.0; m * n];
    }
    // SAFETY: with k > 0 and accumulate false, the product writes every element of the m × n
    // block (each micro-tile stores all its valid cells).
    unsafe {
        filled_by(m * n, |c| {
            gemm_parallel_unchecked(m, n, k, a, b, c, n, false)
        })
    }
}

/// [`gemm_parallel`] into a raw block of c whose bounds the caller has checked.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_parallel_unchecked(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let threads = rayon::current_num_threads().max(1);
    let panels = n.div_ceil(NR);
    let c = SharedMut(c);
    if threads == 1 || 2 * m * n * k < 4_000_000 {
        // SAFETY: the caller's block.
        return unsafe { gemm_unchecked(m, n, k, a, b, c.get(), ldc, accumulate) };
    }
    if panels >= threads {
        // Column ranges of whole panels; each task writes only its columns of c.
        par_column_ranges(n, |j0, cols| {
            let b = b.skip_cols(j0);
            // SAFETY: tasks write disjoint column ranges of the caller's block.
            unsafe { gemm_unchecked(m, cols, k, a, b, c.get().add(j0), ldc, accumulate) };
        });
    } else {
        // Row ranges; each task writes only its rows of c.
        let per_task = m.div_ceil(threads);
        (0..m.div_ceil(per_task)).into_par_iter().for_each(|t| {
            let i0 = t * per_task;
            let rows = per_task.min(m - i0);
            let a = a.skip_rows(i0);
            // SAFETY: tasks write disjoint row ranges of the caller's block.
            unsafe { gemm_unchecked(rows, n, k, a, b, c.get().add(i0 * ldc), ldc, accumulate) };
        });
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}
impl SharedMut {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Panics unless `c` holds an `m × n` block at row stride `ldc`.
fn check_output(m: usize, n: usize, c: &[f32], ldc: usize) {
    assert!(
        m == 0 || n == 0 || c.len() >= (m - 1) * ldc + n,
        "c too small"
    );
}

/// A new `len`-element buffer filled by `write_all`, without zeroing it first (zeroing the
/// outputs of the products was ~3 % of an evaluation).
///
/// # Safety
/// `write_all` writes every one of the `len` elements behind the pointer it is given.
unsafe fn filled_by(len: usize, write_all: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut out: Vec<std::mem::MaybeUninit<f32>> = Vec::with_capacity(len);
    // SAFETY: MaybeUninit needs no initialisation; the caller's `write_all` initialises all of
    // it before the buffer is read as f32.
    unsafe {
        out.set_len(len);
        write_all(out.as_mut_ptr().cast());
        let mut out = std::mem::ManuallyDrop::new(out);
        Vec::from_raw_parts(out.as_mut_ptr().cast::<f32>(), out.len(), out.capacity())
    }
}

/// Runs `task(j0, cols)` for column ranges of whole panels covering `n`, one per thread.
fn par_column_ranges(n: usize, task: impl Fn(usize, usize) + Sync) {
    let threads = rayon::current_num_threads().max(1);
    let per_task = n.div_ceil(NR).div_ceil(threads) * NR;
    (0..n.div_ceil(per_task))
        .into_par_iter()
        .for_each(|t| task(t * per_task, per_task.min(n - t * per_task)));
}

fn check_bounds(rows: usize, cols: usize, x: &MatRef) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * x.rs + (cols - 1) * x.cs;
        assert!(last < x.data.len(), "operand too small for its shape");
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx512(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: Rhs,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller upholds this function's contract (AVX-512F, bounds).
    unsafe {
        let panels = n.div_ceil(NR);
        // B is read in place when its rows are contiguous, or was packed by the caller;
        // otherwise each depth block is packed here into panels of NR columns (zero-padded),
        // `[panel][kk][NR]`.
        let (view, prepacked) = match b {
            Rhs::View(view) => (view, None),
            Rhs::Packed(packed) => (MatRef::row_major(&[], 0), Some(packed)),
        };
        let b = view;
        let pack = prepacked.is_none() && b.cs != 1;
        let mut packed = if pack {
            vec![0.0f32; panels * KC.min(k) * NR]
        } else {
            Vec::new()
        };
        // A is read in place unless its rows would collide in L1's sets (see `aliases`); then
        // each block is packed as MR-row tiles, `[tile][kk][MR]`.
        let pack_a = aliases(&a);
        let mut packed_a = if pack_a {
            vec![0.0f32; MC.min(m).div_ceil(MR) * MR * KC.min(k)]
        } else {
            Vec::new()
        };
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            if pack {
                pack_b(b.t(), k0, kc, n, &mut packed);
            }
            let add = accumulate || k0 > 0;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                if pack_a {
                    pack_a_block(&a, i0, mc, k0, kc, &mut packed_a);
                }
                for p in 0..panels {
                    let j0 = p * NR;
                    let cols = NR.min(n - j0);
                    let (bp, b_rs) = if let Some(pre) = prepacked {
                        (
                            pre.data.as_ptr().add(k0 * pre.panels() * NR + p * kc * NR),
                            NR,
                        )
                    } else if pack {
                        (packed.as_ptr().add(p * kc * NR), NR)
                    } else {
                        (b.data.as_ptr().add(k0 * b.rs + j0), b.rs)
                    };
                    let masks = column_masks(cols);
                    for i in (i0..i0 + mc).step_by(MR) {
                        let rows = MR.min(i0 + mc - i);
                        let (ap, a_rs, a_cs) = if pack_a {
                            (packed_a.as_ptr().add((i - i0) * kc), 1, MR)
                        } else {
                            (a.data.as_ptr().add(i * a.rs + k0 * a.cs), a.rs, a.cs)
                        };
                        let cp = c.add(i * ldc + j0);
                        micro(rows, kc, ap, a_rs, a_cs, bp, b_rs, masks, cp, ldc, add);
                    }
                }
            }
        }
    }
}

/// Rows of the gate-and-up micro-kernel: 6 rows × 32 columns × 2 products = 24 registers.
const MR_SWIGLU: usize = 6;

/// `silu(a·gate) ⊙ (a·up)` `[m, n]` for `a` `[m, k]` and `gate`, `up` `[k, n]` (the MLP's weights
/// as transposed views), across threads: both products and SwiGLU's element-wise step in one
/// pass. Each output tile's gate and up sums stay in registers and only the activation is
/// written (separately, the two `[m, n]` products are written, read back and a third buffer
/// written: ~4 % of an evaluation, plus a product call). No depth blocking: a panel of each
/// weight, `k × 32`, stays in L2 for `k` up to a few thousand.
pub fn matmul_swiglu(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    gate: MatRef,
    up: MatRef,
) -> Vec<f32> {
    assert!(crate::features::cpu().avx512f, "gemm needs AVX-512F");
    check_bounds(m, k, &a);
    check_bounds(k, n, &gate);
    check_bounds(k, n, &up);
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    // SAFETY: the column ranges are disjoint and together cover n; each task writes every
    // valid cell of every tile of its columns, for all m rows.
    unsafe {
        filled_by(m * n, |c| {
            let c = SharedMut(c);
            par_column_ranges(n, |j0, cols| {
                let (gate, up) = (gate.skip_cols(j0), up.skip_cols(j0));
                swiglu_columns(m, cols, k, a, gate, up, c.get().add(j0), n);
            });
        })
    }
}

/// [`matmul_swiglu`] for `cols` columns on the calling thread, into c at row stride `ldc`.
#[allow(clippy::too_many_arguments)]
unsafe fn swiglu_columns(
    m: usize,
    cols: usize,
    k: usize,
    a: MatRef,
    gate: MatRef,
    up: MatRef,
    c: *mut f32,
    ldc: usize,
) {
    let panels = cols.div_ceil(NR);
    let mut packed_gate = vec![0.0f32; panels * k * NR];
    let mut packed_up = vec![0.0f32; panels * k * NR];
    pack_b(gate.t(), 0, k, cols, &mut packed_gate);
    pack_b(up.t(), 0, k, cols, &mut packed_up);
    for i0 in (0..m).step_by(MC) {
        let mc = MC.min(m - i0);
        for p in 0..panels {
            let j0 = p * NR;
            let masks = column_masks(NR.min(cols - j0));
            let (gp, up_p) = (&packed_gate[p * k * NR..], &packed_up[p * k * NR..]);
            for i in (i0..i0 + mc).step_by(MR_SWIGLU) {
                let rows = MR_SWIGLU.min(i0 + mc - i);
                // SAFETY: AVX-512F checked by the caller; a's rows i.. and the panels hold k
                // steps; c's tile lies in the caller's block.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let ap = a.data.as_ptr().add(i * a.rs);
                    let cp = c.add(i * ldc + j0);
                    macro_rules! dispatch {
                        ($($r:literal)*) => {
                            match rows {
                                $($r => micro_swiglu::<$r>(
                                    k, ap, a.rs, a.cs, gp.as_ptr(), up_p.as_ptr(), masks, cp, ldc,
                                ),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    dispatch!(1 2 3 4 5 6)
                }
            }
        }
    }
}

/// R × 32 tile: the gate and up sums over all of k in registers, then `silu(g)·u` stored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_swiglu<const R: usize>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    gate: *const f32,
    up: *const f32,
    (mlo, mhi): (u16, u16),
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller upholds this function's contract (AVX-512F, bounds).
    unsafe {
        let mut g_lo = [_mm512_setzero_ps(); R];
        let mut g_hi = [_mm512_setzero_ps(); R];
        let mut u_lo = [_mm512_setzero_ps(); R];
        let mut u_hi = [_mm512_setzero_ps(); R];
        for kk in 0..k {
            let (gk, uk) = (gate.add(kk * NR), up.add(kk * NR));
            let (g0, g1) = (_mm512_loadu_ps(gk), _mm512_loadu_ps(gk.add(16)));
            let (u0, u1) = (_mm512_loadu_ps(uk), _mm512_loadu_ps(uk.add(16)));
            let ak = a.add(kk * a_cs);
            for r in 0..R {
                let x = _mm512_set1_ps(*ak.add(r * a_rs));
                g_lo[r] = _mm512_fmadd_ps(x, g0, g_lo[r]);
                g_hi[r] = _mm512_fmadd_ps(x, g1, g_hi[r]);
                u_lo[r] = _mm512_fmadd_ps(x, u0, u_lo[r]);
                u_hi[r] = _mm512_fmadd_ps(x, u1, u_hi[r]);
            }
        }
        let mut g = [0.0f32; NR];
        let mut u = [0.0f32; NR];
        for r in 0..R {
            _mm512_storeu_ps(g.as_mut_ptr(), g_lo[r]);
            _mm512_storeu_ps(g.as_mut_ptr().add(16), g_hi[r]);
            _mm512_storeu_ps(u.as_mut_ptr(), u_lo[r]);
            _mm512_storeu_ps(u.as_mut_ptr().add(16), u_hi[r]);
            for (g, u) in g.iter_mut().zip(&u) {
                *g = crate::cpu::pointwise::swiglu::silu(*g) * u;
            }
            let cr = c.add(r * ldc);
            _mm512_mask_storeu_ps(cr, mlo, _mm512_loadu_ps(g.as_ptr()));
            _mm512_mask_storeu_ps(cr.add(16), mhi, _mm512_loadu_ps(g.as_ptr().add(16)));
        }
    }
}

/// Whether the MR rows of a tile of row-major A fall into few L1 sets: with a row stride that is
/// a multiple of 2 KiB (hidden 1,024 or 3,072), 12 rows share 1–2 of the 64 sets of a 32 KiB
/// 8-way L1 and evict each other on every step.
fn aliases(a: &MatRef) -> bool {
    a.cs == 1 && (a.rs * 4).is_multiple_of(2048)
}

/// Packs rows `i0..i0+mc`, columns `k0..k0+kc` of A into MR-row tiles `[tile][kk][MR]`.
fn pack_a_block(a: &MatRef, i0: usize, mc: usize, k0: usize, kc: usize, packed: &mut [f32]) {
    for (t, tile) in packed.chunks_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let rows = MR.min(mc - t * MR);
        for r in 0..rows {
            let src = &a.data[(i0 + t * MR + r) * a.rs + k0 * a.cs..];
            for kk in 0..kc {
                tile[kk * MR + r] = src[kk * a.cs];
            }
        }
    }
}

/// Packs rows `k0..k0+kc` of B (given as its transpose `bt`, `[n, k]`) into NR-column panels.
#[cfg(target_arch = "x86_64")]
fn pack_b(bt: MatRef, k0: usize, kc: usize, n: usize, packed: &mut [f32]) {
    for (p, panel) in packed.chunks_mut(kc * NR).take(n.div_ceil(NR)).enumerate() {
        let j0 = p * NR;
        let cols = NR.min(n - j0);
        if cols < NR {
            panel.fill(0.0);
        }
        if bt.rs == 1 {
            // B row-major: each of its rows gives one contiguous run of the panel.
            for kk in 0..kc {
                let src = (k0 + kk) * bt.cs + j0;
                panel[kk * NR..kk * NR + cols].copy_from_slice(&bt.data[src..src + cols]);
            }
        } else {
            // B a transposed view: walk each stored row (a column of B) contiguously.
            for jj in 0..cols {
                let base = (j0 + jj) * bt.rs + k0 * bt.cs;
                for kk in 0..kc {
                    panel[kk * NR + jj] = bt.data[base + kk * bt.cs];
                }
            }
        }
    }
}

/// Load/store masks of the two vectors of a panel with `cols` valid columns.
#[cfg(target_arch = "x86_64")]
fn column_masks(cols: usize) -> (u16, u16) {
    let lo = if cols >= 16 {
        0xFFFF
    } else {
        (1u16 << cols) - 1
    };
    let hi = if cols >= 32 {
        0xFFFF
    } else if cols > 16 {
        (1u16 << (cols - 16)) - 1
    } else {
        0
    };
    (lo, hi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    rows: usize,
    kc: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    masks: (u16, u16),
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    // SAFETY: the caller upholds this function's contract (AVX-512F, bounds).
    unsafe {
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match rows {
                    $($r => micro_rows::<$r>(kc, a, a_rs, a_cs, b, b_rs, masks, c, ldc, add),)*
                    _ => unreachable!(),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

/// R × 32 block of c: Σ_kk a[r, kk]·b[kk, 0..32], the two vectors of each row in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_rows<const R: usize>(
    kc: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    (mlo, mhi): (u16, u16),
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    // SAFETY: the caller upholds this function's contract (AVX-512F, bounds).
    unsafe {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        let full = mlo == 0xFFFF && mhi == 0xFFFF;
        for kk in 0..kc {
            let bk = b.add(kk * b_rs);
            let (b0, b1) = if full {
                (_mm512_loadu_ps(bk), _mm512_loadu_ps(bk.add(16)))
            } else {
                (
                    _mm512_maskz_loadu_ps(mlo, bk),
                    _mm512_maskz_loadu_ps(mhi, bk.add(16)),
                )
            };
            let ak = a.add(kk * a_cs);
            if a_cs == 1 && kk.is_multiple_of(16) {
                // Row-major A streams from memory (the head's rows): fetch the next block of
                // rows' cache line while this one computes. A prefetch never faults.
                for r in 0..R {
                    _mm_prefetch::<_MM_HINT_T0>(ak.wrapping_add((R + r) * a_rs) as *const i8);
                }
            }
            for r in 0..R {
                let x = _mm512_set1_ps(*ak.add(r * a_rs));
                lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
            }
        }
        for r in 0..R {
            let cr = c.add(r * ldc);
            let (mut v0, mut v1) = (lo[r], hi[r]);
            if add {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(mlo, cr));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mhi, cr.add(16)));
            }
            _mm512_mask_storeu_ps(cr, mlo, v0);
            _mm512_mask_storeu_ps(cr.add(16), mhi, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: &MatRef, b: &MatRef) -> Vec<f32> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for kk in 0..k {
                    c[i * n + j] +=
                        a.data[i * a.rs + kk * a.cs] as f64 * b.data[kk * b.rs + j * b.cs] as f64;
                }
            }
        }
        c.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn gate_and_up_with_swiglu_equal_the_separate_products() {
        if !crate::features::cpu().avx512f {
            return;
        }
        for (m, n, k) in [(13, 70, 40), (100, 33, 300), (7, 96, 1024)] {
            let a = values(m * k, 5);
            let (g, u) = (values(n * k, 6), values(n * k, 7));
            let (a, gt, ut) = (
                MatRef::row_major(&a, k),
                MatRef::transposed(&g, k),
                MatRef::transposed(&u, k),
            );
            let (gate, up) = (reference(m, n, k, &a, &gt), reference(m, n, k, &a, &ut));
            let got = matmul_swiglu(m, n, k, a, gt, ut);
            for ((h, g), u) in got.iter().zip(&gate).zip(&up) {
                let want = g / (1.0 + (-g).exp()) * u;
                assert!(
                    (h - want).abs() < 1e-3 * want.abs().max(1.0),
                    "{m}x{n}x{k}: {h} vs {want}"
                );
            }
        }
    }

    #[test]
    fn packed_right_operand_gives_the_same_products() {
        if !crate::features::cpu().avx512f {
            return;
        }
        for (m, n, k, used) in [(20, 70, 300, 70), (13, 64, 32, 40), (5, 33, 7, 1)] {
            let a = values(m * k, 3);
            let b = values(n * k, 4);
            let (a, bt) = (MatRef::row_major(&a, k), MatRef::transposed(&b, k));
            let packed = PackedB::new(bt, k, n);
            let want = reference(m, used, k, &a, &bt);
            let mut c = vec![0.0f32; m * used];
            gemm_packed(m, used, a, &packed, &mut c, used, false);
            for (g, w) in c.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{m}x{used}x{k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn equals_a_reference_product_for_every_layout_and_edge() {
        if !crate::features::cpu().avx512f {
            eprintln!("no AVX-512F here: the kernel is never used on this CPU");
            return;
        }
        // Shapes that cross every edge: rows not a multiple of 12 or of MC, columns not a
        // multiple of 16 or 32, depth beyond one KC block.
        for (m, n, k) in [
            (1, 1, 1),
            (13, 17, 5),
            (100, 70, 300),
            (25, 33, 513),
            (7, 64, 256),
        ] {
            let a_rm = values(m * k, 1);
            let b_rm = values(k * n, 2);
            let a_cm: Vec<f32> = (0..m * k).map(|x| a_rm[(x % m) * k + x / m]).collect();
            let b_cm: Vec<f32> = (0..k * n).map(|x| b_rm[(x % k) * n + x / k]).collect();
            let a_views = [MatRef::row_major(&a_rm, k), MatRef::transposed(&a_cm, m)];
            let b_views = [MatRef::row_major(&b_rm, n), MatRef::transposed(&b_cm, k)];
            let want = reference(m, n, k, &a_views[0], &b_views[0]);
            for a in a_views {
                for b in b_views {
                    for parallel in [false, true] {
                        let ldc = n + 3;
                        let mut c = vec![7.0f32; m * ldc];
                        if parallel {
                            gemm_parallel(m, n, k, a, b, &mut c, ldc, false);
                            let fresh = matmul_parallel(m, n, k, a, b);
                            for i in 0..m {
                                assert_eq!(&fresh[i * n..(i + 1) * n], &c[i * ldc..i * ldc + n]);
                            }
                        } else {
                            gemm(m, n, k, a, b, &mut c, ldc, false);
                        }
                        for i in 0..m {
                            for j in 0..n {
                                let (got, w) = (c[i * ldc + j], want[i * n + j]);
                                assert!(
                                    (got - w).abs() < 1e-4,
                                    "{m}x{n}x{k} ({i},{j}): {got} vs {w}"
                                );
                            }
                            assert_eq!(&c[i * ldc + n..i * ldc + ldc], &[7.0; 3], "padding kept");
                        }
                        gemm(m, n, k, a, b, &mut c, ldc, true);
                        for i in 0..m {
                            for j in 0..n {
                                let (got, w) = (c[i * ldc + j], 2.0 * want[i * n + j]);
                                assert!(
                                    (got - w).abs() < 2e-4,
                                    "accumulated {m}x{n}x{k}: {got} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
