//! The `pinecone` source against the Pinecone STAND-IN (`tests/standin/pinecone_standin.py`,
//! written from the 2025-10 OpenAPI documents; every answer it sends is validated against the
//! official SDK's generated models, and the SDK itself reads it as a client in the first test).
//! Pinecone is a hosted service and cannot run here; see the README's table of which tests
//! use real servers. Ports 18400–18449.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arrow::datatypes::DataType;
use common::*;
use serde_json::{json, Value};
use vmig_core::Source;
use vmig_source_pinecone::{MetadataMode, NamespaceMode, PineconePosition, PineconeSource};
use vmig_testing::conformance::read_partition;

/// Three namespaces (the default one among them), 8-d dense values, sparse values on every
/// third record: the truth of most tests.
fn truth() -> Vec<Row> {
    let mut rows = records("", 61, 8, true, 1);
    rows.extend(records("en", 45, 8, true, 2));
    rows.extend(records("fr-2024", 13, 8, true, 3));
    rows
}

fn start(rows: &[Row], extra: Value, port: u16) -> Option<(StandIn, tempfile::TempDir)> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let data = data_file(dir.path(), rows, dense_index(8, "dotproduct"), extra, &[]);
    Some((StandIn::start(&py, &data, port), dir))
}

/// The official SDK (pinecone 8.1.2, generated from the same OpenAPI documents) reads the
/// stand-in as a client: describe_index, describe_index_stats, list_paginated over every page
/// and fetch. Proves the answers parse under the spec's models, and that what the SDK reads is
/// the truth.
#[tokio::test]
async fn the_official_sdk_reads_the_standin() {
    let rows = truth();
    let Some((s, _dir)) = start(&rows, json!({}), 18400) else {
        return;
    };
    let py = python().unwrap();
    let script = r#"
import json, sys
from pinecone import Pinecone
url, key = sys.argv[1], sys.argv[2]
pc = Pinecone(api_key=key, host=url)
d = pc.describe_index("docs")
assert d.spec.serverless is not None, d
idx = pc.Index(host=url)
stats = idx.describe_index_stats()
out = {"metric": d.metric, "dimension": stats.dimension, "namespaces": {}}
for ns in sorted(stats.namespaces):
    ids, token = [], None
    while True:
        page = idx.list_paginated(namespace=ns, limit=9, pagination_token=token)
        ids += [v.id for v in page.vectors]
        token = page.pagination.next if page.pagination else None
        if not token:
            break
    recs = {}
    for i in range(0, len(ids), 10):
        f = idx.fetch(ids=ids[i:i + 10], namespace=ns)
        for k, v in f.vectors.items():
            sp = v.sparse_values
            recs[k] = {"values": list(v.values), "sparse": [[a, b] for a, b in zip(sp.indices, sp.values)] if sp else [],
                       "metadata": v.metadata or {}}
    out["namespaces"][ns] = {"count": stats.namespaces[ns].vector_count, "ids": ids, "records": recs}
print(json.dumps(out))
"#;
    let out = vmig_testing::process::python(&py, script, &[s.url.as_str(), KEY]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metric"], "dotproduct");
    assert_eq!(v["dimension"], 8);
    let want = sorted(&rows);
    let mut got = Vec::new();
    for (ns, n) in v["namespaces"].as_object().unwrap() {
        assert_eq!(
            n["count"].as_u64().unwrap() as usize,
            n["ids"].as_array().unwrap().len()
        );
        for id in n["ids"].as_array().unwrap() {
            let r = &n["records"][id.as_str().unwrap()];
            got.push(Row {
                ns: ns.clone(),
                id: id.as_str().unwrap().to_string(),
                values: r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect(),
                sparse: r["sparse"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32))
                    .collect(),
                meta: r["metadata"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), norm(v)))
                    .collect(),
            });
        }
    }
    assert_rows_eq(&got, &want, "SDK vs truth");
    s.assert_no_drift().await;
}

