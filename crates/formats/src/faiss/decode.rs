//! Pure helpers turning the bytes of a [`Block`] into Arrow arrays.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::buffer::{Buffer, ScalarBuffer};
use bytes::Bytes;
use vmig_core::vector::{binary_vector_array, f32_array_from_le, float_vector_array};
use vmig_core::{Error, Result};

use super::{Block, BlockIds, FaissLayout, IdMapTable, ReadAt, VectorKind};

/// Ids stored as `n × i64` little-endian, without copying when `bytes` is 8-byte aligned.
///
/// # Errors
/// When `bytes.len()` is not a multiple of 8.
pub fn ids_from_le(bytes: Bytes) -> Result<Int64Array> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::data(
            "id bytes",
            format!("{} bytes are not a whole number of 8-byte ids", bytes.len()),
        ));
    }
    let n = bytes.len() / 8;
    let buffer = vmig_core::vector::le_buffer::<i64>(bytes)?;
    Ok(Int64Array::new(ScalarBuffer::new(buffer, 0, n), None))
}

/// The ids `first .. first + rows`.
///
/// # Errors
/// When the last id would not fit in an `i64`.
pub fn implicit_ids(first: i64, rows: usize) -> Result<Int64Array> {
    let last_ok = rows == 0
        || i64::try_from(rows - 1)
            .ok()
            .and_then(|r| first.checked_add(r))
            .is_some();
    if !last_ok {
        return Err(Error::data(
            "implicit ids",
            format!("{rows} ids starting at {first} overflow i64"),
        ));
    }
    Ok(Int64Array::from_iter_values(
        (0..rows as i64).map(|i| first + i),
    ))
}

/// Translates inner ids through an id map (see [`BlockIds::Mapped`]): `table[inner]` for each.
///
/// # Errors
/// `(k, inner)` for the first inner id outside `0..table.len()`; the caller locates it with
/// [`mapped_id_error`].
pub fn map_ids(inner: &[i64], table: &[i64]) -> std::result::Result<Int64Array, (usize, i64)> {
    let mut out = Vec::with_capacity(inner.len());
    for (k, &i) in inner.iter().enumerate() {
        let id = usize::try_from(i)
            .ok()
            .and_then(|i| table.get(i))
            .ok_or((k, i))?;
        out.push(*id);
    }
    Ok(Int64Array::from(out))
}

/// The error for an inner id that its id map does not cover: row `row` of block number `block`
/// of the index in file `name` holds `inner`. Located at the byte holding it.
pub fn mapped_id_error(
    name: &str,
    layout: &FaissLayout,
    block: usize,
    row: u64,
    inner: i64,
) -> Error {
    let b = layout.blocks.get(block);
    let at = b
        .and_then(|b| b.ids_range(row..row + 1))
        .map_or(0, |r| r.start);
    let (class, len) = layout
        .id_map
        .map_or(("id map", 0), |t: IdMapTable| (t.class, t.len));
    let place = match b.and_then(|b| b.list_no) {
        Some(l) => format!("entry {row} of inverted list {l}"),
        None => format!("row {row} of block {block}"),
    };
    Error::data(
        format!("{name} at byte {at}"),
        format!(
            "{place} stores the inner id {inner}, but the id map of the {class} has {len} ids \
             (inner ids 0..{len}): the file is corrupted, or remove_ids changed the index in a \
             way its id map no longer describes"
        ),
    )
}

/// Vectors stored row-major as raw little-endian bytes: `dim` `f32`s per row (zero-copy when
/// aligned), or `dim / 8` packed bytes per row for binary indexes.
///
/// # Errors
/// When `bytes` does not hold whole rows or `dim` is not valid for `kind`.
pub fn vectors_from_le(kind: VectorKind, dim: usize, bytes: Bytes) -> Result<ArrayRef> {
    match kind {
        VectorKind::Float32 => {
            if dim == 0 || !bytes.len().is_multiple_of(dim * 4) {
                return Err(Error::data(
                    "vector bytes",
                    format!(
                        "{} bytes are not whole rows of {dim} float32 values",
                        bytes.len()
                    ),
                ));
            }
            let values = f32_array_from_le(bytes)?;
            Ok(Arc::new(float_vector_array(values, dim)?))
        }
        VectorKind::Binary => {
            if dim == 0 || !dim.is_multiple_of(8) {
                return Err(Error::data(
                    "vector bytes",
                    format!("{dim} is not a valid binary dimension (a positive multiple of 8)"),
                ));
            }
            Ok(Arc::new(binary_vector_array(Buffer::from(bytes), dim / 8)?))
        }
    }
}

/// The first value that is NaN or ±Inf in row-major `values` of `dim` per row, as
/// `(row, component)`; `None` when all are finite (or `dim == 0`).
pub fn first_non_finite(values: &[f32], dim: usize) -> Option<(usize, usize)> {
    if dim == 0 {
        return None;
    }
    // Check a chunk at a time with a branch-free test, then locate within the failing chunk.
    const CHUNK: usize = 256;
    for (c, chunk) in values.chunks(CHUNK).enumerate() {
        if chunk.iter().fold(true, |ok, v| ok & v.is_finite()) {
            continue;
        }
        let i = chunk.iter().position(|v| !v.is_finite()).unwrap_or(0) + c * CHUNK;
        return Some((i / dim, i % dim));
    }
    None
}

