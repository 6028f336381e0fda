//! The [`Parser`] trait: bytes in, Arrow out, no I/O — and [`ParserConfig`], the plugin kind
//! that registers one per format.
//!
//! A parser is a push decoder, shaped like arrow-json's and arrow-csv's `Decoder`: whoever owns
//! the I/O (a source reading a local file or an object-store range) feeds bytes in, in chunks of
//! any size, and takes batches out. Keeping I/O out makes parsers testable from byte fixtures,
//! benchable without a runtime, and lets one source serve every format. Self-describing formats
//! (NumPy, Faiss flat storage) decode their own header first: their [`Parser::schema`] is `None`
//! until it has been read.
//!
//! [`parse_all`] drives a parser over a sequence of chunks; it is what a source's read loop does,
//! and what tests use.

use std::fmt::Debug;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A push decoder for one input (one file, or one independent range of it).
///
/// The driving loop is: call [`Parser::decode`] with the unread bytes; it returns how many it
/// consumed. When it consumed fewer than offered, a batch is full: take it with
/// [`Parser::flush`] and offer the rest again. At the end of the input, call [`Parser::finish`],
/// which returns the last rows and fails when the input stopped mid-way. [`parse_all`] is that
/// loop.
pub trait Parser: Send {
    /// The schema of every batch this parser returns, once known: formats with a header know it
    /// only after the header has been decoded.
    fn schema(&self) -> Option<SchemaRef>;

    /// Consumes a prefix of `buf` and returns how many bytes were used. Fewer than `buf.len()`
    /// means a batch is full: call [`Parser::flush`], then feed the rest. A parser may keep a
    /// few bytes of an incomplete row or header internally between calls.
    ///
    /// # Errors
    /// When the bytes are not valid for the format; the error names the input and the offset.
    fn decode(&mut self, buf: &[u8]) -> Result<usize>;

    /// Returns the complete rows decoded so far as a batch, or `None` when there are none.
    ///
    /// # Errors
    /// When the rows cannot be assembled into a batch of [`Parser::schema`].
    fn flush(&mut self) -> Result<Option<RecordBatch>>;

    /// Declares the end of the input and returns the rows not yet flushed.
    ///
    /// # Errors
    /// When the input ended inside the header or a row, or held fewer rows than its header
    /// promised; the error names the input and the offset.
    fn finish(&mut self) -> Result<Option<RecordBatch>>;
}

/// What a parser is built for: the input it will be fed.
#[derive(Debug, Clone)]
pub struct ParseInput {
    /// The input's name as errors should show it (a path or URL).
    pub name: String,
    /// The most rows a batch may hold.
    pub batch_rows: usize,
}

impl ParseInput {
    /// An input named `name`, with batches of at most `batch_rows` rows (at least 1).
    pub fn new(name: impl Into<String>, batch_rows: usize) -> Self {
        Self {
            name: name.into(),
            batch_rows: batch_rows.max(1),
        }
    }

    /// The input's file name without directories and extension (`/d/vector.npy` → `vector`):
    /// the column name single-column formats default to.
    pub fn stem(&self) -> &str {
        let (stem, _) = split_file_name(&self.name);
        stem
    }
}

/// The file name of `path` (after its last `/` or `\\`) as stem and extension; a name without a
/// dot, or a hidden file's leading dot, has no extension.
pub(crate) fn split_file_name(path: &str) -> (&str, Option<&str>) {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (file, None),
    }
}

/// A parser plugin's configuration type: the options of one format.
///
/// Registered with [`crate::register_parser!`]; listed by `vmig plugins`. A source that reads
/// files builds one parser per input with [`ParserConfig::build`].
pub trait ParserConfig: DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// The format's name (`npy`, `json`, …): the `format` in configs.
    const NAME: &'static str;
    /// One line for `vmig plugins`.
    const SUMMARY: &'static str;
    /// File extensions (without the dot, lowercase) this format is inferred from.
    const EXTENSIONS: &'static [&'static str];
    /// A typical configuration, shown by `vmig plugins --examples` and round-tripped in tests.
    fn example() -> Self;
    /// Checks that need no I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the wrong option.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// Builds a parser for one input (no I/O).
    ///
    /// # Errors
    /// [`Error::Config`] when the options cannot apply to this input.
    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>>;
}

/// A parsed parser configuration of any plugin.
pub trait DynParserConfig: Debug + Send + Sync {
    /// The format name.
    fn plugin(&self) -> &'static str;
    /// See [`ParserConfig::build`].
    ///
    /// # Errors
    /// As [`ParserConfig::build`].
    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>>;
}

impl<C: ParserConfig> DynParserConfig for C {
    fn plugin(&self) -> &'static str {
        C::NAME
    }
    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        ParserConfig::build(self, input)
    }
}

/// Feeds `chunks` to `parser` in order, as a source's read loop does, and returns every batch.
///
/// # Errors
/// The parser's errors; an error when a parser neither consumes bytes nor yields a batch (a
/// parser bug that would otherwise loop forever).
pub fn parse_all<'a>(
    parser: &mut dyn Parser,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        loop {
            let used = parser.decode(rest)?;
            rest = rest.get(used..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            match parser.flush()? {
                Some(batch) => out.push(batch),
                None if used == 0 => {
                    return Err(Error::External(
                        "a parser consumed no bytes and returned no batch".into(),
                    ))
                }
                None => {}
            }
        }
    }
    out.extend(parser.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_strips_directories_and_extension() {
        assert_eq!(ParseInput::new("/d/e/vector.npy", 1).stem(), "vector");
        assert_eq!(ParseInput::new("s3://b/k/id.npy", 1).stem(), "id");
        assert_eq!(ParseInput::new("plain", 1).stem(), "plain");
        assert_eq!(ParseInput::new(".hidden", 1).stem(), ".hidden");
        assert_eq!(ParseInput::new("x", 0).batch_rows, 1);
    }
}
