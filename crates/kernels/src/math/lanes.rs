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
    pairwise_max(lanes)
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
    pairwise_sum(lanes)
}

/// The sum of one set of running lanes, halves added to halves: stays in vector registers,
/// where an ordered sum stores the lanes and adds them back one by one (a store-forwarding stall
/// per call: 40 % of a decode step's attention when done once per key, 19 % of the prompt
/// attention's softmax, which reduces every row of scores).
#[inline(always)]
pub(crate) fn pairwise_sum(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The largest of one set of running lanes, halves against halves (see [`pairwise_sum`]).
#[inline(always)]
pub(crate) fn pairwise_max(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            let other = lanes[i + width];
            lanes[i] = if other > lanes[i] { other } else { lanes[i] };
        }
        width /= 2;
    }
    lanes[0]
}

/// An element as stored in a tensor (f32, or bf16 as its bits), widened to f32 where it is read:
/// the CPU kernels read bf16 weights and caches in place and compute in f32.
pub(crate) trait Stored: Copy + Send + Sync {
    fn widen(self) -> f32;

    /// 16 stored values from `at`, widened to f32 lanes.
    ///
    /// # Safety
    /// AVX-512F is available and 16 values are readable at `at`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(at: *const Self) -> std::arch::x86_64::__m512;
}

impl Stored for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(at: *const f32) -> std::arch::x86_64::__m512 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(at) }
    }
}

/// bf16 bits: the top half of an f32.
impl Stored for u16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self) << 16)
    }

    /// Zero-extended to 32 bits and shifted into the top half.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(at: *const u16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract (16 bf16 values are 256 bits).
        unsafe {
            let bits = _mm256_loadu_si256(at.cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(bits)))
        }
    }
}
