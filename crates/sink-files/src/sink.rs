//! The runtime `files` sink: the [`Sink`] contract over a local or object-store target — the
//! run's claim on the target (lock, run directory), publishing finished units, the commit swap
//! and abort. The blocking writer is [`crate::writer`], the manifest [`crate::manifest`],
//! overwrite detection [`crate::overwrite`].

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use vmig_core::store::{upload_file, StoreLocation};
use vmig_core::{AbortReport, CommitReport, Error, FlushReport, Result, ResultExt, Sink};
use vmig_formats::staging::{check_schema, StagingFormat};

use crate::guard::{self, LockInfo, Previous, LOCK};
use crate::local::sync_dir;
use crate::manifest::{Manifest, ManifestEntry, MANIFEST};
use crate::overwrite::{admit, check_partition_name, refuse_conflicts};
use crate::remote::Remote;
use crate::writer::{not_prepared, RunWriter};
use crate::{local, FilesSinkConfig};

/// The plugin's name, for messages.
pub(crate) const PLUGIN: &str = "files";

/// Writes Milvus bulk-import staging files; built from [`FilesSinkConfig`].
#[derive(Debug)]
pub struct FilesSink {
    target: StoreLocation,
    overwrite: bool,
    /// This run's id: its files live in `<target>/.vmig-<run_id>/` until commit.
    run_id: String,
    /// The blocking side; `None` only while a blocking task runs (or after it panicked).
    writer: Option<RunWriter>,
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
    /// The units published so far, as the manifest lists them.
    units: Vec<ManifestEntry>,
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

/// Runs blocking file-system work off the async runtime.
pub(crate) async fn blocking_io<T: Send + 'static>(
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

impl FilesSink {
    /// A sink writing to `target` as `config` says. Does no I/O.
    pub fn new(config: &FilesSinkConfig, target: StoreLocation) -> FilesSink {
        let local = target.local.is_some();
        FilesSink {
            overwrite: config.overwrite,
            run_id: vmig_core::ids::new_run_id(),
            writer: Some(RunWriter::new(
                config.format,
                config.max_file_size.bytes(),
                config.staging_options(),
                local,
            )),
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
        Ok(self.writer.as_ref().ok_or_else(lost_writer)?.format())
    }

    fn remote(&self) -> Remote<'_> {
        Remote::of(&self.target)
    }

    /// Runs `f` on the writer in `spawn_blocking` and puts the writer back.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut RunWriter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut writer = self.writer.take().ok_or_else(lost_writer)?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut writer);
            (writer, result)
        })
        .await
        .map_err(|e| Error::External(format!("the file encoder failed: {e}").into()))?;
        self.writer = Some(writer);
        result
    }

    /// Makes closed units part of the run: uploads them into the run prefix for remote
    /// targets (local ones are in the run directory already), then records them. After a
    /// failure they are dropped: they are in the run directory (or local staging directory),
    /// which goes away on abort.
    async fn publish(&mut self, result: Result<()>) -> Result<()> {
        let finished = self
            .writer
            .as_mut()
            .map(RunWriter::take_finished)
            .unwrap_or_default();
        result?;
        let run_dir = guard::run_dir(&self.run_id);
        for unit in finished {
            if self.target.local.is_none() {
                for (relative, local) in unit.entry.files.iter().zip(&unit.local_files) {
                    let dest = self.remote().key(&format!("{run_dir}/{relative}"));
                    upload_file(&self.target.store, local, &dest)
                        .await
                        .context_with(|| {
                            format!("uploading {relative} to {}", self.target.display)
                        })?;
                }
                remove_path(&unit.local_path).await?;
            }
            tracing::debug!(
                message = "Wrote a staging file.",
                file = %unit.entry.path,
                rows = unit.entry.rows,
                bytes = unit.entry.bytes
            );
            self.bytes_since_flush += unit.entry.bytes;
            self.units.push(unit.entry);
        }
        Ok(())
    }

    /// Takes the lock, deals with a dead run's leftovers, checks what the target holds and
    /// creates the run directory (local) or staging directory (remote), which it returns.
    /// Creates nothing when it fails.
    async fn claim(&mut self) -> Result<PathBuf> {
        let me = LockInfo::mine(&self.run_id);
        let run = self.run_id.clone();
        let display = self.target.display.clone();
        let overwrite = self.overwrite;
        let work_dir = match self.target.local.clone() {
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
                work
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
                let work = tmp.path().to_path_buf();
                self.staging_dir = Some(tmp);
                work
            }
        };
        self.state = State::Writing;
        Ok(work_dir)
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

    /// Writes the new manifest into the run directory (prefix): from then on the commit is
    /// completed, by this run or, after a crash, by the next one.
    async fn stage_manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let body = manifest.to_bytes()?;
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
        let manifest = Manifest::new(&self.run_id, &schema, format, &self.units);
        let new_files: Vec<String> = self
            .units
            .iter()
            .flat_map(|u| u.files.iter().cloned())
            .collect();
        refuse_conflicts(&self.target, &new_files, self.previous.as_ref()).await?;
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

fn lost_writer() -> Error {
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
        let work_dir = self.claim().await?;
        if let Some(writer) = self.writer.as_mut() {
            writer.start(schema.clone(), work_dir);
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
            return Err(not_prepared());
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let written = self
            .blocking(move |writer| writer.write(&batch, partition.as_deref()))
            .await;
        if written.is_ok() {
            self.rows_since_flush += rows;
        }
        self.publish(written).await
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        let finished = self.blocking(RunWriter::finish_all).await;
        self.publish(finished).await?;
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
        if self.writer.is_some() {
            if let Err(e) = self.blocking(RunWriter::discard_open).await {
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
        if let Some(writer) = self.writer.as_mut() {
            let _ = writer.discard_open();
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

async fn remove_path(path: &Path) -> Result<()> {
    let result = match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.context_with(|| format!("removing {}", path.display()))
}
