//! The `npy` parser: one NumPy array file (NPY format v1.0–v3.0) as one column.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, FixedSizeListArray, PrimitiveArray, StringBuilder,
};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, Schema, SchemaRef, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use arrow::record_batch::RecordBatch;
use npyz::{DType, Endianness, NpyHeader, Order, TypeChar};
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig, Wanted};
use vmig_core::vector;
use vmig_core::{Error, Result};

/// Options of the `npy` format.
///
/// A 1-D array becomes a scalar column; a 2-D array becomes a vector column, as Milvus's NumPy
/// import reads them: `float32` → `FloatVector(dim)`, `float16` → `Float16Vector(dim)`, `uint8`
/// → `BinaryVector(8 × width)`. Scalars: `bool`, `int8`…`int64`, `uint8`…`uint64`,
/// `float16`/`32`/`64`, fixed-width Unicode `<U{n}` (→ text, trailing NULs removed as NumPy
/// does) and bytes `|S{n}` (→ binary, likewise). Either byte order. Object (pickled),
/// structured, complex and date/time arrays and more than two dimensions are refused naming
/// the file. 2-D arrays in C order are streamed; in Fortran order (column by column) they are
/// read by random access, each batch gathered from one range per column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpyParserConfig {
    /// The column's name; default: the file name without `.npy` (Milvus's NumPy layout names
    /// each file after its field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ParserConfig for NpyParserConfig {
    const NAME: &'static str = "npy";
    const SUMMARY: &'static str =
        "one NumPy array per file: 1-D a scalar column, 2-D float32/float16/uint8 vectors";
    const EXTENSIONS: &'static [&'static str] = &["npy"];

    fn example() -> Self {
        Self {
            field: Some("embedding".into()),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.field.as_deref() == Some("") {
            return Err(Error::config(Self::NAME, "`field` may not be empty"));
        }
        Ok(())
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        let field = self
            .field
            .clone()
            .unwrap_or_else(|| input.stem().to_string());
        Ok(Box::new(NpyParser::new(input.clone(), field)))
    }
}

/// How one element is stored and which Arrow column it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Bool,
    Int(u8),
    UInt(u8),
    Float(u8),
    /// UTF-32 code units per value.
    Unicode(usize),
    /// Bytes per value.
    Bytes(usize),
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::Bool => 1,
            Element::Int(n) | Element::UInt(n) | Element::Float(n) => usize::from(n),
            Element::Unicode(n) => n * 4,
            Element::Bytes(n) => n,
        }
    }
}

/// What the header said, once decoded.
#[derive(Debug)]
struct Layout {
    schema: SchemaRef,
    element: Element,
    big_endian: bool,
    /// Elements per row: 1 for a 1-D array, the second dimension for a 2-D one.
    width: usize,
    row_bytes: usize,
    rows: u64,
    /// Byte offset of the first row in the file.
    data_start: u64,
    /// A 2-D array stored column by column (Fortran order): read by random access, each batch
    /// gathered from one range per column.
    fortran: bool,
}

/// The push decoder of one `.npy` input ([`NpyParserConfig`] says what it accepts).
#[derive(Debug)]
pub struct NpyParser {
    input: ParseInput,
    field: String,
    /// The header's bytes until it is complete.
    header: Vec<u8>,
    layout: Option<Layout>,
    /// Bytes of the current batch: complete rows, then at most one incomplete row.
    data: Vec<u8>,
    /// Rows returned by `flush` so far.
    rows_out: u64,
    /// A batch gathered from a Fortran-order array's ranges, not yet taken by `flush`.
    gathered: Option<RecordBatch>,
}

/// `\x93NUMPY`.
const MAGIC: &[u8] = b"\x93NUMPY";

impl NpyParser {
    /// A parser for `input` whose column is named `field`.
    pub fn new(input: ParseInput, field: String) -> Self {
        Self {
            input,
            field,
            header: Vec::new(),
            layout: None,
            data: Vec::new(),
            rows_out: 0,
            gathered: None,
        }
    }

    fn at(&self, offset: u64) -> String {
        format!("{} at byte {offset}", self.input.name)
    }

