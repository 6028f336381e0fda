//! The [`Transformer`] trait: per-batch rewrites between source and sink.

use std::fmt::Debug;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// A stateless rewrite of batches (rename, select, cast, filter, …).
///
/// Transformers run inside the partition readers, so they MUST be cheap to share (`Sync`) and
/// MUST NOT keep state between batches.
pub trait Transformer: Debug + Send + Sync {
    /// The schema that [`Transformer::transform`] produces for `input`. Called once when the job
    /// is planned, so a mismatch (missing field, impossible cast) fails before any data moves.
    ///
    /// # Errors
    /// When `input` lacks something this transformer needs.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Rewrites one batch. The output MUST have exactly `output_schema(batch.schema())`: the same
    /// field names in the same order with the same data types, and no nulls in a field planned
    /// non-nullable. The runner checks every output batch against the schema it planned for this
    /// transformer (`vmig_core::pipeline::apply_transforms`) and stops the job naming the
    /// transformer, the field and both types. Metadata is not compared.
    ///
    /// # Errors
    /// When a value cannot be converted; the error names the field and row.
    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch>;
}
