//! Aggregates scored items into the numbers a report shows: accuracy with its Wilson interval,
//! unparsed answers, per-subject and per-file accuracy, the answer-letter distribution against
//! the truth, calibration, and paired comparisons between systems.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evaluate::ItemResult;
use crate::stats::{CalibrationBin, Interval, Z95, calibration, mcnemar_exact, wilson};

/// Which answer of an item a summary is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The most likely option letter.
    Loglik,
    /// The option text with the highest log-likelihood per byte (lm-eval acc_norm).
    LoglikNorm,
    /// The answer extracted from greedy generation.
    Generate,
}

impl Scoring {
    pub fn label(self) -> &'static str {
        match self {
            Scoring::Loglik => "loglik (letter)",
            Scoring::LoglikNorm => "loglik acc_norm (option text)",
            Scoring::Generate => "generate",
        }
    }

    /// The item's prediction under this scoring: `None` when the item was not scored this way,
    /// `Some(None)` when it was but no answer came out (unparsed generation).
    pub fn prediction(self, item: &ItemResult) -> Option<Option<char>> {
        match self {
            Scoring::Loglik => item.loglik.as_ref().map(|l| Some(l.prediction)),
            Scoring::LoglikNorm => item
                .loglik
                .as_ref()
                .and_then(|l| l.norm_prediction)
                .map(Some),
            Scoring::Generate => item.generate.as_ref().map(|g| g.prediction),
        }
    }
}

/// Accuracy of one group of items.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupAccuracy {
    pub name: String,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub wilson95: Interval,
}

impl GroupAccuracy {
    fn new(name: String, n: usize, correct: usize) -> Self {
        Self {
            name,
            n,
            correct,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            wilson95: wilson(correct, n, Z95),
        }
    }
}

/// Everything a report says about one system under one scoring.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoringSummary {
    pub scoring: Scoring,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub wilson95: Interval,
    /// Generation only: answers that could not be extracted (counted wrong).
    pub unparsed: usize,
    pub per_subject: Vec<GroupAccuracy>,
    pub per_file: Vec<GroupAccuracy>,
    /// How often each letter was predicted (`unparsed` not included) and how often it is right.
    pub predicted_letters: BTreeMap<char, usize>,
    pub true_letters: BTreeMap<char, usize>,
    /// Loglik only: expected calibration error over 10 bins of the letter confidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reliability: Option<Vec<CalibrationBin>>,
}

/// Summarises `items` under `scoring`; `None` when no item was scored that way.
pub fn summarise(items: &[ItemResult], scoring: Scoring) -> Option<ScoringSummary> {
    let scored: Vec<(&ItemResult, Option<char>)> = items
        .iter()
        .filter_map(|i| scoring.prediction(i).map(|p| (i, p)))
        .collect();
    if scored.is_empty() {
        return None;
    }
    let correct = scored.iter().filter(|(i, p)| *p == Some(i.truth)).count();
    let n = scored.len();
    let group = |key: &dyn Fn(&ItemResult) -> String| -> Vec<GroupAccuracy> {
        let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (i, p) in &scored {
            let e = by.entry(key(i)).or_default();
            e.0 += 1;
            e.1 += usize::from(*p == Some(i.truth));
        }
        by.into_iter()
            .map(|(name, (n, c))| GroupAccuracy::new(name, n, c))
            .collect()
    };
    let mut predicted_letters = BTreeMap::new();
    let mut true_letters = BTreeMap::new();
    for (i, p) in &scored {
        *true_letters.entry(i.truth).or_insert(0) += 1;
        if let Some(p) = p {
            *predicted_letters.entry(*p).or_insert(0) += 1;
        }
    }
    let (ece, reliability) = if scoring == Scoring::Loglik {
        let preds: Vec<(f64, bool)> = scored
            .iter()
            .filter_map(|(i, _)| {
                i.loglik
                    .as_ref()
                    .map(|l| (l.confidence, l.prediction == i.truth))
            })
            .collect();
        let (ece, bins) = calibration(&preds, 10);
        (Some(ece), Some(bins))
    } else {
        (None, None)
    };
    let overall = GroupAccuracy::new(String::new(), n, correct);
    Some(ScoringSummary {
        scoring,
        n,
        correct,
        accuracy: overall.accuracy,
        wilson95: overall.wilson95,
        unparsed: scored.iter().filter(|(_, p)| p.is_none()).count(),
        per_subject: group(&|i| i.subject.clone().unwrap_or_else(|| "(none)".into())),
        per_file: group(&|i| i.source.clone()),
        predicted_letters,
        true_letters,
        ece,
        reliability,
    })
}

