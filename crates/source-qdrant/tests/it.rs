//! The `qdrant` source against the Qdrant STAND-IN (`scripts/qdrant`: Qdrant's documented REST
//! endpoints over the `qdrant-client` package's local mode; no real Qdrant server can run here):
//! every point compared with what qdrant-client's own `scroll` returns, the schema, the id
//! probes and partitions, resume, and the errors a user meets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arrow::datatypes::DataType;
use common::*;
use serde_json::json;
use vmig_core::Source;
use vmig_source_qdrant::{PayloadMode, QdrantSource, Uint8Mode};
use vmig_testing::conformance::read_partition;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_ids_named_and_sparse_vectors_nested_payload_match_qdrant_client() {
    let Some(s) = server() else { return };
    let want = expected(&s.expected, "mixed", None);
    assert!(want.len() >= 50_000, "{} points", want.len());
    for partitions in [1, 4] {
        let mut cfg = s.config("mixed");
        cfg.partitions = partitions;
        cfg.batch_size = 2500;
        let src = connect(cfg).await;
        let schema = src.schema();
        let fields: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            ["id", "dense", "img", "sp", "flag", "n", "score", "tag", "payload"]
        );
        // An id above 2^63-1 (and UUIDs): VarChar.
        assert_eq!(fields[0].1, &DataType::Utf8);
        assert_eq!(fields[4].1, &DataType::Boolean);
        assert_eq!(fields[5].1, &DataType::Int64);
        assert_eq!(fields[6].1, &DataType::Float64);
        assert_eq!(fields[7].1, &DataType::Utf8);
        let meta = schema.metadata();
        assert_eq!(meta["vmig.metric"], "COSINE");
        assert_eq!(meta["qdrant.payload_json_keys"], "mix, nested");
        assert!(
            meta["qdrant.ids"].starts_with("integers 3..=18446744073709551615 and UUIDs"),
            "{}",
            meta["qdrant.ids"]
        );
        let parts = src.partitions().await.unwrap();
        assert_eq!(parts.len(), partitions as usize);
        let batches = read_all(&src, 2500).await;
        assert!(batches.len() >= 21, "{} pages", batches.len());
        let got = points(&batches);
        assert_points_eq(&got, &want, &format!("{partitions} partition(s)"));
    }
}

#[tokio::test]
async fn payload_json_and_dynamic_modes_hold_everything() {
    let Some(s) = server() else { return };
    let want = expected(&s.expected, "ints", None);
    for (mode, column, nullable) in [
        (PayloadMode::Json, "payload", true),
        (PayloadMode::Dynamic, "$meta", false),
    ] {
        let mut cfg = s.config("ints");
        cfg.payload_mode = mode;
        let src = connect(cfg).await;
        let schema = src.schema();
        assert_eq!(schema.fields().len(), 3);
        let f = schema.field(2);
        assert_eq!((f.name().as_str(), f.is_nullable()), (column, nullable));
        let got = points(&read_all(&src, 400).await);
        assert_points_eq(&got, &want, &format!("{mode:?}"));
    }
}

#[tokio::test]
async fn unnamed_vector_integer_ids_keep_the_source_contract() {
    let Some(s) = server() else { return };
    let want = expected(&s.expected, "ints", None);
    let mut cfg = s.config("ints");
    cfg.partitions = 3;
    cfg.batch_size = 128;
    let src = connect(cfg).await;
    let schema = src.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).name(), "vector");
    assert_eq!(schema.metadata()["vmig.metric"], "IP");
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "vector", "k", "name", "ok", "w"]);
    let got = points(&read_all(&src, 128).await);
    assert_points_eq(&got, &want, "3 partitions");
}

