//! The ANN-benchmark vector files: TEXMEX's `fvecs`, `ivecs` and `bvecs` (SIFT, GIST, SIFT1B;
//! <http://corpus-texmex.irisa.fr/>) and big-ann-benchmarks' `fbin`, `u8bin` and `i8bin`
//! (BIGANN, Deep1B, Text-to-Image, SSNPP, …): one parser, six registered formats.
//!
//! | `format` | layout (all little-endian)                               | `vector` column               |
//! |----------|----------------------------------------------------------|-------------------------------|
//! | `fvecs`  | per record: `i32` dimension `d`, then `d` × `f32`        | `FloatVector(d)`              |
//! | `ivecs`  | per record: `i32` dimension `d`, then `d` × `i32`        | `FixedSizeList<Int32>(d)`     |
//! | `bvecs`  | per record: `i32` dimension `d`, then `d` × `u8`         | `FixedSizeList<UInt8>(d)`     |
//! | `fbin`   | header `u32` rows `n`, `u32` dimension `d`; `n·d` × `f32` | `FloatVector(d)`              |
//! | `u8bin`  | the same header; `n·d` × `u8`                            | `FixedSizeList<UInt8>(d)`     |
//! | `i8bin`  | the same header; `n·d` × `i8`                            | `FixedSizeList<Int8>(d)`      |
//!
//! Decisions a user should know:
//!
//! * **Columns.** Every row becomes an `id` (`Int64`, the primary key: the schema carries
//!   `vmig.primary_key`, as the Faiss source's does) and a `vector`; both names are options
//!   (`id_field`, `vector_field`). The files hold no ids: a row's id is its row number,
//!   counted across the source's files in their (sorted) order — [`ParseInput::first_row`]
//!   plus the row's number in its file, from 0. Rows, records and bytes in error messages are
//!   counted from 0 too.
//! * **Floats are exact**: `fvecs` and `fbin` components keep their bits (−0.0, subnormals,
//!   ±∞, NaN with its payload). The parser does not refuse NaN or ∞; Milvus does, at insert.
//! * **Integer components stay integers.** `ivecs` files usually hold ground-truth neighbour
//!   ids, not vectors: they become a fixed-size list of `Int32` (a Milvus `Array<Int32>`).
//!   `bvecs`/`u8bin` components become `UInt8` lists and `i8bin` components `Int8` lists
//!   (Milvus has no `UInt8`; an `Int8` list is an `Array<Int8>`). To load any of them as float
//!   vectors, add `[[transform]] type = "cast"`, `fields = { vector = "float_vector" }`: the
//!   fixed-size list keeps its dimension. Bytes convert exactly; `int32` values beyond ±2²⁴
//!   (16 777 216) round to the nearest `float32`, and the cast does not refuse them.
//! * **Checks before rows.** A record whose dimension prefix differs from the first record's
//!   fails naming the file, its byte offset and its number. A dimension of 0, a negative one or
//!   one above 1 048 576 (2²⁰) fails at once: such a file is not of the format (or is
//!   damaged). When the input's size is known, a TEXMEX file whose size is not a whole number
//!   of records, and a big-ann file whose size is not `8 + n·d·size` fail as soon as the first
//!   4 (or 8) bytes are read, before any row; without the size, at the end of the input.
//!   Bytes past the rows a header declares fail too.
//! * **One dimension per source.** Given the job's planned schema ([`ParseInput::schema`],
//!   from the source's first file), a file whose dimension (or columns) differ fails naming
//!   the file and both dimensions.
//! * **An empty TEXMEX file** (0 bytes) has 0 rows when the planned schema is given; as the
//!   first file of a source it fails, since it has no dimension to plan a schema from. An
//!   `fbin` file needs its 8-byte header (`n` may be 0).
//! * **Resume.** [`Parser::next_row_offset`] is where the next unreturned record starts (the
//!   records are fixed-size, so it is `header + rows × record size`); [`Parser::seek`] checks
//!   that a position is exactly that for its row count (the file was not replaced by one of
//!   another dimension), then reads on from there.
//! * **Memory and speed.** A parser holds at most one batch of component bytes (in a 64-byte
//!   aligned Arrow buffer that becomes the batch's values without another copy) and one
//!   incomplete record. Components are copied in bulk: a whole chunk at once for the big-ann
//!   formats, one copy per record (after checking its prefix) for TEXMEX. On a big-endian
//!   machine every component is byte-swapped in place before the batch is made.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, Int64Array, Int8Array, UInt8Array,
};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig};
use vmig_core::ranges::BufferPool;
use vmig_core::vector::{self, META_PRIMARY_KEY};
use vmig_core::{Error, Result};

