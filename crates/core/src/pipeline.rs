//! The runner: source partitions → transformers → sink, over bounded channels.
//!
//! ```text
//! partition readers (≤ concurrency at once, each a task in a JoinSet)
//!   open(partition, resume_after) → batch → transform chain ─┐
//!                                                            ├─ bounded mpsc ─▶ sink loop: write … flush
//!   …                                                        ┘                      │ after each flush Ok
//!                                                                                   ▼
//!                                                           checkpoint: last position per partition
//! ```
//!
//! * Memory is bounded: each reader holds at most one batch while it waits for channel space,
//!   and the channel holds at most `channel_capacity` batches.
//! * A reader's error, a transformer's error or a sink error stops everything: the other readers
//!   are cancelled, the sink is aborted, and the first error is returned with its context.
//! * Batches of one partition reach the sink in order, so the last position written for a
//!   partition is a valid resume point once the sink has flushed.
//! * Each batch goes to [`Sink::write`] with its source partition's
//!   [`PartitionInfo::target_partition`].

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batch::{PartitionId, Position};
use crate::checkpoint::{self, Checkpoint, CheckpointStore, JobFingerprint, PartitionState};
use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::source::{PartitionInfo, Source, SourceContext};
use crate::transform::Transformer;

/// Runner settings (`[pipeline]` in job files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineOptions {
    /// Preferred rows per batch.
    pub batch_rows: NonZeroUsize,
    /// Partitions read at the same time.
    pub concurrency: NonZeroUsize,
    /// Batches that may wait between the readers and the sink.
    pub channel_capacity: NonZeroUsize,
    /// Flush the sink (and save a checkpoint) after this many rows; `None` flushes only at the
    /// end. Sinks that close a file per flush make one file per interval.
    pub flush_rows: Option<u64>,
    /// Write at most this many rows per second on average (`None`: as fast as possible), to
    /// spare a source or target that serves production traffic.
    pub max_rows_per_second: Option<std::num::NonZeroU64>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_rows: NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN),
            concurrency: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            channel_capacity: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            flush_rows: None,
            max_rows_per_second: None,
        }
    }
}

