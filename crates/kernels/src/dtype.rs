//! Tensor dtype helpers shared by the kernels and the model (a leaf: it uses nothing of either).

use burn::tensor::{DType, FloatDType, Tensor};

/// `x` in `dtype` (unchanged when it already is).
pub fn cast_to<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype {
        return x;
    }
    let target = match dtype {
        DType::BF16 => FloatDType::BF16,
        DType::F16 => FloatDType::F16,
        DType::F64 => FloatDType::F64,
        _ => FloatDType::F32,
    };
    x.cast(target)
}

/// `x` in f32.
pub fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    cast_to(x, DType::F32)
}
