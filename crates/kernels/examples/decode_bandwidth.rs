//! How close a decode step's weight reads come to this machine's memory bandwidth: one-row
//! products over every weight of a qwen3-0.6b-shaped model in bf16 (28 layers and the tied
//! head, 1.19 GB), the same products over the weights packed in 12 bits (0.9 GB), and a plain
//! parallel read of the bf16 bytes.
//! `cargo run --release -p medtune-kernels --features flex --example decode_bandwidth`
use std::time::Instant;

use burn::tensor::{Distribution, FloatDType, Tensor};
use rayon::prelude::*;

fn main() {
    let device = burn::tensor::Device::flex();
    let (hidden, inter, q, kv, vocab, layers) = (1024, 3072, 2048, 1024, 151_936, 28);
    let bf16 = |n: usize, k: usize| {
        Tensor::<2>::random([n, k], Distribution::Normal(0.0, 0.02), &device).cast(FloatDType::BF16)
    };
    let mut weights = Vec::new();
    for _ in 0..layers {
        for (n, k) in [
            (q, hidden),
            (kv, hidden),
            (kv, hidden),
            (hidden, q),
            (inter, hidden),
            (inter, hidden),
            (hidden, inter),
        ] {
            weights.push(bf16(n, k));
        }
    }
    weights.push(bf16(vocab, hidden));
    let bytes: usize = weights.iter().map(|w| w.dims()[0] * w.dims()[1] * 2).sum();
    let xs: Vec<_> = [hidden, q, inter]
        .into_iter()
        .map(|k| {
            Tensor::<2>::random([1, k], Distribution::Normal(0.0, 1.0), &device)
                .cast(FloatDType::BF16)
        })
        .collect();
    let x_for = |k: usize| xs.iter().find(|x| x.dims()[1] == k).unwrap().clone();
    let step = || {
        for w in &weights {
            let y = medtune_kernels::cpu::matmul::gemv::linear_if_covered(&x_for(w.dims()[1]), w)
                .unwrap();
            std::hint::black_box(y);
        }
    };
    step();
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        step();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "gemv step: {:.1} ms, {:.1} GB/s over {:.2} GB",
        best * 1e3,
        bytes as f64 / best / 1e9,
        bytes as f64 / 1e9
    );

    // The same weights packed losslessly in 12 bits (`packed_bf16`), as `--packed-weights`
    // stores them.
    let packed: Vec<_> = weights
        .iter()
        .map(|w| medtune_kernels::cpu::matmul::packed::pack_tensor(w).unwrap())
        .collect();
    let packed_bytes: usize = packed.iter().map(|p| p.stored_bytes()).sum();
    let packed_step = || {
        for w in &packed {
            let y = medtune_kernels::cpu::matmul::packed::linear(&x_for(w.cols()), w);
            std::hint::black_box(y);
        }
    };
    packed_step();
    let mut packed_best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        packed_step();
        packed_best = packed_best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "packed gemv step: {:.1} ms, {:.1} GB/s of packed bytes ({:.2} GB)",
        packed_best * 1e3,
        packed_bytes as f64 / packed_best / 1e9,
        packed_bytes as f64 / 1e9
    );

    let buffer: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        let s: u64 = buffer
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a ^ b))
            .reduce(|| 0, |a, b| a ^ b);
        std::hint::black_box(s);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "plain read: {:.1} ms, {:.1} GB/s",
        best * 1e3,
        bytes as f64 / best / 1e9
    );
}
