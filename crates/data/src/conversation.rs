//! Training records beyond multiple choice: conversations (`{"messages": [...]}`), prompt–completion
//! pairs (TRL's conversational and plain-text forms) and reasoning traces read through a field
//! mapping ([`TraceFields`]); and [`TrainingRecord`], any record a training run can use.

use std::fmt;
use std::str::FromStr;

use medtune_text::ChatMessage;

use crate::record::{McqRecord, Origin};

/// The author of a chat turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::System, Role::User, Role::Assistant, Role::Tool];

    /// `system`, `user`, `assistant` or `tool`, as in the data and in chat templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// Exactly `system`, `user`, `assistant` or `tool`.
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: expected system, user, assistant or tool"))
    }
}

/// One validated chat turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTurn {
    pub role: Role,
    /// As in the file. Empty only for an assistant turn that has `reasoning`. An assistant turn
    /// may hold a whole `<think>...</think>` block here instead of `reasoning`; it is kept as
    /// written (chat templates such as Qwen3's split it out themselves).
    pub content: String,
    /// The message's `reasoning_content` (`None` when absent, null or blank); assistant turns
    /// only.
    pub reasoning: Option<String>,
    /// An assistant turn's `tool_calls`, as JSON text of a non-empty array of objects (keys in
    /// file order).
    pub tool_calls: Option<String>,
}

impl ChatTurn {
    /// A turn without tool calls.
    pub fn new(role: Role, content: impl Into<String>, reasoning: Option<String>) -> Self {
        Self {
            role,
            content: content.into(),
            reasoning,
            tool_calls: None,
        }
    }

    /// The turn as `medtune_text`'s chat message (`reasoning` → `reasoning_content`).
    pub fn message(&self) -> ChatMessage {
        ChatMessage {
            role: self.role.as_str().to_owned(),
            content: self.content.clone(),
            reasoning_content: self.reasoning.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }

    /// Whether the turn carries reasoning: `reasoning`, or a non-empty `<think>...</think>`
    /// block in an assistant turn's content.
    pub fn has_reasoning(&self) -> bool {
        if self.reasoning.is_some() {
            return true;
        }
        if self.role != Role::Assistant {
            return false;
        }
        let Some(start) = self.content.find("<think>") else {
            return false;
        };
        let inner = &self.content[start + "<think>".len()..];
        inner
            .find("</think>")
            .is_some_and(|end| !inner[..end].trim().is_empty())
    }
}

/// Which turns of a [`ChatRecord`] are training targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// `{"messages": [...]}`: every assistant turn is a training target (the trainer may keep
    /// only the last).
    Conversation,
    /// Prompt–completion in conversational form: `turns[..prompt_len]` are the prompt (never
    /// supervised), the rest is the completion (all supervised).
    PromptCompletion { prompt_len: usize },
}

/// A validated conversation: at least one user turn, a system turn only first, ending with an
/// assistant turn; every turn with non-empty content (an assistant turn may have empty content
/// when it has reasoning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRecord {
    /// The record's `id` (string or integer), else `<file stem>:<line>`.
    pub id: String,
    pub turns: Vec<ChatTurn>,
    /// The record's `tools` (function specs the template lists, as `apply_chat_template`'s
    /// `tools`), as JSON text of an array of objects.
    pub tools: Option<String>,
    pub kind: ChatKind,
    pub origin: Origin,
}

impl ChatRecord {
    /// The content of the first user turn (empty only for a record that was not validated).
    pub fn first_user(&self) -> &str {
        self.turns
            .iter()
            .find(|t| t.role == Role::User)
            .map_or("", |t| t.content.as_str())
    }

    /// The turns as `medtune_text` chat messages, ready for a chat template.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.turns.iter().map(ChatTurn::message).collect()
    }

    /// How many turns are assistant turns.
    pub fn assistant_turns(&self) -> usize {
        self.turns
            .iter()
            .filter(|t| t.role == Role::Assistant)
            .count()
    }

    /// Whether any turn carries reasoning ([`ChatTurn::has_reasoning`]).
    pub fn has_reasoning(&self) -> bool {
        self.turns.iter().any(ChatTurn::has_reasoning)
    }
}

/// A plain-text prompt–completion pair (`{"prompt": "...", "completion": "..."}` with strings):
/// no chat template applies (TRL's non-conversational form). Both texts are non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextPair {
    /// The record's `id` (string or integer), else `<file stem>:<line>`.
    pub id: String,
    pub prompt: String,
    pub completion: String,
    pub origin: Origin,
}

/// Any record a training run can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrainingRecord {
    Mcq(McqRecord),
    Chat(ChatRecord),
    Text(TextPair),
}

