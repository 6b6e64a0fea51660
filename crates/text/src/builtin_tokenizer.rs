//! A small tokenizer that medtune builds itself, without downloading anything, for the quickstart
//! and for tests.
//!
//! It has Qwen's pipeline (NFC, Qwen's split regex, byte-level BPE, byte-level decoder, no
//! BOS/EOS added), with a BPE vocabulary trained by `tokenizers`' `BpeTrainer` on
//! [`BUILTIN_CORPUS`]. All 256 byte symbols are in the initial alphabet, so any text encodes.
//! Added tokens: `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (special, as in Qwen3) and
//! `<think>`, `</think>` (added but not special, as in Qwen3, so `decode(skip_special_tokens)`
//! keeps them). The chat template [`BUILTIN_CHAT_TEMPLATE`] writes the same ChatML format as Qwen3.

use std::path::Path;

use serde_json::json;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::Split;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior,
};

pub use crate::builtin_corpus::BUILTIN_CORPUS;
use crate::error::{Result, TextError};
use crate::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};

/// Vocabulary size the trainer aims for, added tokens included. The corpus is small, so the
/// trainer may run out of merges first; [`write_builtin_tokenizer`] returns the real size.
pub const BUILTIN_TARGET_VOCAB_SIZE: usize = 1024;

/// Qwen2/Qwen3's pre-tokenization regex.
const SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `(content, special)` of the added tokens, in id order after the BPE vocabulary.
const ADDED_TOKENS: [(&str, bool); 5] = [
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<think>", false),
    ("</think>", false),
];

/// A ChatML chat template written for medtune. Output format, as Qwen3's:
/// each system/user/other turn is `<|im_start|>{role}\n{content}<|im_end|>\n`; an assistant turn
/// that is the last message is `<|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}<|im_end|>\n`
/// (reasoning from `reasoning_content`, or from a `<think>...</think>` block at the start of
/// `content`); earlier assistant turns drop their reasoning. The generation prompt is
/// `<|im_start|>assistant\n`, followed by `<think>\n\n</think>\n\n` when `enable_thinking` is
/// defined and false.
pub const BUILTIN_CHAT_TEMPLATE: &str = r#"{#- ChatML with Qwen3-style thinking blocks (medtune built-in) -#}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {%- set answer = message.content %}
        {%- set thoughts = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set thoughts = message.reasoning_content %}
        {%- elif '</think>' in answer %}
            {%- set thoughts = answer.split('</think>')[0].split('<think>')[-1] %}
            {%- set answer = answer.split('</think>')[-1] %}
        {%- endif %}
        {{- '<|im_start|>assistant\n' }}
        {%- if loop.last %}
            {{- '<think>\n' + thoughts.strip('\n') + '\n</think>\n\n' }}
        {%- endif %}
        {{- answer.lstrip('\n') + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"#;

/// Trains the built-in tokenizer in memory. Deterministic: the same vocabulary every time.
pub fn build_builtin_tokenizer() -> Result<tokenizers::Tokenizer> {
    let split = Split::new(
        tokenizers::pre_tokenizers::split::SplitPattern::Regex(SPLIT_REGEX.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(TextError::tokenizer)?;
    let byte_level = ByteLevel::new(false, false, false);
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_normalizer(Some(NormalizerWrapper::NFC(NFC)));
    tok.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(byte_level),
    ]))));
    tok.with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));

    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainer::builder()
            .vocab_size(BUILTIN_TARGET_VOCAB_SIZE - ADDED_TOKENS.len())
            .min_frequency(1)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .show_progress(false)
            .build(),
    );
    tok.train(&mut trainer, BUILTIN_CORPUS.iter())
        .map_err(TextError::tokenizer)?;

    for (content, special) in ADDED_TOKENS {
        let token = AddedToken::from(content, special).normalized(false);
        if special {
            tok.add_special_tokens(&[token]);
        } else {
            tok.add_tokens(&[token]);
        }
    }
    Ok(tok)
}

/// The `tokenizer_config.json` for the built-in tokenizer (loadable by this crate's
/// [`crate::Tokenizer`] and by `transformers.AutoTokenizer`).
pub fn builtin_tokenizer_config(tok: &tokenizers::Tokenizer) -> serde_json::Value {
    let mut decoder = serde_json::Map::new();
    for (content, special) in ADDED_TOKENS {
        let id = tok
            .token_to_id(content)
            .expect("added tokens are in the vocabulary");
        decoder.insert(
            id.to_string(),
            json!({
                "content": content,
                "lstrip": false,
                "normalized": false,
                "rstrip": false,
                "single_word": false,
                "special": special,
            }),
        );
    }
    json!({
        "add_bos_token": false,
        "add_prefix_space": false,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": null,
        "chat_template": BUILTIN_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": false,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": null,
    })
}

