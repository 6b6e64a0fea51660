//! Record files of the training formats (chat, prompt-completion, trace): JSON Lines, or one JSON
//! array of objects (`[ {...}, {...} ]`, pretty-printed or not). An array file is read whole and
//! split into elements, each parsed and reported on its own; a record's line is the line where
//! its element starts.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::error::Problem;
use crate::json::{self, ArrayCursor, ArrayItem};

use super::lines::{LineValues, ValueResult};
use super::shared::{json_error_text, utf8_problem};

/// The values of a JSON Lines file or of a JSON array file, as the file's first non-blank
/// character (`[` or not) says.
pub(super) fn json_values(path: &Path, mut file: File) -> Box<dyn Iterator<Item = ValueResult>> {
    match starts_with_bracket(&mut file) {
        Ok(true) => Box::new(ArrayValues::read(path, file)),
        Ok(false) => Box::new(LineValues::new(path.to_owned(), file)),
        Err(e) => Box::new(std::iter::once(Err(Problem::file_level(
            path,
            "file",
            format!("read failed: {e}"),
        )))),
    }
}

/// Whether the first character that is not whitespace (nor a leading byte-order mark) is `[`;
/// the file is rewound.
fn starts_with_bracket(file: &mut File) -> std::io::Result<bool> {
    let mut buf = [0u8; 4096];
    let mut first = true;
    let found = loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break false;
        }
        let mut chunk = &buf[..n];
        if first {
            chunk = chunk.strip_prefix(b"\xef\xbb\xbf").unwrap_or(chunk);
            first = false;
        }
        if let Some(&c) = chunk.iter().find(|c| !c.is_ascii_whitespace()) {
            break c == b'[';
        }
    };
    file.rewind()?;
    Ok(found)
}

/// The elements of a JSON array file.
pub(super) struct ArrayValues {
    path: PathBuf,
    text: String,
    cursor: ArrayCursor,
    /// A problem that ends the file before any element (unreadable, not UTF-8).
    early: Option<Problem>,
    /// The last located `(byte offset, line)`, so that lines are counted forward only.
    at: (usize, usize),
}

impl ArrayValues {
    fn read(path: &Path, mut file: File) -> Self {
        let mut out = ArrayValues {
            path: path.to_owned(),
            text: String::new(),
            cursor: ArrayCursor::new(),
            early: None,
            at: (0, 1),
        };
        let mut bytes = Vec::new();
        if let Err(e) = file.read_to_end(&mut bytes) {
            out.early = Some(Problem::file_level(
                path,
                "file",
                format!("read failed: {e}"),
            ));
            return out;
        }
        match String::from_utf8(bytes) {
            Ok(text) => out.text = text,
            Err(e) => out.early = Some(utf8_problem(path, e.as_bytes(), &e.utf8_error())),
        }
        out
    }

    /// The 1-based line and byte column of byte `offset`.
    fn locate(&mut self, offset: usize) -> (usize, usize) {
        if offset < self.at.0 {
            self.at = (0, 1);
        }
        let b = self.text.as_bytes();
        let line = self.at.1 + b[self.at.0..offset].iter().filter(|&&c| c == b'\n').count();
        self.at = (offset, line);
        let line_start = b[..offset]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        (line, offset - line_start + 1)
    }
}

impl Iterator for ArrayValues {
    type Item = ValueResult;

    fn next(&mut self) -> Option<ValueResult> {
        if let Some(p) = self.early.take() {
            self.cursor = ArrayCursor::done();
            return Some(Err(p));
        }
        let (start, parsed) = match self.cursor.next_in(&self.text)? {
            ArrayItem::Broken { at, message } => {
                let (line, column) = self.locate(at);
                return Some(Err(Problem::new(
                    &self.path,
                    line,
                    "json",
                    format!("invalid JSON array: {message} (column {column})"),
                )));
            }
            ArrayItem::Element { start, text } => (start, json::parse(text)),
        };
        let (line, column) = self.locate(start);
        Some(match parsed {
            Ok(v) => Ok((line, v)),
            Err(e) => {
                // serde_json's position is relative to the element.
                let (err_line, err_column) = if e.line() <= 1 {
                    (line, column + e.column().saturating_sub(1))
                } else {
                    (line + e.line() - 1, e.column())
                };
                Err(Problem::new(
                    &self.path,
                    err_line,
                    "json",
                    format!(
                        "invalid JSON: {} (column {err_column})",
                        json_error_text(&e)
                    ),
                ))
            }
        })
    }
}
