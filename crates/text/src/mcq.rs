//! Medical multiple-choice prompts: the user message, the system prompt, the chat prompt for
//! generation, and prompt/target pairs for supervised fine-tuning.
//!
//! Target format: `Answer: C) option text`, then `\n\n` and the explanation when there is one.
//! With thinking on, the explanation goes into the `<think>` block instead and the visible answer is
//! only the answer line.

use crate::chat_template::{ChatMessage, ChatTemplate, RenderOptions};
use crate::error::{Result, TextError};

/// The default system prompt.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a careful medical expert answering multiple-choice questions. Read each question closely, weigh every option, and choose the single best answer.";

/// The last line of the user message.
pub const ANSWER_INSTRUCTION: &str =
    "Answer with the letter of the correct option, then explain your reasoning.";

/// A multiple-choice question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McqPrompt {
    pub question: String,
    /// `(letter, text)` in display order, e.g. `('A', "Aspirin")`.
    pub options: Vec<(char, String)>,
}

/// The correct answer of a question, with an optional explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McqAnswer {
    pub letter: char,
    pub option_text: String,
    pub explanation: Option<String>,
}

/// How to turn a question into a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McqChatOptions {
    /// The system message; `None` sends none.
    pub system_prompt: Option<String>,
    /// Passed to the template as `enable_thinking`.
    pub thinking: bool,
}

impl Default for McqChatOptions {
    /// The default system prompt, thinking off.
    fn default() -> Self {
        McqChatOptions {
            system_prompt: Some(DEFAULT_SYSTEM_PROMPT.to_owned()),
            thinking: false,
        }
    }
}

/// A training example: `prompt + target` is the full rendered conversation (less the template's
/// newline after the final end-of-turn token); `target` ends with the end-of-turn token
/// (`<|im_end|>`). Train on the target's tokens only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainingPair {
    pub prompt: String,
    pub target: String,
}

impl McqPrompt {
    /// A question from `(letter, text)` options.
    pub fn new(question: impl Into<String>, options: Vec<(char, String)>) -> Self {
        McqPrompt {
            question: question.into(),
            options,
        }
    }

    /// A question whose options are lettered `A`, `B`, `C`, ... in order.
    pub fn with_lettered_options<S: Into<String>>(
        question: impl Into<String>,
        options: impl IntoIterator<Item = S>,
    ) -> Self {
        let options = ('A'..='Z')
            .zip(options.into_iter().map(Into::into))
            .collect();
        Self::new(question, options)
    }

    /// Checks that there are options, with distinct letters and non-empty texts.
    pub fn validate(&self) -> Result<()> {
        if self.question.trim().is_empty() {
            return Err(TextError::Prompt("empty question".into()));
        }
        if self.options.is_empty() {
            return Err(TextError::Prompt("question has no options".into()));
        }
        for (i, (letter, text)) in self.options.iter().enumerate() {
            if !letter.is_alphanumeric() {
                return Err(TextError::Prompt(format!(
                    "option letter {letter:?} is not a letter"
                )));
            }
            if self.options[..i].iter().any(|(l, _)| l == letter) {
                return Err(TextError::Prompt(format!("option {letter} appears twice")));
            }
            if text.trim().is_empty() {
                return Err(TextError::Prompt(format!("option {letter} is empty")));
            }
        }
        Ok(())
    }

    /// The option letters in order.
    pub fn letters(&self) -> Vec<char> {
        self.options.iter().map(|(l, _)| *l).collect()
    }