#[tokio::test]
async fn namespaces_pages_metadata_and_sparse_values_match_the_records() {
    let rows = truth();
    let Some((s, _dir)) = start(&rows, json!({}), 18401) else {
        return;
    };
    let src = connect(config(&s)).await;
    let schema = src.schema();
    assert_eq!(schema.metadata()["vmig.metric"], "IP");
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "vector",
            "sparse_vector",
            "genre",
            "ok",
            "score",
            "year",
            "metadata"
        ]
    );
    assert_eq!(types[4].1, DataType::Boolean);
    assert_eq!(types[5].1, DataType::Float64);
    assert_eq!(types[6].1, DataType::Float64);
    assert_eq!(types[3].1, DataType::Utf8);
    assert_eq!(
        schema.metadata()["pinecone.metadata_json_keys"],
        "bad key, mix, tags"
    );
    let parts = src.partitions().await.unwrap();
    let p: Vec<(&str, Option<&str>, Option<u64>)> = parts
        .iter()
        .map(|p| {
            (
                p.id.0.as_str(),
                p.target_partition.as_deref(),
                p.estimated_rows,
            )
        })
        .collect();
    assert_eq!(
        p,
        [
            ("", Some("_default"), Some(61)),
            ("en", Some("en"), Some(45)),
            ("fr-2024", Some("fr-2024"), Some(13))
        ]
    );
    let got = read_all(&src, 20).await;
    assert_rows_eq(&got, &sorted(&rows), "all namespaces");
    let st = s.stats().await;
    assert!(st["max_fetch_ids"].as_u64().unwrap() <= 5, "{st}");
    s.assert_no_drift().await;

    // Only some namespaces, the namespace as a column, all metadata as JSON / dynamic.
    for mode in [MetadataMode::Json, MetadataMode::Dynamic] {
        let mut cfg = config(&s);
        cfg.namespaces = Some(vec!["fr-2024".into(), String::new()]);
        cfg.namespace_mode = NamespaceMode::Column;
        cfg.metadata_mode = mode;
        let src = connect(cfg).await;
        let names: Vec<String> = src
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let json_col = if mode == MetadataMode::Json {
            "metadata"
        } else {
            "$meta"
        };
        assert_eq!(
            names,
            ["id", "vector", "sparse_vector", "namespace", json_col]
        );
        let parts = src.partitions().await.unwrap();
        assert!(parts.iter().all(|p| p.target_partition.is_none()));
        let got = read_all(&src, 1000).await;
        let mut want: Vec<Row> = rows.iter().filter(|r| r.ns != "en").cloned().collect();
        want = sorted(&want);
        // Partition order is the job's order: "fr-2024" first.
        want.sort_by_key(|r| r.ns.is_empty());
        assert_rows_eq(&got, &want, &format!("{mode:?}"));
    }
    s.assert_no_drift().await;
}

#[tokio::test]
async fn a_sparse_index_and_a_dense_one_without_sparse_values() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rows = records("s", 30, 0, true, 9);
    let data = data_file(
        dir.path(),
        &rows,
        json!({"name": "docs", "dimension": null, "metric": "dotproduct", "vector_type": "sparse", "kind": "serverless"}),
        json!({}),
        &[],
    );
    let s = StandIn::start(&py, &data, 18402);
    let src = connect(config(&s)).await;
    let names: Vec<String> = src
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names[..2], ["id", "sparse_vector"]);
    assert_rows_eq(&read_all(&src, 8).await, &sorted(&rows), "sparse index");
    s.assert_no_drift().await;
    drop(s);
    let rows = records("", 20, 4, false, 10);
    let data = data_file(
        dir.path(),
        &rows,
        dense_index(4, "euclidean"),
        json!({}),
        &[],
    );
    let s = StandIn::start(&py, &data, 18403);
    let src = connect(config(&s)).await;
    assert_eq!(src.schema().metadata()["vmig.metric"], "L2");
    assert!(src.schema().field_with_name("sparse_vector").is_err());
    assert_rows_eq(&read_all(&src, 8).await, &sorted(&rows), "dense only");
}

