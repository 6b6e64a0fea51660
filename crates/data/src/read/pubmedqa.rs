//! PubMedQA PQA-L: one JSON object of id -> item (read whole), yes/no/maybe as options A/B/C;
//! and the official test labels and the split of records into the test set and the rest.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;

use crate::error::{DataError, Problem, Result};
use crate::json::{self, JVal};
use crate::record::McqRecord;

use super::shared::{Ctx, RecordResult, json_message, utf8_problem};

/// PubMedQA's fixed options.
pub const PUBMEDQA_OPTIONS: [(char, &str); 3] = [('A', "yes"), ('B', "no"), ('C', "maybe")];

pub(super) fn pubmedqa_records(path: &Path, mut file: File) -> std::vec::IntoIter<RecordResult> {
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
        Err(e) => return one(utf8_problem(path, &bytes, &e)),
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
