//! Errors and per-record problems.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong in a data file: `file:line: field: what is wrong`.
///
/// `line` is 1-based: the line of a JSON Lines record, the first line of a CSV record, or the item
/// index of a record inside a JSON object file (PubMedQA; the message then names the item's key).
/// `line == 0` marks a problem of the whole file (empty file, unknown format); it is displayed as
/// `file: field: what is wrong`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    /// The field of the source record (`question`, `options.B`, `cop`, `final_decision`,
    /// `column 6`, ...), or `json`, `text`, `file`, `format` for problems that are not about a
    /// field.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.into(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A problem of the whole file (`line == 0`).
    pub fn file_level(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(file, 0, field, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for Problem {}

/// Everything that can go wrong in `medtune-data`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad record, or a file that holds no records or whose format is unknown. Displayed as the
    /// problem itself (`file:line: field: what is wrong`).
    #[error("{0}")]
    Problem(Problem),
    /// A bad argument (a validation fraction outside `[0, 1]`, an unknown format name, ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The problem, when the error is about the content of a file.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            DataError::Problem(p) => Some(p),
            _ => None,
        }
    }
}

impl From<Problem> for DataError {
    fn from(p: Problem) -> Self {
        DataError::Problem(p)
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
