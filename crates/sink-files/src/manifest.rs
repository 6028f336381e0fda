//! `manifest.json`, the record of a committed output: every unit with its files, rows and
//! bytes, the schema, and the run that wrote it. (Reading a previous one back is
//! [`crate::guard::Previous`].)

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use serde::Serialize;
use vmig_core::vector;
use vmig_core::{Error, Result};
use vmig_formats::staging::StagingFormat;

/// The manifest's file name, in the target and in a run directory.
pub(crate) use vmig_formats::staging::manifest::MANIFEST;

/// One finished import unit of the output, as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ManifestEntry {
    /// `part-00000.parquet`, or `part-00000` for NumPy, relative to the target (under
    /// `<partition>/` for a named target partition).
    pub(crate) path: String,
    /// The target partition the rows belong in, when the source named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partition: Option<String>,
    /// Files relative to the target (the unit itself, or each `.npy`).
    pub(crate) files: Vec<String>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

/// The content of `manifest.json`.
#[derive(Debug, Serialize)]
pub(crate) struct Manifest {
    /// Version of this manifest layout.
    vmig_manifest: u32,
    /// The run that wrote it; a later run may replace exactly the files listed here.
    run_id: String,
    format: &'static str,
    schema: ManifestSchema,
    files: Vec<ManifestEntry>,
    pub(crate) total_rows: u64,
    pub(crate) total_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ManifestSchema {
    fields: Vec<ManifestField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<String>,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct ManifestField {
    name: String,
    arrow_type: String,
    nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    milvus_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dim: Option<usize>,
}

impl Manifest {
    /// The manifest of run `run_id`, which wrote `entries` of `schema` in `format`.
    pub(crate) fn new(
        run_id: &str,
        schema: &SchemaRef,
        format: StagingFormat,
        entries: &[ManifestEntry],
    ) -> Manifest {
        let fields = schema
            .fields()
            .iter()
            .map(|f| ManifestField {
                name: f.name().clone(),
                arrow_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
                milvus_type: vector::milvus_type(f),
                dim: vector::vector_info(f).map(|v| v.dim),
            })
            .collect();
        let meta = schema.metadata();
        Manifest {
            vmig_manifest: 1,
            run_id: run_id.to_string(),
            format: format.as_str(),
            total_rows: entries.iter().map(|u| u.rows).sum(),
            total_bytes: entries.iter().map(|u| u.bytes).sum(),
            schema: ManifestSchema {
                fields,
                primary_key: meta.get(vector::META_PRIMARY_KEY).cloned(),
                metric: meta.get(vector::META_METRIC).cloned(),
                collection: meta.get(vector::META_COLLECTION).cloned(),
                metadata: meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            files: entries.to_vec(),
        }
    }

    /// The file's bytes: pretty-printed JSON and a final newline.
    ///
    /// # Errors
    /// When serialization fails.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut body = serde_json::to_vec_pretty(self).map_err(|e| Error::External(Box::new(e)))?;
        body.push(b'\n');
        Ok(body)
    }
}
