//! The blocking side of the sink: the run's units, written into its work directory by a
//! [`RotatingWriter`] and, for a local target, renamed to their final names there once
//! finished. The sink moves a [`RunWriter`] into `spawn_blocking` for every call and back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use vmig_core::{Error, Result, ResultExt};
use vmig_formats::staging::{RotatedFile, RotatingWriter, StagingFormat, StagingOptions};

use crate::local::sync_dir;
use crate::manifest::ManifestEntry;
use crate::sink::PLUGIN;

/// A unit that was just finished: renamed into the run directory (local) or waiting for
/// upload (remote).
#[derive(Debug)]
pub(crate) struct FinishedUnit {
    /// What the manifest will say about it.
    pub(crate) entry: ManifestEntry,
    /// Where each of `entry.files` is on the local disk now.
    pub(crate) local_files: Vec<PathBuf>,
    /// The local file or directory of the unit.
    pub(crate) local_path: PathBuf,
}

/// Everything the blocking encoder needs; moved into `spawn_blocking` and back.
#[derive(Debug)]
pub(crate) struct RunWriter {
    format: StagingFormat,
    max_file_size: u64,
    options: StagingOptions,
    /// The run directory of a local target, or the local staging directory of a remote one.
    work_dir: PathBuf,
    /// Local target: finished units are renamed to their final names in `work_dir`.
    local: bool,
    /// The open units; `None` until [`RunWriter::start`].
    files: Option<RotatingWriter>,
    /// Units finished and not yet taken by [`RunWriter::take_finished`].
    finished: Vec<FinishedUnit>,
    /// The number of the first unit of each folder (`None`: the top), when a resumed run
    /// continues the numbering of an interrupted one; 0 elsewhere.
    first: BTreeMap<Option<String>, u32>,
    /// This worker's tag in unit names, in a job shared between workers.
    tag: Option<String>,
    /// The schema given to [`RunWriter::start`].
    schema: Option<SchemaRef>,
}

/// `part-00012.parquet`, `part-00012.json`, or `part-00012` (NumPy directory); with a worker
/// tag (a job shared between workers) `part-3f2a91c0-00012.parquet`.
fn unit_name(format: StagingFormat, tag: Option<&str>, index: u32) -> String {
    let stem = match tag {
        Some(tag) => format!("part-{tag}-{index:05}"),
        None => format!("part-{index:05}"),
    };
    match format.extension() {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem,
    }
}

/// The number of the `index`-th unit this writer starts in the folder of `partition`.
fn number(
    first: &BTreeMap<Option<String>, u32>,
    partition: Option<&str>,
    index: u32,
) -> Result<u32> {
    let base = first
        .get(&partition.map(str::to_string))
        .copied()
        .unwrap_or(0);
    base.checked_add(index)
        .ok_or_else(|| Error::External("unit numbers ran out (over 4 billion units)".into()))
}

/// The folder of `partition` below `work_dir`, created if needed.
fn partition_dir(work_dir: &Path, partition: Option<&str>) -> Result<PathBuf> {
    let Some(p) = partition else {
        return Ok(work_dir.to_path_buf());
    };
    let dir = work_dir.join(p);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).context_with(|| format!("creating {}", dir.display()))?;
    }
    Ok(dir)
}

/// The error for a writer used before `prepare`.
pub(crate) fn not_prepared() -> Error {
    Error::schema("the files sink was written to before `prepare`")
}

impl RunWriter {
    /// A writer of `format` units of at most `max_file_size` bytes; `local` for a local target.
    pub(crate) fn new(
        format: StagingFormat,
        max_file_size: u64,
        options: StagingOptions,
        local: bool,
    ) -> RunWriter {
        RunWriter {
            format,
            max_file_size,
            options,
            work_dir: PathBuf::new(),
            local,
            files: None,
            finished: Vec::new(),
            first: BTreeMap::new(),
            tag: None,
            schema: None,
        }
    }

    /// Names this writer's units with the worker tag `tag` from now on (a job shared between
    /// workers), numbered from 0 in each folder. Call it before the first write.
    pub(crate) fn set_tag(&mut self, tag: String) {
        self.tag = Some(tag);
        self.first.clear();
        if let Some(schema) = self.schema.clone() {
            let work_dir = self.work_dir.clone();
            self.start(schema, work_dir);
        }
    }

