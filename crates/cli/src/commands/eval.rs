//! `medtune eval`: accuracy on MCQ files by option likelihood and/or generation, for the base
//! model and any number of adapters, with a report folder a reviewer can read and reproduce.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use medtune_data::{
    Format, McqRecord, ReadOptions, detect, pubmedqa_test_labels, read_file, select,
    split_pubmedqa_test,
};
use medtune_eval::batching::{WINDOW_BATCHES, length_sorted_batches};
use medtune_eval::report::sha256_hex;
use medtune_eval::scoring::ANSWER_PREFIX;
use medtune_eval::{
    DataFile, EvalSettings, ItemResult, Mode, PromptBuilder, PromptInfo, RunInfo, SystemResult,
    evaluate_batch, write_report,
};
use medtune_model::checkpoint::resolve_model_dir;
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec};
use medtune_text::Tokenizer;
use medtune_text::mcq::McqChatOptions;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model folder in Hugging Face layout, or a hub id.
    #[arg(long)]
    pub model: String,
    /// A LoRA adapter (PEFT format); repeat to compare several. Without one the base model is
    /// evaluated.
    #[arg(long)]
    pub adapter: Vec<PathBuf>,
    /// Also evaluate the base model when adapters are given, for a side-by-side comparison.
    #[arg(long)]
    pub with_base: bool,
    /// MCQ files (MedQA, MedMCQA, PubMedQA, MMLU CSV or generic JSONL).
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// medqa, medmcqa, pubmedqa, mmlu or jsonl (default: detected per file).
    #[arg(long)]
    pub format: Option<Format>,
    /// loglik, generate or both.
    #[arg(long, default_value = "loglik")]
    pub mode: Mode,
    /// At most N questions per file: a random sample drawn with --seed.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Few-shot: K solved questions from --shots-from before each question.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    #[arg(long)]
    pub shots_from: Option<PathBuf>,
    /// Let the model think before answering (generate mode); loglik scores the answer after an
    /// empty think block.
    #[arg(long)]
    pub thinking: bool,
    /// Replace the default system prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Skip the option-text likelihood (acc_norm), which costs one sequence per option.
    #[arg(long)]
    pub no_acc_norm: bool,
    /// New-token budget per question in generate mode.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Questions per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip malformed records (counted) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    #[arg(long, default_value = "medtune-eval")]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDType,
}

/// Reads every file; PubMedQA files with `test_ground_truth.json` beside them give their official
/// test set only.
fn read_data(args: &Args) -> Result<(Vec<McqRecord>, Vec<DataFile>)> {
    let mut all = Vec::new();
    let mut files = Vec::new();
    let opts = ReadOptions {
        skip_bad: args.skip_bad,
        ..ReadOptions::default()
    };
    for path in &args.data {
        let format = match args.format {
            Some(f) => f,
            None => detect(path)?,
        };
        let mut records = read_file(path, Some(format), &opts)?.records;
        if format == Format::PubMedQa
            && let Some(labels) = pubmedqa_test_labels(path)?
        {
            records = split_pubmedqa_test(records, &labels)?.0;
        }
        let total = records.len();
        let selected = select(records, Some(args.seed), args.limit);
        files.push(DataFile {
            path: path.display().to_string(),
            sha256: medtune_eval::report::sha256_file(path)?,
            format: format.name().to_owned(),
            records: total,
            selected: selected.len(),
        });
        all.extend(selected);
    }
    Ok((all, files))
}

/// Set by Ctrl-C: finish the batch in flight, write the partial report, stop.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: stopping now without a report");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: finishing the current batch, then writing a partial report");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

