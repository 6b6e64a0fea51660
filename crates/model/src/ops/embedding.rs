//! Token embeddings.

use burn::tensor::Tensor;

use super::StoredWeight;
use super::reference;

/// The rows of `table` `[vocab, hidden]` at `ids` (`b × t`, row-major): `[b, t, hidden]`.
pub fn embed(table: StoredWeight, ids: &[u32], b: usize, t: usize) -> Tensor<3> {
    match table {
        StoredWeight::Packed(p) => {
            let ids: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
            medtune_kernels::packed_rows(p, &ids).reshape([b, t, p.cols()])
        }
        StoredWeight::Dense(table) => reference::embed(table, ids, b, t),
    }
}
