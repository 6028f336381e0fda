//! Decoders of PostgreSQL's binary formats into Arrow columns.
//!
//! pgvector's binary (send/recv) formats, from its README:
//!
//! | type        | layout (big-endian)                                                         |
//! |-------------|-----------------------------------------------------------------------------|
//! | `vector`    | int16 dim, int16 unused, dim × float4                                       |
//! | `halfvec`   | int16 dim, int16 unused, dim × float2                                       |
//! | `sparsevec` | int32 dim, int32 nnz, int32 unused, nnz × int32 index (0-based), nnz × float4 |
//! | `bit`       | (PostgreSQL's varbit) int32 bit length, ⌈len/8⌉ bytes, first bit the MSB     |
//!
//! Scalars are PostgreSQL's own binary forms; `timestamp[tz]` is int64 microseconds and `date`
//! int32 days, both since 2000-01-01. One-dimensional arrays are
//! `int32 ndim, int32 has_nulls, oid element, (int32 length, int32 lower bound) per dimension`,
//! then per element an int32 byte length (−1 for NULL) and the bytes.
//!
//! Each [`ColumnBuilder::push`] returns a plain message on bad input; the reader adds where (the
//! table, the row's key and the column).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListArray, Float16Array, Float32Array, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, MapArray, StringBuilder,
    StructArray, UInt32Array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};
use half::f16;
use vmig_core::vector::{binary_vector_array, float_vector_array, sparse_float_vector_type};
use vmig_core::Result;

use crate::schema::{ColumnKind, Elem};

/// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

type Msg = std::result::Result<(), String>;

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(i16::from_be_bytes)
}
fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_be_bytes)
}
fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_be_bytes)
}

fn exact<'a>(b: &'a [u8], len: usize, what: &str) -> std::result::Result<&'a [u8], String> {
    if b.len() == len {
        Ok(b)
    } else {
        Err(format!(
            "a binary {what} value of {} bytes (expected {len})",
            b.len()
        ))
    }
}

/// Decodes a `vector` value: its float4 elements, appended to `out`; returns the dimension.
///
/// # Errors
/// When the value is shorter or longer than its header says.
pub fn vector_into(b: &[u8], out: &mut Vec<f32>) -> std::result::Result<usize, String> {
    let dim = be_i16(b, 0).ok_or("a `vector` value shorter than its header")?;
    let dim = usize::try_from(dim).map_err(|_| format!("a `vector` of dimension {dim}"))?;
    let body = exact(b, 4 + 4 * dim, "`vector`")?;
    out.extend(
        body[4..]
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
    );
    Ok(dim)
}

/// Decodes a `halfvec` value into `out`; returns the dimension.
///
/// # Errors
/// When the value is shorter or longer than its header says.
pub fn halfvec_into(b: &[u8], out: &mut Vec<f16>) -> std::result::Result<usize, String> {
    let dim = be_i16(b, 0).ok_or("a `halfvec` value shorter than its header")?;
    let dim = usize::try_from(dim).map_err(|_| format!("a `halfvec` of dimension {dim}"))?;
    let body = exact(b, 4 + 2 * dim, "`halfvec`")?;
    out.extend(
        body[4..]
            .chunks_exact(2)
            .map(|c| f16::from_bits(u16::from_be_bytes([c[0], c[1]]))),
    );
    Ok(dim)
}

/// Decodes a `sparsevec` value: appends its indices and values; returns (dim, nnz).
///
/// # Errors
/// When the lengths disagree, an index is negative or indices are not strictly ascending.
pub fn sparsevec_into(
    b: &[u8],
    keys: &mut Vec<u32>,
    values: &mut Vec<f32>,
) -> std::result::Result<(usize, usize), String> {
    let (Some(dim), Some(nnz)) = (be_i32(b, 0), be_i32(b, 4)) else {
        return Err("a `sparsevec` value shorter than its header".into());
    };
    let nnz = usize::try_from(nnz).map_err(|_| format!("a `sparsevec` with {nnz} non-zeros"))?;
    let dim = usize::try_from(dim).map_err(|_| format!("a `sparsevec` of dimension {dim}"))?;
    let body = exact(b, 12 + 8 * nnz, "`sparsevec`")?;
    let (idx, vals) = body[12..].split_at(4 * nnz);
    let mut last: Option<u32> = None;
    for c in idx.chunks_exact(4) {
        let i = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let i = u32::try_from(i).map_err(|_| format!("a `sparsevec` index {i}"))?;
        if last.is_some_and(|l| l >= i) {
            return Err(format!(
                "`sparsevec` indices not strictly ascending at index {i}"
            ));
        }
        last = Some(i);
        keys.push(i);
    }
    values.extend(
        vals.chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
    );
    Ok((dim, nnz))
}

