//! `medtune merge`: fold a LoRA adapter into its base and write a full Hugging Face checkpoint
//! that any runtime loads without PEFT.

use std::path::PathBuf;

use anyhow::{Result, bail};
use medtune_model::ComputeDType;

use crate::common::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// Storage dtype of the merged weights (default: the base checkpoint's).
    #[arg(long)]
    pub save_dtype: Option<ComputeDType>,
}

pub fn run(mut args: Args) -> Result<()> {
    if args.model.adapter.is_none() {
        bail!("merge needs --adapter DIR");
    }
    // Merge in f32 whatever the compute dtype asked, then store as asked.
    args.model.dtype = ComputeDType::F32;
    let (mut model, dir) = args.model.load()?;
    let save_dtype = args
        .save_dtype
        .or(model.config.torch_dtype)
        .unwrap_or(ComputeDType::Bf16);
    model.model.merge_lora();
    model
        .model
        .save_checkpoint(&args.out, &model.config, save_dtype)?;
    medtune_model::checkpoint::copy_side_files(&dir, &args.out)?;
    eprintln!(
        "merged checkpoint ({save_dtype}) written to {}",
        args.out.display()
    );
    Ok(())
}
