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
use std::time::{Duration, Instant};

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batch::{PartitionId, Position};
use crate::checkpoint::{
    self, Checkpoint, CheckpointStore, JobFingerprint, PartitionProgress, PartitionState,
};
use crate::error::{Error, Result};
use crate::lease::{self, Claim, Leases, Step, StepClaim};
use crate::sink::Sink;
use crate::source::{PartitionInfo, Source, SourceContext};
use crate::transform::Transformer;

/// The context of a [`Sink::check`] refusal, the same in `vmig plan` and `vmig migrate`.
pub const CHECKING_THE_SINK: &str = "the sink cannot write the planned schema";

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
    /// When the job saves checkpoints: flush and save at least this often (`"30s"`, `"5m"`),
    /// whatever `flush_rows` says, so that a killed run loses at most about this much work.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_rows: NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN),
            concurrency: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            channel_capacity: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            flush_rows: None,
            max_rows_per_second: None,
            checkpoint_interval: Duration::from_secs(30),
        }
    }
}

/// Receives progress from a running pipeline (the CLI draws a progress bar with it).
pub trait Observer: Send + Sync {
    /// The job continues an interrupted run; called before [`Observer::started`].
    fn resumed(&self, _from: &Resumed) {}
    /// The job is about to read; `estimated_rows` is the sources' estimate when known (of the
    /// partitions still to read, when resuming).
    fn started(&self, _estimated_rows: Option<u64>) {}
    /// `rows` more rows were handed to the sink.
    fn written(&self, _rows: u64) {}
    /// A flush made rows durable.
    fn flushed(&self, _rows: u64) {}
    /// The source's partitions, before [`Observer::started`]; `done[i]` says partition `i` was
    /// finished by an earlier run and is not read again. The other partition calls name a
    /// partition by its index in this list.
    fn partitions(&self, _partitions: &[PartitionInfo], _done: &[bool]) {}
    /// One batch of partition `index` went to the sink: `rows_read` source rows (before
    /// filters) became `rows` rows of `bytes` bytes (Arrow's size of their values). Called
    /// before [`Observer::written`], also for a batch the filters emptied.
    fn partition_written(&self, _index: usize, _rows_read: u64, _rows: u64, _bytes: u64) {}
    /// Partition `index` was read to its end (its last rows are durable at the next flush).
    fn partition_read(&self, _index: usize) {}
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
    /// Where the run started from, when it continued an interrupted run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Resumed>,
}

/// Where a resumed run started: what the interrupted runs had made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resumed {
    /// Partitions of the source.
    pub partitions: usize,
    /// Partitions already complete.
    pub partitions_done: usize,
    /// Partitions resumed after a saved position.
    pub partitions_in_progress: usize,
    /// Rows the earlier runs had made durable (after filters).
    pub rows_written: u64,
    /// Source rows that may already be in the target and are sent again as replays.
    pub rows_replayed: u64,
}

