//! Milvus collection and field properties carried in Arrow metadata.
//!
//! A Milvus 2.x source describes the collection it reads with these keys, and the `milvus2` sink
//! reads them back when it creates the target, so a copy keeps what the Arrow types alone cannot
//! say. Every key is optional; an absent key means the sink's own default.
//!
//! Field metadata ([`describe_field`]):
//!
//! | key                     | value                                                      |
//! |-------------------------|------------------------------------------------------------|
//! | `milvus.description`    | the field's description                                    |
//! | `milvus.partition_key`  | `true` on the partition-key field                          |
//! | `milvus.auto_id`        | `true` on a primary key Milvus generated                   |
//! | `milvus.nullable`       | `true` on a nullable field (Milvus 2.5+)                   |
//! | `milvus.default_value`  | the default as a JSON scalar (Milvus 2.5+)                 |
//! | `milvus.dynamic`        | `true` on the dynamic field `$meta` (JSON of the extra keys)|
//! | `vmig.max_length`       | VarChar (or VarChar Array) `max_length`                    |
//! | `vmig.max_capacity`     | Array `max_capacity`                                       |
//! | `milvus.clustering_key` | `true` on the clustering-key field (Milvus 2.4+)           |
//! | `milvus.type_params`    | JSON object of the other `type_params` vmig copies ([`COPIED_TYPE_PARAMS`]: analyzer, match, mmap) |
//!
//! Schema metadata ([`CollectionSettings`]): `milvus.description`, `milvus.shards`,
//! `milvus.consistency_level` (`Strong`, `Session`, `Bounded`, `Eventually`),
//! `milvus.dynamic_field`, `milvus.partitions` (JSON array of names), `milvus.indexes` (JSON
//! array of [`IndexSpec`]), `vmig.auto_id` (`true`: let the target generate new primary
//! keys instead of keeping the source's); and, set by [`crate::schema::arrow_schema`],
//! `milvus.functions` (JSON array of [`FunctionSpec`]: the schema's functions, e.g. BM25, with
//! their output fields, which are not read: the target computes them) and `milvus.properties`
//! (JSON object of the collection's properties, e.g. `collection.ttl.seconds`, `mmap.enabled`,
//! copied as they are).
//!
//! Every `milvus.*` key and every Milvus-specific `vmig.*` key is defined here, once; the generic
//! `vmig.*` keys that vmig-core itself reads (`vmig.type`, `vmig.dim`, `vmig.primary_key`,
//! `vmig.metric`, `vmig.collection`) stay in [`vmig_core::vector`]. This module also reads a
//! Milvus field's `type_params` ([`field_dim`], [`field_max_length`], [`field_max_capacity`]);
//! it depends on no other module of this crate.

use std::collections::HashMap;

use arrow::datatypes::{Field, Schema};
use milvus::proto::common::{ConsistencyLevel, KeyValuePair};
use milvus::proto::schema::{value_field, DataType as MDataType, FieldSchema, ValueField};
use serde::{Deserialize, Serialize};

/// Field: description.
pub const DESCRIPTION: &str = "milvus.description";
/// Field: `true` on the partition-key field.
pub const PARTITION_KEY: &str = "milvus.partition_key";
/// Field: `true` on a primary key the source server generated.
pub const AUTO_ID: &str = "milvus.auto_id";
/// Field: `true` on a nullable field.
pub const NULLABLE: &str = "milvus.nullable";
/// Field: the default value as a JSON scalar.
pub const DEFAULT_VALUE: &str = "milvus.default_value";
/// Field: `true` on the dynamic field.
pub const DYNAMIC: &str = "milvus.dynamic";
/// Field: VarChar (or VarChar Array) `max_length`.
pub const MAX_LENGTH: &str = "vmig.max_length";
/// Field: an Array field's `max_capacity`.
pub const MAX_CAPACITY: &str = "vmig.max_capacity";
/// Field: `true` on the clustering-key field.
pub const CLUSTERING_KEY: &str = "milvus.clustering_key";
/// Field: JSON object of the copied `type_params` ([`COPIED_TYPE_PARAMS`]).
pub const TYPE_PARAMS: &str = "milvus.type_params";
/// The name Milvus gives the dynamic field.
pub const DYNAMIC_FIELD_NAME: &str = "$meta";

