//! `check`: read data files, collect every problem, and summarise them (counts, answer letters,
//! subjects, explanations; turns, assistant turns and reasoning of conversations; token lengths,
//! duplicates).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use medtune_text::mcq::McqChatOptions;
use medtune_text::{RenderOptions, Tokenizer};

use crate::conversation::{Role, TraceFields, TrainingRecord};
use crate::error::{DataError, Problem};
use crate::format::Format;
use crate::ops::{find_duplicates, normalize_question};
use crate::read::open_training;
use crate::record::{McqRecord, Origin};

/// How many subjects [`CheckReport`]'s `Display` lists per file by default.
pub const TOP_SUBJECTS: usize = 10;
/// How many duplicate groups `Display` lists.
const SHOWN_DUPLICATES: usize = 20;

/// Token lengths of `prompt + target` training pairs (a conversation: all its turns through the
/// chat template; a text pair: prompt and completion).
#[derive(Clone, Debug, PartialEq)]
pub struct LengthStats {
    pub count: usize,
    pub mean: f64,
    /// Nearest-rank percentiles: the smallest length with at least p% of the records at or
    /// below it.
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
    /// The id of the longest record.
    pub max_id: String,
}

impl LengthStats {
    /// Statistics of `(length, id)` pairs; `None` when empty.
    pub fn from_lengths(lengths: &[(usize, String)]) -> Option<Self> {
        if lengths.is_empty() {
            return None;
        }
        let mut sorted: Vec<usize> = lengths.iter().map(|(n, _)| *n).collect();
        sorted.sort_unstable();
        let (max, max_id) = lengths
            .iter()
            .max_by_key(|(n, _)| *n)
            .map(|(n, id)| (*n, id.clone()))
            .unwrap();
        Some(LengthStats {
            count: sorted.len(),
            mean: sorted.iter().sum::<usize>() as f64 / sorted.len() as f64,
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max,
            max_id,
        })
    }
}

/// Nearest-rank percentile of ascending `sorted` (non-empty): element `ceil(p/100 × n) - 1`.
pub fn percentile(sorted: &[usize], p: f64) -> usize {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Counts over a set of records. `answers` to `subjects` count the multiple-choice records;
/// `conversations` to `with_reasoning` the conversations, `text_pairs` the plain-text pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Valid records (of every kind).
    pub records: usize,
    /// Bad records (each has a problem in the report).
    pub bad: usize,
    /// Conversations ([`crate::ChatRecord`]s: chat, conversational prompt–completion and trace
    /// records).
    pub conversations: usize,
    /// Their turns.
    pub turns: usize,
    /// Their assistant turns.
    pub assistant_turns: usize,
    /// Conversations with reasoning (`reasoning_content` or a `<think>` block).
    pub with_reasoning: usize,
    /// Plain-text prompt–completion pairs ([`crate::TextPair`]s).
    pub text_pairs: usize,
    /// Correct answer letter → records.
    pub answers: BTreeMap<char, usize>,
    /// Number of options → records.
    pub option_counts: BTreeMap<usize, usize>,
    pub with_explanation: usize,
    pub with_context: usize,
    /// Subject → records, most frequent first (ties by name).
    pub subjects: Vec<(String, usize)>,
    /// `None` without a tokenizer.
    pub tokens: Option<LengthStats>,
}

impl Stats {
    /// The multiple-choice records: `records - conversations - text_pairs`.
    pub fn mcq_records(&self) -> usize {
        self.records - self.conversations - self.text_pairs
    }

    fn from_records(
        records: &[TrainingRecord],
        bad: usize,
        lengths: Option<&[(usize, String)]>,
    ) -> Self {
        let mut s = Stats {
            records: records.len(),
            bad,
            ..Default::default()
        };
        let mut subjects: HashMap<&str, usize> = HashMap::new();
        for r in records {
            let r = match r {
                TrainingRecord::Mcq(r) => r,
                TrainingRecord::Chat(c) => {
                    s.conversations += 1;
                    s.turns += c.turns.len();
                    s.assistant_turns += c.assistant_turns();
                    s.with_reasoning += c.has_reasoning() as usize;
                    continue;
                }
                TrainingRecord::Text(_) => {
                    s.text_pairs += 1;
                    continue;
                }
            };
            *s.answers.entry(r.answer).or_default() += 1;
            *s.option_counts.entry(r.options.len()).or_default() += 1;
            s.with_explanation += r.explanation.is_some() as usize;
            s.with_context += r.context.is_some() as usize;
            if let Some(subj) = &r.subject {
                *subjects.entry(subj.as_str()).or_default() += 1;
            }
        }
        let mut subjects: Vec<(String, usize)> = subjects
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        subjects.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        s.subjects = subjects;
        s.tokens = lengths.and_then(LengthStats::from_lengths);
        s
    }
}

