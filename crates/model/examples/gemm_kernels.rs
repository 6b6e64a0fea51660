//! GFLOP/s of medtune's f32 GEMM (`qwen3::f32_gemm`) against burn-flex's matmul (the `gemm`
//! crate) on the shapes medtune runs: `cargo run --release -p medtune-model --example gemm_kernels`
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use medtune_model::DeviceSpec;
use medtune_model::qwen3::f32_gemm::{self, MatRef};

fn time(flop: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut it = 0;
    while t.elapsed().as_secs_f64() < 0.5 {
        f();
        it += 1;
    }
    flop as f64 / 1e9 / (t.elapsed().as_secs_f64() / it as f64)
}

fn main() {
    let device = DeviceSpec::Cpu.device().unwrap();
    // (m, k, n, whether B is the transpose of a stored [n, k] matrix)
    for (m, k, n, bt) in [
        (2048, 256, 64, true),
        (64, 256, 2048, true),
        (151936, 256, 64, true),
        (64, 2048, 256, false),
        (1920, 256, 768, true),
        (1920, 768, 256, true),
        (512, 256, 768, true),
        (128, 1024, 3072, true),
        (128, 3072, 1024, true),
    ] {
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let b_shape = if bt { [n, k] } else { [k, n] };
        let b = Tensor::<2>::random(b_shape, Distribution::Normal(0.0, 1.0), &device);
        let flop = 2 * m * k * n;
        let burn = time(flop, || {
            let bb = if bt { b.clone().transpose() } else { b.clone() };
            let _ = a.clone().matmul(bb).into_data();
        });
        let av: Vec<f32> = a.to_data().try_to_vec::<f32>().unwrap();
        let bv: Vec<f32> = b.to_data().try_to_vec::<f32>().unwrap();
        let bref = if bt {
            MatRef::transposed(&bv, k)
        } else {
            MatRef::row_major(&bv, n)
        };
        let mut c = vec![0.0f32; m * n];
        let ours = time(flop, || {
            f32_gemm::gemm_parallel(m, n, k, MatRef::row_major(&av, k), bref, &mut c, n, false)
        });
        let ours1 = time(flop, || {
            f32_gemm::gemm(m, n, k, MatRef::row_major(&av, k), bref, &mut c, n, false)
        });
        println!(
            "m={m} k={k} n={n} b{}: burn {burn:.0}, medtune {ours:.0} (one thread {ours1:.0}) GFLOP/s",
            if bt { "ᵀ" } else { "" }
        );
    }
}
