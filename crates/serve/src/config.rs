//! The server's limits and identity.

use std::time::Duration;

/// Everything that bounds the work a server accepts.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Requests waiting for the model worker; one more is refused with 429.
    pub queue_capacity: usize,
    /// Most requests the worker runs together as one batch.
    pub max_batch: usize,
    /// Largest `max_tokens` a request may ask for (also the default).
    pub max_tokens_cap: usize,
    /// Longest prompt, in tokens.
    pub max_prompt_tokens: usize,
    /// Largest request body, in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// Each request, from arrival to its last token.
    pub timeout: Duration,
    /// After SIGTERM or Ctrl-C: how long in-flight requests may run before they are ended with
    /// a "shutting down" error.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            max_batch: 8,
            max_tokens_cap: 1024,
            max_prompt_tokens: 4096,
            max_body_bytes: 256 * 1024,
            timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The model's name in `/v1/models` and in the `model` field of requests.
    pub model_id: String,
    /// When set, `/v1/*` routes need `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    pub limits: Limits,
    /// Called on the model worker's thread each time it finishes a batch and finds no request
    /// waiting: the binary returns freed memory to the system there, so that a burst of
    /// requests does not leave the server at its peak size.
    pub on_idle: Option<fn()>,
}
