//! Reader tests on small invented questions.

use super::*;
use crate::record::Origin;

fn write(dir: &tempfile::TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn read_all(path: &Path, format: Format) -> Vec<McqRecord> {
    read_file(path, Some(format), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .records
}

/// The error of reading a one-file data set, with the temp folder removed from the path.
fn error(dir: &tempfile::TempDir, name: &str, format: Format, content: &str) -> String {
    let path = write(dir, name, content);
    let err = read_file(&path, Some(format), &ReadOptions::default())
        .expect_err("a bad record")
        .to_string();
    let prefix = format!("{}/", dir.path().display());
    err.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{err} does not start with the path"))
        .to_owned()
}

fn opts(list: &[(char, &str)]) -> Vec<(char, String)> {
    list.iter().map(|(l, t)| (*l, (*t).to_owned())).collect()
}

#[test]
fn reads_medqa() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "test_4options.jsonl",
        concat!(
            r#"{"question": "A 5-year-old boy has bleeding gums. Which vitamin is lacking?", "answer": "Vitamin C", "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}, "meta_info": "step1", "answer_idx": "B", "metamap_phrases": ["boy"]}"#,
            "\n\n",
            r#"{"question": "Which drug reverses heparin?", "answer": "Protamine", "options": {"A": "Vitamin K", "B": "Naloxone", "C": "Flumazenil", "D": "Atropine", "E": "Protamine"}, "meta_info": "step2&3", "answer_idx": "E"}"#,
            "\n"
        ),
    );
    let r = read_all(&path, Format::MedQa);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].id, "test_4options:1");
    assert_eq!(r[0].answer, 'B');
    assert_eq!(r[0].answer_text(), "Vitamin C");
    assert_eq!(r[0].subject.as_deref(), Some("step1"));
    assert_eq!(r[0].explanation, None);
    assert_eq!(r[1].id, "test_4options:3");
    assert_eq!(
        r[1].origin,
        Origin {
            file: path.clone(),
            line: 3
        }
    );
    assert_eq!(r[1].options.len(), 5);
    assert_eq!(r[1].answer, 'E');
    assert_eq!(r[1].prompt().question, "Which drug reverses heparin?");
}

#[test]
fn reads_medmcqa() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "dev.jsonl",
        concat!(
            r#"{"question":"Scurvy is due to deficiency of:","exp":"Vitamin C is needed for collagen.","cop":2,"opa":"Vitamin A","opb":"Vitamin C","opc":"Vitamin D","opd":"Vitamin E","subject_name":"Biochemistry","topic_name":null,"id":"q-1","choice_type":"single"}"#,
            "\n",
            r#"{"question":"Drug of choice in anaphylaxis:","exp":null,"cop":1,"opa":"Adrenaline","opb":"Atropine","opc":"Dopamine","opd":"Digoxin","subject_name":"Pharmacology","topic_name":null,"id":"q-2","choice_type":"single"}"#,
            "\n",
            r#"{"question":"Largest organ:","exp":"  ","cop":4,"opa":"Liver","opb":"Brain","opc":"Lung","opd":"Skin","subject_name":"Anatomy"}"#,
        ),
    );
    let r = read_all(&path, Format::MedMcqa);
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].id.as_str(), r[0].answer, r[0].answer_text()),
        ("q-1", 'B', "Vitamin C")
    );
    assert_eq!(
        r[0].explanation.as_deref(),
        Some("Vitamin C is needed for collagen.")
    );
    assert_eq!(r[0].subject.as_deref(), Some("Biochemistry"));
    assert_eq!((r[1].answer, r[1].explanation.as_deref()), ('A', None));
    assert_eq!(r[2].id, "dev:3");
    assert_eq!((r[2].answer, r[2].explanation.as_deref()), ('D', None));
    assert_eq!(
        r[2].options,
        opts(&[('A', "Liver"), ('B', "Brain"), ('C', "Lung"), ('D', "Skin")])
    );
}

