//! Reads every real data file in the shared folder (`$MEDTUNE_SHARED`, default
//! `<workspace>/../shared`: `data/`) and checks the record counts against `data/SOURCES.md`.
//! These tests fail, rather than pass silently, when the folder is missing.
//!
//! Run with `cargo test --release -p medtune-data --test shared_data -- --ignored`.
//! `#[ignore]`d in the README test command, which must pass without `../shared`; `.ci/run`
//! runs them with `-- --ignored`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use medtune_data::{
    CheckReport, Format, McqRecord, ReadOptions, check_files, detect, find_duplicates,
    pubmedqa_test_labels, read_file, remove_contaminated, split_pubmedqa_test,
};
use medtune_text::Tokenizer;

fn shared_dir() -> PathBuf {
    match std::env::var_os("MEDTUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn data_dir() -> PathBuf {
    let dir = shared_dir().join("data");
    assert!(
        dir.join("SOURCES.md").is_file(),
        "data sets not found at {}: set MEDTUNE_SHARED to the shared data folder \
         (the one holding data/SOURCES.md)",
        dir.display()
    );
    dir
}

fn file(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

const MEDQA: [&str; 2] = ["medqa/test_4options.jsonl", "medqa/test_5options.jsonl"];
const MEDMCQA: &str = "medmcqa/dev.jsonl";
const PUBMEDQA: &str = "pubmedqa/ori_pqal.json";
const MMLU: [(&str, usize); 6] = [
    ("anatomy", 135),
    ("clinical_knowledge", 265),
    ("college_biology", 144),
    ("college_medicine", 173),
    ("medical_genetics", 100),
    ("professional_medicine", 272),
];

fn mmlu_files() -> Vec<String> {
    MMLU.iter()
        .map(|(s, _)| format!("mmlu_medical/{s}_test.csv"))
        .collect()
}

fn all_files() -> Vec<String> {
    let mut v: Vec<String> = MEDQA.iter().map(|s| s.to_string()).collect();
    v.push(MEDMCQA.into());
    v.push(PUBMEDQA.into());
    v.extend(mmlu_files());
    v
}

/// The `records` column of SOURCES.md's summary table: file → count.
fn sources_counts() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(data_dir().join("SOURCES.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `file` | what | records | `sha256` |
        if cols.len() == 6
            && let (Some(f), Ok(n)) = (
                cols[1].strip_prefix('`').and_then(|s| s.strip_suffix('`')),
                cols[3].parse::<usize>(),
            )
        {
            out.insert(f.to_owned(), n);
        }
    }
    out
}

fn read(rel: &str) -> Vec<McqRecord> {
    read_file(&file(rel), None, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .records
}

fn letters(records: &[McqRecord]) -> BTreeMap<char, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.answer).or_default() += 1;
    }
    m
}

fn qwen3() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = shared_dir().join("tokenizers/qwen3");
        Tokenizer::from_dir(&dir)
            .unwrap_or_else(|e| panic!("Qwen3 tokenizer at {}: {e}", dir.display()))
    })
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn counts_match_sources_md() {
    let sources = sources_counts();
    let files = all_files();
    for rel in &files {
        let want = sources
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} is not in SOURCES.md's table"));
        assert_eq!(read(rel).len(), *want, "{rel}");
    }
    // And the numbers of the brief, so that an edited SOURCES.md does not go unnoticed.
    assert_eq!(sources[MEDQA[0]], 1273);
    assert_eq!(sources[MEDQA[1]], 1273);
    assert_eq!(sources[MEDMCQA], 4183);
    assert_eq!(sources[PUBMEDQA], 1000);
    assert_eq!(sources["pubmedqa/test_ground_truth.json"], 500);
    let mmlu: usize = mmlu_files().iter().map(|f| sources[f.as_str()]).sum();
    assert_eq!(mmlu, 1089);
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn detects_every_format() {
    assert_eq!(detect(&file(MEDQA[0])).unwrap(), Format::MedQa);
    assert_eq!(detect(&file(MEDQA[1])).unwrap(), Format::MedQa);
    assert_eq!(detect(&file(MEDMCQA)).unwrap(), Format::MedMcqa);
    assert_eq!(detect(&file(PUBMEDQA)).unwrap(), Format::PubMedQa);
    assert_eq!(
        detect(&file("pubmedqa/test_set.json")).unwrap(),
        Format::PubMedQa
    );
    for f in mmlu_files() {
        assert_eq!(detect(&file(&f)).unwrap(), Format::Mmlu);
    }
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn medqa() {
    let four = read(MEDQA[0]);
    assert_eq!(four.len(), 1273);
    assert!(four.iter().all(|r| r.options.len() == 4));
    assert_eq!(
        letters(&four),
        BTreeMap::from([('A', 353), ('B', 309), ('C', 346), ('D', 265)])
    );
    let step1 = four
        .iter()
        .filter(|r| r.subject.as_deref() == Some("step1"))
        .count();
    assert_eq!(step1, 679);
    let five = read(MEDQA[1]);
    assert_eq!(five.len(), 1273);
    assert!(five.iter().all(|r| r.options.len() == 5));
    assert_eq!(
        letters(&five),
        BTreeMap::from([('A', 273), ('B', 277), ('C', 252), ('D', 269), ('E', 202)])
    );
    // The same questions: every 5-option record is contaminated by the 4-option set.
    let (kept, dropped) = remove_contaminated(five, &four);
    assert_eq!((kept.len(), dropped.len()), (0, 1273));
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn medmcqa() {
    let r = read(MEDMCQA);
    assert_eq!(r.len(), 4183);
    // `cop` is 1-based in this file (1 = opa): 1:1348, 2:1085, 3:925, 4:825 per SOURCES.md.
    assert_eq!(
        letters(&r),
        BTreeMap::from([('A', 1348), ('B', 1085), ('C', 925), ('D', 825)])
    );
    assert_eq!(r.iter().filter(|r| r.explanation.is_some()).count(), 2206);
    let ids: HashSet<&str> = r.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 4183);
    assert_eq!(
        r.iter()
            .filter(|r| r.subject.as_deref() == Some("Dental"))
            .count(),
        1318
    );
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn pubmedqa() {
    let path = file(PUBMEDQA);
    let r = read(PUBMEDQA);
    assert_eq!(r.len(), 1000);
    assert_eq!(
        letters(&r),
        BTreeMap::from([('A', 552), ('B', 338), ('C', 110)])
    );
    assert!(
        r.iter()
            .all(|r| r.context.is_some() && r.explanation.is_some())
    );
    let labels = pubmedqa_test_labels(&path)
        .unwrap()
        .expect("test_ground_truth.json");
    assert_eq!(labels.len(), 500);
    let (test, rest) = split_pubmedqa_test(r, &labels).unwrap();
    assert_eq!((test.len(), rest.len()), (500, 500));
    assert_eq!(
        letters(&test),
        BTreeMap::from([('A', 276), ('B', 169), ('C', 55)])
    );
    // The official test_set.json holds the same 500.
    let set = read("pubmedqa/test_set.json");
    let a: HashSet<&str> = test.iter().map(|r| r.id.as_str()).collect();
    let b: HashSet<&str> = set.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(a, b);
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn mmlu() {
    let mut total = 0;
    for (subject, n) in MMLU {
        let r = read(&format!("mmlu_medical/{subject}_test.csv"));
        assert_eq!(r.len(), n, "{subject}");
        assert!(
            r.iter()
                .all(|r| r.subject.as_deref() == Some(subject) && r.options.len() == 4)
        );
        total += r.len();
    }
    assert_eq!(total, 1089);
}

fn check_all() -> &'static CheckReport {
    static REPORT: OnceLock<CheckReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let paths: Vec<PathBuf> = all_files().iter().map(|f| file(f)).collect();
        check_files(&paths, None, Some(qwen3()), false)
    })
}

