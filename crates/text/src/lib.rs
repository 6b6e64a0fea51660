//! Text side of medtune: tokenizers, chat templates and medical multiple-choice prompts.
//!
//! - [`Tokenizer`] loads a model directory's `tokenizer.json` + `tokenizer_config.json`
//!   (+ `chat_template.jinja`, `generation_config.json`), encodes/decodes, knows the end-of-sequence
//!   ids and decodes generated tokens incrementally ([`StreamDecoder`]).
//! - [`ChatTemplate`] renders a model's Jinja chat template as transformers' `apply_chat_template`
//!   does (byte-identical for Qwen3).
//! - [`mcq`] builds MCQ prompts, generation prompts and `(prompt, target)` training pairs.
//! - [`supervision`] tokenises conversations and prompt–completion pairs with the loss on what the
//!   assistant writes.
//! - [`builtin_tokenizer`] trains a small byte-level BPE tokenizer with a ChatML template, so the
//!   quickstart and tests need no download.

#![forbid(unsafe_code)]

pub mod builtin_corpus;
pub mod builtin_tokenizer;
pub mod chat_template;
pub mod error;
pub mod generation_blocks;
pub mod mcq;
pub mod py_json;
pub mod supervision;
pub mod tokenizer;

pub use builtin_tokenizer::{
    BUILTIN_CHAT_TEMPLATE, BUILTIN_CORPUS, build_builtin_tokenizer, write_builtin_tokenizer,
};
pub use chat_template::{ChatMessage, ChatTemplate, RenderOptions, SpecialTokens};
pub use error::{Result, TextError};
pub use mcq::{
    DEFAULT_SYSTEM_PROMPT, McqAnswer, McqChatOptions, McqPrompt, TrainingPair,
    render_conversation_pair, render_mcq_prompt, render_mcq_training_pair,
};
pub use supervision::{
    AssistantTurns, SupervisedTokens, conversation_examples, supervise_conversation,
    supervise_prompt_completion, supervise_text_pair,
};
pub use tokenizer::{StreamDecoder, Tokenizer};
