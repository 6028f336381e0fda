//! Reading a whole collection (or some partitions of it) in primary-key order, page after page
//! (`pk > last`), as a stream. Shared by the Milvus 2.x source and `vmig verify`'s read-back.
//!
//! Paging by key, never by offset: offset paging hits the 16384-row query window and can skip or
//! repeat rows when segments change between pages. Page size comes from the row width
//! ([`page_rows_for`]) so a reply stays well under the proxy's 64 MiB send limit. A page that
//! fails transiently is asked for again by the scan's retry policy ([`vmig_core::retry`]) with
//! the same `pk > last`, so a retry never skips or repeats a row.

use std::future::Future;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::Stream;
use vmig_core::vector::vector_info;
use vmig_core::{Error, Result, RetryConfig};

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
    /// How a page failing transiently is retried (from the same key).
    pub retry: RetryConfig,
}

/// Streams the pages of `spec` after `after` (from the start when `None`), each with the key of
/// its last row. The stream ends after the first empty page; an error ends it too (after the
/// retries of `spec.retry`, for a transient one).
pub fn keyset_scan(
    client: MilvusClient,
    spec: ScanSpec,
    after: Option<PkValue>,
) -> impl Stream<Item = Result<(RecordBatch, PkValue)>> + Send {
    let retry = spec.retry;
    let collection = spec.collection.clone();
    let pk_field = spec.pk_field.clone();
    let spec = Arc::new(spec);
    let fetch = move |after: Option<PkValue>| {
        let client = client.clone();
        let spec = Arc::clone(&spec);
        async move {
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
            client.query_keyset(&q).await.map(|(batch, _)| batch)
        }
    };
    pages_after(fetch, retry, collection, pk_field, after)
}

/// The paging of [`keyset_scan`], over any `fetch` of the page after a key: each page is
/// fetched (and, failing transiently, fetched again) with the last key of the page before.
fn pages_after<F, Fut>(
    fetch: F,
    retry: RetryConfig,
    collection: String,
    pk_field: String,
    after: Option<PkValue>,
) -> impl Stream<Item = Result<(RecordBatch, PkValue)>>
where
    F: Fn(Option<PkValue>) -> Fut,
    Fut: Future<Output = Result<RecordBatch>>,
{
    let scan = Arc::new((fetch, collection, pk_field));
    futures::stream::try_unfold((scan, after), move |(scan, after)| async move {
        let (fetch, collection, pk_field) = &*scan;
        let what = format!("Milvus query of `{collection}`");
        let batch = retry.run(&what, || fetch(after.clone())).await?;
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let last = pk_values(&batch.slice(batch.num_rows() - 1, 1), pk_field)?
            .pop()
            .ok_or_else(|| Error::data(collection, "a page without a last key"))?;
        // Only an empty page ends the scan: with `reduce_stop_for_best` a page may be short
        // while more rows follow.
        Ok(Some(((batch, last.clone()), (scan, Some(last)))))
    })
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
        retry: RetryConfig::default(),
    };
    keyset_scan(client.clone(), spec, None)
        .map_ok(|(batch, _)| batch)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::Field;
    use futures::TryStreamExt;

    use super::*;

    /// A retried page is asked for after the same key as its failed attempt, so the scan
    /// neither repeats nor skips a row; a page failing more often than the policy allows ends
    /// the scan with the policy's sentence and the last error.
    #[tokio::test]
    async fn a_retried_page_restarts_after_the_same_key() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let calls = AtomicU32::new(0);
        let asked = Mutex::new(Vec::new());
        let fetch = |after: Option<PkValue>, fail_every: u32| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            asked.lock().unwrap().push(after.clone());
            let schema = Arc::clone(&schema);
            async move {
                if fail_every > 0 && n.is_multiple_of(fail_every) {
                    return Err(Error::Transient {
                        message: format!("rate limited (call {n})"),
                        source: None,
                    });
                }
                let from = match after {
                    None => 0,
                    Some(PkValue::Int(k)) => k + 1,
                    Some(PkValue::Str(_)) => unreachable!(),
                };
                let ids: Vec<i64> = (from..10).take(3).collect();
                Ok(RecordBatch::try_new(
                    schema,
                    vec![Arc::new(Int64Array::from(ids))],
                )?)
            }
        };
        let retry = RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            ..RetryConfig::default()
        };
        // Every other call fails: each page's first attempt.
        let pages: Vec<(RecordBatch, PkValue)> = pages_after(
            |after| fetch(after, 2),
            retry,
            "c".into(),
            "id".into(),
            None,
        )
        .try_collect()
        .await
        .unwrap();
        let ids: Vec<i64> = pages
            .iter()
            .flat_map(|(b, _)| {
                let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                col.values().to_vec()
            })
            .collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        let asked = asked.lock().unwrap().clone();
        let key = |k: i64| Some(PkValue::Int(k));
        assert_eq!(
            asked,
            [
                None,
                None,
                key(2),
                key(2),
                key(5),
                key(5),
                key(8),
                key(8),
                key(9),
                key(9)
            ]
        );
        // Always failing: three attempts of the first page, then the error.
        calls.store(0, Ordering::SeqCst);
        let err = pages_after(
            |after| fetch(after, 1),
            retry,
            "c".into(),
            "id".into(),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("gave up after 3 attempts over ")
                && err.ends_with(
                    "(retry.max_attempts = 3): transient failure: rate limited (call 2)"
                ),
            "{err}"
        );
    }
}
