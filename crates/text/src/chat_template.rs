//! Renders a model's own Jinja chat template the way transformers' `apply_chat_template` does.
//!
//! transformers compiles the template in `jinja2.sandbox.ImmutableSandboxedEnvironment(
//! trim_blocks=True, lstrip_blocks=True)` (so `keep_trailing_newline` is jinja2's default, false),
//! adds the globals `raise_exception` and `strftime_now` and the filter `tojson`
//! (`json.dumps(..., ensure_ascii=False)`), and renders with `messages`, `tools`, `documents`,
//! `add_generation_prompt`, the tokenizer's special tokens (`bos_token`, `eos_token`, ... — only
//! those that are set) and any extra keyword arguments such as `enable_thinking`. This module does
//! the same with minijinja; Python string methods (`split`, `startswith`, `strip`, ...) come from
//! `minijinja_contrib::pycompat`.

use std::collections::BTreeMap;

use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TextError};
use crate::{generation_blocks, py_json};

const TEMPLATE_NAME: &str = "chat_template";

/// One chat turn. `reasoning_content` is the thinking text of an assistant turn (Qwen3 renders it
/// inside `<think>...</think>`); `None` leaves the variable undefined in the template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// An assistant turn's tool calls as JSON text of an array (`[{"type": "function",
    /// "function": {"name": ..., "arguments": {...}}}]`): text, so that object keys keep their
    /// order through the template's `tojson`, as Python dicts do.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_text")]
    pub tool_calls: Option<String>,
}

/// A JSON value held as text, (de)serialised as the value itself with its keys in order.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match text {
            Some(text) => serde_json::from_str::<minijinja::Value>(text)
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let value = Option::<minijinja::Value>::deserialize(d)?;
        value
            .filter(|v| !v.is_none())
            .map(|v| serde_json::to_string(&v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            reasoning_content: None,
            tool_calls: None,
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// Sets `reasoning_content`.
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning_content = Some(reasoning.into());
        self
    }
}

/// The tokenizer's special tokens as `apply_chat_template` passes them (`None` = not passed,
/// so the template sees the variable as undefined, as transformers does for unset tokens).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub unk_token: Option<String>,
}

/// Per-render arguments of `apply_chat_template`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// `add_generation_prompt`.
    pub add_generation_prompt: bool,
    /// `enable_thinking`: only passed to the template when `Some`, because templates test
    /// `enable_thinking is defined`.
    pub enable_thinking: Option<bool>,
    /// `tools` as JSON text (an array of tool specs). JSON text rather than a parsed value so that
    /// object keys keep their order, as Python dicts do, when the template applies `tojson`.
    pub tools: Option<String>,
}

impl RenderOptions {
    /// `add_generation_prompt=true`, with `enable_thinking` as given.
    pub fn generation(enable_thinking: Option<bool>) -> Self {
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking,
            tools: None,
        }
    }
}

/// A compiled chat template plus the special tokens it is rendered with.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// For templates with `{% generation %}` blocks: compiled with markers around the blocks.
    marked_env: Option<Environment<'static>>,
    source: String,
    special: SpecialTokens,
}