    /// The header's total length once its fixed prefix is known.
    fn header_len(&self) -> Result<Option<usize>> {
        let h = &self.header;
        let seen = h.len().min(MAGIC.len());
        if h[..seen] != MAGIC[..seen] {
            return Err(Error::data(
                self.at(0),
                "not a NumPy .npy file: it does not start with the magic `\\x93NUMPY`",
            ));
        }
        if h.len() < 8 {
            return Ok(None);
        }
        let (prefix, len_bytes) = match h[6] {
            1 => (10, 2),
            2 | 3 => (12, 4),
            major => {
                return Err(Error::unsupported(
                    self.at(6),
                    format!(
                        "NPY format version {major}.{} is not one of 1.0, 2.0, 3.0",
                        h[7]
                    ),
                ))
            }
        };
        if h.len() < prefix {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        len[..len_bytes].copy_from_slice(&h[8..8 + len_bytes]);
        Ok(Some(prefix + u32::from_le_bytes(len) as usize))
    }

    /// Interprets the complete header in `self.header`.
    fn read_header(&self) -> Result<Layout> {
        let header = NpyHeader::from_reader(self.header.as_slice())
            .map_err(|e| Error::data(self.at(0), format!("the NumPy header is invalid: {e}")))?;
        let at_header = self.at(0);
        let refuse = |what: String| Error::unsupported(at_header.clone(), what);
        let DType::Plain(ty) = header.dtype() else {
            return Err(refuse(format!(
                "dtype `{}` is structured; vmig reads plain arrays, one field per file",
                header.dtype().descr()
            )));
        };
        let size = ty.size_field();
        let small = |max: u64| u8::try_from(size).ok().filter(|n| u64::from(*n) <= max);
        let element = match ty.type_char() {
            TypeChar::Bool if size == 1 => Element::Bool,
            TypeChar::Int if matches!(size, 1 | 2 | 4 | 8) => Element::Int(small(8).unwrap_or(8)),
            TypeChar::Uint if matches!(size, 1 | 2 | 4 | 8) => {
                Element::UInt(small(8).unwrap_or(8))
            }
            TypeChar::Float if matches!(size, 2 | 4 | 8) => Element::Float(small(8).unwrap_or(8)),
            TypeChar::UnicodeStr if size > 0 => Element::Unicode(size as usize),
            TypeChar::ByteStr if size > 0 => Element::Bytes(size as usize),
            _ => {
                return Err(refuse(format!(
                    "dtype `{ty}` has no Arrow column here (bool, int, uint, float, <U and |S are read)"
                )))
            }
        };
        let shape = header.shape();
        let (rows, width) = match shape {
            [rows] => (*rows, 1),
            [rows, width] => (*rows, *width),
            _ => {
                return Err(refuse(format!(
                    "an array of shape {shape:?}; vmig reads 1-D (a scalar column) and 2-D (vectors) arrays"
                )))
            }
        };
        let width =
            usize::try_from(width).map_err(|_| refuse(format!("a second dimension of {width}")))?;
        let name = self.field.as_str();
        let field = match (shape.len(), element) {
            (1, e) => Field::new(name, scalar_type(e), false),
            (_, Element::Float(4)) => vector::float_vector_field(name, width),
            (_, Element::Float(2)) => vector::float16_vector_field(name, width),
            (_, Element::UInt(1)) => vector::binary_vector_field(name, width * 8)?,
            (_, _) => {
                return Err(refuse(format!(
                    "a 2-D `{ty}` array has no Milvus vector type (2-D arrays must be float32, float16 or uint8)"
                )))
            }
        };
        if width == 0 {
            return Err(refuse("a 2-D array with a second dimension of 0".into()));
        }
        let row_bytes = element.size() * width;
        let fortran = header.order() == Order::Fortran && shape.len() == 2 && width > 1 && rows > 1;
        Ok(Layout {
            fortran,
            schema: Arc::new(Schema::new(vec![field])),
            element,
            big_endian: ty.endianness() == Endianness::Big,
            width,
            row_bytes,
            rows,
            data_start: self.header.len() as u64,
        })
    }

    /// Builds the column of `bytes` (whole rows), starting at row `first_row`.
    fn column(&self, layout: &Layout, bytes: &[u8], first_row: u64) -> Result<ArrayRef> {
        let rows = bytes.len() / layout.row_bytes;
        let offset_of = |i: usize| {
            layout.data_start + (first_row + (i / layout.width) as u64) * layout.row_bytes as u64
        };
        let swapped;
        let bytes = match (layout.big_endian, layout.element) {
            (true, Element::Int(n) | Element::UInt(n) | Element::Float(n)) if n > 1 => {
                swapped = swap(bytes, usize::from(n));
                swapped.as_slice()
            }
            _ => bytes,
        };
        let field = layout.schema.field(0);
        if let DataType::FixedSizeBinary(_) = field.data_type() {
            return Ok(Arc::new(vector::binary_vector_array(
                Buffer::from(bytes.to_vec()),
                layout.width,
            )?));
        }
        let scalar: ArrayRef = match layout.element {
            Element::Bool => {
                let mut b = BooleanBuilder::with_capacity(bytes.len());
                for (i, v) in bytes.iter().enumerate() {
                    match v {
                        0 => b.append_value(false),
                        1 => b.append_value(true),
                        _ => {
                            return Err(Error::data(
                                self.at(offset_of(i)),
                                format!("bool value {v} is neither 0 nor 1"),
                            ))
                        }
                    }
                }
                Arc::new(b.finish())
            }
            Element::Int(1) => primitive::<Int8Type>(bytes),
            Element::Int(2) => primitive::<Int16Type>(bytes),
            Element::Int(4) => primitive::<Int32Type>(bytes),
            Element::Int(_) => primitive::<Int64Type>(bytes),
            Element::UInt(1) => primitive::<UInt8Type>(bytes),
            Element::UInt(2) => primitive::<UInt16Type>(bytes),
            Element::UInt(4) => primitive::<UInt32Type>(bytes),
            Element::UInt(_) => primitive::<UInt64Type>(bytes),
            Element::Float(2) => primitive::<Float16Type>(bytes),
            Element::Float(4) => primitive::<Float32Type>(bytes),
            Element::Float(_) => primitive::<Float64Type>(bytes),
            Element::Unicode(units) => {
                let mut b = StringBuilder::with_capacity(rows, bytes.len() / 4);
                let mut text = String::new();
                for (i, value) in bytes.chunks_exact(units * 4).enumerate() {
                    text.clear();
                    for unit in value.chunks_exact(4) {
                        let mut u = [0u8; 4];
                        u.copy_from_slice(unit);
                        let code = if layout.big_endian {
                            u32::from_be_bytes(u)
                        } else {
                            u32::from_le_bytes(u)
                        };
                        let c = char::from_u32(code).ok_or_else(|| {
                            Error::data(
                                self.at(offset_of(i)),
                                format!("UTF-32 code unit {code:#x} is not a Unicode scalar value"),
                            )
                        })?;
                        text.push(c);
                    }
                    b.append_value(text.trim_end_matches('\0'));
                }
                Arc::new(b.finish())
            }
            Element::Bytes(n) => {
                let mut b = BinaryBuilder::with_capacity(rows, bytes.len());
                for value in bytes.chunks_exact(n) {
                    let end = value.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1);
                    b.append_value(&value[..end]);
                }
                Arc::new(b.finish())
            }
        };
        Ok(match field.data_type() {
            DataType::FixedSizeList(item, dim) => Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *dim,
                scalar,
                None,
            )?),
            _ => scalar,
        })
    }
}

