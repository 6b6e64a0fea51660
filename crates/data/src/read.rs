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

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Problem, Result};
use crate::format::{Format, detect};
use crate::json::{self, JVal};
use crate::record::{McqRecord, Origin};

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

/// One record or the problem that kept it from being one.
pub type RecordResult = std::result::Result<McqRecord, Problem>;

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

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Field access with problems.

/// Where a record is, for its problems.
struct Ctx<'a> {
    file: &'a Path,
    line: usize,
    /// PubMedQA: the item's key, appended to messages.
    item: Option<&'a str>,
}

impl Ctx<'_> {
    fn problem(&self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        let mut message = message.into();
        if let Some(key) = self.item {
            message.push_str(&format!(" (item {key:?})"));
        }
        Problem::new(self.file, self.line, field, message)
    }

    fn origin(&self) -> Origin {
        Origin {
            file: self.file.to_owned(),
            line: self.line,
        }
    }

    /// The entries of a record object; a key that appears twice is a problem.
    fn object<'v>(&self, v: &'v JVal) -> std::result::Result<&'v [(String, JVal)], Problem> {
        let entries = v.entries().ok_or_else(|| {
            self.problem(
                "json",
                format!("expected a JSON object, found {}", v.kind()),
            )
        })?;
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if !seen.insert(k.as_str()) {
                return Err(self.problem(k.as_str(), "appears twice in the record"));
            }
        }
        Ok(entries)
    }

    /// A required, non-empty string.
    fn text(&self, v: &JVal, key: &str) -> std::result::Result<String, Problem> {
        match v.get(key) {
            None => Err(self.problem(key, "missing")),
            Some(JVal::Null) => Err(self.problem(key, "missing (null)")),
            Some(JVal::Str(s)) if s.trim().is_empty() => Err(self.problem(key, "empty")),
            Some(JVal::Str(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.problem(key, format!("expected a string, found {}", other.kind())))
            }
        }
    }

    /// An optional string: missing, null and blank are `None`.
    fn opt_text(&self, v: &JVal, key: &str) -> std::result::Result<Option<String>, Problem> {
        match v.get(key) {
            None | Some(JVal::Null) => Ok(None),
            Some(JVal::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(JVal::Str(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.problem(key, format!("expected a string, found {}", other.kind())))
            }
        }
    }

    /// Options from an object `{"A": text, ...}` or an array `[text, ...]` (lettered A, B, ...).
    fn options(&self, v: &JVal, key: &str) -> std::result::Result<Vec<(char, String)>, Problem> {
        let mut out: Vec<(char, String)> = Vec::new();
        match v.get(key) {
            None => return Err(self.problem(key, "missing")),
            Some(JVal::Obj(entries)) => {
                for (k, text) in entries {
                    let letter = option_letter(k).ok_or_else(|| {
                        self.problem(key, format!("key {k:?} is not a letter A-Z"))
                    })?;
                    if out.iter().any(|(l, _)| *l == letter) {
                        return Err(self.problem(key, format!("letter {letter} appears twice")));
                    }
                    out.push((letter, self.option_text(text, &format!("{key}.{k}"))?));
                }
            }
            Some(JVal::Arr(items)) => {
                if items.len() > 26 {
                    return Err(
                        self.problem(key, format!("more than 26 options ({})", items.len()))
                    );
                }
                for (letter, text) in ('A'..='Z').zip(items) {
                    out.push((letter, self.option_text(text, &format!("{key}.{letter}"))?));
                }
            }
            Some(other) => {
                return Err(self.problem(
                    key,
                    format!(
                        "expected an object of letter -> text or an array of texts, found {}",
                        other.kind()
                    ),
                ));
            }
        }
        self.enough_options(key, &out)?;
        Ok(out)
    }

    fn option_text(&self, v: &JVal, field: &str) -> std::result::Result<String, Problem> {
        match v {
            JVal::Str(s) if s.trim().is_empty() => Err(self.problem(field, "empty")),
            JVal::Str(s) => Ok(s.clone()),
            JVal::Null => Err(self.problem(field, "missing (null)")),
            other => Err(self.problem(field, format!("expected a string, found {}", other.kind()))),
        }
    }

    fn enough_options(
        &self,
        field: &str,
        options: &[(char, String)],
    ) -> std::result::Result<(), Problem> {
        if options.len() < 2 {
            return Err(self.problem(field, format!("fewer than 2 options ({})", options.len())));
        }
        Ok(())
    }

    /// An answer letter given as a string, which must be one of the options.
    fn answer_letter(
        &self,
        field: &str,
        s: &str,
        options: &[(char, String)],
    ) -> std::result::Result<char, Problem> {
        let trimmed = s.trim();
        let mut chars = trimmed.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if options.iter().any(|(l, _)| *l == c) => Ok(c),
            _ => Err(self.problem(
                field,
                format!("{s:?} is not one of the options {}", letter_list(options)),
            )),
        }
    }
}

