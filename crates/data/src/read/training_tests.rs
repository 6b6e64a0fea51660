//! Tests of the training formats (chat, prompt-completion, trace) on small invented records: one
//! test per validation rule with its exact `file:line: field: message`, JSON Lines and JSON
//! array files, detection, and a table of malformed records.

use super::*;
use crate::conversation::{ChatKind, ChatRecord, ChatTurn, Role, TextPair};
use crate::record::Origin;

fn write(dir: &tempfile::TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn strip(dir: &tempfile::TempDir, err: String) -> String {
    let prefix = format!("{}/", dir.path().display());
    err.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{err} does not start with the path"))
        .to_owned()
}

fn opts_with(fields: Option<&str>) -> ReadOptions {
    ReadOptions {
        fields: fields.map(|f| f.parse().unwrap()),
        ..Default::default()
    }
}

/// The error of reading `content` as `format` from a file `name`, the folder removed.
fn error_in(name: &str, format: Format, fields: Option<&str>, content: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, name, content);
    let err = read_training_file(&path, Some(format), &opts_with(fields))
        .expect_err("a bad record")
        .to_string();
    strip(&dir, err)
}

/// The error of a one-record chat JSON Lines file `c.jsonl`.
fn chat_error(content: &str) -> String {
    error_in("c.jsonl", Format::Chat, None, content)
}

/// The error of a one-record prompt-completion JSON Lines file `p.jsonl`.
fn pc_error(content: &str) -> String {
    error_in("p.jsonl", Format::PromptCompletion, None, content)
}

const O1: &str = "question=Question,reasoning=Complex_CoT,answer=Response";

/// The error of a one-record trace JSON Lines file `t.jsonl` read with `O1` (and `system=sys`
/// when `system`).
fn trace_error(content: &str) -> String {
    error_in("t.jsonl", Format::Trace, Some(O1), content)
}

fn read_ok(path: &Path, format: Option<Format>, fields: Option<&str>) -> Vec<TrainingRecord> {
    read_training_file(path, format, &opts_with(fields))
        .unwrap_or_else(|e| panic!("{e}"))
        .records
}

fn chat(r: &TrainingRecord) -> &ChatRecord {
    match r {
        TrainingRecord::Chat(c) => c,
        other => panic!("not a chat record: {other:?}"),
    }
}

fn turn(role: Role, content: &str, reasoning: Option<&str>) -> ChatTurn {
    ChatTurn::new(role, content, reasoning.map(Into::into))
}

const USER: &str =
    r#"{"role": "user", "content": "Which electrolyte disturbance causes peaked T waves?"}"#;
const ASSISTANT: &str = r#"{"role": "assistant", "content": "Hyperkalaemia."}"#;

/// `{"messages": [USER, <m>]}`: a conversation whose second message is `m`.
fn with_reply(m: &str) -> String {
    format!(r#"{{"messages": [{USER}, {m}]}}"#)
}

// ---------------------------------------------------------------------------------------------
// Reading valid records.

#[test]
fn reads_chat_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "chat.jsonl",
        concat!(
            "\u{feff}",
            r#"{"messages": [{"role": "system", "content": "You are a careful clinician."}, {"role": "user", "content": "A patient on lithium has a coarse tremor. What should be checked first?"}, {"role": "assistant", "content": "The serum lithium level.", "reasoning_content": "Coarse tremor suggests toxicity."}], "id": "li-1", "source": "invented"}"#,
            "\n\n",
            r#"{"messages": [{"role": "user", "content": "Name a loop diuretic."}, {"role": "assistant", "content": "Furosemide.", "reasoning_content": null}, {"role": "user", "content": "And a thiazide?"}, {"role": "assistant", "content": "<think>\nA common one.\n</think>\n\nHydrochlorothiazide."}], "id": 42}"#,
            "\n",
            r#"{"messages": [{"role": "user", "content": "Is aspirin an NSAID?"}, {"role": "assistant", "content": "", "reasoning_content": "It inhibits COX irreversibly, so yes."}]}"#,
            "\n",
        ),
    );
    let r = read_ok(&path, None, None);
    assert_eq!(r.len(), 3);
    let first = chat(&r[0]);
    assert_eq!(first.id, "li-1");
    assert_eq!(first.kind, ChatKind::Conversation);
    assert_eq!(
        first.origin,
        Origin {
            file: path.clone(),
            line: 1
        }
    );
    assert_eq!(
        first.turns,
        [
            turn(Role::System, "You are a careful clinician.", None),
            turn(
                Role::User,
                "A patient on lithium has a coarse tremor. What should be checked first?",
                None
            ),
            turn(
                Role::Assistant,
                "The serum lithium level.",
                Some("Coarse tremor suggests toxicity.")
            ),
        ]
    );
    assert_eq!(
        r[0].question_text(),
        "A patient on lithium has a coarse tremor. What should be checked first?"
    );
    let second = chat(&r[1]);
    assert_eq!((second.id.as_str(), second.origin.line), ("42", 3));
    assert_eq!(second.turns[1].reasoning, None);
    // A <think> block stays in the content.
    assert!(second.turns[3].content.starts_with("<think>"));
    assert!(second.has_reasoning());
    let third = chat(&r[2]);
    assert_eq!(third.id, "chat:4");
    assert_eq!(third.turns[1].content, "");
    assert!(third.turns[1].reasoning.is_some());
}

