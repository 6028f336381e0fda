//! End to end: real Chroma 1.5.9 → Parquet files (files sink) and → real Milvus 2.3.5 (milvus2
//! sink, then `vmig verify`'s comparison), every row compared with what Chroma's `get` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use vmig_sink_files as _;
use vmig_sink_milvus2 as _;
use vmig_source_chroma as _;
use vmig_testing::e2e::{copy_into_milvus, copy_into_parquet, parquet_tree_batches};

#[tokio::test]
async fn chroma_to_parquet_keeps_every_row() {
    let Some(url) = url() else { return };
    let name = "vmig_e2e_parquet";
    let id = recreate(&url, name, "cosine").await;
    add(&url, &id, &rows(1200, 16, 11)).await;
    let want = get_all(&url, &id, None).await;
    let dir = tempfile::tempdir().unwrap();
    let src = json!({ "url": url, "collection": name, "partitions": 2, "batch_size": 300 });
    assert_eq!(copy_into_parquet("chroma", src, dir.path()).await, 1200);
    let mut got = batch_rows(&parquet_tree_batches(dir.path()));
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = want;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_rows_eq(&got, &want, "parquet vs get");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_to_milvus_verifies_clean() {
    let Some(url) = url() else { return };
    if vmig_testing::service::milvus().is_none() {
        return;
    }
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
    let src =
        json!({ "url": url, "collection": name, "metadata_mode": "dynamic", "batch_size": 250 });
    let Some(copy) = copy_into_milvus("chroma", src, "chroma_e2e", "IP", 500).await else {
        return;
    };
    assert_eq!(copy.rows_written, 900);
    assert!(copy.verdict.is_match(), "{:?}", copy.verdict);
    assert_eq!(copy.verdict.source_rows, 900);
    // Row by row, from the target read back.
    let mut got = batch_rows(&copy.batches);
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = want;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_rows_eq(&got, &want, "milvus vs get");
    copy.drop();
}