const PUBMEDQA: &str = r#"{
    "111": {
        "QUESTION": "Does coffee cure colds?",
        "CONTEXTS": ["We gave 40 people coffee.", "", "Their colds lasted as long."],
        "LABELS": ["METHODS", "X", "RESULTS"],
        "final_decision": "no",
        "LONG_ANSWER": "Coffee did not shorten colds."
    },
    "222": {
        "QUESTION": "Is walking good for the heart?",
        "CONTEXTS": ["Walkers had fewer heart attacks."],
        "final_decision": "yes"
    },
    "333": {
        "QUESTION": "Do cats prevent allergies?",
        "CONTEXTS": ["Results were mixed."],
        "final_decision": "maybe",
        "LONG_ANSWER": "Unclear."
    }
}"#;

#[test]
fn reads_pubmedqa_and_splits_the_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "ori_pqal.json", PUBMEDQA);
    let r = read_all(&path, Format::PubMedQa);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].id, "111");
    assert_eq!(r[0].origin.line, 1);
    assert_eq!(r[2].origin.line, 3);
    assert_eq!(
        r[0].options,
        opts(&[('A', "yes"), ('B', "no"), ('C', "maybe")])
    );
    assert_eq!([r[0].answer, r[1].answer, r[2].answer], ['B', 'A', 'C']);
    assert_eq!(
        r[0].context.as_deref(),
        Some("We gave 40 people coffee.\n\nTheir colds lasted as long.")
    );
    assert_eq!(
        r[0].explanation.as_deref(),
        Some("Coffee did not shorten colds.")
    );
    assert_eq!(r[1].explanation, None);
    assert_eq!(
        r[0].prompt().question,
        "Context: We gave 40 people coffee.\n\nTheir colds lasted as long.\n\nQuestion: Does coffee cure colds?"
    );

    assert_eq!(pubmedqa_test_labels(&path).unwrap(), None);
    write(
        &dir,
        "test_ground_truth.json",
        r#"{"333": "maybe", "111": "no"}"#,
    );
    let labels = pubmedqa_test_labels(&path).unwrap().unwrap();
    assert_eq!(labels.len(), 2);
    let (test, rest) = split_pubmedqa_test(r.clone(), &labels).unwrap();
    assert_eq!(
        test.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["111", "333"]
    );
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "222");

    write(&dir, "test_ground_truth.json", r#"{"333": "yes"}"#);
    let labels = pubmedqa_test_labels(dir.path()).unwrap().unwrap();
    let err = split_pubmedqa_test(r, &labels).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3: final_decision: \"maybe\" disagrees with the test label \"yes\" (item \"333\")",
            path.display()
        )
    );
}

#[test]
fn reads_mmlu() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "clinical_knowledge_test.csv",
        concat!(
            "Which vitamin prevents scurvy?,Vitamin A,Vitamin C,Vitamin D,Vitamin K,B\n",
            "\"A patient says \"\"ouch, it hurts\"\",\nwhere?\",Knee,\"Hip, left\",Ankle,Wrist,B\n",
            "Normal resting heart rate?,20,70,150,250,B\n",
        ),
    );
    let r = read_all(&path, Format::Mmlu);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].subject.as_deref(), Some("clinical_knowledge"));
    assert_eq!(r[0].answer, 'B');
    assert_eq!(r[1].question, "A patient says \"ouch, it hurts\",\nwhere?");
    assert_eq!(r[1].answer_text(), "Hip, left");
    assert_eq!(r[1].origin.line, 2);
    assert_eq!(r[2].origin.line, 4);
    assert_eq!(r[2].id, "clinical_knowledge_test:4");
    assert_eq!(mmlu_subject(Path::new("x/anatomy_val.csv")), "anatomy");
}

