//! The `parquet` parser: any Parquet file, one column per field, vectors recognised as Milvus's
//! bulk import reads them.
//!
//! Parquet is read by random access ([`vmig_core::parse::Wanted::Ranges`]): first the file's
//! last 64 KiB (the footer, in one request for most files; a larger footer is asked for
//! exactly), then, row group after row group, the column chunks of the columns read (those
//! inside the last 64 KiB are not asked for again, so a small file takes one request); the
//! whole file is never requested.
//!
//! Vector columns (a list of `float32`, `float16` or `uint8` in one leaf column, read alongside
//! at least one other column) are read page by page (`parquet_fast`): their column chunk is
//! asked for in windows of about one batch of rows, their values copied or looked up in the
//! dictionary straight into batch-sized arrays, so their memory is bounded by the batch size
//! (and the largest page), whatever the row group's size. A chunk that path declines (another
//! encoding, a null, a ragged row) is read on by arrow-rs from the first row not yet returned.
//! Every other column is decoded by parquet's own push decoder
//! (`parquet::arrow::push_decoder`), which holds its column chunks of one row group at a time;
//! so every encoding, compression (snappy, zstd, lz4, uncompressed) and nesting it reads is
//! read here.
//!
//! # Which Arrow columns come out
//!
//! Each top-level column becomes one field with the type parquet's Arrow reader gives it (the
//! Arrow schema embedded by the writer, when there is one, is honoured: field metadata such as
//! `vmig.type` comes back), except:
//!
//! | Parquet column (Arrow type as read)                   | field (see [`vmig_core::vector`])        |
//! |-------------------------------------------------------|------------------------------------------|
//! | `List`/`LargeList`/`FixedSizeList` of `Float32`       | float vector `FixedSizeList<Float32>(d)` |
//! | … of `Float16`                                        | float16 vector `FixedSizeList<Float16>(d)` |
//! | … of `UInt8` (untagged or `vmig.type = binary_vector`) | binary vector `FixedSizeBinary(d / 8)` (the bytes as they are, as Milvus and vmig's staging files store binary vectors) |
//! | … of `UInt8` tagged `vmig.type = bfloat16_vector`     | bfloat16 vector `FixedSizeBinary(2 d)`   |
//! | a text column named `$meta` without `vmig.type`       | JSON (Milvus's dynamic field)            |
//!
//! So vmig's own Parquet staging files (`List<Float32>`, `List<UInt8>`, JSON as text, the Arrow
//! schema embedded) read back as the batches that were written, bit for bit.
//!
//! Decisions a user should know:
//!
//! * **The dimension** of a vector column is, in this order: the `FixedSizeList` size; the
//!   field's `vmig.dim` metadata; the same field of the job's planned schema
//!   ([`ParseInput::schema`], i.e. the first file's); the length of the first non-null row.
//!   **Every row is checked** against it: a row of another length, a null vector or a null
//!   inside a vector fails naming the file, the field, the row (numbered across the source's
//!   files: [`ParseInput::first_row`] + row in the file) and both lengths. Milvus vectors are
//!   never null, so there is no option to let nulls through.
//! * **Lists of `Float64` are not vectors here**: they come out unchanged, as lists of doubles
//!   (Milvus `Array<Double>`). Narrowing to `float32` loses bits, so the parser never does it
//!   behind the user's back; the `cast` transformer does it on request (`fields = { v =
//!   "float_vector" }`, `dims = { v = 768 }` for variable-size lists), failing on values beyond
//!   `float32`'s range and on rows of another length.
//! * **`arrays = [..]`** keeps the named list columns as lists (Milvus `Array<Float>` …) even
//!   when they hold `float32`, `float16` or `uint8` values.
//! * **`columns = [..]`** reads only those columns, in that order; only their column chunks
//!   are requested. A name the file lacks fails, listing the file's columns.
//! * **Every file of a job has the planned schema**: with [`ParseInput::schema`] given, each
//!   field must have the same name, position, type and `vmig.type` as there, or the file fails
//!   naming the first field that differs. A field nullable here but not in the planned schema
//!   is accepted, and each of its values checked not to be null. Batches carry the planned
//!   schema exactly.
//! * **Schema metadata**: the file's `vmig.*` schema metadata (primary key, metric, collection)
//!   is kept; other keys (`pandas`, writer details) are dropped.
//! * **Resuming** ([`Parser::seek`]) skips whole row groups by their row counts from the footer
//!   (their chunks are never requested) and the rest of the row group it lands in with a row
//!   selection.
//! * The input's size ([`ParseInput::size`]) is required; encrypted files are refused; the
//!   page index is not read (row groups, not pages, are the unit of reading).
//!
//! For splitting one large file across workers, [`row_group_spans`] lists a file's row groups
//! (first row, rows, byte range) from its footer ([`ParquetParser::metadata`] once read, or
//! parquet's `ParquetMetaDataPushDecoder`); a worker then starts at a row group's first row
//! with [`Parser::seek`]. The [`Parser`] trait has no "stop at row" yet, so a worker reading a
//! range of row groups stops by counting rows itself.

use std::ops::Range;
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use ::parquet::arrow::push_decoder::{
    ParquetPushDecoder, ParquetPushDecoderBuilder, RowGroupSelection,
};
use ::parquet::arrow::ProjectionMask;
use ::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataPushDecoder};
use ::parquet::DecodeResult;
use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Metadata, Schema, SchemaRef, UInt8Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig, Wanted};
use vmig_core::vector::{self, META_DIM, META_TYPE};
use vmig_core::{Error, Result};

/// Options of the `parquet` format (see the module docs for what each column becomes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetParserConfig {
    /// Read only these top-level columns, in this order (default: every column, in the file's
    /// order). Only their column chunks are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// List columns to keep as lists (Milvus `Array`) even though they hold `float32`,
    /// `float16` or `uint8` values, which would otherwise make them vectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<String>,
}

