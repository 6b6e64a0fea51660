//! Where the time of the answer-only loss goes: the LM head and cross-entropy over Qwen3's
//! 151,936-token vocabulary for `n` supervised positions, forward and backward, on flex.
use std::time::Instant;

use burn::tensor::{Distribution, Int, Tensor, TensorData};
use medtune_model::DeviceSpec;

fn main() {
    let device = DeviceSpec::Cpu.device().unwrap().autodiff();
    let (n, h, v) = (64, 64, 151_936);
    let head = Tensor::<2>::random([v, h], Distribution::Normal(0.0, 0.02), &device);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64; n], [n, 1]), &device);
    for _ in 0..3 {
        let x = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let t = Instant::now();
        let logits = x.clone().matmul(head.clone().transpose());
        let _ = logits.clone().sum().into_scalar::<f32>();
        let t_mm = t.elapsed().as_secs_f64();
        let max = logits.clone().detach().max_dim(1);
        let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let loss = (lse - logits.gather(1, targets.clone())).sum();
        let _ = loss.clone().into_scalar::<f32>();
        let t_fwd = t.elapsed().as_secs_f64();
        let g = loss.backward();
        let _ = x.grad(&g).unwrap().into_data();
        let t_all = t.elapsed().as_secs_f64();
        println!(
            "matmul {:.3}s, forward {:.3}s, forward+backward {:.3}s",
            t_mm, t_fwd, t_all
        );
    }
}
