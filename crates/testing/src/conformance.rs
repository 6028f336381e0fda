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
//! [`check_sink_resume`] checks a sink that resumes ([`Sink::resume_record`], [`Sink::resume`],
//! [`Sink::suspend`]): it stops a run at every cut point — killed right after each flush,
//! killed or suspended in the middle between two flushes, and several stops in a row — resumes
//! it from the record of its last flush, as the runner would, and requires that the committed
//! target holds exactly the rows of an uninterrupted run.
//!
//! The task checks use tokio's runtime metrics, so they see work done by spawned tasks (read
//! ahead, prefetch, background requests) — the way vmig's sources do I/O. Run the checks from a
//! `#[tokio::test]`.
//!
//! Failures panic with a message naming the contract, the partition and the position: these
//! are test helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
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

/// `batch` with its rows in the order of column `key`, for comparison.
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
            crate::compare::same_values(got.column(j), want.column(i)),
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

/// Every row a reader of the sink's target finds, through the sink's own
/// [`DynSinkConfig::open_target`] (`None` when the sink cannot be read back). The reading-back
/// hook of [`check_sink`], and a ready [`ReadBack`] body for [`check_sink_resume`].
///
/// # Errors
/// The errors of `open_target` and of reading the target.
pub async fn read_target(
    config: &dyn DynSinkConfig,
    ctx: &BuildContext,
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>> {
    let Some(source) = config.open_target(ctx, schema).await? else {
        return Ok(None);
    };
    Ok(Some(read_all_rows(source.as_ref(), 4096).await?))
}

/// Builds a new, unprepared sink for trial `trial` of [`check_sink_resume`]. Every sink of one
/// trial MUST write the same target; every trial MUST get a target of its own (e.g.
/// `<base>/trial-<trial>`), empty at first.
pub type MakeSink<'a> = dyn Fn(usize) -> BoxFuture<'a, Result<Box<dyn Sink>>> + Send + Sync + 'a;

/// Reads back every row of trial `trial`'s target after its commit (as [`read_target`] does
/// through the sink's `open_target`, or with the test's own readers). It may also check that
/// the target holds nothing but the output (no leftovers of the interrupted runs) and fail
/// naming what is there.
pub type ReadBack<'a> = dyn Fn(usize) -> BoxFuture<'a, Result<RecordBatch>> + Send + Sync + 'a;

/// What [`check_sink_resume`] needs.
pub struct ResumeCase<'a> {
    /// A new sink for a trial.
    pub make: &'a MakeSink<'a>,
    /// The committed rows of a trial's target.
    pub read_back: &'a ReadBack<'a>,
    /// The rows, in at least two batches; the uninterrupted run flushes after every batch.
    pub batches: Vec<RecordBatch>,
    /// The target partition each batch is written to, by index (missing entries: `None`).
    pub partitions: Vec<Option<String>>,
    /// The column that identifies a row (the primary key; unique in `batches`).
    pub key: &'a str,
}

impl fmt::Debug for ResumeCase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeCase")
            .field("batches", &self.batches.len())
            .field("partitions", &self.partitions)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What [`check_sink_resume`] did: every trial, described, and how many times a sink resumed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResumeReport {
    /// One line per trial, e.g. `killed after flush 2 → committed`.
    pub trials: Vec<String>,
    /// Calls of [`Sink::resume`] over all trials.
    pub resumes: usize,
}

/// How one process of a trial ends. Batches are written in order and flushed one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Dropped (as by `kill -9`) when `k` batches in all are flushed, right after that flush
    /// (or right after `prepare`, when a resumed process had nothing to flush yet).
    AfterFlush(usize),
    /// Batch `k` written and not flushed, then dropped.
    MidBatch(usize),
    /// Batch `k` written and not flushed, then suspended.
    Suspend(usize),
    /// Everything written and flushed, then committed.
    Commit,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::AfterFlush(0) => f.write_str("killed before writing"),
            Stop::AfterFlush(k) => write!(f, "killed after flush {k}"),
            Stop::MidBatch(k) => write!(f, "killed with batch {k} written but not flushed"),
            Stop::Suspend(k) => write!(f, "suspended with batch {k} written but not flushed"),
            Stop::Commit => f.write_str("committed"),
        }
    }
}