#[test]
fn reads_generic_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "mine.jsonl",
        concat!(
            "\u{feff}",
            r#"{"question": "Which organ makes insulin?", "options": {"A": "Liver", "B": "Pancreas", "C": "Spleen"}, "answer": "B", "explanation": "Beta cells.", "subject": "Physiology", "id": "ins-1"}"#,
            "\n",
            r#"{"question": "Normal adult body temperature?", "options": ["30 C", "37 C"], "answer": 1, "extra": [1, 2]}"#,
            "\n",
            r#"{"question": "Does it help?", "options": ["yes", "no", "maybe"], "answer": "C", "context": "A small trial.", "id": 77, "subject": null}"#,
            "\n",
        ),
    );
    let r = read_all(&path, Format::Jsonl);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].id, "ins-1");
    assert_eq!((r[0].answer, r[0].answer_text()), ('B', "Pancreas"));
    assert_eq!(r[0].explanation.as_deref(), Some("Beta cells."));
    assert_eq!(r[0].subject.as_deref(), Some("Physiology"));
    assert_eq!(r[1].id, "mine:2");
    assert_eq!(r[1].options, opts(&[('A', "30 C"), ('B', "37 C")]));
    assert_eq!(r[1].answer, 'B');
    assert_eq!(r[2].id, "77");
    assert_eq!(r[2].context.as_deref(), Some("A small trial."));
    assert_eq!(r[2].subject, None);
    // The generic format is what `detect` finds for these keys.
    assert_eq!(open(&path, None).unwrap().0, Format::Jsonl);
}

const GOOD: &str = r#"{"question": "Which organ makes insulin?", "options": {"A": "Liver", "B": "Pancreas"}, "answer": "B"}"#;

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(&dir, "e.jsonl", Format::Jsonl, ""),
        "e.jsonl: file: empty: no records"
    );
    assert_eq!(
        error(&dir, "e2.jsonl", Format::Jsonl, "\n  \n"),
        "e2.jsonl: file: empty: no records"
    );
    assert_eq!(
        error(&dir, "e_test.csv", Format::Mmlu, ""),
        "e_test.csv: file: empty: no records"
    );
    assert_eq!(
        error(&dir, "e.json", Format::PubMedQa, "{}"),
        "e.json: file: empty: no records"
    );
}

#[test]
fn non_utf8_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = format!("{GOOD}\n").into_bytes();
    bytes.extend_from_slice(b"{\"question\": \"caf\xe9\"}\n");
    let path = write(&dir, "latin1.jsonl", &bytes);
    let err = read_file(&path, Some(Format::Jsonl), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: text: not valid UTF-8 (byte 18 of the line)",
            path.display()
        )
    );
    let mut bytes = b"{\n  \"1\": {\"QUESTION\": \"caf".to_vec();
    bytes.extend_from_slice(b"\xe9?\"}\n}");
    let path = write(&dir, "latin1.json", &bytes);
    let err = read_file(&path, Some(Format::PubMedQa), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: text: not valid UTF-8 (byte 25 of the line)",
            path.display()
        )
    );
    let path = write(&dir, "latin1_test.csv", b"caf\xe9?,a,b,c,d,A\n");
    let err = read_file(&path, Some(Format::Mmlu), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:1: question: not valid UTF-8 (byte 4 of the field)",
            path.display()
        )
    );
}

#[test]
fn invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::Jsonl,
            &format!("{GOOD}\n{{\"question\": \"x\",\n")
        ),
        "a.jsonl:2: json: invalid JSON: EOF while parsing a value (column 17)"
    );
    assert_eq!(
        error(&dir, "b.jsonl", Format::Jsonl, "[1, 2]\n"),
        "b.jsonl:1: json: expected a JSON object, found an array"
    );
    assert_eq!(
        error(
            &dir,
            "c.json",
            Format::PubMedQa,
            "{\n  \"1\": {\"QUESTION\": \"q\"\n  \"2\": {}\n}"
        ),
        "c.json:3: json: invalid JSON: expected `,` or `}` (column 3)"
    );
}

