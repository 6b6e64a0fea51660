//! `medtune serve` as a process: flags, the listening line, auth, and a clean exit on SIGTERM
//! with the in-flight request finished.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::{ComputeDType, Preset};

fn tiny_model(dir: &Path) {
    let vocab = medtune_text::builtin_tokenizer::write_builtin_tokenizer(dir).unwrap();
    let mut cfg = Preset::Tiny.config();
    cfg.vocab_size = vocab.div_ceil(64) * 64;
    let weights = random_weights(&cfg, ComputeDType::F32, 1);
    write_checkpoint(dir, &cfg, &weights, ComputeDType::F32).unwrap();
}

/// One HTTP/1.1 request; returns the status code and the raw body.
fn http(addr: &str, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn serve_answers_with_a_key_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(["serve", "--model"])
        .arg(dir.path())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--api-key",
            "k3y",
            "--max-tokens-cap",
            "3000",
            "--queue-capacity",
            "4",
            "--max-batch",
            "2",
            "--timeout-secs",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    assert!(line.contains("API key required"), "{line}");

    let (status, body) = http(&addr, "GET", "/health", None, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(&addr, "GET", "/v1/models", None, "").0, 401);
    assert_eq!(http(&addr, "GET", "/v1/models", Some("nope"), "").0, 401);
    let (status, body) = http(&addr, "GET", "/v1/models", Some("k3y"), "");
    assert_eq!(status, 200);
    // The served name defaults to the model folder's name.
    let name = dir.path().file_name().unwrap().to_str().unwrap();
    assert!(body.contains(name), "{body}");
    let over_cap = r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":3001}"#;
    assert_eq!(
        http(&addr, "POST", "/v1/chat/completions", Some("k3y"), over_cap).0,
        400
    );

    // A streamed request in flight when SIGTERM arrives still finishes (3,000 tokens take the
    // tiny model a few seconds).
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = r#"{"messages":[{"role":"user","content":"Go on."}],"max_tokens":3000,
        "ignore_eos":true,"temperature":0,"stream":true}"#;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer k3y\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{request}",
        request.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut seen = String::new();
    while !seen.contains("data: ") {
        assert!(reader.read_line(&mut seen).unwrap() > 0, "{seen}");
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut body = String::new();
    reader.read_to_string(&mut body).unwrap();
    assert!(body.contains("\"finish_reason\":\"length\""), "{body}");
    assert!(body.contains("data: [DONE]"), "{body}");
    assert!(!body.contains("\"error\""), "{body}");
    let exit = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(rest.contains("stopped"), "{rest}");
    // Nothing listens any more.
    assert!(TcpStream::connect(&addr).is_err());
}

/// A LoRA adapter for the tiny model whose B factors are not zero, so it changes the output.
fn nonzero_adapter(model: &Path, out: &Path) {
    use medtune_model::qwen3::{LoadedModel, LoraConfig, LoraTarget};
    let device = medtune_model::DeviceSpec::Cpu.device().unwrap();
    let mut m = LoadedModel::from_dir(model, ComputeDType::F32, &device).unwrap();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
        rslora: false,
    };
    m.model.attach_lora(&cfg, 9, &device);
    m.model.save_adapter(out, &cfg, "tiny").unwrap();
    let path = out.join("adapter_model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if name.contains("lora_B") {
            for (i, chunk) in data.chunks_exact_mut(4).enumerate() {
                let v = if i % 2 == 0 { 0.5f32 } else { -0.5 };
                chunk.copy_from_slice(&v.to_le_bytes());
            }
        }
        tensors.push((name, view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

/// Starts `medtune serve` with extra flags; returns the child and its address.
fn spawn_serve(model: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(["serve", "--model"])
        .arg(model)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    (child, addr)
}

#[test]
fn serve_applies_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let adapter = dir.path().join("adapter");
    tiny_model(&model);
    nonzero_adapter(&model, &adapter);
    let request = r#"{"messages":[{"role":"user","content":"Describe the heart."}],
        "max_tokens":24,"ignore_eos":true,"temperature":0}"#;
    let mut outputs = Vec::new();
    for extra in [vec![], vec!["--adapter", adapter.to_str().unwrap()]] {
        let (mut child, addr) = spawn_serve(&model, &extra);
        let (status, body) = http(&addr, "POST", "/v1/chat/completions", None, request);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        outputs.push(v["choices"][0]["message"]["content"].clone());
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    assert_ne!(outputs[0], outputs[1], "the adapter changed nothing");

    // A missing adapter is an error before anything listens.
    let out = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(["serve", "--model"])
        .arg(&model)
        .args(["--bind", "127.0.0.1:0", "--adapter"])
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("adapter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
