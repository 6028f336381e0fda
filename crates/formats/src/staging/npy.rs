//! NumPy staging directories in the layout Milvus 2.3+ imports: one `<field>.npy` per field.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use npyz::{DType, TypeStr, WriteOptions, WriterBuilder};
use vmig_core::{Error, Result, ResultExt};

use super::{
    check_json, check_vector_nulls, location, normalize_text, Column, FinishedFile, StagingFormat,
};

/// Upper bound of an NPY v1.0 header for the shapes written here (it is padded to 64 bytes).
const HEADER_BOUND: u64 = 128;

/// Writes one NumPy import unit: a directory with one `<field>.npy` per field (NPY v1.0,
/// little-endian, C order, headers written by the `npyz` crate).
///
/// The row count, and for VarChar/JSON the `<U{n}` width (the longest string in characters), are
/// only known at the end, so values are spilled to hidden files in the directory while writing
/// and each `.npy` is written with its final shape in [`NumpyWriter::finish`]. Memory use does
/// not grow with the number of rows.
///
/// NumPy has no nulls: a null value is an [`Error::Data`] naming the field and row.
#[derive(Debug)]
pub struct NumpyWriter {
    dir: PathBuf,
    columns: Vec<NpyColumn>,
    schema: SchemaRef,
    rows: u64,
    sync: bool,
}

#[derive(Debug)]
struct NpyColumn {
    name: String,
    kind: Column,
    /// Bytes per row for fixed-width columns; 0 for strings.
    row_bytes: u64,
    /// Longest string so far, in characters (strings only).
    max_chars: u64,
    spill_path: PathBuf,
    spill: BufWriter<File>,
}

impl NpyColumn {
    fn is_text(&self) -> bool {
        matches!(self.kind, Column::Text | Column::Json)
    }

    /// numpy dtype and the second dimension, if any.
    fn dtype(&self) -> (String, Option<u64>) {
        let plain = |s: &str| (s.to_string(), None);
        match &self.kind {
            Column::Bool => plain("|b1"),
            Column::Int8 => plain("|i1"),
            Column::Int16 => plain("<i2"),
            Column::Int32 => plain("<i4"),
            Column::Int64 => plain("<i8"),
            Column::Float32 => plain("<f4"),
            Column::Float64 => plain("<f8"),
            Column::FloatVector(dim) => ("<f4".to_string(), Some(*dim as u64)),
            Column::BinaryVector(width) => ("|u1".to_string(), Some(*width as u64)),
            Column::Text | Column::Json | Column::Array(_) | Column::SparseVector => {
                (format!("<U{}", self.max_chars.max(1)), None)
            }
        }
    }
}

fn fixed_row_bytes(column: &Column) -> u64 {
    match column {
        Column::Bool | Column::Int8 => 1,
        Column::Int16 => 2,
        Column::Int32 | Column::Float32 => 4,
        Column::Int64 | Column::Float64 => 8,
        Column::FloatVector(dim) => *dim as u64 * 4,
        Column::BinaryVector(width) => *width as u64,
        Column::Text | Column::Json | Column::Array(_) | Column::SparseVector => 0,
    }
}

pub(crate) fn check_file_name(name: &str) -> Result<()> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(Error::unsupported(
            format!("field `{name}`"),
            "this field name cannot be a NumPy file name (`<field>.npy`); rename the field",
        ));
    }
    Ok(())
}

impl NumpyWriter {
    /// Creates directory `dir` (and its parents) and starts a unit for batches of `schema`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming a field NumPy staging cannot hold (arrays, sparse and
    /// half-precision vectors, names that are not file names); I/O errors.
    pub fn create(dir: &Path, schema: &SchemaRef) -> Result<NumpyWriter> {
        if cfg!(target_endian = "big") {
            return Err(Error::unsupported(
                dir.display().to_string(),
                "NumPy staging files are written on little-endian machines only",
            ));
        }
        super::check_schema(StagingFormat::Numpy, schema)?;
        let kinds = schema
            .fields()
            .iter()
            .map(|f| Column::classify(f, StagingFormat::Numpy))
            .collect::<Result<Vec<_>>>()?;
        std::fs::create_dir_all(dir).context_with(|| format!("creating {}", dir.display()))?;
        let mut columns = Vec::with_capacity(kinds.len());
        for (i, (field, kind)) in schema.fields().iter().zip(kinds).enumerate() {
            let spill_path = dir.join(format!(".{i}.spill"));
            let file = File::create(&spill_path)
                .context_with(|| format!("creating {}", spill_path.display()))?;
            columns.push(NpyColumn {
                name: field.name().clone(),
                row_bytes: fixed_row_bytes(&kind),
                kind,
                max_chars: 0,
                spill_path,
                spill: BufWriter::with_capacity(1 << 20, file),
            });
        }
        Ok(NumpyWriter {
            dir: dir.to_path_buf(),
            columns,
            schema: schema.clone(),
            rows: 0,
            sync: true,
        })
    }

