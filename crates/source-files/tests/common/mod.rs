//! What the `files` source's test files share: building the source from its config, and rows in
//! id order.
// Each test crate includes this module and uses its own subset of it.
#![allow(dead_code)]

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use vmig_core::registry::{self, BuildContext};
use vmig_core::Source;

/// The `files` source of `config`, built as a job would build it.
pub async fn build(config: serde_json::Value) -> vmig_core::Result<Box<dyn Source>> {
    registry::parse_source("files", config)?
        .build(&BuildContext::default())
        .await
}

/// `batch`'s rows sorted by its `id` column.
pub fn sorted_by_id(batch: &RecordBatch) -> RecordBatch {
    let ids = batch
        .column_by_name("id")
        .unwrap_or_else(|| panic!("no `id` column in {:?}", batch.schema()))
        .as_primitive::<Int64Type>();
    let order = arrow::compute::sort_to_indices(ids, None, None)
        .unwrap_or_else(|e| panic!("cannot sort by id: {e}"));
    arrow::compute::take_record_batch(batch, &order)
        .unwrap_or_else(|e| panic!("cannot reorder the rows: {e}"))
}
