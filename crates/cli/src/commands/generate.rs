//! `medtune generate`: continue token ids or raw text, streaming the new text as it comes.

use std::io::Write;

use anyhow::{Context, Result, bail};
use medtune_model::generate::{GenerateConfig, SamplingConfig, generate};
use medtune_model::qwen3::LoadedModel;
use medtune_text::Tokenizer;

use crate::common::{ModelArgs, PackingArgs, check_ids, parse_ids};

#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Always pick the most likely token (same as --temperature 0).
    #[arg(long)]
    pub greedy: bool,
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.8)]
    pub top_p: f32,
    /// 0 keeps every token.
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn sampling(&self) -> SamplingConfig {
        SamplingConfig {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            greedy: self.greedy,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated prompt token ids.
    #[arg(long, conflicts_with = "prompt", required_unless_present = "prompt")]
    pub ids: Option<String>,
    /// Prompt text, tokenized as is (no chat template; see `medtune ask` for that).
    #[arg(long)]
    pub prompt: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print the new token ids, comma-separated, instead of text.
    #[arg(long)]
    pub print_ids: bool,
    #[command(flatten)]
    pub packing: PackingArgs,
}

pub fn run(args: Args) -> Result<()> {
    let (model, dir) = args.model.load_for_generation(&args.packing)?;
    let tokenizer = if args.prompt.is_some() || !args.print_ids {
        Some(Tokenizer::from_dir(&dir).with_context(|| format!("tokenizer of {}", dir.display()))?)
    } else {
        None
    };
    let prompt = match (&args.ids, &args.prompt) {
        (Some(ids), _) => parse_ids(ids)?,
        (None, Some(text)) => tokenizer.as_ref().expect("loaded above").encode(text)?,
        (None, None) => bail!("give --ids or --prompt"),
    };
    check_ids(&prompt, model.config.vocab_size)?;
    let stop_ids = match &tokenizer {
        Some(t) => t.eos_ids().to_vec(),
        None => model.config.eos_token_id.into_iter().collect(),
    };
    let new = stream(
        &model,
        &prompt,
        &args.sampling,
        stop_ids,
        if args.print_ids {
            None
        } else {
            tokenizer.as_ref()
        },
    )?;
    if args.print_ids {
        let ids: Vec<String> = new.iter().map(u32::to_string).collect();
        println!("{}", ids.join(","));
    }
    Ok(())
}

/// Generates from `prompt`, printing text to stdout as it is decoded when a tokenizer is given.
/// Returns the new ids.
pub fn stream(
    model: &LoadedModel,
    prompt: &[u32],
    sampling: &SamplingArgs,
    stop_ids: Vec<u32>,
    tokenizer: Option<&Tokenizer>,
) -> Result<Vec<u32>> {
    let config = GenerateConfig {
        max_new_tokens: sampling.max_new_tokens,
        stop_ids: stop_ids.clone(),
        sampling: sampling.sampling(),
        pad_id: 0,
    };
    let mut decoder = tokenizer.map(|t| t.stream_decoder(true));
    let mut stdout = std::io::stdout().lock();
    let mut failure = None;
    let out = generate(model, &[prompt.to_vec()], &config, |_, id| {
        if let Some(d) = decoder.as_mut() {
            match d.step(id) {
                Ok(Some(text)) => {
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                }
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        true
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    if let Some(d) = decoder.as_mut() {
        if let Some(rest) = d.flush()? {
            stdout.write_all(rest.as_bytes())?;
        }
        writeln!(stdout)?;
    }
    Ok(out.into_iter().next().unwrap_or_default())
}