impl Resumed {
    /// What `checkpoint` says about a source with `partitions`.
    pub fn of(checkpoint: &Checkpoint, partitions: &[PartitionInfo]) -> Resumed {
        let mut out = Resumed {
            partitions: partitions.len(),
            ..Resumed::default()
        };
        for p in partitions {
            match checkpoint.partitions().get(&p.id) {
                Some(PartitionState::Done) => out.partitions_done += 1,
                Some(PartitionState::InProgress { .. }) => out.partitions_in_progress += 1,
                None => {}
            }
            if let Some(progress) = checkpoint.progress().get(&p.id) {
                out.rows_written += progress.rows_written;
                out.rows_replayed += progress.unconfirmed;
            }
        }
        out
    }
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
    /// A worker of a shared job claimed a partition (sent before its batches): its saved
    /// state and counts, as the store holds them now.
    Claimed {
        partition: usize,
        state: Option<PartitionState>,
        progress: PartitionProgress,
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
    leases: Option<Arc<dyn Leases>>,
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
            leases: None,
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

    /// Makes this run one worker of a job shared between workers ([`crate::lease`]): it claims
    /// each partition with a lease before reading it, renews its leases while it works, stops
    /// when it loses one, and takes over partitions whose worker died (resuming them after
    /// their last saved position and replaying their unconfirmed window). The job's once-only
    /// steps are run by the worker that claims them: setting the target up before anyone
    /// writes, and [`Sink::commit`] after the last partition; the other workers end with
    /// [`Sink::commit_part`].
    ///
    /// Needs [`Pipeline::with_checkpoints`] with this worker's store (which saves only the
    /// partitions it holds) and a sink that [`Sink::shares_jobs`].
    #[must_use]
    pub fn with_leases(mut self, leases: Arc<dyn Leases>) -> Self {
        self.leases = Some(leases);
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
    /// With checkpoints ([`Pipeline::with_checkpoints`]) a saved checkpoint of this job is
    /// resumed: the sink continues its run ([`Sink::resume`]), finished partitions are skipped,
    /// the others reopen after their saved position, and rows that may already be in the target
    /// are replayed ([`Sink::write_replay`]). A failed or stopped run then leaves the sink
    /// suspended ([`Sink::suspend`]) rather than aborted, so the next run can resume it.
    ///
    /// # Errors
    /// The first error of any stage, with context; the sink has been aborted (or suspended) by
    /// then.
    pub async fn run(self, observer: Arc<dyn Observer>) -> Result<RunReport> {
        let started = Instant::now();
        if self.leases.is_some() {
            check_shared(self.checkpoints.is_some(), self.sink.as_ref())?;
        }
        let checkpoints = match self.checkpoints {
            Some((store, job)) => {
                let mut resume = checkpoint::resume(store.as_ref(), &job).await?;
                if self.leases.is_some() {
                    // A worker's checkpoint is its slice: the partitions it claims.
                    resume = Checkpoint::new(resume.job());
                }
                Some((store, resume))
            }
            None => None,
        };
        let resumable = checkpoints.is_some();
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

        if let Some(leases) = &self.leases {
            let ids: Vec<PartitionId> = partitions.iter().map(|p| p.id.clone()).collect();
            leases.register(&ids).await?;
        }
        let mut run = Run::new(
            &partitions,
            checkpoints,
            &self.options,
            sink.needs_sent_marks(),
        );
        run.leases = self.leases.clone();
        let result = run
            .go(
                &self.source,
                &chain,
                &mut sink,
                &target_schema,
                &cancel,
                observer.as_ref(),
            )
            .await;
        cancel.cancel();
        self.source.end_of_job();
        // A stop asked for while the last batches were flushed is honoured: nothing is committed.
        let result = match result {
            Ok(()) if self.cancel.is_cancelled() => Err(Error::Cancelled),
            other => other,
        };
        let mut report = run.report;
        match result {
            Ok(()) => {
                let commit = match &self.leases {
                    None => sink
                        .commit()
                        .await
                        .map_err(|e| e.context("committing the sink"))?,
                    Some(leases) => finish_shared(sink, leases.as_ref(), &self.cancel).await?,
                };
                report.files = commit.files;
                report.target = commit.target;
                report.bytes_written = report.bytes_written.max(commit.bytes);
                report.seconds = started.elapsed().as_secs_f64();
                Ok(report)
            }
            Err(e) => {
                let left = if resumable {
                    sink.suspend().await
                } else {
                    sink.abort().await
                };
                match left {
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
                }
            }
        }
    }
}

/// Counts of one partition since the last save.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    rows_read: u64,
    rows_written: u64,
    bytes_written: u64,
}

/// The state of one run of the sink loop: report, positions and checkpoint bookkeeping.
struct Run<'a> {
    partitions: &'a [PartitionInfo],
    options: &'a PipelineOptions,
    store: Option<Arc<dyn CheckpointStore>>,
    checkpoint: Option<Checkpoint>,
    /// Record what was sent before each write ([`Sink::needs_sent_marks`]).
    sent_marks: bool,
    report: RunReport,
    /// Last position handed to the sink, per partition index.
    last_position: BTreeMap<usize, Position>,
    /// Counts since the last save, per partition index.
    pending: BTreeMap<usize, Pending>,
    /// Partitions whose every row was handed to the sink.
    finished: Vec<usize>,
    /// Source rows still to replay, per partition index (from the loaded checkpoint).
    replay_left: BTreeMap<usize, u64>,
    /// `replay_left` as of the last save: the window the saved checkpoint names.
    replay_saved: BTreeMap<usize, u64>,
    unflushed: u64,
    last_save: Instant,
    /// This worker's leases, when the job is shared between workers.
    leases: Option<Arc<dyn Leases>>,
}

