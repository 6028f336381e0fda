//! Bulk mode: the staging files of a run and their imports, each file imported exactly once
//! also across interrupted and resumed runs (the argument is in the crate docs, "Resuming").
//!
//! A file goes through three states: *open* (rows are appended; lost with the process), *staged*
//! (finished, synced or uploaded at a flush, and listed in the resume record the runner saves
//! right after that flush) and *imported* (a Milvus import task of it completed). Only staged
//! files are ever imported, and only at the flush after the one that staged them (or at
//! commit): by then the runner has saved the record that lists them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use vmig_core::store::{upload_file, StoreLocation};
use vmig_core::{Error, Result, RetryConfig};
use vmig_formats::staging::{RotatedFile, RotatingWriter, StagingFormat, StagingOptions};
use vmig_milvus::proto::common::ImportState;
use vmig_milvus::{
    import_failed, poll_imports, ImportOutcome, ImportTaskState, MilvusClient, MilvusError,
    MilvusErrorKind,
};

use crate::{Milvus2SinkConfig, LONG_WAIT, NAME};

/// How long Milvus keeps the record of an import task by default
/// (`rootCoord.importTaskRetention`, 24 h), less an hour of margin: a run resumed later than
/// this after an import may have been submitted cannot ask Milvus whether it was.
pub(crate) const TASK_RETENTION: Duration = Duration::from_secs(23 * 3600);

/// The suffix of the marker written next to a staged file (or object) just before its import
/// is submitted.
const MARKER: &str = ".importing";

/// A staged file (or NumPy directory) waiting to be imported; kept in the resume record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Staged {
    /// Its name in the run's stage directory (`part-<attempt>-<n>.parquet`, or a NumPy
    /// directory `part-<attempt>-<n>`).
    pub unit: String,
    /// What `Import` is given: absolute paths (a local stage) or bucket-relative keys (`s3://`).
    pub paths: Vec<String>,
    /// The Milvus partition (`None`: the default one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Rows in it.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Listed in the record this run resumed from: an interrupted run may have submitted its
    /// import already, so Milvus is asked before it is submitted.
    #[serde(skip)]
    pub inherited: bool,
}

impl Staged {
    fn label(&self) -> String {
        self.paths.join(",")
    }
}

/// A file whose import completed; kept in the resume record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Imported {
    /// What `Import` was given.
    pub paths: Vec<String>,
    /// The Milvus import tasks that imported it.
    pub tasks: Vec<i64>,
    /// Rows imported.
    pub rows: u64,
}

/// The bulk part of the resume record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRecord {
    /// The run's directory below `stage` (`vmig-<collection>-<run id>`).
    pub run: String,
    /// Processes of this run so far (1 for the first); part of every file name, so that no
    /// path is ever written twice.
    pub attempt: u32,
    /// Files staged and not yet imported, in order.
    pub staged: Vec<Staged>,
    /// Files imported, in order.
    pub imported: Vec<Imported>,
    /// The run is a job shared between workers: every worker stages its own files (named with
    /// its worker tag) in the run's directory, and imports them at its flushes; the files a
    /// worker left staged when it ended (or died) are imported by the worker that finishes
    /// the job ([`BulkStaging::inherit`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// Where this run's staging files are written and uploaded, and the files not imported yet.
#[derive(Debug)]
pub(crate) struct BulkStaging {
    /// The run's directory name below the stage.
    run: String,
    /// Where files are written locally (the stage itself, or a temporary dir for `s3://`).
    local_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// For `s3://` stages: the run's location, and its bucket-relative key prefix.
    remote: Option<(StoreLocation, String)>,
    format: StagingFormat,
    options: StagingOptions,
    max_file_size: u64,
    /// Splits rows into files; made by the first write, with the schema of its batch (the
    /// columns sent). `None` also while a write runs.
    files: Option<RotatingWriter>,
    attempt: u32,
    /// The number of the next file of this process.
    next: Arc<AtomicU32>,
    /// Staged files, oldest first: listed in the last record, imported at the next flush.
    staged: Vec<Staged>,
    /// Files imported by this run (also by earlier processes of it).
    imported: Vec<Imported>,
    /// When the record this process resumed from was taken (seconds since the epoch).
    resumed_at: Option<u64>,
    /// Keep staged files after their import is confirmed.
    keep: bool,
    /// A worker of a job shared between workers: its tag, in every file name it writes.
    worker: Option<String>,
}

