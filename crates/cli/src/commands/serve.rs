//! `medtune serve`: the OpenAI-compatible API, `/v1/mcq` and the web page (see medtune-serve).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use medtune_serve::{AppState, Limits, ServeConfig};
use medtune_text::Tokenizer;

use crate::common::{ModelArgs, PackingArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub packing: PackingArgs,
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Require `Authorization: Bearer KEY` on the /v1 routes (default: the MEDTUNE_API_KEY
    /// environment variable, if set).
    #[arg(long)]
    pub api_key: Option<String>,
    /// The model's name in /v1/models and requests (default: the --model argument's last part).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Requests that may wait for the model; more are refused with 429.
    #[arg(long, default_value_t = 64)]
    pub queue_capacity: usize,
    /// Most requests run together as one batch.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Largest max_tokens a request may ask for (and the default).
    #[arg(long, default_value_t = 1024)]
    pub max_tokens_cap: usize,
    /// Longest prompt in tokens.
    #[arg(long, default_value_t = 4096)]
    pub max_prompt_tokens: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Per-request time limit, queueing included.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// After SIGTERM/Ctrl-C, how long in-flight requests may still run.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

fn model_name(model: &str) -> String {
    let trimmed = model.trim_end_matches('/');
    if std::path::Path::new(trimmed).exists() {
        trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
    } else {
        trimmed.to_owned() // a hub id such as Qwen/Qwen3-1.7B
    }
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.model.model_dir()?;
    let tokenizer =
        Tokenizer::from_dir(&dir).with_context(|| format!("tokenizer of {}", dir.display()))?;
    let config = ServeConfig {
        model_id: args
            .served_model_name
            .clone()
            .unwrap_or_else(|| model_name(&args.model.model)),
        // The environment keeps the key out of `ps`.
        api_key: args
            .api_key
            .clone()
            .or_else(|| std::env::var("MEDTUNE_API_KEY").ok())
            .filter(|k| !k.is_empty()),
        limits: Limits {
            queue_capacity: args.queue_capacity,
            max_batch: args.max_batch,
            max_tokens_cap: args.max_tokens_cap,
            max_prompt_tokens: args.max_prompt_tokens,
            max_body_bytes: args.max_body_bytes,
            timeout: Duration::from_secs(args.timeout_secs),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        },
        on_idle: Some(crate::allocator::release_free_memory),
    };
    let (model_args, packing) = (args.model.clone(), args.packing.clone());
    let state = AppState::start(config, tokenizer, move || {
        model_args
            .load_for_generation(&packing)
            .map(|(model, _)| model)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let addr = listener.local_addr()?;
        let auth = if state.config.api_key.is_some() {
            "API key required"
        } else {
            "no API key"
        };
        // Scripts and tests read this line to find the port (with --bind 127.0.0.1:0).
        say(&format!(
            "medtune serve: listening on http://{addr} ({auth})"
        ));
        if !addr.ip().is_loopback() {
            tracing::warn!("{addr} is reachable from other machines");
        }
        medtune_serve::serve(listener, Arc::new(state), medtune_serve::shutdown_signal()).await
    })?;
    say("medtune serve: stopped");
    Ok(())
}

/// A line on stdout; a closed stdout (the launching script stopped reading) must not turn a
/// clean shutdown into a panic.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
