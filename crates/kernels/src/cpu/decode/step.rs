//! The layer loop of a decode step as each thread runs it: norms and residual adds on its own
//! copy of the hidden state, its chunks of every product, its (row, kv head) pairs of attention,
//! a barrier between phases that read another thread's results.

use super::cache::CacheBuffers;
use super::runtime::{Phase, Shared, SpinBarrier};
use super::weights::{Input, StepLayer, StepNorm, StepWeight, embeddings, round_to_bf16};
use super::{StepInput, StepModel};

/// One step's buffers and what every thread reads.
pub(crate) struct Step<'a> {
    plan: &'a StepModel,
    rows: usize,
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
    pub(crate) logits: Shared<f32>,
}

impl<'a> Step<'a> {
    pub(crate) fn new(plan: &'a StepModel, input: StepInput, kv: &'a CacheBuffers) -> Self {
        // `rayon::broadcast` runs on every thread of the current pool.
        let threads = rayon::current_num_threads().max(1);
        let cfg = &plan.shape;
        let m = input.ids.len();
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let StepInput {
            ids,
            mut cos,
            mut sin,
        } = input;
        if plan.bf16 {
            round_to_bf16(&mut cos);
            round_to_bf16(&mut sin);
        }
        let mut phases = Vec::with_capacity(plan.layers.len() * PHASES_PER_LAYER + 1);
        for layer in &plan.layers {
            phases.push(product_phase(&[&layer.q, &layer.k, &layer.v], threads));
            phases.push(Phase::new(m * cfg.num_key_value_heads, 1, threads));
            phases.push(product_phase(&[&layer.o], threads));
            phases.push(product_phase(&[&layer.gate], threads));
            phases.push(product_phase(&[&layer.down], threads));
        }
        phases.push(product_phase(&[&plan.head], threads));
        Self {
            plan,
            rows: m,
            kv,
            barrier: SpinBarrier::new(threads),
            phases,
            embedded: embeddings(&plan.embeddings, &ids),
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
    pub(crate) fn run(&self, t: usize) {
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
        let cfg = &plan.shape;
        let (m, h, inter) = (self.rows, cfg.hidden_size, cfg.intermediate_size);
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
    fn products(&self, t: usize, phase: &Phase, jobs: &[(&StepWeight, *mut f32)], x: &Input) {
        while let Some((start, end)) = phase.next(t) {
            self.product_rows(start, end, jobs, x);
        }
    }

    /// Rows `start..end` of the weights in `jobs` taken end to end.
    fn product_rows(&self, start: usize, end: usize, jobs: &[(&StepWeight, *mut f32)], x: &Input) {
        let m = self.rows;
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
        layer: &StepLayer,
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
        layer: &StepLayer,
        x: &Input,
        gate: &mut [f32],
        up: &mut [f32],
    ) {
        let (m, n) = (self.rows, layer.gate.rows());
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
            crate::cpu::pointwise::swiglu::swiglu(g, u, out);
            if self.plan.bf16 {
                round_to_bf16(out);
            }
        }
    }

    /// The (row, kv head) pairs thread `t` takes of `phase`: the new key normalised and rotated and
    /// written with the new value into the cache, the group's queries normalised and rotated,
    /// and their attention over every cached slot, into `context`.
    fn attend(
        &self,
        t: usize,
        phase: &Phase,
        l: usize,
        layer: &StepLayer,
        s: &mut AttentionScratch,
    ) {
        let cfg = &self.plan.shape;
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
            let rotate = |norm: &StepNorm, x: &[f32], tmp: &mut [f32], out: &mut [f32]| {
                norm.apply(x, tmp, round);
                crate::cpu::pointwise::norm_rope::rope_rows(tmp, cos, sin, hd, 1.0, out);
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
                    crate::cpu::attention::prompt::attend_one_query::<u16>(
                        &s.queries, keys, values, hd, scale, scores, &mut s.out,
                    );
                } else {
                    let (k, v) = (k_buf.0.cast::<f32>(), v_buf.0.cast::<f32>());
                    std::ptr::copy_nonoverlapping(s.key.as_ptr(), k.add(new_slot), hd);
                    std::ptr::copy_nonoverlapping(v_all[key_at..].as_ptr(), v.add(new_slot), hd);
                    let keys = std::slice::from_raw_parts(k.add(slots), seen * hd);
                    let values = std::slice::from_raw_parts(v.add(slots), seen * hd);
                    crate::cpu::attention::prompt::attend_one_query::<f32>(
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

/// Phases per layer in [`Step::phases`].
const PHASES_PER_LAYER: usize = 5;

/// Bytes of weights per chunk of a product phase: small enough to even out threads that run
/// at different speeds (on this project's 2-core VM one core ran a step's products ~20 %
/// slower than the other, so equal halves left the fast one waiting 2–3 ms per step), large
/// enough that taking one costs nothing next to reading it.
const CHUNK_BYTES: usize = 64 << 10;

/// A product phase over the rows of `weights` (end to end), in chunks of about
/// [`CHUNK_BYTES`] of the first.
fn product_phase(weights: &[&StepWeight], threads: usize) -> Phase {
    let rows: usize = weights.iter().map(|w| w.rows()).sum();
    let chunk = (CHUNK_BYTES / weights[0].row_bytes()).clamp(8, 512) / 8 * 8;
    Phase::new(rows, chunk, threads)
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
