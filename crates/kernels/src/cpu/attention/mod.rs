//! Causal attention on the CPU: prompts and decode steps without autodiff (`prompt`: row kernel,
//! blocked GEMM kernel, single queries over a cache read in place), and training's forward and
//! backward as one custom autodiff operation (`backward`).

pub mod backward;
pub mod prompt;
