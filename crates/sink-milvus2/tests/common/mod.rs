//! Helpers shared by this crate's integration tests: Faiss fixtures, running a migration,
//! reading a collection back and comparing it bit for bit.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use vmig_core::pipeline::{NoProgress, Pipeline, RunReport};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_core::Result;
use vmig_milvus::MilvusClient;

/// Unique names for what a test creates (re-exported for the test files using `common::unique`).
#[allow(unused_imports)]
pub use vmig_testing::service::unique;

pub fn faiss_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/data/faiss")
        .canonicalize()
        .unwrap()
}

pub fn expected(name: &str) -> (Vec<i64>, Vec<u8>) {
    let ids = std::fs::read(faiss_dir().join(format!("{name}.ids.i64"))).unwrap();
    let ids = ids
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (
        ids,
        std::fs::read(faiss_dir().join(format!("{name}.vecs.bin"))).unwrap(),
    )
}

pub async fn migrate(fixture: &str, sink: Value) -> Result<RunReport> {
    let ctx = BuildContext::default();
    let path = faiss_dir().join(format!("{fixture}.faiss"));
    let source = parse_source("faiss", json!({ "path": path, "partition_rows": 300 }))?
        .build(&ctx)
        .await?;
    let sink = parse_sink("milvus2", sink)?.build(&ctx).await?;
    Pipeline::new(source, sink).run(Arc::new(NoProgress)).await
}

/// Every row of `collection`, by PK keyset paging.
pub async fn read_all(client: &MilvusClient, collection: &str) -> RecordBatch {
    let info = client.describe_collection(collection).await.unwrap();
    let pages = vmig_milvus::scan::read_collection(client, collection, None, &[], 400)
        .await
        .unwrap();
    concat_batches(&info.arrow, &pages).unwrap()
}

/// Compares a collection with a Faiss fixture's expected ids and vector bytes, bit-exactly.
pub async fn assert_same_as_fixture(client: &MilvusClient, collection: &str, fixture: &str) {
    let (ids, vecs) = expected(fixture);
    let all = read_all(client, collection).await;
    assert_eq!(all.num_rows(), ids.len(), "{fixture}: row count");
    let row_bytes = vecs.len() / ids.len().max(1);
    let mut want: Vec<(i64, &[u8])> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, &vecs[i * row_bytes..(i + 1) * row_bytes]))
        .collect();
    want.sort_by_key(|w| w.0);
    let got_ids = all
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let vcol = all.column_by_name("vector").unwrap();
    for (row, (id, bytes)) in want.iter().enumerate() {
        assert_eq!(got_ids.value(row), *id, "{fixture}: id at row {row}");
        let got = vmig_testing::compare::vector_bytes(vcol, row);
        assert_eq!(&got[..], *bytes, "{fixture}: vector of id {id}");
    }
}
