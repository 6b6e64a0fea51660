//! The model worker: one thread owns the model and runs the queued requests. Each round it takes
//! up to `max_batch` waiting requests; option scoring runs as one forward pass, generation as one
//! left-padded batch with each row's own sampling settings, stop strings, token limit and
//! deadline. A row stops as soon as its client goes away (its event receiver is dropped), so a
//! disconnected client frees its share of the batch.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use medtune_eval::scoring::{LetterScores, score_letters};
use medtune_model::generate::{GenerateConfig, Sampler, SamplingConfig, generate_with_samplers};
use medtune_model::qwen3::LoadedModel;
use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, McqPrompt};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::Limits;
use crate::error::ApiError;
use crate::text::StopMatcher;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    Stop,
    Length,
}

/// What a generation request hears from the worker, in order: `Started`, any number of `Text`,
/// then `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    /// The worker picked the request from the queue.
    Started,
    Text(String),
    Done {
        finish: FinishReason,
        completion_tokens: usize,
    },
    Failed(ApiError),
}

#[derive(Debug)]
pub struct GenJob {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingConfig,
    pub stop: Vec<String>,
    /// Keep going past end-of-sequence tokens (benchmarks and tests need fixed lengths).
    pub ignore_eos: bool,
    pub deadline: Instant,
    pub timeout_secs: u64,
    pub events: mpsc::UnboundedSender<Event>,
}

#[derive(Debug)]
pub struct ScoreJob {
    pub prompt: McqPrompt,
    pub deadline: Instant,
    pub timeout_secs: u64,
    pub reply: oneshot::Sender<Result<LetterScores, ApiError>>,
}

#[derive(Debug)]
pub enum Job {
    Generate(GenJob),
    Score(ScoreJob),
}

impl Job {
    /// Nobody waits for the answer any more.
    fn abandoned(&self) -> bool {
        match self {
            Job::Generate(g) => g.events.is_closed(),
            Job::Score(s) => s.reply.is_closed(),
        }
    }
}

/// What the handlers need to know about the model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub max_positions: usize,
}

/// Counters for `/health` (and the tests that check batching and cancellation).
#[derive(Debug, Default)]
pub struct Stats {
    /// Generation rows in the running batch that have not ended yet.
    pub running: AtomicUsize,
    /// Rows stopped because their client went away.
    pub cancelled: AtomicUsize,
    /// Largest generation batch so far.
    pub largest_batch: AtomicUsize,
}

/// The handle to the worker thread.
pub struct Engine {
    pub stats: Arc<Stats>,
    tx: mpsc::Sender<Job>,
    /// Set on a forced shutdown: running rows end with an error.
    abort: Arc<AtomicBool>,
    pub info: ModelInfo,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the worker; `load` runs on the worker thread (the model never crosses threads).
    pub fn start(
        load: impl FnOnce() -> anyhow::Result<LoadedModel> + Send + 'static,
        tokenizer: Arc<Tokenizer>,
        limits: &Limits,
        on_idle: Option<fn()>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(limits.queue_capacity.max(1));
        let abort = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Stats::default());
        let worker = Worker {
            stats: stats.clone(),
            tokenizer,
            max_batch: limits.max_batch.max(1),
            abort: abort.clone(),
            on_idle,
        };
        let handle = std::thread::Builder::new()
            .name("medtune-model".into())
            .spawn(move || {
                let model = match load() {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(ModelInfo {
                    max_positions: model.config.max_position_embeddings,
                }));
                worker.run(&model, rx);
            })?;
        let info = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the model worker stopped while loading"))??;
        Ok(Self {
            stats,
            tx,
            abort,
            info,
            worker: std::sync::Mutex::new(Some(handle)),
        })
    }

    /// Queues a job, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(ApiError::shutting_down());
        }
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::queue_full(1),
            mpsc::error::TrySendError::Closed(_) => ApiError::shutting_down(),
        })
    }

    /// Requests waiting for the worker now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Ends running and queued work with a "shutting down" error.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Waits for the worker thread, which ends once every handle to the queue is gone.
    pub fn take_worker(&self) -> Option<JoinHandle<()>> {
        self.worker.lock().ok()?.take()
    }
}

struct Worker {
    stats: Arc<Stats>,
    tokenizer: Arc<Tokenizer>,
    max_batch: usize,
    abort: Arc<AtomicBool>,
    on_idle: Option<fn()>,
}

