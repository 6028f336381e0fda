//! The runtime `files` sink: the [`Sink`] contract over a local or object-store target — the
//! run's claim on the target (lock, run directory), publishing finished units, the commit swap,
//! abort, and resuming an interrupted run (resume record, adoption, suspend). The blocking
//! writer is [`crate::writer`], the manifest [`crate::manifest`], overwrite detection
//! [`crate::overwrite`], the resume record [`crate::resume`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use vmig_core::store::{upload_file, StoreLocation};
use vmig_core::{AbortReport, CommitReport, Error, FlushReport, Result, ResultExt, Sink};
use vmig_formats::staging::{check_schema, StagingFormat};

use crate::guard::{self, LiveRun, LockInfo, LockState, Previous, LOCK};
use crate::local::{sync_dir, Adoption};
use crate::manifest::{Manifest, ManifestEntry, MANIFEST};
use crate::overwrite::{admit, check_partition_name, refuse_conflicts};
use crate::remote::Remote;
use crate::resume::{schema_id, RecordUnit, ResumeRecord};
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
    /// The units published so far, as the manifest lists them (a resumed run: the interrupted
    /// run's recorded units first).
    units: Vec<ManifestEntry>,
    rows_since_flush: u64,
    bytes_since_flush: u64,
    /// This run's registration in the process while it holds the lock ([`LiveRun`]).
    live: Option<LiveRun>,
    /// The lock as this run last wrote it, while it holds it.
    held: Option<LockInfo>,
    /// The number of the next unit of each folder, after the units published so far.
    next_unit: BTreeMap<Option<String>, u32>,
    /// How many of `units` the last successful flush made durable, and `next_unit` then: what
    /// [`Sink::resume_record`] reports.
    flushed_units: usize,
    flushed_next: BTreeMap<Option<String>, u32>,
    /// The hash of the prepared schema's fields ([`schema_id`]).
    schema_id: Option<String>,
    /// The record this run resumes from, once [`Sink::resume`] has read it.
    resumed: Option<ResumeRecord>,
    /// A flush made units durable and the lock does not say `flushed` yet: the next call marks
    /// it (see [`FilesSink::mark_flushed`]).
    mark_pending: bool,
    /// The manifest of a resumed run whose commit was complete ([`State::Finished`]).
    committed: Option<Previous>,
    /// This sink is one worker of a job shared between workers ([`Sink::create_shared`], or
    /// a shared record resumed): its units carry its worker tag, the lock and run directory
    /// belong to the job, and the worker that finishes the job lists every worker's units
    /// ([`Sink::commit_shared`]).
    shared: bool,
    /// A shared job whose manifest was found staged ([`State::Finished`]): the worker that
    /// finishes the job completes that commit.
    staged_commit: bool,
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
    /// Resumed a run whose commit was complete (or is now): its output is in place, nothing is
    /// left to write, and the lock is released.
    Finished,
    /// Committed, suspended or aborted.
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

