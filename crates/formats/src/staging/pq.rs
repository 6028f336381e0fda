//! Parquet staging files in the layout Milvus 2.3.4+ / 2.4+ imports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt8Array};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use vmig_core::{Error, Result};

use super::{check_json, check_vector_nulls, normalize_text, Column, StagingFormat};

/// Compression codec of Parquet pages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// No compression (default): float vectors barely compress, and writing stays fast.
    #[default]
    None,
    /// Snappy.
    Snappy,
    /// Zstandard at its default level.
    Zstd,
    /// LZ4 (written as the `LZ4_RAW` codec).
    Lz4,
}

impl ParquetCompression {
    fn codec(self) -> Compression {
        match self {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
        }
    }
}

/// Row-group size and compression of Parquet staging files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Target encoded bytes per row group (default 32 MiB, what pymilvus' BulkWriter aims for).
    pub row_group_bytes: u64,
    /// Page compression (default none).
    pub compression: ParquetCompression,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            row_group_bytes: 32 << 20,
            compression: ParquetCompression::None,
        }
    }
}

/// Most rows in one row group, whatever the row width (the bound pymilvus uses).
const MAX_ROW_GROUP_ROWS: u64 = 1_000_000;
/// Width assumed for a string value when sizing row groups from the schema.
const ASSUMED_TEXT_BYTES: u64 = 64;
/// Upper bound of a page's header and its offset-index and column-index entries.
const PAGE_OVERHEAD: u64 = 200;
/// Upper bound of a column chunk's metadata (with min/max statistics) in the footer.
const CHUNK_OVERHEAD: u64 = 320;
/// A binary vector's dictionary page (at most 256 `INT32` values) per row group.
const BYTE_DICTIONARY: u64 = 1024 + 64;
/// Pages the writer starts after this many rows even when they are small.
const PAGE_ROWS: u64 = 20_000;
/// Data page size limit (parquet's default).
const PAGE_BYTES: u64 = 1 << 20;

/// Writes one Parquet file: float vectors as `List<Float32>`, binary vectors as `List<UInt8>`,
/// JSON and VarChar as `Utf8`, one column per field with the field's name, the Arrow schema
/// (with its metadata) embedded.
///
/// Vector columns get no statistics and float vectors no dictionary (both cost CPU for nothing);
/// binary vectors keep the dictionary, which stores their `UInt8` values (physically `INT32`) in
/// one byte instead of four. Row groups hold about [`ParquetOptions::row_group_bytes`].
pub struct ParquetWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    columns: Vec<Column>,
    schema: SchemaRef,
    out_schema: SchemaRef,
    label: PathBuf,
    rows: u64,
    /// Sum of the per-row size estimates of the rows written.
    data_bytes: u64,
    /// Footer and magic bytes.
    fixed_bytes: u64,
    /// Footer and dictionary bytes each row group adds.
    row_group_overhead: u64,
    row_group_bytes: u64,
    row_group_rows: u64,
    compressed: bool,
}

