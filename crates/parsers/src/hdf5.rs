//! The `hdf5` parser (cargo feature `hdf5`): one 2-D dataset of an HDF5 file, as
//! [ann-benchmarks](https://github.com/erikbern/ann-benchmarks) publishes its data sets
//! (`glove-100-angular.hdf5`, `sift-128-euclidean.hdf5`, …): datasets `train` (the points),
//! `test` (the queries), `neighbors` (ground-truth ids, `int32`) and `distances`, and a root
//! attribute `distance` naming the metric.
//!
//! ```toml
//! [source]
//! type = "files"
//! path = "sift-128-euclidean.hdf5"
//! dataset = "train"          # default; `test`, `neighbors`, `distances`, or any 2-D dataset path
//! ```
//!
//! Decisions a user should know:
//!
//! * **Columns.** Every row of the dataset becomes an `id` (`Int64`, the primary key: the schema
//!   carries `vmig.primary_key`) and a `vector`; both names are options (`id_field`,
//!   `vector_field`). A row's id is its row number counted across the source's files in their
//!   (sorted) order: [`ParseInput::first_row`] plus its row in the dataset, from 0 — for
//!   ann-benchmarks the ids `neighbors` refers to.
//! * **Types.** `float32` → `FloatVector(d)`, bit-exact (−0.0, subnormals, ±∞, NaN payloads;
//!   big-endian files too); `bool` (h5py's, as ann-benchmarks stores `hamming` data) →
//!   `BinaryVector(d)`, one bit per value, the lowest dimension in the most significant bit
//!   (NumPy's `packbits`, Milvus's order; `d` must be a multiple of 8). `float64`, `int8`,
//!   `int16`, `int32`, `int64` and `uint8` stay numbers: a fixed-size list of them (`neighbors`
//!   reads as a list of `Int32`); `[[transform]] type = "cast"` with
//!   `fields = { vector = "float_vector" }` makes float vectors of them (`float64` rounds to
//!   the nearest `float32`). Other types (strings, compounds, `float16`, wider unsigned
//!   integers) are refused naming the file, the dataset and its type.
//! * **Metric.** The root attribute `distance` becomes the schema's `vmig.metric` (used when the
//!   Milvus index is created): `euclidean` → `L2`, `angular` → `COSINE`, `jaccard` →
//!   `JACCARD`, `hamming` → `HAMMING`, `dot` → `IP`. Other values, and the ground-truth
//!   datasets `neighbors` and `distances` (not points of the space), get no metric.
//! * **Shape.** Only 2-D datasets (rows × dimension) are read. A 1-D or 3-D dataset is refused
//!   naming its shape — including ann-benchmarks' sparse `jaccard` layout (`train` holds every
//!   row's items back to back and `size_train` their counts), which has no fixed dimension.
//! * **Memory, disk and I/O — the one format that is not streamed.** The HDF5 C library reads a
//!   file by path with random access, and where its metadata lies is only known to it. So the
//!   parser asks its reader for the whole file, 16 MiB at a time in order, writes it to a
//!   temporary file (in `$TMPDIR`, else `/tmp`; removed when the parser is dropped), and opens
//!   that with HDF5 once complete. Memory stays at one 16 MiB range plus one batch; **disk use
//!   is the file's size**, per file being read at once. No size limit is imposed: a temporary
//!   directory without room fails naming it (point `TMPDIR` at a larger disk; on a file system
//!   without locks, such as some NFS mounts, also set `HDF5_USE_FILE_LOCKING=FALSE`). Rows are
//!   known only after the whole file was copied, so planning a `files` source copies each file
//!   once to count them, and reading copies it again per partition: a file of more than the
//!   source's `partition_rows` rows (default 1 048 576) is split into row-range partitions
//!   that each copy the whole file — set `partition_rows` above its row count to keep it one
//!   partition (two copies in all).
//! * **Resume.** [`Parser::seek`] resumes at a row count (`offset: None`): rows are read by
//!   hyperslab, so a resumed reader copies the file, then reads from that row on.
//! * **Errors** name the file and the dataset: a file that is not HDF5 (no signature at byte 0
//!   or at a user-block offset 512, 1024, …), a missing dataset (the error lists the file's
//!   datasets with their shapes and types), a wrong rank or type, a dimension or metric that
//!   differs from the job's planned schema (all files of a source agree).
//!
//! Built against the system HDF5 (1.8.4 or later; Debian's `libhdf5-dev`, which `scripts/hdf5`
//! installs) through [`hdf5-metno`](https://crates.io/crates/hdf5-metno), the maintained fork
//! of the `hdf5` crate. The HDF5 library is not thread-safe: hdf5-metno serializes every call,
//! so several HDF5 files read at once share one lock.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use crate::vecs::describe;
use arrow::array::{ArrayRef, FixedSizeListArray, Int64Array, PrimitiveArray};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Schema, SchemaRef, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use h5::types::{
    FixedAscii, FixedUnicode, FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode,
};
use hdf5_metno as h5;
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig, Wanted};
use vmig_core::vector::{self, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{Error, Result};

/// Bytes asked for per range while the file is copied.
const COPY_CHUNK: u64 = 16 << 20;

/// The HDF5 superblock signature, at byte 0 or at a user-block offset (512, 1024, 2048, …).
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Options of the `hdf5` format (cargo feature `hdf5`): one 2-D dataset of an HDF5 file, as
/// ann-benchmarks stores its data sets; see the module docs for types, metric and memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hdf5ParserConfig {
    /// The dataset to read (a path inside the file): `train` (default), `test`, `neighbors`,
    /// `distances`, or any 2-D dataset.
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// Name of the `Int64` id column (the primary key: the row number across the source's
    /// files). Default `id`.
    #[serde(default = "vmig_core::vector::default_id_field")]
    pub id_field: String,
    /// Name of the vector column. Default `vector`.
    #[serde(default = "vmig_core::vector::default_vector_field")]
    pub vector_field: String,
}

