//! Uncompressed float vector column chunks, written page by page straight from the Arrow buffers.
//!
//! A float vector column (`List<Float32>`, no nulls, every list `dim` long) has the same
//! repetition and definition levels on every row, and its PLAIN-encoded values are the
//! little-endian `f32` bytes Arrow already holds. So a data page is a fixed prefix — the page
//! header and the levels, which depend only on the page's row count — followed by the value bytes,
//! which are written from the batch's own buffer without being copied or looked at. Parquet's
//! column writer would instead encode two levels per value and copy every value into its page
//! buffer: for a float vector file that was most of the CPU time.
//!
//! Formats, from the Parquet specification (`parquet.thrift`, `Encodings.md`):
//! - a `DATA_PAGE` (v1) holds the repetition levels, then the definition levels, each as a
//!   little-endian `u32` byte length followed by the RLE/bit-packing hybrid encoding, then the
//!   values;
//! - an RLE run is the ULEB128 varint `count << 1` followed by the level in
//!   `ceil(bit width / 8)` little-endian bytes, where the bit width is that of the column's
//!   maximum level;
//! - the page header is the Thrift compact encoding of `PageHeader` with its
//!   `DataPageHeader`.
//!
//! Pages always start at a row boundary and hold at most [`VectorPages::page_rows`] rows.

use std::io::{self, Write};

/// Thrift compact protocol type id of `i32` (zigzag varint).
const THRIFT_I32: u8 = 5;
/// Thrift compact protocol type id of a nested struct.
const THRIFT_STRUCT: u8 = 12;
/// `PageType::DATA_PAGE`.
const DATA_PAGE: i32 = 0;
/// `Encoding::PLAIN`.
const PLAIN: i32 = 0;
/// `Encoding::RLE` (the RLE/bit-packing hybrid used for levels).
const RLE: i32 = 3;

/// Writes the data pages of uncompressed float vector column chunks of one dimension and one
/// pair of maximum levels.
#[derive(Debug)]
pub(super) struct VectorPages {
    dim: usize,
    page_rows: usize,
    max_def: i16,
    max_rep: i16,
    /// Header and levels of a page of `page_rows` rows (every page but a chunk's last).
    full_prefix: Vec<u8>,
    /// Header and levels of a chunk's last page.
    scratch: Vec<u8>,
}

/// What [`VectorPages::write_chunk`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkWritten {
    /// Rows (lists) written.
    pub rows: u64,
    /// Values (floats) written: the column chunk's `num_values`.
    pub values: u64,
    /// Bytes written, page headers included.
    pub bytes: u64,
}

impl VectorPages {
    /// Pages of at most `page_bytes` value bytes (at least one row) and `max_page_rows` rows.
    ///
    /// # Errors
    /// `InvalidInput` if one row does not fit the `i32` sizes of a page header.
    pub fn new(
        dim: usize,
        max_def: i16,
        max_rep: i16,
        page_bytes: usize,
        max_page_rows: usize,
    ) -> io::Result<VectorPages> {
        let row_bytes = dim.checked_mul(4).filter(|&b| b > 0).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "vector dimension out of range")
        })?;
        let page_rows = (page_bytes / row_bytes).clamp(1, max_page_rows.max(1));
        let mut pages = VectorPages {
            dim,
            page_rows,
            max_def,
            max_rep,
            full_prefix: Vec::new(),
            scratch: Vec::new(),
        };
        let mut full = Vec::new();
        pages.prefix(page_rows, &mut full)?;
        pages.full_prefix = full;
        Ok(pages)
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows in every page but a chunk's last.
    #[cfg(test)]
    pub fn page_rows(&self) -> usize {
        self.page_rows
    }

    /// Writes one column chunk holding the float values of `segments` in order. Each segment
    /// is the little-endian `f32` bytes of a whole number of rows; a page may take its values
    /// from several segments.
    ///
    /// # Errors
    /// `InvalidInput` if a segment is not a whole number of rows; I/O errors of `out`.
    pub fn write_chunk<W: Write>(
        &mut self,
        out: &mut W,
        segments: &[&[u8]],
    ) -> io::Result<ChunkWritten> {
        let row_bytes = self.dim * 4;
        if let Some(bad) = segments.iter().find(|s| s.len() % row_bytes != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} value bytes are not a whole number of {}-dimensional float vectors",
                    bad.len(),
                    self.dim
                ),
            ));
        }
        let rows: usize = segments.iter().map(|s| s.len() / row_bytes).sum();
        let mut bytes = 0u64;
        let mut done = 0;
        let mut segment = 0;
        let mut offset = 0;
        while done < rows {
            let n = self.page_rows.min(rows - done);
            let prefix = if n == self.page_rows {
                &self.full_prefix
            } else {
                let mut scratch = std::mem::take(&mut self.scratch);
                self.prefix(n, &mut scratch)?;
                self.scratch = scratch;
                &self.scratch
            };
            out.write_all(prefix)?;
            bytes += prefix.len() as u64;
            let mut need = n * row_bytes;
            while need > 0 {
                let Some(&data) = segments.get(segment) else {
                    break;
                };
                let take = need.min(data.len() - offset);
                out.write_all(&data[offset..offset + take])?;
                offset += take;
                need -= take;
                if offset == data.len() {
                    segment += 1;
                    offset = 0;
                }
            }
            bytes += (n * row_bytes) as u64;
            done += n;
        }
        Ok(ChunkWritten {
            rows: rows as u64,
            values: (rows * self.dim) as u64,
            bytes,
        })
    }

    /// Replaces `out` with the page header and levels of a page of `rows` rows.
    fn prefix(&self, rows: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let values = rows * self.dim;
        let mut levels = Vec::new();
        if self.max_rep > 0 {
            let mut rep = Vec::new();
            if self.dim == 1 {
                rle_run(&mut rep, values, 0, self.max_rep);
            } else {
                // Each row: one 0 (a new list) then `dim - 1` continuations.
                let mut row = Vec::new();
                rle_run(&mut row, 1, 0, self.max_rep);
                rle_run(&mut row, self.dim - 1, self.max_rep, self.max_rep);
                rep.reserve(row.len() * rows);
                for _ in 0..rows {
                    rep.extend_from_slice(&row);
                }
            }
            push_levels(&mut levels, &rep)?;
        }
        if self.max_def > 0 {
            let mut def = Vec::new();
            rle_run(&mut def, values, self.max_def, self.max_def);
            push_levels(&mut levels, &def)?;
        }
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "Parquet page too large");
        let size = i32::try_from(levels.len() + values * 4).map_err(|_| too_big())?;
        let num_values = i32::try_from(values).map_err(|_| too_big())?;
        out.clear();
        // PageHeader { 1: type, 2: uncompressed_page_size, 3: compressed_page_size,
        //              5: data_page_header }
        thrift_i32(out, 1, DATA_PAGE);
        thrift_i32(out, 1, size);
        thrift_i32(out, 1, size);
        out.push((2 << 4) | THRIFT_STRUCT);
        // DataPageHeader { 1: num_values, 2: encoding, 3: definition_level_encoding,
        //                  4: repetition_level_encoding }
        thrift_i32(out, 1, num_values);
        thrift_i32(out, 1, PLAIN);
        thrift_i32(out, 1, RLE);
        thrift_i32(out, 1, RLE);
        out.push(0); // end of DataPageHeader
        out.push(0); // end of PageHeader
        out.extend_from_slice(&levels);
        Ok(())
    }
}

