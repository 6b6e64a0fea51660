//! The log-softmax of the language-model head at chosen target tokens, a vocabulary chunk at a
//! time, without ever holding all `n × vocab` logits.
//!
//! Scoring (log-probabilities of answer continuations) and training (the answer-only loss and
//! its closed-form gradient, in medtune-train) both need, for `n` hidden states and one target
//! token each, `logsumexp(h·Wᵀ)` and `h·W[target]`. With Qwen3's 151,936-token vocabulary the
//! logits of a few hundred rows are hundreds of MB, and every whole-tensor pass over them (shift,
//! exp, sum, log, gather) walks fresh buffers. Here each chunk's logits are made, reduced and
//! dropped (or kept, for training's second pass) while they are still in cache.

use burn::tensor::{DType, Int, Tensor, TensorData};

use super::reference;
use crate::tensor::cast_to;

/// 2,048 vocabulary rows per chunk: the logits of 64 hidden states are then 512 KiB, which stay
/// in L2 (`cargo run --release -p medtune-kernels --features flex --example matmul_layout`: the head's GEMMs run
/// ~1.7× faster than with 8,192).
pub const VOCAB_CHUNK: usize = 2048;

/// One vocabulary chunk, kept for a second pass (training's gradient).
pub struct HeadChunk {
    /// The head rows of the chunk, `[c, h]`, in the compute dtype.
    pub w: Tensor<2>,
    /// exp(logits − max), transposed: `[c, n]`, f32.
    pub shifted_exp: Tensor<2>,
    /// Each hidden state's maximum logit within the chunk, `[1, n]`.
    pub max: Tensor<2>,
}

/// What [`target_log_softmax`] computes; every per-row tensor is `[1, n]`, f32.
pub struct TargetLogSoftmax {
    /// log Σ exp(logits) over the whole vocabulary.
    pub lse: Tensor<2>,
    /// The target's logit.
    pub target_logit: Tensor<2>,
    /// The largest logit (the target is the greedy choice when it reaches it).
    pub max: Tensor<2>,
    /// The chunks, in vocabulary order, when asked to keep them.
    pub chunks: Vec<HeadChunk>,
}

impl TargetLogSoftmax {
    /// log p(target) per row, on the host.
    pub fn target_log_probs(&self) -> Vec<f32> {
        host(self.target_logit.clone() - self.lse.clone())
    }

    /// Whether each row's target has the largest logit (greedy decoding would pick it).
    pub fn target_is_greedy(&self) -> Vec<bool> {
        host(self.target_logit.clone() - self.max.clone())
            .into_iter()
            .map(|d| d >= 0.0)
            .collect()
    }
}

/// The log-softmax of `hidden·headᵀ` at `targets`: `hidden` `[n, h]` and `head` `[vocab, h]` in
/// the compute dtype, one target per row, used without autodiff. Logits are computed in the
/// compute dtype, as the model's own head does, everything after in f32; chunks of
/// `vocab_chunk` head rows, kept when `keep_chunks`. When they are not kept, a kernel may compute
/// the same in one parallel pass ([`medtune_kernels::head_softmax_if_covered`]).
pub fn target_log_softmax(
    hidden: Tensor<2>,
    head: Tensor<2>,
    targets: &[u32],
    vocab_chunk: usize,
    keep_chunks: bool,
) -> TargetLogSoftmax {
    let hidden = hidden.inner();
    let head = head.inner();
    let device = hidden.device();
    let [n, h] = hidden.dims();
    assert_eq!(n, targets.len(), "one target per hidden row");
    if !keep_chunks
        && let Some(fused) =
            medtune_kernels::head_softmax_if_covered(&hidden, &head, targets, false)
    {
        let row = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, n]), &device);
        return TargetLogSoftmax {
            lse: row(fused.lse),
            target_logit: row(fused.target_logit),
            max: row(fused.max),
            chunks: Vec::new(),
        };
    }
    let vocab = head.dims()[0];
    assert!(
        vocab > 0 && vocab_chunk > 0,
        "a vocabulary and a chunk size"
    );

    // Per chunk c: logits, their row maxima m_c, the target logits the chunk holds, and
    // s_c = Σ exp(logits − m_c). Then lse = M + log Σ_c s_c·exp(m_c − M), M the overall maximum.
    let mut chunks = Vec::new();
    let mut partial: Vec<(Tensor<2>, Tensor<2>)> = Vec::new();
    let mut target_logit: Option<Tensor<2>> = None;
    for c0 in (0..vocab).step_by(vocab_chunk) {
        let c1 = (c0 + vocab_chunk).min(vocab);
        let w = head.clone().slice([c0..c1, 0..h]);
        // Transposed logits `[c, n]`: W_c·hᵀ runs faster in the `gemm` crate than h·W_cᵀ
        // (contiguous W_c as the left operand), and the rows reduce just as well along dim 0.
        let logits = cast_to(w.clone().matmul(hidden.clone().transpose()), DType::F32);
        if let Some(picked) = gather_in_range(&logits, targets, c0, c1) {
            target_logit = Some(match target_logit {
                Some(t) => t + picked,
                None => picked,
            });
        }
        let (max, shifted_exp, sum) = shifted_exp(logits);
        partial.push((max.clone(), sum));
        if keep_chunks {
            chunks.push(HeadChunk {
                w,
                shifted_exp,
                max,
            });
        }
    }
    let max = partial
        .iter()
        .map(|(m, _)| m.clone())
        .reduce(Tensor::max_pair)
        .expect("a non-empty vocabulary");
    let sum = partial
        .into_iter()
        .map(|(m, s)| s * (m - max.clone()).exp())
        .reduce(|a, b| a + b)
        .expect("a non-empty vocabulary");
    TargetLogSoftmax {
        lse: sum.log() + max.clone(),
        target_logit: target_logit.unwrap_or_else(|| Tensor::zeros([1, n], &device)),
        max,
        chunks,
    }
}