/// Decodes a `bit`/`varbit` value: its bit length and bytes (first bit = MSB of byte 0, which is
/// Milvus's binary vector order).
///
/// # Errors
/// When the value is shorter or longer than its bit length says.
pub fn bits(b: &[u8]) -> std::result::Result<(usize, &[u8]), String> {
    let n = be_i32(b, 0).ok_or("a `bit` value shorter than its header")?;
    let n = usize::try_from(n).map_err(|_| format!("a `bit` value of {n} bits"))?;
    let body = exact(b, 4 + n.div_ceil(8), "`bit`")?;
    Ok((n, &body[4..]))
}

/// `timestamp`/`timestamptz` → microseconds since the Unix epoch.
///
/// # Errors
/// For `±infinity` and malformed values.
pub fn timestamp_micros(b: &[u8]) -> std::result::Result<i64, String> {
    let v = be_i64(exact(b, 8, "timestamp")?, 0).ok_or("a short timestamp")?;
    if v == i64::MAX || v == i64::MIN {
        return Err("the timestamp is ±infinity, which has no epoch value (use `timestamps = \"string\"` or a `where` that leaves it out)".into());
    }
    v.checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| "a timestamp beyond the Int64 microsecond range".into())
}

/// `date` → microseconds since the Unix epoch at midnight UTC.
///
/// # Errors
/// For `±infinity` and malformed values.
pub fn date_micros(b: &[u8]) -> std::result::Result<i64, String> {
    let v = be_i32(exact(b, 4, "date")?, 0).ok_or("a short date")?;
    if v == i32::MAX || v == i32::MIN {
        return Err("the date is ±infinity, which has no epoch value (use `timestamps = \"string\"` or a `where` that leaves it out)".into());
    }
    (i64::from(v) + PG_EPOCH_DAYS)
        .checked_mul(MICROS_PER_DAY)
        .ok_or_else(|| "a date beyond the Int64 microsecond range".into())
}

/// The elements of a one-dimensional binary array (each `None` for NULL).
///
/// # Errors
/// For multi-dimensional or malformed arrays.
pub fn array_elements(b: &[u8]) -> std::result::Result<Vec<Option<&[u8]>>, String> {
    let ndim = be_i32(b, 0).ok_or("an array shorter than its header")?;
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array (Milvus arrays have one dimension)"
        ));
    }
    let n = be_i32(b, 12).ok_or("an array shorter than its header")?;
    let n = usize::try_from(n).map_err(|_| format!("an array of {n} elements"))?;
    let mut at = 20;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = be_i32(b, at).ok_or("an array shorter than its elements")?;
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let len = len as usize;
        let v = b
            .get(at..at + len)
            .ok_or("an array shorter than its elements")?;
        out.push(Some(v));
        at += len;
    }
    if at != b.len() {
        return Err("an array with trailing bytes".into());
    }
    Ok(out)
}

fn scalar<const N: usize>(b: &[u8], what: &str) -> std::result::Result<[u8; N], String> {
    exact(b, N, what)?
        .try_into()
        .map_err(|_| format!("a bad {what} value"))
}

fn text(b: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| format!("text that is not UTF-8 ({e})"))
}

/// Appends one array element of type `elem` (or NULL) to `out`.
macro_rules! list_push {
    ($builder:expr, $b:expr, $decode:expr) => {{
        match $b {
            None => $builder.append_null(),
            Some(b) => {
                for e in array_elements(b)? {
                    match e {
                        None => $builder.values().append_null(),
                        Some(e) => $builder.values().append_value($decode(e)?),
                    }
                }
                $builder.append(true);
            }
        }
        Ok(())
    }};
}