impl ParserConfig for ParquetParserConfig {
    const NAME: &'static str = "parquet";
    const SUMMARY: &'static str =
        "Parquet files (Milvus bulk-import layout or any other): columns become fields, float32/float16/uint8 lists vectors";
    const EXTENSIONS: &'static [&'static str] = &["parquet"];

    fn example() -> Self {
        Self {
            columns: Some(vec!["id".into(), "embedding".into(), "$meta".into()]),
            arrays: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                return Err(Error::config(
                    Self::NAME,
                    "`columns` is empty; leave it out to read every column",
                ));
            }
            for c in columns {
                if c.is_empty() {
                    return Err(Error::config(Self::NAME, "`columns` holds an empty name"));
                }
                if !seen.insert(c.as_str()) {
                    return Err(Error::config(
                        Self::NAME,
                        format!("`columns` names `{c}` twice"),
                    ));
                }
            }
        }
        if let Some(a) = self.arrays.iter().find(|a| a.is_empty()) {
            return Err(Error::config(
                Self::NAME,
                format!("`arrays` holds an empty name ({a:?})"),
            ));
        }
        Ok(())
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        Ok(Box::new(ParquetParser::new(input.clone(), self.clone())?))
    }
}

/// One row group of a Parquet file, as its footer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupSpan {
    /// Its index in the file.
    pub index: usize,
    /// The file's row number of its first row (the sum of the rows of the row groups before).
    pub first_row: u64,
    /// Its rows.
    pub rows: u64,
    /// The bytes of the file its column chunks occupy (from the first chunk's start to the
    /// last one's end).
    pub bytes: Range<u64>,
}

/// The row groups of a file from its footer, in file order: what a source needs to split one
/// large file into parts that start at row-group boundaries (resume each part with
/// [`Parser::seek`] at its `first_row`).
pub fn row_group_spans(metadata: &ParquetMetaData) -> Vec<RowGroupSpan> {
    let mut first_row = 0u64;
    metadata
        .row_groups()
        .iter()
        .enumerate()
        .map(|(index, rg)| {
            let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
            let bytes = rg
                .columns()
                .iter()
                .map(|c| {
                    let (start, len) = c.byte_range();
                    start..start + len
                })
                .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
                .unwrap_or(0..0);
            let span = RowGroupSpan {
                index,
                first_row,
                rows,
                bytes,
            };
            first_row += rows;
            span
        })
        .collect()
}

/// What a column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Passed through as read (a vector-typed column such as a tagged `FixedSizeBinary` is
    /// checked for nulls).
    Plain,
    /// A list of `f32` → float vector.
    Float32,
    /// A list of `f16` → float16 vector.
    Float16,
    /// A list of `u8` → binary vector.
    Binary,
    /// A list of `u8` tagged `bfloat16_vector` → bfloat16 vector.
    BFloat16,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Plain => "column",
            Kind::Float32 => "float vector",
            Kind::Float16 => "float16 vector",
            Kind::Binary => "binary vector",
            Kind::BFloat16 => "bfloat16 vector",
        }
    }

    /// The unit of a row's length in messages.
    fn unit(self) -> &'static str {
        match self {
            Kind::Binary | Kind::BFloat16 => "bytes",
            _ => "values",
        }
    }
}

/// One output column: the field as read and what it becomes.
#[derive(Debug, Clone)]
struct ColumnPlan {
    source: FieldRef,
    kind: Kind,
    /// Values (floats, or bytes for binary and bfloat16 vectors) per row, once known.
    len: Option<usize>,
    /// Where `len` came from, for messages.
    len_from: &'static str,
}

/// What is done to a column to give it the planned field.
#[derive(Debug, Clone, Default)]
struct Fit {
    /// Cast to this type (equal but for nested field names).
    cast: Option<DataType>,
    /// The planned field is not nullable but this file's is: check every value.
    check_nulls: bool,
}

/// The file, once its footer is read.
#[derive(Debug)]
struct Opened {
    reader: ArrowReaderMetadata,
    mask: ProjectionMask,
    /// Output column `i` is column `order[i]` of a decoded batch.
    order: Vec<usize>,
    plans: Vec<ColumnPlan>,
    /// Rows of each row group.
    row_groups: Vec<u64>,
    total: u64,
    /// The file's `vmig.*` schema metadata.
    schema_metadata: Metadata,
    /// With `schema`: per column, how it is fitted to it.
    fits: Vec<Fit>,
    /// Vector columns read by [`crate::parquet_fast`], not the push decoder.
    fast: Vec<FastColumn>,
}

/// A vector column read page by page ([`crate::parquet_fast`]), falling back to arrow-rs's
/// reader for the rest of a row group it cannot read.
#[derive(Debug)]
struct FastColumn {
    /// Its output column.
    out: usize,
    /// Its top-level column in the file.
    root: usize,
    /// Its Parquet leaf column.
    leaf: usize,
    elem: crate::parquet_fast::Elem,
    /// The row group being read.
    group: Option<FastGroup>,
}

/// Where a [`FastColumn`] stands in one row group.
#[derive(Debug)]
struct FastGroup {
    /// The row group.
    index: usize,
    /// Its rows.
    rows: usize,
    /// Its rows handed out or skipped (from its first row).
    taken: usize,
    read: FastRead,
}

/// How a [`FastGroup`] is read.
#[derive(Debug)]
enum FastRead {
    /// Page by page.
    Pages(Box<crate::parquet_fast::ChunkStream>),
    /// By arrow-rs's reader of that column alone, from the row the page-by-page read stopped
    /// at (a chunk it declined: another encoding, a null, a ragged row).
    Arrow {
        decoder: Box<ParquetPushDecoder>,
        ready: crate::parquet_fast::Ready,
    },
}

impl FastRead {
    fn ready(&mut self) -> &mut crate::parquet_fast::Ready {
        match self {
            FastRead::Pages(stream) => stream.ready(),
            FastRead::Arrow { ready, .. } => ready,
        }
    }
}

/// What a vector column read page by page needs before the next batch.
enum FastNeed {
    /// Nothing: its rows are ready.
    Nothing,
    /// These bytes.
    Bytes(Vec<Range<u64>>),
    /// Its chunk was declined: read on with arrow-rs.
    Declined,
}

