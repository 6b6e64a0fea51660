//! `medtune ask`: one medical multiple-choice question through the model's chat template.

use anyhow::{Context, Result, bail};
use medtune_text::Tokenizer;
use medtune_text::mcq::{McqChatOptions, McqPrompt, render_mcq_prompt};

use super::generate::{SamplingArgs, stream};
use crate::common::{ModelArgs, PackingArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub question: String,
    /// An option as LETTER=TEXT; repeat for each option (A=..., B=..., ...).
    #[arg(long = "option", value_name = "LETTER=TEXT", required = true)]
    pub options: Vec<String>,
    /// Let the model think (Qwen3's <think> block) before answering.
    #[arg(long)]
    pub thinking: bool,
    /// Replace the default system prompt.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub packing: PackingArgs,
}

fn parse_option(text: &str) -> Result<(char, String)> {
    let Some((letter, body)) = text.split_once('=') else {
        bail!("--option `{text}`: write it as LETTER=TEXT, e.g. A=Aspirin");
    };
    let mut chars = letter.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => {
            Ok((c.to_ascii_uppercase(), body.trim().to_string()))
        }
        _ => bail!("--option `{text}`: `{letter}` is not a single letter"),
    }
}

pub fn run(args: Args) -> Result<()> {
    let options = args
        .options
        .iter()
        .map(|o| parse_option(o))
        .collect::<Result<Vec<_>>>()?;
    let (model, dir) = args.model.load_for_generation(&args.packing)?;
    let tokenizer =
        Tokenizer::from_dir(&dir).with_context(|| format!("tokenizer of {}", dir.display()))?;
    let prompt = McqPrompt {
        question: args.question.clone(),
        options,
    };
    let mut chat = McqChatOptions {
        thinking: args.thinking,
        ..McqChatOptions::default()
    };
    if let Some(system) = &args.system {
        chat.system_prompt = Some(system.clone());
    }
    let template = tokenizer
        .chat_template()
        .with_context(|| format!("{} has no chat template", dir.display()))?;
    let text = render_mcq_prompt(template, &prompt, &chat)?;
    let ids = tokenizer.encode(&text)?;
    stream(
        &model,
        &ids,
        &args.sampling,
        tokenizer.eos_ids().to_vec(),
        Some(&tokenizer),
    )?;
    Ok(())
}
