//! From data files to token sequences: read and validate the records, shuffle (seeded) before
//! `limit`, split off validation, render them with the model's chat template and tokenize them,
//! marking the targets: an MCQ record's answer and its closing end-of-turn token; what the
//! assistant writes in a conversation (`medtune_text::supervision`); a prompt–completion pair's
//! completion.

use std::path::PathBuf;

use medtune_data::{
    ChatKind, Format, ReadOptions, TraceFields, TrainingRecord, read_training_files,
    remove_contaminated, select, split_validation,
};
use medtune_text::mcq::{McqChatOptions, render_mcq_training_pair};
use medtune_text::{
    AssistantTurns, ChatTemplate, SupervisedTokens, Tokenizer, conversation_examples,
    supervise_prompt_completion, supervise_text_pair,
};

/// One training sequence: its token ids and, for each, whether it is a target (predicted with
/// loss: the answer of an MCQ record, what the assistant writes in a conversation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub targets: Vec<bool>,
}

impl Example {
    /// A sequence whose tokens from `target_start` on are the targets.
    pub fn with_target_start(ids: Vec<u32>, target_start: usize) -> Self {
        let targets = (0..ids.len()).map(|t| t >= target_start).collect();
        Self { ids, targets }
    }

    /// Target tokens the loss covers (the first token is never predicted).
    pub fn target_count(&self) -> usize {
        self.targets.iter().skip(1).filter(|t| **t).count()
    }

    /// Hugging Face collator labels: the id where the token is a target, −100 elsewhere.
    pub fn labels(&self) -> Vec<i64> {
        medtune_text::supervision::labels(&self.ids, &self.targets)
    }

    /// The sequence and its mask, as batches take them.
    pub fn masked(&self) -> (&[u32], &[bool]) {
        (&self.ids, &self.targets)
    }
}

#[derive(Clone, Debug)]
pub struct ExampleOptions {
    pub max_length: usize,
    pub thinking: bool,
    pub system_prompt: Option<String>,
    pub limit: Option<usize>,
    pub val_split: Option<f64>,
    /// Validation (or evaluation) files: training records asking one of their questions are
    /// dropped and reported (contamination).
    pub val_files: Vec<PathBuf>,
    pub seed: u64,
    pub skip_bad: bool,
    /// The columns of a reasoning-trace table (`--fields`).
    pub fields: Option<TraceFields>,
    /// Which assistant turns of a conversation are targets.
    pub turns: AssistantTurns,
    /// A chat template used instead of the model's for conversations and prompt–completion
    /// pairs (e.g. TRL's training template with `{% generation %}` blocks).
    pub chat_template: Option<PathBuf>,
    /// Keep the files' order (no shuffle; `limit` takes the first records): `data dump`.
    pub keep_order: bool,
}