#[tokio::test]
async fn resume_after_a_position_yields_exactly_the_rest() {
    let Some(s) = server() else { return };
    let mut cfg = s.config("mixed");
    cfg.vectors = Some(vec!["img".into(), "sp".into()]);
    cfg.payload_mode = PayloadMode::Dynamic;
    let src = connect(cfg).await;
    let want = expected(&s.expected, "mixed", Some(&["img", "sp"]));
    let head = read_partition(&src, "0", None, 1000).await.unwrap();
    // Resume after the 26th batch (26 000 of the 26 001 integer ids): the 27th holds the last
    // integer id and the first UUIDs.
    let (_, pos) = &head[25];
    let rest = read_partition(&src, "0", Some(pos), 1000).await.unwrap();
    let mut got = points(&head[..26].iter().map(|b| b.0.clone()).collect::<Vec<_>>());
    got.extend(points(
        &rest.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
    ));
    assert_points_eq(&got, &want, "resumed");
}

#[tokio::test]
async fn a_filter_reads_only_the_matching_points() {
    let Some(s) = server() else { return };
    let mut cfg = s.config("ints");
    cfg.filter = Some(json!({"must": [{"key": "ok", "match": {"value": true}}]}));
    cfg.partitions = 2;
    let src = connect(cfg).await;
    let want: Vec<Point> = expected(&s.expected, "ints", None)
        .into_iter()
        .filter(|p| p.payload["ok"] == json!(true))
        .collect();
    assert_eq!(want.len(), 750);
    let got = points(&read_all(&src, 100).await);
    assert_points_eq(&got, &want, "filtered");
    let mut cfg = s.config("ints");
    cfg.filter = Some(json!({"must": [{"nonsense": 1}]}));
    let e = QdrantSource::connect(cfg).await.expect_err("bad filter");
    assert!(e.to_string().contains("HTTP 400"), "{e}");
    assert!(e.to_string().contains("check `filter`"), "{e}");
}

#[tokio::test]
async fn uint8_vectors_become_floats_or_bytes_and_manhattan_leaves_the_metric_unset() {
    let Some(s) = server() else { return };
    let want = expected(&s.expected, "u8", None);
    let src = connect(s.config("u8")).await;
    assert_eq!(src.schema().metadata()["vmig.metric"], "L2");
    assert_eq!(
        src.schema().metadata()["qdrant.vector_datatypes"],
        ": uint8"
    );
    assert_points_eq(&points(&read_all(&src, 100).await), &want, "uint8 as float");
    let mut cfg = s.config("u8");
    cfg.uint8 = Uint8Mode::Binary;
    let src = connect(cfg).await;
    assert_eq!(
        src.schema().field(1).data_type(),
        &DataType::FixedSizeBinary(16)
    );
    let got = points(&read_all(&src, 100).await);
    for (g, w) in got.iter().zip(&want) {
        let Vector::Dense(bits) = &w.vectors["vector"] else {
            panic!()
        };
        let bytes: Vec<u8> = bits.iter().map(|b| f32::from_bits(*b) as u8).collect();
        assert_eq!(g.vectors["vector"], Vector::Bytes(bytes), "point {}", g.id);
    }
    assert_eq!(got.len(), 300);
    let src = connect(s.config("manh")).await;
    let meta = src.schema().metadata().clone();
    assert!(!meta.contains_key("vmig.metric"), "{meta:?}");
    assert!(
        meta["qdrant.metric_unset"].contains("Manhattan distance, which Milvus has no metric for"),
        "{meta:?}"
    );
}

