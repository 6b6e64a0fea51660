//! `medtune eval` end to end on tiny random models: loglik predictions against `medtune logits`,
//! reports for every data format, base vs adapter comparison, and a partial report on Ctrl-C.

mod common;

use common::{medtune, ok};
use std::path::{Path, PathBuf};
use std::process::Command;

use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, McqPrompt, render_mcq_prompt};
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn items(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Quickstart's tiny model, its built-in questions and a briefly trained adapter.
fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    ok(&[
        "quickstart",
        "--out",
        dir.to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    (
        dir.join("model"),
        dir.join("quickstart_mcq.jsonl"),
        dir.join("adapter"),
    )
}

fn all_logits(model: &Path, ids: &[u32], out: &Path) -> Vec<f32> {
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    ok(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        &ids.join(","),
        "--out",
        out.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("logits").unwrap();
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn loglik_equals_the_argmax_of_medtune_logits_and_reports_compare_systems() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, adapter) = setup(&dir.path().join("setup"));
    let out = dir.path().join("report");
    let stdout = ok(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--with-base",
        "--data",
        data.to_str().unwrap(),
        "--mode",
        "both",
        "--max-new-tokens",
        "12",
        "--limit",
        "6",
        "--batch-size",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("McNemar p ="), "{stdout}");

    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["run"]["n"], 6);
    assert_eq!(summary["run"]["complete"], true);
    assert_eq!(summary["run"]["data"][0]["records"], 16);
    assert_eq!(summary["run"]["data"][0]["selected"], 6);
    assert_eq!(
        summary["run"]["data"][0]["sha256"].as_str().unwrap().len(),
        64
    );
    let systems = summary["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 2);
    assert_eq!(systems[0]["name"], "base");
    assert_eq!(systems[1]["name"], "adapter");
    for s in systems {
        for scoring in ["loglik", "loglik_norm", "generate"] {
            let r = &s["results"][scoring];
            assert_eq!(r["n"], 6, "{scoring}");
            let acc = r["accuracy"].as_f64().unwrap();
            let (lo, hi) = (
                r["wilson95"]["low"].as_f64().unwrap(),
                r["wilson95"]["high"].as_f64().unwrap(),
            );
            assert!(lo <= acc && acc <= hi, "{scoring}: {r}");
        }
        assert!(s["results"]["loglik"]["ece"].as_f64().is_some());
        let unparsed = s["results"]["generate"]["unparsed"].as_u64().unwrap();
        let letters: u64 = s["results"]["generate"]["predicted_letters"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            letters + unparsed,
            6,
            "every answer is a letter or unparsed"
        );
    }
    let comparisons = summary["comparisons"].as_array().unwrap();
    assert!(!comparisons.is_empty());
    for c in comparisons {
        let p = c["mcnemar_p"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        let total: u64 = ["both_right", "only_a_right", "only_b_right", "both_wrong"]
            .iter()
            .map(|k| c[k].as_u64().unwrap())
            .sum();
        assert_eq!(total, 6);
    }
    for f in [
        "report.md",
        "report.html",
        "subjects_base.png",
        "reliability_base.png",
        "subjects_adapter.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("exact McNemar") && md.contains("95% CI"),
        "{md}"
    );

    // Each base loglik prediction is the most likely option letter after the prompt and
    // "Answer:" according to the logits that `medtune logits` gives.
    let tokenizer = Tokenizer::from_dir(&model).unwrap();
    let template = tokenizer.chat_template().unwrap();
    let all = items(&out);
    assert_eq!(all.len(), 12);
    let records: Vec<Value> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for item in all.iter().filter(|i| i["system"] == "base").take(3) {
        let line = item["line"].as_u64().unwrap() as usize;
        let rec = &records[line - 1];
        let options: Vec<(char, String)> = rec["options"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.chars().next().unwrap(), v.as_str().unwrap().to_owned()))
            .collect();
        let letters: Vec<char> = options.iter().map(|(l, _)| *l).collect();
        let prompt = McqPrompt::new(rec["question"].as_str().unwrap(), options);
        let text = render_mcq_prompt(template, &prompt, &McqChatOptions::default()).unwrap();
        // Each letter's log-likelihood: the log-softmax of `medtune logits` summed over the
        // tokens that `Answer: X` adds after the ids all letters share.
        let seqs: Vec<Vec<u32>> = letters
            .iter()
            .map(|l| tokenizer.encode(&format!("{text}Answer: {l}")).unwrap())
            .collect();
        let common = seqs
            .iter()
            .map(|s| s.iter().zip(&seqs[0]).take_while(|(a, b)| a == b).count())
            .min()
            .unwrap();
        let picked: Vec<f32> = seqs
            .iter()
            .map(|seq| {
                let all = all_logits(&model, seq, &dir.path().join("l.safetensors"));
                let vocab = all.len() / seq.len();
                (common..seq.len())
                    .map(|pos| {
                        let row = &all[(pos - 1) * vocab..pos * vocab];
                        let max = row.iter().copied().fold(f32::MIN, f32::max);
                        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
                        row[seq[pos] as usize] - lse
                    })
                    .sum()
            })
            .collect();
        let best = (0..picked.len())
            .max_by(|&a, &b| picked[a].total_cmp(&picked[b]))
            .unwrap();
        let loglik = &item["loglik"];
        assert_eq!(
            loglik["prediction"].as_str().unwrap(),
            letters[best].to_string()
        );
        let max = picked.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = picked.iter().map(|v| (v - max).exp()).sum();
        for (k, pair) in loglik["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = (picked[k] - max).exp() / z;
            let got = pair[1].as_f64().unwrap() as f32;
            assert!((want - got).abs() < 1e-4, "prob {k}: {got} vs {want}");
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// Small files of every format (questions written for this test).
fn every_format(dir: &Path) -> Vec<PathBuf> {
    vec![
        write(
            dir,
            "medqa/test.jsonl",
            concat!(
                r#"{"question": "A child with bleeding gums lacks which vitamin?", "answer": "Vitamin C", "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}, "meta_info": "step1", "answer_idx": "B"}"#,
                "\n",
                r#"{"question": "Which drug reverses heparin?", "answer": "Protamine", "options": {"A": "Vitamin K", "B": "Naloxone", "C": "Flumazenil", "D": "Atropine", "E": "Protamine"}, "meta_info": "step2&3", "answer_idx": "E"}"#,
                "\n"
            ),
        ),
        write(
            dir,
            "medmcqa/dev.jsonl",
            concat!(
                r#"{"question":"Drug of choice in anaphylaxis:","exp":"It reverses bronchospasm and hypotension.","cop":1,"opa":"Adrenaline","opb":"Atropine","opc":"Dopamine","opd":"Digoxin","subject_name":"Pharmacology","id":"m-1"}"#,
                "\n",
                r#"{"question":"Largest organ:","exp":null,"cop":4,"opa":"Liver","opb":"Brain","opc":"Lung","opd":"Skin","subject_name":"Anatomy","id":"m-2"}"#,
                "\n",
                r#"{"question":"Insulin is made by:","exp":null,"cop":2,"opa":"Alpha cells","opb":"Beta cells","opc":"Delta cells","opd":"Acinar cells","subject_name":"Physiology","id":"m-3"}"#,
                "\n"
            ),
        ),
        write(
            dir,
            "pubmedqa/ori_pqal.json",
            r#"{"111": {"QUESTION": "Does daily walking lower resting heart rate?", "CONTEXTS": ["Walkers had lower rates."], "final_decision": "yes"},
                "222": {"QUESTION": "Does tea cure colds?", "CONTEXTS": ["Colds lasted as long."], "final_decision": "no"},
                "333": {"QUESTION": "Do pets prevent allergies?", "CONTEXTS": ["Results were mixed."], "final_decision": "maybe"}}"#,
        ),
        write(
            dir,
            "pubmedqa/test_ground_truth.json",
            r#"{"111": "yes", "333": "maybe"}"#,
        ),
        write(
            dir,
            "mmlu/anatomy_test.csv",
            "Which bone is in the thigh?,Femur,Tibia,Radius,Ulna,A\nWhere is the pancreas?,Pelvis,Abdomen,Thorax,Neck,B\n",
        ),
        write(
            dir,
            "generic.jsonl",
            concat!(
                r#"{"question": "Normal adult body temperature?", "options": ["30 C", "37 C", "42 C"], "answer": "B", "subject": "Physiology"}"#,
                "\n"
            ),
        ),
    ]
}

#[test]
fn every_format_evaluates_with_counts_that_match_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _, _) = setup(&dir.path().join("setup"));
    let files = every_format(&dir.path().join("data"));
    let data: Vec<&str> = files
        .iter()
        .filter(|p| !p.ends_with("test_ground_truth.json"))
        .map(|p| p.to_str().unwrap())
        .collect();
    let out = dir.path().join("report");
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--mode",
        "both",
        "--max-new-tokens",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--data",
    ];
    args.extend(&data);
    ok(&args);
    let summary = read_json(&out.join("summary.json"));
    let files: Vec<(String, u64)> = summary["run"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["records"], d["selected"]);
            (
                d["format"].as_str().unwrap().to_owned(),
                d["records"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("medqa", 2),
        ("medmcqa", 3),
        ("pubmedqa", 2), // the official test ids only
        ("mmlu", 2),
        ("jsonl", 1),
    ]
    .iter()
    .map(|(f, n)| (f.to_string(), *n))
    .collect();
    assert_eq!(files, want);
    assert_eq!(summary["run"]["n"], 10);
    let loglik = &summary["systems"][0]["results"]["loglik"];
    assert_eq!(loglik["n"], 10);
    let subjects: Vec<&str> = loglik["per_subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"Pharmacology") && subjects.contains(&"anatomy"),
        "{subjects:?}"
    );
    assert_eq!(items(&out).len(), 10);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("subjects_base.png"));
}

#[test]
fn interrupted_eval_leaves_a_valid_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, _) = setup(&dir.path().join("setup"));
    let out = dir.path().join("report");
    // Enough work that it cannot finish before the signal: the 16 questions 30 times over,
    // scored both ways (the loglik part alone takes seconds whatever the generations do).
    let copies: Vec<&str> = vec![data.to_str().unwrap(); 30];
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--mode",
        "both",
        "--max-new-tokens",
        "400",
        "--batch-size",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--data",
    ];
    args.extend(copies);
    let mut child = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SIGINT, as Ctrl-C sends.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "an interrupted eval exits 130");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["run"]["complete"], false);
    let scored = summary["systems"][0]["n"].as_u64().unwrap();
    assert!(scored < 480, "stopped early: {scored}");
    assert_eq!(items(&out).len() as u64, scored);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("INTERRUPTED"));
}

