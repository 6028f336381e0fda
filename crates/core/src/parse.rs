//! The [`Parser`] trait: bytes in, Arrow out, no I/O.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// A push decoder, shaped like arrow-json's and arrow-csv's `Decoder`.
///
/// The source owns the I/O and feeds bytes in; the parser turns them into batches. Keeping I/O
/// out makes parsers testable from byte fixtures and benchable without a runtime. Header-then-body
/// formats (NPY, Faiss flat storage) read their header first, then build a parser for the body.
pub trait Parser: Send {
    /// The schema of every batch [`Parser::flush`] returns.
    fn schema(&self) -> SchemaRef;

    /// Consumes a prefix of `buf` and returns how many bytes were used. Fewer than `buf.len()`
    /// means a batch is full: call [`Parser::flush`], then feed the rest.
    ///
    /// # Errors
    /// When the bytes are not valid for the format; the error names the offset.
    fn decode(&mut self, buf: &[u8]) -> Result<usize>;

    /// Returns the rows decoded so far as a batch, or `None` when there are none.
    ///
    /// # Errors
    /// When the input ended in the middle of a row.
    fn flush(&mut self) -> Result<Option<RecordBatch>>;
}
