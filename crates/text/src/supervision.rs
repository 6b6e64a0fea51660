//! Which tokens of a training example carry the loss: conversations rendered through the model's
//! chat template with the loss on what the assistant writes, and prompt–completion pairs with the
//! loss on the completion.
//!
//! Conversations (`{"messages": [...]}`) are rendered once, whole, and tokenised once, as
//! `apply_chat_template` and TRL's `SFTTrainer` do. Where an assistant turn lies in the text is
//! found in one of two ways:
//!
//! - **Templates with `{% generation %}` blocks** (TRL's training templates, e.g. its
//!   `qwen3_training.jinja`): the text inside each block is the assistant's, exactly as
//!   transformers' `return_assistant_tokens_mask` marks it. medtune renders the template with a
//!   private-use marker in place of each block tag and reads the spans off the markers. With
//!   such a template medtune's masks are TRL's `assistant_only_loss` masks, token for token.
//! - **Other templates** (Qwen3's own, ChatML): a turn starts where the generation prompt of
//!   the conversation before it ends (`add_generation_prompt=true`), and ends with the template's
//!   end-of-turn token (`<|im_end|>`), included; the turn's header and the newline after it are not
//!   the assistant's words. This needs the template to be prefix-preserving up to each assistant
//!   turn, which is checked.
//!
//! Qwen3's own template drops the reasoning (and the think block) of assistant turns before the
//! last user message, and gives the last turn a think block, empty or not. In one sequence an
//! earlier turn would then be trained as a reply without a think block, which the model never
//! writes at inference. [`conversation_examples`] therefore makes, for such templates, one
//! sequence per target turn, each rendered as the last turn of the conversation so far: the
//! context exactly as the model sees it when it writes that turn, and the turn as it writes it
//! (think block, reply, end-of-turn token). TRL's `assistant_only_loss` instead swaps in its
//! training template (`qwen3_training.jinja`), which keeps every turn's reasoning and think block
//! in one sequence; pass that template (`--chat-template`) to train exactly as TRL does.
//!
//! A token is a target when any of its bytes lies in an assistant span (transformers marks the
//! tokens from the one holding a span's first character to the one holding its last).

use crate::chat_template::{ChatMessage, ChatTemplate, RenderOptions};
use crate::error::{Result, TextError};
use crate::generation_blocks::split_markers;
use crate::tokenizer::Tokenizer;

/// Which assistant turns of a conversation are training targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssistantTurns {
    /// Every assistant turn (TRL's `assistant_only_loss`).
    #[default]
    All,
    /// Only the last one.
    Last,
}

/// A tokenised training example: ids and, for each, whether it is a target (predicted with loss).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupervisedTokens {
    pub ids: Vec<u32>,
    pub targets: Vec<bool>,
}

impl SupervisedTokens {
    /// Hugging Face collator labels ([`labels`]).
    pub fn labels(&self) -> Vec<i64> {
        labels(&self.ids, &self.targets)
    }

    /// Number of target tokens.
    pub fn target_count(&self) -> usize {
        self.targets.iter().filter(|t| **t).count()
    }
}

/// Hugging Face collator labels: each id where its token is a target, −100 elsewhere.
pub fn labels(ids: &[u32], targets: &[bool]) -> Vec<i64> {
    ids.iter()
        .zip(targets)
        .map(|(&id, &t)| if t { i64::from(id) } else { -100 })
        .collect()
}

/// `messages` (ending with an assistant turn) rendered through `template` and tokenised, the
/// assistant turns chosen by `turns` as targets (see the module's documentation).
pub fn supervise_conversation(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    tools: Option<&str>,
    turns: AssistantTurns,
) -> Result<SupervisedTokens> {
    let assistant_at: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == "assistant")
        .map(|(i, _)| i)
        .collect();
    if messages.last().is_none_or(|m| m.role != "assistant") {
        return Err(TextError::Prompt(
            "a training conversation must end with an assistant turn".into(),
        ));
    }
    let whole = RenderOptions {
        tools: tools.map(str::to_owned),
        ..RenderOptions::default()
    };
    let (text, mut spans) = if template.has_generation_blocks() {
        let (text, spans) = split_markers(&template.render_marking_generation(messages, &whole)?)?;
        if spans.len() != assistant_at.len() {
            return Err(TextError::Prompt(format!(
                "the chat template's generation blocks mark {} spans for {} assistant turns",
                spans.len(),
                assistant_at.len()
            )));
        }
        (text, spans)
    } else {
        let text = template.render(messages, &whole)?;
        let spans = assistant_at
            .iter()
            .map(|&i| turn_span(template, &messages[..i], tools, &text))
            .collect::<Result<Vec<_>>>()?;
        (text, spans)
    };
    if turns == AssistantTurns::Last {
        spans.drain(..spans.len() - 1);
    }
    tokenize_with_spans(tokenizer, &text, &spans)
}