#[test]
fn reads_prompt_completion_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "pc.jsonl",
        concat!(
            r#"{"prompt": "The first-line treatment of anaphylaxis is", "completion": " intramuscular adrenaline."}"#,
            "\n",
            r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Antidote for warfarin?"}], "completion": [{"role": "assistant", "content": "Vitamin K, with prothrombin complex concentrate when bleeding.", "reasoning_content": "Warfarin blocks vitamin K recycling."}], "id": "w-1"}"#,
            "\n",
        ),
    );
    let r = read_ok(&path, None, None);
    assert_eq!(
        r[0],
        TrainingRecord::Text(TextPair {
            id: "pc:1".into(),
            prompt: "The first-line treatment of anaphylaxis is".into(),
            completion: " intramuscular adrenaline.".into(),
            origin: Origin {
                file: path.clone(),
                line: 1
            },
        })
    );
    let c = chat(&r[1]);
    assert_eq!(c.id, "w-1");
    assert_eq!(c.kind, ChatKind::PromptCompletion { prompt_len: 2 });
    assert_eq!(c.turns.len(), 3);
    assert_eq!(c.turns[2].role, Role::Assistant);
    assert_eq!(r[1].question_text(), "Antidote for warfarin?");
}

#[test]
fn reads_traces_through_the_field_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "o1.jsonl",
        concat!(
            r#"{"Question": "A runner collapses in heat with a temperature of 41 C and confusion. Diagnosis?", "Complex_CoT": "High temperature plus altered mental state after exertion points to heat stroke.", "Response": "Exertional heat stroke.", "sys": "You are a medical expert."}"#,
            "\n",
            r#"{"Question": "Which vitamin deficiency causes night blindness?", "Complex_CoT": null, "Response": "Vitamin A.", "sys": "Answer briefly.", "extra": 1}"#,
            "\n",
        ),
    );
    // Fields given, no format: trace.
    let r = read_ok(&path, None, Some(O1));
    let c = chat(&r[0]);
    assert_eq!(c.kind, ChatKind::Conversation);
    assert_eq!(
        c.turns,
        [
            turn(
                Role::User,
                "A runner collapses in heat with a temperature of 41 C and confusion. Diagnosis?",
                None
            ),
            turn(
                Role::Assistant,
                "Exertional heat stroke.",
                Some(
                    "High temperature plus altered mental state after exertion points to heat stroke."
                )
            ),
        ]
    );
    assert_eq!(c.id, "o1:1");
    assert_eq!(chat(&r[1]).turns[1].reasoning, None);
    let with_system = read_ok(
        &path,
        Some(Format::Trace),
        Some(&format!("{O1},system=sys")),
    );
    let c = chat(&with_system[1]);
    assert_eq!(c.turns[0], turn(Role::System, "Answer briefly.", None));
    assert_eq!(c.turns.len(), 3);
    assert_eq!(
        open_training(&path, None, Some(&O1.parse().unwrap()))
            .unwrap()
            .0,
        Format::Trace
    );
}

