//! Rotary position embedding with explicit position ids (the `rotate_half` convention of
//! transformers' Llama/Qwen models). Angles are computed on the host in f32 as transformers does,
//! then uploaded; that is a few kilobytes per step.

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::ops;
use crate::tensor::{cast_to, select_rows};

#[derive(Clone, Debug)]
pub struct Rope {
    /// `1 / theta^(2i/d)` for i in 0..d/2, rounded to f32 like `Qwen3RotaryEmbedding.inv_freq`.
    inv_freq: Vec<f32>,
}

/// cos and sin tables of shape `[batch, 1, seq, head_dim]` for one forward pass.
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                1.0 / (theta as f32).powf(exponent)
            })
            .collect();
        Self { inv_freq }
    }

    pub fn head_dim(&self) -> usize {
        self.inv_freq.len() * 2
    }

    /// Tables for `positions` (row-major `[batch, seq]`), in `dtype`.
    pub fn tables(
        &self,
        positions: &[i64],
        batch: usize,
        seq: usize,
        dtype: DType,
        device: &Device,
    ) -> RopeTables {
        let hd = self.head_dim();
        let mut cos = vec![0f32; positions.len() * hd];
        let mut sin = vec![0f32; positions.len() * hd];
        for ((&pos, cos), sin) in positions
            .iter()
            .zip(cos.chunks_exact_mut(hd))
            .zip(sin.chunks_exact_mut(hd))
        {
            self.fill_row(pos, cos, sin);
        }
        let upload = |v: Vec<f32>| {
            let t = Tensor::<4>::from_data(TensorData::new(v, [batch, 1, seq, hd]), device);
            cast_to(t, dtype)
        };
        RopeTables {
            cos: upload(cos),
            sin: upload(sin),
        }
    }
}

impl Rope {
    /// The cos and sin rows (`head_dim` each) of position `pos`, in f32 as transformers computes
    /// them.
    pub fn fill_row(&self, pos: i64, cos: &mut [f32], sin: &mut [f32]) {
        let half = self.inv_freq.len();
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let angle = pos as f32 * f;
            let (s, c) = angle.sin_cos();
            cos[i] = c;
            cos[i + half] = c;
            sin[i] = s;
            sin[i + half] = s;
        }
    }
}

impl RopeTables {
    /// The tables at `rows` of their `[b · t]` slots, each as a sequence of one:
    /// `[rows.len(), 1, 1, head_dim]`.
    pub(crate) fn at_rows(&self, rows: &[usize]) -> Self {
        let pick = |table: &Tensor<4>| {
            let [b, _, t, d] = table.dims();
            select_rows(table.clone().reshape([b, t, d]), rows).reshape([rows.len(), 1, 1, d])
        };
        Self {
            cos: pick(&self.cos),
            sin: pick(&self.sin),
        }
    }

    /// Applies the rotation to `x` of shape `[batch, heads, seq, head_dim]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        ops::rope(x, &self.cos, &self.sin)
    }
}
