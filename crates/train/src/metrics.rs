//! What one optimiser step reports (a line of `metrics.jsonl`).

/// What one optimiser step did (one line of metrics.jsonl).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub step_seconds: f64,
    /// Non-padding tokens fed through the model in this step.
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// Model FLOP utilisation: the FLOPs the step requires ([`crate::flops`]: frozen body forward
    /// and input gradient, LoRA, the head at the supervised positions, attention's t² term) per
    /// second, over the device peak when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
}
