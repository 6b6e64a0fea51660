//! MMLU CSV (no header): question, A, B, C, D, answer letter per row; the subject comes from the
//! file name.

use std::fs::File;
use std::path::Path;

use crate::error::Problem;
use crate::record::McqRecord;

use super::shared::{Ctx, RecordResult, file_stem};

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

pub(super) fn mmlu_records(path: &Path, file: File) -> impl Iterator<Item = RecordResult> + use<> {
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
