//! A fast path for the `parquet` parser's vector columns: a `List` of `float32`, `float16` or
//! `uint8` whose every row holds exactly `dim` non-null values is read page by page here, its
//! values copied as they are (PLAIN) or looked up in the dictionary (dictionary-encoded pages),
//! instead of through arrow-rs's list reader, which decodes every repetition and definition
//! level into a buffer and rebuilds the offsets.
//!
//! The levels are checked on their RLE/bit-packed encoding: every definition level must be the
//! maximum (no null list, empty list or null value) and the repetition levels must be `0`
//! exactly at every `dim`-th value. Anything else (another encoding such as the
//! `DELTA_BINARY_PACKED` parquet's writer falls back to for `uint8` in format v2, a page that
//! cannot be read, a ragged row, a null) declines the chunk ([`Step::Declined`]) and the
//! caller reads the rest of it with arrow-rs, which gives the usual errors.
//!
//! # Memory
//!
//! A column chunk is never held whole: [`ChunkStream`] asks for it in windows of about one
//! batch of rows ([`ChunkStream::new`]; a window always starts at a page and grows to hold a
//! page larger than that), and hands out its rows in arrays of at most one batch each, so the
//! memory is a window, a page and a batch or two whatever the row group's size. Parquet's own
//! page reader parses the page headers and decompresses; it runs over the window, and is made
//! anew, at the page it stopped at, over the next window.

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ::parquet::basic::{Encoding, Type as PhysicalType};
use ::parquet::column::page::{Page, PageReader};
use ::parquet::errors::ParquetError;
use ::parquet::file::metadata::ColumnChunkMetaData;
use ::parquet::file::reader::{ChunkReader, Length};
use ::parquet::file::serialized_reader::SerializedPageReader;
use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float16Array, Float32Array, UInt8Array};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};
use bytes::Bytes;
use vmig_core::ranges::BufferPool;

/// The values of a vector column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    /// `float32` (Parquet FLOAT).
    F32,
    /// `float16` (Parquet FIXED_LEN_BYTE_ARRAY(2)).
    F16,
    /// `uint8` (Parquet INT32).
    U8,
}

impl Elem {
    /// Bytes of one PLAIN-encoded value.
    fn plain_width(self) -> usize {
        match self {
            Elem::F32 | Elem::U8 => 4,
            Elem::F16 => 2,
        }
    }

    /// Bytes of one Arrow value.
    fn arrow_width(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
            Elem::U8 => 1,
        }
    }

    /// Whether a leaf column of this physical type holds such values.
    fn stored_as(self, descr: &::parquet::schema::types::ColumnDescriptor) -> bool {
        match self {
            Elem::F32 => descr.physical_type() == PhysicalType::FLOAT,
            Elem::F16 => {
                descr.physical_type() == PhysicalType::FIXED_LEN_BYTE_ARRAY
                    && descr.type_length() == 2
            }
            Elem::U8 => descr.physical_type() == PhysicalType::INT32,
        }
    }

    /// `plain` (PLAIN-encoded values) as Arrow values: as they are, but for `uint8`, which is
    /// narrowed; `None` for a `uint8` out of range (arrow's to judge).
    fn to_arrow(self, plain: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Elem::F32 | Elem::F16 => Some(std::borrow::Cow::Borrowed(plain)),
            Elem::U8 => plain
                .chunks_exact(4)
                .map(|v| (v[1] | v[2] | v[3] == 0).then_some(v[0]))
                .collect::<Option<Vec<u8>>>()
                .map(std::borrow::Cow::Owned),
        }
    }

    /// An Arrow array of `len` values in `buffer`.
    fn array(self, buffer: Buffer, len: usize) -> ArrayRef {
        match self {
            Elem::F32 => Arc::new(Float32Array::new(ScalarBuffer::new(buffer, 0, len), None)),
            Elem::F16 => Arc::new(Float16Array::new(ScalarBuffer::new(buffer, 0, len), None)),
            Elem::U8 => Arc::new(UInt8Array::new(ScalarBuffer::new(buffer, 0, len), None)),
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Elem::F32 => DataType::Float32,
            Elem::F16 => DataType::Float16,
            Elem::U8 => DataType::UInt8,
        }
    }
}

