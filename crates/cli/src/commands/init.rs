//! `medtune init`: a random checkpoint that transformers and medtune both load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use medtune_model::init::{random_weights, write_checkpoint};
use medtune_model::{ComputeDType, Preset};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// tiny, small, qwen3-0.6b or qwen3-1.7b.
    #[arg(long)]
    pub preset: Preset,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Copy this folder's tokenizer files (tokenizer.json, tokenizer_config.json, ...) beside the
    /// weights; the vocabulary grows to fit the tokenizer if it is larger than the preset's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size (default: the preset's 151,936, Qwen3's).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Storage dtype of the weights.
    #[arg(long, default_value = "bf16")]
    pub dtype: ComputeDType,
}

pub fn run(args: Args) -> Result<()> {
    let mut cfg = args.preset.config();
    if let Some(v) = args.vocab_size {
        cfg.vocab_size = v;
    }
    if let Some(dir) = &args.tokenizer {
        let tok = medtune_text::Tokenizer::from_dir(dir)
            .with_context(|| format!("reading the tokenizer in {}", dir.display()))?;
        if tok.vocab_size() > cfg.vocab_size {
            cfg.vocab_size = tok.vocab_size().div_ceil(64) * 64;
        }
    }
    let weights = random_weights(&cfg, args.dtype, args.seed);
    write_checkpoint(&args.out, &cfg, &weights, args.dtype)?;
    if let Some(dir) = &args.tokenizer {
        medtune_model::checkpoint::copy_side_files(dir, &args.out)?;
    }
    eprintln!(
        "wrote {} ({} parameters, {} layers, vocab {}, {}) to {}",
        args.preset.name(),
        cfg.num_params(),
        cfg.num_hidden_layers,
        cfg.vocab_size,
        args.dtype,
        args.out.display()
    );
    Ok(())
}