fn option_letter(key: &str) -> Option<char> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_uppercase() => Some(c),
        _ => None,
    }
}

/// `A, B, C, D`.
fn letter_list(options: &[(char, String)]) -> String {
    options
        .iter()
        .map(|(l, _)| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `expected value at column 5` from serde_json's `expected value at line 1 column 5`.
fn json_message(e: &serde_json::Error, with_line: bool) -> String {
    let text = e.to_string();
    let base = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    if with_line {
        format!(
            "invalid JSON: {base} (line {} column {})",
            e.line(),
            e.column()
        )
    } else {
        format!("invalid JSON: {base} (column {})", e.column())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines: MedQA, MedMCQA, generic.

struct JsonLines {
    path: PathBuf,
    stem: String,
    format: Format,
    reader: BufReader<File>,
    line: usize,
    failed: bool,
}

impl Iterator for JsonLines {
    type Item = RecordResult;

    fn next(&mut self) -> Option<RecordResult> {
        let mut buf = Vec::new();
        loop {
            if self.failed {
                return None;
            }
            buf.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(Problem::new(
                        &self.path,
                        self.line,
                        "file",
                        format!("read failed: {e}"),
                    )));
                }
            }
            let ctx = Ctx {
                file: &self.path,
                line: self.line,
                item: None,
            };
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(ctx.problem(
                        "text",
                        format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
                    )));
                }
            };
            let text = if self.line == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let value = match json::parse(text) {
                Ok(v) => v,
                Err(e) => return Some(Err(ctx.problem("json", json_message(&e, false)))),
            };
            let default_id = format!("{}:{}", self.stem, self.line);
            return Some(match self.format {
                Format::MedQa => medqa_record(&ctx, &value, default_id),
                Format::MedMcqa => medmcqa_record(&ctx, &value, default_id),
                _ => jsonl_record(&ctx, &value, default_id),
            });
        }
    }
}

/// MedQA: `question`, `options` {A..}, `answer_idx`, optional `answer` (must be the text of
/// option `answer_idx`), `meta_info` (the subject, e.g. `step1`). Id: `<file stem>:<line>`.
fn medqa_record(c: &Ctx, v: &JVal, id: String) -> RecordResult {
    c.object(v)?;
    let question = c.text(v, "question")?;
    let options = c.options(v, "options")?;
    let answer = match v.get("answer_idx") {
        None => return Err(c.problem("answer_idx", "missing")),
        Some(JVal::Str(s)) => c.answer_letter("answer_idx", s, &options)?,
        Some(other) => {
            return Err(c.problem(
                "answer_idx",
                format!("expected a letter, found {}", other.kind()),
            ));
        }
    };
    if let Some(text) = c.opt_text(v, "answer")? {
        let want = options.iter().find(|(l, _)| *l == answer).unwrap().1.trim();
        if text.trim() != want {
            return Err(c.problem(
                "answer",
                format!("{text:?} is not the text of option {answer} ({want:?})"),
            ));
        }
    }
    Ok(McqRecord {
        id,
        question,
        options,
        answer,
        explanation: None,
        subject: c.opt_text(v, "meta_info")?,
        context: None,
        origin: c.origin(),
    })
}

/// MedMCQA: `question`, `opa`..`opd`, `cop` (1-based, 1 = `opa`, as in the original release; the
/// Hugging Face copy is 0-based), `exp`, `subject_name`, `id`.
fn medmcqa_record(c: &Ctx, v: &JVal, default_id: String) -> RecordResult {
    c.object(v)?;
    let question = c.text(v, "question")?;
    let mut options = Vec::with_capacity(4);
    for (letter, key) in [('A', "opa"), ('B', "opb"), ('C', "opc"), ('D', "opd")] {
        options.push((letter, c.text(v, key)?));
    }
    let answer = match v.get("cop") {
        None => return Err(c.problem("cop", "missing")),
        Some(JVal::Int(i)) if (1..=4).contains(i) => options[(*i - 1) as usize].0,
        Some(JVal::Int(i)) => {
            return Err(c.problem(
                "cop",
                format!("{i} is not one of 1-4 (1 = opa; the original MedMCQA cop is 1-based)"),
            ));
        }
        Some(other) => {
            return Err(c.problem(
                "cop",
                format!("expected an integer 1-4, found {}", other.kind()),
            ));
        }
    };
    Ok(McqRecord {
        id: c.opt_text(v, "id")?.unwrap_or(default_id),
        question,
        options,
        answer,
        explanation: c.opt_text(v, "exp")?,
        subject: c.opt_text(v, "subject_name")?,
        context: None,
        origin: c.origin(),
    })
}

