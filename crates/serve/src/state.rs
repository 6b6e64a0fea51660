//! Shared server state and the request side of the worker queue: checking a prompt against the
//! limits, queueing work and waiting for its events within the request's deadline.

use std::sync::Arc;
use std::time::Instant;

use medtune_eval::scoring::LetterScores;
use medtune_model::generate::SamplingConfig;
use medtune_model::qwen3::LoadedModel;
use medtune_text::Tokenizer;
use medtune_text::mcq::McqPrompt;
use tokio::sync::{mpsc, oneshot};

use crate::config::ServeConfig;
use crate::engine::{Engine, Event, FinishReason, GenJob, Job, ScoreJob};
use crate::error::ApiError;

pub struct AppState {
    pub config: ServeConfig,
    pub engine: Engine,
    pub tokenizer: Arc<Tokenizer>,
    pub created: u64,
}

/// A generation request before it is queued.
#[derive(Debug)]
pub struct GenParams {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingConfig,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
}

/// A queued generation: its events, and the deadline of its request.
pub struct Pending {
    rx: mpsc::UnboundedReceiver<Event>,
    deadline: Instant,
    timeout_secs: u64,
}

/// A generation's outcome after its last event.
#[derive(Debug)]
pub struct Finished {
    pub finish: FinishReason,
    pub completion_tokens: usize,
}

pub enum Step {
    Text(String),
    Done(Finished),
}

impl AppState {
    /// Starts the model worker; `load` runs on the worker thread.
    pub fn start(
        config: ServeConfig,
        tokenizer: Tokenizer,
        load: impl FnOnce() -> anyhow::Result<LoadedModel> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let tokenizer = Arc::new(tokenizer);
        let engine = Engine::start(load, tokenizer.clone(), &config.limits, config.on_idle)?;
        Ok(Self {
            config,
            engine,
            tokenizer,
            created: crate::openai::unix_now(),
        })
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + self.config.limits.timeout
    }

    fn timeout_secs(&self) -> u64 {
        self.config.limits.timeout.as_secs()
    }

    /// The `max_tokens` to use: the request's, within the cap (400 beyond it).
    pub fn max_tokens(&self, asked: Option<usize>) -> Result<usize, ApiError> {
        let cap = self.config.limits.max_tokens_cap;
        match asked {
            None => Ok(cap),
            Some(0) => {
                Err(ApiError::bad_request("max_tokens must be at least 1").with_param("max_tokens"))
            }
            Some(n) if n > cap => Err(ApiError::bad_request(format!(
                "max_tokens is {n}; this server allows at most {cap}"
            ))
            .with_param("max_tokens")
            .with_code("max_tokens_too_large")),
            Some(n) => Ok(n),
        }
    }

    /// Refuses prompts over the limit, or that leave no room for `max_tokens` in the model's
    /// context.
    pub fn check_prompt(&self, prompt_tokens: usize, max_tokens: usize) -> Result<(), ApiError> {
        let limit = self.config.limits.max_prompt_tokens;
        if prompt_tokens > limit {
            return Err(ApiError::bad_request(format!(
                "the prompt has {prompt_tokens} tokens; this server allows at most {limit}"
            ))
            .with_param("messages")
            .with_code("context_length_exceeded"));
        }
        let context = self.engine.info.max_positions;
        if prompt_tokens + max_tokens > context {
            return Err(ApiError::bad_request(format!(
                "the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the \
                 model's context of {context} tokens"
            ))
            .with_param("max_tokens")
            .with_code("context_length_exceeded"));
        }
        Ok(())
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text)
            .map_err(|e| ApiError::bad_request(format!("tokenizing the prompt: {e}")))
    }

    /// Queues a generation (429 when the queue is full).
    pub fn submit(&self, params: GenParams, deadline: Instant) -> Result<Pending, ApiError> {
        let (events, rx) = mpsc::unbounded_channel();
        self.engine.submit(Job::Generate(GenJob {
            prompt: params.prompt,
            max_tokens: params.max_tokens,
            sampling: params.sampling,
            stop: params.stop,
            ignore_eos: params.ignore_eos,
            deadline,
            timeout_secs: self.timeout_secs(),
            events,
        }))?;
        Ok(Pending {
            rx,
            deadline,
            timeout_secs: self.timeout_secs(),
        })
    }

    /// The option-letter probabilities of a question, through the queue.
    pub async fn score(
        &self,
        prompt: McqPrompt,
        deadline: Instant,
    ) -> Result<LetterScores, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.engine.submit(Job::Score(ScoreJob {
            prompt,
            deadline,
            timeout_secs: self.timeout_secs(),
            reply,
        }))?;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Err(_) => Err(ApiError::timeout(self.timeout_secs())),
            Ok(Err(_)) => Err(ApiError::internal("the model worker dropped the request")),
            Ok(Ok(result)) => result,
        }
    }
}

impl Pending {
    async fn recv(&mut self) -> Result<Event, ApiError> {
        match tokio::time::timeout_at(self.deadline.into(), self.rx.recv()).await {
            Err(_) => Err(ApiError::timeout(self.timeout_secs)),
            Ok(None) => Err(ApiError::internal("the model worker dropped the request")),
            Ok(Some(event)) => Ok(event),
        }
    }

    /// Waits until the worker takes the request from the queue, so that errors before that
    /// (timeout in the queue, shutdown) still get a proper HTTP status.
    pub async fn started(&mut self) -> Result<(), ApiError> {
        match self.recv().await? {
            Event::Started => Ok(()),
            Event::Failed(e) => Err(e),
            // Text or Done cannot come first.
            _ => Err(ApiError::internal(
                "the model worker sent events out of order",
            )),
        }
    }

    /// The next piece of text, or the end.
    pub async fn next(&mut self) -> Result<Step, ApiError> {
        loop {
            match self.recv().await? {
                Event::Started => continue,
                Event::Text(t) => return Ok(Step::Text(t)),
                Event::Done {
                    finish,
                    completion_tokens,
                } => {
                    return Ok(Step::Done(Finished {
                        finish,
                        completion_tokens,
                    }));
                }
                Event::Failed(e) => return Err(e),
            }
        }
    }

    /// All the text and the outcome.
    pub async fn collect(mut self) -> Result<(String, Finished), ApiError> {
        let mut text = String::new();
        loop {
            match self.next().await? {
                Step::Text(t) => text.push_str(&t),
                Step::Done(f) => return Ok((text, f)),
            }
        }
    }
}

/// The sampling settings for a request: temperature 0 is greedy; no seed draws one.
pub fn sampling(
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    seed: Option<i64>,
    defaults: SamplingConfig,
) -> Result<SamplingConfig, ApiError> {
    let mut s = defaults;
    if let Some(t) = temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad_request("temperature must be between 0 and 2")
                .with_param("temperature"));
        }
        s.temperature = t;
        s.greedy = t == 0.0;
    }
    if let Some(p) = top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad_request("top_p must be in (0, 1]").with_param("top_p"));
        }
        s.top_p = p;
    }
    if let Some(k) = top_k {
        // -1 and 0 both mean "no top-k" (vLLM uses -1).
        s.top_k = usize::try_from(k).unwrap_or(0);
    }
    s.seed = seed.map_or_else(rand::random, |v| v as u64);
    Ok(s)
}
