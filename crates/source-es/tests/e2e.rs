//! End to end: Elasticsearch stand-in → Parquet files (files sink) and → real Milvus 2.3.5,
//! every row compared with what was indexed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float32Type, Int64Type};
use common::*;
use serde_json::json;
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_milvus::{ConnectOptions, MilvusClient, PkValue};
use vmig_sink_files as _;
use vmig_sink_milvus2 as _;

/// Checks rows (id, n, tag, v) against the big index's generator; returns how many there were.
fn check_rows(batch: &arrow::record_batch::RecordBatch, seen: &mut [u8]) -> usize {
    let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
    let n = batch
        .column_by_name("n")
        .unwrap()
        .as_primitive::<Int64Type>();
    let tag = batch.column_by_name("tag").unwrap().as_string::<i32>();
    // Parquet staging files hold vectors as variable-size lists (what Milvus bulk import reads).
    let v = batch.column_by_name("v").unwrap();
    for r in 0..batch.num_rows() {
        let i: usize = ids.value(r)[1..].parse().unwrap();
        assert_eq!(n.value(r), i as i64);
        assert_eq!(tag.value(r), format!("t{}", i % 7));
        let row = match v.as_fixed_size_list_opt() {
            Some(f) => f.value(r),
            None => v.as_list::<i32>().value(r),
        };
        let got: Vec<u32> = row
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let want: Vec<u32> = big_vector(i, BIG_DIM).iter().map(|f| f.to_bits()).collect();
        assert_eq!(got, want, "vector of d{i}");
        seen[i] += 1;
    }
    batch.num_rows()
}

#[tokio::test]
async fn elasticsearch_to_parquet() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_big_es(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let src = source(
        "elasticsearch",
        json!({ "url": base, "index": index, "slices": 2, "batch_size": 2000 }),
    )
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
    assert_eq!(report.rows_written, BIG_DOCS as u64);
    let mut seen = vec![0u8; BIG_DOCS];
    let mut rows = 0;
    for entry in walk(dir.path()) {
        if entry.extension().is_some_and(|e| e == "parquet") {
            let f = std::fs::File::open(&entry).unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                rows += check_rows(&b.unwrap(), &mut seen);
            }
        }
    }
    assert_eq!(rows, BIG_DOCS);
    assert!(seen.iter().all(|c| *c == 1));
}

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
async fn elasticsearch_to_milvus() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let Some(uri) = vmig_testing::service::endpoint("VMIG_MILVUS_URI", "Milvus 2.x") else {
        return;
    };
    let user = std::env::var("VMIG_MILVUS_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("VMIG_MILVUS_PASSWORD").unwrap_or_else(|_| "Milvus".into());
    // A smaller index of the same documents, so the shared Milvus is not loaded needlessly.
    let docs = 3000;
    let index = "vmig_es_milvus3k";
    ensure_index(
        &base,
        index,
        json!({
            "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
            "mappings": { "properties": {
                "n": { "type": "long" }, "tag": { "type": "keyword" },
                "v": { "type": "dense_vector", "dims": BIG_DIM, "similarity": "l2_norm" }
            }}
        }),
        docs,
        |i| (format!("d{i}"), big_doc(i, BIG_DIM).to_string()),
    )
    .await;
    let collection = unique("es_helper");
    let src = source(
        "elasticsearch",
        json!({ "url": base, "index": index, "slices": 2, "batch_size": 500, "defaults": { "n": 0, "tag": "" } }),
    )
    .await
    .unwrap();
    let sink = parse_sink(
        "milvus2",
        json!({ "uri": uri, "user": user, "password": password, "collection": collection,
                "index": { "type": "FLAT", "metric": "L2" }, "load": true }),
    )
    .unwrap()
    .build(&BuildContext::default())
    .await
    .unwrap();
    let report = Pipeline::new(src, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, docs as u64);

    let mut o = ConnectOptions::new(uri.clone());
    o.user = Some(user);
    o.password = Some(password);
    let client = MilvusClient::connect(&o).await.unwrap();
    let info = client.describe_collection(&collection).await.unwrap();
    assert_eq!(info.primary_key, "id");
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .query_page(&collection, "id", after.as_ref(), 1000, &info.arrow)
            .await
            .unwrap();
        if page.num_rows() == 0 {
            break;
        }
        let ids = page.column_by_name("id").unwrap().as_string::<i32>();
        after = Some(PkValue::Str(ids.value(ids.len() - 1).to_string()));
        pages.push(page);
    }
    let all = concat_batches(&info.arrow, &pages).unwrap();
    let mut seen = vec![0u8; docs];
    assert_eq!(check_rows(&all, &mut seen), docs);
    assert!(seen.iter().all(|c| *c == 1));
    client.drop_collection(&collection).await.unwrap();
}