/// The generic format (see the crate README).
fn jsonl_record(c: &Ctx, v: &JVal, default_id: String) -> RecordResult {
    c.object(v)?;
    let question = c.text(v, "question")?;
    let options = c.options(v, "options")?;
    let answer = match v.get("answer") {
        None => return Err(c.problem("answer", "missing")),
        Some(JVal::Str(s)) => c.answer_letter("answer", s, &options)?,
        Some(JVal::Int(i)) => match usize::try_from(*i).ok().and_then(|i| options.get(i)) {
            Some((l, _)) => *l,
            None => {
                return Err(c.problem(
                    "answer",
                    format!(
                        "index {i} is not one of the options (0-{} for {})",
                        options.len() - 1,
                        letter_list(&options)
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(c.problem(
                "answer",
                format!(
                    "expected an option letter or a 0-based index, found {}",
                    other.kind()
                ),
            ));
        }
    };
    let id = match v.get("id") {
        Some(JVal::Int(i)) => i.to_string(),
        _ => c.opt_text(v, "id")?.unwrap_or(default_id),
    };
    Ok(McqRecord {
        id,
        question,
        options,
        answer,
        explanation: c.opt_text(v, "explanation")?,
        subject: c.opt_text(v, "subject")?,
        context: c.opt_text(v, "context")?,
        origin: c.origin(),
    })
}

// ---------------------------------------------------------------------------------------------
// PubMedQA.

/// PubMedQA's fixed options.
pub const PUBMEDQA_OPTIONS: [(char, &str); 3] = [('A', "yes"), ('B', "no"), ('C', "maybe")];

fn pubmedqa_records(path: &Path, mut file: File) -> std::vec::IntoIter<RecordResult> {
    let one = |p: Problem| vec![Err(p)].into_iter();
    let mut bytes = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut file, &mut bytes) {
        return one(Problem::file_level(
            path,
            "file",
            format!("read failed: {e}"),
        ));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = before.len()
                - before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
            return one(Problem::new(
                path,
                line,
                "text",
                format!("not valid UTF-8 (byte {} of the line)", col + 1),
            ));
        }
    };
    if text.trim().is_empty() {
        return Vec::new().into_iter();
    }
    let value = match json::parse(text.trim_start_matches('\u{feff}')) {
        Ok(v) => v,
        Err(e) => {
            return one(Problem::new(
                path,
                e.line().max(1),
                "json",
                json_message(&e, false),
            ));
        }
    };
    let JVal::Obj(items) = value else {
        return one(Problem::new(
            path,
            1,
            "json",
            format!(
                "expected a JSON object of id -> record, found {}",
                value.kind()
            ),
        ));
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, (key, item)) in items.iter().enumerate() {
        let c = Ctx {
            file: path,
            line: i + 1,
            item: Some(key),
        };
        if !seen.insert(key.as_str()) {
            out.push(Err(c.problem("id", "appears twice in the file")));
            continue;
        }
        out.push(pubmedqa_record(&c, key, item));
    }
    out.into_iter()
}

/// PubMedQA PQA-L item: `QUESTION`, `CONTEXTS` (non-empty list of strings, joined by blank lines
/// into the context), `final_decision` (yes/no/maybe → A/B/C), `LONG_ANSWER` (the explanation).
fn pubmedqa_record(c: &Ctx, key: &str, v: &JVal) -> RecordResult {
    c.object(v)?;
    let question = c.text(v, "QUESTION")?;
    let contexts = match v.get("CONTEXTS") {
        None => return Err(c.problem("CONTEXTS", "missing")),
        Some(JVal::Arr(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    JVal::Str(s) if s.trim().is_empty() => {}
                    JVal::Str(s) => parts.push(s.trim()),
                    other => {
                        return Err(c.problem(
                            format!("CONTEXTS[{i}]"),
                            format!("expected a string, found {}", other.kind()),
                        ));
                    }
                }
            }
            if parts.is_empty() {
                return Err(c.problem("CONTEXTS", "empty"));
            }
            parts.join("\n\n")
        }
        Some(other) => {
            return Err(c.problem(
                "CONTEXTS",
                format!("expected an array of strings, found {}", other.kind()),
            ));
        }
    };
    let decision = c.text(v, "final_decision")?;
    let answer = PUBMEDQA_OPTIONS
        .iter()
        .find(|(_, t)| *t == decision.trim())
        .map(|(l, _)| *l)
        .ok_or_else(|| {
            c.problem(
                "final_decision",
                format!("{decision:?} is not yes, no or maybe"),
            )
        })?;
    Ok(McqRecord {
        id: key.to_owned(),
        question,
        options: PUBMEDQA_OPTIONS
            .iter()
            .map(|(l, t)| (*l, (*t).to_owned()))
            .collect(),
        answer,
        explanation: c.opt_text(v, "LONG_ANSWER")?,
        subject: None,
        context: Some(contexts),
        origin: c.origin(),
    })
}

/// The official PubMedQA test labels (PMID → `yes`/`no`/`maybe`) from `test_ground_truth.json`
/// in the folder of `ori_pqal` (a file in that folder, or the folder itself); `None` when there
/// is no such file.
pub fn pubmedqa_test_labels(ori_pqal: &Path) -> Result<Option<BTreeMap<String, String>>> {
    let dir = if ori_pqal.is_dir() {
        ori_pqal
    } else {
        ori_pqal.parent().unwrap_or(Path::new("."))
    };
    let path = dir.join("test_ground_truth.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let labels: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        DataError::Problem(Problem::new(
            &path,
            e.line().max(1),
            "json",
            json_message(&e, false),
        ))
    })?;
    Ok(Some(labels))
}