/// Schema: shard count.
pub const SHARDS: &str = "milvus.shards";
/// Schema: consistency level name.
pub const CONSISTENCY: &str = "milvus.consistency_level";
/// Schema: `true`/`false`, whether the dynamic field is enabled.
pub const DYNAMIC_FIELD: &str = "milvus.dynamic_field";
/// Schema: JSON array of partition names.
pub const PARTITIONS: &str = "milvus.partitions";
/// Schema: JSON array of [`IndexSpec`].
pub const INDEXES: &str = "milvus.indexes";
/// Schema: `true` asks the sink to let Milvus generate new primary keys.
pub const REGENERATE_IDS: &str = "vmig.auto_id";
/// Schema: JSON array of [`FunctionSpec`].
pub const FUNCTIONS: &str = "milvus.functions";
/// Schema: JSON object of the collection's properties.
pub const PROPERTIES: &str = "milvus.properties";

/// The `type_params` keys besides `dim`, `max_length` and `max_capacity` that a copy keeps,
/// with the Milvus release that has them: the analyzer settings of a VarChar (full-text search
/// and text match, 2.5), the several-language analyzer (2.6) and a field's `mmap.enabled`
/// (2.4; `mmap.enabled` as Milvus's alter-field call sets it, `mmap_enabled` as pymilvus's
/// `add_field(mmap_enabled=…)` sends it). Any other key on a source field is refused by name,
/// never dropped.
pub const COPIED_TYPE_PARAMS: [(&str, u32, u32); 6] = [
    ("enable_analyzer", 2, 5),
    ("analyzer_params", 2, 5),
    ("enable_match", 2, 5),
    ("multi_analyzer_params", 2, 6),
    ("mmap.enabled", 2, 4),
    ("mmap_enabled", 2, 4),
];

/// The `type_params` keys vmig reads itself (dimension, VarChar length, Array capacity).
pub const SIZE_TYPE_PARAMS: [&str; 3] = ["dim", "max_length", "max_capacity"];

/// A schema function (Milvus 2.5+): the target computes its output fields from its inputs
/// (BM25: a sparse vector from a VarChar), so a copy sends the inputs and not the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// The function's name.
    pub name: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The function type's name in milvus-proto (`BM25`, `TextEmbedding`, `MinHash`, …).
    pub function_type: String,
    /// The input fields.
    pub inputs: Vec<String>,
    /// The output fields, which the source does not read.
    pub outputs: Vec<OutputField>,
    /// The function's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
}

/// The schema of a function's output field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputField {
    /// The field name.
    pub name: String,
    /// The Milvus type's name in milvus-proto (`SparseFloatVector`, `FloatVector`, …).
    pub data_type: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its `type_params` (e.g. `dim`), as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_params: Vec<(String, String)>,
}

/// One vector or scalar index of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The indexed field.
    pub field: String,
    /// `index_type` (e.g. `HNSW`).
    pub index_type: String,
    /// `metric_type` (empty for scalar indexes).
    #[serde(default)]
    pub metric_type: String,
    /// The build parameters (e.g. `{"M": 16, "efConstruction": 64}`).
    #[serde(default)]
    pub params: serde_json::Value,
}

/// Collection-level properties read from (or written to) schema metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionSettings {
    /// The collection description.
    pub description: Option<String>,
    /// Shards.
    pub shards: Option<i32>,
    /// Consistency level.
    pub consistency: Option<ConsistencyLevel>,
    /// Whether the dynamic field is on.
    pub dynamic_field: Option<bool>,
    /// Partition names (including `_default`).
    pub partitions: Vec<String>,
    /// Indexes.
    pub indexes: Vec<IndexSpec>,
    /// Let the target generate new primary keys.
    pub regenerate_ids: bool,
}

impl CollectionSettings {
    /// Reads the settings from `schema`'s metadata (unparsable values count as absent).
    pub fn from_schema(schema: &Schema) -> Self {
        let m = schema.metadata();
        CollectionSettings {
            description: m.get(DESCRIPTION).cloned(),
            shards: m.get(SHARDS).and_then(|v| v.parse().ok()),
            consistency: m
                .get(CONSISTENCY)
                .and_then(|v| ConsistencyLevel::from_str_name(v)),
            dynamic_field: m.get(DYNAMIC_FIELD).and_then(|v| v.parse().ok()),
            partitions: m
                .get(PARTITIONS)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
            indexes: m
                .get(INDEXES)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
            regenerate_ids: m.get(REGENERATE_IDS).is_some_and(|v| v == "true"),
        }
    }

