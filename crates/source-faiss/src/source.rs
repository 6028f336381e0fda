//! [`FaissSource`]: partitions of a parsed Faiss layout, streamed as Arrow batches.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vmig_core::vector::{
    binary_vector_field, f32_array_from_le, float_vector_array, float_vector_field, META_METRIC,
    META_PRIMARY_KEY,
};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};
use vmig_formats::faiss::{
    first_non_finite, ids_from_le, implicit_ids, map_ids, mapped_id_error, vectors_from_le, Block,
    BlockIds, FaissLayout, VectorKind,
};

use crate::{FaissSourceConfig, OnNonFinite};
use vmig_core::ranges::{read_ahead, RangeReader};
use vmig_core::source::stop_after_error;

/// A batch spans several inverted lists only while it holds at most this many bytes: such small
/// lists (or ends of lists) are copied into one batch, larger ones become batches of their own
/// that borrow the read buffer without a copy (the [`SourceContext`](vmig_core::SourceContext) allows batches smaller
/// than `batch_rows` when the source's unit of reading is smaller).
const MERGE_BELOW_BYTES: u64 = 256 * 1024;

/// Where a partition's stream resumes: the next row to read is row `row` of block `block`
/// (indices into [`FaissLayout::blocks`]; for IVF indexes, a block is one inverted list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaissPosition {
    /// Index of the block in the layout.
    pub block: usize,
    /// Row inside the block; every row before it (within the partition) has been yielded.
    pub row: u64,
}

/// A Faiss index file ready to be read: its layout, schema and partitions.
///
/// Built by [`FaissSourceConfig`]. Schema: the id column (`Int64`, non-null) and the vector
/// column (`FixedSizeList<Float32>(d)` or `FixedSizeBinary(d/8)` with `vmig.type` metadata).
/// Schema metadata: `vmig.primary_key` = the id column, and `vmig.metric` = `IP` (faiss metric
/// 0), `L2` (1) or `HAMMING` (binary indexes); other faiss metrics (L1, Linf, Lp, …) have no
/// Milvus equivalent, so the key is omitted and the user must choose one.
#[derive(Debug, Clone)]
pub struct FaissSource {
    inner: Arc<OpenIndex>,
}

/// What `open` learned about the index file: its layout, schema and partitions, shared by every
/// partition stream.
#[derive(Debug)]
struct OpenIndex {
    display: String,
    layout: FaissLayout,
    schema: SchemaRef,
    io: RangeReader,
    partitions: Vec<Partition>,
    on_non_finite: OnNonFinite,
    /// The id map that [`BlockIds::Mapped`] ids go through (an id map over an IVF index),
    /// loaded by the first chunk that needs it: `ntotal × 8` bytes, kept while the source lives.
    id_map: tokio::sync::OnceCell<Int64Array>,
}

#[derive(Debug, Clone)]
struct Partition {
    info: PartitionInfo,
    segments: Arc<[Segment]>,
}

/// Rows `start..end` of block `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    block: usize,
    start: u64,
    end: u64,
}

