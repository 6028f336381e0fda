//! Row-by-row verification of a finished migration.
//!
//! The source is read again (through the same transformers), every row is reduced to its primary
//! key and a 64-bit hash of its bytes (every column, vectors bit for bit, via Arrow's row format),
//! and the target is read back by primary key and compared. Reported: rows missing from the target,
//! rows in the target that the source does not have, rows whose values differ, and primary keys
//! that occur more than once in the source.
//!
//! Memory: one map entry (key + hash, about 40 bytes) per source row. That is fine for hundreds of
//! millions of rows on a large machine; beyond that, verify per partition or sample.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::{apply_transforms, planned_schemas};
use crate::source::{Source, SourceContext};
use crate::transform::Transformer;

/// A primary-key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Key {
    /// An Int64 key.
    Int(i64),
    /// A VarChar key.
    Str(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(v) => write!(f, "{v}"),
            Key::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// What is wrong with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// In both, with different values.
    Changed,
    /// The source has this key more than once (a primary key must be unique).
    DuplicateInSource,
    /// The target returned this key more than once.
    DuplicateInTarget,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Rows read from the source (after transformers).
    pub source_rows: u64,
    /// Rows read from the target.
    pub target_rows: u64,
    /// Counts per kind of difference.
    pub missing: u64,
    /// Rows in the target only.
    pub extra: u64,
    /// Rows whose values differ.
    pub changed: u64,
    /// Source keys seen more than once.
    pub duplicate_in_source: u64,
    /// Target keys seen more than once.
    pub duplicate_in_target: u64,
    /// The first differences found (at most the configured number), sorted by key.
    pub examples: Vec<(Key, Difference)>,
}

impl VerifyReport {
    /// Whether source and target hold exactly the same rows.
    pub fn is_match(&self) -> bool {
        self.missing
            + self.extra
            + self.changed
            + self.duplicate_in_source
            + self.duplicate_in_target
            == 0
            && self.source_rows == self.target_rows
    }
}

/// Hashes rows of batches that have (or can be cast to) one schema.
struct RowHasher {
    schema: SchemaRef,
    converter: RowConverter,
    key_index: usize,
}

impl RowHasher {
    fn new(schema: SchemaRef, pk: &str) -> Result<Self> {
        let key_index = schema.index_of(pk).map_err(|_| {
            Error::schema(format!(
                "the primary key `{pk}` is not among the migrated fields, so rows cannot be matched"
            ))
        })?;
        match schema.field(key_index).data_type() {
            DataType::Int64 | DataType::Utf8 => {}
            other => {
                return Err(Error::schema(format!(
                    "primary key `{pk}` is {other}; verify matches Int64 and VarChar keys"
                )))
            }
        }
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(RowHasher {
            converter: RowConverter::new(fields)?,
            schema,
            key_index,
        })
    }

    /// Reorders and casts `batch`'s columns to the expected schema (by field name).
    fn align(&self, batch: &RecordBatch, side: &str) -> Result<Vec<ArrayRef>> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let column = batch.column_by_name(f.name()).ok_or_else(|| {
                    Error::schema(format!("the {side} has no field `{}`", f.name()))
                })?;
                if column.data_type() == f.data_type() {
                    Ok(Arc::clone(column))
                } else if let (Some(text), true) = (
                    column.as_string_opt::<i32>(),
                    crate::vector::is_sparse_float_vector_type(f.data_type()),
                ) {
                    // Sparse vectors staged as text in Milvus's import layout (Parquet files).
                    crate::vector::sparse_from_import_json(
                        text,
                        &format!("the {side}'s field `{}`", f.name()),
                    )
                } else {
                    cast(column, f.data_type()).map_err(|e| {
                        Error::schema(format!(
                            "the {side}'s field `{}` is {}, expected {}: {e}",
                            f.name(),
                            column.data_type(),
                            f.data_type()
                        ))
                    })
                }
            })
            .collect()
    }

    fn rows(&self, batch: &RecordBatch, side: &str) -> Result<Vec<(Key, u64)>> {
        let columns = self.align(batch, side)?;
        let rows = self.converter.convert_columns(&columns)?;
        let keys = &columns[self.key_index];
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        (0..batch.num_rows())
            .map(|i| {
                if keys.is_null(i) {
                    return Err(Error::data(
                        format!("{side} row {i} of a batch"),
                        "the primary key is null",
                    ));
                }
                let key = match keys.data_type() {
                    DataType::Int64 => Key::Int(keys.as_primitive::<Int64Type>().value(i)),
                    _ => Key::Str(keys.as_string::<i32>().value(i).to_string()),
                };
                Ok((key, hasher.hash_one(rows.row(i).as_ref())))
            })
            .collect()
    }
}

/// Compares what `source` (through `transforms`) yields with what `target` holds, by primary key
/// `pk`. `target` is any source reading the migrated data back (e.g. a Milvus collection).
///
/// # Errors
/// Read failures on either side, or schemas that cannot be compared.
pub async fn verify(
    source: &dyn Source,
    transforms: &[(String, Box<dyn Transformer>)],
    target: &dyn Source,
    pk: &str,
    max_examples: usize,
) -> Result<VerifyReport> {
    let source_schema = source.schema();
    let planned = planned_schemas(&source_schema, transforms)?;
    let expected = planned.last().cloned().unwrap_or(source_schema);
    let hasher = RowHasher::new(Arc::clone(&expected), pk)?;
    let ctx = SourceContext::default();
    let mut report = VerifyReport::default();
    let mut examples: Vec<(Key, Difference)> = Vec::new();
    let mut note = |key: &Key, d: Difference| {
        if examples.len() < max_examples {
            examples.push((key.clone(), d));
        }
    };

    let mut want: HashMap<Key, u64> = HashMap::new();
    for p in source.partitions().await? {
        let mut stream = source.open(&p.id, None, &ctx)?;
        while let Some(item) = stream.next().await {
            let batch = apply_transforms(item?.batch, transforms, &planned)?;
            for (key, hash) in hasher.rows(&batch, "source")? {
                report.source_rows += 1;
                if want.insert(key.clone(), hash).is_some() {
                    report.duplicate_in_source += 1;
                    note(&key, Difference::DuplicateInSource);
                }
            }
        }
    }

    let mut seen: HashMap<Key, ()> = HashMap::new();
    for p in target.partitions().await? {
        let mut stream = target.open(&p.id, None, &ctx)?;
        while let Some(item) = stream.next().await {
            let batch = item?.batch;
            for (key, hash) in hasher.rows(&batch, "target")? {
                report.target_rows += 1;
                if seen.insert(key.clone(), ()).is_some() {
                    report.duplicate_in_target += 1;
                    note(&key, Difference::DuplicateInTarget);
                    continue;
                }
                match want.remove(&key) {
                    None => {
                        report.extra += 1;
                        note(&key, Difference::Extra);
                    }
                    Some(h) if h != hash => {
                        report.changed += 1;
                        note(&key, Difference::Changed);
                    }
                    Some(_) => {}
                }
            }
        }
    }
    report.missing = want.len() as u64;
    let mut missing: Vec<Key> = want.into_keys().collect();
    missing.sort_unstable();
    for key in missing.iter().take(max_examples) {
        note(key, Difference::Missing);
    }
    examples.sort();
    examples.truncate(max_examples);
    report.examples = examples;
    Ok(report)
}
