//! In-memory sources and sinks for pipeline tests.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use vmig_core::{
    CommitReport, Error, FlushReport, PartitionId, PartitionInfo, Position, Result, Sink, Source,
    SourceBatch, SourceContext, SourceStream,
};

/// A source serving fixed batches per partition; the position of a batch is its index.
#[derive(Debug, Clone)]
pub struct MockSource {
    /// The declared schema.
    pub schema: SchemaRef,
    /// Batches of each partition (partition ids are `"p0"`, `"p1"`, …).
    pub partitions: Vec<Vec<RecordBatch>>,
    /// Fail with a data error instead of yielding this (partition, batch).
    pub fail_at: Option<(usize, usize)>,
    /// The target partition of each partition, by index (missing entries are `None`).
    pub target_partitions: Vec<Option<String>>,
}

#[async_trait]
impl Source for MockSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionInfo {
                id: PartitionId::new(format!("p{i}")),
                estimated_rows: Some(p.iter().map(|b| b.num_rows() as u64).sum()),
                description: format!("{} batches", p.len()),
                target_partition: self.target_partitions.get(i).cloned().flatten(),
            })
            .collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        _ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let index: usize = partition
            .0
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .filter(|&n: &usize| n < self.partitions.len())
            .ok_or_else(|| Error::config("mock", format!("no partition {partition}")))?;
        let start = match resume_after {
            Some(p) => p.decode::<usize>()? + 1,
            None => 0,
        };
        let fail_at = self.fail_at;
        let items: Vec<Result<SourceBatch>> = self.partitions[index]
            .iter()
            .enumerate()
            .skip(start)
            .map(|(i, b)| {
                if fail_at == Some((index, i)) {
                    Err(Error::data(
                        format!("mock p{index} batch {i}"),
                        "injected failure",
                    ))
                } else {
                    Ok(SourceBatch::new(b.clone(), Position::encode(&i)?))
                }
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

/// What a [`MockSink`] has seen, shared with the test.
#[derive(Debug, Default)]
pub struct MockSinkState {
    /// Batches written but not yet flushed.
    pub pending: Vec<RecordBatch>,
    /// The target partition each pending batch was written to (parallel to `pending`).
    pub pending_partitions: Vec<Option<String>>,
    /// Batches made durable by a flush.
    pub durable: Vec<RecordBatch>,
    /// The target partition each durable batch was written to (parallel to `durable`).
    pub durable_partitions: Vec<Option<String>>,
    /// The schema given to `prepare`.
    pub prepared: Option<SchemaRef>,
    /// Number of flushes.
    pub flushes: usize,
    /// Whether `commit` ran.
    pub committed: bool,
    /// Whether `abort` ran.
    pub aborted: bool,
    /// Whether `suspend` ran.
    pub suspended: bool,
    /// The record `resume` was given, if it ran.
    pub resumed_from: Option<serde_json::Value>,
    /// Batches given to `write_replay` (they are in `pending`/`durable` too).
    pub replayed: Vec<RecordBatch>,
}

/// A sink that keeps batches in memory.
#[derive(Debug, Clone, Default)]
pub struct MockSink {
    /// Shared state to inspect after the run.
    pub state: Arc<Mutex<MockSinkState>>,
    /// Fail the n-th write (0-based).
    pub fail_on_write: Option<usize>,
    /// Answer of [`Sink::needs_sent_marks`]: writes count as durable at once (like a Milvus
    /// insert), so an interrupted run's unflushed rows may be in the target.
    pub sent_marks: bool,
    writes: usize,
}

impl MockSink {
    /// A sink failing on write number `n` (0-based).
    pub fn failing_on_write(n: usize) -> Self {
        MockSink {
            fail_on_write: Some(n),
            ..MockSink::default()
        }
    }

    /// A sink whose writes are durable at once ([`MockSink::sent_marks`]).
    pub fn with_sent_marks() -> Self {
        MockSink {
            sent_marks: true,
            ..MockSink::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MockSinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Sink for MockSink {
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        self.lock().prepared = Some(Arc::clone(schema));
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        let n = self.writes;
        self.writes += 1;
        if self.fail_on_write == Some(n) {
            return Err(Error::Transient {
                message: format!("injected failure on write {n}"),
                source: None,
            });
        }
        let mut s = self.lock();
        s.pending.push(batch);
        s.pending_partitions.push(partition.map(str::to_string));
        Ok(())
    }

    async fn write_replay(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        self.lock().replayed.push(batch.clone());
        self.write(batch, partition).await
    }

    fn needs_sent_marks(&self) -> bool {
        self.sent_marks
    }

    /// The number of flushes so far: the resumed sink gets it back in `resumed_from`.
    fn resume_record(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "flushes": self.lock().flushes }))
    }

    async fn resume(&mut self, record: serde_json::Value) -> Result<()> {
        self.lock().resumed_from = Some(record);
        Ok(())
    }

    async fn suspend(self: Box<Self>) -> Result<vmig_core::AbortReport> {
        self.lock().suspended = true;
        Ok(vmig_core::AbortReport::default())
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        let mut s = self.lock();
        let pending = std::mem::take(&mut s.pending);
        let rows = pending.iter().map(|b| b.num_rows() as u64).sum();
        s.durable.extend(pending);
        let partitions = std::mem::take(&mut s.pending_partitions);
        s.durable_partitions.extend(partitions);
        s.flushes += 1;
        Ok(FlushReport::new(rows, 0))
    }

    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        let mut s = self.lock();
        s.committed = true;
        let rows = s.durable.iter().map(|b| b.num_rows() as u64).sum();
        Ok(CommitReport::new("memory", rows, 0, Vec::new()))
    }

    async fn abort(self: Box<Self>) -> Result<vmig_core::AbortReport> {
        self.lock().aborted = true;
        Ok(vmig_core::AbortReport::default())
    }
}

/// A checkpoint store that "dies" at its `kill_at`-th save (1-based): that save and every later
/// one fail, as if the process had been killed just before the write. The file at `path` then
/// holds what a killed run leaves.
#[derive(Debug)]
pub struct DiesAt {
    inner: vmig_core::checkpoint::FileCheckpointStore,
    saves: std::sync::atomic::AtomicUsize,
    kill_at: usize,
}

impl DiesAt {
    /// A store in the file `path` that dies at save `kill_at`.
    pub fn new(path: impl Into<std::path::PathBuf>, kill_at: usize) -> DiesAt {
        DiesAt {
            inner: vmig_core::checkpoint::FileCheckpointStore::new(path),
            saves: std::sync::atomic::AtomicUsize::new(0),
            kill_at,
        }
    }
}

#[async_trait]
impl vmig_core::checkpoint::CheckpointStore for DiesAt {
    async fn load(&self) -> Result<Option<vmig_core::checkpoint::Checkpoint>> {
        self.inner.load().await
    }

    async fn save(&self, checkpoint: &vmig_core::checkpoint::Checkpoint) -> Result<()> {
        let n = self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n >= self.kill_at {
            return Err(vmig_core::Error::Cancelled);
        }
        self.inner.save(checkpoint).await
    }
}
