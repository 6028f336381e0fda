//! Free-form JSON key/value metadata (Chroma metadata, Qdrant payloads) as Arrow columns.
//!
//! The one decision: **the columns are learned by a scan, then enforced.** A source feeds every
//! scanned row's object to a [`KeyScan`]; each key seen with one scalar type becomes a typed
//! nullable column (int → Int64, float → Float64, str → Utf8, bool → Boolean), and keys with
//! several types, lists or objects — or names that cannot be Milvus fields — go together into
//! one JSON column ([`Layout`]). [`MetadataMode::Json`] puts everything in that column,
//! [`MetadataMode::Dynamic`] in Milvus's dynamic field `$meta`. While reading, a value that does
//! not fit the scanned type, or a key the scan did not see (with no JSON column to hold it), is
//! an [`Error::Data`] naming the row and key: the data changed after the scan, or a partial scan
//! missed it.
//!
//! Also here: [`parse_floats`], which reads a JSON array of numbers as `f32` straight from its
//! text (`f32::from_str` on each element, so a server that prints shortest-`f32` decimals is
//! copied bit-exactly, with no detour through `f64`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::vector;
use crate::{Error, Result};

/// Where the metadata goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// One typed column per key (keys of mixed types go into the source's JSON column).
    #[default]
    Columns,
    /// All metadata in the source's one nullable JSON column.
    Json,
    /// All metadata in Milvus's dynamic field (`$meta`, a JSON object per row, `{}` when none).
    Dynamic,
}

/// The type of a key, as seen by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON integers that fit `i64`.
    Int,
    /// Other JSON numbers.
    Float,
    /// Strings.
    Str,
    /// Booleans.
    Bool,
    /// Several types, lists, objects, or a name that cannot be a column: the JSON column.
    Json,
}

/// The kind of one value; `None` for `null` (which fits every column).
pub fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(n) if n.is_i64() => Some(Kind::Int),
        Value::Number(n) if n.is_f64() => Some(Kind::Float),
        Value::String(_) => Some(Kind::Str),
        _ => Some(Kind::Json),
    }
}

/// The keys met so far, with their kinds.
#[derive(Debug, Clone, Default)]
pub struct KeyScan {
    keys: BTreeMap<String, Kind>,
    numbers_as_float: bool,
}

impl KeyScan {
    /// A scan for a product whose numbers are all 64-bit floats (Pinecone's metadata): every
    /// number is [`Kind::Float`], so `1` and `1.5` under one key make a Float64 column rather
    /// than a JSON one.
    pub fn numbers_as_float() -> KeyScan {
        KeyScan {
            keys: BTreeMap::new(),
            numbers_as_float: true,
        }
    }

    /// The kind this scan gives `v`.
    pub fn kind_of(&self, v: &Value) -> Option<Kind> {
        match kind_of(v) {
            Some(Kind::Int) if self.numbers_as_float => Some(Kind::Float),
            k => k,
        }
    }

    /// Records every non-null key of one row.
    pub fn observe(&mut self, row: &Map<String, Value>) {
        for (k, v) in row {
            let Some(kind) = self.kind_of(v) else {
                continue;
            };
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

    /// The keys and their kinds, sorted by name.
    pub fn keys(&self) -> &BTreeMap<String, Kind> {
        &self.keys
    }
}

/// How a source names things in its messages: e.g. `"metadata key"`, `"metadata_scan_rows"`,
/// `"metadata_mode"`.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// What one key is called (`metadata key`, `payload key`).
    pub key: &'static str,
    /// The option that limits the scan (`metadata_scan_rows`).
    pub scan_option: &'static str,
    /// The option choosing the [`MetadataMode`] (`metadata_mode`).
    pub mode_option: &'static str,
}

/// Whether `key` can be a Milvus field name (`[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes) and
/// is none of `reserved`.
pub fn column_name_ok(key: &str, reserved: &[&str]) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 255
        && !reserved.contains(&key)
        && key != "$meta"
}

