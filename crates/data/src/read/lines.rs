//! The JSON Lines reader: one JSON object per non-blank line (a leading byte-order mark is
//! skipped). [`LineValues`] yields each line's value; [`JsonLines`] hands them to the record
//! function of MedQA, MedMCQA or the generic format.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use crate::error::Problem;
use crate::format::Format;
use crate::json::{self, JVal};

use super::jsonl::jsonl_record;
use super::medmcqa::medmcqa_record;
use super::medqa::medqa_record;
use super::shared::{Ctx, RecordResult, json_message};

/// A record's JSON value and the 1-based line where it starts, or the problem that kept it from
/// being parsed.
pub(super) type ValueResult = std::result::Result<(usize, JVal), Problem>;

/// The parsed values of a JSON Lines file, blank lines skipped. A read error ends the file.
pub(super) struct LineValues {
    pub(super) path: PathBuf,
    pub(super) reader: BufReader<File>,
    pub(super) line: usize,
    pub(super) failed: bool,
}

impl LineValues {
    pub(super) fn new(path: PathBuf, file: File) -> Self {
        LineValues {
            path,
            reader: BufReader::new(file),
            line: 0,
            failed: false,
        }
    }
}

impl Iterator for LineValues {
    type Item = ValueResult;

    fn next(&mut self) -> Option<ValueResult> {
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
            let problem =
                |field: &str, message: String| Problem::new(&self.path, self.line, field, message);
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(problem(
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
            return Some(match json::parse(text) {
                Ok(v) => Ok((self.line, v)),
                Err(e) => Err(problem("json", json_message(&e, false))),
            });
        }
    }
}

/// MedQA, MedMCQA and generic JSON Lines records.
pub(super) struct JsonLines {
    pub(super) values: LineValues,
    pub(super) stem: String,
    pub(super) format: Format,
}

impl Iterator for JsonLines {
    type Item = RecordResult;

    fn next(&mut self) -> Option<RecordResult> {
        let (line, value) = match self.values.next()? {
            Ok(x) => x,
            Err(p) => return Some(Err(p)),
        };
        let ctx = Ctx {
            file: &self.values.path,
            line,
            item: None,
        };
        let default_id = format!("{}:{line}", self.stem);
        Some(match self.format {
            Format::MedQa => medqa_record(&ctx, &value, default_id),
            Format::MedMcqa => medmcqa_record(&ctx, &value, default_id),
            _ => jsonl_record(&ctx, &value, default_id),
        })
    }
}
