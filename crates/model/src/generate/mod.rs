//! Autoregressive generation with a KV cache: greedy or sampled (temperature, top-k, top-p,
//! seeded), stopping at a stop token or after `max_new_tokens`, with a callback per token so
//! callers can stream.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ops;
use crate::qwen3::{ForwardBatch, KvCache, LoadedModel, PaddingSide};

// The whole-step path needs the CPU kernels; without them no step is covered.
#[cfg(feature = "flex")]
mod fast_step;
#[cfg(feature = "flex")]
pub use fast_step::decode_step_logits;
#[cfg(feature = "flex")]
pub use medtune_kernels::cpu::decode::{StepPolicy, set_step_policy};

/// The whole-step decode path of the CPU kernels, absent from this build: never covers a step.
#[cfg(not(feature = "flex"))]
pub fn decode_step_logits(_: &LoadedModel, _: &ForwardBatch, _: &mut KvCache) -> Option<Vec<f32>> {
    None
}

#[derive(Clone, Debug)]
pub struct SamplingConfig {
    /// 0 (or `greedy`) picks the most likely token.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0 keeps all).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 keeps all).
    pub top_k: usize,
    pub seed: u64,
    pub greedy: bool,
}

impl Default for SamplingConfig {
    /// Qwen3's recommended non-thinking settings.
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.8,
            top_k: 20,
            seed: 0,
            greedy: false,
        }
    }
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        Self {
            greedy: true,
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    /// Generation of a sequence ends after it emits one of these (the token is kept).
    pub stop_ids: Vec<u32>,
    pub sampling: SamplingConfig,
    /// Filler for finished rows and left padding; never attended to.
    pub pad_id: u32,
}

/// Picks the next token from one row of logits.
pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, rng }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.config.greedy || self.config.temperature <= 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.config.temperature;
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l * inv_t))
            .collect();
        // Highest first; ties broken by id so results do not depend on sort stability.
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.config.top_k > 0 {
            candidates.truncate(self.config.top_k);
        }
        let max = candidates[0].1;
        let mut probs: Vec<f32> = candidates.iter().map(|c| (c.1 - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.config.top_p < 1.0 {
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    cumulative += p;
                    cumulative >= self.config.top_p
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let draw: f32 = self.rng.random();
        let mut cumulative = 0.0;
        for (p, c) in probs.iter().zip(&candidates) {
            cumulative += p;
            if draw < cumulative {
                return c.0;
            }
        }
        candidates[probs.len() - 1].0
    }
}

/// Index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// The last position's logits of each row, `[rows · vocab]`, and the vocabulary size: by the
/// CPU's whole-step path where it applies ([`decode_step_logits`]), else through the
/// model's tensors.
///
/// The step runs on a thread of rayon's pool (`rayon::scope`), not on the caller's: on the
/// tensor path a decode step starts ~110 parallel products, and each one started from outside the
/// pool hands its work to the pool's threads and sleeps until they finish (two thread wake-ups
/// per product); started from inside, the current thread takes half of the work and the other
/// one steals the rest.
fn next_token_logits(
    model: &LoadedModel,
    batch: &ForwardBatch,
    cache: &mut KvCache,
) -> (Vec<f32>, usize) {
    ops::on_compute_threads(|| {
        if let Some(logits) = decode_step_logits(model, batch, cache) {
            return (logits, model.model.vocab_size());
        }
        let hidden = model.forward(batch, Some(cache));
        let last = hidden.narrow(1, batch.seq - 1, 1);
        let logits = model.model.logits(last);
        let vocab = logits.dims()[2];
        let logits: Vec<f32> = logits.into_data().try_to_vec().expect("logits are f32");
        (logits, vocab)
    })
}

/// Generates continuations of `prompts` (left-padded into one batch). `on_token(row, id)` is
/// called for every new token as it is chosen; returning `false` stops that row. Returns the
/// new tokens of each row.
pub fn generate(
    model: &LoadedModel,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    on_token: impl FnMut(usize, u32) -> bool,
) -> Vec<Vec<u32>> {
    let samplers: Vec<Sampler> = (0..prompts.len())
        .map(|r| {
            Sampler::new(SamplingConfig {
                seed: config.sampling.seed.wrapping_add(r as u64),
                ..config.sampling.clone()
            })
        })
        .collect();
    generate_with_samplers(model, prompts, samplers, config, on_token)
}

/// [`generate`] with one sampler per row, so that each row of a batch keeps its own settings
/// and seed (a server batches unrelated requests); `config.sampling` is not used.
pub fn generate_with_samplers(
    model: &LoadedModel,
    prompts: &[Vec<u32>],
    mut samplers: Vec<Sampler>,
    config: &GenerateConfig,
    mut on_token: impl FnMut(usize, u32) -> bool,
) -> Vec<Vec<u32>> {
    let rows = prompts.len();
    assert_eq!(samplers.len(), rows, "one sampler per prompt");
    let mut outputs = vec![Vec::new(); rows];
    if rows == 0 || config.max_new_tokens == 0 {
        return outputs;
    }
    let mut done = vec![false; rows];
    let mut cache = model.new_cache();
    let mut batch = ForwardBatch::padded(prompts, PaddingSide::Left, config.pad_id);
    for _ in 0..config.max_new_tokens {
        let (logits, vocab) = next_token_logits(model, &batch, &mut cache);
        let mut next_ids = Vec::with_capacity(rows);
        let mut next_valid = Vec::with_capacity(rows);
        for row in 0..rows {
            if done[row] {
                next_ids.push(config.pad_id);
                next_valid.push(false);
                continue;
            }
            let id = samplers[row].sample(&logits[row * vocab..(row + 1) * vocab]);
            outputs[row].push(id);
            let keep_going = on_token(row, id);
            done[row] = !keep_going || config.stop_ids.contains(&id);
            next_ids.push(id);
            next_valid.push(true);
        }
        if done.iter().all(|d| *d) {
            break;
        }
        batch = ForwardBatch::from_parts(rows, 1, next_ids, next_valid, cache.next_positions());
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        let mut s = Sampler::new(SamplingConfig::greedy());
        assert_eq!(s.sample(&[0.0, 0.5, 0.2]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits = [0.3, 2.0, 1.9, -5.0];
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            seed: 7,
            greedy: false,
        };
        let mut s = Sampler::new(cfg.clone());
        assert!((0..50).all(|_| s.sample(&logits) == 1));
        let draws = |seed| {
            let mut s = Sampler::new(SamplingConfig {
                top_k: 0,
                seed,
                ..cfg.clone()
            });
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert!(
            draws(3).contains(&2),
            "sampling should reach the second token"
        );
        assert!(!draws(3).contains(&3) || draws(3).iter().filter(|&&x| x == 3).count() < 3);
    }

    #[test]
    fn top_p_drops_the_tail() {
        // probabilities ≈ 0.66, 0.24, 0.09, 0.01: top_p 0.5 keeps only the first.
        let logits = [2.0, 1.0, 0.0, -2.0];
        let mut s = Sampler::new(SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 1,
            greedy: false,
        });
        assert!((0..100).all(|_| s.sample(&logits) == 0));
    }
}
