//! What one parallel product costs beyond its arithmetic: a packed and a plain bf16 product over
//! a tiny weight (256 × 64), repeated, from a rayon thread as a decode step runs them.
//! `cargo run --release -p medtune-kernels --features flex --example region_cost`
use std::time::Instant;

use burn::tensor::{Distribution, FloatDType, Tensor};
use medtune_kernels::cpu::matmul::{gemv, packed as packed_linear};

fn main() {
    let device = burn::tensor::Device::flex();
    let w = Tensor::<2>::random([256, 64], Distribution::Normal(0.0, 0.02), &device)
        .cast(FloatDType::BF16);
    let x = Tensor::<2>::random([1, 64], Distribution::Normal(0.0, 1.0), &device)
        .cast(FloatDType::BF16);
    let packed = packed_linear::pack_tensor(&w).unwrap();
    let n = 20_000;
    rayon::scope(|_| {
        let packed_product = || drop(packed_linear::linear(&x, &packed));
        let plain_product = || drop(gemv::linear_if_covered(&x, &w).unwrap());
        let products: [(&str, &dyn Fn()); 2] =
            [("packed", &packed_product), ("plain", &plain_product)];
        for (name, f) in products {
            f();
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            println!(
                "{name}: {:.2} µs per product",
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
        // The same with serial work between the products, as a decode step has (norms, RoPE,
        // attention on one thread): the other thread waits idle meanwhile.
        for gap_us in [10u64, 50, 200] {
            let spin = |us: u64| {
                let t = Instant::now();
                while t.elapsed().as_micros() < u128::from(us) {
                    std::hint::spin_loop();
                }
            };
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                spin(gap_us);
            }
            let gaps = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..n {
                spin(gap_us);
                packed_product();
            }
            let extra = (t.elapsed().as_secs_f64() - gaps) * 1e6 / n as f64;
            println!("packed after {gap_us} µs of serial work: {extra:.2} µs per product");
        }
    });
}
