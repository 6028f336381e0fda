//! The pipeline runner against mock sources and sinks: completeness, errors, checkpoints and
//! back-pressure.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, Int64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use vmig_core::checkpoint::{
    Checkpoint, CheckpointStore, FileCheckpointStore, JobFingerprint, PartitionState,
};
use vmig_core::pipeline::{NoProgress, Pipeline, PipelineOptions};
use vmig_core::{
    async_trait, AbortReport, CommitReport, FlushReport, PartitionId, Position, Result, Sink,
    Source, SourceBatch, SourceContext, SourceStream, Transformer,
};
use vmig_testing::gen::{sample_batch, sample_schema};
use vmig_testing::mock::{DiesAt, MockSink, MockSource};

fn source(partitions: usize, batches: usize, rows: usize) -> MockSource {
    let mut id = 0i64;
    let parts = (0..partitions)
        .map(|_| {
            (0..batches)
                .map(|_| {
                    let b = sample_batch(7, id, rows, 4);
                    id += rows as i64;
                    b
                })
                .collect()
        })
        .collect();
    MockSource {
        schema: sample_schema(4),
        partitions: parts,
        fail_at: None,
        target_partitions: Vec::new(),
    }
}

fn sorted_ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn options(flush_rows: Option<u64>) -> PipelineOptions {
    PipelineOptions {
        flush_rows,
        concurrency: NonZeroUsize::new(3).unwrap(),
        ..PipelineOptions::default()
    }
}

#[tokio::test]
async fn every_row_arrives_exactly_once_and_data_is_unchanged() {
    let src = source(5, 4, 10);
    let expected: Vec<RecordBatch> = src.partitions.iter().flatten().cloned().collect();
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let report = Pipeline::new(Box::new(src), Box::new(sink))
        .with_options(options(None))
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_read, 200);
    assert_eq!(report.rows_written, 200);
    assert_eq!(report.partitions, 5);
    let s = state.lock().unwrap();
    assert!(s.committed && !s.aborted);
    assert_eq!(s.flushes, 1);
    // Same rows, same values: compare after sorting by id.
    assert_eq!(sorted_ids(&s.durable), (0..200).collect::<Vec<_>>());
    let mut got = s.durable.clone();
    got.sort_by_key(|b| {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    });
    let schema = sample_schema(4);
    assert_eq!(
        concat_batches(&schema, &got).unwrap(),
        concat_batches(&schema, &expected).unwrap()
    );
}

/// Keeps rows whose id is even; proves transformers run and shape the prepared schema.
#[derive(Debug)]
struct EvenIds;

impl Transformer for EvenIds {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(Arc::clone(input))
    }
    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let mask: arrow::array::BooleanArray = ids.iter().map(|v| v.map(|v| v % 2 == 0)).collect();
        Ok(arrow::compute::filter_record_batch(&batch, &mask)?)
    }
}

#[tokio::test]
async fn transformers_apply_and_read_counts_differ_from_written() {
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let report = Pipeline::new(Box::new(source(2, 3, 5)), Box::new(sink))
        .with_transforms(vec![("even".into(), Box::new(EvenIds))])
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_read, 30);
    assert_eq!(report.rows_written, 15);
    let s = state.lock().unwrap();
    assert_eq!(
        sorted_ids(&s.durable),
        (0..30).filter(|i| i % 2 == 0).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn source_error_aborts_sink_and_names_partition() {
    let mut src = source(3, 4, 5);
    src.fail_at = Some((1, 2));
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let err = Pipeline::new(Box::new(src), Box::new(sink))
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("reading partition p1"), "{msg}");
    assert!(msg.contains("injected failure"), "{msg}");
    let s = state.lock().unwrap();
    assert!(s.aborted && !s.committed);
}

#[tokio::test]
async fn sink_error_is_returned_with_context() {
    let sink = MockSink::failing_on_write(3);
    let state = Arc::clone(&sink.state);
    let err = Pipeline::new(Box::new(source(2, 4, 5)), Box::new(sink))
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("writing to the sink"), "{err}");
    assert!(err.is_retryable());
    assert!(state.lock().unwrap().aborted);
}

