//! The human-readable report as a format-neutral document: a title and a list of headings,
//! paragraphs, tables and images built from the run and its results.

use std::path::{Path, PathBuf};

use crate::summary::{Comparison, Scoring};

use super::model::{RunInfo, SystemResult};

/// The human-readable report as sections of paragraphs, tables and images, rendered both as
/// Markdown and as a self-contained HTML page.
pub(super) struct Document {
    pub(super) title: String,
    pub(super) blocks: Vec<Block>,
}

pub(super) enum Block {
    Heading(String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    Image(String, String),
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Document {
    pub(super) fn build(
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
}
