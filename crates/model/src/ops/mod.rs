//! The seam between the model and its kernels: each operation the decoder is made of, as one
//! function. Each is its reference formula in burn's tensor ops ([`reference`], which runs on
//! every backend and is the kernels' test oracle), and a hand-written kernel of
//! `medtune-kernels` takes over where it covers the case (backend, dtype, shape, autodiff, CPU
//! features). The model's files call these and nothing else of the kernels; nothing above the
//! model asks which one ran.

mod attention;
mod embedding;
mod head;
mod linear;
mod mask;
mod norm_rope;
pub mod reference;

pub use attention::{attend_rows, causal_attention};
pub use embedding::embed;
pub use head::{HeadChunk, TargetLogSoftmax, VOCAB_CHUNK, target_log_softmax};
pub use linear::{StoredWeight, gate_up_swiglu, linear, linear_many, swiglu};
pub use mask::AttentionMask;
pub use medtune_kernels::features::{CpuFeatures, cpu as cpu_features};
pub use medtune_kernels::math::log_sum_exp;
pub use medtune_kernels::packed_bf16::PackedBf16;
pub use medtune_kernels::{
    HeadSoftmax, head_softmax_if_covered, on_compute_threads, pack_if_covered, packed_to_dense,
    packing_pays, runs_on_cpu,
};
pub use norm_rope::{rms_norm, rope};
