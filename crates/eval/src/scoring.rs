//! Scoring options by likelihood.
//!
//! - **Letters**: the probability of each option letter as the token after `prompt + "Answer:"`
//!   (the start of medtune's answer line `Answer: C) ...`). When every letter is one token after
//!   a shared prefix (Qwen3's tokenizer: `" A"`, `" B"`, ...) this is one forward pass per
//!   question, batched, with the head applied at the last position only. Otherwise each letter's
//!   continuation is scored as a sequence.
//! - **Continuations**: the summed log-probability of arbitrary continuation tokens after a
//!   context, for lm-eval's `acc_norm` (option text likelihood divided by its length in bytes).

use anyhow::{Result, ensure};
use burn::tensor::{Int, Tensor, TensorData};
use medtune_model::ops::{VOCAB_CHUNK, target_log_softmax};
use medtune_model::qwen3::{ForwardBatch, KvCache, LoadedModel, PaddingSide};
use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, McqPrompt, render_mcq_prompt};
use rayon::prelude::*;

/// What the model's answer line starts with; the letter comes next.
pub const ANSWER_PREFIX: &str = "Answer:";

/// The model's preference among the options of one question.
#[derive(Clone, Debug, PartialEq)]
pub struct LetterScores {
    pub letters: Vec<char>,
    /// Softmax over the option letters only (sums to 1), in `letters` order.
    pub probs: Vec<f32>,
    /// The probability of all option letters together among the whole vocabulary: how much the
    /// model wanted to answer with a letter at all.
    pub letter_mass: f32,
}

impl LetterScores {
    /// The most likely letter (the first on ties) and its probability.
    pub fn best(&self) -> (char, f32) {
        let mut best = 0;
        for (i, p) in self.probs.iter().enumerate() {
            if *p > self.probs[best] {
                best = i;
            }
        }
        (self.letters[best], self.probs[best])
    }

    pub fn prob_of(&self, letter: char) -> Option<f32> {
        let i = self.letters.iter().position(|l| *l == letter)?;
        Some(self.probs[i])
    }
}

/// Token ids that decide between letters: a shared context and each letter's continuation.
#[derive(Clone, Debug)]
pub struct LetterQuery {
    pub letters: Vec<char>,
    pub context: Vec<u32>,
    pub continuations: Vec<Vec<u32>>,
}

impl LetterQuery {
    /// Tokenises `prompt_text + "Answer: X"` for each letter X and splits the ids at their
    /// longest common prefix, so that tokenizer merges across the boundary cannot skew a letter.
    pub fn new(tokenizer: &Tokenizer, prompt_text: &str, letters: &[char]) -> Result<Self> {
        ensure!(letters.len() >= 2, "a question needs at least two options");
        let seqs = letters
            .iter()
            .map(|l| tokenizer.encode(&format!("{prompt_text}{ANSWER_PREFIX} {l}")))
            .collect::<medtune_text::Result<Vec<_>>>()?;
        let mut common = seqs[0].len();
        for s in &seqs[1..] {
            common = common.min(s.iter().zip(&seqs[0]).take_while(|(a, b)| a == b).count());
        }
        ensure!(common > 0, "the letters share no prompt tokens");
        let continuations: Vec<Vec<u32>> = seqs.iter().map(|s| s[common..].to_vec()).collect();
        ensure!(
            continuations.iter().all(|c| !c.is_empty()),
            "two option letters tokenise identically"
        );
        Ok(Self {
            letters: letters.to_vec(),
            context: seqs[0][..common].to_vec(),
            continuations,
        })
    }

    /// True when each letter is exactly one token after the context.
    pub fn single_token(&self) -> bool {
        self.continuations.iter().all(|c| c.len() == 1)
    }
}

/// Letter scores for MCQ prompts rendered with the model's chat template (no few-shot turns).
pub fn score_letters(
    model: &LoadedModel,
    tokenizer: &Tokenizer,
    prompts: &[McqPrompt],
    chat: &McqChatOptions,
    batch_size: usize,
) -> Result<Vec<LetterScores>> {
    let template = tokenizer
        .chat_template()
        .ok_or_else(|| anyhow::anyhow!("the tokenizer has no chat template"))?;
    let queries = prompts
        .iter()
        .map(|p| {
            let text = render_mcq_prompt(template, p, chat)?;
            LetterQuery::new(tokenizer, &text, &p.letters())
        })
        .collect::<Result<Vec<_>>>()?;
    let pad = tokenizer.pad_token_id().unwrap_or(0);
    let mut out = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(batch_size.max(1)) {
        out.extend(score_letter_queries(model, chunk, pad));
    }
    Ok(out)
}