fn default_dataset() -> String {
    "train".into()
}

impl Default for Hdf5ParserConfig {
    fn default() -> Self {
        Self {
            dataset: default_dataset(),
            id_field: vector::default_id_field(),
            vector_field: vector::default_vector_field(),
        }
    }
}

impl ParserConfig for Hdf5ParserConfig {
    const NAME: &'static str = "hdf5";
    const SUMMARY: &'static str =
        "one 2-D dataset of an HDF5 file (ann-benchmarks: train/test/neighbors): id (row number) + \
         FloatVector (float32, bit-exact) or BinaryVector (bool); copied to $TMPDIR first";
    const EXTENSIONS: &'static [&'static str] = &["hdf5", "h5"];

    fn example() -> Self {
        Self::default()
    }

    fn validate(&self) -> Result<()> {
        if self.dataset.is_empty() {
            return Err(Error::config(
                Self::NAME,
                "`dataset` may not be empty (ann-benchmarks files hold `train`, `test`, \
                 `neighbors` and `distances`)",
            ));
        }
        vector::check_id_and_vector_fields(Self::NAME, &self.id_field, &self.vector_field)
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        self.validate()?;
        Ok(Box::new(Hdf5Parser::new(input.clone(), self.clone())))
    }
}

vmig_core::register_parser!(Hdf5ParserConfig);

/// How the dataset's elements are read and which column they become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `FloatVector(d)`.
    F32,
    /// `BinaryVector(d)`, packed from one bool per dimension.
    Bool,
    /// A fixed-size list of the dataset's numbers.
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
}

impl Kind {
    fn of(descriptor: &TypeDescriptor) -> Option<Self> {
        Some(match descriptor {
            TypeDescriptor::Float(FloatSize::U4) => Kind::F32,
            TypeDescriptor::Float(FloatSize::U8) => Kind::F64,
            TypeDescriptor::Boolean => Kind::Bool,
            TypeDescriptor::Integer(IntSize::U1) => Kind::I8,
            TypeDescriptor::Integer(IntSize::U2) => Kind::I16,
            TypeDescriptor::Integer(IntSize::U4) => Kind::I32,
            TypeDescriptor::Integer(IntSize::U8) => Kind::I64,
            TypeDescriptor::Unsigned(IntSize::U1) => Kind::U8,
            _ => return None,
        })
    }

    fn list_item(self) -> DataType {
        match self {
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::I8 => DataType::Int8,
            Kind::I16 => DataType::Int16,
            Kind::I32 => DataType::Int32,
            Kind::I64 => DataType::Int64,
            Kind::U8 | Kind::Bool => DataType::UInt8,
        }
    }
}

