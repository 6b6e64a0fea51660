//! An `exp` for the CPU kernels that the compiler can vectorise (libm's `expf` is a call per
//! value).

/// `exp(x)` for `x ≤ 0`, relative error below 2·10⁻⁷: Cephes' `expf` (Cody–Waite reduction by
/// ln 2, degree-6 polynomial), without branches so that it vectorises. Below −87 (where `exp`
/// leaves f32's normal range) it returns exp(−87) ≈ 1.6·10⁻³⁸, negligible beside the row's
/// largest term, 1.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    // A plain comparison (not `f32::max`, whose NaN rule costs extra instructions per vector).
    let x = if x < -87.0 { -87.0 } else { x };
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_across_its_range() {
        let mut worst = 0.0f64;
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst:e}");
        assert!(exp_nonpositive(-1e4) < 1e-37);
    }
}
