//! End to end: real Chroma 1.5.9 → Parquet files (files sink) and → real Milvus 2.3.5 (milvus2
//! sink, then `vmig verify`'s comparison), every row compared with what Chroma's `get` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_sink_files as _;
use vmig_sink_milvus2 as _;
use vmig_source_chroma as _;

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

#[tokio::test]
async fn chroma_to_parquet_keeps_every_row() {
    let Some(url) = url() else { return };
    let name = "vmig_e2e_parquet";
    let id = recreate(&url, name, "cosine").await;
    add(&url, &id, &rows(1200, 16, 11)).await;
    let want = get_all(&url, &id, None).await;
    let dir = tempfile::tempdir().unwrap();
    let src = parse_source(
        "chroma",
        json!({ "url": url, "collection": name, "partitions": 2, "batch_size": 300 }),
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
    assert_eq!(report.rows_written, 1200);
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
    let mut got = batch_rows(&batches);
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = want;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_rows_eq(&got, &want, "parquet vs get");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_to_milvus_verifies_clean() {
    let Some(url) = url() else { return };
    let Some(uri) = vmig_testing::service::endpoint("VMIG_MILVUS_URI", "Milvus 2.x") else {
        return;
    };
    let user = std::env::var("VMIG_MILVUS_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("VMIG_MILVUS_PASSWORD").unwrap_or_else(|_| "Milvus".into());
    let name = "vmig_e2e_milvus";
    let id = recreate(&url, name, "ip").await;
    // Milvus 2.3 has no nullable fields: every row has a document, and the metadata goes to the
    // dynamic field (absent keys are simply absent there).
    let mut rs = rows(900, 8, 12);
    for (i, r) in rs.iter_mut().enumerate() {
        r.document.get_or_insert_with(|| format!("filled {i}"));
    }
    add(&url, &id, &rs).await;
    let want = get_all(&url, &id, None).await;
    let collection = vmig_testing::service::unique("chroma_e2e");
    let src_cfg =
        json!({ "url": url, "collection": name, "metadata_mode": "dynamic", "batch_size": 250 });
    let sink_cfg = json!({ "uri": uri, "user": user, "password": password, "collection": collection,
        "index": { "type": "FLAT", "metric": "IP" }, "load": true });
    let ctx = BuildContext::default();
    let src = parse_source("chroma", src_cfg.clone())
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
    assert_eq!(report.rows_written, 900);
    let source = parse_source("chroma", src_cfg)
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
    assert_eq!(verdict.source_rows, 900);
    // Row by row, from the target read back.
    let mut batches = Vec::new();
    for p in reader.partitions().await.unwrap() {
        let b = vmig_testing::conformance::read_partition(reader.as_ref(), &p.id.0, None, 500)
            .await
            .unwrap();
        batches.extend(b.into_iter().map(|(b, _)| b));
    }
    let mut got = batch_rows(&batches);
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = want;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_rows_eq(&got, &want, "milvus vs get");
    let mut o = vmig_milvus::ConnectOptions::new(uri);
    o.user = Some(std::env::var("VMIG_MILVUS_USER").unwrap_or_else(|_| "root".into()));
    o.password = Some(std::env::var("VMIG_MILVUS_PASSWORD").unwrap_or_else(|_| "Milvus".into()));
    let client = vmig_milvus::MilvusClient::connect(&o).await.unwrap();
    client.drop_collection(&collection).await.unwrap();
}