#[test]
fn json_array_files_and_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        "\u{feff}[\n",
        "  {\n",
        "    \"messages\": [\n",
        "      {\"role\": \"user\", \"content\": \"What does a positive Babinski sign suggest in an adult?\"},\n",
        "      {\"role\": \"assistant\", \"content\": \"An upper motor neuron lesion.\"}\n",
        "    ]\n",
        "  },\n",
        "  {\"messages\": [{\"role\": \"user\", \"content\": \"Normal adult respiratory rate?\"}, {\"role\": \"assistant\", \"content\": \"About 12 to 20 breaths per minute.\"}], \"id\": \"rr\"},\n",
        "\n",
        "  {\n",
        "    \"messages\": [{\"role\": \"user\", \"content\": \"Brackets ] and braces } inside \\\"strings\\\"?\"}, {\"role\": \"assistant\", \"content\": \"Are text.\"}]\n",
        "  }\n",
        "]\n",
    );
    let path = write(&dir, "chat.json", text);
    assert_eq!(detect(&path).unwrap(), Format::Chat);
    let r = read_ok(&path, None, None);
    assert_eq!(
        r.iter().map(|r| r.origin().line).collect::<Vec<_>>(),
        [2, 8, 10]
    );
    assert_eq!(
        r.iter().map(|r| r.id()).collect::<Vec<_>>(),
        ["chat:2", "rr", "chat:10"]
    );
    assert_eq!(
        r[2].question_text(),
        "Brackets ] and braces } inside \"strings\"?"
    );

    // Prompt-completion and trace arrays, on one line.
    let path = write(
        &dir,
        "pc.json",
        r#"[{"prompt": "Normal serum sodium is about", "completion": " 135 to 145 mmol/L."}, {"prompt": "Normal fasting glucose is below", "completion": " 5.6 mmol/L."}]"#,
    );
    assert_eq!(detect(&path).unwrap(), Format::PromptCompletion);
    let r = read_ok(&path, None, None);
    assert_eq!(r.len(), 2);
    assert!(matches!(&r[1], TrainingRecord::Text(t) if t.origin.line == 1));
    let path = write(
        &dir,
        "o1.json",
        "[\n{\"Question\": \"First-line drug for absence seizures?\", \"Complex_CoT\": \"Typical absence in a child.\", \"Response\": \"Ethosuximide.\"}\n]",
    );
    let r = read_ok(&path, None, Some(O1));
    assert_eq!((r.len(), r[0].origin().line), (1, 2));

    // An array of records keeps going after a bad element.
    let path = write(
        &dir,
        "mixed.json",
        "[\n  {\"messages\": []},\n  7,\n  {\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]},\n  {\"messages\" []},\n  {\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"z\"}]}\n]\n",
    );
    let out = read_training_file(
        &path,
        Some(Format::Chat),
        &ReadOptions {
            skip_bad: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((out.records.len(), out.skipped), (2, 3));
    assert_eq!(out.records[0].origin().line, 4);
    assert_eq!(out.records[1].origin().line, 6);
    let problems: Vec<String> = out
        .problems
        .iter()
        .map(|p| strip(&dir, p.to_string()))
        .collect();
    assert_eq!(
        problems,
        [
            "mixed.json:2: messages: empty",
            "mixed.json:3: json: expected a JSON object, found a number",
            "mixed.json:5: json: invalid JSON: expected `:` (column 15)",
        ]
    );
}

#[test]
fn broken_json_arrays() {
    for (text, want) in [
        ("[]", "a.json: file: empty: no records"),
        ("  [\n\n ]  \n", "a.json: file: empty: no records"),
        (
            "[\n  {\"messages\": [\n",
            "a.json:2: json: invalid JSON array: the array does not end: `]` is missing, or a bracket or quote of this record is unbalanced (column 3)",
        ),
        (
            "[\n  {\"prompt\": \"a\", \"completion\": \"b\"}\n] [",
            "a.json:3: json: invalid JSON array: text after the end of the array (column 3)",
        ),
        (
            "[\n  {\"prompt\": \"a\", \"completion\": \"b\"},\n]",
            "a.json:3: json: invalid JSON array: expected a record here (an empty place between commas or brackets) (column 1)",
        ),
        (
            "[{\"prompt\": \"a\", \"completion\": \"b\"}}]",
            "a.json:1: json: invalid JSON array: a `}` that closes nothing (column 36)",
        ),
        (
            "[\n  {\"prompt\": \"a\",\n   \"completion\" \"b\"}\n]",
            "a.json:3: json: invalid JSON: expected `:` (column 17)",
        ),
    ] {
        assert_eq!(
            error_in("a.json", Format::PromptCompletion, None, text),
            want,
            "{text:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"[\n {\"prompt\": \"caf".to_vec();
    bytes.extend_from_slice(b"\xe9\", \"completion\": \"x\"}\n]");
    let path = write(&dir, "latin1.json", &bytes);
    let err = read_training_file(
        &path,
        Some(Format::PromptCompletion),
        &ReadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        strip(&dir, err),
        "latin1.json:2: text: not valid UTF-8 (byte 17 of the line)"
    );
}

#[test]
fn json_lines_problems() {
    let good = with_reply(ASSISTANT);
    assert_eq!(
        chat_error(&format!("{good}\n{{\"messages\": [\n")),
        "c.jsonl:2: json: invalid JSON: EOF while parsing a list (column 14)"
    );
    assert_eq!(
        chat_error(&format!("{good}\n[{good}]\n")),
        "c.jsonl:2: json: expected a JSON object, found an array"
    );
    assert_eq!(chat_error(""), "c.jsonl: file: empty: no records");
    assert_eq!(
        chat_error(r#"{"messages": [], "messages": []}"#),
        "c.jsonl:1: messages: appears twice in the record"
    );
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{USER}, {ASSISTANT}], "id": 1.5}}"#
        )),
        "c.jsonl:1: id: expected a string, found a number"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend_from_slice(b"{\"messages\": \"\xff\"}\n");
    let path = write(&dir, "bytes.jsonl", &bytes);
    let err = read_training_file(&path, Some(Format::Chat), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        strip(&dir, err),
        "bytes.jsonl:2: text: not valid UTF-8 (byte 15 of the line)"
    );
}

// ---------------------------------------------------------------------------------------------
// One test per rule: chat.

#[test]
fn chat_messages_missing() {
    assert_eq!(chat_error(r#"{"id": "x"}"#), "c.jsonl:1: messages: missing");
    assert_eq!(
        chat_error(r#"{"messages": null}"#),
        "c.jsonl:1: messages: missing (null)"
    );
}

#[test]
fn chat_messages_not_an_array() {
    assert_eq!(
        chat_error(r#"{"messages": {"role": "user"}}"#),
        "c.jsonl:1: messages: expected an array of messages, found an object"
    );
}

#[test]
fn chat_messages_empty() {
    assert_eq!(
        chat_error(r#"{"messages": []}"#),
        "c.jsonl:1: messages: empty"
    );
}

#[test]
fn chat_message_not_an_object() {
    assert_eq!(
        chat_error(&format!(r#"{{"messages": [{USER}, "Hyperkalaemia."]}}"#)),
        "c.jsonl:1: messages[1]: expected a message object, found a string"
    );
}

#[test]
fn chat_role_missing_or_not_a_string() {
    assert_eq!(
        chat_error(&with_reply(r#"{"content": "Hyperkalaemia."}"#)),
        "c.jsonl:1: messages[1].role: missing"
    );
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": null, "content": "Hyperkalaemia."}"#
        )),
        "c.jsonl:1: messages[1].role: missing (null)"
    );
    assert_eq!(
        chat_error(&with_reply(r#"{"role": 2, "content": "Hyperkalaemia."}"#)),
        "c.jsonl:1: messages[1].role: expected a string, found a number"
    );
}

#[test]
fn chat_content_missing_or_not_a_string() {
    assert_eq!(
        chat_error(&with_reply(r#"{"role": "assistant"}"#)),
        "c.jsonl:1: messages[1].content: missing"
    );
    assert_eq!(
        chat_error(&with_reply(r#"{"role": "assistant", "content": null}"#)),
        "c.jsonl:1: messages[1].content: missing (null)"
    );
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": [{"type": "text", "text": "Hyperkalaemia."}]}"#
        )),
        "c.jsonl:1: messages[1].content: expected a string, found an array"
    );
}

#[test]
fn chat_empty_content() {
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{{"role": "user", "content": " \n"}}, {ASSISTANT}]}}"#
        )),
        "c.jsonl:1: messages[0].content: empty content"
    );
    // An assistant message may be empty only with reasoning.
    assert_eq!(
        chat_error(&with_reply(r#"{"role": "assistant", "content": ""}"#)),
        "c.jsonl:1: messages[1].content: empty content"
    );
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": "", "reasoning_content": "  "}"#
        )),
        "c.jsonl:1: messages[1].content: empty content"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "ok.jsonl",
        with_reply(
            r#"{"role": "assistant", "content": "", "reasoning_content": "Tall T waves mean potassium."}"#,
        ),
    );
    assert_eq!(read_ok(&path, Some(Format::Chat), None).len(), 1);
}

#[test]
fn chat_unknown_role() {
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "doctor", "content": "Hyperkalaemia."}"#
        )),
        "c.jsonl:1: messages[1].role: unknown role `doctor`: expected system, user, assistant or tool"
    );
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "Assistant", "content": "Hyperkalaemia."}"#
        )),
        "c.jsonl:1: messages[1].role: unknown role `Assistant`: expected system, user, assistant or tool"
    );
}

