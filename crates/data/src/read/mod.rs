//! Readers. The multiple-choice formats (MedQA, MedMCQA, PubMedQA, MMLU and the generic JSON
//! Lines format) produce validated [`McqRecord`]s ([`open`], [`read_file`], [`read_files`]); the
//! training formats (conversations, prompt–completion pairs, reasoning traces) produce
//! [`TrainingRecord`]s, and [`open_training`], [`read_training_file`] and
//! [`read_training_files`] read every format into them.
//!
//! JSON Lines and CSV files are read record by record (the `open*` functions return iterators);
//! a PubMedQA file is one JSON object and a training file may be one JSON array: both are
//! parsed whole, then turned into records one by one.
//!
//! Every record is validated: a multiple-choice record has a non-empty question, at least two
//! options with distinct letters `A`–`Z` and non-empty texts, and an answer that is one of the
//! letters; a conversation has a user turn, a system turn only first, non-empty contents and
//! ends with an assistant turn (the crate README has every rule). A bad record is a [`Problem`]
//! `file:line: field: what is wrong`; the field is named as in the source file (`opc`, `cop`,
//! `answer_idx`, `final_decision`, `messages[2].role`, `completion[0].content`, ...).
//!
//! One file per format (`medqa`, `medmcqa`, `pubmedqa`, `mmlu`, `jsonl`, and `chat` for the
//! three training formats), the JSON Lines reader (`lines`), the JSON array reader of the
//! training formats (`array`), and what every reader shares (`shared`): where a record is and
//! the field access that turns a bad field into a [`Problem`].

mod array;
mod chat;
mod jsonl;
mod lines;
mod medmcqa;
mod medqa;
mod mmlu;
mod pubmedqa;
mod shared;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::conversation::{TraceFields, TrainingRecord};
use crate::error::{DataError, Problem, Result};
use crate::format::{Format, detect};
use crate::record::McqRecord;

use array::json_values;
pub use chat::TrainingResult;
use chat::{Kind, TrainingJson};
use lines::{JsonLines, LineValues};
use mmlu::mmlu_records;
pub use mmlu::mmlu_subject;
use pubmedqa::pubmedqa_records;
pub use pubmedqa::{PUBMEDQA_OPTIONS, pubmedqa_test_labels, split_pubmedqa_test};
pub use shared::RecordResult;
use shared::file_stem;

/// How to read a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip bad records (counting them and keeping their problems) instead of failing on the
    /// first one. A file with no valid record is an error either way.
    pub skip_bad: bool,
    /// The columns of a reasoning-trace table ([`Format::Trace`]). When set and no format is
    /// given, the format is [`Format::Trace`]; it applies to no other format. Only the training
    /// readers ([`read_training_files`]) use it.
    pub fields: Option<TraceFields>,
}

/// The records of one or more files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<T> {
    pub records: Vec<T>,
    /// Bad records skipped (only with [`ReadOptions::skip_bad`]).
    pub skipped: usize,
    /// The problems of the skipped records.
    pub problems: Vec<Problem>,
}

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            skipped: 0,
            problems: Vec::new(),
        }
    }
}

impl<T> Outcome<T> {
    /// The outcomes of `paths`, read one by one by `read`, in order.
    fn of_files(paths: &[PathBuf], read: impl Fn(&Path) -> Result<Self>) -> Result<Self> {
        let mut out = Self::default();
        for p in paths {
            let one = read(p)?;
            out.records.extend(one.records);
            out.skipped += one.skipped;
            out.problems.extend(one.problems);
        }
        Ok(out)
    }
}

/// Multiple-choice records of one or more files.
pub type ReadOutcome = Outcome<McqRecord>;

/// Records of one or more files in any format.
pub type TrainingOutcome = Outcome<TrainingRecord>;

/// The records of a file, in file order ([`McqRecord`]s from [`open`], [`TrainingRecord`]s from
/// [`open_training`]). Yields one `Err` per bad record and carries on after it; a file without
/// any record yields the single problem `file: empty: no records`.
pub struct Records<T = McqRecord> {
    path: PathBuf,
    inner: Box<dyn Iterator<Item = std::result::Result<T, Problem>>>,
    any: bool,
    done: bool,
}

