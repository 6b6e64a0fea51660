//! Dataset operations: seeded shuffling, limits, validation splits, question normalisation,
//! duplicates and train/eval contamination.
//!
//! [`select`] and [`split_validation`] take records of any type; [`remove_contaminated`] takes
//! any records with a question ([`Question`]: [`McqRecord`] and [`TrainingRecord`]).
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
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::conversation::TrainingRecord;
use crate::error::{DataError, Result};
use crate::record::McqRecord;

/// What the dataset operations need of a record: its id and its question.
pub trait Question {
    /// The record's id.
    fn id(&self) -> &str;
    /// The question compared by contamination checks: an MCQ record's question, a conversation's
    /// first user turn, a text pair's prompt.
    fn question_text(&self) -> &str;
    /// The multiple-choice record, when it is one: its options and context then take part in
    /// comparisons ([`asks_same_question`]).
    fn as_mcq(&self) -> Option<&McqRecord> {
        None
    }
}

impl Question for McqRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn question_text(&self) -> &str {
        &self.question
    }
    fn as_mcq(&self) -> Option<&McqRecord> {
        Some(self)
    }
}

impl Question for TrainingRecord {
    fn id(&self) -> &str {
        TrainingRecord::id(self)
    }
    fn question_text(&self) -> &str {
        TrainingRecord::question_text(self)
    }
    fn as_mcq(&self) -> Option<&McqRecord> {
        TrainingRecord::as_mcq(self)
    }
}

impl<T: Question + ?Sized> Question for &T {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn question_text(&self) -> &str {
        (**self).question_text()
    }
    fn as_mcq(&self) -> Option<&McqRecord> {
        (**self).as_mcq()
    }
}

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
pub fn select<T>(mut records: Vec<T>, seed: Option<u64>, limit: Option<usize>) -> Vec<T> {
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
pub fn split_validation<T>(records: Vec<T>, fraction: f64, seed: u64) -> Result<(Vec<T>, Vec<T>)> {
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

/// Whether two records ask the same question:
///
/// - two multiple-choice records: [`same_question`];
/// - a multiple-choice record and another (a conversation, a text pair): the other's
///   [`Question::question_text`], normalised, either equals the question (when the MCQ record has
///   no context) or contains the question, its context and at least half of its normalised
///   option texts (at least two; all of them when fewer than two have a letter or digit), each
///   as whole words — a conversation that quotes the question with its options;
/// - two records that are not multiple-choice: equal normalised question texts (not empty).
pub fn asks_same_question<A: Question + ?Sized, B: Question + ?Sized>(a: &A, b: &B) -> bool {
    match (a.as_mcq(), b.as_mcq()) {
        (Some(x), Some(y)) => same_question(x, y),
        (Some(m), None) => text_asks(m, &normalize_question(b.question_text())),
        (None, Some(m)) => text_asks(m, &normalize_question(a.question_text())),
        (None, None) => {
            let q = normalize_question(a.question_text());
            !q.is_empty() && q == normalize_question(b.question_text())
        }
    }
}

/// Whether the normalised `text` of a record that is not multiple-choice asks `m`'s question
/// (see [`asks_same_question`]).
fn text_asks(m: &McqRecord, text: &str) -> bool {
    let q = normalize_question(&m.question);
    (m.context.is_none() && !q.is_empty() && q == text) || mcq_within(m, &format!(" {text} "))
}

/// Whether `padded` (a normalised text with a space before and after) contains `m`'s question,
/// context and at least half of its option texts (at least two, or all when fewer have letters or
/// digits), each as whole words.
fn mcq_within(m: &McqRecord, padded: &str) -> bool {
    let has = |words: &str| !words.is_empty() && padded.contains(&format!(" {words} "));
    if !has(&normalize_question(&m.question)) {
        return false;
    }
    if let Some(ctx) = &m.context
        && !has(&normalize_question(ctx))
    {
        return false;
    }
    let options: HashSet<String> = m
        .options
        .iter()
        .map(|(_, t)| normalize_question(t))
        .filter(|t| !t.is_empty())
        .collect();
    // Options of symbols only ("↑ ↓") normalise to nothing and cannot be looked for: then the
    // options that can be must all be there.
    let shared = options.iter().filter(|o| has(o)).count();
    shared >= 2.max(options.len().div_ceil(2)).min(options.len())
}

/// How many leading words of a question [`WindowIndex`] keys it by.
const WINDOW_WORDS: usize = 6;

/// Multiple-choice questions keyed by their first words, to find the ones a longer text may
/// contain without comparing it with every question.
struct WindowIndex {
    by_window: HashMap<(usize, u64), Vec<usize>>,
    /// The window lengths in use (shorter for questions of fewer words).
    lengths: Vec<usize>,
}

fn word_hashes(normalized: &str) -> Vec<u64> {
    normalized
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut h = DefaultHasher::new();
            w.hash(&mut h);
            h.finish()
        })
        .collect()
}

