//! The `medtune` binary end to end: the exact interfaces other tools call.

mod common;

use common::{medtune, ok};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fail(args: &[&str]) -> String {
    let out = medtune(args);
    assert!(!out.status.success(), "medtune {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn read_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

#[test]
fn logits_command_writes_the_golden_logits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.safetensors");
    let model = fixture("tied_gqa");
    let golden = model.join("golden.safetensors");
    let bytes = std::fs::read(&golden).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<String> = st
        .tensor("input_ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()).to_string())
        .collect();
    ok(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        &ids.join(","),
        "--dtype",
        "f32",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (shape, ours) = read_f32(&out, "logits");
    let (_, want) = read_f32(&golden, "logits_f32");
    assert_eq!(shape, vec![ids.len(), 512]);
    let diff = ours
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-4, "{diff}");
}

#[test]
fn generate_print_ids_gives_the_golden_greedy_tokens() {
    let model = fixture("untied_hd32");
    let greedy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("greedy.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<String> {
        greedy[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect()
    };
    let stdout = ok(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        &ids("prompt_ids").join(","),
        "--max-new-tokens",
        "20",
        "--greedy",
        "--print-ids",
    ]);
    // The fixture has no eos id and no tokenizer, so nothing stops generation early.
    assert_eq!(stdout.trim(), ids("new_ids").join(","));
}

/// `--packed-weights`: a bf16 model with packed weights (`on`, and `auto` where the CPU has
/// the packed kernel) gives the greedy tokens of the plain bf16 model (`off`); `on` is refused
/// for f32 with a message that says what it needs, and `bench forward` reports which weights
/// it ran.
#[test]
fn packed_weights_give_the_plain_bf16_tokens() {
    let model = fixture("tied_gqa");
    let greedy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("greedy.json")).unwrap()).unwrap();
    let prompt: Vec<String> = greedy["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let prompt = prompt.join(",");
    let run = |packing: &str| {
        ok(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--dtype",
            "bf16",
            "--ids",
            &prompt,
            "--max-new-tokens",
            "20",
            "--greedy",
            "--print-ids",
            "--packed-weights",
            packing,
        ])
    };
    let plain = run("off");
    assert_eq!(plain.trim().split(',').count(), 20);
    assert_eq!(run("on"), plain);
    assert_eq!(run("auto"), plain);
    let err = fail(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,2",
        "--packed-weights",
        "on",
    ]);
    assert!(err.contains("--dtype bf16"), "{err}");
    let bench = |packing: &str| -> serde_json::Value {
        let stdout = ok(&[
            "bench",
            "forward",
            "--preset",
            "tiny",
            "--dtype",
            "bf16",
            "--prefill-tokens",
            "16",
            "--decode-tokens",
            "4",
            "--repeats",
            "1",
            "--json",
            "--packed-weights",
            packing,
        ]);
        serde_json::from_str(stdout.trim()).unwrap()
    };
    assert_eq!(bench("on")["weights"], "packed");
    assert_eq!(bench("off")["weights"], "plain");
}

#[test]
fn init_then_ask_with_a_copied_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let quick = dir.path().join("quick");
    let tok = quick.join("model");
    let model = dir.path().join("model");
    // The quickstart writes medtune's own tokenizer next to a tiny model; reuse its folder as a
    // tokenizer source for `init --tokenizer`.
    let out = ok(&[
        "quickstart",
        "--out",
        quick.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(out.contains("accuracy"), "{out}");
    // The adapted model's reply is shown as its answer line only, with why (the rest of a tiny
    // random model's text is noise), then the timing.
    let tail: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("answers (greedy)"))
        .collect();
    assert_eq!(tail.len(), 4, "{out}");
    assert!(!tail[1].trim().is_empty(), "{out}");
    assert!(tail[2].contains("only its answer line"), "{out}");
    assert!(tail[3].starts_with("done in"), "{out}");
    ok(&[
        "init",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap(),
        "--seed",
        "5",
        "--tokenizer",
        tok.to_str().unwrap(),
    ]);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen3ForCausalLM");
    assert_eq!(config["torch_dtype"], "bfloat16");
    let answer = ok(&[
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--question",
        "Which vitamin deficiency causes scurvy?",
        "--option",
        "A=Vitamin C",
        "--option",
        "B=Vitamin D",
        "--max-new-tokens",
        "8",
        "--seed",
        "1",
    ]);
    assert!(!answer.trim().is_empty());
}

