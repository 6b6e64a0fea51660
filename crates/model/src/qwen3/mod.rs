//! The Qwen3 decoder, layer by layer as transformers' `modeling_qwen3.py` computes it.

mod adapter;
mod attention;
mod batch;
mod cache;
#[cfg(feature = "flex")]
pub mod causal_attention;
#[cfg(feature = "flex")]
pub mod causal_attention_grad;
#[cfg(feature = "flex")]
mod column_softmax;
#[cfg(feature = "flex")]
mod decode_step;
mod export;
#[cfg(feature = "flex")]
pub mod f32_gemm;
mod fast_exp;
#[cfg(feature = "flex")]
mod flex_tensor;
#[cfg(feature = "flex")]
mod frozen_linear;
#[cfg(feature = "flex")]
pub mod fused_head;
#[cfg(feature = "flex")]
pub mod gemv;
pub mod head_softmax;
mod lanes;
pub use head_softmax::log_sum_exp;
mod layers;
mod lora;
mod mlp;
mod model;
#[cfg(feature = "flex")]
mod norm_rope;
pub mod packed_bf16;
#[cfg(feature = "flex")]
pub mod packed_linear;
mod rope;
#[cfg(feature = "flex")]
mod stream_prefetch;
#[cfg(feature = "flex")]
mod swiglu;

pub use adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterInfo, adapter_config_json, peft_name};
pub use attention::Attention;
pub use attention::AttentionMask;
pub use batch::{ForwardBatch, PaddingSide};
pub use cache::KvCache;
pub use layers::{Linear, RmsNorm, cast_to};
pub use lora::{Lora, LoraConfig, LoraTarget, lora_rng};
pub use mlp::Mlp;
pub use model::{DecoderLayer, LoadedModel, Qwen3, WeightPacking};
pub use rope::Rope;
