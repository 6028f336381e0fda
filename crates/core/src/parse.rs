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
//! Two kinds of input access, one trait:
//!
//! * **Streaming** formats (NumPy, fvecs, JSON Lines, CSV, …) are fed their bytes in order with
//!   [`Parser::decode`]. They say where the next unreturned row starts
//!   ([`Parser::next_row_offset`]), so a reader can resume there after a restart
//!   ([`Parser::seek`]).
//! * **Random-access** formats (Parquet: the footer first, then column chunks) ask for byte
//!   ranges through [`Parser::wanted`] and are given them with [`Parser::push_ranges`].
//!
//! [`parse_all`] drives a streaming parser over a sequence of chunks, and [`parse_bytes`] any
//! parser over an input held in memory; they are what a source's read loop does, and what tests
//! use.

use std::fmt::Debug;
use std::ops::Range;

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
    /// only after the header has been decoded, formats that infer it from a sample once the
    /// sample has been read (or the input ended). With [`ParseInput::schema`] given, it is that
    /// schema from the start.
    fn schema(&self) -> Option<SchemaRef>;

    /// How this parser wants its input next. The default, for streaming formats, is always
    /// [`Wanted::Stream`].
    ///
    /// # Errors
    /// When the bytes pushed so far are not valid for the format.
    fn wanted(&mut self) -> Result<Wanted> {
        Ok(Wanted::Stream)
    }

    /// Gives a random-access parser the byte ranges it asked for with [`Wanted::Ranges`]
    /// (`data[i]` holds `ranges[i]`). Streaming parsers refuse it.
    ///
    /// # Errors
    /// When the bytes are not valid for the format, or the parser is a streaming one.
    fn push_ranges(&mut self, ranges: Vec<Range<u64>>, data: Vec<bytes::Bytes>) -> Result<()> {
        let _ = (ranges, data);
        Err(Error::External(
            "push_ranges called on a streaming parser (it wants its bytes in order)".into(),
        ))
    }

    /// The number of rows in the whole input, when its header (or size) says so without reading
    /// the rows: known once [`Parser::schema`] is. Sources use it for estimates and, for formats
    /// whose ids are row numbers, to number the rows of the following inputs.
    fn total_rows(&self) -> Option<u64> {
        None
    }

    /// The rows of each unit the format reads independently (Parquet's row groups), in order,
    /// when known (after the header or footer): a source splitting a large input into row
    /// ranges puts its boundaries between them, so no unit is decoded by two partitions. `None`
    /// (the default) when rows can be split anywhere.
    fn row_groups(&self) -> Option<Vec<u64>> {
        None
    }

    /// For streaming formats that can restart mid-input: the byte offset at which the first row
    /// not yet returned by [`Parser::flush`]/[`Parser::finish`] starts. `None` (the default)
    /// when the format cannot restart at a byte offset (then a resumed reader parses the input
    /// from its start and drops the rows already delivered).
    fn next_row_offset(&self) -> Option<u64> {
        None
    }

    /// Resumes at `to`: a position this parser reported before, or — with `offset: None` — a
    /// row count alone (a source splitting a large input into row ranges asks for that when
    /// [`Parser::total_rows`] is known). Called once, on a parser fed the input from its start
    /// until [`Parser::schema`] became known (at once when built with a planned schema,
    /// [`ParseInput::schema`]; after the header for formats that have one), before any batch was
    /// taken. Rows decoded but not yet flushed are dropped; a streaming parser then expects the
    /// bytes from [`Parser::next_row_offset`] on (which the seek sets), a random-access one
    /// asks for what it needs. The default refuses, which makes the reader parse from the
    /// start and drop `to.rows` rows itself.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the format cannot resume this way (for instance at a row
    /// count without an offset); [`Error::Data`] when the position does not fit the input (an
    /// offset past its end, or not at a row boundary the format can check).
    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let _ = to;
        Err(Error::unsupported(
            "parser",
            "this parser resumes only by parsing from the start",
        ))
    }

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

