//! `medtune merge`: fold a LoRA adapter into its base and write a full Hugging Face checkpoint
//! that any runtime loads without PEFT.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
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

const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "generation_config.json",
];

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
    for name in SIDE_FILES {
        let src = dir.join(name);
        if src.is_file() {
            std::fs::copy(&src, args.out.join(name))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    eprintln!(
        "merged checkpoint ({save_dtype}) written to {}",
        args.out.display()
    );
    Ok(())
}