/// The largest dimension accepted: a larger prefix or header means the file is not what its
/// name says (or is damaged), and reading on would only allocate absurd rows.
const MAX_DIM: u32 = 1 << 20;

/// How rows are framed in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// TEXMEX: every record starts with its dimension (`i32`); no header.
    PerRecord,
    /// big-ann-benchmarks: an 8-byte header (`u32` rows, `u32` dimension), then bare rows.
    Header,
}

/// The type of one vector component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    F32,
    I32,
    U8,
    I8,
}

impl Component {
    fn size(self) -> usize {
        match self {
            Component::F32 | Component::I32 => 4,
            Component::U8 | Component::I8 => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Component::F32 => "float32",
            Component::I32 => "int32",
            Component::U8 => "uint8",
            Component::I8 => "int8",
        }
    }

    fn arrow_type(self) -> DataType {
        match self {
            Component::F32 => DataType::Float32,
            Component::I32 => DataType::Int32,
            Component::U8 => DataType::UInt8,
            Component::I8 => DataType::Int8,
        }
    }
}

/// One of the six formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    name: &'static str,
    framing: Framing,
    component: Component,
}

impl Format {
    const fn new(name: &'static str, framing: Framing, component: Component) -> Format {
        Format {
            name,
            framing,
            component,
        }
    }

    /// Bytes read before the dimension is known: the first record's prefix, or the header.
    fn header_len(self) -> usize {
        match self.framing {
            Framing::PerRecord => 4,
            Framing::Header => 8,
        }
    }

    /// Where the dimension is stored.
    fn dim_offset(self) -> u64 {
        match self.framing {
            Framing::PerRecord => 0,
            Framing::Header => 4,
        }
    }
}

const FVECS: Format = Format::new("fvecs", Framing::PerRecord, Component::F32);
const IVECS: Format = Format::new("ivecs", Framing::PerRecord, Component::I32);
const BVECS: Format = Format::new("bvecs", Framing::PerRecord, Component::U8);
const FBIN: Format = Format::new("fbin", Framing::Header, Component::F32);
const U8BIN: Format = Format::new("u8bin", Framing::Header, Component::U8);
const I8BIN: Format = Format::new("i8bin", Framing::Header, Component::I8);

/// Defines one format's configuration type: the same two options for all six.
macro_rules! vecs_config {
    ($(#[$doc:meta])* $config:ident, $format:ident, $summary:literal) => {
        $(#[$doc])*
        ///
        /// Options: `id_field` (default `id`) and `vector_field` (default `vector`), non-empty
        /// and different. The files hold no ids: a row's id is its row number across the
        /// source's files in order ([`ParseInput::first_row`] plus its number in the file,
        /// from 0), and the schema names it the primary key. Float components keep their bits
        /// (NaN payloads included); integer components stay integers — a `cast` transform with
        /// `fields = { vector = "float_vector" }` makes float vectors of them (`int32` values
        /// beyond ±2²⁴ round). A record whose dimension prefix differs from the first
        /// record's, a dimension outside 1..=1 048 576, an input size that is not whole
        /// records (TEXMEX) or not `8 + n·d·size` (big-ann, checked before any row), fewer or
        /// more rows than the header says, and a dimension other than the job's planned
        /// schema's fail naming the file and the byte offset. A reader resumes at any record
        /// boundary ([`Parser::seek`]).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $config {
            /// Name of the `Int64` id column (the primary key: the row number across the
            /// source's files). Default `id`.
            #[serde(default = "vmig_core::vector::default_id_field")]
            pub id_field: String,
            /// Name of the vector column. Default `vector`.
            #[serde(default = "vmig_core::vector::default_vector_field")]
            pub vector_field: String,
        }

        impl Default for $config {
            fn default() -> Self {
                Self {
                    id_field: vector::default_id_field(),
                    vector_field: vector::default_vector_field(),
                }
            }
        }

        impl ParserConfig for $config {
            const NAME: &'static str = $format.name;
            const SUMMARY: &'static str = $summary;
            const EXTENSIONS: &'static [&'static str] = &[$format.name];

            fn example() -> Self {
                Self::default()
            }

            fn validate(&self) -> Result<()> {
                vector::check_id_and_vector_fields(Self::NAME, &self.id_field, &self.vector_field)
            }

            fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
                Ok(Box::new(VecsParser::new(
                    $format,
                    input.clone(),
                    self.id_field.clone(),
                    self.vector_field.clone(),
                )))
            }
        }

        vmig_core::register_parser!($config);
    };
}