    /// The settings as schema metadata entries.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut m = Vec::new();
        if let Some(d) = &self.description {
            m.push((DESCRIPTION.into(), d.clone()));
        }
        if let Some(s) = self.shards {
            m.push((SHARDS.into(), s.to_string()));
        }
        if let Some(c) = self.consistency {
            m.push((CONSISTENCY.into(), c.as_str_name().to_string()));
        }
        if let Some(d) = self.dynamic_field {
            m.push((DYNAMIC_FIELD.into(), d.to_string()));
        }
        if !self.partitions.is_empty() {
            m.push((
                PARTITIONS.into(),
                serde_json::Value::from(self.partitions.clone()).to_string(),
            ));
        }
        if !self.indexes.is_empty() {
            if let Ok(v) = serde_json::to_string(&self.indexes) {
                m.push((INDEXES.into(), v));
            }
        }
        if self.regenerate_ids {
            m.push((REGENERATE_IDS.into(), "true".into()));
        }
        m
    }
}

fn type_param(params: &[KeyValuePair], key: &str) -> Option<i64> {
    crate::params::value_of(params, key).and_then(|v| v.parse().ok())
}

/// The dimension of a vector field schema (`type_params["dim"]`), 0 for scalars.
pub fn field_dim(f: &FieldSchema) -> i64 {
    type_param(&f.type_params, "dim").unwrap_or(0)
}

/// The `max_capacity` of an Array field schema, if set.
pub fn field_max_capacity(f: &FieldSchema) -> Option<i64> {
    type_param(&f.type_params, "max_capacity")
}

/// The `max_length` of a VarChar field schema, if set.
pub fn field_max_length(f: &FieldSchema) -> Option<i64> {
    type_param(&f.type_params, "max_length")
}

fn flag(field: &Field, key: &str) -> bool {
    field.metadata().get(key).is_some_and(|v| v == "true")
}

/// Whether `field` is the dynamic field (`$meta`, tagged [`DYNAMIC`]).
pub fn is_dynamic_field(field: &Field) -> bool {
    field.name() == DYNAMIC_FIELD_NAME
        && (flag(field, DYNAMIC) || vmig_core::vector::is_json(field))
}

/// Whether `field` is tagged as the partition key.
pub fn is_partition_key(field: &Field) -> bool {
    flag(field, PARTITION_KEY)
}

/// Whether `field` is tagged as the clustering key.
pub fn is_clustering_key(field: &Field) -> bool {
    flag(field, CLUSTERING_KEY)
}

/// The copied `type_params` of `field` ([`TYPE_PARAMS`]), in the order they were tagged.
///
/// # Errors
/// A message naming the field when the tag is not a JSON object of strings.
pub fn copied_type_params(field: &Field) -> Result<Vec<(String, String)>, String> {
    match field.metadata().get(TYPE_PARAMS) {
        None => Ok(Vec::new()),
        Some(text) => string_pairs(text)
            .map_err(|why| format!("field `{}` {TYPE_PARAMS} {why}", field.name())),
    }
}

/// The entries of a JSON object whose values are all strings (the [`TYPE_PARAMS`] and
/// [`PROPERTIES`] tags), in key order.
///
/// # Errors
/// What is wrong with `text`, e.g. "is not a JSON object (…)" or "`k` is 3, not a string".
pub fn string_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("is not a JSON object ({e})"))?;
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            other => Err(format!("has `{k}` = {other}, not a string")),
        })
        .collect()
}

/// Whether `field` is tagged nullable.
pub fn is_nullable(field: &Field) -> bool {
    flag(field, NULLABLE)
}