/// The push decoder of one Parquet input ([`ParquetParserConfig`] says what it reads).
#[derive(Debug)]
pub struct ParquetParser {
    input: ParseInput,
    config: ParquetParserConfig,
    size: u64,
    /// The footer decoder, until the footer is read.
    footer: Option<ParquetMetaDataPushDecoder>,
    /// Whether the file's tail (the first request) was pushed.
    tail_pushed: bool,
    /// The tail's bytes, given to every row decoder too: a file no larger than the tail is
    /// read with that one request, and a large file's last column chunks partly.
    tail: Vec<(Range<u64>, bytes::Bytes)>,
    file: Option<Opened>,
    schema: Option<SchemaRef>,
    decoder: Option<ParquetPushDecoder>,
    /// Rows of the file to skip (from [`Parser::seek`]).
    skip: u64,
    /// The file's row number of the next row the decoder returns.
    next_row: u64,
    /// A converted batch not yet taken by `flush`.
    pending: Option<RecordBatch>,
    /// Whether `flush` returned a batch.
    flushed: bool,
    /// Whether every selected row has been decoded.
    done: bool,
    /// The bytes a fast column asked for (that column and the ranges), not yet pushed.
    fast_wait: Option<(usize, Vec<Range<u64>>)>,
    /// A batch decoded by the push decoder, waiting for the rows of the fast columns.
    raw: Option<RecordBatch>,
}

/// The first request: the file's last bytes, footer and metadata for most files.
const TAIL_BYTES: u64 = 64 * 1024;
/// Magic at the start and end of every Parquet file.
const MAGIC: &[u8; 4] = b"PAR1";
/// Milvus's dynamic field: JSON text.
const DYNAMIC_FIELD: &str = "$meta";
/// Magic of a file whose footer is encrypted.
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";

impl ParquetParser {
    /// A parser of `input` (whose size must be known) with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid options; [`Error::Unsupported`] when the input's size is
    /// unknown; [`Error::Data`] when it is too small to be a Parquet file.
    pub fn new(input: ParseInput, config: ParquetParserConfig) -> Result<Self> {
        config.validate()?;
        let Some(size) = input.size else {
            return Err(Error::unsupported(
                input.name.clone(),
                "the parquet parser needs the input's size (Parquet is read from its footer, at \
                 the end); the source gave none",
            ));
        };
        if size < 12 {
            return Err(Error::data(
                input.name.clone(),
                format!(
                    "not a Parquet file: it is {size} bytes long, shorter than Parquet's magic \
                     numbers and footer length (12 bytes)"
                ),
            ));
        }
        let footer = ParquetMetaDataPushDecoder::try_new(size)?
            .with_page_index_policy(PageIndexPolicy::Skip);
        Ok(Self {
            input,
            config,
            size,
            footer: Some(footer),
            tail_pushed: false,
            tail: Vec::new(),
            file: None,
            schema: None,
            decoder: None,
            skip: 0,
            next_row: 0,
            pending: None,
            flushed: false,
            done: false,
            fast_wait: None,
            raw: None,
        })
    }

    /// The file's metadata (footer), once read.
    pub fn metadata(&self) -> Option<&Arc<ParquetMetaData>> {
        self.file.as_ref().map(|f| f.reader.metadata())
    }

    /// The file's row groups (see [`row_group_spans`]), once the footer is read.
    pub fn row_groups(&self) -> Option<Vec<RowGroupSpan>> {
        self.metadata().map(|m| row_group_spans(m))
    }

    fn name(&self) -> &str {
        &self.input.name
    }

    /// `file, row N` for the file's row `row` (numbered across the source's files).
    fn at_row(&self, row: u64) -> String {
        let global = self.input.first_row + row;
        if self.input.first_row == 0 {
            format!("{}, row {global}", self.name())
        } else {
            format!("{}, row {global} (row {row} of this file)", self.name())
        }
    }

    fn not_parquet(&self, why: impl std::fmt::Display) -> Error {
        Error::data(
            self.name().to_string(),
            format!("not a Parquet file ({} bytes): {why}", self.size),
        )
    }

    /// Pushes bytes to the footer decoder and opens the file once the footer is complete.
    fn push_footer(&mut self, ranges: Vec<Range<u64>>, data: Vec<bytes::Bytes>) -> Result<()> {
        if let Some(tail) = ranges
            .iter()
            .zip(&data)
            .find(|(r, d)| r.end == self.size && d.len() >= 4)
            .map(|(_, d)| d.slice(d.len() - 4..))
        {
            if tail.as_ref() == MAGIC_ENCRYPTED {
                return Err(Error::unsupported(
                    self.name().to_string(),
                    "the Parquet file's footer is encrypted; vmig reads unencrypted files only",
                ));
            }
            if tail.as_ref() != MAGIC {
                return Err(self.not_parquet(format!(
                    "it ends in {:?}, not Parquet's magic \"PAR1\"",
                    String::from_utf8_lossy(&tail)
                )));
            }
        }
        let footer = self
            .footer
            .as_mut()
            .ok_or_else(|| Error::External("parquet footer pushed twice".into()))?;
        if !self.tail_pushed {
            self.tail = ranges.iter().cloned().zip(data.iter().cloned()).collect();
        }
        footer
            .push_ranges(ranges, data)
            .map_err(|e| Error::data(self.input.name.clone(), e.to_string()))?;
        self.tail_pushed = true;
        self.try_footer().map(|_| ())
    }

    /// Decodes the footer if complete; returns the ranges still needed.
    fn try_footer(&mut self) -> Result<Option<Vec<Range<u64>>>> {
        let Some(footer) = self.footer.as_mut() else {
            return Ok(None);
        };
        let decoded = footer.try_decode();
        match decoded {
            Ok(DecodeResult::NeedsData(ranges)) => Ok(Some(ranges)),
            Ok(DecodeResult::Data(metadata)) => {
                self.footer = None;
                self.open(Arc::new(metadata))?;
                Ok(None)
            }
            Ok(DecodeResult::Finished) => Err(Error::External(
                "parquet's footer decoder finished without metadata".into(),
            )),
            Err(e) => Err(self.not_parquet(format!("its footer cannot be read: {e}"))),
        }
    }

