//! End to end from the Qdrant STAND-IN (`scripts/qdrant`: Qdrant's documented REST endpoints over
//! the `qdrant-client` package's local mode) into Parquet files (files sink) and into the real
//! Milvus 2.3.5 (milvus2 sink, then `vmig verify`'s comparison): every one of the 52 000 points
//! compared with what qdrant-client's own `scroll` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use vmig_sink_files as _;
use vmig_sink_milvus2 as _;
use vmig_source_qdrant as _;
use vmig_testing::e2e::{copy_into_milvus, copy_into_parquet, parquet_tree_batches};

fn by_id(mut v: Vec<Point>) -> Vec<Point> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_to_parquet_keeps_every_point() {
    let Some(s) = server() else { return };
    // The files sink's Parquet staging has no sparse vectors (Milvus bulk import of 2.3 has
    // none): the two dense vectors (the sparse one is compared in tests/it.rs).
    let want = expected(&s.expected, "mixed", Some(&["dense", "img"]));
    let dir = tempfile::tempdir().unwrap();
    let src = json!({ "url": s.url, "api_key": s.key, "collection": "mixed",
        "vectors": ["dense", "img"], "partitions": 3, "batch_size": 4000 });
    let written = copy_into_parquet("qdrant", src, dir.path()).await;
    assert_eq!(written, want.len() as u64);
    assert_points_eq(
        &by_id(points(&parquet_tree_batches(dir.path()))),
        &by_id(want),
        "parquet vs qdrant-client",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_to_milvus_verifies_clean() {
    let Some(s) = server() else { return };
    // Milvus 2.3 takes one vector field (and has no sparse vectors): `vector` picks `dense`; the
    // payload goes to the dynamic field (Milvus 2.3 has no nullable fields).
    let want = expected(&s.expected, "mixed", Some(&["dense"]));
    let src = json!({ "url": s.url, "api_key": s.key, "collection": "mixed", "vector": "dense",
        "payload_mode": "dynamic", "partitions": 2, "batch_size": 5000 });
    let Some(copy) = copy_into_milvus("qdrant", src, "qd_e2e", "COSINE", 5000).await else {
        return;
    };
    assert_eq!(copy.rows_written, want.len() as u64);
    assert!(copy.verdict.is_match(), "{:?}", copy.verdict);
    assert_eq!(copy.verdict.source_rows, want.len() as u64);
    assert_points_eq(
        &by_id(points(&copy.batches)),
        &by_id(want),
        "milvus vs qdrant-client",
    );
    copy.drop();
}