/// Adds the Milvus properties of `f` to Arrow field metadata `meta`.
pub fn describe_field(f: &FieldSchema, meta: &mut HashMap<String, String>) {
    if !f.description.is_empty() {
        meta.insert(DESCRIPTION.into(), f.description.clone());
    }
    if f.is_partition_key {
        meta.insert(PARTITION_KEY.into(), "true".into());
    }
    if f.is_primary_key && f.auto_id {
        meta.insert(AUTO_ID.into(), "true".into());
    }
    if f.nullable {
        meta.insert(NULLABLE.into(), "true".into());
    }
    if f.is_dynamic {
        meta.insert(DYNAMIC.into(), "true".into());
    }
    if f.is_clustering_key {
        meta.insert(CLUSTERING_KEY.into(), "true".into());
    }
    let copied: serde_json::Map<String, serde_json::Value> = f
        .type_params
        .iter()
        .filter(|p| COPIED_TYPE_PARAMS.iter().any(|(k, _, _)| *k == p.key))
        .map(|p| (p.key.clone(), p.value.clone().into()))
        .collect();
    if !copied.is_empty() {
        meta.insert(
            TYPE_PARAMS.into(),
            serde_json::Value::Object(copied).to_string(),
        );
    }
    if f.data_type == MDataType::VarChar as i32 || f.data_type == MDataType::Array as i32 {
        if let Some(n) = field_max_length(f) {
            meta.insert(MAX_LENGTH.into(), n.to_string());
        }
    }
    if f.data_type == MDataType::Array as i32 {
        if let Some(n) = field_max_capacity(f) {
            meta.insert(MAX_CAPACITY.into(), n.to_string());
        }
    }
    if let Some(v) = f.default_value.as_ref().and_then(default_to_json) {
        meta.insert(DEFAULT_VALUE.into(), v.to_string());
    }
}

fn default_to_json(v: &ValueField) -> Option<serde_json::Value> {
    use value_field::Data as D;
    Some(match v.data.as_ref()? {
        D::BoolData(b) => (*b).into(),
        D::IntData(i) => (*i).into(),
        D::LongData(l) => (*l).into(),
        D::FloatData(f) => f64::from(*f).into(),
        D::DoubleData(d) => (*d).into(),
        D::StringData(s) => s.clone().into(),
        _ => return None,
    })
}

/// The Milvus default value of field type `t` from its JSON metadata, if it has one.
pub fn default_value(field: &Field, t: MDataType) -> Option<ValueField> {
    use value_field::Data as D;
    let v: serde_json::Value = serde_json::from_str(field.metadata().get(DEFAULT_VALUE)?).ok()?;
    let data = match t {
        MDataType::Bool => D::BoolData(v.as_bool()?),
        MDataType::Int8 | MDataType::Int16 | MDataType::Int32 => {
            D::IntData(i32::try_from(v.as_i64()?).ok()?)
        }
        MDataType::Int64 => D::LongData(v.as_i64()?),
        MDataType::Float => D::FloatData(v.as_f64()? as f32),
        MDataType::Double => D::DoubleData(v.as_f64()?),
        MDataType::VarChar => D::StringData(v.as_str()?.to_string()),
        _ => return None,
    };
    Some(ValueField { data: Some(data) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip() {
        let s = CollectionSettings {
            description: Some("d".into()),
            shards: Some(3),
            consistency: Some(ConsistencyLevel::Strong),
            dynamic_field: Some(true),
            partitions: vec!["_default".into(), "p1".into()],
            indexes: vec![IndexSpec {
                field: "v".into(),
                index_type: "HNSW".into(),
                metric_type: "IP".into(),
                params: serde_json::json!({"M": 8}),
            }],
            regenerate_ids: true,
        };
        let m: HashMap<String, String> = s.entries().into_iter().collect();
        let schema = Schema::new(Vec::<Field>::new()).with_metadata(m);
        assert_eq!(CollectionSettings::from_schema(&schema), s);
    }

    #[test]
    fn field_properties_and_defaults() {
        let f = FieldSchema {
            name: "n".into(),
            data_type: MDataType::Int32 as i32,
            description: "count".into(),
            is_partition_key: true,
            nullable: true,
            default_value: Some(ValueField {
                data: Some(value_field::Data::IntData(7)),
            }),
            ..Default::default()
        };
        let mut m = HashMap::new();
        describe_field(&f, &mut m);
        let field = Field::new("n", arrow::datatypes::DataType::Int32, true).with_metadata(m);
        assert!(is_partition_key(&field) && is_nullable(&field));
        assert_eq!(
            default_value(&field, MDataType::Int32),
            f.default_value.clone()
        );
        assert_eq!(
            field.metadata().get(DESCRIPTION).map(String::as_str),
            Some("count")
        );
    }
}
