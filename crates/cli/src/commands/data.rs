//! `medtune data`: inspect data sets.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use medtune_data::{Format, TraceFields, check_files_with};
use medtune_text::{AssistantTurns, Tokenizer};
use medtune_train::examples::{ExampleOptions, build_examples};

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Read data files and report record counts, answer letters, subjects, explanations, token
    /// lengths and duplicate questions, listing every bad record as `file:line: field: problem`.
    /// Exits non-zero when there is any problem.
    Check(CheckArgs),
    /// Write one line per training example, as training sees it, to a JSON Lines file:
    /// `{"input_ids": [...], "labels": [...]}` with -100 where no loss is taken (Hugging Face
    /// collators' convention), in file order, so the masking can be diffed against another
    /// pipeline's.
    Dump(DumpArgs),
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Data files, in any format `medtune train` reads.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The model folder (or hub id) whose tokenizer and chat template render the examples.
    #[arg(long)]
    pub model: String,
    /// The JSON Lines file to write (replaced whole, never left half-written).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion or trace for every file;
    /// detected per file when left out.
    #[arg(long)]
    pub format: Option<Format>,
    /// The columns of a reasoning-trace table, e.g.
    /// `question=Question,reasoning=Complex_CoT,answer=Response`.
    #[arg(long)]
    pub fields: Option<String>,
    #[arg(long, default_value_t = 256)]
    pub max_length: usize,
    /// MCQ records: the explanation inside `<think>`.
    #[arg(long)]
    pub thinking: bool,
    /// Conversations: only the last assistant turn is a target.
    #[arg(long)]
    pub last_turn_only: bool,
    /// A chat template for conversations and prompt–completion pairs instead of the model's.
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Skip (and count) malformed records instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Data files: MedQA/MedMCQA/generic JSON Lines, PubMedQA JSON, MMLU CSV, conversations,
    /// prompt–completion pairs, reasoning-trace tables (with `--fields`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// medqa, medmcqa, pubmedqa, mmlu, jsonl, chat, prompt-completion or trace for every file;
    /// detected per file when left out.
    #[arg(long)]
    pub format: Option<Format>,
    /// The columns of a reasoning-trace table, e.g.
    /// `question=Question,reasoning=Complex_CoT,answer=Response`.
    #[arg(long)]
    pub fields: Option<String>,
    /// A model folder whose tokenizer and chat template measure the token lengths of the
    /// training pairs (prompt + target, default system prompt).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Render the training pairs with thinking on (the explanation inside `<think>`).
    #[arg(long)]
    pub thinking: bool,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Check(args) => check(args),
        DataCommand::Dump(args) => dump(args),
    }
}

/// `--fields` parsed.
fn parse_fields(fields: Option<&str>) -> Result<Option<TraceFields>> {
    fields
        .map(str::parse::<TraceFields>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--fields: {e}"))
}

fn dump(args: DumpArgs) -> Result<()> {
    let dir = medtune_model::checkpoint::resolve_model_dir(&args.model)?;
    let tokenizer = Tokenizer::from_dir(&dir)
        .with_context(|| format!("loading the tokenizer in {}", dir.display()))?;
    let fields = parse_fields(args.fields.as_deref())?;
    let set = build_examples(
        &args.files,
        args.format,
        &tokenizer,
        &ExampleOptions {
            max_length: args.max_length,
            thinking: args.thinking,
            system_prompt: args.system_prompt.clone(),
            skip_bad: args.skip_bad,
            fields,
            turns: if args.last_turn_only {
                AssistantTurns::Last
            } else {
                AssistantTurns::All
            },
            chat_template: args.chat_template.clone(),
            keep_order: true,
            ..ExampleOptions::default()
        },
    )?;
    let mut text = String::new();
    for ex in &set.train {
        let line = serde_json::json!({"input_ids": ex.ids, "labels": ex.labels()});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    // Written beside the destination, then renamed over it: never a half-written file.
    let tmp = args.out.with_extension("jsonl.partial");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("{}", set.summary());
    eprintln!(
        "wrote {} examples to {}",
        set.train.len(),
        args.out.display()
    );
    Ok(())
}

fn check(args: CheckArgs) -> Result<()> {
    let tokenizer = args
        .model
        .as_ref()
        .map(|dir| {
            Tokenizer::from_dir(dir)
                .with_context(|| format!("loading the tokenizer in {}", dir.display()))
        })
        .transpose()?;
    let fields = parse_fields(args.fields.as_deref())?;
    let report = check_files_with(
        &args.files,
        args.format,
        fields.as_ref(),
        tokenizer.as_ref(),
        args.thinking,
    );
    print!("{report}");
    if report.has_problems() {
        bail!(
            "{} problem(s) in the data, listed above",
            report.problems.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(files: Vec<PathBuf>) -> CheckArgs {
        CheckArgs {
            files,
            format: None,
            fields: None,
            model: None,
            thinking: false,
        }
    }

    #[test]
    fn check_fails_on_bad_data_only() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jsonl");
        std::fs::write(
            &good,
            r#"{"question": "Which organ makes insulin?", "options": ["Liver", "Pancreas"], "answer": "B"}"#,
        )
        .unwrap();
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(
            &bad,
            r#"{"question": "Which organ makes insulin?", "options": ["Liver", "Pancreas"], "answer": "C"}"#,
        )
        .unwrap();
        let tok = dir.path().join("tok");
        medtune_text::builtin_tokenizer::write_builtin_tokenizer(&tok).unwrap();
        let mut with_model = args(vec![good.clone()]);
        with_model.model = Some(tok);
        run(DataCommand::Check(with_model)).unwrap();
        let err = run(DataCommand::Check(args(vec![good, bad]))).unwrap_err();
        assert_eq!(err.to_string(), "1 problem(s) in the data, listed above");
    }

    #[test]
    fn parses_arguments() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            data: DataCommand,
        }
        let cli = Cli::try_parse_from([
            "x",
            "check",
            "a.jsonl",
            "b.csv",
            "--format",
            "mmlu",
            "--model",
            "m",
            "--thinking",
        ])
        .unwrap();
        let DataCommand::Check(a) = cli.data else {
            panic!("a check command")
        };
        assert_eq!(a.files, [PathBuf::from("a.jsonl"), PathBuf::from("b.csv")]);
        assert_eq!(a.format, Some(Format::Mmlu));
        assert_eq!(a.model, Some(PathBuf::from("m")));
        assert!(a.thinking);
        assert!(Cli::try_parse_from(["x", "check", "a", "--format", "nope"]).is_err());
        assert!(Cli::try_parse_from(["x", "check"]).is_err());
    }
}
