//! A model directory's tokenizer: `tokenizer.json` (the `tokenizers` pipeline), `tokenizer_config.json`
//! (special token names, chat template), optionally `chat_template.jinja` (newer transformers save
//! the template there) and `generation_config.json` (extra end-of-sequence ids).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::chat_template::{ChatMessage, ChatTemplate, RenderOptions, SpecialTokens};
use crate::error::{Result, TextError};

/// File names inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// Tokens that end generation in ChatML models when they exist as added tokens:
/// `<|im_end|>` ends a turn, `<|endoftext|>` ends a document.
const CHATML_END_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// A loaded tokenizer with its special tokens and (optional) chat template.
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    dir: PathBuf,
    special: SpecialTokens,
    eos_ids: Vec<u32>,
    pad_id: Option<u32>,
    chat_template: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and `dir/tokenizer_config.json`, plus `dir/chat_template.jinja`
    /// (which takes precedence over the config's `chat_template`, as in transformers) and
    /// `dir/generation_config.json` when present.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let tok_path = dir.join(TOKENIZER_FILE);
        let bytes = std::fs::read(&tok_path).map_err(|e| TextError::io(&tok_path, "read", e))?;
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            TextError::invalid(&tok_path, format!("not a tokenizers pipeline: {e}"))
        })?;
        // Encoding must give exactly the ids of the text: no truncation, no padding.
        inner
            .with_truncation(None)
            .map_err(|e| TextError::invalid(&tok_path, e.to_string()))?;
        inner.with_padding(None);

        let cfg_path = dir.join(TOKENIZER_CONFIG_FILE);
        let cfg = read_json(&cfg_path)?;
        let token_field = |name: &str| -> Result<Option<String>> {
            match cfg.get(name) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                // Older configs store an AddedToken dict: {"content": "...", ...}.
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => Ok(Some(s.clone())),
                    _ => Err(TextError::invalid(
                        &cfg_path,
                        format!("`{name}` is an object without a string `content`"),
                    )),
                },
                Some(other) => Err(TextError::invalid(
                    &cfg_path,
                    format!("`{name}` must be a string, got {other}"),
                )),
            }
        };
        let special = SpecialTokens {
            bos_token: token_field("bos_token")?,
            eos_token: token_field("eos_token")?,
            pad_token: token_field("pad_token")?,
            unk_token: token_field("unk_token")?,
        };
        let id_of = |tok: &str, field: &str| -> Result<u32> {
            inner.token_to_id(tok).ok_or_else(|| {
                TextError::invalid(
                    &cfg_path,
                    format!("`{field}` {tok:?} is not a token of {}", tok_path.display()),
                )
            })
        };
        let eos_token = special
            .eos_token
            .as_deref()
            .ok_or_else(|| TextError::invalid(&cfg_path, "no `eos_token`"))?;
        let mut eos_ids = vec![id_of(eos_token, "eos_token")?];
        let pad_id = special
            .pad_token
            .as_deref()
            .map(|t| id_of(t, "pad_token"))
            .transpose()?;

        let added = inner.get_added_tokens_decoder();
        for tok in CHATML_END_TOKENS {
            if let Some((&id, _)) = added.iter().find(|(_, t)| t.content == tok) {
                push_unique(&mut eos_ids, id);
            }
        }
        let gen_path = dir.join(GENERATION_CONFIG_FILE);
        if gen_path.is_file() {
            for id in generation_eos_ids(&read_json(&gen_path)?, &gen_path)? {
                push_unique(&mut eos_ids, id);
            }
        }

        let tpl_path = dir.join(CHAT_TEMPLATE_FILE);
        let template_source = if tpl_path.is_file() {
            Some(
                std::fs::read_to_string(&tpl_path)
                    .map_err(|e| TextError::io(&tpl_path, "read", e))?,
            )
        } else {
            config_chat_template(&cfg, &cfg_path)?
        };
        let chat_template = template_source
            .map(|src| ChatTemplate::new(src, special.clone()))
            .transpose()?;

        Ok(Tokenizer {
            inner,
            dir: dir.to_path_buf(),
            special,
            eos_ids,
            pad_id,
            chat_template,
        })
    }

    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`. Special-token strings in the text (`<|im_start|>`, ...) become their
    /// ids; nothing is added (Qwen's post-processor adds no BOS/EOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(TextError::tokenizer)?;
        Ok(enc.get_ids().to_vec())
    }

    /// [`Tokenizer::encode`] for many texts, in parallel.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encs = self
            .inner
            .encode_batch(texts.to_vec(), false)
            .map_err(TextError::tokenizer)?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Text of `ids`. With `skip_special_tokens`, added tokens marked special (for Qwen3:
    /// `<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ... but not `<think>`) are dropped.
    /// Incomplete UTF-8 sequences decode to U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(TextError::tokenizer)
    }

    /// The id of a token string (a vocabulary entry or an added token), if any.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id, if any.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of token ids, added tokens included (151,669 for Qwen3; the model's embedding
    /// table may be larger).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Special token names from `tokenizer_config.json`.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The configured `eos_token` (`<|im_end|>` for Qwen3).
    pub fn eos_token(&self) -> &str {
        self.special
            .eos_token
            .as_deref()
            .expect("from_dir requires eos_token")
    }

    /// The id of [`Tokenizer::eos_token`].
    pub fn eos_token_id(&self) -> u32 {
        self.eos_ids[0]
    }

    /// All ids that end generation: `eos_token` first, then `<|im_end|>`/`<|endoftext|>` when they
    /// are added tokens, then `generation_config.json`'s `eos_token_id`s. Qwen3: `[151645, 151643]`.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// The id of `pad_token`, if configured (`<|endoftext|>` for Qwen3).
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// The model's chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Renders `messages` with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<String> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| {
                TextError::invalid(
                    &self.dir,
                    format!(
                        "no chat template (neither {CHAT_TEMPLATE_FILE} nor `chat_template` in {TOKENIZER_CONFIG_FILE})"
                    ),
                )
            })?
            .render(messages, opts)
    }

    /// A decoder for generated tokens, fed one id at a time.
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tokenizer: self,
            skip_special_tokens,
            ids: Vec::new(),
            prefix: String::new(),
            prefix_index: 0,
        }
    }
}