/// Reverses the bytes of every `size`-byte element (big-endian files).
fn swap(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for element in out.chunks_exact_mut(size) {
        element.reverse();
    }
    out
}

/// A primitive array of little-endian `bytes`, copied into an aligned Arrow buffer.
fn primitive<T: ArrowPrimitiveType>(bytes: &[u8]) -> ArrayRef {
    let len = bytes.len() / std::mem::size_of::<T::Native>();
    Arc::new(PrimitiveArray::<T>::new(
        ScalarBuffer::new(Buffer::from(bytes.to_vec()), 0, len),
        None,
    ))
}

fn scalar_type(element: Element) -> DataType {
    match element {
        Element::Bool => DataType::Boolean,
        Element::Int(1) => DataType::Int8,
        Element::Int(2) => DataType::Int16,
        Element::Int(4) => DataType::Int32,
        Element::Int(_) => DataType::Int64,
        Element::UInt(1) => DataType::UInt8,
        Element::UInt(2) => DataType::UInt16,
        Element::UInt(4) => DataType::UInt32,
        Element::UInt(_) => DataType::UInt64,
        Element::Float(2) => DataType::Float16,
        Element::Float(4) => DataType::Float32,
        Element::Float(_) => DataType::Float64,
        Element::Unicode(_) => DataType::Utf8,
        Element::Bytes(_) => DataType::Binary,
    }
}

