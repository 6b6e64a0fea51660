//! `medtune quickstart`: the whole path from nothing to a fine-tuned adapter, with no download.
//! It builds a tiny random Qwen3 and medtune's own small tokenizer, scores a small built-in set
//! of medical questions written for this project, fine-tunes a LoRA adapter on them, and scores
//! again. It checks the machine and the pipeline; memorising 16 questions is not medical skill.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use medtune_data::{McqRecord, ReadOptions, read_file};
use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::{LoadedModel, LoraConfig, LoraTarget};
use medtune_model::{ComputeDType, DeviceSpec, Preset};
use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, render_mcq_prompt};
use medtune_train::examples::{ExampleOptions, build_examples};
use medtune_train::loss::{TrainBatch, target_nll_sum};
use medtune_train::optim::AdamWConfig;
use medtune_train::plot::plot_losses;
use medtune_train::schedule::ScheduleKind;
use medtune_train::trainer::{TrainSettings, Trainer};

use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};

/// Sixteen questions written for medtune (not taken from any exam set).
const BUILTIN_MCQ: &str = include_str!("../../assets/quickstart_mcq.jsonl");

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Where the tiny model, the data and the adapter are written.
    #[arg(long, default_value = "target/quickstart")]
    pub out: PathBuf,
    /// Training epochs over the built-in questions.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
}

/// Accuracy by option likelihood: for each option letter, the log-probability of the answer
/// line `Answer: X)` after the prompt; the most likely letter is the prediction.
fn accuracy(model: &LoadedModel, tokenizer: &Tokenizer, records: &[McqRecord]) -> Result<f64> {
    let template = tokenizer
        .chat_template()
        .context("tokenizer has a chat template")?;
    let pad = tokenizer.pad_token_id().unwrap_or(0);
    let mut correct = 0;
    for r in records {
        let prompt = render_mcq_prompt(template, &r.prompt(), &McqChatOptions::default())?;
        let prompt = tokenizer.encode(&prompt)?;
        let mut best = (f64::INFINITY, ' ');
        for (letter, _) in &r.options {
            let mut ids = prompt.clone();
            ids.extend(tokenizer.encode(&format!("Answer: {letter})"))?);
            let batch = TrainBatch::from_sequences(&[(ids, prompt.len())], pad);
            let nll = target_nll_sum(model, &batch);
            if nll < best.0 {
                best = (nll, *letter);
            }
        }
        correct += usize::from(best.1 == r.answer);
    }
    Ok(correct as f64 / records.len().max(1) as f64)
}

