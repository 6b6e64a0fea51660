//! GFLOP/s of the head's two products per vocabulary chunk in both layouts: `x·Wᵀ` vs `W·xᵀ` for
//! the logits, `P·W` vs `(Pᵀ)ᵀ·W` for the gradient (`n` rows, hidden `h`, `c` vocabulary rows).
//! `cargo run --release -p medtune-train --example head_layout`
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use medtune_model::DeviceSpec;

fn main() {
    let device = DeviceSpec::Cpu.device().unwrap();
    for (n, h, c) in [
        (64, 256, 8192),
        (64, 256, 2048),
        (64, 256, 32768),
        (64, 64, 8192),
    ] {
        let x = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<2>::random([c, h], Distribution::Normal(0.0, 1.0), &device);
        let p = Tensor::<2>::random([n, c], Distribution::Normal(0.0, 1.0), &device);
        let pt = Tensor::<2>::from_data(p.clone().transpose().into_data(), &device);
        let time = |f: &dyn Fn() -> Tensor<2>| {
            let _ = f().into_data();
            let t = Instant::now();
            for _ in 0..10 {
                let _ = f().into_data();
            }
            t.elapsed().as_secs_f64() / 10.0
        };
        let gf = 2.0 * (n * h * c) as f64 / 1e9;
        let a = time(&|| x.clone().matmul(w.clone().transpose()));
        let b = time(&|| w.clone().matmul(x.clone().transpose()));
        let d = time(&|| p.clone().matmul(w.clone()));
        let e = time(&|| pt.clone().transpose().matmul(w.clone()));
        println!(
            "n={n} h={h} c={c}: x·Wᵀ {:.0}, W·xᵀ {:.0}, P·W {:.0}, (Pᵀ)ᵀ·W {:.0} GFLOP/s",
            gf / a,
            gf / b,
            gf / d,
            gf / e
        );
    }
}