impl Parser for NpyParser {
    fn schema(&self) -> Option<SchemaRef> {
        self.layout.as_ref().map(|l| l.schema.clone())
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let mut used = 0;
        while self.layout.is_none() {
            // The fixed prefix (magic, version, length) is at most 12 bytes; then the rest.
            let need = self.header_len()?.unwrap_or(12);
            if self.header.len() >= need {
                let layout = self.read_header()?;
                if let Some(planned) = &self.input.schema {
                    if planned.fields() != layout.schema.fields() {
                        return Err(Error::data(
                            self.at(0),
                            format!(
                                "the header describes the column {:?}, but the job's schema \
                                 (planned from its first file) is {:?}",
                                layout.schema.fields(),
                                planned.fields()
                            ),
                        ));
                    }
                }
                self.layout = Some(layout);
                break;
            }
            let take = (need - self.header.len()).min(buf.len() - used);
            if take == 0 {
                return Ok(used);
            }
            self.header.extend_from_slice(&buf[used..used + take]);
            used += take;
        }
        let Some(layout) = self.layout.as_ref().filter(|l| !l.fortran) else {
            // A Fortran-order array's rows are read by random access (`wanted`).
            return Ok(used);
        };
        let total = layout.rows.saturating_mul(layout.row_bytes as u64);
        let consumed = self.rows_out * layout.row_bytes as u64 + self.data.len() as u64;
        let left_in_file = total - consumed.min(total);
        let room = (self.input.batch_rows * layout.row_bytes).saturating_sub(self.data.len());
        let rest = &buf[used..];
        let take = rest.len().min(room).min(left_in_file as usize);
        if take < rest.len() && left_in_file as usize == take {
            return Err(Error::data(
                self.at(layout.data_start + total),
                format!(
                    "the file holds more bytes than its header's {} rows of {} bytes; it is not a \
                     valid .npy file",
                    layout.rows, layout.row_bytes
                ),
            ));
        }
        self.data.extend_from_slice(&rest[..take]);
        Ok(used + take)
    }

    fn wanted(&mut self) -> Result<Wanted> {
        let Some(layout) = self.layout.as_ref().filter(|l| l.fortran) else {
            return Ok(Wanted::Stream);
        };
        if self.gathered.is_some() {
            return Ok(Wanted::Batch);
        }
        if self.rows_out >= layout.rows {
            return Ok(Wanted::Done);
        }
        let element = layout.element.size() as u64;
        let end = layout.data_start + layout.rows * layout.row_bytes as u64;
        match self.input.size {
            Some(size) if size != end => {
                return Err(Error::data(
                    self.at(size.min(end)),
                    format!(
                        "the file has {size} bytes but its header's {} rows of {} bytes end at byte {end}; it is {}",
                        layout.rows,
                        layout.row_bytes,
                        if size < end { "truncated" } else { "not a valid .npy file" }
                    ),
                ))
            }
            Some(_) => {}
            None => {
                return Err(Error::config(
                    "npy",
                    format!(
                        "{}: a Fortran-order array is read by random access, which needs the file's size",
                        self.input.name
                    ),
                ))
            }
        }
        // One range per column: rows rows_out.. of column c start at element c·rows + rows_out.
        let n = (layout.rows - self.rows_out).min(self.input.batch_rows as u64);
        let ranges = (0..layout.width as u64)
            .map(|c| {
                let start = layout.data_start + (c * layout.rows + self.rows_out) * element;
                start..start + n * element
            })
            .collect();
        Ok(Wanted::Ranges(ranges))
    }

