//! From an index mapping (`GET /<index>/_mapping`) to vmig columns and an Arrow schema.
//!
//! Only top-level properties become columns; `object`, `nested` and `flattened` properties are
//! kept whole as JSON. Multi-fields (`title.keyword`) are not in `_source` and are ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;
use vmig_core::vector::{
    binary_vector_field, float_vector_field, json_field, META_METRIC, META_PRIMARY_KEY,
};
use vmig_core::{Error, Result};

use crate::dates::{DateFormat, DEFAULT_DATE, DEFAULT_DATE_NANOS};
use crate::{DateMode, EsSourceConfig, OnUnknownType, SparseTokens};

/// How one column's values are read from a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The document `_id` (Utf8).
    Id,
    /// Text of any string type (Utf8).
    Str,
    /// A signed integer of 8, 16, 32 or 64 bits.
    Int(u8),
    /// `unsigned_long`, stored as Int64; values ≥ 2^63 are errors.
    UnsignedLong,
    /// `float`, `half_float`, `scaled_float`, `rank_feature` (Float32).
    F32,
    /// `double` (Float64).
    F64,
    /// `boolean`.
    Bool,
    /// Kept as JSON text (`object`, `nested`, `flattened`, geo and range types).
    Json,
    /// `date` as epoch milliseconds (Int64), read with the mapping's `format`.
    DateMillis(Arc<DateFormat>),
    /// `date_nanos` as epoch nanoseconds (Int64), read with the mapping's `format`.
    DateNanos(Arc<DateFormat>),
    /// A date kept as the text the client sent (Utf8).
    DateText,
    /// `dense_vector`/`knn_vector` of floats or bytes, as float32.
    FloatVector {
        /// Dimensions.
        dim: usize,
        /// Elements are bytes (-128..127), possibly sent as a hex string.
        byte: bool,
    },
    /// `dense_vector` `bit` / `knn_vector` `binary`: `dim / 8` signed bytes (or a hex string).
    BinaryVector {
        /// Dimensions in bits.
        dim: usize,
    },
    /// `sparse_vector` / `rank_features`: `{token: weight}` objects.
    Sparse(SparseTokens),
}

/// One output column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Field name in `_source` and in the output.
    pub name: String,
    /// How values are read.
    pub kind: Kind,
    /// The field holds arrays of scalars (configured with `arrays`): a List column.
    pub array: bool,
    /// The value used when the field is missing or null.
    pub default: Option<Value>,
    /// Missing values are allowed (become nulls).
    pub nullable: bool,
    /// The mapping type, for messages and `vmig plan`.
    pub es_type: String,
    /// A short description of the mapping entry (type, dims, element type, format).
    pub described: String,
    /// A vector lifted from inside an object: the path of `_source` keys to it.
    pub lift: Option<Vec<String>>,
    /// A JSON column: paths (below the field) of lifted vectors to leave out of its text.
    pub strip: Vec<Vec<String>>,
    /// The dimension was inferred from this document (`_id`), not read from the mapping.
    pub dims_from: Option<String>,
}

/// The columns and schema of a source.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Output columns in schema order (the id column first when the pk is `_id`).
    pub columns: Vec<Column>,
    /// The Arrow schema.
    pub schema: SchemaRef,
    /// Top-level `_source` fields to request (empty: only `_id` is read, `_source` is not).
    pub source_fields: Vec<String>,
}

fn int_kind(t: &str) -> Option<Kind> {
    Some(match t {
        "long" => Kind::Int(64),
        "integer" => Kind::Int(32),
        "short" => Kind::Int(16),
        "byte" => Kind::Int(8),
        _ => return None,
    })
}

fn metric_of(prop: &Value) -> Option<&'static str> {
    let sim = prop
        .get("similarity")
        .or_else(|| prop.pointer("/method/space_type"))
        .or_else(|| prop.get("space_type"))
        .and_then(Value::as_str)?;
    Some(match sim {
        "l2_norm" | "l2" => "L2",
        "dot_product" | "max_inner_product" | "innerproduct" => "IP",
        "cosine" | "cosinesimil" => "COSINE",
        "hamming" => "HAMMING",
        _ => return None,
    })
}

