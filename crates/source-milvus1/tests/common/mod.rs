//! Shared helpers: build a source over a generated data directory and read it all back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use serde_json::Value;
use vmig_core::registry::{parse_source, BuildContext};
use vmig_core::{Result, Source};
use vmig_testing::milvus1::Row;

/// Builds a `milvus1` source from a JSON config.
pub async fn build(config: Value) -> Result<Box<dyn Source>> {
    parse_source("milvus1", config)?
        .build(&BuildContext::default())
        .await
}

/// The rows of one record batch as (id, vector bytes).
pub fn rows_of(batch: &arrow::record_batch::RecordBatch) -> Vec<Row> {
    let ids = batch.column(0).as_primitive::<Int64Type>();
    let col = batch.column(1);
    (0..batch.num_rows())
        .map(|i| {
            let vector = vmig_testing::compare::vector_bytes(col, i);
            assert!(!col.is_null(i));
            Row {
                id: ids.value(i),
                vector,
            }
        })
        .collect()
}

/// Every row of every partition (read by the conformance kit's reader, which checks each
/// batch's schema), keyed by target partition (`""` for none), sorted by id.
pub async fn read_all(
    source: &dyn Source,
    batch_rows: usize,
) -> Result<BTreeMap<String, Vec<Row>>> {
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for (p, batch) in vmig_testing::conformance::read_all(source, batch_rows).await? {
        assert!(batch.num_rows() > 0 && batch.num_rows() <= batch_rows);
        out.entry(p.target_partition.clone().unwrap_or_default())
            .or_default()
            .extend(rows_of(&batch));
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// The generator's expectation, sorted like [`read_all`].
pub fn expected(g: &vmig_testing::milvus1::Milvus1Gen, name: &str) -> BTreeMap<String, Vec<Row>> {
    let mut e = g.expected(name);
    for rows in e.values_mut() {
        rows.sort();
    }
    e.retain(|_, v| !v.is_empty());
    e
}

/// Unique names for what a test creates (re-exported for the test files using `common::unique`).
#[allow(unused_imports)]
pub use vmig_testing::service::unique;