#[test]
fn missing_or_empty_question() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::Jsonl,
            r#"{"options": ["x", "y"], "answer": 0}"#
        ),
        "a.jsonl:1: question: missing"
    );
    assert_eq!(
        error(
            &dir,
            "b.jsonl",
            Format::Jsonl,
            &format!(
                "{GOOD}\n{}",
                r#"{"question": " \n", "options": ["x", "y"], "answer": 0}"#
            )
        ),
        "b.jsonl:2: question: empty"
    );
    assert_eq!(
        error(
            &dir,
            "c.jsonl",
            Format::MedQa,
            r#"{"question": null, "options": {"A": "x", "B": "y"}, "answer_idx": "A"}"#
        ),
        "c.jsonl:1: question: missing (null)"
    );
    assert_eq!(
        error(
            &dir,
            "d.jsonl",
            Format::MedMcqa,
            r#"{"question": 7, "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 1}"#
        ),
        "d.jsonl:1: question: expected a string, found a number"
    );
    assert_eq!(
        error(
            &dir,
            "e.json",
            Format::PubMedQa,
            r#"{"1": {"CONTEXTS": ["c"], "final_decision": "yes"}}"#
        ),
        "e.json:1: QUESTION: missing (item \"1\")"
    );
    assert_eq!(
        error(
            &dir,
            "f_test.csv",
            Format::Mmlu,
            "q,a,b,c,d,A\n \t,a,b,c,d,A\n"
        ),
        "f_test.csv:2: question: empty"
    );
}

#[test]
fn missing_option() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::MedMcqa,
            r#"{"question": "q", "opa": "a", "opb": "b", "opd": "d", "cop": 1}"#
        ),
        "a.jsonl:1: opc: missing"
    );
    assert_eq!(
        error(
            &dir,
            "b.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": {"A": "x", "B": "", "C": "z"}, "answer": "A"}"#
        ),
        "b.jsonl:1: options.B: empty"
    );
    assert_eq!(
        error(
            &dir,
            "c.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "answer": "A"}"#
        ),
        "c.jsonl:1: options: missing"
    );
    assert_eq!(
        error(
            &dir,
            "d.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": ["x", null], "answer": "A"}"#
        ),
        "d.jsonl:1: options.B: missing (null)"
    );
    assert_eq!(
        error(&dir, "e_test.csv", Format::Mmlu, "q,a,b,,d,A\n"),
        "e_test.csv:1: C: empty"
    );
    assert_eq!(
        error(&dir, "f_test.csv", Format::Mmlu, "q,a,b,c,A\n"),
        "f_test.csv:1: columns: expected 6 (question, A, B, C, D, answer), found 5"
    );
    assert_eq!(
        error(
            &dir,
            "g.json",
            Format::PubMedQa,
            r#"{"1": {"QUESTION": "q?", "CONTEXTS": [" "], "final_decision": "yes"}}"#
        ),
        "g.json:1: CONTEXTS: empty (item \"1\")"
    );
}

#[test]
fn fewer_than_two_options() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": {"A": "x"}, "answer": "A"}"#
        ),
        "a.jsonl:1: options: fewer than 2 options (1)"
    );
    assert_eq!(
        error(
            &dir,
            "b.jsonl",
            Format::MedQa,
            r#"{"question": "q", "options": {}, "answer_idx": "A"}"#
        ),
        "b.jsonl:1: options: fewer than 2 options (0)"
    );
}