    /// Whether [`NumpyWriter::finish`] calls `fsync` on each `.npy` (default `true`).
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The unit's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The total size of the `.npy` files if the unit were finished now.
    pub fn bytes(&self) -> u64 {
        self.columns
            .iter()
            .map(|c| {
                let (descr, inner) = c.dtype();
                header_len(&descr, self.rows, inner) + self.rows * row_bytes(c, c.max_chars)
            })
            .sum()
    }

    /// Appends every row of `batch`.
    ///
    /// # Errors
    /// [`Error::Data`] naming the field and row of a null or of invalid JSON text; I/O errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_within(batch, u64::MAX).map(|_| ())
    }

    /// Appends the longest prefix of `batch` that keeps the `.npy` files' total size within
    /// `max_bytes`; returns its row count. A longer string widens every row of its column, so
    /// the size is recomputed for the whole unit at each row.
    ///
    /// # Errors
    /// As [`NumpyWriter::write`].
    pub fn write_within(&mut self, batch: &RecordBatch, max_bytes: u64) -> Result<usize> {
        super::check_batch(&self.schema, batch, &self.dir)?;
        let arrays: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&self.columns)
            .map(|(a, c)| {
                if c.is_text() {
                    normalize_text(a)
                } else {
                    Ok(a.clone())
                }
            })
            .collect::<Result<_>>()?;
        let headers = HEADER_BOUND * self.columns.len() as u64;
        let fixed: u64 = self.columns.iter().map(|c| c.row_bytes).sum();
        let mut max_chars: Vec<u64> = self.columns.iter().map(|c| c.max_chars).collect();
        let mut take = 0usize;
        for i in 0..batch.num_rows() {
            let row = self.rows + i as u64;
            let mut next = max_chars.clone();
            for ((column, array), chars) in self.columns.iter().zip(&arrays).zip(&mut next) {
                if array.is_null(i) {
                    return Err(Error::data(
                        location(&self.dir, &column.name, row),
                        "null value; NumPy files cannot hold nulls (Milvus NumPy import has no \
                         nullable fields): fill or drop the nulls, or write parquet or json",
                    ));
                }
                if column.is_text() {
                    let value = array.as_string::<i32>().value(i);
                    if column.kind == Column::Json {
                        check_json(value, &self.dir, &column.name, row)?;
                    }
                    *chars = (*chars).max(value.chars().count() as u64);
                }
            }
            let width: u64 = fixed
                + self
                    .columns
                    .iter()
                    .zip(&next)
                    .filter(|(c, _)| c.is_text())
                    .map(|(_, &m)| 4 * m.max(1))
                    .sum::<u64>();
            if headers + (row + 1) * width > max_bytes {
                break;
            }
            max_chars = next;
            take += 1;
        }
        if take == 0 {
            return Ok(0);
        }
        for ((column, array), chars) in self.columns.iter_mut().zip(&arrays).zip(max_chars) {
            let part = array.slice(0, take);
            spill(column, &part, &self.dir, self.rows).context_with(|| {
                format!("writing field `{}` to {}", column.name, self.dir.display())
            })?;
            column.max_chars = chars;
        }
        self.rows += take as u64;
        Ok(take)
    }

    /// Writes every `<field>.npy` with its final shape and removes the spill files.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> Result<FinishedFile> {
        let mut files = Vec::with_capacity(self.columns.len());
        let mut bytes = 0;
        for column in self.columns {
            let path = self.dir.join(format!("{}.npy", column.name));
            let size = write_npy(column, &path, self.rows, self.sync)
                .context_with(|| format!("writing {}", path.display()))?;
            bytes += size;
            files.push(path);
        }
        Ok(FinishedFile {
            path: self.dir,
            files,
            rows: self.rows,
            bytes,
        })
    }

    /// Removes the unit's directory and everything in it.
    ///
    /// # Errors
    /// When the directory cannot be removed.
    pub fn discard(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The schema the unit was opened with.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

fn row_bytes(column: &NpyColumn, max_chars: u64) -> u64 {
    if column.is_text() {
        4 * max_chars.max(1)
    } else {
        column.row_bytes
    }
}

fn shape(rows: u64, inner: Option<u64>) -> Vec<u64> {
    match inner {
        Some(d) => vec![rows, d],
        None => vec![rows],
    }
}

fn dtype(descr: &str) -> Result<DType> {
    let type_str: TypeStr = descr
        .parse()
        .map_err(|e| Error::External(format!("numpy dtype `{descr}`: {e}").into()))?;
    Ok(DType::Plain(type_str))
}

/// Exact length of the header npyz writes for this dtype and shape.
fn header_len(descr: &str, rows: u64, inner: Option<u64>) -> u64 {
    let Ok(dtype) = dtype(descr) else {
        return HEADER_BOUND;
    };
    let mut buf = Vec::with_capacity(HEADER_BOUND as usize);
    match WriteOptions::new_header_only()
        .dtype(dtype)
        .shape(&shape(rows, inner))
        .writer(&mut buf)
        .write_header_only()
    {
        Ok(_) => buf.len() as u64,
        Err(_) => HEADER_BOUND,
    }
}

/// Appends the values of `array` (no nulls, already checked) to the column's spill file.
fn spill(column: &mut NpyColumn, array: &ArrayRef, dir: &Path, first_row: u64) -> Result<()> {
    let out = &mut column.spill;
    match &column.kind {
        Column::Bool => {
            let bytes: Vec<u8> = array.as_boolean().values().iter().map(u8::from).collect();
            out.write_all(&bytes)?;
        }
        Column::Int8 => {
            out.write_all(array.as_primitive::<Int8Type>().values().inner().as_slice())?
        }
        Column::Int16 => out.write_all(
            array
                .as_primitive::<Int16Type>()
                .values()
                .inner()
                .as_slice(),
        )?,
        Column::Int32 => out.write_all(
            array
                .as_primitive::<Int32Type>()
                .values()
                .inner()
                .as_slice(),
        )?,
        Column::Int64 => out.write_all(
            array
                .as_primitive::<Int64Type>()
                .values()
                .inner()
                .as_slice(),
        )?,
        Column::Float32 => out.write_all(
            array
                .as_primitive::<Float32Type>()
                .values()
                .inner()
                .as_slice(),
        )?,
        Column::Float64 => out.write_all(
            array
                .as_primitive::<Float64Type>()
                .values()
                .inner()
                .as_slice(),
        )?,
        Column::FloatVector(dim) => {
            check_vector_nulls(array.as_ref(), dir, &column.name, first_row)?;
            let list = array.as_fixed_size_list();
            let values = list
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| {
                    Error::schema(format!(
                        "float vector `{}` does not hold Float32",
                        column.name
                    ))
                })?;
            let bytes = values.values().inner().as_slice();
            out.write_all(&bytes[..list.len() * dim * 4])?;
        }
        Column::BinaryVector(width) => {
            let fsb = array.as_fixed_size_binary();
            out.write_all(&fsb.value_data()[..fsb.len() * width])?;
        }
        Column::Text | Column::Json => {
            for value in array.as_string::<i32>().iter() {
                let value = value.unwrap_or_default();
                out.write_all(&(value.len() as u32).to_le_bytes())?;
                out.write_all(value.as_bytes())?;
            }
        }
        // `Column::classify` refuses both for NumPy.
        Column::Array(_) | Column::SparseVector => {
            return Err(Error::unsupported(
                format!("field `{}`", column.name),
                "arrays and sparse vectors cannot be written to numpy staging files",
            ))
        }
    }
    Ok(())
}