impl<'a> Run<'a> {
    fn new(
        partitions: &'a [PartitionInfo],
        checkpoints: Option<(Arc<dyn CheckpointStore>, Checkpoint)>,
        options: &'a PipelineOptions,
        sent_marks: bool,
    ) -> Self {
        let (store, checkpoint) = match checkpoints {
            Some((s, c)) => (Some(s), Some(c)),
            None => (None, None),
        };
        let mut replay_left = BTreeMap::new();
        let mut resumed = None;
        if let Some(c) = checkpoint.as_ref().filter(|c| !c.is_empty()) {
            for (i, p) in partitions.iter().enumerate() {
                match c.progress().get(&p.id) {
                    Some(progress) if progress.unconfirmed > 0 => {
                        replay_left.insert(i, progress.unconfirmed);
                    }
                    _ => {}
                }
            }
            resumed = Some(Resumed::of(c, partitions));
        }
        Run {
            partitions,
            options,
            store,
            checkpoint,
            sent_marks,
            report: RunReport {
                resumed,
                ..RunReport::default()
            },
            last_position: BTreeMap::new(),
            pending: BTreeMap::new(),
            finished: Vec::new(),
            replay_saved: replay_left.clone(),
            replay_left,
            unflushed: 0,
            last_save: Instant::now(),
            leases: None,
        }
    }

    /// A worker of a shared job claimed `partition`: its saved state and counts join this
    /// worker's slice, and its unconfirmed window is replayed.
    fn claimed(
        &mut self,
        partition: usize,
        state: Option<PartitionState>,
        progress: PartitionProgress,
    ) {
        self.report.partitions += 1;
        let Some(checkpoint) = self.checkpoint.as_mut() else {
            return;
        };
        let id = self.partitions[partition].id.clone();
        if let Some(state) = state {
            checkpoint.partitions_mut().insert(id.clone(), state);
        }
        checkpoint.progress_mut().insert(id, progress);
        if progress.unconfirmed > 0 {
            self.replay_left.insert(partition, progress.unconfirmed);
            self.replay_saved.insert(partition, progress.unconfirmed);
        }
    }

    fn saved_state(&self, id: &PartitionId) -> Option<PartitionState> {
        self.checkpoint
            .as_ref()
            .and_then(|c| c.partitions().get(id).cloned())
    }