/// The whole file, copied, open in HDF5.
struct Opened {
    dataset: h5::Dataset,
    // Kept open while the dataset is read.
    _file: h5::File,
    kind: Kind,
    dim: usize,
    rows: u64,
    schema: SchemaRef,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("kind", &self.kind)
            .field("dim", &self.dim)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// The parser of one HDF5 input ([`Hdf5ParserConfig`] says what it reads). A random-access
/// parser: it asks for the whole file (see the module docs), then returns batches.
#[derive(Debug)]
pub struct Hdf5Parser {
    input: ParseInput,
    config: Hdf5ParserConfig,
    // Declared before `copy`: HDF5 closes the file before the copy is removed.
    opened: Option<Opened>,
    /// The local copy of the input, once the first bytes arrived.
    copy: Option<tempfile::NamedTempFile>,
    /// Bytes of the input copied so far (from byte 0, in order).
    copied: u64,
    /// The next offset where the HDF5 signature may stand, while it has not been found.
    signature_at: Option<u64>,
    /// The next row to return (rows before it were returned, or skipped by `seek`).
    next_row: u64,
}

impl Hdf5Parser {
    /// A parser for `input` with the options `config`.
    pub fn new(input: ParseInput, config: Hdf5ParserConfig) -> Self {
        Self {
            input,
            config,
            opened: None,
            copy: None,
            copied: 0,
            signature_at: Some(0),
            next_row: 0,
        }
    }

    /// `<file> (dataset `train`)`: where errors about the dataset are.
    fn location(&self) -> String {
        format!("{} (dataset `{}`)", self.input.name, self.config.dataset)
    }

    fn size(&self) -> Result<u64> {
        self.input.size.ok_or_else(|| {
            Error::unsupported(
                self.input.name.clone(),
                "an HDF5 file is read by random access, so its size must be known; this reader \
                 did not give it",
            )
        })
    }

    /// Appends `data` (the input's bytes from `self.copied`) to the local copy, looking for
    /// the HDF5 signature on the way.
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let start = self.copied;
        let end = start + data.len() as u64;
        let size = self.size()?;
        // A superblock sits at 0 or at 512 · 2ⁿ: check each such offset that this range holds.
        while let Some(at) = self.signature_at {
            if at + SIGNATURE.len() as u64 > end {
                break;
            }
            if at >= start {
                let i = (at - start) as usize;
                if &data[i..i + SIGNATURE.len()] == SIGNATURE {
                    self.signature_at = None;
                    break;
                }
            }
            self.signature_at = Some(if at == 0 { 512 } else { at * 2 });
        }
        if let Some(at) = self.signature_at {
            if at + SIGNATURE.len() as u64 > size {
                return Err(Error::data(
                    format!("{} at byte 0", self.input.name),
                    "not an HDF5 file: it does not start with the HDF5 signature \
                     `\\x89HDF\\r\\n\\x1a\\n` (nor holds it at a user-block offset 512, 1024, …); \
                     check the path and the `format`",
                ));
            }
        }
        if self.copy.is_none() {
            let copy = tempfile::Builder::new()
                .prefix("vmig-hdf5-")
                .suffix(".h5")
                .tempfile()
                .map_err(|e| self.copy_error(e))?;
            self.copy = Some(copy);
        }
        if let Some(copy) = self.copy.as_mut() {
            if let Err(e) = copy.as_file_mut().write_all(data) {
                return Err(self.copy_error(e));
            }
        }
        self.copied = end;
        Ok(())
    }

    fn copy_error(&self, e: std::io::Error) -> Error {
        Error::Io(e).context(format!(
            "copying {} ({} bytes) to a temporary file in {}: the HDF5 library reads files from \
             a local copy, which needs as much room as the file; free space there or set TMPDIR \
             to a directory on a larger disk",
            self.input.name,
            self.input.size.unwrap_or(0),
            std::env::temp_dir().display()
        ))
    }