/// The trials for `n` batches: one stop at every cut point, then a few chains of stops.
fn trials(n: usize) -> Vec<Vec<Stop>> {
    let mut out: Vec<Vec<Stop>> = Vec::new();
    for k in 1..=n {
        out.push(vec![Stop::AfterFlush(k), Stop::Commit]);
    }
    for k in 0..n {
        out.push(vec![Stop::MidBatch(k), Stop::Commit]);
        out.push(vec![Stop::Suspend(k), Stop::Commit]);
    }
    // A resumed process killed at once; killed again after resuming; suspended, resumed, killed.
    out.push(vec![Stop::MidBatch(1), Stop::AfterFlush(1), Stop::Commit]);
    if n >= 3 {
        out.push(vec![Stop::MidBatch(1), Stop::MidBatch(2), Stop::Commit]);
        out.push(vec![
            Stop::Suspend(1),
            Stop::AfterFlush(2),
            Stop::Suspend(2),
            Stop::Commit,
        ]);
    }
    out
}

/// Where a trial stands between its processes: what the runner's checkpoint would hold.
#[derive(Debug, Default)]
struct Saved {
    /// Batches flushed (the next batch to write).
    flushed: usize,
    /// The sink's record at the last flush, as the checkpoint stores it.
    record: Option<serde_json::Value>,
}

