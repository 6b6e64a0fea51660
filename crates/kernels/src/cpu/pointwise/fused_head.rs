//! The head's softmax at target tokens in one pass over the vocabulary on the CPU (flex) backend,
//! for f32 without autodiff: `logsumexp`, the target logit and the maximum per hidden state, and,
//! when asked, the softmax-weighted mean of the head rows, `softmax(h·Wᵀ)·W`, which training's
//! closed-form gradient needs (`∂nll/∂h = softmax(h·Wᵀ)·W − W[t]`).
//!
//! burn's ops (`medtune_model::ops::target_log_softmax`) walk the 155 MB head twice for training (logits, then
//! the gradient) through the `gemm` crate, which packs both operands of every chunk's product,
//! and allocate each chunk's buffers afresh. Here each thread takes its own vocabulary chunks and
//! keeps a running maximum, sum and weighted sum (rescaled when the maximum grows, as
//! flash-attention's online softmax does), so every head row is read once, while in cache, by
//! both products ([`crate::cpu::matmul::gemm`]: the chunk's rows are the left operand, read in place).
//! The threads' partial results are merged at the end.

use burn::tensor::{DType, Tensor};
use burn_flex::Flex;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::cpu::flex_tensor::contiguous;
use crate::cpu::matmul::gemm::{self, MatRef, PackedB};
use crate::math::fast_exp::exp_nonpositive;

pub use crate::covered::HeadSoftmax;

/// Bytes of one chunk's head rows and logits (`[chunk, h]` and `[chunk, n]`, f32): small enough
/// to stay in L2 (1 MiB a core on the development machine) from the first product to the second.
const CHUNK_BYTES: usize = 640 << 10;

/// [`HeadSoftmax`] for f32 `hidden` `[n, h]` and f32 `head` `[vocab, h]` on flex, one target per
/// row; `None` when this kernel does not apply (another backend or dtype, autodiff, a CPU
/// without AVX-512): the caller then uses burn's ops.
pub fn head_softmax_if_covered(
    hidden: &Tensor<2>,
    head: &Tensor<2>,
    targets: &[u32],
    expected_rows: bool,
) -> Option<HeadSoftmax> {
    let ([n, h], [vocab, h_w]) = (hidden.dims(), head.dims());
    if n == 0
        || vocab == 0
        || h != h_w
        || targets.len() != n
        || hidden.dtype() != DType::F32
        || head.dtype() != DType::F32
        || hidden.is_autodiff()
        || head.is_autodiff()
        || !crate::features::cpu().avx512f
    {
        return None;
    }
    let head = head.clone().try_into_primitive::<Flex>().ok()?;
    let hidden = contiguous(hidden)?;
    Some(head_softmax(
        hidden.as_slice::<f32>()?,
        head.as_slice::<f32>()?,
        n,
        h,
        targets,
        expected_rows,
        (CHUNK_BYTES / 4 / (n + h)).clamp(16, 4096),
    ))
}

/// The running state of one thread's share of the vocabulary.
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    target_logit: Vec<f32>,
    /// Σ exp(logit − max)·W_row, `[n, h]`, when asked for.
    weighted: Option<Vec<f32>>,
}

impl Partial {
    fn new(n: usize, h: usize, expected_rows: bool) -> Self {
        Self {
            max: vec![f32::NEG_INFINITY; n],
            sum: vec![0.0; n],
            target_logit: vec![0.0; n],
            weighted: expected_rows.then(|| vec![0.0; n * h]),
        }
    }
}

fn head_softmax(
    hidden: &[f32],
    head: &[f32],
    n: usize,
    h: usize,
    targets: &[u32],
    expected_rows: bool,
    chunk: usize,
) -> HeadSoftmax {
    let vocab = head.len() / h;
    // A few ranges per thread so that uneven progress still balances.
    let ranges = (rayon::current_num_threads() * 4).max(1);
    let per_range = vocab.div_ceil(ranges);
    let chunk = chunk.min(per_range);
    // hᵀ, the right operand of every chunk's first product, packed once for all of them.
    let hidden_t = PackedB::new(MatRef::transposed(hidden, h), h, n);
    let partials: Vec<Partial> = (0..vocab.div_ceil(per_range))
        .into_par_iter()
        .map(|r| {
            let v0 = r * per_range;
            let v1 = (v0 + per_range).min(vocab);
            let mut part = Partial::new(n, h, expected_rows);
            let mut logits = vec![0.0f32; chunk * n];
            for c0 in (v0..v1).step_by(chunk) {
                let c1 = (c0 + chunk).min(v1);
                absorb_chunk(
                    &hidden_t,
                    head,
                    n,
                    h,
                    targets,
                    c0,
                    c1,
                    &mut logits,
                    &mut part,
                );
            }
            part
        })
        .collect();
    merge(partials, n, h)
}

