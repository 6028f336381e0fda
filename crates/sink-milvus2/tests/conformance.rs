//! The conformance kit (`vmig_testing::conformance::check_sink`) on the `milvus2` sink against
//! the real Milvus 2.3.5: insert, upsert and bulk import (staged in the directory the local
//! server imports from).
#![allow(clippy::unwrap_used)]

use arrow::array::RecordBatch;
use serde_json::{json, Value};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_sink_milvus2 as _;
use vmig_testing::conformance::{check_sink, SinkCase};
use vmig_testing::gen::sample_batch;
use vmig_testing::service::{milvus, unique};

/// Four batches of `id`, `vector`, `score`, `flag` (Milvus 2.3 has no nullable fields).
fn batches() -> Vec<RecordBatch> {
    (0..4)
        .map(|i| {
            sample_batch(5, i * 300, 300, 16)
                .project(&[0, 1, 3, 4])
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_upsert_and_bulk_keep_the_sink_contract() {
    let Some(m) = milvus() else { return };
    let stage = std::env::var("VMIG_MILVUS_STAGE").unwrap_or_else(|_| "/tmp/vmig-stage".into());
    let ctx = BuildContext::default();
    for mode in ["insert", "upsert", "bulk"] {
        let config = |collection: &str| -> Value {
            let mut v = json!({
                "uri": m.uri, "user": m.user, "password": m.password,
                "collection": collection, "mode": mode, "load": true,
                "index": { "type": "FLAT", "metric": "L2" },
            });
            if mode == "bulk" {
                v["stage"] = json!(stage);
                v["max_file_size"] = json!("64KiB");
            }
            v
        };
        let (kept, aborted) = (unique("conf_kept"), unique("conf_aborted"));
        let config_kept = parse_sink("milvus2", config(&kept)).unwrap();
        let config_aborted = parse_sink("milvus2", config(&aborted)).unwrap();
        check_sink(SinkCase {
            config: config_kept.as_ref(),
            abort_config: config_aborted.as_ref(),
            ctx: &ctx,
            batches: batches(),
            key: "id",
        })
        .await;
        let client = vmig_milvus::MilvusClient::connect(&{
            let mut o = vmig_milvus::ConnectOptions::new(m.uri.clone());
            o.user = Some(m.user.clone());
            o.password = Some(m.password.clone());
            o
        })
        .await
        .unwrap();
        // An aborted insert/upsert run keeps the collection it created with the rows Milvus
        // acknowledged (its abort report says how many, and how to finish or start over); it
        // is not loaded, so no reader takes it for finished output.
        if client.has_collection(&aborted).await.unwrap() {
            assert!(!client.is_loaded(&aborted).await.unwrap_or(false), "{mode}");
            client.drop_collection(&aborted).await.unwrap();
        }
        client.drop_collection(&kept).await.unwrap();
    }
}
