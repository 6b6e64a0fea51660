//! SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::layers::{Linear, forward_many};

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    /// `silu(gate(x))·up(x)` by the CPU kernel that computes both products and the activation
    /// in one pass (`f32_gemm::matmul_swiglu`): f32 inference of 16 rows or more without LoRA on
    /// gate or up; `None` elsewhere.
    #[cfg(feature = "flex")]
    fn fused_gate_up(&self, x: &Tensor<3>) -> Option<Tensor<3>> {
        use super::f32_gemm::{self, MatRef};
        use super::flex_tensor::{contiguous, from_values};
        use burn::tensor::DType;
        let [b, t, k] = x.dims();
        if self.gate_proj.packed().is_some() || self.up_proj.packed().is_some() {
            return None;
        }
        let (gate, up) = (self.gate_proj.weight(), self.up_proj.weight());
        let n = gate.dims()[0];
        if b * t < f32_gemm::MIN_ROWS
            || self.gate_proj.lora.is_some()
            || self.up_proj.lora.is_some()
            || x.dtype() != DType::F32
            || gate.dtype() != DType::F32
            || up.dtype() != DType::F32
            || x.is_autodiff()
            || gate.is_autodiff()
            || !f32_gemm::available()
        {
            return None;
        }
        let (xs, gs, us) = (contiguous(x)?, contiguous(&gate)?, contiguous(&up)?);
        let (xs, gs, us) = (xs.as_slice()?, gs.as_slice()?, us.as_slice()?);
        let h = f32_gemm::matmul_swiglu(
            b * t,
            n,
            k,
            MatRef::row_major(xs, k),
            MatRef::transposed(gs, k),
            MatRef::transposed(us, k),
        );
        Some(from_values(h, [b, t, n]))
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        #[cfg(feature = "flex")]
        if let Some(h) = self.fused_gate_up(&x) {
            return self.down_proj.forward(h);
        }
        let [gate, up]: [Tensor<3>; 2] = forward_many(&[&self.gate_proj, &self.up_proj], x)
            .try_into()
            .expect("two projections");
        #[cfg(feature = "flex")]
        if let Some(h) = super::swiglu::try_swiglu(&gate, &up)
            .or_else(|| super::swiglu::try_swiglu_autodiff(&gate, &up))
        {
            return self.down_proj.forward(h);
        }
        self.down_proj.forward(silu(gate) * up)
    }
}
