//! Readers: MedQA, MedMCQA, PubMedQA, MMLU and the generic JSON Lines format, all producing
//! validated [`McqRecord`]s.
//!
//! JSON Lines and CSV files are read record by record ([`open`] returns an iterator); a PubMedQA
//! file is one JSON object and is parsed whole, then turned into records one by one.
//!
//! Every record is validated: a non-empty question, at least two options with distinct letters
//! `A`–`Z` and non-empty texts, and an answer that is one of the letters. A bad record is a
//! [`Problem`] `file:line: field: what is wrong`; the field is named as in the source file
//! (`opc`, `cop`, `answer_idx`, `final_decision`, ...).
//!
//! One file per format (`medqa`, `medmcqa`, `pubmedqa`, `mmlu`, `jsonl`), the JSON Lines reader
//! that MedQA, MedMCQA and the generic format share (`lines`), and what every reader shares
//! (`shared`): where a record is and the field access that turns a bad field into a [`Problem`].

mod jsonl;
mod lines;
mod medmcqa;
mod medqa;
mod mmlu;
mod pubmedqa;
mod shared;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Problem, Result};
use crate::format::{Format, detect};
use crate::record::McqRecord;

use lines::JsonLines;
use mmlu::mmlu_records;
pub use mmlu::mmlu_subject;
use pubmedqa::pubmedqa_records;
pub use pubmedqa::{PUBMEDQA_OPTIONS, pubmedqa_test_labels, split_pubmedqa_test};
pub use shared::RecordResult;
use shared::file_stem;

/// How to read a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip bad records (counting them and keeping their problems) instead of failing on the
    /// first one. A file with no valid record is an error either way.
    pub skip_bad: bool,
}

/// The records of one or more files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    pub records: Vec<McqRecord>,
    /// Bad records skipped (only with [`ReadOptions::skip_bad`]).
    pub skipped: usize,
    /// The problems of the skipped records.
    pub problems: Vec<Problem>,
}

/// The records of a file, in file order. Yields one `Err` per bad record and carries on after it;
/// a file without any record yields the single problem `file: empty: no records`.
pub struct Records {
    path: PathBuf,
    inner: Box<dyn Iterator<Item = RecordResult>>,
    any: bool,
    done: bool,
}

impl Records {
    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for Records {
    type Item = RecordResult;

    fn next(&mut self) -> Option<RecordResult> {
        if self.done {
            return None;
        }
        match self.inner.next() {
            Some(r) => {
                self.any = true;
                Some(r)
            }
            None => {
                self.done = true;
                (!self.any)
                    .then(|| Err(Problem::file_level(&self.path, "file", "empty: no records")))
            }
        }
    }
}

/// Opens `path` as `format` (detected with [`detect`] when `None`). Fails only when the file
/// cannot be opened or its format cannot be detected; everything else comes out of the iterator.
pub fn open(path: &Path, format: Option<Format>) -> Result<(Format, Records)> {
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let stem = file_stem(path);
    let inner: Box<dyn Iterator<Item = RecordResult>> = match format {
        Format::MedQa | Format::MedMcqa | Format::Jsonl => Box::new(JsonLines {
            path: path.to_owned(),
            stem,
            format,
            reader: BufReader::new(file),
            line: 0,
            failed: false,
        }),
        Format::PubMedQa => Box::new(pubmedqa_records(path, file)),
        Format::Mmlu => Box::new(mmlu_records(path, file)),
    };
    Ok((
        format,
        Records {
            path: path.to_owned(),
            inner,
            any: false,
            done: false,
        },
    ))
}

/// Reads a whole file. Without `skip_bad` the first bad record is the error.
pub fn read_file(path: &Path, format: Option<Format>, opts: &ReadOptions) -> Result<ReadOutcome> {
    let (_, records) = open(path, format)?;
    let mut out = ReadOutcome::default();
    for r in records {
        match r {
            Ok(rec) => out.records.push(rec),
            Err(p) if opts.skip_bad && p.line != 0 => {
                out.skipped += 1;
                out.problems.push(p);
            }
            Err(p) => return Err(p.into()),
        }
    }
    if out.records.is_empty() {
        let p = out
            .problems
            .first()
            .cloned()
            .unwrap_or_else(|| Problem::file_level(path, "file", "no valid records"));
        return Err(p.into());
    }
    Ok(out)
}

/// Reads several files (each detected when `format` is `None`) into one list, in order.
pub fn read_files(
    paths: &[PathBuf],
    format: Option<Format>,
    opts: &ReadOptions,
) -> Result<ReadOutcome> {
    let mut out = ReadOutcome::default();
    for p in paths {
        let one = read_file(p, format, opts)?;
        out.records.extend(one.records);
        out.skipped += one.skipped;
        out.problems.extend(one.problems);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
