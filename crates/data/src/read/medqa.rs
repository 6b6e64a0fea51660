//! MedQA: one record per JSON line with `question`, `options` {A..}, `answer_idx`.

use crate::json::JVal;
use crate::record::McqRecord;

use super::shared::{Ctx, RecordResult};

/// MedQA: `question`, `options` {A..}, `answer_idx`, optional `answer` (must be the text of
/// option `answer_idx`), `meta_info` (the subject, e.g. `step1`). Id: `<file stem>:<line>`.
pub(super) fn medqa_record(c: &Ctx, v: &JVal, id: String) -> RecordResult {
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
