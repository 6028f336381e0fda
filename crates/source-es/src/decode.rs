//! Search hits to Arrow: one growable store per column, filled straight from the raw JSON text of
//! each `_source` value.
//!
//! Vectors are the bulk of the bytes, so their elements are parsed from the raw text with
//! `f32::from_str` (correctly rounded, so a float32 written as its shortest decimal comes back
//! bit-exact) straight into the column's buffer, with no intermediate `serde_json::Value`.
//! Every store can be truncated, so a document that fails half-way is removed from all columns
//! before the next one is read (`on_invalid = "skip"`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, ListArray, MapArray, StringArray, StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::value::RawValue;
use serde_json::Value;
use vmig_core::vector::float_vector_array;
use vmig_core::Result;

use crate::mapping::{Column, Kind};
use crate::SparseTokens;

/// Values of one column for the batch being built.
#[derive(Debug)]
enum Store {
    Str {
        data: Vec<u8>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
    I8(Vec<i8>, Vec<bool>),
    I16(Vec<i16>, Vec<bool>),
    I32(Vec<i32>, Vec<bool>),
    I64(Vec<i64>, Vec<bool>),
    F32(Vec<f32>, Vec<bool>),
    F64(Vec<f64>, Vec<bool>),
    Bool(Vec<bool>, Vec<bool>),
    FVec {
        values: Vec<f32>,
        dim: usize,
        rows: usize,
    },
    BVec {
        bytes: Vec<u8>,
        width: usize,
        rows: usize,
    },
    Sparse {
        offsets: Vec<i32>,
        keys: Vec<u32>,
        values: Vec<f32>,
    },
    List {
        offsets: Vec<i32>,
        valid: Vec<bool>,
        child: Box<Store>,
    },
}

/// A scalar value ready to be appended.
enum Scalar {
    Str(String),
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
}

impl Store {
    fn new(kind: &Kind, array: bool) -> Store {
        if array {
            return Store::List {
                offsets: vec![0],
                valid: Vec::new(),
                child: Box::new(Store::new(kind, false)),
            };
        }
        match kind {
            Kind::Id | Kind::Str | Kind::Json | Kind::DateText => Store::Str {
                data: Vec::new(),
                offsets: vec![0],
                valid: Vec::new(),
            },
            Kind::Int(8) => Store::I8(Vec::new(), Vec::new()),
            Kind::Int(16) => Store::I16(Vec::new(), Vec::new()),
            Kind::Int(32) => Store::I32(Vec::new(), Vec::new()),
            Kind::Int(_) | Kind::UnsignedLong | Kind::DateMillis(_) | Kind::DateNanos(_) => {
                Store::I64(Vec::new(), Vec::new())
            }
            Kind::F32 => Store::F32(Vec::new(), Vec::new()),
            Kind::F64 => Store::F64(Vec::new(), Vec::new()),
            Kind::Bool => Store::Bool(Vec::new(), Vec::new()),
            Kind::FloatVector { dim, .. } => Store::FVec {
                values: Vec::new(),
                dim: *dim,
                rows: 0,
            },
            Kind::BinaryVector { dim } => Store::BVec {
                bytes: Vec::new(),
                width: dim / 8,
                rows: 0,
            },
            Kind::Sparse(_) => Store::Sparse {
                offsets: vec![0],
                keys: Vec::new(),
                values: Vec::new(),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Store::Str { valid, .. } | Store::List { valid, .. } => valid.len(),
            Store::I8(_, v)
            | Store::I16(_, v)
            | Store::I32(_, v)
            | Store::I64(_, v)
            | Store::F32(_, v)
            | Store::F64(_, v)
            | Store::Bool(_, v) => v.len(),
            Store::FVec { rows, .. } | Store::BVec { rows, .. } => *rows,
            Store::Sparse { offsets, .. } => offsets.len() - 1,
        }
    }

    fn truncate(&mut self, n: usize) {
        if self.len() <= n {
            return;
        }
        match self {
            Store::Str {
                data,
                offsets,
                valid,
            } => {
                offsets.truncate(n + 1);
                data.truncate(offsets[n] as usize);
                valid.truncate(n);
            }
            Store::I8(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::I16(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::I32(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::I64(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::F32(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::F64(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::Bool(a, v) => {
                a.truncate(n);
                v.truncate(n);
            }
            Store::FVec { values, dim, rows } => {
                values.truncate(n * *dim);
                *rows = n;
            }
            Store::BVec { bytes, width, rows } => {
                bytes.truncate(n * *width);
                *rows = n;
            }
            Store::Sparse {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(n + 1);
                let end = offsets[n] as usize;
                keys.truncate(end);
                values.truncate(end);
            }
            Store::List {
                offsets,
                valid,
                child,
            } => {
                offsets.truncate(n + 1);
                child.truncate(offsets[n] as usize);
                valid.truncate(n);
            }
        }
    }

    fn push_null(&mut self) {
        match self {
            Store::Str { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.push(false);
            }
            Store::I8(a, v) => {
                a.push(0);
                v.push(false);
            }
            Store::I16(a, v) => {
                a.push(0);
                v.push(false);
            }
            Store::I32(a, v) => {
                a.push(0);
                v.push(false);
            }
            Store::I64(a, v) => {
                a.push(0);
                v.push(false);
            }
            Store::F32(a, v) => {
                a.push(0.0);
                v.push(false);
            }
            Store::F64(a, v) => {
                a.push(0.0);
                v.push(false);
            }
            Store::Bool(a, v) => {
                a.push(false);
                v.push(false);
            }
            Store::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.push(false);
            }
            // Vectors are never nullable; callers reject missing vectors before this.
            Store::FVec { .. } | Store::BVec { .. } | Store::Sparse { .. } => {}
        }
    }

    fn push_str(&mut self, s: &str) -> std::result::Result<(), String> {
        if let Store::Str {
            data,
            offsets,
            valid,
        } = self
        {
            data.extend_from_slice(s.as_bytes());
            let end = i32::try_from(data.len()).map_err(|_| {
                "more than 2 GiB of text in one batch; lower `batch_size`".to_string()
            })?;
            offsets.push(end);
            valid.push(true);
        }
        Ok(())
    }

    fn push_scalar(&mut self, v: Scalar) -> std::result::Result<(), String> {
        match (self, v) {
            (s @ Store::Str { .. }, Scalar::Str(t)) => return s.push_str(&t),
            (Store::I8(a, m), Scalar::Int(i)) => {
                a.push(i8::try_from(i).map_err(|_| format!("{i} does not fit a byte (Int8)"))?);
                m.push(true);
            }
            (Store::I16(a, m), Scalar::Int(i)) => {
                a.push(i16::try_from(i).map_err(|_| format!("{i} does not fit a short (Int16)"))?);
                m.push(true);
            }
            (Store::I32(a, m), Scalar::Int(i)) => {
                a.push(
                    i32::try_from(i).map_err(|_| format!("{i} does not fit an integer (Int32)"))?,
                );
                m.push(true);
            }
            (Store::I64(a, m), Scalar::Int(i)) => {
                a.push(i);
                m.push(true);
            }
            (Store::F32(a, m), Scalar::F32(f)) => {
                a.push(f);
                m.push(true);
            }
            (Store::F64(a, m), Scalar::F64(f)) => {
                a.push(f);
                m.push(true);
            }
            (Store::Bool(a, m), Scalar::Bool(b)) => {
                a.push(b);
                m.push(true);
            }
            _ => return Err("internal: value and column types differ".into()),
        }
        Ok(())
    }

    fn finish(self, field: &Field) -> Result<ArrayRef> {
        fn nulls(v: Vec<bool>) -> Option<NullBuffer> {
            if v.iter().all(|b| *b) {
                None
            } else {
                Some(NullBuffer::from(v))
            }
        }
        Ok(match self {
            Store::Str {
                data,
                offsets,
                valid,
            } => Arc::new(StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                data.into(),
                nulls(valid),
            )?),
            Store::I8(a, v) => Arc::new(Int8Array::new(a.into(), nulls(v))),
            Store::I16(a, v) => Arc::new(Int16Array::new(a.into(), nulls(v))),
            Store::I32(a, v) => Arc::new(Int32Array::new(a.into(), nulls(v))),
            Store::I64(a, v) => Arc::new(Int64Array::new(a.into(), nulls(v))),
            Store::F32(a, v) => Arc::new(Float32Array::new(a.into(), nulls(v))),
            Store::F64(a, v) => Arc::new(Float64Array::new(a.into(), nulls(v))),
            Store::Bool(a, v) => Arc::new(BooleanArray::new(a.into(), nulls(v))),
            Store::FVec { values, dim, .. } => {
                Arc::new(float_vector_array(Float32Array::from(values), dim)?)
            }
            Store::BVec { bytes, width, .. } => Arc::new(FixedSizeBinaryArray::try_new(
                width as i32,
                bytes.into(),
                None,
            )?),
            Store::Sparse {
                offsets,
                keys,
                values,
            } => {
                let DataType::Map(entries, sorted) = field.data_type() else {
                    return Err(vmig_core::Error::schema(
                        "internal: sparse column is not a Map",
                    ));
                };
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(vmig_core::Error::schema(
                        "internal: sparse entries are not a Struct",
                    ));
                };
                let st = StructArray::try_new(
                    kv.clone(),
                    vec![
                        Arc::new(UInt32Array::from(keys)) as ArrayRef,
                        Arc::new(Float32Array::from(values)) as ArrayRef,
                    ],
                    None,
                )?;
                Arc::new(MapArray::try_new(
                    Arc::clone(entries),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    st,
                    None,
                    *sorted,
                )?)
            }
            Store::List {
                offsets,
                valid,
                child,
            } => {
                let DataType::List(item) = field.data_type() else {
                    return Err(vmig_core::Error::schema(
                        "internal: array column is not a List",
                    ));
                };
                let values = child.finish(item)?;
                Arc::new(ListArray::try_new(
                    Arc::clone(item),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls(valid),
                )?)
            }
        })
    }
}

/// Why one document could not be read: the field and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct DocError {
    /// The field (column) name.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Builds one batch from documents.
#[derive(Debug)]
pub struct BatchBuilder {
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    stores: Vec<Store>,
    rows: usize,
    by_name: HashMap<String, usize>,
}

impl BatchBuilder {
    /// An empty builder for `columns` (in `schema` order).
    pub fn new(columns: Arc<Vec<Column>>, schema: SchemaRef) -> BatchBuilder {
        let stores = columns
            .iter()
            .map(|c| Store::new(&c.kind, c.array))
            .collect();
        let by_name = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        BatchBuilder {
            columns,
            schema,
            stores,
            rows: 0,
            by_name,
        }
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one document; on error nothing of it stays.
    ///
    /// # Errors
    /// The first field that is missing (and not nullable), malformed or out of range.
    pub fn push(
        &mut self,
        id: &str,
        source: Option<&RawValue>,
        fields: Option<&RawValue>,
    ) -> std::result::Result<(), DocError> {
        let result = self.push_inner(id, source, fields);
        if result.is_err() {
            for s in &mut self.stores {
                s.truncate(self.rows);
            }
        } else {
            self.rows += 1;
        }
        result
    }

    fn push_inner(
        &mut self,
        id: &str,
        source: Option<&RawValue>,
        fields: Option<&RawValue>,
    ) -> std::result::Result<(), DocError> {
        let mut values: Vec<Option<&RawValue>> = vec![None; self.columns.len()];
        let mut lifted: Vec<Option<String>> = vec![None; self.columns.len()];
        if let Some(src) = source {
            let map: HashMap<String, &RawValue> =
                serde_json::from_str(src.get()).map_err(|e| DocError {
                    field: "_source".into(),
                    message: format!("is not a JSON object: {e}"),
                })?;
            for (i, col) in self.columns.iter().enumerate() {
                if let Some(path) = &col.lift {
                    lifted[i] = lift(&map, path).map_err(|message| DocError {
                        field: col.name.clone(),
                        message,
                    })?;
                }
            }
            for (k, v) in map {
                if let Some(&i) = self.by_name.get(&k) {
                    values[i] = Some(v);
                }
            }
        }
        let mut fields_map: Option<HashMap<String, &RawValue>> = None;
        let columns = Arc::clone(&self.columns);
        for (i, col) in columns.iter().enumerate() {
            let err = |message: String| DocError {
                field: col.name.clone(),
                message,
            };
            if col.kind == Kind::Id {
                self.stores[i].push_str(id).map_err(err)?;
                continue;
            }
            let stripped;
            let mut raw = values[i].filter(|r| r.get() != "null");
            if let Some(text) = &lifted[i] {
                stripped = RawValue::from_string(text.clone()).map_err(|e| err(e.to_string()))?;
                raw = Some(&*stripped);
            } else if let (false, Some(r)) = (col.strip.is_empty(), raw) {
                let mut v: Value =
                    serde_json::from_str(r.get()).map_err(|e| err(format!("invalid JSON: {e}")))?;
                for path in &col.strip {
                    remove_path(&mut v, path);
                }
                stripped = RawValue::from_string(v.to_string()).map_err(|e| err(e.to_string()))?;
                raw = Some(&*stripped);
            }
            let is_vector = matches!(
                col.kind,
                Kind::FloatVector { .. } | Kind::BinaryVector { .. }
            );
            if raw.is_none() && is_vector {
                // Elasticsearch 9.2+ can leave vectors out of `_source`; the `fields` API still
                // returns them (as an array under `fields.<name>`).
                if fields_map.is_none() {
                    fields_map = Some(
                        fields
                            .and_then(|f| serde_json::from_str(f.get()).ok())
                            .unwrap_or_default(),
                    );
                }
                raw = fields_map.as_ref().and_then(|m| m.get(&col.name).copied());
            }
            let store = &mut self.stores[i];
            match raw {
                Some(r) => push_value(store, col, r.get()).map_err(|m| match &col.dims_from {
                    Some(doc) => err(format!(
                        "{m} (the dimension was inferred from document `{doc}`: the mapping has no `dims`)"
                    )),
                    None => err(m),
                })?,
                None => match &col.default {
                    Some(d) => push_value(store, col, &d.to_string()).map_err(err)?,
                    None if col.nullable => store.push_null(),
                    None => return Err(err(missing_message(col))),
                },
            }
        }
        Ok(())
    }

    /// Turns the rows appended so far into a batch and starts a new one.
    ///
    /// # Errors
    /// Only on internal inconsistencies (the stores always match the schema).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let fresh: Vec<Store> = self
            .columns
            .iter()
            .map(|c| Store::new(&c.kind, c.array))
            .collect();
        let stores = std::mem::replace(&mut self.stores, fresh);
        let arrays = stores
            .into_iter()
            .zip(self.schema.fields().iter())
            .map(|(s, f)| s.finish(f))
            .collect::<Result<Vec<_>>>()?;
        let n = self.rows;
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// The raw JSON text at `path` below a `_source` object; a `nested` array on the way must hold
/// exactly one object (a column holds one vector per document).
fn lift(
    map: &HashMap<String, &RawValue>,
    path: &[String],
) -> std::result::Result<Option<String>, String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(mut cur) = map.get(first).map(|r| r.get().to_string()) else {
        return Ok(None);
    };
    let mut walked = first.clone();
    for seg in rest {
        let mut t = cur.trim().to_string();
        if t.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(&t)
                .map_err(|e| format!("`{walked}` is not valid JSON: {e}"))?;
            match items.as_slice() {
                [] => return Ok(None),
                [one] => t = one.get().to_string(),
                many => {
                    return Err(format!(
                        "`{walked}` holds {} objects; a lifted vector must be the only one of its document",
                        many.len()
                    ))
                }
            }
        }
        if t == "null" {
            return Ok(None);
        }
        let obj: HashMap<String, &RawValue> = serde_json::from_str(&t)
            .map_err(|_| format!("`{walked}` is not an object: {}", short(&t)))?;
        match obj.get(seg) {
            Some(v) => cur = v.get().to_string(),
            None => return Ok(None),
        }
        walked.push('.');
        walked.push_str(seg);
    }
    Ok((cur.trim() != "null").then_some(cur))
}

/// Removes the value at `path` (through objects and arrays of objects) from `v`.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match v {
        Value::Array(items) => {
            for item in items {
                remove_path(item, path);
            }
        }
        Value::Object(o) if rest.is_empty() => {
            o.remove(first);
        }
        Value::Object(o) => {
            if let Some(child) = o.get_mut(first) {
                remove_path(child, rest);
            }
        }
        _ => {}
    }
}

fn missing_message(col: &Column) -> String {
    match col.kind {
        Kind::FloatVector { .. } | Kind::BinaryVector { .. } | Kind::Sparse(_) => format!(
            "the {} is missing (Milvus vectors cannot be null); skip such documents with \
             `on_invalid = \"skip\"` or filter them out with `query`",
            col.es_type
        ),
        _ => "the primary key is missing".to_string(),
    }
}

fn push_value(store: &mut Store, col: &Column, raw: &str) -> std::result::Result<(), String> {
    match &col.kind {
        Kind::FloatVector { dim, byte } => parse_float_vector(store, raw, *dim, *byte),
        Kind::BinaryVector { dim } => parse_binary_vector(store, raw, *dim),
        Kind::Sparse(tokens) => parse_sparse(store, raw, *tokens),
        kind if col.array => {
            let Store::List {
                offsets,
                valid,
                child,
            } = store
            else {
                return Err("internal: array column without a list store".into());
            };
            let t = raw.trim();
            let items: Vec<&RawValue> = if t.starts_with('[') {
                serde_json::from_str(t).map_err(|e| format!("invalid JSON array: {e}"))?
            } else {
                vec![serde_json::from_str(t).map_err(|e| format!("invalid JSON: {e}"))?]
            };
            for item in items {
                if item.get().trim() == "null" {
                    return Err("an array element is null (Milvus arrays cannot hold nulls)".into());
                }
                child.push_scalar(scalar_raw(kind, item.get())?)?;
            }
            offsets.push(i32::try_from(child.len()).map_err(|_| "array too large".to_string())?);
            valid.push(true);
            Ok(())
        }
        kind => {
            if *kind != Kind::Json && raw.trim_start().starts_with('[') {
                return Err(format!(
                    "holds an array ({}); list the field in `arrays` to read it as a Milvus Array",
                    short(raw)
                ));
            }
            store.push_scalar(scalar_raw(kind, raw)?)
        }
    }
}

/// One scalar from its raw JSON text. Floats are parsed from the text itself (`f32::from_str`,
/// `f64::from_str` round correctly; going through `serde_json::Value` would not always).
fn scalar_raw(kind: &Kind, raw: &str) -> std::result::Result<Scalar, String> {
    let t = raw.trim();
    let unquoted = || {
        t.strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(t)
            .trim()
    };
    match kind {
        Kind::F32 => {
            let text = unquoted();
            let f: f32 = text
                .parse()
                .map_err(|_| format!("`{}` is not a number (float)", short(t)))?;
            check_f32(f, text)?;
            Ok(Scalar::F32(f))
        }
        Kind::F64 => {
            let text = unquoted();
            let f: f64 = text
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite())
                .ok_or_else(|| format!("`{}` is not a number (double)", short(t)))?;
            Ok(Scalar::F64(f))
        }
        kind => {
            let v: Value = serde_json::from_str(t).map_err(|e| format!("invalid JSON: {e}"))?;
            scalar(kind, &v)
        }
    }
}

fn short(raw: &str) -> String {
    let mut s: String = raw.chars().take(60).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

fn check_f32(f: f32, text: &str) -> std::result::Result<(), String> {
    if f.is_finite() {
        Ok(())
    } else {
        Err(format!("{text} does not fit a float (Float32)"))
    }
}

fn scalar(kind: &Kind, v: &Value) -> std::result::Result<Scalar, String> {
    let bad = |what: &str| format!("{} is not {what}", short(&v.to_string()));
    Ok(match kind {
        Kind::Str | Kind::DateText => match v {
            Value::String(s) => Scalar::Str(s.clone()),
            Value::Number(n) => Scalar::Str(n.to_string()),
            Value::Bool(b) => Scalar::Str(b.to_string()),
            _ => return Err(bad("a string")),
        },
        Kind::Json => Scalar::Str(v.to_string()),
        Kind::Int(bits) => Scalar::Int(integer(v, *bits)?),
        Kind::UnsignedLong => {
            let u = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| bad("an unsigned long"))?;
            Scalar::Int(
                i64::try_from(u)
                    .map_err(|_| format!("unsigned_long {u} is ≥ 2^63 and does not fit Int64"))?,
            )
        }
        Kind::F32 => {
            let t = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                _ => return Err(bad("a number")),
            };
            let f: f32 = t.parse().map_err(|_| bad("a number"))?;
            check_f32(f, &t)?;
            Scalar::F32(f)
        }
        Kind::F64 => match v {
            Value::Number(n) => Scalar::F64(n.as_f64().ok_or_else(|| bad("a number"))?),
            Value::String(s) => Scalar::F64(
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| bad("a number"))?,
            ),
            _ => return Err(bad("a number")),
        },
        Kind::Bool => match v {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::String(s) if s == "true" => Scalar::Bool(true),
            Value::String(s) if s == "false" || s.is_empty() => Scalar::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        Kind::DateMillis(f) => Scalar::Int(f.epoch(v, false)?),
        Kind::DateNanos(f) => Scalar::Int(f.epoch(v, true)?),
        Kind::Id | Kind::FloatVector { .. } | Kind::BinaryVector { .. } | Kind::Sparse(_) => {
            return Err("internal: not a scalar".into())
        }
    })
}

fn integer(v: &Value, bits: u8) -> std::result::Result<i64, String> {
    let i = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{} is not an integer", short(&v.to_string())))?;
    let (lo, hi) = match bits {
        8 => (i8::MIN as i64, i8::MAX as i64),
        16 => (i16::MIN as i64, i16::MAX as i64),
        32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    if i < lo || i > hi {
        return Err(format!("{i} does not fit Int{bits}"));
    }
    Ok(i)
}

fn parse_float_vector(
    store: &mut Store,
    raw: &str,
    dim: usize,
    byte: bool,
) -> std::result::Result<(), String> {
    let Store::FVec { values, rows, .. } = store else {
        return Err("internal: vector column without a vector store".into());
    };
    let start = values.len();
    let t = raw.trim();
    let result = if let Some(body) = t.strip_prefix('[').and_then(|b| b.strip_suffix(']')) {
        let mut n = 0usize;
        let mut r = Ok(());
        if !body.trim().is_empty() {
            for (i, item) in body.split(',').enumerate() {
                let item = item.trim();
                match item.parse::<f32>() {
                    Ok(f)
                        if f.is_finite()
                            && (!byte || (f.fract() == 0.0 && (-128.0..=127.0).contains(&f))) =>
                    {
                        values.push(f)
                    }
                    Ok(_) if byte => {
                        r = Err(format!("element {i} = {item} is not a byte (-128..127)"));
                        break;
                    }
                    Ok(_) => {
                        r = Err(format!(
                            "element {i} = {item} does not fit a float32 (NaN/Inf are not allowed)"
                        ));
                        break;
                    }
                    Err(_) => {
                        r = Err(format!("element {i} `{}` is not a number", short(item)));
                        break;
                    }
                }
                n += 1;
            }
        }
        r.and_then(|()| {
            if n == dim {
                Ok(())
            } else {
                Err(format!(
                    "the vector has {n} dimensions, the mapping says {dim}"
                ))
            }
        })
    } else if byte && t.starts_with('"') {
        let hex = t.trim_matches('"');
        decode_hex(hex).and_then(|b| {
            if b.len() != dim {
                return Err(format!(
                    "the hex vector has {} dimensions, the mapping says {dim}",
                    b.len()
                ));
            }
            values.extend(b.into_iter().map(|x| f32::from(x as i8)));
            Ok(())
        })
    } else if t.starts_with('"') {
        Err(
            "the vector is a string (base64-encoded); vmig reads vectors sent as JSON arrays only"
                .into(),
        )
    } else {
        Err(format!("`{}` is not a vector (JSON array)", short(t)))
    };
    match result {
        Ok(()) => {
            *rows += 1;
            Ok(())
        }
        Err(e) => {
            values.truncate(start);
            Err(e)
        }
    }
}

fn decode_hex(hex: &str) -> std::result::Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not a hex-encoded byte vector", short(hex)));
    }
    Ok((0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect())
}

fn parse_binary_vector(
    store: &mut Store,
    raw: &str,
    dim: usize,
) -> std::result::Result<(), String> {
    let Store::BVec { bytes, rows, .. } = store else {
        return Err("internal: binary vector column without a binary store".into());
    };
    let width = dim / 8;
    let t = raw.trim();
    let decoded: Vec<u8> = if t.starts_with('"') {
        decode_hex(t.trim_matches('"'))?
    } else {
        let items: Vec<i64> = serde_json::from_str(t)
            .map_err(|_| format!("`{}` is not a bit vector (array of signed bytes)", short(t)))?;
        items
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                i8::try_from(b)
                    .map(|x| x as u8)
                    .map_err(|_| format!("element {i} = {b} is not a byte (-128..127)"))
            })
            .collect::<std::result::Result<_, _>>()?
    };
    if decoded.len() != width {
        return Err(format!(
            "the bit vector has {} bytes ({} bits), the mapping says {dim} bits",
            decoded.len(),
            decoded.len() * 8
        ));
    }
    bytes.extend_from_slice(&decoded);
    *rows += 1;
    Ok(())
}

