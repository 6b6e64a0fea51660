//! Key/value cache for incremental decoding.

use burn::tensor::Tensor;

/// Per-layer keys and values of everything seen so far, `[batch, kv_heads, past, head_dim]`,
/// plus which past slots were padding and where each row's positions continue.
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
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
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
