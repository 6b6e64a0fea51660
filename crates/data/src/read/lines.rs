//! The JSON Lines reader shared by MedQA, MedMCQA and the generic format: one JSON object per
//! non-blank line (a leading byte-order mark is skipped), handed to its format's record function.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use crate::error::Problem;
use crate::format::Format;
use crate::json;

use super::jsonl::jsonl_record;
use super::medmcqa::medmcqa_record;
use super::medqa::medqa_record;
use super::shared::{Ctx, RecordResult, json_message};

pub(super) struct JsonLines {
    pub(super) path: PathBuf,
    pub(super) stem: String,
    pub(super) format: Format,
    pub(super) reader: BufReader<File>,
    pub(super) line: usize,
    pub(super) failed: bool,
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