    /// Opens the complete copy and the dataset, and checks it.
    fn open(&mut self) -> Result<()> {
        let Some(copy) = &self.copy else {
            return Err(Error::data(
                format!("{} at byte 0", self.input.name),
                "not an HDF5 file: the file is empty",
            ));
        };
        let file = h5::File::open(copy.path()).map_err(|e| {
            Error::data(
                self.input.name.clone(),
                format!("the HDF5 library cannot open the file ({e}); it is damaged or truncated"),
            )
        })?;
        let name = &self.config.dataset;
        let dataset = match file.dataset(name) {
            Ok(d) => d,
            Err(_) => {
                return Err(Error::config(
                    Hdf5ParserConfig::NAME,
                    format!(
                        "{} has no dataset `{name}`; its datasets: {}. Set `dataset` to the one \
                         to read",
                        self.input.name,
                        list_datasets(&file)
                    ),
                ))
            }
        };
        let location = self.location();
        let shape = dataset.shape();
        let (rows, dim) = match shape.as_slice() {
            [rows, dim] => (*rows as u64, *dim),
            _ => {
                let sparse = shape.len() == 1 && file.dataset(&format!("size_{name}")).is_ok();
                let hint = if sparse {
                    format!(
                        " This is ann-benchmarks' sparse layout (`{name}` holds every row's items \
                         back to back, `size_{name}` their counts), which has no fixed \
                         dimension and is not read."
                    )
                } else {
                    String::new()
                };
                return Err(Error::unsupported(
                    location,
                    format!(
                        "the dataset is {}-D, of shape {shape:?}; vmig reads 2-D datasets, one \
                         vector per row (rows × dimension): set `dataset` to one (ann-benchmarks \
                         files hold `train` and `test`).{hint}",
                        shape.len()
                    ),
                ));
            }
        };
        if dim == 0 {
            return Err(Error::unsupported(
                location,
                format!("the dataset's rows have no values (shape {shape:?})"),
            ));
        }
        let descriptor = dataset
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| {
                Error::unsupported(
                    location.clone(),
                    format!("the dataset's element type is not one vmig reads ({e})"),
                )
            })?;
        let kind = Kind::of(&descriptor).ok_or_else(|| {
            Error::unsupported(
                location.clone(),
                format!(
                    "the dataset holds `{descriptor}` values; vmig reads float32 (float vectors), \
                     bool (binary vectors), and float64, int8, int16, int32, int64 and uint8 \
                     (fixed-size lists, `cast` to float_vector)"
                ),
            )
        })?;
        let vector_field = match kind {
            Kind::F32 => vector::float_vector_field(&self.config.vector_field, dim),
            Kind::Bool => {
                vector::binary_vector_field(&self.config.vector_field, dim).map_err(|e| {
                    Error::unsupported(
                        location.clone(),
                        format!(
                            "a bool dataset of {dim} dimensions cannot be a binary vector: {e}"
                        ),
                    )
                })?
            }
            k => Field::new(&self.config.vector_field, list_type(k, dim)?, false),
        };
        let mut metadata =
            HashMap::from([(META_PRIMARY_KEY.to_string(), self.config.id_field.clone())]);
        let ground_truth = matches!(name.trim_start_matches('/'), "neighbors" | "distances");
        if let (Some(metric), false) = (metric(&file), ground_truth) {
            metadata.insert(META_METRIC.to_string(), metric.to_string());
        }
        let schema = Arc::new(
            Schema::new(vec![
                Field::new(&self.config.id_field, DataType::Int64, false),
                vector_field,
            ])
            .with_metadata(metadata),
        );
        self.check_planned(&schema)?;
        if self.next_row > rows {
            return Err(self.past_end(self.next_row, rows));
        }
        self.opened = Some(Opened {
            dataset,
            _file: file,
            kind,
            dim,
            rows,
            schema,
        });
        Ok(())
    }

    /// Checks the file's schema against the job's planned one (files of one source agree).
    fn check_planned(&self, schema: &Schema) -> Result<()> {
        let Some(planned) = &self.input.schema else {
            return Ok(());
        };
        let metric = |s: &Schema| s.metadata().get(META_METRIC).cloned();
        if planned.fields() != schema.fields() {
            return Err(Error::data(
                self.location(),
                format!(
                    "the dataset's columns are {}, but the job's schema (planned from its first \
                     file) has {}: all files of one source must have the same dimension and type",
                    describe(schema),
                    describe(planned)
                ),
            ));
        }
        if metric(planned) != metric(schema) {
            let show = |m: Option<String>| m.unwrap_or_else(|| "none".into());
            return Err(Error::data(
                self.location(),
                format!(
                    "the file's `distance` attribute gives the metric {}, but the job's first \
                     file gives {}: one collection has one metric",
                    show(metric(schema)),
                    show(metric(planned))
                ),
            ));
        }
        Ok(())
    }

    fn past_end(&self, row: u64, rows: u64) -> Error {
        Error::data(
            self.location(),
            format!(
                "cannot resume after row {row}: the dataset has {rows} rows (was the file \
                 replaced since?)"
            ),
        )
    }

    /// Reads rows `rows` of the open dataset as a batch.
    fn read_rows(&self, opened: &Opened, rows: Range<u64>) -> Result<RecordBatch> {
        let first = self.input.first_row + rows.start;
        let n = (rows.end - rows.start) as usize;
        let ids = Int64Array::from_iter_values((0..n as u64).map(|i| (first + i) as i64));
        let range = rows.start as usize..rows.end as usize;
        let fail = |e: h5::Error| {
            Error::data(
                self.location(),
                format!(
                    "the HDF5 library failed reading rows {}..{}: {e}",
                    rows.start, rows.end
                ),
            )
        };
        let ds = &opened.dataset;
        let item = opened.schema.field(1).data_type();
        let vectors: ArrayRef = match opened.kind {
            Kind::F32 => list::<Float32Type>(ds, range, item).map_err(fail)?,
            Kind::F64 => list::<Float64Type>(ds, range, item).map_err(fail)?,
            Kind::I8 => list::<Int8Type>(ds, range, item).map_err(fail)?,
            Kind::I16 => list::<Int16Type>(ds, range, item).map_err(fail)?,
            Kind::I32 => list::<Int32Type>(ds, range, item).map_err(fail)?,
            Kind::I64 => list::<Int64Type>(ds, range, item).map_err(fail)?,
            Kind::U8 => list::<UInt8Type>(ds, range, item).map_err(fail)?,
            Kind::Bool => {
                let bits = read::<bool>(ds, range).map_err(fail)?;
                let row_bytes = opened.dim / 8;
                let mut packed = vec![0u8; n * row_bytes];
                for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
                    let (row, d) = (i / opened.dim, i % opened.dim);
                    packed[row * row_bytes + d / 8] |= 0x80 >> (d % 8);
                }
                Arc::new(vector::binary_vector_array(
                    Buffer::from_vec(packed),
                    row_bytes,
                )?)
            }
        };
        Ok(RecordBatch::try_new(
            opened.schema.clone(),
            vec![Arc::new(ids), vectors],
        )?)
    }
}

