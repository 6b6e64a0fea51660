//! SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::layers::{Linear, forward_many};
use crate::ops;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = match (
            self.gate_proj.without_adapter(),
            self.up_proj.without_adapter(),
        ) {
            (Some(gate), Some(up)) => ops::gate_up_swiglu(x, gate, up),
            _ => {
                let [gate, up]: [Tensor<3>; 2] = forward_many(&[&self.gate_proj, &self.up_proj], x)
                    .try_into()
                    .expect("two projections");
                ops::swiglu(gate, up)
            }
        };
        self.down_proj.forward(h)
    }
}
