//! Between burn's backend-agnostic tensors and the flex (CPU) backend's own, for medtune's CPU
//! kernels: each reads its inputs as slices and hands its output back as a tensor.

use burn::tensor::{Element, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

/// The flex tensor behind `x`, laid out contiguously (a copy only when `x` is a strided view);
/// `None` when `x` lives on another backend.
pub(crate) fn contiguous<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    Some(if x.is_contiguous() {
        x
    } else {
        x.to_contiguous()
    })
}

/// `values` as a flex tensor of `shape`.
pub(crate) fn from_values<E: Element, const D: usize>(
    values: Vec<E>,
    shape: [usize; D],
) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(values, shape)))
}
