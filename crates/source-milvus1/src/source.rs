//! [`Milvus1Source`]: one partition per segment, streamed from `.rv` / `.uid` with deletes
//! dropped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use vmig_core::ranges::{read_ahead, RangeReader};
use vmig_core::source::stop_after_error;
use vmig_core::store::StoreLocation;
use vmig_core::vector::{
    binary_vector_array, binary_vector_field, f32_array_from_le, float_vector_array,
    float_vector_field, le_buffer, META_COLLECTION, META_METRIC, META_PRIMARY_KEY,
};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};
use vmig_formats::faiss::first_non_finite;

use crate::meta::{Meta, TableRow};
use crate::tags::{map_tags, How, Target};
use crate::{Milvus1SourceConfig, OnNonFinite};

/// Schema metadata key listing the partition tags that get another name in Milvus 2.x, as a
/// JSON object `{ "<1.x tag>": "<2.x partition>" }` (absent when every tag keeps its name), so
/// `vmig plan` shows the mapping even for partitions without segments.
pub const META_PARTITION_TAGS: &str = "vmig.milvus1.partition_tags";

/// Size of the `u64` byte-count header of `.rv`, `.uid` and `deleted_docs`.
const HEADER: u64 = 8;

/// Segments checked at once by the up-front check (each check is a listing and a few small
/// reads, so this mostly hides object-store latency).
const CHECKS_IN_FLIGHT: usize = 32;

/// The largest `deleted_docs` whose offsets the up-front check reads (1 MiB = 262 142
/// offsets); a larger one has only its header checked then, and its offsets when the segment
/// is read. Keeps the up-front check's memory at most this × [`CHECKS_IN_FLIGHT`].
const DELETES_CHECKED_UP_FRONT: u64 = 1024 * 1024;

/// Where a segment's stream resumes: every physical row before `row` has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milvus1Position {
    /// The next row offset of the segment (deleted rows count as rows here).
    pub row: u64,
}

/// The vectors of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `dim` × f32 per row.
    Float { dim: usize },
    /// `bits / 8` bytes per row.
    Binary { bits: usize },
}

impl Kind {
    fn row_bytes(self) -> u64 {
        match self {
            Kind::Float { dim } => dim as u64 * 4,
            Kind::Binary { bits } => bits as u64 / 8,
        }
    }

    fn describe(self) -> String {
        match self {
            Kind::Float { dim } => format!("{dim} × f32 = {} bytes", dim * 4),
            Kind::Binary { bits } => format!("{bits} bits = {} bytes", bits / 8),
        }
    }
}

/// A Milvus 1.x data directory ready to be read.
///
/// Built by [`Milvus1SourceConfig`]. Schema: the id column (`Int64`, non-null) and the vector
/// column (`FixedSizeList<Float32>(dim)`, or `FixedSizeBinary(dim/8)` tagged as a binary vector).
/// Schema metadata: `vmig.primary_key`, `vmig.metric` (L2, IP, HAMMING, JACCARD, or the
/// configured override) and, when one collection is read, `vmig.collection`.
#[derive(Debug, Clone)]
pub struct Milvus1Source {
    inner: Arc<SegmentCatalog>,
}

/// The collections' segments found in the data directory, with the schema they map to, shared
/// by every partition stream.
#[derive(Debug)]
struct SegmentCatalog {
    schema: SchemaRef,
    kind: Kind,
    segments: Vec<SegmentPlan>,
    by_id: HashMap<PartitionId, usize>,
    on_non_finite: OnNonFinite,
}

#[derive(Debug)]
struct SegmentPlan {
    info: PartitionInfo,
    dir: StoreLocation,
    /// `collection/partition tag/segment` for messages.
    label: String,
}

fn metric_name(code: i64) -> Option<&'static str> {
    match code {
        1 => Some("L2"),
        2 => Some("IP"),
        3 => Some("HAMMING"),
        4 => Some("JACCARD"),
        _ => None,
    }
}

fn metric_label(code: i64) -> String {
    match code {
        5 => "TANIMOTO (5)".into(),
        6 => "SUBSTRUCTURE (6)".into(),
        7 => "SUPERSTRUCTURE (7)".into(),
        c => format!("code {c}"),
    }
}

