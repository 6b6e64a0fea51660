//! Option scoring against the model's own logits on a tiny random Qwen3: the batched
//! single-token path (on the CPU a batch split into one part per thread), the continuation path
//! and padding must all agree with unbatched logits.

use medtune_eval::scoring::{
    LetterQuery, continuation_logprobs, score_letter_queries, shared_prefix_continuation_logprobs,
};
use medtune_model::init::random_weights;
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec, Preset};

fn tiny() -> LoadedModel {
    let mut cfg = Preset::Tiny.config();
    cfg.vocab_size = 512;
    let device = DeviceSpec::Cpu.device().unwrap();
    LoadedModel::from_source(
        &random_weights(&cfg, ComputeDType::F32, 3),
        cfg,
        ComputeDType::F32,
        &device,
    )
    .unwrap()
}

fn log_softmax_at(row: &[f32], id: u32) -> f64 {
    let max = row.iter().copied().fold(f32::MIN, f32::max) as f64;
    let lse = max
        + row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    row[id as usize] as f64 - lse
}

#[test]
fn single_token_letters_in_a_padded_batch_match_unbatched_logits() {
    let model = tiny();
    let vocab = 512;
    let queries: Vec<LetterQuery> = [
        vec![5u32, 9, 33, 2, 100],
        vec![7, 8],
        vec![40, 41, 42, 43, 44, 45, 46, 47],
    ]
    .into_iter()
    .map(|context| LetterQuery {
        letters: vec!['A', 'B', 'C', 'D'],
        context,
        continuations: vec![vec![65], vec![66], vec![67], vec![68]],
    })
    .collect();
    let batched = score_letter_queries(&model, &queries, 0);
    for (q, s) in queries.iter().zip(&batched) {
        let logits = model.sequence_logits(&q.context);
        let last = &logits[logits.len() - vocab..];
        let logps: Vec<f64> = (65..=68).map(|id| log_softmax_at(last, id)).collect();
        let mass: f64 = logps.iter().map(|l| l.exp()).sum();
        assert!(
            (s.letter_mass as f64 - mass).abs() < 1e-5,
            "{} vs {mass}",
            s.letter_mass
        );
        for (k, l) in logps.iter().enumerate() {
            let want = l.exp() / mass;
            assert!(
                (s.probs[k] as f64 - want).abs() < 1e-5,
                "{:?} vs {want}",
                s.probs
            );
        }
        let argmax = (0..4)
            .max_by(|&a, &b| logps[a].total_cmp(&logps[b]))
            .unwrap();
        assert_eq!(s.best().0, q.letters[argmax]);
    }
}

#[test]
fn multi_token_letters_and_continuations_match_unbatched_logits() {
    let model = tiny();
    let vocab = 512;
    let context = vec![11u32, 12, 13, 14];
    let conts = [vec![20u32, 21, 22], vec![30], vec![40, 41]];
    let rows: Vec<(Vec<u32>, Vec<u32>)> =
        conts.iter().map(|c| (context.clone(), c.clone())).collect();
    let scores = continuation_logprobs(&model, &rows, 0);
    for (c, s) in conts.iter().zip(&scores) {
        let seq: Vec<u32> = context.iter().chain(c).copied().collect();
        let logits = model.sequence_logits(&seq);
        let want: f64 = (context.len()..seq.len())
            .map(|p| log_softmax_at(&logits[(p - 1) * vocab..p * vocab], seq[p]))
            .sum();
        assert!((s.logprob - want).abs() < 1e-4, "{} vs {want}", s.logprob);
        assert_eq!(s.tokens, c.len());
    }
    // A letter query whose letters take different numbers of tokens goes the continuation way.
    let q = LetterQuery {
        letters: vec!['A', 'B', 'C'],
        context: context.clone(),
        continuations: conts.to_vec(),
    };
    let s = &score_letter_queries(&model, std::slice::from_ref(&q), 0)[0];
    let total: f64 = scores.iter().map(|c| c.logprob.exp()).sum();
    for (k, c) in scores.iter().enumerate() {
        assert!((s.probs[k] as f64 - c.logprob.exp() / total).abs() < 1e-5);
    }
}

#[test]
fn a_shared_prompt_runs_once_and_scores_the_same() {
    let model = tiny();
    let prompt: Vec<u32> = (100..140).collect();
    // Contexts end at different points of the prompt (a tokenizer merge across the boundary
    // moves a token into the continuation), continuations of different lengths, one that
    // repeats another's first token.
    let rows: Vec<(Vec<u32>, Vec<u32>)> = vec![
        (prompt.clone(), vec![20, 21, 22]),
        (prompt[..38].to_vec(), vec![138, 139, 30]),
        (prompt.clone(), vec![20]),
        (prompt.clone(), vec![40, 41, 42, 43, 44]),
    ];
    let want = continuation_logprobs(&model, &rows, 0);
    let got = shared_prefix_continuation_logprobs(&model, &rows, 0);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.logprob - w.logprob).abs() < 1e-4,
            "{} vs {}",
            g.logprob,
            w.logprob
        );
        assert_eq!((g.tokens, g.greedy), (w.tokens, w.greedy));
    }
    // A row that is all shared part falls back to the unshared path, with the same answer.
    let degenerate = vec![
        (prompt[..10].to_vec(), vec![]),
        (prompt.clone(), vec![1, 2]),
    ];
    let got = shared_prefix_continuation_logprobs(&model, &degenerate, 0);
    let want = continuation_logprobs(&model, &degenerate, 0);
    assert_eq!(got.len(), 2);
    assert!((got[1].logprob - want[1].logprob).abs() < 1e-9);
}
