//! glibc's allocator settings for tensor workloads.
//!
//! Every burn operation allocates its output afresh, and the CPU backend's activations are
//! megabytes each (an evaluation batch's MLP activations are 6 MB). glibc serves such blocks with
//! `mmap` and returns them to the system on `free` (or trims the heap's top), so every operation
//! pays page faults and the kernel's zeroing of fresh pages again: 8 % of `medtune bench eval`
//! in `perf`. Keeping blocks below 256 MiB in the heap, and the heap from being trimmed below
//! 512 MiB of free space, lets them be reused: `bench eval` on the small preset 40–43 → 44–50
//! questions/s, for ~120 MiB more peak memory (measured with `GLIBC_TUNABLES`, the same settings).

/// Applies the settings above; a no-op outside glibc.
pub fn tune_for_tensors() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once, before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
