//! Grouped-query self-attention with Qwen3's per-head q/k RMSNorm, RoPE and an optional KV cache.

use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use super::cache::KvCache;
use super::layers::{Linear, RmsNorm, forward_many};
use super::rope::RopeTables;

/// Which keys each query may see.
#[derive(Clone, Debug)]
pub enum AttentionMask {
    /// Plain causal attention (no padding anywhere): the backend's fused causal path.
    Causal,
    /// `[batch, 1, q, k]`, true where a key is hidden from a query.
    Explicit(Box<Tensor<4, Bool>>),
}

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
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
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
        let scale = 1.0 / (hd as f64).sqrt();
        #[cfg(feature = "flex")]
        if matches!(mask, AttentionMask::Causal)
            && let Some(ctx) = super::causal_attention::try_causal(&q, &k, &v, scale as f32)
                .or_else(|| {
                    super::causal_attention_grad::try_causal_autodiff(&q, &k, &v, scale as f32)
                })
        {
            return self
                .o_proj
                .forward(ctx.swap_dims(1, 2).reshape([b, t, nh * hd]));
        }
        let k = repeat_kv(k, nh / nkv);
        let v = repeat_kv(v, nh / nkv);
        let tk = k.dims()[2];
        let (mask, is_causal) = match mask {
            AttentionMask::Causal => (None, true),
            AttentionMask::Explicit(m) => (Some((**m).clone().expand([b, nh, t, tk])), false),
        };
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal,
        };
        let ctx = attention(q, k, v, mask, None, options);
        self.o_proj
            .forward(ctx.swap_dims(1, 2).reshape([b, t, nh * hd]))
    }
}

impl Attention {
    /// The attention output `[rows.len(), hidden]` at `rows` only (indices into `x`'s
    /// `[b · t]` slots), its keys and values from every slot: queries and the output projection
    /// for those rows alone. For a causal mask with the CPU kernel (f32 or bf16 on flex, no
    /// autodiff); `None` otherwise.
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: &AttentionMask,
        rows: &[usize],
    ) -> Option<Tensor<2>> {
        #[cfg(not(feature = "flex"))]
        {
            let _ = (x, rope, mask, rows);
            None
        }
        #[cfg(feature = "flex")]
        {
            let covered = matches!(mask, AttentionMask::Causal)
                && x.device() == burn::tensor::Device::flex()
                && super::flex_tensor::is_f32_or_bf16(x.dtype())
                && !x.is_autodiff();
            if !covered {
                return None;
            }
            let t = x.dims()[1];
            let (nh, hd, n) = (self.num_heads, self.head_dim, rows.len());
            let [k, v]: [Tensor<3>; 2] = forward_many(&[&self.k_proj, &self.v_proj], x.clone())
                .try_into()
                .expect("two projections");
            let k = self.rotated_heads(k, &self.k_norm, rope);
            let v = self.heads(v);
            // Each selected row as a sequence of one, with the tables at its position.
            let x_rows = super::model::select_rows(x, rows).unsqueeze_dim::<3>(1);
            let q = self.rotated_heads(
                self.q_proj.forward(x_rows),
                &self.q_norm,
                &rope.at_rows(rows),
            );
            // A right-padded or unpadded causal query at position p sees keys 0..=p.
            let queries: Vec<(usize, usize)> = rows.iter().map(|&r| (r / t, r % t + 1)).collect();
            let scale = 1.0 / (hd as f32).sqrt();
            let ctx = super::causal_attention::try_attend_rows(&q, &k, &v, &queries, scale)?;
            let out = self.o_proj.forward(ctx.reshape([1, n, nh * hd]));
            Some(out.squeeze_dim::<2>(0))
        }
    }

    /// A projection `[b, t, heads · head_dim]` as heads `[b, heads, t, head_dim]`.
    fn heads(&self, y: Tensor<3>) -> Tensor<4> {
        let [b, t, width] = y.dims();
        y.reshape([b, t, width / self.head_dim, self.head_dim])
            .swap_dims(1, 2)
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

/// `[b, kv, t, d]` → `[b, kv * n_rep, t, d]`, each kv head repeated for its query group
/// (`repeat_kv` in transformers).
fn repeat_kv(x: Tensor<4>, n_rep: usize) -> Tensor<4> {
    if n_rep == 1 {
        return x;
    }
    let [b, kv, t, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, n_rep, t, d])
        .reshape([b, kv * n_rep, t, d])
}