#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn check_reports_no_problems() {
    let report = check_all();
    println!("{report}");
    assert!(!report.has_problems(), "{report}");
    assert_eq!(report.total.records, 1273 * 2 + 4183 + 1000 + 1089);
    assert_eq!(report.total.bad, 0);
    let t = report.total.tokens.as_ref().unwrap();
    assert_eq!(t.count, report.total.records);
    assert!(t.p50 > 50 && t.max < 4096, "{t:?}");
}

/// Duplicates in the real data (same normalised question, at least half of the options shared),
/// reported by `check` but not counted as problems:
/// - the 1273 MedQA questions appear in both the 4- and the 5-option file;
/// - MedMCQA dev asks 19 questions twice (mostly respelt: a trailing colon, `H2 So4`/`H2SO4`);
///   one pair disagrees: lines 456 and 2967 have the same options and different `cop`;
/// - MMLU: 78 questions of clinical_knowledge are also in college_medicine, same options and
///   answer.
#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn duplicates_in_the_real_data() {
    let report = check_all();
    let in_file = |rel: &str| {
        let p = file(rel);
        move |o: &medtune_data::Origin| o.file == p
    };
    let medqa_pairs = report
        .duplicates
        .iter()
        .filter(|d| {
            d.members.len() == 2
                && in_file(MEDQA[0])(&d.members[0].1)
                && in_file(MEDQA[1])(&d.members[1].1)
        })
        .count();
    assert_eq!(medqa_pairs, 1273);

    let medmcqa = read(MEDMCQA);
    let groups = find_duplicates(&medmcqa);
    let conflicting = groups.iter().filter(|g| g.conflicting).count();
    assert_eq!((groups.len(), conflicting), (19, 1), "{groups:?}");
    let g = groups.iter().find(|g| g.conflicting).unwrap();
    let lines: Vec<usize> = g.members.iter().map(|&i| medmcqa[i].origin.line).collect();
    assert_eq!(lines, [456, 2967]);

    let mut mmlu = Vec::new();
    for f in mmlu_files() {
        mmlu.extend(read(&f));
    }
    let groups = find_duplicates(&mmlu);
    assert_eq!(groups.len(), 78, "{groups:?}");
    for g in &groups {
        let subjects: Vec<&str> = g
            .members
            .iter()
            .map(|&i| mmlu[i].subject.as_deref().unwrap())
            .collect();
        assert_eq!(subjects, ["clinical_knowledge", "college_medicine"]);
        assert!(!g.conflicting);
    }

    assert_eq!(report.duplicates.len(), 1273 + 19 + 78);
}

/// Training on MedMCQA dev does not leak MedQA, MMLU or PubMedQA test questions.
#[test]
#[ignore = "reads the real data in $MEDTUNE_SHARED; .ci/run runs it with --ignored"]
fn medmcqa_is_not_contaminated_by_the_eval_sets() {
    let mut eval = read(MEDQA[0]);
    eval.extend(read(MEDQA[1]));
    eval.extend(read(PUBMEDQA));
    for f in mmlu_files() {
        eval.extend(read(&f));
    }
    let (kept, dropped) = remove_contaminated(read(MEDMCQA), &eval);
    assert_eq!((kept.len(), dropped.len()), (4183, 0), "{dropped:?}");
}
