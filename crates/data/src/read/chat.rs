//! The training formats: conversations (`chat`), TRL's prompt–completion records
//! (`prompt-completion`, conversational or plain text) and reasoning-trace tables read through a
//! field mapping (`trace`). Each record is validated into a [`ChatRecord`] or a [`TextPair`].

use std::collections::HashSet;
use std::path::PathBuf;

use crate::conversation::{
    ChatKind, ChatRecord, ChatTurn, Role, TextPair, TraceFields, TrainingRecord,
};
use crate::error::Problem;
use crate::json::JVal;

use super::lines::ValueResult;
use super::shared::Ctx;

/// One training record or the problem that kept it from being one.
pub type TrainingResult = std::result::Result<TrainingRecord, Problem>;

type Checked<T> = std::result::Result<T, Problem>;

/// Which training format a [`TrainingJson`] reads.
pub(super) enum Kind {
    Chat,
    PromptCompletion,
    Trace(TraceFields),
}

/// The records of a chat, prompt-completion or trace file (JSON Lines or a JSON array).
pub(super) struct TrainingJson {
    pub(super) values: Box<dyn Iterator<Item = ValueResult>>,
    pub(super) path: PathBuf,
    pub(super) stem: String,
    pub(super) kind: Kind,
}

impl Iterator for TrainingJson {
    type Item = TrainingResult;

    fn next(&mut self) -> Option<TrainingResult> {
        let (line, value) = match self.values.next()? {
            Ok(x) => x,
            Err(p) => return Some(Err(p)),
        };
        let c = Ctx {
            file: &self.path,
            line,
            item: None,
        };
        let default_id = format!("{}:{line}", self.stem);
        Some(match &self.kind {
            Kind::Chat => chat_record(&c, &value, default_id),
            Kind::PromptCompletion => prompt_completion_record(&c, &value, default_id),
            Kind::Trace(fields) => trace_record(&c, &value, fields, default_id),
        })
    }
}

/// `id` (string or integer), else the default `<file stem>:<line>`.
fn record_id(c: &Ctx, v: &JVal, default_id: String) -> Checked<String> {
    match v.get("id") {
        Some(JVal::Int(i)) => Ok(i.to_string()),
        _ => Ok(c.opt_text(v, "id")?.unwrap_or(default_id)),
    }
}

/// `{"messages": [...]}`: a conversation (see the crate README for the rules).
pub(super) fn chat_record(c: &Ctx, v: &JVal, default_id: String) -> TrainingResult {
    c.object(v)?;
    let items = message_array(c, v, "messages")?;
    let turns = turns(c, items, "messages")?;
    system_first(c, &turns, "messages")?;
    if !turns.iter().any(|t| t.role == Role::User) {
        return Err(c.problem("messages", "the conversation has no user turn"));
    }
    let last = turns.len() - 1;
    if turns[last].role != Role::Assistant {
        return Err(c.problem(
            format!("messages[{last}].role"),
            "the conversation must end with an assistant turn",
        ));
    }
    Ok(TrainingRecord::Chat(ChatRecord {
        id: record_id(c, v, default_id)?,
        turns,
        tools: tools(c, v)?,
        kind: ChatKind::Conversation,
        origin: c.origin(),
    }))
}

/// A record's `tools`: absent or null, or a non-empty array of objects (function specs).
fn tools(c: &Ctx, v: &JVal) -> Checked<Option<String>> {
    match v.get("tools") {
        None | Some(JVal::Null) => Ok(None),
        Some(value) => object_array(c, value, "tools").map(Some),
    }
}

/// `value` as JSON text when it is a non-empty array of objects.
fn object_array(c: &Ctx, value: &JVal, field: &str) -> Checked<String> {
    let JVal::Arr(items) = value else {
        return Err(c.problem(
            field,
            format!("expected an array of objects, found {}", value.kind()),
        ));
    };
    if items.is_empty() {
        return Err(c.problem(field, "empty"));
    }
    if let Some((i, item)) = items
        .iter()
        .enumerate()
        .find(|(_, x)| x.entries().is_none())
    {
        return Err(c.problem(
            format!("{field}[{i}]"),
            format!("expected an object, found {}", item.kind()),
        ));
    }
    Ok(value.to_json_text())
}

