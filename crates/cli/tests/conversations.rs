//! Training on conversations, prompt–completion pairs and reasoning traces through the binary:
//! `data dump` shows what the loss covers, `data check` names bad records, `train` learns.
//! The medical content is the project's own writing.

mod common;

use std::path::{Path, PathBuf};

use common::{medtune, ok};
use serde_json::{Value, json};

/// A tiny model with medtune's own tokenizer (ChatML with think blocks), made by the quickstart.
fn tiny_model(dir: &Path) -> PathBuf {
    ok(&[
        "quickstart",
        "--out",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    dir.join("model")
}

fn write_jsonl(path: &Path, records: &[Value]) {
    let text: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// A small set of clinical conversations: single and multi-turn, with and without a system
/// prompt and reasoning.
fn conversations() -> Vec<Value> {
    let pairs = [
        (
            "Which electrolyte disturbance peaks the T waves?",
            "Hyperkalaemia.",
        ),
        (
            "First-line drug for anaphylaxis?",
            "Intramuscular adrenaline.",
        ),
        ("Antidote for paracetamol overdose?", "Acetylcysteine."),
        ("Vitamin deficiency in scurvy?", "Vitamin C."),
        (
            "Most common cause of community pneumonia?",
            "Streptococcus pneumoniae.",
        ),
        (
            "Reversal agent for warfarin in a bleed?",
            "Prothrombin complex concentrate.",
        ),
    ];
    let mut out: Vec<Value> = pairs
        .iter()
        .map(|(q, a)| json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}))
        .collect();
    out.push(json!({"messages": [
        {"role": "system", "content": "Answer as a careful clinician."},
        {"role": "user", "content": "A patient has crushing chest pain. First test?"},
        {"role": "assistant", "content": "A 12-lead ECG.", "reasoning_content": "Exclude a STEMI first."},
        {"role": "user", "content": "It shows ST elevation in II, III and aVF."},
        {"role": "assistant", "content": "<think>Inferior leads.</think>An inferior STEMI: call the cath lab."}
    ]}));
    out
}

/// The text of the labelled (trained) tokens, in order.
fn labelled_text(tokenizer: &medtune_text::Tokenizer, labels: &[i64]) -> String {
    let ids: Vec<u32> = labels
        .iter()
        .filter(|&&l| l >= 0)
        .map(|&l| l as u32)
        .collect();
    tokenizer.decode(&ids, false).unwrap()
}

/// `medtune data dump --model MODEL --out OUT DATA`.
fn dump_args<'a>(model: &'a Path, data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let path = |p: &'a Path| p.to_str().unwrap();
    let (model, out, data) = (path(model), path(out), path(data));
    vec!["data", "dump", "--model", model, "--out", out, data]
}

fn dump(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<(Vec<u32>, Vec<i64>)> {
    let mut args = dump_args(model, data, out);
    args.extend_from_slice(extra);
    ok(&args);
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v["input_ids"].clone()).unwrap(),
                serde_json::from_value(v["labels"].clone()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn dump_shows_the_assistants_words_as_the_only_labels() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("setup"));
    let data = dir.path().join("chat.jsonl");
    write_jsonl(&data, &conversations());
    let all = dump(&model, &data, &dir.path().join("all.jsonl"), &[]);
    // Six single-turn conversations, and the two-turn one as one sequence per assistant turn
    // (the model's template drops earlier turns' think blocks).
    assert_eq!(all.len(), 8);
    let tokenizer = medtune_text::Tokenizer::from_dir(&model).unwrap();
    let targets = |labels: &[i64]| labelled_text(&tokenizer, labels);
    for (ids, labels) in &all {
        assert_eq!(ids.len(), labels.len());
        for (&id, &l) in ids.iter().zip(labels) {
            assert!(l == -100 || l == i64::from(id));
        }
    }
    assert_eq!(
        targets(&all[0].1),
        "<think>\n\n</think>\n\nHyperkalaemia.<|im_end|>"
    );
    assert_eq!(
        targets(&all[6].1),
        "<think>\nExclude a STEMI first.\n</think>\n\nA 12-lead ECG.<|im_end|>"
    );
    assert_eq!(
        targets(&all[7].1),
        "<think>\nInferior leads.\n</think>\n\nAn inferior STEMI: call the cath lab.<|im_end|>"
    );
    let last = dump(
        &model,
        &data,
        &dir.path().join("last.jsonl"),
        &["--last-turn-only"],
    );
    assert_eq!(last.len(), 7);
    assert_eq!(last[6], all[7]);
}