impl Milvus1Source {
    pub(crate) fn new(
        config: &Milvus1SourceConfig,
        root: StoreLocation,
        meta: Meta,
    ) -> Result<Self> {
        let cfg = |m: String| Error::config("milvus1", m);
        let live: Vec<&TableRow> = meta
            .tables
            .iter()
            .filter(|t| t.state == 0 && t.owner_table.is_empty())
            .collect();
        let chosen: Vec<&TableRow> = if config.collections.is_empty() {
            if live.is_empty() {
                return Err(cfg(format!(
                    "the Milvus 1.x meta of `{}` has no live collection",
                    root.display
                )));
            }
            live.clone()
        } else {
            let names: Vec<&str> = live.iter().map(|t| t.table_id.as_str()).collect();
            config
                .collections
                .iter()
                .map(|name| {
                    if let Some(t) = live.iter().find(|t| &t.table_id == name) {
                        return Ok(*t);
                    }
                    let dropped = meta.tables.iter().any(|t| &t.table_id == name);
                    Err(cfg(if dropped {
                        format!(
                            "collection `{name}` was dropped (state TO_DELETE) and cannot be read"
                        )
                    } else {
                        format!(
                            "collection `{name}` is not in the meta (live collections: {})",
                            names.join(", ")
                        )
                    }))
                })
                .collect::<Result<_>>()?
        };
        let first = chosen[0];
        for c in &chosen[1..] {
            if c.dimension != first.dimension || c.metric_type != first.metric_type {
                return Err(cfg(format!(
                    "collections `{}` (dimension {}, metric {}) and `{}` (dimension {}, metric {}) \
                     differ; a job writes one schema, so read them in separate jobs \
                     (`collections = [\"{}\"]`)",
                    first.table_id,
                    first.dimension,
                    metric_label(first.metric_type),
                    c.table_id,
                    c.dimension,
                    metric_label(c.metric_type),
                    first.table_id
                )));
            }
        }
        let binary = (3..=7).contains(&first.metric_type);
        let dim = usize::try_from(first.dimension)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                Error::data(
                    format!("Tables row `{}`", first.table_id),
                    format!("dimension {} is not a positive number", first.dimension),
                )
            })?;
        let (kind, vector) = if binary {
            let f = binary_vector_field(&config.vector_field, dim).map_err(|e| {
                Error::data(
                    format!("Tables row `{}`", first.table_id),
                    format!("binary collection with dimension {dim} bits: {e}"),
                )
            })?;
            (Kind::Binary { bits: dim }, f)
        } else {
            (
                Kind::Float { dim },
                float_vector_field(&config.vector_field, dim),
            )
        };
        let metric = match (&config.metric, metric_name(first.metric_type)) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) => m.to_string(),
            (None, None) => {
                return Err(Error::unsupported(
                    format!("collection `{}`", first.table_id),
                    format!(
                        "its metric is {}, which Milvus 2.x does not have (or only some releases \
                         do); set `metric` in the source config (JACCARD is the closest to \
                         TANIMOTO; check SUBSTRUCTURE/SUPERSTRUCTURE against your target)",
                        metric_label(first.metric_type)
                    ),
                ))
            }
        };
        let mut schema_meta = HashMap::from([
            (META_PRIMARY_KEY.to_string(), config.id_field.clone()),
            (META_METRIC.to_string(), metric),
        ]);
        if chosen.len() == 1 {
            schema_meta.insert(META_COLLECTION.to_string(), first.table_id.clone());
        }
        // Target partition of every live partition tag of the chosen collections (they share
        // one target collection, so the names are chosen over all their tags together).
        let tags: BTreeSet<String> = meta
            .tables
            .iter()
            .filter(|t| t.state == 0 && chosen.iter().any(|c| c.table_id == t.owner_table))
            .map(|t| t.partition_tag.clone())
            .collect();
        let targets = map_tags(
            &tags,
            &config.partition_names,
            config.invalid_partition_tags,
        )?;
        let renamed: serde_json::Map<String, serde_json::Value> = targets
            .iter()
            .filter(|(tag, t)| t.name != **tag)
            .map(|(tag, t)| (tag.clone(), t.name.clone().into()))
            .collect();
        if !renamed.is_empty() {
            schema_meta.insert(
                META_PARTITION_TAGS.to_string(),
                serde_json::Value::Object(renamed).to_string(),
            );
        }
        let schema = Arc::new(
            Schema::new(vec![
                Field::new(&config.id_field, DataType::Int64, false),
                vector,
            ])
            .with_metadata(schema_meta),
        );

        // Tables to read: each chosen collection and its live partitions, with target partition.
        let mut tables: Vec<(&TableRow, String, Option<Target>)> = Vec::new();
        for c in &chosen {
            tables.push((c, c.table_id.clone(), None));
            for p in meta
                .tables
                .iter()
                .filter(|t| t.state == 0 && t.owner_table == c.table_id)
            {
                let target = targets.get(&p.partition_tag).ok_or_else(|| {
                    Error::data(
                        format!("Tables row `{}`", p.table_id),
                        "its partition tag was not mapped (internal error)",
                    )
                })?;
                tables.push((p, c.table_id.clone(), Some(target.clone())));
            }
        }
        let tables_dir = root.child("db").child("tables");
        let mut segments = Vec::new();
        let mut seen = HashSet::new();
        for (t, collection, target) in &tables {
            let mut files: Vec<_> = meta
                .files
                .iter()
                .filter(|f| f.table_id == t.table_id)
                .collect();
            files.sort_by(|a, b| a.segment_id.cmp(&b.segment_id));
            for f in files {
                if !seen.insert((t.table_id.clone(), f.segment_id.clone())) {
                    continue; // the same segment listed twice (e.g. RAW and BACKUP rows)
                }
                if f.segment_id.is_empty() || f.segment_id.contains('/') {
                    return Err(Error::data(
                        format!("TableFiles row of table `{}`", t.table_id),
                        format!("segment id `{}` is not a directory name", f.segment_id),
                    ));
                }
                let where_ = match target {
                    Some(p) if p.name == t.partition_tag => {
                        format!("{collection}, partition `{}`", p.name)
                    }
                    Some(p) => format!(
                        "{collection}, partition `{}` (→ `{}`, {})",
                        t.partition_tag,
                        p.name,
                        match p.how {
                            How::Mapped => "mapped",
                            How::Override | How::Kept => "partition_names",
                        }
                    ),
                    None => collection.clone(),
                };
                let id = PartitionId::new(format!("{}/{}", t.table_id, f.segment_id));
                segments.push(SegmentPlan {
                    info: PartitionInfo {
                        id,
                        estimated_rows: u64::try_from(f.row_count).ok(),
                        description: format!(
                            "{where_}: segment {} (file type {}, ~{} rows per meta)",
                            f.segment_id, f.file_type, f.row_count
                        ),
                        target_partition: target.as_ref().map(|t| t.name.clone()),
                    },
                    dir: tables_dir.child(&t.table_id).child(&f.segment_id),
                    label: format!("segment {} of {where_}", f.segment_id),
                });
            }
        }
        tracing::info!(
            message = "Read Milvus 1.x meta.",
            root = %root.display,
            collections = %chosen.iter().map(|c| c.table_id.as_str()).collect::<Vec<_>>().join(","),
            segments = segments.len(),
            vectors = %kind.describe()
        );
        let by_id = segments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.info.id.clone(), i))
            .collect();
        Ok(Milvus1Source {
            inner: Arc::new(SegmentCatalog {
                schema,
                kind,
                segments,
                by_id,
                on_non_finite: config.on_non_finite,
            }),
        })
    }

    /// Checks the files of every selected segment — present (exactly one `*.rv` and one
    /// `*.uid`, and `deleted_docs`), headers agreeing with the file sizes, whole rows, `.uid`
    /// and `.rv` row counts equal, delete offsets in range — without reading any vectors.
    /// [`Milvus1SourceConfig`]'s `build` runs it, so a broken segment fails `vmig plan` and
    /// stops a run before anything is written. The same checks run again when a segment is
    /// read (the files may have changed since).
    ///
    /// # Errors
    /// The first broken segment's [`Error::Data`] (in segment order), or an object-store error.
    pub async fn check_files(&self) -> Result<()> {
        check_all_segments(&self.inner).await
    }
}