#[tokio::test]
async fn checkpoints_resume_exactly_after_durable_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileCheckpointStore::new(dir.path().join("ck.json")));
    let mut src = source(3, 5, 4);
    src.fail_at = Some((2, 3));
    let job = JobFingerprint::of(&serde_json::json!({"job": "checkpoints"}));
    let first = MockSink::default();
    let first_state = Arc::clone(&first.state);
    let err = Pipeline::new(Box::new(src.clone()), Box::new(first))
        .with_options(options(Some(1)))
        .with_checkpoints(store.clone(), job.clone())
        .run(Arc::new(NoProgress))
        .await;
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains("mock p2 batch 3") && err.contains("injected failure"),
        "{err}"
    );
    let saved = store.load().await.unwrap().unwrap();
    assert_eq!(saved.job(), job.as_str());
    // Partition p2 failed at batch 3: at most batches 0..=2 can be durable.
    match saved.partitions().get(&PartitionId::new("p2")) {
        Some(PartitionState::InProgress { after }) => {
            assert!(after.decode::<usize>().unwrap() <= 2)
        }
        None => {}
        other => panic!("p2 cannot be done: {other:?}"),
    }
    // Resume without the fault: union of both runs' durable rows is every row exactly once.
    src.fail_at = None;
    let second = MockSink::default();
    let second_state = Arc::clone(&second.state);
    Pipeline::new(Box::new(src), Box::new(second))
        .with_options(options(Some(1)))
        .with_checkpoints(store.clone(), job.clone())
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    // The failed run was suspended, not aborted, and the resumed sink got the record the first
    // one gave at its last flush.
    {
        let first = first_state.lock().unwrap();
        assert!(first.suspended && !first.aborted);
        assert_eq!(
            second_state.lock().unwrap().resumed_from,
            Some(serde_json::json!({ "flushes": first.flushes }))
        );
        let mut all = first.durable.clone();
        all.extend(second_state.lock().unwrap().durable.clone());
        assert_eq!(sorted_ids(&all), (0..60).collect::<Vec<_>>());
    }
    let done = store.load().await.unwrap().unwrap();
    assert!(
        done.partitions()
            .values()
            .all(|s| *s == PartitionState::Done),
        "{done:?}"
    );
    assert_eq!(done.job(), job.as_str());
}

/// The job fingerprint of a small job file whose sink writes to `path`.
fn job_fingerprint(path: &str, password: &str) -> JobFingerprint {
    vmig_core::config::JobConfig::from_toml_str(&format!(
        "[source]\ntype='faiss'\npath='index.faiss'\n\
         [sink]\ntype='milvus2'\nuri='http://h:19530'\npassword='{password}'\nstage='{path}'\n\
         [pipeline]\nconcurrency=1\n"
    ))
    .unwrap()
    .fingerprint()
}

#[tokio::test]
async fn a_checkpoint_of_another_job_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    let store = Arc::new(FileCheckpointStore::new(&path));
    let saved_by = job_fingerprint("/stage/a", "pw-one");
    // A password change keeps the job; a different sink path makes another one.
    assert_eq!(saved_by, job_fingerprint("/stage/a", "pw-two"));
    let other = job_fingerprint("/stage/b", "pw-one");
    assert_ne!(saved_by, other);
    let mut ck = Checkpoint::new(saved_by.as_str());
    ck.partitions_mut()
        .insert(PartitionId::new("p0"), PartitionState::Done);
    store.save(&ck).await.unwrap();

    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let err = Pipeline::new(Box::new(source(2, 2, 3)), Box::new(sink))
        .with_checkpoints(store.clone(), other.clone())
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the checkpoint {} was saved by another job (fingerprint {}; this job's is {}), \
             so its progress does not apply here: to start over, delete or move that checkpoint, \
             or give this job a new one",
            path.display(),
            &saved_by.as_str()[..12],
            &other.as_str()[..12],
        )
    );
    {
        let s = state.lock().unwrap();
        assert!(s.prepared.is_none() && s.pending.is_empty() && s.durable.is_empty());
        assert!(!s.committed);
    }
    // The refused checkpoint is left as it was.
    assert_eq!(store.load().await.unwrap(), Some(ck.clone()));

    // The job that saved it resumes: p0 is skipped, p1 is written.
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let report = Pipeline::new(Box::new(source(2, 2, 3)), Box::new(sink))
        .with_checkpoints(store.clone(), job_fingerprint("/stage/a", "pw-rotated"))
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!((report.partitions, report.rows_written), (1, 6));
    assert_eq!(
        sorted_ids(&state.lock().unwrap().durable),
        (6..12).collect::<Vec<_>>()
    );
}

