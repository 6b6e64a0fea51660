//! Linear (no bias, Hugging Face [out, in] weight layout) and RMSNorm.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{DType, FloatDType, Tensor};

use super::lora::Lora;
use super::packed_bf16::PackedBf16;

/// A bias-free linear layer `y = x·Wᵀ` with `W` stored as Hugging Face does, `[out, in]`, frozen,
/// plus an optional trainable LoRA update.
///
/// For decoding on the CPU the base weight may be held packed in 12 bits instead
/// ([`Linear::pack`], `packed_bf16`); `weight` then holds an empty placeholder, so the weight is
/// read only through [`Linear::weight`] and the products here, never through the field.
#[derive(Module, Debug)]
pub struct Linear {
    weight: Param<Tensor<2>>,
    pub lora: Option<Lora>,
    #[module(skip)]
    packed: Option<Arc<PackedBf16>>,
}

impl Linear {
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight).set_require_grad(false),
            lora: None,
            packed: None,
        }
    }

    pub fn out_features(&self) -> usize {
        match &self.packed {
            Some(p) => p.rows(),
            None => self.weight.dims()[0],
        }
    }

    pub fn in_features(&self) -> usize {
        match &self.packed {
            Some(p) => p.cols(),
            None => self.weight.dims()[1],
        }
    }

    /// The base weight `[out, in]` as a dense tensor (unpacked into a new one when packed).
    pub fn weight(&self) -> Tensor<2> {
        match &self.packed {
            Some(p) => unpacked(p),
            None => self.weight.val(),
        }
    }

    /// Bytes of the base weight as a dense matrix (bf16 when it is held packed).
    pub fn dense_bytes(&self) -> usize {
        let element = match &self.packed {
            Some(_) => DType::BF16.size(),
            None => self.weight.val().dtype().size(),
        };
        self.out_features() * self.in_features() * element
    }

    /// The packed base weight, when it is held packed.
    pub fn packed(&self) -> Option<&Arc<PackedBf16>> {
        self.packed.as_ref()
    }

    /// Holds the base weight packed in 12 bits (lossless, see `packed_bf16`) and frees the dense
    /// one. Only bf16 weights on the CPU backend whose width is a whole number of blocks are
    /// packed; returns whether this one was.
    pub fn pack(&mut self) -> bool {
        if self.packed.is_some() {
            return true;
        }
        let Some(packed) = pack_dense(&self.weight.val()) else {
            return false;
        };
        self.set_packed(Arc::new(packed));
        true
    }

    /// Uses `packed` (of this layer's shape) as the base weight, freeing the dense one: a tied
    /// head shares the embeddings' packed matrix.
    pub(crate) fn set_packed(&mut self, packed: Arc<PackedBf16>) {
        let device = self.weight.device();
        let dtype = self.weight.val().dtype();
        self.weight =
            Param::from_tensor(Tensor::empty([0, 0], (&device, dtype))).set_require_grad(false);
        self.packed = Some(packed);
    }

    /// `x·Wᵀ` `[rows, out]` for `x` `[rows, in]`, without the LoRA update.
    pub fn base_product(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.packed {
            Some(p) => packed_product(&x, p),
            None => matmul_transposed(x, self.weight.val()),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let out = self.out_features();
        let x = x.reshape([b * t, d]);
        let y = self.base_product(x.clone());
        self.with_lora(y, x).reshape([b, t, out])
    }

    /// `y` plus the LoRA update of `x`, when there is an adapter.
    fn with_lora(&self, y: Tensor<2>, x: Tensor<2>) -> Tensor<2> {
        match &self.lora {
            Some(lora) => {
                let dtype = y.dtype();
                y + lora.delta(x, dtype)
            }
            None => y,
        }
    }
}

/// Several linear layers applied to one input (q, k and v; gate and up): on the CPU backend a
/// decode step computes all their base products in one parallel pass (`gemv::try_linear_many`,
/// or `packed_linear::linear_many` for packed weights), elsewhere each layer runs as
/// [`Linear::forward`].
pub fn forward_many(layers: &[&Linear], x: Tensor<3>) -> Vec<Tensor<3>> {
    #[cfg(feature = "flex")]
    {
        let [b, t, d] = x.dims();
        let rows = x.clone().reshape([b * t, d]);
        let products = match layers
            .iter()
            .map(|l| l.packed())
            .collect::<Option<Vec<_>>>()
        {
            Some(packed) => {
                let packed: Vec<&PackedBf16> = packed.iter().map(|p| p.as_ref()).collect();
                Some(super::packed_linear::linear_many(&rows, &packed))
            }
            None if layers.iter().all(|l| l.packed().is_none()) => {
                let weights: Vec<Tensor<2>> = layers.iter().map(|l| l.weight.val()).collect();
                super::gemv::try_linear_many(&rows, &weights)
            }
            None => None,
        };
        if let Some(products) = products {
            return layers
                .iter()
                .zip(products)
                .map(|(layer, y)| {
                    layer
                        .with_lora(y, rows.clone())
                        .reshape([b, t, layer.out_features()])
                })
                .collect();
        }
    }
    layers.iter().map(|l| l.forward(x.clone())).collect()
}

/// `w` packed, when it is a bf16 weight on the CPU backend that packs.
fn pack_dense(w: &Tensor<2>) -> Option<PackedBf16> {
    #[cfg(feature = "flex")]
    {
        super::packed_linear::pack_tensor(w)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = w;
        None
    }
}

/// A packed weight as a dense bf16 tensor.
pub(crate) fn unpacked(p: &PackedBf16) -> Tensor<2> {
    #[cfg(feature = "flex")]
    {
        super::packed_linear::to_tensor(p)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = p;
        unreachable!("weights are packed only on the CPU backend")
    }
}

/// `x·Wᵀ` for a packed `W`.
pub(crate) fn packed_product(x: &Tensor<2>, p: &PackedBf16) -> Tensor<2> {
    #[cfg(feature = "flex")]
    {
        super::packed_linear::linear(x, p)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, p);
        unreachable!("weights are packed only on the CPU backend")
    }
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
