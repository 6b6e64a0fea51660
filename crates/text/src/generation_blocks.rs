//! TRL's `{% generation %}` … `{% endgeneration %}` blocks, which mark the assistant's text in a
//! training chat template (transformers renders them through a Jinja extension; minijinja has no
//! such tag). A template is compiled with each tag rewritten into an expression: printing nothing
//! for ordinary rendering, or a private-use marker character when the spans are wanted.

use crate::error::{Result, TextError};

/// The start and end markers of a `{% generation %}` block in a rendered text (Unicode
/// private-use characters, which no chat template or tokenizer vocabulary relies on).
const BLOCK_START: char = '\u{E000}';
const BLOCK_END: char = '\u{E001}';

/// Whether `source` marks assistant text with `{% generation %}` blocks.
pub fn has_generation_blocks(source: &str) -> bool {
    generation_tags(source).next().is_some()
}

/// The tag texts of `{% generation %}` and `{% endgeneration %}` in `source`, with their byte
/// ranges and whether each opens a block.
pub(crate) fn generation_tags(source: &str) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(i) = source[at..].find("{%") {
            let open = at + i;
            let close = open + source[open..].find("%}")? + 2;
            at = close;
            let inner = source[open + 2..close - 2].trim_matches(|c: char| c == '-' || c == '+');
            match inner.trim() {
                "generation" => return Some((open, close, true)),
                "endgeneration" => return Some((open, close, false)),
                _ => {}
            }
        }
        None
    })
}

/// `source` with each generation block tag replaced by an expression printing its marker (with
/// `markers`) or nothing (without: the template as `apply_chat_template` renders it). The
/// whitespace a block tag would strip under transformers' settings (`lstrip_blocks`: the spaces
/// before it on its line; `trim_blocks`: the newline after it; `{%-`/`-%}`: all whitespace on
/// that side) is stripped the same way.
pub(crate) fn rewrite(source: &str, markers: bool) -> String {
    let mut out = String::with_capacity(source.len());
    let mut at = 0;
    for (open, close, opens) in generation_tags(source).collect::<Vec<_>>() {
        let mut before = &source[at..open];
        let tag = &source[open..close];
        let strip_left = tag.starts_with("{%-");
        let strip_right = tag.ends_with("-%}");
        if !strip_left {
            // lstrip_blocks: only when the tag is the first thing on its line.
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            if before[line_start..].chars().all(|c| c == ' ' || c == '\t') {
                before = &before[..line_start];
            }
        }
        out.push_str(before);
        let marker = match (markers, opens) {
            (false, _) => String::new(),
            (true, true) => BLOCK_START.to_string(),
            (true, false) => BLOCK_END.to_string(),
        };
        out.push_str(&format!(
            "{{{{{} '{marker}' {}}}}}",
            if strip_left { "-" } else { "" },
            if strip_right { "-" } else { "" }
        ));
        at = close;
        if !strip_right && source[at..].starts_with('\n') {
            at += 1; // trim_blocks
        }
    }
    out.push_str(&source[at..]);
    out
}

/// The text without its block markers, and the byte span of each block in it.
pub(crate) fn split_markers(marked: &str) -> Result<(String, Vec<(usize, usize)>)> {
    let mut text = String::with_capacity(marked.len());
    let mut spans = Vec::new();
    let mut open: Option<usize> = None;
    for c in marked.chars() {
        match c {
            BLOCK_START if open.is_none() => open = Some(text.len()),
            BLOCK_END => {
                let start = open.take().ok_or_else(|| {
                    TextError::Prompt("{% endgeneration %} without {% generation %}".into())
                })?;
                spans.push((start, text.len()));
            }
            BLOCK_START => {
                return Err(TextError::Prompt("nested {% generation %} blocks".into()));
            }
            c => text.push(c),
        }
    }
    if open.is_some() {
        return Err(TextError::Prompt(
            "{% generation %} without {% endgeneration %}".into(),
        ));
    }
    Ok((text, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_tags_become_markers_with_the_whitespace_a_block_tag_strips() {
        let src = "a\n    {% generation %}\nB{%- endgeneration -%}  c";
        assert_eq!(
            rewrite(src, true),
            "a\n{{ '\u{E000}' }}B{{- '\u{E001}' -}}  c"
        );
        let (text, spans) = split_markers("x\u{E000}yz\u{E001}w\u{E000}v\u{E001}").unwrap();
        assert_eq!(text, "xyzwv");
        assert_eq!(spans, vec![(1, 3), (4, 5)]);
        assert!(split_markers("\u{E000}a").is_err());
        assert!(split_markers("a\u{E001}").is_err());
    }
}
