//! medtune's hand-written compute kernels, and every `unsafe` block and `target_feature` of the
//! project but two named exceptions (memory-mapping a checkpoint, the allocator setting).
//!
//! The model calls them through one seam (`medtune_model::ops`): each operation there is its
//! reference formula in burn's tensor ops, and a kernel of this crate takes over where one of the
//! [`covered`] entry points accepts the case. Nothing above the model asks which kernel ran.
//!
//! - [`cpu`] (feature `flex`): the CPU kernels on burn's flex backend — matrix products,
//!   attention, point-wise operations, the whole-step decode path. GPU kernels (CubeCL) go into a
//!   sibling folder.
//! - [`math`]: portable numeric building blocks on slices.
//! - [`packed_bf16`]: the lossless 12-bit storage of bf16 weights (a format, no tensors).
//! - [`features`]: which CPU instructions the kernels use, decided once, with the
//!   `MEDTUNE_KERNELS=portable` override; [`rows`]: the row thresholds between kernels.
//! - [`dtype`]: dtype casts shared with the model.
//!
//! Each kernel, what it replaces, its test and its measuring example: `README.md` beside this
//! folder.

// Without `flex` the CPU kernels are not built, and the helpers they share go unused.
#![cfg_attr(not(feature = "flex"), allow(dead_code))]

pub mod covered;
#[cfg(feature = "flex")]
pub mod cpu;
pub mod dtype;
pub mod features;
pub mod math;
pub mod packed_bf16;
pub mod rows;

pub use covered::*;