#[test]
fn prompt_completion_and_trace_tables_train_their_completion() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("setup"));
    let pc = dir.path().join("pc.jsonl");
    write_jsonl(
        &pc,
        &[
            json!({"prompt": "Normal adult potassium range:", "completion": " 3.5 to 5.0 mmol/L."}),
            json!({"prompt": [{"role": "user", "content": "Define tachycardia."}],
                   "completion": [{"role": "assistant", "content": "A heart rate above 100 per minute."}]}),
        ],
    );
    let rows = dump(&model, &pc, &dir.path().join("pc_out.jsonl"), &[]);
    assert_eq!(rows.len(), 2);
    let tokenizer = medtune_text::Tokenizer::from_dir(&model).unwrap();
    let targets = |labels: &[i64]| labelled_text(&tokenizer, labels);
    assert_eq!(targets(&rows[0].1), " 3.5 to 5.0 mmol/L.<|im_end|>");
    assert_eq!(
        targets(&rows[1].1),
        "<think>\n\n</think>\n\nA heart rate above 100 per minute.<|im_end|>\n"
    );

    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        serde_json::to_string_pretty(&json!([
            {"Question": "Why give oxygen cautiously in severe COPD?",
             "Complex_CoT": "Some patients rely on hypoxic drive; high oxygen raises CO2.",
             "Response": "Target saturations of 88 to 92 percent."}
        ]))
        .unwrap(),
    )
    .unwrap();
    let fields = "question=Question,reasoning=Complex_CoT,answer=Response";
    let rows = dump(
        &model,
        &trace,
        &dir.path().join("trace_out.jsonl"),
        &["--fields", fields],
    );
    assert_eq!(
        targets(&rows[0].1),
        "<think>\nSome patients rely on hypoxic drive; high oxygen raises CO2.\n</think>\n\nTarget saturations of 88 to 92 percent.<|im_end|>"
    );
}

#[test]
fn bad_conversations_are_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("setup"));
    let data = dir.path().join("bad.jsonl");
    write_jsonl(
        &data,
        &[
            json!({"messages": [{"role": "user", "content": "Dose of adrenaline in anaphylaxis?"}, {"role": "assistant", "content": "0.5 mg IM."}]}),
            json!({"messages": [{"role": "doctor", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]}),
        ],
    );
    let out = dir.path().join("dump.jsonl");
    let result = medtune(&dump_args(&model, &data, &out));
    assert!(!result.status.success());
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("bad.jsonl:2: messages[0].role"), "{err}");
    assert!(!out.exists(), "nothing is written for bad data");
    let check = medtune(&["data", "check", data.to_str().unwrap()]);
    assert!(!check.status.success());
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("bad.jsonl:2: messages[0].role"), "{report}");
}

#[test]
fn loss_falls_on_a_conversational_set() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("setup"));
    let data = dir.path().join("chat.jsonl");
    write_jsonl(&data, &conversations());
    let out = dir.path().join("run");
    ok(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "40",
        "--batch-size",
        "4",
        "--grad-accum",
        "1",
        "--lr",
        "1e-2",
        "--rank",
        "16",
        "--alpha",
        "32",
        "--targets",
        "all-linear",
        "--seed",
        "3",
    ]);
    let metrics: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let losses: Vec<f64> = metrics
        .iter()
        .map(|m| m["loss"].as_f64().unwrap())
        .collect();
    // MFU: the FLOPs the step requires over the product peak measured at start, a fraction.
    for m in &metrics {
        let mfu = m["mfu"].as_f64().unwrap();
        assert!(mfu > 0.0 && mfu <= 1.0, "mfu {mfu} in {m}");
    }
    // A random 64-wide model starts near ln(1024) ≈ 6.9; 80 steps of LoRA bring the mean of the
    // last four steps ~0.9 nats below the first four's (seeded, so the same every run).
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
    let (first, last) = (mean(&losses[..4]), mean(&losses[losses.len() - 4..]));
    assert!(last < first - 0.5, "loss {first} -> {last}: {losses:?}");
    assert!(out.join("adapter_model.safetensors").is_file());
    // What a step is, in another tool's terms, is on record beside the settings.
    let config = std::fs::read_to_string(out.join("training_config.toml")).unwrap();
    assert!(config.contains("[derived]"), "{config}");
    assert!(config.contains("effective_batch = 4\n"), "{config}");
    assert!(
        config.contains(&format!("optimiser_steps = {}\n", losses.len())),
        "{config}"
    );
    assert!(out.join("adapter_config.json").is_file());
}
