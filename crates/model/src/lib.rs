//! Qwen3 on burn: configuration, checkpoint IO, the decoder, KV cache and generation.
//!
//! This crate knows models and their files only: no datasets, no prompts, no HTTP. Its
//! computations go through [`ops`], the seam where `medtune-kernels` takes over.
//!
//! No `unsafe` here but memory-mapping a checkpoint (`checkpoint::weights`, each place allowed by
//! name); the kernels crate holds the rest.
#![deny(unsafe_code)]

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod init;
pub mod ops;
pub mod qwen3;
pub mod tensor;

pub use config::{Preset, Qwen3Config};
pub use device::{ComputeDType, DeviceSpec};
pub use error::{ModelError, Result};
pub use qwen3::{ForwardBatch, KvCache, Qwen3};

/// The burn tensor types this crate is written against, re-exported so callers need no
/// direct burn dependency for simple use.
pub use burn::tensor::{DType, Device, Tensor};
