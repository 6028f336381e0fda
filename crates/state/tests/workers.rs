//! The runner with several workers on one job (`Pipeline::with_leases`) over the real state
//! store (SQLite here; the CLI test `scale_out` runs processes on PostgreSQL): three workers
//! share a job and every row lands once, the once-per-job steps run once; a worker killed
//! mid-run (its task dropped: no clean-up, its leases simply expire) is taken over by another,
//! which resumes from the last checkpoint and replays the unconfirmed window, so the target
//! holds every row exactly once; a sink that cannot share a job is refused before anything is
//! prepared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, Float32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde_json::json;
use vmig_core::checkpoint::{CheckpointStore as _, JobFingerprint};
use vmig_core::pipeline::{NoProgress, Pipeline, PipelineOptions};
use vmig_core::{CommitReport, Error, FlushReport, Result, Sink};
use vmig_state::{JobIdentity, StateStore};
use vmig_testing::mock::{MockSink, MockSource};

/// What the shared target holds and what happened to it.
#[derive(Debug, Default)]
struct Target {
    /// Every row as (id, value), duplicates kept.
    rows: Vec<(i64, u32)>,
    created: usize,
    commits: usize,
    parts: usize,
    replayed_rows: usize,
}

/// A sink like the Milvus insert mode: a write is durable at once, a replay is an upsert by
/// id; all workers write into one shared target.
#[derive(Debug)]
struct SharedSink {
    target: Arc<Mutex<Target>>,
    /// Stall forever after this many writes (the worker then "hangs" until killed).
    stall_after: Option<usize>,
    writes: usize,
    stalled: Arc<tokio::sync::Notify>,
}