#[tokio::test]
async fn vector_picks_one_and_multivectors_are_refused() {
    let Some(s) = server() else { return };
    let mut cfg = s.config("mixed");
    cfg.vector = Some("img".into());
    cfg.payload_mode = PayloadMode::Json;
    let src = connect(cfg).await;
    let names: Vec<String> = src
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "img", "payload"]);
    assert_eq!(src.schema().metadata()["vmig.metric"], "IP");
    assert_eq!(
        src.schema().metadata()["qdrant.vectors"],
        "copying `img` of `dense`, `img`, `sp` (sparse)"
    );
    let mut cfg = s.config("mixed");
    cfg.vector = Some("nope".into());
    let e = QdrantSource::connect(cfg)
        .await
        .expect_err("unknown vector");
    assert_eq!(
        e.to_string(),
        "invalid `qdrant` configuration: collection `mixed` has no vector `nope`; it has `dense`, `img`, `sp` (sparse)"
    );
    let e = QdrantSource::connect(s.config("multi"))
        .await
        .expect_err("multivector");
    let m = e.to_string();
    assert!(m.contains("vector `colbert`"), "{m}");
    assert!(m.contains("it is a multivector"), "{m}");
    assert!(m.contains("`vectors = [...]`"), "{m}");
    let mut cfg = s.config("multi");
    cfg.vector = Some("plain".into());
    let src = connect(cfg).await;
    assert_eq!(
        read_all(&src, 10)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        5
    );
}

#[tokio::test]
async fn a_wrong_key_and_a_missing_collection_say_so() {
    let Some(s) = server() else { return };
    let mut cfg = s.config("ints");
    cfg.api_key = Some("not-the-key-42".into());
    let e = QdrantSource::connect(cfg).await.expect_err("wrong key");
    let m = e.to_string();
    assert!(
        m.contains("answered HTTP 401 Unauthorized: Invalid API key or JWT (check `api_key`)"),
        "{m}"
    );
    assert!(!m.contains("not-the-key-42"), "{m}");
    let mut cfg = s.config("ints");
    cfg.api_key = None;
    let e = QdrantSource::connect(cfg).await.expect_err("no key");
    assert!(e.to_string().contains("Must provide an API key"), "{e}");
    let e = QdrantSource::connect(s.config("nosuch"))
        .await
        .expect_err("missing collection");
    assert_eq!(
        e.to_string(),
        format!("invalid `qdrant` configuration: reading collection `nosuch`: {} answered HTTP 404 Not Found: Not found: Collection `nosuch` doesn't exist! (check `collection` and `url`)", s.url)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_mid_scroll_fails_clearly_and_the_read_resumes_exactly() {
    const PORT: u16 = 18311;
    let Some(mut dying) = Private::start(PORT, "ints", &["--die-after-scrolls", "4"]) else {
        return;
    };
    let want = expected(dying.dir.path(), "ints", None);
    let mut cfg = vmig_source_qdrant::QdrantSourceConfig::new(&dying.url, "ints");
    cfg.batch_size = 100;
    cfg.retry.max_attempts = 2;
    cfg.retry.initial_backoff = std::time::Duration::from_millis(50);
    let src = connect(cfg.clone()).await;
    let mut stream = src
        .open(
            &vmig_core::PartitionId::new("0"),
            None,
            &vmig_testing::conformance::context(100),
        )
        .unwrap();
    use futures::StreamExt;
    let mut got = Vec::new();
    let mut last = None;
    let err = loop {
        match stream.next().await {
            Some(Ok(b)) => {
                got.extend(points(std::slice::from_ref(&b.batch)));
                last = Some(b.position.clone());
            }
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert_eq!(got.len(), 400, "four pages before the server stopped");
    assert!(!dying.alive());
    let m = err.to_string();
    assert!(m.contains("cannot reach the Qdrant server at"), "{m}");
    assert!(m.contains("scrolling `ints` from id"), "{m}");
    drop(dying);
    // The same data again (the stand-in's data is seeded), and the read resumes after the last
    // delivered id.
    let Some(again) = Private::start(PORT, "ints", &[]) else {
        return;
    };
    assert_eq!(expected(again.dir.path(), "ints", None), want);
    let rest = read_partition(&src, "0", last.as_ref(), 100).await.unwrap();
    got.extend(points(&rest.into_iter().map(|b| b.0).collect::<Vec<_>>()));
    assert_points_eq(&got, &want, "stopped and resumed");
}
