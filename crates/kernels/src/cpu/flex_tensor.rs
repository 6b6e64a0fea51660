//! Between burn's backend-agnostic tensors and the flex (CPU) backend's own, for medtune's CPU
//! kernels: each reads its inputs as slices and hands its output back as a tensor. The kernels
//! that are custom autodiff operations work on the flex primitives directly.

use burn::tensor::{DType, Element, Shape, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use half::bf16;
use half::slice::HalfFloatSliceExt;

/// The flex tensor behind `x`, laid out contiguously (a copy only when `x` is a strided view);
/// `None` when `x` lives on another backend.
pub(crate) fn contiguous<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    Some(contiguous_primitive(&x))
}

/// `x` laid out contiguously (a copy only when it is a strided view).
pub(crate) fn contiguous_primitive(x: &FlexTensor) -> FlexTensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        x.to_contiguous()
    }
}

/// `values` as a flex primitive of `shape`.
pub(crate) fn primitive_from_values<E: Element>(
    values: Vec<E>,
    shape: impl Into<Shape>,
) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `values` as a flex tensor of `shape`.
pub(crate) fn from_values<E: Element, const D: usize>(
    values: Vec<E>,
    shape: [usize; D],
) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(primitive_from_values(values, shape))
}

/// A flex tensor's values in f32, row-major: its own storage when it is f32, a widened copy
/// when it is bf16 (the inference kernels compute in f32 either way).
#[derive(Clone, Debug)]
pub(crate) enum F32Values {
    Stored(FlexTensor),
    Widened(Vec<f32>),
}

impl F32Values {
    pub(crate) fn as_slice(&self) -> &[f32] {
        match self {
            Self::Stored(x) => x.as_slice().expect("an f32 tensor"),
            Self::Widened(v) => v,
        }
    }
}

/// `x`'s values in f32 when it is an f32 or bf16 flex tensor; `None` otherwise.
pub(crate) fn f32_values<const D: usize>(x: &Tensor<D>) -> Option<F32Values> {
    match x.dtype() {
        DType::F32 => Some(F32Values::Stored(contiguous(x)?)),
        DType::BF16 => {
            let stored = contiguous(x)?;
            let stored: &[bf16] = stored.as_slice()?;
            let mut widened = vec![0.0f32; stored.len()];
            stored.convert_to_f32_slice(&mut widened);
            Some(F32Values::Widened(widened))
        }
        _ => None,
    }
}

/// f32 `values` as a flex tensor of `shape` in `dtype`: as they are for f32, rounded to the
/// nearest bf16 for bf16.
pub(crate) fn from_f32_values<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    dtype: DType,
) -> Tensor<D> {
    if dtype == DType::BF16 {
        let mut rounded = vec![bf16::ZERO; values.len()];
        rounded.convert_from_f32_slice(&values);
        return from_values(rounded, shape);
    }
    from_values(values, shape)
}

/// Whether the inference kernels take tensors of `dtype` (computing in f32 either way).
pub(crate) fn is_f32_or_bf16(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16)
}

/// Runs `$body` once per checkpointing strategy of burn's autodiff backend, with `$strategy`
/// naming it. The strategy is a type parameter of `Autodiff<Flex, _>` chosen at run time
/// (`--gradient-checkpointing`): a body converts its tensors with
/// `try_into_primitive::<Autodiff<Flex, $strategy>>()`, which succeeds under exactly one of
/// them, and returns from the enclosing function there.
macro_rules! for_each_checkpointing {
    (|$strategy:ident| $body:block) => {{
        {
            type $strategy = ::burn_autodiff::checkpoint::strategy::NoCheckpointing;
            $body
        }
        {
            type $strategy = ::burn_autodiff::checkpoint::strategy::BalancedCheckpointing;
            $body
        }
    }};
}
pub(crate) use for_each_checkpointing;