/// Builds one Arrow column from the binary values of one result column.
#[derive(Debug)]
pub enum ColumnBuilder {
    /// `bool`.
    Bool(BooleanBuilder),
    /// `int2`.
    Int16(Int16Builder),
    /// `int4`.
    Int32(Int32Builder),
    /// `int8`.
    Int64(Int64Builder),
    /// `float4`.
    Float32(Float32Builder),
    /// `float8` (and `numeric::float8`).
    Float64(Float64Builder),
    /// Text of any kind (and values the server converted to text).
    Text(StringBuilder),
    /// `timestamp[tz]` as epoch microseconds.
    TimeMicros(Int64Builder),
    /// `date` as epoch microseconds.
    DateMicros(Int64Builder),
    /// `vector(dim)` (and `halfvec::vector`): the flat elements.
    Vector(usize, Vec<f32>),
    /// `halfvec(dim)`.
    HalfVec(usize, Vec<f16>),
    /// `sparsevec`: offsets, keys, values.
    Sparse(Vec<i32>, Vec<u32>, Vec<f32>),
    /// `bit(dim)`: dim bits and the packed bytes.
    Bit(usize, Vec<u8>),
    /// Arrays of booleans.
    ListBool(ListBuilder<BooleanBuilder>),
    /// Arrays of int2.
    ListInt16(ListBuilder<Int16Builder>),
    /// Arrays of int4.
    ListInt32(ListBuilder<Int32Builder>),
    /// Arrays of int8.
    ListInt64(ListBuilder<Int64Builder>),
    /// Arrays of float4.
    ListFloat32(ListBuilder<Float32Builder>),
    /// Arrays of float8.
    ListFloat64(ListBuilder<Float64Builder>),
    /// Arrays of text.
    ListText(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    /// An empty builder for a column of `kind` (dimension `dim` for dense vectors).
    pub fn new(kind: &ColumnKind, dim: usize) -> Self {
        match kind {
            ColumnKind::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnKind::Int16 => ColumnBuilder::Int16(Int16Builder::new()),
            ColumnKind::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            ColumnKind::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            ColumnKind::Float32 => ColumnBuilder::Float32(Float32Builder::new()),
            ColumnKind::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            ColumnKind::Text | ColumnKind::Json => ColumnBuilder::Text(StringBuilder::new()),
            ColumnKind::TimeMicros => ColumnBuilder::TimeMicros(Int64Builder::new()),
            ColumnKind::DateMicros => ColumnBuilder::DateMicros(Int64Builder::new()),
            ColumnKind::Vector | ColumnKind::HalfAsFloat32 => {
                ColumnBuilder::Vector(dim, Vec::new())
            }
            ColumnKind::HalfVec => ColumnBuilder::HalfVec(dim, Vec::new()),
            ColumnKind::Sparse => ColumnBuilder::Sparse(vec![0], Vec::new(), Vec::new()),
            ColumnKind::Bit => ColumnBuilder::Bit(dim, Vec::new()),
            ColumnKind::Array(e) => match e {
                Elem::Bool => ColumnBuilder::ListBool(ListBuilder::new(BooleanBuilder::new())),
                Elem::Int16 => ColumnBuilder::ListInt16(ListBuilder::new(Int16Builder::new())),
                Elem::Int32 => ColumnBuilder::ListInt32(ListBuilder::new(Int32Builder::new())),
                Elem::Int64 => ColumnBuilder::ListInt64(ListBuilder::new(Int64Builder::new())),
                Elem::Float32 => {
                    ColumnBuilder::ListFloat32(ListBuilder::new(Float32Builder::new()))
                }
                Elem::Float64 => {
                    ColumnBuilder::ListFloat64(ListBuilder::new(Float64Builder::new()))
                }
                Elem::Text => ColumnBuilder::ListText(ListBuilder::new(StringBuilder::new())),
            },
        }
    }

    /// Appends one value (`None` = SQL NULL).
    ///
    /// # Errors
    /// A message saying what is wrong with the value (the caller says where).
    pub fn push(&mut self, b: Option<&[u8]>) -> Msg {
        use ColumnBuilder as C;
        match self {
            C::Bool(x) => x.append_option(
                b.map(|b| scalar::<1>(b, "bool"))
                    .transpose()?
                    .map(|v| v[0] != 0),
            ),
            C::Int16(x) => x.append_option(
                b.map(|b| scalar::<2>(b, "int2"))
                    .transpose()?
                    .map(i16::from_be_bytes),
            ),
            C::Int32(x) => x.append_option(
                b.map(|b| scalar::<4>(b, "int4"))
                    .transpose()?
                    .map(i32::from_be_bytes),
            ),
            C::Int64(x) => x.append_option(
                b.map(|b| scalar::<8>(b, "int8"))
                    .transpose()?
                    .map(i64::from_be_bytes),
            ),
            C::Float32(x) => x.append_option(
                b.map(|b| scalar::<4>(b, "float4"))
                    .transpose()?
                    .map(f32::from_be_bytes),
            ),
            C::Float64(x) => x.append_option(
                b.map(|b| scalar::<8>(b, "float8"))
                    .transpose()?
                    .map(f64::from_be_bytes),
            ),
            C::Text(x) => x.append_option(b.map(text).transpose()?),
            C::TimeMicros(x) => x.append_option(b.map(timestamp_micros).transpose()?),
            C::DateMicros(x) => x.append_option(b.map(date_micros).transpose()?),
            C::Vector(dim, out) => {
                let b = b.ok_or_else(null_vector)?;
                let got = vector_into(b, out)?;
                if got != *dim {
                    out.truncate(out.len() - got);
                    return Err(wrong_dim(got, *dim));
                }
            }
            C::HalfVec(dim, out) => {
                let b = b.ok_or_else(null_vector)?;
                let got = halfvec_into(b, out)?;
                if got != *dim {
                    out.truncate(out.len() - got);
                    return Err(wrong_dim(got, *dim));
                }
            }
            C::Sparse(offsets, keys, values) => {
                let b = b.ok_or_else(null_vector)?;
                sparsevec_into(b, keys, values)?;
                let end = i32::try_from(keys.len())
                    .map_err(|_| "more than 2^31 sparse entries in one batch".to_string())?;
                offsets.push(end);
            }
            C::Bit(dim, out) => {
                let b = b.ok_or_else(null_vector)?;
                let (n, bytes) = bits(b)?;
                if n != *dim {
                    return Err(format!(
                        "a bit string of {n} bits where the column's binary vectors have {dim}"
                    ));
                }
                out.extend_from_slice(bytes);
            }
            C::ListBool(x) => {
                return list_push!(x, b, |e| scalar::<1>(e, "bool").map(|v| v[0] != 0))
            }
            C::ListInt16(x) => {
                return list_push!(x, b, |e| scalar::<2>(e, "int2").map(i16::from_be_bytes))
            }
            C::ListInt32(x) => {
                return list_push!(x, b, |e| scalar::<4>(e, "int4").map(i32::from_be_bytes))
            }
            C::ListInt64(x) => {
                return list_push!(x, b, |e| scalar::<8>(e, "int8").map(i64::from_be_bytes))
            }
            C::ListFloat32(x) => {
                return list_push!(x, b, |e| scalar::<4>(e, "float4").map(f32::from_be_bytes))
            }
            C::ListFloat64(x) => {
                return list_push!(x, b, |e| scalar::<8>(e, "float8").map(f64::from_be_bytes))
            }
            C::ListText(x) => return list_push!(x, b, text),
        }
        Ok(())
    }

    /// The finished column.
    ///
    /// # Errors
    /// When Arrow refuses the buffers (it should not).
    pub fn finish(self) -> Result<ArrayRef> {
        use ColumnBuilder as C;
        Ok(match self {
            C::Bool(mut x) => Arc::new(x.finish()),
            C::Int16(mut x) => Arc::new(x.finish()),
            C::Int32(mut x) => Arc::new(x.finish()),
            C::Int64(mut x) | C::TimeMicros(mut x) | C::DateMicros(mut x) => Arc::new(x.finish()),
            C::Float32(mut x) => Arc::new(x.finish()),
            C::Float64(mut x) => Arc::new(x.finish()),
            C::Text(mut x) => Arc::new(x.finish()),
            C::Vector(dim, v) => Arc::new(float_vector_array(Float32Array::from(v), dim)?),
            C::HalfVec(dim, v) => Arc::new(FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float16, true)),
                dim as i32,
                Arc::new(Float16Array::from(v)),
                None,
            )?),
            C::Sparse(offsets, keys, values) => {
                let DataType::Map(entries, sorted) = sparse_float_vector_type() else {
                    return Err(vmig_core::Error::schema(
                        "the sparse vector type is not a Map",
                    ));
                };
                let DataType::Struct(fields) = entries.data_type().clone() else {
                    return Err(vmig_core::Error::schema(
                        "the sparse vector entries are not a Struct",
                    ));
                };
                let strukt = StructArray::try_new(
                    fields,
                    vec![
                        Arc::new(UInt32Array::from(keys)) as ArrayRef,
                        Arc::new(Float32Array::from(values)),
                    ],
                    None,
                )?;
                Arc::new(MapArray::try_new(
                    entries,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    strukt,
                    None,
                    sorted,
                )?)
            }
            C::Bit(dim, bytes) => Arc::new(binary_vector_array(Buffer::from_vec(bytes), dim / 8)?),
            C::ListBool(mut x) => Arc::new(x.finish()),
            C::ListInt16(mut x) => Arc::new(x.finish()),
            C::ListInt32(mut x) => Arc::new(x.finish()),
            C::ListInt64(mut x) => Arc::new(x.finish()),
            C::ListFloat32(mut x) => Arc::new(x.finish()),
            C::ListFloat64(mut x) => Arc::new(x.finish()),
            C::ListText(mut x) => Arc::new(x.finish()),
        })
    }
}