impl TrainingRecord {
    pub fn id(&self) -> &str {
        match self {
            TrainingRecord::Mcq(r) => &r.id,
            TrainingRecord::Chat(r) => &r.id,
            TrainingRecord::Text(r) => &r.id,
        }
    }

    pub fn origin(&self) -> &Origin {
        match self {
            TrainingRecord::Mcq(r) => &r.origin,
            TrainingRecord::Chat(r) => &r.origin,
            TrainingRecord::Text(r) => &r.origin,
        }
    }

    /// The question, for contamination checks and splits: an MCQ record's question, a chat
    /// record's first user turn, a text pair's prompt.
    pub fn question_text(&self) -> &str {
        match self {
            TrainingRecord::Mcq(r) => &r.question,
            TrainingRecord::Chat(r) => r.first_user(),
            TrainingRecord::Text(r) => &r.prompt,
        }
    }

    /// The multiple-choice record, when it is one.
    pub fn as_mcq(&self) -> Option<&McqRecord> {
        match self {
            TrainingRecord::Mcq(r) => Some(r),
            _ => None,
        }
    }
}

impl From<McqRecord> for TrainingRecord {
    fn from(r: McqRecord) -> Self {
        TrainingRecord::Mcq(r)
    }
}

impl From<ChatRecord> for TrainingRecord {
    fn from(r: ChatRecord) -> Self {
        TrainingRecord::Chat(r)
    }
}

impl From<TextPair> for TrainingRecord {
    fn from(r: TextPair) -> Self {
        TrainingRecord::Text(r)
    }
}

/// Which columns of a reasoning-trace table ([`crate::Format::Trace`]) hold what, e.g.
/// medical-o1-reasoning-SFT's `question=Question,reasoning=Complex_CoT,answer=Response`.
///
/// A trace record becomes a [`ChatRecord`] of kind [`ChatKind::Conversation`]: an optional
/// system turn (`system`), the user turn (`question`) and the assistant turn (`answer`, with
/// `reasoning` as its reasoning).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceFields {
    /// The column of the question (required, a non-empty string in every record).
    pub question: String,
    /// The column of the reasoning (absent or null in a record → no reasoning).
    pub reasoning: Option<String>,
    /// The column of the answer (required, a non-empty string in every record).
    pub answer: String,
    /// The column of a system prompt (when mapped, a non-empty string in every record).
    pub system: Option<String>,
}

impl fmt::Display for TraceFields {
    /// The form [`FromStr`] reads: `question=Q[,reasoning=R],answer=A[,system=S]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "question={}", self.question)?;
        if let Some(r) = &self.reasoning {
            write!(f, ",reasoning={r}")?;
        }
        write!(f, ",answer={}", self.answer)?;
        if let Some(s) = &self.system {
            write!(f, ",system={s}")?;
        }
        Ok(())
    }
}

impl FromStr for TraceFields {
    type Err = String;

