//! SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::layers::Linear;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        #[cfg(feature = "flex")]
        if let Some(h) = super::swiglu::try_swiglu(&gate, &up)
            .or_else(|| super::swiglu::try_swiglu_autodiff(&gate, &up))
        {
            return self.down_proj.forward(h);
        }
        self.down_proj.forward(silu(gate) * up)
    }
}