/// Receives progress from a running pipeline (the CLI draws a progress bar with it).
pub trait Observer: Send + Sync {
    /// The job is about to read; `estimated_rows` is the sources' estimate when known.
    fn started(&self, _estimated_rows: Option<u64>) {}
    /// `rows` more rows were handed to the sink.
    fn written(&self, _rows: u64) {}
    /// A flush made rows durable.
    fn flushed(&self, _rows: u64) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Observer for NoProgress {}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Rows read from the source (before filters).
    pub rows_read: u64,
    /// Rows written to the sink.
    pub rows_written: u64,
    /// Bytes written, as the sink counts them.
    pub bytes_written: u64,
    /// Partitions read in this run.
    pub partitions: usize,
    /// Files or units the sink produced.
    pub files: Vec<String>,
    /// Where the data went.
    pub target: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A job's transformers with the schema planned after each ([`planned_schemas`]), shared by the
/// partition readers.
struct Chain {
    transforms: Arc<Vec<(String, Box<dyn Transformer>)>>,
    planned: Vec<SchemaRef>,
}

enum Msg {
    Batch {
        partition: usize,
        batch: RecordBatch,
        position: Position,
        rows_read: u64,
    },
    Done {
        partition: usize,
    },
}

/// Computes the schema after a chain of transformers.
///
/// # Errors
/// An [`Error::Config`] (the job file asks for something the schema lacks) naming the first
/// transformer that cannot accept its input, by position and plugin name.
pub fn output_schema(
    input: &SchemaRef,
    transforms: &[(String, Box<dyn Transformer>)],
) -> Result<SchemaRef> {
    Ok(planned_schemas(input, transforms)?
        .pop()
        .unwrap_or_else(|| Arc::clone(input)))
}

/// The schema planned after each transformer, in order: element `i` is what transformer `i`
/// (0-based) must produce. Each transformer's `output_schema` is called exactly once, so the
/// runner plans a job once and checks every batch against these schemas
/// ([`apply_transforms`]). Empty when there are no transformers.
///
/// # Errors
/// As [`output_schema`].
pub fn planned_schemas(
    input: &SchemaRef,
    transforms: &[(String, Box<dyn Transformer>)],
) -> Result<Vec<SchemaRef>> {
    let mut planned: Vec<SchemaRef> = Vec::with_capacity(transforms.len());
    for (i, (name, t)) in transforms.iter().enumerate() {
        let schema = planned.last().unwrap_or(input);
        // The job asked a transformer for something the source's schema does not have: the job
        // file is wrong, so this is a configuration error naming the transformer.
        let next = t.output_schema(schema).map_err(|e| {
            let message = match e.root() {
                Error::Schema(m) => m.clone(),
                Error::Config { message, .. } => message.clone(),
                _ => e.to_string(),
            };
            Error::config(name.as_str(), message)
                .context(format!("[[transform]] #{} (`{name}`)", i + 1))
        })?;
        planned.push(next);
    }
    Ok(planned)
}

/// Runs `batch` through `transforms` and checks each output against the schema planned for that
/// step (`planned`, from [`planned_schemas`] for the same transformers).
///
/// The check compares, field by field in order, names and data types; nullability only where
/// the plan declares a field non-nullable and the batch holds nulls in it. Field and schema
/// metadata are not compared: the sink is prepared with the planned schema and takes its
/// metadata from there. When a transformer returns the planned `SchemaRef` itself the check is
/// one pointer comparison.
///
/// # Errors
/// A transformer's own error, or an [`Error::Schema`] naming the transformer (position and
/// name), the field and both types when its output differs from its plan; both inside the
/// context `transform #N (`name`)`.
pub fn apply_transforms(
    mut batch: RecordBatch,
    transforms: &[(String, Box<dyn Transformer>)],
    planned: &[SchemaRef],
) -> Result<RecordBatch> {
    for (i, ((name, t), want)) in transforms.iter().zip(planned).enumerate() {
        let context = || format!("transform #{} (`{name}`)", i + 1);
        batch = t.transform(batch).map_err(|e| e.context(context()))?;
        check_planned(&batch, want).map_err(|e| e.context(context()))?;
    }
    Ok(batch)
}

/// Whether `batch` has the fields `planned` promises (see [`apply_transforms`]).
fn check_planned(batch: &RecordBatch, planned: &SchemaRef) -> Result<()> {
    let got = batch.schema_ref();
    if Arc::ptr_eq(got, planned) {
        return Ok(());
    }
    let names = |s: &SchemaRef| {
        s.fields()
            .iter()
            .map(|f| format!("`{}`", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if got.fields().len() != planned.fields().len() {
        return Err(Error::schema(format!(
            "produced the fields {} but planned {}",
            names(got),
            names(planned)
        )));
    }
    for (i, (g, p)) in got.fields().iter().zip(planned.fields()).enumerate() {
        if g.name() != p.name() {
            return Err(Error::schema(format!(
                "produced field `{}` where the plan has `{}` (fields: {} but planned {})",
                g.name(),
                p.name(),
                names(got),
                names(planned)
            )));
        }
        if g.data_type() != p.data_type() {
            return Err(Error::schema(format!(
                "produced field `{}` as {} but planned {}",
                g.name(),
                g.data_type(),
                p.data_type()
            )));
        }
        let column = batch.column(i);
        if !p.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0);
            return Err(Error::schema(format!(
                "produced a null in field `{}` (row {row} of the batch), which the plan declares non-nullable",
                g.name()
            )));
        }
    }
    Ok(())
}

/// One run of a source into a sink.
#[derive(Debug)]
pub struct Pipeline {
    source: Arc<dyn Source>,
    transforms: Arc<Vec<(String, Box<dyn Transformer>)>>,
    sink: Box<dyn Sink>,
    options: PipelineOptions,
    checkpoints: Option<(Arc<dyn CheckpointStore>, JobFingerprint)>,
    cancel: CancellationToken,
}

impl Pipeline {
    /// A pipeline with default options, no checkpointing and no transformers.
    pub fn new(source: Box<dyn Source>, sink: Box<dyn Sink>) -> Self {
        Pipeline {
            source: Arc::from(source),
            transforms: Arc::new(Vec::new()),
            sink,
            options: PipelineOptions::default(),
            checkpoints: None,
            cancel: CancellationToken::new(),
        }
    }

    /// Sets the transformers, applied in order.
    #[must_use]
    pub fn with_transforms(mut self, transforms: Vec<(String, Box<dyn Transformer>)>) -> Self {
        self.transforms = Arc::new(transforms);
        self
    }

    /// Sets the runner options.
    #[must_use]
    pub fn with_options(mut self, options: PipelineOptions) -> Self {
        self.options = options;
        self
    }

    /// Resumes from the checkpoint in `store` and saves progress there after every flush.
    ///
    /// `job` identifies this job ([`crate::config::Job::fingerprint`]). The run first loads
    /// the store ([`checkpoint::resume`]): with no checkpoint it starts fresh; with one saved by
    /// this job, partitions marked done are skipped and the others resume after their saved
    /// position; a checkpoint of another job fails the run before the sink is prepared, so
    /// nothing is written.
    #[must_use]
    pub fn with_checkpoints(
        mut self,
        store: Arc<dyn CheckpointStore>,
        job: JobFingerprint,
    ) -> Self {
        self.checkpoints = Some((store, job));
        self
    }

    /// A token that stops the run when cancelled: the run then fails with [`Error::Cancelled`]
    /// (inside [`Error::Stopped`] when the sink reports what it left) and the sink is aborted
    /// instead of committed — also when the token is cancelled during the final flush.
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Runs to completion.
    ///
    /// # Errors
    /// The first error of any stage, with context; the sink has been aborted by then.
    pub async fn run(self, observer: Arc<dyn Observer>) -> Result<RunReport> {
        let started = Instant::now();
        let checkpoints = match self.checkpoints {
            Some((store, job)) => {
                let resume = checkpoint::resume(store.as_ref(), &job).await?;
                Some((store, resume))
            }
            None => None,
        };
        let source_schema = self.source.schema();
        let planned = planned_schemas(&source_schema, &self.transforms)?;
        let target_schema = planned.last().cloned().unwrap_or(source_schema);
        let chain = Arc::new(Chain {
            transforms: Arc::clone(&self.transforms),
            planned,
        });
        let partitions = self.source.partitions().await?;
        let cancel = self.cancel.child_token();
        let mut sink = self.sink;

        let result = run_inner(
            &self.source,
            &chain,
            &mut sink,
            &self.options,
            checkpoints,
            &partitions,
            &target_schema,
            &cancel,
            observer.as_ref(),
        )
        .await;
        cancel.cancel();
        self.source.end_of_job();
        // A stop asked for while the last batches were flushed is honoured: nothing is committed.
        let result = match result {
            Ok(_) if self.cancel.is_cancelled() => Err(Error::Cancelled),
            other => other,
        };
        match result {
            Ok(mut report) => {
                let commit = sink
                    .commit()
                    .await
                    .map_err(|e| e.context("committing the sink"))?;
                report.files = commit.files;
                report.target = commit.target;
                report.bytes_written = report.bytes_written.max(commit.bytes);
                report.seconds = started.elapsed().as_secs_f64();
                Ok(report)
            }
            Err(e) => match sink.abort().await {
                Ok(left) if left.left.is_empty() => Err(e),
                Ok(left) => Err(Error::Stopped {
                    error: Box::new(e),
                    left: left.left,
                }),
                Err(abort) => Err(Error::Stopped {
                    error: Box::new(e),
                    left: vec![format!(
                        "Cleaning up after the failure failed too, so files or rows of this run may remain: {abort}."
                    )],
                }),
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    source: &Arc<dyn Source>,
    chain: &Arc<Chain>,
    sink: &mut Box<dyn Sink>,
    options: &PipelineOptions,
    checkpoints: Option<(Arc<dyn CheckpointStore>, Checkpoint)>,
    partitions: &[PartitionInfo],
    target_schema: &SchemaRef,
    cancel: &CancellationToken,
    observer: &dyn Observer,
) -> Result<RunReport> {
    let (store, mut checkpoint) = match checkpoints {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let resume_state = |id: &PartitionId| {
        checkpoint
            .as_ref()
            .and_then(|c| c.partitions().get(id).cloned())
    };

    let estimated: Option<u64> = partitions
        .iter()
        .filter(|p| resume_state(&p.id).is_none())
        .map(|p| p.estimated_rows)
        .sum();
    observer.started(estimated);

    sink.prepare(target_schema)
        .await
        .map_err(|e| e.context("preparing the sink"))?;

    let (tx, mut rx) = mpsc::channel::<Msg>(options.channel_capacity.get());
    let permits = Arc::new(Semaphore::new(options.concurrency.get()));
    let ctx = SourceContext {
        batch_rows: options.batch_rows,
        cancel: cancel.clone(),
    };
    let mut readers: JoinSet<Result<()>> = JoinSet::new();
    let mut opened = 0usize;
    for (index, info) in partitions.iter().enumerate() {
        let resume_after = match resume_state(&info.id) {
            Some(PartitionState::Done) => continue,
            Some(PartitionState::InProgress { after }) => Some(after),
            None => None,
        };
        opened += 1;
        let source = Arc::clone(source);
        let chain = Arc::clone(chain);
        let tx = tx.clone();
        let permits = Arc::clone(&permits);
        let ctx = ctx.clone();
        let id = info.id.clone();
        readers.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| Error::Cancelled)?;
            read_partition(source.as_ref(), &chain, index, &id, resume_after, &ctx, &tx)
                .await
                .map_err(|e| e.context(format!("reading partition {id}")))
        });
    }
    drop(tx);

    let mut last_position: BTreeMap<usize, Position> = BTreeMap::new();
    let mut finished: Vec<usize> = Vec::new();
    let mut report = RunReport {
        partitions: opened,
        ..RunReport::default()
    };
    let mut unflushed = 0u64;
    let throttle = options
        .max_rows_per_second
        .map(|r| (Instant::now(), r.get()));

    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            Some(joined) = readers.join_next() => match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(join) if join.is_panic() => {
                    return Err(Error::External(format!("a partition reader panicked: {join}").into()))
                }
                Err(_) => return Err(Error::Cancelled),
            },
            msg = rx.recv() => match msg {
                Some(Msg::Batch { partition, batch, position, rows_read }) => {
                    report.rows_read += rows_read;
                    let rows = batch.num_rows() as u64;
                    if rows > 0 {
                        let target = partitions[partition].target_partition.as_deref();
                        sink.write(batch, target).await.map_err(|e| e.context("writing to the sink"))?;
                        report.rows_written += rows;
                        unflushed += rows;
                        observer.written(rows);
                        if let Some((since, per_second)) = throttle {
                            pace(since, report.rows_written, per_second, cancel).await?;
                        }
                    }
                    last_position.insert(partition, position);
                    if options.flush_rows.is_some_and(|n| unflushed >= n) {
                        flush(sink, &mut report, &mut unflushed, observer).await?;
                        save(&store, &mut checkpoint, partitions, &last_position, &finished).await?;
                    }
                }
                Some(Msg::Done { partition }) => finished.push(partition),
                None => break,
            },
        }
    }
    // Every sender is gone; surface any reader error that raced with the channel closing.
    while let Some(joined) = readers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(join) => {
                return Err(Error::External(
                    format!("a partition reader failed: {join}").into(),
                ))
            }
        }
    }
    flush(sink, &mut report, &mut unflushed, observer).await?;
    save(
        &store,
        &mut checkpoint,
        partitions,
        &last_position,
        &finished,
    )
    .await?;
    Ok(report)
}

