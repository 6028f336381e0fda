//! Arrow ⇄ Milvus schemas: an Arrow schema → a Milvus `CollectionSchema` (with Milvus's
//! limits, and compatibility with an existing collection), and a collection's schema → Arrow.
//!
//! Which Milvus type an Arrow field becomes, and back, is the one table in
//! [`vmig_core::types`] (core cannot depend on this crate's protobuf types, and `vmig plan`
//! must say what the sink will do). This module adds the protobuf side in one place:
//! [`to_proto`] and [`from_proto`] map [`MilvusType`] to and from the wire's `DataType`;
//! [`crate::convert`] and the `milvus2` source go through [`milvus_type_of`] and
//! [`arrow_schema`] here.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use milvus::proto::common::KeyValuePair;
use milvus::proto::schema::{
    CollectionSchema, DataType as MDataType, FieldSchema, FunctionSchema, FunctionType,
};
use vmig_core::types::{self, MilvusField, MilvusType};
use vmig_core::vector;
use vmig_core::{Error, Result};

use crate::meta::{self, field_dim, field_max_length, FunctionSpec, OutputField};
use crate::params::pair;
use crate::version::ServerVersion;

/// Largest vector dimension Milvus accepts (`proxy.maxDimension`).
pub const MAX_DIM: i64 = 32_768;
/// Most fields a collection may have (`proxy.maxFieldNum`).
pub const MAX_FIELDS: usize = 64;
/// Longest VarChar (`max_length`, in bytes).
pub const MAX_VARCHAR: u32 = 65_535;
/// Largest `max_capacity` of an `Array` field (Milvus's limit), and the default.
pub const MAX_ARRAY_CAPACITY: i64 = 4096;

/// The wire `DataType` of a Milvus type: the one place vmig's [`MilvusType`] meets the proto.
pub fn to_proto(t: MilvusType) -> MDataType {
    match t {
        MilvusType::Bool => MDataType::Bool,
        MilvusType::Int8 => MDataType::Int8,
        MilvusType::Int16 => MDataType::Int16,
        MilvusType::Int32 => MDataType::Int32,
        MilvusType::Int64 => MDataType::Int64,
        MilvusType::Float => MDataType::Float,
        MilvusType::Double => MDataType::Double,
        MilvusType::VarChar => MDataType::VarChar,
        MilvusType::Json => MDataType::Json,
        MilvusType::Array => MDataType::Array,
        MilvusType::FloatVector => MDataType::FloatVector,
        MilvusType::BinaryVector => MDataType::BinaryVector,
        MilvusType::Float16Vector => MDataType::Float16Vector,
        MilvusType::BFloat16Vector => MDataType::BFloat16Vector,
        MilvusType::SparseFloatVector => MDataType::SparseFloatVector,
        MilvusType::Int8Vector => MDataType::Int8Vector,
    }
}

/// The Milvus type of a wire `DataType` ([`to_proto`] read backwards; the legacy `String` is
/// `VarChar`); `None` for types vmig does not handle.
pub fn from_proto(t: MDataType) -> Option<MilvusType> {
    if t == MDataType::String {
        return Some(MilvusType::VarChar);
    }
    MilvusType::ALL.into_iter().find(|m| to_proto(*m) == t)
}

/// The Milvus data type of an Arrow field (the [`vmig_core::types`] table), with its vector
/// dimension (0 for everything but dense vectors).
///
/// # Errors
/// [`Error::Unsupported`] naming the field and its Arrow type when Milvus cannot hold it.
pub fn milvus_type_of(field: &Field) -> Result<(MDataType, i64)> {
    let t = types::milvus_field(field)?;
    Ok((to_proto(t.kind), t.dim as i64))
}

/// The Milvus element type of an Arrow field that maps to a Milvus `Array`; `None` for every
/// other field.
pub fn array_element_type(field: &Field) -> Option<MDataType> {
    types::milvus_field(field).ok()?.element.map(to_proto)
}

/// The `max_capacity` of an Arrow field that maps to a Milvus `Array`: field metadata
/// [`meta::MAX_CAPACITY`], else [`MAX_ARRAY_CAPACITY`].
///
/// # Errors
/// [`Error::Schema`] when the metadata is not a number in `1..=4096`.
pub fn arrow_max_capacity(field: &Field) -> Result<i64> {
    let Some(text) = field.metadata().get(meta::MAX_CAPACITY) else {
        return Ok(MAX_ARRAY_CAPACITY);
    };
    match text.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_ARRAY_CAPACITY).contains(&n) => Ok(n),
        _ => Err(Error::schema(format!(
            "Array `{}` {} = {text:?}: Milvus allows 1..={MAX_ARRAY_CAPACITY}",
            field.name(),
            meta::MAX_CAPACITY
        ))),
    }
}

