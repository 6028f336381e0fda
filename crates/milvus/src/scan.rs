//! Reading a whole collection (or some partitions of it) in primary-key order, page after page
//! (`pk > last`), as a stream. Shared by the Milvus 2.x source and `vmig verify`'s read-back.
//!
//! Paging by key, never by offset: offset paging hits the 16384-row query window and can skip or
//! repeat rows when segments change between pages. Page size comes from the row width
//! ([`page_rows_for`]) so a reply stays well under the proxy's 64 MiB send limit.

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::Stream;
use vmig_core::vector::vector_info;
use vmig_core::{Error, Result};

use crate::client::{pk_values, KeysetQuery, MilvusClient, PkValue, MAX_QUERY_WINDOW};

/// Target bytes of one query reply (a quarter of the 2.3.5 proxy's 64 MiB send limit).
pub const PAGE_BYTES: usize = 16 << 20;

/// Estimated bytes of one row of `schema` on the wire: vectors exactly, VarChar by their
/// `max_length` capped at 1 KiB, JSON and arrays at 1 KiB, other scalars at 8 bytes.
pub fn row_bytes(schema: &Schema) -> usize {
    schema
        .fields()
        .iter()
        .map(|f| match vector_info(f) {
            Some(v) => v.kind.row_bytes(v.dim).unwrap_or(4096),
            None => match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 => f
                    .metadata()
                    .get(crate::meta::MAX_LENGTH)
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1024)
                    .clamp(16, 1024),
                DataType::List(_) | DataType::LargeList(_) => 1024,
                _ => 8,
            },
        })
        .sum::<usize>()
        .max(1)
}

/// Rows per page for `schema`: [`PAGE_BYTES`] / [`row_bytes`], within the query window, and at
/// most `cap` when given.
pub fn page_rows_for(schema: &Schema, cap: Option<usize>) -> usize {
    let rows = (PAGE_BYTES / row_bytes(schema)).clamp(1, MAX_QUERY_WINDOW);
    cap.map_or(rows, |c| rows.min(c.max(1)))
}

/// What a [`keyset_scan`] reads.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// The collection.
    pub collection: String,
    /// Partitions (all when empty).
    pub partitions: Vec<String>,
    /// The primary-key field (Int64 or VarChar).
    pub pk_field: String,
    /// A boolean expression rows must match (none when empty).
    pub filter: String,
    /// Output fields; must include the primary key.
    pub schema: SchemaRef,
    /// Rows per page (1..=16384).
    pub page_rows: usize,
    /// Snapshot timestamp (see [`KeysetQuery::snapshot_ts`]); 0: Strong consistency per page.
    pub snapshot_ts: u64,
}

/// Streams the pages of `spec` after `after` (from the start when `None`), each with the key of
/// its last row. The stream ends after the first empty page; an error ends it too.
pub fn keyset_scan(
    client: MilvusClient,
    spec: ScanSpec,
    after: Option<PkValue>,
) -> impl Stream<Item = Result<(RecordBatch, PkValue)>> + Send {
    futures::stream::try_unfold(
        (client, spec, after, false),
        |(client, spec, after, _)| async move {
            let q = KeysetQuery {
                collection: &spec.collection,
                partitions: &spec.partitions,
                pk_field: &spec.pk_field,
                filter: &spec.filter,
                after: after.as_ref(),
                limit: spec.page_rows,
                schema: &spec.schema,
                snapshot_ts: spec.snapshot_ts,
            };
            let (batch, _) = client.query_keyset(&q).await?;
            if batch.num_rows() == 0 {
                return Ok(None);
            }
            let last = pk_values(&batch.slice(batch.num_rows() - 1, 1), &spec.pk_field)?
                .pop()
                .ok_or_else(|| Error::data(&spec.collection, "a page without a last key"))?;
            // Only an empty page ends the scan: with `reduce_stop_for_best` a page may be short
            // while more rows follow.
            Ok(Some((
                (batch, last.clone()),
                (client, spec, Some(last), false),
            )))
        },
    )
}

/// Every page of `collection` (the fields of `schema`, or all its fields when `None`), read by
/// [`keyset_scan`] `page_rows` at a time in primary-key order, of some `partitions` only when
/// not empty: what tests and tools that compare a whole collection use.
///
/// # Errors
/// The first RPC or conversion error.
pub async fn read_collection(
    client: &MilvusClient,
    collection: &str,
    schema: Option<&SchemaRef>,
    partitions: &[&str],
    page_rows: usize,
) -> Result<Vec<RecordBatch>> {
    use futures::TryStreamExt;
    let info = client.describe_collection(collection).await?;
    let spec = ScanSpec {
        collection: collection.to_string(),
        partitions: partitions.iter().map(|p| (*p).to_string()).collect(),
        pk_field: info.primary_key.clone(),
        filter: String::new(),
        schema: schema.cloned().unwrap_or_else(|| info.arrow.clone()),
        page_rows,
        snapshot_ts: 0,
    };
    keyset_scan(client.clone(), spec, None)
        .map_ok(|(batch, _)| batch)
        .try_collect()
        .await
}
