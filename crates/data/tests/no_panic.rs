//! Property tests: every reader — medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion
//! and trace — given random bytes, or a valid file with random deletions, insertions and
//! changes, returns records or problems and never panics. Detection and `check` run on the same
//! files, and `check` counts what the skipping reader reads.

use std::path::Path;

use medtune_data::{
    Format, ReadOptions, TraceFields, check_files_with, detect, read_file, read_training_file,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property; `PROPTEST_CASES` overrides it for a longer run.
const CASES: u32 = 64;

const O1: &str = "question=Question,reasoning=Complex_CoT,answer=Response,system=System";

/// A valid file of each format: (format, file name, text).
fn seeds() -> Vec<(Format, &'static str, &'static str)> {
    vec![
        (
            Format::MedQa,
            "medqa.jsonl",
            concat!(
                r#"{"question": "A child has bleeding gums and bruising. Which vitamin is low?", "answer": "Vitamin C", "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}, "meta_info": "step1", "answer_idx": "B"}"#,
                "\n",
                r#"{"question": "Antidote for opioid overdose?", "options": {"A": "Naloxone", "B": "Flumazenil"}, "answer_idx": "A"}"#,
                "\n",
            ),
        ),
        (
            Format::MedMcqa,
            "dev.jsonl",
            concat!(
                r#"{"question":"Rickets is due to deficiency of:","exp":"Vitamin D mineralises bone.","cop":3,"opa":"Vitamin A","opb":"Vitamin B12","opc":"Vitamin D","opd":"Vitamin E","subject_name":"Biochemistry","id":"r-1"}"#,
                "\n",
                r#"{"question":"Drug used in malignant hyperthermia:","exp":null,"cop":1,"opa":"Dantrolene","opb":"Atropine","opc":"Digoxin","opd":"Heparin","subject_name":"Pharmacology","id":"r-2"}"#,
                "\n",
            ),
        ),
        (
            Format::PubMedQa,
            "ori_pqal.json",
            concat!(
                "{\n",
                "  \"901\": {\"QUESTION\": \"Does daily walking lower blood pressure?\", \"CONTEXTS\": [\"Adults walked 30 minutes a day.\", \"Systolic pressure fell.\"], \"final_decision\": \"yes\", \"LONG_ANSWER\": \"It fell modestly.\"},\n",
                "  \"902\": {\"QUESTION\": \"Does chewing gum prevent ileus?\", \"CONTEXTS\": [\"Results were inconsistent.\"], \"final_decision\": \"maybe\"}\n",
                "}\n",
            ),
        ),
        (
            Format::Mmlu,
            "anatomy_test.csv",
            concat!(
                "Which bone forms the heel?,Talus,Calcaneus,Navicular,Cuboid,B\n",
                "\"Which nerve supplies the \"\"deltoid\"\", mainly?\",Axillary,Radial,Ulnar,Median,A\n",
            ),
        ),
        (
            Format::Jsonl,
            "mine.jsonl",
            concat!(
                r#"{"question": "Which organ stores bile?", "options": {"A": "Liver", "B": "Gallbladder"}, "answer": "B", "explanation": "The gallbladder concentrates bile.", "id": "g-1"}"#,
                "\n",
                r#"{"question": "Normal pH of arterial blood?", "options": ["7.10", "7.40", "7.70"], "answer": 1, "context": "A resting adult."}"#,
                "\n",
            ),
        ),
        (
            Format::Chat,
            "chat.jsonl",
            concat!(
                r#"{"messages": [{"role": "system", "content": "You are a careful clinician."}, {"role": "user", "content": "What is the first step in a patient with suspected sepsis?"}, {"role": "assistant", "content": "Take blood cultures, then give antibiotics promptly.", "reasoning_content": "Cultures first if they do not delay treatment."}], "id": "s-1"}"#,
                "\n",
                r#"{"messages": [{"role": "user", "content": "Name a beta blocker."}, {"role": "assistant", "content": "<think>Common choices.</think>Metoprolol."}]}"#,
                "\n",
            ),
        ),
        (
            Format::Chat,
            "chat.json",
            concat!(
                "[\n",
                "  {\n    \"messages\": [\n      {\"role\": \"user\", \"content\": \"Which test confirms coeliac disease?\"},\n      {\"role\": \"assistant\", \"content\": \"Duodenal biopsy.\", \"reasoning_content\": \"Serology screens; biopsy confirms.\"}\n    ]\n  },\n",
                "  {\"messages\": [{\"role\": \"user\", \"content\": \"Normal adult heart rate?\"}, {\"role\": \"assistant\", \"content\": \"60 to 100 per minute.\"}], \"id\": 7}\n",
                "]\n",
            ),
        ),
        (
            Format::PromptCompletion,
            "pc.jsonl",
            concat!(
                r#"{"prompt": "The antidote for methanol poisoning is", "completion": " fomepizole."}"#,
                "\n",
                r#"{"prompt": [{"role": "user", "content": "Which drug reverses dabigatran?"}], "completion": [{"role": "assistant", "content": "Idarucizumab.", "reasoning_content": "A specific antibody fragment."}]}"#,
                "\n",
            ),
        ),
        (
            Format::PromptCompletion,
            "pc.json",
            "[{\"prompt\": \"Normal serum potassium is\", \"completion\": \" 3.5 to 5.0 mmol/L.\"},\n {\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Vaccine against measles?\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"MMR.\"}]}]\n",
        ),
        (
            Format::Trace,
            "o1.jsonl",
            concat!(
                r#"{"Question": "A woman has fatigue, weight gain and cold intolerance. Which hormone test first?", "Complex_CoT": "These suggest hypothyroidism; TSH is the screening test.", "Response": "Serum TSH.", "System": "You are a medical expert."}"#,
                "\n",
                r#"{"Question": "Which organism causes tetanus?", "Complex_CoT": null, "Response": "Clostridium tetani.", "System": "Answer briefly."}"#,
                "\n",
            ),
        ),
        (
            Format::Trace,
            "o1.json",
            "[\n  {\"Question\": \"Main risk of untreated DDH?\", \"Complex_CoT\": \"Hip instability.\", \"Response\": \"Early osteoarthritis.\", \"System\": \"Be brief.\"}\n]\n",
        ),
    ]
}

fn fields_for(format: Format) -> Option<TraceFields> {
    (format == Format::Trace).then(|| O1.parse().unwrap())
}

/// Reads `bytes` as `format` every way there is; panics only on an inconsistency.
fn read_every_way(dir: &Path, name: &str, format: Format, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let fields = fields_for(format);
    let strict = ReadOptions {
        skip_bad: false,
        fields: fields.clone(),
    };
    let skip = ReadOptions {
        skip_bad: true,
        fields: fields.clone(),
    };
    if format.is_mcq() {
        let mcq = read_file(&path, Some(format), &skip);
        let training = read_training_file(&path, Some(format), &skip);
        match (&mcq, &training) {
            (Ok(m), Ok(t)) => {
                assert_eq!(m.records.len(), t.records.len());
                assert_eq!(m.skipped, t.skipped);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("the MCQ and the training reader disagree: {mcq:?} vs {training:?}"),
        }
        let _ = read_file(&path, None, &strict);
    }
    let _ = read_training_file(&path, Some(format), &strict);
    let skipped = read_training_file(&path, Some(format), &skip);
    let _ = detect(&path);
    let _ = read_training_file(&path, None, &skip);
    let report = check_files_with(
        std::slice::from_ref(&path),
        Some(format),
        fields.as_ref(),
        None,
        false,
    );
    let _ = report.to_string();
    if let Ok(out) = skipped {
        assert_eq!(out.records.len(), report.total.records);
        assert_eq!(out.skipped, report.total.bad);
        assert_eq!(out.problems, report.problems);
    }
}

/// Bytes that are often JSON or CSV syntax, so that random files get past the first check.
fn syntax_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"{}[]\":,\\ \n\r\t0123456789-.eEtrufalsn<>/".to_vec()),
    ]
}

