//! Linear (no bias, Hugging Face [out, in] weight layout) and RMSNorm.

use burn::module::{Module, Param};
use burn::tensor::{DType, FloatDType, Tensor};

use super::lora::Lora;

/// A bias-free linear layer `y = x·Wᵀ` with `W` stored as Hugging Face does, `[out, in]`, frozen,
/// plus an optional trainable LoRA update.
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub lora: Option<Lora>,
}

impl Linear {
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight).set_require_grad(false),
            lora: None,
        }
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let out = self.out_features();
        let x = x.reshape([b * t, d]);
        let y = matmul_transposed(x.clone(), self.weight.val());
        let y = match &self.lora {
            Some(lora) => {
                let dtype = y.dtype();
                y + lora.delta(x, dtype)
            }
            None => y,
        };
        y.reshape([b, t, out])
    }
}

/// Several linear layers applied to one input (q, k and v; gate and up): on the CPU backend a
/// decode step computes all their base products in one parallel pass (`gemv::try_linear_many`),
/// elsewhere each layer runs as [`Linear::forward`].
pub fn forward_many(layers: &[&Linear], x: Tensor<3>) -> Vec<Tensor<3>> {
    #[cfg(feature = "flex")]
    {
        let [b, t, d] = x.dims();
        let rows = x.clone().reshape([b * t, d]);
        let weights: Vec<Tensor<2>> = layers.iter().map(|l| l.weight.val()).collect();
        if let Some(products) = super::gemv::try_linear_many(&rows, &weights) {
            return layers
                .iter()
                .zip(products)
                .map(|(layer, y)| {
                    let y = match &layer.lora {
                        Some(lora) => {
                            let dtype = y.dtype();
                            y + lora.delta(rows.clone(), dtype)
                        }
                        None => y,
                    };
                    y.reshape([b, t, layer.out_features()])
                })
                .collect();
        }
    }
    layers.iter().map(|l| l.forward(x.clone())).collect()
}

/// `x·wᵀ` for `w` stored `[out, in]`: burn's matmul, or on the CPU backend medtune's own kernels
/// without autodiff: a GEMV that reads each weight once in its stored type for a few rows
/// (decoding, `gemv`), an AVX-512 GEMM for f32 prompts and batches (`f32_gemm`), and the same
/// GEMM in both directions under autodiff for training's frozen base weights (`frozen_linear`).
pub(crate) fn matmul_transposed(x: Tensor<2>, w: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if let Some(y) = super::gemv::try_linear(&x, &w) {
        return y;
    }
    #[cfg(feature = "flex")]
    if let Some(y) = super::f32_gemm::try_linear(&x, &w) {
        return y;
    }
    #[cfg(feature = "flex")]
    if let Some(y) = super::frozen_linear::try_frozen_linear(&x, &w) {
        return y;
    }
    x.matmul(w.transpose())
}

/// Root-mean-square norm over the last dimension, computed in f32 and cast back before the
/// weight is applied, exactly as `Qwen3RMSNorm` does.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor<1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight).set_require_grad(false),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        #[cfg(feature = "flex")]
        if let Some(y) = super::norm_rope::try_rms_norm(&x, &self.weight.val(), self.eps) {
            return y;
        }
        self.forward_with_tensor_ops(x)
    }

    /// [`Self::forward`] in burn's tensor ops, on every backend (the CPU kernel's reference).
    pub(crate) fn forward_with_tensor_ops<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = to_f32(x);
        let inv_rms = x
            .clone()
            .square()
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        let normed = cast_to(x * inv_rms, dtype);
        normed * self.weight.val().unsqueeze::<D>()
    }
}

pub(crate) fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    cast_to(x, DType::F32)
}

/// `x` in `dtype` (unchanged when it already is).
pub fn cast_to<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype {
        return x;
    }
    let target = match dtype {
        DType::BF16 => FloatDType::BF16,
        DType::F16 => FloatDType::F16,
        DType::F64 => FloatDType::F64,
        _ => FloatDType::F32,
    };
    x.cast(target)
}