impl BulkStaging {
    /// The staging of a new run into `collection`.
    ///
    /// # Errors
    /// When the stage directory cannot be created or the `s3://` stage not resolved.
    pub(crate) fn start(config: &Milvus2SinkConfig, collection: &str) -> Result<Self> {
        let run = format!("vmig-{collection}-{}", vmig_core::ids::new_run_id());
        Self::open(config, run, 1)
    }

    /// The staging of a resumed run from its record `record` (taken at `taken_at`): its staged
    /// files are imported at the next flush, asking Milvus first whether the interrupted run
    /// submitted them; whatever the interrupted run wrote after the record is removed.
    ///
    /// # Errors
    /// When the stage cannot be opened or a leftover cannot be removed.
    pub(crate) async fn resume(
        config: &Milvus2SinkConfig,
        record: BulkRecord,
        taken_at: u64,
    ) -> Result<Self> {
        let mut s = Self::open(config, record.run, record.attempt.saturating_add(1))?;
        if record.shared {
            // Joining a shared job: the run's directory holds the other workers' files, which
            // are theirs to import (or the finishing worker's); this worker stages its own.
            s.make_shared();
            return Ok(s);
        }
        s.staged = record
            .staged
            .into_iter()
            .map(|f| Staged {
                inherited: true,
                ..f
            })
            .collect();
        s.imported = record.imported;
        s.resumed_at = Some(taken_at);
        s.remove_leftovers().await?;
        Ok(s)
    }

