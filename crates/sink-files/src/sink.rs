//! The runtime `files` sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use vmig_core::store::StoreLocation;
use vmig_core::vector;
use vmig_core::{AbortReport, CommitReport, Error, FlushReport, Result, ResultExt, Sink};
use vmig_formats::staging::{check_schema, StagingFormat, StagingOptions, StagingWriter};

use crate::guard::{self, LockInfo, Previous, LOCK};
use crate::remote::Remote;
use crate::{local, FilesSinkConfig};

pub(crate) const PLUGIN: &str = "files";
pub(crate) const MANIFEST: &str = "manifest.json";
/// Files up to this size are uploaded with one PUT, larger ones in parts.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// Multipart part size and read buffer.
const PART_SIZE: usize = 16 << 20;
/// Parts in flight during a multipart upload.
const UPLOAD_CONCURRENCY: usize = 4;

/// Writes Milvus bulk-import staging files; built from [`FilesSinkConfig`].
#[derive(Debug)]
pub struct FilesSink {
    target: StoreLocation,
    overwrite: bool,
    /// This run's id: its files live in `<target>/.vmig-<run_id>/` until commit.
    run_id: String,
    /// The blocking side; `None` only while a blocking task runs (or after it panicked).
    core: Option<Core>,
    /// Holds the local staging directory for remote targets.
    staging_dir: Option<tempfile::TempDir>,
    prepared: Option<SchemaRef>,
    /// Whether `prepare` created the local target directory.
    created_dir: bool,
    state: State,
    /// The earlier vmig output this run replaces at commit (`overwrite = true`).
    previous: Option<Previous>,
    /// What `prepare` did about a stale lock of a dead run, for the abort report.
    recovered: Option<String>,
    units: Vec<Unit>,
    rows_since_flush: u64,
    bytes_since_flush: u64,
}

/// Where the run stands with respect to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Holds nothing in the target (not prepared, or `prepare` failed).
    Idle,
    /// Holds the lock and its run directory.
    Writing,
    /// The new manifest is staged: an interrupted commit is completed, never undone.
    Committing,
    /// Committed or aborted.
    Done,
}

/// A finished import unit in the target.
#[derive(Debug, Clone, Serialize)]
struct Unit {
    /// `part-00000.parquet`, or `part-00000` for NumPy, relative to the target (under
    /// `<partition>/` for a named target partition).
    path: String,
    /// The target partition the rows belong in, when the source named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<String>,
    /// Files relative to the target (the unit itself, or each `.npy`).
    files: Vec<String>,
    rows: u64,
    bytes: u64,
}

/// A unit that was just finished: renamed into the run directory (local) or waiting for
/// upload (remote).
#[derive(Debug)]
struct Closed {
    unit: Unit,
    /// Where each of `unit.files` is on the local disk now.
    local_files: Vec<PathBuf>,
    /// The local file or directory of the unit.
    local_path: PathBuf,
}

/// Everything the blocking encoder needs; moved into `spawn_blocking` and back.
#[derive(Debug)]
struct Core {
    format: StagingFormat,
    max_file_size: u64,
    options: StagingOptions,
    schema: Option<SchemaRef>,
    /// The run directory of a local target, or the local staging directory of a remote one.
    work_dir: PathBuf,
    /// Local target: finished units are renamed to their final names in `work_dir`.
    local: bool,
    /// The open unit of each target partition (`None`: no named partition), with its index.
    current: BTreeMap<Option<String>, (StagingWriter, u32)>,
    /// The next unit index of each target partition (each folder counts from 0).
    next_index: BTreeMap<Option<String>, u32>,
    /// Units finished by the blocking side and not yet taken by [`FilesSink::publish`].
    closed: Vec<Closed>,
}

/// Runs blocking file-system work off the async runtime.
async fn blocking_io<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::External(format!("a file-system task failed: {e}").into()))?
}

