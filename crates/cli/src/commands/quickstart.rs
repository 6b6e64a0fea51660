//! `medtune quickstart`: the whole path from nothing to an answer, with no download. It builds a
//! tiny random Qwen3 and medtune's own small tokenizer, then asks it a question. It checks that
//! the machine and the pipeline work; a random model has no medical skill.

use std::path::PathBuf;

use anyhow::{Context, Result};
use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::qwen3::LoadedModel;
use medtune_model::{ComputeDType, DeviceSpec, Preset};
use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, McqPrompt, render_mcq_prompt};

use super::generate::{SamplingArgs, stream};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Where the tiny model is written.
    #[arg(long, default_value = "target/quickstart/model")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    eprintln!(
        "medtune quickstart: checks the machine and the pipeline (checkpoint, tokenizer, chat \
         template, generation), not medical skill: the model is random."
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let vocab = medtune_text::builtin_tokenizer::write_builtin_tokenizer(&args.out)?;
    let mut cfg = Preset::Tiny.config();
    cfg.vocab_size = vocab.div_ceil(64) * 64;
    let weights = random_weights(&cfg, ComputeDType::F32, 0);
    write_checkpoint(&args.out, &cfg, &weights, ComputeDType::F32)?;
    eprintln!(
        "1. wrote a tiny Qwen3 ({} parameters) and a {vocab}-token tokenizer to {}",
        cfg.num_params(),
        args.out.display()
    );
    let device = args.device.device()?;
    let model = LoadedModel::from_dir(&args.out, ComputeDType::F32, &device)?;
    let tokenizer = Tokenizer::from_dir(&args.out)?;
    let prompt = McqPrompt {
        question: "A patient with sudden tearing chest pain radiating to the back has unequal \
                   arm blood pressures. Which imaging study is most appropriate?"
            .into(),
        options: vec![
            ('A', "CT angiography of the chest".into()),
            ('B', "Abdominal ultrasound".into()),
            ('C', "Plain skull radiograph".into()),
            ('D', "Knee MRI".into()),
        ],
    };
    let template = tokenizer
        .chat_template()
        .context("the built-in tokenizer has a chat template")?;
    let text = render_mcq_prompt(template, &prompt, &McqChatOptions::default())?;
    let ids = tokenizer.encode(&text)?;
    eprintln!(
        "2. prompt rendered with the chat template ({} tokens):\n{text}",
        ids.len()
    );
    eprintln!(
        "3. generating on {} (random weights, so the text is noise):",
        args.device
    );
    let sampling = SamplingArgs {
        max_new_tokens: 24,
        greedy: false,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        seed: 0,
    };
    let new = stream(
        &model,
        &ids,
        &sampling,
        tokenizer.eos_ids().to_vec(),
        Some(&tokenizer),
    )?;
    eprintln!(
        "done: {} tokens generated. Next: `medtune ask --model {} ...`",
        new.len(),
        args.out.display()
    );
    Ok(())
}