/// Reads one property into a column kind; `Ok(None)` for a type vmig does not know.
fn kind_of(name: &str, prop: &Value, cfg: &EsSourceConfig) -> Result<Option<(Kind, String)>> {
    let t =
        prop.get("type")
            .and_then(Value::as_str)
            .unwrap_or(if prop.get("properties").is_some() {
                "object"
            } else {
                ""
            });
    let kind = match t {
        "keyword" | "text" | "match_only_text" | "wildcard" | "constant_keyword" | "ip"
        | "version" | "binary" => Kind::Str,
        "long" | "integer" | "short" | "byte" => int_kind(t).unwrap_or(Kind::Int(64)),
        "unsigned_long" => Kind::UnsignedLong,
        "float" | "half_float" | "scaled_float" | "rank_feature" => Kind::F32,
        "double" => Kind::F64,
        "boolean" => Kind::Bool,
        "object" | "nested" | "flattened" | "geo_point" | "geo_shape" | "shape" | "point"
        | "integer_range" | "long_range" | "float_range" | "double_range" | "date_range"
        | "ip_range" => Kind::Json,
        "date" | "date_nanos" => match cfg.dates {
            DateMode::String => Kind::DateText,
            DateMode::EpochMillis => {
                let nanos = t == "date_nanos";
                let format = prop
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or(if nanos {
                        DEFAULT_DATE_NANOS
                    } else {
                        DEFAULT_DATE
                    });
                let f = Arc::new(DateFormat::new(format).map_err(|e| {
                    Error::unsupported(
                        format!("mapping of `{}`, field `{name}`", cfg.index),
                        format!(
                            "date format `{format}`: {e}; read the field as text with `dates = \"string\"` \
                             (or leave it out with `fields = [...]`)"
                        ),
                    )
                })?);
                if nanos {
                    Kind::DateNanos(f)
                } else {
                    Kind::DateMillis(f)
                }
            }
        },
        "dense_vector" | "knn_vector" => {
            let dim = prop
                .get("dims")
                .or_else(|| prop.get("dimension"))
                .and_then(Value::as_u64)
                .map(|d| d as usize)
                .or_else(|| cfg.dims.get(name).copied())
                .ok_or_else(|| {
                    Error::unsupported(
                        format!("mapping of `{name}`"),
                        format!(
                            "the {t} field has no `dims` in the mapping and no document has a \
                             value to infer it from; give it with `dims = {{ {} = <n> }}`",
                            if name.contains('.') {
                                format!("\"{name}\"")
                            } else {
                                name.to_string()
                            }
                        ),
                    )
                })?;
            let element = prop
                .get("element_type")
                .or_else(|| prop.get("data_type"))
                .and_then(Value::as_str)
                .unwrap_or("float");
            match element {
                "float" => Kind::FloatVector { dim, byte: false },
                "byte" => Kind::FloatVector { dim, byte: true },
                "bit" | "binary" => {
                    if dim == 0 || !dim.is_multiple_of(8) {
                        return Err(Error::unsupported(
                            format!("mapping of `{name}`"),
                            format!(
                                "a {element} vector needs a multiple of 8 dimensions, not {dim}"
                            ),
                        ));
                    }
                    Kind::BinaryVector { dim }
                }
                other => {
                    return Err(Error::unsupported(
                        format!("mapping of `{name}`"),
                        format!(
                        "{t} element type `{other}` is not supported (float, byte, bit/binary are)"
                    ),
                    ))
                }
            }
        }
        "sparse_vector" | "rank_features" => Kind::Sparse(cfg.sparse_keys),
        _ => return Ok(None),
    };
    let mut described = if t.is_empty() {
        "(no type)".to_string()
    } else {
        t.to_string()
    };
    match &kind {
        Kind::FloatVector { dim, .. } | Kind::BinaryVector { dim } => {
            let element = prop
                .get("element_type")
                .or_else(|| prop.get("data_type"))
                .and_then(Value::as_str)
                .unwrap_or("float");
            described.push_str(&format!(" dims={dim} element={element}"));
            if let Some(m) = metric_of(prop) {
                described.push_str(&format!(" metric={m}"));
            }
        }
        Kind::DateMillis(_) | Kind::DateNanos(_) | Kind::DateText => {
            if let Some(f) = prop.get("format").and_then(Value::as_str) {
                described.push_str(&format!(" format={f}"));
            }
        }
        _ => {}
    }
    Ok(Some((kind, described)))
}