/// Removes this run's run directory and lock from a local target, then the target itself when
/// this run created it and it is empty. Returns whether the target was removed.
fn release_local(dir: &Path, run: &str, created: bool) -> Result<bool> {
    local::remove_all(&dir.join(guard::run_dir(run)))?;
    local::unlock(dir, run)?;
    if created && std::fs::read_dir(dir)?.next().is_none() {
        std::fs::remove_dir(dir).context_with(|| format!("removing {}", dir.display()))?;
        return Ok(true);
    }
    Ok(false)
}

/// The previous output as found, or the refusal when `overwrite` is off.
fn admit(previous: Option<Previous>, overwrite: bool, display: &str) -> Result<Option<Previous>> {
    match previous {
        Some(p) if !overwrite => Err(p.refusal(display)),
        other => Ok(other),
    }
}

impl FilesSink {
    /// A sink writing to `target` as `config` says. Does no I/O.
    pub fn new(config: &FilesSinkConfig, target: StoreLocation) -> FilesSink {
        let local = target.local.is_some();
        FilesSink {
            overwrite: config.overwrite,
            run_id: vmig_core::ids::new_run_id(),
            core: Some(Core {
                format: config.format,
                max_file_size: config.max_file_size.bytes(),
                options: config.staging_options(),
                schema: None,
                work_dir: target.local.clone().unwrap_or_default(),
                local,
                current: BTreeMap::new(),
                next_index: BTreeMap::new(),
                closed: Vec::new(),
            }),
            target,
            staging_dir: None,
            prepared: None,
            created_dir: false,
            state: State::Idle,
            previous: None,
            recovered: None,
            units: Vec::new(),
            rows_since_flush: 0,
            bytes_since_flush: 0,
        }
    }

    fn format(&self) -> Result<StagingFormat> {
        Ok(self.core()?.format)
    }

    fn core(&self) -> Result<&Core> {
        self.core.as_ref().ok_or_else(lost_core)
    }