/// Scores a batch of letter queries. Single-token queries share one left-padded forward pass;
/// the others are scored as continuations.
pub fn score_letter_queries(
    model: &LoadedModel,
    queries: &[LetterQuery],
    pad_id: u32,
) -> Vec<LetterScores> {
    let fast: Vec<usize> = (0..queries.len())
        .filter(|&i| queries[i].single_token())
        .collect();
    let mut out: Vec<Option<LetterScores>> = vec![None; queries.len()];
    if !fast.is_empty() {
        let contexts: Vec<Vec<u32>> = fast.iter().map(|&i| queries[i].context.clone()).collect();
        let logits = last_logits(model, &contexts, pad_id);
        let vocab = logits.len() / fast.len();
        // Each row's log-sum-exp over the whole vocabulary, rows across threads.
        let lses: Vec<f64> = logits.par_chunks(vocab).map(log_sum_exp).collect();
        for (row, &i) in fast.iter().enumerate() {
            let row_logits = &logits[row * vocab..(row + 1) * vocab];
            let lse = lses[row];
            let letter_logps: Vec<f64> = queries[i]
                .continuations
                .iter()
                .map(|c| row_logits[c[0] as usize] as f64 - lse)
                .collect();
            out[i] = Some(letter_scores(&queries[i].letters, &letter_logps));
        }
    }
    for (i, q) in queries.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let rows: Vec<(Vec<u32>, Vec<u32>)> = q
            .continuations
            .iter()
            .map(|c| (q.context.clone(), c.clone()))
            .collect();
        let logps: Vec<f64> = shared_prefix_continuation_logprobs(model, &rows, pad_id)
            .iter()
            .map(|c| c.logprob)
            .collect();
        out[i] = Some(letter_scores(&q.letters, &logps));
    }
    out.into_iter()
        .map(|s| s.expect("every query scored"))
        .collect()
}

fn letter_scores(letters: &[char], logps: &[f64]) -> LetterScores {
    let lse = log_sum_exp_f64(logps);
    LetterScores {
        letters: letters.to_vec(),
        probs: logps.iter().map(|l| (l - lse).exp() as f32).collect(),
        letter_mass: lse.exp() as f32,
    }
}

/// f32 logits `[rows * vocab]` of the last token of each sequence, the head applied only there
/// ([`LoadedModel::last_token_hidden`]; on the CPU the head runs once for all rows, so its
/// weights are read once per batch).
pub fn last_logits(model: &LoadedModel, seqs: &[Vec<u32>], pad_id: u32) -> Vec<f32> {
    let last = model.last_token_hidden(seqs, pad_id);
    model
        .model
        .logits(last.unsqueeze_dim::<3>(0))
        .into_data()
        .try_to_vec::<f32>()
        .expect("logits are f32")
}

/// The log-likelihood of a continuation after its context.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContinuationScore {
    /// Sum of the natural-log probabilities of the continuation's tokens.
    pub logprob: f64,
    pub tokens: usize,
    /// Whether every continuation token was the model's greedy choice.
    pub greedy: bool,
}

/// Scores `(context, continuation)` pairs in one right-padded batch; the head is applied only at
/// the positions that predict continuation tokens.
pub fn continuation_logprobs(
    model: &LoadedModel,
    rows: &[(Vec<u32>, Vec<u32>)],
    pad_id: u32,
) -> Vec<ContinuationScore> {
    if rows.is_empty() {
        return Vec::new();
    }
    let seqs: Vec<Vec<u32>> = rows
        .iter()
        .map(|(c, x)| c.iter().chain(x).copied().collect())
        .collect();
    let batch = ForwardBatch::padded(&seqs, PaddingSide::Right, pad_id);
    let hidden = model.forward(&batch, None);
    let device = hidden.device();
    let [b, t, h] = hidden.dims();
    let mut index = Vec::new();
    let mut targets = Vec::new();
    for (r, (ctx, cont)) in rows.iter().enumerate() {
        assert!(
            !ctx.is_empty(),
            "a continuation needs a context token before it"
        );
        for (k, &tok) in cont.iter().enumerate() {
            index.push((r * t + ctx.len() - 1 + k) as i64);
            targets.push(tok);
        }
    }
    let n = index.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
    let picked = hidden.reshape([b * t, h]).select(0, index);
    let lengths: Vec<usize> = rows.iter().map(|(_, cont)| cont.len()).collect();
    score_targets(model, picked, &targets, &lengths)
}