impl FaissSource {
    pub(crate) fn new(
        config: &FaissSourceConfig,
        display: String,
        layout: FaissLayout,
        io: RangeReader,
    ) -> Result<Self> {
        let vector = match layout.vectors {
            VectorKind::Float32 => float_vector_field(&config.vector_field, layout.dim),
            VectorKind::Binary => binary_vector_field(&config.vector_field, layout.dim)?,
        };
        let mut meta = HashMap::from([(META_PRIMARY_KEY.to_string(), config.id_field.clone())]);
        if let Some(m) = layout.metric.milvus_name() {
            meta.insert(META_METRIC.to_string(), m.to_string());
        }
        let schema = Arc::new(
            Schema::new(vec![
                Field::new(&config.id_field, DataType::Int64, false),
                vector,
            ])
            .with_metadata(meta),
        );
        let partitions = plan_partitions(&layout, config.partition_rows.max(1));
        Ok(FaissSource {
            inner: Arc::new(OpenIndex {
                display,
                layout,
                schema,
                io,
                partitions,
                on_non_finite: config.on_non_finite,
                id_map: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The parsed layout of the file.
    pub fn layout(&self) -> &FaissLayout {
        &self.inner.layout
    }
}

fn partition(id: String, description: String, segments: Vec<Segment>) -> Partition {
    let rows = segments.iter().map(|s| s.end - s.start).sum();
    Partition {
        info: PartitionInfo {
            id: PartitionId::new(id),
            estimated_rows: Some(rows),
            description,
            target_partition: None,
        },
        segments: segments.into(),
    }
}

/// Splits the blocks into partitions of at most `rows_per` rows: row ranges of flat storage;
/// groups of whole inverted lists for IVF (a list longer than `rows_per` is split into row
/// ranges of its own). Partition ids name their rows or lists, so a checkpoint taken with a
/// different `partition_rows` does not match.
fn plan_partitions(layout: &FaissLayout, rows_per: u64) -> Vec<Partition> {
    let mut out = Vec::new();
    if layout.nlist.is_none() {
        let mut before = 0u64;
        for (i, b) in layout.blocks.iter().enumerate() {
            let mut start = 0;
            while start < b.rows {
                let end = b.rows.min(start.saturating_add(rows_per));
                let (gs, ge) = (before + start, before + end);
                out.push(partition(
                    format!("rows-{gs}-{ge}"),
                    format!("rows {gs}..{ge}"),
                    vec![Segment {
                        block: i,
                        start,
                        end,
                    }],
                ));
                start = end;
            }
            before += b.rows;
        }
        return out;
    }
    let list = |b: &Block| b.list_no.unwrap_or_default();
    let mut group: Vec<Segment> = Vec::new();
    let mut group_rows = 0u64;
    let mut group_lists = (0u64, 0u64, 0usize);
    let flush = |group: &mut Vec<Segment>,
                 group_rows: &mut u64,
                 lists: (u64, u64, usize),
                 out: &mut Vec<Partition>| {
        if group.is_empty() {
            return;
        }
        out.push(partition(
            format!("lists-{}-{}", lists.0, lists.1),
            format!(
                "inverted lists {}..={} ({} non-empty, {} rows)",
                lists.0, lists.1, lists.2, group_rows
            ),
            std::mem::take(group),
        ));
        *group_rows = 0;
    };
    let mut duplicates = Vec::new();
    for (i, b) in layout.blocks.iter().enumerate() {
        if b.list_no.is_none() {
            // The duplicates an IndexIVFFlatDedup restores (they follow the lists).
            duplicates.push(i);
            continue;
        }
        if b.rows > rows_per {
            flush(&mut group, &mut group_rows, group_lists, &mut out);
            let mut start = 0;
            while start < b.rows {
                let end = b.rows.min(start.saturating_add(rows_per));
                out.push(partition(
                    format!("list-{}-rows-{start}-{end}", list(b)),
                    format!("inverted list {}, rows {start}..{end}", list(b)),
                    vec![Segment {
                        block: i,
                        start,
                        end,
                    }],
                ));
                start = end;
            }
            continue;
        }
        if group_rows + b.rows > rows_per {
            flush(&mut group, &mut group_rows, group_lists, &mut out);
        }
        if group.is_empty() {
            group_lists = (list(b), list(b), 0);
        }
        group.push(Segment {
            block: i,
            start: 0,
            end: b.rows,
        });
        group_rows += b.rows;
        group_lists.1 = list(b);
        group_lists.2 += 1;
    }
    flush(&mut group, &mut group_rows, group_lists, &mut out);
    plan_duplicates(layout, &duplicates, rows_per, &mut out);
    out
}

/// Partitions of at most `rows_per` rows over the blocks `duplicates` (the rows an
/// `IndexIVFFlatDedup` restores from its instances table), named by their row range inside
/// that section: `duplicates-<start>-<end>`.
fn plan_duplicates(
    layout: &FaissLayout,
    duplicates: &[usize],
    rows_per: u64,
    out: &mut Vec<Partition>,
) {
    let mut group: Vec<Segment> = Vec::new();
    let mut group_rows = 0u64;
    let mut done = 0u64;
    let mut flush = |group: &mut Vec<Segment>, group_rows: &mut u64, out: &mut Vec<Partition>| {
        if group.is_empty() {
            return;
        }
        let (a, b) = (done, done + *group_rows);
        out.push(partition(
            format!("duplicates-{a}-{b}"),
            format!("IndexIVFFlatDedup duplicates {a}..{b} (restored from its instances table)"),
            std::mem::take(group),
        ));
        done = b;
        *group_rows = 0;
    };
    for &i in duplicates {
        let Some(b) = layout.blocks.get(i) else {
            continue;
        };
        let mut start = 0;
        while start < b.rows {
            let take = (b.rows - start).min(rows_per - group_rows);
            group.push(Segment {
                block: i,
                start,
                end: start + take,
            });
            group_rows += take;
            start += take;
            if group_rows >= rows_per {
                flush(&mut group, &mut group_rows, out);
            }
        }
    }
    flush(&mut group, &mut group_rows, out);
}

#[async_trait]
impl Source for FaissSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    /// The job's pooled read buffers are idle now; an embedding program should not keep them.
    fn end_of_job(&self) {
        vmig_core::ranges::BufferPool::global().clear();
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .inner
            .partitions
            .iter()
            .map(|p| p.info.clone())
            .collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let inner = &self.inner;
        let part = inner
            .partitions
            .iter()
            .find(|p| &p.info.id == partition)
            .ok_or_else(|| {
                Error::config(
                    "faiss",
                    format!(
                        "`{}` has no partition `{partition}` (was the checkpoint taken with another \
                         file or another partition_rows?)",
                        inner.display
                    ),
                )
            })?;
        let segments = Arc::clone(&part.segments);
        let (seg, row) = match resume_after {
            None => (0, segments.first().map_or(0, |s| s.start)),
            Some(p) => {
                let pos: FaissPosition = p.decode()?;
                let i = segments
                    .iter()
                    .position(|s| s.block == pos.block && s.start <= pos.row && pos.row <= s.end)
                    .ok_or_else(|| {
                        Error::config(
                            "faiss",
                            format!(
                                "position (block {}, row {}) is not inside partition `{partition}` of `{}`",
                                pos.block, pos.row, inner.display
                            ),
                        )
                    })?;
                (i, pos.row)
            }
        };
        let planner = Planner {
            segments,
            seg,
            row,
            batch_rows: ctx.batch_rows.get() as u64,
            bytes_per_row: inner.layout.row_bytes as u64 + 8,
            // A chunk always holds whole batches, so a batch larger than this is read alone.
            chunk_bytes: inner.io.chunk_bytes(),
        };
        let reader = Arc::clone(inner);
        let decoder = Arc::clone(inner);
        let batches = read_ahead(
            planner,
            ctx.cancel.clone(),
            move |plan| read_chunk(Arc::clone(&reader), plan),
            move |chunk| {
                let chunk = Arc::new(chunk);
                let inner = Arc::clone(&decoder);
                let n = chunk.plan.len();
                (0..n).map(move |i| decode_batch(&inner, &chunk, i))
            },
        );
        Ok(stop_after_error(batches))
    }
}

/// Rows `start..end` of block `block`, part of one batch.
#[derive(Debug, Clone, Copy)]
struct Piece {
    block: usize,
    start: u64,
    end: u64,
}

impl Piece {
    fn rows(&self) -> u64 {
        self.end - self.start
    }
}

/// Cuts a partition into batches of at most `batch_rows` rows (a batch spans several inverted
/// lists only while it is under [`MERGE_BELOW_BYTES`]) and groups consecutive batches into
/// chunks of about `chunk_bytes`.
#[derive(Debug)]
struct Planner {
    segments: Arc<[Segment]>,
    seg: usize,
    row: u64,
    batch_rows: u64,
    bytes_per_row: u64,
    chunk_bytes: u64,
}

impl Planner {
    fn next_batch(&mut self) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        let mut n = 0;
        while n < self.batch_rows {
            let s = *self.segments.get(self.seg)?;
            if self.row >= s.end {
                self.seg += 1;
                match self.segments.get(self.seg) {
                    Some(next) => self.row = next.start,
                    None => break,
                }
                continue;
            }
            let take = (s.end - self.row).min(self.batch_rows - n);
            // Only small pieces are merged (copied): a piece that would take the batch past
            // MERGE_BELOW_BYTES starts a batch of its own.
            if n > 0 && (n + take) * self.bytes_per_row > MERGE_BELOW_BYTES {
                break;
            }
            pieces.push(Piece {
                block: s.block,
                start: self.row,
                end: self.row + take,
            });
            n += take;
            self.row += take;
        }
        (!pieces.is_empty()).then_some(pieces)
    }
}

impl Iterator for Planner {
    type Item = Vec<Vec<Piece>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batches = Vec::new();
        let mut bytes = 0u64;
        while batches.is_empty() || bytes < self.chunk_bytes {
            let Some(batch) = self.next_batch() else {
                break;
            };
            let rows: u64 = batch.iter().map(Piece::rows).sum();
            bytes += rows * self.bytes_per_row;
            batches.push(batch);
            // Stop before a chunk would exceed the target by a whole batch.
            if bytes + rows * self.bytes_per_row > self.chunk_bytes && !batches.is_empty() {
                break;
            }
        }
        (!batches.is_empty()).then_some(batches)
    }
}

/// The bytes of one chunk: sorted, merged ranges and their contents.
#[derive(Debug)]
struct Chunk {
    plan: Vec<Vec<Piece>>,
    reads: Vec<(Range<u64>, Bytes)>,
    /// The layout's id map, when a piece of this chunk has mapped ids.
    id_map: Option<Int64Array>,
}

impl Chunk {
    fn slice(&self, r: Range<u64>) -> Result<Bytes> {
        let i = self
            .reads
            .partition_point(|(range, _)| range.start <= r.start);
        let found = i
            .checked_sub(1)
            .and_then(|i| self.reads.get(i))
            .filter(|(range, _)| r.end <= range.end);
        let Some((range, data)) = found else {
            return Err(Error::data(
                "faiss chunk",
                format!("bytes {r:?} were not read (internal planning error)"),
            ));
        };
        let from = (r.start - range.start) as usize;
        let to = (r.end - range.start) as usize;
        Ok(data.slice(from..to))
    }
}

/// A piece's block, its codes' byte range and its ids' byte range (if stored).
type PieceRanges<'a> = (&'a Block, Range<u64>, Option<Range<u64>>);

fn piece_ranges<'a>(layout: &'a FaissLayout, p: &Piece) -> Result<PieceRanges<'a>> {
    let b = layout
        .blocks
        .get(p.block)
        .ok_or_else(|| Error::data("faiss layout", format!("block {} does not exist", p.block)))?;
    let codes = b.codes_range(layout.row_bytes, p.start..p.end);
    let ids = b.ids_range(p.start..p.end);
    Ok((b, codes, ids))
}