#[test]
fn chat_system_only_first() {
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{USER}, {{"role": "system", "content": "Be brief."}}, {ASSISTANT}]}}"#
        )),
        "c.jsonl:1: messages[1].role: a system message must come first"
    );
}

#[test]
fn chat_needs_a_user_turn() {
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{{"role": "system", "content": "Be brief."}}, {ASSISTANT}]}}"#
        )),
        "c.jsonl:1: messages: the conversation has no user turn"
    );
}

#[test]
fn chat_must_end_with_an_assistant_turn() {
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{USER}, {ASSISTANT}, {{"role": "user", "content": "Why?"}}]}}"#
        )),
        "c.jsonl:1: messages[2].role: the conversation must end with an assistant turn"
    );
    assert_eq!(
        chat_error(&format!(r#"{{"messages": [{USER}]}}"#)),
        "c.jsonl:1: messages[0].role: the conversation must end with an assistant turn"
    );
}

#[test]
fn chat_reasoning_given_twice() {
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": "<think>Potassium.</think>Hyperkalaemia.", "reasoning_content": "Potassium."}"#
        )),
        "c.jsonl:1: messages[1].content: reasoning given twice: reasoning_content and a <think> block in content"
    );
}

#[test]
fn chat_think_without_end() {
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": "<think>Potassium is high. Hyperkalaemia."}"#
        )),
        "c.jsonl:1: messages[1].content: a <think> without </think>"
    );
}

#[test]
fn chat_reasoning_content_not_a_string() {
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": "Hyperkalaemia.", "reasoning_content": ["Potassium."]}"#
        )),
        "c.jsonl:1: messages[1].reasoning_content: expected a string, found an array"
    );
}

#[test]
fn chat_reasoning_only_on_assistant_turns() {
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{{"role": "user", "content": "Peaked T waves?", "reasoning_content": "I wonder."}}, {ASSISTANT}]}}"#
        )),
        "c.jsonl:1: messages[0].reasoning_content: only an assistant message can have reasoning, not a user message"
    );
}

#[test]
fn chat_message_key_twice() {
    assert_eq!(
        chat_error(&with_reply(
            r#"{"role": "assistant", "content": "Hyperkalaemia.", "content": "Hypokalaemia."}"#
        )),
        "c.jsonl:1: messages[1].content: appears twice in the message"
    );
}

// ---------------------------------------------------------------------------------------------
// One test per rule: prompt-completion.

