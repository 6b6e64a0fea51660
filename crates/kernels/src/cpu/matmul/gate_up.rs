//! The MLP's gate and up products with SwiGLU applied as they are made (f32 inference of a prompt
//! or batch): [`crate::cpu::matmul::gemm::matmul_swiglu`] keeps both sums in registers and writes
//! only the activation, where two products and an element-wise pass write three `[rows, inter]`
//! buffers.

use burn::tensor::{DType, Tensor};

use crate::cpu::flex_tensor::{contiguous, from_values};
use crate::cpu::matmul::gemm::{self, MatRef};
use crate::rows::GEMM_MIN_ROWS;

/// `silu(x·gateᵀ) · (x·upᵀ)` `[b, t, inter]` for f32 `x` `[b, t, k]` and f32 weights `[inter, k]`
/// as stored, without autodiff, for 16 rows or more on a CPU with AVX-512; `None` otherwise.
pub fn gate_up_swiglu_if_covered(
    x: &Tensor<3>,
    gate: &Tensor<2>,
    up: &Tensor<2>,
) -> Option<Tensor<3>> {
    let [b, t, k] = x.dims();
    let n = gate.dims()[0];
    if b * t < GEMM_MIN_ROWS
        || gate.dims() != [n, k]
        || up.dims() != [n, k]
        || x.dtype() != DType::F32
        || gate.dtype() != DType::F32
        || up.dtype() != DType::F32
        || x.is_autodiff()
        || gate.is_autodiff()
        || up.is_autodiff()
        || !crate::features::cpu().avx512f
    {
        return None;
    }
    let (xs, gs, us) = (contiguous(x)?, contiguous(gate)?, contiguous(up)?);
    let (xs, gs, us) = (xs.as_slice()?, gs.as_slice()?, us.as_slice()?);
    let h = gemm::matmul_swiglu(
        b * t,
        n,
        k,
        MatRef::row_major(xs, k),
        MatRef::transposed(gs, k),
        MatRef::transposed(us, k),
    );
    Some(from_values(h, [b, t, n]))
}
