//! The conformance kit: one call checks that a built [`Source`] or [`Sink`] keeps the trait
//! contracts of `vmig-core`, whatever it reads or writes. Every plugin of the workspace runs it,
//! and so can out-of-tree plugins (`docs/PLUGIN_SPEC.md`).
//!
//! [`check_source`] checks, for every partition:
//! * `partitions()` is stable (two calls, same list);
//! * `open` does no work before the stream is first polled (no task is spawned by `open`);
//! * every batch has exactly `schema()`;
//! * reopening after **every** position (round-tripped through JSON, as a checkpoint stores it)
//!   yields exactly the rows that followed it;
//! * dropping a stream after its first batch stops its work (every task it spawned ends).
//!
//! [`check_sink`] writes batches in two flushes and commits, re-reads the target through the
//! sink's own `open_target` and requires the same rows; then writes into a second target,
//! flushes, aborts, and requires that a reader of that target finds exactly what was there
//! before (nothing, for a new target).
//!
//! The task checks use tokio's runtime metrics, so they see work done by spawned tasks (read
//! ahead, prefetch, background requests) — the way vmig's sources do I/O. Run the checks from a
//! `#[tokio::test]`.
//!
//! Failures panic with a message naming the contract, the partition and the position: these
//! are test helpers.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use vmig_core::registry::DynSinkConfig;
use vmig_core::{
    BuildContext, PartitionId, PartitionInfo, Position, Result, Sink, Source, SourceContext,
    SourceStream,
};

/// What [`check_source`] found: per partition, the rows read and how many positions were
/// checked by reopening.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// Rows per partition id.
    pub rows: BTreeMap<String, usize>,
    /// Positions reopened after, over all partitions.
    pub positions_checked: usize,
}

impl SourceReport {
    /// Rows over all partitions.
    pub fn total_rows(&self) -> usize {
        self.rows.values().sum()
    }
}

/// A [`SourceContext`] with batches of `batch_rows` (at least 1).
pub fn context(batch_rows: usize) -> SourceContext {
    SourceContext {
        batch_rows: NonZeroUsize::new(batch_rows).unwrap_or(NonZeroUsize::MIN),
        ..SourceContext::default()
    }
}

/// Opens partition `partition` with batches of `batch_rows`, after `resume` if given.
///
/// # Errors
/// The source's error for an unknown partition or a foreign position.
pub fn open_partition(
    source: &dyn Source,
    partition: &str,
    resume: Option<&Position>,
    batch_rows: usize,
) -> Result<SourceStream> {
    source.open(&PartitionId::new(partition), resume, &context(batch_rows))
}

/// Reads one partition to its end: every batch with its position.
///
/// # Errors
/// The first error of the stream.
pub async fn read_partition(
    source: &dyn Source,
    partition: &str,
    resume: Option<&Position>,
    batch_rows: usize,
) -> Result<Vec<(RecordBatch, Position)>> {
    let mut stream = open_partition(source, partition, resume, batch_rows)?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b?;
        out.push((b.batch, b.position));
    }
    Ok(out)
}

/// Reads every partition, one after another, and returns all batches with the partition each
/// came from. Every batch is checked to have the source's schema.
///
/// # Errors
/// The first error of any stream.
pub async fn read_all(
    source: &dyn Source,
    batch_rows: usize,
) -> Result<Vec<(PartitionInfo, RecordBatch)>> {
    let mut out = Vec::new();
    for p in source.partitions().await? {
        for (batch, _) in read_partition(source, p.id.0.as_str(), None, batch_rows).await? {
            assert_eq!(
                batch.schema(),
                source.schema(),
                "a batch of partition {} has another schema than the source's",
                p.id.0.as_str()
            );
            out.push((p.clone(), batch));
        }
    }
    Ok(out)
}

