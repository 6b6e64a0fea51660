//! Reductions over a slice in sixteen running lanes, combined at the end: an ordered `f32` sum
//! or maximum does not vectorise (the compiler may not reassociate it), sixteen lanes do (one
//! AVX-512 register of f32, two AVX2 ones). Inlined into the callers' `multiversion` kernels.

/// Lanes of the running reductions.
pub(crate) const LANES: usize = 16;

/// The largest value (−∞ for none; NaNs are skipped).
#[inline(always)]
pub(crate) fn max_of(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for chunk in values.chunks(LANES) {
        for (m, x) in lanes.iter_mut().zip(chunk) {
            // Not `f32::max`: its NaN rule keeps the loop from becoming one `vmaxps`.
            *m = if *x > *m { *x } else { *m };
        }
    }
    lanes.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x))
}

/// The sum.
#[inline(always)]
pub(crate) fn sum_of(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for chunk in values.chunks(LANES) {
        for (s, x) in lanes.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    lanes.iter().sum()
}
