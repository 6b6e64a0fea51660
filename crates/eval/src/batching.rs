//! Batches of similar length. Padding to the longest row wastes work that grows with the square
//! of the length in attention; sorting by length, as lm-eval-harness does, avoids most of it.
//! Sorting happens within windows of consecutive questions only, so a run stopped early has
//! scored whole windows of the (randomly ordered) selection, not just its longest questions.

/// Batches of indices into `lengths`: consecutive windows of `batch × window_batches` indices,
/// each sorted by length (longest first, ties in order) and cut into batches of `batch`.
pub fn length_sorted_batches(
    lengths: &[usize],
    batch: usize,
    window_batches: usize,
) -> Vec<Vec<usize>> {
    let batch = batch.max(1);
    let window = batch * window_batches.max(1);
    let mut out = Vec::with_capacity(lengths.len().div_ceil(batch));
    let order: Vec<usize> = (0..lengths.len()).collect();
    for w in order.chunks(window) {
        let mut w = w.to_vec();
        w.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        out.extend(w.chunks(batch).map(<[usize]>::to_vec));
    }
    out
}

/// The sort window used by `medtune eval` and `medtune bench eval`, in batches.
pub const WINDOW_BATCHES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_within_windows_and_covers_every_index_once() {
        let lengths = [5, 9, 1, 7, 3, 8, 2];
        let batches = length_sorted_batches(&lengths, 2, 2);
        assert_eq!(batches, vec![vec![1, 3], vec![0, 2], vec![5, 4], vec![6]]);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
    }
}