/// How a parser wants its input next (see [`Parser::wanted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The bytes that follow, in order, through [`Parser::decode`] (streaming formats).
    Stream,
    /// These byte ranges of the input, through [`Parser::push_ranges`].
    Ranges(Vec<Range<u64>>),
    /// A batch is ready: take it with [`Parser::flush`].
    Batch,
    /// The input has been read: call [`Parser::finish`].
    Done,
}

/// Where a reader stands in one input: enough to resume it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParsePosition {
    /// Rows of the input already delivered.
    pub rows: u64,
    /// The byte offset where the next row starts, for formats that can restart there
    /// ([`Parser::next_row_offset`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// What a parser is built for: the input it will be fed.
#[derive(Debug, Clone)]
pub struct ParseInput {
    /// The input's name as errors should show it (a path or URL).
    pub name: String,
    /// The most rows a batch may hold.
    pub batch_rows: usize,
    /// The input's size in bytes, when known: random-access formats need it; fixed-size
    /// record formats check it against their header before reading rows.
    pub size: Option<u64>,
    /// The number of rows before this input among all inputs of its source (files in sorted
    /// order): formats whose rows have no id of their own number them from here.
    pub first_row: u64,
    /// The schema every batch must have, when already known (planned from the first input):
    /// formats that infer a schema use it instead (and fail on a row that does not fit it);
    /// formats with a header still read it, and fail naming the input when it describes another
    /// schema.
    pub schema: Option<SchemaRef>,
}

impl ParseInput {
    /// An input named `name`, with batches of at most `batch_rows` rows (at least 1), of unknown
    /// size, numbered from row 0, schema to be read or inferred.
    pub fn new(name: impl Into<String>, batch_rows: usize) -> Self {
        Self {
            name: name.into(),
            batch_rows: batch_rows.max(1),
            size: None,
            first_row: 0,
            schema: None,
        }
    }

    /// The same input with its size known.
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// The same input, its rows numbered from `first_row`.
    #[must_use]
    pub fn with_first_row(mut self, first_row: u64) -> Self {
        self.first_row = first_row;
        self
    }

    /// The same input, with the schema its batches must have.
    #[must_use]
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
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

/// Runs any parser, streaming or random-access, over an input held in memory and returns every
/// batch: streamed bytes go in chunks of `chunk` bytes, random-access parsers get the ranges
/// they ask for. A parser may start streaming (its header) and then ask for ranges (a NumPy
/// array stored column by column): [`Parser::wanted`] is asked again whenever `decode` stops
/// short.
///
/// # Errors
/// As [`parse_all`]; a range outside `bytes`.
pub fn parse_bytes(
    parser: &mut dyn Parser,
    bytes: &bytes::Bytes,
    chunk: usize,
) -> Result<Vec<RecordBatch>> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        match parser.wanted()? {
            Wanted::Stream => {
                if offset >= bytes.len() {
                    out.extend(parser.finish()?);
                    return Ok(out);
                }
                let end = bytes.len().min(offset + chunk);
                let used = parser.decode(&bytes[offset..end])?;
                offset += used;
                if offset < end {
                    match parser.flush()? {
                        Some(batch) => out.push(batch),
                        None if used == 0 && matches!(parser.wanted()?, Wanted::Stream) => {
                            return Err(Error::External(
                                "the parser neither consumed input nor returned rows".into(),
                            ))
                        }
                        None => {}
                    }
                }
            }
            Wanted::Ranges(ranges) => {
                let data = ranges
                    .iter()
                    .map(|r| {
                        let (start, end) = (usize::try_from(r.start), usize::try_from(r.end));
                        match (start, end) {
                            (Ok(s), Ok(e)) if s <= e && e <= bytes.len() => Ok(bytes.slice(s..e)),
                            _ => Err(Error::External(
                                format!(
                                    "a parser asked for bytes {}..{} of a {}-byte input",
                                    r.start,
                                    r.end,
                                    bytes.len()
                                )
                                .into(),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                parser.push_ranges(ranges, data)?;
            }
            Wanted::Batch => out.extend(parser.flush()?),
            Wanted::Done => {
                out.extend(parser.finish()?);
                return Ok(out);
            }
        }
    }
}

/// Feeds `chunks` to a streaming `parser` in order, as a source's read loop does, and returns
/// every batch.
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