    /// `key=COLUMN` entries separated by commas; keys `question` and `answer` (required),
    /// `reasoning` and `system` (optional), each at most once.
    fn from_str(s: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected key=COLUMN pairs such as question=Question,reasoning=Complex_CoT,answer=Response";
        let mut question = None;
        let mut reasoning = None;
        let mut answer = None;
        let mut system = None;
        if s.trim().is_empty() {
            return Err(format!("empty field mapping: {EXPECTED}"));
        }
        for entry in s.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!(
                    "empty entry in the field mapping {s:?}: {EXPECTED}"
                ));
            }
            let (key, column) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` has no `=`: {EXPECTED}"))?;
            let (key, column) = (key.trim(), column.trim());
            let slot = match key {
                "question" => &mut question,
                "reasoning" => &mut reasoning,
                "answer" => &mut answer,
                "system" => &mut system,
                other => {
                    return Err(format!(
                        "unknown key `{other}` in the field mapping: expected question, reasoning, answer or system"
                    ));
                }
            };
            if column.is_empty() {
                return Err(format!("`{key}=` names no column"));
            }
            if slot.is_some() {
                return Err(format!("`{key}` is given twice in the field mapping"));
            }
            *slot = Some(column.to_owned());
        }
        let question =
            question.ok_or_else(|| "the field mapping needs question=COLUMN".to_owned())?;
        let answer = answer.ok_or_else(|| "the field mapping needs answer=COLUMN".to_owned())?;
        let fields = TraceFields {
            question,
            reasoning,
            answer,
            system,
        };
        let named = fields.columns();
        for (i, (k1, c1)) in named.iter().enumerate() {
            if let Some((k2, _)) = named[i + 1..].iter().find(|(_, c2)| c2 == c1) {
                return Err(format!("`{k1}` and `{k2}` name the same column `{c1}`"));
            }
        }
        Ok(fields)
    }
}

impl TraceFields {
    /// `(key, column)` of every mapped field, in the order question, reasoning, answer, system.
    pub fn columns(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("question", self.question.as_str())];
        if let Some(r) = &self.reasoning {
            out.push(("reasoning", r));
        }
        out.push(("answer", &self.answer));
        if let Some(s) = &self.system {
            out.push(("system", s));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: "c.jsonl".into(),
            line: 1,
        }
    }

    fn turn(role: Role, content: &str, reasoning: Option<&str>) -> ChatTurn {
        ChatTurn::new(role, content, reasoning.map(Into::into))
    }

    #[test]
    fn roles_parse_exactly() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert_eq!(
            "User".parse::<Role>().unwrap_err(),
            "unknown role `User`: expected system, user, assistant or tool"
        );
    }

    #[test]
    fn records_answer_their_questions() {
        let chat = ChatRecord {
            tools: None,
            id: "c:1".into(),
            turns: vec![
                turn(Role::System, "Answer briefly.", None),
                turn(Role::User, "Which nerve is hit in wrist drop?", None),
                turn(Role::Assistant, "The radial nerve.", Some("Extensors.")),
                turn(Role::User, "And in claw hand?", None),
                turn(
                    Role::Assistant,
                    "<think>Intrinsics.</think>The ulnar nerve.",
                    None,
                ),
            ],
            kind: ChatKind::Conversation,
            origin: origin(),
        };
        assert_eq!(chat.first_user(), "Which nerve is hit in wrist drop?");
        assert_eq!(chat.assistant_turns(), 2);
        assert!(chat.turns[4].has_reasoning());
        assert!(!turn(Role::Assistant, "<think> </think>x", None).has_reasoning());
        let m = chat.messages();
        assert_eq!(m[2].role, "assistant");
        assert_eq!(m[2].reasoning_content.as_deref(), Some("Extensors."));
        let t = TrainingRecord::from(chat);
        assert_eq!(
            (t.id(), t.question_text()),
            ("c:1", "Which nerve is hit in wrist drop?")
        );
        assert!(t.as_mcq().is_none());
        let text = TrainingRecord::Text(TextPair {
            id: "t".into(),
            prompt: "Antidote for paracetamol overdose:".into(),
            completion: " acetylcysteine.".into(),
            origin: origin(),
        });
        assert_eq!(text.question_text(), "Antidote for paracetamol overdose:");
        assert_eq!(text.origin().line, 1);
    }

    #[test]
    fn parses_trace_fields() {
        let f: TraceFields = "question=Question,reasoning=Complex_CoT,answer=Response"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            TraceFields {
                question: "Question".into(),
                reasoning: Some("Complex_CoT".into()),
                answer: "Response".into(),
                system: None,
            }
        );
        assert_eq!(
            f.to_string(),
            "question=Question,reasoning=Complex_CoT,answer=Response"
        );
        let g: TraceFields = " answer = out , system=sys, question=in ".parse().unwrap();
        assert_eq!(
            (g.question.as_str(), g.answer.as_str(), g.system.as_deref()),
            ("in", "out", Some("sys"))
        );
        assert_eq!(g.reasoning, None);
        assert_eq!(g.to_string().parse::<TraceFields>().unwrap(), g);
    }

    #[test]
    fn trace_field_errors() {
        let expected = "expected key=COLUMN pairs such as question=Question,reasoning=Complex_CoT,answer=Response";
        for (text, want) in [
            ("", format!("empty field mapping: {expected}")),
            (
                "question=Q,Response",
                format!("`Response` has no `=`: {expected}"),
            ),
            (
                "question=Q,,answer=A",
                format!("empty entry in the field mapping \"question=Q,,answer=A\": {expected}"),
            ),
            (
                "question=Q,answer=A,cot=C",
                "unknown key `cot` in the field mapping: expected question, reasoning, answer or system"
                    .to_owned(),
            ),
            (
                "Question=Q,answer=A",
                "unknown key `Question` in the field mapping: expected question, reasoning, answer or system"
                    .to_owned(),
            ),
            ("question=,answer=A", "`question=` names no column".to_owned()),
            (
                "question=Q,question=R,answer=A",
                "`question` is given twice in the field mapping".to_owned(),
            ),
            (
                "reasoning=R,answer=A",
                "the field mapping needs question=COLUMN".to_owned(),
            ),
            ("question=Q", "the field mapping needs answer=COLUMN".to_owned()),
            (
                "question=Q,answer=Q",
                "`question` and `answer` name the same column `Q`".to_owned(),
            ),
        ] {
            assert_eq!(text.parse::<TraceFields>().unwrap_err(), want, "{text:?}");
        }
    }
}
