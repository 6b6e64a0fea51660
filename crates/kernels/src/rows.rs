//! Row-count thresholds that decide between kernels, in one place: the product kernels and the
//! decode step must agree on them.

/// Most activation rows the few-row kernels take (the dense and packed GEMVs, the decode step):
/// decode steps of up to 8 sequences. Beyond, a product is compute-bound and a blocked GEMM is the
/// better choice.
pub const GEMV_MAX_ROWS: usize = 8;

/// Fewest activation rows the f32 GEMM takes (inference and training's frozen products): below,
/// a product is bound by reading the weights, and packing them would only add traffic.
pub const GEMM_MIN_ROWS: usize = 16;
