//! Products with frozen weights `[out, in]` (Hugging Face's layout), dense or packed, and the
//! MLP's activation.

use std::sync::Arc;

use burn::tensor::Tensor;
use medtune_kernels::packed_bf16::PackedBf16;

use super::reference;

/// A frozen weight `[out, in]` as the model holds it.
// A tensor handle is ~256 bytes (the data is shared, not copied); one is moved per product.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum StoredWeight<'a> {
    Dense(Tensor<2>),
    /// Packed in 12 bits per value, losslessly (CPU decoding).
    Packed(&'a Arc<PackedBf16>),
}

/// `x·wᵀ` `[m, out]` for `x` `[m, in]`, in `x`'s dtype.
pub fn linear(x: Tensor<2>, w: StoredWeight) -> Tensor<2> {
    match w {
        StoredWeight::Packed(p) => medtune_kernels::packed_linear_many(&x, &[p.as_ref()])
            .pop()
            .expect("one product"),
        StoredWeight::Dense(w) => {
            medtune_kernels::linear_if_covered(&x, &w).unwrap_or_else(|| reference::linear(x, w))
        }
    }
}

/// [`linear`] for several weights that read the same `x` (q, k and v; gate and up): where a kernel
/// covers them, all their rows in one parallel pass.
pub fn linear_many(x: Tensor<2>, ws: &[StoredWeight]) -> Vec<Tensor<2>> {
    let packed: Option<Vec<&PackedBf16>> = ws
        .iter()
        .map(|w| match w {
            StoredWeight::Packed(p) => Some(p.as_ref()),
            StoredWeight::Dense(_) => None,
        })
        .collect();
    if let Some(packed) = packed {
        return medtune_kernels::packed_linear_many(&x, &packed);
    }
    let dense: Option<Vec<Tensor<2>>> = ws
        .iter()
        .map(|w| match w {
            StoredWeight::Dense(w) => Some(w.clone()),
            StoredWeight::Packed(_) => None,
        })
        .collect();
    if let Some(products) = dense.and_then(|d| medtune_kernels::linear_many_if_covered(&x, &d)) {
        return products;
    }
    ws.iter().map(|w| linear(x.clone(), w.clone())).collect()
}

/// `silu(gate) · up`.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    medtune_kernels::swiglu_if_covered(&gate, &up).unwrap_or_else(|| reference::swiglu(gate, up))
}

/// `silu(x·gateᵀ) · (x·upᵀ)` `[b, t, inter]` for `x` `[b, t, hidden]`: where a kernel covers it,
/// both products and the activation in one pass that writes only the activation.
pub fn gate_up_swiglu(x: Tensor<3>, gate: StoredWeight, up: StoredWeight) -> Tensor<3> {
    if let (StoredWeight::Dense(g), StoredWeight::Dense(u)) = (&gate, &up)
        && let Some(h) = medtune_kernels::gate_up_swiglu_if_covered(&x, g, u)
    {
        return h;
    }
    let [b, t, d] = x.dims();
    let [g, u]: [Tensor<2>; 2] = linear_many(x.reshape([b * t, d]), &[gate, up])
        .try_into()
        .expect("two products");
    let n = g.dims()[1];
    swiglu(g.reshape([b, t, n]), u.reshape([b, t, n]))
}
