//! The Qwen3 decoder, layer by layer as transformers' `modeling_qwen3.py` computes it.

mod attention;
mod batch;
mod cache;
mod layers;
mod mlp;
mod model;
mod rope;

pub use attention::Attention;
pub use attention::AttentionMask;
pub use batch::{ForwardBatch, PaddingSide};
pub use cache::KvCache;
pub use layers::{Linear, RmsNorm};
pub use mlp::Mlp;
pub use model::{DecoderLayer, LoadedModel, Qwen3};
pub use rope::Rope;