/// Appends a `u32` little-endian length and the encoded levels.
fn push_levels(out: &mut Vec<u8>, encoded: &[u8]) -> io::Result<()> {
    let len = u32::try_from(encoded.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "Parquet page too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(encoded);
    Ok(())
}

/// Appends an RLE run of `count` copies of `level` for a column whose maximum level is `max`.
fn rle_run(out: &mut Vec<u8>, count: usize, level: i16, max: i16) {
    varint(out, (count as u64) << 1);
    let bit_width = 16 - (max.max(0) as u16).leading_zeros() as usize;
    let bytes = (level as u16).to_le_bytes();
    out.extend_from_slice(&bytes[..bit_width.div_ceil(8)]);
}

/// Appends `value` as a ULEB128 varint.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a Thrift compact field header (`delta` from the previous field id) and an `i32`.
fn thrift_i32(out: &mut Vec<u8>, delta: u8, value: i32) {
    out.push((delta << 4) | THRIFT_I32);
    varint(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_header_bytes() {
        // dim 3, max def 2, max rep 1: two rows → 6 values.
        let pages = VectorPages::new(3, 2, 1, 1 << 20, 20_000).unwrap();
        let mut out = Vec::new();
        pages.prefix(2, &mut out).unwrap();
        let rep = [2, 0, 4, 1, 2, 0, 4, 1]; // (1 × 0)(2 × 1) per row
        let def = [12, 2]; // 6 × 2
        let size = 4 + rep.len() + 4 + def.len() + 6 * 4;
        let mut want = vec![
            0x15,
            0,
            0x15,
            (size * 2) as u8,
            0x15,
            (size * 2) as u8,
            0x2c,
        ];
        want.extend_from_slice(&[0x15, 12, 0x15, 0, 0x15, 6, 0x15, 6, 0, 0]);
        want.extend_from_slice(&(rep.len() as u32).to_le_bytes());
        want.extend_from_slice(&rep);
        want.extend_from_slice(&(def.len() as u32).to_le_bytes());
        want.extend_from_slice(&def);
        assert_eq!(out, want);
    }

    #[test]
    fn pages_split_at_rows_and_span_segments() {
        let mut pages = VectorPages::new(2, 1, 1, 3 * 8, 100).unwrap();
        assert_eq!(pages.page_rows(), 3);
        let a: Vec<u8> = (0..4 * 8).collect(); // 4 rows
        let b: Vec<u8> = (100..100 + 3 * 8).collect(); // 3 rows
        let mut out = Vec::new();
        let written = pages.write_chunk(&mut out, &[&a, &b]).unwrap();
        assert_eq!((written.rows, written.values), (7, 14));
        assert_eq!(written.bytes, out.len() as u64);
        // Three pages (3 + 3 + 1 rows) whose values, in order, are a then b.
        let mut full = Vec::new();
        pages.prefix(3, &mut full).unwrap();
        let mut last = Vec::new();
        pages.prefix(1, &mut last).unwrap();
        let values: Vec<u8> = a.iter().chain(&b).copied().collect();
        let mut want = full.clone();
        want.extend_from_slice(&values[..24]);
        want.extend_from_slice(&full);
        want.extend_from_slice(&values[24..48]);
        want.extend_from_slice(&last);
        want.extend_from_slice(&values[48..]);
        assert_eq!(out, want);
        assert!(pages.write_chunk(&mut out, &[&a[..9]]).is_err());
    }

    #[test]
    fn varints_and_zigzag() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        thrift_i32(&mut out, 1, -1);
        assert_eq!(out, [0x15, 1]);
        out.clear();
        thrift_i32(&mut out, 2, 1 << 20);
        assert_eq!(out, [0x25, 0x80, 0x80, 0x80, 0x01]);
    }
}