/// Rows of one block, decoded.
#[derive(Debug, Clone)]
pub struct DecodedRows {
    /// One id per row.
    pub ids: Int64Array,
    /// One vector per row (`FixedSizeList<Float32>` or `FixedSizeBinary`).
    pub vectors: ArrayRef,
}

/// Reads and decodes `rows` (row indices inside block number `block`) in one go. Meant for
/// small reads and tests; a streaming reader reads [`Block::codes_range`] and
/// [`Block::ids_range`] in chunks of its own choosing.
///
/// # Errors
/// When `block` or `rows` is out of range, or a read fails.
pub fn read_rows(
    r: &dyn ReadAt,
    layout: &FaissLayout,
    block: usize,
    rows: Range<u64>,
) -> Result<DecodedRows> {
    let b: &Block = layout.blocks.get(block).ok_or_else(|| {
        Error::data(
            "faiss layout",
            format!(
                "block {block} does not exist (the layout has {})",
                layout.blocks.len()
            ),
        )
    })?;
    if rows.start > rows.end || rows.end > b.rows {
        return Err(Error::data(
            "faiss layout",
            format!("rows {rows:?} are outside block {block} (0..{})", b.rows),
        ));
    }
    let n = usize::try_from(rows.end - rows.start)
        .map_err(|_| Error::data("faiss layout", "too many rows for one read"))?;
    let codes = read_range(r, b.codes_range(layout.row_bytes, rows.clone()))?;
    let vectors = vectors_from_le(layout.vectors, layout.dim, codes)?;
    let ids = match b.ids {
        BlockIds::Implicit { first } => {
            let start = i64::try_from(rows.start)
                .ok()
                .and_then(|s| first.checked_add(s))
                .ok_or_else(|| Error::data("faiss layout", "implicit ids overflow i64"))?;
            implicit_ids(start, n)?
        }
        BlockIds::Stored { .. } => {
            let range = b.ids_range(rows).unwrap_or(0..0);
            ids_from_le(read_range(r, range)?)?
        }
        BlockIds::Mapped { .. } => {
            let range = b.ids_range(rows.clone()).unwrap_or(0..0);
            let inner = ids_from_le(read_range(r, range)?)?;
            let table = layout
                .id_map
                .ok_or_else(|| Error::data("faiss layout", "mapped ids without an id map"))?;
            let mut ids = Vec::with_capacity(n);
            for (k, &i) in inner.values().iter().enumerate() {
                let pos = u64::try_from(i)
                    .ok()
                    .filter(|&p| p < table.len)
                    .ok_or_else(|| {
                        mapped_id_error("faiss index", layout, block, rows.start + k as u64, i)
                    })?;
                let mut raw = [0u8; 8];
                r.read_exact_at(table.offset + pos * 8, &mut raw)
                    .map_err(|e| Error::from(e).context("reading the id map"))?;
                ids.push(i64::from_le_bytes(raw));
            }
            Int64Array::from(ids)
        }
    };
    Ok(DecodedRows { ids, vectors })
}

fn read_range(r: &dyn ReadAt, range: Range<u64>) -> Result<Bytes> {
    let len = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| Error::data("faiss layout", "byte range too large for one read"))?;
    let mut buf = vec![0u8; len];
    r.read_exact_at(range.start, &mut buf)
        .map_err(|e| Error::from(e).context(format!("reading bytes {range:?}")))?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_aligned_and_not() {
        let want = [1i64, -2, i64::MAX, i64::MIN];
        let mut raw = vec![0u8];
        for v in want {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let b = Bytes::from(raw);
        assert_eq!(ids_from_le(b.slice(1..)).unwrap().values().as_ref(), &want);
        let aligned = Bytes::from(b.slice(1..).to_vec());
        assert_eq!(ids_from_le(aligned).unwrap().values().as_ref(), &want);
        assert_eq!(
            ids_from_le(Bytes::from_static(&[0; 7]))
                .unwrap_err()
                .to_string(),
            "invalid data at id bytes: 7 bytes are not a whole number of 8-byte ids"
        );
    }

    #[test]
    fn implicit_ids_check_overflow() {
        assert_eq!(implicit_ids(5, 3).unwrap().values().as_ref(), &[5, 6, 7]);
        assert_eq!(
            implicit_ids(i64::MAX, 2).unwrap_err().to_string(),
            "invalid data at implicit ids: 2 ids starting at 9223372036854775807 overflow i64"
        );
        assert_eq!(implicit_ids(i64::MAX, 1).unwrap().len(), 1);
        assert_eq!(implicit_ids(0, 0).unwrap().len(), 0);
    }

    #[test]
    fn finds_non_finite() {
        let mut v = vec![0.5f32; 1000];
        assert_eq!(first_non_finite(&v, 8), None);
        v[517] = f32::NAN;
        v[900] = f32::INFINITY;
        assert_eq!(first_non_finite(&v, 8), Some((64, 5)));
        assert_eq!(first_non_finite(&v[600..], 8), Some((37, 4)));
    }
}
