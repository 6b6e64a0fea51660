//! Grouped-query self-attention with Qwen3's per-head q/k RMSNorm, RoPE and an optional KV cache.

use burn::module::Module;
use burn::tensor::Tensor;

use super::cache::KvCache;
use super::layers::{Linear, RmsNorm, forward_many};
use super::rope::RopeTables;
use crate::ops::{self, AttentionMask};
use crate::tensor::select_rows;

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: RmsNorm,
    pub k_norm: RmsNorm,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl Attention {
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: &AttentionMask,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let [q, k, v]: [Tensor<3>; 3] =
            forward_many(&[&self.q_proj, &self.k_proj, &self.v_proj], x)
                .try_into()
                .expect("three projections");
        let q = self.rotated_heads(q, &self.q_norm, rope);
        let k = self.rotated_heads(k, &self.k_norm, rope);
        let v = self.heads(v);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let ctx = ops::causal_attention(q, k, v, mask, scale);
        self.o_proj.forward(self.merge_heads(ctx, b, t))
    }

    /// The attention output `[rows.len(), hidden]` at `rows` only (indices into `x`'s
    /// `[b · t]` slots), its keys and values from every slot: queries and the output projection
    /// for those rows alone. For a causal mask (each query at position `p` sees keys `0..=p`);
    /// `None` for an explicit one.
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: &AttentionMask,
        rows: &[usize],
    ) -> Option<Tensor<2>> {
        if !matches!(mask, AttentionMask::Causal) {
            return None;
        }
        let t = x.dims()[1];
        let [k, v]: [Tensor<3>; 2] = forward_many(&[&self.k_proj, &self.v_proj], x.clone())
            .try_into()
            .expect("two projections");
        let k = self.rotated_heads(k, &self.k_norm, rope);
        let v = self.heads(v);
        // Each selected row as a sequence of one, with the tables at its position.
        let x_rows = select_rows(x, rows).unsqueeze_dim::<3>(1);
        let q = self.rotated_heads(
            self.q_proj.forward(x_rows),
            &self.q_norm,
            &rope.at_rows(rows),
        );
        // A right-padded or unpadded causal query at position p sees keys 0..=p.
        let queries: Vec<(usize, usize)> = rows.iter().map(|&r| (r / t, r % t + 1)).collect();
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let ctx = ops::attend_rows(q, k, v, &queries, scale);
        let out = self.o_proj.forward(self.merge_heads(ctx, 1, rows.len()));
        Some(out.squeeze_dim::<2>(0))
    }

    /// A projection `[b, t, heads · head_dim]` as heads `[b, heads, t, head_dim]`.
    fn heads(&self, y: Tensor<3>) -> Tensor<4> {
        let [b, t, width] = y.dims();
        y.reshape([b, t, width / self.head_dim, self.head_dim])
            .swap_dims(1, 2)
    }

    /// Heads `[b', heads, t', head_dim]` back as `[b, t, heads · head_dim]`.
    fn merge_heads(&self, ctx: Tensor<4>, b: usize, t: usize) -> Tensor<3> {
        ctx.swap_dims(1, 2)
            .reshape([b, t, self.num_heads * self.head_dim])
    }

    /// A query or key projection as heads, each normalised by `norm` and rotated.
    fn rotated_heads(&self, y: Tensor<3>, norm: &RmsNorm, rope: &RopeTables) -> Tensor<4> {
        let [b, t, width] = y.dims();
        // The per-head norm runs before the heads move to dim 1: a norm over the last dim does
        // not care about the order of the others, and the projection's layout is contiguous as
        // it is (no copy for the norm's kernel).
        let normed = norm.forward(y.reshape([b, t, width / self.head_dim, self.head_dim]));
        rope.apply(normed.swap_dims(1, 2))
    }
}