/// One checked file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileReport {
    pub path: PathBuf,
    /// `None` when the format could not be detected or the file not opened.
    pub format: Option<Format>,
    pub stats: Stats,
}

/// Records of the checked files that ask the same question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateReport {
    /// `(id, origin)` of each member.
    pub members: Vec<(String, Origin)>,
    /// The members' correct answers differ.
    pub conflicting: bool,
}

/// The result of [`check_files`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    pub files: Vec<FileReport>,
    /// Over all files.
    pub total: Stats,
    /// Whether token lengths were rendered with thinking on.
    pub thinking: bool,
    /// Duplicate questions across all checked files ([`crate::ops::find_duplicates`]). Reported,
    /// not counted as problems: the same question in two files (MedQA's 4- and 5-option test
    /// sets) is expected.
    pub duplicates: Vec<DuplicateReport>,
    /// Every problem: bad records, unreadable files, a tokenizer without a chat template.
    pub problems: Vec<Problem>,
    /// How many subjects `Display` lists per file.
    pub top_subjects: usize,
}

impl CheckReport {
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// Reads every file (detecting each format when `format` is `None`), collecting all problems
/// rather than stopping at the first. With a tokenizer, every valid multiple-choice record is
/// rendered as a training pair (`render_mcq_training_pair`, the default system prompt,
/// `thinking`) through the tokenizer's chat template, and `prompt + target` tokens are
/// measured; a conversation is measured as all its turns through the chat template, a text pair
/// as its prompt and completion. [`check_files_with`] also reads reasoning-trace tables.
pub fn check_files(
    paths: &[PathBuf],
    format: Option<Format>,
    tokenizer: Option<&Tokenizer>,
    thinking: bool,
) -> CheckReport {
    check_files_with(paths, format, None, tokenizer, thinking)
}

/// [`check_files`] with a field mapping for reasoning-trace tables: with `fields` and no
/// `format`, every file is read as [`Format::Trace`].
pub fn check_files_with(
    paths: &[PathBuf],
    format: Option<Format>,
    fields: Option<&TraceFields>,
    tokenizer: Option<&Tokenizer>,
    thinking: bool,
) -> CheckReport {
    let mut problems = Vec::new();
    let template = match tokenizer {
        Some(t) => match t.chat_template() {
            Some(tpl) => Some((t, tpl)),
            None => {
                problems.push(Problem::file_level(
                    t.dir(),
                    "chat_template",
                    "the tokenizer has no chat template: token lengths not measured",
                ));
                None
            }
        },
        None => None,
    };
    let chat = McqChatOptions {
        thinking,
        ..Default::default()
    };

    let render = RenderOptions {
        add_generation_prompt: false,
        enable_thinking: Some(thinking),
        tools: None,
    };

    let mut all: Vec<TrainingRecord> = Vec::new();
    let mut all_lengths: Vec<(usize, String)> = Vec::new();
    let mut files = Vec::with_capacity(paths.len());
    let mut total_bad = 0;
    for path in paths {
        let (fmt, records) = match open_training(path, format, fields) {
            Ok(x) => x,
            Err(e) => {
                problems.push(match e {
                    DataError::Problem(p) => p,
                    DataError::Io { source, .. } => {
                        Problem::file_level(path, "file", source.to_string())
                    }
                    DataError::Invalid(message) => Problem::file_level(path, "format", message),
                });
                files.push(FileReport {
                    path: path.clone(),
                    format: None,
                    stats: Stats::default(),
                });
                continue;
            }
        };
        let start = all.len();
        let mut bad = 0;
        for r in records {
            match r {
                Ok(rec) => all.push(rec),
                Err(p) => {
                    bad += usize::from(p.line != 0);
                    problems.push(p);
                }
            }
        }
        total_bad += bad;
        let lengths = template.map(|(tok, tpl)| {
            let mut lengths = Vec::with_capacity(all.len() - start);
            let mut texts: Vec<(String, String)> = Vec::new();
            let mut ids: Vec<&str> = Vec::new();
            for r in &all[start..] {
                let text = match r {
                    TrainingRecord::Mcq(r) => r
                        .training_pair(tpl, &chat)
                        .map(|pair| (pair.prompt, pair.target))
                        .map_err(|e| ("prompt", e)),
                    TrainingRecord::Chat(c) => tpl
                        .render(&c.messages(), &render)
                        .map(|text| (text, String::new()))
                        .map_err(|e| ("messages", e)),
                    TrainingRecord::Text(t) => Ok((t.prompt.clone(), t.completion.clone())),
                };
                match text {
                    Ok(pair) => {
                        texts.push(pair);
                        ids.push(r.id());
                    }
                    Err((field, e)) => problems.push(Problem::new(
                        &r.origin().file,
                        r.origin().line,
                        field,
                        e.to_string(),
                    )),
                }
            }
            for (chunk, chunk_ids) in texts.chunks(256).zip(ids.chunks(256)) {
                let flat: Vec<&str> = chunk
                    .iter()
                    .flat_map(|(p, t)| [p.as_str(), t.as_str()])
                    .collect();
                match tok.encode_batch(&flat) {
                    Ok(enc) => {
                        for (pair, id) in enc.chunks(2).zip(chunk_ids) {
                            lengths.push((pair[0].len() + pair[1].len(), (*id).to_owned()));
                        }
                    }
                    Err(e) => {
                        problems.push(Problem::file_level(path, "tokenizer", e.to_string()));
                        break;
                    }
                }
            }
            lengths
        });
        files.push(FileReport {
            path: path.clone(),
            format: Some(fmt),
            stats: Stats::from_records(&all[start..], bad, lengths.as_deref()),
        });
        if let Some(l) = lengths {
            all_lengths.extend(l);
        }
    }

    let total = Stats::from_records(
        &all,
        total_bad,
        template.is_some().then_some(all_lengths.as_slice()),
    );
    CheckReport {
        files,
        total,
        thinking,
        duplicates: duplicates(&all),
        problems,
        top_subjects: TOP_SUBJECTS,
    }
}

/// Duplicate questions: multiple-choice records by [`find_duplicates`], the others by equal
/// normalised user turns (a text pair: its prompt). Ordered by their first member.
fn duplicates(all: &[TrainingRecord]) -> Vec<DuplicateReport> {
    let member = |i: usize| (all[i].id().to_owned(), all[i].origin().clone());
    let (mcq_index, mcq): (Vec<usize>, Vec<McqRecord>) = all
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_mcq().map(|m| (i, m.clone())))
        .unzip();
    let mut groups: Vec<(usize, DuplicateReport)> = find_duplicates(&mcq)
        .into_iter()
        .map(|g| {
            (
                mcq_index[g.members[0]],
                DuplicateReport {
                    members: g.members.iter().map(|&k| member(mcq_index[k])).collect(),
                    conflicting: g.conflicting,
                },
            )
        })
        .collect();
    let mut by_text: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in all.iter().enumerate() {
        let key = match r {
            TrainingRecord::Mcq(_) => continue,
            TrainingRecord::Chat(c) => c
                .turns
                .iter()
                .filter(|t| t.role == Role::User)
                .map(|t| normalize_question(&t.content))
                .collect::<Vec<_>>()
                .join(" | "),
            TrainingRecord::Text(t) => normalize_question(&t.prompt),
        };
        if !key.is_empty() {
            by_text.entry(key).or_default().push(i);
        }
    }
    for members in by_text.into_values().filter(|m| m.len() > 1) {
        groups.push((
            members[0],
            DuplicateReport {
                members: members.iter().map(|&i| member(i)).collect(),
                conflicting: false,
            },
        ));
    }
    groups.sort_by_key(|(first, _)| *first);
    groups.into_iter().map(|(_, g)| g).collect()
}