    fn open(config: &Milvus2SinkConfig, run: String, attempt: u32) -> Result<Self> {
        let stage = config.stage.clone().unwrap_or_default();
        let (local_dir, tmp, remote) = if stage.starts_with("s3://") {
            let tmp = tempfile::tempdir()?;
            let loc = vmig_core::store::resolve(
                &format!("{}/{run}", stage.trim_end_matches('/')),
                &config.storage,
            )?;
            let prefix = loc.path.to_string();
            (tmp.path().to_path_buf(), Some(tmp), Some((loc, prefix)))
        } else {
            let dir = Path::new(&stage).join(&run);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::from(e).context(format!("creating the stage directory {}", dir.display()))
            })?;
            (dir, None, None)
        };
        Ok(BulkStaging {
            run,
            local_dir,
            _tmp: tmp,
            remote,
            format: config.bulk_format,
            options: StagingOptions::default(),
            max_file_size: config.max_file_size.bytes(),
            files: None,
            attempt,
            next: Arc::new(AtomicU32::new(0)),
            staged: Vec::new(),
            imported: Vec::new(),
            resumed_at: None,
            keep: config.keep_staged,
            worker: None,
        })
    }

    /// Makes this staging one worker's of a job shared between workers: its files are named
    /// `part-<tag>-<n>` with a tag of its own. Call it before the first write.
    pub(crate) fn make_shared(&mut self) {
        if self.worker.is_none() {
            self.worker = Some(vmig_core::ids::new_run_id()[..8].to_string());
        }
    }

    /// Whether the run has files staged or imported (by this process or the ones before it).
    pub(crate) fn has_files(&self) -> bool {
        !self.staged.is_empty() || !self.imported.is_empty()
    }

    /// Whether this is one worker's staging of a job shared between workers.
    pub(crate) fn is_shared(&self) -> bool {
        self.worker.is_some()
    }

    /// Takes over, on the worker that finishes a shared job, the files another worker's
    /// `record` (taken at `taken_at`) lists as staged and not imported: they are imported with
    /// the others, Milvus asked first whether that worker submitted them. Files this staging
    /// knows already, and records of another run, are left out. Returns the files taken.
    pub(crate) fn inherit(&mut self, record: BulkRecord, taken_at: u64) -> usize {
        if record.run != self.run {
            tracing::warn!(
                run = record.run,
                this_run = self.run,
                "a worker's record names another run's staging; its files are not imported"
            );
            return 0;
        }
        let mut taken = 0;
        for file in record.staged {
            let known = self.staged.iter().any(|f| f.unit == file.unit)
                || self.imported.iter().any(|f| f.paths == file.paths);
            if known {
                continue;
            }
            self.staged.push(Staged {
                inherited: true,
                ..file
            });
            taken += 1;
        }
        for file in record.imported {
            if !self.imported.iter().any(|f| f.paths == file.paths) {
                self.imported.push(file);
            }
        }
        self.resumed_at = Some(self.resumed_at.map_or(taken_at, |t| t.min(taken_at)));
        taken
    }

    /// Removes, on the worker that finished a shared job, everything in the run's directory
    /// (or below its prefix) but the imported files it keeps (`keep_staged`): what is left
    /// after every listed file was imported is what dead workers wrote after their last
    /// checkpoint. Only this run's own directory is looked at.
    pub(crate) async fn clear_run(&mut self) -> Result<()> {
        let keep: Vec<String> = if self.keep {
            self.imported.iter().flat_map(|f| f.paths.clone()).collect()
        } else {
            Vec::new()
        };
        let mut removed = Vec::new();
        match &self.remote {
            None => {
                let dir = self.local_dir.clone();
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => {
                        return Err(Error::from(e).context(format!("listing {}", dir.display())))
                    }
                };
                for entry in entries {
                    let path = entry?.path();
                    let kept = |p: &Path| keep.iter().any(|k| Path::new(k).starts_with(p));
                    if kept(&path) {
                        continue;
                    }
                    removed.push(path.display().to_string());
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        remove_file_if_exists(&path)?;
                    }
                }
            }
            Some((loc, prefix)) => {
                let listed: Vec<object_store::ObjectMeta> =
                    loc.store.list(Some(&loc.path)).try_collect().await?;
                let keys: Vec<object_store::path::Path> =
                    keep.iter().map(|k| object_path(loc, prefix, k)).collect();
                for meta in listed {
                    if keys.contains(&meta.location) {
                        continue;
                    }
                    loc.store.delete(&meta.location).await?;
                    removed.push(meta.location.to_string());
                }
            }
        }
        if !removed.is_empty() {
            tracing::info!(
                run = self.run,
                removed = ?removed,
                "removed the staging files that workers wrote after their last checkpoint"
            );
        }
        self.remove_dir_if_empty();
        Ok(())
    }

    /// Where the staged files are, for messages (a local directory or an `s3://` URL).
    pub(crate) fn place(&self, config: &Milvus2SinkConfig) -> String {
        match &self.remote {
            None => self.local_dir.display().to_string(),
            Some(_) => format!(
                "{}/{}",
                config
                    .stage
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/'),
                self.run
            ),
        }
    }

    /// The bulk part of the resume record: the staged and imported files.
    pub(crate) fn record(&self) -> BulkRecord {
        BulkRecord {
            run: self.run.clone(),
            attempt: self.attempt,
            staged: self.staged.clone(),
            imported: self.imported.clone(),
            shared: self.is_shared(),
        }
    }

    /// Files staged and not imported, and their rows.
    pub(crate) fn waiting(&self) -> (usize, u64) {
        (self.staged.len(), self.staged.iter().map(|f| f.rows).sum())
    }

    /// The partitions of the staged files (`None`, the default partition, left out).
    pub(crate) fn partitions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .staged
            .iter()
            .filter_map(|f| f.partition.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Rows imported by this run so far (also by earlier processes of it).
    pub(crate) fn imported_rows(&self) -> u64 {
        self.imported.iter().map(|f| f.rows).sum()
    }

    /// What `Import` was given for each imported file, for the commit report.
    pub(crate) fn imported_files(&self) -> Vec<String> {
        self.imported.iter().map(|f| f.paths.join(",")).collect()
    }

    /// The writer of this process's files, all in `local_dir` as
    /// `part-<attempt>-<n>[.ext]`.
    fn rotating_writer(&self, schema: SchemaRef) -> RotatingWriter {
        let (dir, next, ext, attempt, worker) = (
            self.local_dir.clone(),
            Arc::clone(&self.next),
            self.format.extension(),
            self.attempt,
            self.worker.clone(),
        );
        let namer = move |_: Option<&str>, _: u32| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let stem = match &worker {
                Some(tag) => format!("part-{tag}-{n:05}"),
                None => format!("part-{attempt:03}-{n:05}"),
            };
            Ok(dir.join(match ext {
                Some(ext) => format!("{stem}.{ext}"),
                None => stem,
            }))
        };
        RotatingWriter::new(
            NAME,
            self.format,
            schema,
            self.options.clone(),
            self.max_file_size,
            namer,
        )
    }

    /// Appends `batch` to the open file of `partition`.
    ///
    /// # Errors
    /// The staging writer's errors.
    pub(crate) async fn write(
        &mut self,
        batch: RecordBatch,
        partition: Option<String>,
    ) -> Result<()> {
        let mut files = match self.files.take() {
            Some(files) => files,
            None => self.rotating_writer(batch.schema()),
        };
        let (files, written) = blocking(move || {
            let written = files.write(&batch, partition.as_deref());
            Ok((files, written))
        })
        .await?;
        self.files = Some(files);
        written
    }

    /// Finishes every open file and stages it: synced (a local stage) or uploaded (`s3://`),
    /// then listed as staged. Returns the rows and bytes staged.
    ///
    /// # Errors
    /// When a file cannot be finished, synced or uploaded; files not staged are removed.
    pub(crate) async fn stage_open_files(&mut self) -> Result<(u64, u64)> {
        let Some(mut files) = self.files.take() else {
            return Ok((0, 0));
        };
        let (files, finished, result) = blocking(move || {
            let result = files.finish_all();
            let finished = files.take_finished();
            Ok((files, finished, result))
        })
        .await?;
        self.files = Some(files);
        if let Err(e) = result {
            remove_local(&finished);
            return Err(e);
        }
        let (mut rows, mut bytes) = (0, 0);
        let mut rest = finished.into_iter();
        while let Some(f) = rest.next() {
            match self.stage(&f).await {
                Ok(staged) => {
                    rows += staged.rows;
                    bytes += staged.bytes;
                    self.staged.push(staged);
                }
                Err(e) => {
                    remove_local(std::slice::from_ref(&f));
                    remove_local(&rest.collect::<Vec<_>>());
                    return Err(e);
                }
            }
        }
        if self.remote.is_none() {
            // The files' directory entries are durable too before the record names them.
            let dir = self.local_dir.clone();
            blocking(move || Ok(std::fs::File::open(&dir)?.sync_all()?)).await?;
        }
        Ok((rows, bytes))
    }

    /// Makes one finished file durable where Milvus reads it.
    async fn stage(&self, f: &RotatedFile) -> Result<Staged> {
        let unit = f
            .file
            .path
            .strip_prefix(&self.local_dir)
            .unwrap_or(&f.file.path)
            .to_string_lossy()
            .replace('\\', "/");
        let paths = match &self.remote {
            None => f
                .file
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            Some((loc, prefix)) => {
                let mut keys = Vec::new();
                for file in &f.file.files {
                    match upload(loc, prefix, &self.local_dir, file).await {
                        Ok(key) => keys.push(key),
                        Err(e) => {
                            delete_objects(loc, prefix, &keys).await;
                            return Err(e);
                        }
                    }
                }
                // The object is the staged copy now.
                remove_local(std::slice::from_ref(f));
                keys
            }
        };
        Ok(Staged {
            unit,
            paths,
            partition: f.partition.clone(),
            rows: f.file.rows,
            bytes: f.file.bytes,
            inherited: false,
        })
    }

    /// Imports every staged file, oldest first, each exactly once (see the module docs);
    /// removes each once its import is confirmed (unless `keep_staged`). Returns the rows
    /// imported.
    ///
    /// # Errors
    /// When an import fails or Milvus cannot be asked; the file stays staged, and a resumed
    /// run imports it.
    pub(crate) async fn import_staged(
        &mut self,
        client: &MilvusClient,
        collection: &str,
        retry: &RetryConfig,
    ) -> Result<u64> {
        let mut listed: Option<Vec<ImportTaskState>> = None;
        let mut rows = 0;
        while let Some(file) = self.staged.first().cloned() {
            let imported = self
                .import_one(client, collection, retry, &file, &mut listed)
                .await
                .map_err(|e| e.context(format!("importing staged file {}", file.label())))?;
            rows += imported.rows;
            self.staged.remove(0);
            self.imported.push(imported);
            let removed = if self.keep {
                self.remove_marker(&file).await
            } else {
                self.remove_unit(&file).await
            };
            if let Err(error) = removed {
                tracing::warn!(
                    message = "Could not remove an imported staging file.",
                    file = file.label(),
                    %error
                );
            }
        }
        Ok(rows)
    }

    async fn import_one(
        &self,
        client: &MilvusClient,
        collection: &str,
        retry: &RetryConfig,
        file: &Staged,
        listed: &mut Option<Vec<ImportTaskState>>,
    ) -> Result<Imported> {
        let joined = file.label();
        if file.inherited {
            // The interrupted run may have submitted it after its last record: ask Milvus.
            if listed.is_none() {
                *listed = Some(
                    retry
                        .run("Milvus ListImportTasks", || {
                            client.list_import_tasks(collection)
                        })
                        .await?,
                );
            }
            let mine: Vec<&ImportTaskState> = listed
                .iter()
                .flatten()
                .filter(|t| t.files == joined)
                .collect();
            if let Some(done) = mine
                .iter()
                .find(|t| t.state == ImportState::ImportCompleted)
            {
                tracing::info!(
                    file = joined,
                    task = done.task,
                    "the interrupted run's import of this staged file completed; not importing it again"
                );
                return confirm(file, vec![done.task], done.row_count.max(0) as u64);
            }
            let running: Vec<i64> = mine
                .iter()
                .filter(|t| !import_failed(t.state))
                .map(|t| t.task)
                .collect();
            if !running.is_empty() {
                tracing::info!(file = joined, tasks = ?running, "waiting for the interrupted run's import of this staged file");
                match wait_tasks(client, &running, retry).await? {
                    ImportOutcome::Completed(rows) => return confirm(file, running, rows),
                    ImportOutcome::Failed { task, reason } => tracing::warn!(
                        file = joined,
                        task,
                        reason,
                        "the interrupted run's import of this staged file failed; submitting it again"
                    ),
                }
            } else if mine.is_empty() && self.has_marker(file).await? {
                self.check_retention(file, collection)?;
            }
        }
        if !self.unit_present(file).await? {
            return Err(Error::data(
                joined,
                format!(
                    "this staged file of the run is gone and Milvus has no completed import of it, so its {} rows cannot be imported; start over with `vmig migrate --restart`",
                    file.rows
                ),
            ));
        }
        self.write_marker(file).await?;
        let tasks = submit(client, collection, file, retry).await?;
        match wait_tasks(client, &tasks, retry).await? {
            ImportOutcome::Completed(rows) => confirm(file, tasks, rows),
            ImportOutcome::Failed { task, reason } => {
                Err(Error::External(Box::new(MilvusError::new(
                    MilvusErrorKind::Server,
                    "Import",
                    format!("import task {task} failed: {reason}"),
                ))))
            }
        }
    }

    /// A file with a marker but no task Milvus knows: fine while Milvus would still list a task
    /// submitted after the record (the submission did not reach it); past that, refuse to
    /// guess.
    fn check_retention(&self, file: &Staged, collection: &str) -> Result<()> {
        let Some(taken_at) = self.resumed_at else {
            return Ok(());
        };
        let age = Duration::from_secs(now_secs().saturating_sub(taken_at));
        if age <= TASK_RETENTION {
            return Ok(());
        }
        Err(Error::unsupported(
            file.label(),
            format!(
                "the interrupted run was submitting the import of this staged file when it stopped {} hours ago, and Milvus no longer lists import tasks that old (it keeps them for `rootCoord.importTaskRetention`, 24 hours by default), so vmig cannot tell whether its {} rows are in `{collection}`; start over with `vmig migrate --restart`, or, if you have checked that they are not there, delete {} and resume",
                age.as_secs() / 3600,
                file.rows,
                self.marker_name(file)
            ),
        ))
    }

    fn marker_name(&self, file: &Staged) -> String {
        match &self.remote {
            None => self
                .local_dir
                .join(format!("{}{MARKER}", file.unit))
                .display()
                .to_string(),
            Some((loc, _)) => format!("{}/{}{MARKER}", loc.path, file.unit),
        }
    }

    async fn has_marker(&self, file: &Staged) -> Result<bool> {
        match &self.remote {
            None => Ok(self
                .local_dir
                .join(format!("{}{MARKER}", file.unit))
                .exists()),
            Some((loc, _)) => {
                let path = loc.path.clone().join(format!("{}{MARKER}", file.unit));
                match loc.store.head(&path).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Records, durably and before `Import` is called, that the file's import may be submitted.
    async fn write_marker(&self, file: &Staged) -> Result<()> {
        match &self.remote {
            None => {
                let (dir, name) = (self.local_dir.clone(), format!("{}{MARKER}", file.unit));
                blocking(move || {
                    std::fs::File::create(dir.join(name))?.sync_all()?;
                    std::fs::File::open(&dir)?.sync_all()?;
                    Ok(())
                })
                .await
            }
            Some((loc, _)) => {
                let path = loc.path.clone().join(format!("{}{MARKER}", file.unit));
                loc.store.put(&path, PutPayload::default()).await?;
                Ok(())
            }
        }
    }

    async fn remove_marker(&self, file: &Staged) -> Result<()> {
        match &self.remote {
            None => remove_file_if_exists(&self.local_dir.join(format!("{}{MARKER}", file.unit))),
            Some((loc, _)) => {
                let path = loc.path.clone().join(format!("{}{MARKER}", file.unit));
                match loc.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Whether every file of the unit is still there.
    async fn unit_present(&self, file: &Staged) -> Result<bool> {
        match &self.remote {
            None => Ok(file.paths.iter().all(|p| Path::new(p).exists())),
            Some((loc, prefix)) => {
                for key in &file.paths {
                    match loc.store.head(&object_path(loc, prefix, key)).await {
                        Ok(_) => {}
                        Err(object_store::Error::NotFound { .. }) => return Ok(false),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }
        }
    }

    /// Removes a staged unit and its marker.
    async fn remove_unit(&self, file: &Staged) -> Result<()> {
        match &self.remote {
            None => {
                for p in &file.paths {
                    remove_file_if_exists(Path::new(p))?;
                }
                let unit = self.local_dir.join(&file.unit);
                if unit.is_dir() {
                    let _ = std::fs::remove_dir(&unit);
                }
            }
            Some((loc, prefix)) => delete_objects(loc, prefix, &file.paths).await,
        }
        self.remove_marker(file).await
    }

    /// Removes what an interrupted process wrote after the record this run resumed from: every
    /// entry of the run's directory (or object below its prefix) that is not a staged file of
    /// the record or its marker. Only this run's own directory is looked at.
    async fn remove_leftovers(&mut self) -> Result<()> {
        let keep = |rel: &str| {
            self.staged.iter().any(|f| {
                rel == f.unit
                    || rel == format!("{}{MARKER}", f.unit)
                    || rel
                        .strip_prefix(f.unit.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        };
        let mut removed = Vec::new();
        match &self.remote {
            None => {
                for entry in std::fs::read_dir(&self.local_dir)? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().to_string();
                    if keep(&name) {
                        continue;
                    }
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        remove_file_if_exists(&path)?;
                    }
                    removed.push(name);
                }
            }
            Some((loc, _)) => {
                let listed: Vec<object_store::ObjectMeta> =
                    loc.store.list(Some(&loc.path)).try_collect().await?;
                let base = format!("{}/", loc.path);
                for meta in listed {
                    let key = meta.location.to_string();
                    let rel = key.strip_prefix(&base).unwrap_or(&key).to_string();
                    if keep(&rel) {
                        continue;
                    }
                    loc.store.delete(&meta.location).await?;
                    removed.push(rel);
                }
            }
        }
        if !removed.is_empty() {
            tracing::info!(
                run = self.run,
                removed = ?removed,
                "removed the staging files the interrupted run wrote after its last checkpoint"
            );
        }
        Ok(())
    }

    /// Removes the files written since the last flush (open ones and finished ones not staged):
    /// no record names them.
    pub(crate) async fn discard_unstaged(&mut self) -> Result<()> {
        let Some(mut files) = self.files.take() else {
            return Ok(());
        };
        let (finished, result) = blocking(move || {
            let result = files.discard_open();
            Ok((files.take_finished(), result))
        })
        .await?;
        remove_local(&finished);
        result
    }

    /// Removes every file of this run that was not imported (for `abort`) and the run's
    /// directory when it is empty; for a job shared between workers, every file in the run's
    /// directory (all workers' files: the whole job is discarded).
    pub(crate) async fn discard_all(&mut self) -> Result<()> {
        if self.is_shared() {
            let unstaged = self.discard_unstaged().await;
            self.staged.clear();
            self.imported.clear();
            let keep = std::mem::replace(&mut self.keep, false);
            let cleared = self.clear_run().await;
            self.keep = keep;
            unstaged?;
            return cleared;
        }
        let unstaged = self.discard_unstaged().await;
        for file in std::mem::take(&mut self.staged) {
            self.remove_unit(&file).await?;
        }
        unstaged?;
        self.remove_dir_if_empty();
        Ok(())
    }

    /// Removes the run's local stage directory if nothing is left in it.
    pub(crate) fn remove_dir_if_empty(&self) {
        if self.remote.is_none() {
            let _ = std::fs::remove_dir(&self.local_dir);
        }
    }
}

/// Checks the rows Milvus imported against the rows staged.
fn confirm(file: &Staged, tasks: Vec<i64>, rows: u64) -> Result<Imported> {
    if rows != file.rows {
        return Err(Error::data(
            file.label(),
            format!(
                "Milvus imported {rows} rows from a file of {} rows (tasks {tasks:?})",
                file.rows
            ),
        ));
    }
    Ok(Imported {
        paths: file.paths.clone(),
        tasks,
        rows,
    })
}

/// Submits the import of `file`, retrying transient failures by `retry`; before each retry
/// Milvus is asked whether the failed attempt created a task after all, so that a file is never
/// submitted twice.
async fn submit(
    client: &MilvusClient,
    collection: &str,
    file: &Staged,
    retry: &RetryConfig,
) -> Result<Vec<i64>> {
    let joined = file.label();
    let attempts = AtomicU32::new(0);
    let (attempts, joined_ref) = (&attempts, &joined);
    retry
        .run(&format!("Milvus Import of {joined}"), move || async move {
            if attempts.fetch_add(1, Ordering::SeqCst) > 0 {
                let known = client.list_import_tasks(collection).await?;
                let mine: Vec<i64> = known
                    .iter()
                    .filter(|t| &t.files == joined_ref && !import_failed(t.state))
                    .map(|t| t.task)
                    .collect();
                if !mine.is_empty() {
                    return Ok(mine);
                }
            }
            client
                .import(collection, file.partition.as_deref(), &file.paths)
                .await
        })
        .await
}

/// Polls `tasks` until every one completed or one failed, at most [`LONG_WAIT`]; each poll is
/// retried by `retry` (a restarting Milvus does not fail the wait).
async fn wait_tasks(
    client: &MilvusClient,
    tasks: &[i64],
    retry: &RetryConfig,
) -> Result<ImportOutcome> {
    poll_imports(tasks, LONG_WAIT, |t| {
        retry.run("Milvus GetImportState", move || client.import_state(t))
    })
    .await
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::External(Box::new(e)))?
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Removes local copies of finished files (best effort: they are in no record).
fn remove_local(files: &[RotatedFile]) {
    for f in files {
        for p in &f.file.files {
            let _ = std::fs::remove_file(p);
        }
        if f.file.path.is_dir() {
            let _ = std::fs::remove_dir(&f.file.path);
        }
    }
}

/// The object of the bucket-relative `key` (as passed to Import) below `loc`.
fn object_path(loc: &StoreLocation, prefix: &str, key: &str) -> object_store::path::Path {
    let rel = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches('/');
    rel.split('/')
        .fold(loc.path.clone(), |p, part| p.join(part))
}

/// Deletes the objects of `keys` (bucket-relative, as passed to Import). Failures are logged:
/// the caller's outcome is what it reports.
async fn delete_objects(loc: &StoreLocation, prefix: &str, keys: &[String]) {
    for key in keys {
        let path = object_path(loc, prefix, key);
        match loc.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(message = "Could not delete a staged object.", object = %path, %error);
            }
        }
    }
}

/// Uploads `file` (below `local_dir`) and returns its bucket-relative key.
async fn upload(
    loc: &StoreLocation,
    prefix: &str,
    local_dir: &Path,
    file: &Path,
) -> Result<String> {
    let rel = file
        .strip_prefix(local_dir)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/");
    let dest = rel
        .split('/')
        .fold(loc.path.clone(), |p, part| p.join(part));
    upload_file(&loc.store, file, &dest)
        .await
        .map_err(|e| e.context(format!("uploading {}", file.display())))?;
    Ok(if prefix.is_empty() {
        rel
    } else {
        format!("{prefix}/{rel}")
    })
}