/// Every 4th data-plane request answers 429, alternately with `Retry-After: 1` and without:
/// all are retried, the copy is exact, and no request answered with `Retry-After: 1` is sent
/// again sooner than 1 s.
#[tokio::test]
async fn throttled_requests_are_retried_and_retry_after_is_waited_for() {
    let rows = truth();
    let Some((s, _dir)) = start(&rows, json!({"throttle_every": 4}), 18404) else {
        return;
    };
    let mut cfg = config(&s);
    cfg.list_limit = 20;
    cfg.fetch_batch = 20;
    cfg.retry.initial_backoff = std::time::Duration::from_millis(5);
    cfg.retry.max_backoff = std::time::Duration::from_millis(20);
    cfg.metadata_scan_rows = 10;
    let src = connect(cfg).await;
    let got = read_all(&src, 40).await;
    assert_rows_eq(&got, &sorted(&rows), "throttled");
    let st = s.stats().await;
    let with = st["throttled_with_retry_after"].as_u64().unwrap();
    let without = st["throttled_without"].as_u64().unwrap();
    assert!(with >= 2 && without >= 2, "{st}");
    let gaps: Vec<f64> = st["retry_after_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap())
        .collect();
    assert!(
        !gaps.is_empty() && gaps.iter().all(|g| *g >= 1.0),
        "{gaps:?}"
    );
    s.assert_no_drift().await;
}

/// Reopening a namespace after each of its positions yields exactly the rest; after a restart
/// of the stand-in that refuses the old pagination tokens, the reader lists again from the
/// start and skips what was copied, still exactly.
#[tokio::test]
async fn resume_after_every_position_is_exact_even_when_the_token_is_refused() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rows = records("en", 50, 4, true, 5);
    let data = data_file(
        dir.path(),
        &rows,
        dense_index(4, "cosine"),
        json!({"volatile_tokens": true}),
        &[],
    );
    let want = sorted(&rows);
    let s = StandIn::start(&py, &data, 18405);
    let src = connect(config(&s)).await;
    assert_eq!(src.schema().metadata()["vmig.metric"], "COSINE");
    let all = read_partition(&src, "en", None, 10).await.unwrap();
    assert!(all.len() >= 4, "{} batches", all.len());
    let mut at = 0;
    for (b, pos) in &all {
        at += b.num_rows();
        let p: PineconePosition = pos.decode().unwrap();
        assert_eq!(p.rows as usize, at);
        assert_eq!(p.last_id.as_deref(), Some(want[at - 1].id.as_str()));
        assert_eq!(p.token.is_none(), at == 50, "{p:?}");
        let rest = read_partition(&src, "en", Some(pos), 10).await.unwrap();
        let rest: Vec<_> = rest.into_iter().map(|(b, _)| b).collect();
        assert_rows_eq(
            &batch_rows(&rest, "en"),
            &want[at..],
            &format!("after {at}"),
        );
    }
    // A new stand-in process: its tokens differ, the old ones are refused with 400.
    drop(s);
    let s = StandIn::start(&py, &data, 18406);
    let mut cfg = config(&s);
    cfg.retry.max_attempts = 1;
    let src = connect(cfg).await;
    let (b, pos) = &all[1];
    let _ = b;
    let rest = read_partition(&src, "en", Some(pos), 10).await.unwrap();
    let rest: Vec<_> = rest.into_iter().map(|(b, _)| b).collect();
    let at = all[0].0.num_rows() + all[1].0.num_rows();
    assert_rows_eq(
        &batch_rows(&rest, "en"),
        &want[at..],
        "after a refused token",
    );
    s.assert_no_drift().await;
}

