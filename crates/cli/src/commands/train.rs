//! `medtune train`: LoRA supervised fine-tuning on MCQ data. Flags and `--config FILE.toml` take
//! the same keys (flags win); the resolved configuration is saved beside the adapter.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use medtune_model::qwen3::{LoraConfig, LoraTarget};
use medtune_model::{ComputeDType, DeviceSpec};
use medtune_text::AssistantTurns;
use medtune_train::checkpoint::Checkpoint;
use medtune_train::examples::{ExampleOptions, build_examples};
use medtune_train::metrics::StepMetrics;
use medtune_train::optim::AdamWConfig;
use medtune_train::plot::plot_losses;
use medtune_train::schedule::ScheduleKind;
use medtune_train::trainer::{TrainSettings, Trainer, checkpoints, plan_steps, training_units};
use serde::{Deserialize, Serialize};

/// Every key of a training run. As flags each is `--kebab-case`; in TOML, `snake_case`.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Model folder or hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// Training data files: MCQ (MedQA, MedMCQA, PubMedQA, MMLU CSV, generic JSONL),
    /// conversations (`messages`), prompt–completion pairs, or reasoning traces (`--fields`).
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion or trace (default:
    /// detected).
    #[arg(long)]
    pub format: Option<String>,
    /// The columns of a reasoning-trace table, e.g.
    /// `question=Question,reasoning=Complex_CoT,answer=Response` (implies `--format trace`).
    #[arg(long)]
    pub fields: Option<String>,
    /// Train on the last assistant turn of each conversation only (default: every assistant
    /// turn).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub last_turn_only: Option<bool>,
    /// A Jinja chat template for conversations and prompt–completion pairs instead of the
    /// model's own, e.g. TRL's `qwen3_training.jinja` (its `{% generation %}` blocks then mark the
    /// targets, exactly as TRL's `assistant_only_loss`).
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub grad_accum: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub max_length: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub dtype: Option<String>,
    /// q,k,v,o,gate,up,down (or q_proj, ...) or all-linear.
    #[arg(long)]
    pub targets: Option<String>,
    #[arg(long)]
    pub rank: Option<usize>,
    #[arg(long)]
    pub alpha: Option<f64>,
    #[arg(long)]
    pub dropout: Option<f64>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rslora: Option<bool>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// cosine, linear or constant.
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Save a resumable checkpoint every N optimiser steps.
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Use at most N records (after a seeded shuffle).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Hold out this fraction of the training records for validation loss.
    #[arg(long)]
    pub val_split: Option<f64>,
    /// Validation files (any supported format): their loss is reported, and training records
    /// asking the same question are dropped and reported.
    #[arg(long = "val", num_args = 1..)]
    pub val: Vec<PathBuf>,
    /// Put the explanation inside Qwen3's <think> block.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub thinking: Option<bool>,
    /// Skip (and count) malformed records instead of stopping.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub skip_bad: Option<bool>,
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Recompute activations in the backward pass instead of keeping them (less memory).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub gradient_checkpointing: Option<bool>,
    /// Pack several examples into each row of --max-length tokens, with no attention across
    /// them (per-sample position ids, block-diagonal mask).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub packing: Option<bool>,
    /// The device's peak in TFLOP/s for the `mfu` metric (default: a GEMM measured at start).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub config: TrainConfig,
    /// A TOML file with the same keys as the flags (snake_case).
    #[arg(long = "config")]
    pub config_file: Option<PathBuf>,
    /// Continue from the newest checkpoint in this output folder (or a checkpoint-N folder).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

macro_rules! merge {
    ($cli:expr, $file:expr, $($field:ident),*) => {
        $( if $cli.$field.is_none() { $cli.$field = $file.$field.clone(); } )*
    };
}

impl TrainConfig {
    fn merged_with(mut self, file: TrainConfig) -> Self {
        merge!(
            self,
            file,
            model,
            format,
            fields,
            last_turn_only,
            chat_template,
            out,
            epochs,
            max_steps,
            batch_size,
            grad_accum,
            lr,
            max_length,
            seed,
            device,
            dtype,
            targets,
            rank,
            alpha,
            dropout,
            rslora,
            weight_decay,
            warmup_ratio,
            schedule,
            max_grad_norm,
            save_every,
            limit,
            val_split,
            thinking,
            skip_bad,
            system_prompt,
            gradient_checkpointing,
            peak_tflops,
            packing
        );
        if self.data.is_empty() {
            self.data = file.data;
        }
        if self.val.is_empty() {
            self.val = file.val;
        }
        self
    }

    /// Fills every unset key with its default (the inspiring job's settings).
    fn resolved(mut self) -> Self {
        self.epochs.get_or_insert(2);
        self.batch_size.get_or_insert(4);
        self.grad_accum.get_or_insert(4);
        self.lr.get_or_insert(2e-4);
        self.max_length.get_or_insert(256);
        self.seed.get_or_insert(42);
        self.device.get_or_insert_with(|| "cpu".into());
        self.dtype.get_or_insert_with(|| "f32".into());
        self.targets.get_or_insert_with(|| "q_proj,v_proj".into());
        self.rank.get_or_insert(8);
        self.alpha.get_or_insert(16.0);
        self.dropout.get_or_insert(0.05);
        self.rslora.get_or_insert(false);
        self.weight_decay.get_or_insert(0.0);
        self.warmup_ratio.get_or_insert(0.05);
        self.schedule.get_or_insert_with(|| "cosine".into());
        self.max_grad_norm.get_or_insert(1.0);
        self.thinking.get_or_insert(false);
        self.skip_bad.get_or_insert(false);
        self.last_turn_only.get_or_insert(false);
        self.gradient_checkpointing.get_or_insert(false);
        self.packing.get_or_insert(false);
        self
    }
}

fn newest_checkpoint(path: &Path) -> Result<Checkpoint> {
    let dir = if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint-"))
    {
        path.to_path_buf()
    } else {
        checkpoints(path)
            .pop()
            .with_context(|| format!("--resume: no checkpoint-N folder in {}", path.display()))?
    };
    Ok(Checkpoint::open(&dir)?)
}

/// What a run's settings and data make of each optimiser step, written under `[derived]` in
/// `training_config.toml` for the record (ignored when the file is read back).
#[derive(Debug, Serialize)]
struct Derived {
    /// Sequences (or packed rows) per micro-batch.
    micro_batch: usize,
    grad_accum: usize,
    devices: usize,
    /// `micro_batch × grad_accum × devices`: what another tool calls the batch size.
    effective_batch: usize,
    /// Real tokens and target tokens per optimiser step, on average over the data.
    tokens_per_step: usize,
    target_tokens_per_step: usize,
    optimiser_steps: usize,
}

#[derive(Serialize)]
struct DerivedTable {
    derived: Derived,
}

impl Derived {
    fn of(
        train: &[medtune_train::examples::Example],
        units: &[Vec<usize>],
        settings: &TrainSettings,
        optimiser_steps: usize,
    ) -> Self {
        let (micro_batch, grad_accum, devices) = (settings.batch_size, settings.grad_accum, 1);
        let effective_batch = micro_batch * grad_accum * devices;
        let per_unit = |count: usize| count as f64 / units.len().max(1) as f64;
        let tokens: usize = train.iter().map(|e| e.ids.len()).sum();
        let targets: usize = train.iter().map(|e| e.target_count()).sum();
        Self {
            micro_batch,
            grad_accum,
            devices,
            effective_batch,
            tokens_per_step: (per_unit(tokens) * effective_batch as f64).round() as usize,
            target_tokens_per_step: (per_unit(targets) * effective_batch as f64).round() as usize,
            optimiser_steps,
        }
    }

    fn summary(&self) -> String {
        format!(
            "effective batch: {} {} × {} accumulation × {} device = {} per optimiser step, \
             ~{} tokens (~{} target tokens) each; {} optimiser steps",
            self.micro_batch,
            if self.micro_batch == 1 {
                "sequence"
            } else {
                "sequences"
            },
            self.grad_accum,
            self.devices,
            self.effective_batch,
            thousands(self.tokens_per_step),
            thousands(self.target_tokens_per_step),
            self.optimiser_steps
        )
    }
}

/// A training configuration from TOML text, without the `[derived]` table medtune writes.
fn parse_config(text: &str) -> Result<TrainConfig> {
    let mut table: toml::Table = toml::from_str(text)?;
    table.remove("derived");
    Ok(table.try_into()?)
}

pub fn run(args: Args) -> Result<()> {
    let mut config = args.config;
    if let Some(file) = &args.config_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let from_file = parse_config(&text)
            .with_context(|| format!("{}: invalid training config", file.display()))?;
        config = config.merged_with(from_file);
    }
    if let Some(resume) = &args.resume {
        // A resumed run takes the saved configuration; flags given now still win.
        let saved = resume_config_path(resume);
        if let Ok(text) = std::fs::read_to_string(&saved) {
            let from_saved = parse_config(&text).with_context(|| format!("{}", saved.display()))?;
            config = config.merged_with(from_saved);
        }
    }
    let c = config.resolved();
    let Some(model_name) = c.model.clone() else {
        bail!("--model is required")
    };
    let Some(out) = c.out.clone() else {
        bail!("--out is required")
    };
    if c.data.is_empty() {
        bail!("--data is required (one or more files)");
    }
    let device_spec: DeviceSpec = c.device.as_deref().unwrap().parse()?;
    let dtype: ComputeDType = c.dtype.as_deref().unwrap().parse()?;
    let lora = LoraConfig {
        rank: c.rank.unwrap(),
        alpha: c.alpha.unwrap(),
        dropout: c.dropout.unwrap(),
        targets: LoraTarget::parse_list(c.targets.as_deref().unwrap())?,
        rslora: c.rslora.unwrap(),
    };
    let schedule: ScheduleKind = c
        .schedule
        .as_deref()
        .unwrap()
        .parse()
        .map_err(anyhow::Error::msg)?;

    let dir = medtune_model::checkpoint::resolve_model_dir(&model_name)?;
    let tokenizer = medtune_text::Tokenizer::from_dir(&dir)
        .with_context(|| format!("tokenizer of {}", dir.display()))?;
    let format = c
        .format
        .as_deref()
        .map(str::parse::<medtune_data::Format>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let data = build_examples(
        &c.data,
        format,
        &tokenizer,
        &ExampleOptions {
            max_length: c.max_length.unwrap(),
            thinking: c.thinking.unwrap(),
            system_prompt: c.system_prompt.clone(),
            limit: c.limit,
            val_split: c.val_split,
            val_files: c.val.clone(),
            seed: c.seed.unwrap(),
            skip_bad: c.skip_bad.unwrap(),
            fields: c
                .fields
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            turns: if c.last_turn_only.unwrap() {
                AssistantTurns::Last
            } else {
                AssistantTurns::All
            },
            chat_template: c.chat_template.clone(),
            keep_order: false,
        },
    )?;
    eprintln!("{}", data.summary());

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let device = device_spec.device()?.autodiff();
    let device = if c.gradient_checkpointing.unwrap() {
        device.gradient_checkpointing()
    } else {
        device
    };
    let mut model = medtune_model::qwen3::LoadedModel::from_dir(&dir, dtype, &device)?;
    model.model.attach_lora(&lora, c.seed.unwrap(), &device);
    let peak_flops = match c.peak_tflops {
        Some(t) => t * 1e12,
        None => medtune_train::peak::measure_gemm_flops(&device, dtype.dtype(), 1024),
    };
    eprintln!(
        "MFU is measured against {:.1} TFLOP/s ({})",
        peak_flops / 1e12,
        if c.peak_tflops.is_some() {
            "--peak-tflops"
        } else {
            "medtune's best 1024³ product, measured now"
        }
    );
    let trainable = model.model.num_lora_params();
    eprintln!(
        "trainable parameters: {} of {} ({:.4}%)",
        thousands(trainable),
        thousands(model.config.num_params() + trainable),
        100.0 * trainable as f64 / (model.config.num_params() + trainable) as f64
    );
    let settings = TrainSettings {
        epochs: c.epochs.unwrap(),
        max_steps: c.max_steps,
        batch_size: c.batch_size.unwrap(),
        grad_accum: c.grad_accum.unwrap(),
        lr: c.lr.unwrap(),
        schedule,
        warmup_ratio: c.warmup_ratio.unwrap(),
        max_grad_norm: c.max_grad_norm.unwrap(),
        seed: c.seed.unwrap(),
        save_every: c.save_every,
        adamw: AdamWConfig {
            weight_decay: c.weight_decay.unwrap(),
            ..AdamWConfig::default()
        },
        pad_id: tokenizer.pad_token_id().unwrap_or(0),
        pack_length: c.packing.unwrap().then(|| c.max_length.unwrap()),
    };
    let units = training_units(&data.train, &settings);
    let (_, total) = plan_steps(units.len(), &settings);
    let derived = Derived::of(&data.train, &units, &settings, total);
    eprintln!("{}", derived.summary());
    let text = toml::to_string(&c).expect("config serialises");
    let derived_text =
        toml::to_string(&DerivedTable { derived }).expect("derived values serialise");
    std::fs::write(
        out.join("training_config.toml"),
        format!("{text}\n{derived_text}"),
    )?;
    let resume = args.resume.as_deref().map(newest_checkpoint).transpose()?;
    let done = resume.as_ref().map_or(0, |r| r.state.step);
    let bar = ProgressBar::new(total as u64).with_position(done as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps, ETA {eta} {msg}")
            .expect("template"),
    );
    let metrics_path = out.join("metrics.jsonl");
    // A resumed run keeps the metrics of the steps it already has and rewrites the rest.
    let mut kept: Vec<StepMetrics> = read_metrics(&metrics_path)
        .into_iter()
        .filter(|m| m.step <= done)
        .collect();
    let mut metrics_file = std::fs::File::create(&metrics_path)?;
    for m in &kept {
        writeln!(metrics_file, "{}", serde_json::to_string(m)?)?;
    }
    let mut trainer = Trainer {
        model: &mut model,
        lora: lora.clone(),
        settings,
        out: out.clone(),
        base_model_name: model_name.clone(),
        peak_flops: Some(peak_flops),
    };
    let history = trainer.run(&data.train, &data.val, resume, |m| {
        let _ = writeln!(metrics_file, "{}", serde_json::to_string(m).expect("json"));
        let _ = metrics_file.flush();
        bar.set_position(m.step as u64);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            m.loss, m.lr, m.tokens_per_s
        ));
    })?;
    bar.finish();
    kept.extend(history);
    plot_losses(&kept, &out.join("loss.png"))?;
    if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
        let tokens: usize = kept.iter().map(|m| m.tokens).sum();
        let seconds: f64 = kept.iter().map(|m| m.step_seconds).sum();
        eprintln!(
            "done: {} steps, loss {:.4} → {:.4}{}, {} tokens in {:.1} s ({:.0} tokens/s). Adapter: {}",
            last.step,
            first.loss,
            last.loss,
            last.val_loss
                .map(|v| format!(" (val {v:.4})"))
                .unwrap_or_default(),
            tokens,
            seconds,
            tokens as f64 / seconds.max(1e-9),
            out.display()
        );
    }
    Ok(())
}

fn resume_config_path(resume: &Path) -> PathBuf {
    let out = if resume
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint-"))
    {
        resume.parent().unwrap_or(resume).to_path_buf()
    } else {
        resume.to_path_buf()
    };
    out.join("training_config.toml")
}

fn read_metrics(path: &Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
