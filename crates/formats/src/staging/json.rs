//! Row-based JSON staging files: `{"rows": [{…}, …]}` (all Milvus 2.x versions).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use vmig_core::{Error, Result};

use super::sparse::{as_sparse, write_sparse};
use super::{check_json, check_vector_nulls, location, normalize_text, Column, StagingFormat};

const HEAD: &[u8] = b"{\"rows\":[";
const TAIL: &[u8] = b"\n]}\n";

/// Writes one row-based JSON file, `{"rows":[` then one object per line, then `]}`.
///
/// Float32 values (scalars and vectors) are written in the shortest form that reads back as the
/// same `f32`, Float64 likewise for `f64`, and integers as integers. NaN and infinities cannot
/// be written ([`Error::Data`]). Binary vectors are arrays of byte values (`[128, 7]`), sparse
/// vectors objects `{"indices":[…],"values":[…]}` (Milvus 2.4.3+). JSON
/// fields holding an object are embedded as that object; other JSON values (numbers, arrays, …)
/// are embedded as a string holding the JSON text, the only way Milvus accepts them. Nulls are
/// `null`.
pub struct JsonWriter<W: Write> {
    out: BufWriter<W>,
    schema: SchemaRef,
    columns: Vec<Column>,
    /// `"name":` for each field, JSON-escaped.
    keys: Vec<Vec<u8>>,
    label: PathBuf,
    rows: u64,
    /// Bytes written so far.
    written: u64,
    row: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for JsonWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonWriter")
            .field("file", &self.label)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl<W: Write> JsonWriter<W> {
    /// Starts a JSON file on `out` for batches of `schema`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming a field JSON staging cannot hold; I/O errors.
    pub fn try_new(out: W, schema: &SchemaRef) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column::classify(f, StagingFormat::Json))
            .collect::<Result<Vec<_>>>()?;
        let keys = schema
            .fields()
            .iter()
            .map(|f| {
                let mut key = serde_json::to_vec(f.name()).map_err(json_error)?;
                key.push(b':');
                Ok(key)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        out.write_all(HEAD)?;
        Ok(JsonWriter {
            out,
            schema: schema.clone(),
            columns,
            keys,
            label: PathBuf::from("<json output>"),
            rows: 0,
            written: HEAD.len() as u64,
            row: Vec::new(),
        })
    }

    /// Names the output in error messages.
    #[must_use]
    pub fn with_label(mut self, path: &Path) -> Self {
        self.label = path.to_path_buf();
        self
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The exact file size if it were finished now.
    pub fn bytes(&self) -> u64 {
        self.written + TAIL.len() as u64
    }

    /// Appends every row of `batch`.
    ///
    /// # Errors
    /// [`Error::Data`] naming the field and row of a value JSON cannot hold (NaN, infinity, a
    /// null vector, invalid JSON text); I/O errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_within(batch, u64::MAX).map(|_| ())
    }

    /// Appends the longest prefix of `batch` that keeps the finished file within `max_bytes`;
    /// returns its row count.
    ///
    /// # Errors
    /// As [`JsonWriter::write`].
    pub fn write_within(&mut self, batch: &RecordBatch, max_bytes: u64) -> Result<usize> {
        super::check_batch(&self.schema, batch, &self.label)?;
        let arrays: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&self.columns)
            .map(|(a, c)| match c {
                Column::Text | Column::Json => normalize_text(a),
                _ => Ok(a.clone()),
            })
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let row = self.rows;
            let mut buf = std::mem::take(&mut self.row);
            buf.clear();
            buf.extend_from_slice(if row == 0 { b"\n{" } else { b",\n{" });
            for (c, ((array, column), field)) in arrays
                .iter()
                .zip(&self.columns)
                .zip(self.schema.fields())
                .enumerate()
            {
                if c > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(&self.keys[c]);
                let at = Place {
                    file: &self.label,
                    field: field.name(),
                    row,
                };
                encode(&mut buf, array, column, i, &at)?;
            }
            buf.push(b'}');
            if self.written + buf.len() as u64 + TAIL.len() as u64 > max_bytes {
                self.row = buf;
                return Ok(i);
            }
            self.out.write_all(&buf)?;
            self.written += buf.len() as u64;
            self.rows += 1;
            self.row = buf;
        }
        Ok(batch.num_rows())
    }

    /// Closes the `rows` array and returns the output, flushed.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> Result<W> {
        self.out.write_all(TAIL)?;
        self.out.into_inner().map_err(|e| e.into_error().into())
    }
}

struct Place<'a> {
    file: &'a Path,
    field: &'a str,
    row: u64,
}

impl Place<'_> {
    fn data(&self, message: impl Into<String>) -> Error {
        Error::data(location(self.file, self.field, self.row), message)
    }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::External(Box::new(e))
}

