//! Driving parsers over files: [`FileReader`] feeds one parser one file (streamed in order, or
//! the ranges a random-access parser asks for), on a blocking thread; [`RowSetReader`] zips the
//! files of one row set (the columns of a NumPy directory) batch by batch.

use std::ops::Range;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vmig_core::parse::{ParsePosition, Parser, Wanted};
use vmig_core::ranges::read_ahead;
use vmig_core::ranges::RangeReader;
use vmig_core::{Error, Result};

/// Bytes read per request while a parser reads its header or schema sample: small, since most
/// headers are tiny and a sample is a few hundred KiB at most.
const PROBE_CHUNK: u64 = 256 * 1024;

/// A file's chunks, each with its byte range, in order.
type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<(Range<u64>, Bytes)>> + Send>>;

/// One parser fed one file.
pub(crate) struct FileReader {
    parser: Box<dyn Parser>,
    io: RangeReader,
    name: String,
    size: u64,
    handle: Handle,
    /// Bytes of the current chunk not yet consumed.
    buf: Bytes,
    /// Offset of the first byte after `buf` (the next read starts there).
    next_read: u64,
    /// The chunks from `next_read` on, read ahead ([`read_ahead`]); started on the first
    /// fill after a seek.
    chunks: Option<Chunks>,
    chunk: u64,
    finished: bool,
    /// Rows this parser returned so far (of the file, including skipped ones).
    rows: u64,
    /// Rows still to drop before returning any (a resume the parser cannot seek to).
    skip: u64,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("name", &self.name)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// A reader of `io` (`size` bytes, named `name` in errors) through `parser`.
    pub(crate) fn new(
        parser: Box<dyn Parser>,
        io: RangeReader,
        name: String,
        size: u64,
        handle: Handle,
    ) -> Self {
        let chunk = io.chunk_bytes();
        FileReader {
            parser,
            io,
            name,
            size,
            handle,
            buf: Bytes::new(),
            next_read: 0,
            chunks: None,
            chunk,
            finished: false,
            rows: 0,
            skip: 0,
        }
    }

    /// Rows of the file returned so far (a resumed reader counts the rows before its start).
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Where a reader resumes after the rows returned so far.
    pub(crate) fn position(&self) -> ParsePosition {
        ParsePosition {
            rows: self.rows,
            offset: self.parser.next_row_offset(),
        }
    }

    /// The rows in the whole file, when the parser knows.
    pub(crate) fn total_rows(&self) -> Option<u64> {
        self.parser.total_rows()
    }

    /// The rows of each of the file's independently read units, when the format has them.
    pub(crate) fn row_groups(&self) -> Option<Vec<u64>> {
        self.parser.row_groups()
    }

    /// Feeds the parser until it knows its schema (its header, or its schema sample), without
    /// taking any batch, reading small chunks.
    pub(crate) fn read_schema(&mut self) -> Result<SchemaRef> {
        let saved = self.chunk;
        self.chunk = PROBE_CHUNK;
        let out = self.read_schema_inner();
        self.chunk = saved;
        // The rest of the file is read in full-size chunks.
        self.chunks = None;
        out
    }

    fn read_schema_inner(&mut self) -> Result<SchemaRef> {
        loop {
            if let Some(schema) = self.parser.schema() {
                return Ok(schema);
            }
            match self.parser.wanted()? {
                Wanted::Stream => {
                    if self.buf.is_empty() {
                        if self.next_read >= self.size {
                            // The whole input was needed to infer the schema (a small file):
                            // its end is part of the sample. Only a probe gets here (a reader
                            // that resumes has the planned schema from the start).
                            self.finished = true;
                            self.parser.finish()?;
                            return self.parser.schema().ok_or_else(|| {
                                Error::data(
                                    self.name.clone(),
                                    "the file ended before its format's header or schema sample was complete",
                                )
                            });
                        }
                        self.fill()?;
                    }
                    let used = self.parser.decode(&self.buf)?;
                    if used == 0 && self.parser.schema().is_none() && !self.buf.is_empty() {
                        return Err(self.stuck());
                    }
                    self.buf = self.buf.slice(used..);
                }
                Wanted::Ranges(ranges) => self.push_ranges(ranges)?,
                Wanted::Batch | Wanted::Done => {
                    return self.parser.schema().ok_or_else(|| self.stuck());
                }
            }
        }
    }

