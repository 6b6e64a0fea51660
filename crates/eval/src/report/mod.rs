//! The report folder: `summary.json`, `items.jsonl`, `report.md`, `report.html` and PNG plots.
//! Every file is written to a temporary name and renamed, so an interrupted run never leaves a
//! half-written report where a whole one was.
//!
//! `model`: what a report is about (the run, the systems and their comparisons); `files`: hashes
//! and atomic writes; `document`: the human-readable report as blocks, rendered by `markdown` and
//! `html`.

mod document;
mod files;
mod html;
mod markdown;
mod model;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::plots::{plot_reliability, plot_subjects};

use document::Document;
use files::{file_slug, write_atomic};
pub use files::{sha256_file, sha256_hex};
pub use model::{DataFile, PromptInfo, RunInfo, SystemResult, comparisons};

/// Writes the whole report into `out` and returns `summary.json`'s content.
pub fn write_report(out: &Path, info: &RunInfo, systems: &[SystemResult]) -> Result<Value> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let comparisons = comparisons(systems);
    let mut system_json = Vec::new();
    let mut plots: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for s in systems {
        let summaries = s.summaries();
        let mut by_scoring = serde_json::Map::new();
        for summary in &summaries {
            by_scoring.insert(
                serde_json::to_value(summary.scoring)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                serde_json::to_value(summary)?,
            );
        }
        system_json.push(json!({
            "name": s.name,
            "adapter": s.adapter,
            "n": s.items.len(),
            "results": by_scoring,
        }));
        let mut files = Vec::new();
        if let Some(primary) = summaries.first() {
            let path = out.join(format!("subjects_{}.png", file_slug(&s.name)));
            plot_subjects(
                primary,
                &format!("{}: {}", s.name, primary.scoring.label()),
                &path,
            )?;
            files.push(path);
        }
        if let Some(bins) = summaries.iter().find_map(|x| x.reliability.as_ref()) {
            let path = out.join(format!("reliability_{}.png", file_slug(&s.name)));
            plot_reliability(bins, &s.name, &path)?;
            files.push(path);
        }
        plots.push((s.name.clone(), files));
    }
    let summary = json!({
        "run": info,
        "systems": system_json,
        "comparisons": comparisons,
    });
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let mut lines = String::new();
    for s in systems {
        for item in &s.items {
            let mut v = serde_json::to_value(item)?;
            v.as_object_mut()
                .expect("an item is an object")
                .insert("system".into(), Value::String(s.name.clone()));
            lines.push_str(&serde_json::to_string(&v)?);
            lines.push('\n');
        }
    }
    write_atomic(&out.join("items.jsonl"), lines.as_bytes())?;
    let doc = Document::build(info, systems, &comparisons, &plots, out);
    write_atomic(&out.join("report.md"), doc.markdown().as_bytes())?;
    write_atomic(&out.join("report.html"), doc.html().as_bytes())?;
    Ok(summary)
}
