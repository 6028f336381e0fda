//! The [`Sink`] trait: where rows go.

use std::fmt::Debug;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a flush made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FlushReport {
    /// Rows made durable by this flush.
    pub rows: u64,
    /// Bytes made durable by this flush (as encoded by the sink).
    pub bytes: u64,
}

impl FlushReport {
    /// A report of `rows` rows and `bytes` bytes.
    pub fn new(rows: u64, bytes: u64) -> Self {
        FlushReport { rows, bytes }
    }
}

/// What a whole job wrote, returned by [`Sink::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CommitReport {
    /// Rows written in total.
    pub rows: u64,
    /// Bytes written in total (as encoded by the sink).
    pub bytes: u64,
    /// Files, objects or import units produced, if the sink writes any.
    pub files: Vec<String>,
    /// Where the data can be found (a directory, URL or collection name).
    pub target: String,
}

impl CommitReport {
    /// A report for `target`.
    pub fn new(target: impl Into<String>, rows: u64, bytes: u64, files: Vec<String>) -> Self {
        CommitReport {
            rows,
            bytes,
            files,
            target: target.into(),
        }
    }
}

/// What an aborted sink left in its target, told to the user with the error that stopped the run.
///
/// Each line is one complete sentence naming a place and what is there now, and — when something
/// of this run remains — how to continue or clean up, e.g. "collection `books` was created by this
/// run and holds 409,600 acknowledged rows: drop it, or re-run with `if_exists = \"append\"`".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AbortReport {
    /// What remains in (or was restored to) the target, one sentence per line.
    pub left: Vec<String>,
}

impl AbortReport {
    /// A report of one sentence.
    pub fn new(line: impl Into<String>) -> Self {
        AbortReport {
            left: vec![line.into()],
        }
    }

    /// Adds a sentence.
    pub fn push(&mut self, line: impl Into<String>) {
        self.left.push(line.into());
    }
}

/// Refuses a named target partition for the sink called `sink` (its [`Sink::name`]): `Ok` for
/// `None`, the one [`Error::Unsupported`] message for `Some`, so every sink that cannot
/// separate partitions says it the same way.
///
/// ```
/// use vmig_core::sink::refuse_named_partition;
/// assert!(refuse_named_partition("stdout", None).is_ok());
/// assert_eq!(
///     refuse_named_partition("stdout", Some("p2024")).unwrap_err().to_string(),
///     "unsupported input at target partition `p2024`: the `stdout` sink cannot write into named partitions",
/// );
/// ```
///
/// # Errors
/// [`Error::Unsupported`] naming the partition and the sink when `partition` is `Some`.
pub fn refuse_named_partition(sink: &str, partition: Option<&str>) -> Result<()> {
    match partition {
        None => Ok(()),
        Some(p) => Err(Error::unsupported(
            format!("target partition `{p}`"),
            format!("the `{sink}` sink cannot write into named partitions"),
        )),
    }
}

/// A built sink. The runner calls, in order: [`Sink::check`] once, [`Sink::resume`] once when
/// the job resumes an interrupted run, [`Sink::prepare`] once, then any number of [`Sink::write`] (or
/// [`Sink::write_replay`]) interleaved with [`Sink::flush`], then exactly one of
/// [`Sink::commit`], [`Sink::suspend`] (the job saves checkpoints and can be resumed) or
/// [`Sink::abort`].
///
/// Implementations MUST uphold:
///
/// * back-pressure by awaiting in `write`, never by unbounded buffering;
/// * a batch given to `write` with `Some(partition)` lands in that named target partition
///   (creating it if needed) or the call fails; a sink that cannot honour names MUST fail rather
///   than write the rows elsewhere, with [`refuse_named_partition`];
/// * everything accepted by `write` before a successful `flush` is durable when `flush` returns
///   (the runner records resume positions only then);
/// * `abort` and `suspend` leave no partial output that could be mistaken for a complete one;
/// * a sink that resumes: after a crash at any instant, `resume` with the last saved
///   [`Sink::resume_record`] followed by the rest of the rows gives the output of an
///   uninterrupted run (the conformance kit checks it).
#[async_trait]
pub trait Sink: Debug + Send {
    /// Tells, without changing anything anywhere, whether this sink can write `schema` (the
    /// schema after the transforms): every refusal [`Sink::prepare`] would give for the schema
    /// itself — a type or a field the target or its file format cannot hold, a type the
    /// target's version does not have — with the same error text. `vmig plan` calls it on a
    /// freshly built sink, and the runner calls it before [`Sink::resume`] and
    /// [`Sink::prepare`], so a plan that succeeds is not refused by `migrate` for its schema.
    ///
    /// It MUST NOT create, change or remove anything (no directory, no collection, no lock),
    /// and does no I/O: what it needs from the target (a server's version) is learnt when the
    /// sink is built. What depends on the target's current contents (an existing collection,
    /// earlier output) stays with `prepare`. The default accepts every schema.
    ///
    /// # Errors
    /// The error `prepare` would give for this schema, typically [`Error::Unsupported`] naming
    /// the field.
    fn check(&self, schema: &SchemaRef) -> Result<()> {
        let _ = schema;
        Ok(())
    }

