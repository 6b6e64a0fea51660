//! Streaming text filters: stop strings (never emit a stop string or text after it, even when it
//! arrives split across tokens) and the split of Qwen3's `<think>...</think>` block into
//! reasoning and content.

/// Finds stop strings in streamed text. Text that could be the start of a stop string is held
/// back until it is known not to be one.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Adds text; returns the text that is safe to emit and whether a stop string was reached
    /// (the stop string and anything after it are dropped).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            let out = self.pending[..at].to_owned();
            self.pending.clear();
            return (out, true);
        }
        let hold = self
            .stops
            .iter()
            .map(|s| partial_suffix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        (out, false)
    }

    /// The held-back text at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `pattern`.
fn partial_suffix(text: &str, pattern: &str) -> usize {
    (1..pattern.len())
        .rev()
        .filter(|&k| pattern.is_char_boundary(k))
        .find(|&k| text.ends_with(&pattern[..k]))
        .unwrap_or(0)
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Nothing decided yet: the text may still turn out to open with `<think>`.
    Start,
    Reasoning,
    Content,
}

/// A piece of streamed output, split.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

impl Split {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

/// Splits generated text into the thinking block and the answer.
#[derive(Debug)]
pub struct ReasoningSplitter {
    part: Part,
    buf: String,
    /// Newlines right after `</think>` are dropped (the template writes `</think>\n\n`).
    trim_content_start: bool,
}

impl ReasoningSplitter {
    /// `in_reasoning`: the prompt itself ends inside an open `<think>` block (some Qwen3
    /// templates start the thinking block for the model).
    pub fn new(in_reasoning: bool) -> Self {
        Self {
            part: if in_reasoning {
                Part::Reasoning
            } else {
                Part::Start
            },
            buf: String::new(),
            trim_content_start: false,
        }
    }

    /// Whether a rendered prompt leaves a `<think>` block open.
    pub fn prompt_opens_reasoning(prompt: &str) -> bool {
        match (prompt.rfind(OPEN), prompt.rfind(CLOSE)) {
            (Some(o), Some(c)) => o > c,
            (Some(_), None) => true,
            _ => false,
        }
    }

    pub fn push(&mut self, text: &str) -> Split {
        self.buf.push_str(text);
        let mut out = Split::default();
        loop {
            match self.part {
                Part::Start => {
                    let t = self.buf.trim_start();
                    if let Some(rest) = t.strip_prefix(OPEN) {
                        self.buf = rest.trim_start_matches('\n').to_owned();
                        self.part = Part::Reasoning;
                    } else if OPEN.starts_with(t) {
                        return out; // maybe the start of `<think>`: wait for more
                    } else {
                        self.part = Part::Content;
                    }
                }
                Part::Reasoning => {
                    if let Some(at) = self.buf.find(CLOSE) {
                        out.reasoning
                            .push_str(self.buf[..at].trim_end_matches('\n'));
                        self.buf.drain(..at + CLOSE.len());
                        self.part = Part::Content;
                        self.trim_content_start = true;
                    } else {
                        let cut = self.buf.len() - partial_suffix(&self.buf, CLOSE);
                        out.reasoning.push_str(&self.buf[..cut]);
                        self.buf.drain(..cut);
                        return out;
                    }
                }
                Part::Content => {
                    if self.trim_content_start {
                        let trimmed = self.buf.trim_start_matches('\n');
                        if trimmed.is_empty() {
                            self.buf.clear();
                            return out;
                        }
                        self.buf = trimmed.to_owned();
                        self.trim_content_start = false;
                    }
                    out.content.push_str(&self.buf);
                    self.buf.clear();
                    return out;
                }
            }
        }
    }

    /// What is still held back at the end.
    pub fn finish(&mut self) -> Split {
        let rest = std::mem::take(&mut self.buf);
        match self.part {
            Part::Reasoning => Split {
                reasoning: rest,
                content: String::new(),
            },
            _ => Split {
                reasoning: String::new(),
                content: rest,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_stop(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (text, hit) = m.push(p);
            out.push_str(&text);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_strings_split_across_pieces_are_caught() {
        assert_eq!(
            run_stop(&["END"], &["abc E", "N", "D tail"]),
            ("abc ".into(), true)
        );
        assert_eq!(
            run_stop(&["END"], &["abc E", "x"]),
            ("abc Ex".into(), false)
        );
        assert_eq!(run_stop(&[], &["a", "b"]), ("ab".into(), false));
        // The earliest of several stops wins.
        assert_eq!(run_stop(&["zz", "b"], &["a", "bzz"]), ("a".into(), true));
        // Held-back text is released at the end.
        assert_eq!(run_stop(&["END"], &["xEN"]), ("xEN".into(), false));
        // Multi-byte characters are never cut.
        assert_eq!(run_stop(&["é!"], &["café"]), ("café".into(), false));
    }

    #[test]
    fn held_text_is_released_as_soon_as_it_cannot_match() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("a E"), ("a ".into(), false));
        assert_eq!(m.push("x"), ("Ex".into(), false));
    }

    fn split_all(in_reasoning: bool, pieces: &[&str]) -> Split {
        let mut s = ReasoningSplitter::new(in_reasoning);
        let mut all = Split::default();
        for p in pieces.iter() {
            let part = s.push(p);
            all.reasoning.push_str(&part.reasoning);
            all.content.push_str(&part.content);
        }
        let part = s.finish();
        all.reasoning.push_str(&part.reasoning);
        all.content.push_str(&part.content);
        all
    }

    #[test]
    fn think_blocks_become_reasoning() {
        let s = split_all(
            false,
            &["<th", "ink>\nweigh", " it</th", "ink>\n\nAnswer: B"],
        );
        assert_eq!(s.reasoning, "weigh it");
        assert_eq!(s.content, "Answer: B");
        let s = split_all(false, &["Answer: ", "C"]);
        assert_eq!(
            (s.reasoning.as_str(), s.content.as_str()),
            ("", "Answer: C")
        );
        // The prompt opened the block: everything up to </think> is reasoning.
        let s = split_all(true, &["hmm", "</think>", "\n\nA"]);
        assert_eq!((s.reasoning.as_str(), s.content.as_str()), ("hmm", "A"));
        // Generation cut inside the block keeps what was thought.
        let s = split_all(false, &["<think>\nstill thinking"]);
        assert_eq!(s.reasoning, "still thinking");
        // A lone `<` is content once it cannot be `<think>`.
        let s = split_all(false, &["<", "b>"]);
        assert_eq!(s.content, "<b>");
    }

    #[test]
    fn open_think_in_prompt_is_detected() {
        assert!(ReasoningSplitter::prompt_opens_reasoning(
            "<|im_start|>assistant\n<think>\n"
        ));
        assert!(!ReasoningSplitter::prompt_opens_reasoning(
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ));
        assert!(!ReasoningSplitter::prompt_opens_reasoning("plain"));
    }
}
