//! The `chroma` source against the real Chroma 1.5.9 server (`scripts/chroma start`,
//! `VMIG_CHROMA_URL`): every row compared with what Chroma's own `get` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arrow::datatypes::DataType;
use common::*;
use serde_json::json;
use vmig_core::Source;
use vmig_source_chroma::{ChromaSource, MetadataMode};
use vmig_testing::conformance::read_partition;

#[tokio::test]
async fn typed_metadata_nulls_unicode_and_mixed_keys_match_chromas_get() {
    let Some(url) = url() else { return };
    let name = "vmig_it_rows";
    let id = recreate(&url, name, "l2").await;
    let inserted = rows(300, 8, 1);
    add(&url, &id, &inserted).await;
    let want = get_all(&url, &id, None).await;
    assert_eq!(want.len(), 300);
    for partitions in [1, 3] {
        let mut cfg = config(&url, name);
        cfg.partitions = Some(partitions);
        let src = connect(cfg).await;
        let schema = src.schema();
        assert_eq!(schema.metadata()["vmig.metric"], "L2");
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
                "embedding",
                "document",
                "flag",
                "n",
                "score",
                "tag",
                "metadata"
            ]
        );
        assert_eq!(types[3].1, DataType::Boolean);
        assert_eq!(types[4].1, DataType::Int64);
        assert_eq!(types[5].1, DataType::Float64);
        assert_eq!(types[6].1, DataType::Utf8);
        assert_eq!(schema.metadata()["chroma.metadata_json_keys"], "mix");
        let batches = read_all(&src, 50).await;
        assert!(batches.len() >= 6, "{} pages", batches.len());
        let got = batch_rows(&batches);
        assert_rows_eq(&got, &want, &format!("{partitions} partition(s) vs get"));
    }
    // Against what was inserted: an l2 collection returns the inserted float32 bits; float
    // metadata (f64) comes back within 1 ulp (Chroma 1.5.9 does not keep every f64 exactly).
    let mut sorted = inserted.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut by_get = want.clone();
    by_get.sort_by(|a, b| a.id.cmp(&b.id));
    let mut off_by_ulp = 0;
    for (g, w) in by_get.iter_mut().zip(&sorted) {
        if let (Some(a), Some(b)) = (g.meta.get("score"), w.meta.get("score")) {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            let ulps = a.to_bits().abs_diff(b.to_bits());
            assert!(ulps <= 1, "{}: score {a} vs inserted {b}", g.id);
            if ulps == 1 {
                off_by_ulp += 1;
                g.meta.insert("score".into(), json!(b));
            }
        }
    }
    eprintln!(
        "float metadata 1 ulp away from the inserted f64: {off_by_ulp} of {}",
        sorted.len()
    );
    assert_rows_eq(&by_get, &sorted, "get vs inserted (l2)");
}

#[tokio::test]
async fn json_and_dynamic_modes_hold_all_metadata() {
    let Some(url) = url() else { return };
    let name = "vmig_it_modes";
    let id = recreate(&url, name, "ip").await;
    add(&url, &id, &rows(40, 4, 2)).await;
    let want = get_all(&url, &id, None).await;
    for (mode, column, nullable) in [
        (MetadataMode::Json, "metadata", true),
        (MetadataMode::Dynamic, "$meta", false),
    ] {
        let mut cfg = config(&url, name);
        cfg.metadata_mode = mode;
        let src = connect(cfg).await;
        let schema = src.schema();
        assert_eq!(schema.metadata()["vmig.metric"], "IP");
        assert_eq!(schema.fields().len(), 4);
        let f = schema.field(3);
        assert_eq!((f.name().as_str(), f.is_nullable()), (column, nullable));
        if mode == MetadataMode::Dynamic {
            assert_eq!(f.metadata()["milvus.dynamic"], "true");
            assert_eq!(schema.metadata()["milvus.dynamic_field"], "true");
        }
        let got = batch_rows(&read_all(&src, 16).await);
        assert_rows_eq(&got, &want, &format!("{mode:?}"));
    }
}

#[tokio::test]
async fn resume_after_a_position_yields_exactly_the_rest() {
    let Some(url) = url() else { return };
    let name = "vmig_it_resume";
    let id = recreate(&url, name, "l2").await;
    add(&url, &id, &rows(230, 4, 3)).await;
    let mut cfg = config(&url, name);
    cfg.partitions = Some(1);
    let src = connect(cfg).await;
    let all = read_partition(&src, "0", None, 50).await.unwrap();
    assert_eq!(all.len(), 5, "pages of 50");
    let full: Vec<_> = all.iter().map(|(b, _)| b.clone()).collect();
    let full = batch_rows(&full);
    for (k, (_, pos)) in all.iter().enumerate() {
        let rest = read_partition(&src, "0", Some(pos), 50).await.unwrap();
        let rest: Vec<_> = rest.into_iter().map(|(b, _)| b).collect();
        let start = (k + 1) * 50;
        assert_rows_eq(
            &batch_rows(&rest),
            &full[start.min(230)..],
            &format!("after page {k}"),
        );
    }
}

#[tokio::test]
async fn where_filter_reads_the_rows_chroma_selects() {
    let Some(url) = url() else { return };
    let name = "vmig_it_where";
    let id = recreate(&url, name, "cosine").await;
    add(&url, &id, &rows(200, 4, 4)).await;
    let filter = json!({"$and": [{"flag": true}, {"n": {"$gt": 20_000_000}}]});
    let want = get_all(&url, &id, Some(filter.clone())).await;
    assert!(want.len() > 40 && want.len() < 100, "{}", want.len());
    let mut cfg = config(&url, name);
    cfg.where_ = Some(filter);
    cfg.batch_size = 16;
    let src = connect(cfg).await;
    assert_eq!(src.schema().metadata()["vmig.metric"], "COSINE");
    let parts = src.partitions().await.unwrap();
    assert_eq!(parts[0].estimated_rows, Some(want.len() as u64));
    let got = batch_rows(&read_all(&src, 16).await);
    assert_rows_eq(&got, &want, "where");
}

