//! Dataset operations: seeded shuffling, limits, validation splits, question normalisation,
//! duplicates and train/eval contamination.
//!
//! # Reproducible shuffling
//!
//! The random numbers come from SplitMix64 (Steele, Lea & Flood 2014), fully specified here so
//! that any implementation reproduces the same order from the same seed:
//!
//! ```text
//! state += 0x9E3779B97F4A7C15            (wrapping)
//! z = state
//! z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 (wrapping)
//! z = (z ^ (z >> 27)) * 0x94D049BB133111EB (wrapping)
//! next = z ^ (z >> 31)
//! ```
//!
//! starting from `state = seed`. A uniform index below `n` is `(next * n) >> 64` in 128-bit
//! arithmetic. [`shuffle`] is the Fisher–Yates shuffle from the end: for `i` from `len - 1` down
//! to `1`, swap items `i` and `below(i + 1)`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{DataError, Result};
use crate::record::McqRecord;

/// The SplitMix64 generator (see the module docs).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`): `(next * n) >> 64`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Shuffles `items` in place, reproducibly from `seed` (see the module docs).
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

/// Picks records for a run: shuffles with `seed` (when given) and then keeps the first `limit`
/// (when given). The shuffle comes first, so a limit takes a random sample, not the head of the
/// file.
pub fn select(
    mut records: Vec<McqRecord>,
    seed: Option<u64>,
    limit: Option<usize>,
) -> Vec<McqRecord> {
    if let Some(seed) = seed {
        shuffle(&mut records, seed);
    }
    if let Some(n) = limit {
        records.truncate(n);
    }
    records
}

/// Splits off a validation set: `k = round(len × fraction)` records, those at the first `k`
/// positions of the permutation [`shuffle`] makes with `seed`. Returns `(train, validation)`,
/// both in the input order. `fraction` must be in `[0, 1]`.
///
/// Near-duplicate questions may land on both sides; run [`remove_contaminated`] on
/// `(train, &validation)` to drop them from the training side.
pub fn split_validation(
    records: Vec<McqRecord>,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<McqRecord>, Vec<McqRecord>)> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::Invalid(format!(
            "validation fraction {fraction} is not in [0, 1]"
        )));
    }
    let n = records.len();
    let k = ((n as f64) * fraction).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    let valid: HashSet<usize> = order[..k.min(n)].iter().copied().collect();
    let mut train = Vec::with_capacity(n - valid.len());
    let mut validation = Vec::with_capacity(valid.len());
    for (i, r) in records.into_iter().enumerate() {
        if valid.contains(&i) {
            validation.push(r);
        } else {
            train.push(r);
        }
    }
    Ok((train, validation))
}

/// A question (or option) text for comparisons: lowercase, every character that is not a letter,
/// a digit or whitespace replaced by a space, runs of whitespace collapsed to one space, trimmed.
/// `"Which of the following is TRUE?"` → `"which of the following is true"`.
pub fn normalize_question(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        } else {
            space = true;
        }
    }
    out
}

/// The comparison key of a record: normalised question and normalised option texts.
struct Key {
    question: String,
    options: HashSet<String>,
}

impl Key {
    fn of(r: &McqRecord) -> Self {
        Key {
            question: normalize_question(&r.question),
            options: r
                .options
                .iter()
                .map(|(_, t)| normalize_question(t))
                .collect(),
        }
    }

    /// See [`same_question`].
    fn matches(&self, other: &Key) -> bool {
        if self.question != other.question {
            return false;
        }
        let shared = self.options.intersection(&other.options).count();
        let smaller = self.options.len().min(other.options.len());
        shared >= 2.max(smaller.div_ceil(2))
    }
}

/// Whether two records ask the same question: their normalised questions (and contexts) are
/// equal and they share at least half of the smaller set of normalised option texts (at least
/// two). Re-lettered or extended option lists (MedQA's 4- and 5-option files) match; a generic
/// stem such as "Which of the following is true?" with other options does not.
pub fn same_question(a: &McqRecord, b: &McqRecord) -> bool {
    a.context.as_deref().map(normalize_question) == b.context.as_deref().map(normalize_question)
        && Key::of(a).matches(&Key::of(b))
}