    async fn go(
        &mut self,
        source: &Arc<dyn Source>,
        chain: &Arc<Chain>,
        sink: &mut Box<dyn Sink>,
        target_schema: &SchemaRef,
        cancel: &CancellationToken,
        observer: &dyn Observer,
    ) -> Result<()> {
        let partitions = self.partitions;
        let estimated: Option<u64> = if self.leases.is_some() {
            None
        } else {
            partitions
                .iter()
                .filter(|p| self.saved_state(&p.id).is_none())
                .map(|p| p.estimated_rows)
                .sum()
        };
        if let Some(resumed) = &self.report.resumed {
            observer.resumed(resumed);
        }
        let done: Vec<bool> = partitions
            .iter()
            .map(|p| matches!(self.saved_state(&p.id), Some(PartitionState::Done)))
            .collect();
        observer.partitions(partitions, &done);
        observer.started(estimated);

        sink.check(target_schema)
            .map_err(|e| e.context(CHECKING_THE_SINK))?;
        if let Some(leases) = &self.leases {
            set_up_shared(sink, target_schema, leases.as_ref(), cancel).await?;
        } else {
            if let Some(c) = self.checkpoint.as_ref().filter(|c| !c.is_empty()) {
                let record = c.sink().cloned().unwrap_or(serde_json::Value::Null);
                sink.resume(record)
                    .await
                    .map_err(|e| e.context("resuming the sink"))?;
            }
            sink.prepare(target_schema)
                .await
                .map_err(|e| e.context("preparing the sink"))?;
            self.save_intent(sink.resume_record()).await?;
        }

        let (tx, mut rx) = mpsc::channel::<Msg>(self.options.channel_capacity.get());
        let permits = Arc::new(Semaphore::new(self.options.concurrency.get()));
        let ctx = SourceContext {
            batch_rows: self.options.batch_rows,
            cancel: cancel.clone(),
        };
        let mut readers: JoinSet<Result<()>> = JoinSet::new();
        let mut opened = 0usize;
        let lost = CancellationToken::new();
        let lost_why: Arc<std::sync::Mutex<Option<Error>>> = Arc::default();
        let mut _renewer = None;
        if let Some(leases) = &self.leases {
            for _ in 0..self.options.concurrency.get() {
                let claimer = Claimer {
                    leases: Arc::clone(leases),
                    partitions: Arc::new(partitions.to_vec()),
                    source: Arc::clone(source),
                    chain: Arc::clone(chain),
                    ctx: ctx.clone(),
                    tx: tx.clone(),
                };
                readers.spawn(claimer.run());
            }
            _renewer = Some(crate::source::AbortOnDrop::spawn(renew_leases(
                Arc::clone(leases),
                lost.clone(),
                Arc::clone(&lost_why),
            )));
        }
        let shared = self.leases.is_some();
        for (index, info) in partitions.iter().enumerate().filter(|_| !shared) {
            let resume_after = match self.saved_state(&info.id) {
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
        self.report.partitions = opened;
        self.last_save = Instant::now();
        let throttle = self
            .options
            .max_rows_per_second
            .map(|r| (Instant::now(), r.get()));

        let stopped = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Err(Error::Cancelled),
                () = lost.cancelled() => {
                    let why = lost_why.lock().ok().and_then(|mut w| w.take());
                    break Err(why.unwrap_or(Error::Cancelled));
                }
                Some(joined) = readers.join_next() => match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Err(e),
                    Err(join) if join.is_panic() => {
                        break Err(Error::External(format!("a partition reader panicked: {join}").into()))
                    }
                    Err(_) => break Err(Error::Cancelled),
                },
                msg = rx.recv() => match msg {
                    Some(Msg::Batch { partition, batch, position, rows_read }) => {
                        self.write(sink, partition, batch, rows_read, observer).await?;
                        self.last_position.insert(partition, position);
                        // A stop during the pause takes the stop path below, which saves
                        // what the sink accepted (a throttled run is nearly always pausing).
                        if let Some((since, per_second)) = throttle {
                            let rows = self.report.rows_written;
                            if let Err(e) = pace(since, rows, per_second, cancel).await {
                                break Err(e);
                            }
                        }
                        let due = self.options.flush_rows.is_some_and(|n| self.unflushed >= n)
                            || (self.store.is_some()
                                && self.last_save.elapsed() >= self.options.checkpoint_interval);
                        if due {
                            self.flush_and_save(sink, observer).await?;
                        }
                    }
                    Some(Msg::Done { partition }) => {
                        self.finished.push(partition);
                        observer.partition_read(partition);
                        if self.leases.is_some() {
                            // Other workers wait for the partitions this one holds: say at once
                            // that this one is done.
                            self.flush_and_save(sink, observer).await?;
                        }
                    }
                    Some(Msg::Claimed { partition, state, progress }) => {
                        self.claimed(partition, state, progress);
                    }
                    None => break Ok(()),
                },
            }
        };
        if let Err(e) = stopped {
            // Stopped by a signal or a failed reader: every batch the sink accepted is complete
            // up to its partition's last position, so a checkpointed job keeps it for the next
            // run. (A failing sink returned from `write` above and is not flushed again.)
            readers.abort_all();
            let lease_lost = matches!(e.root(), Error::LeaseLost { .. });
            if self.store.is_some() && !lease_lost {
                if let Err(flush) = self.flush_and_save(sink, observer).await {
                    tracing::warn!(
                        "could not save the progress made since the last checkpoint ({flush}); the next run resumes from the one before"
                    );
                }
            }
            if let Some(leases) = &self.leases {
                if let Err(release) = leases.release_all().await {
                    tracing::warn!(
                        "could not give up this worker's leases ({release}); other workers take its partitions over when the leases expire"
                    );
                }
            }
            return Err(e);
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
        if self.leases.is_some() && self.unflushed == 0 && self.pending.is_empty() {
            // A worker of a shared job flushed and saved at the end of each of its partitions.
            // Once the last is saved done, another worker may be finishing the job with this
            // worker's record; a flush now could act on what that record names (import the
            // files it lists as staged) at the same time.
            return Ok(());
        }
        self.flush_and_save(sink, observer).await
    }