#[test]
fn same_seed_same_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        ok(&[
            "init",
            "--preset",
            "tiny",
            "--out",
            d.to_str().unwrap(),
            "--seed",
            "9",
        ]);
    }
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let model = fixture("tied_gqa");
    let m = model.to_str().unwrap();
    let err = fail(&["logits", "--model", m, "--ids", "1,x", "--out", "/dev/null"]);
    assert!(err.contains("`x` is not a token id"), "{err}");
    let err = fail(&[
        "logits",
        "--model",
        m,
        "--ids",
        "1,9999",
        "--out",
        "/dev/null",
    ]);
    assert!(
        err.contains("9999") && err.contains("vocabulary of 512"),
        "{err}"
    );
    let err = fail(&[
        "logits", "--model", m, "--ids", "1", "--device", "tpu", "--out", "x",
    ]);
    assert!(err.contains("unknown device"), "{err}");
    if !cfg!(feature = "cuda") {
        let err = fail(&[
            "logits", "--model", m, "--ids", "1", "--device", "cuda", "--out", "x",
        ]);
        assert!(err.contains("`cuda` feature"), "{err}");
    }
    let err = fail(&["ask", "--model", m, "--question", "q", "--option", "A"]);
    assert!(err.contains("LETTER=TEXT"), "{err}");
}

#[test]
fn an_offline_hub_miss_says_how_to_use_a_local_folder() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args([
            "logits",
            "--model",
            "Qwen/Qwen3-1.7B",
            "--ids",
            "1",
            "--out",
        ])
        .arg(home.path().join("logits.safetensors"))
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model DIR"), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
}

#[test]
fn bench_forward_prints_one_json_object() {
    let stdout = ok(&[
        "bench",
        "forward",
        "--preset",
        "tiny",
        "--prefill-tokens",
        "16",
        "--decode-tokens",
        "4",
        "--repeats",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

/// A tiny model with medtune's own tokenizer, and the built-in questions, in `dir`.
fn tiny_setup(dir: &Path) -> (PathBuf, PathBuf) {
    ok(&[
        "quickstart",
        "--out",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    (dir.join("model"), dir.join("quickstart_mcq.jsonl"))
}

fn train_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "30",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "1e-2",
        "--targets",
        "all-linear",
        "--save-every",
        "3",
        "--seed",
        "11",
    ]
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn training_killed_and_resumed_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = tiny_setup(&dir.path().join("setup"));
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let full = dir.path().join("full");
    ok(&train_args(m, d, full.to_str().unwrap()));
    let full_losses = losses(&full);
    assert_eq!(full_losses.len(), 60);
    assert!(
        full_losses[59].1 < full_losses[0].1,
        "loss must fall: {full_losses:?}"
    );
    assert!(full.join("loss.png").is_file() && full.join("training_config.toml").is_file());
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(full.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    for key in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "step_seconds",
        "tokens",
        "tokens_per_s",
        "mfu",
    ] {
        assert!(
            first.get(key).is_some(),
            "metrics.jsonl lacks `{key}`: {first}"
        );
    }
    let mfu = first["mfu"].as_f64().unwrap();
    assert!(mfu > 0.0 && mfu < 1.0, "{mfu}");

    // The same run, killed with SIGKILL once its second checkpoint exists, then resumed.
    let cut = dir.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(train_args(m, d, cut.to_str().unwrap()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !cut.join("checkpoint-6").is_dir() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !cut.join("adapter_model.safetensors").exists(),
        "the run finished before it was killed; the test needs a longer run"
    );
    ok(&[
        "train",
        "--resume",
        cut.to_str().unwrap(),
        "--out",
        cut.to_str().unwrap(),
    ]);
    assert_eq!(losses(&cut), full_losses);
    assert_eq!(
        std::fs::read(cut.join("adapter_model.safetensors")).unwrap(),
        std::fs::read(full.join("adapter_model.safetensors")).unwrap()
    );
}

#[test]
fn malformed_data_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = tiny_setup(&dir.path().join("setup"));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        concat!(
            r#"{"question": "Which organ makes bile?", "options": {"A": "Liver", "B": "Lung"}, "answer": "A"}"#,
            "\n",
            r#"{"question": "Which bone is in the thigh?", "options": {"A": "Femur", "B": "Ulna"}, "answer": "E"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let err = fail(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.jsonl:2: answer"), "{err}");
    assert!(!out.exists(), "a rejected run must write nothing");
    let err = fail(&["data", "check", bad.to_str().unwrap()]);
    assert!(
        err.contains("bad.jsonl:2: answer") || err.contains("problem"),
        "{err}"
    );
}

#[test]
fn training_questions_seen_in_val_are_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = tiny_setup(&dir.path().join("setup"));
    let first = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let val = dir.path().join("val.jsonl");
    // The same question with its options in another order, reworded punctuation: still the same.
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let question = v["question"].as_str().unwrap().replace('?', " ?");
    let opts = &v["options"];
    let line = serde_json::json!({
        "question": question,
        "options": {"A": opts["B"], "B": opts["A"], "C": opts["C"], "D": opts["D"]},
        "answer": "B",
    });
    std::fs::write(&val, format!("{line}\n")).unwrap();
    let out = dir.path().join("out");
    let run = medtune(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--val",
        val.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-steps",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("15 training and 1 validation examples"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 training records dropped as contaminated"),
        "{stderr}"
    );
    assert!(stderr.contains("qs-01"), "{stderr}");
    let last = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(last.lines().last().unwrap().contains("val_loss"), "{last}");
}

#[test]
fn merge_writes_a_checkpoint_equal_to_base_plus_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup");
    ok(&[
        "quickstart",
        "--out",
        setup.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    let (model, adapter) = (setup.join("model"), setup.join("adapter"));
    let merged = dir.path().join("merged");
    ok(&[
        "merge",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
        "--save-dtype",
        "f32",
    ]);
    assert!(
        merged.join("tokenizer.json").is_file(),
        "side files are copied"
    );
    let logits = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "logits",
            "--ids",
            "5,17,300,42,999",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&args);
        read_f32(out, "logits").1
    };
    let a = logits(
        &[
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
        ],
        &dir.path().join("a.safetensors"),
    );
    let b = logits(
        &["--model", merged.to_str().unwrap()],
        &dir.path().join("b.safetensors"),
    );
    let plain = logits(
        &["--model", model.to_str().unwrap()],
        &dir.path().join("c.safetensors"),
    );
    let diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    };
    assert!(diff(&a, &b) <= 1e-4, "merged differs by {}", diff(&a, &b));
    assert!(diff(&a, &plain) > 1e-4, "the adapter must change something");
}