/// Rows decoded and not yet handed out, in arrays of at most a batch.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    parts: VecDeque<ArrayRef>,
    rows: usize,
}

impl Ready {
    /// Adds `array` (rows after those held).
    pub(crate) fn push(&mut self, array: ArrayRef) {
        if !array.is_empty() {
            self.rows += array.len();
            self.parts.push_back(array);
        }
    }

    /// Rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The first `n` rows (one of the arrays held when it has exactly `n` rows), or `None`
    /// when fewer are held.
    pub(crate) fn take(&mut self, n: usize) -> Option<ArrayRef> {
        if n > self.rows || n == 0 {
            return None;
        }
        let mut parts = Vec::new();
        let mut got = 0;
        while got < n {
            let front = self.parts.pop_front()?;
            let want = n - got;
            if front.len() > want {
                self.parts.push_front(front.slice(want, front.len() - want));
                parts.push(front.slice(0, want));
                got = n;
            } else {
                got += front.len();
                parts.push(front);
            }
        }
        self.rows -= n;
        match parts.as_slice() {
            [one] => Some(one.clone()),
            _ => {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                arrow::compute::concat(&refs).ok()
            }
        }
    }
}

/// What [`ChunkStream::fill`] needs or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// These bytes of the file (pass them to [`ChunkStream::push`]).
    Need(Range<u64>),
    /// The rows asked for are ready, or every row of the chunk is.
    Ready,
    /// The chunk is not one this path reads (from the first row not yet handed out on, the
    /// caller reads it with arrow-rs).
    Declined,
}

/// One column chunk read page by page through windows of its bytes.
pub(crate) struct ChunkStream {
    meta: ColumnChunkMetaData,
    elem: Elem,
    /// Values per row.
    dim: usize,
    /// Values in the chunk.
    total: usize,
    max_def: u32,
    /// The chunk's bytes in the file.
    chunk: Range<u64>,
    /// Bytes asked for per window (at least).
    window_bytes: u64,
    /// The page reader over the current window, and what its reads ran into.
    pages: Option<(SerializedPageReader<Window>, Arc<Probe>)>,
    /// Where the next window starts (a page, or the chunk's start).
    next: u64,
    /// The end the next window must reach (the page that did not fit), if known.
    need_end: u64,
    /// The last window asked for.
    last: Option<Range<u64>>,
    /// The dictionary, as Arrow values.
    dict: Option<Vec<u8>>,
    /// Values decoded so far (from the chunk's start, skipped ones included).
    pos: usize,
    /// Values before this one are dropped (rows before a resume).
    skip: usize,
    /// Values per output array (a batch of rows).
    piece_values: usize,
    /// The values of the batch being decoded (a buffer of [`BufferPool`], which gets it back
    /// once the batch is dropped).
    piece: Vec<u8>,
    ready: Ready,
    /// Bytes pushed were not the window asked for, or no page reader could be made.
    declined: bool,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("chunk", &self.chunk)
            .field("pos", &self.pos)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// Bytes of the smallest window asked for.
const MIN_WINDOW: u64 = 256 * 1024;
/// Bytes of the largest window asked for by the batch estimate (a larger page still gets a
/// window that holds it).
const MAX_WINDOW: u64 = 64 * 1024 * 1024;

impl ChunkStream {
    /// A stream over column chunk `meta` of a row group of `rows` rows, as `elem` vectors,
    /// handing out rows after the first `skip_rows`, in arrays of `batch_rows`; `None` when
    /// the chunk cannot be one of rows of one length (the caller reads it with arrow-rs).
    /// Windows are about `batch_rows` rows' worth of the chunk's bytes.
    pub(crate) fn new(
        meta: &ColumnChunkMetaData,
        rows: usize,
        elem: Elem,
        skip_rows: usize,
        batch_rows: usize,
    ) -> Option<Self> {
        let descr = meta.column_descr();
        let max_def = u32::try_from(descr.max_def_level()).ok()?;
        if !elem.stored_as(descr) || descr.max_rep_level() != 1 || max_def == 0 || rows == 0 {
            return None;
        }
        let total = usize::try_from(meta.num_values()).ok()?;
        if total == 0 || !total.is_multiple_of(rows) || skip_rows > rows {
            return None;
        }
        let dim = total / rows;
        let start = u64::try_from(
            meta.dictionary_page_offset()
                .unwrap_or(meta.data_page_offset()),
        )
        .ok()?;
        let len = u64::try_from(meta.compressed_size()).ok()?;
        let chunk = start..start.checked_add(len)?;
        let batch_rows = batch_rows.max(1);
        let window_bytes = (len / rows as u64)
            .saturating_add(1)
            .saturating_mul(batch_rows as u64)
            .clamp(MIN_WINDOW, MAX_WINDOW);
        let piece_values = batch_rows.checked_mul(dim)?;
        Some(ChunkStream {
            meta: meta.clone(),
            elem,
            dim,
            total,
            max_def,
            next: chunk.start,
            chunk,
            window_bytes,
            pages: None,
            need_end: 0,
            last: None,
            dict: None,
            pos: 0,
            skip: skip_rows.checked_mul(dim)?,
            piece_values,
            piece: Vec::new(),
            ready: Ready::default(),
            declined: false,
        })
    }

