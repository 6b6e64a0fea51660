//! Scores a batch of questions with one model: by option likelihood, by generation, or both.

use anyhow::Result;
use medtune_data::McqRecord;
use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};
use medtune_model::qwen3::LoadedModel;
use medtune_text::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::extract::{Method, extract_answer};
use crate::prompt::PromptBuilder;
use crate::scoring::{
    ANSWER_PREFIX, LetterQuery, score_letter_queries, shared_prefix_continuation_logprobs,
};

/// Qwen3's empty reasoning block, which its template writes when thinking is off.
pub const EMPTY_THINK: &str = "<think>\n\n</think>\n\n";

/// How answers are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Loglik,
    Generate,
    Both,
}

impl Mode {
    pub fn loglik(self) -> bool {
        matches!(self, Mode::Loglik | Mode::Both)
    }
    pub fn generate(self) -> bool {
        matches!(self, Mode::Generate | Mode::Both)
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "loglik" => Ok(Mode::Loglik),
            "generate" => Ok(Mode::Generate),
            "both" => Ok(Mode::Both),
            _ => Err(format!("unknown mode `{s}`: use loglik, generate or both")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EvalSettings {
    pub mode: Mode,
    /// Also score each option's text (lm-eval's acc_norm); costs one sequence per option.
    pub acc_norm: bool,
    /// Greedy generation budget per question.
    pub max_new_tokens: usize,
    pub pad_id: u32,
    pub stop_ids: Vec<u32>,
}

/// The loglik result of one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoglikResult {
    pub prediction: char,
    /// Probability of the predicted letter among the option letters.
    pub confidence: f64,
    /// `(letter, probability among the letters)` in option order.
    pub probabilities: Vec<(char, f64)>,
    /// Probability of any option letter among the whole vocabulary.
    pub letter_mass: f64,
    /// acc_norm: the option whose text has the highest log-likelihood per byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm_prediction: Option<char>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_per_byte: Option<Vec<(char, f64)>>,
}

/// The generation result of one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateResult {
    /// The extracted answer; `None` is unparsed (counted wrong).
    pub prediction: Option<char>,
    pub method: Option<Method>,
    pub raw_output: String,
    pub new_tokens: usize,
}

/// One scored question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    pub source: String,
    pub line: usize,
    pub subject: Option<String>,
    pub truth: char,
    pub letters: Vec<char>,
    pub prompt_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loglik: Option<LoglikResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateResult>,
}

/// Scores `records` (one batch) with `model`.
pub fn evaluate_batch(
    model: &LoadedModel,
    tokenizer: &Tokenizer,
    prompts: &PromptBuilder<'_>,
    records: &[McqRecord],
    settings: &EvalSettings,
) -> Result<Vec<ItemResult>> {
    let texts = records
        .iter()
        .map(|r| prompts.render(r))
        .collect::<Result<Vec<_>>>()?;
    let ids = texts
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect::<medtune_text::Result<Vec<_>>>()?;
    let mut items: Vec<ItemResult> = records
        .iter()
        .zip(&ids)
        .map(|(r, ids)| ItemResult {
            id: r.id.clone(),
            source: r.origin.file.display().to_string(),
            line: r.origin.line,
            subject: r.subject.clone(),
            truth: r.answer,
            letters: r.letters(),
            prompt_tokens: ids.len(),
            loglik: None,
            generate: None,
        })
        .collect();
    if settings.mode.loglik() {
        // Scoring reads the answer directly: with thinking on, close an empty think block first,
        // as the template itself does when thinking is off.
        let loglik_texts: Vec<String> = if prompts.chat().thinking {
            texts.iter().map(|t| format!("{t}{EMPTY_THINK}")).collect()
        } else {
            texts.clone()
        };
        let texts = &loglik_texts;
        let queries = texts
            .iter()
            .zip(records)
            .map(|(t, r)| LetterQuery::new(tokenizer, t, &r.letters()))
            .collect::<Result<Vec<_>>>()?;
        let scores = score_letter_queries(model, &queries, settings.pad_id);
        for (i, s) in scores.into_iter().enumerate() {
            let (prediction, confidence) = s.best();
            items[i].loglik = Some(LoglikResult {
                prediction,
                confidence: confidence as f64,
                probabilities: s
                    .letters
                    .iter()
                    .zip(&s.probs)
                    .map(|(l, p)| (*l, *p as f64))
                    .collect(),
                letter_mass: s.letter_mass as f64,
                norm_prediction: None,
                logprob_per_byte: None,
            });
        }
        if settings.acc_norm {
            for (i, (text, r)) in texts.iter().zip(records).enumerate() {
                let per_byte = option_text_scores(model, tokenizer, text, r, settings.pad_id)?;
                let loglik = items[i].loglik.as_mut().expect("scored above");
                loglik.norm_prediction = per_byte
                    .iter()
                    .fold(None::<(char, f64)>, |best, &(l, v)| match best {
                        Some((_, b)) if b >= v => best,
                        _ => Some((l, v)),
                    })
                    .map(|(l, _)| l);
                loglik.logprob_per_byte = Some(per_byte);
            }
        }
    }
    if settings.mode.generate() {
        let config = GenerateConfig {
            max_new_tokens: settings.max_new_tokens,
            stop_ids: settings.stop_ids.clone(),
            sampling: SamplingConfig::greedy(),
            pad_id: settings.pad_id,
        };
        let outputs = generate(model, &ids, &config, |_, _| true);
        for ((item, out), r) in items.iter_mut().zip(outputs).zip(records) {
            let raw_output = tokenizer.decode(&out, true)?;
            let found = extract_answer(&raw_output, &r.options);
            item.generate = Some(GenerateResult {
                prediction: found.map(|f| f.letter),
                method: found.map(|f| f.method),
                raw_output,
                new_tokens: out.len(),
            });
        }
    }
    Ok(items)
}

/// lm-eval's acc_norm: each option's text as the continuation of `prompt + "Answer:"`, its
/// summed log-probability divided by its length in bytes (the letter is not part of it, so this
/// measures knowledge of the content rather than of the letter).
fn option_text_scores(
    model: &LoadedModel,
    tokenizer: &Tokenizer,
    prompt_text: &str,
    record: &McqRecord,
    pad_id: u32,
) -> Result<Vec<(char, f64)>> {
    let context_text = format!("{prompt_text}{ANSWER_PREFIX}");
    let context = tokenizer.encode(&context_text)?;
    let rows = record
        .options
        .iter()
        .map(|(_, text)| {
            let full = tokenizer.encode(&format!("{context_text} {}", text.trim()))?;
            // Split where the ids diverge from the context's, so a merge across the boundary
            // moves into the continuation instead of being lost.
            let common = full
                .iter()
                .zip(&context)
                .take_while(|(a, b)| a == b)
                .count();
            let common = common.min(context.len()).max(1);
            Ok((full[..common].to_vec(), full[common..].to_vec()))
        })
        .collect::<Result<Vec<_>>>()?;
    // The options share the whole prompt: it runs once, cached, not once per option.
    let scores = shared_prefix_continuation_logprobs(model, &rows, pad_id);
    Ok(record
        .options
        .iter()
        .zip(scores)
        .map(|((l, text), s)| (*l, s.logprob / (format!(" {}", text.trim()).len() as f64)))
        .collect())
}