#[async_trait]
impl Source for Milvus1Source {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    /// The job's pooled read buffers are idle now; an embedding program should not keep them.
    fn end_of_job(&self) {
        vmig_core::ranges::BufferPool::global().clear();
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self.inner.segments.iter().map(|s| s.info.clone()).collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let index = *self.inner.by_id.get(partition).ok_or_else(|| {
            Error::config(
                "milvus1",
                format!(
                    "there is no segment `{partition}` in this data directory (was the checkpoint \
                     taken with another directory or collection list?)"
                ),
            )
        })?;
        let start = match resume_after {
            None => 0,
            Some(p) => p.decode::<Milvus1Position>()?.row,
        };
        let inner = Arc::clone(&self.inner);
        let batch_rows = ctx.batch_rows.get() as u64;
        let cancel = ctx.cancel.clone();
        let stream = futures::stream::once(async move {
            let seg = open_segment(&inner, index, Check::Open).await?;
            if start > seg.rows {
                return Err(Error::config(
                    "milvus1",
                    format!(
                        "resume position row {start} is past the end of {} ({} rows)",
                        inner.segments[index].label, seg.rows
                    ),
                ));
            }
            let seg = Arc::new(seg);
            let row_bytes = inner.kind.row_bytes();
            // Bytes of `.rv` plus `.uid` per read; a read always holds whole batches.
            let chunk_bytes = seg.rv.chunk_bytes();
            let per_chunk =
                (chunk_bytes / (row_bytes + 8)).max(1).div_ceil(batch_rows) * batch_rows;
            let ranges: Vec<Range<u64>> = (start..seg.rows)
                .step_by(per_chunk as usize)
                .map(|a| a..(a + per_chunk).min(seg.rows))
                .collect();
            let reader = Arc::clone(&seg);
            let decoder = Arc::clone(&inner);
            let batches = read_ahead(
                ranges,
                cancel,
                move |r| {
                    let seg = Arc::clone(&reader);
                    async move { read_chunk(&seg, row_bytes, r).await }
                },
                move |chunk: Chunk| {
                    let inner = Arc::clone(&decoder);
                    let seg = Arc::clone(&seg);
                    let pieces: Vec<Range<u64>> = (chunk.rows.start..chunk.rows.end)
                        .step_by(batch_rows as usize)
                        .map(|a| a..(a + batch_rows).min(chunk.rows.end))
                        .collect();
                    let chunk = Arc::new(chunk);
                    // Each piece decodes into zero or more batches (deleted rows dropped).
                    pieces
                        .into_iter()
                        .flat_map(move |r| match decode(&inner, &seg, &chunk, r) {
                            Ok(batches) => batches.into_iter().map(Ok).collect(),
                            Err(e) => vec![Err(e)],
                        })
                },
            );
            Ok::<_, Error>(batches)
        })
        .try_flatten();
        Ok(stop_after_error(stream))
    }
}

