//! The decode step's lock-free thread runtime: every thread of rayon's pool runs the whole step
//! (`rayon::broadcast`), meeting the others at spin barriers, taking chunks of each phase's work
//! from its own segment and then stealing from the others', and writing disjoint cells of shared
//! buffers.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Set while a step runs. Steps never overlap: each holds every thread of the pool at its
/// barriers, and two at once could each wait for a thread the other holds. A step that finds
/// one running takes the tensor path instead.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Holds [`RUNNING`] while alive.
pub(crate) struct RunningGuard;

impl RunningGuard {
    pub(crate) fn take() -> Option<Self> {
        RUNNING
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Self)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// A buffer that threads write disjoint parts of between barriers.
pub(crate) struct Shared<T> {
    data: UnsafeCell<Vec<T>>,
    ptr: *mut T,
    len: usize,
}

// SAFETY: threads write disjoint cells through `ptr`, and read cells only after a barrier that
// follows the writes (the barrier's atomics order them).
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Copy + Default> Shared<T> {
    pub(crate) fn new(len: usize) -> Self {
        let mut data = vec![T::default(); len];
        let ptr = data.as_mut_ptr();
        Self {
            data: UnsafeCell::new(data),
            ptr,
            len,
        }
    }

    pub(crate) fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// The whole buffer, to read once every write to it has passed a barrier.
    ///
    /// # Safety
    /// No thread writes it while the returned slice lives.
    pub(crate) unsafe fn read(&self) -> &[T] {
        // SAFETY: the caller's contract; `ptr` holds `len` values.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn into_inner(self) -> Vec<T> {
        self.data.into_inner()
    }
}

/// A sense-reversing spin barrier for the pool's threads: each phase of a step is a few
/// microseconds to a millisecond, too short to put a thread to sleep and wake it. Spins
/// politely, and after ~4,000 spins (100–200 µs) yields the core at each check, in case the
/// awaited thread was descheduled and waits for this core.
///
/// A thread that panics poisons it, so that the others panic at their next wait instead of
/// spinning forever (`rayon::broadcast` then hands the panic to the caller).
pub(crate) struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    threads: usize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            threads,
            poisoned: AtomicBool::new(false),
        }
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    pub(crate) fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Acquire) {
                panic!("another thread of the decode step panicked");
            }
            if spins < 1 << 12 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The part `[start, end)` of `0..total` thread `t` of `threads` takes.
pub(crate) fn share(total: usize, t: usize, threads: usize) -> (usize, usize) {
    (total * t / threads, total * (t + 1) / threads)
}

/// The work of one phase: items `0..items` in chunks of `chunk`, split among the threads.
/// Thread `t` takes the chunks of its own segment from the front, in order, so that its reads
/// stream through memory; then it takes what is left of the others' segments from their back
/// ends.
pub(crate) struct Phase {
    items: usize,
    chunk: usize,
    segments: Vec<Segment>,
}

/// One thread's remaining chunks `[front, back)`, packed in one word so both ends are taken
/// with one compare-and-swap; a cache line each, so the owner's and a thief's updates of
/// different segments do not contend.
#[repr(align(64))]
struct Segment(AtomicU64);

impl Phase {
    pub(crate) fn new(items: usize, chunk: usize, threads: usize) -> Self {
        let chunks = items.div_ceil(chunk);
        let segments = (0..threads)
            .map(|s| {
                let (front, back) = share(chunks, s, threads);
                Segment(AtomicU64::new(pack(front, back)))
            })
            .collect();
        Self {
            items,
            chunk,
            segments,
        }
    }

    /// The next range of items thread `t` computes, or `None` when the phase is done.
    pub(crate) fn next(&self, t: usize) -> Option<(usize, usize)> {
        let threads = self.segments.len();
        let chunk = self
            .take(t, true)
            .or_else(|| (1..threads).find_map(|d| self.take((t + d) % threads, false)))?;
        let start = chunk * self.chunk;
        Some((start, (start + self.chunk).min(self.items)))
    }

    /// A chunk from the front or the back of segment `s`.
    fn take(&self, s: usize, front: bool) -> Option<usize> {
        let segment = &self.segments.get(s)?.0;
        let mut current = segment.load(Ordering::Acquire);
        loop {
            let (f, b) = unpack(current);
            if f >= b {
                return None;
            }
            let (next, taken) = if front {
                (pack(f + 1, b), f)
            } else {
                (pack(f, b - 1), b - 1)
            };
            match segment.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(taken),
                Err(now) => current = now,
            }
        }
    }
}

fn pack(front: usize, back: usize) -> u64 {
    (front as u64) | ((back as u64) << 32)
}

fn unpack(v: u64) -> (usize, usize) {
    ((v & 0xFFFF_FFFF) as usize, (v >> 32) as usize)
}
