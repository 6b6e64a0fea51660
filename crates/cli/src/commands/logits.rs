//! `medtune logits`: every position's logits as one f32 safetensors tensor `logits` [seq, vocab].

use std::path::PathBuf;

use anyhow::Result;
use medtune_model::ComputeDType;
use medtune_model::checkpoint::{HostTensor, write_safetensors};

use crate::common::{ModelArgs, check_ids, parse_ids};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids.
    #[arg(long)]
    pub ids: String,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let ids = parse_ids(&args.ids)?;
    let (model, _) = args.model.load()?;
    let vocab = model.config.vocab_size;
    check_ids(&ids, vocab)?;
    let logits = model.sequence_logits(&ids);
    let tensor = HostTensor::from_f32(&logits, vec![ids.len(), vocab], ComputeDType::F32);
    write_safetensors(&args.out, &[("logits".to_string(), tensor)])?;
    Ok(())
}
