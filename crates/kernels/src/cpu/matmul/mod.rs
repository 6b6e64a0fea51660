//! Matrix products on the CPU: the f32 GEMM (prompts, batches, training's frozen weights in both
//! directions), the few-row GEMV (decoding, weights read once in their stored type), products
//! over 12-bit packed bf16 weights, and the MLP's gate/up products fused with SwiGLU.

pub mod frozen;
pub mod gate_up;
pub mod gemm;
pub mod gemv;
pub mod packed;
