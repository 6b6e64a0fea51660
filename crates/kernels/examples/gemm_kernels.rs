//! GFLOP/s of medtune's f32 GEMM (`cpu::matmul::gemm`) against burn-flex's matmul (the `gemm`
//! crate) on the shapes medtune runs: `cargo run --release -p medtune-kernels --features flex --example gemm_kernels`
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use medtune_kernels::cpu::matmul::gemm::{self, MatRef};

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
    head_gemv();
    let device = burn::tensor::Device::flex();
    // (m, k, n, whether B is the transpose of a stored [n, k] matrix)
    for (m, k, n, bt) in [
        // the fused head's products per vocabulary chunk of 512 rows, 64 hidden states
        (512, 256, 64, true),
        (2048, 256, 64, true),
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
            gemm::gemm_parallel(m, n, k, MatRef::row_major(&av, k), bref, &mut c, n, false)
        });
        let ours1 = time(flop, || {
            gemm::gemm(m, n, k, MatRef::row_major(&av, k), bref, &mut c, n, false)
        });
        println!(
            "m={m} k={k} n={n} b{}: burn {burn:.0}, medtune {ours:.0} (one thread {ours1:.0}) GFLOP/s",
            if bt { "ᵀ" } else { "" }
        );
    }
    // The fused head's second product: Pᵀ·W_c, P `[c, n]` read transposed in place.
    for (n, c, h) in [(64, 512, 256), (64, 2048, 256)] {
        let p: Vec<f32> = (0..c * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..c * h).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; n * h];
        let flop = 2 * n * c * h;
        let one = time(flop, || {
            gemm::gemm(
                n,
                h,
                c,
                MatRef::transposed(&p, n),
                MatRef::row_major(&w, h),
                &mut out,
                h,
                false,
            )
        });
        println!("Pᵀ·W m={n} k={c} n={h}: medtune one thread {one:.0} GFLOP/s");
    }
}

/// The language-model head at a batch's last tokens (8 rows, the small preset's 151,936 × 256
/// f32 head), through the few-rows GEMV: memory-bound, so reported in GB/s of head read.
#[allow(dead_code)]
fn head_gemv() {
    let device = burn::tensor::Device::flex();
    let (m, k, n) = (8, 256, 151_936);
    let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
    let bytes = n * k * 4;
    let gbs = time(bytes, || {
        let _ = medtune_kernels::cpu::matmul::gemv::linear_if_covered(&x, &w)
            .unwrap()
            .into_data();
    });
    let burn = time(bytes, || {
        let _ = x.clone().matmul(w.clone().transpose()).into_data();
    });
    println!("head GEMV m={m} k={k} n={n}: medtune {gbs:.1} GB/s, burn {burn:.1} GB/s of weights");
}