    /// Hands one batch to the sink: as a replay while the partition is inside the window an
    /// interrupted run may have written, after recording the sent mark when the sink needs one.
    async fn write(
        &mut self,
        sink: &mut Box<dyn Sink>,
        partition: usize,
        batch: RecordBatch,
        rows_read: u64,
        observer: &dyn Observer,
    ) -> Result<()> {
        self.report.rows_read += rows_read;
        let rows = batch.num_rows() as u64;
        let bytes = data_bytes(&batch);
        let pending = self.pending.entry(partition).or_default();
        pending.rows_read += rows_read;
        pending.rows_written += rows;
        pending.bytes_written += bytes;
        observer.partition_written(partition, rows_read, rows, bytes);
        let sent = pending.rows_read;
        let replay = self.replay_left.get(&partition).copied().unwrap_or(0) > 0;
        if let Some(left) = self.replay_left.get_mut(&partition) {
            *left = left.saturating_sub(rows_read);
        }
        if rows == 0 {
            return Ok(());
        }
        if let Some(leases) = &self.leases {
            check_held(leases.as_ref())?;
        }
        if self.sent_marks {
            self.mark_sent(partition, sent).await?;
        }
        let target = self.partitions[partition].target_partition.as_deref();
        let written = if replay {
            sink.write_replay(batch, target).await
        } else {
            sink.write(batch, target).await
        };
        written.map_err(|e| e.context("writing to the sink"))?;
        self.report.rows_written += rows;
        self.unflushed += rows;
        observer.written(rows);
        Ok(())
    }

    /// Saves the sink's record as `prepare` left it (`record`), before any row is written, when the
    /// checkpoint has none yet: what the sink is about to create (a collection, a run's staging
    /// or output directory) is then known to the next run, which resumes into it, or removes it
    /// on `--restart`, even when this run is killed before its first flush.
    async fn save_intent(&mut self, record: Option<serde_json::Value>) -> Result<()> {
        let (Some(store), Some(checkpoint), Some(record)) =
            (&self.store, &mut self.checkpoint, record)
        else {
            return Ok(());
        };
        if checkpoint.sink().is_some() {
            return Ok(());
        }
        checkpoint.set_sink(Some(record));
        store
            .save(checkpoint)
            .await
            .map_err(|e| e.context("saving the sink's record before the first write"))
    }

    /// Saves that `sent` source rows after partition `partition`'s saved position may be in the
    /// target from now on.
    async fn mark_sent(&mut self, partition: usize, sent: u64) -> Result<()> {
        let (Some(store), Some(checkpoint)) = (&self.store, &mut self.checkpoint) else {
            return Ok(());
        };
        let id = self.partitions[partition].id.clone();
        let window = sent.max(self.replay_saved.get(&partition).copied().unwrap_or(0));
        let progress = checkpoint.progress_mut().entry(id).or_default();
        if progress.unconfirmed >= window {
            return Ok(());
        }
        progress.unconfirmed = window;
        store
            .save(checkpoint)
            .await
            .map_err(|e| e.context("saving how far rows were sent"))
    }