/// A vector field whose mapping has no dimension (and `dims` gives none): Elasticsearch
/// 7.0–7.2-era mappings, or ones written before the first document (Haystack).
#[derive(Debug, Clone, PartialEq)]
pub struct MissingDims {
    /// The key of `dims` it would have: the field name, or the dotted path of a lifted vector.
    pub key: String,
    /// The `_source` path to it.
    pub path: Vec<String>,
    /// Elements are bits (`bit`/`binary`): a value of n bytes has 8n dimensions.
    pub bits: bool,
}

/// The vector fields to be read whose mapping has no `dims` and that `dims` does not give.
pub fn missing_dims(props: &BTreeMap<String, Value>, cfg: &EsSourceConfig) -> Vec<MissingDims> {
    let mut wanted: Vec<(String, Vec<String>)> = props
        .keys()
        .filter(|n| cfg.fields.as_ref().is_none_or(|f| f.contains(n)))
        .map(|n| (n.clone(), vec![n.clone()]))
        .collect();
    wanted.extend(
        cfg.vectors
            .values()
            .map(|p| (p.clone(), p.split('.').map(str::to_string).collect())),
    );
    wanted
        .into_iter()
        .filter_map(|(key, path)| {
            let prop = property_at(props, &path)?;
            let t = prop.get("type").and_then(Value::as_str)?;
            let has = prop.get("dims").or_else(|| prop.get("dimension")).is_some();
            let element = prop
                .get("element_type")
                .or_else(|| prop.get("data_type"))
                .and_then(Value::as_str)
                .unwrap_or("float");
            (matches!(t, "dense_vector" | "knn_vector") && !has && !cfg.dims.contains_key(&key))
                .then_some(MissingDims {
                    key,
                    path,
                    bits: matches!(element, "bit" | "binary"),
                })
        })
        .collect()
}

/// The dimension of one vector value as `_source` holds it: a JSON array, or a hex string of
/// bytes (byte and bit vectors).
pub fn dimension_of(v: &Value, bits: bool) -> Option<usize> {
    let n = match v {
        Value::Array(a) => a.len(),
        Value::String(s) if s.len().is_multiple_of(2) => s.len() / 2,
        _ => return None,
    };
    (n > 0).then_some(if bits { n * 8 } else { n })
}

/// Why a mapped type has no column.
fn unknown_reason(t: &str, prop: &Value) -> String {
    match t {
        "rank_vectors" => format!(
            "type `rank_vectors` (element_type {}) holds several vectors per document \
             (late-interaction multi-vectors such as ColBERT/ColPali), which no Milvus 2.x field can hold",
            prop.get("element_type")
                .and_then(Value::as_str)
                .unwrap_or("float")
        ),
        _ => format!("type `{t}` has no vmig mapping"),
    }
}

