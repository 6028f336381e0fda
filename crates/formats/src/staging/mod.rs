//! Writers for the files Milvus 2.x bulk import reads: Parquet, NumPy and row-based JSON.
//!
//! Each writer produces exactly one import unit — one `.parquet` file, one `.json` file, or one
//! directory holding one `<field>.npy` per field — synchronously, on the local file system.
//! [`RotatingWriter`] splits a stream of batches across such files below a size limit; it is
//! what every sink that writes staging files (`files`, `milvus2` bulk mode) uses. Deciding where
//! files go and what becomes of a finished one is the sink's job.
//!
//! The main design decision: every writer can append *as many leading rows of a batch as fit*
//! under a byte limit ([`StagingWriter::write_within`]), using an exact size (NumPy, JSON) or an
//! upper-bound estimate (Parquet) of the finished file. Output can therefore be split into files
//! below a size limit without ever rewriting a file.
//!
//! Encodings (see the project reference, section D.6):
//!
//! | Arrow column (see [`vmig_core::vector`])    | Parquet            | NumPy                    | JSON                  |
//! |---------------------------------------------|--------------------|--------------------------|-----------------------|
//! | float vector `FixedSizeList<Float32>(dim)`  | `List<Float32>`    | `<f4`, shape (N, dim)    | array of numbers      |
//! | binary vector `FixedSizeBinary(dim/8)`      | `List<UInt8>`      | `\|u1`, shape (N, dim/8)  | array of `u8` numbers |
//! | `Bool`, `Int8`…`Int64`, `Float32`, `Float64` | same               | `\|b1` `\|i1` `<i2` `<i4` `<i8` `<f4` `<f8` | `true`/number |
//! | `Utf8` (VarChar)                            | `Utf8`             | `<U{max chars}`          | string                |
//! | JSON (`Utf8`, `vmig.type = json`)           | `Utf8`             | `<U{max chars}`          | object (non-objects as a JSON string) |
//! | `List<scalar>` (Milvus Array)               | `List<scalar>`     | unsupported              | array                 |
//! | sparse vector `Map<UInt32, Float32>`        | `Utf8`: `{"indices":[…],"values":[…]}` | unsupported | that object  |
//!
//! Which Milvus type a column is comes from the one type table ([`vmig_core::types`]), so the
//! staging formats accept exactly what `vmig plan` and the `milvus2` insert path accept, minus
//! what a format cannot hold. `LargeUtf8` and `Utf8View` columns are written like `Utf8`, and
//! fixed-size lists of scalars like lists. Sparse vectors are JSON text in the form Milvus
//! 2.4.3+ imports from both JSON and Parquet files (see the `sparse` module); Milvus's NumPy
//! import has no sparse vectors, so NumPy refuses them. Float16 and bfloat16 vectors (which
//! these writers do not encode yet) and every type the table refuses are rejected with
//! [`Error::Unsupported`] naming the field and its type.
//! JSON text is validated in every format. Nulls are kept in Parquet and JSON (Milvus 2.5
//! nullable fields), and rejected in NumPy and in vector columns.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use vmig_core::types::{self, MilvusType};
use vmig_core::{Error, Result};

mod file;
mod json;
pub mod manifest;
mod npy;
mod pq;
mod rotate;
mod sparse;
mod vector_pages;

pub use self::file::StagingFile;
pub use self::json::JsonWriter;
pub use self::npy::NumpyWriter;
pub use self::pq::{ParquetCompression, ParquetOptions, ParquetWriter};
pub use self::rotate::{FileNamer, RotatedFile, RotatingWriter};

/// The largest file (for NumPy: set of `.npy` files) Milvus imports
/// (`common.ImportMaxFileSize` / `maxImportFileSizeInGB`): 16 GiB. Every sink that writes
/// staging files refuses a larger `max_file_size`.
pub const MILVUS_MAX_FILE_SIZE: vmig_core::ByteSize = vmig_core::ByteSize::gib(16);

