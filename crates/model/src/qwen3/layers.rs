//! Linear (no bias, Hugging Face [out, in] weight layout) and RMSNorm.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{DType, Tensor};

use super::lora::Lora;
use crate::ops::{self, PackedBf16, StoredWeight};

/// A bias-free linear layer `y = x·Wᵀ` with `W` stored as Hugging Face does, `[out, in]`, frozen,
/// plus an optional trainable LoRA update.
///
/// For decoding on the CPU the base weight may be held packed in 12 bits instead
/// ([`Linear::pack`]); `weight` then holds an empty placeholder, so the weight is read only
/// through [`Linear::weight`], [`Linear::stored`] and the products here, never through the field.
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
            Some(p) => ops::packed_to_dense(p),
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

    /// Holds the base weight packed in 12 bits (lossless, see `medtune_kernels::packed_bf16`) and
    /// frees the dense one. Only bf16 weights on the CPU backend whose width is a whole number of
    /// blocks are packed; returns whether this one was.
    pub fn pack(&mut self) -> bool {
        if self.packed.is_some() {
            return true;
        }
        let Some(packed) = ops::pack_if_covered(&self.weight.val()) else {
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

    /// The frozen base weight as it is held, dense or packed.
    pub fn stored(&self) -> StoredWeight<'_> {
        match &self.packed {
            Some(p) => StoredWeight::Packed(p),
            None => StoredWeight::Dense(self.weight.val()),
        }
    }

    /// The base weight when no adapter is attached: the layer is then that product alone.
    pub fn without_adapter(&self) -> Option<StoredWeight<'_>> {
        self.lora.is_none().then(|| self.stored())
    }

    /// `x·Wᵀ` `[rows, out]` for `x` `[rows, in]`, without the LoRA update.
    pub fn base_product(&self, x: Tensor<2>) -> Tensor<2> {
        ops::linear(x, self.stored())
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let x = x.reshape([b * t, d]);
        let y = self.base_product(x.clone());
        self.with_lora(y, x).reshape([b, t, self.out_features()])
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

/// Several linear layers applied to one input (q, k and v; gate and up), their base products
/// taken together ([`ops::linear_many`]).
pub fn forward_many(layers: &[&Linear], x: Tensor<3>) -> Vec<Tensor<3>> {
    let [b, t, d] = x.dims();
    let rows = x.reshape([b * t, d]);
    let stored: Vec<StoredWeight> = layers.iter().map(|l| l.stored()).collect();
    layers
        .iter()
        .zip(ops::linear_many(rows.clone(), &stored))
        .map(|(layer, y)| {
            layer
                .with_lora(y, rows.clone())
                .reshape([b, t, layer.out_features()])
        })
        .collect()
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
        ops::rms_norm(x, &self.weight.val(), self.eps)
    }
}