/// TRL's prompt–completion record: `prompt` and `completion` both strings (a [`TextPair`]) or
/// both arrays of messages (a [`ChatRecord`] of kind [`ChatKind::PromptCompletion`]).
pub(super) fn prompt_completion_record(c: &Ctx, v: &JVal, default_id: String) -> TrainingResult {
    c.object(v)?;
    let prompt = present(c, v, "prompt")?;
    let completion = present(c, v, "completion")?;
    for (key, value) in [("prompt", prompt), ("completion", completion)] {
        if !matches!(value, JVal::Str(_) | JVal::Arr(_)) {
            return Err(c.problem(
                key,
                format!(
                    "expected a string or an array of messages, found {}",
                    value.kind()
                ),
            ));
        }
    }
    match (prompt, completion) {
        (JVal::Str(p), JVal::Str(q)) => {
            if p.trim().is_empty() {
                return Err(c.problem("prompt", "empty"));
            }
            if q.trim().is_empty() {
                return Err(c.problem("completion", "empty"));
            }
            Ok(TrainingRecord::Text(TextPair {
                id: record_id(c, v, default_id)?,
                prompt: p.clone(),
                completion: q.clone(),
                origin: c.origin(),
            }))
        }
        (JVal::Arr(p), JVal::Arr(q)) => {
            if p.is_empty() {
                return Err(c.problem("prompt", "empty"));
            }
            let mut all = turns(c, p, "prompt")?;
            system_first(c, &all, "prompt")?;
            if !all.iter().any(|t| t.role == Role::User) {
                return Err(c.problem("prompt", "the prompt has no user turn"));
            }
            let last = all.len() - 1;
            if !matches!(all[last].role, Role::User | Role::Tool) {
                return Err(c.problem(
                    format!("prompt[{last}].role"),
                    "the prompt must end with a user or tool turn",
                ));
            }
            if q.is_empty() {
                return Err(c.problem("completion", "empty"));
            }
            let completion = turns(c, q, "completion")?;
            if let Some((i, t)) = completion
                .iter()
                .enumerate()
                .find(|(_, t)| t.role != Role::Assistant)
            {
                return Err(c.problem(
                    format!("completion[{i}].role"),
                    format!(
                        "the completion must hold assistant turns only, found {}",
                        t.role
                    ),
                ));
            }
            let prompt_len = all.len();
            all.extend(completion);
            Ok(TrainingRecord::Chat(ChatRecord {
                id: record_id(c, v, default_id)?,
                turns: all,
                tools: tools(c, v)?,
                kind: ChatKind::PromptCompletion { prompt_len },
                origin: c.origin(),
            }))
        }
        (JVal::Str(_), _) => Err(c.problem(
            "completion",
            "an array of messages, but prompt is a string: both must be strings or both arrays of messages",
        )),
        _ => Err(c.problem(
            "completion",
            "a string, but prompt is an array of messages: both must be strings or both arrays of messages",
        )),
    }
}

/// A reasoning-trace row read through `fields`: [system], user = question, assistant = answer
/// with the reasoning.
pub(super) fn trace_record(
    c: &Ctx,
    v: &JVal,
    fields: &TraceFields,
    default_id: String,
) -> TrainingResult {
    c.object(v)?;
    let question = c.text(v, &fields.question)?;
    let reasoning = match &fields.reasoning {
        None => None,
        Some(col) => match v.get(col) {
            None | Some(JVal::Null) => None,
            Some(JVal::Str(s)) if s.trim().is_empty() => return Err(c.problem(col, "empty")),
            Some(JVal::Str(s)) => Some(s.clone()),
            Some(other) => {
                return Err(c.problem(col, format!("expected a string, found {}", other.kind())));
            }
        },
    };
    let answer = c.text(v, &fields.answer)?;
    check_think(c, &fields.answer, &answer, reasoning.is_some(), || {
        format!(
            "reasoning given twice: {} and a <think> block in {}",
            fields.reasoning.as_deref().unwrap_or_default(),
            fields.answer
        )
    })?;
    let system = fields
        .system
        .as_ref()
        .map(|col| c.text(v, col))
        .transpose()?;
    let mut turns = Vec::with_capacity(3);
    if let Some(content) = system {
        turns.push(ChatTurn::new(Role::System, content, None));
    }
    turns.push(ChatTurn::new(Role::User, question, None));
    turns.push(ChatTurn::new(Role::Assistant, answer, reasoning));
    Ok(TrainingRecord::Chat(ChatRecord {
        id: record_id(c, v, default_id)?,
        turns,
        tools: None,
        kind: ChatKind::Conversation,
        origin: c.origin(),
    }))
}

/// A key that must be there and not null.
fn present<'v>(c: &Ctx, v: &'v JVal, key: &str) -> Checked<&'v JVal> {
    match v.get(key) {
        None => Err(c.problem(key, "missing")),
        Some(JVal::Null) => Err(c.problem(key, "missing (null)")),
        Some(value) => Ok(value),
    }
}

