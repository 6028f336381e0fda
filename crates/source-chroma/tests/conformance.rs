//! The conformance kit (`vmig_testing::conformance`) on the `chroma` source against the real
//! Chroma server: one and three partitions, every partition reopened after every position.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vmig_testing::conformance::check_source;

#[tokio::test]
async fn chroma_keeps_the_source_contract() {
    let Some(url) = url() else { return };
    let name = "vmig_chroma_conformance";
    let id = recreate(&url, name, "l2").await;
    add(&url, &id, &rows(200, 8, 9)).await;
    for partitions in [1, 3] {
        let mut cfg = config(&url, name);
        cfg.partitions = Some(partitions);
        cfg.batch_size = 45;
        let src = connect(cfg).await;
        let report = check_source(&src, 45).await;
        assert_eq!(report.total_rows(), 200, "{partitions} partitions");
        assert!(report.positions_checked >= 4, "{report:?}");
    }
}