/// Each column's maximum `m`, `exp(logits − m)` and its column sums.
fn shifted_exp(logits: Tensor<2>) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    medtune_kernels::shifted_exp_if_covered(&logits)
        .unwrap_or_else(|| reference::shifted_exp(logits))
}

/// `logits_t[targets[i] − c0, i]` for the rows whose target lies in `[c0, c1)`, zero for the
/// others (`[1, n]`); `None` when no target lies in the chunk.
fn gather_in_range(
    logits_t: &Tensor<2>,
    targets: &[u32],
    c0: usize,
    c1: usize,
) -> Option<Tensor<2>> {
    let inside: Vec<bool> = targets
        .iter()
        .map(|&t| (c0..c1).contains(&(t as usize)))
        .collect();
    if !inside.iter().any(|&x| x) {
        return None;
    }
    let device = logits_t.device();
    let n = targets.len();
    let index: Vec<i64> = targets
        .iter()
        .zip(&inside)
        .map(|(&t, &i)| if i { t as i64 - c0 as i64 } else { 0 })
        .collect();
    let keep: Vec<f32> = inside.iter().map(|&i| if i { 1.0 } else { 0.0 }).collect();
    let index = Tensor::<2, Int>::from_data(TensorData::new(index, [1, n]), &device);
    let keep = Tensor::<2>::from_data(TensorData::new(keep, [1, n]), &device);
    Some(logits_t.clone().gather(0, index) * keep)
}

fn host(x: Tensor<2>) -> Vec<f32> {
    x.into_data().convert::<f32>().try_into_vec().expect("f32")
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::DeviceSpec;

    #[test]
    fn equals_a_whole_vocabulary_log_softmax_for_any_chunking() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let (n, h, vocab) = (5, 8, 300);
        let head = Tensor::<2>::random([vocab, h], Distribution::Normal(0.0, 1.0), &device);
        let hidden = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device);
        let targets = [0u32, 299, 150, 7, 7];
        let logits = host(hidden.clone().matmul(head.clone().transpose()));
        let want: Vec<(f32, bool)> = (0..n)
            .map(|i| {
                let row = &logits[i * vocab..(i + 1) * vocab];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
                let t = row[targets[i] as usize];
                (t - lse, t >= max)
            })
            .collect();
        for chunk in [1, 64, 299, 300, 4096] {
            let got = target_log_softmax(hidden.clone(), head.clone(), &targets, chunk, false);
            let (logp, greedy) = (got.target_log_probs(), got.target_is_greedy());
            for (i, (w, g)) in want.iter().enumerate() {
                assert!(
                    (logp[i] - w).abs() < 1e-4,
                    "chunk {chunk}, row {i}: {} vs {w}",
                    logp[i]
                );
                assert_eq!(greedy[i], *g, "chunk {chunk}, row {i}");
            }
            assert!(got.chunks.is_empty());
        }
        let kept = target_log_softmax(hidden, head, &targets, 64, true);
        assert_eq!(kept.chunks.len(), 5, "300 rows in chunks of 64");
    }
}