/// A source that counts how many batches it has produced.
#[derive(Debug)]
struct Counting {
    inner: MockSource,
    produced: Arc<AtomicUsize>,
    /// How often the runner called `end_of_job`.
    ended: Arc<AtomicUsize>,
}

#[async_trait]
impl Source for Counting {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
    async fn partitions(&self) -> Result<Vec<vmig_core::PartitionInfo>> {
        self.inner.partitions().await
    }
    fn open(
        &self,
        p: &PartitionId,
        r: Option<&Position>,
        c: &SourceContext,
    ) -> Result<SourceStream> {
        use futures::StreamExt;
        let produced = Arc::clone(&self.produced);
        Ok(Box::pin(self.inner.open(p, r, c)?.map(
            move |b: Result<SourceBatch>| {
                produced.fetch_add(1, Ordering::SeqCst);
                b
            },
        )))
    }
    fn end_of_job(&self) {
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// A slow sink that records how far the readers ran ahead of it.
#[derive(Debug)]
struct Slow {
    produced: Arc<AtomicUsize>,
    written: usize,
    max_ahead: Arc<Mutex<usize>>,
}

#[async_trait]
impl Sink for Slow {
    async fn prepare(&mut self, _: &SchemaRef) -> Result<()> {
        Ok(())
    }
    /// Has no partitions: refuses named ones before doing anything.
    async fn write(&mut self, _: RecordBatch, partition: Option<&str>) -> Result<()> {
        vmig_core::sink::refuse_named_partition(self.name(), partition)?;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.written += 1;
        let ahead = self.produced.load(Ordering::SeqCst) - self.written;
        let mut m = self.max_ahead.lock().unwrap();
        *m = (*m).max(ahead);
        Ok(())
    }
    async fn flush(&mut self) -> Result<FlushReport> {
        Ok(FlushReport::default())
    }
    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        Ok(CommitReport::default())
    }
}

#[tokio::test]
async fn readers_cannot_run_ahead_of_a_slow_sink() {
    let produced = Arc::new(AtomicUsize::new(0));
    let max_ahead = Arc::new(Mutex::new(0));
    let src = Counting {
        inner: source(4, 50, 2),
        produced: Arc::clone(&produced),
        ended: Arc::default(),
    };
    let sink = Slow {
        produced: Arc::clone(&produced),
        written: 0,
        max_ahead: Arc::clone(&max_ahead),
    };
    let opts = PipelineOptions {
        channel_capacity: NonZeroUsize::new(2).unwrap(),
        concurrency: NonZeroUsize::new(2).unwrap(),
        ..PipelineOptions::default()
    };
    let report = Pipeline::new(Box::new(src), Box::new(sink))
        .with_options(opts)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, 400);
    let ahead = *max_ahead.lock().unwrap();
    // channel capacity + one batch held by each reader waiting to send + one in the sink's hand.
    assert!(ahead <= 2 + 2 + 1, "readers ran {ahead} batches ahead");
    assert!(ahead >= 1, "the test did not exercise back-pressure");
}