fn write_stats(f: &mut fmt::Formatter<'_>, s: &Stats, top: usize, thinking: bool) -> fmt::Result {
    writeln!(f, "  records: {} valid, {} bad", s.records, s.bad)?;
    if s.records == 0 {
        return Ok(());
    }
    if s.conversations > 0 {
        writeln!(
            f,
            "  conversations: {}, turns: {} ({} assistant), with reasoning: {} ({:.1}%)",
            s.conversations,
            s.turns,
            s.assistant_turns,
            s.with_reasoning,
            100.0 * s.with_reasoning as f64 / s.conversations as f64
        )?;
    }
    if s.text_pairs > 0 {
        writeln!(f, "  text pairs (prompt, completion): {}", s.text_pairs)?;
    }
    if s.mcq_records() > 0 {
        write_mcq_stats(f, s, top)?;
    }
    if let Some(t) = &s.tokens {
        writeln!(
            f,
            "  tokens (prompt+target, thinking {}): mean {:.0}, p50 {}, p90 {}, p99 {}, max {} ({})",
            if thinking { "on" } else { "off" },
            t.mean,
            t.p50,
            t.p90,
            t.p99,
            t.max,
            t.max_id
        )?;
    }
    Ok(())
}

fn write_mcq_stats(f: &mut fmt::Formatter<'_>, s: &Stats, top: usize) -> fmt::Result {
    let mcq = s.mcq_records();
    let pct = |n: usize| 100.0 * n as f64 / mcq as f64;
    let opts: Vec<String> = s
        .option_counts
        .iter()
        .map(|(k, v)| format!("{k} options: {v}"))
        .collect();
    writeln!(f, "  options: {}", opts.join(", "))?;
    let answers: Vec<String> = s
        .answers
        .iter()
        .map(|(k, v)| format!("{k} {v} ({:.1}%)", pct(*v)))
        .collect();
    writeln!(f, "  answers: {}", answers.join(", "))?;
    writeln!(
        f,
        "  with explanation: {} ({:.1}%), with context: {}",
        s.with_explanation,
        pct(s.with_explanation),
        s.with_context
    )?;
    if !s.subjects.is_empty() {
        let shown: Vec<String> = s
            .subjects
            .iter()
            .take(top)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let more = s.subjects.len().saturating_sub(top);
        write!(f, "  subjects ({}): {}", s.subjects.len(), shown.join(", "))?;
        if more > 0 {
            write!(f, ", ... {more} more")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            match file.format {
                Some(fmt) => writeln!(f, "{} ({fmt})", file.path.display())?,
                None => writeln!(f, "{} (not read)", file.path.display())?,
            }
            write_stats(f, &file.stats, self.top_subjects, self.thinking)?;
        }
        if self.files.len() > 1 {
            writeln!(f, "all {} files", self.files.len())?;
            write_stats(f, &self.total, self.top_subjects, self.thinking)?;
        }
        let conflicting = self.duplicates.iter().filter(|d| d.conflicting).count();
        let extra: usize = self.duplicates.iter().map(|d| d.members.len() - 1).sum();
        writeln!(
            f,
            "duplicate questions: {} groups, {extra} records beyond the first of each, {conflicting} groups with different answers",
            self.duplicates.len()
        )?;
        for d in self.duplicates.iter().take(SHOWN_DUPLICATES) {
            let members: Vec<String> = d
                .members
                .iter()
                .map(|(id, o)| format!("{id} ({o})"))
                .collect();
            write!(f, "  {}", members.join(", "))?;
            if d.conflicting {
                write!(f, "  [different answers]")?;
            }
            writeln!(f)?;
        }
        if self.duplicates.len() > SHOWN_DUPLICATES {
            writeln!(f, "  ... {} more", self.duplicates.len() - SHOWN_DUPLICATES)?;
        }
        if self.problems.is_empty() {
            writeln!(f, "problems: none")?;
        } else {
            writeln!(f, "problems: {}", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<usize> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
    }

    #[test]
    fn reports_counts_lengths_duplicates_and_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(
            dir.path(),
            "good.jsonl",
            concat!(
                r#"{"question": "Which organ makes insulin?", "options": ["Liver", "Pancreas", "Spleen"], "answer": "B", "explanation": "Beta cells of the islets.", "subject": "Physiology"}"#,
                "\n",
                r#"{"question": "Which vitamin prevents scurvy?", "options": ["Vitamin C", "Vitamin D"], "answer": 0, "subject": "Biochemistry"}"#,
                "\n",
                r#"{"question": "Which organ makes insulin?", "options": ["Pancreas", "Liver", "Spleen"], "answer": "A", "subject": "Physiology"}"#,
                "\n",
            ),
        );
        let bad = write(
            dir.path(),
            "bad_test.csv",
            "Normal resting heart rate?,20,70,150,250,B\nq,a,b,c,d,F\n,a,b,c,d,A\n",
        );
        let empty = write(dir.path(), "empty.jsonl", "");
        let missing = dir.path().join("missing.jsonl");

        let tok_dir = dir.path().join("tok");
        medtune_text::builtin_tokenizer::write_builtin_tokenizer(&tok_dir).unwrap();
        let tok = Tokenizer::from_dir(&tok_dir).unwrap();

        let paths = [good.clone(), bad.clone(), empty.clone(), missing.clone()];
        let report = check_files(&paths, None, Some(&tok), false);
        assert!(report.has_problems());
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        let d = dir.path().display();
        assert_eq!(
            problems[0],
            format!("{d}/bad_test.csv:2: answer: \"F\" is not one of the options A, B, C, D")
        );
        assert_eq!(problems[1], format!("{d}/bad_test.csv:3: question: empty"));
        assert_eq!(
            problems[2],
            format!("{d}/empty.jsonl: file: empty: no records")
        );
        assert!(
            problems[3].starts_with(&format!("{d}/missing.jsonl: file: No such file")),
            "{}",
            problems[3]
        );
        assert_eq!(problems.len(), 4);

        let g = &report.files[0].stats;
        assert_eq!(report.files[0].format, Some(Format::Jsonl));
        assert_eq!((g.records, g.bad, g.with_explanation), (3, 0, 1));
        assert_eq!(g.answers, BTreeMap::from([('A', 2), ('B', 1)]));
        assert_eq!(g.option_counts, BTreeMap::from([(2, 1), (3, 2)]));
        assert_eq!(
            g.subjects,
            vec![("Physiology".to_owned(), 2), ("Biochemistry".to_owned(), 1)]
        );
        let t = g.tokens.as_ref().unwrap();
        assert_eq!(t.count, 3);
        assert!(
            t.p50 > 20 && t.p50 <= t.p90 && t.p90 <= t.p99 && t.p99 <= t.max,
            "{t:?}"
        );
        // The record with an explanation is the longest.
        assert_eq!(t.max_id, "good:1");
        let b = &report.files[1].stats;
        assert_eq!(report.files[1].format, Some(Format::Mmlu));
        assert_eq!((b.records, b.bad), (1, 2));
        assert_eq!(report.files[3].format, None);
        assert_eq!((report.total.records, report.total.bad), (4, 2));
        assert_eq!(report.total.tokens.as_ref().unwrap().count, 4);

        assert_eq!(report.duplicates.len(), 1);
        let dup = &report.duplicates[0];
        assert_eq!(
            dup.members
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["good:1", "good:3"]
        );
        assert!(!dup.conflicting);

        let text = report.to_string();
        for want in [
            "good.jsonl (jsonl)\n  records: 3 valid, 0 bad\n",
            "  answers: A 2 (66.7%), B 1 (33.3%)\n",
            "  subjects (2): Physiology 2, Biochemistry 1\n",
            "  tokens (prompt+target, thinking off): mean ",
            "missing.jsonl (not read)\n",
            "all 4 files\n  records: 4 valid, 2 bad\n",
            "duplicate questions: 1 groups, 1 records beyond the first of each, 0 groups with different answers\n",
            "problems: 4\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }

        // Thinking changes the rendering, hence the lengths; a clean file has no problems.
        let clean = check_files(
            std::slice::from_ref(&good),
            Some(Format::Jsonl),
            Some(&tok),
            true,
        );
        assert!(!clean.has_problems(), "{clean}");
        assert!(clean.to_string().contains("thinking on"));
        assert!(clean.to_string().ends_with("problems: none\n"));
        let plain = check_files(&[good], None, None, false);
        assert!(plain.total.tokens.is_none());
        assert!(!plain.to_string().contains("tokens"));
    }

    #[test]
    fn reports_conversations_traces_and_text_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let chat = write(
            dir.path(),
            "chat.jsonl",
            concat!(
                r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "First-line drug for status epilepticus?"}, {"role": "assistant", "content": "A benzodiazepine such as lorazepam.", "reasoning_content": "Stop the seizure quickly."}]}"#,
                "\n",
                r#"{"messages": [{"role": "user", "content": "Name a loop diuretic."}, {"role": "assistant", "content": "Furosemide."}, {"role": "user", "content": "Its main electrolyte risk?"}, {"role": "assistant", "content": "Hypokalaemia."}]}"#,
                "\n",
                r#"{"messages": [{"role": "user", "content": "Name a loop diuretic."}]}"#,
                "\n",
                r#"{"messages": [{"role": "user", "content": "first-line drug for status epilepticus"}, {"role": "assistant", "content": "<think>Benzodiazepines act fast.</think>Lorazepam."}]}"#,
                "\n",
            ),
        );
        let pairs = write(
            dir.path(),
            "pairs.json",
            "[\n {\"prompt\": \"Normal platelet count is\", \"completion\": \" 150 to 400 x10^9/L.\"},\n {\"prompt\": \"\", \"completion\": \"x\"}\n]\n",
        );
        let tok_dir = dir.path().join("tok");
        medtune_text::builtin_tokenizer::write_builtin_tokenizer(&tok_dir).unwrap();
        let tok = Tokenizer::from_dir(&tok_dir).unwrap();

        let report = check_files(&[chat.clone(), pairs.clone()], None, Some(&tok), false);
        let d = dir.path().display();
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                format!(
                    "{d}/chat.jsonl:3: messages[0].role: the conversation must end with an assistant turn"
                ),
                format!("{d}/pairs.json:3: prompt: empty"),
            ]
        );
        let c = &report.files[0].stats;
        assert_eq!(report.files[0].format, Some(Format::Chat));
        assert_eq!(
            (
                c.records,
                c.bad,
                c.conversations,
                c.turns,
                c.assistant_turns
            ),
            (3, 1, 3, 9, 4)
        );
        assert_eq!((c.with_reasoning, c.text_pairs, c.mcq_records()), (2, 0, 0));
        assert!(c.answers.is_empty());
        assert_eq!(c.tokens.as_ref().unwrap().count, 3);
        let p = &report.files[1].stats;
        assert_eq!(report.files[1].format, Some(Format::PromptCompletion));
        assert_eq!(
            (p.records, p.bad, p.text_pairs, p.conversations),
            (1, 1, 1, 0)
        );
        assert_eq!((report.total.records, report.total.bad), (4, 2));
        assert_eq!(report.total.tokens.as_ref().unwrap().count, 4);
        // Records 1 and 4 ask the same first question with nothing else from the user.
        assert_eq!(report.duplicates.len(), 1);
        assert_eq!(
            report.duplicates[0]
                .members
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["chat:1", "chat:4"]
        );
        let text = report.to_string();
        for want in [
            "chat.jsonl (chat)\n  records: 3 valid, 1 bad\n  conversations: 3, turns: 9 (4 assistant), with reasoning: 2 (66.7%)\n  tokens (prompt+target, thinking off): mean ",
            "pairs.json (prompt-completion)\n  records: 1 valid, 1 bad\n  text pairs (prompt, completion): 1\n  tokens",
            "all 2 files\n  records: 4 valid, 2 bad\n  conversations: 3",
            "problems: 2\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(!text.contains("answers:"), "{text}");

        // Traces need their mapping; without it the file is not read.
        let trace = write(
            dir.path(),
            "o1.jsonl",
            r#"{"Question": "Most common cause of community-acquired pneumonia?", "Complex_CoT": "Typical organisms first.", "Response": "Streptococcus pneumoniae."}"#,
        );
        let fields: TraceFields = "question=Question,reasoning=Complex_CoT,answer=Response"
            .parse()
            .unwrap();
        let report = check_files_with(
            std::slice::from_ref(&trace),
            None,
            Some(&fields),
            None,
            false,
        );
        assert!(!report.has_problems(), "{report}");
        assert_eq!(report.files[0].format, Some(Format::Trace));
        let t = &report.files[0].stats;
        assert_eq!((t.conversations, t.turns, t.with_reasoning), (1, 2, 1));
        let report = check_files(&[trace], Some(Format::Trace), None, false);
        assert_eq!(report.files[0].format, None);
        assert_eq!(
            report.problems[0].to_string(),
            format!(
                "{d}/o1.jsonl: format: the trace format needs a field mapping such as question=Question,reasoning=Complex_CoT,answer=Response"
            )
        );
    }
}
