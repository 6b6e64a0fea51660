//! Medical multiple-choice data sets for medtune: readers for MedQA, MedMCQA, PubMedQA, MMLU and a
//! generic JSON Lines format, all producing validated [`McqRecord`]s; seeded shuffling, limits and
//! validation splits; question normalisation, duplicates and train/eval contamination; and
//! [`check_files`], a report over data files. Knows nothing of tensors.
//!
//! - [`read`]: [`open`] (streaming), [`read_file`], [`read_files`], [`ReadOptions`].
//! - [`format`]: [`Format`] and [`detect`].
//! - [`ops`]: [`shuffle`], [`select`], [`split_validation`], [`normalize_question`],
//!   [`remove_contaminated`], [`find_duplicates`].
//! - [`check`]: [`check_files`] → [`CheckReport`].

#![forbid(unsafe_code)]

pub mod check;
pub mod error;
pub mod format;
mod json;
pub mod ops;
pub mod read;
pub mod record;

pub use check::{CheckReport, FileReport, LengthStats, Stats, check_files};
pub use error::{DataError, Problem, Result};
pub use format::{Format, detect};
pub use ops::{
    DuplicateGroup, SplitMix64, find_duplicates, normalize_question, remove_contaminated,
    same_question, select, shuffle, split_validation,
};
pub use read::{
    PUBMEDQA_OPTIONS, ReadOptions, ReadOutcome, RecordResult, Records, mmlu_subject, open,
    pubmedqa_test_labels, read_file, read_files, split_pubmedqa_test,
};
pub use record::{McqRecord, Origin};