impl<W: Write + Send> std::fmt::Debug for ParquetWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("file", &self.label)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Starts a Parquet file on `out` for batches of `schema`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming a field Parquet staging cannot hold.
    pub fn try_new(out: W, schema: &SchemaRef, options: &ParquetOptions) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column::classify(f, StagingFormat::Parquet))
            .collect::<Result<Vec<_>>>()?;
        let out_fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| Arc::new(out_field(f, c)))
            .collect();
        let out_schema = Arc::new(Schema::new_with_metadata(
            out_fields,
            schema.metadata().clone(),
        ));

        let row_group_bytes = options.row_group_bytes.max(1);
        let width: u64 = columns.iter().map(assumed_width).sum::<u64>().max(1);
        let row_group_rows = (row_group_bytes / width).clamp(1, MAX_ROW_GROUP_ROWS);

        let descriptor = ArrowSchemaConverter::new().convert(&out_schema)?;
        let mut props = WriterProperties::builder()
            .set_compression(options.compression.codec())
            .set_max_row_group_row_count(Some(row_group_rows as usize))
            .set_max_row_group_bytes(Some(row_group_bytes as usize));
        for (i, column) in descriptor.columns().iter().enumerate() {
            let root = descriptor.get_column_root_idx(i);
            match columns.get(root) {
                Some(Column::FloatVector(_)) => {
                    props = props
                        .set_column_dictionary_enabled(column.path().clone(), false)
                        .set_column_statistics_enabled(
                            column.path().clone(),
                            EnabledStatistics::None,
                        );
                }
                // Wide numeric columns are mostly distinct values (ids, scores): building a
                // dictionary only to abandon it costs CPU on every row group.
                Some(Column::Int64 | Column::Float32 | Column::Float64) => {
                    props = props.set_column_dictionary_enabled(column.path().clone(), false);
                }
                Some(Column::BinaryVector(_)) => {
                    props = props.set_column_statistics_enabled(
                        column.path().clone(),
                        EnabledStatistics::None,
                    );
                }
                _ => {}
            }
        }
        let writer = ArrowWriter::try_new(out, out_schema.clone(), Some(props.build()))?;
        // Magic bytes, footer length, the Parquet schema and the embedded Arrow schema
        // (base64 IPC, about as long as its debug text).
        let schema_text = format!("{:?}", out_schema.as_ref()).len() as u64;
        let fixed_bytes = 1024 + 2 * schema_text + 64 * columns.len() as u64;
        let row_group_bytes_overhead = columns
            .iter()
            .map(|c| match c {
                Column::BinaryVector(_) => CHUNK_OVERHEAD + BYTE_DICTIONARY,
                _ => CHUNK_OVERHEAD,
            })
            .sum();
        Ok(ParquetWriter {
            writer,
            columns,
            schema: schema.clone(),
            out_schema,
            label: PathBuf::from("<parquet output>"),
            rows: 0,
            data_bytes: 0,
            fixed_bytes,
            row_group_overhead: row_group_bytes_overhead,
            row_group_bytes,
            row_group_rows,
            compressed: options.compression != ParquetCompression::None,
        })
    }

    /// Names the output in error messages.
    #[must_use]
    pub fn with_label(mut self, path: &Path) -> Self {
        self.label = path.to_path_buf();
        self
    }

    /// The Arrow schema of the file (vectors as lists).
    pub fn file_schema(&self) -> &SchemaRef {
        &self.out_schema
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Upper-bound estimate of the file size if it were finished now.
    pub fn bytes(&self) -> u64 {
        self.estimate(self.rows, self.data_bytes)
    }

    fn estimate(&self, rows: u64, data_bytes: u64) -> u64 {
        let data = if self.compressed {
            // Incompressible pages can grow a little when compressed.
            data_bytes + data_bytes / 50
        } else {
            data_bytes
        };
        let leaves = self.columns.len() as u64;
        let row_groups = 1 + data_bytes / self.row_group_bytes + rows / self.row_group_rows.max(1);
        let pages = data_bytes / PAGE_BYTES + leaves * (rows / PAGE_ROWS + row_groups);
        self.fixed_bytes + data + row_groups * self.row_group_overhead + pages * PAGE_OVERHEAD
    }

    /// Appends every row of `batch`.
    ///
    /// # Errors
    /// [`Error::Data`] for a null or null-holding vector or invalid JSON text; Parquet errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_within(batch, u64::MAX).map(|_| ())
    }

    /// Appends the longest prefix of `batch` whose estimated finished file stays within
    /// `max_bytes`; returns its row count.
    ///
    /// # Errors
    /// As [`ParquetWriter::write`].
    pub fn write_within(&mut self, batch: &RecordBatch, max_bytes: u64) -> Result<usize> {
        self.check_batch(batch)?;
        let sizes = self.row_sizes(batch)?;
        let mut rows = self.rows;
        let mut data = self.data_bytes;
        let mut take = 0;
        for size in sizes {
            if self.estimate(rows + 1, data + size) > max_bytes {
                break;
            }
            rows += 1;
            data += size;
            take += 1;
        }
        if take == 0 {
            return Ok(0);
        }
        let part = batch.slice(0, take);
        let converted = self.convert(&part)?;
        self.writer.write(&converted)?;
        self.rows = rows;
        self.data_bytes = data;
        Ok(take)
    }

    /// Writes the footer and returns the output.
    ///
    /// # Errors
    /// Parquet and I/O errors.
    pub fn finish(self) -> Result<W> {
        Ok(self.writer.into_inner()?)
    }

    fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        super::check_batch(&self.schema, batch, &self.label)
    }

    /// Upper bound of each row's encoded bytes.
    fn row_sizes(&self, batch: &RecordBatch) -> Result<Vec<u64>> {
        let n = batch.num_rows();
        let mut sizes = vec![0u64; n];
        for ((array, column), field) in batch
            .columns()
            .iter()
            .zip(&self.columns)
            .zip(self.schema.fields())
        {
            let nullable = u64::from(field.is_nullable());
            match column {
                Column::Text | Column::Json => {
                    let text = normalize_text(array)?;
                    let strings = text.as_string::<i32>();
                    let offsets = strings.value_offsets();
                    for (i, size) in sizes.iter_mut().enumerate() {
                        let len = (offsets[i + 1] - offsets[i]).max(0) as u64;
                        *size += len + 4 + DICTIONARY_INDEX + nullable;
                    }
                }
                Column::Array(item) => {
                    let lengths = list_lengths(array)?;
                    let text_bytes = list_text_bytes(array, item)?;
                    for (i, size) in sizes.iter_mut().enumerate() {
                        let len = lengths[i];
                        let item_bytes = text_bytes.as_ref().map_or_else(
                            || len * (scalar_width(item) + DICTIONARY_INDEX),
                            |t| t[i] + (4 + DICTIONARY_INDEX) * len,
                        );
                        *size += item_bytes + len / 4 + 8 + nullable;
                    }
                }
                other => {
                    let fixed = assumed_width(other) + nullable;
                    sizes.iter_mut().for_each(|s| *s += fixed);
                }
            }
        }
        Ok(sizes)
    }

    fn convert(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let first_row = self.rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (((array, column), field), out) in batch
            .columns()
            .iter()
            .zip(&self.columns)
            .zip(self.schema.fields())
            .zip(self.out_schema.fields())
        {
            let converted = match column {
                Column::Text => normalize_text(array)?,
                Column::Json => {
                    let text = normalize_text(array)?;
                    let strings = text.as_string::<i32>();
                    for (i, value) in strings.iter().enumerate() {
                        if let Some(value) = value {
                            check_json(value, &self.label, field.name(), first_row + i as u64)?;
                        }
                    }
                    text
                }
                Column::FloatVector(_) => {
                    check_vector_nulls(array.as_ref(), &self.label, field.name(), first_row)?;
                    arrow::compute::cast(array, out.data_type())?
                }
                Column::BinaryVector(width) => {
                    check_vector_nulls(array.as_ref(), &self.label, field.name(), first_row)?;
                    binary_to_list(array, *width)?
                }
                Column::Array(_) => {
                    if array.data_type() == out.data_type() {
                        array.clone()
                    } else {
                        arrow::compute::cast(array, out.data_type())?
                    }
                }
                _ => array.clone(),
            };
            arrays.push(converted);
        }
        Ok(RecordBatch::try_new(self.out_schema.clone(), arrays)?)
    }
}

