//! The report folder: `summary.json`, `items.jsonl`, `report.md`, `report.html` and PNG plots.
//! Every file is written to a temporary name and renamed, so an interrupted run never leaves a
//! half-written report where a whole one was.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::evaluate::{ItemResult, Mode};
use crate::plots::{plot_reliability, plot_subjects};
use crate::summary::{Comparison, Scoring, ScoringSummary, compare, summarise};

/// One data file of the run.
#[derive(Clone, Debug, Serialize)]
pub struct DataFile {
    pub path: String,
    pub sha256: String,
    pub format: String,
    /// Valid records in the file (PubMedQA: in its official test set).
    pub records: usize,
    /// Of those, how many the run selected.
    pub selected: usize,
}

/// How prompts were made, enough to rebuild them.
#[derive(Clone, Debug, Serialize)]
pub struct PromptInfo {
    pub chat_template_sha256: String,
    pub system_prompt: Option<String>,
    pub thinking: bool,
    pub shots: usize,
    pub shots_from: Option<String>,
    /// The text scored options continue (`Answer:`).
    pub answer_prefix: String,
    /// The first item's full prompt as rendered.
    pub example: String,
}

/// Everything about a run that is not a result.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub medtune_version: String,
    pub model: String,
    pub device: String,
    pub dtype: String,
    pub data: Vec<DataFile>,
    pub prompt: PromptInfo,
    pub mode: Mode,
    pub acc_norm: bool,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub limit: Option<usize>,
    /// Questions selected for the run.
    pub n: usize,
    /// False when the run was interrupted: the report covers the items scored so far.
    pub complete: bool,
    pub elapsed_s: f64,
}

/// A model (base or base + adapter) and what it answered.
#[derive(Clone, Debug)]
pub struct SystemResult {
    pub name: String,
    pub adapter: Option<String>,
    pub items: Vec<ItemResult>,
}

