//! Time of medtune's CPU attention kernels on an evaluation batch's shapes (small preset: 8
//! prompts of 240 tokens, 8 query heads, 4 kv heads, head dim 32):
//! `cargo run --release -p medtune-kernels --features flex --example attention_kernels`
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use medtune_kernels::cpu::attention::backward::{Dims, causal_forward};
use medtune_kernels::cpu::attention::prompt::causal_if_covered;

fn seconds(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut it = 0;
    while t.elapsed().as_secs_f64() < 1.0 {
        f();
        it += 1;
    }
    t.elapsed().as_secs_f64() / it as f64
}

fn main() {
    let device = burn::tensor::Device::flex();
    for (b, heads, kv_heads, t, d) in [(8, 8, 4, 240, 32), (1, 16, 8, 256, 128)] {
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<4>::random([b, heads, t, d], normal, &device);
        let k = Tensor::<4>::random([b, kv_heads, t, d], normal, &device);
        let v = Tensor::<4>::random([b, kv_heads, t, d], normal, &device);
        let scale = 1.0 / (d as f32).sqrt();
        let rows = seconds(|| {
            let _ = causal_if_covered(&q, &k, &v, scale).unwrap().into_data();
        });
        let (qs, ks, vs): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            q.to_data().try_to_vec().unwrap(),
            k.to_data().try_to_vec().unwrap(),
            v.to_data().try_to_vec().unwrap(),
        );
        let dims = Dims {
            b,
            heads,
            kv_heads,
            t,
            d,
            scale,
        };
        let blocks = seconds(|| {
            let _ = causal_forward(&qs, &ks, &vs, dims);
        });
        let flop = (b * heads * t * t * d * 2) as f64; // QKᵀ and PV, causal half each
        println!(
            "b={b} heads={heads}/{kv_heads} t={t} d={d}: row kernel {:.2} ms ({:.0} GFLOP/s), \
             GEMM blocks {:.2} ms ({:.0} GFLOP/s)",
            rows * 1e3,
            flop / rows / 1e9,
            blocks * 1e3,
            flop / blocks / 1e9
        );
    }
}