    /// Rows decoded and not yet taken.
    pub(crate) fn ready(&mut self) -> &mut Ready {
        &mut self.ready
    }

    /// Decodes pages until `rows` rows are ready or the chunk's rows all are.
    pub(crate) fn fill(&mut self, rows: usize) -> Step {
        loop {
            if self.declined {
                return Step::Declined;
            }
            if self.ready.rows() >= rows || self.pos == self.total && self.piece.is_empty() {
                return Step::Ready;
            }
            let Some((pages, probe)) = self.pages.as_mut() else {
                return match self.next_window() {
                    Some(range) => Step::Need(range),
                    None => Step::Declined,
                };
            };
            match pages.get_next_page() {
                Ok(Some(page)) => {
                    if self.page(page).is_none() {
                        return Step::Declined;
                    }
                }
                Ok(None) => {
                    if self.pos != self.total {
                        return Step::Declined;
                    }
                    self.seal();
                }
                Err(_) if probe.short.load(Ordering::Relaxed) => {
                    // The window ended inside a page: the next one starts at that page.
                    self.next = probe.page.load(Ordering::Relaxed);
                    self.need_end = probe.need_end.load(Ordering::Relaxed);
                    self.pages = None;
                }
                Err(_) => return Step::Declined,
            }
        }
    }

    /// The next window to ask for, `None` when it would not get further than the last one.
    fn next_window(&mut self) -> Option<Range<u64>> {
        let start = self.next;
        let mut end = start
            .saturating_add(self.window_bytes)
            .max(self.need_end)
            .min(self.chunk.end);
        if let Some(last) = &self.last {
            if last.start == start {
                // The last window did not hold one page's header: twice as large.
                end = end
                    .max(start.saturating_add(2 * (last.end - last.start)))
                    .min(self.chunk.end);
                if end <= last.end {
                    return None;
                }
            }
        }
        if start >= end || start < self.chunk.start {
            return None;
        }
        self.last = Some(start..end);
        Some(start..end)
    }

    /// Gives the bytes of `range` (the window last asked for) to the page reader; the
    /// next [`Self::fill`] declines when they are not that or a page reader cannot be made.
    pub(crate) fn push(&mut self, range: Range<u64>, data: Bytes) {
        if self.start_pages(range, data).is_none() {
            self.declined = true;
        }
    }

