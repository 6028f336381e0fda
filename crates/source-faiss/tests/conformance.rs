//! The conformance kit (`vmig_testing::conformance`) on the `faiss` source: every supported
//! fixture, split into several partitions, reopened after every position.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::{json, Value};
use vmig_core::registry::{parse_source, BuildContext};
use vmig_source_faiss as _;
use vmig_testing::conformance::check_source;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/data/faiss")
}

#[tokio::test]
async fn every_supported_fixture_keeps_the_source_contract() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for f in manifest["fixtures"].as_array().unwrap() {
        if !f["supported"].as_bool().unwrap() {
            continue;
        }
        let name = f["name"].as_str().unwrap();
        let rows = f["rows"].as_u64().unwrap_or(0) as usize;
        let config = json!({
            "path": dir().join(format!("{name}.faiss")),
            "partition_rows": (rows / 3).max(1),
            "on_non_finite": "allow",
        });
        let source = parse_source("faiss", config)
            .unwrap()
            .build(&BuildContext::default())
            .await
            .unwrap();
        let report = check_source(source.as_ref(), (rows / 9).max(1)).await;
        assert_eq!(report.total_rows(), rows, "{name}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures checked");
}
