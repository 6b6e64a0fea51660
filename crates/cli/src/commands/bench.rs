//! `medtune bench`: speed on random weights of a preset shape (no download needed).

use std::time::Instant;

use anyhow::Result;
use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};
use medtune_model::init::random_weights;
use medtune_model::qwen3::{ForwardBatch, LoadedModel, WeightPacking};
use medtune_model::{ComputeDType, Device, DeviceSpec, Preset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Prefill and decode tokens/s for batch 1.
    Forward(ForwardArgs),
    /// LoRA training step time, tokens/s and peak memory.
    Train(TrainArgs),
    /// Questions/s of loglik evaluation (one batched forward per question).
    Eval(EvalArgs),
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// tiny, small, qwen3-0.6b or qwen3-1.7b.
    #[arg(long, default_value = "small")]
    pub preset: Preset,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDType,
    /// Questions scored in the timed pass (after one warm-up batch).
    #[arg(long, default_value_t = 32)]
    pub questions: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Batch in question order instead of sorting by length within windows of 8 batches (as
    /// `medtune eval` does).
    #[arg(long)]
    pub no_sort: bool,
    #[arg(long)]
    pub json: bool,
}

/// The prompt length of synthetic question `i`: 180–299 tokens, spread like MedQA prompts under
/// the chat template. `tools/bench_eval.py` uses the same formula.
pub fn eval_prompt_len(i: usize) -> usize {
    180 + (i * 37) % 120
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// tiny, small, qwen3-0.6b or qwen3-1.7b.
    #[arg(long, default_value = "small")]
    pub preset: Preset,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDType,
    /// Sequences per step (default: 2, or 1 for the Qwen3 presets).
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Supervised (answer) tokens at the end of each sequence.
    #[arg(long, default_value_t = 32)]
    pub answer_tokens: usize,
    #[arg(long, default_value = "q,k,v,o")]
    pub targets: String,
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Timed steps (the median is reported), after two warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    /// tiny, small, qwen3-0.6b or qwen3-1.7b.
    #[arg(long, default_value = "small")]
    pub preset: Preset,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDType,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prefill_tokens: usize,
    /// New tokens for the decode measurement.
    #[arg(long, default_value_t = 32)]
    pub decode_tokens: usize,
    /// Timed repetitions (the median is reported), after one warm-up.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packing: crate::common::PackingArgs,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Forward(a) => forward(a),
        BenchCommand::Train(a) => train(a),
        BenchCommand::Eval(a) => eval(a),
    }
}

/// A model of `preset`'s shape with random weights (seed 0) on `device`.
fn random_model(preset: Preset, dtype: ComputeDType, device: &Device) -> Result<LoadedModel> {
    random_packed_model(preset, dtype, device, WeightPacking::Off)
}

/// [`random_model`] with its weights packed as `packing` says.
fn random_packed_model(
    preset: Preset,
    dtype: ComputeDType,
    device: &Device,
    packing: WeightPacking,
) -> Result<LoadedModel> {
    let cfg = preset.config();
    let weights = random_weights(&cfg, dtype, 0);
    Ok(LoadedModel::from_source_packed(
        &weights, cfg, dtype, device, packing,
    )?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn forward(args: ForwardArgs) -> Result<()> {
    args.packing.check(args.dtype, &args.device)?;
    let model = random_packed_model(
        args.preset,
        args.dtype,
        &args.device.device()?,
        args.packing.packed_weights,
    )?;
    let weights = if model.is_packed() { "packed" } else { "plain" };
    let mut rng = StdRng::seed_from_u64(1);
    let prompt: Vec<u32> = (0..args.prefill_tokens)
        .map(|_| rng.random_range(0..151_643))
        .collect();

    // Prefill: one forward over the prompt, ending in the next token's logits (what generation
    // needs), read back to the host so lazy backends finish.
    let prefill_once = || {
        let start = Instant::now();
        let hidden = model.forward(&ForwardBatch::single(&prompt), None);
        let last = hidden.narrow(1, prompt.len() - 1, 1);
        let logits: Vec<f32> = model.model.logits(last).into_data().try_to_vec().unwrap();
        std::hint::black_box(logits);
        start.elapsed().as_secs_f64()
    };
    prefill_once();
    let prefill_s = median((0..args.repeats.max(1)).map(|_| prefill_once()).collect());

    // Decode: time(generate N+1 tokens) − time(generate 1 token) isolates the N cached steps.
    let gen_time = |n: usize| {
        let config = GenerateConfig {
            max_new_tokens: n,
            stop_ids: vec![],
            sampling: SamplingConfig::greedy(),
            pad_id: 0,
        };
        let start = Instant::now();
        let out = generate(&model, std::slice::from_ref(&prompt), &config, |_, _| true);
        assert_eq!(out[0].len(), n);
        start.elapsed().as_secs_f64()
    };
    gen_time(2);
    let decode_s = median(
        (0..args.repeats.max(1))
            .map(|_| gen_time(args.decode_tokens + 1) - gen_time(1))
            .collect(),
    );
    let prefill_tps = args.prefill_tokens as f64 / prefill_s;
    let decode_tps = args.decode_tokens as f64 / decode_s;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "engine": "medtune",
                "preset": args.preset.name(),
                "device": args.device.to_string(),
                "dtype": args.dtype.to_string(),
                "weights": weights,
                "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "prefill_tokens": args.prefill_tokens,
                "decode_tokens": args.decode_tokens,
                "prefill_tokens_per_s": prefill_tps,
                "decode_tokens_per_s": decode_tps,
            })
        );
    } else {
        println!(
            "{} on {} ({}, {weights} weights): prefill {:.1} tokens/s ({} tokens), decode {:.1} tokens/s ({} tokens)",
            args.preset.name(),
            args.device,
            args.dtype,
            prefill_tps,
            args.prefill_tokens,
            decode_tps,
            args.decode_tokens
        );
    }
    Ok(())
}