/// Reads every partition and concatenates all rows into one batch of the source's schema.
///
/// # Errors
/// The first error of any stream.
pub async fn read_all_rows(source: &dyn Source, batch_rows: usize) -> Result<RecordBatch> {
    let batches: Vec<RecordBatch> = read_all(source, batch_rows)
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    Ok(concat_batches(&source.schema(), &batches)?)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits up to `within` for the number of alive tasks to fall to `at_most`; returns the last
/// count seen.
async fn settle(at_most: usize, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = alive_tasks();
        if n <= at_most || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Concatenation of `batches` (empty batch of `schema` when there are none).
fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(schema, batches).unwrap_or_else(|e| panic!("batches do not concatenate: {e}"))
}

/// Checks every contract of [`Source`] on `source`, reading with batches of `batch_rows`
/// (choose it so each partition has a handful of batches: every position is reopened).
///
/// # Panics
/// When a contract is broken, naming it, the partition and the position; on a read error.
pub async fn check_source(source: &dyn Source, batch_rows: usize) -> SourceReport {
    let parts = source
        .partitions()
        .await
        .unwrap_or_else(|e| panic!("partitions() failed: {e}"));
    let again = source
        .partitions()
        .await
        .unwrap_or_else(|e| panic!("partitions() failed the second time: {e}"));
    assert_eq!(parts, again, "partitions() is not stable between two calls");

    // A full read first: connections and pools a client keeps are then part of the baseline.
    let schema = source.schema();
    let mut report = SourceReport::default();
    for p in &parts {
        let id = p.id.0.as_str();
        let batches = read_partition(source, id, None, batch_rows)
            .await
            .unwrap_or_else(|e| panic!("reading partition {id} failed: {e}"));
        for (i, (b, _)) in batches.iter().enumerate() {
            assert_eq!(
                b.schema(),
                schema,
                "batch {i} of partition {id} has another schema than Source::schema()"
            );
        }
        let rows: Vec<RecordBatch> = batches.iter().map(|(b, _)| b.clone()).collect();
        report
            .rows
            .insert(id.to_string(), rows.iter().map(RecordBatch::num_rows).sum());

        // Reopening after every position yields exactly the rows that followed it.
        for (i, (_, position)) in batches.iter().enumerate() {
            let stored: Position =
                serde_json::from_str(&serde_json::to_string(position).unwrap_or_else(|e| {
                    panic!("position {i} of partition {id} does not serialise: {e}")
                }))
                .unwrap_or_else(|e| {
                    panic!("position {i} of partition {id} does not read back: {e}")
                });
            let resumed: Vec<RecordBatch> = read_partition(source, id, Some(&stored), batch_rows)
                .await
                .unwrap_or_else(|e| {
                    panic!("reopening partition {id} after position {i} ({position:?}) failed: {e}")
                })
                .into_iter()
                .map(|(b, _)| b)
                .collect();
            let want = concat(&schema, &rows[i + 1..]);
            let got = concat(&schema, &resumed);
            assert_eq!(
                got.num_rows(),
                want.num_rows(),
                "reopening partition {id} after position {i} ({position:?}) gave {} rows; {} followed it",
                got.num_rows(),
                want.num_rows()
            );
            assert!(
                got == want,
                "reopening partition {id} after position {i} ({position:?}) gave other rows than followed it"
            );
            report.positions_checked += 1;
        }
    }

    let baseline = settle(0, Duration::from_millis(200)).await;
    for p in &parts {
        let id = p.id.0.as_str();
        // `open` is lazy: no task runs before the first poll.
        let stream = open_partition(source, id, None, batch_rows)
            .unwrap_or_else(|e| panic!("opening partition {id} failed: {e}"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after_open = alive_tasks();
        assert!(
            after_open <= baseline,
            "opening partition {id} started {} task(s) before the stream was polled: open must be lazy",
            after_open - baseline
        );
        // Dropping the stream after one batch stops its work.
        let mut stream = stream;
        let _first = stream.next().await;
        drop(stream);
        let left = settle(baseline, Duration::from_secs(5)).await;
        assert!(
            left <= baseline,
            "dropping the stream of partition {id} left {} task(s) running: dropping must stop its work",
            left - baseline
        );
    }
    report
}

/// A key that orders the rows of `batch` for comparison: the values of column `key` as text.
fn sorted_by(batch: &RecordBatch, key: &str) -> RecordBatch {
    let Ok(index) = batch.schema().index_of(key) else {
        panic!("the batch has no column `{key}`")
    };
    let order = arrow::compute::sort_to_indices(batch.column(index), None, None)
        .unwrap_or_else(|e| panic!("cannot sort by `{key}`: {e}"));
    arrow::compute::take_record_batch(batch, &order)
        .unwrap_or_else(|e| panic!("cannot reorder by `{key}`: {e}"))
}

/// What [`check_sink`] needs: how to build the sink for a target, and the rows to write.
#[derive(Debug)]
pub struct SinkCase<'a> {
    /// The sink configuration writing to a fresh target.
    pub config: &'a dyn DynSinkConfig,
    /// The sink configuration writing to a second fresh target (the one that is aborted).
    pub abort_config: &'a dyn DynSinkConfig,
    /// Where relative paths resolve.
    pub ctx: &'a BuildContext,
    /// The rows, in at least two batches (they are flushed in two groups).
    pub batches: Vec<RecordBatch>,
    /// The column the rows are compared in the order of (the primary key).
    pub key: &'a str,
}

/// Checks the contracts of [`Sink`] on the sink `case.config` builds: rows accepted before a
/// flush are reported by it; after commit, a reader of the target (the sink's own
/// [`DynSinkConfig::open_target`]) finds exactly the rows written; after abort, a reader finds
/// nothing — not a partial output.
///
/// # Panics
/// When a contract is broken (the message names it), or on a sink error.
pub async fn check_sink(case: SinkCase<'_>) {
    let schema = case
        .batches
        .first()
        .map(RecordBatch::schema)
        .unwrap_or_else(|| panic!("check_sink needs batches"));
    assert!(
        case.batches.len() >= 2,
        "check_sink needs at least two batches"
    );
    let all = concat(&schema, &case.batches);
    let half = case.batches.len() / 2;

    // Write in two flush groups, then commit.
    let mut sink = build(case.config, case.ctx).await;
    sink.prepare(&schema)
        .await
        .unwrap_or_else(|e| panic!("prepare failed: {e}"));
    let mut flushed = 0u64;
    for group in [&case.batches[..half], &case.batches[half..]] {
        let rows: usize = group.iter().map(RecordBatch::num_rows).sum();
        for b in group {
            sink.write(b.clone(), None)
                .await
                .unwrap_or_else(|e| panic!("write failed: {e}"));
        }
        let report = sink
            .flush()
            .await
            .unwrap_or_else(|e| panic!("flush failed: {e}"));
        assert_eq!(
            report.rows, rows as u64,
            "flush reported {} rows; {rows} were written since the previous flush",
            report.rows
        );
        flushed += report.rows;
    }
    let committed = sink
        .commit()
        .await
        .unwrap_or_else(|e| panic!("commit failed: {e}"));
    assert_eq!(
        committed.rows, flushed,
        "commit reported {} rows; the flushes made {flushed} durable",
        committed.rows
    );
    let back = read_target(case.config, case.ctx, &schema)
        .await
        .unwrap_or_else(|e| panic!("reading the committed target failed: {e}"));
    let back = back
        .unwrap_or_else(|| panic!("the sink cannot read back its target (open_target is None)"));
    assert_eq!(
        back.num_rows(),
        all.num_rows(),
        "the target holds another number of rows than were written"
    );
    let (want, got) = (sorted_by(&all, case.key), sorted_by(&back, case.key));
    for (i, field) in schema.fields().iter().enumerate() {
        let Ok(j) = got.schema().index_of(field.name()) else {
            panic!("the target has no field `{}`", field.name())
        };
        assert!(
            got.column(j).to_data() == want.column(i).to_data()
                || crate::compare::same_values(got.column(j), want.column(i)),
            "field `{}` reads back other values than were written",
            field.name()
        );
    }

    // Abort after a flush: a reader of the target finds nothing.
    let mut sink = build(case.abort_config, case.ctx).await;
    sink.prepare(&schema)
        .await
        .unwrap_or_else(|e| panic!("prepare failed: {e}"));
    sink.write(case.batches[0].clone(), None)
        .await
        .unwrap_or_else(|e| panic!("write failed: {e}"));
    sink.flush()
        .await
        .unwrap_or_else(|e| panic!("flush failed: {e}"));
    sink.write(case.batches[1].clone(), None)
        .await
        .unwrap_or_else(|e| panic!("write failed: {e}"));
    let left = sink
        .abort()
        .await
        .unwrap_or_else(|e| panic!("abort failed: {e}"));
    match read_target(case.abort_config, case.ctx, &schema).await {
        Err(_) | Ok(None) => {}
        Ok(Some(rows)) => assert_eq!(
            rows.num_rows(),
            0,
            "after abort a reader of the target finds {} rows (abort said: {:?}): partial output must not look complete",
            rows.num_rows(),
            left.left
        ),
    }
}

async fn build(config: &dyn DynSinkConfig, ctx: &BuildContext) -> Box<dyn Sink> {
    config
        .build(ctx)
        .await
        .unwrap_or_else(|e| panic!("building the sink failed: {e}"))
}

/// Every row a reader of the sink's target finds (`None` when the sink cannot be read back).
async fn read_target(
    config: &dyn DynSinkConfig,
    ctx: &BuildContext,
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>> {
    let Some(source) = config.open_target(ctx, schema).await? else {
        return Ok(None);
    };
    Ok(Some(read_all_rows(source.as_ref(), 4096).await?))
}