vecs_config!(
    /// Options of the `fvecs` format (TEXMEX float32 vectors, each record prefixed by its
    /// dimension): rows become an `id` and a `FloatVector(d)`, bit-exact.
    FvecsParserConfig,
    FVECS,
    "TEXMEX float32 vectors, each prefixed by its dimension: id (row number) + FloatVector, bit-exact"
);
vecs_config!(
    /// Options of the `ivecs` format (TEXMEX int32 vectors, usually ground-truth neighbour
    /// ids): rows become an `id` and a fixed-size list of `Int32` (a `cast` to `float_vector`
    /// makes vectors of them).
    IvecsParserConfig,
    IVECS,
    "TEXMEX int32 vectors (often ground-truth ids), each prefixed by its dimension: id + list of Int32"
);
vecs_config!(
    /// Options of the `bvecs` format (TEXMEX uint8 vectors, e.g. SIFT1B): rows become an `id`
    /// and a fixed-size list of `UInt8`, kept as integers (a `cast` to `float_vector` makes
    /// them float vectors).
    BvecsParserConfig,
    BVECS,
    "TEXMEX uint8 vectors (SIFT1B), each prefixed by its dimension: id + list of UInt8 (cast to float_vector)"
);
vecs_config!(
    /// Options of the `fbin` format (big-ann-benchmarks: `u32` rows, `u32` dimension, then
    /// float32 rows): rows become an `id` and a `FloatVector(d)`, bit-exact.
    FbinParserConfig,
    FBIN,
    "big-ann-benchmarks float32 vectors (u32 rows, u32 dim header): id (row number) + FloatVector, bit-exact"
);
vecs_config!(
    /// Options of the `u8bin` format (big-ann-benchmarks uint8 vectors): rows become an `id`
    /// and a fixed-size list of `UInt8`, kept as integers (a `cast` to `float_vector` makes
    /// them float vectors).
    U8binParserConfig,
    U8BIN,
    "big-ann-benchmarks uint8 vectors (u32 rows, u32 dim header): id + list of UInt8 (cast to float_vector)"
);
vecs_config!(
    /// Options of the `i8bin` format (big-ann-benchmarks int8 vectors): rows become an `id`
    /// and a fixed-size list of `Int8`, kept as integers (a `cast` to `float_vector` makes
    /// them float vectors).
    I8binParserConfig,
    I8BIN,
    "big-ann-benchmarks int8 vectors (u32 rows, u32 dim header): id + list of Int8 (cast to float_vector)"
);

/// The fixed sizes of one file, known once its dimension is.
#[derive(Debug, Clone, Copy)]
struct Shape {
    dim: usize,
    /// Bytes of one row's components.
    row_bytes: usize,
    /// Bytes of one record in the file: the row, plus the 4-byte prefix in TEXMEX formats.
    record_bytes: usize,
    /// Byte offset of the first record.
    data_start: u64,
    /// Rows in the file, when known: from the header, or from the input's size.
    rows: Option<u64>,
}