    /// Numbers the units of each folder from `first` on (folders not in it from 0). Call it
    /// before [`RunWriter::start`].
    pub(crate) fn continue_numbering(&mut self, first: BTreeMap<Option<String>, u32>) {
        self.first = first;
    }

    /// The format written.
    pub(crate) fn format(&self) -> StagingFormat {
        self.format
    }

    /// Starts writing units of `schema` into `work_dir` (unit `part-00000…` of each partition
    /// first; a local target's units under a temporary name until finished).
    pub(crate) fn start(&mut self, schema: SchemaRef, work_dir: PathBuf) {
        let (format, local, dir) = (self.format, self.local, work_dir.clone());
        let (first, tag) = (self.first.clone(), self.tag.clone());
        let namer = move |partition: Option<&str>, index: u32| -> Result<PathBuf> {
            let index = number(&first, partition, index)?;
            let name = unit_name(format, tag.as_deref(), index);
            let dir = partition_dir(&dir, partition)?;
            Ok(if local {
                dir.join(format!(".{name}.tmp"))
            } else {
                dir.join(name)
            })
        };
        self.schema = Some(schema.clone());
        self.files = Some(RotatingWriter::new(
            PLUGIN,
            self.format,
            schema,
            self.options.clone(),
            self.max_file_size,
            namer,
        ));
        self.work_dir = work_dir;
    }

    /// Appends `batch` to the unit of `partition`, finishing units and starting new ones so
    /// none exceeds `max_file_size`.
    pub(crate) fn write(&mut self, batch: &RecordBatch, partition: Option<&str>) -> Result<()> {
        let files = self.files.as_mut().ok_or_else(not_prepared)?;
        let written = files.write(batch, partition);
        self.settle()?;
        written
    }

    /// Finishes every open unit.
    pub(crate) fn finish_all(&mut self) -> Result<()> {
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        let finished = files.finish_all();
        self.settle()?;
        finished
    }

    /// The units finished since the last call.
    pub(crate) fn take_finished(&mut self) -> Vec<FinishedUnit> {
        std::mem::take(&mut self.finished)
    }

    /// Removes the open units.
    pub(crate) fn discard_open(&mut self) -> Result<()> {
        match self.files.as_mut() {
            Some(files) => files.discard_open(),
            None => Ok(()),
        }
    }

    /// Takes the units the rotating writer finished: renames them into place (local target)
    /// and records their target-relative names.
    fn settle(&mut self) -> Result<()> {
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        for rotated in files.take_finished() {
            let unit = self.place(rotated)?;
            self.finished.push(unit);
        }
        Ok(())
    }

    fn place(&self, rotated: RotatedFile) -> Result<FinishedUnit> {
        let RotatedFile {
            partition,
            index,
            file: finished,
        } = rotated;
        let index = number(&self.first, partition.as_deref(), index)?;
        let file_name = unit_name(self.format, self.tag.as_deref(), index);
        let name = match &partition {
            Some(p) => format!("{p}/{file_name}"),
            None => file_name.clone(),
        };
        let dir = partition_dir(&self.work_dir, partition.as_deref())?;
        let temp = finished.path.clone();
        let final_path = dir.join(&file_name);
        if self.local {
            std::fs::rename(&temp, &final_path).context_with(|| {
                format!("renaming {} to {}", temp.display(), final_path.display())
            })?;
            sync_dir(&dir);
        }
        let mut files = Vec::with_capacity(finished.files.len());
        let mut local_files = Vec::with_capacity(finished.files.len());
        for f in &finished.files {
            let relative = match f.strip_prefix(&temp) {
                Ok(inner) if !inner.as_os_str().is_empty() => {
                    format!("{name}/{}", inner.to_string_lossy())
                }
                _ => name.clone(),
            };
            local_files.push(self.work_dir.join(&relative));
            files.push(relative);
        }
        Ok(FinishedUnit {
            entry: ManifestEntry {
                path: name,
                partition,
                files,
                rows: finished.rows,
                bytes: finished.bytes,
            },
            local_files,
            local_path: final_path,
        })
    }
}