/// The layout's id map, read (once) in one ranged read.
async fn load_id_map(inner: &OpenIndex) -> Result<Int64Array> {
    let table = inner
        .layout
        .id_map
        .ok_or_else(|| Error::data("faiss layout", "mapped ids without an id map"))?;
    let ids = inner
        .id_map
        .get_or_try_init(|| async {
            let data = inner
                .io
                .read_exact(&inner.display, vec![table.range()])
                .await
                .map_err(|e| match e {
                    Error::Data { .. } => e,
                    e => e.context(format!(
                        "reading the id map of the {} in Faiss index `{}`",
                        table.class, inner.display
                    )),
                })?;
            ids_from_le(data.into_iter().next().unwrap_or_default())
        })
        .await?;
    Ok(ids.clone())
}

async fn read_chunk(inner: Arc<OpenIndex>, plan: Vec<Vec<Piece>>) -> Result<Chunk> {
    let mut ranges = Vec::new();
    let mut mapped = false;
    for p in plan.iter().flatten() {
        let (b, codes, ids) = piece_ranges(&inner.layout, p)?;
        mapped |= matches!(b.ids, BlockIds::Mapped { .. });
        ranges.push(codes);
        ranges.extend(ids);
    }
    let id_map = if mapped {
        Some(load_id_map(&inner).await?)
    } else {
        None
    };
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let data = inner
        .io
        .read_exact(&inner.display, merged.clone())
        .await
        .map_err(|e| match e {
            Error::Data { .. } => e,
            e => e.context(format!("reading Faiss index `{}`", inner.display)),
        })?;
    let reads = merged.into_iter().zip(data).collect();
    Ok(Chunk {
        plan,
        reads,
        id_map,
    })
}

