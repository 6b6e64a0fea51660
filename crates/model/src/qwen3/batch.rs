//! A batch of token sequences as the model consumes it: ids, per-token position ids and which
//! slots are real tokens rather than padding.

/// Which side short sequences are padded on. Generation pads on the left so that every row's
/// last slot is its newest token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    Left,
    Right,
}

#[derive(Clone, Debug)]
pub struct ForwardBatch {
    pub batch: usize,
    pub seq: usize,
    /// Row-major `[batch, seq]` token ids (padding slots hold `pad_id`).
    pub ids: Vec<u32>,
    /// Row-major `[batch, seq]`: true for real tokens, false for padding.
    pub valid: Vec<bool>,
    /// Row-major `[batch, seq]` position ids, counting real tokens only, from 0 for each
    /// sequence (or from where a KV cache left off).
    pub positions: Vec<i64>,
    /// For packed rows: row-major `[batch, seq]` sample index within the row. Tokens attend only
    /// within their own sample, and positions restart at 0 for each sample.
    pub segments: Option<Vec<u32>>,
}

impl ForwardBatch {
    /// One unpadded sequence.
    pub fn single(ids: &[u32]) -> Self {
        Self::padded(&[ids.to_vec()], PaddingSide::Right, 0)
    }

    /// Pads `seqs` to the longest one.
    pub fn padded(seqs: &[Vec<u32>], side: PaddingSide, pad_id: u32) -> Self {
        Self::padded_continuing(seqs, side, pad_id, &vec![0; seqs.len()])
    }

    /// [`Self::padded`] for sequences whose real tokens continue at `start_positions[row]`
    /// (after what a cache already holds).
    pub fn padded_continuing(
        seqs: &[Vec<u32>],
        side: PaddingSide,
        pad_id: u32,
        start_positions: &[i64],
    ) -> Self {
        let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * seq);
        let mut valid = Vec::with_capacity(seqs.len() * seq);
        for s in seqs {
            let pad = seq - s.len();
            let (before, after) = match side {
                PaddingSide::Left => (pad, 0),
                PaddingSide::Right => (0, pad),
            };
            ids.extend(std::iter::repeat_n(pad_id, before));
            valid.extend(std::iter::repeat_n(false, before));
            ids.extend_from_slice(s);
            valid.extend(std::iter::repeat_n(true, s.len()));
            ids.extend(std::iter::repeat_n(pad_id, after));
            valid.extend(std::iter::repeat_n(false, after));
        }
        Self::from_parts(seqs.len(), seq, ids, valid, start_positions)
    }

    /// Builds a batch whose real tokens continue at `start_positions[row]`.
    pub fn from_parts(
        batch: usize,
        seq: usize,
        ids: Vec<u32>,
        valid: Vec<bool>,
        start_positions: &[i64],
    ) -> Self {
        assert_eq!(ids.len(), batch * seq, "ids must be [batch, seq]");
        assert_eq!(valid.len(), batch * seq, "valid must be [batch, seq]");
        let mut positions = Vec::with_capacity(batch * seq);
        for row in 0..batch {
            let mut next = start_positions[row];
            for &v in &valid[row * seq..(row + 1) * seq] {
                // Padding gets the position of the next real token; its output is never used.
                positions.push(next);
                if v {
                    next += 1;
                }
            }
        }
        Self {
            batch,
            seq,
            ids,
            valid,
            positions,
            segments: None,
        }
    }

    /// Packs several sequences into each row (rows right-padded to the longest): no attention
    /// across samples, per-sample position ids.
    pub fn packed(rows: &[Vec<Vec<u32>>], pad_id: u32) -> Self {
        let seq = rows
            .iter()
            .map(|r| r.iter().map(Vec::len).sum::<usize>())
            .max()
            .unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * seq);
        let mut valid = Vec::with_capacity(rows.len() * seq);
        let mut positions = Vec::with_capacity(rows.len() * seq);
        let mut segments = Vec::with_capacity(rows.len() * seq);
        for row in rows {
            let mut used = 0;
            for (k, sample) in row.iter().enumerate() {
                ids.extend_from_slice(sample);
                valid.extend(std::iter::repeat_n(true, sample.len()));
                positions.extend(0..sample.len() as i64);
                segments.extend(std::iter::repeat_n(k as u32, sample.len()));
                used += sample.len();
            }
            let pad = seq - used;
            ids.extend(std::iter::repeat_n(pad_id, pad));
            valid.extend(std::iter::repeat_n(false, pad));
            positions.extend(std::iter::repeat_n(0, pad));
            segments.extend(std::iter::repeat_n(u32::MAX, pad));
        }
        Self {
            batch: rows.len(),
            seq,
            ids,
            valid,
            positions,
            segments: Some(segments),
        }
    }

    pub fn has_padding(&self) -> bool {
        self.valid.iter().any(|v| !v)
    }

    /// True when every row's real tokens come first and padding (if any) only after them. Under
    /// a plain causal mask such rows are computed exactly: a real token never sees a later slot,
    /// so no padding mask is needed.
    pub fn padded_on_the_right_only(&self) -> bool {
        self.valid
            .chunks(self.seq.max(1))
            .all(|row| row.iter().skip_while(|v| **v).all(|v| !v))
    }

    /// Number of real (non-padding) tokens in each row.
    pub fn lengths(&self) -> Vec<usize> {
        self.valid
            .chunks(self.seq.max(1))
            .map(|r| r.iter().filter(|v| **v).count())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_padding_is_recognised() {
        let seqs = vec![vec![1, 2, 3], vec![4]];
        assert!(ForwardBatch::padded(&seqs, PaddingSide::Right, 0).padded_on_the_right_only());
        assert!(!ForwardBatch::padded(&seqs, PaddingSide::Left, 0).padded_on_the_right_only());
        assert!(ForwardBatch::single(&[5, 6]).padded_on_the_right_only());
    }

    #[test]
    fn left_padding_positions_count_real_tokens() {
        let b = ForwardBatch::padded(&[vec![5, 6, 7], vec![8]], PaddingSide::Left, 0);
        assert_eq!(b.ids, vec![5, 6, 7, 0, 0, 8]);
        assert_eq!(b.valid, vec![true, true, true, false, false, true]);
        assert_eq!(b.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(b.lengths(), vec![3, 1]);
    }

    #[test]
    fn right_padding_keeps_positions_from_zero() {
        let b = ForwardBatch::padded(&[vec![1], vec![2, 3]], PaddingSide::Right, 9);
        assert_eq!(b.ids, vec![1, 9, 2, 3]);
        assert_eq!(b.positions, vec![0, 1, 0, 1]);
    }
}