#[tokio::test]
async fn batches_go_to_their_source_partitions_target() {
    let mut src = source(3, 4, 5);
    src.target_partitions = vec![Some("p2023".into()), Some("p2024".into())];
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let report = Pipeline::new(Box::new(src), Box::new(sink))
        .with_options(options(Some(7)))
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, 60);
    let s = state.lock().unwrap();
    assert_eq!(s.durable.len(), s.durable_partitions.len());
    let ids_of = |want: Option<&str>| {
        let batches: Vec<RecordBatch> = s
            .durable
            .iter()
            .zip(&s.durable_partitions)
            .filter(|(_, p)| p.as_deref() == want)
            .map(|(b, _)| b.clone())
            .collect();
        sorted_ids(&batches)
    };
    // Source partition i holds ids 20*i .. 20*(i+1).
    assert_eq!(ids_of(Some("p2023")), (0..20).collect::<Vec<_>>());
    assert_eq!(ids_of(Some("p2024")), (20..40).collect::<Vec<_>>());
    assert_eq!(ids_of(None), (40..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn sinks_without_partition_support_reject_named_partitions() {
    let produced = Arc::new(AtomicUsize::new(0));
    let mut inner = source(2, 1, 3);
    inner.target_partitions = vec![None, Some("p2024".into())];
    let src = Counting {
        inner,
        produced: Arc::clone(&produced),
        ended: Arc::default(),
    };
    let sink = Slow {
        produced,
        written: 0,
        max_ahead: Arc::new(Mutex::new(0)),
    };
    let err = Pipeline::new(Box::new(src), Box::new(sink))
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "writing to the sink: unsupported input at target partition `p2024`: the `Slow` sink cannot write into named partitions"
    );
}

/// A [`MockSink`] that cancels the run while it flushes (a signal arriving during the final
/// flush) and reports what it left when aborted.
#[derive(Debug)]
struct CancelledWhileFlushing {
    inner: Box<MockSink>,
    cancel: tokio_util::sync::CancellationToken,
}

#[async_trait]
impl Sink for CancelledWhileFlushing {
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        self.inner.prepare(schema).await
    }
    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        self.inner.write(batch, partition).await
    }
    async fn flush(&mut self) -> Result<FlushReport> {
        self.cancel.cancel();
        self.inner.flush().await
    }
    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        self.inner.commit().await
    }
    async fn abort(self: Box<Self>) -> Result<AbortReport> {
        self.inner.abort().await?;
        Ok(AbortReport::new(
            "The mock target holds 20 flushed rows of this run.",
        ))
    }
}

#[tokio::test]
async fn a_stop_during_the_final_flush_aborts_instead_of_committing() {
    let inner = MockSink::default();
    let state = Arc::clone(&inner.state);
    let cancel = tokio_util::sync::CancellationToken::new();
    let sink = CancelledWhileFlushing {
        inner: Box::new(inner),
        cancel: cancel.clone(),
    };
    let err = Pipeline::new(Box::new(source(2, 2, 5)), Box::new(sink))
        .with_cancel(cancel)
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err.root(), vmig_core::Error::Cancelled), "{err}");
    assert_eq!(
        err.to_string(),
        "cancelled\nLeft in the target: The mock target holds 20 flushed rows of this run."
    );
    let s = state.lock().unwrap();
    assert!(s.aborted && !s.committed, "the run committed after a stop");
}

#[tokio::test]
async fn max_rows_per_second_paces_the_writes() {
    let sink = MockSink::default();
    let started = std::time::Instant::now();
    let report = Pipeline::new(Box::new(source(1, 4, 50)), Box::new(sink))
        .with_options(PipelineOptions {
            max_rows_per_second: std::num::NonZeroU64::new(1000),
            ..PipelineOptions::default()
        })
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.rows_written, 200);
    // 200 rows at 1000 rows/s cannot take less than 0.2 s (a lower bound, never flaky).
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
}