/// Peak resident memory of this process, MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn train(args: TrainArgs) -> Result<()> {
    use medtune_model::qwen3::{LoraConfig, LoraTarget};
    use medtune_train::loss::{TrainBatch, target_nll};
    use medtune_train::optim::{AdamW, AdamWConfig, lora_grads};

    let batch_size = args.batch_size.unwrap_or(match args.preset {
        Preset::Tiny | Preset::Small => 2,
        _ => 1,
    });
    let device = args.device.device()?.autodiff();
    let mut model = random_model(args.preset, args.dtype, &device)?;
    let lora = LoraConfig {
        rank: args.rank,
        alpha: 2.0 * args.rank as f64,
        dropout: 0.0,
        targets: LoraTarget::parse_list(&args.targets)?,
        rslora: false,
    };
    model.model.attach_lora(&lora, 0, &device);
    let mut rng = StdRng::seed_from_u64(2);
    let seqs: Vec<(Vec<u32>, usize)> = (0..batch_size)
        .map(|_| {
            let ids = (0..args.seq_len)
                .map(|_| rng.random_range(0..151_643))
                .collect();
            (ids, args.seq_len - args.answer_tokens)
        })
        .collect();
    let batch = TrainBatch::from_sequences(&seqs, 0);
    let mut optim = AdamW::new(AdamWConfig::default());
    let mut times = Vec::new();
    for step in 0..args.steps + 2 {
        let start = Instant::now();
        let grads = target_nll(&model, &batch).backward(1.0 / batch.num_targets() as f64);
        let g = lora_grads(&model.model, &grads);
        optim.update(&mut model.model, g, 1e-4);
        if step >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let s_per_step = median(times);
    let tokens = batch.num_tokens();
    let tokens_per_s = tokens as f64 / s_per_step;
    let peak = peak_rss_mib();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "engine": "medtune",
                "preset": args.preset.name(),
                "device": args.device.to_string(),
                "dtype": args.dtype.to_string(),
                "batch_size": batch_size,
                "seq_len": args.seq_len,
                "answer_tokens": args.answer_tokens,
                "trainable_params": model.model.num_lora_params(),
                "tokens_per_s": tokens_per_s,
                "s_per_step": s_per_step,
                "peak_rss_mib": peak,
            })
        );
    } else {
        println!(
            "{} on {} ({}), batch {batch_size} × {} (loss on the last {}): {:.3} s/step, {:.0} tokens/s, peak RSS {:.0} MiB",
            args.preset.name(),
            args.device,
            args.dtype,
            args.seq_len,
            args.answer_tokens,
            s_per_step,
            tokens_per_s,
            peak
        );
    }
    Ok(())
}

/// Loglik evaluation speed: batches of left-padded synthetic prompts, the head at the last
/// position only, softmax over four option-letter tokens, exactly as `medtune eval` scores.
fn eval(args: EvalArgs) -> Result<()> {
    use medtune_eval::batching::{WINDOW_BATCHES, length_sorted_batches};
    use medtune_eval::scoring::{LetterQuery, score_letter_queries};

    let model = random_model(args.preset, args.dtype, &args.device.device()?)?;
    let mut rng = StdRng::seed_from_u64(3);
    // Qwen3's ids for " A", " B", " C", " D".
    let letter_ids = [362u32, 425, 356, 422];
    let query = |i: usize, rng: &mut StdRng| LetterQuery {
        letters: vec!['A', 'B', 'C', 'D'],
        context: (0..eval_prompt_len(i))
            .map(|_| rng.random_range(0..151_643))
            .collect(),
        continuations: letter_ids.iter().map(|&id| vec![id]).collect(),
    };
    let batch = args.batch_size.max(1);
    let warmup: Vec<LetterQuery> = (0..batch).map(|i| query(i, &mut rng)).collect();
    let queries: Vec<LetterQuery> = (0..args.questions).map(|i| query(i, &mut rng)).collect();
    score_letter_queries(&model, &warmup, 0);
    let lengths: Vec<usize> = queries.iter().map(|q| q.context.len()).collect();
    let batches = if args.no_sort {
        (0..queries.len())
            .collect::<Vec<_>>()
            .chunks(batch)
            .map(<[usize]>::to_vec)
            .collect()
    } else {
        length_sorted_batches(&lengths, batch, WINDOW_BATCHES)
    };
    let start = Instant::now();
    let mut scored = 0;
    for b in &batches {
        let chunk: Vec<LetterQuery> = b.iter().map(|&i| queries[i].clone()).collect();
        scored += score_letter_queries(&model, &chunk, 0).len();
    }
    let seconds = start.elapsed().as_secs_f64();
    let tokens: usize = queries.iter().map(|q| q.context.len()).sum();
    let qps = scored as f64 / seconds;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "engine": "medtune",
                "preset": args.preset.name(),
                "device": args.device.to_string(),
                "dtype": args.dtype.to_string(),
                "questions": scored,
                "batch_size": batch,
                "length_sorted": !args.no_sort,
                "prompt_tokens": tokens,
                "seconds": seconds,
                "questions_per_s": qps,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
    } else {
        println!(
            "{} on {} ({}): {qps:.2} questions/s ({scored} questions, batch {batch}, {tokens} prompt tokens, {:.1} s), peak RSS {:.0} MiB",
            args.preset.name(),
            args.device,
            args.dtype,
            seconds,
            peak_rss_mib()
        );
    }
    Ok(())
}
