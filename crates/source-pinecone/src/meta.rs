//! Metadata typing: which keys of the sample become typed columns, and how one record's
//! metadata is split between those columns and the JSON column.
//!
//! Pinecone metadata values are strings, numbers (kept as 64-bit floats), booleans and lists
//! of strings. Kept private to this crate: the `chroma` source's typing differs (Chroma keeps
//! integers as integers, and fails on keys its full scan did not see, where this one puts them
//! in the JSON column because its scan is a sample).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The type of a typed metadata column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string: VarChar.
    Str,
    /// A number: Double.
    Num,
    /// A boolean: Bool.
    Bool,
    /// Lists, several types: the JSON column.
    Json,
}

/// The kind of a value (`None` for null, which is no value).
pub(crate) fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Null => None,
        Value::String(_) => Some(Kind::Str),
        Value::Number(_) => Some(Kind::Num),
        Value::Bool(_) => Some(Kind::Bool),
        Value::Array(_) | Value::Object(_) => Some(Kind::Json),
    }
}

/// Names of vmig's own columns; a metadata key with one of them goes into the JSON column.
const RESERVED: [&str; 6] = [
    "id",
    "vector",
    "sparse_vector",
    "namespace",
    "metadata",
    "$meta",
];

/// Whether `key` can be a Milvus field name (`[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes) and
/// is not one of vmig's own.
pub(crate) fn column_name_ok(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 255
        && !RESERVED.contains(&key)
}

/// The keys met in a sample, each with its kind (`Json` when it had several).
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyScan {
    pub(crate) keys: BTreeMap<String, Kind>,
}

impl KeyScan {
    /// Adds one record's metadata.
    pub(crate) fn add(&mut self, meta: &Map<String, Value>) {
        for (k, v) in meta {
            let Some(kind) = kind_of(v) else { continue };
            self.keys
                .entry(k.clone())
                .and_modify(|old| {
                    if *old != kind {
                        *old = Kind::Json;
                    }
                })
                .or_insert(kind);
        }
    }

    /// The typed columns: keys of one scalar kind whose names can be columns, sorted.
    pub(crate) fn typed(&self) -> Vec<(String, Kind)> {
        self.keys
            .iter()
            .filter(|(k, kind)| **kind != Kind::Json && column_name_ok(k))
            .map(|(k, kind)| (k.clone(), *kind))
            .collect()
    }
}

/// One record's metadata split over the typed columns (in `typed` order; `None` = null) and
/// the rest (keys not typed, and values that do not fit their column).
pub(crate) fn split<'a>(
    typed: &[(String, Kind)],
    meta: Option<&'a Map<String, Value>>,
) -> (Vec<Option<&'a Value>>, Map<String, Value>) {
    let mut cols = vec![None; typed.len()];
    let mut rest = Map::new();
    let Some(meta) = meta else {
        return (cols, rest);
    };
    for (k, v) in meta {
        if v.is_null() {
            continue;
        }
        match typed.binary_search_by(|(t, _)| t.as_str().cmp(k)) {
            Ok(i) if kind_of(v) == Some(typed[i].1) => cols[i] = Some(v),
            _ => {
                rest.insert(k.clone(), v.clone());
            }
        }
    }
    (cols, rest)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sample_kinds_and_split() {
        let mut s = KeyScan::default();
        let a = json!({"genre": "drama", "year": 2020, "score": 0.5, "ok": true,
            "tags": ["a", "b"], "mix": 1, "bad key": "x", "id": "shadow"});
        let b = json!({"genre": "comedy", "year": 1999.5, "mix": "one"});
        s.add(a.as_object().unwrap());
        s.add(b.as_object().unwrap());
        let typed = s.typed();
        let names: Vec<&str> = typed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["genre", "ok", "score", "year"]);
        assert_eq!(typed[3].1, Kind::Num);
        // A later record: a key the sample did not see, and a value of another type.
        let c = json!({"genre": 7, "year": 3, "new": "n", "tags": ["z"]});
        let (cols, rest) = split(&typed, c.as_object());
        assert_eq!(cols, vec![None, None, None, Some(&json!(3))]);
        assert_eq!(
            Value::Object(rest),
            json!({"genre": 7, "new": "n", "tags": ["z"]})
        );
    }
}