/// The training sequences of one conversation (ending with an assistant turn): with a template
/// that has `{% generation %}` blocks, one sequence with `turns` as targets (TRL's masks); with
/// another, one sequence per target turn, that turn rendered last (see the module's
/// documentation).
pub fn conversation_examples(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    tools: Option<&str>,
    turns: AssistantTurns,
) -> Result<Vec<SupervisedTokens>> {
    if template.has_generation_blocks() || turns == AssistantTurns::Last {
        return Ok(vec![supervise_conversation(
            tokenizer, template, messages, tools, turns,
        )?]);
    }
    messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == "assistant")
        .map(|(i, _)| {
            supervise_conversation(
                tokenizer,
                template,
                &messages[..=i],
                tools,
                AssistantTurns::Last,
            )
        })
        .collect()
}

/// A conversational prompt–completion pair, as TRL's `completion_only_loss` takes it: the prompt
/// rendered with the generation prompt, the whole rendered after it; every token after the
/// prompt's tokens is a target.
pub fn supervise_prompt_completion(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    prompt: &[ChatMessage],
    completion: &[ChatMessage],
    tools: Option<&str>,
) -> Result<SupervisedTokens> {
    let with_tools = |add_generation_prompt| RenderOptions {
        add_generation_prompt,
        enable_thinking: None,
        tools: tools.map(str::to_owned),
    };
    let prompt_text = template.render(prompt, &with_tools(true))?;
    let all: Vec<ChatMessage> = prompt.iter().chain(completion).cloned().collect();
    let whole = template.render(&all, &with_tools(false))?;
    prefix_supervised(tokenizer, &prompt_text, &whole)
}

/// A plain-text prompt–completion pair (no chat template, TRL's non-conversational form): the
/// completion, with the end-of-sequence token appended unless it ends with it, is the target.
pub fn supervise_text_pair(
    tokenizer: &Tokenizer,
    prompt: &str,
    completion: &str,
) -> Result<SupervisedTokens> {
    let eos = tokenizer.eos_token();
    let completion = if completion.ends_with(eos) {
        completion.to_string()
    } else {
        format!("{completion}{eos}")
    };
    prefix_supervised(tokenizer, prompt, &format!("{prompt}{completion}"))
}

/// `whole` tokenised, its tokens after those of `prompt` (tokenised alone) the targets. The
/// prompt's tokens must be a prefix of the whole's.
fn prefix_supervised(tokenizer: &Tokenizer, prompt: &str, whole: &str) -> Result<SupervisedTokens> {
    let prompt_ids = tokenizer.encode(prompt)?;
    let ids = tokenizer.encode(whole)?;
    if !ids.starts_with(&prompt_ids) {
        return Err(TextError::Prompt(format!(
            "the prompt's tokens are not a prefix of the whole example's (the completion merges \
             with the prompt's last token):\nprompt: {prompt:?}"
        )));
    }
    let targets = (0..ids.len()).map(|i| i >= prompt_ids.len()).collect();
    Ok(SupervisedTokens { ids, targets })
}

/// The byte span of the assistant turn that follows `before` in the whole rendered `text`: from
/// the end of `before`'s generation prompt to the end-of-turn token, included.
fn turn_span(
    template: &ChatTemplate,
    before: &[ChatMessage],
    tools: Option<&str>,
    text: &str,
) -> Result<(usize, usize)> {
    let generation = RenderOptions {
        tools: tools.map(str::to_owned),
        ..RenderOptions::generation(None)
    };
    let prompt = template.render(before, &generation)?;
    if !text.starts_with(&prompt) {
        return Err(TextError::Prompt(format!(
            "the chat template is not prefix-preserving: the conversation up to an assistant \
             turn, rendered with the generation prompt, is not the start of the whole \
             conversation; use a template with {{% generation %}} blocks (--chat-template)\n\
             prompt: {prompt:?}"
        )));
    }
    let eos = template
        .special_tokens()
        .eos_token
        .as_deref()
        .ok_or_else(|| TextError::Prompt("the chat template has no eos_token".into()))?;
    let start = prompt.len();
    let end = text[start..]
        .find(eos)
        .map(|i| start + i + eos.len())
        .ok_or_else(|| TextError::Prompt(format!("an assistant turn does not end with {eos}")))?;
    Ok((start, end))
}

