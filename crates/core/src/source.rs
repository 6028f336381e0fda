//! The [`Source`] trait: where rows come from.

use std::fmt::Debug;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::batch::{PartitionId, Position, SourceBatch};
use crate::error::{Error, Result};

/// A stream of batches from one partition. Errors end the stream.
pub type SourceStream = Pin<Box<dyn Stream<Item = Result<SourceBatch>> + Send>>;

/// Settings every source receives when a partition is opened.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Preferred rows per batch. Sources SHOULD stay close to it (a source whose unit of
    /// reading is larger MAY split; one whose unit is smaller MAY yield smaller batches).
    pub batch_rows: NonZeroUsize,
    /// Cancelled when the job stops; long reads SHOULD check it.
    pub cancel: CancellationToken,
}

impl Default for SourceContext {
    fn default() -> Self {
        SourceContext {
            batch_rows: NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN),
            cancel: CancellationToken::new(),
        }
    }
}

/// Description of one partition, for planning and progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionInfo {
    /// The id to pass to [`Source::open`].
    pub id: PartitionId,
    /// Rows it will yield, when known without reading it.
    pub estimated_rows: Option<u64>,
    /// A short human description ("inverted lists 0..63", "rows 0..1048576").
    pub description: String,
    /// The target partition (Milvus partition name) these rows belong in, if the source has one.
    pub target_partition: Option<String>,
}

/// A built, ready-to-read source.
///
/// Built by a [`crate::registry::SourceConfig`], which does the I/O needed to learn the schema
/// (e.g. reading a file header). Implementations MUST uphold:
///
/// * every batch of every partition has exactly [`Source::schema`];
/// * [`Source::open`] does no I/O before the returned stream is first polled, and dropping the
///   stream cancels its work;
/// * positions only move forward, and reopening a partition after a position yields exactly the
///   rows that followed it, no more and no fewer.
#[async_trait]
pub trait Source: Debug + Send + Sync {
    /// The Arrow schema of every batch.
    fn schema(&self) -> SchemaRef;

    /// The units of work, in a stable order. The default is one partition named `"0"`.
    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(vec![PartitionInfo {
            id: PartitionId::new("0"),
            estimated_rows: None,
            description: "all rows".into(),
            target_partition: None,
        }])
    }

    /// Opens one partition lazily, resuming strictly after `resume_after` when given.
    ///
    /// # Errors
    /// When `partition` is unknown or `resume_after` was not produced by this source.
    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream>;

    /// Called once by the runner when a job ends (finished, failed or cancelled), after every
    /// partition stream is gone: frees what the source keeps for the job beyond its streams,
    /// such as pooled read buffers, so a program embedding vmig does not hold them. The default
    /// does nothing.
    fn end_of_job(&self) {}
}

/// Boxes `stream` as a [`SourceStream`] that ends right after its first error, dropping the
/// inner stream then (which stops whatever reads it has in flight), as the contract of
/// [`SourceStream`] asks.
pub fn stop_after_error<S>(stream: S) -> SourceStream
where
    S: Stream<Item = Result<SourceBatch>> + Send + 'static,
{
    Box::pin(StopAfterError {
        inner: Some(Box::pin(stream)),
    })
}

/// See [`stop_after_error`].
struct StopAfterError<S> {
    inner: Option<Pin<Box<S>>>,
}

impl<S: Stream<Item = Result<SourceBatch>>> Stream for StopAfterError<S> {
    type Item = Result<SourceBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = futures::ready!(inner.as_mut().poll_next(cx));
        if !matches!(item, Some(Ok(_))) {
            self.inner = None;
        }
        Poll::Ready(item)
    }
}

/// A spawned Tokio task that is aborted when this handle is dropped, so that a dropped source
/// stream also stops the reads it spawned ahead. Awaiting it gives the task's result; an
/// aborted task is [`Error::Cancelled`], a panicked one an external error.
#[derive(Debug)]
pub struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> AbortOnDrop<T> {
    /// Spawns `task` on the current runtime.
    pub fn spawn(task: impl Future<Output = T> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(task))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<Result<T>> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(inner) => inner,
            Err(e) if e.is_cancelled() => Err(Error::Cancelled),
            Err(e) => Err(Error::External(Box::new(e))),
        })
    }
}
