//! A whole decode step on the CPU (flex) backend: every layer, from the new tokens' embeddings
//! to the logits, run by all of rayon's threads at once (`rayon::broadcast`) on plain slices,
//! with a spin barrier between the phases that read another thread's results.
//!
//! Why: through burn's tensors a qwen3-0.6b step makes 113 parallel products, and between them
//! ~40 small operations per layer (norms, RoPE, cache writes, residual adds) on one thread.
//! Those took 2.4–2.6 ms of a 22–23 ms bf16 step with packed weights, and each product after
//! them found the other thread asleep and paid ~9 µs to wake it (`--example region_cost`). Here
//! every thread takes chunks of every product's rows (its own run first, then what is left of
//! the others'), computes the tiny norms and adds itself on its own copy of the hidden state,
//! and takes a share of the (row, kv head) pairs of attention: five barriers per layer, no
//! thread asleep. Measured on qwen3-0.6b bf16 with packed weights (200-token generations,
//! alternating binaries, medians of 6): 23.8 ms per step against 24.9 ms through the tensors;
//! each thread then streams its weights at 36–47 GB/s, this machine's plain-read rate.
//!
//! The arithmetic is the tensor path's, step for step: the same kernels (the packed and plain
//! GEMVs, RMSNorm, RoPE, the decode-step attention over the cache's buffers, SwiGLU), each row
//! computed whole by one thread, rounded to bf16 at the same points. The logits are the same
//! bits (`tests/decode_step.rs`).
//!
//! Taken for: f32 or bf16 models without LoRA on the CPU of x86-64 with AVX-512 (AVX-512 BF16
//! where weights are packed), one new token for each of at most 8 rows, no padding in the
//! batch or the cache. Everything else takes the tensor path.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use half::bf16;

use super::batch::ForwardBatch;
use super::cache::KvCache;
use super::flex_tensor::{contiguous_primitive, f32_values};
use super::layers::{Linear, RmsNorm};
use super::model::{LoadedModel, Qwen3};
use super::packed_bf16::PackedBf16;
use super::packed_linear::Out;
use crate::device::ComputeDType;

/// Most rows (sequences) of a step.
const MAX_ROWS: usize = 8;

/// Fewest bytes of weights a step must read for this path to be taken (unless
/// `MEDTUNE_DECODE_STEP=always`). A thread that the system deschedules holds the others at the
/// next barrier, where the tensor path's work stealing would go on without it; in a server
/// whose I/O threads share the cores, that cost more than it saved on the quickstart's 2 MB
/// model (`tools/load_test.py`: 300–750 of 1,000 requests answered instead of 985, the rest
/// refused with a full queue), while a 0.6B model's phases dwarf such a delay.
const MIN_STEP_BYTES: usize = 16 << 20;

/// When the step path is taken, from `MEDTUNE_DECODE_STEP`: `auto` (default: where it applies
/// and the model reads at least [`MIN_STEP_BYTES`] per step), `always` (wherever it applies:
/// the tests), `never` (the tensor path: for comparisons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Auto,
    Always,
    Never,
}

fn policy() -> Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    *POLICY.get_or_init(|| match std::env::var("MEDTUNE_DECODE_STEP").as_deref() {
        Ok("always") => Policy::Always,
        Ok("never") => Policy::Never,
        _ => Policy::Auto,
    })
}

/// Set while a step runs. Steps never overlap: each holds every thread of the pool at its
/// barriers, and two at once could each wait for a thread the other holds. A step that finds
/// one running takes the tensor path instead.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The logits `[rows · vocab]` (f32) of one decode step of `batch` (one new token per row)
/// after `cache`, which it extends, or `None` when this path does not apply (the caller then
/// runs the tensor path; nothing has been changed).
pub(crate) fn try_decode_logits(
    model: &LoadedModel,
    batch: &ForwardBatch,
    cache: &mut KvCache,
) -> Option<Vec<f32>> {
    if policy() == Policy::Never {
        return None;
    }
    // A step reads about every parameter once (a tied head reads the embeddings); checked
    // before the plan, whose making costs a small model's step a sizeable share.
    let step_bytes = model.config.num_params() * model.dtype.dtype().size();
    if policy() == Policy::Auto && step_bytes < MIN_STEP_BYTES {
        return None;
    }
    let plan = Plan::of(model, batch, cache)?;
    let _running = RunningGuard::take()?;
    let kv = CacheBuffers::take(cache, &plan)?;
    let step = Step::new(&plan, batch, &kv);
    rayon::broadcast(|ctx| step.run(ctx.index()));
    let logits = step.logits.into_inner();
    kv.put_back(cache);
    cache.commit(batch.batch, batch.seq, &batch.valid, &batch.positions);
    Some(logits)
}