/// How to build a collection schema from an Arrow schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// The collection name.
    pub collection: String,
    /// The collection description.
    pub description: String,
    /// The primary-key field; `None`: schema metadata `vmig.primary_key`, else `id`.
    pub primary_key: Option<String>,
    /// Let Milvus generate primary keys (the Arrow pk column, if any, is then not sent).
    pub auto_id: bool,
    /// `max_length` of every VarChar field; `None`: field metadata `vmig.max_length`, else
    /// [`MAX_VARCHAR`] (a collection created before the data is seen cannot measure it).
    pub varchar_max_length: Option<u32>,
    /// Enable the dynamic field (`$meta`).
    pub dynamic_field: bool,
}

/// The primary-key field name for `schema`: `configured`, else the schema's
/// [`vector::META_PRIMARY_KEY`], else `id`.
pub fn primary_key_name(schema: &Schema, configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| schema.metadata().get(vector::META_PRIMARY_KEY).cloned())
        .unwrap_or_else(|| "id".to_string())
}

/// Builds the collection schema for `arrow`, checking Milvus's limits (dimension ≤ 32768,
/// ≤ 64 fields, VarChar ≤ 65535, a primary key of type Int64 or VarChar, at least one vector).
///
/// Field properties carried in Arrow metadata ([`crate::meta`]) are kept: description,
/// partition key, nullable and default value. A `$meta` JSON field is the dynamic field: it is
/// not a schema field, it turns the dynamic field on. The collection description is
/// `opts.description`, else the schema's `milvus.description`.
///
/// # Errors
/// [`Error::Schema`] naming the field that breaks a limit; [`Error::Unsupported`] for types
/// Milvus cannot hold.
// The collection-level `auto_id` is deprecated in newer protos; 2.3 still reads it.
#[allow(deprecated)]
pub fn collection_schema(arrow: &Schema, opts: &SchemaOptions) -> Result<CollectionSchema> {
    let pk = primary_key_name(arrow, opts.primary_key.as_deref());
    let mut fields = Vec::new();
    let mut has_pk = false;
    let mut has_vector = false;
    if arrow.field_with_name(&pk).is_err() {
        if !opts.auto_id {
            return Err(Error::schema(format!(
                "primary key `{pk}` is not a field of the data (fields: {}); set `primary_key` to one of them, or `auto_id = true`",
                names(arrow)
            )));
        }
        fields.push(FieldSchema {
            name: pk.clone(),
            is_primary_key: true,
            auto_id: true,
            data_type: MDataType::Int64 as i32,
            ..Default::default()
        });
        has_pk = true;
    }
    let mut dynamic = opts.dynamic_field;
    for f in arrow.fields() {
        if meta::is_dynamic_field(f) {
            dynamic = true;
            continue;
        }
        let fs = field_schema(f, opts, f.name() == &pk)?;
        has_pk |= fs.is_primary_key;
        has_vector |= fs.data_type >= MDataType::BinaryVector as i32;
        fields.push(fs);
    }
    let functions = functions_of(arrow)?;
    for f in &functions {
        for out in &f.outputs {
            has_vector |= true;
            fields.push(output_field_schema(&f.name, out)?);
        }
    }
    if !has_pk {
        return Err(Error::schema(format!("no primary key `{pk}`")));
    }
    if !has_vector {
        return Err(Error::schema(format!(
            "a Milvus collection needs a vector field; none of {} is one",
            names(arrow)
        )));
    }
    if fields.len() > MAX_FIELDS {
        return Err(Error::schema(format!(
            "{} fields; Milvus allows at most {MAX_FIELDS}",
            fields.len()
        )));
    }
    for (i, f) in fields.iter_mut().enumerate() {
        f.field_id = 100 + i as i64;
    }
    let description = if opts.description.is_empty() {
        arrow
            .metadata()
            .get(meta::DESCRIPTION)
            .cloned()
            .unwrap_or_default()
    } else {
        opts.description.clone()
    };
    let functions = functions
        .iter()
        .map(|f| function_schema(f, &fields))
        .collect::<Result<Vec<_>>>()?;
    Ok(CollectionSchema {
        name: opts.collection.clone(),
        description,
        auto_id: opts.auto_id,
        fields,
        enable_dynamic_field: dynamic,
        properties: properties_of(arrow)?,
        functions,
        ..Default::default()
    })
}

/// The schema functions tagged on `arrow` ([`meta::FUNCTIONS`]).
fn functions_of(arrow: &Schema) -> Result<Vec<FunctionSpec>> {
    match arrow.metadata().get(meta::FUNCTIONS) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::schema(format!(
                "schema metadata {} is not a JSON array of functions ({e})",
                meta::FUNCTIONS
            ))
        }),
    }
}