/// A stop lands almost always while a throttled run waits for its pace: it must still flush
/// and save what the sink accepted (the stop path), not return past it.
#[tokio::test]
async fn a_throttled_run_stopped_while_pacing_saves_what_the_sink_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileCheckpointStore::new(dir.path().join("ck.json")));
    let job = JobFingerprint::of(&serde_json::json!({"job": "throttled stop"}));
    let throttled = PipelineOptions {
        max_rows_per_second: std::num::NonZeroU64::new(20),
        ..PipelineOptions::default()
    };
    // 40 rows at 20 rows/s, no flush before the end: stopped after 0.3 s, in a pause.
    let first = MockSink::default();
    let first_state = Arc::clone(&first.state);
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.cancel();
    });
    let err = Pipeline::new(Box::new(source(1, 8, 5)), Box::new(first))
        .with_options(throttled)
        .with_checkpoints(store.clone(), job.clone())
        .with_cancel(cancel)
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err.root(), vmig_core::Error::Cancelled), "{err}");
    let (flushed, durable) = {
        let s = first_state.lock().unwrap();
        assert!(s.suspended && !s.committed, "{s:?}");
        (s.flushes, s.durable.clone())
    };
    let rows: usize = durable.iter().map(RecordBatch::num_rows).sum();
    assert!(
        flushed == 1 && rows > 0 && rows < 40,
        "the stop should have flushed the rows written before it: {flushed} flushes, {rows} rows"
    );
    let saved = store.load().await.unwrap();
    let Some(PartitionState::InProgress { after }) = saved
        .as_ref()
        .and_then(|c| c.partitions().get(&PartitionId::new("p0")).cloned())
    else {
        panic!("nothing saved for p0: {saved:?}");
    };
    assert_eq!(after.decode::<usize>().unwrap() + 1, rows / 5);

    // The next run resumes after them: every row once in all.
    let second = MockSink::default();
    let second_state = Arc::clone(&second.state);
    Pipeline::new(Box::new(source(1, 8, 5)), Box::new(second))
        .with_checkpoints(store, job)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    let mut all = durable;
    all.extend(second_state.lock().unwrap().durable.clone());
    assert_eq!(sorted_ids(&all), (0..40).collect::<Vec<_>>());
}

/// Plans a schema that differs from what it produces: `transform` passes batches through
/// unchanged, `output_schema` replaces the input's field `field` by `planned`.
#[derive(Debug)]
struct Liar {
    field: &'static str,
    planned: arrow::datatypes::Field,
}

impl Transformer for Liar {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let fields: Vec<_> = input
            .fields()
            .iter()
            .map(|f| {
                if f.name() == self.field {
                    self.planned.clone()
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Ok(Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            input.metadata().clone(),
        )))
    }
    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(batch)
    }
}

/// Runs one partition of two batches of 10 rows through `even`, then a [`Liar`] planning
/// `planned` for `field`; returns the error text and whether the sink was aborted, holding
/// nothing and not committed.
async fn run_with_liar(field: &'static str, planned: arrow::datatypes::Field) -> (String, bool) {
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let err = Pipeline::new(Box::new(source(1, 2, 10)), Box::new(sink))
        .with_transforms(vec![
            ("even".into(), Box::new(EvenIds)),
            ("liar".into(), Box::new(Liar { field, planned })),
        ])
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    let s = state.lock().unwrap();
    (
        err.to_string(),
        s.aborted && !s.committed && s.durable.is_empty(),
    )
}

#[tokio::test]
async fn a_transformer_whose_output_type_differs_from_its_plan_is_stopped_by_name() {
    let planned = vmig_core::vector::float_vector_field("vector", 8);
    let (err, aborted) = run_with_liar("vector", planned).await;
    assert_eq!(
        err,
        "reading partition p0: transform #2 (`liar`): schema error: produced field `vector` as \
         FixedSizeList(4 x Float32) but planned FixedSizeList(8 x Float32)"
    );
    assert!(aborted, "the sink was not aborted cleanly");
}

#[tokio::test]
async fn a_transformer_that_renames_a_field_its_plan_keeps_is_stopped() {
    let schema = sample_schema(4);
    let planned = schema.field_with_name("score").unwrap().clone();
    let (err, aborted) = run_with_liar("score", planned.with_name("rank")).await;
    assert_eq!(
        err,
        "reading partition p0: transform #2 (`liar`): schema error: produced field `score` where \
         the plan has `rank` (fields: `id`, `vector`, `title`, `score`, `flag` but planned `id`, \
         `vector`, `title`, `rank`, `flag`)"
    );
    assert!(aborted, "the sink was not aborted cleanly");
}