    fn remote(&self) -> Remote<'_> {
        Remote {
            store: &self.target.store,
            root: &self.target.path,
            display: &self.target.display,
        }
    }

    /// Runs `f` on the core in `spawn_blocking` and puts the core back.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Core) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut core = self.core.take().ok_or_else(lost_core)?;
        let (core, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut core);
            (core, result)
        })
        .await
        .map_err(|e| Error::External(format!("the file encoder failed: {e}").into()))?;
        self.core = Some(core);
        result
    }

    /// Makes closed units part of the run: uploads them into the run prefix for remote
    /// targets (local ones are in the run directory already), then records them. After a
    /// failure they are dropped: they are in the run directory (or local staging directory),
    /// which goes away on abort.
    async fn publish(&mut self, result: Result<()>) -> Result<()> {
        let closed = self
            .core
            .as_mut()
            .map(|c| std::mem::take(&mut c.closed))
            .unwrap_or_default();
        result?;
        let run_dir = guard::run_dir(&self.run_id);
        for c in closed {
            if !self.core()?.local {
                for (relative, local) in c.unit.files.iter().zip(&c.local_files) {
                    let dest = self.remote().key(&format!("{run_dir}/{relative}"));
                    upload(&self.target.store, local, &dest)
                        .await
                        .context_with(|| {
                            format!("uploading {relative} to {}", self.target.display)
                        })?;
                }
                remove_path(&c.local_path).await?;
            }
            tracing::debug!(
                message = "Wrote a staging file.",
                file = %c.unit.path,
                rows = c.unit.rows,
                bytes = c.unit.bytes
            );
            self.bytes_since_flush += c.unit.bytes;
            self.units.push(c.unit);
        }
        Ok(())
    }

    /// Takes the lock, deals with a dead run's leftovers, checks what the target holds and
    /// creates the run directory (local) or staging directory (remote). Creates nothing when it
    /// fails.
    async fn claim(&mut self) -> Result<()> {
        let me = LockInfo::mine(&self.run_id);
        let run = self.run_id.clone();
        let display = self.target.display.clone();
        let overwrite = self.overwrite;
        match self.target.local.clone() {
            Some(dir) => {
                let existed = tokio::fs::try_exists(&dir).await.unwrap_or(false);
                tokio::fs::create_dir_all(&dir)
                    .await
                    .context_with(|| format!("creating {}", dir.display()))?;
                let work = dir.join(guard::run_dir(&run));
                let claim_dir = dir.clone();
                let claimed = blocking_io(move || {
                    let dir = claim_dir;
                    let recovered = local::lock(&dir, &me, &display)?;
                    let previous = local::inspect(&dir, &run, &display)
                        .and_then(|p| admit(p, overwrite, &display))
                        .and_then(|p| {
                            std::fs::create_dir(dir.join(guard::run_dir(&run))).context_with(
                                || format!("creating {display}/{}", guard::run_dir(&run)),
                            )?;
                            sync_dir(&dir);
                            Ok(p)
                        });
                    if previous.is_err() {
                        let _ = release_local(&dir, &run, !existed);
                    }
                    Ok((recovered, previous))
                })
                .await;
                let previous = claimed.and_then(|(recovered, previous)| {
                    self.recovered = recovered;
                    previous
                });
                let previous = match previous {
                    Ok(p) => p,
                    Err(e) => {
                        if !existed {
                            let _ = tokio::fs::remove_dir(&dir).await;
                        }
                        return Err(e);
                    }
                };
                self.created_dir = !existed;
                self.previous = previous;
                if let Some(core) = self.core.as_mut() {
                    core.work_dir = work;
                }
            }
            None => {
                let locked = self.remote().lock(&me).await?;
                self.recovered.clone_from(&locked.note);
                if locked.best_effort {
                    tracing::warn!(
                        message = "The object store cannot create an object only if absent; the lock is best-effort (for S3, set `aws_conditional_put = \"etag\"` in `storage` where the store supports it).",
                        target = %self.target.display
                    );
                }
                let previous = self
                    .remote()
                    .inspect(&run)
                    .await
                    .and_then(|p| admit(p, overwrite, &display));
                let staging = previous.and_then(|p| {
                    let tmp = tempfile::Builder::new()
                        .prefix("vmig-files-")
                        .tempdir()
                        .context_with(|| "creating a local staging directory".to_string())?;
                    Ok((p, tmp))
                });
                let (previous, tmp) = match staging {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = self.remote().unlock(&run).await;
                        return Err(e);
                    }
                };
                self.previous = previous;
                if let Some(core) = self.core.as_mut() {
                    core.work_dir = tmp.path().to_path_buf();
                }
                self.staging_dir = Some(tmp);
            }
        }
        self.state = State::Writing;
        Ok(())
    }

    /// Removes everything of this run from the target (while writing).
    async fn release(&mut self) -> Result<bool> {
        if self.state != State::Writing {
            return Ok(false);
        }
        let removed = match self.target.local.clone() {
            Some(dir) => {
                let (run, created) = (self.run_id.clone(), self.created_dir);
                blocking_io(move || release_local(&dir, &run, created)).await?
            }
            None => {
                self.remote().discard(&self.run_id).await?;
                self.remote().unlock(&self.run_id).await?;
                false
            }
        };
        self.state = State::Done;
        Ok(removed)
    }

    fn manifest(&self, schema: &SchemaRef, format: StagingFormat) -> Manifest {
        let fields = schema
            .fields()
            .iter()
            .map(|f| ManifestField {
                name: f.name().clone(),
                arrow_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
                milvus_type: vector::milvus_type(f),
                dim: vector::vector_info(f).map(|v| v.dim),
            })
            .collect();
        let meta = schema.metadata();
        Manifest {
            vmig_manifest: 1,
            run_id: self.run_id.clone(),
            format: format.as_str(),
            total_rows: self.units.iter().map(|u| u.rows).sum(),
            total_bytes: self.units.iter().map(|u| u.bytes).sum(),
            schema: ManifestSchema {
                fields,
                primary_key: meta.get(vector::META_PRIMARY_KEY).cloned(),
                metric: meta.get(vector::META_METRIC).cloned(),
                collection: meta.get(vector::META_COLLECTION).cloned(),
                metadata: meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            files: self.units.clone(),
        }
    }

    /// Writes the new manifest into the run directory (prefix): from then on the commit is
    /// completed, by this run or, after a crash, by the next one.
    async fn stage_manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let mut body =
            serde_json::to_vec_pretty(manifest).map_err(|e| Error::External(Box::new(e)))?;
        body.push(b'\n');
        let run_dir = guard::run_dir(&self.run_id);
        match &self.target.local {
            Some(dir) => {
                let dir = dir.join(&run_dir);
                blocking_io(move || -> Result<()> {
                    let tmp = dir.join(format!(".{MANIFEST}.tmp"));
                    std::fs::write(&tmp, &body)?;
                    std::fs::File::open(&tmp)?.sync_all()?;
                    std::fs::rename(&tmp, dir.join(MANIFEST))?;
                    sync_dir(&dir);
                    Ok(())
                })
                .await
                .context_with(|| format!("writing {}/{run_dir}/{MANIFEST}", self.target.display))
            }
            None => {
                self.remote()
                    .stage_manifest(&self.run_id, self.previous.is_some(), body)
                    .await
            }
        }
    }

    /// Everything of a commit before the swap: the last flush, the check that no new file
    /// goes over one the previous manifest does not list, and the staged manifest.
    async fn stage_commit(&mut self) -> Result<(Manifest, Vec<String>)> {
        self.flush().await?;
        let format = self.format()?;
        let schema = self
            .prepared
            .clone()
            .ok_or_else(|| Error::schema("the files sink was committed before `prepare`"))?;
        let manifest = self.manifest(&schema, format);
        let new_files: Vec<String> = self
            .units
            .iter()
            .flat_map(|u| u.files.iter().cloned())
            .collect();
        let taken = match self.target.local.clone() {
            Some(dir) => {
                let (files, previous) = (new_files.clone(), self.previous.clone());
                blocking_io(move || Ok(local::conflicts(&dir, &files, previous.as_ref()))).await?
            }
            None => {
                self.remote()
                    .conflicts(&new_files, self.previous.as_ref())
                    .await?
            }
        };
        if !taken.is_empty() {
            return Err(guard::conflict_refusal(&self.target.display, &taken));
        }
        self.stage_manifest(&manifest).await?;
        Ok((manifest, new_files))
    }

    /// The swap: the previous output goes, the new one takes its place (see
    /// [`local::finish_commit`] and [`Remote::finish_commit`]).
    async fn finish_commit(&self) -> Result<()> {
        match self.target.local.clone() {
            Some(dir) => {
                let (run, display) = (self.run_id.clone(), self.target.display.clone());
                blocking_io(move || {
                    local::finish_commit(&dir, &run, &display)?;
                    local::unlock(&dir, &run)
                })
                .await
            }
            None => {
                self.remote().finish_commit(&self.run_id).await?;
                self.remote().unlock(&self.run_id).await
            }
        }
    }

    /// What an interrupted commit left, and that the next run completes it.
    fn interrupted(&self, error: Error) -> Error {
        let display = &self.target.display;
        let run_dir = guard::run_dir(&self.run_id);
        let (new_at, old_at) = match self.target.local {
            Some(_) => (
                format!("{display}/{run_dir}/"),
                format!("{display}/{}/", guard::old_dir(&self.run_id)),
            ),
            None => (
                format!("{display}/{run_dir}/"),
                format!("{display}/{run_dir}/{}", guard::OLD_MANIFEST),
            ),
        };
        error.context(format!(
            "committing into {display} stopped half-way: the new files not yet in place are in {new_at}, what is left of the previous output is in place or listed in {old_at}; {display}/{LOCK} stays, and the next vmig run into {display} on this machine completes this commit (nothing is lost)"
        ))
    }

    /// Local path or object key of a target-relative path, for reports.
    fn display_path(&self, relative: &str) -> String {
        match &self.target.local {
            Some(dir) => dir.join(relative).to_string_lossy().into_owned(),
            None => self.remote().key(relative).to_string(),
        }
    }
}

