//! A JSON value that keeps the order and the duplicates of object keys, so that a record with the
//! same option letter twice can be reported instead of silently keeping the last one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JVal {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<JVal>),
    /// Entries in file order, duplicates kept.
    Obj(Vec<(String, JVal)>),
}

impl JVal {
    /// `a string`, `a number`, ... for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            JVal::Null => "null",
            JVal::Bool(_) => "a boolean",
            JVal::Int(_) | JVal::Float(_) => "a number",
            JVal::Str(_) => "a string",
            JVal::Arr(_) => "an array",
            JVal::Obj(_) => "an object",
        }
    }

    /// The first entry named `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&JVal> {
        match self {
            JVal::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as JSON text, object keys in file order (a float keeps a fraction, `1.0`, as
    /// Python's `json.dumps` writes it).
    pub(crate) fn to_json_text(&self) -> String {
        match self {
            JVal::Null => "null".into(),
            JVal::Bool(b) => b.to_string(),
            JVal::Int(i) => i.to_string(),
            JVal::Float(f) => format!("{f:?}"),
            JVal::Str(s) => serde_json::to_string(s).expect("a string serialises"),
            JVal::Arr(items) => {
                let items: Vec<String> = items.iter().map(JVal::to_json_text).collect();
                format!("[{}]", items.join(", "))
            }
            JVal::Obj(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| {
                        let key = serde_json::to_string(k).expect("a string serialises");
                        format!("{key}: {}", v.to_json_text())
                    })
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
        }
    }

    pub(crate) fn entries(&self) -> Option<&[(String, JVal)]> {
        match self {
            JVal::Obj(entries) => Some(entries),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for JVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JValVisitor)
    }
}

struct JValVisitor;

impl<'de> Visitor<'de> for JValVisitor {
    type Value = JVal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JVal, E> {
        Ok(JVal::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JVal, E> {
        Ok(JVal::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JVal, E> {
        Ok(JVal::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JVal, E> {
        Ok(JVal::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<JVal, E> {
        Ok(JVal::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<JVal, E> {
        Ok(JVal::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<JVal, E> {
        Ok(JVal::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<JVal, E> {
        Ok(JVal::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<JVal, D::Error> {
        JVal::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JVal, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(JVal::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JVal, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, JVal>()? {
            entries.push((k, v));
        }
        Ok(JVal::Obj(entries))
    }
}

/// Parses one JSON text, keeping duplicate keys.
pub(crate) fn parse(text: &str) -> serde_json::Result<JVal> {
    serde_json::from_str(text)
}

/// A piece of a JSON array file: an element's text, or where and why the array is malformed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ArrayItem<'a> {
    /// An element: its byte offset in the text and its text (not parsed: it may still be
    /// invalid JSON).
    Element { start: usize, text: &'a str },
    /// The array is malformed at byte `at`; nothing follows.
    Broken { at: usize, message: &'static str },
}

/// Splits the text of a JSON array (`[ {...}, {...} ]`, a leading byte-order mark allowed) into
/// its elements without parsing them, so that each element can be parsed, located and reported
/// on its own. Only strings (with their escapes) and bracket depth are followed: an element with
/// bad JSON inside is still found, and its parse reports the error.
///
/// The cursor holds only a position, so that its owner may also own the text; [`ArrayScanner`]
/// is the same as an iterator over a borrowed text.
#[derive(Clone, Debug)]
pub(crate) struct ArrayCursor {
    pos: usize,
    state: ScanState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    Open,
    Element,
    Closed,
    Done,
}

impl ArrayCursor {
    pub(crate) fn new() -> Self {
        ArrayCursor {
            pos: 0,
            state: ScanState::Open,
        }
    }

    /// A cursor that yields nothing.
    pub(crate) fn done() -> Self {
        ArrayCursor {
            pos: 0,
            state: ScanState::Done,
        }
    }

    fn skip_whitespace(&mut self, b: &[u8]) {
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn broken<'t>(&mut self, at: usize, message: &'static str) -> Option<ArrayItem<'t>> {
        self.state = ScanState::Done;
        Some(ArrayItem::Broken { at, message })
    }

    /// The next element of `text` (always the same text), or `None` after the last one.
    pub(crate) fn next_in<'t>(&mut self, text: &'t str) -> Option<ArrayItem<'t>> {
        let b = text.as_bytes();
        match self.state {
            ScanState::Done => return None,
            ScanState::Closed => {
                self.state = ScanState::Done;
                self.skip_whitespace(b);
                if self.pos < b.len() {
                    return self.broken(self.pos, "text after the end of the array");
                }
                return None;
            }
            ScanState::Open => {
                if text.starts_with('\u{feff}') {
                    self.pos = '\u{feff}'.len_utf8();
                }
                self.skip_whitespace(b);
                if b.get(self.pos) != Some(&b'[') {
                    return self.broken(self.pos, "expected `[` to open a JSON array");
                }
                self.pos += 1;
                self.skip_whitespace(b);
                if b.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    self.state = ScanState::Closed;
                    return self.next_in(text);
                }
                self.state = ScanState::Element;
            }
            ScanState::Element => {}
        }
        self.skip_whitespace(b);
        let start = self.pos;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, &c) in b.iter().enumerate().skip(start) {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' if depth > 0 => {}
                b']' | b',' => {
                    let element = text[start..i].trim_end();
                    self.pos = i + 1;
                    if element.is_empty() {
                        return self.broken(
                            i,
                            "expected a record here (an empty place between commas or brackets)",
                        );
                    }
                    if c == b']' {
                        self.state = ScanState::Closed;
                    }
                    return Some(ArrayItem::Element {
                        start,
                        text: element,
                    });
                }
                b'}' => return self.broken(i, "a `}` that closes nothing"),
                _ => {}
            }
        }
        self.broken(
            start,
            "the array does not end: `]` is missing, or a bracket or quote of this record is unbalanced",
        )
    }
}

/// [`ArrayCursor`] over a borrowed text, as an iterator.
pub(crate) struct ArrayScanner<'a> {
    text: &'a str,
    cursor: ArrayCursor,
}

impl<'a> ArrayScanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        ArrayScanner {
            text,
            cursor: ArrayCursor::new(),
        }
    }
}

impl<'a> Iterator for ArrayScanner<'a> {
    type Item = ArrayItem<'a>;

    fn next(&mut self) -> Option<ArrayItem<'a>> {
        self.cursor.next_in(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let v = parse(r#"{"b": 1, "a": [true, null, "x", 2.5], "b": {"c": -3}}"#).unwrap();
        let e = v.entries().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0], ("b".into(), JVal::Int(1)));
        assert_eq!(
            e[1].1,
            JVal::Arr(vec![
                JVal::Bool(true),
                JVal::Null,
                JVal::Str("x".into()),
                JVal::Float(2.5)
            ])
        );
        assert_eq!(v.get("b"), Some(&JVal::Int(1)));
        assert_eq!(e[2].1.get("c"), Some(&JVal::Int(-3)));
    }

    /// An element's offset and text, or where and why the array is broken.
    type Scanned<'a> = std::result::Result<(usize, &'a str), (usize, &'static str)>;

    fn scan(text: &str) -> Vec<Scanned<'_>> {
        ArrayScanner::new(text)
            .map(|item| match item {
                ArrayItem::Element { start, text } => Ok((start, text)),
                ArrayItem::Broken { at, message } => Err((at, message)),
            })
            .collect()
    }

    #[test]
    fn scans_array_elements() {
        assert_eq!(
            scan("\u{feff} [\n {\"a\": \"],}\\\"\"},\n [1, [2]] ,3\n]\n"),
            [
                Ok((7, "{\"a\": \"],}\\\"\"}")),
                Ok((24, "[1, [2]]")),
                Ok((34, "3"))
            ]
        );
        assert_eq!(scan("[]"), []);
        assert_eq!(
            scan(" [ ] x"),
            [Err((5, "text after the end of the array"))]
        );
        assert_eq!(scan("{}"), [Err((0, "expected `[` to open a JSON array"))]);
        assert_eq!(
            scan("[1,]"),
            [
                Ok((1, "1")),
                Err((
                    3,
                    "expected a record here (an empty place between commas or brackets)"
                ))
            ]
        );
        assert_eq!(
            scan("[{\"a\": 1}}, 2]"),
            [Err((9, "a `}` that closes nothing"))]
        );
        assert_eq!(
            scan("[1, {\"a\": \"x}]"),
            [
                Ok((1, "1")),
                Err((
                    4,
                    "the array does not end: `]` is missing, or a bracket or quote of this record is unbalanced"
                ))
            ]
        );
        // Bad JSON inside an element is the element's parser's business.
        assert_eq!(scan("[{\"a\" 1}]"), [Ok((1, "{\"a\" 1}"))]);
    }
}