/// Splits PubMedQA records into the official test set (ids in `labels`) and the rest (the
/// official train+dev pool), both in file order. A test record whose answer disagrees with its
/// label is a [`Problem`] for `final_decision`.
pub fn split_pubmedqa_test(
    records: Vec<McqRecord>,
    labels: &BTreeMap<String, String>,
) -> Result<(Vec<McqRecord>, Vec<McqRecord>)> {
    let mut test = Vec::new();
    let mut rest = Vec::new();
    for r in records {
        match labels.get(&r.id) {
            Some(label) => {
                if label.trim() != r.answer_text() {
                    return Err(Problem::new(
                        &r.origin.file,
                        r.origin.line,
                        "final_decision",
                        format!(
                            "{:?} disagrees with the test label {label:?} (item {:?})",
                            r.answer_text(),
                            r.id
                        ),
                    )
                    .into());
                }
                test.push(r);
            }
            None => rest.push(r),
        }
    }
    Ok((test, rest))
}

// ---------------------------------------------------------------------------------------------
// MMLU.

/// The MMLU subject of a file: its stem without `_test`, `_val` or `_dev`
/// (`clinical_knowledge_test.csv` → `clinical_knowledge`).
pub fn mmlu_subject(path: &Path) -> String {
    let stem = file_stem(path);
    for suffix in ["_test", "_val", "_dev"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            return s.to_owned();
        }
    }
    stem
}

fn mmlu_records(path: &Path, file: File) -> impl Iterator<Item = RecordResult> + use<> {
    let path = path.to_owned();
    let stem = file_stem(&path);
    let subject = mmlu_subject(&path);
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut failed = false;
    reader.into_byte_records().map_while(move |r| {
        if failed {
            return None;
        }
        Some(match r {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line() as usize);
                let c = Ctx {
                    file: &path,
                    line,
                    item: None,
                };
                mmlu_record(&c, &rec, format!("{stem}:{line}"), &subject)
            }
            Err(e) => {
                failed = true;
                let line = e.position().map_or(0, |p| p.line() as usize);
                Err(Problem::new(&path, line, "csv", e.to_string()))
            }
        })
    })
}

const MMLU_COLUMNS: [&str; 6] = ["question", "A", "B", "C", "D", "answer"];

/// MMLU row: question, A, B, C, D, answer letter.
fn mmlu_record(c: &Ctx, rec: &csv::ByteRecord, id: String, subject: &str) -> RecordResult {
    if rec.len() != 6 {
        return Err(c.problem(
            "columns",
            format!(
                "expected 6 (question, A, B, C, D, answer), found {}",
                rec.len()
            ),
        ));
    }
    let mut fields = Vec::with_capacity(6);
    for (name, bytes) in MMLU_COLUMNS.iter().zip(rec.iter()) {
        let s = std::str::from_utf8(bytes).map_err(|e| {
            c.problem(
                *name,
                format!(
                    "not valid UTF-8 (byte {} of the field)",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        if s.trim().is_empty() {
            return Err(c.problem(*name, "empty"));
        }
        fields.push(s);
    }
    let options: Vec<(char, String)> = ['A', 'B', 'C', 'D']
        .into_iter()
        .zip(fields[1..5].iter().map(|s| (*s).to_owned()))
        .collect();
    let answer = c.answer_letter("answer", fields[5], &options)?;
    Ok(McqRecord {
        id,
        question: fields[0].to_owned(),
        options,
        answer,
        explanation: None,
        subject: Some(subject.to_owned()),
        context: None,
        origin: c.origin(),
    })
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