/// `f` marked `milvus.nullable = true`, so the milvus2 sink creates it nullable on Milvus 2.5+
/// (older versions have no nullable fields: a null then stops the job there).
pub fn nullable(f: Field) -> Field {
    let mut m = f.metadata().clone();
    m.insert("milvus.nullable".to_string(), "true".to_string());
    f.with_metadata(m)
}

/// The metadata columns of a source: the typed ones and the JSON column, if any.
#[derive(Debug, Clone)]
pub struct Layout {
    mode: MetadataMode,
    typed: Vec<(String, Kind)>,
    json_keys: Vec<String>,
    json_column: bool,
    json_name: String,
    words: Words,
}

impl Layout {
    /// The layout for `mode` from `scan` (ignored unless `mode` is `Columns`). `json_name` names
    /// the JSON column (`metadata`, `payload`); `reserved` are the source's own column names.
    pub fn new(
        mode: MetadataMode,
        scan: &KeyScan,
        json_name: &str,
        reserved: &[&str],
        words: Words,
    ) -> Layout {
        let mut typed = Vec::new();
        let mut json_keys = Vec::new();
        if mode == MetadataMode::Columns {
            for (k, kind) in scan.keys() {
                if *kind != Kind::Json && k != json_name && column_name_ok(k, reserved) {
                    typed.push((k.clone(), *kind));
                } else {
                    json_keys.push(k.clone());
                }
            }
        }
        let json_column = mode != MetadataMode::Columns || !json_keys.is_empty();
        Layout {
            mode,
            typed,
            json_keys,
            json_column,
            json_name: json_name.to_string(),
            words,
        }
    }

    /// The typed columns, in order.
    pub fn typed(&self) -> &[(String, Kind)] {
        &self.typed
    }

    /// Keys that go into the JSON column in `Columns` mode.
    pub fn json_keys(&self) -> &[String] {
        &self.json_keys
    }

    /// Whether the metadata goes into the dynamic field (then the schema should carry
    /// `milvus.dynamic_field = true`).
    pub fn is_dynamic(&self) -> bool {
        self.mode == MetadataMode::Dynamic
    }

    /// The Arrow fields: the typed columns (nullable), then the JSON column when there is one
    /// (`$meta` with `milvus.dynamic` in dynamic mode).
    pub fn fields(&self) -> Vec<Field> {
        let mut fields: Vec<Field> = self
            .typed
            .iter()
            .map(|(k, kind)| {
                let dt = match kind {
                    Kind::Int => DataType::Int64,
                    Kind::Float => DataType::Float64,
                    Kind::Bool => DataType::Boolean,
                    Kind::Str | Kind::Json => DataType::Utf8,
                };
                nullable(Field::new(k, dt, true))
            })
            .collect();
        match self.mode {
            MetadataMode::Dynamic => {
                let f = vector::json_field("$meta", false);
                let mut m = f.metadata().clone();
                m.insert("milvus.dynamic".to_string(), "true".to_string());
                fields.push(f.with_metadata(m));
            }
            _ if self.json_column => {
                fields.push(nullable(vector::json_field(&self.json_name, true)));
            }
            _ => {}
        }
        fields
    }

    /// A builder of these columns for about `rows` rows.
    pub fn builder(&self, rows: usize) -> RowsBuilder<'_> {
        RowsBuilder {
            layout: self,
            cols: self
                .typed
                .iter()
                .map(|(_, k)| match k {
                    Kind::Int => Col::Int(Int64Builder::with_capacity(rows)),
                    Kind::Float => Col::Float(Float64Builder::with_capacity(rows)),
                    Kind::Bool => Col::Bool(BooleanBuilder::with_capacity(rows)),
                    Kind::Str | Kind::Json => Col::Str(StringBuilder::new()),
                })
                .collect(),
            json: StringBuilder::new(),
        }
    }
}

enum Col {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

/// Builds the metadata columns of one batch, row by row.
pub struct RowsBuilder<'a> {
    layout: &'a Layout,
    cols: Vec<Col>,
    json: StringBuilder,
}

impl std::fmt::Debug for RowsBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsBuilder")
            .field("layout", self.layout)
            .finish_non_exhaustive()
    }
}