    fn start_pages(&mut self, range: Range<u64>, data: Bytes) -> Option<()> {
        if self.last.as_ref() != Some(&range) || data.len() as u64 != range.end - range.start {
            return None;
        }
        let meta = if range.start == self.chunk.start {
            self.meta.clone()
        } else {
            // The rest of the chunk from the page the window starts at.
            self.meta
                .clone()
                .into_builder()
                .set_dictionary_page_offset(None)
                .set_data_page_offset(i64::try_from(range.start).ok()?)
                .set_total_compressed_size(i64::try_from(self.chunk.end - range.start).ok()?)
                .build()
                .ok()?
        };
        let probe = Arc::new(Probe::default());
        let window = Window {
            start: range.start,
            data,
            chunk_end: self.chunk.end,
            probe: probe.clone(),
        };
        let rows = self.total / self.dim;
        let pages = SerializedPageReader::new(Arc::new(window), &meta, rows, None).ok()?;
        self.pages = Some((pages, probe));
        self.need_end = 0;
        Some(())
    }

    /// Decodes one page; `None` when it is not one this path reads.
    fn page(&mut self, page: Page) -> Option<()> {
        let elem = self.elem;
        let (buf, n, encoding, rep, def, values) = match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if self.dict.is_some()
                    || !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY)
                {
                    return None;
                }
                let n = usize::try_from(num_values).ok()?;
                let plain = buf.get(..n.checked_mul(elem.plain_width())?)?;
                self.dict = Some(elem.to_arrow(plain)?.into_owned());
                return Some(());
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
                // Each level run prefixed by its length (4 bytes).
                let (rep, rest) = prefixed(&buf)?;
                let r = rep.len();
                let d = prefixed(rest)?.0.len();
                (
                    buf,
                    num_values,
                    encoding,
                    4..4 + r,
                    8 + r..8 + r + d,
                    8 + r + d,
                )
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
                (buf, num_values, encoding, 0..r, r..r.checked_add(d)?, r + d)
            }
        };
        let (rep, def) = (buf.get(rep)?, buf.get(def)?);
        let n = usize::try_from(n).ok()?;
        if n > self.total - self.pos {
            return None;
        }
        // Every definition level the maximum.
        let max_def = self.max_def;
        if !runs(def, bit_width(max_def), n, |v, _| v == max_def) {
            return None;
        }
        // A repetition level 0 at every multiple of `dim` and only there.
        let dim = self.dim;
        let mut p = self.pos;
        let rep_ok = runs(rep, 1, n, |v, count| {
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
                let arrow = elem.to_arrow(plain)?;
                self.emit(&arrow, n);
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let dict = self.dict.as_ref()?;
                let (&width, indices) = values.split_first()?;
                let w = elem.arrow_width();
                let mut looked_up = Vec::with_capacity(n.checked_mul(w)?);
                let ok = runs(indices, u32::from(width), n, |i, count| {
                    let i = i as usize;
                    match i.checked_mul(w).and_then(|at| dict.get(at..at + w)) {
                        Some(v) => {
                            for _ in 0..count {
                                looked_up.extend_from_slice(v);
                            }
                            true
                        }
                        None => false,
                    }
                });
                if !ok {
                    return None;
                }
                self.emit(&looked_up, n);
            }
            _ => return None,
        }
        Some(())
    }

    /// Appends `n` Arrow values (`data`) after the ones decoded, dropping those before
    /// `skip` and sealing every full batch.
    fn emit(&mut self, mut data: &[u8], mut n: usize) {
        let w = self.elem.arrow_width();
        if self.pos < self.skip {
            let drop = (self.skip - self.pos).min(n);
            data = &data[drop * w..];
            self.pos += drop;
            n -= drop;
        }
        while n > 0 {
            if self.piece.capacity() == 0 {
                self.piece = BufferPool::global().take(self.piece_values * w);
            }
            let room = self.piece_values - self.piece.len() / w;
            let take = room.min(n);
            self.piece.extend_from_slice(&data[..take * w]);
            data = &data[take * w..];
            n -= take;
            self.pos += take;
            if self.piece.len() / w == self.piece_values || self.pos == self.total {
                self.seal();
            }
        }
    }

    /// Hands out the values decoded since the last full batch as an array of whole rows.
    fn seal(&mut self) {
        let w = self.elem.arrow_width();
        let len = self.piece.len() / w;
        if len == 0 {
            return;
        }
        let buffer: Buffer = BufferPool::global().arrow_buffer(std::mem::take(&mut self.piece), w);
        let values = self.elem.array(buffer, len);
        let field = Arc::new(Field::new_list_field(self.elem.data_type(), true));
        let dim = i32::try_from(self.dim).unwrap_or(i32::MAX);
        // Sealed at whole batches or at the chunk's end, so `len` is whole rows.
        if let Ok(array) = FixedSizeListArray::try_new(field, dim, values, None) {
            self.ready.push(Arc::new(array));
        }
    }
}