#[test]
fn pc_missing_keys() {
    assert_eq!(
        pc_error(r#"{"completion": "x"}"#),
        "p.jsonl:1: prompt: missing"
    );
    assert_eq!(
        pc_error(r#"{"prompt": "x", "completion": null}"#),
        "p.jsonl:1: completion: missing (null)"
    );
}

#[test]
fn pc_wrong_types() {
    assert_eq!(
        pc_error(r#"{"prompt": 3, "completion": "x"}"#),
        "p.jsonl:1: prompt: expected a string or an array of messages, found a number"
    );
    assert_eq!(
        pc_error(r#"{"prompt": "x", "completion": {"role": "assistant"}}"#),
        "p.jsonl:1: completion: expected a string or an array of messages, found an object"
    );
}

#[test]
fn pc_empty_strings() {
    assert_eq!(
        pc_error(r#"{"prompt": " ", "completion": "Bradycardia."}"#),
        "p.jsonl:1: prompt: empty"
    );
    assert_eq!(
        pc_error(r#"{"prompt": "Atropine treats symptomatic", "completion": ""}"#),
        "p.jsonl:1: completion: empty"
    );
}

#[test]
fn pc_string_mixed_with_array() {
    assert_eq!(
        pc_error(
            r#"{"prompt": "Atropine treats", "completion": [{"role": "assistant", "content": "bradycardia"}]}"#
        ),
        "p.jsonl:1: completion: an array of messages, but prompt is a string: both must be strings or both arrays of messages"
    );
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Atropine treats?"}], "completion": "bradycardia"}"#
        ),
        "p.jsonl:1: completion: a string, but prompt is an array of messages: both must be strings or both arrays of messages"
    );
}

#[test]
fn pc_prompt_messages_empty() {
    assert_eq!(
        pc_error(r#"{"prompt": [], "completion": [{"role": "assistant", "content": "x"}]}"#),
        "p.jsonl:1: prompt: empty"
    );
}

#[test]
fn pc_prompt_message_validated() {
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "patient", "content": "My chest hurts."}], "completion": [{"role": "assistant", "content": "Get an ECG."}]}"#
        ),
        "p.jsonl:1: prompt[0].role: unknown role `patient`: expected system, user, assistant or tool"
    );
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Chest pain?"}, {"role": "system", "content": "Be brief."}], "completion": [{"role": "assistant", "content": "Get an ECG."}]}"#
        ),
        "p.jsonl:1: prompt[1].role: a system message must come first"
    );
}

#[test]
fn pc_prompt_needs_a_user_turn() {
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "tool", "content": "{\"troponin\": \"high\"}"}], "completion": [{"role": "assistant", "content": "Myocardial injury."}]}"#
        ),
        "p.jsonl:1: prompt: the prompt has no user turn"
    );
}

#[test]
fn pc_prompt_must_end_with_user_or_tool() {
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Chest pain?"}, {"role": "assistant", "content": "Get an ECG."}], "completion": [{"role": "assistant", "content": "Then troponin."}]}"#
        ),
        "p.jsonl:1: prompt[1].role: the prompt must end with a user or tool turn"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "tool.jsonl",
        r#"{"prompt": [{"role": "user", "content": "Chest pain; result?"}, {"role": "tool", "content": "troponin high"}], "completion": [{"role": "assistant", "content": "Myocardial injury."}]}"#,
    );
    let r = read_ok(&path, None, None);
    assert_eq!(
        chat(&r[0]).kind,
        ChatKind::PromptCompletion { prompt_len: 2 }
    );
}

#[test]
fn pc_completion_messages_empty() {
    assert_eq!(
        pc_error(r#"{"prompt": [{"role": "user", "content": "Chest pain?"}], "completion": []}"#),
        "p.jsonl:1: completion: empty"
    );
}

#[test]
fn pc_completion_assistant_only() {
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Chest pain?"}], "completion": [{"role": "assistant", "content": "Get an ECG."}, {"role": "user", "content": "Done."}]}"#
        ),
        "p.jsonl:1: completion[1].role: the completion must hold assistant turns only, found user"
    );
}

#[test]
fn pc_completion_message_validated() {
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Chest pain?"}], "completion": [{"role": "assistant", "content": " "}]}"#
        ),
        "p.jsonl:1: completion[0].content: empty content"
    );
    assert_eq!(
        pc_error(
            r#"{"prompt": [{"role": "user", "content": "Chest pain?"}], "completion": [{"role": "assistant", "content": "<think>ECG first.", "reasoning_content": null}]}"#
        ),
        "p.jsonl:1: completion[0].content: a <think> without </think>"
    );
}

// ---------------------------------------------------------------------------------------------
// One test per rule: trace.

