//! Time of one parallel product back to back, and after the worker threads went idle.
use std::time::{Duration, Instant};

use medtune_kernels::cpu::matmul::gemm::{self, MatRef};

fn main() {
    for (m, k, n) in [(1920, 256, 256), (1920, 256, 768)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let flop = (2 * m * n * k) as f64;
        for pause in [0u64, 50, 300, 2000] {
            let mut total = 0.0;
            for _ in 0..200 {
                if pause > 0 {
                    std::thread::sleep(Duration::from_micros(pause));
                }
                let t = Instant::now();
                gemm::gemm_parallel(
                    m,
                    n,
                    k,
                    MatRef::row_major(&a, k),
                    MatRef::transposed(&b, k),
                    &mut c,
                    n,
                    false,
                );
                total += t.elapsed().as_secs_f64();
            }
            println!(
                "{m}x{k}x{n} after {pause} µs idle: {:.0} GFLOP/s",
                flop * 200.0 / total / 1e9
            );
        }
    }
}
