//! The page in headless Chromium, driven over the DevTools protocol: type a question and its
//! options, click Ask, wait for the answer and the probability chart, keep a screenshot in
//! `target/serve-browser/screenshot.png`.
//!
//! Skips (printing why) only when no Chromium binary is found; `MEDTUNE_REQUIRE_BROWSER=1` (set by
//! CI) turns that into a failure. `MEDTUNE_CHROMIUM` names the binary.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MEDTUNE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch(binary: &PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1000,1300",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium prints the DevTools address on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium printed no DevTools address");
        let hostport = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let stream = TcpStream::connect(&hostport).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        Browser {
            child,
            ws,
            next_id: 1,
            session: None,
            _profile: profile,
        }
    }

    /// Sends a DevTools command (to the attached page once there is one) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, secs: u64, expression: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(expression);
            if v.as_bool() == Some(true) {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types into an element as a user would (focus, then text input events).
    fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!("document.getElementById('{id}').focus()"));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// A real mouse click in the middle of an element.
    fn click(&mut self, id: &str) {
        let rect = self.eval(&format!(
            "(() => {{ const r = document.getElementById('{id}').getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }
}

fn artifact_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/serve-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn page_answers_a_question_with_a_probability_chart() {
    let Some(binary) = find_chromium() else {
        let msg = "skipping the browser test: no chromium binary found (apt-get install chromium, \
                   or set MEDTUNE_CHROMIUM)";
        assert!(
            std::env::var("MEDTUNE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{msg}, and MEDTUNE_REQUIRE_BROWSER=1"
        );
        println!("{msg}");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(common::start(common::limits(), None));
    let mut browser = Browser::launch(&binary);
    let target = browser.call("Target.createTarget", json!({"url": server.url("/")}));
    let attached = browser.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    browser.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    browser.wait_for(
        "the page",
        30,
        "document.readyState === 'complete' && !!document.getElementById('ask-form')",
    );
    let disclaimer = browser.eval("document.getElementById('disclaimer').innerText");
    assert!(
        disclaimer
            .as_str()
            .unwrap()
            .contains("Research tool, not medical advice"),
        "{disclaimer}"
    );

    browser.type_into(
        "question",
        "A patient on long-term lithium develops polyuria. Which drug-induced condition is most likely?",
    );
    for (id, text) in [
        ("opt-A", "Nephrogenic diabetes insipidus"),
        ("opt-B", "Central diabetes insipidus"),
        ("opt-C", "Primary polydipsia"),
        ("opt-D", "Type 2 diabetes mellitus"),
    ] {
        browser.type_into(id, text);
    }
    // Record what the page sends, to check the thinking switch below.
    browser.eval(
        "window.sent = []; const f = window.fetch; \
         window.fetch = (u, o) => { if (o && o.body) window.sent.push(JSON.parse(o.body)); return f(u, o); }",
    );
    browser.click("submit");
    browser.wait_for(
        "the answer and the chart",
        120,
        "document.getElementById('answer-letter').textContent.length === 1 \
         && document.querySelectorAll('#chart .bar-row').length === 4",
    );
    let state = browser.eval(
        "({letter: document.getElementById('answer-letter').textContent, \
           answer: document.getElementById('answer').textContent, \
           status: document.getElementById('status').textContent, \
           chosen: [...document.querySelectorAll('#chart .bar-row.chosen')].map(r => r.dataset.letter), \
           widths: [...document.querySelectorAll('#chart .bar')].map(b => parseFloat(b.style.width))})",
    );
    let letter = state["letter"].as_str().unwrap();
    assert!(["A", "B", "C", "D"].contains(&letter), "{state}");
    assert_eq!(state["chosen"], json!([letter]), "{state}");
    assert!(
        state["status"].as_str().unwrap().starts_with("done"),
        "{state}"
    );
    let total: f64 = state["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .sum();
    assert!(
        (total - 100.0).abs() < 0.5,
        "bar widths sum to {total}%: {state}"
    );

    let sent = browser.eval("window.sent");
    assert_eq!(sent[0]["thinking"], false, "{sent}");
    assert_eq!(
        sent[0]["options"]["D"], "Type 2 diabetes mellitus",
        "{sent}"
    );

    // The thinking switch: a second question with it on is sent with thinking and answered.
    browser.click("thinking");
    browser.click("submit");
    browser.wait_for(
        "the second answer",
        120,
        "window.sent.length === 2 && document.getElementById('status').textContent.startsWith('done')",
    );
    let sent = browser.eval("window.sent");
    assert_eq!(sent[1]["thinking"], true, "{sent}");
    assert_eq!(
        browser.eval("document.querySelectorAll('#chart .bar-row').length"),
        4
    );

    let shot = browser.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true}),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = artifact_dir().join("screenshot.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    drop(browser);
    drop(server);
}