/// The field as written to Parquet: same name, nullability and metadata, list-typed vectors.
fn out_field(field: &Field, column: &Column) -> Field {
    let data_type = match column {
        Column::Text | Column::Json => DataType::Utf8,
        Column::FloatVector(_) => {
            DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
        }
        Column::BinaryVector(_) => {
            DataType::List(Arc::new(Field::new_list_field(DataType::UInt8, true)))
        }
        Column::Array(item) => {
            let nullable = match field.data_type() {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.is_nullable()
                }
                _ => true,
            };
            DataType::List(Arc::new(Field::new_list_field(scalar_type(item), nullable)))
        }
        _ => field.data_type().clone(),
    };
    Field::new(field.name(), data_type, field.is_nullable()).with_metadata(field.metadata().clone())
}

fn scalar_type(column: &Column) -> DataType {
    match column {
        Column::Bool => DataType::Boolean,
        Column::Int8 => DataType::Int8,
        Column::Int16 => DataType::Int16,
        Column::Int32 => DataType::Int32,
        Column::Int64 => DataType::Int64,
        Column::Float32 => DataType::Float32,
        Column::Float64 => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// Plain-encoded bytes of one scalar value (integers below 32 bits are stored as `INT32`).
fn scalar_width(column: &Column) -> u64 {
    match column {
        Column::Bool => 1,
        Column::Int8 | Column::Int16 | Column::Int32 | Column::Float32 => 4,
        Column::Int64 | Column::Float64 => 8,
        _ => 4 + ASSUMED_TEXT_BYTES,
    }
}

/// Bytes a dictionary index can add to a value: a dictionary page holds at most 1 MiB, so
/// at most 2^18 entries of 4 bytes, so indices take at most 18 bits (plus run headers).
const DICTIONARY_INDEX: u64 = 3;

/// Upper bound of one row's bytes for fixed-width columns (and a guess for strings and arrays).
fn assumed_width(column: &Column) -> u64 {
    match column {
        Column::Bool => 1,
        // A plain value, or a dictionary index plus the value stored once in the dictionary.
        Column::Int8 | Column::Int16 | Column::Int32 | Column::Float32 => 4 + DICTIONARY_INDEX,
        Column::Int64 | Column::Float64 => 8 + DICTIONARY_INDEX,
        Column::Text | Column::Json => 4 + DICTIONARY_INDEX + ASSUMED_TEXT_BYTES,
        // Values plus repetition levels (1 bit per value at worst; definition levels are
        // constant, as vectors hold no nulls, so they are a few run headers).
        Column::FloatVector(dim) => *dim as u64 * 4 + *dim as u64 / 8 + 8,
        // One dictionary index byte per value (at most 256 distinct values) plus levels.
        Column::BinaryVector(width) => *width as u64 + *width as u64 / 8 + 8,
        Column::Array(item) => 8 * (scalar_width(item) + DICTIONARY_INDEX),
    }
}

fn list_lengths(array: &ArrayRef) -> Result<Vec<u64>> {
    let lengths = match array.data_type() {
        DataType::List(_) => {
            let offsets = array.as_list::<i32>().value_offsets();
            offsets
                .windows(2)
                .map(|w| (w[1] - w[0]).max(0) as u64)
                .collect()
        }
        DataType::LargeList(_) => {
            let offsets = array.as_list::<i64>().value_offsets();
            offsets
                .windows(2)
                .map(|w| (w[1] - w[0]).max(0) as u64)
                .collect()
        }
        DataType::FixedSizeList(_, n) => vec![(*n).max(0) as u64; array.len()],
        other => {
            return Err(Error::schema(format!(
                "expected a list column, found {other}"
            )))
        }
    };
    Ok(lengths)
}

/// For arrays of strings: each row's total string bytes.
fn list_text_bytes(array: &ArrayRef, item: &Column) -> Result<Option<Vec<u64>>> {
    if *item != Column::Text {
        return Ok(None);
    }
    let (values, offsets): (ArrayRef, Vec<usize>) = match array.data_type() {
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let o = l
                .value_offsets()
                .iter()
                .map(|&o| o.max(0) as usize)
                .collect();
            (l.values().clone(), o)
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            let o = l
                .value_offsets()
                .iter()
                .map(|&o| o.max(0) as usize)
                .collect();
            (l.values().clone(), o)
        }
        DataType::FixedSizeList(_, n) => {
            let l = array.as_fixed_size_list();
            let n = (*n).max(0) as usize;
            ((l.values().clone()), (0..=l.len()).map(|i| i * n).collect())
        }
        other => {
            return Err(Error::schema(format!(
                "expected a list column, found {other}"
            )))
        }
    };
    let text = normalize_text(&values)?;
    let strings = text.as_string::<i32>();
    let string_offsets = strings.value_offsets();
    let bytes = offsets
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].min(strings.len()), w[1].min(strings.len()));
            (string_offsets[b] - string_offsets[a]).max(0) as u64
        })
        .collect();
    Ok(Some(bytes))
}

/// `FixedSizeBinary(width)` → `List<UInt8>` without copying the bytes.
fn binary_to_list(array: &ArrayRef, width: usize) -> Result<ArrayRef> {
    let fsb = array.as_fixed_size_binary_opt().ok_or_else(|| {
        Error::schema(format!(
            "expected a FixedSizeBinary column, found {}",
            array.data_type()
        ))
    })?;
    let n = fsb.len();
    let values = UInt8Array::new(ScalarBuffer::new(fsb.values().clone(), 0, n * width), None);
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, n));
    let list = ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::UInt8, true)),
        offsets,
        Arc::new(values),
        None,
    )?;
    Ok(Arc::new(list))
}
