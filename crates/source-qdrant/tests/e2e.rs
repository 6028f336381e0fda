//! End to end from the Qdrant STAND-IN (`scripts/qdrant`: Qdrant's documented REST endpoints over
//! the `qdrant-client` package's local mode) into Parquet files (files sink) and into the real
//! Milvus 2.3.5 (milvus2 sink, then `vmig verify`'s comparison): every one of the 52 000 points
//! compared with what qdrant-client's own `scroll` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_sink_files as _;
use vmig_sink_milvus2 as _;
use vmig_source_qdrant as _;

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

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
    let src = parse_source(
        "qdrant",
        json!({ "url": s.url, "api_key": s.key, "collection": "mixed", "vectors": ["dense", "img"],
            "partitions": 3, "batch_size": 4000 }),
    )
    .unwrap()
    .build(&BuildContext::default())
    .await
    .unwrap();
    let sink = parse_sink("files", json!({ "path": dir.path(), "format": "parquet" }))
        .unwrap()
        .build(&BuildContext::default())
        .await
        .unwrap();
    let report = Pipeline::new(src, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, want.len() as u64);
    let mut batches = Vec::new();
    for f in walk(dir.path()) {
        if f.extension().is_some_and(|e| e == "parquet") {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
    }
    assert_points_eq(
        &by_id(points(&batches)),
        &by_id(want),
        "parquet vs qdrant-client",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_to_milvus_verifies_clean() {
    let Some(s) = server() else { return };
    let Some(uri) = vmig_testing::service::endpoint("VMIG_MILVUS_URI", "Milvus 2.x") else {
        return;
    };
    let user = std::env::var("VMIG_MILVUS_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("VMIG_MILVUS_PASSWORD").unwrap_or_else(|_| "Milvus".into());
    // Milvus 2.3 takes one vector field (and has no sparse vectors): `vector` picks `dense`; the
    // payload goes to the dynamic field (Milvus 2.3 has no nullable fields).
    let want = expected(&s.expected, "mixed", Some(&["dense"]));
    let collection = vmig_testing::service::unique("qd_e2e");
    let src_cfg = json!({ "url": s.url, "api_key": s.key, "collection": "mixed", "vector": "dense",
        "payload_mode": "dynamic", "partitions": 2, "batch_size": 5000 });
    let sink_cfg = json!({ "uri": uri, "user": user, "password": password, "collection": collection,
        "index": { "type": "FLAT", "metric": "COSINE" }, "load": true });
    let ctx = BuildContext::default();
    let src = parse_source("qdrant", src_cfg.clone())
        .unwrap()
        .build(&ctx)
        .await
        .unwrap();
    let sink = parse_sink("milvus2", sink_cfg.clone())
        .unwrap()
        .build(&ctx)
        .await
        .unwrap();
    let report = Pipeline::new(src, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, want.len() as u64);
    let source = parse_source("qdrant", src_cfg)
        .unwrap()
        .build(&ctx)
        .await
        .unwrap();
    let reader = parse_sink("milvus2", sink_cfg)
        .unwrap()
        .open_target(&ctx, &source.schema())
        .await
        .unwrap()
        .expect("the milvus2 sink reads back");
    let verdict = vmig_core::verify::verify(source.as_ref(), &[], reader.as_ref(), "id", 5)
        .await
        .unwrap();
    assert!(verdict.is_match(), "{verdict:?}");
    assert_eq!(verdict.source_rows, want.len() as u64);
    let mut batches = Vec::new();
    for p in reader.partitions().await.unwrap() {
        let b = vmig_testing::conformance::read_partition(reader.as_ref(), &p.id.0, None, 5000)
            .await
            .unwrap();
        batches.extend(b.into_iter().map(|(b, _)| b));
    }
    assert_points_eq(
        &by_id(points(&batches)),
        &by_id(want),
        "milvus vs qdrant-client",
    );
    let mut o = vmig_milvus::ConnectOptions::new(uri);
    o.user = Some(user);
    o.password = Some(password);
    let client = vmig_milvus::MilvusClient::connect(&o).await.unwrap();
    client.drop_collection(&collection).await.unwrap();
}
