//! Qwen3 on burn: configuration, checkpoint IO, the decoder, KV cache and generation.
//!
//! This crate knows models and their files only: no datasets, no prompts, no HTTP.

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
