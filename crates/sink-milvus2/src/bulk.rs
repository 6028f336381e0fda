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
use vmig_milvus::rest::{ImportJob, ImportJobs, ImportRequest, JobState};
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
/// is submitted. Through REST it then holds the id of the job that imports it.
const MARKER: &str = ".importing";

/// How often a REST import job is asked for its progress.
const JOB_POLL: Duration = Duration::from_secs(2);

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
    /// The Milvus import tasks that imported it (gRPC `Import`).
    pub tasks: Vec<i64>,
    /// The REST import job that imported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
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
    /// For `s3://` stages: `s3://<bucket>`, what a staged key is joined to for an object URL
    /// (Zilliz Cloud's import names files by URL).
    bucket_url: Option<String>,
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
        let bucket_url = config.stage_bucket().map(|b| format!("s3://{b}"));
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
            bucket_url,
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
            self.clean_up_imported(&file).await;
        }
        Ok(rows)
    }

    /// [`BulkStaging::import_staged`] through the REST import jobs of `jobs`: one job per
    /// partition and up to `max_files` staged files, oldest first. Each file's marker holds its
    /// job's id once the server gave it, so a resumed run asks about that job instead of
    /// submitting the file again. Returns the rows imported.
    ///
    /// # Errors
    /// When a job fails (its reason verbatim) or the server cannot be asked; the files stay
    /// staged, and a resumed run imports them.
    pub(crate) async fn import_staged_rest(
        &mut self,
        jobs: &ImportJobs,
        collection: &str,
        max_files: usize,
    ) -> Result<u64> {
        let mut rows = self.adopt_jobs(jobs, collection).await?;
        while let Some(first) = self.staged.first() {
            let partition = first.partition.clone();
            let batch: Vec<Staged> = self
                .staged
                .iter()
                .filter(|f| f.partition == partition)
                .take(max_files.max(1))
                .cloned()
                .collect();
            let label = || {
                let names: Vec<String> = batch.iter().map(Staged::label).collect();
                format!("importing staged files {}", names.join(" "))
            };
            for file in &batch {
                if !self.unit_present(file).await? {
                    return Err(gone(file));
                }
            }
            let groups = self.file_groups(&batch, jobs)?;
            for file in &batch {
                self.write_marker(file).await?;
            }
            let created = jobs
                .create(&ImportRequest {
                    collection,
                    partition: partition.as_deref(),
                    files: &groups,
                    options: Default::default(),
                })
                .await;
            let id = match created {
                Ok(id) => id,
                Err(e) => {
                    if !e.is_retryable() {
                        // The server answered and refused: no job exists, so a resumed run
                        // may submit these files again. (Without an answer the empty markers
                        // stay: the job may exist.)
                        for file in &batch {
                            let _ = self.remove_marker(file).await;
                        }
                    }
                    return Err(e.context(label()));
                }
            };
            for file in &batch {
                self.write_marker_holding(file, &id).await?;
            }
            tracing::info!(job = id, files = batch.len(), partition = ?partition, "submitted an import job");
            let job = jobs
                .wait(&id, JOB_POLL, log_progress)
                .await
                .map_err(|e| e.context(label()))?;
            rows += self.confirm_job(&batch, &job).await?;
        }
        Ok(rows)
    }

    /// What a job's `create` names `batch` by: the staged paths (keys in Milvus's bucket, or
    /// local paths), or for Zilliz Cloud their object URLs (`s3://<bucket>/<key>`).
    fn file_groups(&self, batch: &[Staged], jobs: &ImportJobs) -> Result<Vec<Vec<String>>> {
        if !jobs.takes_object_urls() {
            return Ok(batch.iter().map(|f| f.paths.clone()).collect());
        }
        let Some(bucket) = &self.bucket_url else {
            return Err(Error::config(
                NAME,
                "bulk import into Zilliz Cloud reads the staged files from your own bucket: set `stage = \"s3://<bucket>/<prefix>\"`",
            ));
        };
        Ok(batch
            .iter()
            .map(|f| f.paths.iter().map(|k| format!("{bucket}/{k}")).collect())
            .collect())
    }

    /// The jobs that staged files' markers name (written by the interrupted run, or by an
    /// earlier attempt of this one) are asked about, and their files confirmed (completed),
    /// awaited (running) or left to be submitted again (failed); a marker without a job id is
    /// refused. Returns the rows confirmed.
    async fn adopt_jobs(&mut self, jobs: &ImportJobs, collection: &str) -> Result<u64> {
        let mut by_job: Vec<(String, Vec<Staged>)> = Vec::new();
        // Every staged file, not only inherited ones: an earlier attempt of this process may
        // have submitted a job too (a create without an answer, a wait that failed).
        for file in self.staged.clone() {
            match self.read_marker(&file).await? {
                None => {}
                Some(id) if id.is_empty() => {
                    return Err(Error::unsupported(
                        file.label(),
                        format!(
                            "an earlier attempt (of this run or of the interrupted one) submitted an import job of this staged file and got no answer with the job's id, so vmig cannot tell whether its {} rows are in `{collection}`; start over with `vmig migrate --restart`, or, if you have checked that no import job of `{collection}` holds this file, delete {} and resume",
                            file.rows,
                            self.marker_name(&file)
                        ),
                    ))
                }
                Some(id) => match by_job.iter_mut().find(|(j, _)| *j == id) {
                    Some((_, files)) => files.push(file),
                    None => by_job.push((id, vec![file])),
                },
            }
        }
        let mut rows = 0;
        for (id, files) in by_job {
            tracing::info!(
                job = id,
                files = files.len(),
                "asking about the interrupted run's import job"
            );
            let job = loop {
                let job = jobs.describe(&id).await.map_err(|e| {
                    e.context(format!(
                        "asking about import job {id}, submitted by the interrupted run for {} staged files (a server forgets finished jobs after `dataCoord.import.taskRetention`, 3 hours by default; then vmig cannot tell whether their rows were imported: start over with `vmig migrate --restart`)",
                        files.len()
                    ))
                })?;
                log_progress(&job);
                if job.state.finished() {
                    break job;
                }
                tokio::time::sleep(JOB_POLL).await;
            };
            if job.state == JobState::Completed {
                rows += self.confirm_job(&files, &job).await?;
            } else {
                tracing::warn!(
                    job = id,
                    reason = job.reason,
                    "the interrupted run's import job failed; submitting its files again"
                );
                for f in &files {
                    self.remove_marker(f).await?;
                }
            }
        }
        Ok(rows)
    }

    /// Checks a completed job's rows against the files it imported, then marks them imported.
    async fn confirm_job(&mut self, files: &[Staged], job: &ImportJob) -> Result<u64> {
        let want: u64 = files.iter().map(|f| f.rows).sum();
        let names = || {
            let names: Vec<String> = files.iter().map(Staged::label).collect();
            names.join(" ")
        };
        match job.imported_rows {
            _ if job.state != JobState::Completed => {
                return Err(Error::data(
                    names(),
                    format!(
                        "import job {} is {}, not Completed",
                        job.job_id, job.state_name
                    ),
                ))
            }
            Some(got) if got != want => {
                return Err(Error::data(
                    names(),
                    format!(
                        "import job {} ({}) imported {got} rows from files of {want} rows",
                        job.job_id, job.state_name
                    ),
                ))
            }
            Some(_) => {}
            // A figure the server does not give cannot be checked (Zilliz Cloud documents none
            // at the job level); its Completed state is taken, and the count left to `vmig verify`.
            None => tracing::warn!(
                job = job.job_id,
                files = files.len(),
                rows = want,
                "the import job completed without reporting how many rows it imported, so vmig could not check the count; run `vmig verify` after the migration"
            ),
        }
        for file in files {
            self.staged.retain(|f| f.unit != file.unit);
            self.imported.push(Imported {
                paths: file.paths.clone(),
                tasks: Vec::new(),
                job: Some(job.job_id.clone()),
                rows: file.rows,
            });
            self.clean_up_imported(file).await;
        }
        Ok(want)
    }

    /// After its import: removes an imported file (or, with `keep_staged`, only its marker);
    /// a failure is logged, not fatal (the rows are in Milvus and the record says so).
    async fn clean_up_imported(&self, file: &Staged) {
        let removed = if self.keep {
            self.remove_marker(file).await
        } else {
            self.remove_unit(file).await
        };
        if let Err(error) = removed {
            tracing::warn!(
                message = "Could not remove an imported staging file.",
                file = file.label(),
                %error
            );
        }
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
            return Err(gone(file));
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
        self.write_marker_holding(file, "").await
    }

    /// Writes the file's marker, durably, holding `content` (a REST job id, or nothing).
    async fn write_marker_holding(&self, file: &Staged, content: &str) -> Result<()> {
        match &self.remote {
            None => {
                let (dir, name) = (self.local_dir.clone(), format!("{}{MARKER}", file.unit));
                let content = content.as_bytes().to_vec();
                blocking(move || {
                    use std::io::Write as _;
                    let mut f = std::fs::File::create(dir.join(name))?;
                    f.write_all(&content)?;
                    f.sync_all()?;
                    std::fs::File::open(&dir)?.sync_all()?;
                    Ok(())
                })
                .await
            }
            Some((loc, _)) => {
                let path = loc.path.clone().join(format!("{}{MARKER}", file.unit));
                let payload = PutPayload::from(content.as_bytes().to_vec());
                loc.store.put(&path, payload).await?;
                Ok(())
            }
        }
    }

    /// What the file's marker holds (`None`: no marker).
    async fn read_marker(&self, file: &Staged) -> Result<Option<String>> {
        match &self.remote {
            None => {
                let path = self.local_dir.join(format!("{}{MARKER}", file.unit));
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::from(e).context(format!("reading {}", path.display()))),
                }
            }
            Some((loc, _)) => {
                let path = loc.path.clone().join(format!("{}{MARKER}", file.unit));
                match loc.store.get(&path).await {
                    Ok(r) => {
                        let b = r.bytes().await?;
                        Ok(Some(String::from_utf8_lossy(&b).trim().to_string()))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
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

/// The error of a staged file that is gone before its import.
fn gone(file: &Staged) -> Error {
    Error::data(
        file.label(),
        format!(
            "this staged file of the run is gone and Milvus has no completed import of it, so its {} rows cannot be imported; start over with `vmig migrate --restart`",
            file.rows
        ),
    )
}

/// Logs a REST import job's progress.
fn log_progress(job: &ImportJob) {
    tracing::info!(
        job = job.job_id,
        state = job.state_name,
        progress = job.progress,
        imported_rows = ?job.imported_rows,
        total_rows = job.total_rows,
        "import job progress"
    );
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
        job: None,
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

/// The REST path of bulk imports against a local stand-in of the import-jobs API, NOT a real
/// Milvus 2.4+ server: its answers are written from milvus.io's RESTful API v2 reference,
/// "Import (v2)" (Create Import Jobs: `{"code":0,"data":{"jobId":…}}`; Describe Import Job:
/// `data.state` Pending/Importing/Completed/Failed, `progress`, `importedRows`, `reason`).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;
    use vmig_milvus::rest::{ImportApi, RestOptions};
    use vmig_testing::http_stub::{HttpStub, Recorded};

    use super::*;
    use crate::WriteMode;

    fn config(stage: &Path) -> Milvus2SinkConfig {
        let mut c = Milvus2SinkConfig::new("http://127.0.0.1:1");
        c.mode = WriteMode::Bulk;
        c.stage = Some(stage.display().to_string());
        c
    }

    fn jobs(stub: &HttpStub) -> ImportJobs {
        ImportJobs::new(&RestOptions {
            base: stub.url.clone(),
            base_option: "rest_uri".into(),
            token: Some("root:Milvus".into()),
            request_timeout_secs: 10,
            ca_cert: None,
            retry: RetryConfig {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                max_elapsed: Duration::from_secs(5),
            },
            api: ImportApi::Milvus { db: None },
        })
        .unwrap()
    }

    /// Stages `rounds` times a file of 10 rows for each of `partitions`.
    async fn staged(
        config: &Milvus2SinkConfig,
        rounds: usize,
        partitions: &[Option<&str>],
    ) -> BulkStaging {
        let mut stage = BulkStaging::start(config, "docs").unwrap();
        let mut id = 0;
        for _ in 0..rounds {
            for p in partitions {
                let batch = vmig_testing::gen::sample_batch(3, id, 10, 4);
                id += 10;
                stage.write(batch, p.map(str::to_string)).await.unwrap();
            }
            stage.stage_open_files().await.unwrap();
        }
        stage
    }

    /// Rows of every staged file, by its path.
    fn rows_by_path(stage: &BulkStaging) -> HashMap<String, u64> {
        stage
            .record()
            .staged
            .iter()
            .map(|f| (f.paths[0].clone(), f.rows))
            .collect()
    }

    fn describe(id: &str, state: &str, rows: u64, reason: &str) -> String {
        json!({"code": 0, "data": {
            "jobId": id, "collectionName": "docs", "state": state,
            "progress": if state == "Completed" { 100 } else { 40 },
            "reason": reason, "importedRows": rows, "totalRows": rows, "details": []
        }})
        .to_string()
    }

    /// Resumes `record` and imports its staged files through `stub`'s jobs, into `docs`.
    async fn resume_and_import(
        config: &Milvus2SinkConfig,
        record: BulkRecord,
        stub: &HttpStub,
    ) -> (BulkStaging, u64) {
        let mut stage = BulkStaging::resume(config, record, now_secs())
            .await
            .unwrap();
        let rows = stage
            .import_staged_rest(&jobs(stub), "docs", 1024)
            .await
            .unwrap();
        (stage, rows)
    }

    /// Whether every file `stage` imported was imported by job `job`.
    fn all_imported_by(stage: &BulkStaging, job: &str) -> bool {
        stage
            .record()
            .imported
            .iter()
            .all(|f| f.job.as_deref() == Some(job))
    }

    /// The completing import-jobs stand-in, counting the rows `rows` gives each file.
    async fn completing_stub(rows: HashMap<String, u64>) -> HttpStub {
        vmig_testing::http_stub::completing_import_jobs(move |path| rows[path]).await
    }

    fn created_files(stub: &HttpStub) -> Vec<(Option<String>, Vec<String>)> {
        stub.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/create"))
            .map(|r| {
                let files = r.body["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| {
                        assert_eq!(g.as_array().unwrap().len(), 1, "one Parquet file per group");
                        g[0].as_str().unwrap().to_string()
                    })
                    .collect();
                (r.body["partitionName"].as_str().map(str::to_string), files)
            })
            .collect()
    }

    #[tokio::test]
    async fn every_staged_file_is_sent_once_in_jobs_of_at_most_max_files_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut stage = staged(&config, 3, &[Some("p1"), None]).await;
        let rows = rows_by_path(&stage);
        let partition_of: HashMap<String, Option<String>> = stage
            .record()
            .staged
            .iter()
            .map(|f| (f.paths[0].clone(), f.partition.clone()))
            .collect();
        assert_eq!(rows.len(), 6);
        let stub = completing_stub(rows.clone()).await;
        let imported = stage
            .import_staged_rest(&jobs(&stub), "docs", 2)
            .await
            .unwrap();
        assert_eq!(imported, 60);
        assert_eq!(stage.waiting(), (0, 0));
        let created = created_files(&stub);
        // Oldest staged file first (each staging finishes the default partition's file before
        // p1's): two of the default partition, two of p1, then the third of each.
        let sizes: Vec<(Option<String>, usize)> =
            created.iter().map(|(p, f)| (p.clone(), f.len())).collect();
        let p1 = Some("p1".to_string());
        assert_eq!(sizes, vec![(None, 2), (p1.clone(), 2), (None, 1), (p1, 1)]);
        let mut sent: Vec<String> = Vec::new();
        for (partition, files) in &created {
            for f in files {
                assert_eq!(
                    &partition_of[f], partition,
                    "{f} sent with the wrong partition"
                );
            }
            sent.extend(files.iter().cloned());
        }
        let mut want: Vec<String> = rows.keys().cloned().collect();
        sent.sort();
        want.sort();
        assert_eq!(sent, want, "every staged file exactly once");
        // Imported in the record with their job, and removed from the stage.
        let record = stage.record();
        assert_eq!(record.imported.len(), 6);
        assert!(record
            .imported
            .iter()
            .all(|f| f.job.is_some() && f.tasks.is_empty()));
        assert!(want.iter().all(|p| !Path::new(p).exists()));
        let left: Vec<_> = std::fs::read_dir(dir.path().join(&record.run))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_refused_create_leaves_the_files_staged_without_markers() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut stage = staged(&config, 1, &[None]).await;
        let stub = HttpStub::start(|_, _| {
            let body = json!({"code": 1100, "message": "partition not found[partition=p9]"});
            (200, body.to_string())
        })
        .await;
        let err = stage
            .import_staged_rest(&jobs(&stub), "docs", 1024)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("answered code 1100: partition not found[partition=p9]"),
            "{err}"
        );
        assert_eq!(stage.waiting().0, 1);
        let file = &stage.record().staged[0];
        assert_eq!(stage.read_marker(file).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_create_without_an_answer_is_not_submitted_again_by_a_later_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut stage = staged(&config, 1, &[None]).await;
        // 503: transient, and the server may have created the job before failing to answer.
        let stub =
            HttpStub::start(|_, _| (503, json!({"code": 503, "message": "busy"}).to_string()))
                .await;
        let jobs = jobs(&stub);
        let err = stage
            .import_staged_rest(&jobs, "docs", 1024)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        let err = stage
            .import_staged_rest(&jobs, "docs", 1024)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("got no answer with the job's id"),
            "{err}"
        );
        assert_eq!(stub.requests().len(), 1, "create was sent once");
    }

    #[tokio::test]
    async fn a_failed_job_keeps_its_files_staged_and_reports_the_reason_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut stage = staged(&config, 2, &[None]).await;
        let reason = "failed to parse parquet file: schema mismatch, field 'vec' dim 4 != 8";
        let stub = HttpStub::start(move |req: &Recorded, _| {
            if req.path.ends_with("/create") {
                (
                    200,
                    json!({"code": 0, "data": {"jobId": "job-0"}}).to_string(),
                )
            } else {
                (200, describe("job-0", "Failed", 0, reason))
            }
        })
        .await;
        let err = stage
            .import_staged_rest(&jobs(&stub), "docs", 1024)
            .await
            .unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "Milvus import failed: import job job-0 failed: {reason}"
            )),
            "{err}"
        );
        assert_eq!(stage.waiting().0, 2);
        // The markers hold the job's id, for a resumed run to ask about.
        for f in &stage.record().staged {
            assert_eq!(
                stage.read_marker(f).await.unwrap().as_deref(),
                Some("job-0")
            );
        }
    }

    /// A record taken before the interrupted run's last import: its files staged, and (written
    /// after the record) their markers naming `job`.
    async fn interrupted(
        dir: &Path,
        job: &str,
    ) -> (Milvus2SinkConfig, BulkRecord, HashMap<String, u64>) {
        let config = config(dir);
        let stage = staged(&config, 3, &[None]).await;
        for f in &stage.record().staged {
            stage.write_marker_holding(f, job).await.unwrap();
        }
        (config.clone(), stage.record(), rows_by_path(&stage))
    }

    #[tokio::test]
    async fn a_resumed_run_asks_about_the_job_its_markers_name_instead_of_resubmitting() {
        let dir = tempfile::tempdir().unwrap();
        let (config, record, rows) = interrupted(dir.path(), "448761313698322011").await;
        let total: u64 = rows.values().sum();
        let stub = HttpStub::start(move |req: &Recorded, _| {
            if req.path.ends_with("/create") {
                (
                    500,
                    json!({"code": 500, "message": "must not be called"}).to_string(),
                )
            } else {
                (200, describe("448761313698322011", "Completed", total, ""))
            }
        })
        .await;
        let (stage, imported) = resume_and_import(&config, record, &stub).await;
        assert_eq!(imported, total);
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 1, "one describe, no create");
        assert_eq!(reqs[0].path, "/v2/vectordb/jobs/import/get_progress");
        assert_eq!(reqs[0].body, json!({"jobId": "448761313698322011"}));
        assert_eq!(stage.waiting(), (0, 0));
        assert!(all_imported_by(&stage, "448761313698322011"));
    }

    #[tokio::test]
    async fn a_failed_job_of_the_interrupted_run_is_submitted_again() {
        let dir = tempfile::tempdir().unwrap();
        let (config, record, rows) = interrupted(dir.path(), "job-old").await;
        let stub = {
            let rows = rows.clone();
            HttpStub::start(move |req: &Recorded, before| {
                if req.path.ends_with("/create") {
                    return (
                        200,
                        json!({"code": 0, "data": {"jobId": "job-new"}}).to_string(),
                    );
                }
                if req.body["jobId"] == "job-old" {
                    return (200, describe("job-old", "Failed", 0, "disk quota exceeded"));
                }
                let create = before.iter().find(|r| r.path.ends_with("/create")).unwrap();
                let sum = create.body["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| rows[g[0].as_str().unwrap()])
                    .sum();
                (200, describe("job-new", "Completed", sum, ""))
            })
            .await
        };
        let (stage, imported) = resume_and_import(&config, record, &stub).await;
        assert_eq!(imported, rows.values().sum::<u64>());
        // The old job was asked about first, then the files submitted again.
        let first = &stub.requests()[0];
        assert_eq!(
            (first.path.as_str(), &first.body),
            (
                "/v2/vectordb/jobs/import/get_progress",
                &json!({"jobId": "job-old"})
            )
        );
        let created = created_files(&stub);
        assert_eq!(created.len(), 1);
        let mut sent = created[0].1.clone();
        let mut want: Vec<String> = rows.keys().cloned().collect();
        sent.sort();
        want.sort();
        assert_eq!(sent, want);
        assert!(all_imported_by(&stage, "job-new"));
    }

    #[tokio::test]
    async fn a_marker_without_a_job_id_is_refused_rather_than_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let (config, record, _) = interrupted(dir.path(), "").await;
        let stub = HttpStub::start(|_, _| (500, "{}".into())).await;
        let mut stage = BulkStaging::resume(&config, record, now_secs())
            .await
            .unwrap();
        let err = stage
            .import_staged_rest(&jobs(&stub), "docs", 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("an earlier attempt (of this run or of the interrupted one) submitted an import job of this staged file and got no answer with the job's id, so vmig cannot tell whether its 10 rows are in `docs`"),
            "{err}"
        );
        assert!(stub.requests().is_empty());
    }
}
