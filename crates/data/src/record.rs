//! The one record type every reader produces.

use std::fmt;
use std::path::PathBuf;

use medtune_text::mcq::{McqAnswer, McqChatOptions, McqPrompt, TrainingPair};
use medtune_text::{ChatTemplate, render_mcq_training_pair};

/// Where a record comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based: the line of a JSON Lines record, the first line of a CSV record, the item index
    /// of a record in a JSON object file (PubMedQA, whose key is the record's `id`).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A validated multiple-choice question: at least two options with distinct letters and
/// non-empty texts, a non-empty question, and an answer that is one of the option letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McqRecord {
    /// The source's id (MedMCQA `id`, PubMedQA PMID, generic `id`), else `<file stem>:<line>`.
    pub id: String,
    pub question: String,
    /// `(letter, text)` in display order.
    pub options: Vec<(char, String)>,
    pub answer: char,
    pub explanation: Option<String>,
    pub subject: Option<String>,
    /// PubMedQA: the abstract's context paragraphs, joined by blank lines.
    pub context: Option<String>,
    pub origin: Origin,
}

impl McqRecord {
    /// The question as the model sees it. With a context (PubMedQA) the question text is
    /// `Context: <context>\n\nQuestion: <question>`.
    pub fn prompt(&self) -> McqPrompt {
        let question = match self.context.as_deref().map(str::trim) {
            Some(ctx) if !ctx.is_empty() => {
                format!("Context: {ctx}\n\nQuestion: {}", self.question.trim())
            }
            _ => self.question.clone(),
        };
        McqPrompt::new(question, self.options.clone())
    }

    /// The option letters in order.
    pub fn letters(&self) -> Vec<char> {
        self.options.iter().map(|(l, _)| *l).collect()
    }

    /// The text of the correct option.
    pub fn answer_text(&self) -> &str {
        self.options
            .iter()
            .find(|(l, _)| *l == self.answer)
            .map(|(_, t)| t.as_str())
            .expect("a validated record's answer is one of its options")
    }

    /// The correct answer with the explanation, for training targets.
    pub fn mcq_answer(&self) -> McqAnswer {
        McqAnswer {
            letter: self.answer,
            option_text: self.answer_text().trim().to_owned(),
            explanation: self.explanation.clone(),
        }
    }

    /// The `(prompt, target)` training pair rendered with `template`.
    pub fn training_pair(
        &self,
        template: &ChatTemplate,
        opts: &McqChatOptions,
    ) -> medtune_text::Result<TrainingPair> {
        render_mcq_training_pair(template, &self.prompt(), &self.mcq_answer(), opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> McqRecord {
        McqRecord {
            id: "x:1".into(),
            question: "Is the sky green?".into(),
            options: vec![
                ('A', "yes".into()),
                ('B', "no".into()),
                ('C', "maybe".into()),
            ],
            answer: 'B',
            explanation: Some("It is blue.".into()),
            subject: None,
            context: Some("We looked up.\n\nIt was blue.".into()),
            origin: Origin {
                file: "x.json".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn prompt_puts_the_context_first() {
        let p = record().prompt();
        assert_eq!(
            p.question,
            "Context: We looked up.\n\nIt was blue.\n\nQuestion: Is the sky green?"
        );
        assert_eq!(p.letters(), vec!['A', 'B', 'C']);
        let mut r = record();
        r.context = None;
        assert_eq!(r.prompt().question, "Is the sky green?");
        assert_eq!(r.answer_text(), "no");
        assert_eq!(r.mcq_answer().target_text(), "Answer: B) no\n\nIt is blue.");
    }
}
