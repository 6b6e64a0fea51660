//! Where the time of the answer-only loss goes: the LM head and cross-entropy over Qwen3's
//! 151,936-token vocabulary for `n` supervised positions, forward and backward, on flex — recorded
//! by autodiff (`log-sum-exp` + `gather`) and fused ([`medtune_train::head_loss::head_nll`]).
//!
//! `cargo run --release -p medtune-train --example head_cost [n] [hidden]`
use std::time::Instant;

use burn::tensor::{Distribution, Int, Tensor, TensorData};
use medtune_model::DeviceSpec;
use medtune_train::head_loss::head_nll;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let n = args.next().unwrap_or(64);
    let h = args.next().unwrap_or(64);
    let v = 151_936;
    let device = DeviceSpec::Cpu.device().unwrap().autodiff();
    let head = Tensor::<2>::random([v, h], Distribution::Normal(0.0, 0.02), &device);
    let targets: Vec<u32> = (0..n as u32).map(|i| i * 2_371 % v as u32).collect();
    let target_ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let target_ids = Tensor::<2, Int>::from_data(TensorData::new(target_ids, [n, 1]), &device);
    for _ in 0..3 {
        let x = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let t = Instant::now();
        let logits = x.clone().matmul(head.clone().transpose());
        let max = logits.clone().detach().max_dim(1);
        let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let loss = (lse - logits.gather(1, target_ids.clone())).sum();
        let autodiff_loss = loss.clone().into_scalar::<f32>();
        let t_fwd = t.elapsed().as_secs_f64();
        let g = loss.backward();
        let autodiff_grad = x.grad(&g).unwrap();
        let _ = autodiff_grad.clone().into_data();
        let t_autodiff = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (fused_loss, fused_grad) = head_nll(x.clone(), head.clone(), &targets, true);
        let fused_grad = fused_grad.unwrap();
        let _ = fused_grad.clone().into_data();
        let t_fused = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = head_nll(x.clone(), head.clone(), &targets, false);
        let t_fused_loss = t.elapsed().as_secs_f64();
        println!("fused loss only {t_fused_loss:.3}s");
        let grad_diff = (fused_grad - autodiff_grad.inner())
            .abs()
            .max()
            .into_scalar::<f32>();
        println!(
            "autodiff: forward {t_fwd:.3}s, forward+backward {t_autodiff:.3}s | fused {t_fused:.3}s | \
             loss {autodiff_loss:.4} vs {fused_loss:.4}, max grad diff {grad_diff:.2e}"
        );
    }
}
