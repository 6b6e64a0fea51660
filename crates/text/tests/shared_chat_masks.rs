//! medtune's training masks against TRL's (`tools/make_chat_masks.py`, TRL 1.16.0): the cases of
//! `tests/fixtures/chat_masks/cases.jsonl` through the real Qwen3 tokenizer
//! (`$MEDTUNE_SHARED/tokenizers/qwen3`) and TRL's `qwen3_training.jinja`, whose `{% generation %}`
//! blocks mark the assistant's text. Conversations as `assistant_only_loss=True`,
//! prompt–completion pairs as `completion_only_loss=True`: the same ids and the same labels, token
//! for token.
//!
//! `#[ignore]`d in the README test command, which must pass without `../shared`; `.ci/run` runs
//! it with `-- --ignored`.

use std::path::{Path, PathBuf};

use medtune_text::{
    AssistantTurns, ChatMessage, ChatTemplate, SupervisedTokens, Tokenizer, supervise_conversation,
    supervise_prompt_completion, supervise_text_pair,
};
use serde_json::Value;

fn shared_dir() -> PathBuf {
    match std::env::var_os("MEDTUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_masks")
}

fn lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixtures().join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each case's field `key` as JSON text with its keys in file order (serde_json's map sorts
/// them; tool specs and call arguments reach the template's `tojson` in the order written).
fn texts_of(key: &str) -> Vec<Option<String>> {
    std::fs::read_to_string(fixtures().join("cases.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let case: minijinja::Value = serde_json::from_str(l).unwrap();
            let value = case.get_attr(key).unwrap();
            (!value.is_undefined()).then(|| serde_json::to_string(&value).unwrap())
        })
        .collect()
}

fn messages(text: &Option<String>) -> Vec<ChatMessage> {
    serde_json::from_str(text.as_deref().expect("messages")).expect("a list of messages")
}

#[test]
#[ignore = "reads the real tokenizer in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn masks_equal_trls_token_for_token() {
    let tokenizer = Tokenizer::from_dir(shared_dir().join("tokenizers/qwen3")).unwrap();
    let source = std::fs::read_to_string(fixtures().join("qwen3_training.jinja")).unwrap();
    let template = ChatTemplate::new(source, tokenizer.special_tokens().clone()).unwrap();
    let golden = lines("trl_golden.jsonl");
    let cases = lines("cases.jsonl");
    assert_eq!(cases.len(), golden.len());
    let (tools, conversations) = (texts_of("tools"), texts_of("messages"));
    let (prompts, completions) = (texts_of("prompt"), texts_of("completion"));
    for (i, (case, want)) in cases.iter().zip(&golden).enumerate() {
        let tools = &tools[i];
        let name = case["name"].as_str().unwrap();
        assert_eq!(want["name"], case["name"]);
        let got: SupervisedTokens = if case.get("messages").is_some() {
            supervise_conversation(
                &tokenizer,
                &template,
                &messages(&conversations[i]),
                tools.as_deref(),
                AssistantTurns::All,
            )
        } else if let Some(prompt) = case["prompt"].as_str() {
            supervise_text_pair(&tokenizer, prompt, case["completion"].as_str().unwrap())
        } else {
            supervise_prompt_completion(
                &tokenizer,
                &template,
                &messages(&prompts[i]),
                &messages(&completions[i]),
                tools.as_deref(),
            )
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        let labels: Vec<i64> = serde_json::from_value(want["labels"].clone()).unwrap();
        assert_eq!(got.ids, ids, "{name}: input_ids");
        assert_eq!(got.labels(), labels, "{name}: labels");
    }
}