/// Drops from `train` every record that asks the same question ([`same_question`]) as a record
/// of `eval`. Returns the kept records (in order) and the ids of the dropped ones.
pub fn remove_contaminated(
    train: Vec<McqRecord>,
    eval: &[McqRecord],
) -> (Vec<McqRecord>, Vec<String>) {
    let mut by_question: HashMap<String, Vec<&McqRecord>> = HashMap::new();
    for r in eval {
        by_question
            .entry(normalize_question(&r.question))
            .or_default()
            .push(r);
    }
    let mut kept = Vec::with_capacity(train.len());
    let mut dropped = Vec::new();
    for r in train {
        let hit = by_question
            .get(&normalize_question(&r.question))
            .is_some_and(|cands| cands.iter().any(|e| same_question(&r, e)));
        if hit {
            dropped.push(r.id);
        } else {
            kept.push(r);
        }
    }
    (kept, dropped)
}

/// Records of one set that ask the same question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// Indices into the checked slice, ascending; at least two.
    pub members: Vec<usize>,
    /// Whether the members disagree: one's correct answer is an option of another but not its
    /// correct answer (option texts compared normalised).
    pub conflicting: bool,
}

/// `a`'s correct answer is one of `b`'s options but not `b`'s correct answer (texts compared
/// normalised, so a respelt option is not a conflict).
fn answers_conflict(a: &McqRecord, b: &McqRecord) -> bool {
    let answer = normalize_question(a.answer_text());
    answer != normalize_question(b.answer_text())
        && b.options
            .iter()
            .any(|(_, t)| normalize_question(t) == answer)
}