/// Merges the `properties` of every index a mapping answer names. Indices of a pattern or
/// alias must agree on every field they share.
///
/// # Errors
/// When two indices map one field differently, or the answer has no mappings.
pub fn merged_properties(answer: &Value, index: &str) -> Result<BTreeMap<String, Value>> {
    let obj = answer.as_object().ok_or_else(|| {
        Error::data(
            format!("mapping of `{index}`"),
            "the answer is not a JSON object",
        )
    })?;
    let mut merged: BTreeMap<String, (Value, String)> = BTreeMap::new();
    for (idx, body) in obj {
        let props = body
            .pointer("/mappings/properties")
            .and_then(Value::as_object);
        let Some(props) = props else { continue };
        for (name, prop) in props {
            match merged.get(name) {
                Some((seen, from)) if strip_multi(seen) != strip_multi(prop) => {
                    return Err(Error::unsupported(
                        format!("mapping of `{index}`"),
                        format!(
                            "field `{name}` is mapped differently in index `{from}` and `{idx}`; read them separately"
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    merged.insert(name.clone(), (prop.clone(), idx.clone()));
                }
            }
        }
    }
    if obj.is_empty() {
        return Err(Error::config(
            "elasticsearch",
            format!("`{index}` matches no index"),
        ));
    }
    Ok(merged.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

/// The mapping entry at a path of field names (through `properties` of objects and nested
/// fields).
pub fn property_at<'a>(props: &'a BTreeMap<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut prop = props.get(first)?;
    for seg in rest {
        prop = prop.get("properties")?.get(seg)?;
    }
    Some(prop)
}

fn strip_multi(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("fields");
        o.remove("index_options");
    }
    v
}

/// Builds the columns and schema from merged properties.
///
/// # Errors
/// Unknown types (unless `on_unknown_type = "skip"`), an include-list field that is not mapped,
/// a bad primary key, or a name clash with the id column.
pub fn layout(
    props: &BTreeMap<String, Value>,
    cfg: &EsSourceConfig,
) -> Result<(Layout, Vec<String>)> {
    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    let mut metric: Option<&'static str> = None;
    let wanted: Option<Vec<&str>> = cfg
        .fields
        .as_ref()
        .map(|f| f.iter().map(String::as_str).collect());
    if let Some(w) = &wanted {
        for f in w {
            if !props.contains_key(*f) {
                return Err(Error::config(
                    "elasticsearch",
                    format!(
                        "`fields` names `{f}`, which is not a top-level field of the mapping (mapped: {})",
                        props.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    for a in &cfg.arrays {
        if !props.contains_key(a) {
            return Err(Error::config(
                "elasticsearch",
                format!("`arrays` names `{a}`, which is not a top-level field of the mapping"),
            ));
        }
    }
    let pk_is_id = cfg.pk == "_id";
    if pk_is_id {
        if props.contains_key(&cfg.id_column)
            && wanted
                .as_ref()
                .is_none_or(|w| w.contains(&cfg.id_column.as_str()))
        {
            return Err(Error::config(
                "elasticsearch",
                format!(
                    "the mapping has a field `{}`, which is also the name of the `_id` column; set `id_column` to another name",
                    cfg.id_column
                ),
            ));
        }
        columns.push(Column {
            name: cfg.id_column.clone(),
            kind: Kind::Id,
            array: false,
            default: None,
            nullable: false,
            es_type: "_id".into(),
            described: "_id".into(),
            lift: None,
            strip: Vec::new(),
            dims_from: None,
        });
    }
    let mut source_fields = Vec::new();
    for (name, prop) in props {
        if let Some(w) = &wanted {
            if !w.contains(&name.as_str()) && *name != cfg.pk {
                continue;
            }
        }
        let Some((kind, described)) = kind_of(name, prop, cfg)? else {
            let t = prop.get("type").and_then(Value::as_str).unwrap_or("?");
            match cfg.on_unknown_type {
                OnUnknownType::Error => {
                    return Err(Error::unsupported(
                        format!("mapping of `{}`, field `{name}`", cfg.index),
                        format!(
                            "{}; leave the field out with `fields = [...]` \
                             or skip such fields with `on_unknown_type = \"skip\"`",
                            unknown_reason(t, prop)
                        ),
                    ))
                }
                OnUnknownType::Skip => {
                    tracing::warn!(message = "Skipping a field of an unsupported type.", field = %name, es_type = %t);
                    skipped.push(format!("{name} ({t})"));
                    continue;
                }
            }
        };
        let is_vector = matches!(
            kind,
            Kind::FloatVector { .. } | Kind::BinaryVector { .. } | Kind::Sparse(_)
        );
        if is_vector {
            if let Some(m) = metric_of(prop) {
                metric.get_or_insert(m);
            }
        }
        let array = cfg.arrays.iter().any(|a| a == name);
        if array && (is_vector || kind == Kind::Json) {
            return Err(Error::config(
                "elasticsearch",
                format!(
                    "`arrays` names `{name}`, a {} field; only scalar fields can be arrays",
                    prop.get("type").and_then(Value::as_str).unwrap_or("object")
                ),
            ));
        }
        let default = cfg.defaults.get(name).cloned();
        let is_pk = !pk_is_id && *name == cfg.pk;
        if is_pk && !matches!(kind, Kind::Str | Kind::Int(_) | Kind::UnsignedLong) {
            return Err(Error::config(
                "elasticsearch",
                format!("`pk` = `{name}` is a {described} field; a primary key must be a string or integer field"),
            ));
        }
        let nullable = default.is_none() && !is_vector && !is_pk;
        source_fields.push(name.clone());
        columns.push(Column {
            name: name.clone(),
            es_type: prop
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object")
                .to_string(),
            kind,
            array,
            default,
            nullable,
            described,
            lift: None,
            strip: Vec::new(),
            dims_from: None,
        });
    }
    for (column, path) in &cfg.vectors {
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        let bad = |m: String| {
            Err(Error::config(
                "elasticsearch",
                format!("`vectors.{column}` = `{path}`: {m}"),
            ))
        };
        if segments.len() < 2 || segments.iter().any(String::is_empty) {
            return bad(
                "give the dotted path of a vector inside an object field (`object.field`)".into(),
            );
        }
        if props.contains_key(column) || columns.iter().any(|c| c.name == *column) {
            return bad(format!(
                "`{column}` is already a column; name the lifted vector otherwise"
            ));
        }
        let prop = property_at(props, &segments).ok_or_else(|| {
            Error::config(
                "elasticsearch",
                format!("`vectors.{column}` = `{path}`: the mapping has no field at that path"),
            )
        })?;
        let kind = match kind_of(path, prop, cfg)? {
            Some((
                k @ (Kind::FloatVector { .. } | Kind::BinaryVector { .. } | Kind::Sparse(_)),
                d,
            )) => (k, d),
            _ => {
                return bad(format!(
                    "the field there is a {}, not a vector",
                    prop.get("type").and_then(Value::as_str).unwrap_or("object")
                ))
            }
        };
        if let Some(m) = metric_of(prop) {
            metric.get_or_insert(m);
        }
        if let Some(c) = columns.iter_mut().find(|c| c.name == segments[0]) {
            c.strip.push(segments[1..].to_vec());
        }
        source_fields.push(path.clone());
        let (kind, described) = kind;
        columns.push(Column {
            name: column.clone(),
            es_type: prop
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object")
                .to_string(),
            kind,
            array: false,
            default: None,
            nullable: false,
            described: format!("{described} lifted from {path}"),
            lift: Some(segments),
            strip: Vec::new(),
            dims_from: None,
        });
    }
    if !pk_is_id && !columns.iter().any(|c| c.name == cfg.pk) {
        return Err(Error::config(
            "elasticsearch",
            format!("`pk` = `{}` is not a top-level field of the mapping (use `_id` for the document id)", cfg.pk),
        ));
    }
    // The primary key goes first.
    if !pk_is_id {
        if let Some(i) = columns.iter().position(|c| c.name == cfg.pk) {
            let c = columns.remove(i);
            columns.insert(0, c);
        }
    }
    let fields: Vec<Field> = columns.iter().map(arrow_field).collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    let pk_col = if pk_is_id {
        cfg.id_column.clone()
    } else {
        cfg.pk.clone()
    };
    meta.insert(META_PRIMARY_KEY.to_string(), pk_col);
    if let Some(m) = metric {
        meta.insert(META_METRIC.to_string(), m.to_string());
    }
    for c in &columns {
        meta.insert(format!("es.field.{}", c.name), c.described.clone());
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, meta));
    Ok((
        Layout {
            columns,
            schema,
            source_fields,
        },
        skipped,
    ))
}

fn scalar_type(kind: &Kind) -> DataType {
    match kind {
        Kind::Id | Kind::Str | Kind::DateText | Kind::Json => DataType::Utf8,
        Kind::Int(8) => DataType::Int8,
        Kind::Int(16) => DataType::Int16,
        Kind::Int(32) => DataType::Int32,
        Kind::Int(_) | Kind::UnsignedLong | Kind::DateMillis(_) | Kind::DateNanos(_) => {
            DataType::Int64
        }
        Kind::F32 => DataType::Float32,
        Kind::F64 => DataType::Float64,
        Kind::Bool => DataType::Boolean,
        Kind::FloatVector { .. } | Kind::BinaryVector { .. } | Kind::Sparse(_) => DataType::Null,
    }
}

fn arrow_field(c: &Column) -> Result<Field> {
    Ok(match &c.kind {
        Kind::FloatVector { dim, .. } => float_vector_field(&c.name, *dim),
        Kind::BinaryVector { dim } => binary_vector_field(&c.name, *dim)?,
        Kind::Sparse(_) => vmig_core::vector::sparse_float_vector_field(&c.name),
        Kind::Json => json_field(&c.name, c.nullable),
        k if c.array => Field::new_list(
            &c.name,
            Field::new_list_field(scalar_type(k), false),
            c.nullable,
        ),
        k => Field::new(&c.name, scalar_type(k), c.nullable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> BTreeMap<String, Value> {
        merged_properties(&v, "idx").unwrap()
    }

    #[test]
    fn a_named_primary_key_goes_first_and_is_required() {
        let p = props(json!({ "idx": { "mappings": { "properties": {
            "emb": { "type": "knn_vector", "dimension": 4, "space_type": "l2" },
            "sku": { "type": "keyword" },
            "price": { "type": "scaled_float", "scaling_factor": 100 }
        }}}}));
        let mut cfg = EsSourceConfig::new("http://x", "idx");
        cfg.pk = "sku".into();
        let (l, skipped) = layout(&p, &cfg).unwrap();
        assert!(skipped.is_empty());
        let names: Vec<&str> = l.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sku", "emb", "price"]);
        assert!(!l.columns[0].nullable);
        assert_eq!(l.schema.metadata()[META_PRIMARY_KEY], "sku");
        assert_eq!(l.schema.metadata()[META_METRIC], "L2");
        assert_eq!(l.schema.field(2).data_type(), &DataType::Float32);
        cfg.pk = "price".into();
        assert!(layout(&p, &cfg)
            .unwrap_err()
            .to_string()
            .contains("primary key"));
        cfg.pk = "nope".into();
        assert_eq!(layout(&p, &cfg).unwrap_err().to_string(), "invalid `elasticsearch` configuration: `pk` = `nope` is not a top-level field of the mapping (use `_id` for the document id)");
    }

    #[test]
    fn indices_must_agree_and_names_must_not_clash() {
        let conflict = json!({
            "a": { "mappings": { "properties": { "x": { "type": "long" } } } },
            "b": { "mappings": { "properties": { "x": { "type": "keyword" } } } }
        });
        let e = merged_properties(&conflict, "a,b").unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("differently"), "{e}");
        let same = json!({
            "a": { "mappings": { "properties": { "x": { "type": "long" }, "y": { "type": "boolean" } } } },
            "b": { "mappings": { "properties": { "x": { "type": "long" } } } }
        });
        assert_eq!(merged_properties(&same, "a,b").unwrap().len(), 2);
        let p = props(
            json!({ "idx": { "mappings": { "properties": { "id": { "type": "keyword" } } } } }),
        );
        let cfg = EsSourceConfig::new("http://x", "idx");
        assert!(layout(&p, &cfg)
            .unwrap_err()
            .to_string()
            .contains("id_column"));
    }

    #[test]
    fn vector_element_types_and_missing_dims() {
        let p = props(json!({ "idx": { "mappings": { "properties": {
            "b": { "type": "knn_vector", "dimension": 16, "data_type": "binary" },
            "f": { "type": "dense_vector", "element_type": "bfloat16", "dims": 4 },
            "n": { "type": "dense_vector" }
        }}}}));
        let mut cfg = EsSourceConfig::new("http://x", "idx");
        cfg.fields = Some(vec!["b".into()]);
        let (l, _) = layout(&p, &cfg).unwrap();
        assert_eq!(l.columns[1].kind, Kind::BinaryVector { dim: 16 });
        cfg.fields = Some(vec!["f".into()]);
        assert!(layout(&p, &cfg)
            .unwrap_err()
            .to_string()
            .contains("bfloat16"));
        cfg.fields = Some(vec!["n".into()]);
        assert!(layout(&p, &cfg).unwrap_err().to_string().contains("dims"));
        cfg.dims.insert("n".into(), 8);
        let (l, _) = layout(&p, &cfg).unwrap();
        assert_eq!(
            l.columns[1].kind,
            Kind::FloatVector {
                dim: 8,
                byte: false
            }
        );
    }

    #[test]
    fn date_formats_are_compiled_at_plan_time() {
        let p = props(json!({ "idx": { "mappings": { "properties": {
            "created": { "type": "date", "format": "yyyy-MM-dd HH:mm:ss||yyyy-MM-dd||epoch_millis" },
            "week": { "type": "date", "format": "epoch_second||YYYY-ww" }
        }}}}));
        let mut cfg = EsSourceConfig::new("http://x", "idx");
        cfg.fields = Some(vec!["created".into()]);
        let (l, _) = layout(&p, &cfg).unwrap();
        let Kind::DateMillis(f) = &l.columns[1].kind else {
            panic!("{:?}", l.columns[1].kind)
        };
        assert_eq!(
            f.epoch(&json!("2021-03-10 12:31:17"), false),
            Ok(1_615_379_477_000)
        );
        cfg.fields = Some(vec!["week".into()]);
        assert_eq!(
            layout(&p, &cfg).unwrap_err().to_string(),
            "unsupported input at mapping of `idx`, field `week`: date format `epoch_second||YYYY-ww`: pattern `YYYY-ww` uses `YYYY`, which vmig does not read (supported: y u M d D E H m s S X x Z, quoted literals and punctuation); read the field as text with `dates = \"string\"` (or leave it out with `fields = [...]`)"
        );
        cfg.dates = DateMode::String;
        let (l, _) = layout(&p, &cfg).unwrap();
        assert_eq!(l.columns[1].kind, Kind::DateText);
    }

    #[test]
    fn rank_vectors_are_refused_by_name_or_skipped() {
        let p = props(json!({ "idx": { "mappings": { "properties": {
            "col_pali_vectors": { "type": "rank_vectors", "element_type": "bit" },
            "v": { "type": "dense_vector", "dims": 8 }
        }}}}));
        let mut cfg = EsSourceConfig::new("http://x", "idx");
        assert_eq!(
            layout(&p, &cfg).unwrap_err().to_string(),
            "unsupported input at mapping of `idx`, field `col_pali_vectors`: type `rank_vectors` (element_type bit) holds several vectors per document (late-interaction multi-vectors such as ColBERT/ColPali), which no Milvus 2.x field can hold; leave the field out with `fields = [...]` or skip such fields with `on_unknown_type = \"skip\"`"
        );
        cfg.on_unknown_type = OnUnknownType::Skip;
        let (l, skipped) = layout(&p, &cfg).unwrap();
        assert_eq!(skipped, ["col_pali_vectors (rank_vectors)"]);
        assert_eq!(l.columns.len(), 2);
    }
}
