//! Times `x·Wᵀ` with W stored [out, in] (transposed view) against W stored [in, out].
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use medtune_model::DeviceSpec;

fn main() {
    let device = DeviceSpec::Cpu.device().unwrap();
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
        let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let w_out_in = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
        let w_in_out = w_out_in.clone().transpose().into_data();
        let w_in_out = Tensor::<2>::from_data(w_in_out, &device);
        let time = |f: &dyn Fn() -> Tensor<2>| {
            let _ = f().into_data();
            let t = Instant::now();
            for _ in 0..10 {
                let _ = f().into_data();
            }
            t.elapsed().as_secs_f64() / 10.0
        };
        let a = time(&|| x.clone().matmul(w_out_in.clone().transpose()));
        let b = time(&|| x.clone().matmul(w_in_out.clone()));
        let gflop = 2.0 * (m * k * n) as f64 / 1e9;
        println!(
            "m={m} k={k} n={n}: transposed view {:.1} GFLOP/s, contiguous {:.1} GFLOP/s",
            gflop / a,
            gflop / b
        );
    }
}
