//! The evaluation prompt: the model's chat template, an optional system prompt, optional
//! few-shot turns (earlier questions with their answer lines), then the question.

use anyhow::{Context, Result};
use medtune_data::{McqRecord, same_question};
use medtune_text::mcq::{McqChatOptions, render_mcq_prompt};
use medtune_text::{ChatMessage, ChatTemplate, RenderOptions};

/// Renders evaluation prompts the same way for every item and every system.
pub struct PromptBuilder<'a> {
    template: &'a ChatTemplate,
    chat: McqChatOptions,
    /// Few-shot candidates in the order they are used (already shuffled by the caller).
    shot_pool: Vec<McqRecord>,
    shots: usize,
}

impl<'a> PromptBuilder<'a> {
    pub fn new(template: &'a ChatTemplate, chat: McqChatOptions) -> Self {
        Self {
            template,
            chat,
            shot_pool: Vec::new(),
            shots: 0,
        }
    }

    /// Puts `shots` solved questions from `pool` before each question: the first `shots` of the
    /// pool that do not ask the item's own question.
    pub fn with_shots(mut self, shots: usize, pool: Vec<McqRecord>) -> Self {
        self.shots = shots;
        self.shot_pool = pool;
        self
    }

    pub fn chat(&self) -> &McqChatOptions {
        &self.chat
    }

    /// The generation prompt for `record` (ends where the assistant's reply starts).
    pub fn render(&self, record: &McqRecord) -> Result<String> {
        let prompt = record.prompt();
        if self.shots == 0 {
            return render_mcq_prompt(self.template, &prompt, &self.chat)
                .with_context(|| format!("{}: rendering the prompt", record.origin));
        }
        let mut messages = Vec::with_capacity(2 * self.shots + 2);
        if let Some(system) = &self.chat.system_prompt {
            messages.push(ChatMessage::system(system.clone()));
        }
        for shot in self
            .shot_pool
            .iter()
            .filter(|s| !same_question(s, record))
            .take(self.shots)
        {
            messages.push(ChatMessage::user(shot.prompt().user_message()));
            messages.push(ChatMessage::assistant(shot.mcq_answer().answer_line()));
        }
        messages.push(ChatMessage::user(prompt.user_message()));
        self.template
            .render(
                &messages,
                &RenderOptions::generation(Some(self.chat.thinking)),
            )
            .with_context(|| format!("{}: rendering the few-shot prompt", record.origin))
    }
}