#[tokio::test]
async fn a_transformer_that_yields_nulls_its_plan_forbids_is_stopped() {
    let schema = sample_schema(4);
    let planned = schema.field_with_name("title").unwrap().clone();
    let (err, aborted) = run_with_liar("title", planned.with_nullable(false)).await;
    // Ids 0, 2, 4, … survive `even`; the title of id 0 is null (every 7th is), so row 0.
    assert_eq!(
        err,
        "reading partition p0: transform #2 (`liar`): schema error: produced a null in field \
         `title` (row 0 of the batch), which the plan declares non-nullable"
    );
    assert!(aborted, "the sink was not aborted cleanly");
}

#[tokio::test]
async fn the_source_hears_the_end_of_every_job_finished_or_failed() {
    for fail in [None, Some((1, 0))] {
        let ended = Arc::new(AtomicUsize::new(0));
        let mut inner = source(2, 2, 3);
        inner.fail_at = fail;
        let src = Counting {
            inner,
            produced: Arc::default(),
            ended: Arc::clone(&ended),
        };
        let result = Pipeline::new(Box::new(src), Box::new(MockSink::default()))
            .run(Arc::new(NoProgress))
            .await;
        assert_eq!(result.is_ok(), fail.is_none(), "{result:?}");
        assert_eq!(ended.load(Ordering::SeqCst), 1, "fail_at {fail:?}");
    }
}

/// A sink whose writes are durable at once (a Milvus insert): killed between any two state
/// writes, the resumed run sends every row the killed run may have written again as a replay
/// (an upsert), so the target ends with every row exactly once.
#[tokio::test]
async fn sent_marks_make_a_kill_at_any_save_exactly_once() {
    let job = JobFingerprint::of(&serde_json::json!({"job": "sent-marks"}));
    let all_ids: Vec<i64> = (0..48).collect();
    let mut kills = 0;
    for kill_at in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.json");
        let src = source(3, 4, 4);
        let opts = PipelineOptions {
            flush_rows: Some(12),
            concurrency: NonZeroUsize::new(2).unwrap(),
            ..PipelineOptions::default()
        };
        let killed = MockSink::with_sent_marks();
        let killed_state = Arc::clone(&killed.state);
        let store = Arc::new(DiesAt::new(&path, kill_at));
        let first = Pipeline::new(Box::new(src.clone()), Box::new(killed))
            .with_options(opts.clone())
            .with_checkpoints(store, job.clone())
            .run(Arc::new(NoProgress))
            .await;
        if first.is_ok() {
            break; // `kill_at` is past the last save: every instant has been tried
        }
        kills += 1;
        // What the target holds: everything the killed run handed to the sink.
        let mut target: Vec<i64> = {
            let s = killed_state.lock().unwrap();
            let mut rows = s.durable.clone();
            rows.extend(s.pending.clone());
            sorted_ids(&rows)
        };
        let resumed = MockSink::with_sent_marks();
        let resumed_state = Arc::clone(&resumed.state);
        Pipeline::new(Box::new(src), Box::new(resumed))
            .with_options(opts)
            .with_checkpoints(Arc::new(FileCheckpointStore::new(&path)), job.clone())
            .run(Arc::new(NoProgress))
            .await
            .unwrap_or_else(|e| panic!("resume after a kill at save {kill_at}: {e}"));
        let s = resumed_state.lock().unwrap();
        let replayed = sorted_ids(&s.replayed);
        // Replays are upserts: they replace rows of the killed run; other writes are inserts.
        target.retain(|id| replayed.binary_search(id).is_err());
        target.extend(sorted_ids(&s.durable));
        target.sort_unstable();
        assert_eq!(target, all_ids, "kill at save {kill_at}");
    }
    assert!(kills >= 10, "only {kills} kill points");
}