#[test]
fn answer_not_among_the_options() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": ["w", "x", "y", "z"], "answer": "E"}"#
        ),
        "a.jsonl:1: answer: \"E\" is not one of the options A, B, C, D"
    );
    assert_eq!(
        error(
            &dir,
            "b.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": ["w", "x", "y", "z"], "answer": 4}"#
        ),
        "b.jsonl:1: answer: index 4 is not one of the options (0-3 for A, B, C, D)"
    );
    assert_eq!(
        error(
            &dir,
            "c.jsonl",
            Format::MedQa,
            r#"{"question": "q", "options": {"A": "x", "B": "y"}, "answer_idx": "C", "answer": "y"}"#
        ),
        "c.jsonl:1: answer_idx: \"C\" is not one of the options A, B"
    );
    assert_eq!(
        error(
            &dir,
            "d.jsonl",
            Format::MedQa,
            r#"{"question": "q", "options": {"A": "x", "B": "y"}, "answer_idx": "A", "answer": "y"}"#
        ),
        "d.jsonl:1: answer: \"y\" is not the text of option A (\"x\")"
    );
    assert_eq!(
        error(
            &dir,
            "e.jsonl",
            Format::MedMcqa,
            r#"{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}"#
        ),
        "e.jsonl:1: cop: 0 is not one of 1-4 (1 = opa; the original MedMCQA cop is 1-based)"
    );
    assert_eq!(
        error(
            &dir,
            "f.json",
            Format::PubMedQa,
            r#"{"1": {"QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}"#
        ),
        "f.json:1: final_decision: \"perhaps\" is not yes, no or maybe (item \"1\")"
    );
    assert_eq!(
        error(&dir, "g_test.csv", Format::Mmlu, "q,a,b,c,d,E\n"),
        "g_test.csv:1: answer: \"E\" is not one of the options A, B, C, D"
    );
    assert_eq!(
        error(
            &dir,
            "h.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": ["x", "y"], "answer": true}"#
        ),
        "h.jsonl:1: answer: expected an option letter or a 0-based index, found a boolean"
    );
}

#[test]
fn duplicate_option_letters() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(
            &dir,
            "a.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "options": {"A": "x", "B": "y", "B": "z"}, "answer": "A"}"#
        ),
        "a.jsonl:1: options: letter B appears twice"
    );
    assert_eq!(
        error(
            &dir,
            "b.jsonl",
            Format::MedQa,
            r#"{"question": "q", "options": {"A": "x", "b": "y"}, "answer_idx": "A"}"#
        ),
        "b.jsonl:1: options: key \"b\" is not a letter A-Z"
    );
    assert_eq!(
        error(
            &dir,
            "c.jsonl",
            Format::Jsonl,
            r#"{"question": "q", "question": "r", "options": ["x", "y"], "answer": 0}"#
        ),
        "c.jsonl:1: question: appears twice in the record"
    );
}

#[test]
fn skip_bad_counts_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let bad = r#"{"question": "q", "options": ["x"], "answer": 0}"#;
    let path = write(
        &dir,
        "mixed.jsonl",
        format!("{GOOD}\n{bad}\nnot json\n{GOOD}\n"),
    );
    let err = read_file(&path, None, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.problem().unwrap().line, 2);
    let out = read_file(
        &path,
        None,
        &ReadOptions {
            skip_bad: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.skipped, 2);
    assert_eq!(
        out.problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect::<Vec<_>>(),
        [(2, "options"), (3, "json")]
    );
    assert_eq!(out.records[1].origin.line, 4);
    // A file without a single valid record is an error even with skip_bad.
    let path = write(&dir, "allbad.jsonl", format!("{bad}\n"));
    assert!(
        read_file(
            &path,
            None,
            &ReadOptions {
                skip_bad: true,
                ..Default::default()
            }
        )
        .is_err()
    );
    // Several files in order.
    let other = write(&dir, "other.jsonl", format!("{GOOD}\n"));
    let both = read_files(
        &[dir.path().join("mixed.jsonl"), other],
        None,
        &ReadOptions {
            skip_bad: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((both.records.len(), both.skipped), (3, 2));
}

#[test]
fn streaming_yields_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "s.jsonl", format!("{GOOD}\n{{}}\n{GOOD}\n[]\n"));
    let (format, records) = open(&path, None).unwrap();
    assert_eq!(format, Format::Jsonl);
    let kinds: Vec<std::result::Result<usize, String>> = records
        .map(|r| r.map(|r| r.origin.line).map_err(|p| p.field))
        .collect();
    assert_eq!(
        kinds,
        [Ok(1), Err("question".into()), Ok(3), Err("json".into())]
    );
}