/// Checks that a sink resumes exactly (see the module docs): for every trial, processes are
/// started one after another on the trial's target; each resumes from the record of the last
/// flush (round-tripped through JSON, as a checkpoint stores it) when a flush happened before —
/// [`Sink::resume`] with `Null` when the sink gives no record, as the runner does — prepares,
/// writes the remaining batches flushing after each (a resumed process writes each batch in
/// two slices, a third and the rest: rows may come back in other batches), and stops as the
/// trial says: dropped
/// without commit, suspend or abort (what `kill -9` leaves: a sink's `Drop` MUST NOT remove
/// what its records name), suspended, or committed. The committed target, read back by
/// `case.read_back`, must hold exactly the rows of `case.batches`: no row missing, none twice
/// (multiset equality by all values, vectors bit-exact).
///
/// # Panics
/// When a contract is broken (the message names the trial and what differs), or on a sink error.
pub async fn check_sink_resume(case: ResumeCase<'_>) -> ResumeReport {
    let schema = case
        .batches
        .first()
        .map(RecordBatch::schema)
        .unwrap_or_else(|| panic!("check_sink_resume needs batches"));
    let n = case.batches.len();
    assert!(n >= 2, "check_sink_resume needs at least two batches");
    let all = concat(&schema, &case.batches);
    let mut report = ResumeReport::default();
    for (t, stops) in trials(n).into_iter().enumerate() {
        let name = stops
            .iter()
            .map(Stop::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        let trial = format!("trial {t} ({name})");
        let mut saved = Saved::default();
        for stop in stops {
            report.resumes += run_until(&case, t, stop, &mut saved, &schema, &trial).await;
        }
        let back = (case.read_back)(t)
            .await
            .unwrap_or_else(|e| panic!("{trial}: reading the committed target back failed: {e}"));
        same_rows(&all, &back, case.key, &trial);
        report.trials.push(name);
    }
    report
}

/// One process of a trial: resumes (when something was flushed before), prepares, writes from
/// the saved position and stops at `stop`. Returns how many times it resumed (0 or 1).
async fn run_until(
    case: &ResumeCase<'_>,
    t: usize,
    stop: Stop,
    saved: &mut Saved,
    schema: &SchemaRef,
    trial: &str,
) -> usize {
    let mut sink = (case.make)(t)
        .await
        .unwrap_or_else(|e| panic!("{trial}: building the sink failed: {e}"));
    let mut resumed = 0;
    if saved.flushed > 0 {
        let record = saved.record.clone().unwrap_or(serde_json::Value::Null);
        let stored: serde_json::Value = serde_json::to_string(&record)
            .and_then(|text| serde_json::from_str(&text))
            .unwrap_or_else(|e| {
                panic!("{trial}: the resume record does not round-trip as JSON: {e}")
            });
        sink.resume(stored).await.unwrap_or_else(|e| {
            panic!(
                "{trial}: resuming after {} flushed batches failed: {e}",
                saved.flushed
            )
        });
        resumed = 1;
    }
    sink.prepare(schema)
        .await
        .unwrap_or_else(|e| panic!("{trial}: prepare failed: {e}"));
    let mut i = saved.flushed;
    loop {
        if stop == Stop::AfterFlush(i) {
            drop(sink);
            return resumed;
        }
        if i == case.batches.len() {
            assert_eq!(stop, Stop::Commit, "{trial}: a stop after the last batch");
            sink.commit()
                .await
                .unwrap_or_else(|e| panic!("{trial}: commit failed: {e}"));
            return resumed;
        }
        let batch = &case.batches[i];
        let partition = case.partitions.get(i).and_then(Option::as_deref);
        // A resumed process gets the same rows in other batches (as after a change of
        // `batch_rows`): a sink may not rely on batch boundaries repeating.
        let slices = if resumed > 0 {
            let head = batch.num_rows() / 3;
            vec![
                batch.slice(0, head),
                batch.slice(head, batch.num_rows() - head),
            ]
        } else {
            vec![batch.clone()]
        };
        for slice in slices {
            sink.write(slice, partition)
                .await
                .unwrap_or_else(|e| panic!("{trial}: writing batch {i} failed: {e}"));
        }
        match stop {
            Stop::MidBatch(k) if k == i => {
                drop(sink);
                return resumed;
            }
            Stop::Suspend(k) if k == i => {
                sink.suspend()
                    .await
                    .unwrap_or_else(|e| panic!("{trial}: suspend failed: {e}"));
                return resumed;
            }
            _ => {}
        }
        let flushed = sink
            .flush()
            .await
            .unwrap_or_else(|e| panic!("{trial}: flushing batch {i} failed: {e}"));
        assert!(
            flushed.rows == batch.num_rows() as u64,
            "{trial}: the flush after batch {i} reported {} rows; {} were written since the previous flush",
            flushed.rows,
            batch.num_rows()
        );
        saved.record = sink.resume_record();
        i += 1;
        saved.flushed = i;
    }
}

/// The rendering of each row's `key` in `batch`, with how often it occurs.
fn key_counts(batch: &RecordBatch, key: &str, what: &str) -> BTreeMap<String, usize> {
    let Ok(index) = batch.schema().index_of(key) else {
        panic!("{what}: the rows have no column `{key}`")
    };
    let column = batch.column(index);
    let mut counts = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let value = arrow::util::display::array_value_to_string(column, row)
            .unwrap_or_else(|e| panic!("{what}: cannot print key `{key}` of row {row}: {e}"));
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}

/// Requires that `got` holds exactly the rows of `want` (whose `key`s are unique): the same
/// number of each key, and the same values in every field of `want`.
fn same_rows(want: &RecordBatch, got: &RecordBatch, key: &str, what: &str) {
    let wanted = key_counts(want, key, what);
    if let Some((k, n)) = wanted.iter().find(|(_, n)| **n > 1) {
        panic!("{what}: key `{key}` = {k} occurs {n} times in the batches; keys must be unique");
    }
    let found = key_counts(got, key, what);
    let twice: Vec<String> = found
        .iter()
        .filter(|(k, n)| **n > wanted.get(*k).copied().unwrap_or(0))
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    let missing: Vec<&String> = wanted.keys().filter(|k| !found.contains_key(*k)).collect();
    let sample = |v: &[String]| {
        let shown = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            format!("{shown}, … ({} in all)", v.len())
        } else {
            shown
        }
    };
    let missing: Vec<String> = missing.into_iter().cloned().collect();
    assert!(
        twice.is_empty() && missing.is_empty() && got.num_rows() == want.num_rows(),
        "{what}: the target holds {} rows; an uninterrupted run writes {} (keys there too often: [{}]; keys missing: [{}])",
        got.num_rows(),
        want.num_rows(),
        sample(&twice),
        sample(&missing)
    );
    let (want, got) = (sorted_by(want, key), sorted_by(got, key));
    for (i, field) in want.schema().fields().iter().enumerate() {
        let Ok(j) = got.schema().index_of(field.name()) else {
            panic!("{what}: the target has no field `{}`", field.name())
        };
        assert!(
            crate::compare::same_values(got.column(j), want.column(i)),
            "{what}: field `{}` reads back other values than were written",
            field.name()
        );
    }
}