/// Holds [`RUNNING`] while alive.
struct RunningGuard;

impl RunningGuard {
    fn take() -> Option<Self> {
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

/// A weight as the kernels read it.
enum Weight {
    Packed(Arc<PackedBf16>),
    /// Row-major `[rows, cols]`, bf16 or f32, contiguous.
    Dense {
        tensor: FlexTensor,
        rows: usize,
        cols: usize,
    },
}

impl Weight {
    fn of_linear(linear: &Linear) -> Option<Self> {
        if linear.lora.is_some() {
            return None;
        }
        match linear.packed() {
            Some(p) => Some(Self::Packed(p.clone())),
            None => Self::dense(linear.weight()),
        }
    }

    fn dense(w: Tensor<2>) -> Option<Self> {
        let [rows, cols] = w.dims();
        let tensor = contiguous_primitive(&w.try_into_primitive::<Flex>().ok()?);
        // The AVX-512 GEMV reads 16 values at a time (the tensor path's portable loop covers
        // other widths, with other sums).
        (matches!(tensor.dtype(), DType::F32 | DType::BF16) && cols.is_multiple_of(16))
            .then_some(Self::Dense { tensor, rows, cols })
    }

    fn rows(&self) -> usize {
        match self {
            Self::Packed(p) => p.rows(),
            Self::Dense { rows, .. } => *rows,
        }
    }

    fn cols(&self) -> usize {
        match self {
            Self::Packed(p) => p.cols(),
            Self::Dense { cols, .. } => *cols,
        }
    }

    /// Bytes a product reads per row.
    fn row_bytes(&self) -> usize {
        match self {
            Self::Packed(p) => p.stored_bytes() / p.rows().max(1),
            Self::Dense { tensor, cols, .. } => cols * tensor.dtype().size(),
        }
    }

    /// `out[i·rows + r] = x_i · w_r` for `r` in `r0..r0 + count` and the `m` rows of `x`.
    ///
    /// # Safety
    /// AVX-512F (and BF16 for packed weights) is available; `out` points to an `m × rows`
    /// buffer whose cells `(i, r0..r0 + count)` no other thread touches meanwhile.
    #[cfg(target_arch = "x86_64")]
    unsafe fn product(&self, x: &Input, m: usize, r0: usize, count: usize, out: *mut f32) {
        if count == 0 {
            return;
        }
        match self {
            // SAFETY: the caller's contract; x holds m bf16 rows of cols.
            Self::Packed(p) => unsafe {
                super::packed_linear::packed_rows(&x.bits, m, p, r0, count, Out(out))
            },
            Self::Dense { tensor, rows, cols } => {
                let mut block = vec![0.0f32; m * count];
                let k = *cols;
                // SAFETY: AVX-512F (caller); x holds m rows of k; block m × count.
                unsafe {
                    match tensor.dtype() {
                        DType::BF16 => {
                            let all: &[u16] = bytemuck::cast_slice(tensor.storage::<bf16>());
                            super::gemv::dense_rows(
                                &x.values,
                                m,
                                k,
                                &all[r0 * k..][..count * k],
                                &mut block,
                            )
                        }
                        _ => super::gemv::dense_rows(
                            &x.values,
                            m,
                            k,
                            &tensor.storage::<f32>()[r0 * k..][..count * k],
                            &mut block,
                        ),
                    }
                }
                for (i, part) in block.chunks_exact(count).enumerate() {
                    // SAFETY: cells (i, r0..r0 + count) of the m × rows buffer are this task's.
                    unsafe {
                        std::ptr::copy_nonoverlapping(part.as_ptr(), out.add(i * rows + r0), count)
                    };
                }
            }
        }
    }
}

/// A norm's weight in f32 and its ε.
struct Norm {
    weight: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn of(norm: &RmsNorm) -> Option<Self> {
        let weight = f32_values(&norm.weight.val())?.as_slice().to_vec();
        Some(Self {
            weight,
            eps: norm.eps as f32,
        })
    }

    /// `out` = each row of `x` (at most [`MAX_ROWS`]) normalised, rounded to bf16 when `round`.
    fn apply(&self, x: &[f32], out: &mut [f32], round: bool) {
        let mut inv_rms = [0.0f32; MAX_ROWS];
        let rows = x.len() / self.weight.len();
        super::norm_rope::rms_norm_rows(x, &self.weight, self.eps, out, &mut inv_rms[..rows]);
        if round {
            round_to_bf16(out);
        }
    }
}

struct Layer {
    input_norm: Norm,
    post_norm: Norm,
    q_norm: Norm,
    k_norm: Norm,
    q: Weight,
    k: Weight,
    v: Weight,
    o: Weight,
    gate: Weight,
    up: Weight,
    down: Weight,
}

/// Everything a step reads of the model, checked to suit this path.
struct Plan<'a> {
    model: &'a LoadedModel,
    layers: Vec<Layer>,
    final_norm: Norm,
    head: Weight,
    bf16: bool,
    rows: usize,
}

impl<'a> Plan<'a> {
    fn of(model: &'a LoadedModel, batch: &ForwardBatch, cache: &KvCache) -> Option<Self> {
        let rows = batch.batch;
        let applies = model.on_cpu()
            && kernels_available(false)
            && matches!(model.dtype, ComputeDType::F32 | ComputeDType::Bf16)
            && batch.seq == 1
            && (1..=MAX_ROWS).contains(&rows)
            && batch.segments.is_none()
            && batch.valid.iter().all(|&v| v)
            && cache.batch == rows
            && cache.past > 0
            && cache.valid.iter().all(|&v| v)
            && cache.layers.iter().all(Option::is_some);
        if !applies {
            return None;
        }
        let m = &model.model;
        let layers = m
            .layers
            .iter()
            .map(|l| {
                let (a, f) = (&l.self_attn, &l.mlp);
                Some(Layer {
                    input_norm: Norm::of(&l.input_layernorm)?,
                    post_norm: Norm::of(&l.post_attention_layernorm)?,
                    q_norm: Norm::of(&a.q_norm)?,
                    k_norm: Norm::of(&a.k_norm)?,
                    q: Weight::of_linear(&a.q_proj)?,
                    k: Weight::of_linear(&a.k_proj)?,
                    v: Weight::of_linear(&a.v_proj)?,
                    o: Weight::of_linear(&a.o_proj)?,
                    gate: Weight::of_linear(&f.gate_proj)?,
                    up: Weight::of_linear(&f.up_proj)?,
                    down: Weight::of_linear(&f.down_proj)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let head = head_weight(m)?;
        let cfg = &model.config;
        let (h, q, kv) = (
            cfg.hidden_size,
            cfg.num_attention_heads * cfg.head_dim,
            cfg.num_key_value_heads * cfg.head_dim,
        );
        let inter = cfg.intermediate_size;
        let shapes_fit = head.cols() == h
            && layers.iter().all(|l| {
                let shape = |w: &Weight| (w.rows(), w.cols());
                shape(&l.q) == (q, h)
                    && shape(&l.k) == (kv, h)
                    && shape(&l.v) == (kv, h)
                    && shape(&l.o) == (h, q)
                    && shape(&l.gate) == (inter, h)
                    && shape(&l.up) == (inter, h)
                    && shape(&l.down) == (h, inter)
            });
        if !shapes_fit
            || !cfg
                .num_attention_heads
                .is_multiple_of(cfg.num_key_value_heads)
        {
            return None;
        }
        let packed = layers.iter().any(|l| {
            [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .iter()
                .any(|w| matches!(w, Weight::Packed(_)))
        }) || matches!(head, Weight::Packed(_));
        if packed && !kernels_available(true) {
            return None;
        }
        Some(Self {
            model,
            layers,
            final_norm: Norm::of(&m.norm)?,
            head,
            bf16: model.dtype == ComputeDType::Bf16,
            rows,
        })
    }
}

/// The head as the kernels read it: `lm_head`, or the (tied) embeddings.
fn head_weight(m: &Qwen3) -> Option<Weight> {
    match (&m.lm_head, m.packed_embeddings()) {
        (Some(head), _) => Weight::of_linear(head),
        (None, Some(packed)) => Some(Weight::Packed(packed.clone())),
        (None, None) => Weight::dense(m.embed_weight()),
    }
}

/// Whether this CPU has the kernels the step uses (with `packed`, the packed GEMV's too).
fn kernels_available(packed: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && (!packed || super::packed_linear::fast_kernel_available())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = packed;
        false
    }
}

/// The cache's key and value buffers of every layer, taken out of the cache for the step and
/// written in place: `[rows, kv_heads, capacity, head_dim]`, contiguous, with a free slot after
/// the filled ones.
struct CacheBuffers {
    layers: Vec<(FlexTensor, FlexTensor)>,
    /// Each layer's key and value storage, taken mutably once before the step.
    slots: Vec<(SlotPtr, SlotPtr)>,
    capacity: usize,
    past: usize,
}

/// A cache buffer's storage (bf16 bits or f32), written by the threads of a step at disjoint
/// (row, kv head) slots.
#[derive(Clone, Copy)]
struct SlotPtr(*mut u8);

// SAFETY: each thread writes and reads only the slots of its own (row, kv head) pairs.
unsafe impl Send for SlotPtr {}
unsafe impl Sync for SlotPtr {}

impl CacheBuffers {
    fn take(cache: &mut KvCache, plan: &Plan) -> Option<Self> {
        let cfg = &plan.model.config;
        let (rows, kv_heads, hd) = (plan.rows, cfg.num_key_value_heads, cfg.head_dim);
        let dtype = plan.model.dtype.dtype();
        let past = cache.past;
        // Check every layer before changing any.
        let suits = |t: &Tensor<4>| {
            let [b, h, cap, d] = t.dims();
            (b, h, d) == (rows, kv_heads, hd) && cap > past && t.dtype() == dtype
        };
        cache.reserve(1);
        let capacity = cache.layers[0].as_ref()?.0.dims()[2];
        let all_suit = cache.layers.iter().all(|l| {
            l.as_ref().is_some_and(|(k, v)| {
                suits(k) && suits(v) && k.dims()[2] == capacity && v.dims()[2] == capacity
            })
        });
        if !all_suit {
            return None;
        }
        let mut layers: Vec<(FlexTensor, FlexTensor)> = cache
            .layers
            .iter_mut()
            .map(|l| {
                let (k, v) = l.take().expect("checked above");
                let flex = |t: Tensor<4>| {
                    let t = t.try_into_primitive::<Flex>().expect("a flex tensor");
                    if t.is_contiguous() && t.layout().start_offset() == 0 {
                        t
                    } else {
                        t.to_contiguous()
                    }
                };
                (flex(k), flex(v))
            })
            .collect();
        let storage = |t: &mut FlexTensor| match t.dtype() {
            DType::BF16 => SlotPtr(t.storage_mut::<bf16>().as_mut_ptr().cast()),
            _ => SlotPtr(t.storage_mut::<f32>().as_mut_ptr().cast()),
        };
        let slots = layers
            .iter_mut()
            .map(|(k, v)| (storage(k), storage(v)))
            .collect();
        Some(Self {
            layers,
            slots,
            capacity,
            past,
        })
    }

    fn put_back(self, cache: &mut KvCache) {
        for (slot, (k, v)) in cache.layers.iter_mut().zip(self.layers) {
            *slot = Some((
                Tensor::from_primitive::<Flex>(k),
                Tensor::from_primitive::<Flex>(v),
            ));
        }
    }
}

/// A buffer that threads write disjoint parts of between barriers.
struct Shared<T> {
    data: UnsafeCell<Vec<T>>,
    ptr: *mut T,
    len: usize,
}

// SAFETY: threads write disjoint cells through `ptr`, and read cells only after a barrier that
// follows the writes (the barrier's atomics order them).
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Copy + Default> Shared<T> {
    fn new(len: usize) -> Self {
        let mut data = vec![T::default(); len];
        let ptr = data.as_mut_ptr();
        Self {
            data: UnsafeCell::new(data),
            ptr,
            len,
        }
    }

    fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// The whole buffer, to read once every write to it has passed a barrier.
    ///
    /// # Safety
    /// No thread writes it while the returned slice lives.
    unsafe fn read(&self) -> &[T] {
        // SAFETY: the caller's contract; `ptr` holds `len` values.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn into_inner(self) -> Vec<T> {
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
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    threads: usize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            threads,
            poisoned: AtomicBool::new(false),
        }
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    fn wait(&self) {
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

/// An activation in both forms the kernels take: f32 values (bf16-exact in a bf16 model) and
/// their bf16 bits (for packed weights).
struct Input {
    values: Vec<f32>,
    bits: Vec<u16>,
}

impl Input {
    fn new(len: usize) -> Self {
        Self {
            values: vec![0.0; len],
            bits: vec![0; len],
        }
    }

    /// Takes `x`; its bits when `with_bits` (the values must then be bf16-exact).
    fn set(&mut self, x: &[f32], with_bits: bool) {
        self.values.clear();
        self.values.extend_from_slice(x);
        if with_bits {
            self.bits.clear();
            self.bits
                .extend(x.iter().map(|v| (v.to_bits() >> 16) as u16));
        }
    }
}

/// One step's buffers and what every thread reads.
struct Step<'a> {
    plan: &'a Plan<'a>,
    kv: &'a CacheBuffers,
    barrier: SpinBarrier,
    /// The work of each phase, in the order the threads meet them: per layer the q/k/v
    /// products, attention, the output projection, gate/up and down; then the head.
    phases: Vec<Phase>,
    /// The new tokens' embeddings `[rows, hidden]` in f32.
    embedded: Vec<f32>,
    /// cos and sin of each row's position `[rows, head_dim]` (rounded to bf16 in a bf16 model,
    /// as the tensor path's tables are).
    cos: Vec<f32>,
    sin: Vec<f32>,
    q: Shared<f32>,
    k: Shared<f32>,
    v: Shared<f32>,
    context: Shared<f32>,
    attn_out: Shared<f32>,
    act: Shared<f32>,
    mlp_out: Shared<f32>,
    logits: Shared<f32>,
}

impl<'a> Step<'a> {
    fn new(plan: &'a Plan<'a>, batch: &ForwardBatch, kv: &'a CacheBuffers) -> Self {
        // `rayon::broadcast` runs on every thread of the current pool.
        let threads = rayon::current_num_threads().max(1);
        let cfg = &plan.model.config;
        let m = plan.rows;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let mut cos = vec![0.0f32; m * hd];
        let mut sin = vec![0.0f32; m * hd];
        for ((&pos, c), s) in batch
            .positions
            .iter()
            .zip(cos.chunks_exact_mut(hd))
            .zip(sin.chunks_exact_mut(hd))
        {
            plan.model.rope.fill_row(pos, c, s);
        }
        if plan.bf16 {
            round_to_bf16(&mut cos);
            round_to_bf16(&mut sin);
        }
        let mut phases = Vec::with_capacity(plan.layers.len() * PHASES_PER_LAYER + 1);
        for layer in &plan.layers {
            phases.push(Phase::of_products(&[&layer.q, &layer.k, &layer.v], threads));
            phases.push(Phase::new(m * cfg.num_key_value_heads, 1, threads));
            phases.push(Phase::of_products(&[&layer.o], threads));
            phases.push(Phase::of_products(&[&layer.gate], threads));
            phases.push(Phase::of_products(&[&layer.down], threads));
        }
        phases.push(Phase::of_products(&[&plan.head], threads));
        Self {
            plan,
            kv,
            barrier: SpinBarrier::new(threads),
            phases,
            embedded: embeddings(&plan.model.model, &batch.ids, h),
            cos,
            sin,
            q: Shared::new(m * nq),
            k: Shared::new(m * nkv),
            v: Shared::new(m * nkv),
            context: Shared::new(m * nq),
            attn_out: Shared::new(m * h),
            act: Shared::new(m * cfg.intermediate_size),
            mlp_out: Shared::new(m * h),
            logits: Shared::new(m * plan.head.rows()),
        }
    }

    /// The step as thread `t` of the pool runs it; a panic poisons the barrier first.
    fn run(&self, t: usize) {
        let run = std::panic::AssertUnwindSafe(|| self.run_thread(t));
        if let Err(panic) = std::panic::catch_unwind(run) {
            self.barrier.poison();
            std::panic::resume_unwind(panic);
        }
    }

    fn run_thread(&self, t: usize) {
        let barrier = &self.barrier;
        let mut phases = self.phases.iter();
        let mut next_phase = || phases.next().expect("one phase per step of the loop");
        let plan = self.plan;
        let cfg = &plan.model.config;
        let (m, h, inter) = (plan.rows, cfg.hidden_size, cfg.intermediate_size);
        let round = plan.bf16;
        let mut x = self.embedded.clone();
        let mut normed = vec![0.0f32; m * h];
        let mut input = Input::new(m * h);
        let mut wide = Input::new(m * inter.max(cfg.num_attention_heads * cfg.head_dim));
        let mut gate = vec![0.0f32; m * inter];
        let mut up = vec![0.0f32; m * inter];
        let mut attention = AttentionScratch::new(
            cfg.num_attention_heads / cfg.num_key_value_heads,
            cfg.head_dim,
            self.kv.past + 1,
        );
        for (l, layer) in plan.layers.iter().enumerate() {
            layer.input_norm.apply(&x, &mut normed, round);
            input.set(&normed, round);
            self.products(
                t,
                next_phase(),
                &[
                    (&layer.q, self.q.ptr()),
                    (&layer.k, self.k.ptr()),
                    (&layer.v, self.v.ptr()),
                ],
                &input,
            );
            barrier.wait();
            self.attend(t, next_phase(), l, layer, &mut attention);
            barrier.wait();
            // SAFETY: every write to `context` passed the barrier above; none until the next.
            wide.set(unsafe { self.context.read() }, round);
            self.products(t, next_phase(), &[(&layer.o, self.attn_out.ptr())], &wide);
            barrier.wait();
            // SAFETY: as above, for `attn_out`.
            add_to(&mut x, unsafe { self.attn_out.read() }, round);
            layer.post_norm.apply(&x, &mut normed, round);
            input.set(&normed, round);
            self.gate_up(t, next_phase(), layer, &input, &mut gate, &mut up);
            barrier.wait();
            // SAFETY: as above, for `act`.
            wide.set(unsafe { self.act.read() }, round);
            self.products(t, next_phase(), &[(&layer.down, self.mlp_out.ptr())], &wide);
            barrier.wait();
            // SAFETY: as above, for `mlp_out`.
            add_to(&mut x, unsafe { self.mlp_out.read() }, round);
        }
        plan.final_norm.apply(&x, &mut normed, round);
        input.set(&normed, round);
        self.products(t, next_phase(), &[(&plan.head, self.logits.ptr())], &input);
    }

    /// The chunks of `phase` thread `t` takes of the rows of the weights in `jobs` (their rows
    /// taken end to end), each product into its `[rows, weight rows]` output, rounded to bf16 in
    /// a bf16 model.
    fn products(&self, t: usize, phase: &Phase, jobs: &[(&Weight, *mut f32)], x: &Input) {
        while let Some((start, end)) = phase.next(t) {
            self.product_rows(start, end, jobs, x);
        }
    }

    /// Rows `start..end` of the weights in `jobs` taken end to end.
    fn product_rows(&self, start: usize, end: usize, jobs: &[(&Weight, *mut f32)], x: &Input) {
        let m = self.plan.rows;
        let mut first = 0;
        for &(w, out) in jobs {
            let (lo, hi) = (start.max(first), end.min(first + w.rows()));
            if lo < hi {
                let (r0, count) = (lo - first, hi - lo);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the plan checked the kernels; this thread alone writes rows
                // r0..r0 + count of this output until the next barrier.
                unsafe {
                    w.product(x, m, r0, count, out)
                };
                if self.plan.bf16 {
                    for i in 0..m {
                        // SAFETY: this thread's cells, written just above.
                        let cells = unsafe {
                            std::slice::from_raw_parts_mut(out.add(i * w.rows() + r0), count)
                        };
                        round_to_bf16(cells);
                    }
                }
            }
            first += w.rows();
        }
    }

    /// The rows of the gate and up products thread `t` takes of `phase`, and SwiGLU of them,
    /// into `act`.
    fn gate_up(
        &self,
        t: usize,
        phase: &Phase,
        layer: &Layer,
        x: &Input,
        gate: &mut [f32],
        up: &mut [f32],
    ) {
        while let Some((r0, r1)) = phase.next(t) {
            self.gate_up_rows(r0, r1, layer, x, gate, up);
        }
    }

    /// Rows `r0..r1` of the gate and up products and SwiGLU of them, into `act`.
    fn gate_up_rows(
        &self,
        r0: usize,
        r1: usize,
        layer: &Layer,
        x: &Input,
        gate: &mut [f32],
        up: &mut [f32],
    ) {
        let (m, n) = (self.plan.rows, layer.gate.rows());
        for (w, out) in [
            (&layer.gate, gate.as_mut_ptr()),
            (&layer.up, up.as_mut_ptr()),
        ] {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the plan checked the kernels; `out` is this thread's own m × n buffer.
            unsafe {
                w.product(x, m, r0, r1 - r0, out)
            };
        }
        let act = self.act.ptr();
        for i in 0..m {
            let (g, u) = (
                &mut gate[i * n + r0..i * n + r1],
                &mut up[i * n + r0..i * n + r1],
            );
            if self.plan.bf16 {
                round_to_bf16(g);
                round_to_bf16(u);
            }
            // SAFETY: cells (i, r0..r1) of `act` are this thread's until the next barrier.
            let out = unsafe { std::slice::from_raw_parts_mut(act.add(i * n + r0), r1 - r0) };
            super::swiglu::swiglu(g, u, out);
            if self.plan.bf16 {
                round_to_bf16(out);
            }
        }
    }

    /// The (row, kv head) pairs thread `t` takes of `phase`: the new key normalised and rotated and
    /// written with the new value into the cache, the group's queries normalised and rotated,
    /// and their attention over every cached slot, into `context`.
    fn attend(&self, t: usize, phase: &Phase, l: usize, layer: &Layer, s: &mut AttentionScratch) {
        let cfg = &self.plan.model.config;
        let hd = cfg.head_dim;
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let group = heads / kv_heads;
        let (past, capacity) = (self.kv.past, self.kv.capacity);
        let round = self.plan.bf16;
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let (k_buf, v_buf) = self.kv.slots[l];
        // SAFETY: q, k and v were written before the barrier that precedes this phase.
        let (q_all, k_all, v_all) = unsafe { (self.q.read(), self.k.read(), self.v.read()) };
        while let Some((pair, _)) = phase.next(t) {
            let (i, g) = (pair / kv_heads, pair % kv_heads);
            let (cos, sin) = (&self.cos[i * hd..][..hd], &self.sin[i * hd..][..hd]);
            let rotate = |norm: &Norm, x: &[f32], tmp: &mut [f32], out: &mut [f32]| {
                norm.apply(x, tmp, round);
                super::norm_rope::rope_rows(tmp, cos, sin, hd, 1.0, out);
                if round {
                    round_to_bf16(out);
                }
            };
            let key_at = (i * kv_heads + g) * hd;
            rotate(
                &layer.k_norm,
                &k_all[key_at..][..hd],
                &mut s.tmp,
                &mut s.key,
            );
            let slots = ((i * kv_heads + g) * capacity) * hd;
            let new_slot = slots + past * hd;
            for q in 0..group {
                let at = (i * heads + g * group + q) * hd;
                rotate(
                    &layer.q_norm,
                    &q_all[at..][..hd],
                    &mut s.tmp,
                    &mut s.queries[q * hd..][..hd],
                );
            }
            let seen = past + 1;
            let scores = &mut s.scores[..group * seen];
            // SAFETY: this (row, kv head)'s slots of the layer's buffers are read and written by
            // this thread alone in this phase; the buffers hold rows × kv_heads × capacity × hd
            // values and past < capacity.
            unsafe {
                if round {
                    let (k, v) = (k_buf.0.cast::<u16>(), v_buf.0.cast::<u16>());
                    write_bf16(k.add(new_slot), &s.key);
                    write_bf16(v.add(new_slot), &v_all[key_at..][..hd]);
                    let keys = std::slice::from_raw_parts(k.add(slots), seen * hd);
                    let values = std::slice::from_raw_parts(v.add(slots), seen * hd);
                    super::causal_attention::attend_one_query::<u16>(
                        &s.queries, keys, values, hd, scale, scores, &mut s.out,
                    );
                } else {
                    let (k, v) = (k_buf.0.cast::<f32>(), v_buf.0.cast::<f32>());
                    std::ptr::copy_nonoverlapping(s.key.as_ptr(), k.add(new_slot), hd);
                    std::ptr::copy_nonoverlapping(v_all[key_at..].as_ptr(), v.add(new_slot), hd);
                    let keys = std::slice::from_raw_parts(k.add(slots), seen * hd);
                    let values = std::slice::from_raw_parts(v.add(slots), seen * hd);
                    super::causal_attention::attend_one_query::<f32>(
                        &s.queries, keys, values, hd, scale, scores, &mut s.out,
                    );
                }
            }
            if round {
                round_to_bf16(&mut s.out);
            }
            let at = (i * heads + g * group) * hd;
            // SAFETY: this pair's cells of `context`, written by this thread alone.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    s.out.as_ptr(),
                    self.context.ptr().add(at),
                    group * hd,
                )
            };
        }
    }
}

/// A thread's buffers for one (row, kv head) of attention.
struct AttentionScratch {
    tmp: Vec<f32>,
    key: Vec<f32>,
    queries: Vec<f32>,
    scores: Vec<f32>,
    out: Vec<f32>,
}

impl AttentionScratch {
    fn new(group: usize, hd: usize, seen: usize) -> Self {
        Self {
            tmp: vec![0.0; hd],
            key: vec![0.0; hd],
            queries: vec![0.0; group * hd],
            scores: vec![0.0; group * seen],
            out: vec![0.0; group * hd],
        }
    }
}

/// Writes bf16-exact f32 `values` as bf16 bits at `at`.
///
/// # Safety
/// `values.len()` u16s are writable at `at`.
unsafe fn write_bf16(at: *mut u16, values: &[f32]) {
    for (j, v) in values.iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { *at.add(j) = (v.to_bits() >> 16) as u16 };
    }
}

/// The part `[start, end)` of `0..total` thread `t` of `threads` takes.
fn share(total: usize, t: usize, threads: usize) -> (usize, usize) {
    (total * t / threads, total * (t + 1) / threads)
}

/// Phases per layer in [`Step::phases`].
const PHASES_PER_LAYER: usize = 5;

/// Bytes of weights per chunk of a product phase: small enough to even out threads that run
/// at different speeds (on this project's 2-core VM one core ran a step's products ~20 %
/// slower than the other, so equal halves left the fast one waiting 2–3 ms per step), large
/// enough that taking one costs nothing next to reading it.
const CHUNK_BYTES: usize = 64 << 10;

/// The work of one phase: items `0..items` in chunks of `chunk`, split among the threads.
/// Thread `t` takes the chunks of its own segment from the front, in order, so that its reads
/// stream through memory; then it takes what is left of the others' segments from their back
/// ends.
struct Phase {
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
    fn new(items: usize, chunk: usize, threads: usize) -> Self {
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

    /// The rows of `weights` (end to end), in chunks of about [`CHUNK_BYTES`] of the first.
    fn of_products(weights: &[&Weight], threads: usize) -> Self {
        let rows: usize = weights.iter().map(|w| w.rows()).sum();
        let chunk = (CHUNK_BYTES / weights[0].row_bytes()).clamp(8, 512) / 8 * 8;
        Self::new(rows, chunk, threads)
    }

    /// The next range of items thread `t` computes, or `None` when the phase is done.
    fn next(&self, t: usize) -> Option<(usize, usize)> {
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

/// `x += y`, rounded to bf16 when `round` (burn's bf16 add rounds each sum).
fn add_to(x: &mut [f32], y: &[f32], round: bool) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
    if round {
        round_to_bf16(x);
    }
}

/// Each value rounded to the nearest bf16 (ties to even), as burn's and half's conversions do.
fn round_to_bf16(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = bf16::from_f32(*v).to_f32();
    }
}

/// The embeddings of `ids` `[ids.len(), hidden]` in f32.
fn embeddings(model: &Qwen3, ids: &[u32], hidden: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; ids.len() * hidden];
    match model.packed_embeddings() {
        Some(packed) => {
            let mut bits = vec![0u16; hidden];
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
                packed.unpack_row(id as usize, &mut bits);
                for (o, b) in row.iter_mut().zip(&bits) {
                    *o = f32::from_bits(u32::from(*b) << 16);
                }
            }
        }
        None => {
            // Only the rows read (widening the whole table would cost more than the step).
            let table = model.embed_weight();
            let table = contiguous_primitive(&table.try_into_primitive::<Flex>().expect("flex"));
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
                let at = id as usize * hidden;
                match table.dtype() {
                    DType::BF16 => {
                        for (o, v) in row.iter_mut().zip(&table.storage::<bf16>()[at..]) {
                            *o = v.to_f32();
                        }
                    }
                    _ => row.copy_from_slice(&table.storage::<f32>()[at..][..hidden]),
                }
            }
        }
    }
    out
}
