//! Portable numeric building blocks of the kernels, on plain slices (no tensors, no `unsafe`
//! beyond the widening loads of [`lanes::Stored`]).

pub(crate) mod fast_exp;
pub(crate) mod lanes;
mod log_sum_exp;

pub use log_sum_exp::log_sum_exp;
