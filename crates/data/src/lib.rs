//! Medical data sets for medtune: readers for MedQA, MedMCQA, PubMedQA, MMLU and a generic JSON
//! Lines format, all producing validated [`McqRecord`]s, and for the training formats TRL users
//! have on disk — conversations, prompt–completion pairs and reasoning traces — producing
//! [`ChatRecord`]s and [`TextPair`]s ([`TrainingRecord`] holds any of them); seeded shuffling,
//! limits and validation splits; question normalisation, duplicates and train/eval
//! contamination; and [`check_files`], a report over data files. Knows nothing of tensors.
//!
//! - [`read`]: [`open`] (streaming), [`read_file`], [`read_files`] for multiple-choice records;
//!   [`open_training`], [`read_training_file`], [`read_training_files`] for every format;
//!   [`ReadOptions`].
//! - [`conversation`]: [`ChatRecord`], [`TextPair`], [`TrainingRecord`], [`TraceFields`].
//! - [`format`](mod@format): [`Format`] and [`detect`].
//! - [`ops`]: [`shuffle`], [`select`], [`split_validation`], [`normalize_question`],
//!   [`remove_contaminated`], [`find_duplicates`], the [`Question`] trait.
//! - [`check`]: [`check_files`] → [`CheckReport`].

#![forbid(unsafe_code)]

pub mod check;
pub mod conversation;
pub mod error;
pub mod format;
mod json;
pub mod ops;
pub mod read;
pub mod record;

pub use check::{CheckReport, FileReport, LengthStats, Stats, check_files, check_files_with};
pub use conversation::{
    ChatKind, ChatRecord, ChatTurn, Role, TextPair, TraceFields, TrainingRecord,
};
pub use error::{DataError, Problem, Result};
pub use format::{Format, detect};
pub use ops::{
    DuplicateGroup, Question, SplitMix64, asks_same_question, find_duplicates, normalize_question,
    remove_contaminated, same_question, select, shuffle, split_validation,
};
pub use read::{
    Outcome, PUBMEDQA_OPTIONS, ReadOptions, ReadOutcome, RecordResult, Records, TrainingOutcome,
    TrainingResult, mmlu_subject, open, open_training, pubmedqa_test_labels, read_file, read_files,
    read_training_file, read_training_files, split_pubmedqa_test,
};
pub use record::{McqRecord, Origin};
