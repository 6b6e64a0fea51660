//! The generic JSON Lines format: `question`, `options` (object or array), `answer` (letter or
//! 0-based index), optional `id`, `explanation`, `subject` and `context`.

use crate::json::JVal;
use crate::record::McqRecord;

use super::shared::{Ctx, RecordResult, letter_list};

/// The generic format (see the crate README).
pub(super) fn jsonl_record(c: &Ctx, v: &JVal, default_id: String) -> RecordResult {
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
