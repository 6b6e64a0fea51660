//! Checks against the real Qwen3 tokenizer and reference vectors in the shared data folder
//! (`$MEDTUNE_SHARED`, default `<workspace>/../shared`): `tokenizers/qwen3/`.
//! These tests fail, rather than pass silently, when the folder is missing.
//! `#[ignore]`d in the README test command, which must pass without `../shared`; `.ci/run`
//! runs them with `-- --ignored`.

use std::path::PathBuf;
use std::sync::OnceLock;

use medtune_text::{
    ChatMessage, McqChatOptions, McqPrompt, RenderOptions, Tokenizer, render_conversation_pair,
    render_mcq_prompt, render_mcq_training_pair,
};
use serde::Deserialize;

fn shared_dir() -> PathBuf {
    match std::env::var_os("MEDTUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn qwen3_dir() -> PathBuf {
    let dir = shared_dir().join("tokenizers/qwen3");
    assert!(
        dir.join("tokenizer.json").is_file(),
        "Qwen3 tokenizer not found at {}: set MEDTUNE_SHARED to the shared data folder \
         (the one holding tokenizers/qwen3/tokenizer.json)",
        dir.display()
    );
    dir
}

fn qwen3() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_dir(qwen3_dir()).expect("load the Qwen3 tokenizer"))
}

