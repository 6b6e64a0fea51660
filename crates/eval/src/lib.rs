//! Evaluation of Qwen3 on medical multiple-choice questions: option scoring by likelihood, answer
//! extraction from generated text, statistics with their uncertainty, and reports.
//!
//! This crate scores and reports; it reads no command line and serves nothing.

#![forbid(unsafe_code)]

pub mod batching;
pub mod evaluate;
pub mod extract;
pub mod plots;
pub mod prompt;
pub mod report;
pub mod scoring;
pub mod stats;
pub mod summary;

pub use evaluate::{EvalSettings, ItemResult, Mode, evaluate_batch};
pub use extract::{Extracted, Method, extract_answer};
pub use prompt::PromptBuilder;
pub use report::{DataFile, PromptInfo, RunInfo, SystemResult, write_report};
pub use scoring::{LetterScores, score_letters};