#[test]
fn trace_question_required() {
    assert_eq!(
        trace_error(r#"{"Complex_CoT": "c", "Response": "r"}"#),
        "t.jsonl:1: Question: missing"
    );
    assert_eq!(
        trace_error(r#"{"Question": "", "Complex_CoT": "c", "Response": "r"}"#),
        "t.jsonl:1: Question: empty"
    );
    assert_eq!(
        trace_error(r#"{"Question": ["q"], "Complex_CoT": "c", "Response": "r"}"#),
        "t.jsonl:1: Question: expected a string, found an array"
    );
}

#[test]
fn trace_answer_required() {
    assert_eq!(
        trace_error(r#"{"Question": "Cause of scurvy?", "Complex_CoT": "Collagen."}"#),
        "t.jsonl:1: Response: missing"
    );
    assert_eq!(
        trace_error(r#"{"Question": "Cause of scurvy?", "Response": null}"#),
        "t.jsonl:1: Response: missing (null)"
    );
    assert_eq!(
        trace_error(r#"{"Question": "Cause of scurvy?", "Response": " \t"}"#),
        "t.jsonl:1: Response: empty"
    );
}

#[test]
fn trace_reasoning_must_be_a_non_empty_string() {
    assert_eq!(
        trace_error(
            r#"{"Question": "Cause of scurvy?", "Complex_CoT": 12, "Response": "Lack of vitamin C."}"#
        ),
        "t.jsonl:1: Complex_CoT: expected a string, found a number"
    );
    assert_eq!(
        trace_error(
            r#"{"Question": "Cause of scurvy?", "Complex_CoT": "", "Response": "Lack of vitamin C."}"#
        ),
        "t.jsonl:1: Complex_CoT: empty"
    );
}

#[test]
fn trace_system_required_when_mapped() {
    assert_eq!(
        error_in(
            "t.jsonl",
            Format::Trace,
            Some(&format!("{O1},system=sys")),
            r#"{"Question": "Cause of scurvy?", "Response": "Lack of vitamin C."}"#
        ),
        "t.jsonl:1: sys: missing"
    );
}

#[test]
fn trace_reasoning_given_twice() {
    assert_eq!(
        trace_error(
            r#"{"Question": "Cause of scurvy?", "Complex_CoT": "Collagen needs it.", "Response": "<think>Collagen.</think>Lack of vitamin C."}"#
        ),
        "t.jsonl:1: Response: reasoning given twice: Complex_CoT and a <think> block in Response"
    );
}

#[test]
fn trace_think_without_end() {
    assert_eq!(
        trace_error(
            r#"{"Question": "Cause of scurvy?", "Response": "<think>Collagen. Lack of vitamin C."}"#
        ),
        "t.jsonl:1: Response: a <think> without </think>"
    );
}

#[test]
fn trace_needs_its_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "t.jsonl",
        r#"{"Question": "Cause of scurvy?", "Response": "Lack of vitamin C."}"#,
    );
    let err = read_training_file(&path, Some(Format::Trace), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the trace format needs a field mapping such as question=Question,reasoning=Complex_CoT,answer=Response"
    );
    let err = read_training_file(&path, Some(Format::Chat), &opts_with(Some(O1)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "a field mapping (question=Question,reasoning=Complex_CoT,answer=Response) applies to the trace format only, not to chat"
    );
    // Without fields the file is nothing known.
    let err = read_training_file(&path, None, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("format: cannot detect the format"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Detection, the MCQ readers, reading several files.

#[test]
fn detects_training_formats() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        ("a.jsonl", with_reply(ASSISTANT), Some(Format::Chat)),
        (
            "b.jsonl",
            "\n\u{feff}{\"prompt\": \"p\", \"completion\": \"c\"}\n".to_owned(),
            Some(Format::PromptCompletion),
        ),
        (
            "c.json",
            format!("[\n  {}\n]\n", with_reply(ASSISTANT)),
            Some(Format::Chat),
        ),
        (
            "d.json",
            "  [{\"prompt\": [], \"completion\": [],\n \"x\": 1}]".to_owned(),
            Some(Format::PromptCompletion),
        ),
        ("e.jsonl", "{\"prompt\": \"p\"}\n".to_owned(), None),
        // The multiple-choice formats are not read from arrays.
        (
            "f.json",
            "[{\"question\": \"q\", \"options\": [\"a\", \"b\"], \"answer\": 0}]".to_owned(),
            None,
        ),
        ("g.json", "[\n]\n".to_owned(), None),
        ("h.json", "[{\"messages\": [}\n".to_owned(), None),
        // Messages first, though a question is there too.
        (
            "i.jsonl",
            "{\"question\": \"q\", \"messages\": []}".to_owned(),
            Some(Format::Chat),
        ),
    ] {
        let p = write(&dir, name, &text);
        match (detect(&p), want) {
            (Ok(f), Some(w)) => assert_eq!(f, w, "{name}"),
            (Err(e), None) => assert!(e.problem().is_some(), "{name}: {e}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let err = strip(
        &dir,
        detect(&dir.path().join("f.json")).unwrap_err().to_string(),
    );
    assert_eq!(
        err,
        "f.json: format: cannot detect the format (a JSON array whose first record has neither `messages` nor `prompt` and `completion`); name it (medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion; trace with a field mapping)"
    );
    let err = strip(
        &dir,
        detect(&dir.path().join("g.json")).unwrap_err().to_string(),
    );
    assert_eq!(err, "g.json: file: empty: no records");
}

#[test]
fn mcq_readers_refuse_training_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "chat.jsonl", with_reply(ASSISTANT));
    let err = strip(
        &dir,
        read_file(&path, None, &ReadOptions::default())
            .unwrap_err()
            .to_string(),
    );
    assert_eq!(
        err,
        "chat.jsonl: format: the file holds conversations (chat), not multiple-choice records; this needs multiple-choice records (medqa, medmcqa, pubmedqa, mmlu or jsonl)"
    );
    let path = write(&dir, "pc.jsonl", r#"{"prompt": "a", "completion": "b"}"#);
    let err = strip(
        &dir,
        read_files(&[path], None, &ReadOptions::default())
            .unwrap_err()
            .to_string(),
    );
    assert_eq!(
        err,
        "pc.jsonl: format: the file holds prompt-completion pairs (prompt-completion), not multiple-choice records; this needs multiple-choice records (medqa, medmcqa, pubmedqa, mmlu or jsonl)"
    );
    let err = open(&dir.path().join("pc.jsonl"), Some(Format::Trace))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("holds reasoning traces (trace)"), "{err}");
}

#[test]
fn reads_every_format_into_training_records() {
    let dir = tempfile::tempdir().unwrap();
    let mcq = write(
        &dir,
        "mcq.jsonl",
        r#"{"question": "Which organ makes bile?", "options": ["Liver", "Spleen"], "answer": 0}"#,
    );
    let csv = write(
        &dir,
        "anatomy_test.csv",
        "Which bone is in the forearm?,Femur,Radius,Tibia,Fibula,B\n",
    );
    let chat_file = write(
        &dir,
        "chat.jsonl",
        format!("{}\nnot json\n", with_reply(ASSISTANT)),
    );
    let skip = ReadOptions {
        skip_bad: true,
        ..Default::default()
    };
    let out = read_training_files(&[mcq.clone(), csv, chat_file.clone()], None, &skip).unwrap();
    assert_eq!(out.records.len(), 3);
    assert!(matches!(&out.records[0], TrainingRecord::Mcq(r) if r.answer == 'A'));
    assert!(
        matches!(&out.records[1], TrainingRecord::Mcq(r) if r.subject.as_deref() == Some("anatomy"))
    );
    assert!(matches!(&out.records[2], TrainingRecord::Chat(_)));
    assert_eq!(out.skipped, 1);
    assert_eq!(out.problems[0].line, 2);
    // Without skip_bad the first bad record is the error.
    let err = read_training_files(&[mcq, chat_file], None, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.problem().unwrap().line, 2);
    // A file with no valid record is an error either way.
    let bad = write(&dir, "bad.jsonl", r#"{"messages": []}"#);
    let err = read_training_files(&[bad], Some(Format::Chat), &skip).unwrap_err();
    assert_eq!(strip(&dir, err.to_string()), "bad.jsonl:1: messages: empty");
}

// ---------------------------------------------------------------------------------------------
// Malformed records: each has its problem, in a JSON Lines file and in a JSON array file.

#[test]
fn malformed_corpus() {
    const U: &str = r#"{"role": "user", "content": "Dose of adrenaline in adult anaphylaxis?"}"#;
    const A: &str = r#"{"role": "assistant", "content": "0.5 mg intramuscularly."}"#;
    let deep = format!("{{\"messages\": {}{}}}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(Format, Option<&str>, String, &str)> = vec![
        (Format::Chat, None, "{}".into(), "messages: missing"),
        (
            Format::Chat,
            None,
            "7".into(),
            "json: expected a JSON object, found a number",
        ),
        (
            Format::Chat,
            None,
            "\"messages\"".into(),
            "json: expected a JSON object, found a string",
        ),
        (
            Format::Chat,
            None,
            "null".into(),
            "json: expected a JSON object, found null",
        ),
        (
            Format::Chat,
            None,
            r#"{"messages": true}"#.into(),
            "messages: expected an array of messages, found a boolean",
        ),
        (
            Format::Chat,
            None,
            r#"{"messages": [[]]}"#.into(),
            "messages[0]: expected a message object, found an array",
        ),
        (
            Format::Chat,
            None,
            r#"{"messages": [null]}"#.into(),
            "messages[0]: expected a message object, found null",
        ),
        (
            Format::Chat,
            None,
            r#"{"messages": [{}]}"#.into(),
            "messages[0].role: missing",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {{"role": "assistant", "content": 0.5}}]}}"#),
            "messages[1].content: expected a string, found a number",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {{"role": "", "content": "x"}}]}}"#),
            "messages[1].role: unknown role ``: expected system, user, assistant or tool",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {{"role": " user", "content": "x"}}]}}"#),
            "messages[1].role: unknown role ` user`: expected system, user, assistant or tool",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {A}, {U}]}}"#),
            "messages[2].role: the conversation must end with an assistant turn",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{A}]}}"#),
            "messages: the conversation has no user turn",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{{"role": "tool", "content": "{{}}"}}, {A}]}}"#),
            "messages: the conversation has no user turn",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {{"role": "assistant", "content": "\u0000\t"}}]}}"#),
            "",
        ),
        (
            Format::Chat,
            None,
            format!(
                r#"{{"messages": [{U}, {{"role": "assistant", "content": "x</think>y<think>"}}]}}"#
            ),
            "messages[1].content: a <think> without </think>",
        ),
        (
            Format::Chat,
            None,
            format!(
                r#"{{"messages": [{U}, {{"role": "assistant", "content": "x", "reasoning_content": false}}]}}"#
            ),
            "messages[1].reasoning_content: expected a string, found a boolean",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {A}], "id": [1]}}"#),
            "id: expected a string, found an array",
        ),
        (
            Format::Chat,
            None,
            format!(r#"{{"messages": [{U}, {A}], "id": 123456789012345678901234567890}}"#),
            "",
        ),
        (
            Format::Chat,
            None,
            deep,
            "json: invalid JSON: recursion limit exceeded (column*",
        ),
        (
            Format::PromptCompletion,
            None,
            r#"{"prompt": [], "completion": ""}"#.into(),
            "completion: a string, but prompt is an array of messages: both must be strings or both arrays of messages",
        ),
        (
            Format::PromptCompletion,
            None,
            r#"{"prompt": "", "completion": []}"#.into(),
            "completion: an array of messages, but prompt is a string: both must be strings or both arrays of messages",
        ),
        (
            Format::PromptCompletion,
            None,
            r#"{"prompt": false, "completion": []}"#.into(),
            "prompt: expected a string or an array of messages, found a boolean",
        ),
        (
            Format::PromptCompletion,
            None,
            format!(r#"{{"prompt": [{U}], "completion": [{U}]}}"#),
            "completion[0].role: the completion must hold assistant turns only, found user",
        ),
        (
            Format::PromptCompletion,
            None,
            format!(r#"{{"prompt": [{U}], "completion": [{{"role": "system", "content": "s"}}]}}"#),
            "completion[0].role: the completion must hold assistant turns only, found system",
        ),
        (
            Format::PromptCompletion,
            None,
            format!(r#"{{"prompt": [{U}, {A}], "completion": [{A}]}}"#),
            "prompt[1].role: the prompt must end with a user or tool turn",
        ),
        (
            Format::PromptCompletion,
            None,
            format!(r#"{{"prompt": [{U}, 1], "completion": [{A}]}}"#),
            "prompt[1]: expected a message object, found a number",
        ),
        (
            Format::PromptCompletion,
            None,
            format!(r#"{{"prompt": [{U}], "completion": [{A}, {{"role": "assistant"}}]}}"#),
            "completion[1].content: missing",
        ),
        (
            Format::PromptCompletion,
            None,
            r#"{"prompt": "a", "completion": "b", "prompt": "c"}"#.into(),
            "prompt: appears twice in the record",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"Question": 1, "Response": "r"}"#.into(),
            "Question: expected a string, found a number",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"question": "q", "response": "r"}"#.into(),
            "Question: missing",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"Question": "q", "Complex_CoT": {}, "Response": "r"}"#.into(),
            "Complex_CoT: expected a string, found an object",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"Question": "q", "Complex_CoT": " ", "Response": "r"}"#.into(),
            "Complex_CoT: empty",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"Question": "q", "Response": ""}"#.into(),
            "Response: empty",
        ),
        (
            Format::Trace,
            Some(O1),
            r#"{"Question": "q", "Response": "r", "Response": "s"}"#.into(),
            "Response: appears twice in the record",
        ),
        (Format::Trace, Some(O1), "[]".into(), ""),
    ];
    for (format, fields, record, want) in &cases {
        // As JSON Lines, after a blank line: the record is on line 2.
        let lines = error_or_ok("x.jsonl", *format, *fields, &format!("\n{record}\n"));
        // As a JSON array, after two lines: the record starts on line 3.
        let array = error_or_ok("x.json", *format, *fields, &format!("[\n\n{record}\n]"));
        if want.is_empty() {
            // Valid (or, for a bare `[]` line, an empty file): no panic is the point.
            continue;
        }
        // A `*` ends a prefix (a column that differs between the two files).
        match want.strip_suffix('*') {
            Some(prefix) => {
                assert!(
                    lines.starts_with(&format!("x.jsonl:2: {prefix}")),
                    "{lines}"
                );
                assert!(array.starts_with(&format!("x.json:3: {prefix}")), "{array}");
            }
            None => {
                assert_eq!(lines, format!("x.jsonl:2: {want}"), "{record}");
                assert_eq!(array, format!("x.json:3: {want}"), "{record}");
            }
        }
    }
}