fn write_json<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<()> {
    serde_json::to_writer(buf, value).map_err(json_error)
}

fn write_f32(buf: &mut Vec<u8>, v: f32, at: &Place<'_>, what: &str) -> Result<()> {
    if !v.is_finite() {
        return Err(at.data(format!(
            "{what} is {v}; JSON cannot hold NaN or infinity (Milvus rejects them too)"
        )));
    }
    write_json(buf, &v)
}

fn write_f64(buf: &mut Vec<u8>, v: f64, at: &Place<'_>, what: &str) -> Result<()> {
    if !v.is_finite() {
        return Err(at.data(format!(
            "{what} is {v}; JSON cannot hold NaN or infinity (Milvus rejects them too)"
        )));
    }
    write_json(buf, &v)
}

fn encode(
    buf: &mut Vec<u8>,
    array: &ArrayRef,
    column: &Column,
    i: usize,
    at: &Place<'_>,
) -> Result<()> {
    match column {
        Column::FloatVector(dim) => {
            check_vector_nulls(&array.slice(i, 1), at.file, at.field, at.row)?;
            let list = array.as_fixed_size_list();
            let values = list
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| {
                    Error::schema(format!("float vector `{}` does not hold Float32", at.field))
                })?;
            let row = &values.values()[i * dim..(i + 1) * dim];
            buf.push(b'[');
            for (d, &v) in row.iter().enumerate() {
                if d > 0 {
                    buf.push(b',');
                }
                write_f32(buf, v, at, &format!("dimension {d}"))?;
            }
            buf.push(b']');
            Ok(())
        }
        Column::BinaryVector(_) => {
            if array.is_null(i) {
                return Err(at.data("vector is null; Milvus vectors cannot be null"));
            }
            let bytes = array.as_fixed_size_binary().value(i);
            buf.push(b'[');
            for (d, b) in bytes.iter().enumerate() {
                if d > 0 {
                    buf.push(b',');
                }
                write_json(buf, b)?;
            }
            buf.push(b']');
            Ok(())
        }
        Column::SparseVector => {
            let map = as_sparse(array.as_ref(), at.field)?;
            write_sparse(buf, map, i, at.file, at.field, at.row)
        }
        Column::Json => {
            if array.is_null(i) {
                buf.extend_from_slice(b"null");
                return Ok(());
            }
            let text = array.as_string::<i32>().value(i);
            if check_json(text, at.file, at.field, at.row)? {
                // An object: embed it verbatim (without surrounding whitespace), keeping
                // every number exactly as written.
                buf.extend_from_slice(text.trim().as_bytes());
            } else {
                write_json(buf, text)?;
            }
            Ok(())
        }
        Column::Array(item) => {
            if array.is_null(i) {
                buf.extend_from_slice(b"null");
                return Ok(());
            }
            let values: ArrayRef = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(i),
                DataType::LargeList(_) => array.as_list::<i64>().value(i),
                DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(i),
                other => {
                    return Err(Error::schema(format!(
                        "array field `{}` has type {other}",
                        at.field
                    )))
                }
            };
            let values = normalize_text(&values)?;
            buf.push(b'[');
            for j in 0..values.len() {
                if j > 0 {
                    buf.push(b',');
                }
                encode_scalar(buf, &values, item, j, at, &format!("element {j}"))?;
            }
            buf.push(b']');
            Ok(())
        }
        scalar => encode_scalar(buf, array, scalar, i, at, "value"),
    }
}

fn encode_scalar(
    buf: &mut Vec<u8>,
    array: &ArrayRef,
    column: &Column,
    i: usize,
    at: &Place<'_>,
    what: &str,
) -> Result<()> {
    if array.is_null(i) {
        buf.extend_from_slice(b"null");
        return Ok(());
    }
    match column {
        Column::Bool => buf.extend_from_slice(if array.as_boolean().value(i) {
            b"true"
        } else {
            b"false"
        }),
        Column::Int8 => write_json(buf, &array.as_primitive::<Int8Type>().value(i))?,
        Column::Int16 => write_json(buf, &array.as_primitive::<Int16Type>().value(i))?,
        Column::Int32 => write_json(buf, &array.as_primitive::<Int32Type>().value(i))?,
        Column::Int64 => write_json(buf, &array.as_primitive::<Int64Type>().value(i))?,
        Column::Float32 => write_f32(buf, array.as_primitive::<Float32Type>().value(i), at, what)?,
        Column::Float64 => write_f64(buf, array.as_primitive::<Float64Type>().value(i), at, what)?,
        Column::Text | Column::Json => write_json(buf, array.as_string::<i32>().value(i))?,
        other => {
            return Err(Error::schema(format!(
                "field `{}`: {other:?} is not a scalar",
                at.field
            )))
        }
    }
    Ok(())
}