/// The three file formats Milvus bulk import reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StagingFormat {
    /// One `.parquet` file per unit (Milvus 2.3.4+, recommended for 2.4+).
    #[default]
    Parquet,
    /// One directory of `<field>.npy` files per unit (Milvus 2.3+).
    Numpy,
    /// One row-based `.json` file per unit (all 2.x versions).
    Json,
}

impl StagingFormat {
    /// The name used in configs and messages (`parquet`, `numpy`, `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            StagingFormat::Parquet => "parquet",
            StagingFormat::Numpy => "numpy",
            StagingFormat::Json => "json",
        }
    }

    /// File name extension of a unit (`None` for NumPy, whose unit is a directory).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            StagingFormat::Parquet => Some("parquet"),
            StagingFormat::Numpy => None,
            StagingFormat::Json => Some("json"),
        }
    }
}

impl fmt::Display for StagingFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options for [`StagingWriter::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingOptions {
    /// Parquet row groups and compression (ignored by the other formats).
    pub parquet: ParquetOptions,
    /// Whether [`StagingWriter::finish`] calls `fsync` on the files it wrote (default `true`).
    pub sync: bool,
}

impl Default for StagingOptions {
    fn default() -> Self {
        StagingOptions {
            parquet: ParquetOptions::default(),
            sync: true,
        }
    }
}

/// What a finished writer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    /// The file (Parquet, JSON) or directory (NumPy) written.
    pub path: PathBuf,
    /// The files written: the file itself, or each `<field>.npy` in schema order.
    pub files: Vec<PathBuf>,
    /// Rows written.
    pub rows: u64,
    /// Bytes on disk (sum over `files`).
    pub bytes: u64,
}

/// One open staging file (or NumPy directory) of any format.
///
/// Every batch passed in MUST have the schema the writer was created with.
#[derive(Debug)]
pub enum StagingWriter {
    /// See [`ParquetWriter`].
    Parquet {
        /// The writer (boxed: it is much larger than the others).
        writer: Box<ParquetWriter<StagingFile>>,
        /// The file being written.
        path: PathBuf,
        /// Whether to `fsync` at finish.
        sync: bool,
    },
    /// See [`NumpyWriter`].
    Numpy(NumpyWriter),
    /// See [`JsonWriter`].
    Json {
        /// The writer.
        writer: JsonWriter<StagingFile>,
        /// The file being written.
        path: PathBuf,
        /// Whether to `fsync` at finish.
        sync: bool,
    },
}

impl StagingWriter {
    /// Creates `path` (a file for Parquet and JSON, a directory for NumPy) and starts a unit.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the first field the format cannot hold; I/O errors.
    pub fn create(
        format: StagingFormat,
        path: &Path,
        schema: &SchemaRef,
        options: &StagingOptions,
    ) -> Result<StagingWriter> {
        check_schema(format, schema)?;
        let create = |p: &Path| {
            File::create(p)
                .and_then(|f| StagingFile::new(f, options.sync))
                .map_err(|e| Error::from(e).context(format!("creating {}", p.display())))
        };
        Ok(match format {
            StagingFormat::Parquet => StagingWriter::Parquet {
                writer: Box::new(
                    ParquetWriter::try_new(create(path)?, schema, &options.parquet)?
                        .with_label(path),
                ),
                path: path.to_path_buf(),
                sync: options.sync,
            },
            StagingFormat::Numpy => {
                StagingWriter::Numpy(NumpyWriter::create(path, schema)?.with_sync(options.sync))
            }
            StagingFormat::Json => StagingWriter::Json {
                writer: JsonWriter::try_new(create(path)?, schema)?.with_label(path),
                path: path.to_path_buf(),
                sync: options.sync,
            },
        })
    }

    /// The format being written.
    pub fn format(&self) -> StagingFormat {
        match self {
            StagingWriter::Parquet { .. } => StagingFormat::Parquet,
            StagingWriter::Numpy(_) => StagingFormat::Numpy,
            StagingWriter::Json { .. } => StagingFormat::Json,
        }
    }

    /// The file or directory being written.
    pub fn path(&self) -> &Path {
        match self {
            StagingWriter::Parquet { path, .. } | StagingWriter::Json { path, .. } => path,
            StagingWriter::Numpy(w) => w.dir(),
        }
    }

    /// Appends every row of `batch`.
    ///
    /// # Errors
    /// [`Error::Data`] naming the field and row of a value the format cannot hold; I/O errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            StagingWriter::Parquet { writer, .. } => writer.write(batch),
            StagingWriter::Numpy(w) => w.write(batch),
            StagingWriter::Json { writer, .. } => writer.write(batch),
        }
    }

    /// Appends the longest prefix of `batch` that keeps the finished file within `max_bytes`
    /// (for NumPy: the sum of the `.npy` files) and returns its row count. Returns 0 when not
    /// even the first row fits; a caller then finishes this file and starts a new one.
    ///
    /// # Errors
    /// As [`StagingWriter::write`].
    pub fn write_within(&mut self, batch: &RecordBatch, max_bytes: u64) -> Result<usize> {
        match self {
            StagingWriter::Parquet { writer, .. } => writer.write_within(batch, max_bytes),
            StagingWriter::Numpy(w) => w.write_within(batch, max_bytes),
            StagingWriter::Json { writer, .. } => writer.write_within(batch, max_bytes),
        }
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        match self {
            StagingWriter::Parquet { writer, .. } => writer.rows(),
            StagingWriter::Numpy(w) => w.rows(),
            StagingWriter::Json { writer, .. } => writer.rows(),
        }
    }

    /// The size the unit would have if finished now (exact for NumPy and JSON, an upper-bound
    /// estimate for Parquet).
    pub fn bytes(&self) -> u64 {
        match self {
            StagingWriter::Parquet { writer, .. } => writer.bytes(),
            StagingWriter::Numpy(w) => w.bytes(),
            StagingWriter::Json { writer, .. } => writer.bytes(),
        }
    }

    /// Completes the unit and returns what was written.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> Result<FinishedFile> {
        let done = |file: StagingFile, path: PathBuf, rows: u64, sync: bool| {
            let file = file
                .finish(sync)
                .map_err(|e| Error::from(e).context(format!("writing {}", path.display())))?;
            let bytes = file.metadata()?.len();
            Ok(FinishedFile {
                files: vec![path.clone()],
                path,
                rows,
                bytes,
            })
        };
        match self {
            StagingWriter::Parquet { writer, path, sync } => {
                let rows = writer.rows();
                let file = writer.finish()?;
                done(file, path, rows, sync)
            }
            StagingWriter::Numpy(w) => w.finish(),
            StagingWriter::Json { writer, path, sync } => {
                let rows = writer.rows();
                let file = writer.finish()?;
                done(file, path, rows, sync)
            }
        }
    }

    /// Abandons the unit and removes everything it wrote.
    ///
    /// # Errors
    /// When the files cannot be removed.
    pub fn discard(self) -> Result<()> {
        match self {
            StagingWriter::Parquet { writer, path, .. } => {
                drop(writer);
                remove_if_exists(&path)
            }
            StagingWriter::Numpy(w) => w.discard(),
            StagingWriter::Json { writer, path, .. } => {
                drop(writer);
                remove_if_exists(&path)
            }
        }
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Checks that every column of `schema` can be written in `format`.
///
/// # Errors
/// [`Error::Unsupported`] naming the first field that cannot, its type and the format.
pub fn check_schema(format: StagingFormat, schema: &Schema) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for field in schema.fields() {
        Column::classify(field, format)?;
        if format == StagingFormat::Numpy {
            npy::check_file_name(field.name())?;
        }
        if !names.insert(field.name().as_str()) {
            return Err(Error::schema(format!(
                "field `{}` appears twice; {format} staging files need unique field names",
                field.name()
            )));
        }
    }
    Ok(())
}

/// How a column is encoded, decided once per schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Column {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `Utf8`, `LargeUtf8` or `Utf8View` text (VarChar).
    Text,
    /// JSON text.
    Json,
    /// Float vector of this dimension.
    FloatVector(usize),
    /// Binary vector of this many bytes per row.
    BinaryVector(usize),
    /// A list of scalars (Milvus Array); not for NumPy.
    Array(Box<Column>),
    /// A sparse float vector (`Map<UInt32, Float32>`), written as JSON text; not for NumPy.
    SparseVector,
}

impl Column {
    /// The encoding of `field` in `format`: its Milvus type from the one type table
    /// ([`vmig_core::types`]), which every format must hold or refuse by name.
    pub(crate) fn classify(field: &Field, format: StagingFormat) -> Result<Column> {
        let unsupported = |what: String| Refusal {
            location: format!("field `{}`", field.name()),
            message: format!("{what} cannot be written to {format} staging files"),
        };
        let t = types::milvus_field(field).map_err(|e| match e {
            Error::Unsupported { location, message } => Error::unsupported(
                location,
                format!("{message}; so it cannot be written to {format} staging files"),
            ),
            other => other,
        })?;
        if let Some(c) = Self::scalar(t.kind) {
            return Ok(c);
        }
        match t.kind {
            MilvusType::Json => Ok(Column::Json),
            MilvusType::FloatVector => Ok(Column::FloatVector(t.dim)),
            MilvusType::BinaryVector => match field.data_type() {
                DataType::FixedSizeBinary(w) if *w > 0 => Ok(Column::BinaryVector(*w as usize)),
                other => Err(unsupported(format!("a binary vector of type {other}")).into()),
            },
            MilvusType::SparseFloatVector => {
                if format == StagingFormat::Numpy {
                    return Err(unsupported(format!(
                        "a sparse_float_vector ({}, Milvus {t})",
                        field.data_type()
                    ))
                    .with_reason("Milvus imports sparse vectors only from parquet or json files"));
                }
                Ok(Column::SparseVector)
            }
            MilvusType::Array => {
                if format == StagingFormat::Numpy {
                    return Err(
                        unsupported(format!("an array column ({})", field.data_type()))
                            .with_reason("Milvus imports arrays only from parquet or json files"),
                    );
                }
                match t.element.and_then(Self::scalar) {
                    Some(c) => Ok(Column::Array(Box::new(c))),
                    None => {
                        Err(unsupported(format!("an array column ({})", field.data_type())).into())
                    }
                }
            }
            kind => Err(unsupported(format!(
                "a {} ({}, Milvus {t})",
                kind.vector_type().map_or(kind.name(), |v| v.as_str()),
                field.data_type()
            ))
            .into()),
        }
    }

    fn scalar(t: MilvusType) -> Option<Column> {
        Some(match t {
            MilvusType::Bool => Column::Bool,
            MilvusType::Int8 => Column::Int8,
            MilvusType::Int16 => Column::Int16,
            MilvusType::Int32 => Column::Int32,
            MilvusType::Int64 => Column::Int64,
            MilvusType::Float => Column::Float32,
            MilvusType::Double => Column::Float64,
            MilvusType::VarChar => Column::Text,
            _ => return None,
        })
    }
}

/// A field a staging format cannot hold, before it becomes an [`Error::Unsupported`].
struct Refusal {
    location: String,
    message: String,
}

impl Refusal {
    /// Adds why, after a colon.
    fn with_reason(self, why: &str) -> Error {
        Error::unsupported(self.location, format!("{}: {why}", self.message))
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::unsupported(r.location, r.message)
    }
}

/// Checks that `batch` has the column types of `schema`, so no downcast can fail.
pub(crate) fn check_batch(schema: &Schema, batch: &RecordBatch, output: &Path) -> Result<()> {
    let same = batch.num_columns() == schema.fields().len()
        && batch
            .columns()
            .iter()
            .zip(schema.fields())
            .all(|(a, f)| a.data_type() == f.data_type());
    if same {
        return Ok(());
    }
    let got: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    Err(Error::schema(format!(
        "a batch written to {} has columns [{}], not the schema the file was opened with",
        output.display(),
        got.join(", ")
    )))
}

/// Casts `LargeUtf8`/`Utf8View` to `Utf8` so string columns have one representation.
pub(crate) fn normalize_text(array: &ArrayRef) -> Result<ArrayRef> {
    match array.data_type() {
        DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(arrow::compute::cast(array, &DataType::Utf8)?)
        }
        _ => Ok(array.clone()),
    }
}

/// Where a value sits, for error messages.
pub(crate) fn location(file: &Path, field: &str, row: u64) -> String {
    format!("{}, field `{field}`, row {row}", file.display())
}

/// Checks the JSON text of a JSON field and tells whether it is an object.
pub(crate) fn check_json(text: &str, file: &Path, field: &str, row: u64) -> Result<bool> {
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => Ok(raw.get().starts_with('{')),
        Err(e) => Err(Error::data(
            location(file, field, row),
            format!("the JSON field holds invalid JSON text ({e}); fix or drop the value"),
        )),
    }
}

/// Rejects a null vector row or a null value inside a vector.
pub(crate) fn check_vector_nulls(
    array: &dyn Array,
    file: &Path,
    field: &str,
    first_row: u64,
) -> Result<()> {
    if let Some(i) = first_null(array) {
        return Err(Error::data(
            location(file, field, first_row + i as u64),
            "vector is null; Milvus vectors cannot be null",
        ));
    }
    if let Some(list) = array.as_fixed_size_list_opt() {
        let dim = list.value_length().max(1) as usize;
        if let Some(i) = first_null(list.values().as_ref()) {
            return Err(Error::data(
                location(file, field, first_row + (i / dim) as u64),
                format!("vector holds a null at dimension {}", i % dim),
            ));
        }
    }
    Ok(())
}

/// Index of the first logical null, if any.
pub(crate) fn first_null(array: &dyn Array) -> Option<usize> {
    let nulls = array.logical_nulls()?;
    if nulls.null_count() == 0 {
        return None;
    }
    (0..nulls.len()).find(|&i| nulls.is_null(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    #[test]
    fn classification_names_field_and_format() {
        let f16 = Field::new(
            "h",
            DataType::FixedSizeList(
                std::sync::Arc::new(Field::new_list_field(DataType::Float16, true)),
                4,
            ),
            false,
        );
        let err = Column::classify(&f16, StagingFormat::Parquet).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`h`") && msg.contains("parquet"), "{msg}");

        let arr = Field::new_list("tags", Field::new_list_field(DataType::Int32, true), true);
        assert_eq!(
            Column::classify(&arr, StagingFormat::Json).unwrap(),
            Column::Array(Box::new(Column::Int32))
        );
        let msg = Column::classify(&arr, StagingFormat::Numpy)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`tags`") && msg.contains("numpy"), "{msg}");

        let d = Field::new("d", DataType::Date32, false);
        assert_eq!(Column::classify(&d, StagingFormat::Json).unwrap_err().to_string(), "unsupported input at field `d`: Arrow type Date32 has no Milvus type: Milvus has no equivalent (vmig maps bool, int8–int64, float32/64, utf8/large_utf8/utf8_view, JSON, lists of those scalars, and float/binary/float16/bfloat16/sparse/int8 vectors; a `cast` transformer can convert many other types first); so it cannot be written to json staging files");
        let fsb = Field::new("raw", DataType::FixedSizeBinary(4), false);
        assert_eq!(Column::classify(&fsb, StagingFormat::Parquet).unwrap_err().to_string(), "unsupported input at field `raw`: Arrow type FixedSizeBinary(4) has no Milvus type: a FixedSizeBinary column is a Milvus vector only when tagged `vmig.type = binary_vector` or `bfloat16_vector` (vmig maps bool, int8–int64, float32/64, utf8/large_utf8/utf8_view, JSON, lists of those scalars, and float/binary/float16/bfloat16/sparse/int8 vectors; a `cast` transformer can convert many other types first); so it cannot be written to parquet staging files");
        let b = vmig_core::vector::binary_vector_field("b", 16).unwrap();
        assert_eq!(
            Column::classify(&b, StagingFormat::Numpy).unwrap(),
            Column::BinaryVector(2)
        );
    }

    #[test]
    fn format_serde_names() {
        let f: StagingFormat = serde_json::from_str("\"numpy\"").unwrap();
        assert_eq!(f, StagingFormat::Numpy);
        assert_eq!(
            serde_json::to_string(&StagingFormat::Parquet).unwrap(),
            "\"parquet\""
        );
    }
}