/// What the page reader's reads of a window ran into.
#[derive(Debug, Default)]
struct Probe {
    /// A read went past the window's end but not the chunk's.
    short: AtomicBool,
    /// The start of the last page whose header was read (where a page reader starts anew).
    page: AtomicU64,
    /// The end of the page that did not fit, when known.
    need_end: AtomicU64,
}

/// A window of a column chunk's bytes, as the page reader reads them.
struct Window {
    start: u64,
    data: Bytes,
    chunk_end: u64,
    probe: Arc<Probe>,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.end()
    }
}

impl ChunkReader for Window {
    type T = WindowRead;

    fn get_read(&self, start: u64) -> ::parquet::errors::Result<Self::T> {
        self.probe.page.store(start, Ordering::Relaxed);
        let at = start
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= self.data.len());
        match at {
            Some(at) => Ok(WindowRead {
                data: self.data.slice(at..),
                more: self.end() < self.chunk_end,
                probe: self.probe.clone(),
            }),
            None => {
                if start >= self.end() && start < self.chunk_end {
                    self.probe.short.store(true, Ordering::Relaxed);
                }
                Err(ParquetError::EOF("outside the window".into()))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> ::parquet::errors::Result<Bytes> {
        let end = start.saturating_add(length as u64);
        let offset = start
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|_| end <= self.end());
        match offset {
            Some(o) => Ok(self.data.slice(o..o + length)),
            None => {
                if start >= self.start && end <= self.chunk_end {
                    self.probe.need_end.store(end, Ordering::Relaxed);
                    self.probe.short.store(true, Ordering::Relaxed);
                }
                Err(ParquetError::EOF("outside the window".into()))
            }
        }
    }
}

/// A page header's bytes: notes running out of the window when the chunk goes on.
struct WindowRead {
    data: Bytes,
    more: bool,
    probe: Arc<Probe>,
}

impl Read for WindowRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() && !buf.is_empty() && self.more {
            self.probe.short.store(true, Ordering::Relaxed);
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = self.data.slice(n..);
        Ok(n)
    }
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
    use arrow::array::{AsArray, Int64Array, ListArray};
    use arrow::buffer::{NullBuffer, OffsetBuffer};
    use arrow::datatypes::{Float16Type, Float32Type, Schema, UInt8Type};
    use arrow::record_batch::RecordBatch;
    use half::f16;

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

    /// How a test reads the vector column of row group 0.
    #[derive(Clone, Copy)]
    struct Read {
        batch: usize,
        skip: usize,
        /// Bytes per window instead of the batch estimate.
        window: Option<u64>,
    }

    const WHOLE: Read = Read {
        batch: 8192,
        skip: 0,
        window: None,
    };

    /// What the stream handed out: its arrays, and the byte ranges it asked for.
    struct Got {
        arrays: Vec<ArrayRef>,
        asked: Vec<Range<u64>>,
        chunk: Range<u64>,
    }

    /// The vector column of row group 0 read by the fast path, `None` when declined.
    fn fast(bytes: &Bytes, elem: Elem, read: Read) -> Option<Got> {
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let rg = reader.metadata().row_group(0);
        let meta = rg.column(1);
        let rows = rg.num_rows() as usize;
        let (start, len) = meta.byte_range();
        let mut stream = ChunkStream::new(meta, rows, elem, read.skip, read.batch)?;
        if let Some(w) = read.window {
            stream.window_bytes = w;
        }
        let mut got = Got {
            arrays: Vec::new(),
            asked: Vec::new(),
            chunk: start..start + len,
        };
        let mut left = rows - read.skip;
        while left > 0 {
            let n = left.min(read.batch);
            match stream.fill(n) {
                Step::Need(r) => {
                    got.asked.push(r.clone());
                    let data = bytes.slice(r.start as usize..r.end as usize);
                    stream.push(r, data);
                }
                Step::Ready => {
                    got.arrays.push(stream.ready().take(n).expect("rows ready"));
                    left -= n;
                }
                Step::Declined => return None,
            }
        }
        assert_eq!(stream.ready().rows(), 0, "nothing decoded beyond the chunk");
        Some(got)
    }