fn null_vector() -> String {
    "a NULL vector (Milvus vectors cannot be null; add `where = \"<column> IS NOT NULL\"` to leave such rows out)".into()
}

fn wrong_dim(got: usize, want: usize) -> String {
    format!("a vector of {got} dimensions where the column has {want}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_bits_are_exact_and_lengths_checked() {
        let vals = [1.5f32, -0.0, f32::from_bits(1), f32::MAX];
        let mut b = vec![0, 4, 0, 0];
        for v in vals {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let mut out = Vec::new();
        assert_eq!(vector_into(&b, &mut out).unwrap(), 4);
        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, vals.map(f32::to_bits));
        assert!(vector_into(&b[..b.len() - 1], &mut out)
            .unwrap_err()
            .contains("expected 20"));
    }

    #[test]
    fn sparse_and_bits_and_arrays() {
        let mut b = Vec::new();
        for v in [10i32, 2, 0, 1, 7] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&0.5f32.to_be_bytes());
        b.extend_from_slice(&(-2.0f32).to_be_bytes());
        let (mut k, mut v) = (Vec::new(), Vec::new());
        assert_eq!(sparsevec_into(&b, &mut k, &mut v).unwrap(), (10, 2));
        assert_eq!((k, v), (vec![1, 7], vec![0.5, -2.0]));
        let (n, bytes) = bits(&[0, 0, 0, 16, 0b1000_0000, 1]).unwrap();
        assert_eq!((n, bytes), (16, &[0b1000_0000u8, 1][..]));
        let mut a = Vec::new();
        for v in [1i32, 1, 23, 2, 1, 4, 7, -1] {
            a.extend_from_slice(&v.to_be_bytes());
        }
        let e = array_elements(&a).unwrap();
        assert_eq!(e, vec![Some(&7i32.to_be_bytes()[..]), None]);
        assert_eq!(date_micros(&0i32.to_be_bytes()).unwrap(), PG_EPOCH_MICROS);
        assert!(timestamp_micros(&i64::MAX.to_be_bytes())
            .unwrap_err()
            .contains("infinity"));
    }
}