    /// Plans the columns from the footer.
    fn open(&mut self, metadata: Arc<ParquetMetaData>) -> Result<()> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
        let reader = ArrowReaderMetadata::try_new(metadata.clone(), options).map_err(|e| {
            Error::unsupported(
                self.name().to_string(),
                format!("the Parquet schema has no Arrow equivalent: {e}"),
            )
        })?;
        let arrow = reader.schema().clone();
        let available = || {
            arrow
                .fields()
                .iter()
                .map(|f| format!("`{}`", f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Output columns as indices into the file's columns.
        let selected: Vec<usize> = match &self.config.columns {
            None => (0..arrow.fields().len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    arrow.index_of(n).map_err(|_| {
                        Error::config(
                            ParquetParserConfig::NAME,
                            format!(
                                "`columns` names `{n}`, which {} does not have; its columns are {}",
                                self.name(),
                                available()
                            ),
                        )
                    })
                })
                .collect::<Result<_>>()?,
        };
        for a in &self.config.arrays {
            match arrow.field_with_name(a) {
                Ok(f)
                    if matches!(
                        f.data_type(),
                        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
                    ) => {}
                Ok(f) => {
                    return Err(Error::config(
                        ParquetParserConfig::NAME,
                        format!(
                            "`arrays` names `{a}`, which is not a list column in {} (it is {})",
                            self.name(),
                            f.data_type()
                        ),
                    ))
                }
                Err(_) => {
                    return Err(Error::config(
                        ParquetParserConfig::NAME,
                        format!(
                            "`arrays` names `{a}`, which {} does not have; its columns are {}",
                            self.name(),
                            available()
                        ),
                    ))
                }
            }
        }
        let descriptor = metadata.file_metadata().schema_descr();
        if descriptor.root_schema().get_fields().len() != arrow.fields().len() {
            return Err(Error::unsupported(
                self.name().to_string(),
                "the Parquet schema's top-level columns do not map one to one to Arrow fields",
            ));
        }
        let plans = selected
            .iter()
            .map(|&i| self.plan(arrow.fields()[i].clone()))
            .collect::<Result<Vec<_>>>()?;
        // Vector columns of one leaf read by the fast path, as long as another column is read
        // by the push decoder (which gives the batches their rows).
        let mut fast: Vec<FastColumn> = Vec::new();
        for (out, (&root, plan)) in selected.iter().zip(&plans).enumerate() {
            let item = match plan.source.data_type() {
                DataType::List(item) | DataType::LargeList(item) => item.data_type(),
                _ => continue,
            };
            let elem = match (plan.kind, item) {
                (Kind::Float32, DataType::Float32) => crate::parquet_fast::Elem::F32,
                (Kind::Float16, DataType::Float16) => crate::parquet_fast::Elem::F16,
                (Kind::Binary | Kind::BFloat16, DataType::UInt8) => crate::parquet_fast::Elem::U8,
                _ => continue,
            };
            let leaves: Vec<usize> = (0..descriptor.num_columns())
                .filter(|&l| descriptor.get_column_root_idx(l) == root)
                .collect();
            if let [leaf] = leaves[..] {
                fast.push(FastColumn {
                    out,
                    root,
                    leaf,
                    elem,
                    group: None,
                });
            }
        }
        if fast.len() == selected.len() {
            fast.clear();
        }
        let decoded: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|r| !fast.iter().any(|f| f.root == *r))
            .collect();
        let mask = ProjectionMask::roots(descriptor, decoded.iter().copied());
        // A decoded batch holds the decoded columns in file order.
        let mut in_file = decoded.clone();
        in_file.sort_unstable();
        let order = selected
            .iter()
            .map(|i| in_file.binary_search(i).unwrap_or(0))
            .collect();
        let row_groups: Vec<u64> = metadata
            .row_groups()
            .iter()
            .map(|rg| u64::try_from(rg.num_rows()).unwrap_or(0))
            .collect();
        let total = row_groups.iter().sum();
        let schema_metadata = arrow
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with("vmig."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.file = Some(Opened {
            reader,
            mask,
            order,
            plans,
            row_groups,
            total,
            schema_metadata,
            fits: Vec::new(),
            fast,
        });
        self.check_skip()?;
        self.try_schema()
    }

    /// What `field` becomes, and its row length if known before reading rows.
    fn plan(&self, field: FieldRef) -> Result<ColumnPlan> {
        let name = field.name();
        let (item, fixed) = match field.data_type() {
            DataType::List(item) | DataType::LargeList(item) => (Some(item.data_type()), None),
            DataType::FixedSizeList(item, n) => (Some(item.data_type()), usize::try_from(*n).ok()),
            _ => (None, None),
        };
        let tag = field.metadata().get(META_TYPE).map(String::as_str);
        let kind = match item {
            _ if self.config.arrays.iter().any(|a| a == name) => Kind::Plain,
            Some(DataType::Float32) => Kind::Float32,
            Some(DataType::Float16) => Kind::Float16,
            Some(DataType::UInt8) => match tag {
                None | Some("binary_vector") => Kind::Binary,
                Some("bfloat16_vector") => Kind::BFloat16,
                Some(other) => {
                    return Err(Error::unsupported(
                        format!("{}, field `{name}`", self.name()),
                        format!(
                        "a list of uint8 tagged `{META_TYPE} = {other}`; vmig reads uint8 lists \
                             as binary vectors (or bfloat16 vectors when tagged so); list it in \
                             `arrays` to keep it as a list"
                    ),
                    ))
                }
            },
            _ => Kind::Plain,
        };
        let mut plan = ColumnPlan {
            source: field.clone(),
            kind,
            len: None,
            len_from: "",
        };
        if kind == Kind::Plain {
            return Ok(plan);
        }
        let bad_dim = |why: String| {
            Error::data(
                format!("{}, field `{name}`", self.name()),
                format!("{why}; it cannot be a {}", kind.what()),
            )
        };
        if let Some(n) = fixed {
            plan.len = Some(n);
            plan.len_from = "its FixedSizeList type";
        } else if let Some(text) = field.metadata().get(META_DIM) {
            let dim: usize = text
                .parse()
                .map_err(|_| bad_dim(format!("its `{META_DIM}` metadata is {text:?}")))?;
            plan.len = Some(match kind {
                Kind::Binary if !dim.is_multiple_of(8) => {
                    return Err(bad_dim(format!(
                        "its `{META_DIM}` metadata is {dim}, not a multiple of 8"
                    )))
                }
                Kind::Binary => dim / 8,
                Kind::BFloat16 => dim * 2,
                _ => dim,
            });
            plan.len_from = "its `vmig.dim` metadata";
        } else if let Some(planned) = self
            .input
            .schema
            .as_ref()
            .and_then(|s| s.field_with_name(name).ok())
        {
            let len = match (kind, planned.data_type()) {
                (Kind::Float32 | Kind::Float16, DataType::FixedSizeList(_, n)) => {
                    usize::try_from(*n).ok()
                }
                (Kind::Binary | Kind::BFloat16, DataType::FixedSizeBinary(w)) => {
                    usize::try_from(*w).ok()
                }
                _ => None,
            };
            if let Some(len) = len {
                plan.len = Some(len);
                plan.len_from = "the job's schema (planned from its first file)";
            }
        }
        Ok(plan)
    }

    fn check_skip(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.skip > file.total {
            return Err(Error::data(
                self.name().to_string(),
                format!(
                    "cannot resume after row {}: the file has {} rows (was it replaced since?)",
                    self.skip, file.total
                ),
            ));
        }
        if self.skip == file.total {
            self.done = true;
        }
        Ok(())
    }

    /// The output field of `plan` (its length known).
    fn output_field(&self, plan: &ColumnPlan) -> Result<Field> {
        let source = &plan.source;
        let name = source.name().as_str();
        let len = plan.len.unwrap_or(0);
        let field = match plan.kind {
            Kind::Plain => {
                let mut field = source.as_ref().clone();
                if name == DYNAMIC_FIELD
                    && vmig_core::types::is_text(source.data_type())
                    && !source.metadata().contains_key(META_TYPE)
                {
                    let mut metadata = source.metadata().clone();
                    metadata.insert(META_TYPE, "json");
                    field = field.with_metadata(metadata);
                }
                if vector::vector_info(&field).is_some() {
                    field = field.with_nullable(false);
                }
                return Ok(field);
            }
            Kind::Float32 => vector::float_vector_field(name, len),
            Kind::Float16 => vector::float16_vector_field(name, len),
            Kind::Binary => vector::binary_vector_field(name, len * 8)?,
            Kind::BFloat16 => {
                if !len.is_multiple_of(2) {
                    return Err(Error::data(
                        format!("{}, field `{name}`", self.name()),
                        format!(
                            "a bfloat16 vector of {len} bytes per row (from {}): not a whole \
                             number of 2-byte values",
                            plan.len_from
                        ),
                    ));
                }
                vector::bfloat16_vector_field(name, len / 2)
            }
        };
        let mut metadata = source.metadata().clone();
        metadata.extend(field.metadata().clone());
        Ok(field.with_metadata(metadata))
    }

    /// Builds the schema once every vector's length is known, and fits it to the planned one.
    fn try_schema(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.schema.is_some()
            || file
                .plans
                .iter()
                .any(|p| p.len.is_none() && p.kind != Kind::Plain)
        {
            return Ok(());
        }
        let fields = file
            .plans
            .iter()
            .map(|p| self.output_field(p))
            .collect::<Result<Vec<_>>>()?;
        let (schema, fits) = match &self.input.schema {
            None => (
                Arc::new(Schema::new_with_metadata(
                    fields,
                    file.schema_metadata.clone(),
                )),
                vec![Fit::default(); file.plans.len()],
            ),
            Some(planned) => (planned.clone(), self.fit(&fields, planned)?),
        };
        if let Some(file) = self.file.as_mut() {
            file.fits = fits;
        }
        self.schema = Some(schema);
        Ok(())
    }

    /// Checks this file's fields against the planned schema (see the module docs).
    fn fit(&self, fields: &[Field], planned: &Schema) -> Result<Vec<Fit>> {
        let mismatch = |what: String| {
            Error::data(
                self.name().to_string(),
                format!(
                    "{what}; every file of a job must have the fields of the job's schema \
                     (planned from its first file), in the same order"
                ),
            )
        };
        let mut fits = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let Some(want) = planned.fields().get(i) else {
                return Err(mismatch(format!(
                    "field `{}` (column {}) is not in the job's schema, which has {} fields",
                    field.name(),
                    i + 1,
                    planned.fields().len()
                )));
            };
            if field.name() != want.name() {
                return Err(mismatch(format!(
                    "column {} is field `{}` here, but `{}` in the job's schema",
                    i + 1,
                    field.name(),
                    want.name()
                )));
            }
            let tag = |f: &Field| f.metadata().get(META_TYPE).cloned();
            if !field.data_type().equals_datatype(want.data_type()) || tag(field) != tag(want) {
                let describe = |f: &Field| match tag(f) {
                    Some(t) => format!("{} ({META_TYPE} = {t})", f.data_type()),
                    None => f.data_type().to_string(),
                };
                return Err(mismatch(format!(
                    "field `{}` is {} here, but {} in the job's schema",
                    field.name(),
                    describe(field),
                    describe(want)
                )));
            }
            fits.push(Fit {
                cast: (field.data_type() != want.data_type()).then(|| want.data_type().clone()),
                check_nulls: field.is_nullable() && !want.is_nullable(),
            });
        }
        if let Some(missing) = planned.fields().get(fields.len()) {
            return Err(mismatch(format!(
                "field `{}` of the job's schema is missing",
                missing.name()
            )));
        }
        Ok(fits)
    }

