//! `log Σ exp(x)` over a whole row of logits (scoring against a vocabulary), vectorised.

/// `log Σ exp(x)` of a row of logits, for scoring against a whole vocabulary: exponentials in
/// f32 by a polynomial that vectorises (relative error below 2·10⁻⁷ each), summed in f64 lanes.
/// libm's scalar `exp` made this a visible part of `medtune eval` (151,936 per question).
pub fn log_sum_exp(values: &[f32]) -> f64 {
    let max = super::lanes::max_of(values);
    if !max.is_finite() {
        return max as f64;
    }
    max as f64 + sum_exp_shifted(values, max).ln()
}

/// Σ exp(x − max), in f64. Compiled for AVX-512/AVX2/NEON where the CPU kernels are (the
/// baseline x86-64 target has no vector `floor`, so the exponential became a libm call).
#[cfg_attr(
    feature = "flex",
    multiversion::multiversion(targets(
        "x86_64+avx512f+avx512bw+avx512vl+fma",
        "x86_64+avx2+fma",
        "aarch64+neon"
    ))
)]
fn sum_exp_shifted(values: &[f32], max: f32) -> f64 {
    use super::lanes::LANES;
    let mut sums = [0.0f64; LANES];
    // f32 partial sums over 1,024 values (each term ≤ 1) keep f32's rounding below 1e-4
    // relative before they join the f64 total.
    for block in values.chunks(1024) {
        let mut lanes = [0.0f32; LANES];
        for chunk in block.chunks(LANES) {
            for (s, x) in lanes.iter_mut().zip(chunk) {
                *s += super::fast_exp::exp_nonpositive(x - max);
            }
        }
        for (total, s) in sums.iter_mut().zip(lanes) {
            *total += f64::from(s);
        }
    }
    sums.iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_matches_f64_and_is_stable() {
        let values: Vec<f32> = (0..151_936)
            .map(|i| ((i * 7919) % 2000) as f32 / 100.0)
            .collect();
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let want = max
            + values
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        assert!((log_sum_exp(&values) - want).abs() < 1e-5);
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-6);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY]), f64::NEG_INFINITY);
    }
}
