//! Metadata typing: which keys of the sample become typed columns, and how one record's
//! metadata is split between those columns and the JSON column.
//!
//! Pinecone metadata values are strings, numbers (kept as 64-bit floats), booleans and lists
//! of strings. The key scan is `vmig_core::metadata`'s, with every number a float; what stays
//! here is this source's policy, which differs from Chroma's and Qdrant's `Layout`: its scan is
//! a sample, so a key the sample missed, or a value of another type, goes to the JSON column
//! instead of failing the read.

use serde_json::{Map, Value};
use vmig_core::metadata::{column_name_ok, KeyScan, Kind};

/// Names of vmig's own columns; a metadata key with one of them goes into the JSON column.
const RESERVED: [&str; 5] = ["id", "vector", "sparse_vector", "namespace", "metadata"];

/// A scan of Pinecone metadata: its numbers are 64-bit floats, so every number is
/// [`Kind::Float`].
pub(crate) fn scan() -> KeyScan {
    KeyScan::numbers_as_float()
}

/// The typed columns: keys of one scalar kind whose names can be columns, sorted.
pub(crate) fn typed(scan: &KeyScan) -> Vec<(String, Kind)> {
    scan.keys()
        .iter()
        .filter(|(k, kind)| **kind != Kind::Json && column_name_ok(k, &RESERVED))
        .map(|(k, kind)| (k.clone(), *kind))
        .collect()
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
            Ok(i) if KeyScan::numbers_as_float().kind_of(v) == Some(typed[i].1) => {
                cols[i] = Some(v)
            }
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
        let mut s = scan();
        let a = json!({"genre": "drama", "year": 2020, "score": 0.5, "ok": true,
            "tags": ["a", "b"], "mix": 1, "bad key": "x", "id": "shadow"});
        let b = json!({"genre": "comedy", "year": 1999.5, "mix": "one"});
        s.observe(a.as_object().unwrap());
        s.observe(b.as_object().unwrap());
        let typed = typed(&s);
        let names: Vec<&str> = typed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["genre", "ok", "score", "year"]);
        assert_eq!(typed[3].1, Kind::Float);
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
