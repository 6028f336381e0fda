//! Batches as they travel from a source: data plus the position to resume after it.

use std::fmt;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

/// Names one unit of a source's work (a Faiss inverted-list range, an ES slice, a Milvus 1.x
/// segment). Partitions of one source can be read in parallel and in any order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub String);

impl PartitionId {
    /// Builds a partition id from anything string-like.
    pub fn new(id: impl Into<String>) -> Self {
        PartitionId(id.into())
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opaque, serialisable resume point inside one partition.
///
/// Only the source that produced a position interprets it. Opening the same partition with
/// `resume_after = Some(p)` MUST yield exactly the rows that came after the batch tagged `p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub serde_json::Value);

impl Position {
    /// Serialises any value as a position.
    ///
    /// # Errors
    /// When `value` cannot be represented as JSON.
    pub fn encode<T: Serialize>(value: &T) -> crate::Result<Self> {
        serde_json::to_value(value)
            .map(Position)
            .map_err(|e| crate::Error::External(Box::new(e)))
    }

    /// Reads a position back into the type its source wrote.
    ///
    /// # Errors
    /// When the position was written by another source or version.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> crate::Result<T> {
        serde_json::from_value(self.0.clone()).map_err(|e| {
            crate::Error::config(
                "checkpoint",
                format!("position {} does not belong to this source: {e}", self.0),
            )
        })
    }
}

/// A batch from a source: the rows, and where to resume after them.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows. Its schema MUST equal the source's declared schema.
    pub batch: RecordBatch,
    /// The position right after the last row of `batch`.
    pub position: Position,
}

impl SourceBatch {
    /// Pairs a batch with its resume position.
    pub fn new(batch: RecordBatch, position: Position) -> Self {
        SourceBatch { batch, position }
    }
}