impl SharedSink {
    fn new(target: &Arc<Mutex<Target>>) -> Self {
        SharedSink {
            target: Arc::clone(target),
            stall_after: None,
            writes: 0,
            stalled: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn rows(batch: &RecordBatch) -> Vec<(i64, u32)> {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        (0..batch.num_rows())
            .map(|i| (ids.value(i), values.value(i).to_bits()))
            .collect()
    }

    async fn maybe_stall(&mut self) {
        self.writes += 1;
        if self.stall_after.is_some_and(|n| self.writes > n) {
            self.stalled.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Sink for SharedSink {
    async fn prepare(&mut self, _schema: &SchemaRef) -> Result<()> {
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch, _partition: Option<&str>) -> Result<()> {
        self.maybe_stall().await;
        self.target.lock().unwrap().rows.extend(Self::rows(&batch));
        Ok(())
    }

    async fn write_replay(&mut self, batch: RecordBatch, _partition: Option<&str>) -> Result<()> {
        self.maybe_stall().await;
        let rows = Self::rows(&batch);
        let mut t = self.target.lock().unwrap();
        t.replayed_rows += rows.len();
        t.rows.retain(|(id, _)| !rows.iter().any(|(r, _)| r == id));
        t.rows.extend(rows);
        Ok(())
    }

    fn needs_sent_marks(&self) -> bool {
        true
    }

    fn shares_jobs(&self) -> bool {
        true
    }

    async fn create_shared(&mut self) -> Result<()> {
        self.target.lock().unwrap().created += 1;
        Ok(())
    }

    fn resume_record(&self) -> Option<serde_json::Value> {
        Some(json!({"target": "shared"}))
    }

    async fn resume(&mut self, record: serde_json::Value) -> Result<()> {
        assert_eq!(record, json!({"target": "shared"}));
        Ok(())
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        Ok(FlushReport::new(0, 0))
    }

    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        self.target.lock().unwrap().commits += 1;
        Ok(CommitReport::new("shared", 0, 0, Vec::new()))
    }

    async fn commit_part(self: Box<Self>) -> Result<CommitReport> {
        self.target.lock().unwrap().parts += 1;
        Ok(CommitReport::new("shared", 0, 0, Vec::new()))
    }
}

const PARTITIONS: usize = 8;
const BATCHES: usize = 6;
const ROWS: usize = 10;

fn source() -> MockSource {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Float32, false),
    ]));
    let partitions = (0..PARTITIONS)
        .map(|p| {
            (0..BATCHES)
                .map(|b| {
                    let first = ((p * BATCHES + b) * ROWS) as i64;
                    let ids: Vec<i64> = (first..first + ROWS as i64).collect();
                    let values: Vec<f32> = ids.iter().map(|&i| i as f32 * 0.5 - 3.25).collect();
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![
                            Arc::new(Int64Array::from(ids)),
                            Arc::new(Float32Array::from(values)),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    MockSource {
        schema,
        partitions,
        fail_at: None,
        target_partitions: Vec::new(),
    }
}

/// Every row the source has, as the target must hold it.
fn expected() -> Vec<(i64, u32)> {
    let mut all = Vec::new();
    for p in &source().partitions {
        for b in p {
            all.extend(SharedSink::rows(b));
        }
    }
    all.sort_unstable();
    all
}

fn identity(name: &str) -> (JobIdentity, JobFingerprint) {
    let fp = |v: serde_json::Value| JobFingerprint::of(&v);
    let job = fp(json!({"job": name}));
    (
        JobIdentity {
            name: name.to_string(),
            fingerprint: job.as_str().to_string(),
            source: fp(json!({"s": 1})).as_str().to_string(),
            transforms: fp(json!({"t": 1})).as_str().to_string(),
            sink: fp(json!({"k": 1})).as_str().to_string(),
            resolved: json!({}),
        },
        job,
    )
}

fn options() -> PipelineOptions {
    PipelineOptions {
        concurrency: std::num::NonZeroUsize::new(2).unwrap(),
        flush_rows: Some(20),
        ..PipelineOptions::default()
    }
}

/// One worker's pipeline on job `name`.
async fn worker(store: &StateStore, name: &str, sink: Box<dyn Sink>, lease: Duration) -> Pipeline {
    let (id, fingerprint) = identity(name);
    let run = store.start_run(&id, false).await.unwrap();
    let me = Arc::new(store.join(name, &run.id, lease).await.unwrap());
    Pipeline::new(Box::new(source()), sink)
        .with_options(options())
        .with_checkpoints(me.clone(), fingerprint)
        .with_leases(me)
}

async fn store(dir: &Path) -> StateStore {
    StateStore::open("sqlite://state.db", dir).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_write_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(Mutex::new(Target::default()));
    let mut runs = Vec::new();
    for _ in 0..3 {
        let store = store(dir.path()).await;
        let pipeline = worker(
            &store,
            "three",
            Box::new(SharedSink::new(&target)),
            Duration::from_secs(5),
        )
        .await;
        runs.push(tokio::spawn(pipeline.run(Arc::new(NoProgress))));
    }
    let mut partitions = 0;
    for run in runs {
        partitions += run.await.unwrap().unwrap().partitions;
    }
    assert_eq!(partitions, PARTITIONS);
    {
        let t = target.lock().unwrap();
        let mut rows = t.rows.clone();
        rows.sort_unstable();
        assert_eq!(rows, expected());
        assert_eq!((t.created, t.commits, t.parts), (1, 1, 2));
        assert_eq!(t.replayed_rows, 0);
    }
    let store = store(dir.path()).await;
    assert!(store
        .step_done("three", vmig_core::lease::Step::Finish)
        .await
        .unwrap());
    let saved = store.checkpoints("three").load().await.unwrap().unwrap();
    assert_eq!(saved.partitions().len(), PARTITIONS);
    let written: u64 = saved.progress().values().map(|p| p.rows_written).sum();
    assert_eq!(written, (PARTITIONS * BATCHES * ROWS) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_taken_over_with_replays_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(Mutex::new(Target::default()));
    let store = store(dir.path()).await;
    let lease = Duration::from_secs(1);
    // Worker A writes 9 batches (some flushed and checkpointed, some only sent), then hangs.
    let mut hanging = SharedSink::new(&target);
    hanging.stall_after = Some(9);
    let stalled = Arc::clone(&hanging.stalled);
    let a = worker(&store, "killed", Box::new(hanging), lease).await;
    let a = tokio::spawn(a.run(Arc::new(NoProgress)));
    stalled.notified().await;
    // Killed: nothing runs after this point in A, its leases are not released.
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    let before = target.lock().unwrap().rows.len();
    assert_eq!(before, 9 * ROWS);
    let held: Vec<String> = store
        .workers("killed")
        .await
        .unwrap()
        .iter()
        .flat_map(|w| w.holds.iter().map(|h| h.unit.clone()))
        .collect();
    assert!(!held.is_empty(), "{held:?}");

    // Worker B takes A's partitions over once their leases expire.
    let b = worker(&store, "killed", Box::new(SharedSink::new(&target)), lease).await;
    let report = tokio::time::timeout(Duration::from_secs(30), b.run(Arc::new(NoProgress)))
        .await
        .unwrap()
        .unwrap();
    // B read every partition A had not finished (A may have finished one before it hung).
    assert!(report.partitions >= PARTITIONS - 1, "{}", report.partitions);
    let saved = store.checkpoints("killed").load().await.unwrap().unwrap();
    assert_eq!(saved.partitions().len(), PARTITIONS);
    assert!(saved
        .partitions()
        .values()
        .all(|s| *s == vmig_core::checkpoint::PartitionState::Done));
    let t = target.lock().unwrap();
    let mut rows = t.rows.clone();
    rows.sort_unstable();
    let mut ids: BTreeMap<i64, usize> = BTreeMap::new();
    for (id, _) in &rows {
        *ids.entry(*id).or_default() += 1;
    }
    assert!(
        ids.values().all(|&n| n == 1),
        "duplicates: {:?}",
        ids.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    assert_eq!(rows, expected());
    // A's unflushed sends were replayed as upserts, at least one batch of them.
    assert!(t.replayed_rows >= ROWS, "{}", t.replayed_rows);
    assert_eq!((t.created, t.commits, t.parts), (1, 1, 0));
}

#[tokio::test]
async fn a_sink_that_cannot_share_a_job_is_refused_before_it_is_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let sink = MockSink::default();
    let state = Arc::clone(&sink.state);
    let pipeline = worker(&store, "refused", Box::new(sink), Duration::from_secs(5)).await;
    let e = pipeline.run(Arc::new(NoProgress)).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(
        text,
        "invalid `state` configuration: the `MockSink` sink cannot share a job between workers (its output is not safe to take over from a dead worker); run the job with one worker (no `[state] lease`, no `--worker`)"
    );
    assert!(matches!(e, Error::Config { .. }));
    let s = state.lock().unwrap();
    assert!(s.prepared.is_none() && !s.committed && !s.aborted && s.durable.is_empty());
}