pub fn run(args: Args) -> Result<()> {
    if args.shots > 0 && args.shots_from.is_none() {
        bail!("--shots {} needs --shots-from FILE", args.shots);
    }
    let started = Instant::now();
    let (records, data_files) = read_data(&args)?;
    let model_dir = resolve_model_dir(&args.model)?;
    let tokenizer = Tokenizer::from_dir(&model_dir)
        .with_context(|| format!("tokenizer of {}", model_dir.display()))?;
    let template = tokenizer
        .chat_template()
        .with_context(|| format!("{} has no chat template", model_dir.display()))?;
    let chat = McqChatOptions {
        thinking: args.thinking,
        system_prompt: args
            .system
            .clone()
            .or_else(|| McqChatOptions::default().system_prompt),
    };
    let mut prompts = PromptBuilder::new(template, chat.clone());
    if let Some(file) = &args.shots_from {
        // The shots may come from another data set than --data: detect their format.
        let pool = read_file(file, None, &ReadOptions::default())?.records;
        prompts = prompts.with_shots(args.shots, select(pool, Some(args.seed), None));
    }
    let settings = EvalSettings {
        mode: args.mode,
        acc_norm: !args.no_acc_norm,
        max_new_tokens: args.max_new_tokens,
        pad_id: tokenizer
            .pad_token_id()
            .unwrap_or_else(|| tokenizer.eos_token_id()),
        stop_ids: tokenizer.eos_ids().to_vec(),
    };
    let mut systems: Vec<(String, Option<PathBuf>)> = Vec::new();
    if args.adapter.is_empty() || args.with_base {
        systems.push(("base".into(), None));
    }
    for a in &args.adapter {
        let name = a
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| a.display().to_string());
        let unique = if systems.iter().any(|(n, _)| *n == name) {
            format!("{name}-{}", systems.len())
        } else {
            name
        };
        systems.push((unique, Some(a.clone())));
    }
    let mut info = RunInfo {
        medtune_version: env!("CARGO_PKG_VERSION").into(),
        model: args.model.clone(),
        device: args.device.to_string(),
        dtype: args.dtype.to_string(),
        data: data_files,
        prompt: PromptInfo {
            chat_template_sha256: sha256_hex(template.source().as_bytes()),
            system_prompt: chat.system_prompt.clone(),
            thinking: args.thinking,
            shots: args.shots,
            shots_from: args.shots_from.as_ref().map(|p| p.display().to_string()),
            answer_prefix: ANSWER_PREFIX.into(),
            example: records
                .first()
                .map(|r| prompts.render(r))
                .transpose()?
                .unwrap_or_default(),
        },
        mode: args.mode,
        acc_norm: settings.acc_norm,
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        limit: args.limit,
        n: records.len(),
        complete: false,
        elapsed_s: 0.0,
    };
    let lengths = records
        .iter()
        .map(|r| prompts.render(r).map(|p| p.len()))
        .collect::<Result<Vec<_>>>()?;
    let batches = length_sorted_batches(&lengths, args.batch_size, WINDOW_BATCHES);
    let interrupted = interrupt_flag()?;
    let device = args.device.device()?;
    let mut results: Vec<SystemResult> = Vec::new();
    'systems: for (name, adapter) in &systems {
        let mut model = LoadedModel::from_dir(&model_dir, args.dtype, &device)
            .with_context(|| format!("loading {}", model_dir.display()))?;
        if let Some(a) = adapter {
            model
                .model
                .load_adapter(a, &device)
                .with_context(|| format!("loading the adapter in {}", a.display()))?;
        }
        let bar = ProgressBar::new(records.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} questions, {per_sec}, ETA {eta} {msg}",
            )
            .expect("template"),
        );
        bar.set_prefix(name.clone());
        let mut result = SystemResult {
            name: name.clone(),
            adapter: adapter.as_ref().map(|a| a.display().to_string()),
            items: Vec::with_capacity(records.len()),
        };
        // Scored in length-sorted batches, reported in selection order.
        let mut scored: Vec<Option<ItemResult>> = vec![None; records.len()];
        for batch in &batches {
            if interrupted.load(Ordering::SeqCst) {
                break;
            }
            let chunk: Vec<McqRecord> = batch.iter().map(|&i| records[i].clone()).collect();
            let items = evaluate_batch(&model, &tokenizer, &prompts, &chunk, &settings)?;
            for (&i, item) in batch.iter().zip(items) {
                scored[i] = Some(item);
            }
            bar.inc(chunk.len() as u64);
        }
        result.items = scored.into_iter().flatten().collect();
        bar.finish_and_clear();
        results.push(result);
        if interrupted.load(Ordering::SeqCst) {
            break 'systems;
        }
    }
    info.complete = !interrupted.load(Ordering::SeqCst);
    info.elapsed_s = started.elapsed().as_secs_f64();
    write_report(&args.out, &info, &results)?;
    print_summary(&results);
    println!(
        "{} report in {} (summary.json, items.jsonl, report.md, report.html, plots)",
        if info.complete { "full" } else { "PARTIAL" },
        args.out.display()
    );
    if !info.complete {
        std::process::exit(130);
    }
    Ok(())
}

fn print_summary(results: &[SystemResult]) {
    for s in results {
        for m in s.summaries() {
            let unparsed = if m.unparsed > 0 {
                format!(", {} unparsed", m.unparsed)
            } else {
                String::new()
            };
            println!(
                "{:<16} {:<30} {:>5.1}% [{:.1}–{:.1}] of {}{unparsed}",
                s.name,
                m.scoring.label(),
                100.0 * m.accuracy,
                100.0 * m.wilson95.low,
                100.0 * m.wilson95.high,
                m.n
            );
        }
    }
    for c in medtune_eval::report::comparisons(results) {
        println!(
            "{} vs {} ({}): {:.1}% vs {:.1}%, McNemar p = {:.4}",
            c.a,
            c.b,
            c.scoring.label(),
            100.0 * c.accuracy_a,
            100.0 * c.accuracy_b,
            c.mcnemar_p
        );
    }
}