    /// Flushes the sink, then saves the positions, counts and sink record the flush made true.
    async fn flush_and_save(
        &mut self,
        sink: &mut Box<dyn Sink>,
        observer: &dyn Observer,
    ) -> Result<()> {
        let flushed = sink
            .flush()
            .await
            .map_err(|e| e.context("flushing the sink"))?;
        self.report.bytes_written += flushed.bytes;
        observer.flushed(self.unflushed);
        self.unflushed = 0;
        self.last_save = Instant::now();
        let record = sink.resume_record();
        let (Some(store), Some(checkpoint)) = (&self.store, &mut self.checkpoint) else {
            self.pending.clear();
            return Ok(());
        };
        for (&i, pos) in &self.last_position {
            checkpoint.partitions_mut().insert(
                self.partitions[i].id.clone(),
                PartitionState::InProgress { after: pos.clone() },
            );
        }
        for &i in &self.finished {
            checkpoint
                .partitions_mut()
                .insert(self.partitions[i].id.clone(), PartitionState::Done);
        }
        let touched: std::collections::BTreeSet<usize> = self
            .pending
            .keys()
            .chain(self.replay_saved.keys())
            .copied()
            .collect();
        for i in touched {
            let pending = self.pending.get(&i).copied().unwrap_or_default();
            let progress: &mut PartitionProgress = checkpoint
                .progress_mut()
                .entry(self.partitions[i].id.clone())
                .or_default();
            progress.rows_read += pending.rows_read;
            progress.rows_written += pending.rows_written;
            progress.bytes_written += pending.bytes_written;
            progress.unconfirmed = self.replay_left.get(&i).copied().unwrap_or(0);
        }
        checkpoint.set_sink(record);
        store
            .save(checkpoint)
            .await
            .map_err(|e| e.context("saving the checkpoint"))?;
        self.pending.clear();
        self.replay_saved = self.replay_left.clone();
        Ok(())
    }
}

/// The bytes of `batch`'s values as Arrow holds them: for each column, the part of its buffers
/// the rows use (a slice counts only its own rows), validity bitmaps included.
pub fn data_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            data.get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
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

/// Refuses a shared job that the runner cannot run safely: without this worker's checkpoint
/// store, or into a sink that cannot take rows from several workers.
fn check_shared(has_store: bool, sink: &dyn Sink) -> Result<()> {
    if !has_store {
        return Err(Error::config(
            "state",
            "a job shared between workers needs a state store (Pipeline::with_checkpoints)",
        ));
    }
    if !sink.shares_jobs() {
        return Err(lease::unshared_sink(sink.name()));
    }
    Ok(())
}

/// Sleeps `how_long` unless `cancel` fires first.
async fn nap(how_long: Duration, cancel: &CancellationToken) -> Result<()> {
    tokio::select! {
        () = cancel.cancelled() => Err(Error::Cancelled),
        () = tokio::time::sleep(how_long) => Ok(()),
    }
}

/// Prepares the sink of one worker of a shared job: the worker that claims [`Step::Setup`]
/// prepares the target for all and publishes its record; the others wait for that and
/// continue from the record.
async fn set_up_shared(
    sink: &mut Box<dyn Sink>,
    schema: &SchemaRef,
    leases: &dyn Leases,
    cancel: &CancellationToken,
) -> Result<()> {
    let poll = lease::poll_interval(leases.lease());
    let mut waiting_for = String::new();
    let won = loop {
        match leases.claim_step(Step::Setup).await? {
            StepClaim::Won => break true,
            StepClaim::Done => break false,
            StepClaim::Busy(owner) => {
                if owner != waiting_for {
                    tracing::info!("waiting for worker {owner} to set the target up");
                    waiting_for = owner;
                }
                nap(poll, cancel).await?;
            }
        }
    };
    if let Some(record) = leases.shared_record().await? {
        sink.resume(record)
            .await
            .map_err(|e| e.context("continuing from the job's shared sink record"))?;
    }
    sink.prepare(schema)
        .await
        .map_err(|e| e.context("preparing the sink"))?;
    if won {
        sink.create_shared()
            .await
            .map_err(|e| e.context("creating the target the workers share"))?;
        leases.publish_shared(sink.resume_record()).await?;
        leases.complete_step(Step::Setup).await?;
    }
    Ok(())
}