/// Adds vocabulary rows `c0..c1` to `part`.
#[allow(clippy::too_many_arguments)]
fn absorb_chunk(
    hidden_t: &PackedB,
    head: &[f32],
    n: usize,
    h: usize,
    targets: &[u32],
    c0: usize,
    c1: usize,
    logits: &mut [f32],
    part: &mut Partial,
) {
    let c = c1 - c0;
    let rows = &head[c0 * h..c1 * h];
    let logits = &mut logits[..c * n];
    // Transposed logits `[c, n]` = W_c·hᵀ: the head rows are read in place.
    gemm::gemm_packed(c, n, MatRef::row_major(rows, h), hidden_t, logits, n, false);
    for (j, &t) in targets.iter().enumerate() {
        if (c0..c1).contains(&(t as usize)) {
            part.target_logit[j] = logits[(t as usize - c0) * n + j];
        }
    }
    let old_max = part.max.clone();
    column_max(logits, n, &mut part.max);
    for j in 0..n {
        if part.max[j] > old_max[j] && old_max[j] > f32::NEG_INFINITY {
            // exp(old − new) ≤ 1: earlier terms shrink to the new reference.
            let scale = exp_nonpositive(old_max[j] - part.max[j]);
            part.sum[j] *= scale;
            if let Some(w) = part.weighted.as_mut() {
                w[j * h..(j + 1) * h].iter_mut().for_each(|x| *x *= scale);
            }
        }
    }
    exp_and_sum(logits, n, &part.max, &mut part.sum);
    if let Some(w) = part.weighted.as_mut() {
        // weighted += Pᵀ·W_c, P = the exponentials `[c, n]` read transposed in place.
        gemm::gemm(
            n,
            h,
            c,
            MatRef::transposed(logits, n),
            MatRef::row_major(rows, h),
            w,
            h,
            true,
        );
    }
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn column_max(x: &[f32], n: usize, max: &mut [f32]) {
    for row in x.chunks_exact(n) {
        for (m, v) in max.iter_mut().zip(row) {
            *m = m.max(*v);
        }
    }
}

/// `x ← exp(x − max)` by column, added to `sum`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn exp_and_sum(x: &mut [f32], n: usize, max: &[f32], sum: &mut [f32]) {
    for row in x.chunks_exact_mut(n) {
        for ((v, m), s) in row.iter_mut().zip(max).zip(sum.iter_mut()) {
            let e = exp_nonpositive(*v - m);
            *v = e;
            *s += e;
        }
    }
}

/// One [`HeadSoftmax`] from the threads' partial sums, each rescaled to the overall maximum.
fn merge(partials: Vec<Partial>, n: usize, h: usize) -> HeadSoftmax {
    let mut max = vec![f32::NEG_INFINITY; n];
    let mut target_logit = vec![0.0f32; n];
    for p in &partials {
        for j in 0..n {
            max[j] = max[j].max(p.max[j]);
            // Exactly one range holds each target; the others left 0.
            target_logit[j] += p.target_logit[j];
        }
    }
    let mut sum = vec![0.0f32; n];
    let mut weighted = partials[0].weighted.as_ref().map(|_| vec![0.0f32; n * h]);
    for p in &partials {
        for j in 0..n {
            let scale = exp_nonpositive(p.max[j] - max[j]);
            sum[j] += p.sum[j] * scale;
            if let (Some(acc), Some(w)) = (weighted.as_mut(), p.weighted.as_ref()) {
                for (a, x) in acc[j * h..(j + 1) * h]
                    .iter_mut()
                    .zip(&w[j * h..(j + 1) * h])
                {
                    *a += x * scale;
                }
            }
        }
    }
    if let Some(w) = weighted.as_mut() {
        for (row, s) in w.chunks_exact_mut(h).zip(&sum) {
            row.iter_mut().for_each(|x| *x /= s);
        }
    }
    HeadSoftmax {
        lse: sum.iter().zip(&max).map(|(s, m)| m + s.ln()).collect(),
        target_logit,
        max,
        expected_row: weighted,
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, FloatDType};

    use super::*;

    fn host(x: Tensor<2>) -> Vec<f32> {
        x.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn equals_a_whole_vocabulary_softmax_computed_by_burn() {
        if !crate::features::cpu().avx512f {
            eprintln!("no AVX-512F here: the kernel is never used on this CPU");
            return;
        }
        let device = crate::cpu::test_device();
        // A vocabulary that is not a multiple of any chunk, a hidden size not a multiple of 32,
        // logits spread wide enough that the running maximum moves between chunks.
        let (n, h, vocab) = (9, 40, 5003);
        let head = Tensor::<2>::random([vocab, h], Distribution::Normal(0.0, 1.0), &device);
        let hidden = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device);
        let targets = [0u32, 5002, 17, 17, 2500, 4095, 4096, 1, 3000];
        let got = head_softmax_if_covered(&hidden, &head, &targets, true).expect("f32 on flex");
        // Many chunks per thread's range, the last one short: the running maximum moves.
        let (hs, ws): (Vec<f32>, Vec<f32>) = (host(hidden.clone()), host(head.clone()));
        let small_chunks = head_softmax(&hs, &ws, n, h, &targets, true, 7);

        let logits = hidden.clone().matmul(head.clone().transpose());
        let max = logits.clone().max_dim(1);
        let probs = (logits.clone() - max.clone()).exp();
        let sum = probs.clone().sum_dim(1);
        let lse = host(sum.clone().log() + max.clone());
        let expected = host((probs / sum).matmul(head.clone()));
        let logits = host(logits);
        let max = host(max);
        for j in 0..n {
            assert!((got.lse[j] - lse[j]).abs() < 1e-4, "lse {j}");
            assert_eq!(got.max[j], max[j], "max {j}");
            let t = logits[j * vocab + targets[j] as usize];
            assert!((got.target_logit[j] - t).abs() < 1e-4, "target {j}");
        }
        for (j, v) in small_chunks.lse.iter().enumerate() {
            assert!((v - lse[j]).abs() < 1e-4, "lse {j}, chunks of 7");
        }
        for rows in [got.expected_row.clone(), small_chunks.expected_row] {
            for (g, w) in rows.expect("asked for").iter().zip(&expected) {
                assert!(
                    (g - w).abs() < 3e-5 * w.abs().max(1.0),
                    "softmax·W: {g} vs {w}"
                );
            }
        }
        let plain = head_softmax_if_covered(&hidden, &head, &targets, false).unwrap();
        assert!(plain.expected_row.is_none());
        assert_eq!(plain.lse, got.lse);

        let half = hidden.clone().cast(FloatDType::BF16);
        assert!(head_softmax_if_covered(&half, &head, &targets, false).is_none());
    }
}
