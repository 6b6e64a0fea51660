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
}
