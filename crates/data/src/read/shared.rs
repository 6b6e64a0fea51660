//! What every reader shares: where a record is ([`Ctx`]) and the field access that turns a
//! missing or malformed field into a [`Problem`], the checks on options and answer letters, and
//! small helpers for messages and ids.

use std::collections::HashSet;
use std::path::Path;

use crate::error::Problem;
use crate::json::JVal;
use crate::record::{McqRecord, Origin};

/// One record or the problem that kept it from being one.
pub type RecordResult = std::result::Result<McqRecord, Problem>;

pub(super) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where a record is, for its problems.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) line: usize,
    /// PubMedQA: the item's key, appended to messages.
    pub(super) item: Option<&'a str>,
}

impl Ctx<'_> {
    pub(super) fn problem(&self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        let mut message = message.into();
        if let Some(key) = self.item {
            message.push_str(&format!(" (item {key:?})"));
        }
        Problem::new(self.file, self.line, field, message)
    }

    pub(super) fn origin(&self) -> Origin {
        Origin {
            file: self.file.to_owned(),
            line: self.line,
        }
    }

    /// The entries of a record object; a key that appears twice is a problem.
    pub(super) fn object<'v>(
        &self,
        v: &'v JVal,
    ) -> std::result::Result<&'v [(String, JVal)], Problem> {
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
    pub(super) fn text(&self, v: &JVal, key: &str) -> std::result::Result<String, Problem> {
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
    pub(super) fn opt_text(
        &self,
        v: &JVal,
        key: &str,
    ) -> std::result::Result<Option<String>, Problem> {
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
    pub(super) fn options(
        &self,
        v: &JVal,
        key: &str,
    ) -> std::result::Result<Vec<(char, String)>, Problem> {
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
    pub(super) fn answer_letter(
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
pub(super) fn letter_list(options: &[(char, String)]) -> String {
    options
        .iter()
        .map(|(l, _)| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The problem of a file that is not valid UTF-8: the line of the first bad byte and its byte
/// position in that line (both 1-based).
pub(super) fn utf8_problem(path: &Path, bytes: &[u8], e: &std::str::Utf8Error) -> Problem {
    let before = &bytes[..e.valid_up_to()];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    Problem::new(
        path,
        line,
        "text",
        format!("not valid UTF-8 (byte {} of the line)", col + 1),
    )
}

/// `expected value at column 5` from serde_json's `expected value at line 1 column 5`.
pub(super) fn json_message(e: &serde_json::Error, with_line: bool) -> String {
    let base = json_error_text(e);
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

/// serde_json's message without its position: `expected value`.
pub(super) fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