impl Worker {
    fn run(&self, model: &LoadedModel, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let mut gens = Vec::new();
            let mut scores = Vec::new();
            for job in jobs {
                if job.abandoned() {
                    continue;
                }
                match job {
                    Job::Generate(g) => gens.push(g),
                    Job::Score(s) => scores.push(s),
                }
            }
            // A panic in the model must not take the server down: the batch's senders are
            // dropped, so its requests end with an error, and the worker goes on.
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.score(model, scores);
                self.generate(model, gens);
            }));
            if result.is_err() {
                tracing::error!("the model worker panicked on a batch; its requests failed");
            }
            if let Some(on_idle) = self.on_idle.filter(|_| rx.is_empty()) {
                on_idle();
            }
        }
    }

    fn refusal(&self, deadline: Instant, timeout_secs: u64) -> Option<ApiError> {
        if self.abort.load(Ordering::Relaxed) {
            Some(ApiError::shutting_down())
        } else if Instant::now() >= deadline {
            Some(ApiError::timeout(timeout_secs))
        } else {
            None
        }
    }

    fn score(&self, model: &LoadedModel, jobs: Vec<ScoreJob>) {
        let mut live = Vec::new();
        for job in jobs {
            match self.refusal(job.deadline, job.timeout_secs) {
                Some(e) => drop(job.reply.send(Err(e))),
                None => live.push(job),
            }
        }
        if live.is_empty() {
            return;
        }
        // Probabilities are those of the immediate answer (`Answer: X` without thinking).
        let chat = McqChatOptions::default();
        let prompts: Vec<McqPrompt> = live.iter().map(|j| j.prompt.clone()).collect();
        match score_letters(model, &self.tokenizer, &prompts, &chat, prompts.len()) {
            Ok(all) => {
                for (job, scores) in live.into_iter().zip(all) {
                    let _ = job.reply.send(Ok(scores));
                }
            }
            Err(e) => {
                for job in live {
                    let _ = job
                        .reply
                        .send(Err(ApiError::internal(format!("scoring failed: {e:#}"))));
                }
            }
        }
    }

    fn generate(&self, model: &LoadedModel, jobs: Vec<GenJob>) {
        let mut rows: Vec<Row> = Vec::new();
        for job in jobs {
            if let Some(e) = self.refusal(job.deadline, job.timeout_secs) {
                let _ = job.events.send(Event::Failed(e));
            } else if job.events.send(Event::Started).is_ok() {
                rows.push(Row {
                    decoder: self.tokenizer.stream_decoder(true),
                    stop: StopMatcher::new(job.stop.clone()),
                    count: 0,
                    stopped: false,
                    closed: false,
                    end: None,
                    job,
                });
            }
        }
        if rows.is_empty() {
            return;
        }
        let prompts: Vec<Vec<u32>> = rows.iter().map(|r| r.job.prompt.clone()).collect();
        let samplers = rows
            .iter()
            .map(|r| Sampler::new(r.job.sampling.clone()))
            .collect();
        let config = GenerateConfig {
            max_new_tokens: rows.iter().map(|r| r.job.max_tokens).max().unwrap_or(0),
            // End-of-sequence is decided per row (`ignore_eos`).
            stop_ids: Vec::new(),
            sampling: SamplingConfig::greedy(),
            pad_id: self.tokenizer.pad_token_id().unwrap_or(0),
        };
        let stats = &self.stats;
        stats.running.store(rows.len(), Ordering::Relaxed);
        stats.largest_batch.fetch_max(rows.len(), Ordering::Relaxed);
        generate_with_samplers(model, &prompts, samplers, &config, |i, id| {
            let refusal = self.refusal(rows[i].job.deadline, rows[i].job.timeout_secs);
            let go_on = rows[i].on_token(id, &self.tokenizer, refusal);
            if !go_on {
                stats.running.fetch_sub(1, Ordering::Relaxed);
                if matches!(rows[i].end, Some(End::Cancelled)) {
                    stats.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                // Answer now: a short request must not wait for the batch's longest row.
                rows[i].finish();
            }
            go_on
        });
        stats.running.store(0, Ordering::Relaxed);
        for row in &mut rows {
            row.finish();
        }
    }
}

enum End {
    Finished(FinishReason),
    Failed,
    Cancelled,
}

struct Row<'t> {
    job: GenJob,
    decoder: medtune_text::tokenizer::StreamDecoder<'t>,
    stop: StopMatcher,
    count: usize,
    /// Ended on a stop string.
    stopped: bool,
    /// The final event was sent.
    closed: bool,
    end: Option<End>,
}

impl Row<'_> {
    /// Handles one new token; false stops the row.
    fn on_token(&mut self, id: u32, tokenizer: &Tokenizer, refusal: Option<ApiError>) -> bool {
        if self.job.events.is_closed() {
            self.end = Some(End::Cancelled);
            return false;
        }
        if let Some(e) = refusal {
            return self.fail(e);
        }
        self.count += 1;
        if !self.job.ignore_eos && tokenizer.is_eos(id) {
            self.end = Some(End::Finished(FinishReason::Stop));
            return false;
        }
        match self.decoder.step(id) {
            Ok(Some(text)) => {
                let (text, hit) = self.stop.push(&text);
                self.emit(text);
                if hit {
                    self.stopped = true;
                    self.end = Some(End::Finished(FinishReason::Stop));
                    return false;
                }
            }
            Ok(None) => {}
            Err(e) => return self.fail(ApiError::internal(format!("decoding failed: {e}"))),
        }
        if self.count >= self.job.max_tokens {
            self.end = Some(End::Finished(FinishReason::Length));
            return false;
        }
        true
    }

    fn emit(&self, text: String) {
        if !text.is_empty() {
            let _ = self.job.events.send(Event::Text(text));
        }
    }

    fn fail(&mut self, e: ApiError) -> bool {
        let _ = self.job.events.send(Event::Failed(e));
        self.end = Some(End::Failed);
        false
    }

    /// Sends what is held back and the final event (once).
    fn finish(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let finish = match self.end.take() {
            Some(End::Failed | End::Cancelled) => return,
            Some(End::Finished(f)) => f,
            None => FinishReason::Length,
        };
        // After a stop string nothing more is sent: the rest came after it.
        if !self.stopped {
            if let Ok(Some(rest)) = self.decoder.flush() {
                let (text, hit) = self.stop.push(&rest);
                self.emit(text);
                if hit {
                    return self.done(FinishReason::Stop);
                }
            }
            let rest = self.stop.finish();
            self.emit(rest);
        }
        self.done(finish);
    }

    fn done(&self, finish: FinishReason) {
        let _ = self.job.events.send(Event::Done {
            finish,
            completion_tokens: self.count,
        });
    }
}