#[tokio::test]
async fn wrong_key_missing_index_pod_index_and_missing_namespace_say_what_to_do() {
    let rows = truth();
    let Some((s, dir)) = start(&rows, json!({}), 18407) else {
        return;
    };
    let mut cfg = config(&s);
    cfg.api_key = Some("pcsk_wrong_key_123".into());
    let err = PineconeSource::connect(cfg).await.unwrap_err();
    // The server's verdict on the key, as for every HTTP source: exit 1, not retried.
    assert!(!err.is_config_error() && !err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("Invalid API Key") && msg.contains("check `api_key`"),
        "{msg}"
    );
    assert!(!msg.contains("pcsk_wrong_key_123"), "{msg}");
    // The data plane refuses it too (index_host given: no control plane).
    let mut cfg = config(&s);
    cfg.index = None;
    cfg.index_host = Some(s.url.clone());
    cfg.api_key = Some("pcsk_wrong_key_123".into());
    let msg = PineconeSource::connect(cfg).await.unwrap_err().to_string();
    assert!(
        msg.contains("401") && msg.contains("check `api_key`"),
        "{msg}"
    );

    let mut cfg = config(&s);
    cfg.index = Some("nope".into());
    let err = PineconeSource::connect(cfg).await.unwrap_err();
    assert!(err.is_config_error(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("index `nope` does not exist")
            && msg.contains("404")
            && msg.contains("Resource nope not found")
            && msg.contains("check `index`"),
        "{msg}"
    );

    let mut cfg = config(&s);
    cfg.namespaces = Some(vec!["de".into()]);
    let msg = PineconeSource::connect(cfg).await.unwrap_err().to_string();
    assert!(
        msg.contains("namespace `de` is not in index `docs` (it has \"\", \"en\", \"fr-2024\")"),
        "{msg}"
    );
    s.assert_no_drift().await;
    drop(s);

    let py = python().unwrap();
    let data = data_file(
        dir.path(),
        &rows,
        json!({"name": "docs", "dimension": 8, "metric": "cosine", "vector_type": "dense", "kind": "pod"}),
        json!({}),
        &[],
    );
    let s = StandIn::start(&py, &data, 18408);
    let msg = PineconeSource::connect(config(&s))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("pod-based index")
            && msg.contains("exists only for serverless indexes")
            && msg.contains("random query vectors"),
        "{msg}"
    );
    s.assert_no_drift().await;
}

/// The stand-in exits while answering a list request: the read fails (after the retry policy
/// gave up) saying the server cannot be reached, and nothing after the last good batch was
/// claimed.
#[tokio::test]
async fn a_server_that_stops_mid_list_fails_the_read_clearly() {
    let rows = truth();
    let Some((mut s, _dir)) = start(&rows, json!({"die_after_lists": 5}), 18409) else {
        return;
    };
    let mut cfg = config(&s);
    cfg.metadata_scan_rows = 0;
    cfg.sparse = Some(true);
    cfg.namespaces = Some(vec![String::new()]);
    cfg.retry.max_attempts = 3;
    cfg.retry.initial_backoff = std::time::Duration::from_millis(10);
    cfg.retry.max_backoff = std::time::Duration::from_millis(20);
    let src = connect(cfg).await;
    let err = read_partition(&src, "", None, 7)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gave up after 3 attempts")
            && err.contains("listing the ids of the default namespace")
            && err.contains("cannot reach index `docs`"),
        "{err}"
    );
    assert!(s.exited());
}

/// The conformance kit: every partition reopened after every position.
#[tokio::test]
async fn pinecone_keeps_the_source_contract() {
    let rows = truth();
    let Some((s, _dir)) = start(&rows, json!({}), 18410) else {
        return;
    };
    let src = connect(config(&s)).await;
    let report = vmig_testing::conformance::check_source(&src, 9).await;
    assert_eq!(report.total_rows(), rows.len());
    assert!(report.positions_checked >= 10, "{report:?}");
    s.assert_no_drift().await;
}

/// Parquet files of one folder as rows of namespace `ns`.
fn parquet_rows(dir: &std::path::Path, ns: &str) -> Vec<Row> {
    let mut got = batch_rows(&vmig_testing::e2e::parquet_tree_batches(dir), ns);
    got.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    got
}