    /// Builds the decoder for the rows after `skip`.
    fn build_decoder(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut builder = ParquetPushDecoderBuilder::new_with_metadata(file.reader.clone())
            .with_batch_size(self.input.batch_rows.max(1))
            .with_projection(file.mask.clone());
        if self.skip > 0 {
            let mut selections = Vec::new();
            let mut start = 0u64;
            for (index, &rows) in file.row_groups.iter().enumerate() {
                let end = start + rows;
                if end > self.skip {
                    let selection = (start < self.skip).then(|| {
                        let skipped = (self.skip - start) as usize;
                        RowSelection::from(vec![
                            RowSelector::skip(skipped),
                            RowSelector::select(rows as usize - skipped),
                        ])
                    });
                    selections.push(RowGroupSelection::new(index, selection));
                }
                start = end;
            }
            builder = builder.with_row_group_selections(selections);
        }
        let mut decoder = builder.build()?;
        let (ranges, data) = self.tail.iter().cloned().unzip();
        decoder.push_ranges(ranges, data)?;
        self.decoder = Some(decoder);
        Ok(())
    }

    /// Converts a decoded batch: vectors checked and made fixed-size, columns in output order.
    /// `fast` holds the batch's rows of the fast columns, in the order of [`Opened::fast`].
    fn convert(&mut self, batch: &RecordBatch, fast: Vec<ArrayRef>) -> Result<RecordBatch> {
        let first = self.next_row;
        let Some(file) = self.file.as_ref() else {
            return Err(Error::External("parquet batch before the footer".into()));
        };
        let mut plans = file.plans.clone();
        let mut columns = Vec::with_capacity(plans.len());
        for (i, (plan, &j)) in plans.iter_mut().zip(&file.order).enumerate() {
            let array = match file.fast.iter().position(|f| f.out == i) {
                Some(k) => fast.get(k).cloned().ok_or_else(|| {
                    Error::External("parquet: a batch without its fast column".into())
                })?,
                None => batch.column(j).clone(),
            };
            columns.push(if plan.kind == Kind::Plain {
                array
            } else {
                self.vector_column(plan, &array, first)?
            });
        }
        if let Some(file) = self.file.as_mut() {
            file.plans = plans;
        }
        self.try_schema()?;
        let (Some(schema), Some(file)) = (self.schema.clone(), self.file.as_ref()) else {
            return Err(Error::External(
                "parquet schema unknown after a batch".into(),
            ));
        };
        for (i, (column, plan)) in columns.iter_mut().zip(&file.plans).enumerate() {
            let fit = file.fits.get(i).cloned().unwrap_or_default();
            let field = schema.field(i);
            let must_be_set = fit.check_nulls
                || (plan.kind == Kind::Plain && vector::vector_info(field).is_some());
            if must_be_set && column.null_count() > 0 {
                let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0);
                return Err(Error::data(
                    self.at_row(first + row as u64),
                    format!(
                        "field `{}` is null, but {}",
                        field.name(),
                        if vector::vector_info(field).is_some() {
                            "Milvus vectors are never null"
                        } else {
                            "it is not nullable in the job's schema (planned from its first file)"
                        }
                    ),
                ));
            }
            if let Some(to) = &fit.cast {
                *column = arrow::compute::cast(column, to)?;
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// A list column as a vector column, every row checked.
    fn vector_column(
        &self,
        plan: &mut ColumnPlan,
        array: &ArrayRef,
        first: u64,
    ) -> Result<ArrayRef> {
        let name = plan.source.name();
        let (values, offsets) = list_layout(array)?;
        let n = array.len();
        let row_len = |i: usize| offsets[i + 1] - offsets[i];
        if plan.len.is_none() {
            if let Some(i) = (0..n).find(|&i| array.is_valid(i)) {
                plan.len = Some(row_len(i));
                plan.len_from = "the file's first row";
            }
        }
        let what = plan.kind.what();
        for i in 0..n {
            if array.is_null(i) {
                return Err(Error::data(
                    self.at_row(first + i as u64),
                    format!(
                        "{what} `{name}` is null; Milvus vectors are never null (drop or fill \
                         these rows first)"
                    ),
                ));
            }
            let len = row_len(i);
            let want = plan.len.unwrap_or(len);
            if len == 0 {
                return Err(Error::data(
                    self.at_row(first + i as u64),
                    format!(
                        "{what} `{name}` is an empty list; a vector has at least one dimension"
                    ),
                ));
            }
            if len != want {
                return Err(Error::data(
                    self.at_row(first + i as u64),
                    format!(
                        "{what} `{name}` has {len} {unit} in this row, but {want} (from {}); \
                         every vector of a field must have the same dimension",
                        plan.len_from,
                        unit = plan.kind.unit()
                    ),
                ));
            }
        }
        let len = plan.len.unwrap_or(0);
        let values = values.slice(offsets[0], n * len);
        if values.null_count() > 0 {
            let k = (0..values.len()).find(|&k| values.is_null(k)).unwrap_or(0);
            return Err(Error::data(
                self.at_row(first + (k / len) as u64),
                format!(
                    "{what} `{name}` holds a null at position {} of {len}; vectors cannot hold \
                     nulls",
                    k % len
                ),
            ));
        }
        Ok(match plan.kind {
            Kind::Float32 | Kind::Float16 => Arc::new(FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(values.data_type().clone(), true)),
                len as i32,
                values,
                None,
            )?),
            Kind::Binary | Kind::BFloat16 => {
                let bytes = values.as_primitive::<UInt8Type>().values().inner().clone();
                Arc::new(vector::binary_vector_array(bytes, len)?)
            }
            Kind::Plain => values,
        })
    }