    /// Resumes after `to` (rows of this file already delivered): the parser seeks there when it
    /// can (then `true`); otherwise the rows before it are read again and dropped (`false`).
    pub(crate) fn resume(&mut self, to: &ParsePosition) -> Result<bool> {
        self.read_schema()?;
        match self.parser.seek(to) {
            Ok(()) => {
                if let Some(offset) = self.parser.next_row_offset().or(to.offset) {
                    if offset > self.size {
                        return Err(Error::data(
                            self.name.clone(),
                            format!(
                                "the resume position (byte {offset}) is past the end of the file ({} bytes); was it replaced?",
                                self.size
                            ),
                        ));
                    }
                    self.buf = Bytes::new();
                    self.chunks = None;
                    self.next_read = offset;
                }
                self.rows = to.rows;
                Ok(true)
            }
            Err(Error::Unsupported { .. }) => {
                self.skip = to.rows;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The next batch of at most the parser's batch size, or `None` at the end of the file.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Some(batch) = self.next_raw()? else {
                return Ok(None);
            };
            let n = batch.num_rows() as u64;
            if self.skip >= n {
                self.skip -= n;
                continue;
            }
            let batch = batch.slice(self.skip as usize, (n - self.skip) as usize);
            self.skip = 0;
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
    }

    fn next_raw(&mut self) -> Result<Option<RecordBatch>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            match self.parser.wanted()? {
                Wanted::Stream => {
                    if self.buf.is_empty() {
                        if self.next_read >= self.size {
                            self.finished = true;
                            let last = self.parser.finish()?;
                            return Ok(self.counted(last));
                        }
                        self.fill()?;
                    }
                    let offered = self.buf.len();
                    let used = self.parser.decode(&self.buf)?;
                    self.buf = self.buf.slice(used..);
                    if used < offered {
                        match self.parser.flush()? {
                            Some(batch) => return Ok(self.counted(Some(batch))),
                            None if used == 0 => return Err(self.stuck()),
                            None => {}
                        }
                    }
                }
                Wanted::Ranges(ranges) => self.push_ranges(ranges)?,
                Wanted::Batch => {
                    if let Some(batch) = self.parser.flush()? {
                        return Ok(self.counted(Some(batch)));
                    }
                }
                Wanted::Done => {
                    self.finished = true;
                    let last = self.parser.finish()?;
                    return Ok(self.counted(last));
                }
            }
        }
    }

    fn counted(&mut self, batch: Option<RecordBatch>) -> Option<RecordBatch> {
        if let Some(b) = &batch {
            self.rows += b.num_rows() as u64;
        }
        batch.filter(|b| b.num_rows() > 0)
    }

    fn stuck(&self) -> Error {
        Error::External(
            format!(
                "{}: the parser neither consumed input nor returned rows (a parser bug)",
                self.name
            )
            .into(),
        )
    }

    fn push_ranges(&mut self, ranges: Vec<Range<u64>>) -> Result<()> {
        if let Some(bad) = ranges.iter().find(|r| r.end > self.size || r.start > r.end) {
            return Err(Error::data(
                self.name.clone(),
                format!(
                    "the format asks for bytes {}..{} of a {}-byte file; it is truncated or corrupt",
                    bad.start, bad.end, self.size
                ),
            ));
        }
        let data = match &self.io {
            // Into the reusable read buffers (vmig_core::ranges::BufferPool): Parquet asks for
            // windows of about a batch of its vector columns and for its other columns' chunks;
            // a fresh allocation each time would leave the allocator holding many of them. The
            // pool keeps a bounded amount idle and frees the rest.
            RangeReader::Local(file) => {
                let data = ranges
                    .iter()
                    .map(|r| file.read_range(r.clone()))
                    .collect::<Result<Vec<_>>>()?;
                if let Some((r, d)) = ranges
                    .iter()
                    .zip(&data)
                    .find(|(r, d)| d.len() as u64 != r.end - r.start)
                {
                    return Err(Error::data(
                        format!("{} at byte {}", self.name, r.start),
                        format!(
                            "expected {} bytes but read {} (did the file change while it was \
                             read?)",
                            r.end - r.start,
                            d.len()
                        ),
                    ));
                }
                data
            }
            RangeReader::Store { .. } => self
                .handle
                .block_on(self.io.read_exact(&self.name, ranges.clone()))?,
        };
        self.parser.push_ranges(ranges, data)
    }

    /// Makes `buf` the next chunk of the file (it must be empty); the chunks after it are read
    /// ahead.
    fn fill(&mut self) -> Result<()> {
        if self.chunks.is_none() {
            let plans: Vec<Range<u64>> = (self.next_read..self.size)
                .step_by(usize::try_from(self.chunk).unwrap_or(usize::MAX).max(1))
                .map(|start| start..self.size.min(start.saturating_add(self.chunk)))
                .collect();
            let (io, name) = (self.io.clone(), self.name.clone());
            self.chunks = Some(Box::pin(read_ahead(
                plans,
                CancellationToken::new(),
                move |range: Range<u64>| {
                    let (io, name) = (io.clone(), name.clone());
                    async move {
                        let data = io.read_exact(&name, vec![range.clone()]).await?;
                        Ok((range, data.into_iter().next().unwrap_or_default()))
                    }
                },
                |chunk| std::iter::once(Ok(chunk)),
            )));
        }
        let next = match self.chunks.as_mut() {
            Some(chunks) => self.handle.block_on(chunks.next()),
            None => None,
        };
        let (range, data) = next.ok_or_else(|| {
            Error::External(format!("{}: read past the end of the file", self.name).into())
        })??;
        self.next_read = range.end;
        self.buf = data;
        Ok(())
    }
}