/// Rows `rows` of a 2-D dataset, all columns, in row-major order.
fn read<T: h5::H5Type>(dataset: &h5::Dataset, rows: Range<usize>) -> h5::Result<Vec<T>> {
    let array = dataset.read_slice_2d::<T, _>((rows, ..))?;
    Ok(array.into_raw_vec_and_offset().0)
}

/// Rows `rows` as a fixed-size list column of type `list` (its values copied into Arrow
/// without conversion: HDF5 converts only the byte order, so floats keep their bits).
fn list<A>(dataset: &h5::Dataset, rows: Range<usize>, list: &DataType) -> h5::Result<ArrayRef>
where
    A: ArrowPrimitiveType,
    A::Native: h5::H5Type,
{
    let values = read::<A::Native>(dataset, rows)?;
    let DataType::FixedSizeList(item, dim) = list else {
        return Err(format!("{list} is not a fixed-size list (a vmig bug)").into());
    };
    let values = PrimitiveArray::<A>::new(ScalarBuffer::from(values), None);
    FixedSizeListArray::try_new(item.clone(), *dim, Arc::new(values), None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| e.to_string().into())
}

/// The Arrow type of a list column of `kind` values.
fn list_type(kind: Kind, dim: usize) -> Result<DataType> {
    let dim = i32::try_from(dim)
        .map_err(|_| Error::schema(format!("a dimension of {dim} does not fit Arrow")))?;
    Ok(DataType::FixedSizeList(
        Arc::new(Field::new_list_field(kind.list_item(), true)),
        dim,
    ))
}

/// The Milvus metric of the file's root attribute `distance`, when it has an equivalent.
fn metric(file: &h5::File) -> Option<&'static str> {
    let attr = file.attr("distance").ok()?;
    let text = match attr.dtype().and_then(|t| t.to_descriptor()).ok()? {
        TypeDescriptor::VarLenUnicode => attr.read_scalar::<VarLenUnicode>().ok()?.to_string(),
        TypeDescriptor::VarLenAscii => attr.read_scalar::<VarLenAscii>().ok()?.to_string(),
        TypeDescriptor::FixedUnicode(_) => attr.read_scalar::<FixedUnicode<64>>().ok()?.to_string(),
        TypeDescriptor::FixedAscii(_) => attr.read_scalar::<FixedAscii<64>>().ok()?.to_string(),
        _ => return None,
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "euclidean" => Some("L2"),
        "angular" => Some("COSINE"),
        "jaccard" => Some("JACCARD"),
        "hamming" => Some("HAMMING"),
        "dot" => Some("IP"),
        _ => None,
    }
}

