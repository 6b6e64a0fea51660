//! File formats and their detection.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

use crate::error::{DataError, Problem, Result};
use crate::json::{self, JVal};

/// A data file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// MedQA JSON Lines: `question`, `options` {A..E}, `answer_idx`, `answer`, `meta_info`.
    MedQa,
    /// MedMCQA JSON Lines: `question`, `opa`..`opd`, `cop` (1-based: 1 = `opa`), `exp`,
    /// `subject_name`, `id`.
    MedMcqa,
    /// PubMedQA PQA-L JSON object: PMID → {`QUESTION`, `CONTEXTS`, `final_decision`,
    /// `LONG_ANSWER`, ...}.
    PubMedQa,
    /// MMLU CSV, no header: question, A, B, C, D, answer letter; subject from the file name.
    Mmlu,
    /// medtune's generic JSON Lines (see the crate README).
    Jsonl,
    /// Conversations: `{"messages": [{"role", "content", "reasoning_content"?}, ...]}` per record
    /// (JSON Lines or a JSON array).
    Chat,
    /// TRL's prompt–completion records: `prompt` and `completion` both strings, or both arrays of
    /// messages (JSON Lines or a JSON array).
    PromptCompletion,
    /// Reasoning-trace tables read through a field mapping ([`crate::TraceFields`]), such as
    /// medical-o1-reasoning-SFT's `Question` / `Complex_CoT` / `Response` (JSON Lines or a JSON
    /// array). Never detected: chosen when a field mapping is given.
    Trace,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::MedQa,
        Format::MedMcqa,
        Format::PubMedQa,
        Format::Mmlu,
        Format::Jsonl,
        Format::Chat,
        Format::PromptCompletion,
        Format::Trace,
    ];

    /// The multiple-choice formats, whose records are [`crate::McqRecord`]s.
    pub const MCQ: [Format; 5] = [
        Format::MedQa,
        Format::MedMcqa,
        Format::PubMedQa,
        Format::Mmlu,
        Format::Jsonl,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::MedQa => "medqa",
            Format::MedMcqa => "medmcqa",
            Format::PubMedQa => "pubmedqa",
            Format::Mmlu => "mmlu",
            Format::Jsonl => "jsonl",
            Format::Chat => "chat",
            Format::PromptCompletion => "prompt-completion",
            Format::Trace => "trace",
        }
    }

    /// Whether the format holds multiple-choice questions ([`crate::McqRecord`]s); the others
    /// hold conversations, prompt–completion pairs or reasoning traces
    /// ([`crate::TrainingRecord`]s).
    pub fn is_mcq(self) -> bool {
        Format::MCQ.contains(&self)
    }

    /// What a file of this format holds, for messages: `multiple-choice questions`,
    /// `conversations`, ...
    pub fn holds(self) -> &'static str {
        match self {
            Format::Chat => "conversations",
            Format::PromptCompletion => "prompt-completion pairs",
            Format::Trace => "reasoning traces",
            _ => "multiple-choice questions",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `medqa`, `medmcqa`, `pubmedqa`, `mmlu`, `jsonl`, `chat`, `prompt-completion` (or
    /// `prompt_completion`) or `trace` (case-insensitive).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| {
                format!(
                    "unknown data format {s:?}: expected medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion or trace"
                )
            })
    }
}

/// What a "cannot detect" message asks the caller to name.
const NAMES: &str =
    "medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion; trace with a field mapping";