fn piece_ids(
    inner: &OpenIndex,
    chunk: &Chunk,
    block: &Block,
    p: &Piece,
    ids: Option<Range<u64>>,
) -> Result<Int64Array> {
    match (block.ids, ids) {
        (BlockIds::Stored { .. }, Some(r)) => ids_from_le(chunk.slice(r)?),
        (BlockIds::Mapped { .. }, Some(r)) => {
            let stored = ids_from_le(chunk.slice(r)?)?;
            let table = chunk.id_map.as_ref().ok_or_else(|| {
                Error::data(
                    "faiss chunk",
                    "the id map was not loaded (internal planning error)",
                )
            })?;
            map_ids(stored.values(), table.values()).map_err(|(k, value)| {
                mapped_id_error(
                    &inner.display,
                    &inner.layout,
                    p.block,
                    p.start + k as u64,
                    value,
                )
            })
        }
        (BlockIds::Implicit { first }, _) => {
            let start = i64::try_from(p.start)
                .ok()
                .and_then(|s| first.checked_add(s))
                .ok_or_else(|| Error::data("faiss layout", "implicit ids overflow i64"))?;
            implicit_ids(start, p.rows() as usize)
        }
        (BlockIds::Stored { .. } | BlockIds::Mapped { .. }, None) => Err(Error::data(
            "faiss layout",
            "stored ids without a byte range",
        )),
    }
}