/// `` `train` (1000 × 128, float32), `neighbors` (…) ``: the root group's datasets, for errors.
fn list_datasets(file: &h5::File) -> String {
    let names = file.member_names().unwrap_or_default();
    let listed: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let d = file.dataset(n).ok()?;
            let shape = d
                .shape()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" × ");
            let ty = d
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_or_else(|_| "?".to_string(), |t| t.to_string());
            Some(format!("`{n}` ({shape}, {ty})"))
        })
        .collect();
    if listed.is_empty() {
        "none at the root".into()
    } else {
        listed.join(", ")
    }
}

impl Parser for Hdf5Parser {
    fn schema(&self) -> Option<SchemaRef> {
        // Known once the file is open; given a planned schema, that one (checked equal).
        let opened = self.opened.as_ref()?;
        Some(self.input.schema.clone().unwrap_or(opened.schema.clone()))
    }

    fn wanted(&mut self) -> Result<Wanted> {
        if self.opened.is_none() {
            let size = self.size()?;
            if self.copied < size {
                let end = size.min(self.copied + COPY_CHUNK);
                return Ok(Wanted::Ranges(std::iter::once(self.copied..end).collect()));
            }
            self.open()?;
        }
        Ok(match &self.opened {
            Some(o) if self.next_row < o.rows => Wanted::Batch,
            _ => Wanted::Done,
        })
    }

    fn push_ranges(&mut self, ranges: Vec<Range<u64>>, data: Vec<bytes::Bytes>) -> Result<()> {
        for (range, bytes) in ranges.iter().zip(&data) {
            if self.opened.is_some()
                || range.start != self.copied
                || range.end - range.start != bytes.len() as u64
            {
                return Err(Error::External(
                    format!(
                        "{}: the HDF5 parser was given bytes {}..{} ({} bytes) but asked for the \
                         bytes from {} (a reader bug)",
                        self.input.name,
                        range.start,
                        range.end,
                        bytes.len(),
                        self.copied
                    )
                    .into(),
                ));
            }
            self.append(bytes)?;
        }
        Ok(())
    }

    fn total_rows(&self) -> Option<u64> {
        self.opened.as_ref().map(|o| o.rows)
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        if let Some(offset) = to.offset {
            return Err(Error::data(
                self.input.name.clone(),
                format!(
                    "cannot resume at byte {offset}: HDF5 rows are found by row number, not by \
                     byte (was the checkpoint written for another format?)"
                ),
            ));
        }
        if let Some(o) = &self.opened {
            if to.rows > o.rows {
                return Err(self.past_end(to.rows, o.rows));
            }
        }
        // Before the file is open, the row count is checked when it is.
        self.next_row = to.rows;
        Ok(())
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let _ = buf;
        Err(Error::External(
            format!(
                "{}: the HDF5 parser reads by random access (Parser::wanted), not from a stream \
                 (a reader bug)",
                self.input.name
            )
            .into(),
        ))
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let Some(opened) = &self.opened else {
            return Ok(None);
        };
        if self.next_row >= opened.rows {
            return Ok(None);
        }
        let end = opened
            .rows
            .min(self.next_row + self.input.batch_rows as u64);
        let batch = self.read_rows(opened, self.next_row..end)?;
        let batch = match &self.input.schema {
            Some(planned) => batch.with_schema(planned.clone())?,
            None => batch,
        };
        self.next_row = end;
        Ok(Some(batch))
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match &self.opened {
            Some(o) if self.next_row < o.rows => Err(Error::External(
                format!(
                    "{}: finish was called with rows {}..{} not taken (Parser::wanted said \
                     Batch; a reader bug)",
                    self.input.name, self.next_row, o.rows
                )
                .into(),
            )),
            Some(_) => Ok(None),
            None => Err(Error::data(
                format!("{} at byte {}", self.input.name, self.copied),
                format!(
                    "the input ended after {} of its {} bytes; an HDF5 file is read whole",
                    self.copied,
                    self.input.size.unwrap_or(0)
                ),
            )),
        }
    }
}