impl Shape {
    /// The byte offset at which record `row` starts.
    fn offset_of(&self, row: u64) -> u64 {
        self.data_start
            .saturating_add(row.saturating_mul(self.record_bytes as u64))
    }
}

#[derive(Debug)]
struct Layout {
    schema: SchemaRef,
    shape: Shape,
}

/// The push decoder of one `fvecs`/`ivecs`/`bvecs`/`fbin`/`u8bin`/`i8bin` input, built by the
/// format's configuration ([`FvecsParserConfig`], …, which say what it reads and checks).
#[derive(Debug)]
pub struct VecsParser {
    format: Format,
    input: ParseInput,
    id_field: String,
    vector_field: String,
    /// The first record's prefix or the header, until complete.
    head: [u8; 8],
    head_len: usize,
    layout: Option<Layout>,
    /// Component bytes of the current batch's complete rows, prefixes stripped.
    values: Vec<u8>,
    /// An incomplete record (prefix included), at most one record's bytes.
    partial: Vec<u8>,
    /// Rows returned by `flush` so far (or skipped by `seek`).
    rows_out: u64,
    /// The input was empty and the planned schema stands in for the missing dimension.
    empty: bool,
}

impl VecsParser {
    fn new(format: Format, input: ParseInput, id_field: String, vector_field: String) -> Self {
        Self {
            format,
            input,
            id_field,
            vector_field,
            head: [0; 8],
            head_len: 0,
            layout: None,
            values: Vec::new(),
            partial: Vec::new(),
            rows_out: 0,
            empty: false,
        }
    }

    fn at(&self, offset: u64) -> String {
        format!("{} at byte {offset}", self.input.name)
    }

