//! What a report is about: the run ([`RunInfo`], its data files and prompts), each system's
//! answers ([`SystemResult`]) and the paired comparisons between systems.

use serde::Serialize;

use crate::evaluate::{ItemResult, Mode};
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