#[test]
fn gradient_checkpointing_gives_the_same_training() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = tiny_setup(&dir.path().join("setup"));
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "train",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-steps",
            "3",
            "--targets",
            "all-linear",
            "--rslora",
            "--dropout",
            "0",
        ];
        args.extend_from_slice(extra);
        ok(&args);
        losses(&out)
    };
    let plain = run("plain", &[]);
    let checkpointed = run("ckpt", &["--gradient-checkpointing"]);
    assert_eq!(plain.len(), 3);
    for (a, b) in plain.iter().zip(&checkpointed) {
        assert!(
            (a.1 - b.1).abs() <= 1e-6 * a.1.abs(),
            "{plain:?} vs {checkpointed:?}"
        );
    }
}

#[test]
fn f16_training_with_loss_scaling_tracks_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = tiny_setup(&dir.path().join("setup"));
    let run = |dtype: &str| {
        let out = dir.path().join(dtype);
        ok(&[
            "train",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-steps",
            "6",
            "--batch-size",
            "8",
            "--grad-accum",
            "1",
            "--lr",
            "1e-2",
            "--targets",
            "all-linear",
            "--dtype",
            dtype,
        ]);
        losses(&out)
    };
    let (half, full) = (run("f16"), run("f32"));
    assert_eq!(half.len(), 6);
    for (h, f) in half.iter().zip(&full) {
        assert!(
            h.1.is_finite() && (h.1 - f.1).abs() < 1e-2,
            "f16 {half:?} vs f32 {full:?}"
        );
    }
    assert!(half[5].1 < half[0].1, "f16 loss must fall: {half:?}");
}

#[test]
fn packing_trains_on_fewer_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = tiny_setup(&dir.path().join("setup"));
    let out = dir.path().join("packed");
    let run = medtune(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--max-length",
        "1024",
        "--packing",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // 16 examples of ~220 tokens pack 4 to a 1,024-token row: 4 rows, 2 steps of 2 rows.
    let l = losses(&out);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l.iter().all(|(_, v)| v.is_finite()));
}