    /// The text of option `letter`.
    pub fn option_text(&self, letter: char) -> Option<&str> {
        self.options
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(_, t)| t.as_str())
    }

    /// The user message: question, blank line, one `A. text` line per option, then
    /// [`ANSWER_INSTRUCTION`].
    pub fn user_message(&self) -> String {
        let mut s = self.question.trim().to_owned();
        s.push_str("\n\n");
        for (letter, text) in &self.options {
            s.push_str(&format!("{letter}. {}\n", text.trim()));
        }
        s.push_str(ANSWER_INSTRUCTION);
        s
    }

    /// The chat up to the question: optional system message, then the user message.
    pub fn messages(&self, opts: &McqChatOptions) -> Vec<ChatMessage> {
        let mut msgs = Vec::with_capacity(2);
        if let Some(system) = &opts.system_prompt {
            msgs.push(ChatMessage::system(system.clone()));
        }
        msgs.push(ChatMessage::user(self.user_message()));
        msgs
    }

    /// The answer for option `letter`, with the option's text.
    pub fn answer(&self, letter: char, explanation: Option<String>) -> Result<McqAnswer> {
        let text = self.option_text(letter).ok_or_else(|| {
            TextError::Prompt(format!(
                "answer {letter} is not one of the options {:?}",
                self.letters()
            ))
        })?;
        Ok(McqAnswer {
            letter,
            option_text: text.trim().to_owned(),
            explanation,
        })
    }
}

impl McqAnswer {
    /// `Answer: C) option text`.
    pub fn answer_line(&self) -> String {
        format!("Answer: {}) {}", self.letter, self.option_text.trim())
    }

