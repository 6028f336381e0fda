//! Helpers shared by this crate's integration tests.

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use vmig_milvus::{MilvusClient, PkValue};

/// Every page of `collection` (Int64 primary key `id`), read by keyset paging `page_rows` at a
/// time, in primary-key order.
pub async fn read_pages(
    client: &MilvusClient,
    collection: &str,
    page_rows: usize,
    schema: &SchemaRef,
) -> vmig_core::Result<Vec<RecordBatch>> {
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = client
            .query_page(collection, "id", after.as_ref(), page_rows, schema)
            .await?;
        if page.num_rows() == 0 {
            return Ok(pages);
        }
        let keys = page.column(0).as_primitive::<Int64Type>();
        after = Some(PkValue::Int(keys.value(page.num_rows() - 1)));
        pages.push(page);
    }
}
