//! Which keys each query of an attention sees.

use burn::tensor::{Bool, Tensor};

/// Which keys each query may see.
#[derive(Clone, Debug)]
pub enum AttentionMask {
    /// Plain causal attention (no padding anywhere): the backend's fused causal path.
    Causal,
    /// `[batch, 1, q, k]`, true where a key is hidden from a query.
    Explicit(Box<Tensor<4, Bool>>),
}