    /// What this sink, built and connected, will do that `vmig plan` should say (e.g. which
    /// import path it takes on this server, and why), one line each. Default: nothing.
    fn plan_notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Validates and prepares for the final schema (after transforms): create a collection,
    /// check dimensions and limits, create an output directory. Called once, before any write.
    /// It MUST refuse what [`Sink::check`] refuses, with the same error.
    ///
    /// # Errors
    /// When the schema cannot be written to this target.
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()>;

    /// Accepts one batch, which has the prepared schema, destined for the target partition
    /// `partition` (the source's [`crate::PartitionInfo::target_partition`]); `None` means the
    /// sink's default place.
    ///
    /// A sink that cannot separate partitions starts with
    /// `vmig_core::sink::refuse_named_partition(self.name(), partition)?;`.
    ///
    /// # Errors
    /// On any write failure; the error says what was being written. [`Error::Unsupported`]
    /// when `partition` names a partition the sink cannot write into.
    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()>;

    /// A short name for messages (the sink type, e.g. `milvus2`); defaults to the type name.
    fn name(&self) -> &str {
        let full = std::any::type_name::<Self>();
        let path = full.split('<').next().unwrap_or(full);
        path.rsplit("::").next().unwrap_or(path)
    }

    /// Makes everything accepted so far durable.
    ///
    /// # Errors
    /// When the data could not be made durable; nothing since the last flush counts as written.
    async fn flush(&mut self) -> Result<FlushReport>;

    /// Finishes the job after the final flush. No writes are possible afterwards.
    ///
    /// # Errors
    /// When finishing fails (e.g. a staged file cannot be moved into place).
    async fn commit(self: Box<Self>) -> Result<CommitReport>;

    /// What this sink needs to continue the run after a crash or a stop, as of the last
    /// successful [`Sink::flush`]: e.g. the files sink's run directory and the files it
    /// completed, the Milvus sink's collection and staged imports. The runner saves it with
    /// every checkpoint, in the same atomic write as the positions, and gives it back to
    /// [`Sink::resume`]. It also saves it once right after [`Sink::prepare`], before any
    /// write, so the record MUST describe what the sink is about to create before it exists
    /// (the resumed sink finds it created or not). It MUST NOT contain secrets. `None` (the default): the sink keeps no
    /// state of its own, and a resumed run just calls [`Sink::prepare`] again.
    fn resume_record(&self) -> Option<serde_json::Value> {
        None
    }

    /// Continues a run from `record`, the last [`Sink::resume_record`] saved before the run
    /// stopped (at any instant, including `kill -9`). Called once, before [`Sink::prepare`],
    /// only when the job resumes; `prepare` then accepts the target this run created (its
    /// collection, its run directory). The sink discards whatever it wrote after the record was
    /// taken (a partial file, an unfinished import) — only its own leftovers, proven by the
    /// record — and continues (e.g. the file numbering).
    ///
    /// # Errors
    /// [`Error::Unsupported`] (the default) when the sink cannot continue a run; an error naming
    /// what is missing or changed when the target no longer matches the record.
    async fn resume(&mut self, record: serde_json::Value) -> Result<()> {
        let _ = record;
        Err(Error::unsupported(
            format!("the `{}` sink", self.name()),
            "it cannot continue an interrupted run; start over with `--restart`",
        ))
    }