/// The error of reading `content`, or `ok`.
fn error_or_ok(name: &str, format: Format, fields: Option<&str>, content: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, name, content);
    match read_training_file(&path, Some(format), &opts_with(fields)) {
        Ok(_) => "ok".into(),
        Err(e) => strip(&dir, e.to_string()),
    }
}

#[test]
fn tools_and_tool_calls_keep_their_keys_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "tools.jsonl",
        r#"{"tools": [{"type": "function", "function": {"name": "bmi", "parameters": {"weight_kg": 1, "height_m": 2.0}}}], "messages": [{"role": "user", "content": "I weigh 82 kg at 1.75 m."}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "bmi", "arguments": {"weight_kg": 82, "height_m": 1.75}}}]}, {"role": "tool", "content": "26.8"}, {"role": "assistant", "content": "A BMI of 26.8 is overweight."}]}"#,
    );
    let records = read_ok(&path, Some(Format::Chat), None);
    let c = chat(&records[0]);
    assert_eq!(
        c.tools.as_deref(),
        Some(
            r#"[{"type": "function", "function": {"name": "bmi", "parameters": {"weight_kg": 1, "height_m": 2.0}}}]"#
        )
    );
    assert_eq!(
        c.turns[1].tool_calls.as_deref(),
        Some(
            r#"[{"type": "function", "function": {"name": "bmi", "arguments": {"weight_kg": 82, "height_m": 1.75}}}]"#
        )
    );
    assert_eq!(c.turns[1].message().tool_calls, c.turns[1].tool_calls);
    assert_eq!(c.turns[2].role, Role::Tool);
}