/// `text` tokenised, a token a target when its bytes overlap one of `spans`.
fn tokenize_with_spans(
    tokenizer: &Tokenizer,
    text: &str,
    spans: &[(usize, usize)],
) -> Result<SupervisedTokens> {
    let encoding = tokenizer
        .inner()
        .encode(text, false)
        .map_err(TextError::tokenizer)?;
    let targets = encoding
        .get_offsets()
        .iter()
        .map(|&(s, e)| spans.iter().any(|&(a, b)| s < b && a < e))
        .collect();
    Ok(SupervisedTokens {
        ids: encoding.get_ids().to_vec(),
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_template_renders_the_same_text_as_the_original() {
        use crate::chat_template::SpecialTokens;
        let src = "{%- for m in messages %}\n    {%- if m.role == 'assistant' %}\n        {% generation %}\n        {{- '<a>' + m.content + '</a>\\n' }}\n        {%- endgeneration %}\n    {%- else %}\n        {{- '<u>' + m.content + '</u>\\n' }}\n    {%- endif %}\n{%- endfor %}";
        let msgs = [
            ChatMessage::user("hi"),
            ChatMessage::assistant("yo"),
            ChatMessage::user("why"),
            ChatMessage::assistant("because"),
        ];
        let template = ChatTemplate::new(src, SpecialTokens::default()).unwrap();
        let plain = template.render(&msgs, &RenderOptions::default()).unwrap();
        let marked = template
            .render_marking_generation(&msgs, &RenderOptions::default())
            .unwrap();
        let (text, spans) = split_markers(&marked).unwrap();
        assert_eq!(text, plain);
        let picked: Vec<&str> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(picked, ["<a>yo</a>\n", "<a>because</a>\n"]);
    }

    fn builtin() -> (tempfile::TempDir, Tokenizer) {
        let dir = tempfile::tempdir().unwrap();
        crate::builtin_tokenizer::write_builtin_tokenizer(dir.path()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        (dir, tok)
    }

    /// The decoded text of each run of consecutive targets.
    fn target_runs(tok: &Tokenizer, s: &SupervisedTokens) -> Vec<String> {
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for (&id, &t) in s.ids.iter().zip(&s.targets) {
            if t {
                run.push(id);
            } else if !run.is_empty() {
                runs.push(tok.decode(&run, false).unwrap());
                run.clear();
            }
        }
        if !run.is_empty() {
            runs.push(tok.decode(&run, false).unwrap());
        }
        runs
    }

    #[test]
    fn every_assistant_turn_or_the_last_is_the_target() {
        let (_d, tok) = builtin();
        let template = tok.chat_template().unwrap();
        let msgs = [
            ChatMessage::system("You are a careful clinician."),
            ChatMessage::user("Which vitamin deficiency causes scurvy?"),
            ChatMessage::assistant("Vitamin C.").with_reasoning("Collagen synthesis needs it."),
            ChatMessage::user("And night blindness?"),
            ChatMessage::assistant("Vitamin A.").with_reasoning("Rhodopsin needs retinal."),
        ];
        let all = supervise_conversation(&tok, template, &msgs, None, AssistantTurns::All).unwrap();
        // The earlier turn is rendered without its reasoning (the template drops it), the last
        // with its think block; each ends with the end-of-turn token.
        assert_eq!(
            target_runs(&tok, &all),
            [
                "Vitamin C.<|im_end|>",
                "<think>\nRhodopsin needs retinal.\n</think>\n\nVitamin A.<|im_end|>"
            ]
        );
        let last =
            supervise_conversation(&tok, template, &msgs, None, AssistantTurns::Last).unwrap();
        assert_eq!(target_runs(&tok, &last), target_runs(&tok, &all)[1..]);
        assert_eq!(all.ids, last.ids);
        // Without generation blocks, one sequence per turn, each turn rendered last: the first
        // with its reasoning, the second after the first's reply.
        let each = conversation_examples(&tok, template, &msgs, None, AssistantTurns::All).unwrap();
        assert_eq!(each.len(), 2);
        assert_eq!(
            target_runs(&tok, &each[0]),
            ["<think>\nCollagen synthesis needs it.\n</think>\n\nVitamin C.<|im_end|>"]
        );
        assert_eq!(each[1], last);
        let labels = all.labels();
        assert!(
            labels
                .iter()
                .zip(&all.targets)
                .all(|(&l, &t)| (l == -100) != t)
        );
        assert!(
            supervise_conversation(&tok, template, &msgs[..4], None, AssistantTurns::All).is_err(),
            "a conversation ending with a user turn has nothing to learn"
        );
    }

    #[test]
    fn a_completion_is_the_target_after_its_prompt() {
        let (_d, tok) = builtin();
        let template = tok.chat_template().unwrap();
        let prompt = [ChatMessage::user("Name the antidote for heparin.")];
        let completion = [ChatMessage::assistant("Protamine sulfate.")];
        let pc = supervise_prompt_completion(&tok, template, &prompt, &completion, None).unwrap();
        assert_eq!(
            target_runs(&tok, &pc),
            ["<think>\n\n</think>\n\nProtamine sulfate.<|im_end|>\n"]
        );
        let plain = supervise_text_pair(&tok, "Heparin antidote:", " protamine").unwrap();
        assert_eq!(target_runs(&tok, &plain), [" protamine<|im_end|>"]);
        assert!(!plain.targets[0]);
    }
}
