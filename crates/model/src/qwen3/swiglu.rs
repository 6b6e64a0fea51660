//! SwiGLU's elementwise step, `silu(gate) · up`, in one vectorised pass on the CPU (flex)
//! backend, for f32 without autodiff. burn computes it as four ops (sigmoid through libm's scalar
//! `expf`, two products), each writing a fresh `[tokens, intermediate]` buffer: ~10 % of an
//! evaluation's time on the small preset (`perf record` of `medtune bench eval`).

use burn::tensor::{DType, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::fast_exp::exp_nonpositive;
use super::flex_tensor::{contiguous, from_values};

/// `silu(gate) · up` for f32 `gate` and `up` of one shape, or `None` when not on flex, not f32,
/// or under autodiff: the caller then uses burn's ops.
pub fn try_swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    if gate.dtype() != DType::F32
        || up.dtype() != DType::F32
        || gate.is_autodiff()
        || up.is_autodiff()
        || gate.dims() != up.dims()
    {
        return None;
    }
    let (g, u) = (contiguous(gate)?, contiguous(up)?);
    let mut out = vec![0.0f32; gate.dims().iter().product()];
    let (g, u) = (g.as_slice()?, u.as_slice()?);
    // Split across threads: the rest of the MLP (its products) runs on all of them.
    out.par_chunks_mut(PER_TASK)
        .zip(g.par_chunks(PER_TASK).zip(u.par_chunks(PER_TASK)))
        .for_each(|(out, (g, u))| swiglu(g, u, out));
    Some(from_values(out, gate.dims()))
}

/// Values per parallel task (256 KiB of output).
const PER_TASK: usize = 1 << 16;

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        // sigmoid(g) from exp(−|g|) ≤ 1, so the exponential never overflows.
        let e = exp_nonpositive(-g.abs());
        let sigmoid = if g >= 0.0 { 1.0 } else { e } / (1.0 + e);
        *o = g * sigmoid * u;
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use burn::tensor::activation::silu;

    use super::*;
    use crate::DeviceSpec;

    #[test]
    fn equals_burns_silu_times_up() {
        let device = DeviceSpec::Cpu.device().unwrap();
        // Wide enough a range to reach both tails of the sigmoid.
        let gate = Tensor::<2>::random([37, 45], Distribution::Uniform(-90.0, 90.0), &device);
        let up = Tensor::<2>::random([37, 45], Distribution::Normal(0.0, 1.0), &device);
        let got: Vec<f32> = try_swiglu(&gate, &up)
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
