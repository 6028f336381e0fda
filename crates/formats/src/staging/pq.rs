//! Parquet staging files in the layout Milvus 2.3.4+ / 2.4+ imports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, UInt8Array};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::data_type::FloatType;
use parquet::file::metadata::{
    ColumnChunkMetaData, FileMetaData, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::{SchemaDescPtr, SchemaDescriptor, Type};
use vmig_core::{Error, Result};

use super::sparse::{as_sparse, sparse_row_bytes, write_sparse};
use super::vector_pages::VectorPages;
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

/// Float vector values handed to the column writer per call (a whole number of rows).
const VECTOR_CALL_VALUES: usize = 16 * 1024;

/// Writes one Parquet file: float vectors as `List<Float32>`, binary vectors as `List<UInt8>`,
/// JSON and VarChar as `Utf8`, sparse vectors as `Utf8` JSON text (`{"indices":[…],"values":[…]}`,
/// what Milvus 2.4.3+ reads from a string column), one column per field with the field's name, the Arrow schema
/// (with its metadata) embedded.
///
/// Vector columns get no statistics and float vectors no dictionary (both cost CPU for nothing);
/// binary vectors keep the dictionary, which stores their `UInt8` values (physically `INT32`) in
/// one byte instead of four. Columns carry chunk statistics only; the file has no page index
/// (Milvus and pyarrow read row groups, not pages). Row groups hold about
/// [`ParquetOptions::row_group_bytes`] (by the same per-row upper bound as
/// [`ParquetWriter::bytes`]) and at most `row_group_bytes / assumed row width` rows.
///
/// # How the file is assembled
///
/// Converted batches are collected until a row group is full, then the row group is written
/// column chunk after column chunk straight into the output, and the footer at the end. vmig
/// assembles the file itself from parquet's public parts:
///
/// - Every column but the float vectors is encoded by parquet's Arrow writer
///   ([`compute_leaves`] and `ArrowColumnWriter`) and appended through a row group writer over
///   a schema of that one column, whose metadata (offsets included) is then taken into the
///   real row group.
/// - Float vectors — nearly all the bytes of a typical file — are written by
///   `VectorPages` when the file is uncompressed (on little-endian targets): page header and
///   levels computed once per page size, value bytes written from the batch's own buffer. With
///   compression they go to parquet's low-level column writer instead, as one contiguous `f32`
///   slice per call with levels precomputed once per file (`VectorLevels`).
/// - The footer is parquet's [`ParquetMetaDataWriter`] over the collected row group metadata.
///
/// The Arrow path would, for every float, compute both levels, record its index and gather it
/// back through that index before copying it; the column writer still encodes two levels per
/// float and copies it: that was most of the CPU time of a float vector file. All paths write
/// the same Parquet schema and logical content, so readers (Milvus, pyarrow) see the same rows;
/// `tests/staging.rs` checks that the rows read back are identical to parquet's own Arrow
/// writer's.
pub struct ParquetWriter<W: Write + Send> {
    out: TrackedWrite<W>,
    descriptor: SchemaDescPtr,
    /// Per top-level field: a schema of that field alone, to append its column chunks through.
    field_schemas: Vec<SchemaDescPtr>,
    /// Per top-level field: the index of its (single) leaf column.
    leaves: Vec<usize>,
    props: WriterPropertiesPtr,
    factory: ArrowRowGroupWriterFactory,
    /// Per column: how float vectors are written, if it is one (with `dim > 0`).
    vectors: Vec<Option<FloatVectors>>,
    /// Metadata of the row groups written.
    row_groups: Vec<RowGroupMetaData>,
    /// Converted columns of the rows collected for the next row group, in slices.
    pending: Vec<Vec<ArrayRef>>,
    pending_rows: u64,
    /// Sum of the per-row size estimates of `pending`.
    pending_bytes: u64,
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

/// How a float vector column is written (see [`ParquetWriter`]).
#[derive(Debug)]
enum FloatVectors {
    /// Uncompressed: pages written by vmig.
    Pages(VectorPages),
    /// Compressed: parquet's column writer with precomputed levels.
    Levels(VectorLevels),
}

/// The bytes at the start and end of every Parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

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
    /// [`Error::Unsupported`] naming a field Parquet staging cannot hold; I/O errors writing
    /// the leading magic bytes.
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

        let descriptor = Arc::new(ArrowSchemaConverter::new().convert(&out_schema)?);
        let mut props = WriterProperties::builder()
            .set_compression(options.compression.codec())
            .set_max_row_group_row_count(Some(row_group_rows as usize))
            .set_max_row_group_bytes(Some(row_group_bytes as usize))
            // No page index: the row group writers below do not keep one.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            // The float vector column is written VECTOR_CALL_VALUES values per call; the default
            // of 1024 would split each call into 16 mini-batches, each with its own bookkeeping.
            .set_write_batch_size(VECTOR_CALL_VALUES);
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
                // JSON text of sparse vectors: long, nearly always distinct, never filtered on.
                Some(Column::SparseVector) => {
                    props = props
                        .set_column_dictionary_enabled(column.path().clone(), false)
                        .set_column_statistics_enabled(
                            column.path().clone(),
                            EnabledStatistics::None,
                        );
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
        let mut props = props.build();
        add_encoded_arrow_schema_to_metadata(&out_schema, &mut props);
        let props = Arc::new(props);
        // The factory that makes the Arrow column writers is built from a file writer; this one
        // writes to nowhere and only lends it the schema and properties.
        let template = SerializedFileWriter::new(
            std::io::sink(),
            descriptor.root_schema_ptr(),
            props.clone(),
        )?;
        let factory = ArrowRowGroupWriterFactory::new(&template, out_schema.clone());
        drop(template);

        let leaves = (0..columns.len())
            .map(|i| leaf_of(&descriptor, i))
            .collect::<Result<Vec<_>>>()?;
        let root = descriptor.root_schema();
        let field_schemas = root
            .get_fields()
            .iter()
            .map(|field| {
                let alone = Type::group_type_builder(root.name())
                    .with_fields(vec![field.clone()])
                    .build()?;
                Ok(Arc::new(SchemaDescriptor::new(Arc::new(alone))))
            })
            .collect::<Result<Vec<_>>>()?;
        let compressed = options.compression != ParquetCompression::None;
        let vectors = columns
            .iter()
            .zip(&leaves)
            .map(|(c, &leaf)| match c {
                Column::FloatVector(dim) if *dim > 0 => {
                    let leaf = descriptor.column(leaf);
                    let (max_def, max_rep) = (leaf.max_def_level(), leaf.max_rep_level());
                    if compressed || cfg!(target_endian = "big") {
                        Ok(Some(FloatVectors::Levels(VectorLevels::new(
                            *dim, max_def, max_rep,
                        ))))
                    } else {
                        let pages = VectorPages::new(
                            *dim,
                            max_def,
                            max_rep,
                            PAGE_BYTES as usize,
                            PAGE_ROWS as usize,
                        )?;
                        Ok(Some(FloatVectors::Pages(pages)))
                    }
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
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
        let mut out = TrackedWrite::new(out);
        out.write_all(PARQUET_MAGIC)?;
        Ok(ParquetWriter {
            out,
            descriptor,
            field_schemas,
            leaves,
            props,
            factory,
            vectors,
            row_groups: Vec::new(),
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
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
            compressed,
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
        for &size in &sizes {
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
        self.rows = rows;
        self.data_bytes = data;
        self.collect(&converted, &sizes[..take])?;
        Ok(take)
    }

    /// Writes the last row group and the footer and returns the output.
    ///
    /// # Errors
    /// Parquet and I/O errors.
    pub fn finish(mut self) -> Result<W> {
        self.flush_row_group()?;
        let num_rows = self.row_groups.iter().map(RowGroupMetaData::num_rows).sum();
        let file = FileMetaData::new(
            self.props.writer_version().as_num(),
            num_rows,
            Some(self.props.created_by().to_string()),
            self.props.key_value_metadata().cloned(),
            self.descriptor.clone(),
            None,
        );
        let metadata = ParquetMetaData::new(file, std::mem::take(&mut self.row_groups));
        // Into memory first: the metadata writer flushes its own buffer only when dropped.
        let mut footer = Vec::new();
        ParquetMetaDataWriter::new(&mut footer, &metadata).finish()?;
        self.out.write_all(&footer)?;
        Ok(self.out.into_inner()?)
    }

    /// Adds converted rows (with their size estimates) to the pending row group, writing each
    /// row group as soon as it is full.
    fn collect(&mut self, columns: &[ArrayRef], sizes: &[u64]) -> Result<()> {
        let mut start = 0;
        while start < sizes.len() {
            let mut end = start;
            let mut full = false;
            while end < sizes.len() && !full {
                self.pending_bytes += sizes[end];
                self.pending_rows += 1;
                end += 1;
                full = self.pending_rows >= self.row_group_rows
                    || self.pending_bytes >= self.row_group_bytes;
            }
            let slice = columns
                .iter()
                .map(|c| c.slice(start, end - start))
                .collect();
            self.pending.push(slice);
            if full {
                self.flush_row_group()?;
            }
            start = end;
        }
        Ok(())
    }

    /// Writes the pending rows as one row group, column chunk after column chunk, into the
    /// output (see [`ParquetWriter`]).
    fn flush_row_group(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows);
        self.pending_bytes = 0;
        let index = self.row_groups.len();
        let ordinal = i32::try_from(index)
            .map_err(|_| Error::External("too many Parquet row groups".into()))?;
        let file_offset = self.out.bytes_written() as i64;
        let mut arrow_writers = self.factory.create_column_writers(index)?.into_iter();
        let mut chunks = Vec::with_capacity(self.out_schema.fields().len());
        for (i, field) in self.out_schema.fields().iter().enumerate() {
            // One leaf per field: every staging column is a primitive or a list of one.
            let mut arrow_writer = arrow_writers.next().ok_or_else(|| {
                Error::External(
                    format!("parquet has no column writer for `{}`", field.name()).into(),
                )
            })?;
            let vectors = self.vectors.get_mut(i).and_then(Option::as_mut);
            if let Some(FloatVectors::Pages(pages)) = vectors {
                drop(arrow_writer);
                let start = self.out.bytes_written() as i64;
                let arrays = pending.iter().map(|c| &c[i]);
                let segments = float_vector_bytes(arrays, pages.dim())?;
                let written = pages.write_chunk(&mut self.out, start as u64, &segments)?;
                if written.rows != rows {
                    return Err(Error::External(
                        format!(
                            "`{}` has {} vectors for {rows} rows in a row group",
                            field.name(),
                            written.rows
                        )
                        .into(),
                    ));
                }
                let chunk = ColumnChunkMetaData::builder(self.descriptor.column(self.leaves[i]))
                    .set_encodings(vec![Encoding::PLAIN, Encoding::RLE])
                    .set_compression(Compression::UNCOMPRESSED)
                    .set_num_values(written.values as i64)
                    .set_total_compressed_size(written.bytes as i64)
                    .set_total_uncompressed_size(written.bytes as i64)
                    .set_data_page_offset(start)
                    .build()?;
                chunks.push(chunk);
                continue;
            }
            // The chunk goes through a row group writer of this column alone, which records
            // where it landed in the file.
            let mut row_group = SerializedRowGroupWriter::new(
                self.field_schemas[i].clone(),
                self.props.clone(),
                &mut self.out,
                ordinal,
                None,
            );
            if let Some(FloatVectors::Levels(levels)) = vectors {
                drop(arrow_writer);
                write_float_vectors(&mut row_group, levels, pending.iter().map(|c| &c[i]))?;
            } else {
                for columns in &pending {
                    for leaf in compute_leaves(field, &columns[i])? {
                        arrow_writer.write(&leaf)?;
                    }
                }
                arrow_writer.close()?.append_to_row_group(&mut row_group)?;
            }
            let written = row_group.close()?;
            if written.num_rows() as u64 != rows {
                return Err(Error::External(
                    format!(
                        "`{}` has {} values for {rows} rows in a row group",
                        field.name(),
                        written.num_rows()
                    )
                    .into(),
                ));
            }
            chunks.extend(written.columns().iter().cloned());
        }
        let total_byte_size = chunks
            .iter()
            .map(ColumnChunkMetaData::uncompressed_size)
            .sum();
        let row_group = RowGroupMetaData::builder(self.descriptor.clone())
            .set_column_metadata(chunks)
            .set_num_rows(rows as i64)
            .set_total_byte_size(total_byte_size)
            .set_ordinal(ordinal)
            .set_file_offset(file_offset)
            .build()?;
        self.row_groups.push(row_group);
        Ok(())
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
                Column::SparseVector => {
                    let map = as_sparse(array.as_ref(), field.name())?;
                    for (size, text) in sizes.iter_mut().zip(sparse_row_bytes(map)) {
                        *size += text + 4 + nullable;
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

    /// The columns of `batch` as written: text normalised and checked, binary vectors as lists,
    /// float vectors checked and left as `FixedSizeList` (see [`write_float_vectors`]).
    fn convert(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
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
                Column::FloatVector(dim) => {
                    check_vector_nulls(array.as_ref(), &self.label, field.name(), first_row)?;
                    if *dim > 0 {
                        // Kept as FixedSizeList: written by `write_float_vectors`.
                        array.clone()
                    } else {
                        arrow::compute::cast(array, out.data_type())?
                    }
                }
                Column::BinaryVector(width) => {
                    check_vector_nulls(array.as_ref(), &self.label, field.name(), first_row)?;
                    binary_to_list(array, *width)?
                }
                Column::SparseVector => {
                    sparse_to_text(array.as_ref(), &self.label, field.name(), first_row)?
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
        Ok(arrays)
    }
}

/// Repetition and definition levels of [`VECTOR_CALL_VALUES`] / `dim` float vector rows (at
/// least one row): the same for every row of a column without nulls.
#[derive(Debug)]
struct VectorLevels {
    dim: usize,
    /// Every value is present: the maximum definition level.
    def: Vec<i16>,
    /// 0 starts a row (a new list), the maximum repetition level continues it.
    rep: Vec<i16>,
}

impl VectorLevels {
    fn new(dim: usize, max_def: i16, max_rep: i16) -> VectorLevels {
        let rows = (VECTOR_CALL_VALUES / dim).max(1);
        let def = vec![max_def; rows * dim];
        let rep = (0..rows * dim)
            .map(|i| if i % dim == 0 { 0 } else { max_rep })
            .collect();
        VectorLevels { dim, def, rep }
    }
}

/// Writes the float vector column of one row group with parquet's low-level column writer (see
/// [`ParquetWriter`]). Each array is a null-free `FixedSizeList<Float32>(levels.dim)`.
fn write_float_vectors<'a, W: Write + Send>(
    row_group: &mut SerializedRowGroupWriter<'_, W>,
    levels: &VectorLevels,
    arrays: impl Iterator<Item = &'a ArrayRef>,
) -> Result<()> {
    let mut column = row_group
        .next_column()?
        .ok_or_else(|| Error::External("parquet row group has no column left".into()))?;
    let writer = column.typed::<FloatType>();
    let step = levels.def.len();
    for array in arrays {
        let values = float_vector_values(array, levels.dim)?;
        for chunk in values.chunks(step) {
            let n = chunk.len();
            writer.write_batch(chunk, Some(&levels.def[..n]), Some(&levels.rep[..n]))?;
        }
    }
    column.close()?;
    Ok(())
}

/// The little-endian `f32` bytes of each null-free `FixedSizeList<Float32>(dim)` array.
fn float_vector_bytes<'a>(
    arrays: impl Iterator<Item = &'a ArrayRef>,
    dim: usize,
) -> Result<Vec<&'a [u8]>> {
    arrays
        .map(|array| {
            let values = float_vector_values(array, dim)?;
            Ok(values.inner().as_slice())
        })
        .collect()
}

/// The values of a null-free `FixedSizeList<Float32>(dim)` array, checked to be `dim` per row.
fn float_vector_values(array: &ArrayRef, dim: usize) -> Result<&ScalarBuffer<f32>> {
    let list = array.as_fixed_size_list_opt().ok_or_else(|| {
        Error::schema(format!(
            "expected a FixedSizeList float vector column, found {}",
            array.data_type()
        ))
    })?;
    let values = list
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| Error::schema("expected float32 vector values"))?
        .values();
    if values.len() != list.len() * dim || list.value_length() as usize != dim {
        return Err(Error::schema(format!(
            "expected {} float32 values of dimension {dim}, found {}",
            list.len() * dim,
            values.len()
        )));
    }
    Ok(values)
}

/// The index of the (single) Parquet leaf column of top-level field `field`.
fn leaf_of(descriptor: &parquet::schema::types::SchemaDescriptor, field: usize) -> Result<usize> {
    (0..descriptor.num_columns())
        .find(|&leaf| descriptor.get_column_root_idx(leaf) == field)
        .ok_or_else(|| {
            Error::External(format!("parquet schema has no column for field {field}").into())
        })
}

/// The field as written to Parquet: same name, nullability and metadata, list-typed vectors.
fn out_field(field: &Field, column: &Column) -> Field {
    let data_type = match column {
        Column::Text | Column::Json | Column::SparseVector => DataType::Utf8,
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
        // JSON text of about 70 entries (ELSER/SPLADE rows hold tens to a few hundred).
        Column::SparseVector => 4 + 2048,
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

/// A sparse vector column → `Utf8` JSON text per row (see the `sparse` module); rows are
/// numbered from `first_row` in messages.
fn sparse_to_text(array: &dyn Array, file: &Path, field: &str, first_row: u64) -> Result<ArrayRef> {
    let map = as_sparse(array, field)?;
    let capacity: u64 = sparse_row_bytes(map).sum();
    let mut text = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut offsets = Vec::with_capacity(map.len() + 1);
    offsets.push(0i32);
    for i in 0..map.len() {
        write_sparse(&mut text, map, i, file, field, first_row + i as u64)?;
        offsets.push(i32::try_from(text.len()).map_err(|_| {
            Error::data(
                super::location(file, field, first_row + i as u64),
                "the sparse vectors of one batch exceed 2 GiB of text",
            )
        })?);
    }
    // Only ASCII was written (digits, punctuation, `e`, `-`, `.` and two key names).
    let strings = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        text.into(),
        None,
    )?;
    Ok(Arc::new(strings))
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