/// The readers of one row set, zipped: every batch has the columns of each file side by side.
#[derive(Debug)]
pub(crate) struct RowSetReader {
    readers: Vec<FileReader>,
    /// Rows read from each reader but not yet returned.
    pending: Vec<Option<RecordBatch>>,
    schema: SchemaRef,
    /// Rows of the row set returned so far.
    rows: u64,
}

impl RowSetReader {
    /// Zips `readers` (one, for a single-file row set) into batches of `schema`, whose fields
    /// are the readers' fields in order.
    pub(crate) fn new(readers: Vec<FileReader>, schema: SchemaRef) -> Self {
        let pending = readers.iter().map(|_| None).collect();
        RowSetReader {
            readers,
            pending,
            schema,
            rows: 0,
        }
    }

    /// Resumes every file after `rows` rows.
    pub(crate) fn resume(&mut self, to: &ParsePosition) -> Result<()> {
        let single = self.readers.len() == 1;
        for r in &mut self.readers {
            // The offset of a position belongs to one file; the files of a row set are resumed
            // by their row count.
            let pos = if single {
                *to
            } else {
                ParsePosition {
                    rows: to.rows,
                    offset: None,
                }
            };
            r.resume(&pos)?;
        }
        self.rows = to.rows;
        Ok(())
    }

    /// Where to resume after the rows returned so far.
    pub(crate) fn position(&self) -> ParsePosition {
        match self.readers.as_slice() {
            [one] => one.position(),
            _ => ParsePosition {
                rows: self.rows,
                offset: None,
            },
        }
    }

    /// The next batch, or `None` when every file has ended (together).
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if let ([reader], [None]) = (self.readers.as_mut_slice(), self.pending.as_slice()) {
            let batch = reader.next_batch()?;
            if let Some(b) = &batch {
                self.rows += b.num_rows() as u64;
            }
            return batch.map(|b| self.with_schema(vec![b])).transpose();
        }
        let mut ended = Vec::new();
        for (i, reader) in self.readers.iter_mut().enumerate() {
            if self.pending[i].is_none() {
                self.pending[i] = reader.next_batch()?;
            }
            if self.pending[i].is_none() {
                ended.push(i);
            }
        }
        if ended.len() == self.readers.len() {
            return Ok(None);
        }
        if !ended.is_empty() {
            let short = &self.readers[ended[0]];
            let long = self
                .readers
                .iter()
                .enumerate()
                .find(|(i, _)| !ended.contains(i))
                .map(|(_, r)| r);
            return Err(Error::data(
                short.name.clone(),
                format!(
                    "this file ends after {} rows while {} has more: the files of one directory must hold the same number of rows",
                    short.rows(),
                    long.map(|r| r.name.as_str()).unwrap_or("another file")
                ),
            ));
        }
        let n = self
            .pending
            .iter()
            .flatten()
            .map(RecordBatch::num_rows)
            .min()
            .unwrap_or(0);
        let mut parts = Vec::with_capacity(self.pending.len());
        for slot in &mut self.pending {
            let Some(b) = slot.take() else { continue };
            if b.num_rows() > n {
                *slot = Some(b.slice(n, b.num_rows() - n));
            }
            parts.push(b.slice(0, n));
        }
        self.rows += n as u64;
        self.with_schema(parts).map(Some)
    }

    fn with_schema(&self, parts: Vec<RecordBatch>) -> Result<RecordBatch> {
        let columns = parts
            .iter()
            .flat_map(|b| b.columns().iter().cloned())
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The schema of a row set: the fields of each file's schema, in order, with the metadata of
/// the first.
pub(crate) fn zip_schemas(schemas: &[SchemaRef]) -> Result<SchemaRef> {
    let fields: Vec<_> = schemas
        .iter()
        .flat_map(|s| s.fields().iter().cloned())
        .collect();
    let metadata: std::collections::HashMap<String, String> =
        schemas.iter().flat_map(|s| s.metadata().clone()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for f in &fields {
        if !seen.insert(f.name()) {
            return Err(Error::schema(format!(
                "two files of one row set both give a column `{}`",
                f.name()
            )));
        }
    }
    Ok(std::sync::Arc::new(Schema::new_with_metadata(
        fields, metadata,
    )))
}