/// FNV-1a (32-bit) of a token's UTF-8 bytes: the documented index of a token under
/// `sparse_keys = "hash"`.
pub fn token_hash(token: &str) -> u32 {
    vmig_core::ids::fnv1a_32(token.as_bytes())
}

fn parse_sparse(
    store: &mut Store,
    raw: &str,
    tokens: SparseTokens,
) -> std::result::Result<(), String> {
    let Store::Sparse {
        offsets,
        keys,
        values,
    } = store
    else {
        return Err("internal: sparse column without a sparse store".into());
    };
    let map: HashMap<String, &RawValue> = serde_json::from_str(raw).map_err(|_| {
        format!(
            "`{}` is not a sparse vector ({{token: weight}} object)",
            short(raw)
        )
    })?;
    let mut entries: Vec<(u32, f32, &str)> = Vec::with_capacity(map.len());
    for (token, w) in &map {
        let idx = match tokens {
            SparseTokens::Numeric => token.parse::<u32>().map_err(|_| {
                format!(
                    "token `{}` is not a number; vmig needs u32 indices: use `sparse_keys = \"hash\"` to hash tokens",
                    short(token)
                )
            })?,
            SparseTokens::Hash => token_hash(token),
        };
        let f: f32 = w
            .get()
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| {
                format!(
                    "the weight of token `{}` is not a finite number",
                    short(token)
                )
            })?;
        entries.push((idx, f, token.as_str()));
    }
    entries.sort_by_key(|e| e.0);
    for pair in entries.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!(
                "tokens `{}` and `{}` map to the same index {}",
                pair[0].2, pair[1].2, pair[0].0
            ));
        }
    }
    for (k, v, _) in entries {
        keys.push(k);
        values.push(v);
    }
    offsets.push(i32::try_from(keys.len()).map_err(|_| "sparse column too large".to_string())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use arrow::array::AsArray;
    use arrow::datatypes::Float32Type;

    fn col(name: &str, kind: Kind, nullable: bool) -> Column {
        Column {
            name: name.into(),
            kind,
            array: false,
            default: None,
            nullable,
            es_type: "x".into(),
            described: "x".into(),
            lift: None,
            strip: Vec::new(),
            dims_from: None,
        }
    }

    fn builder(cols: Vec<Column>) -> BatchBuilder {
        let fields: Vec<Field> = cols
            .iter()
            .map(|c| match &c.kind {
                Kind::FloatVector { dim, .. } => {
                    vmig_core::vector::float_vector_field(&c.name, *dim)
                }
                Kind::Sparse(_) => Field::new(
                    &c.name,
                    vmig_core::vector::sparse_float_vector_type(),
                    false,
                ),
                Kind::Id | Kind::Str => Field::new(&c.name, DataType::Utf8, c.nullable),
                Kind::Int(16) => Field::new(&c.name, DataType::Int16, c.nullable),
                Kind::DateMillis(_) => Field::new(&c.name, DataType::Int64, c.nullable),
                _ => Field::new(&c.name, DataType::Float32, c.nullable),
            })
            .collect();
        BatchBuilder::new(
            Arc::new(cols),
            Arc::new(arrow::datatypes::Schema::new(fields)),
        )
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn vectors_are_exact_and_checked() {
        let mut b = builder(vec![
            col("id", Kind::Id, false),
            col(
                "v",
                Kind::FloatVector {
                    dim: 3,
                    byte: false,
                },
                false,
            ),
            col("s", Kind::Int(16), true),
        ]);
        let exact = [0.1f32, -3.4028235e38, 1.0e-45];
        let src = format!(r#"{{"v":[{},{},{}],"s":7}}"#, exact[0], exact[1], exact[2]);
        b.push("a", Some(&raw(&src)), None).unwrap();
        let e = b
            .push("b", Some(&raw(r#"{"v":[1,2],"s":1}"#)), None)
            .unwrap_err();
        assert_eq!(e.field, "v");
        assert!(e.message.contains("2 dimensions"), "{e:?}");
        let e = b
            .push("c", Some(&raw(r#"{"v":[1,2,3],"s":70000}"#)), None)
            .unwrap_err();
        assert_eq!(e.field, "s");
        let e = b.push("d", Some(&raw(r#"{"s":1}"#)), None).unwrap_err();
        assert!(e.message.contains("missing"), "{e:?}");
        // Vectors left out of `_source` (ES 9.2+) are taken from `fields`.
        b.push("e", Some(&raw(r#"{}"#)), Some(&raw(r#"{"v":[4,5,6]}"#)))
            .unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let v = batch.column(1).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>();
        let bits: Vec<u32> = vals.values().iter().map(|f| f.to_bits()).collect();
        let mut want: Vec<u32> = exact.iter().map(|f| f.to_bits()).collect();
        want.extend([4.0f32, 5.0, 6.0].iter().map(|f| f.to_bits()));
        assert_eq!(bits, want);
        assert!(batch.column(2).is_null(1));
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "e");
    }

    #[test]
    fn sparse_vectors_sort_and_check_tokens() {
        let mut b = builder(vec![col("sp", Kind::Sparse(SparseTokens::Numeric), false)]);
        b.push("a", Some(&raw(r#"{"sp":{"30":0.5,"2":1.25}}"#)), None)
            .unwrap();
        let e = b
            .push("b", Some(&raw(r#"{"sp":{"foo":1}}"#)), None)
            .unwrap_err();
        assert!(e.message.contains("sparse_keys"), "{e:?}");
        let batch = b.finish().unwrap();
        let m = batch.column(0).as_map();
        let keys: Vec<u32> = m
            .keys()
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(keys, vec![2, 30]);
        let mut h = builder(vec![col("sp", Kind::Sparse(SparseTokens::Hash), false)]);
        h.push("a", Some(&raw(r#"{"sp":{"foo":1.5,"bar":0.25}}"#)), None)
            .unwrap();
        let m = h.finish().unwrap();
        let keys: Vec<u32> = m
            .column(0)
            .as_map()
            .keys()
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .values()
            .to_vec();
        let mut want = vec![token_hash("foo"), token_hash("bar")];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(token_hash(""), 0x811c_9dc5);
        assert_eq!(token_hash("a"), 0xe40c_292c);
    }
}
