//! `medtune serve`: an HTTP server for a Qwen3 model (with an optional LoRA adapter).
//!
//! - `POST /v1/chat/completions`, `GET /v1/models`: OpenAI-compatible (streaming by server-sent
//!   events), so OpenAI clients work unchanged.
//! - `POST /v1/mcq`: a multiple-choice question → answer, option probabilities, reasoning.
//! - `GET /`: a page to ask questions (all assets are inside the binary), `GET /health`.
//!
//! One worker thread owns the model and drains a bounded queue in batches (see [`engine`]);
//! handlers only render prompts, check limits and relay events. This crate knows nothing of
//! training or data sets.

#![forbid(unsafe_code)]

pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
pub mod mcq;
pub mod openai;
pub mod routes;
pub mod state;
pub mod text;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::{Limits, ServeConfig};
pub use error::ApiError;
pub use state::AppState;

/// Serves until `shutdown` resolves, then stops accepting connections and lets in-flight
/// requests finish; those still running after `limits.shutdown_grace` end with a clean
/// "shutting down" error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.limits.shutdown_grace;
    let (began_tx, began_rx) = tokio::sync::oneshot::channel();
    let server =
        axum::serve(listener, routes::router(state.clone())).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = began_tx.send(());
        });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = &mut server => return Ok(result??),
        _ = began_rx => {}
    }
    tracing::info!("shutting down: letting in-flight requests finish");
    if let Ok(result) = tokio::time::timeout(grace, &mut server).await {
        return Ok(result??);
    }
    tracing::warn!("in-flight requests still running after {grace:?}: ending them");
    state.engine.abort();
    match tokio::time::timeout(Duration::from_secs(10), &mut server).await {
        Ok(result) => Ok(result??),
        Err(_) => {
            server.abort();
            anyhow::bail!("connections still open 10 s after the shutdown grace period")
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