#[test]
fn few_shot_prompts_hold_k_solved_questions_but_never_the_question_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, _) = setup(&dir.path().join("setup"));
    let out = dir.path().join("report");
    ok(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--shots",
        "2",
        "--shots-from",
        data.to_str().unwrap(),
        "--limit",
        "4",
        "--no-acc-norm",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary = read_json(&out.join("summary.json"));
    let prompt = &summary["run"]["prompt"];
    assert_eq!(prompt["shots"], 2);
    let example = prompt["example"].as_str().unwrap();
    // Two earlier assistant turns, each an answer line, then the question.
    assert_eq!(
        example.matches("<|im_start|>assistant\n").count(),
        3,
        "{example}"
    );
    assert_eq!(example.matches("Answer: ").count(), 2, "{example}");
    // The evaluated question appears once: as the last user turn, not as a shot.
    let first = &items(&out)[0];
    let line = first["line"].as_u64().unwrap() as usize;
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(&data)
            .unwrap()
            .lines()
            .nth(line - 1)
            .unwrap(),
    )
    .unwrap();
    let question = record["question"].as_str().unwrap().trim();
    assert_eq!(example.matches(question).count(), 1, "{example}");
    assert_eq!(summary["systems"][0]["results"]["loglik"]["n"], 4);
    // Without --shots-from, --shots is refused.
    let out = medtune(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--shots",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shots-from"));
}

#[test]
fn loglik_with_thinking_scores_after_an_empty_think_block() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, _) = setup(&dir.path().join("setup"));
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--limit",
            "3",
            "--no-acc-norm",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&args);
        items(out)
    };
    let plain = run(&[], &dir.path().join("plain"));
    let thinking = run(&["--thinking"], &dir.path().join("thinking"));
    // The template writes exactly that block when thinking is off, so the scores agree.
    for (a, b) in plain.iter().zip(&thinking) {
        assert_eq!(a["loglik"]["prediction"], b["loglik"]["prediction"]);
        let (pa, pb) = (&a["loglik"]["probabilities"], &b["loglik"]["probabilities"]);
        for k in 0..pa.as_array().unwrap().len() {
            let d = pa[k][1].as_f64().unwrap() - pb[k][1].as_f64().unwrap();
            assert!(d.abs() < 1e-5, "{pa} vs {pb}");
        }
    }
}
