//! Which CPU instructions the hand-written kernels may use: detected once, in this one place.
//!
//! `MEDTUNE_KERNELS=portable` hides every optional instruction set from the kernels, so they take
//! their portable paths (and the callers burn's ops where a kernel exists only in AVX-512): the
//! tests run the model's parity checks both ways (`.ci/run`). Kernels compiled with
//! `multiversion` still pick their instruction set by themselves; they compute the same
//! arithmetic on every target.

use std::sync::OnceLock;

/// The environment variable that forces the portable paths (`portable`; anything else, or
/// unset, means detect).
pub const KERNELS_ENV: &str = "MEDTUNE_KERNELS";

/// The instruction sets the explicit-intrinsic kernels test for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX-512 Foundation: the f32 GEMM, the dense GEMV's intrinsic loop, the decode step.
    pub avx512f: bool,
    /// AVX-512 BW and BF16 (with F): the packed bf16 few-row kernel (`vdpbf16ps`).
    pub avx512_bf16: bool,
}

impl CpuFeatures {
    /// What this CPU offers, ignoring the override.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx512f = std::arch::is_x86_feature_detected!("avx512f");
            Self {
                avx512f,
                avx512_bf16: avx512f
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512bf16"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::default()
        }
    }
}

/// Whether `MEDTUNE_KERNELS=portable` is set.
pub fn portable_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| {
        std::env::var(KERNELS_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("portable"))
    })
}

/// The instruction sets the kernels use: [`CpuFeatures::detect`], or none when
/// [`portable_forced`].
pub fn cpu() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        if portable_forced() {
            CpuFeatures::default()
        } else {
            CpuFeatures::detect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_used_features_are_a_subset_of_the_detected_ones() {
        let (used, found) = (cpu(), CpuFeatures::detect());
        assert!(!used.avx512f || found.avx512f);
        assert!(!used.avx512_bf16 || found.avx512_bf16);
        assert!(
            !used.avx512_bf16 || used.avx512f,
            "BF16 kernels need AVX-512F"
        );
        if portable_forced() {
            assert_eq!(used, CpuFeatures::default());
        } else {
            assert_eq!(used, found);
        }
    }
}