fn lost_core() -> Error {
    Error::External("the files sink is unusable after a failed write; abort it".into())
}

#[async_trait::async_trait]
impl Sink for FilesSink {
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        if let Some(prepared) = &self.prepared {
            if prepared.fields() == schema.fields() {
                return Ok(());
            }
            return Err(Error::schema(
                "the files sink was already prepared for another schema",
            ));
        }
        let format = self.format()?;
        check_schema(format, schema)
            .map_err(|e| e.context(format!("writing {format} files to {}", self.target.display)))?;
        self.claim().await?;
        if let Some(core) = self.core.as_mut() {
            core.schema = Some(schema.clone());
        }
        self.prepared = Some(schema.clone());
        Ok(())
    }

    /// Rows of a named target partition go to `<path>/<partition>/part-NNNNN…`.
    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        if let Some(p) = partition {
            check_partition_name(p)?;
        }
        let partition = partition.map(str::to_string);
        if self.prepared.is_none() {
            return Err(Error::schema(
                "the files sink was written to before `prepare`",
            ));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let written = self
            .blocking(move |core| core.write(&batch, partition))
            .await;
        if written.is_ok() {
            self.rows_since_flush += rows;
        }
        self.publish(written).await
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        let closed = self.blocking(|core| core.close_all()).await;
        self.publish(closed).await?;
        let report = FlushReport::new(self.rows_since_flush, self.bytes_since_flush);
        self.rows_since_flush = 0;
        self.bytes_since_flush = 0;
        Ok(report)
    }

    async fn commit(mut self: Box<Self>) -> Result<CommitReport> {
        let (manifest, new_files) = match self.stage_commit().await {
            Ok(staged) => staged,
            Err(e) => {
                // Not committing yet: this run's files and lock go, the target is as before.
                if let Err(error) = self.release().await {
                    tracing::warn!(message = "Removing this run's files failed.", %error);
                }
                return Err(e);
            }
        };
        self.state = State::Committing;
        if let Err(e) = self.finish_commit().await {
            return Err(self.interrupted(e));
        }
        self.state = State::Done;
        let files = new_files.iter().map(|f| self.display_path(f)).collect();
        tracing::info!(
            message = "Wrote staging files.",
            target = %self.target.display,
            units = self.units.len(),
            rows = manifest.total_rows,
            replaced = self.previous.as_ref().map_or(0, |p| p.files.len())
        );
        Ok(CommitReport::new(
            self.target.display.clone(),
            manifest.total_rows,
            manifest.total_bytes,
            files,
        ))
    }

    async fn abort(mut self: Box<Self>) -> Result<AbortReport> {
        let mut report = AbortReport::default();
        if let Some(note) = &self.recovered {
            report.push(format!("Before writing, this run {note}."));
        }
        if self.core.is_some() {
            if let Err(e) = self.blocking(|core| core.discard_all()).await {
                tracing::warn!(message = "Discarding an open file failed.", error = %e);
            }
        }
        let display = self.target.display.clone();
        if self.state != State::Writing {
            report.push(format!("Nothing of this run was written to {display}."));
            return Ok(report);
        }
        let removed = self.release().await.map_err(|e| {
            e.context(format!(
                "removing this run's files ({display}/{}) and lock",
                guard::run_dir(&self.run_id)
            ))
        })?;
        report.push(match (&self.previous, removed, self.created_dir) {
            (_, true, _) => format!("{display} was created empty by this run and removed."),
            (Some(p), _, _) => format!(
                "Nothing of this run remains in {display}; its previous output ({}) is untouched.",
                p.summary()
            ),
            (None, false, true) => format!(
                "Nothing of this run remains in {display}; this run created it, and it stays because something else was put there since."
            ),
            (None, false, false) if self.target.local.is_some() => {
                format!("Nothing of this run remains in {display}, which is empty as before.")
            }
            (None, false, false) => format!(
                "Nothing of this run remains in {display}, which holds no objects, as before."
            ),
        });
        Ok(report)
    }
}

