//! SwiGLU's elementwise step, `silu(gate) · up`, in one vectorised pass on the CPU (flex)
//! backend, for f32 without autodiff. burn computes it as four ops (sigmoid through libm's scalar
//! `expf`, two products), each writing a fresh `[tokens, intermediate]` buffer: ~10 % of an
//! evaluation's time on the small preset (`perf record` of `medtune bench eval`).

use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::{
    contiguous_primitive, f32_values, for_each_checkpointing, from_f32_values, is_f32_or_bf16,
    primitive_from_values,
};
use crate::math::fast_exp::exp_nonpositive;

/// `silu(gate) · up` for f32 or bf16 `gate` and `up` of one shape, or `None` when not on flex,
/// of another dtype, or under autodiff: the caller then uses burn's ops.
pub fn swiglu_if_covered<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    let dtype = gate.dtype();
    if !is_f32_or_bf16(dtype)
        || up.dtype() != dtype
        || gate.is_autodiff()
        || up.is_autodiff()
        || gate.dims() != up.dims()
    {
        return None;
    }
    // bf16 (decoding a bf16 model): in f32, rounded once (transformers rounds silu's result too).
    let (g, u) = (f32_values(gate)?, f32_values(up)?);
    // Split across threads: the rest of the MLP (its products) runs on all of them.
    let out = forward(g.as_slice(), u.as_slice());
    Some(from_f32_values(out, gate.dims(), dtype))
}

/// `silu(gate) · up` recorded for autodiff as one operation (training), for f32 tensors on flex:
/// the backward pass is one vectorised pass too,
/// `∂gate = ∂h · up · σ(g)·(1 + g·(1 − σ(g)))`, `∂up = ∂h · silu(g)`, instead of burn's sigmoid
/// (scalar `expf`), products and their recorded backward steps. `None` when not under autodiff or
/// not f32 on flex.
pub fn swiglu_autodiff_if_covered<const D: usize>(
    gate: &Tensor<D>,
    up: &Tensor<D>,
) -> Option<Tensor<D>> {
    if gate.dtype() != DType::F32
        || up.dtype() != DType::F32
        || !gate.is_autodiff()
        || gate.dims() != up.dims()
    {
        return None;
    }
    let shape = gate.dims();
    for_each_checkpointing!(|S| {
        if let (Ok(g), Ok(u)) = (
            gate.clone().try_into_primitive::<Autodiff<Flex, S>>(),
            up.clone().try_into_primitive::<Autodiff<Flex, S>>(),
        ) {
            let (gf, uf) = (
                contiguous_primitive(g.primitive()),
                contiguous_primitive(u.primitive()),
            );
            let out = primitive_from_values(forward(gf.as_slice()?, uf.as_slice()?), shape);
            let out = match SwiGlu
                .prepare::<S>([g.node(), u.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((gf, uf), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            return Some(Tensor::from_primitive::<Autodiff<Flex, S>>(out));
        }
    });
    None
}

#[derive(Debug)]
struct SwiGlu;

impl Backward<Flex, 2> for SwiGlu {
    /// gate and up, contiguous.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous_primitive(&grads.consume::<Flex>(&ops.node));
        let (gate, up) = ops.state;
        let shape = gate.layout().shape().clone();
        let (g, u, dh) = (
            gate.as_slice::<f32>().expect("f32"),
            up.as_slice::<f32>().expect("f32"),
            grad.as_slice::<f32>().expect("f32"),
        );
        let mut d_gate = vec![0.0f32; g.len()];
        let mut d_up = vec![0.0f32; g.len()];
        d_gate
            .par_chunks_mut(PER_TASK)
            .zip(d_up.par_chunks_mut(PER_TASK))
            .zip(g.par_chunks(PER_TASK).zip(u.par_chunks(PER_TASK)))
            .zip(dh.par_chunks(PER_TASK))
            .for_each(|(((dg, du), (g, u)), dh)| swiglu_grad(g, u, dh, dg, du));
        let [parent_gate, parent_up] = ops.parents;
        for (parent, values) in [(parent_gate, d_gate), (parent_up, d_up)] {
            if let Some(node) = parent {
                let tensor = primitive_from_values(values, shape.clone());
                grads.register::<Flex>(node.id, tensor);
            }
        }
    }
}

/// `silu(g)·u`, across threads.
fn forward(g: &[f32], u: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; g.len()];
    out.par_chunks_mut(PER_TASK)
        .zip(g.par_chunks(PER_TASK).zip(u.par_chunks(PER_TASK)))
        .for_each(|(out, (g, u))| swiglu(g, u, out));
    out
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn swiglu_grad(gate: &[f32], up: &[f32], grad: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
    for i in 0..gate.len().min(d_gate.len()) {
        let (g, u, dh) = (gate[i], up[i], grad[i]);
        let sigmoid = sigmoid(g);
        d_gate[i] = dh * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
        d_up[i] = dh * g * sigmoid;
    }
}

/// silu(g) = g·σ(g).
#[inline(always)]
pub(crate) fn silu(g: f32) -> f32 {
    g * sigmoid(g)
}

/// σ(g) from exp(−|g|) ≤ 1, so the exponential never overflows.
#[inline(always)]
fn sigmoid(g: f32) -> f32 {
    let e = exp_nonpositive(-g.abs());
    (if g >= 0.0 { 1.0 } else { e }) / (1.0 + e)
}

/// Values per parallel task (256 KiB of output).
const PER_TASK: usize = 1 << 16;

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g * sigmoid(g) * u;
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use burn::tensor::activation::silu;

    use super::*;

    #[test]
    fn autodiff_op_has_burns_values_and_gradients() {
        let device = crate::cpu::test_device().autodiff();
        let normal = Distribution::Normal(0.0, 3.0);
        let gate = Tensor::<3>::random([2, 33, 45], normal, &device);
        let up = Tensor::<3>::random([2, 33, 45], normal, &device);
        let r = Tensor::<3>::random([2, 33, 45], normal, &device);
        let run = |ours: bool| {
            let (g, u) = (gate.clone().require_grad(), up.clone().require_grad());
            let h = if ours {
                swiglu_autodiff_if_covered(&g, &u).expect("autodiff f32 on flex")
            } else {
                silu(g.clone()) * u.clone()
            };
            let grads = (h.clone() * r.clone()).sum().backward();
            (h.inner(), g.grad(&grads).unwrap(), u.grad(&grads).unwrap())
        };
        let (ours, theirs) = (run(true), run(false));
        let diff = |a: Tensor<3>, b: Tensor<3>| (a - b).abs().max().into_scalar::<f32>();
        assert!(diff(ours.0, theirs.0) < 1e-4, "values");
        assert!(diff(ours.1, theirs.1) < 1e-4, "gate gradient");
        assert!(diff(ours.2, theirs.2) < 1e-4, "up gradient");
    }

    #[test]
    fn equals_burns_silu_times_up() {
        let device = crate::cpu::test_device();
        // Wide enough a range to reach both tails of the sigmoid.
        let gate = Tensor::<2>::random([37, 45], Distribution::Uniform(-90.0, 90.0), &device);
        let up = Tensor::<2>::random([37, 45], Distribution::Normal(0.0, 1.0), &device);
        let got: Vec<f32> = swiglu_if_covered(&gate, &up)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let want: Vec<f32> = (silu(gate) * up).into_data().try_into_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}