    /// The row group holding the file's row `row`, and its first row.
    fn row_group_at(&self, row: u64) -> Option<(usize, u64)> {
        let file = self.file.as_ref()?;
        let mut start = 0u64;
        for (g, &rows) in file.row_groups.iter().enumerate() {
            if row < start + rows {
                return Some((g, start));
            }
            start += rows;
        }
        None
    }

    /// Makes the fast columns ready to hand out the `n` rows from the next row; the bytes
    /// one of them needs first, if any (bytes inside the file's tail are taken from it).
    fn fast_fill(&mut self, n: usize) -> Result<Option<Vec<Range<u64>>>> {
        let count = self.file.as_ref().map_or(0, |f| f.fast.len());
        for k in 0..count {
            loop {
                match self.fast_step(k, n)? {
                    FastNeed::Nothing => break,
                    FastNeed::Declined => self.fast_decline(k)?,
                    FastNeed::Bytes(ranges) => match self.held_in_tail(&ranges) {
                        Some(data) => self.fast_push(k, ranges, data)?,
                        None => {
                            self.fast_wait = Some((k, ranges.clone()));
                            return Ok(Some(ranges));
                        }
                    },
                }
            }
        }
        Ok(None)
    }

    /// One step of fast column `k` towards `n` ready rows from the next row.
    fn fast_step(&mut self, k: usize, n: usize) -> Result<FastNeed> {
        let Some((group, group_start)) = self.row_group_at(self.next_row) else {
            return Err(Error::External(
                "parquet: a batch after the last row group".into(),
            ));
        };
        let Some(file) = self.file.as_ref() else {
            return Ok(FastNeed::Nothing);
        };
        let Some(f) = file.fast.get(k) else {
            return Ok(FastNeed::Nothing);
        };
        if f.group.as_ref().is_none_or(|g| g.index != group) {
            // The first batch of this row group: its reading starts at the next row.
            let offset = usize::try_from(self.next_row - group_start).unwrap_or(usize::MAX);
            let rows = usize::try_from(file.row_groups.get(group).copied().unwrap_or(0))
                .unwrap_or(usize::MAX);
            let meta = file.reader.metadata().row_group(group).column(f.leaf);
            let batch_rows = self.input.batch_rows.max(1);
            let read =
                match crate::parquet_fast::ChunkStream::new(meta, rows, f.elem, offset, batch_rows)
                {
                    Some(stream) => FastRead::Pages(Box::new(stream)),
                    None => FastRead::Arrow {
                        decoder: Box::new(self.arrow_column(k, group, offset)?),
                        ready: Default::default(),
                    },
                };
            if let Some(f) = self.file.as_mut().and_then(|file| file.fast.get_mut(k)) {
                f.group = Some(FastGroup {
                    index: group,
                    rows,
                    taken: offset,
                    read,
                });
            }
        }
        let Some(g) = self
            .file
            .as_mut()
            .and_then(|file| file.fast.get_mut(k))
            .and_then(|f| f.group.as_mut())
        else {
            return Ok(FastNeed::Nothing);
        };
        match &mut g.read {
            FastRead::Pages(stream) => Ok(match stream.fill(n) {
                crate::parquet_fast::Step::Need(range) => FastNeed::Bytes(vec![range]),
                crate::parquet_fast::Step::Ready => FastNeed::Nothing,
                crate::parquet_fast::Step::Declined => FastNeed::Declined,
            }),
            FastRead::Arrow { decoder, ready } => {
                let decoded = loop {
                    if ready.rows() >= n {
                        break Ok(FastNeed::Nothing);
                    }
                    match decoder.try_decode() {
                        Ok(DecodeResult::NeedsData(ranges)) => break Ok(FastNeed::Bytes(ranges)),
                        Ok(DecodeResult::Data(batch)) => ready.push(batch.column(0).clone()),
                        Ok(DecodeResult::Finished) => break Ok(FastNeed::Nothing),
                        Err(e) => break Err(e),
                    }
                };
                decoded.map_err(|e| self.decode_error(e))
            }
        }
    }