/// Groups of records that ask the same question ([`same_question`], joined transitively),
/// ordered by their first member.
pub fn find_duplicates(records: &[McqRecord]) -> Vec<DuplicateGroup> {
    let mut buckets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        buckets
            .entry(normalize_question(&r.question))
            .or_default()
            .push(i);
    }
    let mut groups = Vec::new();
    for idx in buckets.values().filter(|v| v.len() > 1) {
        // Union-find over the bucket.
        let mut parent: Vec<usize> = (0..idx.len()).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for a in 0..idx.len() {
            for b in a + 1..idx.len() {
                if same_question(&records[idx[a]], &records[idx[b]]) {
                    let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        let mut sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (a, &record) in idx.iter().enumerate() {
            let r = root(&mut parent, a);
            sets.entry(r).or_default().push(record);
        }
        for members in sets.into_values().filter(|m| m.len() > 1) {
            let conflicting = members.iter().any(|&a| {
                members
                    .iter()
                    .any(|&b| answers_conflict(&records[a], &records[b]))
            });
            groups.push(DuplicateGroup {
                conflicting,
                members,
            });
        }
    }
    groups.sort_by_key(|g| g.members[0]);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;

    fn rec(id: &str, question: &str, options: &[&str], answer: char) -> McqRecord {
        McqRecord {
            id: id.into(),
            question: question.into(),
            options: ('A'..='Z')
                .zip(options.iter().map(|s| (*s).to_owned()))
                .collect(),
            answer,
            explanation: None,
            subject: None,
            context: None,
            origin: Origin {
                file: "t.jsonl".into(),
                line: 1,
            },
        }
    }

    fn numbered(n: usize) -> Vec<McqRecord> {
        (0..n)
            .map(|i| rec(&i.to_string(), &format!("Question {i}?"), &["x", "y"], 'A'))
            .collect()
    }

    fn ids(r: &[McqRecord]) -> Vec<&str> {
        r.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn splitmix64_reference_values() {
        // The well-known first outputs of splitmix64.c (Vigna) for seed 1234567.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        assert_eq!(rng.next_u64(), 9817491932198370423);
    }

    #[test]
    fn shuffle_is_deterministic() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        shuffle(&mut a, 42);
        shuffle(&mut b, 42);
        assert_eq!(a, b);
        let mut c: Vec<u32> = (0..50).collect();
        shuffle(&mut c, 43);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, sorted);
        // Pinned, so that a change of algorithm is noticed.
        let mut small: Vec<u32> = (0..8).collect();
        shuffle(&mut small, 7);
        assert_eq!(small, PINNED_SHUFFLE_SEED7);
    }

    // Also computed with an independent Python transcription of the module docs.
    const PINNED_SHUFFLE_SEED7: [u32; 8] = [7, 4, 6, 1, 2, 5, 0, 3];

    #[test]
    fn limit_applies_after_the_shuffle() {
        let all = numbered(20);
        let head = select(all.clone(), None, Some(5));
        assert_eq!(ids(&head), ["0", "1", "2", "3", "4"]);
        let sample = select(all.clone(), Some(9), Some(5));
        let full = select(all.clone(), Some(9), None);
        assert_eq!(ids(&sample), ids(&full[..5]));
        assert_ne!(ids(&sample), ids(&head));
        assert_eq!(select(all, Some(9), Some(100)).len(), 20);
    }

    #[test]
    fn validation_split() {
        let all = numbered(10);
        let (train, valid) = split_validation(all.clone(), 0.3, 5).unwrap();
        assert_eq!((train.len(), valid.len()), (7, 3));
        let (train2, valid2) = split_validation(all.clone(), 0.3, 5).unwrap();
        assert_eq!((ids(&train), ids(&valid)), (ids(&train2), ids(&valid2)));
        // Input order is kept on both sides, and together they are the input.
        let mut both: Vec<usize> = ids(&train)
            .iter()
            .chain(ids(&valid).iter())
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(
            ids(&valid)
                .windows(2)
                .all(|w| w[0].parse::<usize>().unwrap() < w[1].parse().unwrap())
        );
        both.sort();
        assert_eq!(both, (0..10).collect::<Vec<_>>());
        assert_eq!(split_validation(all.clone(), 0.0, 5).unwrap().1.len(), 0);
        assert_eq!(split_validation(all.clone(), 1.0, 5).unwrap().0.len(), 0);
        assert!(split_validation(all, 1.5, 5).is_err());
    }

    #[test]
    fn normalises_questions() {
        assert_eq!(
            normalize_question("  Which of the following is TRUE?\n(Select one)  "),
            "which of the following is true select one"
        );
        assert_eq!(
            normalize_question("Beta-blocker, 5mg/day"),
            "beta blocker 5mg day"
        );
        assert_eq!(normalize_question("?!"), "");
    }

    #[test]
    fn contamination() {
        let eval = vec![
            rec(
                "e1",
                "A 30-year-old man has fever. Next step?",
                &["Rest", "Fluids", "Antibiotics", "Surgery"],
                'C',
            ),
            rec(
                "e2",
                "Which of the following is true?",
                &["Iron is a metal", "Water boils at 10 C"],
                'A',
            ),
        ];
        let train = vec![
            // Same question, re-lettered with an extra distractor: contaminated.
            rec(
                "t1",
                "a 30 year old man has fever next step",
                &["Observation", "Antibiotics", "Surgery", "Rest", "Fluids"],
                'B',
            ),
            // Generic stem with other options: kept.
            rec(
                "t2",
                "Which of the following is TRUE?",
                &["Insulin lowers glucose", "The liver is a muscle"],
                'A',
            ),
            // Other question: kept.
            rec(
                "t3",
                "Which vitamin prevents scurvy?",
                &["Vitamin C", "Vitamin D"],
                'A',
            ),
            // Same generic stem and options in another order: contaminated.
            rec(
                "t4",
                "which of the following is true",
                &["Water boils at 10 C", "Iron is a metal"],
                'B',
            ),
        ];
        let (kept, dropped) = remove_contaminated(train, &eval);
        assert_eq!(ids(&kept), ["t2", "t3"]);
        assert_eq!(dropped, ["t1", "t4"]);
    }

    #[test]
    fn duplicates_within_a_set() {
        let set = vec![
            rec(
                "a",
                "What causes scurvy?",
                &["Lack of vitamin C", "Lack of iron", "Too much sun"],
                'A',
            ),
            rec(
                "b",
                "Which organ makes insulin?",
                &["Pancreas", "Liver"],
                'A',
            ),
            rec(
                "c",
                "what causes scurvy",
                &["Too much sun", "Lack of vitamin C", "Lack of iron"],
                'B',
            ),
            rec(
                "d",
                "What causes scurvy?",
                &["Lack of vitamin C", "Lack of iron", "Too much sun"],
                'B',
            ),
            rec("e", "Which organ makes insulin?", &["Kidney", "Heart"], 'A'),
        ];
        let groups = find_duplicates(&set);
        assert_eq!(
            groups,
            vec![DuplicateGroup {
                members: vec![0, 2, 3],
                conflicting: true,
            }]
        );
        assert!(find_duplicates(&set[..3]).iter().all(|g| !g.conflicting));
    }
}
