//! The Qwen3 decoder as `modeling_qwen3.py` and the Qwen3 report describe it: embeddings,
//! decoder layers (RMSNorm, grouped-query attention with per-head q/k norms and RoPE, a SwiGLU
//! MLP), a final norm and the language-model head; LoRA adapters on its projections, a KV cache
//! and PEFT-format adapter files. Every computation goes through [`crate::ops`].

mod adapter;
mod attention;
mod batch;
mod cache;
mod export;
mod layers;
mod lora;
mod mlp;
mod model;
mod rope;

pub use crate::ops::{AttentionMask, log_sum_exp};
pub use crate::tensor::cast_to;
pub use adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterInfo, adapter_config_json, peft_name};
pub use attention::Attention;
pub use batch::{ForwardBatch, PaddingSide};
pub use cache::KvCache;
pub use layers::{Linear, RmsNorm};
pub use lora::{Lora, LoraConfig, LoraTarget, lora_rng};
pub use mlp::Mlp;
pub use model::{DecoderLayer, LoadedModel, Qwen3, WeightPacking};
pub use rope::{Rope, RopeTables};
