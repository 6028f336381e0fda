//! The conformance kit (`vmig_testing::conformance::check_sink`) on the `files` sink. The kit
//! re-reads the target through the sink's own `open_target`, which reads local Parquet output
//! (what `vmig verify` reads); NumPy, JSON and object-store output are read back by the files
//! source's parsers once it exists, and are compared value by value in `tests/it.rs` meanwhile.
#![allow(clippy::unwrap_used)]

use arrow::array::RecordBatch;
use serde_json::{json, Value};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_sink_files as _;
use vmig_testing::conformance::{check_sink, SinkCase};
use vmig_testing::gen::sample_batch;

/// Batches without nulls (NumPy has none), over several files.
fn batches() -> Vec<RecordBatch> {
    (0..4)
        .map(|i| {
            let b = sample_batch(3, i * 250, 250, 16);
            // `title` is null on every 7th row: NumPy cannot hold that, so drop the column.
            b.project(&[0, 1, 3, 4]).unwrap()
        })
        .collect()
}

async fn check(config: Value, abort_config: Value) {
    let ctx = BuildContext::default();
    let config = parse_sink("files", config).unwrap();
    let abort_config = parse_sink("files", abort_config).unwrap();
    check_sink(SinkCase {
        config: config.as_ref(),
        abort_config: abort_config.as_ref(),
        ctx: &ctx,
        batches: batches(),
        key: "id",
    })
    .await;
}

#[tokio::test]
async fn local_parquet_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().unwrap();
    check(
        json!({ "path": dir.path().join("out"), "format": "parquet", "max_file_size": "200KB" }),
        json!({ "path": dir.path().join("aborted"), "format": "parquet" }),
    )
    .await;
}
