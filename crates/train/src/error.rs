//! Why training stops.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("step {step}: the loss or a gradient is not finite (loss {loss}); stopped. The last good checkpoint is kept{}", .last_good.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    NonFinite {
        step: usize,
        loss: f64,
        last_good: Option<PathBuf>,
    },
    #[error(transparent)]
    Model(#[from] medtune_model::ModelError),
    #[error("{0}")]
    Invalid(String),
}
