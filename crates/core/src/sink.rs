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

/// A built sink. The runner calls, in order: [`Sink::prepare`] once, then any number of
/// [`Sink::write`] interleaved with [`Sink::flush`], then exactly one of [`Sink::commit`] or
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
/// * `abort` leaves no partial output that could be mistaken for a complete one.
#[async_trait]
pub trait Sink: Debug + Send {
    /// Validates and prepares for the final schema (after transforms): create a collection,
    /// check dimensions and limits, create an output directory. Called once, before any write.
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

    /// Gives up: removes what this run created (never anything else) so that partial output is
    /// not mistaken for a finished job, and says exactly what the target holds now.
    ///
    /// # Errors
    /// When clean-up itself fails; the error says what could not be removed.
    async fn abort(self: Box<Self>) -> Result<AbortReport> {
        Ok(AbortReport::default())
    }
}
