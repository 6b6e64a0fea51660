//! `POST /v1/chat/completions`, streamed as server-sent events or whole.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use medtune_model::generate::SamplingConfig;
use medtune_text::{ChatMessage, RenderOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiJson};
use crate::openai::{ChatRequest, CompletionMeta, Usage};
use crate::state::{AppState, GenParams, Pending, Step};
use crate::text::ReasoningSplitter;

/// The most stop strings a request may give (OpenAI's limit).
const MAX_STOPS: usize = 4;

/// Qwen3's recommended non-thinking settings, used where the request says nothing.
fn default_sampling() -> SamplingConfig {
    SamplingConfig::default()
}

struct Prepared {
    params: GenParams,
    in_reasoning: bool,
    stream: bool,
    include_usage: bool,
}

fn prepare(app: &AppState, req: ChatRequest) -> Result<Prepared, ApiError> {
    if let Some(model) = &req.model
        && model != &app.config.model_id
    {
        return Err(ApiError::not_found(format!(
            "model `{model}` is not served here; this server serves `{}`",
            app.config.model_id
        ))
        .with_param("model")
        .with_code("model_not_found"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported").with_param("n"));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").with_param("messages"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant"
        ) {
            return Err(ApiError::bad_request(format!(
                "message role `{}` is not supported (system, user, assistant)",
                m.role
            ))
            .with_param("messages"));
        }
        let role = if m.role == "developer" {
            "system"
        } else {
            &m.role
        };
        let content = match &m.content {
            None => String::new(),
            Some(c) => c.text().map_err(|kind| {
                ApiError::bad_request(format!("content parts of type `{kind}` are not supported"))
                    .with_param("messages")
            })?,
        };
        let mut msg = ChatMessage::new(role, content);
        msg.reasoning_content = m.reasoning_content.clone();
        messages.push(msg);
    }
    let stop = req.stop.map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOPS {
        return Err(
            ApiError::bad_request(format!("at most {MAX_STOPS} stop strings")).with_param("stop"),
        );
    }
    let max_tokens = app.max_tokens(req.max_completion_tokens.or(req.max_tokens))?;
    let sampling = crate::state::sampling(
        req.temperature,
        req.top_p,
        req.top_k,
        req.seed,
        default_sampling(),
    )?;
    let thinking = req.chat_template_kwargs.and_then(|k| k.enable_thinking);
    let text = app
        .tokenizer
        .apply_chat_template(&messages, &RenderOptions::generation(thinking))
        .map_err(|e| ApiError::bad_request(format!("rendering the chat template: {e}")))?;
    let prompt = app.encode(&text)?;
    app.check_prompt(prompt.len(), max_tokens)?;
    Ok(Prepared {
        params: GenParams {
            prompt,
            max_tokens,
            sampling,
            stop,
            ignore_eos: req.ignore_eos,
        },
        in_reasoning: ReasoningSplitter::prompt_opens_reasoning(&text),
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
    })
}

pub async fn completions(
    State(app): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let deadline = app.deadline();
    let prepared = prepare(&app, req)?;
    let prompt_tokens = prepared.params.prompt.len();
    let meta = CompletionMeta::new(&app.config.model_id);
    let mut pending = app.submit(prepared.params, deadline)?;
    let mut splitter = ReasoningSplitter::new(prepared.in_reasoning);
    if !prepared.stream {
        let (text, finished) = pending.collect().await?;
        let mut split = splitter.push(&text);
        let rest = splitter.finish();
        split.reasoning.push_str(&rest.reasoning);
        split.content.push_str(&rest.content);
        let usage = Usage::new(prompt_tokens, finished.completion_tokens);
        let body = meta.completion(
            &split.content,
            &split.reasoning,
            finish_name(finished.finish),
            usage,
        );
        return Ok(axum::Json(body).into_response());
    }
    pending.started().await?;
    let stream = StreamState {
        pending,
        splitter,
        meta,
        prompt_tokens,
        include_usage: prepared.include_usage,
    };
    Ok(sse_response(forward(stream)))
}

fn finish_name(f: crate::engine::FinishReason) -> &'static str {
    match f {
        crate::engine::FinishReason::Stop => "stop",
        crate::engine::FinishReason::Length => "length",
    }
}

struct StreamState {
    pending: Pending,
    splitter: ReasoningSplitter,
    meta: CompletionMeta,
    prompt_tokens: usize,
    include_usage: bool,
}

/// Runs the stream in its own task, so a client that goes away (the response body is dropped)
/// makes the next send fail, which drops the worker's receiver and stops that row.
fn forward(mut s: StreamState) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let first = s
            .meta
            .chunk(json!({"role": "assistant", "content": ""}), None);
        if tx.send(first.to_string()).await.is_err() {
            return;
        }
        loop {
            let step = tokio::select! {
                _ = tx.closed() => return,
                step = s.pending.next() => step,
            };
            let chunks: Vec<Value> = match step {
                Ok(Step::Text(t)) => delta_chunks(&s.meta, s.splitter.push(&t)),
                Ok(Step::Done(f)) => {
                    let mut chunks = delta_chunks(&s.meta, s.splitter.finish());
                    chunks.push(s.meta.chunk(json!({}), Some(finish_name(f.finish))));
                    if s.include_usage {
                        let usage = Usage::new(s.prompt_tokens, f.completion_tokens);
                        chunks.push(s.meta.usage_chunk(usage));
                    }
                    for c in chunks {
                        if tx.send(c.to_string()).await.is_err() {
                            return;
                        }
                    }
                    break;
                }
                Err(e) => {
                    let _ = tx.send(e.body().to_string()).await;
                    break;
                }
            };
            for c in chunks {
                if tx.send(c.to_string()).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send("[DONE]".to_owned()).await;
    });
    rx
}

fn delta_chunks(meta: &CompletionMeta, split: crate::text::Split) -> Vec<Value> {
    let mut out = Vec::new();
    if !split.reasoning.is_empty() {
        out.push(meta.chunk(json!({"reasoning_content": split.reasoning}), None));
    }
    if !split.content.is_empty() {
        out.push(meta.chunk(json!({"content": split.content}), None));
    }
    out
}

/// Each string becomes one `data: ...` event.
pub fn sse_response(rx: mpsc::Receiver<String>) -> Response {
    Sse::new(data_stream(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn data_stream(rx: mpsc::Receiver<String>) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok(SseEvent::default().data(data)), rx))
    })
}