/// Sleeps until `rows` rows are due at `per_second` rows per second since `since`.
async fn pace(
    since: Instant,
    rows: u64,
    per_second: u64,
    cancel: &CancellationToken,
) -> Result<()> {
    let due = since + std::time::Duration::from_secs_f64(rows as f64 / per_second as f64);
    tokio::select! {
        () = cancel.cancelled() => Err(Error::Cancelled),
        () = tokio::time::sleep_until(due.into()) => Ok(()),
    }
}

async fn flush(
    sink: &mut Box<dyn Sink>,
    report: &mut RunReport,
    unflushed: &mut u64,
    observer: &dyn Observer,
) -> Result<()> {
    let flushed = sink
        .flush()
        .await
        .map_err(|e| e.context("flushing the sink"))?;
    report.bytes_written += flushed.bytes;
    observer.flushed(*unflushed);
    *unflushed = 0;
    Ok(())
}

async fn save(
    store: &Option<Arc<dyn CheckpointStore>>,
    checkpoint: &mut Option<Checkpoint>,
    partitions: &[PartitionInfo],
    last_position: &BTreeMap<usize, Position>,
    finished: &[usize],
) -> Result<()> {
    let (Some(store), Some(checkpoint)) = (store, checkpoint) else {
        return Ok(());
    };
    let states = checkpoint.partitions_mut();
    for (&i, pos) in last_position {
        states.insert(
            partitions[i].id.clone(),
            PartitionState::InProgress { after: pos.clone() },
        );
    }
    for &i in finished {
        states.insert(partitions[i].id.clone(), PartitionState::Done);
    }
    store
        .save(checkpoint)
        .await
        .map_err(|e| e.context("saving the checkpoint"))
}

async fn read_partition(
    source: &dyn Source,
    chain: &Chain,
    index: usize,
    id: &PartitionId,
    resume_after: Option<Position>,
    ctx: &SourceContext,
    tx: &mpsc::Sender<Msg>,
) -> Result<()> {
    let schema = source.schema();
    let mut stream = source.open(id, resume_after.as_ref(), ctx)?;
    loop {
        let next = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Error::Cancelled),
            next = stream.next() => next,
        };
        let Some(item) = next else { break };
        let item = item?;
        if !Arc::ptr_eq(item.batch.schema_ref(), &schema) && item.batch.schema_ref() != &schema {
            return Err(Error::schema(format!(
                "the source yielded a batch whose schema differs from the one it declared: {:?} vs {:?}",
                item.batch.schema(),
                schema
            )));
        }
        let rows_read = item.batch.num_rows() as u64;
        let batch = apply_transforms(item.batch, &chain.transforms, &chain.planned)?;
        let msg = Msg::Batch {
            partition: index,
            batch,
            position: item.position,
            rows_read,
        };
        if tx.send(msg).await.is_err() {
            return Ok(()); // the sink loop stopped; its error is reported there
        }
    }
    let _ = tx.send(Msg::Done { partition: index }).await;
    Ok(())
}
