//! Cross-entropy through the language-model head, fused and chunked over the vocabulary, with its
//! gradient computed in closed form instead of by autodiff.
//!
//! With Qwen3's 151,936-token vocabulary, `logits = h·Wᵀ` and the cross-entropy after it are most
//! of a small model's training step when autodiff records them: every element-wise pass (shift,
//! exp, sum, log, gather, and each of their backward passes) walks all `n × vocab` logits in fresh
//! buffers. The head is frozen (LoRA never adapts it), so the only gradient needed is the one for
//! the hidden states, which has a closed form:
//!
//! ```text
//! nll_i      = logsumexp(h_i·Wᵀ) − h_i·W[t_i]
//! ∂nll/∂h_i  = softmax(h_i·Wᵀ)·W − W[t_i]
//! ```
//!
//! [`head_nll`] computes both on the non-autodiff backend, a vocabulary chunk at a time so each
//! chunk's logits stay in cache across the passes over them (the first pass is the model crate's
//! [`target_log_softmax`], which scoring uses too), and a group of rows at a time so
//! memory stays bounded however many tokens are supervised. The caller feeds the gradient back into
//! the graph through a surrogate (`Σ h ⊙ ∂nll/∂h`, the gradient held constant), whose gradient with
//! respect to `h` is exactly `∂nll/∂h`. This is the technique of Liger Kernel's fused linear
//! cross-entropy and of "Cut Your Losses in Large-Vocabulary Language Models" (Wijmans et al.
//! 2024), written with burn's tensor ops so it runs on every backend.

use burn::tensor::{DType, Int, Tensor, TensorData};
use medtune_model::ops::{VOCAB_CHUNK, head_softmax_if_covered, target_log_softmax};
use medtune_model::qwen3::cast_to;

/// How the logits are cut into pieces.
#[derive(Clone, Copy, Debug)]
struct Chunking {
    /// Vocabulary columns per chunk.
    vocab_chunk: usize,
    /// Most logits held at once (f32 elements); rows beyond it are processed in groups.
    max_held_logits: usize,
}

/// The model's vocabulary chunk ([`VOCAB_CHUNK`]); 256 MiB of logits at most.
const CHUNKING: Chunking = Chunking {
    vocab_chunk: VOCAB_CHUNK,
    max_held_logits: 64 << 20,
};

/// The summed negative log-likelihood of `targets` under `softmax(hidden·headᵀ)`, and, when
/// `with_grad`, its gradient with respect to `hidden` (`[n, h]`, f32).
///
/// `hidden` is `[n, h]` and `head` `[vocab, h]`, both in the compute dtype; both are used without
/// autodiff. Logits are computed in the compute dtype, as the model's own head does, then
/// everything after in f32.
pub fn head_nll(
    hidden: Tensor<2>,
    head: Tensor<2>,
    targets: &[u32],
    with_grad: bool,
) -> (f64, Option<Tensor<2>>) {
    if let Some(fused) = fused_head_nll(&hidden, &head, targets, with_grad) {
        return fused;
    }
    chunked_head_nll(hidden, head, targets, with_grad, CHUNKING)
}

/// [`head_nll`] by a fused kernel where one covers the case (f32 on the CPU): one pass over the
/// head for the loss and `softmax·W`; `None` elsewhere.
fn fused_head_nll(
    hidden: &Tensor<2>,
    head: &Tensor<2>,
    targets: &[u32],
    with_grad: bool,
) -> Option<(f64, Option<Tensor<2>>)> {
    let (hidden, head) = (hidden.clone().inner(), head.clone().inner());
    let fused = head_softmax_if_covered(&hidden, &head, targets, with_grad)?;
    let nll: f64 = fused
        .lse
        .iter()
        .zip(&fused.target_logit)
        .map(|(l, t)| f64::from(l - t))
        .sum();
    let grad = fused.expected_row.map(|rows| {
        let device = hidden.device();
        let [n, h] = hidden.dims();
        let index = int_tensor(targets.iter().map(|&t| t as i64).collect(), &device);
        Tensor::<2>::from_data(TensorData::new(rows, [n, h]), &device) - head.select(0, index)
    });
    Some((nll, grad))
}

fn chunked_head_nll(
    hidden: Tensor<2>,
    head: Tensor<2>,
    targets: &[u32],
    with_grad: bool,
    chunking: Chunking,
) -> (f64, Option<Tensor<2>>) {
    let hidden = hidden.inner();
    let head = head.inner();
    let [n, h] = hidden.dims();
    assert_eq!(n, targets.len(), "one target per hidden row");
    let vocab = head.dims()[0];
    let rows_per_group = (chunking.max_held_logits / vocab).max(1);
    let mut nll = 0.0;
    let mut grads = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + rows_per_group).min(n);
        let rows = hidden.clone().slice([start..end, 0..h]);
        let (sum, grad) = row_group_nll(
            rows,
            head.clone(),
            &targets[start..end],
            with_grad,
            chunking.vocab_chunk,
        );
        nll += sum;
        grads.extend(grad);
        start = end;
    }
    let grad = with_grad.then(|| {
        if grads.len() == 1 {
            grads.pop().expect("one group")
        } else {
            Tensor::cat(grads, 0)
        }
    });
    (nll, grad)
}