/// Paired comparison of two systems on the same items under one scoring.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub scoring: Scoring,
    pub n: usize,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    pub both_right: usize,
    pub only_a_right: usize,
    pub only_b_right: usize,
    pub both_wrong: usize,
    /// Exact McNemar p-value on the discordant pairs.
    pub mcnemar_p: f64,
}

/// Compares `a` and `b` on the items both scored (matched by source and line).
pub fn compare(
    (name_a, a): (&str, &[ItemResult]),
    (name_b, b): (&str, &[ItemResult]),
    scoring: Scoring,
) -> Option<Comparison> {
    let key = |i: &ItemResult| (i.source.clone(), i.line);
    let b_by_key: BTreeMap<_, &ItemResult> = b.iter().map(|i| (key(i), i)).collect();
    let (mut rr, mut rw, mut wr, mut ww) = (0, 0, 0, 0);
    for ia in a {
        let Some(ib) = b_by_key.get(&key(ia)) else {
            continue;
        };
        let (Some(pa), Some(pb)) = (scoring.prediction(ia), scoring.prediction(ib)) else {
            continue;
        };
        match (pa == Some(ia.truth), pb == Some(ib.truth)) {
            (true, true) => rr += 1,
            (true, false) => rw += 1,
            (false, true) => wr += 1,
            (false, false) => ww += 1,
        }
    }
    let n = rr + rw + wr + ww;
    if n == 0 {
        return None;
    }
    Some(Comparison {
        a: name_a.to_owned(),
        b: name_b.to_owned(),
        scoring,
        n,
        accuracy_a: (rr + rw) as f64 / n as f64,
        accuracy_b: (rr + wr) as f64 / n as f64,
        both_right: rr,
        only_a_right: rw,
        only_b_right: wr,
        both_wrong: ww,
        mcnemar_p: mcnemar_exact(rw, wr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{GenerateResult, LoglikResult};

    fn item(
        line: usize,
        truth: char,
        loglik: char,
        confidence: f64,
        generated: Option<char>,
    ) -> ItemResult {
        ItemResult {
            id: format!("q{line}"),
            source: "f.jsonl".into(),
            line,
            subject: Some(
                if line.is_multiple_of(2) {
                    "even"
                } else {
                    "odd"
                }
                .into(),
            ),
            truth,
            letters: vec!['A', 'B', 'C', 'D'],
            prompt_tokens: 10,
            loglik: Some(LoglikResult {
                prediction: loglik,
                confidence,
                probabilities: vec![],
                letter_mass: 0.5,
                norm_prediction: None,
                logprob_per_byte: None,
            }),
            generate: Some(GenerateResult {
                prediction: generated,
                method: None,
                raw_output: String::new(),
                new_tokens: 1,
            }),
        }
    }

    #[test]
    fn accuracy_unparsed_and_groups() {
        let items = vec![
            item(1, 'A', 'A', 0.9, Some('A')),
            item(2, 'B', 'A', 0.6, None),
            item(3, 'C', 'C', 0.7, Some('D')),
            item(4, 'D', 'D', 0.8, Some('D')),
        ];
        let s = summarise(&items, Scoring::Loglik).unwrap();
        assert_eq!((s.n, s.correct, s.unparsed), (4, 3, 0));
        assert_eq!(s.predicted_letters[&'A'], 2);
        assert!(s.ece.is_some());
        let odd = s.per_subject.iter().find(|g| g.name == "odd").unwrap();
        assert_eq!((odd.n, odd.correct), (2, 2));
        let g = summarise(&items, Scoring::Generate).unwrap();
        assert_eq!((g.n, g.correct, g.unparsed), (4, 2, 1));
        assert!(g.ece.is_none());
        assert!(summarise(&items, Scoring::LoglikNorm).is_none());
    }

    #[test]
    fn paired_comparison_counts_discordant_pairs() {
        let a = vec![
            item(1, 'A', 'A', 0.9, None),
            item(2, 'B', 'A', 0.9, None),
            item(3, 'C', 'C', 0.9, None),
        ];
        let b = vec![
            item(1, 'A', 'B', 0.9, None),
            item(2, 'B', 'B', 0.9, None),
            item(3, 'C', 'C', 0.9, None),
        ];
        let c = compare(("base", &a), ("tuned", &b), Scoring::Loglik).unwrap();
        assert_eq!(
            (c.both_right, c.only_a_right, c.only_b_right, c.both_wrong),
            (1, 1, 1, 0)
        );
        assert_eq!(c.mcnemar_p, 1.0);
    }
}
