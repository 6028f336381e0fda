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
//! Pages always start at a row boundary. The kernel copies a page's values into the page cache
//! fastest when they sit at the same offset inside a 64-byte cache line in the buffer and in the
//! file, so a page's definition levels — all one value — are split into as many extra runs as
//! it takes to put them there (a sequence of runs is plain RLE that every reader decodes).

use std::collections::HashMap;
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
    /// Repetition levels of a page of `page_rows` rows (every page but a chunk's last).
    full_rep: Vec<u8>,
    /// Page prefixes (header and levels) by row count and length modulo [`LINE`].
    prefixes: HashMap<(usize, usize), Vec<u8>>,
}

/// The kernel copies a page's values into the page cache fastest when they sit at the same
/// offset inside a cache line in the batch's buffer and in the file; page prefixes are padded
/// to make them so.
const LINE: usize = 64;

/// Most prefixes kept (one per row count and alignment); the last pages of chunks have many
/// row counts.
const MAX_PREFIXES: usize = 256;

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
    /// `InvalidInput` if the dimension is 0 or one row is too large for a page.
    pub fn new(
        dim: usize,
        max_def: i16,
        max_rep: i16,
        page_bytes: usize,
        max_page_rows: usize,
    ) -> io::Result<VectorPages> {
        let row_bytes = dim
            .checked_mul(4)
            .filter(|&b| b > 0 && i32::try_from(b).is_ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "vector dimension out of range")
            })?;
        let page_rows = (page_bytes / row_bytes).clamp(1, max_page_rows.max(1));
        let mut pages = VectorPages {
            dim,
            page_rows,
            max_def,
            max_rep,
            full_rep: Vec::new(),
            prefixes: HashMap::new(),
        };
        pages.full_rep = pages.rep_levels(page_rows);
        // Fails early if a full page cannot be described.
        pages.prefix(page_rows, 0)?;
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

    /// Writes one column chunk holding the float values of `segments` in order, starting at
    /// byte `start` of the file. Each segment is the little-endian `f32` bytes of a whole
    /// number of rows; a page may take its values from several segments.
    ///
    /// # Errors
    /// `InvalidInput` if a segment is not a whole number of rows; I/O errors of `out`.
    pub fn write_chunk<W: Write>(
        &mut self,
        out: &mut W,
        start: u64,
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
        let segments: Vec<&[u8]> = segments.iter().copied().filter(|s| !s.is_empty()).collect();
        let rows: usize = segments.iter().map(|s| s.len() / row_bytes).sum();
        let mut bytes = 0u64;
        let mut done = 0;
        let mut segment = 0;
        let mut offset = 0;
        while done < rows {
            let n = self.page_rows.min(rows - done);
            let first = segments
                .get(segment)
                .map_or(0, |s| s[offset..].as_ptr() as usize);
            let here = (start + bytes) as usize;
            let prefix = self.prefix(n, first.wrapping_sub(here) % LINE)?;
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

    /// The page header and levels of a page of `rows` rows, `align` bytes long modulo [`LINE`]
    /// when the page has enough values to pad (see [`def_levels_padded`]).
    fn prefix(&mut self, rows: usize, align: usize) -> io::Result<&[u8]> {
        let key = (rows, align);
        if !self.prefixes.contains_key(&key) {
            if self.prefixes.len() >= MAX_PREFIXES {
                self.prefixes.clear();
            }
            let built = self.build_prefix(rows, align)?;
            self.prefixes.insert(key, built);
        }
        Ok(self.prefixes.get(&key).map_or(&[][..], Vec::as_slice))
    }

    fn build_prefix(&self, rows: usize, align: usize) -> io::Result<Vec<u8>> {
        let values = rows * self.dim;
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "Parquet page too large");
        let num_values = i32::try_from(values).map_err(|_| too_big())?;
        let rep = if rows == self.page_rows {
            self.full_rep.clone()
        } else {
            self.rep_levels(rows)
        };
        let level_bytes = |def: &[u8]| {
            let rep_section = if self.max_rep > 0 { 4 + rep.len() } else { 0 };
            let def_section = if self.max_def > 0 { 4 + def.len() } else { 0 };
            rep_section + def_section
        };
        let header = |levels: usize| -> io::Result<Vec<u8>> {
            let size = i32::try_from(levels + values * 4).map_err(|_| too_big())?;
            Ok(page_header(num_values, size))
        };
        // No padding if the length is right already, else the first padding that makes it so,
        // else none.
        let mut def = def_levels(values, self.max_def);
        let natural = header(level_bytes(&def))?.len() + level_bytes(&def);
        if self.max_def > 0 && natural % LINE != align {
            for pad in 1..3 * LINE {
                let Some(padded) = def_levels_padded(values, self.max_def, pad) else {
                    continue;
                };
                let len = header(level_bytes(&padded))?.len() + level_bytes(&padded);
                if len % LINE == align {
                    def = padded;
                    break;
                }
            }
        }
        let mut out = header(level_bytes(&def))?;
        if self.max_rep > 0 {
            push_levels(&mut out, &rep)?;
        }
        if self.max_def > 0 {
            push_levels(&mut out, &def)?;
        }
        Ok(out)
    }

    /// The RLE-encoded repetition levels of `rows` rows.
    fn rep_levels(&self, rows: usize) -> Vec<u8> {
        let mut rep = Vec::new();
        if self.max_rep == 0 {
            return rep;
        }
        if self.dim == 1 {
            rle_run(&mut rep, rows, 0, self.max_rep);
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
        rep
    }
}

/// The definition levels of `values` present values: one RLE run.
fn def_levels(values: usize, max_def: i16) -> Vec<u8> {
    let mut def = Vec::new();
    rle_run(&mut def, values, max_def, max_def);
    def
}

/// The definition levels of `values` present values, `pad` bytes longer than one run (unless
/// the main run's header gets shorter): the same levels split into extra runs of 1 value
/// (2 bytes each) and, for an odd `pad`, one of 64 values (3 bytes). Readers decode any
/// sequence of runs. `None` when there are too few values to split, or `pad` is 1.
fn def_levels_padded(values: usize, max_def: i16, pad: usize) -> Option<Vec<u8>> {
    let threes = pad % 2;
    let twos = pad.checked_sub(3 * threes)? / 2;
    let extra = twos + 64 * threes;
    let main = values.checked_sub(extra).filter(|&m| m > 0)?;
    let mut def = Vec::new();
    for _ in 0..twos {
        rle_run(&mut def, 1, max_def, max_def);
    }
    for _ in 0..threes {
        rle_run(&mut def, 64, max_def, max_def);
    }
    rle_run(&mut def, main, max_def, max_def);
    Some(def)
}

/// The Thrift compact encoding of the `PageHeader` of a v1 data page whose values are PLAIN
/// and whose levels are RLE.
fn page_header(num_values: i32, size: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    // PageHeader { 1: type, 2: uncompressed_page_size, 3: compressed_page_size,
    //              5: data_page_header }
    thrift_i32(&mut out, 1, DATA_PAGE);
    thrift_i32(&mut out, 1, size);
    thrift_i32(&mut out, 1, size);
    out.push((2 << 4) | THRIFT_STRUCT);
    // DataPageHeader { 1: num_values, 2: encoding, 3: definition_level_encoding,
    //                  4: repetition_level_encoding }
    thrift_i32(&mut out, 1, num_values);
    thrift_i32(&mut out, 1, PLAIN);
    thrift_i32(&mut out, 1, RLE);
    thrift_i32(&mut out, 1, RLE);
    out.push(0); // end of DataPageHeader
    out.push(0); // end of PageHeader
    out
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

    /// A page as read back: its value count, levels and values.
    struct Page {
        num_values: usize,
        rep: Vec<i16>,
        def: Vec<i16>,
        values: Vec<u8>,
        /// Offset of the values in the chunk.
        values_at: usize,
    }

    fn varint(data: &[u8], at: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = data[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                return v;
            }
        }
    }

    /// The i32 fields of a Thrift compact struct (nested structs flattened in order).
    fn thrift_fields(data: &[u8], at: &mut usize, out: &mut Vec<i64>) {
        loop {
            let h = data[*at];
            *at += 1;
            match h & 0x0f {
                0 => return,
                THRIFT_I32 => {
                    let z = varint(data, at) as i64;
                    out.push((z >> 1) ^ -(z & 1));
                }
                THRIFT_STRUCT => thrift_fields(data, at, out),
                other => panic!("unexpected thrift type {other}"),
            }
        }
    }

    fn rle(data: &[u8], width: usize) -> Vec<i16> {
        let (mut at, mut out) = (0, Vec::new());
        while at < data.len() {
            let h = varint(data, &mut at);
            assert_eq!(h & 1, 0, "bit-packed runs are never written");
            let mut v = [0u8; 2];
            v[..width].copy_from_slice(&data[at..at + width]);
            at += width;
            out.extend(std::iter::repeat_n(
                i16::from_le_bytes(v),
                (h >> 1) as usize,
            ));
        }
        out
    }

    /// Reads the pages of a chunk written with max rep 1 and max def 2.
    fn pages_of(chunk: &[u8]) -> Vec<Page> {
        let (mut at, mut pages) = (0, Vec::new());
        while at < chunk.len() {
            let mut f = Vec::new();
            thrift_fields(chunk, &mut at, &mut f);
            // type, uncompressed, compressed, num_values, encoding, def enc, rep enc
            assert_eq!((f[0], f[1], f[4], f[5], f[6]), (0, f[2], 0, 3, 3));
            let end = at + f[2] as usize;
            let levels = |at: &mut usize| {
                let len = u32::from_le_bytes(chunk[*at..*at + 4].try_into().unwrap()) as usize;
                *at += 4 + len;
                rle(&chunk[*at - len..*at], 1)
            };
            let rep = levels(&mut at);
            let def = levels(&mut at);
            pages.push(Page {
                num_values: f[3] as usize,
                rep,
                def,
                values: chunk[at..end].to_vec(),
                values_at: at,
            });
            at = end;
        }
        pages
    }

    #[test]
    fn levels_and_header_bytes() {
        // dim 3, max def 2, max rep 1: two rows → 6 values. LINE is never a length modulo
        // LINE, so this is the unpadded prefix.
        let pages = VectorPages::new(3, 2, 1, 1 << 20, 20_000).unwrap();
        let out = pages.build_prefix(2, LINE).unwrap();
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
    fn pages_split_at_rows_span_segments_and_align_values() {
        let dim = 32;
        let row = dim * 4;
        let mut pages = VectorPages::new(dim, 2, 1, 3 * row, 100).unwrap();
        assert_eq!(pages.page_rows(), 3);
        // Buffers whose data starts at every offset in a cache line.
        let backing: Vec<u8> = (0..64 * row).map(|i| (i * 7 % 251) as u8).collect();
        for shift in 0..LINE {
            for start in [0u64, 5, 64, 1001] {
                let a = &backing[shift..shift + 4 * row]; // 4 rows
                let b = &backing[shift + 9 * row..shift + 12 * row]; // 3 rows
                let mut out = Vec::new();
                let written = pages.write_chunk(&mut out, start, &[a, &[], b]).unwrap();
                assert_eq!((written.rows, written.values), (7, 7 * dim as u64));
                assert_eq!(written.bytes, out.len() as u64);
                let read = pages_of(&out);
                // 3 + 3 + 1 rows; values in order; levels exact.
                assert_eq!(read.len(), 3);
                let values: Vec<u8> = read.iter().flat_map(|p| p.values.clone()).collect();
                assert_eq!(values, [a, b].concat());
                for (page, rows) in read.iter().zip([3, 3, 1]) {
                    assert_eq!(page.num_values, rows * dim);
                    assert_eq!(page.def, vec![2; rows * dim]);
                    let rep: Vec<i16> = (0..rows * dim).map(|i| i16::from(i % dim != 0)).collect();
                    assert_eq!(page.rep, rep);
                }
                // The first two pages start in `a` and at its third row: their values sit at
                // the same offset in a cache line in the file (start + position) as in memory.
                for (page, src) in read.iter().zip([a.as_ptr(), a[3 * row..].as_ptr()]) {
                    let file = start as usize + page.values_at;
                    assert_eq!(
                        file % LINE,
                        src as usize % LINE,
                        "shift {shift} start {start}"
                    );
                }
            }
        }
        let mut out = Vec::new();
        assert_eq!(
            pages
                .write_chunk(&mut out, 0, &[&backing[..9]])
                .unwrap_err()
                .to_string(),
            "9 value bytes are not a whole number of 32-dimensional float vectors"
        );
    }

    #[test]
    fn padded_definition_levels_decode_to_the_same_levels() {
        for pad in [0, 2, 3, 4, 5, 63, 64, 127] {
            let def = def_levels_padded(1000, 3, pad).unwrap();
            assert_eq!(rle(&def, 1), vec![3; 1000], "pad {pad}");
            assert_eq!(def.len(), def_levels(1000, 3).len() + pad, "pad {pad}");
        }
        assert!(def_levels_padded(1000, 3, 1).is_none());
        assert!(def_levels_padded(10, 3, 63).is_none());
    }

    #[test]
    fn varints_and_zigzag() {
        let mut out = Vec::new();
        super::varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        thrift_i32(&mut out, 1, -1);
        assert_eq!(out, [0x15, 1]);
        out.clear();
        thrift_i32(&mut out, 2, 1 << 20);
        assert_eq!(out, [0x25, 0x80, 0x80, 0x80, 0x01]);
    }
}