/// Trains the built-in tokenizer and writes `dir/tokenizer.json` and `dir/tokenizer_config.json`
/// (creating `dir` if needed). Returns the vocabulary size, added tokens included. The files are
/// byte-identical on every run.
pub fn write_builtin_tokenizer(dir: &Path) -> Result<usize> {
    let tok = build_builtin_tokenizer()?;
    std::fs::create_dir_all(dir).map_err(|e| TextError::io(dir, "create directory", e))?;
    let tok_json = tok.to_string(true).map_err(TextError::tokenizer)?;
    let cfg_json = serde_json::to_string_pretty(&builtin_tokenizer_config(&tok))
        .expect("serialising a JSON value cannot fail");
    for (name, text) in [
        (TOKENIZER_FILE, tok_json),
        (TOKENIZER_CONFIG_FILE, cfg_json),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text + "\n").map_err(|e| TextError::io(&path, "write", e))?;
    }
    Ok(tok.get_vocab_size(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat_template::{ChatMessage, RenderOptions};
    use crate::tokenizer::Tokenizer;

    fn load() -> (tempfile::TempDir, Tokenizer, usize) {
        let dir = tempfile::tempdir().unwrap();
        let n = write_builtin_tokenizer(dir.path()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        (dir, tok, n)
    }

    #[test]
    fn vocab_size_and_added_tokens() {
        let (_d, tok, n) = load();
        assert_eq!(tok.vocab_size(), n);
        // The corpus has enough distinct words for the trainer to reach the target.
        assert_eq!(n, BUILTIN_TARGET_VOCAB_SIZE);
        // Added tokens come right after the BPE vocabulary, in order.
        for (i, (content, _)) in ADDED_TOKENS.iter().enumerate() {
            let id = tok.token_id(content).unwrap();
            assert_eq!(id as usize, n - ADDED_TOKENS.len() + i, "{content}");
            assert_eq!(tok.encode(content).unwrap(), vec![id], "{content}");
        }
        let ids = tok
            .encode("<|im_start|>user\nHi<|im_end|>\n<think>\n\n</think>\n\n")
            .unwrap();
        let expect_id = |t: &str| tok.token_id(t).unwrap();
        assert_eq!(ids[0], expect_id("<|im_start|>"));
        assert!(ids.contains(&expect_id("<|im_end|>")));
        assert!(ids.contains(&expect_id("<think>")));
        assert!(ids.contains(&expect_id("</think>")));
    }

    #[test]
    fn every_byte_is_a_token() {
        let (_d, tok, _) = load();
        for c in ByteLevel::alphabet() {
            assert!(tok.token_id(&c.to_string()).is_some(), "{c:?}");
        }
    }

    #[test]
    fn round_trips_arbitrary_text() {
        let (_d, tok, _) = load();
        let texts = [
            "",
            "The patient has a fever of 39.2 °C and tachycardia.",
            "Ünïcödé: naïve café, Straße, ñandú, 東京, Москва, ελληνικά, العربية, हिन्दी",
            "emoji 🤒🩺💊 and ZWJ 👩‍⚕️, tabs\tand\r\nCRLF,   runs of spaces  ",
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\nAnswer: A) y<|im_end|>",
            "\u{0}\u{1f}\u{7f} control characters",
        ];
        for text in texts {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
        // Skipping special tokens keeps <think> (not special), like Qwen3.
        let ids = tok
            .encode("<|im_start|>a<think>b</think><|im_end|>")
            .unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), "a<think>b</think>");
    }

    #[test]
    fn corpus_words_are_single_tokens() {
        let (_d, tok, _) = load();
        for word in [" medical", " diagnosis", " following", " blood", "Answer"] {
            assert_eq!(tok.encode(word).unwrap().len(), 1, "{word:?}");
        }
    }

    #[test]
    fn output_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_builtin_tokenizer(a.path()).unwrap();
        write_builtin_tokenizer(b.path()).unwrap();
        for name in [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE] {
            let x = std::fs::read(a.path().join(name)).unwrap();
            let y = std::fs::read(b.path().join(name)).unwrap();
            assert!(x == y, "{name} differs between runs");
        }
    }

    #[test]
    fn chat_template_renders_chatml() {
        let (_d, tok, _) = load();
        let sys = ChatMessage::system("Be careful.");
        let user = ChatMessage::user("Q?");
        let r = |msgs: &[ChatMessage], opts: RenderOptions| {
            tok.apply_chat_template(msgs, &opts).unwrap()
        };
        let base = "<|im_start|>system\nBe careful.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n";
        assert_eq!(
            r(
                &[sys.clone(), user.clone()],
                RenderOptions::generation(None)
            ),
            format!("{base}<|im_start|>assistant\n")
        );
        assert_eq!(
            r(
                &[sys.clone(), user.clone()],
                RenderOptions::generation(Some(true))
            ),
            format!("{base}<|im_start|>assistant\n")
        );
        assert_eq!(
            r(
                &[sys.clone(), user.clone()],
                RenderOptions::generation(Some(false))
            ),
            format!("{base}<|im_start|>assistant\n<think>\n\n</think>\n\n")
        );
        let ans = ChatMessage::assistant("A) x").with_reasoning("\nbecause\n");
        assert_eq!(
            r(
                &[sys.clone(), user.clone(), ans.clone()],
                RenderOptions::default()
            ),
            format!("{base}<|im_start|>assistant\n<think>\nbecause\n</think>\n\nA) x<|im_end|>\n")
        );
        assert_eq!(
            r(
                &[user.clone(), ChatMessage::assistant("B")],
                RenderOptions::default()
            ),
            "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n"
        );
        // Earlier assistant turns lose their reasoning, also when it is inline in the content.
        let hist = [
            user.clone(),
            ChatMessage::assistant("<think>\nr\n</think>\n\nA"),
            ChatMessage::user("Why?"),
        ];
        assert_eq!(
            r(&hist, RenderOptions::generation(None)),
            "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