/// Ends one worker's share of a shared job: the worker that claims [`Step::Finish`] commits
/// the sink (once per job); the others end their part.
async fn finish_shared(
    sink: Box<dyn Sink>,
    leases: &dyn Leases,
    cancel: &CancellationToken,
) -> Result<crate::sink::CommitReport> {
    let poll = lease::poll_interval(leases.lease());
    loop {
        match leases.claim_step(Step::Finish).await? {
            StepClaim::Won => {
                tracing::info!(
                    "every partition is done: this worker finishes the job (worker {})",
                    leases.worker()
                );
                let records = leases.worker_records().await?;
                let report = sink
                    .commit_shared(records)
                    .await
                    .map_err(|e| e.context("committing the sink (finishing the job)"))?;
                leases.complete_step(Step::Finish).await?;
                return Ok(report);
            }
            StepClaim::Done | StepClaim::Busy(_) if cancel.is_cancelled() => {
                return Err(Error::Cancelled)
            }
            StepClaim::Done => break,
            StepClaim::Busy(owner) if owner.is_empty() => {
                // Partitions are not all done yet (another worker is saving its last ones).
                nap(poll, cancel).await?;
            }
            StepClaim::Busy(owner) => {
                tracing::info!("worker {owner} finishes the job");
                break;
            }
        }
    }
    sink.commit_part()
        .await
        .map_err(|e| e.context("ending this worker's part of the job"))
}

/// Fails when this worker's leases may have run out by its own clock.
fn check_held(leases: &dyn Leases) -> Result<()> {
    match leases.held_until() {
        Some(until) if Instant::now() < until => Ok(()),
        _ => Err(Error::LeaseLost {
            unit: format!("the partitions of worker {}", leases.worker()),
            why: format!(
                "they were not renewed within the lease ({})",
                humantime::format_duration(leases.lease())
            ),
        }),
    }
}

/// Renews this worker's leases every third of the lease until dropped; on a lost lease, or
/// when renewals failed until the lease may have run out, records why and fires `lost`.
async fn renew_leases(
    leases: Arc<dyn Leases>,
    lost: CancellationToken,
    why: Arc<std::sync::Mutex<Option<Error>>>,
) -> Result<()> {
    let every = lease::renew_interval(leases.lease());
    loop {
        tokio::time::sleep(every).await;
        let failed = match leases.renew().await {
            Ok(()) => continue,
            Err(e) if matches!(e.root(), Error::LeaseLost { .. }) => Some(e),
            Err(e) => match check_held(leases.as_ref()) {
                Ok(()) => {
                    tracing::warn!("renewing this worker's leases failed ({e}); trying again");
                    None
                }
                Err(expired) => Some(expired),
            },
        };
        if let Some(e) = failed {
            if let Ok(mut slot) = why.lock() {
                *slot = Some(e);
            }
            lost.cancel();
            return Ok(());
        }
    }
}

/// One reader slot of a worker of a shared job: claims partitions one after the other and
/// reads each, until every partition is done or held by this worker.
struct Claimer {
    leases: Arc<dyn Leases>,
    partitions: Arc<Vec<PartitionInfo>>,
    source: Arc<dyn Source>,
    chain: Arc<Chain>,
    ctx: SourceContext,
    tx: mpsc::Sender<Msg>,
}

impl Claimer {
    async fn run(self) -> Result<()> {
        let poll = lease::poll_interval(self.leases.lease());
        loop {
            let claim = self.leases.claim().await?;
            if claim == Claim::AllDone {
                return Ok(());
            }
            let Some((id, state, progress, from)) = claim.into_partition() else {
                // Claim::Wait: others hold the rest; one of them may die and leave it here.
                nap(poll, &self.ctx.cancel).await?;
                continue;
            };
            let Some(index) = self.partitions.iter().position(|p| p.id == id) else {
                return Err(Error::data(
                    format!("worker {}", self.leases.worker()),
                    format!("claimed partition {id}, which the source does not have"),
                ));
            };
            if let Some(from) = from {
                tracing::info!(
                    "took partition {id} over from worker {from}, whose lease expired; resuming it from its last checkpoint"
                );
            }
            let resume_after = match &state {
                Some(PartitionState::Done) => None,
                Some(PartitionState::InProgress { after }) => Some(after.clone()),
                None => None,
            };
            let claimed = Msg::Claimed {
                partition: index,
                state: state.clone(),
                progress,
            };
            if self.tx.send(claimed).await.is_err() {
                return Ok(());
            }
            if matches!(state, Some(PartitionState::Done)) {
                continue;
            }
            read_partition(
                self.source.as_ref(),
                &self.chain,
                index,
                &id,
                resume_after,
                &self.ctx,
                &self.tx,
            )
            .await
            .map_err(|e| e.context(format!("reading partition {id}")))?;
        }
    }
}
