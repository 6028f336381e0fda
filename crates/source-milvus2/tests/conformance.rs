//! The conformance kit (`vmig_testing::conformance`) on the `milvus2` source, against the real
//! Milvus 2.3.5: every type with three partitions and deletes, and VarChar keys; every
//! partition reopened after every position.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use vmig_core::registry::{parse_source, BuildContext};
use vmig_source_milvus2 as _;
use vmig_testing::conformance::check_source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_collections_keep_the_source_contract() {
    let Some(env) = env() else { return };
    let client = env.client().await;
    let rows = 900;
    ensure_all_types(&client, "m2src_conformance_v1", rows).await;
    let name = unique("m2src_conf_vc");
    ensure_varchar(&client, &name, 240).await;
    for (collection, live) in [
        (
            "m2src_conformance_v1".to_string(),
            (0..rows as i64).filter(|&i| !is_deleted(i)).count(),
        ),
        (name.clone(), 240),
    ] {
        let source = parse_source(
            "milvus2",
            env.config(json!({ "collection": collection, "batch_size": 100 })),
        )
        .unwrap()
        .build(&BuildContext::default())
        .await
        .unwrap();
        let report = check_source(source.as_ref(), 100).await;
        assert_eq!(report.total_rows(), live, "{collection}");
    }
    let _ = client.drop_collection(&name).await;
}
