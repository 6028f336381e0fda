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

use crate::guard::{self, LockInfo, Previous, LOCK, OLD_MANIFEST};
use crate::manifest::MANIFEST;

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

    async fn manifest(&self, relative: &str) -> Result<Option<Previous>> {
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
        let prefix = below.map_or_else(|| self.root.clone(), |b| self.key(b));
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .context_with(|| format!("listing {}", self.display))?;
        let mut names: Vec<String> = objects
            .iter()
            .filter_map(|o| self.relative(&o.location))
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
                let other = LockInfo::parse(&bytes).ok_or_else(|| {
                    Error::config(
                        crate::sink::PLUGIN,
                        format!(
                            "{}/{LOCK} exists but is not a vmig lock; vmig will not touch it: delete it if no vmig run is writing into {}",
                            self.display, self.display
                        ),
                    )
                })?;
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
            self.discard(&dead.run_id).await?;
        }
        Ok(dead.recovered(committed, &format!("{}/{run_dir}/", self.display)))
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