/// A small piece of record syntax, to build random files that look like records.
fn token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\n",
        " ",
        "null",
        "true",
        "7",
        "-1",
        "\"x\"",
        "\"messages\"",
        "\"role\"",
        "\"content\"",
        "\"user\"",
        "\"assistant\"",
        "\"system\"",
        "\"tool\"",
        "\"reasoning_content\"",
        "\"prompt\"",
        "\"completion\"",
        "\"Question\"",
        "\"Response\"",
        "\"Complex_CoT\"",
        "\"System\"",
        "\"question\"",
        "\"options\"",
        "\"answer\"",
        "\"answer_idx\"",
        "\"opa\"",
        "\"cop\"",
        "\"QUESTION\"",
        "\"CONTEXTS\"",
        "\"final_decision\"",
        "\"<think>\"",
        "\"</think>\"",
        "\"A\"",
        "\u{feff}",
        "\u{e9}",
    ])
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Change(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), syntax_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), syntax_byte()).prop_map(|(i, b)| Edit::Change(i, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        match *e {
            Edit::Delete(i) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes.remove(i);
            }
            Edit::Insert(i, b) => {
                let i = i % (bytes.len() + 1);
                bytes.insert(i, b);
            }
            Edit::Change(i, b) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            _ => {}
        }
    }
    bytes
}

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn the_seeds_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    for (format, name, text) in seeds() {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let opts = ReadOptions {
            skip_bad: false,
            fields: fields_for(format),
        };
        let out = read_training_file(&path, Some(format), &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = if name == "o1.json" { 1 } else { 2 };
        assert_eq!(out.records.len(), want, "{name}");
        if format != Format::Trace {
            assert_eq!(detect(&path).unwrap(), format, "{name}");
        }
    }
}

/// For one seed file: random bytes, random record syntax, and the seed with random edits.
macro_rules! reader_properties {
    ($($name:ident => $seed:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn random_bytes_never_panic(
                    bytes in proptest::collection::vec(syntax_byte(), 0..400),
                ) {
                    let dir = tempfile::tempdir().unwrap();
                    let (format, name, _) = seeds()[$seed];
                    read_every_way(dir.path(), name, format, &bytes);
                }

                #[test]
                fn random_record_syntax_never_panics(
                    tokens in proptest::collection::vec(token(), 0..80),
                ) {
                    let dir = tempfile::tempdir().unwrap();
                    let (format, name, _) = seeds()[$seed];
                    read_every_way(dir.path(), name, format, tokens.concat().as_bytes());
                }

                #[test]
                fn mutated_records_never_panic(
                    edits in proptest::collection::vec(edit(), 1..8),
                ) {
                    let dir = tempfile::tempdir().unwrap();
                    let (format, name, text) = seeds()[$seed];
                    read_every_way(dir.path(), name, format, &apply(text, &edits));
                }
            }
        }
    )*};
}

reader_properties! {
    medqa => 0,
    medmcqa => 1,
    pubmedqa => 2,
    mmlu => 3,
    jsonl => 4,
    chat_lines => 5,
    chat_array => 6,
    prompt_completion_lines => 7,
    prompt_completion_array => 8,
    trace_lines => 9,
    trace_array => 10,
}