/// The index of the unit at `path` (`[<partition>/]part-NNNNN[.ext]`).
fn unit_index(path: &str) -> Option<u32> {
    guard::unit_name(path.rsplit('/').next().unwrap_or(path)).map(|u| u.index)
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
            live: None,
            held: None,
            next_unit: BTreeMap::new(),
            flushed_units: 0,
            flushed_next: BTreeMap::new(),
            schema_id: None,
            resumed: None,
            mark_pending: false,
            committed: None,
            shared: false,
            staged_commit: false,
        }
    }

    /// Makes this sink a worker of a job shared between workers: a worker tag of its own in
    /// every unit name from now on (see [`crate::guard::unit_name`]).
    fn become_shared(&mut self) {
        self.shared = true;
        if let Some(writer) = self.writer.as_mut() {
            writer.set_tag(guard::new_tag());
        }
    }

    /// The units every worker of a shared job made durable, as their `records` and this
    /// worker's own flushed units list them, in path order; records of another run (an
    /// earlier run of the job) are left out.
    fn merge_units(&self, records: Vec<serde_json::Value>) -> Result<Vec<RecordUnit>> {
        let mut merged: BTreeMap<String, RecordUnit> = BTreeMap::new();
        let mut add = |unit: RecordUnit| -> Result<()> {
            match merged.get(&unit.path) {
                Some(seen) if *seen != unit => Err(Error::data(
                    guard::at(
                        &self.target.display,
                        &format!("{}/{}", guard::run_dir(&self.run_id), unit.path),
                    ),
                    "two workers' records list this unit with different rows or sizes; the state store was changed by something other than vmig: start the job over (`--restart`)",
                )),
                _ => {
                    merged.insert(unit.path.clone(), unit);
                    Ok(())
                }
            }
        };
        for value in records {
            let record = ResumeRecord::parse(value)?;
            if record.run_id != self.run_id || !record.shared {
                tracing::warn!(
                    message = "A worker's record names another run of the files sink; its units are not listed.",
                    run = %record.run_id,
                    this_run = %self.run_id
                );
                continue;
            }
            record.units.into_iter().try_for_each(&mut add)?;
        }
        self.units[..self.flushed_units]
            .iter()
            .map(RecordUnit::of)
            .try_for_each(&mut add)?;
        Ok(merged.into_values().collect())
    }

    /// Checks that every unit of `units` is in the run directory with its recorded size.
    async fn check_units(&self, units: &[RecordUnit]) -> Result<()> {
        match self.target.local.clone() {
            Some(dir) => {
                let (run, units, display) = (
                    self.run_id.clone(),
                    units.to_vec(),
                    self.target.display.clone(),
                );
                blocking_io(move || local::check_units(&dir, &run, &units, &display)).await
            }
            None => self
                .remote()
                .check_units(&self.run_id, units)
                .await
                .map(drop),
        }
    }

    /// The manifest in place, as the report of a commit completed here.
    async fn placed_report(&self) -> Result<CommitReport> {
        let placed = match self.target.local.clone() {
            Some(dir) => {
                let display = self.target.display.clone();
                blocking_io(move || local::read_manifest(&dir, MANIFEST, &display)).await?
            }
            None => self.remote().manifest(MANIFEST).await?,
        };
        let placed = placed.unwrap_or_default();
        let files = placed.files.iter().map(|f| self.display_path(f)).collect();
        Ok(CommitReport::new(
            self.target.display.clone(),
            placed.rows,
            placed.bytes,
            files,
        ))
    }

    /// Marks the lock `flushed` after a flush made units durable. Called at the start of the
    /// next `write`, `flush`, `commit` or `suspend`, which the runner makes only after it saved
    /// the checkpoint naming those units — so a run killed between its flush and that save
    /// (no checkpoint names its units) is not kept as resumable work, and one whose checkpoint
    /// names them is (but for the instant between that save and this mark).
    async fn mark_flushed(&mut self) -> Result<()> {
        if self.mark_pending {
            self.mark(|lock| lock.flushed = true).await?;
            self.mark_pending = false;
        }
        Ok(())
    }

    /// The format, after checking that it can hold every field of `schema` ([`Sink::check`]).
    fn check_format(&self, schema: &SchemaRef) -> Result<StagingFormat> {
        let format = self.format()?;
        check_schema(format, schema)
            .map_err(|e| e.context(format!("writing {format} files to {}", self.target.display)))?;
        Ok(format)
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
            if let Some(index) = unit_index(&unit.entry.path) {
                let next = self
                    .next_unit
                    .entry(unit.entry.partition.clone())
                    .or_insert(0);
                *next = (*next).max(index.saturating_add(1));
            }
            self.units.push(unit.entry);
        }
        Ok(())
    }

    /// Takes the lock, deals with a dead run's leftovers, checks what the target holds and
    /// creates the run directory (local) or staging directory (remote), which it returns.
    /// Creates nothing when it fails.
    async fn claim(&mut self) -> Result<PathBuf> {
        let me = LockInfo::mine(&self.run_id);
        self.held = Some(me.clone());
        self.live = Some(LiveRun::register(&self.run_id));
        let claimed = self.claim_as(me).await;
        if claimed.is_err() {
            self.held = None;
            self.live = None;
        }
        claimed
    }

    async fn claim_as(&mut self, me: LockInfo) -> Result<PathBuf> {
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
                            // Made with the lock ([`local::lock`]); here in case it is gone.
                            std::fs::create_dir_all(dir.join(guard::run_dir(&run))).context_with(
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
        self.held = None;
        self.live = None;
        Ok(removed)
    }

    /// Continues the run `record` names in this target ([`Sink::resume`]): adopts its lock and
    /// run directory, or finds its commit complete.
    async fn adopt(&mut self, record: &ResumeRecord) -> Result<()> {
        if record.shared {
            return self.join(record).await;
        }
        let (held, live, adoption) = match self.target.local.clone() {
            Some(dir) => {
                let (record, display) = (record.clone(), self.target.display.clone());
                blocking_io(move || local::adopt(&dir, &record, &display)).await?
            }
            None => self.remote().adopt(record).await?,
        };
        self.run_id.clone_from(&record.run_id);
        self.units = record.units.iter().map(|u| u.entry()).collect();
        let next = record.next_units();
        self.flushed_next.clone_from(&next);
        match adoption {
            Adoption::Staged => {
                return Err(Error::External(
                    "the files sink found a shared job's staged commit while resuming a run of one process"
                        .into(),
                ))
            }
            Adoption::Committed(manifest) => {
                self.committed = Some(manifest);
                tracing::info!(
                    message = "The interrupted run had staged its manifest; its commit is complete now and nothing is left to write.",
                    target = %self.target.display,
                    run = %record.run_id
                );
                self.state = State::Finished;
            }
            Adoption::Writing { removed } => {
                tracing::info!(
                    message = "Resuming an interrupted run.",
                    target = %self.target.display,
                    run = %record.run_id,
                    units = record.units.len(),
                    rows = record.rows(),
                    removed = ?removed
                );
                if let Some(writer) = self.writer.as_mut() {
                    writer.continue_numbering(next.clone());
                }
                self.next_unit = next;
                self.flushed_units = self.units.len();
                self.held = Some(held);
                self.live = Some(live);
                self.state = State::Writing;
            }
        }
        Ok(())
    }

    /// Joins the job shared between workers whose run `record` names: this worker writes its
    /// own tagged units into the job's run directory and holds nothing of the lock.
    async fn join(&mut self, record: &ResumeRecord) -> Result<()> {
        let adoption = match self.target.local.clone() {
            Some(dir) => {
                let (record, display) = (record.clone(), self.target.display.clone());
                blocking_io(move || local::join(&dir, &record, &display)).await?
            }
            None => self.remote().join(record).await?,
        };
        self.run_id.clone_from(&record.run_id);
        self.become_shared();
        match adoption {
            Adoption::Writing { .. } => {
                tracing::info!(
                    message = "Joined a job shared between workers.",
                    target = %self.target.display,
                    run = %record.run_id
                );
                self.state = State::Writing;
            }
            Adoption::Staged | Adoption::Committed(_) => {
                self.staged_commit = true;
                self.state = State::Finished;
            }
        }
        Ok(())
    }

    /// `prepare` of a resumed run: the previous output and `overwrite` are checked as for a new
    /// run, and the adopted run directory (local) or a new staging directory (remote) is
    /// returned. On failure the run keeps its lock and directory, for `suspend`.
    async fn reclaim(&mut self) -> Result<PathBuf> {
        let run = self.run_id.clone();
        let display = self.target.display.clone();
        let overwrite = self.overwrite;
        match self.target.local.clone() {
            Some(dir) => {
                let previous = blocking_io(move || {
                    let previous = local::inspect(&dir, &run, &display)
                        .and_then(|p| admit(p, overwrite, &display))?;
                    let work = dir.join(guard::run_dir(&run));
                    std::fs::create_dir_all(&work)
                        .context_with(|| format!("creating {}", work.display()))?;
                    Ok((previous, work))
                })
                .await;
                let (previous, work) = previous?;
                self.previous = previous;
                Ok(work)
            }
            None => {
                let previous = self
                    .remote()
                    .inspect(&run)
                    .await
                    .and_then(|p| admit(p, overwrite, &display))?;
                let tmp = tempfile::Builder::new()
                    .prefix("vmig-files-")
                    .tempdir()
                    .context_with(|| "creating a local staging directory".to_string())?;
                self.previous = previous;
                let work = tmp.path().to_path_buf();
                self.staging_dir = Some(tmp);
                Ok(work)
            }
        }
    }

    /// Rewrites this run's lock as `change` makes it (see [`local::mark`], [`Remote::mark`]).
    async fn mark(&mut self, change: impl FnOnce(&mut LockInfo)) -> Result<()> {
        let Some(held) = self.held.clone() else {
            return Ok(());
        };
        let mut new = held.clone();
        change(&mut new);
        if new == held {
            return Ok(());
        }
        match self.target.local.clone() {
            Some(dir) => {
                let (held, new, display) = (held, new.clone(), self.target.display.clone());
                blocking_io(move || local::mark(&dir, &held, &new, &display)).await?;
            }
            None => self.remote().mark(&held, &new).await?,
        }
        self.held = Some(new);
        Ok(())
    }

    /// Removes the units published after the last successful flush: no checkpoint names them.
    async fn drop_unflushed(&mut self) -> Result<()> {
        if self.units.len() <= self.flushed_units {
            return Ok(());
        }
        let paths: Vec<String> = self.units[self.flushed_units..]
            .iter()
            .map(|u| u.path.clone())
            .collect();
        match self.target.local.clone() {
            Some(dir) => {
                let (run, gone) = (self.run_id.clone(), paths.clone());
                blocking_io(move || local::remove_units(&dir, &run, &gone)).await?;
            }
            None => self.remote().remove_units(&self.run_id, &paths).await?,
        }
        self.units.truncate(self.flushed_units);
        Ok(())
    }

    /// What the target holds of this run, for the reports: `N complete files (R rows)` (for a
    /// run found committed: what its manifest lists).
    fn held_phrase(&self) -> String {
        let (units, rows) = match &self.committed {
            Some(m) => (m.units, m.rows),
            None => (self.units.len(), self.units.iter().map(|u| u.rows).sum()),
        };
        format!(
            "{} ({} rows)",
            guard::units_phrase(units),
            guard::thousands(rows)
        )
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

    /// [`Sink::commit`] of one process's run, or of the finisher of a shared job with every
    /// worker's units.
    async fn commit_run(mut self: Box<Self>) -> Result<CommitReport> {
        if let (State::Finished, Some(manifest)) = (self.state, self.committed.take()) {
            self.state = State::Done;
            let files = manifest
                .files
                .iter()
                .map(|f| self.display_path(f))
                .collect();
            return Ok(CommitReport::new(
                self.target.display.clone(),
                manifest.rows,
                manifest.bytes,
                files,
            ));
        }
        let (manifest, new_files) = match self.stage_commit().await {
            Ok(staged) => staged,
            Err(e) if self.shared => {
                // Not committing yet; the job's files stay for the next worker to finish it.
                return Err(e.context(format!(
                    "finishing the job shared between workers into {} (every worker's files stay in {}; run the job again to finish it)",
                    self.target.display,
                    guard::at(&self.target.display, &format!("{}/", guard::run_dir(&self.run_id)))
                )));
            }
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
        self.held = None;
        self.live = None;
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

    /// Ends this worker's part of a shared job that stops (suspend): its open unit and the
    /// units after its last flush go; its flushed units stay in the job's run directory, where
    /// its last checkpoint names them, as do the other workers' files and the lock.
    async fn leave_shared(mut self: Box<Self>) -> Result<AbortReport> {
        if self.state == State::Writing {
            if self.writer.is_some() {
                self.blocking(RunWriter::discard_open)
                    .await
                    .map_err(|e| e.context("removing the unfinished file"))?;
            }
            self.drop_unflushed()
                .await
                .map_err(|e| e.context("removing this worker's unflushed files"))?;
        }
        self.state = State::Done;
        let run_path = guard::at(
            &self.target.display,
            &format!("{}/", guard::run_dir(&self.run_id)),
        );
        Ok(AbortReport::new(format!(
            "{run_path} holds {} of this worker and the other workers' files of this job shared between workers; `vmig migrate` with the same job (any worker) continues it, and the worker that finishes it writes one manifest listing them all.",
            self.held_phrase()
        )))
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
    /// Whether the format holds every field (see `vmig_formats::staging::check_schema`).
    fn check(&self, schema: &SchemaRef) -> Result<()> {
        self.check_format(schema).map(|_| ())
    }

    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        if let Some(prepared) = &self.prepared {
            if prepared.fields() == schema.fields() {
                return Ok(());
            }
            return Err(Error::schema(
                "the files sink was already prepared for another schema",
            ));
        }
        let format = self.check_format(schema)?;
        let id = schema_id(schema);
        if let Some(record) = &self.resumed {
            record.continues(format)?;
        }
        let work_dir = match (self.state, &self.resumed) {
            (State::Finished, _) => {
                self.prepared = Some(schema.clone());
                self.schema_id = Some(id);
                return Ok(());
            }
            (State::Writing, Some(record)) => {
                if record.schema != id {
                    return Err(Error::schema(format!(
                        "the interrupted run {} wrote its files in {} with other fields or types than this run's schema, so they cannot be continued: remove {} and start the job over (`--restart`)",
                        record.run_id,
                        self.target.display,
                        guard::at(&self.target.display, &format!("{}/", guard::run_dir(&record.run_id)))
                    )));
                }
                self.reclaim().await?
            }
            _ => self.claim().await?,
        };
        if let Some(writer) = self.writer.as_mut() {
            writer.start(schema.clone(), work_dir);
        }
        self.prepared = Some(schema.clone());
        self.schema_id = Some(id);
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
        if self.state == State::Finished {
            return Err(Error::External(
                format!(
                    "the interrupted run {} of this job had already committed its output, {}, to {}, but {} more rows came to be written; they were not written, so that no row is there twice: check that the source did not change, or start the job over (`--restart`)",
                    self.run_id,
                    self.held_phrase(),
                    self.target.display,
                    batch.num_rows()
                )
                .into(),
            ));
        }
        self.mark_flushed().await?;
        let rows = batch.num_rows() as u64;
        let written = self
            .blocking(move |writer| writer.write(&batch, partition.as_deref()))
            .await;
        if written.is_ok() {
            self.rows_since_flush += rows;
        }
        self.publish(written).await
    }

    /// Closes the open units. After the first flush that made units durable, the lock is
    /// marked `flushed` at the next call (`FilesSink::mark_flushed`).
    async fn flush(&mut self) -> Result<FlushReport> {
        if self.state == State::Finished {
            return Ok(FlushReport::default());
        }
        self.mark_flushed().await?;
        let finished = self.blocking(RunWriter::finish_all).await;
        self.publish(finished).await?;
        if !self.units.is_empty() && self.held.as_ref().is_some_and(|l| !l.flushed) {
            self.mark_pending = true;
        }
        self.flushed_units = self.units.len();
        self.flushed_next.clone_from(&self.next_unit);
        let report = FlushReport::new(self.rows_since_flush, self.bytes_since_flush);
        self.rows_since_flush = 0;
        self.bytes_since_flush = 0;
        Ok(report)
    }

    /// Commits this run. A worker of a job shared between workers is refused: only
    /// [`Sink::commit_shared`], with every worker's record, knows all of the job's units.
    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        if self.shared {
            return Err(Error::unsupported(
                format!("the shared run {} in {}", self.run_id, self.target.display),
                "its files are spread over the records of the job's workers, which only the worker that finishes the job gets: continue the job as a worker (`--worker` or `[state] lease`), or start it over with `--restart`",
            ));
        }
        self.commit_run().await
    }

    /// The run id, format, schema hash, the units complete at the last flush (what the manifest
    /// needs of each) and the next unit number per folder (the layout is the crate's `resume` module's).
    fn resume_record(&self) -> Option<serde_json::Value> {
        let units = match self.state {
            State::Writing | State::Committing => &self.units[..self.flushed_units],
            State::Finished => &self.units[..],
            State::Idle | State::Done => return None,
        };
        let schema = self
            .schema_id
            .clone()
            .or_else(|| self.resumed.as_ref().map(|r| r.schema.clone()))?;
        ResumeRecord::new(
            &self.run_id,
            self.format().ok()?,
            &schema,
            units,
            &self.flushed_next,
            self.shared,
        )
        .to_value()
    }

    /// Every worker writes its own units (named with its worker tag) into the job's run
    /// directory; the worker that finishes the job lists them all in one manifest.
    fn shares_jobs(&self) -> bool {
        true
    }

    /// Marks the lock as the shared job's (never stale by process; the workers' units are
    /// resumable work) and tags this worker's unit names.
    async fn create_shared(&mut self) -> Result<()> {
        if let Some(record) = self.resumed.as_ref().filter(|r| !r.shared) {
            return Err(Error::unsupported(
                format!("the run {} in {}", record.run_id, self.target.display),
                "it was started by one process (without `[state] lease`), and its files cannot be shared with workers now: finish it the way it started (without `--worker` or `[state] lease`), or start the job over with `--restart`",
            ));
        }
        if self.shared || self.state != State::Writing {
            return Ok(());
        }
        self.become_shared();
        self.mark(|lock| {
            lock.shared = true;
            lock.flushed = true;
        })
        .await
    }

    /// This worker's units stay in the job's run directory (its last checkpoint names them);
    /// the worker that finishes the job moves them into place.
    async fn commit_part(mut self: Box<Self>) -> Result<CommitReport> {
        if !self.shared {
            return Err(Error::unsupported(
                PLUGIN,
                "this files sink is not a worker of a job shared between workers",
            ));
        }
        self.state = State::Done;
        self.held = None;
        self.live = None;
        let units = &self.units[..self.flushed_units];
        Ok(CommitReport::new(
            self.target.display.clone(),
            units.iter().map(|u| u.rows).sum(),
            units.iter().map(|u| u.bytes).sum(),
            Vec::new(),
        ))
    }

    /// Lists every worker's units (from `records` and this worker's own) in one manifest,
    /// after checking each is in the run directory with its recorded size, and commits as
    /// [`Sink::commit`] does; what a dead worker left unrecorded goes with the run directory.
    /// A commit found staged when this worker joined is completed.
    async fn commit_shared(
        mut self: Box<Self>,
        records: Vec<serde_json::Value>,
    ) -> Result<CommitReport> {
        if !self.shared {
            return self.commit_run().await;
        }
        if self.state == State::Finished && self.staged_commit {
            self.state = State::Committing;
            if let Err(e) = self.finish_commit().await {
                return Err(self.interrupted(e));
            }
            self.state = State::Done;
            return self.placed_report().await;
        }
        self.flush().await?;
        let units = self.merge_units(records)?;
        self.check_units(&units).await?;
        tracing::info!(
            message = "Listing every worker's files in one manifest.",
            target = %self.target.display,
            units = units.len(),
            rows = units.iter().map(|u| u.rows).sum::<u64>()
        );
        self.units = units.iter().map(RecordUnit::entry).collect();
        self.flushed_units = self.units.len();
        self.commit_run().await
    }

    /// Adopts the interrupted run `record` names (see the crate docs, "Resuming").
    async fn resume(&mut self, record: serde_json::Value) -> Result<()> {
        if self.state != State::Idle || self.prepared.is_some() || self.resumed.is_some() {
            return Err(Error::External(
                "the files sink can resume a run only once, before `prepare`".into(),
            ));
        }
        let record = ResumeRecord::parse(record)?;
        self.resumed = Some(record.clone());
        self.adopt(&record).await
    }

    /// Keeps the units the last flush made durable, their run directory and the lock (marked
    /// `suspended`); removes the open unit and any unit finished after that flush. A run with
    /// no durable unit is aborted instead: there is nothing to resume.
    async fn suspend(mut self: Box<Self>) -> Result<AbortReport> {
        if self.shared {
            return self.leave_shared().await;
        }
        match self.state {
            State::Writing if self.flushed_units > 0 => {}
            State::Writing => return self.abort().await,
            State::Finished => {
                self.state = State::Done;
                return Ok(AbortReport::new(format!(
                    "{} holds the committed output of the interrupted run {}: {}.",
                    self.target.display,
                    self.run_id,
                    self.held_phrase()
                )));
            }
            State::Idle => {
                let mut report = AbortReport::default();
                if let Some(note) = &self.recovered {
                    report.push(format!("Before writing, this run {note}."));
                }
                report.push(match &self.resumed {
                    Some(r) => format!(
                        "The files of the interrupted run {} stay as they were.",
                        r.run_id
                    ),
                    None => format!(
                        "Nothing of this run was written to {}.",
                        self.target.display
                    ),
                });
                return Ok(report);
            }
            State::Committing | State::Done => return Ok(AbortReport::default()),
        }
        if self.writer.is_some() {
            self.blocking(RunWriter::discard_open)
                .await
                .map_err(|e| e.context("removing the unfinished file"))?;
        }
        let run_path = guard::at(
            &self.target.display,
            &format!("{}/", guard::run_dir(&self.run_id)),
        );
        self.drop_unflushed().await.map_err(|e| {
            e.context(format!(
                "removing the unflushed files of this run from {run_path}"
            ))
        })?;
        let marked = self
            .mark(|lock| {
                lock.state = LockState::Suspended;
                lock.flushed = true;
            })
            .await;
        if let Err(error) = marked {
            tracing::warn!(message = "Could not mark the lock suspended.", %error);
        }
        self.state = State::Done;
        self.live = None;
        let mut report = AbortReport::default();
        if let Some(note) = &self.recovered {
            report.push(format!("Before writing, this run {note}."));
        }
        report.push(format!(
            "{run_path} holds {} of this run; `vmig migrate` with the same job resumes it (to discard it instead, remove {run_path}).",
            self.held_phrase()
        ));
        if let Some(p) = &self.previous {
            report.push(format!(
                "The previous output in {} ({}) is untouched.",
                self.target.display,
                p.summary()
            ));
        }
        Ok(report)
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
        if self.state == State::Finished {
            self.state = State::Done;
            report.push(format!(
                "{display} holds the committed output of the interrupted run {}: {}.",
                self.run_id,
                self.held_phrase()
            ));
            return Ok(report);
        }
        if self.state != State::Writing {
            report.push(format!("Nothing of this run was written to {display}."));
            return Ok(report);
        }
        // A crash while the run directory goes must not leave it looking like resumable work.
        if self.held.as_ref().is_some_and(|l| l.flushed) {
            if let Err(error) = self.mark(|lock| lock.state = LockState::Aborting).await {
                tracing::warn!(message = "Could not mark the lock aborting.", %error);
            }
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
    /// A sink dropped without commit, suspend or abort changes nothing in the target, as if its
    /// process had been killed: its lock and run directory (with an open unit under its
    /// temporary name) stay for `resume`, or for the next run's stale-lock rules. Only the local
    /// staging directory of a remote target goes.
    fn drop(&mut self) {
        if self.state == State::Writing {
            tracing::warn!(
                message = "The files sink was dropped without commit, suspend or abort; its lock and run directory stay, as after a kill.",
                target = %self.target.display,
                run = %self.run_id
            );
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