#[test]
fn tools_and_tool_calls_problems() {
    let tail = r#"{"role": "assistant", "content": "Fine."}"#;
    assert_eq!(
        chat_error(&format!(
            r#"{{"tools": {{"name": "bmi"}}, "messages": [{{"role": "user", "content": "Hi"}}, {tail}]}}"#
        )),
        "c.jsonl:1: tools: expected an array of objects, found an object"
    );
    assert_eq!(
        chat_error(&format!(
            r#"{{"tools": ["bmi"], "messages": [{{"role": "user", "content": "Hi"}}, {tail}]}}"#
        )),
        "c.jsonl:1: tools[0]: expected an object, found a string"
    );
    assert_eq!(
        chat_error(&format!(
            r#"{{"messages": [{{"role": "user", "content": "Hi", "tool_calls": [{{"name": "x"}}]}}, {tail}]}}"#
        )),
        "c.jsonl:1: messages[0].tool_calls: only an assistant message can call tools, not a user message"
    );
    assert_eq!(
        chat_error(
            r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "", "tool_calls": []}]}"#
        ),
        "c.jsonl:1: messages[1].tool_calls: empty"
    );
    assert_eq!(
        chat_error(
            r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}"#
        ),
        "c.jsonl:1: messages[1].content: empty content"
    );
}