/// The collection properties tagged on `arrow` ([`meta::PROPERTIES`]), in key order.
fn properties_of(arrow: &Schema) -> Result<Vec<KeyValuePair>> {
    let Some(text) = arrow.metadata().get(meta::PROPERTIES) else {
        return Ok(Vec::new());
    };
    let pairs = meta::string_pairs(text)
        .map_err(|why| Error::schema(format!("schema metadata {} {why}", meta::PROPERTIES)))?;
    Ok(pairs.iter().map(|(k, v)| pair(k, v)).collect())
}

/// The Milvus field a function writes: marked `is_function_output`, so inserts leave it out.
fn output_field_schema(function: &str, out: &OutputField) -> Result<FieldSchema> {
    let t = MDataType::from_str_name(&out.data_type)
        .filter(|t| from_proto(*t).is_some_and(|m| m.is_vector()))
        .ok_or_else(|| {
            Error::unsupported(
                format!("output field `{}` of function `{function}`", out.name),
                format!(
                    "type `{}` is not a vector type vmig knows; migrate with a vmig that knows it",
                    out.data_type
                ),
            )
        })?;
    Ok(FieldSchema {
        name: out.name.clone(),
        description: out.description.clone(),
        data_type: t as i32,
        type_params: out.type_params.iter().map(|(k, v)| pair(k, v)).collect(),
        is_function_output: true,
        ..Default::default()
    })
}

/// The proto of a function whose inputs and outputs are fields of `fields`.
fn function_schema(f: &FunctionSpec, fields: &[FieldSchema]) -> Result<FunctionSchema> {
    let t = FunctionType::from_str_name(&f.function_type)
        .filter(|t| *t != FunctionType::Unknown)
        .ok_or_else(|| {
            Error::unsupported(
                format!("function `{}`", f.name),
                format!("function type `{}` is not one vmig knows", f.function_type),
            )
        })?;
    for input in &f.inputs {
        if !fields.iter().any(|x| &x.name == input) {
            return Err(Error::schema(format!(
                "function `{}` reads field `{input}`, which the data does not have (a transform dropped or renamed it?)",
                f.name
            )));
        }
    }
    Ok(FunctionSchema {
        name: f.name.clone(),
        description: f.description.clone(),
        r#type: t as i32,
        input_field_names: f.inputs.clone(),
        output_field_names: f.outputs.iter().map(|o| o.name.clone()).collect(),
        params: f.params.iter().map(|(k, v)| pair(k, v)).collect(),
        ..Default::default()
    })
}

/// What a target of version `server` cannot create of `wanted`, refused before anything is
/// written: several vector fields and a clustering key need 2.4, BM25 functions and the
/// analyzer settings 2.5, Int8 vectors, other functions and the several-language analyzer 2.6
/// (each copied
/// `type_params` key at its release, [`meta::COPIED_TYPE_PARAMS`]). A server that does not say
/// its release is not refused here (its own answer decides).
///
/// # Errors
/// [`Error::Unsupported`] naming the collection and every feature the target lacks, with the
/// release each needs and the target's version.
pub fn check_target(wanted: &CollectionSchema, server: &ServerVersion) -> Result<()> {
    let mut refusals = Vec::new();
    let vectors: Vec<&str> = wanted
        .fields
        .iter()
        .filter(|f| f.data_type >= MDataType::BinaryVector as i32)
        .map(|f| f.name.as_str())
        .collect();
    if vectors.len() > 1 {
        refusals.extend(server.require(
            &format!("several vector fields ({})", vectors.join(", ")),
            2,
            4,
        ));
    }
    for f in &wanted.fields {
        if f.data_type == MDataType::Int8Vector as i32 {
            refusals.extend(server.require(&format!("Int8Vector `{}`", f.name), 2, 6));
        }
        if f.is_clustering_key {
            refusals.extend(server.require(&format!("clustering key `{}`", f.name), 2, 4));
        }
        for p in &f.type_params {
            if let Some((key, major, minor)) = meta::COPIED_TYPE_PARAMS
                .iter()
                .find(|(k, _, _)| *k == p.key)
            {
                refusals.extend(server.require(
                    &format!("`{key}` on field `{}`", f.name),
                    *major,
                    *minor,
                ));
            }
        }
    }
    for f in &wanted.functions {
        let (major, minor) = if f.r#type == FunctionType::Bm25 as i32 {
            (2, 5)
        } else {
            (2, 6)
        };
        let kind = FunctionType::try_from(f.r#type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| format!("type {}", f.r#type));
        refusals.extend(server.require(&format!("function `{}` ({kind})", f.name), major, minor));
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Error::unsupported(
            format!("collection `{}`", wanted.name),
            format!(
                "{}; migrate into a newer Milvus, or leave these out (a `drop` transformer for fields)",
                refusals.join("; ")
            ),
        ))
    }
}