/// A segment whose files have been found and checked.
#[derive(Debug)]
struct OpenSegment {
    /// The `.rv` file (local files are read into pooled buffers, see [`RangeReader`]).
    rv: RangeReader,
    /// The `.uid` file.
    uid: RangeReader,
    rv_name: String,
    uid_name: String,
    rows: u64,
    /// Bit `i` set = row `i` deleted; `None` when nothing is deleted.
    deleted: Option<Vec<u64>>,
}

impl OpenSegment {
    fn is_deleted(&self, row: u64) -> bool {
        self.deleted.as_ref().is_some_and(|bits| {
            bits.get((row / 64) as usize)
                .is_some_and(|w| w & (1 << (row % 64)) != 0)
        })
    }

    fn any_deleted(&self, rows: &Range<u64>) -> bool {
        self.deleted.is_some() && rows.clone().any(|r| self.is_deleted(r))
    }
}

async fn read_header(store: &Arc<dyn ObjectStore>, path: &Path, shown: &str) -> Result<u64> {
    let b = store.get_range(path, 0..HEADER).await?;
    let arr: [u8; 8] = b.as_ref().try_into().map_err(|_| {
        Error::data(
            shown.to_string(),
            format!(
                "the 8-byte header could not be read ({} bytes returned)",
                b.len()
            ),
        )
    })?;
    Ok(u64::from_le_bytes(arr))
}

/// How much of a segment [`open_segment`] checks and loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Before the run: every check, but the deletes are not kept, and a `deleted_docs` larger
    /// than [`DELETES_CHECKED_UP_FRONT`] has only its header checked.
    UpFront,
    /// When the segment is read: every check, the deletes loaded into a bitmap.
    Open,
}

/// What was read of a `deleted_docs`.
#[derive(Debug)]
enum Deletes {
    /// Only its header (the payload's byte count).
    Header(u64),
    /// The whole file.
    Whole(Bytes),
}

