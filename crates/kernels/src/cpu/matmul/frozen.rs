//! `x·Wᵀ` for a frozen weight under autodiff on the CPU (flex) backend, forward and backward
//! through medtune's GEMM ([`crate::cpu::matmul::gemm`]) instead of burn-flex's.
//!
//! In LoRA training every base projection is such a product: the weight never gets a gradient,
//! the input does (`∂x = ∂y·W`). burn's autodiff records the matmul generically and runs both
//! passes through the `gemm` crate (50–100 GFLOP/s on these shapes, against 170–200 here, see
//! `cargo run --release -p medtune-kernels --features flex --example gemm_kernels`). This is a custom autodiff
//! operation in burn's own terms (`burn_autodiff::ops::Backward`, as its built-in ops are
//! written): one tracked parent, the input; the weight kept as state for the backward product.

use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_flex::{Flex, FlexTensor};

use crate::cpu::flex_tensor::{
    contiguous, contiguous_primitive, for_each_checkpointing, primitive_from_values,
};
use crate::cpu::matmul::gemm::{self, MatRef};

/// Fewest rows worth the custom operation (below, burn's matmul is as good).
use crate::rows::GEMM_MIN_ROWS as MIN_ROWS;

/// `x·wᵀ` `[m, n]` with the gradient flowing to `x` only, for f32 `x` `[m, k]` tracked by
/// autodiff on flex and a frozen f32 `w` `[n, k]`; `None` when this does not apply (no autodiff,
/// another backend or dtype, too few rows, a CPU without AVX-512): the caller then uses burn's
/// matmul.
pub fn linear_if_covered(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    let ([m, k], [_, k_w]) = (x.dims(), w.dims());
    if m < MIN_ROWS
        || k != k_w
        || !x.is_autodiff()
        || w.is_require_grad()
        || x.dtype() != DType::F32
        || w.dtype() != DType::F32
        || !crate::features::cpu().avx512f
    {
        return None;
    }
    let weight = contiguous(&w.clone().inner())?;
    for_each_checkpointing!(|S| {
        if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex, S>>() {
            let output = matmul_transposed(&contiguous_primitive(x.primitive()), &weight)?;
            let out = match FrozenLinear
                .prepare::<S>([x.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(weight, output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            };
            return Some(Tensor::from_primitive::<Autodiff<Flex, S>>(out));
        }
    });
    None
}

#[derive(Debug)]
struct FrozenLinear;

impl Backward<Flex, 1> for FrozenLinear {
    /// The frozen weight `[n, k]`.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let weight = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous_primitive(&grad);
            matmul(&grad, &weight).expect("f32 gradient and weight")
        });
    }
}

/// `x·wᵀ`: x `[m, k]`, w `[n, k]`, both contiguous f32.
fn matmul_transposed(x: &FlexTensor, w: &FlexTensor) -> Option<FlexTensor> {
    let ([m, k], [n, _]) = (
        x.layout().shape().dims::<2>(),
        w.layout().shape().dims::<2>(),
    );
    let (xs, ws) = (x.as_slice::<f32>()?, w.as_slice::<f32>()?);
    let out = gemm::matmul_parallel(m, n, k, MatRef::row_major(xs, k), MatRef::transposed(ws, k));
    Some(primitive_from_values(out, [m, n]))
}

/// `g·w`: g `[m, n]`, w `[n, k]`, both contiguous f32.
fn matmul(g: &FlexTensor, w: &FlexTensor) -> Option<FlexTensor> {
    let ([m, n], [_, k]) = (
        g.layout().shape().dims::<2>(),
        w.layout().shape().dims::<2>(),
    );
    let (gs, ws) = (g.as_slice::<f32>()?, w.as_slice::<f32>()?);
    let out = gemm::matmul_parallel(m, k, n, MatRef::row_major(gs, n), MatRef::row_major(ws, k));
    Some(primitive_from_values(out, [m, k]))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn forward_and_input_gradient_equal_burns_matmul() {
        if !crate::features::cpu().avx512f {
            eprintln!("no AVX-512F here: the operation is never used on this CPU");
            return;
        }
        let device = crate::cpu::test_device().autodiff();
        let (m, k, n) = (37, 48, 70);
        let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
        let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        // A downstream weighting so the incoming gradient is not all ones.
        let r = Tensor::<2>::random([m, n], Distribution::Normal(0.0, 1.0), &device);

        let x_ours = x.clone().require_grad();
        let y = linear_if_covered(&x_ours, &w).expect("autodiff f32 on flex");
        let grads = (y.clone() * r.clone()).sum().backward();
        let g_ours = x_ours.grad(&grads).expect("x has a gradient");

        let x_burn = x.require_grad();
        let y_burn = x_burn.clone().matmul(w.clone().transpose());
        let grads = (y_burn.clone() * r).sum().backward();
        let g_burn = x_burn.grad(&grads).unwrap();

        let diff = |a: Tensor<2>, b: Tensor<2>| (a - b).abs().max().into_scalar::<f32>();
        assert!(diff(y.inner(), y_burn.inner()) < 1e-4);
        assert!(diff(g_ours, g_burn) < 1e-4);

        let plain = Tensor::<2>::zeros([m, k], &crate::cpu::test_device());
        assert!(
            linear_if_covered(&plain, &w.inner()).is_none(),
            "no autodiff"
        );
    }
}