impl SystemResult {
    /// Summaries under each scoring the items carry.
    pub fn summaries(&self) -> Vec<ScoringSummary> {
        [Scoring::Loglik, Scoring::LoglikNorm, Scoring::Generate]
            .into_iter()
            .filter_map(|s| summarise(&self.items, s))
            .collect()
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Writes `path` via a temporary file in the same folder and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// A name safe for file names.
fn file_slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

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

/// Every pair of systems, under every scoring both have.
pub fn comparisons(systems: &[SystemResult]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, a) in systems.iter().enumerate() {
        for b in &systems[i + 1..] {
            for scoring in [Scoring::Loglik, Scoring::LoglikNorm, Scoring::Generate] {
                if let Some(c) = compare((&a.name, &a.items), (&b.name, &b.items), scoring) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The human-readable report as sections of paragraphs, tables and images, rendered both as
/// Markdown and as a self-contained HTML page.
struct Document {
    title: String,
    blocks: Vec<Block>,
}

enum Block {
    Heading(String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Image(String, String),
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Document {
    fn build(
        info: &RunInfo,
        systems: &[SystemResult],
        comparisons: &[Comparison],
        plots: &[(String, Vec<PathBuf>)],
        out: &Path,
    ) -> Self {
        let mut b = Vec::new();
        let status = if info.complete {
            "complete".to_owned()
        } else {
            "INTERRUPTED: partial results for the items scored before the stop".to_owned()
        };
        b.push(Block::Para(format!(
            "Model `{}` on {} ({}), {} question(s) selected (seed {}{}), mode {:?}, run {status}, {:.1} s. \
             Intervals are Wilson 95 %. An unparsed generated answer counts as wrong.",
            info.model,
            info.device,
            info.dtype,
            info.n,
            info.seed,
            info.limit.map(|l| format!(", limit {l}")).unwrap_or_default(),
            info.mode,
            info.elapsed_s
        )));
        b.push(Block::Heading("Data".into()));
        b.push(Block::Table(
            vec![
                "file".into(),
                "format".into(),
                "records".into(),
                "selected".into(),
                "sha256".into(),
            ],
            info.data
                .iter()
                .map(|d| {
                    vec![
                        d.path.clone(),
                        d.format.clone(),
                        d.records.to_string(),
                        d.selected.to_string(),
                        d.sha256[..16.min(d.sha256.len())].to_owned() + "…",
                    ]
                })
                .collect(),
        ));
        b.push(Block::Heading("Accuracy".into()));
        let mut rows = Vec::new();
        for s in systems {
            for m in s.summaries() {
                rows.push(vec![
                    s.name.clone(),
                    m.scoring.label().to_owned(),
                    m.n.to_string(),
                    pct(m.accuracy),
                    format!("{} – {}", pct(m.wilson95.low), pct(m.wilson95.high)),
                    if m.scoring == Scoring::Generate {
                        m.unparsed.to_string()
                    } else {
                        "–".into()
                    },
                    m.ece
                        .map(|e| format!("{e:.3}"))
                        .unwrap_or_else(|| "–".into()),
                ]);
            }
        }
        b.push(Block::Table(
            [
                "system", "scoring", "n", "accuracy", "95% CI", "unparsed", "ECE",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
        if !comparisons.is_empty() {
            b.push(Block::Heading("Paired comparison (exact McNemar)".into()));
            b.push(Block::Table(
                [
                    "A",
                    "B",
                    "scoring",
                    "n",
                    "acc A",
                    "acc B",
                    "only A right",
                    "only B right",
                    "p-value",
                ]
                .map(String::from)
                .to_vec(),
                comparisons
                    .iter()
                    .map(|c| {
                        vec![
                            c.a.clone(),
                            c.b.clone(),
                            c.scoring.label().to_owned(),
                            c.n.to_string(),
                            pct(c.accuracy_a),
                            pct(c.accuracy_b),
                            c.only_a_right.to_string(),
                            c.only_b_right.to_string(),
                            format!("{:.4}", c.mcnemar_p),
                        ]
                    })
                    .collect(),
            ));
        }
        for s in systems {
            let Some(primary) = s.summaries().into_iter().next() else {
                continue;
            };
            b.push(Block::Heading(format!(
                "{}: {}",
                s.name,
                primary.scoring.label()
            )));
            if let Some(a) = &s.adapter {
                b.push(Block::Para(format!("Adapter `{a}`.")));
            }
            b.push(Block::Table(
                ["subject", "n", "accuracy", "95% CI"]
                    .map(String::from)
                    .to_vec(),
                primary
                    .per_subject
                    .iter()
                    .map(|g| {
                        vec![
                            g.name.clone(),
                            g.n.to_string(),
                            pct(g.accuracy),
                            format!("{} – {}", pct(g.wilson95.low), pct(g.wilson95.high)),
                        ]
                    })
                    .collect(),
            ));
            let letters: Vec<char> = primary
                .true_letters
                .keys()
                .chain(primary.predicted_letters.keys())
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            b.push(Block::Para(
                "Answer letters: how often each was predicted, against how often it is the truth \
                 (a model that favours one letter shows it here)."
                    .into(),
            ));
            b.push(Block::Table(
                ["letter", "predicted", "truth"].map(String::from).to_vec(),
                letters
                    .iter()
                    .map(|l| {
                        vec![
                            l.to_string(),
                            primary
                                .predicted_letters
                                .get(l)
                                .copied()
                                .unwrap_or(0)
                                .to_string(),
                            primary
                                .true_letters
                                .get(l)
                                .copied()
                                .unwrap_or(0)
                                .to_string(),
                        ]
                    })
                    .collect(),
            ));
            for (name, files) in plots {
                if name == &s.name {
                    for f in files {
                        let rel = f.strip_prefix(out).unwrap_or(f).display().to_string();
                        b.push(Block::Image(rel.clone(), rel));
                    }
                }
            }
        }
        b.push(Block::Heading("Prompt".into()));
        b.push(Block::Para(format!(
            "Chat template sha256 `{}`, system prompt {:?}, thinking {}, {} shot(s){}. Options are \
             scored as the token after `{}`. The first item's prompt:",
            info.prompt.chat_template_sha256,
            info.prompt.system_prompt,
            info.prompt.thinking,
            info.prompt.shots,
            info.prompt
                .shots_from
                .as_ref()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default(),
            info.prompt.answer_prefix
        )));
        b.push(Block::Para(format!("```\n{}\n```", info.prompt.example)));
        Document {
            title: "medtune eval".into(),
            blocks: b,
        }
    }

    fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(s, "## {h}\n");
                }
                Block::Para(p) => {
                    let _ = writeln!(s, "{p}\n");
                }
                Block::Table(head, rows) => {
                    let cell = |c: &String| c.replace('|', "\\|");
                    let _ = writeln!(
                        s,
                        "| {} |",
                        head.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    );
                    let _ = writeln!(s, "|{}|", vec!["---"; head.len()].join("|"));
                    for r in rows {
                        let _ = writeln!(
                            s,
                            "| {} |",
                            r.iter().map(cell).collect::<Vec<_>>().join(" | ")
                        );
                    }
                    s.push('\n');
                }
                Block::Image(alt, src) => {
                    let _ = writeln!(s, "![{alt}]({src})\n");
                }
            }
        }
        s
    }

    fn html(&self) -> String {
        let mut s = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
             table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
             th{{background:#f3f3f3}}pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}img{{max-width:100%}}</style>\
             </head><body><h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(s, "<h2>{}</h2>", escape(h));
                }
                Block::Para(p) => match p
                    .strip_prefix("```\n")
                    .and_then(|p| p.strip_suffix("\n```"))
                {
                    Some(code) => {
                        let _ = writeln!(s, "<pre>{}</pre>", escape(code));
                    }
                    None => {
                        let _ = writeln!(s, "<p>{}</p>", inline_code(&escape(p)));
                    }
                },
                Block::Table(head, rows) => {
                    s.push_str("<table><tr>");
                    for h in head {
                        let _ = write!(s, "<th>{}</th>", escape(h));
                    }
                    s.push_str("</tr>\n");
                    for r in rows {
                        s.push_str("<tr>");
                        for c in r {
                            let _ = write!(s, "<td>{}</td>", escape(c));
                        }
                        s.push_str("</tr>\n");
                    }
                    s.push_str("</table>\n");
                }
                Block::Image(alt, src) => {
                    let _ = writeln!(
                        s,
                        "<p><img src=\"{}\" alt=\"{}\"></p>",
                        escape(src),
                        escape(alt)
                    );
                }
            }
        }
        s.push_str("</body></html>\n");
        s
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `code` spans in an escaped paragraph.
fn inline_code(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}