/// Checks a `.uid` or `deleted_docs` header: it must say `size` − 8 bytes of `what`, a whole
/// number of `unit`-byte entries.
fn check_header(name: &str, what: &str, header: u64, size: u64, unit: u64) -> Result<()> {
    let why = if size.checked_sub(HEADER) != Some(header) {
        format!(
            "the file has {size} bytes, not {} (8-byte header + payload); it is truncated or \
             not a Milvus 1.x file",
            header.saturating_add(HEADER)
        )
    } else if !header.is_multiple_of(unit) {
        format!("that is not a whole number of {unit}-byte entries")
    } else {
        return Ok(());
    };
    Err(Error::data(
        name.to_string(),
        format!("the header says {header} bytes of {what}, but {why}"),
    ))
}

/// Checks every offset of a `deleted_docs` payload against the segment's `rows`; with `keep`,
/// returns them as a bitmap (`None` when nothing is deleted).
fn deleted_rows(
    payload: &[u8],
    rows: u64,
    keep: bool,
    del_name: &str,
    rv_name: &str,
) -> Result<Option<Vec<u64>>> {
    let mut bits = if keep && !payload.is_empty() {
        vec![0u64; rows.div_ceil(64) as usize]
    } else {
        Vec::new()
    };
    for (i, c) in payload.chunks_exact(4).enumerate() {
        let off = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let Some(row) = u64::try_from(off).ok().filter(|&r| r < rows) else {
            return Err(Error::data(
                format!("{del_name} at byte {}", HEADER as usize + i * 4),
                format!(
                    "deleted offset #{i} is {off}, outside the segment's {rows} rows (`{rv_name}`)"
                ),
            ));
        };
        if let Some(w) = bits.get_mut((row / 64) as usize) {
            *w |= 1 << (row % 64);
        }
    }
    Ok((!bits.is_empty()).then_some(bits))
}

/// Checks every selected segment's files, [`CHECKS_IN_FLIGHT`] segments at a time, so a broken
/// segment stops the job before anything is written. Reports the first broken segment in
/// segment order and how many others are broken.
async fn check_all_segments(inner: &SegmentCatalog) -> Result<()> {
    let started = std::time::Instant::now();
    let mut failures: Vec<(usize, Error)> = futures::stream::iter(0..inner.segments.len())
        .map(|i| async move { (i, open_segment(inner, i, Check::UpFront).await) })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .filter_map(|(i, r)| async move { r.err().map(|e| (i, e)) })
        .collect()
        .await;
    failures.sort_by_key(|(i, _)| *i);
    let broken = failures.len();
    if let Some((_, first)) = failures.into_iter().next() {
        return Err(if broken > 1 {
            first.context(format!(
                "{broken} of {} segments failed the check before reading; the first",
                inner.segments.len()
            ))
        } else {
            first
        });
    }
    tracing::info!(
        message = "Checked Milvus 1.x segment files.",
        segments = inner.segments.len(),
        elapsed_ms = started.elapsed().as_millis() as u64
    );
    Ok(())
}

