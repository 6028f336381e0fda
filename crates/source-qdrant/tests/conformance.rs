//! The conformance kit (`vmig_testing::conformance`) on the `qdrant` source against the Qdrant
//! STAND-IN (`scripts/qdrant`, over qdrant-client's local mode): integer and UUID ids, one and
//! four id-range partitions, every partition reopened after every position.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vmig_testing::conformance::check_source;

#[tokio::test]
async fn qdrant_keeps_the_source_contract() {
    let Some(s) = server() else { return };
    for partitions in [1, 4] {
        // `ints` (1 500 points) read in pages of 250: every partition has several positions.
        let mut cfg = s.config("ints");
        cfg.partitions = partitions;
        cfg.batch_size = 250;
        let report = check_source(&connect(cfg).await, 250).await;
        assert_eq!(report.total_rows(), 1500, "{partitions} partitions");
        assert!(report.positions_checked >= 6, "{report:?}");
    }
}