/// Incremental decoding for generation: [`StreamDecoder::step`] returns the text completed by each
/// new token. Byte-level BPE tokens can end in the middle of a multi-byte UTF-8 character; such text
/// is held back until the character is complete. The concatenated output equals
/// [`Tokenizer::decode`] of all ids.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special_tokens: bool,
    /// Recent ids: `ids[..prefix_index]` decoded to `prefix` (already emitted; kept as context),
    /// `ids[prefix_index..]` not emitted yet.
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl StreamDecoder<'_> {
    /// Feeds one id; returns the newly completed text, or `None` while it is incomplete (or the
    /// token decodes to nothing, e.g. a skipped special token).
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        if text.len() <= self.prefix.len() || text.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(None);
        }
        let Some(new) = text.strip_prefix(self.prefix.as_str()) else {
            return Err(TextError::Tokenizer(format!(
                "stream decoding: text of ids {:?} no longer starts with {:?}",
                self.ids, self.prefix
            )));
        };
        let new = new.to_owned();
        // The ids just emitted become the context for the next step.
        self.ids.drain(..self.prefix_index);
        self.prefix = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        self.prefix_index = self.ids.len();
        Ok(Some(new))
    }

    /// Text still held back (an incomplete character at the end of generation), decoded lossily.
    pub fn flush(&mut self) -> Result<Option<String>> {
        let text = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        let rest = text
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(text.as_str())
            .to_owned();
        self.ids.drain(..self.prefix_index);
        self.prefix = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        self.prefix_index = self.ids.len();
        Ok((!rest.is_empty()).then_some(rest))
    }
}

fn push_unique(ids: &mut Vec<u32>, id: u32) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| TextError::io(path, "read", e))?;
    serde_json::from_str(&text).map_err(|source| TextError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `chat_template` is a string, or (older configs) a list of `{name, template}` of which the one
/// named `default` is used.
fn config_chat_template(cfg: &Json, path: &Path) -> Result<Option<String>> {
    match cfg.get("chat_template") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let named = |n: &str| {
                list.iter()
                    .find(|t| t.get("name").and_then(Json::as_str) == Some(n))
            };
            let entry = named("default").ok_or_else(|| {
                TextError::invalid(path, "`chat_template` list has no entry named `default`")
            })?;
            match entry.get("template") {
                Some(Json::String(s)) => Ok(Some(s.clone())),
                _ => Err(TextError::invalid(
                    path,
                    "`chat_template` entry `default` has no string `template`",
                )),
            }
        }
        Some(_) => Err(TextError::invalid(
            path,
            "`chat_template` must be a string or a list of {name, template}",
        )),
    }
}