impl ChatTemplate {
    /// Compiles `source` with transformers' Jinja settings.
    /// TRL's `{% generation %}` blocks render as their content (see [`generation_blocks`]).
    pub fn new(source: impl Into<String>, special: SpecialTokens) -> Result<Self> {
        let source = source.into();
        let (env, marked_env) = if generation_blocks::has_generation_blocks(&source) {
            (
                environment(generation_blocks::rewrite(&source, false))?,
                Some(environment(generation_blocks::rewrite(&source, true))?),
            )
        } else {
            (environment(source.clone())?, None)
        };
        Ok(ChatTemplate {
            env,
            marked_env,
            source,
            special,
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template marks the assistant's text with `{% generation %}` blocks (decided
    /// once, when it is compiled).
    pub fn has_generation_blocks(&self) -> bool {
        self.marked_env.is_some()
    }

    /// The special tokens passed to every render.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Renders `messages` like `tokenizer.apply_chat_template(messages, tokenize=False, ...)`.
    pub fn render(&self, messages: &[ChatMessage], opts: &RenderOptions) -> Result<String> {
        self.render_in(&self.env, messages, opts)
    }

    /// [`Self::render`] with each `{% generation %}` block's text between the markers of
    /// [`generation_blocks`]; an error for a template without such blocks.
    pub fn render_marking_generation(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<String> {
        let env = self.marked_env.as_ref().ok_or_else(|| {
            TextError::Prompt("the chat template has no {% generation %} blocks".into())
        })?;
        self.render_in(env, messages, opts)
    }

    fn render_in(
        &self,
        env: &Environment<'static>,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<String> {
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("messages", Value::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt",
            Value::from(opts.add_generation_prompt),
        );
        let tools = match &opts.tools {
            None => Value::from(()),
            Some(json) => serde_json::from_str::<Value>(json)
                .map_err(|e| TextError::Prompt(format!("tools is not valid JSON: {e}")))?,
        };
        ctx.insert("tools", tools);
        ctx.insert("documents", Value::from(()));
        if let Some(thinking) = opts.enable_thinking {
            ctx.insert("enable_thinking", Value::from(thinking));
        }
        let s = &self.special;
        for (name, tok) in [
            ("bos_token", &s.bos_token),
            ("eos_token", &s.eos_token),
            ("pad_token", &s.pad_token),
            ("unk_token", &s.unk_token),
        ] {
            if let Some(tok) = tok {
                ctx.insert(name, Value::from(tok.as_str()));
            }
        }
        let template = env.get_template(TEMPLATE_NAME).map_err(template_error)?;
        template.render(Value::from(ctx)).map_err(template_error)
    }
}

/// An environment with transformers' Jinja settings holding `source`.
fn environment(source: String) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_filter("tojson", py_json::tojson_filter);
    env.add_template_owned(TEMPLATE_NAME, source)
        .map_err(template_error)?;
    Ok(env)
}

fn template_error(source: Error) -> TextError {
    TextError::Template {
        name: TEMPLATE_NAME.to_owned(),
        source,
    }
}

/// `raise_exception(message)`: templates call it to reject bad input.
fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_src(src: &str, msgs: &[ChatMessage], opts: &RenderOptions) -> Result<String> {
        ChatTemplate::new(src, SpecialTokens::default())?.render(msgs, opts)
    }

    #[test]
    fn jinja2_whitespace_settings() {
        // trim_blocks removes the newline after a block tag; lstrip_blocks removes the indentation
        // before one; the final newline of the template is dropped (keep_trailing_newline=False).
        let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
        let out = render_src(
            src,
            &[ChatMessage::user("a"), ChatMessage::user("b")],
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(out, "[a]\n[b]\n");
        assert_eq!(
            render_src("x\n", &[], &RenderOptions::default()).unwrap(),
            "x"
        );
    }

    #[test]
    fn python_string_methods() {
        let src = "{{ messages[0].content.split('</think>')[-1].lstrip('\\n') }}|{{ messages[0].content.startswith('<think>') }}|{{ '  x \\n'.strip() }}";
        let out = render_src(
            src,
            &[ChatMessage::assistant("<think>\nr\n</think>\n\nanswer")],
            &RenderOptions::default(),
        )
        .unwrap();
        // minijinja prints booleans as Python does.
        assert_eq!(out, "answer|True|x");
    }

    #[test]
    fn enable_thinking_only_defined_when_set() {
        let src =
            "{% if enable_thinking is defined %}{{ enable_thinking }}{% else %}undef{% endif %}";
        let r = |t| render_src(src, &[], &RenderOptions::generation(t)).unwrap();
        assert_eq!(r(None), "undef");
        assert_eq!(r(Some(false)), "False");
        assert_eq!(r(Some(true)), "True");
    }

    #[test]
    fn reasoning_content_undefined_when_none() {
        let src = "{% for m in messages %}{{ m.reasoning_content is defined }}{% endfor %}";
        let out = render_src(
            src,
            &[
                ChatMessage::assistant("a"),
                ChatMessage::assistant("b").with_reasoning("r"),
            ],
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(out, "FalseTrue");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let err = render_src(
            "{{ raise_exception('bad role') }}",
            &[],
            &RenderOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad role"), "{err}");
    }

    #[test]
    fn special_tokens_passed_only_when_set() {
        let t = ChatTemplate::new(
            "{{ bos_token is defined }}{{ eos_token }}",
            SpecialTokens {
                eos_token: Some("<|im_end|>".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            t.render(&[], &RenderOptions::default()).unwrap(),
            "False<|im_end|>"
        );
    }

    #[test]
    fn tojson_keeps_key_order_and_python_spacing() {
        let opts = RenderOptions {
            tools: Some(r#"[{"type": "function", "function": {"name": "f", "description": "température <5>"}}]"#.into()),
            ..Default::default()
        };
        let out = render_src(
            "{% for t in tools %}{{ t | tojson }}{% endfor %}",
            &[],
            &opts,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"type": "function", "function": {"name": "f", "description": "température <5>"}}"#
        );
    }

    #[test]
    fn syntax_error_is_reported() {
        let err = ChatTemplate::new("{% if %}", SpecialTokens::default()).unwrap_err();
        assert!(matches!(err, TextError::Template { .. }), "{err}");
    }
}
