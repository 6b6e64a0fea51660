//! Evaluation of Qwen3 on medical multiple-choice questions: option scoring by likelihood, answer
//! extraction from generated text, statistics with their uncertainty, and reports.
//!
//! This crate scores and reports; it reads no command line and serves nothing.

pub mod scoring;
