//! The conformance kit (`vmig_testing::conformance`) on the `milvus1` source: a generated data
//! directory with partitions, deletes, float and binary collections, reopened after every
//! position.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::json;
use vmig_source_milvus1 as _;
use vmig_testing::conformance::check_source;
use vmig_testing::milvus1::standard;

#[tokio::test]
async fn generated_collections_keep_the_source_contract() {
    let g = standard(11);
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    for name in ["books", "codes"] {
        let source = common::build(json!({ "path": dir.path(), "collections": [name] }))
            .await
            .unwrap();
        let report = check_source(source.as_ref(), 7).await;
        let want: usize = g.expected(name).values().map(Vec::len).sum();
        assert_eq!(report.total_rows(), want, "{name}");
        assert!(report.positions_checked >= 7, "{name}: {report:?}");
    }
}
