//! Every route, every error and the streaming format, against a tiny random model served
//! in-process on a loopback port.

mod common;

use std::time::{Duration, Instant};

use common::{MODEL_ID, chat, error_of, limits, sse_data, start};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_health_and_models() {
    let s = start(limits(), None).await;
    let page = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Research tool, not medical advice"));
    for id in [
        "question", "opt-A", "opt-B", "opt-C", "opt-D", "opt-E", "thinking", "chart",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }
    for (path, kind) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let body = r.text().await.unwrap();
        // Everything is served by the binary: no CDN.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));

    let h = s.get_json("/health").await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["model"], MODEL_ID);
    assert_eq!(h["queue_capacity"], 16);
    let m = s.get_json("/v1/models").await;
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], MODEL_ID);
    assert_eq!(m["data"][0]["object"], "model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_whole_and_streamed_agree() {
    let s = start(limits(), None).await;
    let params = json!({"max_tokens": 12, "temperature": 0.9, "seed": 42, "ignore_eos": true});
    let r = s
        .post(
            "/v1/chat/completions",
            &chat("Name a beta blocker.", params.clone()),
        )
        .await;
    assert_eq!(r.status(), 200);
    let whole: Value = r.json().await.unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], MODEL_ID);
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 12);
    let prompt_tokens = whole["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 5);
    assert_eq!(
        whole["usage"]["total_tokens"].as_u64().unwrap(),
        prompt_tokens + 12
    );
    let content = choice["message"]["content"].as_str().unwrap().to_owned();

    // The same seed gives the same text.
    let again: Value = s
        .post(
            "/v1/chat/completions",
            &chat("Name a beta blocker.", params.clone()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], content.as_str());

    let mut streamed = params.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = s
        .post(
            "/v1/chat/completions",
            &chat("Name a beta blocker.", streamed),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = r.text().await.unwrap();
    for line in body.lines().filter(|l| !l.is_empty()) {
        assert!(line.starts_with("data: "), "not an SSE data line: {line:?}");
    }
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut text = String::new();
    let mut finish = None;
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        if let Some(choice) = c["choices"].get(0) {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if !choice["finish_reason"].is_null() {
                finish = Some(choice["finish_reason"].clone());
            }
        }
    }
    assert_eq!(
        text, content,
        "streamed text differs from the whole completion"
    );
    assert_eq!(finish, Some(json!("length")));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 12);
    assert!(chunks.len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_end_the_text_before_them() {
    let s = start(limits(), None).await;
    let params = json!({"max_tokens": 40, "temperature": 0, "ignore_eos": true});
    let full: Value = s
        .post(
            "/v1/chat/completions",
            &chat("Describe anaemia.", params.clone()),
        )
        .await
        .json()
        .await
        .unwrap();
    let full = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 12, "{full:?}");
    let stop: String = chars[8..11].iter().collect();
    let before = &full[..full.find(&stop).unwrap()];
    let mut with_stop = params.clone();
    with_stop["stop"] = json!([stop, "never-appears"]);
    let v: Value = s
        .post(
            "/v1/chat/completions",
            &chat("Describe anaemia.", with_stop),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], before);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // A single string works too.
    let mut one = params;
    one["stop"] = json!(stop);
    one["stream"] = json!(true);
    let body = s
        .post("/v1/chat/completions", &chat("Describe anaemia.", one))
        .await
        .text()
        .await
        .unwrap();
    let text: String = sse_data(&body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(text, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_openai_shape() {
    let mut l = limits();
    l.max_tokens_cap = 64;
    l.max_prompt_tokens = 40;
    l.max_body_bytes = 2048;
    let s = start(l, None).await;
    let url = s.url("/v1/chat/completions");

    let r = s
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let e = error_of(r, 400).await;
    assert_eq!(e["type"], "invalid_request_error");

    let r = s
        .post("/v1/chat/completions", &json!({"model": MODEL_ID}))
        .await;
    assert!(
        error_of(r, 400).await["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    let r = s
        .post(
            "/v1/chat/completions",
            &chat("hi", json!({"max_tokens": 65})),
        )
        .await;
    let e = error_of(r, 400).await;
    assert_eq!(e["param"], "max_tokens");
    assert!(e["message"].as_str().unwrap().contains("64"));

    let long = "word ".repeat(200);
    let r = s
        .post("/v1/chat/completions", &chat(&long, json!({})))
        .await;
    let e = error_of(r, 400).await;
    assert_eq!(e["code"], "context_length_exceeded");

    let huge = "x".repeat(4096);
    let r = s
        .post("/v1/chat/completions", &chat(&huge, json!({})))
        .await;
    assert_eq!(error_of(r, 413).await["code"], "request_too_large");

    let r = s
        .post(
            "/v1/chat/completions",
            &chat("hi", json!({"model": "gpt-4"})),
        )
        .await;
    assert_eq!(error_of(r, 404).await["code"], "model_not_found");

    for bad in [
        json!({"n": 2}),
        json!({"temperature": 5}),
        json!({"top_p": 0}),
        json!({"max_tokens": 0}),
        json!({"stop": ["a", "b", "c", "d", "e"]}),
    ] {
        let r = s
            .post("/v1/chat/completions", &chat("hi", bad.clone()))
            .await;
        error_of(r, 400).await;
    }
    let r = s
        .post(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "tool", "content": "x"}]}),
        )
        .await;
    error_of(r, 400).await;

    let r = s.client.get(s.url("/v1/nothing")).send().await.unwrap();
    error_of(r, 404).await;

    // /v1/mcq validates its input the same way.
    let r = s
        .post(
            "/v1/mcq",
            &json!({"question": "q?", "options": ["only one"]}),
        )
        .await;
    error_of(r, 400).await;
    let r = s
        .post(
            "/v1/mcq",
            &json!({"question": "q?", "options": {"A": "x", "BB": "y"}}),
        )
        .await;
    error_of(r, 400).await;
    let r = s
        .post(
            "/v1/mcq",
            &json!({"question": "q?", "options": {"A": "x", "B": " "}}),
        )
        .await;
    error_of(r, 400).await;
    let r = s.post("/v1/mcq", &json!({"options": ["a", "b"]})).await;
    error_of(r, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_on_v1_routes() {
    let s = start(limits(), Some("s3cret")).await;
    for (path, body) in [
        ("/v1/models", None),
        (
            "/v1/chat/completions",
            Some(chat("hi", json!({"max_tokens": 2}))),
        ),
        (
            "/v1/mcq",
            Some(json!({"question": "q?", "options": ["a", "b"], "max_tokens": 2})),
        ),
    ] {
        let request = |key: Option<&str>| {
            let mut r = match &body {
                None => s.client.get(s.url(path)),
                Some(b) => s.client.post(s.url(path)).json(b),
            };
            if let Some(k) = key {
                r = r.header("authorization", format!("Bearer {k}"));
            }
            r.send()
        };
        let e = error_of(request(None).await.unwrap(), 401).await;
        assert_eq!(e["code"], "invalid_api_key", "{path}");
        error_of(request(Some("wrong")).await.unwrap(), 401).await;
        error_of(request(Some("s3cre")).await.unwrap(), 401).await;
        let ok = request(Some("s3cret")).await.unwrap();
        assert_eq!(ok.status(), 200, "{path}");
    }
    // The page and the health check stay open.
    assert_eq!(s.client.get(s.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(s.get_json("/health").await["auth"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcq_answers_with_probabilities_whole_and_streamed() {
    let s = start(limits(), None).await;
    let question = json!({
        "question": "Which electrolyte disturbance most often causes peaked T waves?",
        "options": {"A": "Hypokalaemia", "B": "Hyperkalaemia", "C": "Hyponatraemia", "D": "Hypercalcaemia"},
        "max_tokens": 16,
    });
    let r = s.post("/v1/mcq", &question).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let probs = v["probabilities"].as_object().unwrap();
    assert_eq!(
        probs.keys().cloned().collect::<Vec<_>>(),
        ["A", "B", "C", "D"]
    );
    let total: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    assert!(["A", "B", "C", "D"].contains(&v["answer"].as_str().unwrap()));
    assert!(["reply", "probabilities"].contains(&v["answer_source"].as_str().unwrap()));
    assert!(v["reasoning"].is_string());
    assert!(v["letter_mass"].as_f64().unwrap() > 0.0);
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 16);

    // Options as a list, thinking on, streamed.
    let streamed = json!({
        "question": "Which vitamin deficiency causes scurvy?",
        "options": ["Vitamin A", "Vitamin C", "Vitamin K"],
        "thinking": true,
        "stream": true,
        "max_tokens": 16,
    });
    let body = s.post("/v1/mcq", &streamed).await.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "probabilities");
    assert_eq!(events[0]["probabilities"].as_object().unwrap().len(), 3);
    let result = events.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["probabilities"], events[0]["probabilities"]);
    for e in &events[1..events.len() - 1] {
        assert_eq!(e["type"], "delta");
    }
    let streamed_content: String = events[1..events.len() - 1]
        .iter()
        .map(|e| e["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(streamed_content.trim(), result["content"].as_str().unwrap());
}

/// A streamed request that would run for a long time, read until its first content arrives.
async fn long_stream(s: &common::Server) -> reqwest::Response {
    let body = chat(
        "Keep talking.",
        json!({"max_tokens": 4000, "ignore_eos": true, "stream": true, "temperature": 0}),
    );
    let r = s.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_gets_429_and_a_disconnect_frees_the_worker() {
    let mut l = limits();
    l.queue_capacity = 1;
    l.max_batch = 1;
    let s = start(l, None).await;
    // A occupies the worker (it has started: its response headers came).
    let a = long_stream(&s).await;
    let mut a_body = a.bytes_stream();
    a_body.next().await.unwrap().unwrap();
    s.wait_health(10, "A running", |h| h["running"] == 1).await;
    // B waits in the queue...
    let client = s.client.clone();
    let b_url = s.url("/v1/chat/completions");
    let b = tokio::spawn(async move {
        let t = Instant::now();
        let r = client
            .post(b_url)
            .json(&chat(
                "Short one.",
                json!({"max_tokens": 3, "ignore_eos": true}),
            ))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), t.elapsed())
    });
    s.wait_health(10, "B queued", |h| h["queued"] == 1).await;
    // ...so C is refused at once.
    let c = s
        .post(
            "/v1/chat/completions",
            &chat("Third.", json!({"max_tokens": 3})),
        )
        .await;
    assert_eq!(c.headers()["retry-after"], "1");
    let e = error_of(c, 429).await;
    assert_eq!(e["code"], "queue_full");
    assert_eq!(e["type"], "rate_limit_error");

    // Dropping A's connection stops its generation, and B runs.
    drop(a_body);
    let h = s
        .wait_health(10, "A cancelled", |h| h["cancelled"] == 1)
        .await;
    assert_eq!(h["largest_batch"], 1);
    let (status, waited) = b.await.unwrap();
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(20), "B waited {waited:?}");
    // The queue is free again.
    let again = s
        .post(
            "/v1/chat/completions",
            &chat("Fourth.", json!({"max_tokens": 2})),
        )
        .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_run_as_one_batch_with_their_own_settings() {
    let mut l = limits();
    l.max_batch = 4;
    let s = start(l, None).await;
    let requests: Vec<Value> = (0..3)
        .map(|i| {
            chat(
                &format!("Question number {i} about the liver?"),
                json!({"max_tokens": 6 + i, "ignore_eos": true, "temperature": 0.8, "seed": 100 + i}),
            )
        })
        .collect();
    // Alone first, one at a time.
    let mut alone = Vec::new();
    for r in &requests {
        let v: Value = s
            .post("/v1/chat/completions", r)
            .await
            .json()
            .await
            .unwrap();
        alone.push(v["choices"][0]["message"]["content"].clone());
    }
    // Then queued behind a running request, so the worker takes them together.
    let blocker = long_stream(&s).await;
    let mut blocker_body = blocker.bytes_stream();
    blocker_body.next().await.unwrap().unwrap();
    let mut handles = Vec::new();
    for r in requests.clone() {
        let client = s.client.clone();
        let url = s.url("/v1/chat/completions");
        handles.push(tokio::spawn(async move {
            let v: Value = client
                .post(url)
                .json(&r)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }));
    }
    s.wait_health(10, "3 queued", |h| h["queued"] == 3).await;
    drop(blocker_body);
    for (i, h) in handles.into_iter().enumerate() {
        let v = h.await.unwrap();
        assert_eq!(v["usage"]["completion_tokens"], 6 + i, "{v}");
        assert_eq!(v["choices"][0]["message"]["content"], alone[i], "row {i}");
    }
    assert_eq!(s.get_json("/health").await["largest_batch"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_time_limit_get_504_or_an_error_event() {
    let mut l = limits();
    // With faster attention this reply came back 200 inside a 1.5 s limit on the 2-core dev
    // machine. `medtune generate --max-new-tokens 4096` takes ~3 s there on this tiny model, so
    // 150 ms is far below what the reply needs on any machine.
    l.timeout = Duration::from_millis(150);
    let s = start(l, None).await;
    let body = chat(
        "Keep talking.",
        json!({"max_tokens": 4096, "ignore_eos": true, "temperature": 0}),
    );
    let t = Instant::now();
    let r = s.post("/v1/chat/completions", &body).await;
    assert_eq!(error_of(r, 504).await["code"], "timeout");
    assert!(t.elapsed() < Duration::from_secs(10));
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let err: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "timeout", "{err}");
    // The worker is free again.
    s.wait_health(5, "idle", |h| h["running"] == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut s = start(limits(), None).await;
    let body = chat(
        "Explain.",
        json!({"max_tokens": 200, "ignore_eos": true, "stream": true, "temperature": 0}),
    );
    let r = s.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    s.begin_shutdown();
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let finish: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length", "{finish}");
    s.finish().await.unwrap();
    // No longer listening.
    assert!(s.client.get(s.url("/health")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_the_grace_period_ends_requests_with_a_clean_error() {
    let mut l = limits();
    l.shutdown_grace = Duration::from_millis(300);
    let mut s = start(l, None).await;
    let r = long_stream(&s).await;
    s.begin_shutdown();
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let err: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "shutting_down", "{err}");
    s.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_on_a_whole_completion_stops_its_generation() {
    let s = start(limits(), None).await;
    let body = chat(
        "Keep talking.",
        json!({"max_tokens": 4000, "ignore_eos": true, "temperature": 0}),
    );
    let client = s.client.clone();
    let url = s.url("/v1/chat/completions");
    let request = tokio::spawn(async move { client.post(url).json(&body).send().await });
    s.wait_health(10, "running", |h| h["running"] == 1).await;
    // Dropping the request closes its connection.
    request.abort();
    let h = s
        .wait_health(10, "cancelled", |h| {
            h["cancelled"] == 1 && h["running"] == 0
        })
        .await;
    assert_eq!(h["queued"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_request_in_a_batch_does_not_wait_for_the_longest_row() {
    let mut l = limits();
    l.max_batch = 2;
    let s = start(l, None).await;
    let blocker = long_stream(&s).await;
    let mut blocker_body = blocker.bytes_stream();
    blocker_body.next().await.unwrap().unwrap();
    // Queue a long and a short request behind the blocker, so they run as one batch.
    let long = {
        let client = s.client.clone();
        let url = s.url("/v1/chat/completions");
        let body = chat(
            "Long.",
            json!({"max_tokens": 3000, "ignore_eos": true, "stream": true}),
        );
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    };
    s.wait_health(10, "long queued", |h| h["queued"] == 1).await;
    let short = {
        let client = s.client.clone();
        let url = s.url("/v1/chat/completions");
        let body = chat("Short.", json!({"max_tokens": 4, "ignore_eos": true}));
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    };
    s.wait_health(10, "both queued", |h| h["queued"] == 2).await;
    drop(blocker_body);
    let short = short.await.unwrap();
    assert_eq!(short.status(), 200);
    let v: Value = short.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 4);
    // The long row is still generating when the short one has its answer.
    let h = s.get_json("/health").await;
    assert_eq!(h["largest_batch"], 2, "{h}");
    assert_eq!(h["running"], 1, "{h}");
    drop(long);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_idle_after_its_last_batch() {
    use std::sync::atomic::Ordering;
    let s = start(limits(), None).await;
    let before = common::IDLE_CALLS.load(Ordering::SeqCst);
    let r = s
        .post(
            "/v1/chat/completions",
            &chat("Name a loop diuretic.", json!({"max_tokens": 3})),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The hook runs right after the batch's last event is sent, so allow it a moment.
    let waited = Instant::now();
    while common::IDLE_CALLS.load(Ordering::SeqCst) == before {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "on_idle was never called after the request finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