fn names(arrow: &Schema) -> String {
    arrow
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn field_schema(f: &Field, opts: &SchemaOptions, is_pk: bool) -> Result<FieldSchema> {
    let mt = types::milvus_field(f)?;
    let (t, dim) = (to_proto(mt.kind), mt.dim as i64);
    let mut fs = FieldSchema {
        name: f.name().clone(),
        data_type: t as i32,
        is_primary_key: is_pk,
        auto_id: is_pk && opts.auto_id,
        description: f
            .metadata()
            .get(meta::DESCRIPTION)
            .cloned()
            .unwrap_or_default(),
        is_partition_key: meta::is_partition_key(f),
        is_clustering_key: meta::is_clustering_key(f),
        nullable: meta::is_nullable(f),
        default_value: meta::default_value(f, t),
        ..Default::default()
    };
    for (key, value) in meta::copied_type_params(f).map_err(Error::schema)? {
        if !meta::COPIED_TYPE_PARAMS.iter().any(|(k, _, _)| *k == key) {
            return Err(Error::unsupported(
                format!("field `{}`", f.name()),
                format!(
                    "{} has `{key}`, a type parameter vmig does not copy (it copies {})",
                    meta::TYPE_PARAMS,
                    copied_names()
                ),
            ));
        }
        fs.type_params.push(pair(&key, value));
    }
    if f.name().is_empty() || f.name().starts_with('$') {
        return Err(Error::schema(format!(
            "field name `{}` is not allowed in Milvus",
            f.name()
        )));
    }
    if dim > 0 {
        if dim > MAX_DIM {
            return Err(Error::schema(format!(
                "vector `{}` has dimension {dim}; Milvus allows at most {MAX_DIM}",
                f.name()
            )));
        }
        fs.type_params.push(pair("dim", dim));
    }
    if let Some(element) = mt.element {
        fs.element_type = to_proto(element) as i32;
        let capacity = arrow_max_capacity(f)?;
        if let DataType::FixedSizeList(_, n) = f.data_type() {
            if i64::from(*n) > capacity {
                return Err(Error::schema(format!(
                    "Array `{}` holds {n} elements per row; its max_capacity is {capacity} (Milvus allows 1..={MAX_ARRAY_CAPACITY})",
                    f.name()
                )));
            }
        }
        fs.type_params.push(pair("max_capacity", capacity));
    }
    let has_length = t == MDataType::VarChar
        || (t == MDataType::Array && fs.element_type == MDataType::VarChar as i32);
    if has_length {
        let len = opts
            .varchar_max_length
            .or_else(|| {
                f.metadata()
                    .get(meta::MAX_LENGTH)
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(MAX_VARCHAR);
        if len == 0 || len > MAX_VARCHAR {
            return Err(Error::schema(format!(
                "VarChar{} `{}` max_length {len}: Milvus allows 1..={MAX_VARCHAR}",
                if t == MDataType::Array { " Array" } else { "" },
                f.name()
            )));
        }
        fs.type_params.push(pair("max_length", len));
    }
    if is_pk && !matches!(t, MDataType::Int64 | MDataType::VarChar) {
        return Err(Error::schema(format!(
            "primary key `{}` is {}; Milvus primary keys are Int64 or VarChar",
            f.name(),
            f.data_type()
        )));
    }
    Ok(fs)
}

fn type_name(t: i32) -> String {
    MDataType::try_from(t)
        .map(|t| format!("{t:?}"))
        .unwrap_or_else(|_| format!("type {t}"))
}

/// Checks that an existing collection can take rows built for `wanted`: same field names,
/// types, dimensions and primary key; `wanted` VarChar lengths are not compared (the server
/// checks each value against the existing `max_length`).
///
/// # Errors
/// [`Error::Schema`] listing every difference ([`schema_differences`]).
pub fn check_compatible(existing: &CollectionSchema, wanted: &CollectionSchema) -> Result<()> {
    let diffs = schema_differences(existing, wanted);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::schema(format!(
            "collection `{}` already exists with a different schema: {}",
            existing.name,
            diffs.join("; ")
        )))
    }
}

/// Every difference [`check_compatible`] refuses, one phrase each (e.g. "field `score` is
/// missing", "vector `v` has dimension 8 there, 16 in the data"); empty when `existing` can take
/// rows built for `wanted`.
pub fn schema_differences(existing: &CollectionSchema, wanted: &CollectionSchema) -> Vec<String> {
    let mut diffs = Vec::new();
    for w in &wanted.fields {
        match existing.fields.iter().find(|e| e.name == w.name) {
            None => diffs.push(format!("field `{}` is missing", w.name)),
            Some(e) => {
                if e.data_type != w.data_type {
                    diffs.push(format!(
                        "field `{}` is {} there, {} in the data",
                        w.name,
                        type_name(e.data_type),
                        type_name(w.data_type)
                    ));
                } else if e.element_type != w.element_type {
                    diffs.push(format!(
                        "Array `{}` has {} elements there, {} in the data",
                        w.name,
                        type_name(e.element_type),
                        type_name(w.element_type)
                    ));
                } else if field_dim(e) != field_dim(w) {
                    diffs.push(format!(
                        "vector `{}` has dimension {} there, {} in the data",
                        w.name,
                        field_dim(e),
                        field_dim(w)
                    ));
                }
                if e.is_primary_key != w.is_primary_key {
                    diffs.push(format!(
                        "field `{}` is {}the primary key there",
                        w.name,
                        if e.is_primary_key { "" } else { "not " }
                    ));
                } else if e.is_primary_key && e.auto_id != w.auto_id {
                    diffs.push(format!(
                        "primary key `{}` has auto_id = {} there, {} configured",
                        w.name, e.auto_id, w.auto_id
                    ));
                }
            }
        }
    }
    for e in &existing.fields {
        if e.is_dynamic || e.name == "$meta" {
            continue;
        }
        if !wanted.fields.iter().any(|w| w.name == e.name) {
            diffs.push(format!(
                "field `{}` exists there but not in the data",
                e.name
            ));
        }
    }
    diffs
}

/// The `max_length` of VarChar field `name` in `schema`, if it has one.
pub fn varchar_max_length(schema: &CollectionSchema, name: &str) -> Option<i64> {
    schema
        .fields
        .iter()
        .find(|f| f.name == name)
        .and_then(field_max_length)
}

/// The Arrow field (with vmig metadata) that holds values of a Milvus field, carrying the
/// field's Milvus properties (see [`crate::meta`]); a nullable Milvus field (2.5+) is a nullable
/// Arrow field.
///
/// # Errors
/// [`Error::Unsupported`] for Milvus types vmig cannot read back into Arrow.
pub fn arrow_field(f: &FieldSchema) -> Result<Field> {
    let name = f.name.as_str();
    let proto = MDataType::try_from(f.data_type).unwrap_or(MDataType::None);
    let cannot = |what: String| {
        Error::unsupported(
            format!("Milvus field `{name}`"),
            format!("{what} cannot be read back into Arrow by vmig yet"),
        )
    };
    let kind = from_proto(proto).ok_or_else(|| cannot(format!("type {proto:?}")))?;
    if let Some(p) = f.type_params.iter().find(|p| {
        !meta::SIZE_TYPE_PARAMS.contains(&p.key.as_str())
            && !meta::COPIED_TYPE_PARAMS.iter().any(|(k, _, _)| *k == p.key)
    }) {
        return Err(cannot(format!(
            "type parameter `{}` = {:?} (vmig copies {}; it refuses what it would otherwise drop)",
            p.key,
            p.value,
            copied_names()
        )));
    }
    if f.element_nullable || !f.external_field.is_empty() {
        return Err(cannot(
            "a field with nullable Array elements or an external source".to_string(),
        ));
    }
    let element = if kind == MilvusType::Array {
        let e = MDataType::try_from(f.element_type).unwrap_or(MDataType::None);
        match from_proto(e).filter(|m| m.is_array_element()) {
            Some(m) => Some(m),
            None => return Err(cannot(format!("Array of {e:?}"))),
        }
    } else {
        None
    };
    let dim = if kind.is_vector() {
        field_dim(f).max(0) as usize
    } else {
        0
    };
    let field = types::arrow_field(name, MilvusField { kind, element, dim })?;
    let mut metadata: HashMap<String, String> = field
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta::describe_field(f, &mut metadata);
    let field = field.with_metadata(metadata);
    Ok(if f.nullable && kind.can_be_nullable() {
        field.with_nullable(true)
    } else {
        field
    })
}

/// The Arrow schema of a collection: one field per Milvus field, in schema order, with
/// [`vector::META_PRIMARY_KEY`] and [`vector::META_COLLECTION`] set.
///
/// # Errors
/// As [`arrow_field`].
pub fn arrow_schema(schema: &CollectionSchema) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    let mut metadata = HashMap::new();
    if let Some(s) = schema.struct_array_fields.first() {
        return Err(Error::unsupported(
            format!("Milvus field `{}`", s.name),
            "Array of Struct fields cannot be read back into Arrow by vmig yet",
        ));
    }
    if !schema.functions.is_empty() {
        let specs = schema
            .functions
            .iter()
            .map(|f| function_spec(f, schema))
            .collect::<Result<Vec<_>>>()?;
        metadata.insert(
            meta::FUNCTIONS.to_string(),
            serde_json::to_string(&specs).map_err(|e| Error::schema(e.to_string()))?,
        );
    }
    if !schema.properties.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = schema
            .properties
            .iter()
            .map(|p| (p.key.clone(), p.value.clone().into()))
            .collect();
        metadata.insert(
            meta::PROPERTIES.to_string(),
            serde_json::Value::Object(map).to_string(),
        );
    }
    for f in &schema.fields {
        if f.is_function_output {
            if !schema
                .functions
                .iter()
                .any(|x| x.output_field_names.contains(&f.name))
            {
                return Err(Error::unsupported(
                    format!("Milvus field `{}`", f.name),
                    "the server marks it as a function's output but lists no function that writes it (Milvus Lite 2.5 does not report functions), so vmig can neither read it nor have the target compute it; copy this collection from a Milvus server",
                ));
            }
            continue;
        }
        if f.is_primary_key {
            metadata.insert(vector::META_PRIMARY_KEY.to_string(), f.name.clone());
        }
        fields.push(arrow_field(f)?);
    }
    metadata.insert(vector::META_COLLECTION.to_string(), schema.name.clone());
    Ok(Arc::new(Schema::new(fields).with_metadata(metadata)))
}