impl RowsBuilder<'_> {
    /// Appends one row's metadata (`None`: the row has none). `location` names the row for
    /// errors (e.g. "Chroma collection `c` at http://…, id `7`").
    ///
    /// # Errors
    /// A value whose type is not its column's, or a key the layout has no place for.
    pub fn append(&mut self, meta: Option<&Map<String, Value>>, location: &str) -> Result<()> {
        let layout = self.layout;
        let w = layout.words;
        if layout.mode != MetadataMode::Columns {
            match (meta, layout.mode) {
                (Some(m), _) => self.json.append_value(Value::Object(m.clone()).to_string()),
                (None, MetadataMode::Dynamic) => self.json.append_value("{}"),
                (None, _) => self.json.append_null(),
            }
            return Ok(());
        }
        let mut used = 0;
        for ((key, kind), col) in layout.typed.iter().zip(self.cols.iter_mut()) {
            let v = meta.and_then(|m| m.get(key)).filter(|v| !v.is_null());
            if v.is_some() {
                used += 1;
            }
            let wrong = |v: &Value| {
                Error::data(
                    format!("{location}, {} `{key}`", w.key),
                    format!(
                        "the value {v} is not a {kind:?} as the key scan found; rows were written after the scan, or `{}` missed it (raise it, or use `{} = \"json\"`)",
                        w.scan_option, w.mode_option
                    ),
                )
            };
            match (col, v) {
                (Col::Int(b), Some(v)) => b.append_value(v.as_i64().ok_or_else(|| wrong(v))?),
                (Col::Float(b), Some(v)) if v.is_f64() => {
                    b.append_value(v.as_f64().ok_or_else(|| wrong(v))?);
                }
                (Col::Bool(b), Some(v)) => b.append_value(v.as_bool().ok_or_else(|| wrong(v))?),
                (Col::Str(b), Some(v)) => b.append_value(v.as_str().ok_or_else(|| wrong(v))?),
                (_, Some(v)) => return Err(wrong(v)),
                (Col::Int(b), None) => b.append_null(),
                (Col::Float(b), None) => b.append_null(),
                (Col::Bool(b), None) => b.append_null(),
                (Col::Str(b), None) => b.append_null(),
            }
        }
        let mut rest = Map::new();
        if let Some(m) = meta {
            let non_null = m.values().filter(|v| !v.is_null()).count();
            if non_null > used {
                for (k, v) in m {
                    if v.is_null() || layout.typed.iter().any(|(t, _)| t == k) {
                        continue;
                    }
                    if !layout.json_column {
                        return Err(Error::data(
                            format!("{location}, {} `{k}`", w.key),
                            format!(
                                "the key scan did not see this key; rows were written after the scan, or `{}` missed it (raise it, or use `{} = \"json\"`)",
                                w.scan_option, w.mode_option
                            ),
                        ));
                    }
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        if layout.json_column {
            if rest.is_empty() {
                self.json.append_null();
            } else {
                self.json.append_value(Value::Object(rest).to_string());
            }
        }
        Ok(())
    }

    /// The columns, in [`Layout::fields`] order.
    pub fn finish(self) -> Vec<ArrayRef> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len() + 1);
        for c in self.cols {
            arrays.push(match c {
                Col::Int(mut b) => Arc::new(b.finish()),
                Col::Float(mut b) => Arc::new(b.finish()),
                Col::Bool(mut b) => Arc::new(b.finish()),
                Col::Str(mut b) => Arc::new(b.finish()),
            });
        }
        if self.layout.json_column {
            let mut j = self.json;
            arrays.push(Arc::new(j.finish()));
        }
        arrays
    }
}