fn vectors_file(name: &str) -> String {
    let path = qwen3_dir().join("test_vectors").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jsonl<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    vectors_file(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

#[derive(Deserialize)]
struct EncodeCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ChatCase {
    name: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    enable_thinking: Option<bool>,
    rendered: String,
    ids: Vec<u32>,
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn special_tokens_and_vocab() {
    let tok = qwen3();
    assert_eq!(tok.vocab_size(), 151_669);
    for (t, id) in [
        ("<|endoftext|>", 151_643),
        ("<|im_start|>", 151_644),
        ("<|im_end|>", 151_645),
        ("<think>", 151_667),
        ("</think>", 151_668),
    ] {
        assert_eq!(tok.token_id(t), Some(id), "{t}");
    }
    assert_eq!(tok.eos_token(), "<|im_end|>");
    assert_eq!(tok.eos_token_id(), 151_645);
    assert_eq!(tok.eos_ids(), &[151_645, 151_643]);
    assert_eq!(tok.pad_token_id(), Some(151_643));
    assert_eq!(tok.special_tokens().bos_token, None);
    assert!(tok.chat_template().is_some());
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn encode_vectors() {
    let cases: Vec<EncodeCase> = jsonl("qwen3_encode_vectors.jsonl");
    assert!(!cases.is_empty());
    let tok = qwen3();
    for c in &cases {
        assert_eq!(tok.encode(&c.text).unwrap(), c.ids, "{:?}", c.text);
        assert_eq!(tok.decode(&c.ids, false).unwrap(), c.text);
    }
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let batch = tok.encode_batch(&texts).unwrap();
    for (c, ids) in cases.iter().zip(batch) {
        assert_eq!(ids, c.ids);
    }
    println!("{} encode vectors match", cases.len());
}

/// llama.cpp's tokenizer test for Qwen2 (same BPE vocabulary as Qwen3).
#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn llama_cpp_vectors() {
    let inp = vectors_file("ggml-vocab-qwen2.gguf.inp");
    let out = vectors_file("ggml-vocab-qwen2.gguf.out");
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    // The file ends with a separator: the last piece is empty.
    assert_eq!(texts.pop(), Some(""));
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), 43);
    assert_eq!(texts.len(), expected.len());
    let tok = qwen3();
    for (text, ids) in texts.iter().zip(&expected) {
        assert_eq!(&tok.encode(text).unwrap(), ids, "{text:?}");
        assert_eq!(&tok.decode(ids, false).unwrap(), text);
    }
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn chat_template_vectors() {
    let cases: Vec<ChatCase> = jsonl("qwen3_chat_template_vectors.jsonl");
    assert!(!cases.is_empty());
    let tok = qwen3();
    for c in &cases {
        let opts = RenderOptions {
            add_generation_prompt: c.add_generation_prompt,
            enable_thinking: c.enable_thinking,
            tools: None,
        };
        let rendered = tok.apply_chat_template(&c.messages, &opts).unwrap();
        assert_eq!(rendered, c.rendered, "render of {}", c.name);
        assert_eq!(tok.encode(&rendered).unwrap(), c.ids, "ids of {}", c.name);
    }
    println!("{} chat template vectors match", cases.len());
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn stream_decoder_matches_decode() {
    let tok = qwen3();
    let inp = vectors_file("ggml-vocab-qwen2.gguf.inp");
    let encode: Vec<EncodeCase> = jsonl("qwen3_encode_vectors.jsonl");
    let mut texts: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(str::to_owned)
        .collect();
    texts.extend(encode.into_iter().map(|c| c.text));
    texts.push("Température 39 °C — 发热 🤒🩺 и кашель<|im_end|>".into());
    let mut held_back = 0;
    for text in &texts {
        let ids = tok.encode(text).unwrap();
        for skip in [false, true] {
            let mut dec = tok.stream_decoder(skip);
            let mut out = String::new();
            for &id in &ids {
                match dec.step(id).unwrap() {
                    Some(chunk) => {
                        assert!(!chunk.contains('\u{FFFD}'), "{text:?}: chunk {chunk:?}");
                        out.push_str(&chunk);
                    }
                    None => held_back += 1,
                }
            }
            assert_eq!(dec.flush().unwrap(), None, "{text:?}");
            assert_eq!(out, tok.decode(&ids, skip).unwrap(), "{text:?}");
        }
    }
    assert!(
        held_back > 0,
        "no multi-byte character was split across tokens"
    );
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn decode_skips_special_but_keeps_think() {
    let tok = qwen3();
    let ids = tok
        .encode("<|im_start|>assistant\n<think>\nx\n</think>\n\nA<|im_end|>")
        .unwrap();
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "assistant\n<think>\nx\n</think>\n\nA"
    );
}

fn mcq() -> McqPrompt {
    McqPrompt::with_lettered_options(
        "A 30-year-old man has bleeding gums and poor wound healing. Which deficiency is most likely?",
        ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"],
    )
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn mcq_without_thinking() {
    let tok = qwen3();
    let t = tok.chat_template().unwrap();
    let q = mcq();
    let opts = McqChatOptions::default();
    let prompt = render_mcq_prompt(t, &q, &opts).unwrap();
    let sys = opts.system_prompt.as_deref().unwrap();
    let expected_prompt = format!(
        "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        q.user_message()
    );
    assert_eq!(prompt, expected_prompt);

    let a = q
        .answer('B', Some("Vitamin C is needed to make collagen.".into()))
        .unwrap();
    let pair = render_mcq_training_pair(t, &q, &a, &opts).unwrap();
    assert_eq!(pair.prompt, prompt);
    assert_eq!(
        pair.target,
        "Answer: B) Vitamin C\n\nVitamin C is needed to make collagen.<|im_end|>"
    );
    // prompt + target is the template's render of the whole conversation (less its final "\n").
    let mut msgs = q.messages(&opts);
    msgs.push(a.assistant_message(false));
    let full = tok
        .apply_chat_template(
            &msgs,
            &RenderOptions {
                enable_thinking: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(format!("{}{}\n", pair.prompt, pair.target), full);
    // Tokenizing prompt and target separately gives the tokens of the whole.
    let mut ids = tok.encode(&pair.prompt).unwrap();
    ids.extend(tok.encode(&pair.target).unwrap());
    assert_eq!(
        ids,
        tok.encode(&format!("{}{}", pair.prompt, pair.target))
            .unwrap()
    );
    assert_eq!(*ids.last().unwrap(), tok.eos_token_id());
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn mcq_with_thinking() {
    let tok = qwen3();
    let t = tok.chat_template().unwrap();
    let q = mcq();
    let opts = McqChatOptions {
        thinking: true,
        ..Default::default()
    };
    let prompt = render_mcq_prompt(t, &q, &opts).unwrap();
    assert!(
        prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"),
        "{prompt:?}"
    );
    let a = q
        .answer(
            'B',
            Some("Scurvy: collagen synthesis needs vitamin C.".into()),
        )
        .unwrap();
    let pair = render_mcq_training_pair(t, &q, &a, &opts).unwrap();
    assert_eq!(pair.prompt, prompt);
    assert_eq!(
        pair.target,
        "<think>\nScurvy: collagen synthesis needs vitamin C.\n</think>\n\nAnswer: B) Vitamin C<|im_end|>"
    );
    let mut msgs = q.messages(&opts);
    msgs.push(a.assistant_message(true));
    let full = tok
        .apply_chat_template(
            &msgs,
            &RenderOptions {
                enable_thinking: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(format!("{}{}\n", pair.prompt, pair.target), full);
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn conversation_pair_with_history() {
    let tok = qwen3();
    let t = tok.chat_template().unwrap();
    let context = [
        ChatMessage::user("Hi"),
        ChatMessage::assistant("<think>\nold\n</think>\n\nHello"),
        ChatMessage::user("Define anemia."),
    ];
    let reply = ChatMessage::assistant("Low hemoglobin.").with_reasoning("short");
    let pair = render_conversation_pair(t, &context, &reply, None).unwrap();
    assert_eq!(
        pair.prompt,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nDefine anemia.<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        pair.target,
        "<think>\nshort\n</think>\n\nLow hemoglobin.<|im_end|>"
    );
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn tools_are_rendered_with_python_json() {
    let tok = qwen3();
    let opts = RenderOptions {
        add_generation_prompt: true,
        tools: Some(
            r#"[{"type": "function", "function": {"name": "dose", "description": "Dose in mg/kg — pédiatrie", "parameters": {"type": "object", "properties": {"kg": {"type": "number"}}, "required": ["kg"]}}}]"#
                .into(),
        ),
        ..Default::default()
    };
    let out = tok
        .apply_chat_template(&[ChatMessage::user("Dose?")], &opts)
        .unwrap();
    assert!(out.starts_with("<|im_start|>system\n# Tools\n"), "{out}");
    assert!(
        out.contains("\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"dose\", \"description\": \"Dose in mg/kg — pédiatrie\", \"parameters\": {\"type\": \"object\", \"properties\": {\"kg\": {\"type\": \"number\"}}, \"required\": [\"kg\"]}}}\n</tools>"),
        "{out}"
    );
    assert!(out.ends_with("<|im_start|>user\nDose?<|im_end|>\n<|im_start|>assistant\n"));
}