#[tokio::test]
async fn rows_added_during_the_read_fail_it_naming_both_counts() {
    let Some(url) = url() else { return };
    let name = "vmig_it_count_change";
    let id = recreate(&url, name, "l2").await;
    let rs = rows(101, 4, 5);
    add(&url, &id, &rs[..100]).await;
    let mut cfg = config(&url, name);
    cfg.partitions = Some(2);
    let src = connect(cfg).await;
    let first = read_partition(&src, "0", None, 20).await;
    assert!(first.is_ok(), "{:?}", first.err());
    add(&url, &id, &rs[100..]).await;
    assert_eq!(count(&url, &id).await, 101);
    let err = read_partition(&src, "1", None, 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("held 100 rows")
            && err.contains("holds 101 now")
            && err.contains("Stop all writes"),
        "{err}"
    );
    assert!(err.contains(name), "{err}");
}

#[tokio::test]
async fn empty_collection_reads_nothing_or_asks_for_dim() {
    let Some(url) = url() else { return };
    let name = "vmig_it_empty";
    recreate(&url, name, "l2").await;
    let err = ChromaSource::connect(config(&url, name))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("give `dim`"), "{err}");
    let mut cfg = config(&url, name);
    cfg.dim = Some(16);
    cfg.partitions = Some(2);
    let src = connect(cfg).await;
    assert_eq!(src.count(), 0);
    assert!(read_all(&src, 10).await.is_empty());
}

#[tokio::test]
async fn missing_collection_and_unreachable_server_say_what_to_do() {
    let Some(url) = url() else { return };
    let err = ChromaSource::connect(config(&url, "vmig_it_no_such_collection"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vmig_it_no_such_collection") && err.contains("check `collection`"),
        "{err}"
    );
    let mut cfg = config("http://127.0.0.1:9", "c");
    cfg.retry.max_attempts = 1;
    let err = ChromaSource::connect(cfg).await.unwrap_err().to_string();
    assert!(
        err.contains("http://127.0.0.1:9") && err.contains("is it running"),
        "{err}"
    );
}

/// A server that answers every request with 401, as Chroma does with auth on and a wrong token
/// (Chroma 1.5.9 itself has no authentication).
#[tokio::test]
async fn refused_token_is_a_clear_error_not_retried() {
    let (server, seen) = vmig_testing::chroma::unauthorized_server();
    for (header, basic, expect) in [
        (
            vmig_source_chroma::AuthHeader::Authorization,
            false,
            "authorization: bearer wrong-token",
        ),
        (
            vmig_source_chroma::AuthHeader::XChromaToken,
            false,
            "x-chroma-token: wrong-token",
        ),
        // Basic auth: base64 of `vmig-user:wrong-token`.
        (
            vmig_source_chroma::AuthHeader::Authorization,
            true,
            "authorization: basic dm1pzy11c2vyondyb25nlxrva2vu",
        ),
    ] {
        let mut cfg = config(&server, "c");
        if basic {
            cfg.username = Some("vmig-user".into());
            cfg.password = Some("wrong-token".into());
        } else {
            cfg.token = Some("wrong-token".into());
        }
        cfg.auth_header = header;
        let err = ChromaSource::connect(cfg).await.unwrap_err();
        // Not retried, and not a job-file error (exit code 1, issue #17).
        assert!(!err.is_config_error() && !err.is_retryable(), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("401") && msg.contains("check `token`"),
            "{msg}"
        );
        assert!(!msg.contains("wrong-token"), "{msg}");
        let seen = seen.lock().unwrap().to_lowercase();
        assert!(seen.contains(expect), "{seen}");
    }
}

/// TLS on the client side: Chroma 1.5.9 serves plain HTTP only (its server configuration has no
/// TLS settings), so the real server is put behind a TLS-terminating proxy with a certificate
/// from a CA made here. With `ca_cert` naming that CA, or with `insecure`, every row comes
/// through as Chroma's own `get` returns it; trusting neither fails naming the certificate
/// problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_a_terminating_proxy_with_ca_cert_or_insecure() {
    let Some(url) = url() else { return };
    let name = "vmig_it_tls";
    let id = recreate(&url, name, "l2").await;
    add(&url, &id, &rows(120, 4, 9)).await;
    let want = get_all(&url, &id, None).await;
    let pki = vmig_testing::tls::TestPki::new(&["127.0.0.1", "localhost"]);
    let proxy = vmig_testing::tls::tls_proxy(&pki, url.trim_start_matches("http://")).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mut cfg = config(&proxy, name);
    cfg.ca_cert = Some(ca.display().to_string());
    let got = batch_rows(&read_all(&connect(cfg).await, 50).await);
    assert_rows_eq(&got, &want, "ca_cert");
    let mut cfg = config(&proxy, name);
    cfg.insecure = true;
    let got = batch_rows(&read_all(&connect(cfg).await, 50).await);
    assert_rows_eq(&got, &want, "insecure");
    // Not trusted: a configuration error at once (the default retry policy would wait 12 s).
    let err = ChromaSource::connect(config(&proxy, name))
        .await
        .unwrap_err();
    assert!(err.is_config_error(), "{err}");
    let err = err.to_string();
    assert!(
        err.contains(&format!(
            "the TLS certificate of the Chroma server at {proxy} is refused (UnknownIssuer)"
        )) && err.contains("`ca_cert`"),
        "{err}"
    );
}
