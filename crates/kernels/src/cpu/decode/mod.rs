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
//! bits (`crates/model/tests/decode_step.rs`).
//!
//! Taken for: f32 or bf16 models without LoRA on the CPU of x86-64 with AVX-512 (AVX-512 BF16
//! where weights are packed), one new token for each of at most 8 rows, no padding in the
//! batch or the cache. Everything else takes the tensor path.

mod cache;
mod runtime;
mod step;
mod weights;

pub use weights::{StepLayer, StepNorm, StepWeight};

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::Tensor;

use crate::rows::GEMV_MAX_ROWS as MAX_ROWS;
use cache::CacheBuffers;
use runtime::RunningGuard;
use step::Step;

/// Fewest bytes of weights a step must read for this path to be taken (unless
/// `MEDTUNE_DECODE_STEP=always`). A thread that the system deschedules holds the others at the
/// next barrier, where the tensor path's work stealing would go on without it; in a server
/// whose I/O threads share the cores, that cost more than it saved on the quickstart's 2 MB
/// model (`tools/load_test.py`: 300–750 of 1,000 requests answered instead of 985, the rest
/// refused with a full queue), while a 0.6B model's phases dwarf such a delay.
const MIN_STEP_BYTES: usize = 16 << 20;

/// When the step path is taken: `Auto` (default: where it applies and the model reads at least
/// [`MIN_STEP_BYTES`] per step), `Always` (wherever it applies: the tests), `Never` (the tensor
/// path: for comparisons). Read from `MEDTUNE_DECODE_STEP` (`auto`, `always`, `never`) unless
/// [`set_step_policy`] chose one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPolicy {
    Auto,
    Always,
    Never,
}

/// The policy [`set_step_policy`] chose: 0 for none (read the environment), else 1 + its index.
static CHOSEN_POLICY: AtomicU8 = AtomicU8::new(0);

/// Sets the policy for every later step of this process, over `MEDTUNE_DECODE_STEP`.
pub fn set_step_policy(policy: StepPolicy) {
    CHOSEN_POLICY.store(1 + policy as u8, Ordering::Relaxed);
}

fn policy() -> StepPolicy {
    static FROM_ENV: OnceLock<StepPolicy> = OnceLock::new();
    match CHOSEN_POLICY.load(Ordering::Relaxed) {
        1 => StepPolicy::Auto,
        2 => StepPolicy::Always,
        3 => StepPolicy::Never,
        _ => *FROM_ENV.get_or_init(|| match std::env::var("MEDTUNE_DECODE_STEP").as_deref() {
            Ok("always") => StepPolicy::Always,
            Ok("never") => StepPolicy::Never,
            _ => StepPolicy::Auto,
        }),
    }
}

/// Whether the step path is wanted for a model that reads `step_bytes` of weights per step
/// (`MEDTUNE_DECODE_STEP` and [`MIN_STEP_BYTES`]); checked before a plan is made, whose making
/// costs a small model's step a sizeable share.
pub fn step_path_wanted(step_bytes: usize) -> bool {
    match policy() {
        StepPolicy::Never => false,
        StepPolicy::Always => true,
        StepPolicy::Auto => step_bytes >= MIN_STEP_BYTES,
    }
}

/// The sizes of the decoder, named as in the model's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepShape {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
}

/// Everything a step reads of the model.
pub struct StepModel {
    pub shape: StepShape,
    pub embeddings: StepWeight,
    pub layers: Vec<StepLayer>,
    pub final_norm: StepNorm,
    /// `lm_head`, or the (tied) embeddings.
    pub head: StepWeight,
    /// Whether the model computes in bf16 (every intermediate is then rounded to bf16 where
    /// burn's bf16 tensors round it); f32 otherwise.
    pub bf16: bool,
}

impl StepModel {
    /// Whether every weight has the shape the configuration gives it.
    fn shapes_fit(&self) -> bool {
        let cfg = &self.shape;
        let (h, hd, inter) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let shape = |w: &StepWeight| (w.rows(), w.cols());
        cfg.num_key_value_heads > 0
            && cfg
                .num_attention_heads
                .is_multiple_of(cfg.num_key_value_heads)
            && self.head.cols() == h
            && self.embeddings.cols() == h
            && self.layers.iter().all(|l| {
                shape(&l.q) == (q, h)
                    && shape(&l.k) == (kv, h)
                    && shape(&l.v) == (kv, h)
                    && shape(&l.o) == (h, q)
                    && shape(&l.gate) == (inter, h)
                    && shape(&l.up) == (inter, h)
                    && shape(&l.down) == (h, inter)
            })
    }

    /// Whether any weight the step reads is packed.
    fn any_packed(&self) -> bool {
        let packed = |w: &StepWeight| matches!(w, StepWeight::Packed(_));
        packed(&self.head)
            || packed(&self.embeddings)
            || self.layers.iter().any(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                    .into_iter()
                    .any(packed)
            })
    }
}

/// The new tokens of one step: one per row, with the cos and sin rows of its position
/// (`[rows, head_dim]` each, in f32 as the rotary tables are computed).
pub struct StepInput {
    pub ids: Vec<u32>,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// The logits `[rows · vocab]` (f32) of one decode step after the `past` cached slots of `cache`
/// (each layer's keys and values `[rows, kv_heads, capacity, head_dim]` with capacity > past),
/// whose next slot it fills; `None`, changing nothing, when this path does not cover the case:
/// a CPU without the kernels, more than 8 rows, weights that do not fit, another step running.
pub fn decode_logits_if_covered(
    model: &StepModel,
    input: StepInput,
    cache: &mut [Option<(Tensor<4>, Tensor<4>)>],
    past: usize,
) -> Option<Vec<f32>> {
    let features = crate::features::cpu();
    let rows = input.ids.len();
    let hd = model.shape.head_dim;
    let covered = features.avx512f
        && (!model.any_packed() || features.avx512_bf16)
        && (1..=MAX_ROWS).contains(&rows)
        && past > 0
        && input.cos.len() == rows * hd
        && input.sin.len() == rows * hd
        && cache.len() == model.layers.len()
        && model.shapes_fit();
    if !covered {
        return None;
    }
    let _running = RunningGuard::take()?;
    let kv = CacheBuffers::take(cache, past, model, rows)?;
    let step = Step::new(model, input, &kv);
    rayon::broadcast(|ctx| step.run(ctx.index()));
    let logits = step.logits.into_inner();
    kv.put_back(cache);
    Some(logits)
}
