//! Between burn's backend-agnostic tensors and the flex (CPU) backend's own, for medtune's CPU
//! kernels: each reads its inputs as slices and hands its output back as a tensor. The kernels
//! that are custom autodiff operations work on the flex primitives directly.

use burn::tensor::{Element, Shape, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

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
