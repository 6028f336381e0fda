//! An object-store target: the same rules as [`crate::local`], with objects instead of files.
//!
//! Object stores have no rename, so a run uploads under `<prefix>/.vmig-<run>/…` and its commit
//! copies the objects into place (server-side) after saving a copy of the previous manifest in
//! the run prefix; the swap is idempotent, so a commit that was interrupted can be completed.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use vmig_core::store::StoreLocation;
use vmig_core::{Error, Result, ResultExt};

use crate::guard::{self, LiveRun, LockInfo, Previous, LOCK, LOCK_TMP, OLD_MANIFEST};
use crate::local::Adoption;
use crate::manifest::MANIFEST;
use crate::resume::{unit_of, RecordUnit, ResumeRecord};

/// A prefix in an object store, as the sink's target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote<'a> {
    pub(crate) store: &'a Arc<dyn ObjectStore>,
    pub(crate) root: &'a ObjectPath,
    pub(crate) display: &'a str,
}

/// How the lock was taken.
#[derive(Debug, Default)]
pub(crate) struct Locked {
    /// What was done about a stale lock, if there was one.
    pub(crate) note: Option<String>,
    /// The store cannot create an object only if it is absent, so the lock is best-effort.
    pub(crate) best_effort: bool,
}

impl Remote<'_> {
    /// The object-store target `target`.
    pub(crate) fn of(target: &StoreLocation) -> Remote<'_> {
        Remote {
            store: &target.store,
            root: &target.path,
            display: &target.display,
        }
    }

    /// The object of a target-relative path.
    pub(crate) fn key(&self, relative: &str) -> ObjectPath {
        let mut path = self.root.clone();
        path.extend(relative.split('/'));
        path
    }

    /// The target-relative name of `key`.
    fn relative(&self, key: &ObjectPath) -> Option<String> {
        key.prefix_match(self.root).map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    async fn get(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(relative);
        match self.store.get(&key).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .context_with(|| format!("reading {}/{relative}", self.display))?
                    .to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::from(e).context(format!("reading {}/{relative}", self.display))),
        }
    }

    pub(crate) async fn manifest(&self, relative: &str) -> Result<Option<Previous>> {
        match self.get(relative).await? {
            Some(bytes) => Previous::parse(&bytes, self.display, relative).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes an object; a missing one is fine.
    pub(crate) async fn delete(&self, relative: &str) -> Result<()> {
        let key = self.key(relative);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::from(e).context(format!("deleting {key}"))),
        }
    }

    /// Every object below the target, relative names.
    async fn list(&self, below: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .list_sized(below)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every object below the target with its size, relative names in order.
    async fn list_sized(&self, below: Option<&str>) -> Result<Vec<(String, u64)>> {
        let prefix = below.map_or_else(|| self.root.clone(), |b| self.key(b));
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .context_with(|| format!("listing {}", self.display))?;
        let mut names: Vec<(String, u64)> = objects
            .iter()
            .filter_map(|o| self.relative(&o.location).map(|n| (n, o.size)))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Takes the target's lock with a create-only PUT where the store offers one, else
    /// best-effort (read, then write). A stale lock of this host is taken over and the dead
    /// run's leftovers dealt with.
    ///
    /// # Errors
    /// When another live run holds the lock (naming it), or the lock object is not vmig's.
    pub(crate) async fn lock(&self, me: &LockInfo) -> Result<Locked> {
        let key = self.key(LOCK);
        let body = me.to_bytes()?;
        let mut locked = Locked::default();
        let existing = match self
            .store
            .put_opts(&key, PutPayload::from(body.clone()), PutMode::Create.into())
            .await
        {
            Ok(_) => return Ok(locked),
            Err(object_store::Error::AlreadyExists { .. }) => self.get(LOCK).await?,
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                locked.best_effort = true;
                self.get(LOCK).await?
            }
            Err(e) => return Err(Error::from(e).context(format!("creating {key}"))),
        };
        let dead = match existing {
            None => None,
            Some(bytes) => {
                let other = LockInfo::parse(&bytes).ok_or_else(|| self.not_a_lock())?;
                if !other.is_stale() {
                    return Err(other.refusal(self.display));
                }
                Some(other)
            }
        };
        self.store
            .put(&key, PutPayload::from(body))
            .await
            .context_with(|| format!("writing {key}"))?;
        if let Some(dead) = dead {
            match self.recover(&dead).await {
                Ok(note) => locked.note = Some(note),
                Err(e) => {
                    // The dead run's lock goes back, so that the next run tries again.
                    if let Ok(body) = dead.to_bytes() {
                        let _ = self.store.put(&key, PutPayload::from(body)).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(locked)
    }

    /// Deletes the lock when it is `run`'s.
    ///
    /// # Errors
    /// When it cannot be read or deleted.
    pub(crate) async fn unlock(&self, run: &str) -> Result<()> {
        let ours = self
            .get(LOCK)
            .await?
            .and_then(|b| LockInfo::parse(&b))
            .is_some_and(|l| l.run_id == run);
        if ours {
            self.delete(LOCK).await?;
        }
        Ok(())
    }

    async fn recover(&self, dead: &LockInfo) -> Result<String> {
        let run_dir = guard::run_dir(&dead.run_id);
        let placed = dead.wrote(self.manifest(MANIFEST).await.ok().flatten().as_ref());
        let committed = placed || self.get(&format!("{run_dir}/{MANIFEST}")).await?.is_some();
        if committed {
            self.finish_commit(&dead.run_id)
                .await
                .map_err(|e| e.context(dead.completing(self.display)))?;
        } else {
            let complete = self.complete_units(&dead.run_id).await?;
            if dead.keeps_resumable(complete) {
                return Err(dead.resumable_refusal(
                    self.display,
                    &guard::at(self.display, &format!("{run_dir}/")),
                    complete,
                ));
            }
            self.discard(&dead.run_id).await?;
        }
        Ok(dead.recovered(committed, &guard::at(self.display, &format!("{run_dir}/"))))
    }

    /// The complete units (objects under finished names of the unit scheme) in the prefix of
    /// run `run`.
    async fn complete_units(&self, run: &str) -> Result<usize> {
        let prefix = format!("{}/", guard::run_dir(run));
        let mut units: Vec<String> = self
            .list(Some(&guard::run_dir(run)))
            .await?
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .filter_map(unit_of)
            .filter(|(_, complete)| *complete)
            .map(|(unit, _)| unit)
            .collect();
        units.dedup();
        Ok(units.len())
    }

    /// Takes over run `record.run_id` here to resume it, as [`crate::local::adopt`] does for
    /// a local target: its lock (that run's, process gone, or absent), then completes its
    /// commit if it got that far, else deletes the objects the run wrote after the record
    /// (unrecorded units of the unit scheme, commit scaffolding) and checks every recorded file
    /// is there with its recorded size. The local staging files of the earlier process play no
    /// part. On failure the lock is given back as it was.
    ///
    /// # Errors
    /// As [`crate::local::adopt`].
    pub(crate) async fn adopt(
        &self,
        record: &ResumeRecord,
    ) -> Result<(LockInfo, LiveRun, Adoption)> {
        let run = record.run_id.as_str();
        let previous = match self.get(LOCK).await? {
            None => None,
            Some(bytes) => {
                let other = LockInfo::parse(&bytes).ok_or_else(|| self.not_a_lock())?;
                if other.run_id != run {
                    return Err(other.other_run_refusal(self.display, run));
                }
                if !other.is_stale() {
                    return Err(other.running_refusal(self.display));
                }
                Some(other)
            }
        };
        let live = LiveRun::register(run);
        let mut held = match &previous {
            Some(dead) => dead.adopted_by_me(),
            None => LockInfo::mine(run),
        };
        held.flushed |= !record.units.is_empty();
        let key = self.key(LOCK);
        let body = held.to_bytes()?;
        match &previous {
            Some(_) => self
                .store
                .put(&key, PutPayload::from(body))
                .await
                .map(|_| ()),
            None => match self
                .store
                .put_opts(&key, PutPayload::from(body.clone()), PutMode::Create.into())
                .await
            {
                Ok(_) => Ok(()),
                Err(
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ) => self
                    .store
                    .put(&key, PutPayload::from(body))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            },
        }
        .context_with(|| format!("writing {key}"))?;
        // Best-effort check that no other process took the lock at the same time.
        let now = self.get(LOCK).await?.and_then(|b| LockInfo::parse(&b));
        if !now.as_ref().is_some_and(|l| l.is_held_by(&held)) {
            return Err(match now {
                Some(other) if other.run_id != run => other.other_run_refusal(self.display, run),
                Some(other) => other.running_refusal(self.display),
                None => guard::lost_lock(self.display, run),
            });
        }
        match self.adopted(record).await {
            Ok(adoption) => Ok((held, live, adoption)),
            Err(e) => {
                let _ = match previous.and_then(|p| p.to_bytes().ok()) {
                    Some(body) => self
                        .store
                        .put(&key, PutPayload::from(body))
                        .await
                        .map(|_| ()),
                    None => self.store.delete(&key).await,
                };
                Err(e)
            }
        }
    }

    /// Joins the job shared between workers whose run `record` names, as
    /// [`crate::local::join`] does for a local target: nothing is taken over or deleted.
    ///
    /// # Errors
    /// As [`crate::local::join`].
    pub(crate) async fn join(&self, record: &ResumeRecord) -> Result<Adoption> {
        let run = record.run_id.as_str();
        let lock = match self.get(LOCK).await? {
            Some(bytes) => Some(LockInfo::parse(&bytes).ok_or_else(|| self.not_a_lock())?),
            None => None,
        };
        let placed = self
            .manifest(MANIFEST)
            .await?
            .is_some_and(|p| p.run_id.as_deref() == Some(run));
        let staged = placed
            || self
                .get(&format!("{}/{MANIFEST}", guard::run_dir(run)))
                .await?
                .is_some();
        match lock {
            Some(l) if l.run_id != run => Err(l.other_run_refusal(self.display, run)),
            Some(l) if l.shared && staged => Ok(Adoption::Staged),
            Some(l) if l.shared => Ok(Adoption::Writing {
                removed: Vec::new(),
            }),
            _ if staged => Ok(Adoption::Staged),
            _ => Err(guard::lost_shared_lock(self.display, run)),
        }
    }

    /// Checks that every file of `units` is below run `run`'s prefix with the recorded size;
    /// returns every object there (relative to the prefix) with its size.
    ///
    /// # Errors
    /// [`guard::missing_unit`] or [`guard::changed_unit`] for the first that is not; listing
    /// errors.
    pub(crate) async fn check_units(
        &self,
        run: &str,
        units: &[RecordUnit],
    ) -> Result<std::collections::BTreeMap<String, u64>> {
        let run_dir = guard::run_dir(run);
        let prefix = format!("{run_dir}/");
        let sizes: std::collections::BTreeMap<String, u64> = self
            .list_sized(Some(&run_dir))
            .await?
            .into_iter()
            .filter_map(|(name, size)| {
                name.strip_prefix(&prefix)
                    .map(|inner| (inner.to_string(), size))
            })
            .collect();
        for unit in units {
            let mut bytes = 0;
            for file in unit.file_paths() {
                match sizes.get(file.as_str()) {
                    Some(size) => bytes += size,
                    None => return Err(guard::missing_unit(self.display, run, unit, &file)),
                }
            }
            if bytes != unit.bytes {
                return Err(guard::changed_unit(self.display, run, unit, bytes));
            }
        }
        Ok(sizes)
    }

    /// [`Remote::adopt`] once the lock is held.
    async fn adopted(&self, record: &ResumeRecord) -> Result<Adoption> {
        let run = record.run_id.as_str();
        let run_dir = guard::run_dir(run);
        let placed = self
            .manifest(MANIFEST)
            .await?
            .filter(|p| p.run_id.as_deref() == Some(run));
        let manifest = match placed {
            Some(p) => Some(p),
            None => self.manifest(&format!("{run_dir}/{MANIFEST}")).await?,
        };
        if let Some(manifest) = manifest {
            guard::check_lists_record(&manifest, record, self.display)?;
            self.finish_commit(run).await.map_err(|e| {
                e.context(format!(
                    "completing the commit of run {run} into {}",
                    self.display
                ))
            })?;
            self.unlock(run).await?;
            return Ok(Adoption::Committed(manifest));
        }
        let prefix = format!("{run_dir}/");
        let sizes = self.check_units(run, &record.units).await?;
        let mut removed = Vec::new();
        for (inner, _) in sizes {
            let inner = inner.as_str();
            let drop = if inner == OLD_MANIFEST || inner == LOCK_TMP || guard::is_lock_aside(inner)
            {
                true
            } else if let Some((unit, complete)) = unit_of(inner) {
                !complete || !record.lists(&unit)
            } else {
                false
            };
            if drop {
                self.delete(&format!("{prefix}{inner}")).await?;
                removed.push(inner.to_string());
            }
        }
        Ok(Adoption::Writing { removed })
    }

    /// Rewrites the lock, held by this process as `held`, as `new` (one PUT).
    ///
    /// # Errors
    /// When the lock is no longer `held` (naming it), or the write fails.
    pub(crate) async fn mark(&self, held: &LockInfo, new: &LockInfo) -> Result<()> {
        let current = self.get(LOCK).await?.and_then(|b| LockInfo::parse(&b));
        if !current.as_ref().is_some_and(|c| c.is_held_by(held)) {
            return Err(guard::lost_lock(self.display, &held.run_id));
        }
        let key = self.key(LOCK);
        self.store
            .put(&key, PutPayload::from(new.to_bytes()?))
            .await
            .context_with(|| format!("writing {key}"))?;
        Ok(())
    }

    /// Deletes the units `paths` (relative to the prefix of run `run`; every object of a
    /// NumPy unit).
    ///
    /// # Errors
    /// When listing or deleting fails.
    pub(crate) async fn remove_units(&self, run: &str, paths: &[String]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let run_dir = guard::run_dir(run);
        let prefix = format!("{run_dir}/");
        for name in self.list(Some(&run_dir)).await? {
            let Some(inner) = name.strip_prefix(&prefix) else {
                continue;
            };
            if unit_of(inner).is_some_and(|(unit, _)| paths.contains(&unit)) {
                self.delete(&name).await?;
            }
        }
        Ok(())
    }

    fn not_a_lock(&self) -> Error {
        Error::config(
            crate::sink::PLUGIN,
            format!(
                "{}/{LOCK} exists but is not a vmig lock; vmig will not touch it: delete it if no vmig run is writing into {}",
                self.display, self.display
            ),
        )
    }

    /// Deletes every object below `.vmig-<run>/`.
    pub(crate) async fn discard(&self, run: &str) -> Result<()> {
        for name in self.list(Some(&guard::run_dir(run))).await? {
            self.delete(&name).await?;
        }
        Ok(())
    }

    /// The previous vmig output, or `None` for an empty prefix.
    ///
    /// # Errors
    /// When the prefix holds other objects (listing them) or a `manifest.json` that is not vmig's.
    pub(crate) async fn inspect(&self, run: &str) -> Result<Option<Previous>> {
        if let Some(previous) = self.manifest(MANIFEST).await? {
            return Ok(Some(previous));
        }
        let own = format!("{}/", guard::run_dir(run));
        let others: Vec<String> = self
            .list(None)
            .await?
            .into_iter()
            .filter(|n| n != LOCK && !n.starts_with(&own))
            .collect();
        if others.is_empty() {
            Ok(None)
        } else {
            Err(guard::foreign_refusal(self.display, &others))
        }
    }

    /// The new files whose keys are taken by objects `previous` does not list.
    ///
    /// # Errors
    /// When listing fails.
    pub(crate) async fn conflicts(
        &self,
        new_files: &[String],
        previous: Option<&Previous>,
    ) -> Result<Vec<String>> {
        let present = self.list(None).await?;
        Ok(new_files
            .iter()
            .filter(|f| present.binary_search(*f).is_ok())
            .filter(|f| !previous.is_some_and(|p| p.files.contains(*f)))
            .cloned()
            .collect())
    }

    /// Saves a copy of the previous manifest in the run prefix, then writes the new manifest
    /// there: from now on the commit can be completed by [`Remote::finish_commit`].
    ///
    /// # Errors
    /// When a write fails.
    pub(crate) async fn stage_manifest(
        &self,
        run: &str,
        previous: bool,
        body: Vec<u8>,
    ) -> Result<()> {
        let dir = guard::run_dir(run);
        if previous {
            let to = self.key(&format!("{dir}/{OLD_MANIFEST}"));
            self.store
                .copy(&self.key(MANIFEST), &to)
                .await
                .context_with(|| format!("copying {}/{MANIFEST} to {to}", self.display))?;
        }
        let to = self.key(&format!("{dir}/{MANIFEST}"));
        self.store
            .put(&to, PutPayload::from(body))
            .await
            .context_with(|| format!("writing {to}"))?;
        Ok(())
    }

    /// The commit of run `run` (idempotent, like [`crate::local::finish_commit`]):
    /// the previous manifest is deleted (its copy is in the run prefix), the new objects are
    /// copied into place, then the new manifest; then the previous objects the new output
    /// does not replace, and the run prefix, are deleted.
    ///
    /// # Errors
    /// When a step fails; calling it again continues.
    pub(crate) async fn finish_commit(&self, run: &str) -> Result<()> {
        let dir = guard::run_dir(run);
        let placed = self.manifest(MANIFEST).await?;
        let new = match placed {
            Some(p) if p.run_id.as_deref() == Some(run) => p,
            placed => {
                let new = self
                    .manifest(&format!("{dir}/{MANIFEST}"))
                    .await?
                    .ok_or_else(|| {
                        Error::External(
                            format!(
                                "{}/{dir}/{MANIFEST} is missing, so the commit of run {run} cannot be completed",
                                self.display
                            )
                            .into(),
                        )
                    })?;
                if let Some(previous) = placed {
                    // Copies start only after this manifest is gone, so until then any object
                    // at a new key that it does not list is someone else's.
                    let taken = self.conflicts(&new.files, Some(&previous)).await?;
                    if !taken.is_empty() {
                        return Err(guard::conflict_refusal(self.display, &taken));
                    }
                    self.delete(MANIFEST).await?;
                }
                for f in new.files.iter().map(String::as_str).chain([MANIFEST]) {
                    let (from, to) = (self.key(&format!("{dir}/{f}")), self.key(f));
                    self.store
                        .copy(&from, &to)
                        .await
                        .context_with(|| format!("copying {from} to {to}"))?;
                }
                new
            }
        };
        if let Some(old) = self.manifest(&format!("{dir}/{OLD_MANIFEST}")).await? {
            for f in old.files.iter().filter(|f| !new.files.contains(*f)) {
                self.delete(f).await?;
            }
        }
        self.discard(run).await
    }
}
