//! The device peak that model FLOP utilisation is measured against: the vendor's figure when the
//! user gives it (`--peak-tflops`), else a measured dense GEMM throughput in the compute dtype —
//! what the hardware reaches through this backend, so MFU then says how close a step comes to it.

use std::time::Instant;

use burn::tensor::{DType, Device, Distribution, Tensor};

/// FLOP/s of the best of three `n × n × n` matmuls in `dtype` on `device` (after a warm-up).
pub fn measure_gemm_flops(device: &Device, dtype: DType, n: usize) -> f64 {
    let device = device.clone().inner();
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let run = || {
        let start = Instant::now();
        // Reading one value back forces lazy backends to finish.
        let _ = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_data();
        start.elapsed().as_secs_f64()
    };
    run();
    let best = (0..3).map(|_| run()).fold(f64::MAX, f64::min);
    2.0 * (n * n * n) as f64 / best
}