impl Default for ExampleOptions {
    fn default() -> Self {
        Self {
            max_length: 256,
            thinking: false,
            system_prompt: None,
            limit: None,
            val_split: None,
            val_files: Vec::new(),
            seed: 0,
            skip_bad: false,
            fields: None,
            turns: AssistantTurns::All,
            chat_template: None,
            keep_order: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ExampleSet {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    /// Bad records skipped with `skip_bad`.
    pub skipped: usize,
    /// Examples whose prompt was cut from the left to fit `max_length`.
    pub truncated_prompts: usize,
    /// Examples whose answer itself was cut (its end-of-turn token lost).
    pub truncated_targets: usize,
    /// Conversations and prompt–completion pairs cut at their end to fit `max_length`, and the
    /// target tokens that cost.
    pub truncated_conversations: usize,
    pub lost_target_tokens: usize,
    /// Records left with no target token after the cut (not trained on).
    pub dropped_without_targets: usize,
    pub target_tokens: usize,
    /// Ids of training records dropped because a validation/evaluation file asks the same question.
    pub contaminated: Vec<String>,
}

impl ExampleSet {
    pub fn summary(&self) -> String {
        format!(
            "data: {} training and {} validation examples, {} answer tokens to learn; {} bad records skipped, \
             {} training records dropped as contaminated (same question in --val){}; \
             {} prompts cut from the left and {} answers cut to fit --max-length{}",
            self.train.len(),
            self.val.len(),
            self.target_tokens,
            self.skipped,
            self.contaminated.len(),
            if self.contaminated.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = self
                    .contaminated
                    .iter()
                    .take(5)
                    .map(String::as_str)
                    .collect();
                format!(" e.g. {}", shown.join(", "))
            },
            self.truncated_prompts,
            self.truncated_targets,
            if self.truncated_conversations + self.dropped_without_targets == 0 {
                String::new()
            } else {
                format!(
                    "; {} conversations cut at their end ({} target tokens lost), {} left \
                     without a target and dropped",
                    self.truncated_conversations,
                    self.lost_target_tokens,
                    self.dropped_without_targets
                )
            }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    #[error(transparent)]
    Data(#[from] medtune_data::DataError),
    #[error(transparent)]
    Text(#[from] medtune_text::TextError),
    #[error("{0}")]
    Invalid(String),
}

/// Fits prompt + target into `max_length` tokens: the prompt loses its beginning first (the
/// question's end, the options and the answer matter most); a target longer than everything is
/// cut at its end.
fn fit(prompt: Vec<u32>, target: Vec<u32>, max_length: usize, set: &mut ExampleSet) -> Example {
    let mut prompt = prompt;
    let mut target = target;
    if prompt.len() + target.len() > max_length {
        let room_for_prompt = max_length
            .saturating_sub(target.len())
            .max(1.min(max_length));
        if prompt.len() > room_for_prompt {
            prompt.drain(..prompt.len() - room_for_prompt);
            set.truncated_prompts += 1;
        }
        if prompt.len() + target.len() > max_length {
            target.truncate(max_length - prompt.len());
            set.truncated_targets += 1;
        }
    }
    let target_start = prompt.len();
    prompt.extend(target);
    Example::with_target_start(prompt, target_start)
}

/// Fits a supervised sequence into `max_length` tokens by cutting its end, as TRL does
/// (`truncation_mode="keep_start"`); what is cut is counted, and a sequence left without a target
/// is dropped (`None`).
fn fit_supervised(s: SupervisedTokens, max_length: usize, set: &mut ExampleSet) -> Option<Example> {
    let mut ex = Example {
        ids: s.ids,
        targets: s.targets,
    };
    if ex.ids.len() > max_length {
        let lost = ex.targets[max_length..].iter().filter(|t| **t).count();
        ex.ids.truncate(max_length);
        ex.targets.truncate(max_length);
        set.truncated_conversations += 1;
        set.lost_target_tokens += lost;
    }
    if ex.target_count() == 0 {
        set.dropped_without_targets += 1;
        return None;
    }
    Some(ex)
}

/// The examples of one record.
fn record_examples(
    record: &TrainingRecord,
    tokenizer: &Tokenizer,
    templates: &Templates,
    opts: &ExampleOptions,
    set: &mut ExampleSet,
) -> Result<Vec<Example>, ExampleError> {
    let supervised = match record {
        TrainingRecord::Mcq(r) => {
            let prompt = r.prompt();
            let answer = prompt.answer(r.answer, r.explanation.clone())?;
            let pair = render_mcq_training_pair(templates.model, &prompt, &answer, &templates.mcq)?;
            let p = tokenizer.encode(&pair.prompt)?;
            let t = tokenizer.encode(&pair.target)?;
            return Ok(vec![fit(p, t, opts.max_length, set)]);
        }
        TrainingRecord::Chat(c) => {
            let messages = c.messages();
            match c.kind {
                ChatKind::Conversation => conversation_examples(
                    tokenizer,
                    templates.chat(),
                    &messages,
                    c.tools.as_deref(),
                    opts.turns,
                )?,
                ChatKind::PromptCompletion { prompt_len } => vec![supervise_prompt_completion(
                    tokenizer,
                    templates.chat(),
                    &messages[..prompt_len],
                    &messages[prompt_len..],
                    c.tools.as_deref(),
                )?],
            }
        }
        TrainingRecord::Text(t) => vec![supervise_text_pair(tokenizer, &t.prompt, &t.completion)?],
    };
    Ok(supervised
        .into_iter()
        .filter_map(|s| fit_supervised(s, opts.max_length, set))
        .collect())
}

/// The chat templates examples are rendered with.
struct Templates<'a> {
    /// The model's own (MCQ records, and conversations without `--chat-template`).
    model: &'a ChatTemplate,
    /// `--chat-template`, for conversations and prompt–completion pairs.
    chat_override: Option<ChatTemplate>,
    mcq: McqChatOptions,
}

impl Templates<'_> {
    fn chat(&self) -> &ChatTemplate {
        self.chat_override.as_ref().unwrap_or(self.model)
    }
}

pub fn build_examples(
    files: &[PathBuf],
    format: Option<Format>,
    tokenizer: &Tokenizer,
    opts: &ExampleOptions,
) -> Result<ExampleSet, ExampleError> {
    let read_opts = ReadOptions {
        skip_bad: opts.skip_bad,
        fields: opts.fields.clone(),
    };
    let read = read_training_files(files, format, &read_opts)?;
    let seed = (!opts.keep_order).then_some(opts.seed);
    let records = select(read.records, seed, opts.limit);
    let (train, mut val) = match opts.val_split {
        Some(f) if f > 0.0 => split_validation(records, f, opts.seed)?,
        _ => (records, Vec::new()),
    };
    if !opts.val_files.is_empty() {
        let extra = read_training_files(&opts.val_files, None, &read_opts)?;
        val.extend(extra.records);
    }
    let (train, contaminated) = remove_contaminated(train, &val);
    let model = tokenizer.chat_template().ok_or_else(|| {
        ExampleError::Invalid(format!(
            "{}: the tokenizer has no chat template",
            tokenizer.dir().display()
        ))
    })?;
    let chat_override = match &opts.chat_template {
        Some(path) => {
            let source = std::fs::read_to_string(path).map_err(|e| {
                ExampleError::Invalid(format!("--chat-template {}: {e}", path.display()))
            })?;
            Some(ChatTemplate::new(source, model.special_tokens().clone())?)
        }
        None => None,
    };
    let templates = Templates {
        model,
        chat_override,
        mcq: McqChatOptions {
            system_prompt: Some(
                opts.system_prompt
                    .clone()
                    .unwrap_or_else(|| medtune_text::mcq::DEFAULT_SYSTEM_PROMPT.to_string()),
            ),
            thinking: opts.thinking,
        },
    };
    let mut set = ExampleSet {
        skipped: read.skipped,
        contaminated,
        ..ExampleSet::default()
    };
    for (records, is_val) in [(train, false), (val, true)] {
        for r in &records {
            let examples = record_examples(r, tokenizer, &templates, opts, &mut set)
                .map_err(|e| ExampleError::Invalid(format!("{}: {e}", r.origin())))?;
            for ex in examples {
                set.target_tokens += ex.target_count();
                if is_val {
                    set.val.push(ex);
                } else {
                    set.train.push(ex);
                }
            }
        }
    }
    if set.train.is_empty() {
        return Err(ExampleError::Invalid("no training examples".into()));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_prompts_lose_their_beginning_not_the_answer() {
        let mut set = ExampleSet::default();
        let ex = fit((0..10).collect(), vec![100, 101, 102], 8, &mut set);
        assert_eq!(ex.ids, vec![5, 6, 7, 8, 9, 100, 101, 102]);
        assert_eq!(ex.targets, [vec![false; 5], vec![true; 3]].concat());
        assert_eq!(set.truncated_prompts, 1);
        let ex = fit(vec![1, 2], vec![100, 101, 102, 103], 4, &mut set);
        assert_eq!(ex.ids, vec![2, 100, 101, 102]);
        assert_eq!(set.truncated_targets, 1);
    }
}
