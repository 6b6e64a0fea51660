//! Element-wise and row-wise kernels: RMSNorm and RoPE (custom autodiff operations), SwiGLU, and
//! the language-model head's softmax pieces (a chunk's shifted exponentials; the fused head).

pub mod column_softmax;
pub mod fused_head;
pub mod norm_rope;
pub mod swiglu;
