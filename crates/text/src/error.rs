//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `medtune-text`. File errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file could not be read or written.
    #[error("{path}: {action} failed: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A file was read but its content is not what is needed.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The `tokenizers` library reported an error while loading, encoding, decoding or training.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template failed to compile or render.
    #[error("chat template `{name}`: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    /// A prompt could not be built (bad MCQ, template output that cannot be split, ...).
    #[error("prompt: {0}")]
    Prompt(String),
}

/// `Result` with [`TextError`].
pub type Result<T, E = TextError> = std::result::Result<T, E>;

impl TextError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        TextError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TextError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        TextError::Tokenizer(e.to_string())
    }
}