/// [`continuation_logprobs`] for rows that share a long beginning (a question's prompt before
/// each option's text): the shared tokens run once, their keys and values are cached and repeated
/// for every row, and only what follows runs per row. Equal to [`continuation_logprobs`] (a
/// test checks it); it falls back to it when the rows share nothing or a row has nothing beyond
/// the shared part.
pub fn shared_prefix_continuation_logprobs(
    model: &LoadedModel,
    rows: &[(Vec<u32>, Vec<u32>)],
    pad_id: u32,
) -> Vec<ContinuationScore> {
    let seqs: Vec<Vec<u32>> = rows
        .iter()
        .map(|(c, x)| c.iter().chain(x).copied().collect())
        .collect();
    // The shared part stops before any row's first scored token.
    let mut shared = rows.iter().map(|(c, _)| c.len()).min().unwrap_or(0);
    for seq in &seqs[1..] {
        shared = shared.min(seqs[0].iter().zip(seq).take_while(|(a, b)| a == b).count());
    }
    if rows.len() < 2 || shared == 0 || seqs.iter().any(|s| s.len() <= shared) {
        return continuation_logprobs(model, rows, pad_id);
    }
    let mut cache = KvCache::new(model.config.num_hidden_layers);
    let prefix = model.forward(&ForwardBatch::single(&seqs[0][..shared]), Some(&mut cache));
    let [_, _, h] = prefix.dims();
    let device = prefix.device();
    let prefix_last = prefix
        .slice([0..1, shared - 1..shared, 0..h])
        .reshape([1, h]);
    cache.repeat_rows(rows.len());

    let tails: Vec<Vec<u32>> = seqs.iter().map(|s| s[shared..].to_vec()).collect();
    let batch =
        ForwardBatch::padded_continuing(&tails, PaddingSide::Right, pad_id, cache.next_positions());
    let t = batch.seq;
    let hidden = model.forward(&batch, Some(&mut cache));
    // Hidden states in one matrix: the shared part's last (index 0), then every row's slots.
    let hidden = Tensor::cat(vec![prefix_last, hidden.reshape([rows.len() * t, h])], 0);
    let mut index = Vec::new();
    let mut targets = Vec::new();
    for (r, ((ctx, cont), seq)) in rows.iter().zip(&seqs).enumerate() {
        for (k, &token) in seq.iter().enumerate().skip(ctx.len()) {
            // Token k is predicted by the hidden state at k − 1.
            let at = if k - 1 < shared {
                0
            } else {
                1 + r * t + (k - 1 - shared)
            };
            index.push(at as i64);
            targets.push(token);
        }
        debug_assert_eq!(seq.len() - ctx.len(), cont.len());
    }
    let n = index.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
    let lengths: Vec<usize> = rows.iter().map(|(_, cont)| cont.len()).collect();
    score_targets(model, hidden.select(0, index), &targets, &lengths)
}

/// Log-probabilities of `targets` under the head at `hidden` (`[n, h]`, one row per target),
/// summed per continuation of `lengths[i]` consecutive targets. The head runs a vocabulary chunk
/// at a time ([`target_log_softmax`]), so the `n × vocab` logits are never held at once.
fn score_targets(
    model: &LoadedModel,
    hidden: Tensor<2>,
    targets: &[u32],
    lengths: &[usize],
) -> Vec<ContinuationScore> {
    let pass = target_log_softmax(
        hidden,
        model.model.head_weight(),
        targets,
        VOCAB_CHUNK,
        false,
    );
    let (logp, greedy) = (pass.target_log_probs(), pass.target_is_greedy());
    let mut out = Vec::with_capacity(lengths.len());
    let mut at = 0;
    for &len in lengths {
        let span = at..at + len;
        out.push(ContinuationScore {
            logprob: logp[span.clone()].iter().map(|&x| x as f64).sum(),
            tokens: len,
            greedy: greedy[span].iter().all(|&g| g),
        });
        at += len;
    }
    out
}

/// `log Σ exp(x)` of a row of logits (the model crate's vectorised one, summed in f64).
pub use medtune_model::qwen3::log_sum_exp;

fn log_sum_exp_f64(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_scores_normalise_over_letters() {
        let s = letter_scores(&['A', 'B'], &[(0.3f64).ln(), (0.1f64).ln()]);
        assert!((s.probs[0] - 0.75).abs() < 1e-6);
        assert!((s.probs[1] - 0.25).abs() < 1e-6);
        assert!((s.letter_mass - 0.4).abs() < 1e-6);
        assert_eq!(s.best(), ('A', s.probs[0]));
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let v = [1000.0f32, 1000.0];
        assert!((log_sum_exp(&v) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
