//! LoRA: a low-rank update `s · B·A` beside a frozen linear weight, computed as `(x·Aᵀ)·Bᵀ`
//! (never forming the dense `B·A`), in f32 whatever the base dtype, as PEFT does with an f32
//! adapter on a bf16 base.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{ModelError, Result};
use crate::tensor::{cast_to, to_f32};

/// The linear layers of a Qwen3 block LoRA can target, by their Hugging Face names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 7] = [
        Self::Q,
        Self::K,
        Self::V,
        Self::O,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];

    /// `q_proj`, `gate_proj`, ...
    pub fn module_name(self) -> &'static str {
        match self {
            Self::Q => "q_proj",
            Self::K => "k_proj",
            Self::V => "v_proj",
            Self::O => "o_proj",
            Self::Gate => "gate_proj",
            Self::Up => "up_proj",
            Self::Down => "down_proj",
        }
    }

    /// `self_attn.q_proj`, `mlp.gate_proj`, ... (the path inside a decoder layer).
    pub fn path(self) -> &'static str {
        match self {
            Self::Q => "self_attn.q_proj",
            Self::K => "self_attn.k_proj",
            Self::V => "self_attn.v_proj",
            Self::O => "self_attn.o_proj",
            Self::Gate => "mlp.gate_proj",
            Self::Up => "mlp.up_proj",
            Self::Down => "mlp.down_proj",
        }
    }

    /// Parses `q,v`, `q_proj,v_proj` or `all-linear`.
    pub fn parse_list(text: &str) -> Result<Vec<LoraTarget>> {
        if text.trim() == "all-linear" {
            return Ok(Self::ALL.to_vec());
        }
        let mut out: Vec<LoraTarget> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(LoraTarget::from_str)
            .collect::<Result<_>>()?;
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(ModelError::Invalid("no LoRA target modules given".into()));
        }
        Ok(out)
    }
}

impl FromStr for LoraTarget {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        let short = s.strip_suffix("_proj").unwrap_or(s);
        Self::ALL
            .into_iter()
            .find(|t| t.module_name().strip_suffix("_proj") == Some(short))
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown LoRA target `{s}`: use q,k,v,o,gate,up,down (or q_proj, ...) or all-linear"
                ))
            })
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.module_name())
    }
}

/// Hyper-parameters of a LoRA adapter, as in PEFT's `LoraConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<LoraTarget>,
    /// Scale by `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        scale(self.alpha, self.rank, self.rslora)
    }
}

pub(crate) fn scale(alpha: f64, rank: usize, rslora: bool) -> f64 {
    if rslora {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    }
}

/// One adapter: `A` `[r, in]` and `B` `[out, r]` in PEFT's layout, f32.
#[derive(Module, Debug)]
pub struct Lora {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    pub scale: f64,
    pub dropout: f64,
}

impl Lora {
    /// A fresh adapter initialised as PEFT does: A Kaiming-uniform with a = √5 (bound
    /// `1/√in`), B zero, so it starts as the identity. A is drawn on the host from `rng` so the
    /// same seed gives the same adapter on every backend.
    pub fn init(
        rank: usize,
        in_features: usize,
        out_features: usize,
        scale: f64,
        dropout: f64,
        rng: &mut StdRng,
        device: &Device,
    ) -> Self {
        let bound = 1.0 / (in_features as f32).sqrt();
        let a: Vec<f32> = (0..rank * in_features)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::<2>::from_data(
            TensorData::new(a, [rank, in_features]),
            (device, DType::F32),
        );
        let b = Tensor::<2>::zeros([out_features, rank], (device, DType::F32));
        Self::from_tensors(a, b, scale, dropout)
    }

    pub fn from_tensors(a: Tensor<2>, b: Tensor<2>, scale: f64, dropout: f64) -> Self {
        Self {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            scale,
            dropout,
        }
    }

    pub fn rank(&self) -> usize {
        self.a.dims()[0]
    }

    /// The update `s · (x·Aᵀ)·Bᵀ` for `x` `[n, in]`, returned in `dtype`. Dropout applies only when
    /// the tensors track gradients (training).
    pub fn delta(&self, x: Tensor<2>, dtype: DType) -> Tensor<2> {
        let x = to_f32(x);
        let x = if self.dropout > 0.0 && x.device().is_autodiff() {
            let keep = 1.0 - self.dropout;
            let mask = x.random_like(Distribution::Bernoulli(keep));
            (x * mask).mul_scalar(1.0 / keep)
        } else {
            x
        };
        let delta = x
            .matmul(self.a.val().transpose())
            .matmul(self.b.val().transpose())
            .mul_scalar(self.scale);
        cast_to(delta, dtype)
    }

    /// The dense update `s · B·A` `[out, in]` in f32, for merging.
    pub fn dense(&self) -> Tensor<2> {
        self.b.val().matmul(self.a.val()).mul_scalar(self.scale)
    }
}

/// A seeded RNG for adapter initialisation.
pub fn lora_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_target_lists() {
        assert_eq!(
            LoraTarget::parse_list("v_proj, q").unwrap(),
            vec![LoraTarget::Q, LoraTarget::V]
        );
        assert_eq!(LoraTarget::parse_list("all-linear").unwrap().len(), 7);
        assert!(LoraTarget::parse_list("lm_head").is_err());
    }

    #[test]
    fn rslora_scales_by_root_rank() {
        assert_eq!(scale(16.0, 8, false), 2.0);
        assert_eq!(scale(16.0, 4, true), 8.0);
    }
}