/// The non-empty array of messages under `key`.
fn message_array<'v>(c: &Ctx, v: &'v JVal, key: &str) -> Checked<&'v [JVal]> {
    match present(c, v, key)? {
        JVal::Arr(items) if items.is_empty() => Err(c.problem(key, "empty")),
        JVal::Arr(items) => Ok(items),
        other => Err(c.problem(
            key,
            format!("expected an array of messages, found {}", other.kind()),
        )),
    }
}

/// Every message of `items`, named `key[i]` in problems.
fn turns(c: &Ctx, items: &[JVal], key: &str) -> Checked<Vec<ChatTurn>> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| turn(c, m, &format!("{key}[{i}]")))
        .collect()
}

/// A system turn may only be the first.
fn system_first(c: &Ctx, turns: &[ChatTurn], key: &str) -> Checked<()> {
    match turns
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, t)| t.role == Role::System)
    {
        Some((i, _)) => Err(c.problem(
            format!("{key}[{i}].role"),
            "a system message must come first",
        )),
        None => Ok(()),
    }
}

/// One message `{"role", "content", "reasoning_content"?, "tool_calls"?}` (other keys ignored);
/// `field` is its
/// name in problems (`messages[2]`).
fn turn(c: &Ctx, m: &JVal, field: &str) -> Checked<ChatTurn> {
    let entries = m.entries().ok_or_else(|| {
        c.problem(
            field,
            format!("expected a message object, found {}", m.kind()),
        )
    })?;
    let mut seen = HashSet::new();
    for (k, _) in entries {
        if !seen.insert(k.as_str()) {
            return Err(c.problem(format!("{field}.{k}"), "appears twice in the message"));
        }
    }
    let sub = |key: &str| format!("{field}.{key}");
    let role = match m.get("role") {
        None => return Err(c.problem(sub("role"), "missing")),
        Some(JVal::Null) => return Err(c.problem(sub("role"), "missing (null)")),
        Some(JVal::Str(s)) => s.parse::<Role>().map_err(|e| c.problem(sub("role"), e))?,
        Some(other) => {
            return Err(c.problem(
                sub("role"),
                format!("expected a string, found {}", other.kind()),
            ));
        }
    };
    let content = match m.get("content") {
        None => return Err(c.problem(sub("content"), "missing")),
        Some(JVal::Null) => return Err(c.problem(sub("content"), "missing (null)")),
        Some(JVal::Str(s)) => s.clone(),
        Some(other) => {
            return Err(c.problem(
                sub("content"),
                format!("expected a string, found {}", other.kind()),
            ));
        }
    };
    let reasoning = match m.get("reasoning_content") {
        None | Some(JVal::Null) => None,
        Some(JVal::Str(s)) if s.trim().is_empty() => None,
        Some(JVal::Str(s)) => Some(s.clone()),
        Some(other) => {
            return Err(c.problem(
                sub("reasoning_content"),
                format!("expected a string, found {}", other.kind()),
            ));
        }
    };
    let tool_calls = match m.get("tool_calls") {
        None | Some(JVal::Null) => None,
        Some(calls) => Some(object_array(c, calls, &sub("tool_calls"))?),
    };
    if tool_calls.is_some() && role != Role::Assistant {
        return Err(c.problem(
            sub("tool_calls"),
            format!("only an assistant message can call tools, not a {role} message"),
        ));
    }
    if reasoning.is_some() && role != Role::Assistant {
        return Err(c.problem(
            sub("reasoning_content"),
            format!("only an assistant message can have reasoning, not a {role} message"),
        ));
    }
    let says_something = reasoning.is_some() || tool_calls.is_some();
    if content.trim().is_empty() && !(role == Role::Assistant && says_something) {
        return Err(c.problem(sub("content"), "empty content"));
    }
    if role == Role::Assistant {
        check_think(c, &sub("content"), &content, reasoning.is_some(), || {
            "reasoning given twice: reasoning_content and a <think> block in content".to_owned()
        })?;
    }
    Ok(ChatTurn {
        role,
        content,
        reasoning,
        tool_calls,
    })
}

/// An assistant text with a `<think>` block: not beside separate reasoning, and closed.
fn check_think(
    c: &Ctx,
    field: &str,
    content: &str,
    has_reasoning: bool,
    twice: impl FnOnce() -> String,
) -> Checked<()> {
    if let Some(i) = content.find("<think>") {
        if has_reasoning {
            return Err(c.problem(field, twice()));
        }
        if !content[i..].contains("</think>") {
            return Err(c.problem(field, "a <think> without </think>"));
        }
    }
    Ok(())
}