/// Lists the segment directory, checks `.rv` / `.uid` / `deleted_docs` and (for
/// [`Check::Open`]) loads the deletes.
async fn open_segment(inner: &SegmentCatalog, index: usize, mode: Check) -> Result<OpenSegment> {
    let plan = &inner.segments[index];
    let dir = &plan.dir;
    let store = Arc::clone(&dir.store);
    let listing = store.list_with_delimiter(Some(&dir.path)).await;
    let objects = match listing {
        Ok(l) => l.objects,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if objects.is_empty() {
        return Err(Error::data(
            dir.display.clone(),
            format!(
                "the meta lists {} but its directory is missing or empty; restore the segment \
                 from a backup, or read a directory copied while Milvus was stopped",
                plan.label
            ),
        ));
    }
    let by_ext = |ext: &str| -> Result<(Path, u64)> {
        let found: Vec<_> = objects
            .iter()
            .filter(|o| o.location.filename().is_some_and(|n| n.ends_with(ext)))
            .collect();
        match found.as_slice() {
            [one] => Ok((one.location.clone(), one.size)),
            [] => Err(Error::data(
                dir.display.clone(),
                format!(
                    "{} has no `*{ext}` file, which the meta says exists",
                    plan.label
                ),
            )),
            many => Err(Error::data(
                dir.display.clone(),
                format!(
                    "{} has {} `*{ext}` files ({}); exactly one is expected",
                    plan.label,
                    many.len(),
                    many.iter()
                        .filter_map(|o| o.location.filename())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    };
    let (rv, rv_size) = by_ext(".rv")?;
    let (uid, uid_size) = by_ext(".uid")?;
    let name = |p: &Path| dir.child(p.filename().unwrap_or_default()).display;
    let (rv_name, uid_name) = (name(&rv), name(&uid));
    let row_bytes = inner.kind.row_bytes();

    let del_path = dir.path.clone().join("deleted_docs");
    let del_name = dir.child("deleted_docs").display;
    let Some(del_meta) = objects.iter().find(|o| o.location == del_path) else {
        return Err(Error::data(
            dir.display.clone(),
            format!(
                "{} has no `deleted_docs` file (every flushed 1.x segment has one); without it \
                 deleted rows cannot be told apart",
                plan.label
            ),
        ));
    };
    let fetch_deletes = async {
        if mode == Check::UpFront && del_meta.size > DELETES_CHECKED_UP_FRONT {
            Ok(Deletes::Header(
                read_header(&store, &del_path, &del_name).await?,
            ))
        } else {
            Ok::<_, Error>(Deletes::Whole(store.get(&del_path).await?.bytes().await?))
        }
    };
    // All three reads at once: one round trip after the listing.
    let (rv_bytes, uid_bytes, del) = futures::try_join!(
        read_header(&store, &rv, &rv_name),
        read_header(&store, &uid, &uid_name),
        fetch_deletes
    )?;
    if rv_size.checked_sub(HEADER) != Some(rv_bytes) {
        return Err(Error::data(
            rv_name.clone(),
            format!(
                "the header says {rv_bytes} bytes of vectors but the file has {rv_size} bytes \
                 (expected {} = 8-byte header + payload); the file is truncated or not a 1.x `.rv`",
                rv_bytes.saturating_add(HEADER)
            ),
        ));
    }
    if rv_bytes % row_bytes != 0 {
        return Err(Error::data(
            rv_name.clone(),
            format!(
                "{rv_bytes} bytes of vectors is not a multiple of the row width ({}); the \
                 collection's dimension in the meta does not match this file",
                inner.kind.describe()
            ),
        ));
    }
    let rows = rv_bytes / row_bytes;
    check_header(&uid_name, "ids", uid_bytes, uid_size, 8)?;
    if uid_bytes / 8 != rows {
        return Err(Error::data(
            uid_name.clone(),
            format!(
                "holds {} ids but `{rv_name}` holds {rows} vectors; they must match row for row",
                uid_bytes / 8
            ),
        ));
    }

    let deleted = match del {
        // A large delete list: only its header is checked up front; its offsets are checked
        // when the segment is read, so the up-front pass stays cheap and bounded in memory.
        Deletes::Header(del_bytes) => {
            check_header(&del_name, "offsets", del_bytes, del_meta.size, 4)?;
            None
        }
        Deletes::Whole(del) => {
            if del.len() as u64 != del_meta.size || del.len() < HEADER as usize {
                return Err(Error::data(
                    del_name,
                    format!(
                        "{} bytes is too short for its 8-byte header (or the file changed while \
                         it was read)",
                        del.len()
                    ),
                ));
            }
            let mut head = [0u8; 8];
            head.copy_from_slice(&del[..8]);
            check_header(
                &del_name,
                "offsets",
                u64::from_le_bytes(head),
                del.len() as u64,
                4,
            )?;
            deleted_rows(&del[8..], rows, mode == Check::Open, &del_name, &rv_name)?
        }
    };
    let reader = |p: &Path| RangeReader::new(&dir.child(p.filename().unwrap_or_default()));
    Ok(OpenSegment {
        rv: reader(&rv),
        uid: reader(&uid),
        rv_name,
        uid_name,
        rows,
        deleted,
    })
}

/// The raw bytes of rows `rows` of a segment.
#[derive(Debug)]
struct Chunk {
    rows: Range<u64>,
    vectors: Bytes,
    ids: Bytes,
}

async fn read_chunk(seg: &OpenSegment, row_bytes: u64, rows: Range<u64>) -> Result<Chunk> {
    let rv_range = HEADER + rows.start * row_bytes..HEADER + rows.end * row_bytes;
    let uid_range = HEADER + rows.start * 8..HEADER + rows.end * 8;
    let (vectors, ids) = futures::try_join!(
        seg.rv.read_exact(&seg.rv_name, vec![rv_range]),
        seg.uid.read_exact(&seg.uid_name, vec![uid_range])
    )
    .map_err(|e| match e {
        Error::Data { .. } => e,
        e => e.context(format!("reading rows {rows:?} of `{}`", seg.rv_name)),
    })?;
    let (Some(vectors), Some(ids)) = (vectors.into_iter().next(), ids.into_iter().next()) else {
        return Err(Error::data(&seg.rv_name, "a range read returned nothing"));
    };
    Ok(Chunk { rows, vectors, ids })
}

/// A batch with fewer runs of kept rows than one per this many rows is cut into one batch per
/// run (slices of the read buffer); one with more is filtered (copied).
const ROWS_PER_RUN_TO_SLICE: usize = 64;

/// Rows `r` (inside `chunk`) as batches without their deleted rows: none when all are deleted,
/// one batch per run of kept rows when deletes are sparse (no copy), otherwise one filtered
/// batch.
fn decode(
    inner: &SegmentCatalog,
    seg: &OpenSegment,
    chunk: &Chunk,
    r: Range<u64>,
) -> Result<Vec<SourceBatch>> {
    let row_bytes = inner.kind.row_bytes() as usize;
    let from = (r.start - chunk.rows.start) as usize;
    let to = (r.end - chunk.rows.start) as usize;
    let ids = Int64Array::new(
        arrow::buffer::ScalarBuffer::new(
            le_buffer::<i64>(chunk.ids.slice(from * 8..to * 8))?,
            0,
            to - from,
        ),
        None,
    );
    let codes = chunk.vectors.slice(from * row_bytes..to * row_bytes);
    let vectors: ArrayRef = match inner.kind {
        Kind::Float { dim } => {
            let values = f32_array_from_le(codes)?;
            if inner.on_non_finite == OnNonFinite::Error {
                check_finite(seg, values.values(), dim, &ids, r.start)?;
            }
            Arc::new(float_vector_array(values, dim)?)
        }
        Kind::Binary { .. } => Arc::new(binary_vector_array(le_buffer::<u8>(codes)?, row_bytes)?),
    };
    let batch = RecordBatch::try_new(Arc::clone(&inner.schema), vec![Arc::new(ids), vectors])?;
    let at = |row: u64| Position::encode(&Milvus1Position { row });
    if !seg.any_deleted(&r) {
        return Ok(vec![SourceBatch::new(batch, at(r.end)?)]);
    }
    let runs = kept_runs(seg, &r);
    if runs.len() <= (to - from).div_ceil(ROWS_PER_RUN_TO_SLICE) {
        let last = runs.len().saturating_sub(1);
        // Each run's position is its end; the last one's covers the deleted rows after it.
        return runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let rows = batch.slice(
                    (run.start - r.start) as usize,
                    (run.end - run.start) as usize,
                );
                let end = if i == last { r.end } else { run.end };
                Ok(SourceBatch::new(rows, at(end)?))
            })
            .collect();
    }
    let keep: BooleanArray = r.clone().map(|i| Some(!seg.is_deleted(i))).collect();
    let batch = filter_record_batch(&batch, &keep)?;
    Ok(vec![SourceBatch::new(batch, at(r.end)?)])
}

/// The runs of rows of `r` that are not deleted, in order.
fn kept_runs(seg: &OpenSegment, r: &Range<u64>) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for row in r.clone() {
        if seg.is_deleted(row) {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.end == row => run.end += 1,
            _ => runs.push(row..row + 1),
        }
    }
    runs
}

/// Fails on the first NaN or ±Inf in `values` (`dim` per row, the rows from physical row
/// `first_row` on) that is not in a deleted row.
fn check_finite(
    seg: &OpenSegment,
    values: &[f32],
    dim: usize,
    ids: &Int64Array,
    first_row: u64,
) -> Result<()> {
    let mut from = 0;
    while let Some((r, c)) = first_non_finite(&values[from * dim..], dim) {
        let local = from + r;
        let row = first_row + local as u64;
        if !seg.is_deleted(row) {
            let byte = HEADER + (row * dim as u64 + c as u64) * 4;
            return Err(Error::data(
                format!("{} at byte {byte}", seg.rv_name),
                format!(
                    "row {row} (id {}) holds {} in vector element {c}; Milvus 2.x does not \
                     accept NaN or infinite values. Repair the vectors, or set \
                     `on_non_finite = \"allow\"` in the source to copy them as they are.",
                    ids.value(local),
                    values[local * dim + c]
                ),
            ));
        }
        from = local + 1;
    }
    Ok(())
}
