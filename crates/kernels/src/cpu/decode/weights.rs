//! What a decode step reads of the model, in the forms its kernels take: weights dense (f32 or
//! bf16, read in place) or packed, norms widened to f32, activations as f32 values and bf16 bits.

use std::sync::Arc;

use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use half::bf16;

use crate::cpu::flex_tensor::{contiguous_primitive, f32_values};
use crate::cpu::matmul::packed::Out;
use crate::packed_bf16::PackedBf16;
use crate::rows::GEMV_MAX_ROWS as MAX_ROWS;

/// A weight as the kernels read it.
pub enum StepWeight {
    Packed(Arc<PackedBf16>),
    /// Row-major `[rows, cols]`, bf16 or f32, contiguous.
    Dense {
        tensor: FlexTensor,
        rows: usize,
        cols: usize,
    },
}

impl StepWeight {
    /// A dense weight `[rows, cols]` as stored, when the step's kernels read it: f32 or bf16 on
    /// the CPU backend, a width of whole 16-value vectors.
    pub fn dense(w: Tensor<2>) -> Option<Self> {
        let [rows, cols] = w.dims();
        let tensor = contiguous_primitive(&w.try_into_primitive::<Flex>().ok()?);
        // The AVX-512 GEMV reads 16 values at a time (the tensor path's portable loop covers
        // other widths, with other sums).
        (matches!(tensor.dtype(), DType::F32 | DType::BF16) && cols.is_multiple_of(16))
            .then_some(Self::Dense { tensor, rows, cols })
    }

    pub fn rows(&self) -> usize {
        match self {
            Self::Packed(p) => p.rows(),
            Self::Dense { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Self::Packed(p) => p.cols(),
            Self::Dense { cols, .. } => *cols,
        }
    }

    /// Bytes a product reads per row.
    pub(crate) fn row_bytes(&self) -> usize {
        match self {
            Self::Packed(p) => p.stored_bytes() / p.rows().max(1),
            Self::Dense { tensor, cols, .. } => cols * tensor.dtype().size(),
        }
    }

    /// `out[i·rows + r] = x_i · w_r` for `r` in `r0..r0 + count` and the `m` rows of `x`.
    ///
    /// # Safety
    /// AVX-512F (and BF16 for packed weights) is available; `out` points to an `m × rows`
    /// buffer whose cells `(i, r0..r0 + count)` no other thread touches meanwhile.
    #[cfg(target_arch = "x86_64")]
    pub(crate) unsafe fn product(
        &self,
        x: &Input,
        m: usize,
        r0: usize,
        count: usize,
        out: *mut f32,
    ) {
        if count == 0 {
            return;
        }
        match self {
            // SAFETY: the caller's contract; x holds m bf16 rows of cols.
            Self::Packed(p) => unsafe {
                crate::cpu::matmul::packed::packed_rows(&x.bits, m, p, r0, count, Out(out))
            },
            Self::Dense { tensor, rows, cols } => {
                let mut block = vec![0.0f32; m * count];
                let k = *cols;
                // SAFETY: AVX-512F (caller); x holds m rows of k; block m × count.
                unsafe {
                    match tensor.dtype() {
                        DType::BF16 => {
                            let all: &[u16] = bytemuck::cast_slice(tensor.storage::<bf16>());
                            crate::cpu::matmul::gemv::dense_rows(
                                &x.values,
                                m,
                                k,
                                &all[r0 * k..][..count * k],
                                &mut block,
                            )
                        }
                        _ => crate::cpu::matmul::gemv::dense_rows(
                            &x.values,
                            m,
                            k,
                            &tensor.storage::<f32>()[r0 * k..][..count * k],
                            &mut block,
                        ),
                    }
                }
                for (i, part) in block.chunks_exact(count).enumerate() {
                    // SAFETY: cells (i, r0..r0 + count) of the m × rows buffer are this task's.
                    unsafe {
                        std::ptr::copy_nonoverlapping(part.as_ptr(), out.add(i * rows + r0), count)
                    };
                }
            }
        }
    }
}

/// A norm's weight in f32 and its ε.
pub struct StepNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl StepNorm {
    /// An RMSNorm of `weight` (f32 or bf16 on the CPU backend) and `eps`.
    pub fn new(weight: &Tensor<1>, eps: f64) -> Option<Self> {
        let weight = f32_values(weight)?.as_slice().to_vec();
        Some(Self {
            weight,
            eps: eps as f32,
        })
    }

    /// `out` = each row of `x` (at most [`MAX_ROWS`]) normalised, rounded to bf16 when `round`.
    pub(crate) fn apply(&self, x: &[f32], out: &mut [f32], round: bool) {
        let mut inv_rms = [0.0f32; MAX_ROWS];
        let rows = x.len() / self.weight.len();
        crate::cpu::pointwise::norm_rope::rms_norm_rows(
            x,
            &self.weight,
            self.eps,
            out,
            &mut inv_rms[..rows],
        );
        if round {
            round_to_bf16(out);
        }
    }
}

/// One decoder layer's weights as the step reads them.
pub struct StepLayer {
    pub input_norm: StepNorm,
    pub post_norm: StepNorm,
    pub q_norm: StepNorm,
    pub k_norm: StepNorm,
    pub q: StepWeight,
    pub k: StepWeight,
    pub v: StepWeight,
    pub o: StepWeight,
    pub gate: StepWeight,
    pub up: StepWeight,
    pub down: StepWeight,
}

/// An activation in both forms the kernels take: f32 values (bf16-exact in a bf16 model) and
/// their bf16 bits (for packed weights).
pub(crate) struct Input {
    pub(crate) values: Vec<f32>,
    pub(crate) bits: Vec<u16>,
}

impl Input {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            values: vec![0.0; len],
            bits: vec![0; len],
        }
    }

    /// Takes `x`; its bits when `with_bits` (the values must then be bf16-exact).
    pub(crate) fn set(&mut self, x: &[f32], with_bits: bool) {
        self.values.clear();
        self.values.extend_from_slice(x);
        if with_bits {
            self.bits.clear();
            self.bits
                .extend(x.iter().map(|v| (v.to_bits() >> 16) as u16));
        }
    }
}

/// Each value rounded to the nearest bf16 (ties to even), as burn's and half's conversions do.
pub(crate) fn round_to_bf16(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = bf16::from_f32(*v).to_f32();
    }
}

/// The embeddings of `ids` `[ids.len(), hidden]` in f32.
pub(crate) fn embeddings(table: &StepWeight, ids: &[u32]) -> Vec<f32> {
    let hidden = table.cols();
    let mut out = vec![0.0f32; ids.len() * hidden];
    match table {
        StepWeight::Packed(packed) => {
            let mut bits = vec![0u16; hidden];
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
                packed.unpack_row(id as usize, &mut bits);
                for (o, b) in row.iter_mut().zip(&bits) {
                    *o = f32::from_bits(u32::from(*b) << 16);
                }
            }
        }
        StepWeight::Dense { tensor: table, .. } => {
            // Only the rows read (widening the whole table would cost more than the step).
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
                let at = id as usize * hidden;
                match table.dtype() {
                    DType::BF16 => {
                        for (o, v) in row.iter_mut().zip(&table.storage::<bf16>()[at..]) {
                            *o = v.to_f32();
                        }
                    }
                    _ => row.copy_from_slice(&table.storage::<f32>()[at..][..hidden]),
                }
            }
        }
    }
    out
}
