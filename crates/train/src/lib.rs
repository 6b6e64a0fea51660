//! Supervised LoRA fine-tuning: the loss on answer tokens only, AdamW over the adapter, the
//! learning-rate schedule, checkpoints, metrics and plots. Knows models, MCQ records and token
//! batches; nothing of HTTP.

#![forbid(unsafe_code)]

pub mod batching;
pub mod checkpoint;
pub mod error;
pub mod examples;
pub mod flops;
pub mod head_loss;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod peak;
pub mod plot;
pub mod schedule;
pub mod trainer;