/// Writes one `.npy` from the column's spill file; returns its size.
fn write_npy(column: NpyColumn, path: &Path, rows: u64, sync: bool) -> Result<u64> {
    let (descr, inner) = column.dtype();
    let is_text = column.is_text();
    let spill_path = column.spill_path;
    let spill_file = column.spill.into_inner().map_err(|e| e.into_error())?;
    drop(spill_file);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut input = BufReader::with_capacity(1 << 20, File::open(&spill_path)?);
    if is_text {
        let mut writer = WriteOptions::<str>::new()
            .dtype(dtype(&descr)?)
            .shape(&[rows])
            .writer(&mut out)
            .begin_nd()?;
        let mut buf = Vec::new();
        for _ in 0..rows {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            buf.resize(u32::from_le_bytes(len) as usize, 0);
            input.read_exact(&mut buf)?;
            let text = std::str::from_utf8(&buf)
                .map_err(|e| Error::External(format!("corrupt spill file: {e}").into()))?;
            writer.push(text)?;
        }
        writer.finish()?;
    } else {
        let mut body = WriteOptions::new_header_only()
            .dtype(dtype(&descr)?)
            .shape(&shape(rows, inner))
            .writer(&mut out)
            .write_header_only()?;
        let copied = std::io::copy(&mut input, &mut body)?;
        let expected = rows * column.row_bytes;
        if copied != expected {
            return Err(Error::External(
                format!("spill file holds {copied} bytes, expected {expected}").into(),
            ));
        }
    }
    drop(input);
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if sync {
        file.sync_all()?;
    }
    let size = file.metadata()?.len();
    std::fs::remove_file(&spill_path)?;
    Ok(size)
}
