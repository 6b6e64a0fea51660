//! Python's `json.dumps(value, ensure_ascii=False, ...)` for template values.
//!
//! Hugging Face `apply_chat_template` installs a `tojson` filter that calls
//! `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)`.
//! Its output differs from minijinja's built-in `tojson` (which writes compact JSON and escapes
//! `<`, `>`, `&` and `'`), so chat templates that serialise tool specs need this one.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// Formatting options of `json.dumps`.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    /// `indent`: `None` writes everything on one line.
    pub indent: Option<String>,
    /// `separators`: `(item, key)`; `None` is Python's default (`", "`/`": "`, or `","`/`": "`
    /// when indenting).
    pub separators: Option<(String, String)>,
    /// `sort_keys`.
    pub sort_keys: bool,
}

/// The `tojson` filter as transformers defines it: `x | tojson(indent=None, separators=None,
/// sort_keys=False)`, always with `ensure_ascii=False`.
pub fn tojson_filter(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) => {
            let n = v.as_usize().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an int or a string",
                )
            })?;
            Some(" ".repeat(n))
        }
    };
    let separators = match kwargs.get::<Option<Value>>("separators")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .filter(|p: &Vec<String>| p.len() == 2)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be a pair of strings",
                    )
                })?;
            Some((parts[0].clone(), parts[1].clone()))
        }
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let opts = DumpOptions {
        indent,
        separators,
        sort_keys,
    };
    Ok(Value::from_safe_string(dumps(value, &opts)?))
}

/// Serialises `value` exactly as Python's `json.dumps(value, ensure_ascii=False, ...)` would.
pub fn dumps(value: &Value, opts: &DumpOptions) -> Result<String, Error> {
    let (item_sep, key_sep) = match (&opts.separators, &opts.indent) {
        (Some((i, k)), _) => (i.as_str(), k.as_str()),
        (None, Some(_)) => (",", ": "),
        (None, None) => (", ", ": "),
    };
    let mut out = String::new();
    let mut w = Writer {
        out: &mut out,
        indent: opts.indent.as_deref(),
        item_sep,
        key_sep,
        sort_keys: opts.sort_keys,
    };
    w.value(value, 0)?;
    Ok(out)
}

struct Writer<'a> {
    out: &'a mut String,
    indent: Option<&'a str>,
    item_sep: &'a str,
    key_sep: &'a str,
    sort_keys: bool,
}

impl Writer<'_> {
    fn value(&mut self, v: &Value, level: usize) -> Result<(), Error> {
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => self.out.push_str(&v.to_string()),
            ValueKind::Number => {
                let f = f64::try_from(v.clone())?;
                self.out.push_str(&python_float_repr(f));
            }
            ValueKind::String => self.string(v.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container('[', ']', items.len(), level, |w, i, lvl| {
                    w.value(&items[i], lvl)
                })?;
            }
            ValueKind::Map => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for key in v.try_iter()? {
                    let item = v.get_item(&key)?;
                    entries.push((key_string(&key)?, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container('{', '}', entries.len(), level, |w, i, lvl| {
                    w.string(&entries[i].0);
                    w.out.push_str(w.key_sep);
                    w.value(&entries[i].1, lvl)
                })?;
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a {kind} is not JSON serializable"),
                ));
            }
        }
        Ok(())
    }

    fn container(
        &mut self,
        open: char,
        close: char,
        len: usize,
        level: usize,
        mut item: impl FnMut(&mut Self, usize, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.out.push(open);
        if len == 0 {
            self.out.push(close);
            return Ok(());
        }
        for i in 0..len {
            if i > 0 {
                self.out.push_str(self.item_sep);
            }
            if let Some(ind) = self.indent {
                self.out.push('\n');
                self.out.push_str(&ind.repeat(level + 1));
            }
            item(self, i, level + 1)?;
        }
        if let Some(ind) = self.indent {
            self.out.push('\n');
            self.out.push_str(&ind.repeat(level));
        }
        self.out.push(close);
        Ok(())
    }

    fn string(&mut self, s: &str) {
        // serde_json escapes exactly what Python does with ensure_ascii=False:
        // `"`, `\`, \b \f \n \r \t and other control characters below U+0020 as \u00XX.
        self.out
            .push_str(&serde_json::to_string(s).expect("serialising a str cannot fail"));
    }
}

/// Python converts `None`, bools and numbers used as keys to strings; anything else is an error.
fn key_string(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::None | ValueKind::Undefined => Ok("null".to_owned()),
        ValueKind::Bool | ValueKind::Number => {
            let mut s = String::new();
            Writer {
                out: &mut s,
                indent: None,
                item_sep: ", ",
                key_sep: ": ",
                sort_keys: false,
            }
            .value(key, 0)?;
            Ok(s)
        }
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
        )),
    }
}

/// Python's `repr(float)` / `float.__repr__` as `json.dumps` writes it (shortest round-trip digits,
/// scientific notation when the exponent is below -4 or at least 16).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5", "1e16", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let body = if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (123456.789, "123456.789"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e100, "1.2345e+100"),
            (-2.5e-10, "-2.5e-10"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn dumps_matches_python_defaults() {
        let v: Value = serde_json::from_str(
            r#"{"name": "f", "b": [1, 2.5, true, null, "é\n\"<>&'"], "a": {}, "c": []}"#,
        )
        .unwrap();
        // Python: json.dumps(v, ensure_ascii=False)
        assert_eq!(
            dumps(&v, &DumpOptions::default()).unwrap(),
            r#"{"name": "f", "b": [1, 2.5, true, null, "é\n\"<>&'"], "a": {}, "c": []}"#
        );
        let opts = DumpOptions {
            indent: Some("  ".into()),
            sort_keys: true,
            ..Default::default()
        };
        assert_eq!(
            dumps(&v, &opts).unwrap(),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null,\n    \"é\\n\\\"<>&'\"\n  ],\n  \"c\": [],\n  \"name\": \"f\"\n}"
        );
    }
}
