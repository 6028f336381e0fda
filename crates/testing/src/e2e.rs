//! End-to-end runs shared by the source crates' tests: a source (by plugin name and JSON
//! configuration, as a job file gives it) copied by the pipeline into Parquet files or into the
//! real Milvus 2.x, then read back for the test's own row-by-row comparison.
//!
//! The plugins are found through the registry, so this crate depends on no source or sink: the
//! test links them (`use vmig_sink_milvus2 as _;`, `use vmig_sink_files as _;`, its source).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde_json::{json, Value};
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_core::verify::VerifyReport;

use crate::service::MilvusServer;

/// Every file below `dir`, in every sub-folder, in name order.
///
/// # Panics
/// When a folder cannot be listed.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let listing =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut entries: Vec<PathBuf> = listing
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every batch of every `.parquet` file below `dir` (sub-folders included: the files sink writes
/// one folder per target partition).
///
/// # Panics
/// When a file cannot be read.
pub fn parquet_tree_batches(dir: &Path) -> Vec<RecordBatch> {
    let mut folders: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    folders.dedup();
    folders
        .iter()
        .flat_map(|d| crate::compare::parquet_dir_batches(d))
        .collect()
}

/// Runs the source `source_type` with `source` into Parquet files under `out` (the files sink),
/// and returns the rows written.
///
/// # Panics
/// When a plugin does not build or the run fails.
pub async fn copy_into_parquet(source_type: &str, source: Value, out: &Path) -> u64 {
    let ctx = BuildContext::default();
    let src = parse_source(source_type, source)
        .unwrap_or_else(|e| panic!("{source_type} source: {e}"))
        .build(&ctx)
        .await
        .unwrap_or_else(|e| panic!("{source_type} source: {e}"));
    let sink = parse_sink("files", json!({ "path": out, "format": "parquet" }))
        .unwrap_or_else(|e| panic!("files sink: {e}"))
        .build(&ctx)
        .await
        .unwrap_or_else(|e| panic!("files sink: {e}"));
    Pipeline::new(src, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap_or_else(|e| panic!("{source_type} → Parquet: {e}"))
        .rows_written
}

/// What [`copy_into_milvus`] did: the collection (drop it with [`MilvusCopy::drop`]), the rows
/// written, `vmig verify`'s comparison and every row read back.
#[derive(Debug)]
pub struct MilvusCopy {
    /// The Milvus server.
    pub server: MilvusServer,
    /// The collection written (a [`crate::service::unique`] name).
    pub collection: String,
    /// Rows the pipeline wrote.
    pub rows_written: u64,
    /// `vmig verify`'s comparison of a fresh source with the collection.
    pub verdict: VerifyReport,
    /// Every row of the collection, read back through the milvus2 sink's reader.
    pub batches: Vec<RecordBatch>,
}

impl MilvusCopy {
    /// Drops the collection (through pymilvus, when `VMIG_MILVUS_PYTHON` is set).
    pub fn drop(self) {
        self.server.drop_collection(&self.collection);
    }
}

/// Runs the source `source_type` with `source` into a new collection (named from `prefix`,
/// a FLAT index of `metric`, loaded) of the Milvus 2.x server, compares a freshly built source
/// with it as `vmig verify` does, and reads every row back (`read_batch` rows per request).
/// `None` after a loud `SKIPPED` when no Milvus is configured (fails on CI).
///
/// # Panics
/// When a plugin does not build, the run or the read-back fails.
pub async fn copy_into_milvus(
    source_type: &str,
    source: Value,
    prefix: &str,
    metric: &str,
    read_batch: usize,
) -> Option<MilvusCopy> {
    let server = crate::service::milvus()?;
    let collection = crate::service::unique(prefix);
    let sink_cfg = json!({ "uri": server.uri, "user": server.user, "password": server.password,
        "collection": collection, "index": { "type": "FLAT", "metric": metric }, "load": true });
    let ctx = BuildContext::default();
    let build_source = || async {
        parse_source(source_type, source.clone())
            .unwrap_or_else(|e| panic!("{source_type} source: {e}"))
            .build(&ctx)
            .await
            .unwrap_or_else(|e| panic!("{source_type} source: {e}"))
    };
    let sink = parse_sink("milvus2", sink_cfg.clone())
        .unwrap_or_else(|e| panic!("milvus2 sink: {e}"))
        .build(&ctx)
        .await
        .unwrap_or_else(|e| panic!("milvus2 sink: {e}"));
    let rows_written = Pipeline::new(build_source().await, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap_or_else(|e| panic!("{source_type} → Milvus: {e}"))
        .rows_written;
    let fresh = build_source().await;
    let reader = parse_sink("milvus2", sink_cfg)
        .unwrap_or_else(|e| panic!("milvus2 sink: {e}"))
        .open_target(&ctx, &fresh.schema())
        .await
        .unwrap_or_else(|e| panic!("milvus2 read-back: {e}"))
        .unwrap_or_else(|| panic!("the milvus2 sink reads back"));
    let verdict = vmig_core::verify::verify(fresh.as_ref(), &[], reader.as_ref(), "id", 5)
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    let mut batches = Vec::new();
    let partitions = reader
        .partitions()
        .await
        .unwrap_or_else(|e| panic!("milvus2 read-back: {e}"));
    for p in partitions {
        let got = crate::conformance::read_partition(reader.as_ref(), &p.id.0, None, read_batch)
            .await
            .unwrap_or_else(|e| panic!("milvus2 read-back: {e}"));
        batches.extend(got.into_iter().map(|(b, _)| b));
    }
    Some(MilvusCopy {
        server,
        collection,
        rows_written,
        verdict,
        batches,
    })
}
