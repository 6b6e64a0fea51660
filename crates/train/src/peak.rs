//! The device peak that model FLOP utilisation is measured against: the vendor's figure when the
//! user gives it (`--peak-tflops`), else a measured dense GEMM throughput in the compute dtype
//! through the model's own product (`medtune_model::ops::linear`: medtune's GEMM where it covers
//! the case, burn's matmul elsewhere) — the best this build reaches on this machine, so MFU then
//! says how close a step comes to it.

use std::time::Instant;

use burn::tensor::{DType, Device, Distribution, Tensor};
use medtune_model::ops::{self, StoredWeight};

/// FLOP/s of the best of three `n × n × n` products in `dtype` on `device` (after a warm-up).
pub fn measure_gemm_flops(device: &Device, dtype: DType, n: usize) -> f64 {
    let device = device.clone().inner();
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let run = || {
        let start = Instant::now();
        // Reading one value back forces lazy backends to finish.
        let product = ops::linear(a.clone(), StoredWeight::Dense(b.clone()));
        let _ = product.slice([0..1, 0..1]).into_data();
        start.elapsed().as_secs_f64()
    };
    run();
    let best = (0..3).map(|_| run()).fold(f64::MAX, f64::min);
    2.0 * (n * n * n) as f64 / best
}
