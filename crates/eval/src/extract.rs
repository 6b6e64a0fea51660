//! The chosen option in a generated reply. Only the text after the last `</think>` counts (the
//! reasoning may weigh every option). Rules, first match wins:
//!
//! 1. an answer statement: `Answer: C`, `answer is (C)`, `**Answer:** C)`, `final answer: C`
//!    (the last one in the reply);
//! 2. a reply that starts with a letter: `C`, `C)`, `(C)`, `C.`, `C:`;
//! 3. `(C)` anywhere (the last one);
//! 4. `C)` anywhere (the last one);
//! 5. the text of exactly one option, compared after normalisation (case, punctuation, spaces);
//! 6. the last stated letter: `option C`, `choice C`, or a line that starts with `C.`/`C:`.
//!
//! A reply that matches none is unparsed: it counts as wrong and is reported as such, never
//! guessed.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which rule found the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    AnswerStatement,
    LeadingLetter,
    ParenthesisedLetter,
    LetterParen,
    OptionText,
    LastStatedLetter,
}

static ANSWER_STATEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i:answer)\**\s*(?:(?i:is)\s*)?[:\-]?\s*\**\s*(?:(?i:option|choice)\s*)?\(?\s*([A-Z])\b",
    )
    .expect("valid regex")
});
// A lowercase letter after `answer:` counts only when set off: `answer: c)`, `answer: (c)` or
// `answer: c` at the end of a line ("the answer is a ..." is an article, not option A).
static ANSWER_STATEMENT_LOWER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)answer\s*:\s*(?:\(([a-z])\)|([a-z])\)|([a-z])\.?\s*$)").expect("valid regex")
});
static LEADING_LETTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\W*?\(?([A-Z])(?:[).:\]]|\s*$|\s+[-–—])").expect("valid regex"));
static PAREN_LETTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\(([A-Z])\)").expect("valid regex"));
static LETTER_PAREN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([A-Z])\)").expect("valid regex"));
static STATED_LETTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:(?i:option|choice)\s+\(?([A-Z])\b|^\s*([A-Z])[.:]\s)").expect("valid regex")
});

/// The answer found in a reply, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extracted {
    pub letter: char,
    pub method: Method,
}

/// Finds the chosen option among `options` (`(letter, text)`) in `reply`.
pub fn extract_answer(reply: &str, options: &[(char, String)]) -> Option<Extracted> {
    let visible = reply.rsplit("</think>").next().unwrap_or(reply).trim();
    let valid = |c: char| options.iter().any(|(l, _)| *l == c);
    let found = |letter: char, method| Some(Extracted { letter, method });
    let last_valid = |re: &Regex| -> Option<char> {
        re.captures_iter(visible)
            .filter_map(|c| c.iter().skip(1).flatten().next().map(|m| m.as_str()))
            .filter_map(|s| s.chars().next().map(|c| c.to_ascii_uppercase()))
            .filter(|c| valid(*c))
            .last()
    };
    if let Some(c) = last_valid(&ANSWER_STATEMENT).or_else(|| last_valid(&ANSWER_STATEMENT_LOWER)) {
        return found(c, Method::AnswerStatement);
    }
    if let Some(c) = LEADING_LETTER
        .captures(visible)
        .and_then(|c| c[1].chars().next())
        .filter(|c| valid(*c))
    {
        return found(c, Method::LeadingLetter);
    }
    if let Some(c) = last_valid(&PAREN_LETTER) {
        return found(c, Method::ParenthesisedLetter);
    }
    if let Some(c) = last_valid(&LETTER_PAREN) {
        return found(c, Method::LetterParen);
    }
    if let Some(c) = unique_option_text(visible, options) {
        return found(c, Method::OptionText);
    }
    last_valid(&STATED_LETTER).and_then(|c| found(c, Method::LastStatedLetter))
}

/// The one option whose normalised text occurs in the normalised reply (as whole words), if
/// exactly one does; an option text contained in another's counts for the longer one only.
fn unique_option_text(reply: &str, options: &[(char, String)]) -> Option<char> {
    let reply = format!(" {} ", normalise(reply));
    let texts: Vec<(char, String)> = options
        .iter()
        .map(|(l, t)| (*l, normalise(t)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let hits: Vec<&(char, String)> = texts
        .iter()
        .filter(|(_, t)| reply.contains(&format!(" {t} ")))
        .collect();
    let maximal: Vec<char> = hits
        .iter()
        .filter(|(l, t)| {
            !hits
                .iter()
                .any(|(l2, t2)| l2 != l && t2.len() > t.len() && t2.contains(t.as_str()))
        })
        .map(|(l, _)| *l)
        .collect();
    match maximal.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn normalise(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<(char, String)> {
        [
            ('A', "Metformin"),
            ('B', "Insulin glargine"),
            ('C', "Insulin"),
            ('D', "Sitagliptin"),
        ]
        .iter()
        .map(|(l, t)| (*l, t.to_string()))
        .collect()
    }

    /// Real-looking model outputs and what a careful reader would take as the answer.
    #[test]
    fn table_of_outputs() {
        use Method::*;
        let cases: &[(&str, Option<(char, Method)>)] = &[
            (
                "Answer: C) Insulin\n\nBecause ketoacidosis ...",
                Some(('C', AnswerStatement)),
            ),
            ("answer: (d) Sitagliptin", Some(('D', AnswerStatement))),
            ("**Answer:** B", Some(('B', AnswerStatement))),
            ("The correct answer is D.", Some(('D', AnswerStatement))),
            (
                "The answer is option A, metformin.",
                Some(('A', AnswerStatement)),
            ),
            ("Final answer: (B)", Some(('B', AnswerStatement))),
            (
                "<think>\nA is tempting. Answer: A?\n</think>\n\nAnswer: D",
                Some(('D', AnswerStatement)),
            ),
            (
                "I first thought Answer: A but on reflection the answer is C.",
                Some(('C', AnswerStatement)),
            ),
            ("The answer is a matter of debate.", None),
            ("answer: c", Some(('C', AnswerStatement))),
            (
                "B) Insulin glargine is long-acting.",
                Some(('B', LeadingLetter)),
            ),
            ("(A) Metformin", Some(('A', LeadingLetter))),
            ("D.", Some(('D', LeadingLetter))),
            ("C", Some(('C', LeadingLetter))),
            (
                "A 45-year-old needs metformin first.",
                Some(('A', OptionText)),
            ),
            (
                "Given the ketosis, I would pick (C) over the others.",
                Some(('C', ParenthesisedLetter)),
            ),
            ("So it is clearly C) here.", Some(('C', LetterParen))),
            (
                "Sitagliptin is the best choice here.",
                Some(('D', OptionText)),
            ),
            (
                "Start insulin glargine at bedtime.",
                Some(('B', OptionText)),
            ),
            ("Either metformin or sitagliptin.", None),
            (
                "I would go with option B given the HbA1c.",
                Some(('B', LastStatedLetter)),
            ),
            (
                "Reasons:\nB: a long-acting basal analogue",
                Some(('B', LastStatedLetter)),
            ),
            ("I'm not sure.", None),
            ("", None),
            ("Answer: E", None),
            ("Answer: Cardiology consult", None),
        ];
        for (reply, want) in cases {
            let got = extract_answer(reply, &opts()).map(|e| (e.letter, e.method));
            assert_eq!(got, *want, "reply {reply:?}");
        }
    }
}
