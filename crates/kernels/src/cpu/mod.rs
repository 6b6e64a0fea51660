//! The CPU kernels, for burn's flex backend: each reads burn tensors as slices
//! ([`flex_tensor`]), computes on plain memory, and hands a tensor back; the ones used in
//! training are custom autodiff operations with their own backward pass.

pub mod attention;
pub mod decode;
pub(crate) mod flex_tensor;
pub mod matmul;
pub mod pointwise;
pub(crate) mod prefetch;

/// The CPU device, for the kernels' own tests.
#[cfg(test)]
pub(crate) fn test_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