pub fn run(args: Args) -> Result<()> {
    let clock = Instant::now();
    println!(
        "medtune quickstart: checks the machine and the pipeline (checkpoint, tokenizer, chat \
         template, LoRA training, scoring, generation) with a tiny random model; it says nothing \
         about medical skill."
    );
    let model_dir = args.out.join("model");
    std::fs::create_dir_all(&model_dir)
        .with_context(|| format!("creating {}", model_dir.display()))?;
    let vocab = medtune_text::builtin_tokenizer::write_builtin_tokenizer(&model_dir)?;
    let mut cfg = Preset::Tiny.config();
    cfg.vocab_size = vocab.div_ceil(64) * 64;
    write_checkpoint(
        &model_dir,
        &cfg,
        &random_weights(&cfg, ComputeDType::F32, 0),
        ComputeDType::F32,
    )?;
    println!(
        "1. wrote a tiny Qwen3 ({} parameters) and medtune's {vocab}-token tokenizer to {}",
        cfg.num_params(),
        model_dir.display()
    );
    let data_path = args.out.join("quickstart_mcq.jsonl");
    std::fs::write(&data_path, BUILTIN_MCQ)?;
    let records = read_file(&data_path, None, &ReadOptions::default())?.records;
    let tokenizer = Tokenizer::from_dir(&model_dir)?;
    let device = args.device.device()?.autodiff();
    let mut model = LoadedModel::from_dir(&model_dir, ComputeDType::F32, &device)?;
    let before = accuracy(&model, &tokenizer, &records)?;
    println!(
        "2. accuracy on the {} built-in questions before training: {:.0}% (chance is 25%)",
        records.len(),
        100.0 * before
    );

    let lora = LoraConfig {
        rank: 16,
        alpha: 32.0,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
        rslora: false,
    };
    model.model.attach_lora(&lora, 0, &device);
    let data = build_examples(
        std::slice::from_ref(&data_path),
        None,
        &tokenizer,
        &ExampleOptions {
            max_length: 320,
            ..ExampleOptions::default()
        },
    )?;
    let adapter_dir = args.out.join("adapter");
    let mut trainer = Trainer {
        model: &mut model,
        lora,
        settings: TrainSettings {
            epochs: args.epochs,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            lr: 1e-2,
            schedule: ScheduleKind::Cosine,
            warmup_ratio: 0.05,
            max_grad_norm: 1.0,
            seed: 0,
            save_every: None,
            adamw: AdamWConfig::default(),
            pad_id: tokenizer.pad_token_id().unwrap_or(0),
            pack_length: None,
        },
        out: adapter_dir.clone(),
        base_model_name: model_dir.display().to_string(),
        peak_flops: None,
    };
    print!("3. LoRA fine-tuning (all linear layers, r=16), loss on the answer tokens:");
    let history = trainer.run(&data.train, &[], None, |m| {
        if m.step == 1 || m.step % 10 == 0 {
            print!(" {:.3}", m.loss);
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    })?;
    println!();
    plot_losses(&history, &adapter_dir.join("loss.png"))?;
    let after = accuracy(&model, &tokenizer, &records)?;
    let (first, last) = (history.first().unwrap(), history.last().unwrap());
    println!(
        "4. loss {:.3} → {:.3} in {} steps; accuracy {:.0}% → {:.0}% on the questions it trained \
         on (learning, not skill)",
        first.loss,
        last.loss,
        last.step,
        100.0 * before,
        100.0 * after
    );
    println!(
        "   adapter (PEFT format) and loss.png in {}",
        adapter_dir.display()
    );
    show_answer(
        &model_dir,
        &adapter_dir,
        &tokenizer,
        &records[0],
        args.device,
    )?;
    println!("done in {:.1} s", clock.elapsed().as_secs_f64());
    Ok(())
}

/// Generates the fine-tuned model's answer to the first question, as `medtune ask` would.
fn show_answer(
    model_dir: &Path,
    adapter_dir: &Path,
    tokenizer: &Tokenizer,
    record: &McqRecord,
    device: DeviceSpec,
) -> Result<()> {
    let device = device.device()?;
    let mut model = LoadedModel::from_dir(model_dir, ComputeDType::F32, &device)?;
    model.model.load_adapter(adapter_dir, &device)?;
    let template = tokenizer.chat_template().context("chat template")?;
    let prompt = render_mcq_prompt(template, &record.prompt(), &McqChatOptions::default())?;
    println!(
        "5. {}\n   the adapted model answers (greedy):",
        record.question
    );
    let config = GenerateConfig {
        max_new_tokens: 40,
        stop_ids: tokenizer.eos_ids().to_vec(),
        sampling: SamplingConfig::greedy(),
        pad_id: 0,
    };
    let mut reply = Vec::new();
    generate(&model, &[tokenizer.encode(&prompt)?], &config, |_, id| {
        reply.push(id);
        let text = tokenizer.decode(&reply, true).unwrap_or_default();
        first_line(&text).is_none()
    });
    let text = tokenizer.decode(&reply, true)?;
    match first_line(&text).unwrap_or(text.trim()) {
        "" => println!("   (no answer line in 40 tokens: it has not learnt the format yet)"),
        line => println!("   {line}"),
    }
    println!(
        "   (only its answer line: a 2-layer random model tuned for seconds learns the answer \
         format and letter, and what it writes after that is noise)"
    );
    Ok(())
}

/// The first non-blank line of `text`, once a line break ends it.
fn first_line(text: &str) -> Option<&str> {
    let rest = text.trim_start();
    rest.find('\n').map(|end| rest[..end].trim_end())
}
