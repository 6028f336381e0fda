//! [`FilesSource`]: the planned row sets of a `files` source, read as partitions.

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use vmig_core::parse::{DynParserConfig, ParseInput, ParsePosition};
use vmig_core::ranges::RangeReader;
use vmig_core::source::stop_after_error;
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::list::{FileVersion, InputFile};
use crate::read::{FileReader, RowSetReader};

/// Batches a partition's reading thread may have ready ahead of the pipeline.
const BATCHES_AHEAD: usize = 2;

/// Files read together: one file, or the column files of one NumPy directory.
#[derive(Debug, Clone)]
pub(crate) struct RowSet {
    /// The partition id's stem: the file's relative path, or the directory's with a `/`.
    pub key: String,
    pub files: Vec<InputFile>,
    /// Each file's schema (as its parser reads it), in the order of `files`.
    pub schemas: Vec<SchemaRef>,
    /// Rows in the set, when the format says without reading them.
    pub total_rows: Option<u64>,
    /// Rows in the row sets before this one (for formats that number rows).
    pub first_row: u64,
    /// The rows of each unit the format reads independently (Parquet row groups) of a
    /// single-file row set, when it has them: row ranges are cut between them.
    pub row_groups: Option<Vec<u64>>,
    /// The target partition of its rows: the one vmig's manifest gives its unit, when the
    /// directory is read through one (and `partitions = "manifest"`).
    pub partition: Option<String>,
}

/// Where a partition resumes: rows of its row set already delivered (counted from the start
/// of the files, not of the partition), the byte offset the parser reported, and the versions
/// of the files it was reading, so that a file replaced since is refused rather than resumed
/// at a position that means something else in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesPosition {
    /// Rows delivered, and the offset of the next row.
    #[serde(flatten)]
    pub at: ParsePosition,
    /// The version of each file of the row set.
    pub versions: Vec<FileVersion>,
}

/// One partition: rows `rows` of a row set (all of it when `None`).
#[derive(Debug, Clone)]
struct Partition {
    info: PartitionInfo,
    set: usize,
    rows: Option<Range<u64>>,
}

/// Data files ready to be read: their row sets, schema and partitions. Built by
/// [`crate::FilesSourceConfig`].
#[derive(Debug, Clone)]
pub struct FilesSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    schema: SchemaRef,
    parser: Arc<dyn DynParserConfig>,
    sets: Vec<RowSet>,
    partitions: Vec<Partition>,
}

impl FilesSource {
    /// Splits `sets` into partitions: a row set whose rows are known and more than
    /// `partition_rows` becomes row ranges of that size when `splittable` (its parser resumes
    /// at a row count). Every partition of a row set has the set's target partition.
    pub(crate) fn new(
        schema: SchemaRef,
        parser: Arc<dyn DynParserConfig>,
        sets: Vec<RowSet>,
        partition_rows: u64,
        splittable: bool,
    ) -> Self {
        let mut partitions = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let bytes: u64 = set.files.iter().map(|f| f.version.size).sum();
            let mut described = match set.files.as_slice() {
                [one] => format!("{} ({bytes} bytes)", one.location.display),
                many => format!(
                    "{} files of {} ({bytes} bytes)",
                    many.len(),
                    set.key.trim_end_matches('/')
                ),
            };
            if let Some(p) = &set.partition {
                described = format!("{described} → partition `{p}`");
            }
            match set.total_rows {
                Some(total) if splittable && total > partition_rows => {
                    let ends = range_ends(total, partition_rows, set.row_groups.as_deref());
                    let mut start = 0;
                    for end in ends {
                        partitions.push(Partition {
                            info: PartitionInfo {
                                id: PartitionId::new(format!("{}#{start}..{end}", set.key)),
                                estimated_rows: Some(end - start),
                                description: format!("rows {start}..{end} of {described}"),
                                target_partition: set.partition.clone(),
                            },
                            set: i,
                            rows: Some(start..end),
                        });
                        start = end;
                    }
                }
                total => partitions.push(Partition {
                    info: PartitionInfo {
                        id: PartitionId::new(set.key.clone()),
                        estimated_rows: total,
                        description: described,
                        target_partition: set.partition.clone(),
                    },
                    set: i,
                    rows: None,
                }),
            }
        }
        FilesSource {
            inner: Arc::new(Inner {
                schema,
                parser,
                sets,
                partitions,
            }),
        }
    }
}

/// Where the row ranges of a set of `total` rows end: every `partition_rows` rows or, for a
/// format with row groups, after as many whole groups as fit in `partition_rows` (at least
/// one), so that no group is read by two partitions.
fn range_ends(total: u64, partition_rows: u64, groups: Option<&[u64]>) -> Vec<u64> {
    let mut ends = Vec::new();
    match groups.filter(|g| g.iter().sum::<u64>() == total) {
        Some(groups) => {
            let (mut end, mut in_range) = (0u64, 0u64);
            for &rows in groups {
                if in_range > 0 && in_range + rows > partition_rows {
                    ends.push(end);
                    in_range = 0;
                }
                end += rows;
                in_range += rows;
            }
            if in_range > 0 {
                ends.push(end);
            }
        }
        None => {
            let mut end = 0;
            while end < total {
                end = total.min(end + partition_rows);
                ends.push(end);
            }
        }
    }
    ends
}