    /// Interprets the complete first prefix or header in `self.head`.
    fn read_header(&self) -> Result<Layout> {
        let format = self.format;
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&self.head[i..i + 4]);
            w
        };
        let size = format.component.size();
        let (dim, rows, data_start) = match format.framing {
            Framing::PerRecord => {
                let d = i32::from_le_bytes(word(0));
                let dim = u32::try_from(d).ok().filter(|d| (1..=MAX_DIM).contains(d));
                let Some(dim) = dim else {
                    return Err(Error::data(
                        self.at(0),
                        format!(
                            "the first record says dimension {d}; a .{} record starts with its \
                             dimension, between 1 and {MAX_DIM} (is this a .{} file?)",
                            format.name, format.name
                        ),
                    ));
                };
                let dim = dim as usize;
                let record = 4 + dim * size;
                let rows = match self.input.size {
                    None => None,
                    Some(total) => {
                        let cut = total % record as u64;
                        if cut != 0 {
                            return Err(Error::data(
                                self.at(total - cut),
                                format!(
                                    "the file is truncated: {total} bytes is not a whole number of \
                                     {record}-byte records (4 + {dim}·{size} bytes each, as its \
                                     first record's dimension {dim} says); the last record has \
                                     only {cut} bytes"
                                ),
                            ));
                        }
                        Some(total / record as u64)
                    }
                };
                (dim, rows, 0)
            }
            Framing::Header => {
                let n = u32::from_le_bytes(word(0));
                let d = u32::from_le_bytes(word(4));
                if !(1..=MAX_DIM).contains(&d) {
                    return Err(Error::data(
                        self.at(4),
                        format!(
                            "the header says dimension {d}; a .{} file's dimension (its second \
                             u32) is between 1 and {MAX_DIM} (is this a .{} file?)",
                            format.name, format.name
                        ),
                    ));
                }
                let expected = 8 + u64::from(n) * u64::from(d) * size as u64;
                if let Some(total) = self.input.size {
                    if total != expected {
                        let verdict = if total < expected {
                            "it is truncated".to_string()
                        } else {
                            format!("it is not a valid .{} file", format.name)
                        };
                        return Err(Error::data(
                            self.at(0),
                            format!(
                                "the header says {n} rows of {d} {} components, which take \
                                 {expected} bytes with the 8-byte header, but the file has \
                                 {total} bytes; {verdict}",
                                format.component.name(),
                            ),
                        ));
                    }
                }
                (d as usize, Some(u64::from(n)), 8)
            }
        };
        let row_bytes = dim * size;
        let shape = Shape {
            dim,
            row_bytes,
            record_bytes: match format.framing {
                Framing::PerRecord => 4 + row_bytes,
                Framing::Header => row_bytes,
            },
            data_start,
            rows,
        };
        let vector = match format.component {
            Component::F32 => vector::float_vector_field(&self.vector_field, dim),
            c => Field::new(&self.vector_field, list_type(c, dim), false),
        };
        let schema = Schema::new(vec![
            Field::new(&self.id_field, DataType::Int64, false),
            vector,
        ])
        .with_metadata(HashMap::from([(
            META_PRIMARY_KEY.to_string(),
            self.id_field.clone(),
        )]));
        Ok(Layout {
            schema: Arc::new(schema),
            shape,
        })
    }

    /// Checks the file's schema against the job's planned one (files of one source agree).
    fn check_planned(&self, layout: &Layout) -> Result<()> {
        let Some(planned) = &self.input.schema else {
            return Ok(());
        };
        if planned.fields() == layout.schema.fields() {
            return Ok(());
        }
        let planned_dim = planned
            .field_with_name(&self.vector_field)
            .ok()
            .and_then(|f| match f.data_type() {
                DataType::FixedSizeList(_, n) => usize::try_from(*n).ok(),
                _ => None,
            });
        let message = match planned_dim {
            Some(p) if p != layout.shape.dim => format!(
                "the file's vectors have {} dimensions, but the job's schema (planned from its \
                 first file) has {p}: all files of one source must have the same dimension",
                layout.shape.dim
            ),
            _ => format!(
                "the file's columns are {}, but the job's schema (planned from its first file) \
                 has {}: all files of one source must have the same format and options",
                describe(&layout.schema),
                describe(planned)
            ),
        };
        Err(Error::data(self.at(self.format.dim_offset()), message))
    }

    /// Appends whole `records` to the batch, checking TEXMEX prefixes.
    fn push_records(&mut self, shape: Shape, records: &[u8]) -> Result<()> {
        match self.format.framing {
            Framing::Header => self.values.extend_from_slice(records),
            Framing::PerRecord => {
                // `dim` ≤ MAX_DIM, so it fits an i32.
                let want = (shape.dim as i32).to_le_bytes();
                for record in records.chunks_exact(shape.record_bytes) {
                    let (prefix, components) = record.split_at(4);
                    if prefix != want {
                        let row = self.rows_out + (self.values.len() / shape.row_bytes) as u64;
                        let mut said = [0u8; 4];
                        said.copy_from_slice(prefix);
                        return Err(Error::data(
                            self.at(shape.offset_of(row)),
                            format!(
                                "record {row} says dimension {}, but the file's first record \
                                 says {}: every record of a .{} file must have the same \
                                 dimension",
                                i32::from_le_bytes(said),
                                shape.dim,
                                self.format.name
                            ),
                        ));
                    }
                    self.values.extend_from_slice(components);
                }
            }
        }
        Ok(())
    }

    /// The error for bytes past the rows the header (or the size) declares.
    fn extra_bytes(&self, shape: Shape, rows: u64) -> Error {
        let why = match self.format.framing {
            Framing::Header => format!(
                "the file holds more bytes than its header's {rows} rows of {} bytes; it is not a \
                 valid .{} file",
                shape.row_bytes, self.format.name
            ),
            Framing::PerRecord => format!(
                "the input holds more bytes than its size, {}, said",
                shape.offset_of(rows)
            ),
        };
        Error::data(self.at(shape.offset_of(rows)), why)
    }
}

/// The Arrow type of an integer vector column: a fixed-size list of `component`.
fn list_type(component: Component, dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(component.arrow_type(), true)),
        dim as i32,
    )
}