/// A function of `schema` as [`FunctionSpec`], with its output fields' schemas.
fn function_spec(f: &FunctionSchema, schema: &CollectionSchema) -> Result<FunctionSpec> {
    let place = || format!("Milvus function `{}`", f.name);
    let t = FunctionType::try_from(f.r#type)
        .ok()
        .filter(|t| *t != FunctionType::Unknown)
        .ok_or_else(|| {
            Error::unsupported(
                place(),
                format!("function type {} is one vmig does not know", f.r#type),
            )
        })?;
    let outputs = f
        .output_field_names
        .iter()
        .map(|name| {
            let field = schema
                .fields
                .iter()
                .find(|x| &x.name == name)
                .ok_or_else(|| {
                    Error::schema(format!(
                        "{} writes `{name}`, which the schema lacks",
                        place()
                    ))
                })?;
            Ok(OutputField {
                name: name.clone(),
                data_type: MDataType::try_from(field.data_type)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_else(|_| field.data_type.to_string()),
                description: field.description.clone(),
                type_params: field
                    .type_params
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FunctionSpec {
        name: f.name.clone(),
        description: f.description.clone(),
        function_type: t.as_str_name().to_string(),
        inputs: f.input_field_names.clone(),
        outputs,
        params: f
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    })
}

/// The copied `type_params` keys, for messages.
fn copied_names() -> String {
    meta::COPIED_TYPE_PARAMS
        .iter()
        .map(|(k, _, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::field_max_capacity;

    fn arrow() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vector", 8),
            Field::new("title", DataType::Utf8, true),
        ])
    }

    #[test]
    fn maps_fields_and_limits() -> Result<()> {
        let opts = SchemaOptions {
            collection: "c".into(),
            varchar_max_length: Some(100),
            ..Default::default()
        };
        let s = collection_schema(&arrow(), &opts)?;
        assert_eq!(s.fields.len(), 3);
        assert!(s.fields[0].is_primary_key);
        assert_eq!(field_dim(&s.fields[1]), 8);
        assert_eq!(field_max_length(&s.fields[2]), Some(100));
        check_compatible(&s, &s)?;
        let big = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vector", 40_000),
        ]);
        let err = collection_schema(&big, &opts).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("at most 32768"));
        Ok(())
    }

    #[test]
    fn auto_id_adds_a_pk_and_differences_are_listed() -> Result<()> {
        let arrow = Schema::new(vec![vector::float_vector_field("vector", 8)]);
        let opts = SchemaOptions {
            auto_id: true,
            ..Default::default()
        };
        let s = collection_schema(&arrow, &opts)?;
        assert!(s.fields[0].auto_id && s.fields[0].name == "id");
        let mut other = s.clone();
        other.fields[1].type_params = vec![pair("dim", 16)];
        let msg = check_compatible(&other, &s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("dimension 16 there, 8 in the data"), "{msg}");
        Ok(())
    }

    #[test]
    fn lists_become_arrays_with_capacity_and_length() -> Result<()> {
        let item = |t| Arc::new(Field::new_list_field(t, true));
        let capped =
            Field::new("tags", DataType::List(item(DataType::Utf8)), false).with_metadata([
                ("vmig.max_capacity".to_string(), "8".to_string()),
                ("vmig.max_length".to_string(), "32".to_string()),
            ]);
        let arrow = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vector", 4),
            Field::new("ints", DataType::LargeList(item(DataType::Int16)), false),
            capped,
        ]);
        let s = collection_schema(&arrow, &SchemaOptions::default())?;
        let ints = &s.fields[2];
        assert_eq!(ints.data_type, MDataType::Array as i32);
        assert_eq!(ints.element_type, MDataType::Int16 as i32);
        assert_eq!(field_max_capacity(ints), Some(4096));
        assert_eq!(field_max_length(ints), None);
        let tags = &s.fields[3];
        assert_eq!(tags.element_type, MDataType::VarChar as i32);
        assert_eq!(field_max_capacity(tags), Some(8));
        assert_eq!(field_max_length(tags), Some(32));

        let back = arrow_schema(&s)?;
        assert_eq!(
            back.field(2).data_type(),
            &DataType::List(item(DataType::Int16))
        );
        assert_eq!(
            back.field(3).data_type(),
            &DataType::List(item(DataType::Utf8))
        );
        let again = collection_schema(&back, &SchemaOptions::default())?;
        check_compatible(&s, &again)?;
        assert_eq!(field_max_capacity(&again.fields[3]), Some(8));

        let mut other = s.clone();
        other.fields[2].element_type = MDataType::Int64 as i32;
        let msg = check_compatible(&other, &s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("Array `ints` has Int64 elements there, Int16"),
            "{msg}"
        );

        let too_big = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vector", 4),
            Field::new("a", DataType::List(item(DataType::Int64)), false)
                .with_metadata([("vmig.max_capacity".to_string(), "5000".to_string())]),
        ]);
        let msg = collection_schema(&too_big, &SchemaOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("Array `a`") && msg.contains("1..=4096"),
            "{msg}"
        );

        let nested = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vector", 4),
            Field::new("n", DataType::List(item(DataType::Date32)), false),
        ]);
        assert_eq!(collection_schema(&nested, &SchemaOptions::default()).unwrap_err().to_string(), "unsupported input at field `n`: Arrow type List(Date32) has no Milvus type: a Milvus Array holds bool, int8–int64, float, double or string elements, not Date32 (vmig maps bool, int8–int64, float32/64, utf8/large_utf8/utf8_view, JSON, lists of those scalars, and float/binary/float16/bfloat16/sparse/int8 vectors; a `cast` transformer can convert many other types first)");
        Ok(())
    }

    /// A Milvus 2.5/2.6 collection as `DescribeCollection` returns it (written from
    /// milvus-proto's schema.proto, not from a server): a VarChar with analyzer and match, its
    /// BM25 function writing a sparse vector, a clustering key, a field with `mmap.enabled`,
    /// and collection properties.
    fn full_text_collection() -> CollectionSchema {
        CollectionSchema {
            name: "docs".into(),
            fields: vec![
                FieldSchema {
                    name: "id".into(),
                    data_type: MDataType::Int64 as i32,
                    is_primary_key: true,
                    ..Default::default()
                },
                FieldSchema {
                    name: "text".into(),
                    data_type: MDataType::VarChar as i32,
                    type_params: vec![
                        pair("max_length", 1000),
                        pair("enable_analyzer", "true"),
                        pair("analyzer_params", r#"{"type":"english"}"#),
                        pair("enable_match", "true"),
                    ],
                    ..Default::default()
                },
                FieldSchema {
                    name: "sparse".into(),
                    data_type: MDataType::SparseFloatVector as i32,
                    is_function_output: true,
                    ..Default::default()
                },
                FieldSchema {
                    name: "dense".into(),
                    data_type: MDataType::FloatVector as i32,
                    type_params: vec![pair("dim", 4), pair("mmap.enabled", "true")],
                    ..Default::default()
                },
                FieldSchema {
                    name: "year".into(),
                    data_type: MDataType::Int32 as i32,
                    is_clustering_key: true,
                    ..Default::default()
                },
            ],
            functions: vec![FunctionSchema {
                name: "text_bm25".into(),
                r#type: FunctionType::Bm25 as i32,
                input_field_names: vec!["text".into()],
                output_field_names: vec!["sparse".into()],
                ..Default::default()
            }],
            properties: vec![pair("collection.ttl.seconds", 86400)],
            ..Default::default()
        }
    }

    #[test]
    fn functions_clustering_key_type_params_and_properties_are_copied() -> Result<()> {
        let source = full_text_collection();
        let arrow = arrow_schema(&source)?;
        // The function's output is not read: the target computes it.
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "text", "dense", "year"]);
        let target = collection_schema(&arrow, &SchemaOptions::default())?;
        let field = |name: &str| target.fields.iter().find(|f| f.name == name).cloned();
        let text = field("text").unwrap_or_default();
        let mut params: Vec<(String, String)> = text
            .type_params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        params.sort();
        let mut expected: Vec<(String, String)> = source.fields[1]
            .type_params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        expected.sort();
        assert_eq!(params, expected);
        let sparse = field("sparse").unwrap_or_default();
        assert!(sparse.is_function_output, "{sparse:?}");
        assert_eq!(sparse.data_type, MDataType::SparseFloatVector as i32);
        assert!(crate::params::value_of(
            &field("dense").unwrap_or_default().type_params,
            "mmap.enabled"
        )
        .is_some_and(|v| v == "true"));
        assert!(field("year").is_some_and(|f| f.is_clustering_key));
        assert_eq!(target.functions.len(), 1);
        let f = &target.functions[0];
        assert_eq!(
            (
                f.name.as_str(),
                f.r#type,
                &f.input_field_names,
                &f.output_field_names
            ),
            (
                "text_bm25",
                FunctionType::Bm25 as i32,
                &vec!["text".to_string()],
                &vec!["sparse".to_string()]
            )
        );
        assert_eq!(target.properties, source.properties);
        // A transform that dropped the function's input is named.
        let dropped = Schema::new_with_metadata(
            arrow
                .fields()
                .iter()
                .filter(|f| f.name() != "text")
                .cloned()
                .collect::<Vec<_>>(),
            arrow.metadata().clone(),
        );
        let msg = collection_schema(&dropped, &SchemaOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("function `text_bm25` reads field `text`, which the data does not have"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn unknown_type_params_function_types_and_field_kinds_are_refused_by_name() {
        let mut s = full_text_collection();
        s.fields[3].type_params.push(pair("warmup", "sync"));
        let msg = arrow_schema(&s).unwrap_err().to_string();
        assert!(
            msg.contains("field `dense`") && msg.contains("type parameter `warmup` = \"sync\""),
            "{msg}"
        );

        let mut s = full_text_collection();
        s.functions.clear();
        let msg = arrow_schema(&s).unwrap_err().to_string();
        assert!(
            msg.contains("field `sparse`") && msg.contains("lists no function that writes it"),
            "{msg}"
        );

        let mut s = full_text_collection();
        s.functions[0].r#type = 99;
        let msg = arrow_schema(&s).unwrap_err().to_string();
        assert!(
            msg.contains("function `text_bm25`") && msg.contains("function type 99"),
            "{msg}"
        );

        let mut s = full_text_collection();
        s.fields[4].data_type = 31; // UUID, added after the types vmig maps
        let msg = arrow_schema(&s).unwrap_err().to_string();
        assert!(
            msg.contains("field `year`") && msg.contains("type Uuid"),
            "{msg}"
        );

        // A copied type parameter tag naming a key vmig does not copy (a hand-made tag).
        let f = Field::new("t", DataType::Utf8, false).with_metadata([(
            meta::TYPE_PARAMS.to_string(),
            r#"{"tokenizer":"x"}"#.to_string(),
        )]);
        let arrow = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("v", 4),
            f,
        ]);
        let msg = collection_schema(&arrow, &SchemaOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("field `t`") && msg.contains("`tokenizer`"),
            "{msg}"
        );
    }

    #[test]
    fn older_targets_refuse_what_they_lack_naming_version_and_feature() -> Result<()> {
        let arrow = arrow_schema(&full_text_collection())?;
        let wanted = collection_schema(
            &arrow,
            &SchemaOptions {
                collection: "docs".into(),
                ..Default::default()
            },
        )?;
        let old = ServerVersion::new("http://localhost:19530", Some("v2.3.5"));
        let msg = check_target(&wanted, &old).unwrap_err().to_string();
        for part in [
            "collection `docs`",
            "several vector fields (dense, sparse) needs Milvus 2.4 or newer, and the target is Milvus v2.3.5",
            "clustering key `year` needs Milvus 2.4",
            "`enable_analyzer` on field `text` needs Milvus 2.5",
            "`mmap.enabled` on field `dense` needs Milvus 2.4",
            "function `text_bm25` (BM25) needs Milvus 2.5",
        ] {
            assert!(msg.contains(part), "{part:?} not in {msg}");
        }
        let v24 = ServerVersion::new("http://localhost:19530", Some("v2.4.17"));
        let msg = check_target(&wanted, &v24).unwrap_err().to_string();
        assert!(
            !msg.contains("clustering key")
                && msg.contains("function `text_bm25` (BM25) needs Milvus 2.5"),
            "{msg}"
        );
        check_target(
            &wanted,
            &ServerVersion::new("http://localhost:19530", Some("v2.5.4")),
        )?;
        // A server that does not report its release (milvus-lite 2.5) decides itself.
        check_target(&wanted, &ServerVersion::new("http://localhost:18500", None))?;
        let int8 = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::int8_vector_field("q", 8),
        ]);
        let opts = SchemaOptions {
            collection: "q".into(),
            ..Default::default()
        };
        let wanted = collection_schema(&int8, &opts)?;
        let v25 = ServerVersion::new("http://localhost:19530", Some("v2.5.4"));
        let msg = check_target(&wanted, &v25).unwrap_err().to_string();
        assert!(
            msg.contains(
                "Int8Vector `q` needs Milvus 2.6 or newer, and the target is Milvus v2.5.4"
            ),
            "{msg}"
        );
        check_target(
            &wanted,
            &ServerVersion::new("http://localhost:19530", Some("v2.6.0")),
        )?;
        Ok(())
    }
}