    fn push_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
        data: Vec<bytes::Bytes>,
    ) -> Result<()> {
        let Some(layout) = self.layout.as_ref().filter(|l| l.fortran) else {
            return Err(Error::External(
                "push_ranges called on a C-order .npy parser (it wants its bytes in order)".into(),
            ));
        };
        let element = layout.element.size();
        let n = data.first().map_or(0, |d| d.len() / element);
        if data.len() != layout.width
            || ranges.len() != data.len()
            || data.iter().any(|d| d.len() != n * element)
        {
            return Err(Error::External(
                format!(
                    "{}: the ranges given are not the {} columns of {n} elements asked for",
                    self.input.name, layout.width
                )
                .into(),
            ));
        }
        // Column-major ranges into row-major rows.
        let mut rows = vec![0u8; n * layout.row_bytes];
        for (c, column) in data.iter().enumerate() {
            for (r, value) in column.chunks_exact(element).enumerate() {
                let at = r * layout.row_bytes + c * element;
                rows[at..at + element].copy_from_slice(value);
            }
        }
        let column = self.column(layout, &rows, self.rows_out)?;
        self.gathered = Some(RecordBatch::try_new(layout.schema.clone(), vec![column])?);
        Ok(())
    }

    fn total_rows(&self) -> Option<u64> {
        self.layout.as_ref().map(|l| l.rows)
    }

    fn next_row_offset(&self) -> Option<u64> {
        // A Fortran-order array's next row is spread over every column: no one offset.
        let layout = self.layout.as_ref().filter(|l| !l.fortran)?;
        Some(layout.data_start + self.rows_out * layout.row_bytes as u64)
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let Some(layout) = &self.layout else {
            return Err(Error::unsupported(
                self.input.name.clone(),
                "seek before the NumPy header was read",
            ));
        };
        let expected = layout.data_start + to.rows.saturating_mul(layout.row_bytes as u64);
        // An offset, when given, must be where that row starts (a Fortran-order array reports
        // none); without one the row count alone places it (a source splitting a file into row
        // ranges).
        let offset_fits = match to.offset {
            None => true,
            Some(o) => !layout.fortran && o == expected,
        };
        if to.rows > layout.rows || !offset_fits {
            return Err(Error::data(
                self.at(to.offset.unwrap_or(0)),
                format!(
                    "cannot resume after row {} at this offset: row {} of this file starts at \
                     byte {expected} and the file has {} rows (was it replaced since?)",
                    to.rows, to.rows, layout.rows
                ),
            ));
        }
        self.rows_out = to.rows;
        self.data.clear();
        self.gathered = None;
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if let Some(batch) = self.gathered.take() {
            self.rows_out += batch.num_rows() as u64;
            return Ok(Some(batch));
        }
        let Some(layout) = &self.layout else {
            return Ok(None);
        };
        let whole = self.data.len() / layout.row_bytes * layout.row_bytes;
        if whole == 0 {
            return Ok(None);
        }
        let column = self.column(layout, &self.data[..whole], self.rows_out)?;
        let batch = RecordBatch::try_new(layout.schema.clone(), vec![column])?;
        self.rows_out += (whole / layout.row_bytes) as u64;
        self.data.drain(..whole);
        Ok(Some(batch))
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.flush()?;
        let Some(layout) = &self.layout else {
            return Err(Error::data(
                self.at(self.header.len() as u64),
                "the file ends inside its NumPy header; it is truncated",
            ));
        };
        if self.rows_out < layout.rows || !self.data.is_empty() {
            let end = layout.data_start
                + self.rows_out * layout.row_bytes as u64
                + self.data.len() as u64;
            return Err(Error::data(
                self.at(end),
                format!(
                    "the file ends after {} of the {} rows its header declares (rows are {} bytes); \
                     it is truncated",
                    self.rows_out, layout.rows, layout.row_bytes
                ),
            ));
        }
        Ok(batch)
    }
}
