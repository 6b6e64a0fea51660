//! `POST /v1/mcq`: a multiple-choice question in, the model's answer out, with the probability of
//! each option letter (scored as the token after `Answer:`, without thinking) and the reasoning.
//! `"stream": true` sends server-sent events: `probabilities`, then `delta`s, then `result`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use medtune_eval::extract_answer;
use medtune_eval::scoring::LetterScores;
use medtune_model::generate::SamplingConfig;
use medtune_text::mcq::{McqChatOptions, McqPrompt, render_mcq_prompt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::chat::sse_response;
use crate::error::{ApiError, ApiJson};
use crate::openai::Usage;
use crate::state::{AppState, Finished, GenParams, Pending, Step};
use crate::text::{ReasoningSplitter, Split};

/// Default answer length when the request does not say (within the server's cap).
const DEFAULT_MAX_TOKENS: usize = 512;

#[derive(Debug, Deserialize)]
pub struct McqRequest {
    pub question: String,
    pub options: Options,
    #[serde(default)]
    pub thinking: bool,
    #[serde(default)]
    pub stream: bool,
    pub max_tokens: Option<usize>,
    /// Default 0: the most likely answer.
    pub temperature: Option<f32>,
    pub seed: Option<i64>,
}

/// `{"A": "text", ...}` or `["text", ...]` (lettered A, B, ...).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Options {
    Lettered(BTreeMap<String, String>),
    List(Vec<String>),
}

impl Options {
    fn into_pairs(self) -> Result<Vec<(char, String)>, ApiError> {
        match self {
            Options::List(list) => {
                if list.len() > 26 {
                    return Err(ApiError::bad_request("at most 26 options").with_param("options"));
                }
                Ok(('A'..='Z').zip(list).collect())
            }
            Options::Lettered(map) => map
                .into_iter()
                .map(|(k, v)| {
                    let mut chars = k.trim().chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c.is_ascii_alphabetic() => {
                            Ok((c.to_ascii_uppercase(), v))
                        }
                        _ => Err(ApiError::bad_request(format!(
                            "option key `{k}` is not a single letter"
                        ))
                        .with_param("options")),
                    }
                })
                .collect(),
        }
    }
}

pub async fn answer(
    State(app): State<Arc<AppState>>,
    ApiJson(req): ApiJson<McqRequest>,
) -> Result<Response, ApiError> {
    let deadline = app.deadline();
    let prompt = McqPrompt::new(req.question, req.options.into_pairs()?);
    if prompt.options.len() < 2 {
        return Err(
            ApiError::bad_request("a question needs at least two options").with_param("options"),
        );
    }
    prompt
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()).with_param("options"))?;
    let chat = McqChatOptions {
        thinking: req.thinking,
        ..McqChatOptions::default()
    };
    let template = app
        .tokenizer
        .chat_template()
        .ok_or_else(|| ApiError::internal("the model's tokenizer has no chat template"))?;
    let text = render_mcq_prompt(template, &prompt, &chat)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ids = app.encode(&text)?;
    let cap = app.config.limits.max_tokens_cap;
    let max_tokens = app.max_tokens(Some(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS.min(cap))))?;
    app.check_prompt(ids.len(), max_tokens)?;
    let sampling = crate::state::sampling(
        Some(req.temperature.unwrap_or(0.0)),
        None,
        None,
        req.seed,
        SamplingConfig::default(),
    )?;
    let prompt_tokens = ids.len();
    let scores = app.score(prompt.clone(), deadline).await?;
    let params = GenParams {
        prompt: ids,
        max_tokens,
        sampling,
        stop: Vec::new(),
        ignore_eos: false,
    };
    let mut pending = app.submit(params, deadline)?;
    let answer = Answer {
        options: prompt.options.clone(),
        scores,
        thinking: req.thinking,
        prompt_tokens,
        splitter: ReasoningSplitter::new(ReasoningSplitter::prompt_opens_reasoning(&text)),
        split: Split::default(),
    };
    if !req.stream {
        let (text, finished) = pending.collect().await?;
        let mut answer = answer;
        answer.push(&text);
        answer.finish();
        return Ok(axum::Json(answer.result(&finished)).into_response());
    }
    pending.started().await?;
    Ok(sse_response(forward(pending, answer)))
}

/// The answer as it builds up.
struct Answer {
    options: Vec<(char, String)>,
    scores: LetterScores,
    thinking: bool,
    prompt_tokens: usize,
    splitter: ReasoningSplitter,
    split: Split,
}

impl Answer {
    fn push(&mut self, text: &str) -> Split {
        let part = self.splitter.push(text);
        self.add(&part);
        part
    }

    fn finish(&mut self) -> Split {
        let part = self.splitter.finish();
        self.add(&part);
        part
    }

    fn add(&mut self, part: &Split) {
        self.split.reasoning.push_str(&part.reasoning);
        self.split.content.push_str(&part.content);
    }

    fn probabilities(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .scores
            .letters
            .iter()
            .zip(&self.scores.probs)
            .map(|(l, p)| (l.to_string(), json!(p)))
            .collect();
        Value::Object(map)
    }

    fn result(&self, finished: &Finished) -> Value {
        let content = self.split.content.trim();
        let (answer, source) = match extract_answer(content, &self.options) {
            Some(found) => (found.letter, "reply"),
            None => (self.scores.best().0, "probabilities"),
        };
        // Without thinking, the reasoning is the explanation after the answer line.
        let reasoning = if self.thinking {
            self.split.reasoning.trim().to_owned()
        } else {
            content
                .split_once('\n')
                .map_or("", |(_, rest)| rest)
                .trim()
                .to_owned()
        };
        json!({
            "answer": answer.to_string(),
            "answer_source": source,
            "probabilities": self.probabilities(),
            "letter_mass": self.scores.letter_mass,
            "reasoning": reasoning,
            "content": content,
            "finish_reason": match finished.finish {
                crate::engine::FinishReason::Stop => "stop",
                crate::engine::FinishReason::Length => "length",
            },
            "usage": Usage::new(self.prompt_tokens, finished.completion_tokens),
        })
    }
}

fn delta(part: &Split) -> Option<String> {
    (!part.is_empty()).then(|| {
        json!({"type": "delta", "reasoning": part.reasoning, "content": part.content}).to_string()
    })
}

fn forward(mut pending: Pending, mut answer: Answer) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let first = json!({
            "type": "probabilities",
            "probabilities": answer.probabilities(),
            "letter_mass": answer.scores.letter_mass,
        });
        if tx.send(first.to_string()).await.is_err() {
            return;
        }
        loop {
            let step = tokio::select! {
                _ = tx.closed() => return,
                step = pending.next() => step,
            };
            let mut events = Vec::new();
            match step {
                Ok(Step::Text(t)) => events.extend(delta(&answer.push(&t))),
                Ok(Step::Done(f)) => {
                    let rest = answer.finish();
                    events.extend(delta(&rest));
                    let mut result = answer.result(&f);
                    result["type"] = json!("result");
                    events.push(result.to_string());
                    events.push("[DONE]".to_owned());
                }
                Err(e) => {
                    let mut body = e.body();
                    body["type"] = json!("error");
                    events.push(body.to_string());
                    events.push("[DONE]".to_owned());
                }
            }
            let last = events.last().is_some_and(|e| e == "[DONE]");
            for e in events {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            if last {
                return;
            }
        }
    });
    rx
}