/// `` `id` Int64, `vector` FixedSizeList(…) ``: a schema's columns, for messages (also the
/// `hdf5` parser's).
pub(crate) fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}` {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Parser for VecsParser {
    fn schema(&self) -> Option<SchemaRef> {
        match &self.layout {
            Some(layout) => Some(layout.schema.clone()),
            None if self.empty => self.input.schema.clone(),
            None => None,
        }
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let mut used = 0;
        if self.layout.is_none() {
            let need = self.format.header_len();
            let take = (need - self.head_len).min(buf.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&buf[..take]);
            self.head_len += take;
            used = take;
            if self.head_len < need {
                return Ok(used);
            }
            let layout = self.read_header()?;
            self.check_planned(&layout)?;
            if self.format.framing == Framing::PerRecord {
                // The prefix read is the start of record 0.
                self.partial.extend_from_slice(&self.head[..4]);
            }
            self.layout = Some(layout);
        }
        let Some(shape) = self.layout.as_ref().map(|l| l.shape) else {
            return Ok(used);
        };
        let batch_rows = self.input.batch_rows;
        while used < buf.len() {
            let in_batch = self.values.len() / shape.row_bytes;
            if in_batch >= batch_rows {
                break; // full: the caller flushes, then offers the rest again
            }
            let next_row = self.rows_out + in_batch as u64;
            let mut fit = (batch_rows - in_batch) as u64;
            if let Some(rows) = shape.rows {
                if next_row >= rows {
                    return Err(self.extra_bytes(shape, rows));
                }
                fit = fit.min(rows - next_row);
            }
            if self.values.capacity() == 0 {
                // At most one batch: exact when the row count was checked against the input's
                // size, else (a header's count could be damaged) at most 8 MiB, grown as needed.
                let rows = if self.input.size.is_some() {
                    fit
                } else {
                    fit.min((8 << 20) / shape.row_bytes as u64 + 1)
                };
                // From the reusable buffers: the sink drops batches in the order they were made,
                // and a new buffer each time would leave the allocator holding many of them.
                self.values = BufferPool::global().take(rows as usize * shape.row_bytes);
            }
            let rest = &buf[used..];
            if !self.partial.is_empty() || rest.len() < shape.record_bytes {
                let take = (shape.record_bytes - self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                used += take;
                if self.partial.len() == shape.record_bytes {
                    let record = std::mem::take(&mut self.partial);
                    let pushed = self.push_records(shape, &record);
                    self.partial = record;
                    self.partial.clear();
                    pushed?;
                }
                continue;
            }
            let whole = ((rest.len() / shape.record_bytes) as u64).min(fit) as usize;
            let bytes = whole * shape.record_bytes;
            self.push_records(shape, &rest[..bytes])?;
            used += bytes;
        }
        Ok(used)
    }

    fn total_rows(&self) -> Option<u64> {
        match &self.layout {
            Some(layout) => layout.shape.rows,
            None if self.empty => Some(0),
            None => None,
        }
    }

    fn next_row_offset(&self) -> Option<u64> {
        let layout = self.layout.as_ref()?;
        Some(layout.shape.offset_of(self.rows_out))
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let Some(layout) = &self.layout else {
            return Err(Error::unsupported(
                self.input.name.clone(),
                format!(
                    "seek before the .{} file's {} was read",
                    self.format.name,
                    match self.format.framing {
                        Framing::PerRecord => "first record's dimension",
                        Framing::Header => "header",
                    }
                ),
            ));
        };
        self.check_planned(layout)?;
        let shape = layout.shape;
        let expected = shape.offset_of(to.rows);
        let past_end = shape.rows.is_some_and(|rows| to.rows > rows);
        // Without an offset the row count alone places the row (a source splitting the file
        // into row ranges); with one it must be where that row starts.
        if past_end || to.offset.is_some_and(|o| o != expected) {
            let location = match to.offset {
                Some(offset) => self.at(offset),
                None => self.input.name.clone(),
            };
            let rows = match shape.rows {
                Some(rows) => format!(" and the file has {rows} rows"),
                None => String::new(),
            };
            return Err(Error::data(
                location,
                format!(
                    "cannot resume after row {} here: in this file (records of {} bytes from byte \
                     {}) row {} starts at byte {expected}{rows} (was the file replaced since?)",
                    to.rows, shape.record_bytes, shape.data_start, to.rows
                ),
            ));
        }
        self.rows_out = to.rows;
        self.values.clear();
        self.partial.clear();
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let Some(layout) = &self.layout else {
            return Ok(None);
        };
        let shape = layout.shape;
        let rows = self.values.len() / shape.row_bytes;
        if rows == 0 {
            return Ok(None);
        }
        let first = self.input.first_row.saturating_add(self.rows_out);
        let ids = match (i64::try_from(first), i64::try_from(first + rows as u64)) {
            (Ok(first), Ok(end)) => Int64Array::from_iter_values(first..end),
            _ => {
                return Err(Error::data(
                    self.at(shape.offset_of(self.rows_out)),
                    format!("row ids from {first} on do not fit an Int64"),
                ))
            }
        };
        let mut bytes = std::mem::take(&mut self.values);
        let size = self.format.component.size();
        if cfg!(target_endian = "big") && size > 1 {
            for component in bytes.chunks_exact_mut(size) {
                component.reverse();
            }
        }
        // Aligned to the component size (copied otherwise), so the typed views below never
        // panic.
        let buffer = BufferPool::global().arrow_buffer(bytes, size);
        let len = rows * shape.dim;
        let values: ArrayRef = match self.format.component {
            Component::F32 => Arc::new(Float32Array::new(ScalarBuffer::new(buffer, 0, len), None)),
            Component::I32 => Arc::new(Int32Array::new(ScalarBuffer::new(buffer, 0, len), None)),
            Component::U8 => Arc::new(UInt8Array::new(ScalarBuffer::new(buffer, 0, len), None)),
            Component::I8 => Arc::new(Int8Array::new(ScalarBuffer::new(buffer, 0, len), None)),
        };
        let vectors: ArrayRef = match layout.schema.field(1).data_type() {
            DataType::FixedSizeList(item, dim) => Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *dim,
                values,
                None,
            )?),
            other => {
                return Err(Error::schema(format!(
                    "vector column of type {other}, not a fixed-size list"
                )))
            }
        };
        let batch = RecordBatch::try_new(layout.schema.clone(), vec![Arc::new(ids), vectors])?;
        self.rows_out += rows as u64;
        Ok(Some(batch))
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.flush()?;
        let Some(layout) = &self.layout else {
            let name = self.format.name;
            if self.head_len == 0 && self.format.framing == Framing::PerRecord {
                if self.input.schema.is_some() {
                    self.empty = true;
                    return Ok(None);
                }
                return Err(Error::data(
                    self.at(0),
                    format!(
                        "the file is empty: a .{name} file without records has no dimension to \
                         plan the job's schema from"
                    ),
                ));
            }
            return Err(Error::data(
                self.at(self.head_len as u64),
                match self.format.framing {
                    Framing::PerRecord => format!(
                        "the file ends inside its first record's 4-byte dimension; it is not a \
                         whole .{name} file"
                    ),
                    Framing::Header => format!(
                        "the file ends inside its 8-byte header (rows, dimension); it is not a \
                         whole .{name} file"
                    ),
                },
            ));
        };
        let shape = layout.shape;
        let at = self.at(shape.offset_of(self.rows_out));
        if !self.partial.is_empty() {
            return Err(Error::data(
                at,
                format!(
                    "the file ends inside row {}: it holds {} of the row's {} bytes; it is \
                     truncated",
                    self.rows_out,
                    self.partial.len(),
                    shape.record_bytes
                ),
            ));
        }
        if let Some(rows) = shape.rows {
            if self.rows_out < rows {
                return Err(Error::data(
                    at,
                    format!(
                        "the file ends after {} of the {rows} rows {} (row {} is missing); it is \
                         truncated",
                        self.rows_out,
                        match self.format.framing {
                            Framing::Header => "its header declares",
                            Framing::PerRecord => "its size holds",
                        },
                        self.rows_out
                    ),
                ));
            }
        }
        Ok(batch)
    }
}
