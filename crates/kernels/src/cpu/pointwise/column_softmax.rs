//! The shifted exponentials of a chunk of transposed logits on the CPU (flex) backend, in two
//! vectorised passes instead of burn's four (max, subtract, scalar `expf`, sum), each into a fresh
//! buffer. The head log-softmax (`medtune_model::ops::target_log_softmax`) runs this on every vocabulary chunk:
//! for training, ~10 M logits per step.

use burn::tensor::{DType, Tensor};
use multiversion::multiversion;

use crate::cpu::flex_tensor::{contiguous, from_values};
use crate::math::fast_exp::exp_nonpositive;

/// For f32 `logits` `[c, n]` (column `j` = one hidden state's logits over `c` vocabulary rows):
/// each column's maximum `m` `[1, n]`, `exp(logits − m)` `[c, n]` and its column sums `[1, n]`.
/// `None` when not on flex, not f32, or under autodiff: the caller then uses burn's ops.
pub fn shifted_exp_if_covered(logits: &Tensor<2>) -> Option<(Tensor<2>, Tensor<2>, Tensor<2>)> {
    if logits.dtype() != DType::F32 || logits.is_autodiff() {
        return None;
    }
    let [c, n] = logits.dims();
    let flex = contiguous(logits)?;
    let values: &[f32] = flex.as_slice()?;
    let mut max = vec![f32::NEG_INFINITY; n];
    let mut sum = vec![0.0f32; n];
    let mut shifted = vec![0.0f32; c * n];
    shifted_exp_columns(values, n, &mut max, &mut shifted, &mut sum);
    Some((
        from_values(max, [1, n]),
        from_values(shifted, [c, n]),
        from_values(sum, [1, n]),
    ))
}

#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn shifted_exp_columns(x: &[f32], n: usize, max: &mut [f32], out: &mut [f32], sum: &mut [f32]) {
    // Rows are contiguous, so both passes run along a row, vectorised over the columns.
    for row in x.chunks_exact(n) {
        for (m, v) in max.iter_mut().zip(row) {
            *m = m.max(*v);
        }
    }
    for (row, out_row) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for (((o, v), m), s) in out_row.iter_mut().zip(row).zip(&*max).zip(sum.iter_mut()) {
            let e = exp_nonpositive(v - m);
            *o = e;
            *s += e;
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, FloatDType};

    use super::*;

    #[test]
    fn equals_burns_max_exp_and_sum() {
        let device = crate::cpu::test_device();
        let logits = Tensor::<2>::random([37, 5], Distribution::Normal(0.0, 4.0), &device);
        let (max, shifted, sum) = shifted_exp_if_covered(&logits).expect("f32 on flex");
        let want_max = logits.clone().max_dim(0);
        let want_shifted = (logits - want_max.clone()).exp();
        let want_sum = want_shifted.clone().sum_dim(0);
        let diff = |a: Tensor<2>, b: Tensor<2>| (a - b).abs().max().into_scalar::<f32>();
        assert_eq!(diff(max, want_max), 0.0);
        assert!(diff(shifted, want_shifted) <= 1e-6);
        assert!(diff(sum, want_sum) <= 1e-5);
        let half = Tensor::<2>::zeros([3, 2], &device).cast(FloatDType::BF16);
        assert!(shifted_exp_if_covered(&half).is_none());
    }
}