    /// Fast column `k` reads the rest of its row group with arrow-rs.
    fn fast_decline(&mut self, k: usize) -> Result<()> {
        let Some(g) = self
            .file
            .as_ref()
            .and_then(|f| f.fast.get(k))
            .and_then(|f| f.group.as_ref())
        else {
            return Ok(());
        };
        let (group, taken) = (g.index, g.taken);
        let decoder = self.arrow_column(k, group, taken)?;
        if let Some(g) = self
            .file
            .as_mut()
            .and_then(|f| f.fast.get_mut(k))
            .and_then(|f| f.group.as_mut())
        {
            g.read = FastRead::Arrow {
                decoder: Box::new(decoder),
                ready: Default::default(),
            };
        }
        Ok(())
    }

    /// arrow-rs's reader of fast column `k` alone in row group `group`, from its row `from`.
    fn arrow_column(&self, k: usize, group: usize, from: usize) -> Result<ParquetPushDecoder> {
        let Some(file) = self.file.as_ref() else {
            return Err(Error::External("parquet batch before the footer".into()));
        };
        let root = file.fast.get(k).map_or(0, |f| f.root);
        let rows =
            usize::try_from(file.row_groups.get(group).copied().unwrap_or(0)).unwrap_or(usize::MAX);
        let descriptor = file.reader.metadata().file_metadata().schema_descr();
        let selection = (from > 0).then(|| {
            RowSelection::from(vec![
                RowSelector::skip(from),
                RowSelector::select(rows.saturating_sub(from)),
            ])
        });
        let mut decoder = ParquetPushDecoderBuilder::new_with_metadata(file.reader.clone())
            .with_batch_size(self.input.batch_rows.max(1))
            .with_projection(ProjectionMask::roots(descriptor, [root]))
            .with_row_group_selections(vec![RowGroupSelection::new(group, selection)])
            .build()?;
        let (ranges, data) = self.tail.iter().cloned().unzip();
        decoder
            .push_ranges(ranges, data)
            .map_err(|e| self.decode_error(e))?;
        Ok(decoder)
    }

    /// The bytes of `ranges` when the file's tail holds them all.
    fn held_in_tail(&self, ranges: &[Range<u64>]) -> Option<Vec<bytes::Bytes>> {
        ranges
            .iter()
            .map(|range| {
                self.tail.iter().find_map(|(r, d)| {
                    (r.start <= range.start && range.end <= r.end).then(|| {
                        let at = (range.start - r.start) as usize;
                        d.slice(at..at + (range.end - range.start) as usize)
                    })
                })
            })
            .collect()
    }

    /// Gives fast column `k` the bytes it asked for.
    fn fast_push(
        &mut self,
        k: usize,
        ranges: Vec<Range<u64>>,
        data: Vec<bytes::Bytes>,
    ) -> Result<()> {
        let Some(g) = self
            .file
            .as_mut()
            .and_then(|f| f.fast.get_mut(k))
            .and_then(|f| f.group.as_mut())
        else {
            return Ok(());
        };
        let pushed = match &mut g.read {
            FastRead::Pages(stream) => {
                for (range, data) in ranges.into_iter().zip(data) {
                    stream.push(range, data);
                }
                Ok(())
            }
            FastRead::Arrow { decoder, .. } => decoder.push_ranges(ranges, data),
        };
        pushed.map_err(|e| self.decode_error(e))
    }

    /// Takes the `n` rows from the next row of every fast column (made ready by
    /// [`Self::fast_fill`]); a row group's reading ends with its last row.
    fn fast_take(&mut self, n: usize) -> Result<Vec<ArrayRef>> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let mut arrays = Vec::with_capacity(file.fast.len());
        for f in &mut file.fast {
            let taken = f.group.as_mut().and_then(|g| {
                let array = g.read.ready().take(n)?;
                g.taken += n;
                Some((array, g.taken >= g.rows))
            });
            let Some((array, ended)) = taken else {
                return Err(Error::External(
                    "parquet: a batch beyond its row group's vectors".into(),
                ));
            };
            if ended {
                f.group = None;
            }
            arrays.push(array);
        }
        Ok(arrays)
    }

    fn decode_error(&self, e: ::parquet::errors::ParquetError) -> Error {
        Error::data(
            self.at_row(self.next_row),
            format!("the Parquet data cannot be decoded: {e}"),
        )
    }
}

