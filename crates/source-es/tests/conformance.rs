//! The conformance kit (`vmig_testing::conformance`) on the `elasticsearch` and `opensearch`
//! sources, against the stand-in servers (`scripts/es`): PIT and scroll, one and two slices,
//! every partition reopened after every position.
#![allow(clippy::unwrap_used)]

mod common;

use common::{big_doc, ensure_index, source};
use serde_json::json;
use vmig_testing::conformance::check_source;

const DOCS: usize = 300;
const DIM: usize = 8;

#[tokio::test]
async fn elasticsearch_keeps_the_source_contract() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = "vmig_es_conformance";
    let body = vmig_testing::es::small_index(DIM);
    ensure_index(&base, index, body, DOCS, |i| {
        (format!("d{i}"), big_doc(i, DIM).to_string())
    })
    .await;
    for (method, slices) in [("pit", 1), ("scroll", 1), ("pit", 2), ("scroll", 2)] {
        let cfg = json!({ "url": base, "index": index, "method": method, "slices": slices, "batch_size": 45 });
        let src = source("elasticsearch", cfg).await.unwrap();
        let report = check_source(src.as_ref(), 45).await;
        assert_eq!(report.total_rows(), DOCS, "{method} × {slices}");
        assert!(
            report.positions_checked >= 6,
            "{method} × {slices}: {report:?}"
        );
    }
}

#[tokio::test]
async fn opensearch_keeps_the_source_contract() {
    let Some(base) = vmig_testing::service::opensearch() else {
        return;
    };
    let index = "vmig_os_conformance";
    let body = json!({
        "settings": { "index": { "knn": true, "number_of_shards": 2, "number_of_replicas": 0 } },
        "mappings": { "properties": {
            "n": { "type": "long" },
            "tag": { "type": "keyword" },
            "v": { "type": "knn_vector", "dimension": DIM,
                   "method": { "name": "hnsw", "space_type": "l2", "engine": "lucene" } }
        }}
    });
    ensure_index(&base, index, body, DOCS, |i| {
        (format!("d{i}"), big_doc(i, DIM).to_string())
    })
    .await;
    for slices in [1, 2] {
        let cfg = json!({ "url": base, "index": index, "slices": slices, "batch_size": 45 });
        let src = source("opensearch", cfg).await.unwrap();
        let report = check_source(src.as_ref(), 45).await;
        assert_eq!(report.total_rows(), DOCS, "{slices} slices");
    }
}