    /// The values of `arrays` (fixed-size lists of `dim`) as bytes, each at most `batch` rows.
    fn values(arrays: &[ArrayRef], dim: usize, batch: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for a in arrays {
            let list = a.as_fixed_size_list();
            assert_eq!(list.value_length() as usize, dim);
            assert!(list.len() <= batch, "an array of {} rows", list.len());
            assert_eq!(list.values().len(), list.len() * dim, "unsliced values");
            let data = list.values().to_data();
            let w = data.data_type().primitive_width().unwrap();
            out.extend_from_slice(&data.buffers()[0].as_slice()[..list.values().len() * w]);
        }
        out
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

    /// Every combination: (v2, dictionary, properties).
    fn every_props() -> Vec<(bool, bool, WriterProperties)> {
        let mut all = Vec::new();
        for v2 in [false, true] {
            for compression in [
                Compression::UNCOMPRESSED,
                Compression::SNAPPY,
                Compression::ZSTD(ZstdLevel::default()),
                Compression::LZ4_RAW,
            ] {
                for dictionary in [false, true] {
                    all.push((v2, dictionary, props(v2, compression, dictionary)));
                }
            }
        }
        all
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn plain_and_dictionary_pages_read_bit_exactly_v1_and_v2_every_codec_any_window() {
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
            let want = f32_bytes(&values);
            for (_, _, props) in every_props() {
                let bytes = file(
                    Arc::new(Float32Array::from(values.clone())),
                    vec![dim; rows],
                    None,
                    props,
                );
                for read in [
                    WHOLE,
                    Read {
                        batch: 64,
                        skip: 0,
                        window: Some(700),
                    },
                    Read {
                        batch: 9,
                        skip: 0,
                        window: Some(1),
                    },
                ] {
                    let got = fast(&bytes, Elem::F32, read).expect("taken by the fast path");
                    assert_eq!(values_of(&got, dim, read.batch), want, "dim {dim}");
                }
            }
        }
    }

    #[test]
    fn a_chunk_is_read_in_windows_not_whole() {
        let (rows, dim) = (2000, 16);
        let values: Vec<f32> = (0..rows * dim).map(awkward).collect();
        // Without a dictionary: a dictionary page of these distinct values is larger than a
        // window (and read whole).
        for (_, _, props) in every_props().into_iter().filter(|(_, d, _)| !d) {
            let bytes = file(
                Arc::new(Float32Array::from(values.clone())),
                vec![dim; rows],
                None,
                props,
            );
            let read = Read {
                batch: 100,
                skip: 0,
                window: Some(4000),
            };
            let got = fast(&bytes, Elem::F32, read).unwrap();
            let chunk = got.chunk.end - got.chunk.start;
            assert!(chunk > 20_000, "a chunk of {chunk} bytes");
            // Pages are about 1000 bytes (the writer checks the limit every 37 values): a
            // window holds 4000 bytes or one page, never much more.
            let largest = got.asked.iter().map(|r| r.end - r.start).max().unwrap();
            assert!(largest <= 4000 + 4 * 1024, "a window of {largest} bytes");
            // The windows cover the chunk in order, each starting where a page starts.
            assert_eq!(got.asked[0].start, got.chunk.start);
            assert_eq!(got.asked.last().unwrap().end, got.chunk.end);
            for w in got.asked.windows(2) {
                assert!(w[0].start < w[1].start && w[1].start <= w[0].end);
            }
            // Pages that did not fit are read again, but not most of them.
            let read_bytes: u64 = got.asked.iter().map(|r| r.end - r.start).sum();
            assert!(
                read_bytes < 2 * chunk,
                "{read_bytes} bytes read for {chunk}"
            );
            assert_eq!(values_of(&got, dim, read.batch), f32_bytes(&values));
        }
    }

    fn values_of(got: &Got, dim: usize, batch: usize) -> Vec<u8> {
        values(&got.arrays, dim, batch)
    }

    #[test]
    fn rows_before_a_resume_are_dropped() {
        let (rows, dim) = (500, 5);
        let values: Vec<f32> = (0..rows * dim).map(awkward).collect();
        for (_, _, props) in every_props() {
            let bytes = file(
                Arc::new(Float32Array::from(values.clone())),
                vec![dim; rows],
                None,
                props,
            );
            for skip in [0, 1, 123, 499] {
                let read = Read {
                    batch: 50,
                    skip,
                    window: Some(900),
                };
                let got = fast(&bytes, Elem::F32, read).unwrap();
                let first = got.arrays[0].len();
                assert_eq!(first, (rows - skip).min(50));
                assert_eq!(
                    values_of(&got, dim, read.batch),
                    f32_bytes(&values[skip * dim..]),
                    "skip {skip}"
                );
            }
        }
    }

    #[test]
    fn uint8_and_float16_read_exactly_or_declined_for_delta_encodings() {
        let (rows, dim) = (300, 16);
        let bytes: Vec<u8> = (0..rows * dim).map(|i| (i * 31) as u8).collect();
        let halves: Vec<f16> = (0..rows * dim)
            .map(|i| f16::from_bits((i * 7919) as u16))
            .collect();
        let half_bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut declined = 0;
        for (v2, dictionary, props) in every_props() {
            // Parquet's writer falls back to DELTA_BINARY_PACKED (INT32) and
            // DELTA_BYTE_ARRAY (FIXED_LEN_BYTE_ARRAY) in format v2 without a dictionary:
            // left to arrow-rs.
            let delta = v2 && !dictionary;
            let u8_file = file(
                Arc::new(UInt8Array::from(bytes.clone())),
                vec![dim; rows],
                None,
                props.clone(),
            );
            let f16_file = file(
                Arc::new(Float16Array::from(halves.clone())),
                vec![dim; rows],
                None,
                props,
            );
            let read = Read {
                batch: 64,
                skip: 0,
                window: Some(2000),
            };
            for (f, elem, want) in [
                (&u8_file, Elem::U8, &bytes),
                (&f16_file, Elem::F16, &half_bytes),
            ] {
                match fast(f, elem, read) {
                    Some(got) => {
                        assert!(!delta, "{elem:?}: v2 without dictionary read");
                        assert_eq!(&values_of(&got, dim, read.batch), want, "{elem:?}");
                    }
                    None => {
                        assert!(
                            delta,
                            "{elem:?} declined (v2 {v2}, dictionary {dictionary})"
                        );
                        declined += 1;
                    }
                }
            }
        }
        assert_eq!(declined, 8, "v2 without dictionary, 4 codecs, 2 types");
        // The arrays are the Arrow types.
        let f = file(
            Arc::new(UInt8Array::from(bytes.clone())),
            vec![dim; rows],
            None,
            props(false, Compression::UNCOMPRESSED, false),
        );
        let got = fast(&f, Elem::U8, WHOLE).unwrap();
        let list = got.arrays[0].as_fixed_size_list();
        assert_eq!(list.values().as_primitive::<UInt8Type>().len(), rows * dim);
        let f = file(
            Arc::new(Float16Array::from(halves.clone())),
            vec![dim; rows],
            None,
            props(true, Compression::SNAPPY, true),
        );
        let got = fast(&f, Elem::F16, WHOLE).unwrap();
        let list = got.arrays[0].as_fixed_size_list();
        let _ = list.values().as_primitive::<Float16Type>();
        let _ = list.values().as_primitive_opt::<Float32Type>().is_none();
    }

    #[test]
    fn ragged_rows_nulls_and_empty_lists_are_left_to_arrow() {
        let rows = 400;
        for (_, _, props) in every_props() {
            for read in [
                WHOLE,
                Read {
                    batch: 30,
                    skip: 0,
                    window: Some(500),
                },
            ] {
                let mut lengths = vec![4; rows];
                // Same total as rows × 4, but two rows ragged.
                lengths[10] = 3;
                lengths[11] = 5;
                let total = lengths.iter().sum::<usize>();
                let values =
                    || Arc::new(Float32Array::from_iter_values((0..total).map(|i| i as f32)));
                let ragged = file(values(), lengths, None, props.clone());
                assert!(fast(&ragged, Elem::F32, read).is_none());
                // A null vector.
                let nulls = NullBuffer::from_iter((0..rows).map(|i| i != 7));
                let mut lengths = vec![4; rows];
                lengths[7] = 0;
                let total = lengths.iter().sum::<usize>();
                let values = Arc::new(Float32Array::from_iter_values((0..total).map(|i| i as f32)));
                let null = file(values, lengths, Some(nulls), props.clone());
                assert!(fast(&null, Elem::F32, read).is_none());
                // A null inside a vector, late in the chunk.
                let values = Arc::new(Float32Array::from_iter(
                    (0..rows * 4).map(|i| (i != 1509).then_some(i as f32)),
                ));
                let hole = file(values, vec![4; rows], None, props.clone());
                assert!(fast(&hole, Elem::F32, read).is_none());
                // An empty list.
                let mut lengths = vec![2; rows];
                lengths[0] = 0;
                lengths[1] = 4;
                let values = Arc::new(Float32Array::from_iter_values(
                    (0..rows * 2).map(|i| i as f32),
                ));
                let empty = file(values, lengths, None, props.clone());
                assert!(fast(&empty, Elem::F32, read).is_none());
            }
        }
    }

    #[test]
    fn damaged_pages_are_left_to_arrow() {
        let (rows, dim) = (300, 4);
        let values: Vec<f32> = (0..rows * dim).map(awkward).collect();
        let good = file(
            Arc::new(Float32Array::from(values)),
            vec![dim; rows],
            None,
            props(false, Compression::SNAPPY, false),
        );
        let reader = SerializedFileReader::new(good.clone()).unwrap();
        let (start, len) = reader.metadata().row_group(0).column(1).byte_range();
        // Garbage from the middle of the chunk on: a page header or page that cannot be read.
        let mut bad = good.to_vec();
        let mid = (start + len / 2) as usize;
        for b in &mut bad[mid..(start + len) as usize] {
            *b = 0xA5;
        }
        let read = Read {
            batch: 20,
            skip: 0,
            window: Some(300),
        };
        assert!(fast(&Bytes::from(bad), Elem::F32, read).is_none());
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
        assert!(fast(&bytes, Elem::U8, WHOLE).is_none());
        assert!(
            fast(&bytes, Elem::F32, WHOLE).is_none(),
            "INT32 is not FLOAT"
        );
    }

    #[test]
    fn taking_rows_slices_and_joins_the_arrays_held() {
        let array = |from: i32, n: i32| -> ArrayRef {
            let values = Arc::new(Float32Array::from_iter_values(
                (from..from + n).map(|v| v as f32),
            ));
            let field = Arc::new(Field::new_list_field(DataType::Float32, true));
            Arc::new(FixedSizeListArray::try_new(field, 1, values, None).unwrap())
        };
        let mut ready = Ready::default();
        ready.push(array(0, 5));
        ready.push(array(5, 5));
        assert_eq!(ready.rows(), 10);
        assert!(ready.take(11).is_none());
        let flat = |a: ArrayRef| -> Vec<f32> {
            a.as_fixed_size_list()
                .values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec()
        };
        assert_eq!(flat(ready.take(3).unwrap()), vec![0.0, 1.0, 2.0]);
        assert_eq!(flat(ready.take(4).unwrap()), vec![3.0, 4.0, 5.0, 6.0]);
        assert_eq!(flat(ready.take(3).unwrap()), vec![7.0, 8.0, 9.0]);
        assert_eq!(ready.rows(), 0);
        assert!(ready.take(1).is_none());
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
