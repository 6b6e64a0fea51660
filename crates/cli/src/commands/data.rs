//! `medtune data`: inspect data sets.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use medtune_data::{Format, check_files};
use medtune_text::Tokenizer;

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Read data files and report record counts, answer letters, subjects, explanations, token
    /// lengths and duplicate questions, listing every bad record as `file:line: field: problem`.
    /// Exits non-zero when there is any problem.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Data files: MedQA/MedMCQA/generic JSON Lines, PubMedQA JSON, MMLU CSV.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// medqa, medmcqa, pubmedqa, mmlu or jsonl for every file; detected per file when left out.
    #[arg(long)]
    pub format: Option<Format>,
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
    }
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
    let report = check_files(&args.files, args.format, tokenizer.as_ref(), args.thinking);
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
        let DataCommand::Check(a) = cli.data;
        assert_eq!(a.files, [PathBuf::from("a.jsonl"), PathBuf::from("b.csv")]);
        assert_eq!(a.format, Some(Format::Mmlu));
        assert_eq!(a.model, Some(PathBuf::from("m")));
        assert!(a.thinking);
        assert!(Cli::try_parse_from(["x", "check", "a", "--format", "nope"]).is_err());
        assert!(Cli::try_parse_from(["x", "check"]).is_err());
    }
}
