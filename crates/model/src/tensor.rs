//! Tensor helpers the model's files share (a leaf module: it uses nothing else of the crate).

use burn::tensor::{Int, Tensor, TensorData};

pub use medtune_kernels::dtype::{cast_to, to_f32};

/// `x` `[b, t, h]` at `rows` (indices into its `[b · t]` slots): `[rows.len(), h]`.
pub fn select_rows(x: Tensor<3>, rows: &[usize]) -> Tensor<2> {
    let [b, t, h] = x.dims();
    let device = x.device();
    let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), &device);
    x.reshape([b * t, h]).select(0, index)
}
