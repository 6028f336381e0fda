//! vmig-core: the contracts every vmig plugin and front end is built on.
//!
//! Data moves as Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es from a [`Source`]
//! through any number of [`Transformer`]s into a [`Sink`]. The main design decision is that every
//! batch a source yields carries an opaque, serialisable [`Position`], and a sink makes data
//! durable only in [`Sink::flush`]: the [`pipeline`] runner records a partition's position only
//! after the flush that covers it succeeded, so a job can always resume exactly after the last
//! row that is known to be written, and never reports a row it did not write.
//!
//! Plugins register themselves with `inventory` through [`register_source!`],
//! [`register_transform!`] and [`register_sink!`]; front ends look them up by name in
//! [`registry`]. Vectors are Arrow `FixedSizeList<Float32>` / `FixedSizeBinary` columns as
//! described in [`vector`]; which Milvus type each Arrow type becomes, and back, is the one
//! table in [`types`]. Every option that takes a size is a [`ByteSize`], whose units have one
//! meaning ([`size`]); every network plugin retries by one policy ([`retry`]); sources that
//! stream a large file read it through one read-ahead helper ([`ranges::read_ahead`]).
#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod ids;
pub mod lease;
pub mod metadata;
pub mod parse;
pub mod pipeline;
pub mod process;
pub mod ranges;
pub mod redact;
pub mod registry;
pub mod retry;
pub mod sink;
pub mod size;
pub mod source;
pub mod store;
pub mod transform;
pub mod types;
pub mod vector;
pub mod verify;

pub use arrow;
pub use async_trait::async_trait;
pub use batch::{PartitionId, Position, SourceBatch};
pub use error::{Error, PluginKind, Result, ResultExt};
pub use parse::Parser;
pub use parse::{ParseInput, ParserConfig};
pub use registry::{BuildContext, SinkConfig, SourceConfig, TransformConfig};
pub use retry::RetryConfig;
pub use sink::{AbortReport, CommitReport, FlushReport, Sink};
pub use size::ByteSize;
pub use source::{PartitionInfo, Source, SourceContext, SourceStream};
pub use transform::Transformer;
