//! `medtune eval` on every real data file in `$MEDTUNE_SHARED/data` (default `../shared`) with a
//! tiny random model that uses the real Qwen3 tokenizer and chat template: each file evaluates
//! end to end with `--limit`, and the counts in `summary.json` match the files
//! (`data/SOURCES.md`). Fails, rather than passes silently, when the folder is missing.
//!
//! Run with `cargo test --release -p medtune --test shared_eval -- --ignored`.
//! `#[ignore]`d in the README test command, which must pass without `../shared`; `.ci/run`
//! runs them with `-- --ignored`.

use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::ok;

fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("MEDTUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    assert!(
        dir.join("data/SOURCES.md").is_file(),
        "shared data not found at {}: set MEDTUNE_SHARED",
        dir.display()
    );
    dir
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn every_shared_file_evaluates_and_the_counts_match() {
    let shared = shared_dir();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    ok(&[
        "init",
        "--preset",
        "tiny",
        "--tokenizer",
        shared.join("tokenizers/qwen3").to_str().unwrap(),
        "--dtype",
        "f32",
        "--out",
        model.to_str().unwrap(),
    ]);
    let data = shared.join("data");
    // (file, format, records in the file's evaluation set)
    let files: Vec<(String, &str, u64)> = vec![
        ("medqa/test_4options.jsonl".into(), "medqa", 1273),
        ("medqa/test_5options.jsonl".into(), "medqa", 1273),
        ("medmcqa/dev.jsonl".into(), "medmcqa", 4183),
        // ori_pqal.json holds 1,000 items; its official test set is the 500 labelled in
        // test_ground_truth.json beside it.
        ("pubmedqa/ori_pqal.json".into(), "pubmedqa", 500),
        ("pubmedqa/test_set.json".into(), "pubmedqa", 500),
        ("mmlu_medical/anatomy_test.csv".into(), "mmlu", 135),
        (
            "mmlu_medical/clinical_knowledge_test.csv".into(),
            "mmlu",
            265,
        ),
        ("mmlu_medical/college_biology_test.csv".into(), "mmlu", 144),
        ("mmlu_medical/college_medicine_test.csv".into(), "mmlu", 173),
        ("mmlu_medical/medical_genetics_test.csv".into(), "mmlu", 100),
        (
            "mmlu_medical/professional_medicine_test.csv".into(),
            "mmlu",
            272,
        ),
    ];
    let mmlu_total: u64 = files.iter().filter(|f| f.1 == "mmlu").map(|f| f.2).sum();
    assert_eq!(mmlu_total, 1089, "MMLU-medical has 1,089 test questions");
    let paths: Vec<String> = files
        .iter()
        .map(|(f, _, _)| data.join(f).to_str().unwrap().to_owned())
        .collect();
    let out = dir.path().join("report");
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--mode",
        "both",
        "--max-new-tokens",
        "4",
        "--limit",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--data",
    ];
    args.extend(paths.iter().map(String::as_str));
    ok(&args);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let run = &summary["run"];
    assert_eq!(run["complete"], true);
    let reported = run["data"].as_array().unwrap();
    assert_eq!(reported.len(), files.len());
    for ((file, format, records), d) in files.iter().zip(reported) {
        assert_eq!(d["format"], *format, "{file}");
        assert_eq!(d["records"], *records, "{file}");
        assert_eq!(d["selected"], 3, "{file}");
    }
    // The recorded checksums are the ones SOURCES.md publishes.
    assert_eq!(
        reported[0]["sha256"],
        "c3b905ccfa66152dc25afbcb2c10e86c0bdb208824f0658fcdb2c040f60a2beb"
    );
    assert_eq!(
        reported[2]["sha256"],
        "a2b5f53890f4e742b728378fb847bc5338088d48ea01218676379f587270af31"
    );
    let n = 3 * files.len() as u64;
    assert_eq!(run["n"], n);
    let results = &summary["systems"][0]["results"];
    for scoring in ["loglik", "loglik_norm", "generate"] {
        assert_eq!(results[scoring]["n"], n, "{scoring}");
    }
    // With Qwen3's tokenizer every option letter is one token after "Answer:", so each item's
    // letter probabilities sum to 1 over its own options (3 for PubMedQA, 4 or 5 elsewhere).
    let items = std::fs::read_to_string(out.join("items.jsonl")).unwrap();
    let mut lines = 0;
    for line in items.lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        let probs = item["loglik"]["probabilities"].as_array().unwrap();
        assert_eq!(probs.len(), item["letters"].as_array().unwrap().len());
        let total: f64 = probs.iter().map(|p| p[1].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{line}");
        lines += 1;
    }
    assert_eq!(lines, n);
}

/// `medtune data dump` equals TRL's masks token for token: the cases of
/// `crates/text/tests/fixtures/chat_masks` (made by `tools/make_chat_masks.py` with TRL 1.16's
/// `SFTTrainer`), the real Qwen3 tokenizer, and TRL's training template passed as
/// `--chat-template`.
#[test]
#[ignore = "reads the real tokenizer in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn data_dump_equals_trls_masks() {
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../text/tests/fixtures/chat_masks");
    let dir = tempfile::tempdir().unwrap();
    // A model folder that has the real tokenizer (the dump reads nothing else of it).
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(shared_dir().join("tokenizers/qwen3").join(f), model.join(f)).unwrap();
    }
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let cases = std::fs::read_to_string(fixtures.join("cases.jsonl")).unwrap();
    let golden: Vec<Value> = std::fs::read_to_string(fixtures.join("trl_golden.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Conversations and prompt–completion pairs go into files of their own (one format a file);
    // each file's records keep their order.
    let (mut chat, mut pc) = (Vec::new(), Vec::new());
    for (line, want) in cases.lines().zip(&golden) {
        let kind = serde_json::from_str::<Value>(line).unwrap();
        let file = if kind.get("messages").is_some() {
            &mut chat
        } else {
            &mut pc
        };
        file.push((line.to_string(), want.clone()));
    }
    assert!(!chat.is_empty() && !pc.is_empty());
    for (name, records) in [("chat", chat), ("pc", pc)] {
        let data = dir.path().join(format!("{name}.jsonl"));
        let lines: Vec<&str> = records.iter().map(|(l, _)| l.as_str()).collect();
        std::fs::write(&data, lines.join("\n") + "\n").unwrap();
        let out = dir.path().join(format!("{name}_dump.jsonl"));
        ok(&[
            "data",
            "dump",
            "--model",
            model.to_str().unwrap(),
            "--chat-template",
            fixtures.join("qwen3_training.jinja").to_str().unwrap(),
            "--max-length",
            "4096",
            "--out",
            out.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        let dumped: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(dumped.len(), records.len(), "{name}");
        for (got, (_, want)) in dumped.iter().zip(&records) {
            let case = want["name"].as_str().unwrap();
            assert_eq!(got["input_ids"], want["input_ids"], "{case}: input_ids");
            assert_eq!(got["labels"], want["labels"], "{case}: labels");
        }
    }
}