/// The values and the per-row offsets into them of a list column.
fn list_layout(array: &ArrayRef) -> Result<(ArrayRef, Vec<usize>)> {
    let to_usize = |o: i64| usize::try_from(o).unwrap_or(0);
    Ok(match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list
                .value_offsets()
                .iter()
                .map(|&o| to_usize(o.into()))
                .collect();
            (list.values().clone(), offsets)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets().iter().map(|&o| to_usize(o)).collect();
            (list.values().clone(), offsets)
        }
        DataType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            let size = usize::try_from(*size).unwrap_or(0);
            let offsets = (0..=list.len()).map(|i| i * size).collect();
            (list.values().clone(), offsets)
        }
        other => {
            return Err(Error::External(
                format!("parquet: expected a list column, got {other}").into(),
            ))
        }
    })
}

impl Parser for ParquetParser {
    fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    fn wanted(&mut self) -> Result<Wanted> {
        loop {
            if self.pending.is_some() {
                return Ok(Wanted::Batch);
            }
            if self.file.is_none() {
                if !self.tail_pushed {
                    let start = self.size.saturating_sub(TAIL_BYTES);
                    return Ok(Wanted::Ranges(std::iter::once(start..self.size).collect()));
                }
                match self.try_footer()? {
                    Some(ranges) => return Ok(Wanted::Ranges(ranges)),
                    None if self.file.is_some() => continue,
                    None => {
                        return Err(Error::External(
                            "parquet footer neither read nor wanting bytes".into(),
                        ))
                    }
                }
            }
            if self.done {
                if self.schema.is_none() {
                    let unknown = self.file.as_ref().and_then(|f| {
                        f.plans
                            .iter()
                            .find(|p| p.len.is_none() && p.kind != Kind::Plain)
                    });
                    if let Some(p) = unknown {
                        return Err(Error::data(
                            self.name().to_string(),
                            format!(
                                "the file has no rows to read, so the dimension of {} `{}` \
                                 (a variable-size list without `{META_DIM}` metadata) is unknown",
                                p.kind.what(),
                                p.source.name()
                            ),
                        ));
                    }
                }
                return Ok(Wanted::Done);
            }
            if self.decoder.is_none() {
                self.build_decoder()?;
            }
            if let Some(batch) = self.raw.take() {
                let n = batch.num_rows();
                if let Some(ranges) = self.fast_fill(n)? {
                    self.raw = Some(batch);
                    return Ok(Wanted::Ranges(ranges));
                }
                let fast = self.fast_take(n)?;
                let converted = self.convert(&batch, fast)?;
                self.next_row += n as u64;
                self.pending = Some(converted);
                continue;
            }
            let Some(decoder) = self.decoder.as_mut() else {
                return Err(Error::External("parquet decoder missing".into()));
            };
            match decoder.try_decode() {
                Ok(DecodeResult::NeedsData(ranges)) => return Ok(Wanted::Ranges(ranges)),
                Ok(DecodeResult::Data(batch)) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    if self.file.as_ref().is_some_and(|f| !f.fast.is_empty()) {
                        // Converted once the fast columns have its rows.
                        self.raw = Some(batch);
                        continue;
                    }
                    let converted = self.convert(&batch, Vec::new())?;
                    self.next_row += batch.num_rows() as u64;
                    self.pending = Some(converted);
                }
                Ok(DecodeResult::Finished) => {
                    self.done = true;
                    let total = self.file.as_ref().map_or(0, |f| f.total);
                    if self.next_row != total {
                        return Err(Error::data(
                            self.name().to_string(),
                            format!(
                                "the footer declares {total} rows, but the row groups held {}",
                                self.next_row
                            ),
                        ));
                    }
                }
                Err(e) => return Err(self.decode_error(e)),
            }
        }
    }

    fn push_ranges(&mut self, ranges: Vec<Range<u64>>, data: Vec<bytes::Bytes>) -> Result<()> {
        if ranges.len() != data.len()
            || ranges
                .iter()
                .zip(&data)
                .any(|(r, d)| r.end.saturating_sub(r.start) != d.len() as u64)
        {
            return Err(Error::External(
                format!(
                    "parquet: pushed {} ranges with {} buffers whose lengths do not match",
                    ranges.len(),
                    data.len()
                )
                .into(),
            ));
        }
        if self.file.is_none() {
            return self.push_footer(ranges, data);
        }
        if self.decoder.is_none() {
            self.build_decoder()?;
        }
        if let Some((k, wait)) = &self.fast_wait {
            if *wait == ranges {
                let k = *k;
                self.fast_wait = None;
                return self.fast_push(k, ranges, data);
            }
        }
        let pushed = match self.decoder.as_mut() {
            Some(decoder) => decoder.push_ranges(ranges, data),
            None => return Ok(()),
        };
        pushed.map_err(|e| self.decode_error(e))
    }

    fn row_groups(&self) -> Option<Vec<u64>> {
        self.metadata().map(|m| {
            m.row_groups()
                .iter()
                .map(|rg| u64::try_from(rg.num_rows()).unwrap_or(0))
                .collect()
        })
    }

    fn total_rows(&self) -> Option<u64> {
        self.file.as_ref().map(|f| f.total)
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        if self.flushed {
            return Err(Error::External(
                "parquet: seek after batches were returned (a resumed parser seeks first)".into(),
            ));
        }
        self.pending = None;
        self.decoder = None;
        self.raw = None;
        self.fast_wait = None;
        if let Some(file) = self.file.as_mut() {
            for f in &mut file.fast {
                f.group = None;
            }
        }
        self.done = false;
        self.skip = to.rows;
        self.next_row = to.rows;
        self.check_skip()
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let _ = buf;
        Err(Error::unsupported(
            self.name().to_string(),
            "Parquet is read by random access (footer, then column chunks): drive the parser \
             with wanted/push_ranges, not decode",
        ))
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.pending.take();
        self.flushed |= batch.is_some();
        Ok(batch)
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.flush()?;
        if !self.done {
            return Err(Error::data(
                self.name().to_string(),
                format!(
                    "the input ended after {} rows, before the parser had read every row group",
                    self.next_row
                ),
            ));
        }
        Ok(batch)
    }
}

vmig_core::register_parser!(ParquetParserConfig);
