//! A tiny random Qwen3 with medtune's built-in tokenizer, served in-process on an ephemeral
//! loopback port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, Preset};
use medtune_serve::{AppState, Limits, ServeConfig};
use medtune_text::Tokenizer;
use serde_json::Value;
use tokio::sync::oneshot;

pub const MODEL_ID: &str = "tiny-test";

/// Writes the tiny model to `dir`.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let vocab = medtune_text::builtin_tokenizer::write_builtin_tokenizer(dir).unwrap();
    let mut cfg = Preset::Tiny.config();
    cfg.vocab_size = vocab.div_ceil(64) * 64;
    write_checkpoint(
        dir,
        &cfg,
        &random_weights(&cfg, ComputeDType::F32, 3),
        ComputeDType::F32,
    )
    .unwrap();
    dir.to_path_buf()
}

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub fn limits() -> Limits {
    Limits {
        queue_capacity: 16,
        max_batch: 4,
        max_tokens_cap: 4096,
        max_prompt_tokens: 512,
        max_body_bytes: 64 * 1024,
        timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(30),
    }
}

pub async fn start(limits: Limits, api_key: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = tiny_model(dir.path());
    let tokenizer = Tokenizer::from_dir(&model_dir).unwrap();
    let config = ServeConfig {
        model_id: MODEL_ID.into(),
        api_key: api_key.map(str::to_owned),
        limits,
        on_idle: Some(note_idle),
    };
    let load_dir = model_dir.clone();
    let state = AppState::start(config, tokenizer, move || {
        let device = medtune_model::DeviceSpec::Cpu.device()?;
        Ok(LoadedModel::from_dir(
            &load_dir,
            ComputeDType::F32,
            &device,
        )?)
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(medtune_serve::serve(
        listener,
        Arc::new(state),
        async move {
            let _ = rx.await;
        },
    ));
    Server {
        base,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Begins a graceful shutdown; `finish` waits for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn finish(&mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.task.take().unwrap().await.unwrap()
    }

    /// Polls `/health` until `pred` holds (or panics after `secs`).
    pub async fn wait_health(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.get_json("/health").await;
            if pred(&h) {
                return h;
            }
            assert!(
                std::time::Instant::now() < end,
                "timed out waiting for {what}: {h}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `data:` payloads of a server-sent event body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let data: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        // Keep-alive comments (": ...") carry no data.
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

/// Asserts the OpenAI error shape and returns the error object.
pub async fn error_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let v: Value = resp.json().await.unwrap();
    let e = v["error"].clone();
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e
}

pub fn chat(content: &str, extra: Value) -> Value {
    let mut body = serde_json::json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": content}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// How often a test server's worker reported itself idle (all servers of a test binary).
pub static IDLE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn note_idle() {
    IDLE_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}
