//! GFLOP/s of burn-flex's matmul for the layouts the model chooses between.
//!
//! - Projections: `x·Wᵀ` with W stored `[out, in]` (a transposed view, as checkpoints hold it)
//!   against W stored `[in, out]`.
//! - The head log-softmax's vocabulary chunks (`medtune_model::ops::target_log_softmax`, `n` hidden states, hidden
//!   `h`, `c` vocabulary rows): `x·Wᵀ` vs `W·xᵀ` for the logits, `P·W` vs `(Pᵀ)ᵀ·W` for training's
//!   gradient.
//!
//! `cargo run --release -p medtune-kernels --features flex --example matmul_layout`
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// GFLOP/s of `f`, `flop` floating-point operations a call: one warm-up call, then 10 timed.
fn gflops(flop: usize, f: &dyn Fn() -> Tensor<2>) -> f64 {
    let _ = f().into_data();
    let t = Instant::now();
    for _ in 0..10 {
        let _ = f().into_data();
    }
    flop as f64 / 1e9 / (t.elapsed().as_secs_f64() / 10.0)
}

fn random(shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// A contiguous copy of `x`ᵀ.
fn transposed_copy(x: &Tensor<2>, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(x.clone().transpose().into_data(), device)
}

fn main() {
    let device = burn::tensor::Device::flex();
    for (m, k, n) in [
        (128, 1024, 3072),
        (128, 1024, 1024),
        (1, 1024, 3072),
        (128, 3072, 1024),
        // the small preset's projections over a batch of 8 prompts of ~250 tokens
        (2048, 256, 768),
        (2048, 768, 256),
        (2048, 256, 256),
    ] {
        let x = random([m, k], &device);
        let w_out_in = random([n, k], &device);
        let w_in_out = transposed_copy(&w_out_in, &device);
        let flop = 2 * m * k * n;
        let a = gflops(flop, &|| x.clone().matmul(w_out_in.clone().transpose()));
        let b = gflops(flop, &|| x.clone().matmul(w_in_out.clone()));
        println!("m={m} k={k} n={n}: transposed view {a:.1} GFLOP/s, contiguous {b:.1} GFLOP/s");
    }
    for (n, h, c) in [
        (64, 256, 8192),
        (64, 256, 2048),
        (64, 256, 32768),
        (64, 64, 8192),
    ] {
        let x = random([n, h], &device);
        let w = random([c, h], &device);
        let p = random([n, c], &device);
        let pt = transposed_copy(&p, &device);
        let flop = 2 * n * h * c;
        let a = gflops(flop, &|| x.clone().matmul(w.clone().transpose()));
        let b = gflops(flop, &|| w.clone().matmul(x.clone().transpose()));
        let d = gflops(flop, &|| p.clone().matmul(w.clone()));
        let e = gflops(flop, &|| pt.clone().transpose().matmul(w.clone()));
        println!(
            "head chunk n={n} h={h} c={c}: x·Wᵀ {a:.0}, W·xᵀ {b:.0}, P·W {d:.0}, (Pᵀ)ᵀ·W {e:.0} GFLOP/s"
        );
    }
}