/// `eos_token_id` of generation_config.json: an int or a list of ints.
fn generation_eos_ids(cfg: &Json, path: &Path) -> Result<Vec<u32>> {
    let bad = || TextError::invalid(path, "`eos_token_id` must be an id or a list of ids");
    let as_id = |v: &Json| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)
    };
    match cfg.get("eos_token_id") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(a)) => a.iter().map(as_id).collect(),
        Some(v) => Ok(vec![as_id(v)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin_tokenizer::write_builtin_tokenizer;

    fn builtin() -> (tempfile::TempDir, Tokenizer) {
        let dir = tempfile::tempdir().unwrap();
        write_builtin_tokenizer(dir.path()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        (dir, tok)
    }

    #[test]
    fn stream_decoder_holds_back_split_characters() {
        let (_d, tok) = builtin();
        // Characters outside the training corpus are split into single-byte tokens.
        let text = "Fièvre 39 °C — 发热 🤒 ok<|im_end|>";
        let ids = tok.encode(text).unwrap();
        assert!(ids.len() > text.chars().count() / 2);
        for skip in [false, true] {
            let mut dec = tok.stream_decoder(skip);
            let mut out = String::new();
            let mut held_back = 0;
            for &id in &ids {
                match dec.step(id).unwrap() {
                    Some(chunk) => {
                        assert!(!chunk.contains(char::REPLACEMENT_CHARACTER), "{chunk:?}");
                        out.push_str(&chunk);
                    }
                    None => held_back += 1,
                }
            }
            assert_eq!(dec.flush().unwrap(), None);
            assert!(held_back > 0);
            assert_eq!(out, tok.decode(&ids, skip).unwrap());
        }
    }

    #[test]
    fn stream_decoder_flushes_incomplete_tail() {
        let (_d, tok) = builtin();
        let ids = tok.encode("🤒").unwrap();
        assert!(ids.len() >= 2);
        let mut dec = tok.stream_decoder(false);
        for &id in &ids[..ids.len() - 1] {
            assert_eq!(dec.step(id).unwrap(), None);
        }
        assert_eq!(dec.flush().unwrap().as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn chat_template_jinja_file_takes_precedence() {
        let (dir, tok) = builtin();
        assert!(tok.chat_template().is_some());
        let cfg_path = dir.path().join(TOKENIZER_CONFIG_FILE);
        let mut cfg = read_json(&cfg_path).unwrap();
        cfg.as_object_mut().unwrap().remove("chat_template");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert!(tok.chat_template().is_none());
        assert!(
            tok.apply_chat_template(&[], &RenderOptions::default())
                .is_err()
        );

        std::fs::write(
            dir.path().join(CHAT_TEMPLATE_FILE),
            "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ eos_token }}",
        )
        .unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        let out = tok
            .apply_chat_template(&[ChatMessage::user("hi")], &RenderOptions::default())
            .unwrap();
        assert_eq!(out, "user:hi;<|im_end|>");
    }

    #[test]
    fn eos_and_pad_ids() {
        let (dir, tok) = builtin();
        let im_end = tok.token_id("<|im_end|>").unwrap();
        let eot = tok.token_id("<|endoftext|>").unwrap();
        assert_eq!(tok.eos_token(), "<|im_end|>");
        assert_eq!(tok.eos_ids(), &[im_end, eot]);
        assert_eq!(tok.pad_token_id(), Some(eot));
        assert!(tok.is_eos(eot) && !tok.is_eos(0));

        std::fs::write(
            dir.path().join(GENERATION_CONFIG_FILE),
            r#"{"eos_token_id": [7, 8]}"#,
        )
        .unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.eos_ids(), &[im_end, eot, 7, 8]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TextError::Io { .. }));
        assert!(err.to_string().contains("tokenizer.json"), "{err}");

        write_builtin_tokenizer(dir.path()).unwrap();
        let cfg_path = dir.path().join(TOKENIZER_CONFIG_FILE);
        std::fs::write(&cfg_path, r#"{"eos_token": "<nope>"}"#).unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer_config.json") && err.contains("<nope>"),
            "{err}"
        );

        std::fs::write(&cfg_path, "{").unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TextError::Json { .. }), "{err}");

        std::fs::write(dir.path().join(TOKENIZER_FILE), "{}").unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TextError::Invalid { .. }), "{err}");
    }
}