impl Drop for FilesSink {
    fn drop(&mut self) {
        // A sink dropped without commit/abort leaves no temporary file behind.
        if let Some(core) = self.core.as_mut() {
            let _ = core.discard_all();
        }
        if self.state != State::Writing {
            return;
        }
        match &self.target.local {
            Some(dir) => {
                if let Err(error) = release_local(dir, &self.run_id, self.created_dir) {
                    tracing::warn!(message = "Removing this run's files failed.", %error);
                }
            }
            None => tracing::warn!(
                message = "The files sink was dropped without commit or abort; its lock and run prefix stay until the next run on this machine takes them over.",
                target = %self.target.display,
                run = %self.run_id
            ),
        }
    }
}

impl Core {
    fn unit_name(&self, index: u32) -> String {
        match self.format.extension() {
            Some(ext) => format!("part-{index:05}.{ext}"),
            None => format!("part-{index:05}"),
        }
    }

    /// The folder of `partition` below the work directory, created if needed.
    fn dir_of(&mut self, partition: Option<&str>) -> Result<PathBuf> {
        let Some(p) = partition else {
            return Ok(self.work_dir.clone());
        };
        let dir = self.work_dir.join(p);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).context_with(|| format!("creating {}", dir.display()))?;
        }
        Ok(dir)
    }

    fn open(&mut self, partition: &Option<String>) -> Result<()> {
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| Error::schema("the files sink was written to before `prepare`"))?;
        let next = self.next_index.entry(partition.clone()).or_insert(0);
        let index = *next;
        *next += 1;
        let name = self.unit_name(index);
        let dir = self.dir_of(partition.as_deref())?;
        let path = if self.local {
            dir.join(format!(".{name}.tmp"))
        } else {
            dir.join(&name)
        };
        let writer = StagingWriter::create(self.format, &path, &schema, &self.options)?;
        self.current.insert(partition.clone(), (writer, index));
        Ok(())
    }

    /// Appends `batch` to the unit of `partition`, closing and starting units so none exceeds
    /// `max_file_size`.
    fn write(&mut self, batch: &RecordBatch, partition: Option<String>) -> Result<()> {
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            if !self.current.contains_key(&partition) {
                self.open(&partition)?;
            }
            let Some((writer, _)) = self.current.get_mut(&partition) else {
                return Err(lost_core());
            };
            let rest = batch.slice(offset, n - offset);
            let taken = writer.write_within(&rest, self.max_file_size)?;
            offset += taken;
            if offset < n {
                if writer.rows() == 0 {
                    if let Some((empty, _)) = self.current.remove(&partition) {
                        empty.discard()?;
                    }
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "a single row (row {offset} of a batch) does not fit in a {} file of max_file_size = {} bytes; raise `max_file_size`",
                            self.format, self.max_file_size
                        ),
                    ));
                }
                self.close(&partition)?;
            }
        }
        Ok(())
    }

    /// Finishes every open unit.
    fn close_all(&mut self) -> Result<()> {
        let open: Vec<Option<String>> = self.current.keys().cloned().collect();
        for partition in open {
            self.close(&partition)?;
        }
        Ok(())
    }

    /// Finishes the open unit of `partition`, if any, and (local targets) renames it into place.
    fn close(&mut self, partition: &Option<String>) -> Result<()> {
        let Some((writer, index)) = self.current.remove(partition) else {
            return Ok(());
        };
        let file_name = self.unit_name(index);
        let name = match partition {
            Some(p) => format!("{p}/{file_name}"),
            None => file_name.clone(),
        };
        let dir = self.dir_of(partition.as_deref())?;
        let temp = writer.path().to_path_buf();
        let finished = writer
            .finish()
            .context_with(|| format!("finishing {}", temp.display()))?;
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
        self.closed.push(Closed {
            unit: Unit {
                path: name,
                partition: partition.clone(),
                files,
                rows: finished.rows,
                bytes: finished.bytes,
            },
            local_files,
            local_path: final_path,
        });
        Ok(())
    }

    fn discard_all(&mut self) -> Result<()> {
        let mut first = Ok(());
        for (_, (w, _)) in std::mem::take(&mut self.current) {
            if let Err(e) = w.discard() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// A target partition name must be one plain folder name.
fn check_partition_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.len() > 255
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
        || is_vmig_name(name);
    if bad {
        return Err(Error::config(
            PLUGIN,
            format!(
                "target partition `{name}` cannot be used as a folder name (it must be non-empty, not start with `.`, not contain `/`, `\\`, `:` or control characters, and not look like a vmig output name)"
            ),
        ));
    }
    Ok(())
}

/// Best-effort `fsync` of a directory, so renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `manifest.json`, `part-00012.parquet`, `part-00012.json`, `part-00012` (NumPy) and the
/// temporary names of all of these.
fn is_vmig_name(name: &str) -> bool {
    if name == MANIFEST || name == format!(".{MANIFEST}.tmp") {
        return true;
    }
    if name.starts_with(".part-") && name.ends_with(".tmp") {
        return true;
    }
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let digits = rest.split('.').next().unwrap_or_default();
    let ext = &rest[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "" | ".parquet" | ".json")
}

async fn remove_path(path: &Path) -> Result<()> {
    let result = match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.context_with(|| format!("removing {}", path.display()))
}

/// Uploads a local file: one PUT when small, a multipart upload otherwise. Either way the object
/// appears only complete.
async fn upload(store: &Arc<dyn ObjectStore>, local: &Path, dest: &ObjectPath) -> Result<()> {
    let size = tokio::fs::metadata(local).await?.len();
    if size <= SINGLE_PUT_MAX {
        let data = tokio::fs::read(local).await?;
        store.put(dest, PutPayload::from(data)).await?;
        return Ok(());
    }
    let mut parts =
        WriteMultipart::new_with_chunk_size(store.put_multipart(dest).await?, PART_SIZE);
    let copied: Result<()> = async {
        let mut file = tokio::fs::File::open(local).await?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            parts.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
            parts.write(&buf[..n]);
        }
    }
    .await;
    match copied {
        Ok(()) => {
            parts.finish().await?;
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = parts.abort().await {
                tracing::warn!(message = "Aborting a multipart upload failed.", error = %abort);
            }
            Err(e)
        }
    }
}

#[derive(Debug, Serialize)]
struct Manifest {
    /// Version of this manifest layout.
    vmig_manifest: u32,
    /// The run that wrote it; a later run may replace exactly the files listed here.
    run_id: String,
    format: &'static str,
    schema: ManifestSchema,
    files: Vec<Unit>,
    total_rows: u64,
    total_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ManifestSchema {
    fields: Vec<ManifestField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct ManifestField {
    name: String,
    arrow_type: String,
    nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    milvus_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dim: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_vmig_names() {
        for yes in [
            "manifest.json",
            "part-00000.parquet",
            "part-00012.json",
            "part-00003",
            "part-123456.parquet",
            ".part-00000.parquet.tmp",
            ".part-00001.tmp",
            ".manifest.json.tmp",
        ] {
            assert!(is_vmig_name(yes), "{yes}");
        }
        for no in [
            "part-.parquet",
            "part-0a.json",
            "notes.txt",
            "part-00000.csv",
            "xpart-00000.json",
            "part-1.parquet.bak",
        ] {
            assert!(!is_vmig_name(no), "{no}");
        }
    }
}
