//! Software prefetch of weights that stream from memory once per decode step, shared by the
//! dense and the packed GEMV so that the hint is chosen in one place.
//!
//! The hint is T1 (into L2 and outward). NTA, which keeps the line out of the outer caches, was
//! the faster one on the machine these kernels were first tuned on (31-35 vs 29-31 GB/s for T0
//! over a qwen3-0.6b bf16 step's weights) but halved the bandwidth on a later machine of the
//! same kind (qwen3-0.6b packed step 61-66 ms with NTA, 44-62 T0, 38-42 T1, 60-62 without a
//! software prefetch; `--example decode_bandwidth`, 2026-12-02). T1 was the best there and a
//! plain read's equal in a C test of both hints.

/// How far ahead of the read the prefetch points, in bytes (8 KiB ahead was slower for every
/// hint).
pub(crate) const AHEAD_BYTES: usize = 4096;

/// Asks for the cache line at `p`, which may lie past the end of its buffer.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_streamed<T>(p: *const T) {
    use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    // SAFETY: a prefetch reads nothing and never faults, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
}