/// The stand-in → Parquet files (the files sink, one folder per target partition): every row
/// of every namespace, compared with the records, in the folder of its partition. Dense only:
/// the files sink writes no sparse vectors (sparse values are compared at the source's output
/// in the tests above).
#[tokio::test]
async fn pinecone_to_parquet_keeps_every_row_in_its_partition() {
    use vmig_sink_files as _;
    let mut rows = records("", 300, 16, false, 21);
    rows.extend(records("en", 150, 16, false, 22));
    let Some((s, dir)) = start_dim(&rows, 16, json!({}), 18411) else {
        return;
    };
    let out = dir.path().join("out");
    let src = json!({ "index": "docs", "api_key": KEY, "control_url": s.url, "list_limit": 50,
        "fetch_batch": 40 });
    assert_eq!(
        vmig_testing::e2e::copy_into_parquet("pinecone", src, &out).await,
        450
    );
    for (ns, folder) in [("", "_default"), ("en", "en")] {
        let want: Vec<Row> = sorted(&rows).into_iter().filter(|r| r.ns == ns).collect();
        assert_rows_eq(&parquet_rows(&out.join(folder), ns), &want, folder);
    }
    s.assert_no_drift().await;
}

fn start_dim(
    rows: &[Row],
    dim: usize,
    extra: Value,
    port: u16,
) -> Option<(StandIn, tempfile::TempDir)> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let data = data_file(dir.path(), rows, dense_index(dim, "cosine"), extra, &[]);
    Some((StandIn::start(&py, &data, port), dir))
}

/// The stand-in → the real Milvus 2.3.5 (namespaces into partitions `_default` and `en`,
/// metadata in the dynamic field; 2.3 has no sparse vectors, so a dense index), then
/// `vmig verify`'s comparison, then every row read back from Milvus compared with the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinecone_to_milvus_verifies_clean() {
    use vmig_sink_milvus2 as _;
    if vmig_testing::service::milvus().is_none() {
        return;
    }
    // Milvus keys are unique per collection, Pinecone's per namespace: distinct ids here (the
    // README says so for users).
    let mut rows = records("", 500, 8, false, 31);
    rows.extend(records("en", 250, 8, false, 32).into_iter().map(|mut r| {
        r.id = format!("en-{}", r.id);
        r
    }));
    let Some((s, _dir)) = start_dim(&rows, 8, json!({}), 18412) else {
        return;
    };
    let src = json!({ "index": "docs", "api_key": KEY, "control_url": s.url,
        "metadata_mode": "dynamic", "list_limit": 100, "fetch_batch": 100 });
    let Some(copy) =
        vmig_testing::e2e::copy_into_milvus("pinecone", src, "pc_e2e", "COSINE", 1000).await
    else {
        return;
    };
    assert_eq!(copy.rows_written, 750);
    assert!(copy.verdict.is_match(), "{:?}", copy.verdict);
    assert_eq!(copy.verdict.source_rows, 750);
    let collection = copy.collection.clone();
    let mut o = vmig_milvus::ConnectOptions::new(copy.server.uri.clone());
    o.user = Some(copy.server.user.clone());
    o.password = Some(copy.server.password.clone());
    let client = vmig_milvus::MilvusClient::connect(&o).await.unwrap();
    // Row by row, per Milvus partition.
    for (ns, partition) in [("", "_default"), ("en", "en")] {
        let batches =
            vmig_milvus::scan::read_collection(&client, &collection, None, &[partition], 1000)
                .await
                .unwrap();
        let mut got = batch_rows(&batches, ns);
        got.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
        let want: Vec<Row> = sorted(&rows).into_iter().filter(|r| r.ns == ns).collect();
        assert_rows_eq(&got, &want, partition);
    }
    assert_eq!(
        copy.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        750
    );
    copy.drop();
    s.assert_no_drift().await;
}
