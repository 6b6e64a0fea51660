//! Key/value cache for incremental decoding.

use burn::tensor::Tensor;

/// Per-layer keys and values of everything seen so far, in buffers
/// `[batch, kv_heads, capacity, head_dim]` whose first `past` slots are filled, plus which past
/// slots were padding and where each row's positions continue.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Row-major `[batch, past]`: whether each cached slot is a real token.
    pub(crate) valid: Vec<bool>,
    pub(crate) batch: usize,
    pub(crate) past: usize,
    /// Position id the next real token of each row gets.
    pub(crate) next_positions: Vec<i64>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            ..Self::default()
        }
    }

    /// Number of cached slots (including padding).
    pub fn len(&self) -> usize {
        self.past
    }

    pub fn is_empty(&self) -> bool {
        self.past == 0
    }

    /// Where the next real token of each row is placed (empty before the first forward).
    pub fn next_positions(&self) -> &[i64] {
        &self.next_positions
    }

    /// Turns a one-row cache into `rows` identical rows, so that several continuations of one
    /// prompt (a question's options) share the prompt's keys and values instead of recomputing
    /// them.
    ///
    /// # Panics
    /// When the cache holds more than one row.
    pub fn repeat_rows(&mut self, rows: usize) {
        assert!(
            self.batch <= 1,
            "repeat_rows needs a one-row cache, not {}",
            self.batch
        );
        for layer in self.layers.iter_mut().flatten() {
            let (k, v) = layer.clone();
            *layer = (k.repeat_dim(0, rows), v.repeat_dim(0, rows));
        }
        self.valid = self.valid.repeat(rows);
        self.next_positions = self.next_positions.repeat(rows);
        self.batch = rows;
    }

    /// Appends this step's keys and values for `layer`, returning all keys and values so far.
    ///
    /// Each layer's keys and values live in a buffer with room to spare along the sequence: a
    /// decode step writes its one slot in place (burn-flex's `slice_assign` reuses a buffer
    /// that nothing else holds) and returns views of the filled part, where `cat` copied the
    /// whole cache every step (11 % of a qwen3-0.6b bf16 decode step's serial time at 160
    /// tokens). A full buffer is copied once into one about twice as long.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let (len, step) = (self.past, k.dims()[2]);
        let (k_buf, v_buf) = match self.layers[layer].take() {
            Some((pk, pv)) if pk.dims()[2] >= len + step => {
                (write_slots(pk, k, len), write_slots(pv, v, len))
            }
            Some((pk, pv)) => (grown(pk, k, len), grown(pv, v, len)),
            None => (with_spare(k), with_spare(v)),
        };
        let filled = |buf: &Tensor<4>| buf.clone().narrow(2, 0, len + step);
        let out = (filled(&k_buf), filled(&v_buf));
        self.layers[layer] = Some((k_buf, v_buf));
        out
    }

    /// Makes room for `extra` more slots (at most [`MIN_SPARE_SLOTS`]) after the filled ones in
    /// every layer's buffers, copying a full buffer into one about twice as long: a step can
    /// then write its slots in place.
    pub fn reserve(&mut self, extra: usize) {
        debug_assert!(extra <= MIN_SPARE_SLOTS);
        let len = self.past;
        for layer in self.layers.iter_mut().flatten() {
            let (k, v) = layer;
            if k.dims()[2] < len + extra || v.dims()[2] < len + extra {
                *layer = (
                    with_spare(k.clone().narrow(2, 0, len)),
                    with_spare(v.clone().narrow(2, 0, len)),
                );
            }
        }
    }

    /// Records the slots of a finished forward step (after every layer appended).
    pub(crate) fn commit(&mut self, batch: usize, seq: usize, valid: &[bool], positions: &[i64]) {
        let mut merged = Vec::with_capacity(batch * (self.past + seq));
        for row in 0..batch {
            if self.past > 0 {
                merged.extend_from_slice(&self.valid[row * self.past..(row + 1) * self.past]);
            }
            merged.extend_from_slice(&valid[row * seq..(row + 1) * seq]);
        }
        let mut next = if self.next_positions.is_empty() {
            vec![0; batch]
        } else {
            self.next_positions.clone()
        };
        for row in 0..batch {
            for t in 0..seq {
                if valid[row * seq + t] {
                    next[row] = positions[row * seq + t] + 1;
                }
            }
        }
        self.valid = merged;
        self.batch = batch;
        self.past += seq;
        self.next_positions = next;
    }

    /// Validity of cached slots for `row`.
    pub(crate) fn valid_row(&self, row: usize) -> &[bool] {
        &self.valid[row * self.past..(row + 1) * self.past]
    }
}

/// Free slots added whenever a buffer is (re)allocated, at least: short generations then never
/// copy their cache.
const MIN_SPARE_SLOTS: usize = 64;

/// `buffer` with `new` written at slots `at..at + new_len`.
fn write_slots(buffer: Tensor<4>, new: Tensor<4>, at: usize) -> Tensor<4> {
    let [b, h, t, d] = new.dims();
    buffer.slice_assign([0..b, 0..h, at..at + t, 0..d], new)
}

/// A buffer holding `buffer`'s first `len` slots, then `new`, then as many free slots as filled
/// ones (at least [`MIN_SPARE_SLOTS`]).
fn grown(buffer: Tensor<4>, new: Tensor<4>, len: usize) -> Tensor<4> {
    let filled = buffer.narrow(2, 0, len);
    with_spare(Tensor::cat(vec![filled, new], 2))
}

/// `filled` followed by as many free slots (at least [`MIN_SPARE_SLOTS`]).
fn with_spare(filled: Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = filled.dims();
    let spare = Tensor::<4>::zeros(
        [b, h, t.max(MIN_SPARE_SLOTS), d],
        (&filled.device(), filled.dtype()),
    );
    Tensor::cat(vec![filled, spare], 2)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::DeviceSpec;

    /// Steps of one slot and of many, filling the spare room, growing the buffer twice, and
    /// returning exactly what concatenating every step's keys and values gives.
    #[test]
    fn appends_equal_concatenation_across_growth() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let mut cache = KvCache::new(1);
        let (mut all_k, mut all_v): (Vec<Tensor<4>>, Vec<Tensor<4>>) = (vec![], vec![]);
        for step in [5, 1, 1, 60, 1, 200, 1] {
            let new =
                || Tensor::<4>::random([2, 3, step, 4], Distribution::Normal(0.0, 1.0), &device);
            let (k, v) = (new(), new());
            all_k.push(k.clone());
            all_v.push(v.clone());
            let (got_k, got_v) = cache.append(0, k, v);
            cache.commit(2, step, &vec![true; 2 * step], &vec![0; 2 * step]);
            let (want_k, want_v) = (Tensor::cat(all_k.clone(), 2), Tensor::cat(all_v.clone(), 2));
            assert_eq!(got_k.dims(), want_k.dims());
            assert_eq!(cache.len(), want_k.dims()[2]);
            let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
            assert_eq!(diff(got_k, want_k), 0.0, "keys after a step of {step}");
            assert_eq!(diff(got_v, want_v), 0.0, "values after a step of {step}");
        }
    }
}