fn decode_batch(inner: &OpenIndex, chunk: &Chunk, index: usize) -> Result<SourceBatch> {
    let layout = &inner.layout;
    let pieces = chunk
        .plan
        .get(index)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::data("faiss chunk", "empty batch plan"))?;
    let rows: u64 = pieces.iter().map(Piece::rows).sum();
    let mut parts = Vec::with_capacity(pieces.len());
    for p in pieces {
        let (block, codes, ids) = piece_ranges(layout, p)?;
        let ids = piece_ids(inner, chunk, block, p, ids)?;
        parts.push((block, chunk.slice(codes)?, ids));
    }
    let (codes, ids) = if let [(_, codes, ids)] = parts.as_slice() {
        (codes.clone(), ids.clone())
    } else {
        // Pooled like the read buffers, so merging small lists does not fault in new pages.
        let pool = vmig_core::ranges::BufferPool::global();
        let mut codes = pool.take((rows * layout.row_bytes as u64) as usize);
        let mut ids = Vec::with_capacity(rows as usize);
        for (_, c, i) in &parts {
            codes.extend_from_slice(c);
            ids.extend_from_slice(i.values());
        }
        (pool.bytes(codes), Int64Array::from(ids))
    };
    let vectors: ArrayRef = match layout.vectors {
        VectorKind::Float32 => {
            let values = f32_array_from_le(codes)?;
            if inner.on_non_finite == OnNonFinite::Error {
                if let Some((r, c)) = first_non_finite(values.values(), layout.dim) {
                    return Err(non_finite_error(
                        inner,
                        pieces,
                        &ids,
                        r,
                        c,
                        values.value(r * layout.dim + c),
                    ));
                }
            }
            Arc::new(float_vector_array(values, layout.dim)?)
        }
        VectorKind::Binary => vectors_from_le(VectorKind::Binary, layout.dim, codes)?,
    };
    let batch = RecordBatch::try_new(Arc::clone(&inner.schema), vec![Arc::new(ids), vectors])?;
    let last = pieces[pieces.len() - 1];
    let position = Position::encode(&FaissPosition {
        block: last.block,
        row: last.end,
    })?;
    Ok(SourceBatch::new(batch, position))
}