/// Parses the text of a JSON array of numbers straight into `out`, each element with
/// `f32::from_str` (exact for servers that print `f32` values: the decimal text is rounded to
/// `f32` once, never through `f64`). Returns the number of elements.
///
/// One pass over the bytes: each element's extent is found while scanning, so the hot loop of
/// the HTTP sources (hundreds of millions of elements) splits and trims nothing.
///
/// # Errors
/// The text is not an array, or an element is not a number; the message says which.
pub fn parse_floats(raw: &str, out: &mut Vec<f32>) -> std::result::Result<usize, String> {
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("the vector is not a JSON array: {raw:.80}"))?;
    let b = inner.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if i == b.len() {
        return Ok(0);
    }
    let mut n = 0;
    loop {
        let start = i;
        while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E') {
            i += 1;
        }
        // Token boundaries are ASCII bytes, so `start..i` is a char boundary range.
        let t = &inner[start..i];
        let v: f32 = t.parse().map_err(|_| {
            let bad: String = inner[start..].chars().take_while(|c| *c != ',').collect();
            format!("vector element `{}` is not a number", bad.trim())
        })?;
        out.push(v);
        n += 1;
        i = skip_ws(i);
        match b.get(i) {
            None => return Ok(n),
            Some(b',') => i = skip_ws(i + 1),
            Some(_) => {
                let bad: String = inner[start..].chars().take_while(|c| *c != ',').collect();
                return Err(format!("vector element `{}` is not a number", bad.trim()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const W: Words = Words {
        key: "payload key",
        scan_option: "scan_rows",
        mode_option: "mode",
    };

    #[test]
    fn scan_types_columns_and_routes_the_rest_to_json() {
        let rows = [
            json!({"n": 1, "s": "a", "mix": 1, "obj": {"a": 1}, "bad name": true, "id": 3}),
            json!({"n": null, "s": "b", "mix": "x", "f": 0.5}),
        ];
        let mut scan = KeyScan::default();
        for r in &rows {
            scan.observe(r.as_object().unwrap_or(&Map::new()));
        }
        let layout = Layout::new(MetadataMode::Columns, &scan, "payload", &["id"], W);
        let names: Vec<String> = layout.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["f", "n", "s", "payload"]);
        assert_eq!(layout.json_keys(), ["bad name", "id", "mix", "obj"]);
        let mut b = layout.builder(2);
        for r in &rows {
            b.append(r.as_object(), "row")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let cols = b.finish();
        assert_eq!(cols.len(), 4);
        let mut b = layout.builder(1);
        let e = b
            .append(json!({"n": "text"}).as_object(), "row 9")
            .expect_err("wrong type");
        assert!(e.to_string().contains("row 9, payload key `n`"), "{e}");
        assert!(e.to_string().contains("`mode = \"json\"`"), "{e}");
    }

    #[test]
    fn numbers_as_float_makes_one_float_column() {
        let row = json!({"n": 1, "x": 2});
        let row2 = json!({"n": 1.5, "x": 3});
        let mut plain = KeyScan::default();
        let mut floats = KeyScan::numbers_as_float();
        for r in [&row, &row2] {
            plain.observe(r.as_object().unwrap_or(&Map::new()));
            floats.observe(r.as_object().unwrap_or(&Map::new()));
        }
        assert_eq!(plain.keys()["n"], Kind::Json);
        assert_eq!(plain.keys()["x"], Kind::Int);
        assert_eq!(floats.keys()["n"], Kind::Float);
        assert_eq!(floats.keys()["x"], Kind::Float);
    }

    #[test]
    fn floats_parse_exactly() {
        let mut out = Vec::new();
        assert_eq!(parse_floats("[0.1, -2e-3,3]", &mut out), Ok(3));
        assert_eq!(out, [0.1f32, -2e-3, 3.0]);
        assert!(parse_floats("{}", &mut out).is_err());
        assert_eq!(
            parse_floats("[1, x]", &mut out),
            Err("vector element `x` is not a number".to_string())
        );
        assert_eq!(
            parse_floats("[1, 2 3]", &mut out),
            Err("vector element `2 3` is not a number".to_string())
        );
        assert_eq!(
            parse_floats("[1,]", &mut out),
            Err("vector element `` is not a number".to_string())
        );
        out.clear();
        assert_eq!(parse_floats(" [ ] ", &mut out), Ok(0));
        assert_eq!(
            parse_floats("[ 1.5 ,\n-0 , 3.4028235e38 ]", &mut out),
            Ok(3)
        );
        assert_eq!(out, [1.5f32, -0.0, f32::MAX]);
        assert!(out[1].is_sign_negative());
    }
}
