//! `medtune`: fine-tune, evaluate and serve Qwen3 for medical multiple-choice questions.
//!
//! No `unsafe` here but glibc's allocator settings (`allocator`, allowed by name).
#![deny(unsafe_code)]

mod allocator;
mod commands;
mod common;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "medtune", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the machine and the pipeline end to end with a tiny model, no download needed.
    Quickstart(commands::quickstart::Args),
    /// Write a randomly initialised Qwen3 checkpoint in Hugging Face layout.
    Init(commands::init::Args),
    /// Write the logits of every position of a token sequence to a safetensors file.
    Logits(commands::logits::Args),
    /// Continue a prompt (token ids or text) and print the new text or ids.
    Generate(commands::generate::Args),
    /// Answer a medical multiple-choice question, streaming the answer and its reasoning.
    Ask(commands::ask::Args),
    /// LoRA fine-tuning on medical multiple-choice data.
    Train(Box<commands::train::Args>),
    /// Inspect and validate data files.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Accuracy on MCQ files with confidence intervals, by option likelihood and/or generation.
    Eval(Box<commands::eval::Args>),
    /// Fold a LoRA adapter into its base model and write a full checkpoint.
    Merge(commands::merge::Args),
    /// Measure speed.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Serve the model over HTTP: OpenAI-compatible API, /v1/mcq and a web page.
    Serve(Box<commands::serve::Args>),
}

fn main() -> std::process::ExitCode {
    allocator::tune_for_tensors();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDTUNE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a),
        Command::Init(a) => commands::init::run(a),
        Command::Logits(a) => commands::logits::run(a),
        Command::Generate(a) => commands::generate::run(a),
        Command::Ask(a) => commands::ask::run(a),
        Command::Train(a) => commands::train::run(*a),
        Command::Data(d) => commands::data::run(d),
        Command::Eval(a) => commands::eval::run(*a),
        Command::Merge(a) => commands::merge::run(a),
        Command::Bench(b) => commands::bench::run(b),
        Command::Serve(a) => commands::serve::run(*a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