    /// Whether a row given to [`Sink::write`] may be in the target before the next
    /// [`Sink::flush`] returns, and writing it twice would duplicate it (the Milvus insert
    /// path: an acknowledged insert is durable at once). The runner then records, before every
    /// write, how far each partition has been sent ([`crate::checkpoint::PartitionProgress`]),
    /// and a resumed run sends that window again with [`Sink::write_replay`]. Defaults to
    /// `false`: nothing written since the last flush survives a crash.
    fn needs_sent_marks(&self) -> bool {
        false
    }

    /// Writes a batch that an interrupted run may already have written (see
    /// [`Sink::needs_sent_marks`]), so that each of its rows ends up in the target exactly once
    /// (e.g. as an upsert by primary key). The default is [`Sink::write`].
    ///
    /// # Errors
    /// As [`Sink::write`]; [`Error::Unsupported`] when the rows cannot be told apart from
    /// copies already written (generated ids).
    async fn write_replay(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        self.write(batch, partition).await
    }

    /// Stops the run so that it can be resumed: keeps what the last successful flush made
    /// durable (which the last checkpoint names), discards what came after where it can, and
    /// says what the target holds. The runner calls it instead of [`Sink::abort`] when the job
    /// saves checkpoints. The default is [`Sink::abort`] — right for a sink that cannot
    /// [`Sink::resume`].
    ///
    /// # Errors
    /// As [`Sink::abort`].
    async fn suspend(self: Box<Self>) -> Result<AbortReport> {
        self.abort().await
    }

    /// Whether several workers may write one job into this sink at once ([`crate::lease`]):
    /// each worker's rows are durable on their own and safe to replay
    /// ([`Sink::needs_sent_marks`] and [`Sink::write_replay`], or idempotent writes, or output
    /// that only the finishing worker publishes from every worker's record), and the sink
    /// implements [`Sink::create_shared`], [`Sink::commit_part`] and, where workers leave work
    /// for the finisher, [`Sink::commit_shared`]. The runner refuses a
    /// job shared between workers before anything is prepared when this is `false` (the
    /// default).
    fn shares_jobs(&self) -> bool {
        false
    }

    /// On the one worker that sets up a job shared between workers, after [`Sink::prepare`]:
    /// creates what all workers write into (a collection) now rather than at the first batch,
    /// so that [`Sink::resume_record`], which the runner then publishes to the other workers,
    /// names it as existing. The default does nothing.
    ///
    /// # Errors
    /// When the shared target cannot be created.
    async fn create_shared(&mut self) -> Result<()> {
        Ok(())
    }

    /// Finishes a job shared between workers, on the one worker that claims the finishing step
    /// after every partition is done: like [`Sink::commit`] (index build, load, manifest: once
    /// per job), with `records`, the last saved [`Sink::resume_record`] of every worker of the
    /// job, oldest worker first — those of workers that died too, and this worker's own (as of
    /// its last save). A sink whose workers leave work for the finisher (files to list in one
    /// manifest, staged files to import) takes it from there; only what a record names may be
    /// used, and anything else a dead worker left in the sink's own run directory may be
    /// removed. The default ignores `records` and calls [`Sink::commit`].
    ///
    /// # Errors
    /// As [`Sink::commit`]; an error naming the record or file when a record cannot be used.
    async fn commit_shared(
        self: Box<Self>,
        records: Vec<serde_json::Value>,
    ) -> Result<CommitReport> {
        let _ = records;
        self.commit().await
    }

    /// Ends this worker's share of a job shared between workers when another worker finishes
    /// the job ([`Sink::commit`], which runs once per job: index build, load, manifest). Called
    /// after the final flush; everything this worker wrote is durable already. The default
    /// refuses (see [`Sink::shares_jobs`]).
    ///
    /// # Errors
    /// [`Error::Unsupported`] (the default).
    async fn commit_part(self: Box<Self>) -> Result<CommitReport> {
        Err(Error::unsupported(
            self.name().to_string(),
            "this sink cannot share a job between workers",
        ))
    }

    /// Gives up: removes what this run created (never anything else) so that partial output is
    /// not mistaken for a finished job, and says exactly what the target holds now.
    ///
    /// # Errors
    /// When clean-up itself fails; the error says what could not be removed.
    async fn abort(self: Box<Self>) -> Result<AbortReport> {
        Ok(AbortReport::default())
    }
}
