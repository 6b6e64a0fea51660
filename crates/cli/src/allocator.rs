//! glibc's allocator settings for tensor workloads.
//!
//! Every burn operation allocates its output afresh, and the CPU backend's activations are
//! megabytes each (an evaluation batch's MLP activations are 6 MB). glibc serves such blocks with
//! `mmap` and returns them to the system on `free` (or trims the heap's top), so every operation
//! pays page faults and the kernel's zeroing of fresh pages again: 8 % of `medtune bench eval`
//! in `perf`. Keeping blocks below 256 MiB in the heap, and the heap from being trimmed below
//! 512 MiB of free space, lets them be reused: `bench eval` on the small preset 40–43 → 44–50
//! questions/s, for ~120 MiB more peak memory (measured with `GLIBC_TUNABLES`, the same settings).
//!
//! The price is that freed memory stays with the process, in each of glibc's per-thread arenas
//! (decode steps run on rayon's threads, the server's I/O on tokio's). A long-running server
//! therefore calls [`release_free_memory`] whenever it goes idle.

/// Applies the settings above; a no-op outside glibc.
#[allow(unsafe_code)]
pub fn tune_for_tensors() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once, before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// Returns the free memory of every malloc arena to the system (`malloc_trim`); a no-op outside
/// glibc. Costs a walk over the free lists, so call it when idle, not per operation.
///
/// Measured with `tools/load_test.py --requests 1000 --concurrency 32` (tiny model): without it
/// the server ended 1.7–2.1 MiB above its post-warm-up 25–27 MiB (three runs), the arenas'
/// high-water marks; with it 0.4–0.8 MiB above (two runs).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages back; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