fn window_hash(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
    })
}

impl WindowIndex {
    /// `(index, question)` pairs.
    fn new<'q>(questions: impl Iterator<Item = (usize, &'q str)>) -> Self {
        let mut by_window: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
        let mut lengths = Vec::new();
        for (i, q) in questions {
            let words = word_hashes(&normalize_question(q));
            let n = words.len().min(WINDOW_WORDS);
            if n == 0 {
                continue;
            }
            by_window
                .entry((n, window_hash(&words[..n])))
                .or_default()
                .push(i);
            if !lengths.contains(&n) {
                lengths.push(n);
            }
        }
        WindowIndex { by_window, lengths }
    }

    fn is_empty(&self) -> bool {
        self.by_window.is_empty()
    }

    /// The questions whose first words appear somewhere in `normalized`, ascending.
    fn candidates(&self, normalized: &str) -> Vec<usize> {
        let words = word_hashes(normalized);
        let mut out = Vec::new();
        for &n in &self.lengths {
            for w in words.windows(n) {
                if let Some(found) = self.by_window.get(&(n, window_hash(w))) {
                    out.extend_from_slice(found);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Drops from `train` every record that asks the same question ([`asks_same_question`]; for two
/// multiple-choice records [`same_question`]) as a record of `eval`. Returns the kept records
/// (in order) and the ids of the dropped ones.
pub fn remove_contaminated<T: Question, E: Question>(
    train: Vec<T>,
    eval: &[E],
) -> (Vec<T>, Vec<String>) {
    let mut by_question: HashMap<String, Vec<&E>> = HashMap::new();
    for r in eval {
        by_question
            .entry(normalize_question(r.question_text()))
            .or_default()
            .push(r);
    }
    // A conversation or text that quotes a multiple-choice question with its options: eval's
    // multiple-choice questions inside training texts, and training's inside eval texts.
    let eval_mcq: Vec<&McqRecord> = eval.iter().filter_map(Question::as_mcq).collect();
    let eval_index = WindowIndex::new(eval_mcq.iter().map(|m| m.question.as_str()).enumerate());
    let mut quoted_by_eval: HashSet<usize> = HashSet::new();
    if eval.iter().any(|e| e.as_mcq().is_none()) {
        let train_index = WindowIndex::new(
            train
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_mcq().map(|m| (i, m.question.as_str()))),
        );
        if !train_index.is_empty() {
            for e in eval.iter().filter(|e| e.as_mcq().is_none()) {
                let text = normalize_question(e.question_text());
                let padded = format!(" {text} ");
                for i in train_index.candidates(&text) {
                    if train[i].as_mcq().is_some_and(|m| mcq_within(m, &padded)) {
                        quoted_by_eval.insert(i);
                    }
                }
            }
        }
    }
    let mut kept = Vec::with_capacity(train.len());
    let mut dropped = Vec::new();
    for (i, r) in train.into_iter().enumerate() {
        let q = normalize_question(r.question_text());
        let hit = quoted_by_eval.contains(&i)
            || by_question
                .get(&q)
                .is_some_and(|cands| cands.iter().any(|e| asks_same_question(&r, *e)))
            || (r.as_mcq().is_none() && !eval_index.is_empty() && {
                let padded = format!(" {q} ");
                eval_index
                    .candidates(&q)
                    .into_iter()
                    .any(|k| mcq_within(eval_mcq[k], &padded))
            });
        if hit {
            dropped.push(r.id().to_owned());
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

    fn chat(id: &str, user: &str) -> TrainingRecord {
        use crate::conversation::{ChatKind, ChatRecord, ChatTurn, Role};
        TrainingRecord::Chat(ChatRecord {
            id: id.into(),
            turns: vec![
                ChatTurn {
                    role: Role::User,
                    content: user.into(),
                    reasoning: None,
                    tool_calls: None,
                },
                ChatTurn {
                    role: Role::Assistant,
                    content: "An answer.".into(),
                    reasoning: None,
                    tool_calls: None,
                },
            ],
            tools: None,
            kind: ChatKind::Conversation,
            origin: Origin {
                file: "c.jsonl".into(),
                line: 1,
            },
        })
    }

    #[test]
    fn training_records_split_and_select_like_mcq_records() {
        let mcq = numbered(10);
        let training: Vec<TrainingRecord> = mcq.iter().cloned().map(TrainingRecord::Mcq).collect();
        let (train, valid) = split_validation(mcq.clone(), 0.3, 5).unwrap();
        let (ttrain, tvalid) = split_validation(training.clone(), 0.3, 5).unwrap();
        let tids = |r: &[TrainingRecord]| r.iter().map(|r| r.id().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(&train), tids(&ttrain));
        assert_eq!(ids(&valid), tids(&tvalid));
        assert_eq!(
            ids(&select(mcq, Some(3), Some(4))),
            tids(&select(training, Some(3), Some(4)))
        );
    }

    #[test]
    fn contamination_across_record_kinds() {
        let eval = vec![
            TrainingRecord::Mcq(rec(
                "e1",
                "A 60-year-old smoker has haemoptysis and hypercalcaemia. Likely tumour?",
                &[
                    "Small cell carcinoma",
                    "Squamous cell carcinoma",
                    "Adenocarcinoma",
                    "Carcinoid",
                ],
                'B',
            )),
            TrainingRecord::Mcq(rec(
                "e2",
                "Which of the following is true?",
                &["Iron is a metal", "Water boils at 10 C"],
                'A',
            )),
            chat("e3", "Describe the Kussmaul sign."),
        ];
        let train = vec![
            // Quotes e1 with its options: contaminated.
            chat(
                "t1",
                "Question: A 60-year-old smoker has haemoptysis and hypercalcaemia. Likely tumour?\nA) Small cell carcinoma\nB) Squamous cell carcinoma\nC) Adenocarcinoma\nD) Carcinoid",
            ),
            // The stem without the options: kept.
            chat(
                "t2",
                "A 60-year-old smoker has haemoptysis and hypercalcaemia. Likely tumour? Explain.",
            ),
            // Only e2's generic stem and one option: kept.
            chat(
                "t3",
                "Which of the following is true? A) Iron is a metal B) Gold rusts",
            ),
            // The same text as e3: contaminated.
            chat("t4", "describe the KUSSMAUL sign"),
            // e1's exact question as a conversation: contaminated.
            chat(
                "t5",
                "A 60 year old smoker has haemoptysis and hypercalcaemia: likely tumour?",
            ),
            TrainingRecord::Mcq(rec(
                "t6",
                "Which vitamin prevents scurvy?",
                &["C", "D"],
                'A',
            )),
        ];
        let (kept, dropped) = remove_contaminated(train.clone(), &eval);
        assert_eq!(dropped, ["t1", "t4", "t5"]);
        assert_eq!(
            kept.iter().map(|r| r.id()).collect::<Vec<_>>(),
            ["t2", "t3", "t6"]
        );
        // The other way round: an MCQ training record quoted by an eval conversation.
        let mcq_train = vec![rec(
            "m1",
            "Which nerve is injured in wrist drop?",
            &["Radial", "Ulnar", "Median"],
            'A',
        )];
        let quoting = [chat(
            "q",
            "Which nerve is injured in wrist drop? Options: radial, ulnar, median.",
        )];
        let (kept, dropped) = remove_contaminated(mcq_train.clone(), &quoting);
        assert!(kept.is_empty());
        assert_eq!(dropped, ["m1"]);
        let (kept, _) = remove_contaminated(mcq_train, &[chat("q", "Which nerve is injured?")]);
        assert_eq!(kept.len(), 1);
        // Options of symbols only cannot be looked for: the question (and the one option with a
        // word) decides.
        let arrows = rec(
            "a",
            "Which set of findings fits SIADH? Serum osmolality, urine sodium",
            &["↑ ↓", "↓ ↑", "↓ normal"],
            'B',
        );
        let quoting = chat(
            "c",
            "Which set of findings fits SIADH? Serum osmolality, urine sodium. (A) ↑ ↓ (B) ↓ ↑ (C) ↓ normal",
        );
        assert!(asks_same_question(&quoting, &arrows));
        assert!(asks_same_question(&train[3], &eval[2]));
        assert!(!asks_same_question(&train[1], &eval[0]));
    }
}