#[async_trait]
impl Source for FilesSource {
    fn schema(&self) -> SchemaRef {
        self.inner.schema.clone()
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
        let index = self
            .inner
            .partitions
            .iter()
            .position(|p| &p.info.id == partition)
            .ok_or_else(|| {
                Error::config(
                    "files",
                    format!("no partition `{partition}` in this job's files (were files added or removed since the checkpoint?)"),
                )
            })?;
        let resume = resume_after
            .map(Position::decode::<FilesPosition>)
            .transpose()?;
        let inner = Arc::clone(&self.inner);
        let ctx = ctx.clone();
        let (tx, rx) = mpsc::channel::<Result<SourceBatch>>(BATCHES_AHEAD);
        let start = futures::stream::once(async move {
            let handle = Handle::current();
            // A blocking thread runs the parsers; it stops when the stream (the receiver) is
            // dropped or the job is cancelled.
            std::mem::drop(tokio::task::spawn_blocking(move || {
                if let Err(e) = read_partition(&inner, index, resume, &ctx, &handle, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            }));
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
        })
        .flatten();
        Ok(stop_after_error(start))
    }
}

/// Reads partition `index` into `tx` (on a blocking thread).
fn read_partition(
    inner: &Inner,
    index: usize,
    resume: Option<FilesPosition>,
    ctx: &SourceContext,
    handle: &Handle,
    tx: &mpsc::Sender<Result<SourceBatch>>,
) -> Result<()> {
    let partition = &inner.partitions[index];
    let set = &inner.sets[partition.set];
    let versions = check_versions(set, handle)?;
    if let Some(r) = &resume {
        let changed = if r.versions.len() != versions.len() {
            Some((&set.files[0], "the row set has other files now".to_string()))
        } else {
            set.files
                .iter()
                .zip(versions.iter().zip(&r.versions))
                .find_map(|(f, (now, then))| now.change_from(then).map(|c| (f, c)))
        };
        if let Some((file, change)) = changed {
            return Err(Error::data(
                file.location.display.clone(),
                format!(
                    "the file changed since the checkpoint ({change}); the rows already migrated came from the old file. Restore it, or start the job over"
                ),
            ));
        }
    }
    let end = partition.rows.as_ref().map(|r| r.end);
    let start_at = match (&resume, &partition.rows) {
        (Some(r), _) => Some(r.at),
        (None, Some(rows)) if rows.start > 0 => Some(ParsePosition {
            rows: rows.start,
            offset: None,
        }),
        _ => None,
    };
    if let (Some(at), Some(end)) = (&start_at, end) {
        if at.rows >= end {
            return Ok(());
        }
    }
    let mut readers = Vec::with_capacity(set.files.len());
    for (file, schema) in set.files.iter().zip(&set.schemas) {
        let input = ParseInput::new(file.location.display.clone(), ctx.batch_rows.get())
            .with_size(file.version.size)
            .with_first_row(set.first_row)
            .with_schema(schema.clone());
        let parser = inner.parser.build(&input)?;
        readers.push(FileReader::new(
            parser,
            RangeReader::new(&file.location),
            file.location.display.clone(),
            file.version.size,
            handle.clone(),
        ));
    }
    let mut reader = RowSetReader::new(readers, inner.schema.clone());
    let mut rows = 0;
    if let Some(at) = &start_at {
        reader.resume(at)?;
        rows = at.rows;
    }
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(mut batch) = reader.next_batch()? else {
            break;
        };
        let mut at = reader.position();
        rows += batch.num_rows() as u64;
        let last = end.is_some_and(|end| rows >= end);
        if let Some(end) = end.filter(|&end| rows > end) {
            let keep = batch.num_rows() - (rows - end) as usize;
            batch = batch.slice(0, keep);
            rows = end;
            at = ParsePosition {
                rows: end,
                offset: None,
            };
        }
        let position = Position::encode(&FilesPosition {
            at,
            versions: versions.clone(),
        })?;
        if tx
            .blocking_send(Ok(SourceBatch::new(batch, position)))
            .is_err()
        {
            // The stream was dropped: nobody wants the rest.
            return Ok(());
        }
        if last {
            break;
        }
    }
    if let Some(end) = end {
        if rows < end {
            return Err(Error::data(
                set.key.clone(),
                format!(
                    "the files ended after row {rows} though the plan counted {end}; did they change?"
                ),
            ));
        }
    }
    // The files must still be the ones planned once read: a change while reading would have
    // mixed two versions.
    check_versions(set, handle)?;
    Ok(())
}

/// The current versions of the row set's files, each checked against the planned one.
fn check_versions(set: &RowSet, handle: &Handle) -> Result<Vec<FileVersion>> {
    let mut out = Vec::with_capacity(set.files.len());
    for file in &set.files {
        let now = handle.block_on(crate::list::version(file))?;
        if let Some(change) = now.change_from(&file.version) {
            return Err(Error::data(
                file.location.display.clone(),
                format!(
                    "the file changed between plan and read ({change}); plan the job again to read the new file"
                ),
            ));
        }
        out.push(now);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::range_ends;

    #[test]
    fn ranges_end_between_row_groups_when_there_are_some() {
        assert_eq!(range_ends(10, 4, None), [4, 8, 10]);
        // Groups of 3, 3, 3, 1 rows and at most 4 rows a range: whole groups only.
        assert_eq!(range_ends(10, 4, Some(&[3, 3, 3, 1])), [3, 6, 10]);
        // A group larger than a range is a range of its own.
        assert_eq!(range_ends(10, 4, Some(&[1, 7, 2])), [1, 8, 10]);
        assert_eq!(range_ends(10, 100, Some(&[5, 5])), [10]);
        // Groups that do not add up to the rows are ignored.
        assert_eq!(range_ends(10, 4, Some(&[3, 3])), [4, 8, 10]);
    }
}