/// The format of a file, from its extension and its first record.
///
/// - `.csv` → [`Format::Mmlu`].
/// - A file whose first non-blank character is `[` is a JSON array of records: its first
///   element decides, with key `messages` → [`Format::Chat`], keys `prompt` and `completion` →
///   [`Format::PromptCompletion`] (the multiple-choice formats are not read from arrays).
/// - Otherwise the first non-blank line is parsed as a JSON object (a JSON Lines record):
///   keys `opa` and `cop` → [`Format::MedMcqa`]; `options` and `answer_idx` → [`Format::MedQa`];
///   `messages` → [`Format::Chat`]; `prompt` and `completion` → [`Format::PromptCompletion`];
///   `question` → [`Format::Jsonl`]; an object whose first value is an object with `QUESTION`
///   (PubMedQA written on one line) → [`Format::PubMedQa`].
/// - When the first line is not a whole JSON object (a pretty-printed `.json` file), the whole
///   file is parsed: an object whose first value is an object with `QUESTION` →
///   [`Format::PubMedQa`].
///
/// [`Format::Trace`] is never detected: it is chosen by giving a field mapping
/// ([`crate::ReadOptions::fields`]). Anything else is a [`Problem`] for `field` `format` that
/// asks for the format by name.
pub fn detect(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() == Some("csv") {
        return Ok(Format::Mmlu);
    }
    let unknown = |why: &str| -> DataError {
        Problem::file_level(
            path,
            "format",
            format!("cannot detect the format ({why}); name it ({NAMES})"),
        )
        .into()
    };
    let empty = || -> DataError { Problem::file_level(path, "file", "empty: no records").into() };
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let first = loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Err(empty());
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_start_matches('\u{feff}').trim();
        if !text.is_empty() {
            break text.to_owned();
        }
    };
    if first.starts_with('[') {
        let text = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let text = String::from_utf8_lossy(&text);
        return match json::ArrayScanner::new(&text).next() {
            None => Err(empty()),
            Some(json::ArrayItem::Broken { .. }) => {
                Err(unknown("a JSON array that is not valid JSON"))
            }
            Some(json::ArrayItem::Element { text, .. }) => json::parse(text)
                .ok()
                .and_then(|v| from_first_value(&v))
                .filter(|f| !f.is_mcq())
                .ok_or_else(|| {
                    unknown(
                        "a JSON array whose first record has neither `messages` nor `prompt` and `completion`",
                    )
                }),
        };
    }
    if let Ok(v) = json::parse(&first) {
        return from_first_value(&v)
            .ok_or_else(|| unknown("unrecognised keys in the first record"));
    }
    let text = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8_lossy(&text);
    match json::parse(text.trim_start_matches('\u{feff}')) {
        Ok(v) => from_first_value(&v)
            .filter(|f| *f == Format::PubMedQa)
            .ok_or_else(|| unknown("a JSON file that is not a PubMedQA object")),
        Err(_) => Err(unknown("neither JSON Lines nor a JSON object")),
    }
}

fn from_first_value(v: &JVal) -> Option<Format> {
    let has = |k: &str| v.get(k).is_some();
    if has("opa") && has("cop") {
        Some(Format::MedMcqa)
    } else if has("options") && has("answer_idx") {
        Some(Format::MedQa)
    } else if has("messages") {
        Some(Format::Chat)
    } else if has("prompt") && has("completion") {
        Some(Format::PromptCompletion)
    } else if has("question") {
        Some(Format::Jsonl)
    } else if v
        .entries()
        .and_then(|e| e.first())
        .is_some_and(|(_, item)| item.get("QUESTION").is_some())
    {
        Some(Format::PubMedQa)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert_eq!("MedQA".parse::<Format>().unwrap(), Format::MedQa);
        assert_eq!(
            "Prompt_Completion".parse::<Format>().unwrap(),
            Format::PromptCompletion
        );
        assert_eq!(
            "medqa5".parse::<Format>().unwrap_err(),
            "unknown data format \"medqa5\": expected medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion or trace"
        );
        assert_eq!(
            Format::ALL.iter().filter(|f| f.is_mcq()).count(),
            Format::MCQ.len()
        );
        assert!(!Format::Trace.is_mcq() && Format::Jsonl.is_mcq());
    }

    #[test]
    fn detects_formats() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "a.jsonl",
                "\n{\"question\": \"q\", \"options\": {\"A\": \"x\", \"B\": \"y\"}, \"answer_idx\": \"A\"}\n",
                Some(Format::MedQa),
            ),
            (
                "b.json",
                "{\"question\":\"q\",\"opa\":\"x\",\"opb\":\"y\",\"opc\":\"z\",\"opd\":\"w\",\"cop\":1}\n",
                Some(Format::MedMcqa),
            ),
            (
                "c.json",
                "{\n  \"123\": {\"QUESTION\": \"q?\", \"CONTEXTS\": [\"c\"], \"final_decision\": \"yes\"}\n}\n",
                Some(Format::PubMedQa),
            ),
            (
                "c1.json",
                "{\"123\": {\"QUESTION\": \"q?\", \"CONTEXTS\": [\"c\"], \"final_decision\": \"yes\"}}",
                Some(Format::PubMedQa),
            ),
            ("d_test.csv", "q,a,b,c,d,A\n", Some(Format::Mmlu)),
            (
                "e.jsonl",
                "{\"question\": \"q\", \"options\": [\"x\", \"y\"], \"answer\": 1}\n",
                Some(Format::Jsonl),
            ),
            ("f.jsonl", "{\"prompt\": \"q\"}\n", None),
            ("g.txt", "hello\n", None),
            ("h.jsonl", "\n\n", None),
        ];
        for (name, text, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            match (detect(&p), want) {
                (Ok(f), Some(w)) => assert_eq!(f, w, "{name}"),
                (Err(e), None) => assert!(e.problem().is_some(), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        let err = detect(&dir.path().join("f.jsonl")).unwrap_err().to_string();
        assert!(err.ends_with("f.jsonl: format: cannot detect the format (unrecognised keys in the first record); name it (medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion; trace with a field mapping)"), "{err}");
        let err = detect(&dir.path().join("h.jsonl")).unwrap_err().to_string();
        assert!(err.ends_with("h.jsonl: file: empty: no records"), "{err}");
    }
}
