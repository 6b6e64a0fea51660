//! MedMCQA: one record per JSON line with `question`, `opa`..`opd` and the 1-based `cop`.

use crate::json::JVal;
use crate::record::McqRecord;

use super::shared::{Ctx, RecordResult};

/// MedMCQA: `question`, `opa`..`opd`, `cop` (1-based, 1 = `opa`, as in the original release; the
/// Hugging Face copy is 0-based), `exp`, `subject_name`, `id`.
pub(super) fn medmcqa_record(c: &Ctx, v: &JVal, default_id: String) -> RecordResult {
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