/// [`head_nll`] for rows whose logits all fit in memory at once.
fn row_group_nll(
    hidden: Tensor<2>,
    head: Tensor<2>,
    targets: &[u32],
    with_grad: bool,
    vocab_chunk: usize,
) -> (f64, Option<Tensor<2>>) {
    let compute = hidden.dtype();
    let device = hidden.device();
    // Pass 1 (shared with scoring): lse and target logits, keeping each chunk's
    // e_c = exp(logits − m_c) so that the softmax below, e_c·exp(m_c − lse), needs no second exp.
    let pass = target_log_softmax(hidden, head.clone(), targets, vocab_chunk, with_grad);
    let nll = (pass.lse.clone() - pass.target_logit)
        .sum()
        .into_scalar::<f32>() as f64;
    if !with_grad {
        return (nll, None);
    }
    // Pass 2: ∂nll/∂h = softmax(logits)·W − W[targets], the softmax a chunk at a time.
    let mut grad: Option<Tensor<2>> = None;
    for chunk in pass.chunks {
        let scale = (chunk.max - pass.lse.clone()).exp();
        let probs = cast_to(chunk.shifted_exp * scale, compute);
        let g = cast_to(probs.transpose().matmul(chunk.w), DType::F32);
        grad = Some(match grad {
            Some(acc) => acc + g,
            None => g,
        });
    }
    let index = int_tensor(targets.iter().map(|&t| t as i64).collect(), &device);
    let target_rows = cast_to(head.select(0, index), DType::F32);
    (
        nll,
        Some(grad.expect("a non-empty vocabulary") - target_rows),
    )
}

fn int_tensor(values: Vec<i64>, device: &burn::tensor::Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use medtune_model::DeviceSpec;

    use super::*;

    /// The reference: logits, log-sum-exp and gather recorded by autodiff.
    fn autodiff_nll(hidden: Tensor<2>, head: Tensor<2>, targets: &[u32]) -> (f64, Tensor<2>) {
        let device = hidden.device();
        let x = hidden.require_grad();
        let logits = cast_to(x.clone().matmul(head.transpose()), DType::F32);
        let n = targets.len();
        let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        let lse = logits.clone().exp().sum_dim(1).log();
        let loss = (lse - logits.gather(1, ids)).sum();
        let value = loss.clone().into_scalar::<f32>() as f64;
        let grads = loss.backward();
        (value, x.grad(&grads).expect("a gradient"))
    }

    fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a.inner() - b.inner()).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn fused_loss_and_gradient_equal_autodiff_across_chunks_and_row_groups() {
        let device = DeviceSpec::Cpu.device().unwrap().autodiff();
        let (n, h, vocab) = (7, 16, 1000);
        let head = Tensor::<2>::random([vocab, h], Distribution::Normal(0.0, 0.5), &device);
        let hidden = Tensor::<2>::random([n, h], Distribution::Normal(0.0, 1.0), &device);
        // Targets at both ends of the vocabulary, in the last (short) chunk, and repeated.
        let targets = [0, 999, 998, 5, 512, 511, 5];
        let (want, want_grad) = autodiff_nll(hidden.clone(), head.clone(), &targets);
        for chunking in [
            CHUNKING,
            // 3 chunks of 300 and one of 100; rows in groups of 3, 3 and 1.
            Chunking {
                vocab_chunk: 300,
                max_held_logits: 3 * vocab,
            },
            Chunking {
                vocab_chunk: 1,
                max_held_logits: 1,
            },
        ] {
            let (got, grad) =
                chunked_head_nll(hidden.clone(), head.clone(), &targets, true, chunking);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs(),
                "{chunking:?}: loss {got} vs autodiff {want}"
            );
            let diff = max_abs_diff(grad.expect("asked for"), want_grad.clone());
            assert!(diff <= 1e-5, "{chunking:?}: gradient differs by {diff}");
        }
        // The public entry: the fused CPU kernel where it applies (f32 on flex).
        let (got, grad) = head_nll(hidden.clone(), head.clone(), &targets, true);
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "loss {got} vs {want}"
        );
        let diff = max_abs_diff(grad.expect("asked for"), want_grad);
        assert!(diff <= 1e-5, "gradient differs by {diff}");
        let (value_only, none) = head_nll(hidden, head, &targets, false);
        assert!(none.is_none());
        assert!((value_only - want).abs() <= 1e-5 * want.abs());
    }
}