impl<T> Records<T> {
    fn new(path: &Path, inner: Box<dyn Iterator<Item = std::result::Result<T, Problem>>>) -> Self {
        Records {
            path: path.to_owned(),
            inner,
            any: false,
            done: false,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T> Iterator for Records<T> {
    type Item = std::result::Result<T, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
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

/// Opens `path` as `format` (detected with [`detect`] when `None`). Fails when the file cannot
/// be opened, its format cannot be detected, or it holds no multiple-choice records (a chat,
/// prompt-completion or trace file: read those with [`open_training`]); everything else comes
/// out of the iterator.
pub fn open(path: &Path, format: Option<Format>) -> Result<(Format, Records)> {
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    if !format.is_mcq() {
        return Err(Problem::file_level(
            path,
            "format",
            format!(
                "the file holds {} ({format}), not multiple-choice records; this needs multiple-choice records (medqa, medmcqa, pubmedqa, mmlu or jsonl)",
                format.holds()
            ),
        )
        .into());
    }
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok((format, Records::new(path, mcq_records(path, file, format))))
}

fn mcq_records(path: &Path, file: File, format: Format) -> Box<dyn Iterator<Item = RecordResult>> {
    match format {
        Format::PubMedQa => Box::new(pubmedqa_records(path, file)),
        Format::Mmlu => Box::new(mmlu_records(path, file)),
        _ => Box::new(JsonLines {
            values: LineValues::new(path.to_owned(), file),
            stem: file_stem(path),
            format,
        }),
    }
}

/// The format to read `path` as: `format` when given, [`Format::Trace`] when only a field
/// mapping is given, else [`detect`]ed. A field mapping goes with the trace format only, and
/// the trace format needs one.
fn training_format(
    path: &Path,
    format: Option<Format>,
    fields: Option<&TraceFields>,
) -> Result<Format> {
    let format = match (format, fields) {
        (Some(f), _) => f,
        (None, Some(_)) => Format::Trace,
        (None, None) => detect(path)?,
    };
    match (format, fields) {
        (Format::Trace, None) => Err(DataError::Invalid(
            "the trace format needs a field mapping such as question=Question,reasoning=Complex_CoT,answer=Response"
                .into(),
        )),
        (f, Some(fields)) if f != Format::Trace => Err(DataError::Invalid(format!(
            "a field mapping ({fields}) applies to the trace format only, not to {f}"
        ))),
        (f, _) => Ok(f),
    }
}

/// Opens `path` as `format` for training: multiple-choice formats give
/// [`TrainingRecord::Mcq`], the others [`TrainingRecord::Chat`] or [`TrainingRecord::Text`].
/// With `fields` and no `format` the format is [`Format::Trace`]; otherwise it is detected when
/// `None`. Fails only when the file cannot be opened, its format cannot be detected, or the
/// format and the field mapping do not go together; everything else comes out of the iterator.
pub fn open_training(
    path: &Path,
    format: Option<Format>,
    fields: Option<&TraceFields>,
) -> Result<(Format, Records<TrainingRecord>)> {
    let format = training_format(path, format, fields)?;
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let kind = match (format, fields) {
        (Format::Chat, _) => Kind::Chat,
        (Format::PromptCompletion, _) => Kind::PromptCompletion,
        (Format::Trace, Some(fields)) => Kind::Trace(fields.clone()),
        _ => {
            let mcq = mcq_records(path, file, format).map(|r| r.map(TrainingRecord::Mcq));
            return Ok((format, Records::new(path, Box::new(mcq))));
        }
    };
    let inner = TrainingJson {
        values: json_values(path, file),
        path: path.to_owned(),
        stem: file_stem(path),
        kind,
    };
    Ok((format, Records::new(path, Box::new(inner))))
}

/// Every record of `records`; without `skip_bad` the first bad one is the error, and a file
/// without a valid record is an error either way.
fn collect<T>(
    path: &Path,
    records: Records<T>,
    opts: &ReadOptions,
) -> Result<(Vec<T>, usize, Vec<Problem>)> {
    let (mut out, mut skipped, mut problems) = (Vec::new(), 0, Vec::new());
    for r in records {
        match r {
            Ok(rec) => out.push(rec),
            Err(p) if opts.skip_bad && p.line != 0 => {
                skipped += 1;
                problems.push(p);
            }
            Err(p) => return Err(p.into()),
        }
    }
    if out.is_empty() {
        let p = problems
            .first()
            .cloned()
            .unwrap_or_else(|| Problem::file_level(path, "file", "no valid records"));
        return Err(p.into());
    }
    Ok((out, skipped, problems))
}

/// Reads a whole file of multiple-choice records. Without `skip_bad` the first bad record is
/// the error.
pub fn read_file(path: &Path, format: Option<Format>, opts: &ReadOptions) -> Result<ReadOutcome> {
    let (_, records) = open(path, format)?;
    let (records, skipped, problems) = collect(path, records, opts)?;
    Ok(ReadOutcome {
        records,
        skipped,
        problems,
    })
}

/// Reads several files of multiple-choice records (each detected when `format` is `None`) into
/// one list, in order.
pub fn read_files(
    paths: &[PathBuf],
    format: Option<Format>,
    opts: &ReadOptions,
) -> Result<ReadOutcome> {
    Outcome::of_files(paths, |p| read_file(p, format, opts))
}

/// Reads a whole file in any format ([`open_training`] with `opts.fields`). Without `skip_bad`
/// the first bad record is the error; a file without a valid record is an error either way.
pub fn read_training_file(
    path: &Path,
    format: Option<Format>,
    opts: &ReadOptions,
) -> Result<TrainingOutcome> {
    let (_, records) = open_training(path, format, opts.fields.as_ref())?;
    let (records, skipped, problems) = collect(path, records, opts)?;
    Ok(TrainingOutcome {
        records,
        skipped,
        problems,
    })
}

/// Reads several files in any format (each detected when `format` is `None` and no field
/// mapping is given) into one list of [`TrainingRecord`]s, in order, with the same `skip_bad`
/// rules as [`read_files`].
pub fn read_training_files(
    paths: &[PathBuf],
    format: Option<Format>,
    opts: &ReadOptions,
) -> Result<TrainingOutcome> {
    Outcome::of_files(paths, |p| read_training_file(p, format, opts))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod training_tests;