fn non_finite_error(
    inner: &OpenIndex,
    pieces: &[Piece],
    ids: &Int64Array,
    row: usize,
    component: usize,
    value: f32,
) -> Error {
    let layout = &inner.layout;
    // Find the piece holding batch row `row`.
    let mut before = 0u64;
    let mut at = (pieces[0], 0u64);
    for p in pieces {
        if (row as u64) < before + p.rows() {
            at = (*p, p.start + (row as u64 - before));
            break;
        }
        before += p.rows();
    }
    let (piece, block_row) = at;
    let block = layout.blocks.get(piece.block);
    let offset = block.map_or(0, |b| {
        b.codes_offset + block_row * layout.row_bytes as u64 + component as u64 * 4
    });
    let place = match block.and_then(|b| b.list_no) {
        Some(l) => format!("row {block_row} of inverted list {l}"),
        None => {
            let before: u64 = layout.blocks[..piece.block.min(layout.blocks.len())]
                .iter()
                .map(|b| b.rows)
                .sum();
            format!("row {} of the index", before + block_row)
        }
    };
    let id = if row < ids.len() { ids.value(row) } else { -1 };
    Error::data(
        format!("{} at byte {offset}", inner.display),
        format!(
            "the vector with id {id} ({place}) has {value} in dimension {component}; Milvus \
             rejects NaN and infinite values. Fix the source data, or set \
             `on_non_finite = \"allow\"` to pass such vectors through unchanged."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmig_formats::faiss::Metric;

    fn layout(blocks: Vec<(Option<u64>, u64)>) -> FaissLayout {
        let nlist = blocks.first().and_then(|b| b.0).map(|_| 100);
        let mut at = 100;
        FaissLayout {
            fourcc: "IwFl".into(),
            description: "test".into(),
            dim: 2,
            ntotal: blocks.iter().map(|b| b.1).sum(),
            metric: Metric::L2,
            vectors: VectorKind::Float32,
            row_bytes: 8,
            nlist,
            file_size: 1 << 30,
            blocks: blocks
                .into_iter()
                .map(|(l, rows)| {
                    let b = Block {
                        list_no: l,
                        rows,
                        codes_offset: at,
                        ids: BlockIds::Stored {
                            offset: at + rows * 8,
                        },
                    };
                    at += rows * 16;
                    b
                })
                .collect(),
            id_map: None,
        }
    }

    #[test]
    fn flat_partitions_are_row_ranges() {
        let p = plan_partitions(&layout(vec![(None, 10)]), 4);
        let ids: Vec<_> = p.iter().map(|p| p.info.id.0.clone()).collect();
        assert_eq!(ids, ["rows-0-4", "rows-4-8", "rows-8-10"]);
        assert_eq!(p[2].info.estimated_rows, Some(2));
    }

    #[test]
    fn ivf_partitions_group_whole_lists_and_split_big_ones() {
        let l = layout(vec![
            (Some(0), 3),
            (Some(2), 2),
            (Some(3), 9),
            (Some(7), 1),
            (Some(9), 4),
        ]);
        let p = plan_partitions(&l, 5);
        let ids: Vec<_> = p.iter().map(|p| p.info.id.0.clone()).collect();
        assert_eq!(
            ids,
            [
                "lists-0-2",
                "list-3-rows-0-5",
                "list-3-rows-5-9",
                "lists-7-9"
            ]
        );
        assert_eq!(
            p[0].info.description,
            "inverted lists 0..=2 (2 non-empty, 5 rows)"
        );
        let total: u64 = p.iter().map(|p| p.info.estimated_rows.unwrap()).sum();
        assert_eq!(total, 19);
    }

    #[test]
    fn dedup_duplicates_get_partitions_of_their_own() {
        let mut l = layout(vec![
            (Some(0), 3),
            (Some(1), 2),
            (None, 1),
            (None, 1),
            (None, 1),
        ]);
        l.blocks[4].rows = 3;
        let p = plan_partitions(&l, 2);
        let ids: Vec<_> = p.iter().map(|p| p.info.id.0.clone()).collect();
        assert_eq!(
            ids,
            [
                "list-0-rows-0-2",
                "list-0-rows-2-3",
                "lists-1-1",
                "duplicates-0-2",
                "duplicates-2-4",
                "duplicates-4-5"
            ]
        );
        let segs: Vec<Vec<(usize, u64, u64)>> = p[3..]
            .iter()
            .map(|p| {
                p.segments
                    .iter()
                    .map(|s| (s.block, s.start, s.end))
                    .collect()
            })
            .collect();
        assert_eq!(
            segs,
            vec![vec![(2, 0, 1), (3, 0, 1)], vec![(4, 0, 2)], vec![(4, 2, 3)]]
        );
    }

    /// The batches (block, start, end of each piece) a planner makes of `segments` (block, start,
    /// end), starting at row `row` of the first.
    fn plan(
        segments: &[(usize, u64, u64)],
        row: u64,
        batch_rows: u64,
        bytes_per_row: u64,
    ) -> Vec<Vec<(usize, u64, u64)>> {
        let segments: Arc<[Segment]> = segments
            .iter()
            .map(|&(block, start, end)| Segment { block, start, end })
            .collect();
        let planner = Planner {
            segments,
            seg: 0,
            row,
            batch_rows,
            bytes_per_row,
            chunk_bytes: vmig_core::ranges::STORE_CHUNK_BYTES,
        };
        planner
            .flatten()
            .map(|b| b.iter().map(|p| (p.block, p.start, p.end)).collect())
            .collect()
    }

    #[test]
    fn planner_fills_batches_across_segments() {
        let batches = plan(&[(0, 0, 3), (1, 0, 4)], 1, 4, 16);
        assert_eq!(batches, vec![vec![(0, 1, 3), (1, 0, 2)], vec![(1, 2, 4)]]);
    }

    #[test]
    fn planner_keeps_large_lists_in_batches_of_their_own() {
        // 1 KiB rows: 300 rows are over MERGE_BELOW_BYTES, 10 rows are not; a small list is
        // not merged with a large one (that would copy the large one).
        let batches = plan(
            &[(0, 0, 10), (1, 0, 300), (2, 0, 300), (3, 0, 10)],
            0,
            1000,
            1024,
        );
        assert_eq!(
            batches,
            vec![
                vec![(0, 0, 10)],
                vec![(1, 0, 300)],
                vec![(2, 0, 300)],
                vec![(3, 0, 10)]
            ]
        );
        // The small end of a list longer than a batch is not merged with the next large list;
        // small lists still are.
        let batches = plan(
            &[(0, 0, 1100), (1, 0, 300), (2, 0, 5), (3, 0, 5)],
            0,
            1000,
            1024,
        );
        assert_eq!(
            batches,
            vec![
                vec![(0, 0, 1000)],
                vec![(0, 1000, 1100)],
                vec![(1, 0, 300)],
                vec![(2, 0, 5), (3, 0, 5)]
            ]
        );
    }
}