    fn explanation(&self) -> Option<&str> {
        self.explanation
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    /// The visible answer without thinking: the answer line, then `\n\n` and the explanation
    /// when there is one.
    pub fn target_text(&self) -> String {
        match self.explanation() {
            Some(e) => format!("{}\n\n{e}", self.answer_line()),
            None => self.answer_line(),
        }
    }

    /// The assistant turn. Thinking off: content [`McqAnswer::target_text`], empty reasoning.
    /// Thinking on: reasoning = the explanation, content = the answer line.
    pub fn assistant_message(&self, thinking: bool) -> ChatMessage {
        if thinking {
            ChatMessage::assistant(self.answer_line())
                .with_reasoning(self.explanation().unwrap_or_default())
        } else {
            ChatMessage::assistant(self.target_text()).with_reasoning("")
        }
    }
}

/// The generation prompt for a question: `add_generation_prompt=true`,
/// `enable_thinking=opts.thinking`.
pub fn render_mcq_prompt(
    template: &ChatTemplate,
    prompt: &McqPrompt,
    opts: &McqChatOptions,
) -> Result<String> {
    prompt.validate()?;
    template.render(
        &prompt.messages(opts),
        &RenderOptions::generation(Some(opts.thinking)),
    )
}

/// A training pair for a question and its answer (see [`render_conversation_pair`]).
pub fn render_mcq_training_pair(
    template: &ChatTemplate,
    prompt: &McqPrompt,
    answer: &McqAnswer,
    opts: &McqChatOptions,
) -> Result<TrainingPair> {
    prompt.validate()?;
    render_conversation_pair(
        template,
        &prompt.messages(opts),
        &answer.assistant_message(opts.thinking),
        Some(opts.thinking),
    )
}

/// Renders `context + [reply]` (no generation prompt) and splits it into the generation prompt for
/// `context` (`add_generation_prompt=true`) and the rest, the target. The target ends with the
/// template's `eos_token` (the end-of-turn token); whitespace the template writes after it is
/// dropped. With Qwen3 and thinking off, the empty `<think>\n\n</think>\n\n` is part of the
/// prompt; with thinking on, the target starts with `<think>\n`.
pub fn render_conversation_pair(
    template: &ChatTemplate,
    context: &[ChatMessage],
    reply: &ChatMessage,
    enable_thinking: Option<bool>,
) -> Result<TrainingPair> {
    let eos = template
        .special_tokens()
        .eos_token
        .as_deref()
        .ok_or_else(|| TextError::Prompt("the chat template has no eos_token".into()))?;
    let prompt = template.render(context, &RenderOptions::generation(enable_thinking))?;
    let mut all = context.to_vec();
    all.push(reply.clone());
    let full = template.render(
        &all,
        &RenderOptions {
            add_generation_prompt: false,
            enable_thinking,
            tools: None,
        },
    )?;
    let rest = full.strip_prefix(prompt.as_str()).ok_or_else(|| {
        TextError::Prompt(format!(
            "the generation prompt is not a prefix of the full conversation:\nprompt: {prompt:?}\nfull:   {full:?}"
        ))
    })?;
    let end = rest
        .rfind(eos)
        .map(|i| i + eos.len())
        .ok_or_else(|| TextError::Prompt(format!("the reply does not end with {eos}: {rest:?}")))?;
    if !rest[end..].trim().is_empty() {
        return Err(TextError::Prompt(format!(
            "text after the reply's {eos}: {:?}",
            &rest[end..]
        )));
    }
    Ok(TrainingPair {
        prompt,
        target: rest[..end].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin_tokenizer::BUILTIN_CHAT_TEMPLATE;
    use crate::chat_template::SpecialTokens;

    fn template() -> ChatTemplate {
        ChatTemplate::new(
            BUILTIN_CHAT_TEMPLATE,
            SpecialTokens {
                eos_token: Some("<|im_end|>".into()),
                pad_token: Some("<|endoftext|>".into()),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn question() -> McqPrompt {
        McqPrompt::with_lettered_options(
            "Which vitamin deficiency causes scurvy? ",
            ["Vitamin A", "Vitamin C", " Vitamin D\n"],
        )
    }

    #[test]
    fn user_message_layout() {
        assert_eq!(
            question().user_message(),
            "Which vitamin deficiency causes scurvy?\n\nA. Vitamin A\nB. Vitamin C\nC. Vitamin D\nAnswer with the letter of the correct option, then explain your reasoning."
        );
    }

    #[test]
    fn validation() {
        assert!(question().validate().is_ok());
        assert!(McqPrompt::new("q", vec![]).validate().is_err());
        assert!(
            McqPrompt::new("q", vec![('A', "x".into()), ('A', "y".into())])
                .validate()
                .is_err()
        );
        assert!(question().answer('E', None).is_err());
    }

    #[test]
    fn target_text() {
        let q = question();
        let a = q.answer('B', None).unwrap();
        assert_eq!(a.target_text(), "Answer: B) Vitamin C");
        let a = q.answer('B', Some(" Collagen needs it. ".into())).unwrap();
        assert_eq!(
            a.target_text(),
            "Answer: B) Vitamin C\n\nCollagen needs it."
        );
    }

    #[test]
    fn prompt_and_pair_without_thinking() {
        let t = template();
        let q = question();
        let opts = McqChatOptions::default();
        let prompt = render_mcq_prompt(&t, &q, &opts).unwrap();
        let head = format!(
            "<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
            q.user_message()
        );
        assert_eq!(prompt, format!("{head}<think>\n\n</think>\n\n"));
        let a = q.answer('B', Some("Collagen needs it.".into())).unwrap();
        let pair = render_mcq_training_pair(&t, &q, &a, &opts).unwrap();
        assert_eq!(pair.prompt, prompt);
        assert_eq!(
            pair.target,
            "Answer: B) Vitamin C\n\nCollagen needs it.<|im_end|>"
        );
    }

    #[test]
    fn prompt_and_pair_with_thinking() {
        let t = template();
        let q = question();
        let opts = McqChatOptions {
            system_prompt: None,
            thinking: true,
        };
        let prompt = render_mcq_prompt(&t, &q, &opts).unwrap();
        assert_eq!(
            prompt,
            format!(
                "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
                q.user_message()
            )
        );
        let a = q.answer('B', Some("Collagen needs it.".into())).unwrap();
        let pair = render_mcq_training_pair(&t, &q, &a, &opts).unwrap();
        assert_eq!(pair.prompt, prompt);
        assert_eq!(
            pair.target,
            "<think>\nCollagen needs it.\n</think>\n\nAnswer: B) Vitamin C<|im_end|>"
        );
        let a = q.answer('B', None).unwrap();
        let pair = render_mcq_training_pair(&t, &q, &a, &opts).unwrap();
        assert_eq!(
            pair.target,
            "<think>\n\n</think>\n\nAnswer: B) Vitamin C<|im_end|>"
        );
    }

    #[test]
    fn pair_fails_when_prompt_is_not_a_prefix() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}>>{% endif %}<|im_end|>",
            SpecialTokens {
                eos_token: Some("<|im_end|>".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let err = render_conversation_pair(
            &t,
            &[ChatMessage::user("q")],
            &ChatMessage::assistant("a"),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a prefix"), "{err}");
    }
}
