//! A local target: the lock, the check of what is there, the commit swap and its completion
//! after an interruption. Everything here is blocking; the sink runs it in `spawn_blocking`.
//!
//! Every function touches only: `.vmig.lock` when it holds a vmig lock record, the run
//! directories `.vmig-<run>` / `.vmig-<run>.old` of a run named by such a lock, and the files a
//! vmig `manifest.json` in the target lists.

use std::io::Write;
use std::path::Path;

use vmig_core::{Error, Result, ResultExt};

use crate::guard::{self, LockInfo, Previous, LOCK};
use crate::manifest::MANIFEST;
use crate::sink::PLUGIN;

/// Best-effort `fsync` of a directory, so renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// Reads `<dir>/<relative>` as a vmig manifest, `None` when there is none.
fn read_manifest(dir: &Path, relative: &str, display: &str) -> Result<Option<Previous>> {
    match std::fs::read(dir.join(relative)) {
        Ok(bytes) => Previous::parse(&bytes, display, relative).map(Some),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("reading {display}/{relative}"))),
    }
}

/// Takes the lock of `dir` for `me`. A lock of a dead run on this host is taken over, and that
/// run's leftovers are dealt with ([`recover`]); the returned sentence says what was done.
///
/// # Errors
/// When another live run holds the lock (naming it), or `.vmig.lock` is not vmig's.
pub(crate) fn lock(dir: &Path, me: &LockInfo, display: &str) -> Result<Option<String>> {
    let path = dir.join(LOCK);
    let mut stale = None;
    for _ in 0..4 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(&me.to_bytes()?)
                    .and_then(|()| f.sync_all())
                    .context_with(|| format!("writing {}", path.display()))?;
                sync_dir(dir);
                return match stale {
                    None => Ok(None),
                    Some((dead, aside)) => match recover(dir, &dead, display) {
                        Ok(note) => {
                            let _ = std::fs::remove_file(aside);
                            Ok(Some(note))
                        }
                        Err(e) => {
                            // The dead run's lock goes back (over ours), so that the next run
                            // tries again.
                            let _ = std::fs::rename(&aside, &path);
                            Err(e)
                        }
                    },
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if not_found(&e) => continue,
                    Err(e) => {
                        return Err(Error::from(e).context(format!("reading {}", path.display())))
                    }
                };
                let other = LockInfo::parse(&bytes).ok_or_else(|| not_a_lock(display))?;
                if !other.is_stale() {
                    return Err(other.refusal(display));
                }
                // Move the dead run's lock aside under a name of our own; only one run can.
                let aside = dir.join(format!("{LOCK}.{}.stale", me.run_id));
                match std::fs::rename(&path, &aside) {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => continue,
                    Err(e) => {
                        return Err(Error::from(e).context(format!("moving {}", path.display())))
                    }
                }
                // Another run may have replaced it between our read and rename: give it back.
                let moved = std::fs::read(&aside).ok().and_then(|b| LockInfo::parse(&b));
                if moved.as_ref() != Some(&other) {
                    let _ = std::fs::hard_link(&aside, &path);
                    let _ = std::fs::remove_file(&aside);
                    continue;
                }
                stale = Some((other, aside));
            }
            Err(e) => return Err(Error::from(e).context(format!("creating {}", path.display()))),
        }
    }
    Err(Error::config(
        PLUGIN,
        format!("could not take {display}/{LOCK}: other runs keep taking it; try again"),
    ))
}

fn not_a_lock(display: &str) -> Error {
    Error::config(
        PLUGIN,
        format!(
            "{display}/{LOCK} exists but is not a vmig lock; vmig will not touch it: remove it if no vmig run is writing into {display}"
        ),
    )
}

/// Removes `dir`'s lock when it is `run`'s.
///
/// # Errors
/// When it cannot be removed.
pub(crate) fn unlock(dir: &Path, run: &str) -> Result<()> {
    let path = dir.join(LOCK);
    let ours = std::fs::read(&path)
        .ok()
        .and_then(|b| LockInfo::parse(&b))
        .is_some_and(|l| l.run_id == run);
    if ours {
        std::fs::remove_file(&path).context_with(|| format!("removing {}", path.display()))?;
        sync_dir(dir);
    }
    Ok(())
}

/// Deals with what the dead run `dead` left: finishes its commit when it got as far as writing
/// its manifest, removes its run directory otherwise. Returns a sentence saying which.
fn recover(dir: &Path, dead: &LockInfo, display: &str) -> Result<String> {
    let run_dir = guard::run_dir(&dead.run_id);
    let placed = dead.wrote(
        read_manifest(dir, MANIFEST, display)
            .ok()
            .flatten()
            .as_ref(),
    );
    let committed = placed || exists(&dir.join(&run_dir).join(MANIFEST));
    if committed {
        finish_commit(dir, &dead.run_id, display)
            .map_err(|e| e.context(dead.completing(display)))?;
    } else {
        remove_all(&dir.join(&run_dir))?;
    }
    Ok(dead.recovered(committed, &format!("{display}/{run_dir}")))
}

/// What is in `dir` besides this run's own lock and run directory: the previous vmig output
/// (from its manifest), or nothing.
///
/// # Errors
/// When `dir` holds other things (listing them), or a `manifest.json` that is not vmig's.
pub(crate) fn inspect(dir: &Path, run: &str, display: &str) -> Result<Option<Previous>> {
    if let Some(previous) = read_manifest(dir, MANIFEST, display)? {
        return Ok(Some(previous));
    }
    let own = guard::run_dir(run);
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).context_with(|| format!("listing {display}"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == LOCK || name == own {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        entries.push(if is_dir { format!("{name}/") } else { name });
    }
    entries.sort();
    if entries.is_empty() {
        Ok(None)
    } else {
        Err(guard::foreign_refusal(display, &entries))
    }
}

/// The new files whose places in `dir` are taken by something `previous` does not list.
pub(crate) fn conflicts(
    dir: &Path,
    new_files: &[String],
    previous: Option<&Previous>,
) -> Vec<String> {
    let listed = |f: &str| previous.is_some_and(|p| p.files.iter().any(|g| g == f));
    let mut taken = Vec::new();
    for f in new_files {
        // A folder on the way that is a file.
        let mut prefix = String::new();
        for part in f.split('/').take(f.matches('/').count()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let p = dir.join(&prefix);
            if exists(&p) && !p.is_dir() && !listed(&prefix) && !taken.contains(&prefix) {
                taken.push(prefix.clone());
            }
        }
        if exists(&dir.join(f)) && !listed(f) {
            taken.push(f.clone());
        }
    }
    taken
}

/// Moves `from` to `to` (creating `to`'s folder); `false` when `from` is not there.
fn move_into(from: &Path, to: &Path) -> Result<bool> {
    if !exists(from) {
        return Ok(false);
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .context_with(|| format!("creating {}", parent.display()))?;
    }
    std::fs::rename(from, to)
        .context_with(|| format!("moving {} to {}", from.display(), to.display()))?;
    Ok(true)
}

/// Removes a file or directory tree that this run (or the dead run named by a lock) created.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(e),
    };
    result.context_with(|| format!("removing {}", path.display()))
}

/// The commit swap of run `run`, whose manifest is in its run directory; idempotent, so it
/// also completes a commit that was interrupted at any step:
///
/// 1. the files the previous manifest lists go to `.vmig-<run>.old/`, that manifest last;
/// 2. the new files go from `.vmig-<run>/` to their places (never over anything);
/// 3. the new manifest goes in place — from here on the new output is the output;
/// 4. `.vmig-<run>.old/` and `.vmig-<run>/` are removed.
///
/// # Errors
/// When a step fails; what was done stays done, and calling it again continues.
pub(crate) fn finish_commit(dir: &Path, run: &str, display: &str) -> Result<()> {
    let run_path = dir.join(guard::run_dir(run));
    let old_path = dir.join(guard::old_dir(run));
    let placed = read_manifest(dir, MANIFEST, display)?;
    if placed.as_ref().and_then(|p| p.run_id.as_deref()) != Some(run) {
        let new = read_manifest(&run_path, MANIFEST, display)?.ok_or_else(|| {
            Error::External(
                format!(
                    "{display}/{}/{MANIFEST} is missing, so the commit of run {run} cannot be completed",
                    guard::run_dir(run)
                )
                .into(),
            )
        })?;
        if let Some(previous) = placed {
            for f in &previous.files {
                move_into(&dir.join(f), &old_path.join(f))?;
            }
            for d in &previous.dirs {
                // Only when emptied: anything else in it stays.
                let _ = std::fs::remove_dir(dir.join(d));
            }
            move_into(&dir.join(MANIFEST), &old_path.join(MANIFEST))?;
            sync_dir(dir);
        }
        for f in &new.files {
            let from = run_path.join(f);
            let to = dir.join(f);
            if exists(&from) && exists(&to) {
                return Err(Error::config(
                    PLUGIN,
                    format!(
                        "cannot move {f} into place: {display}/{f} exists, and vmig did not write it; move it away and run again to complete the commit"
                    ),
                ));
            }
            if move_into(&from, &to)? {
                if let Some(parent) = to.parent() {
                    sync_dir(parent);
                }
            }
        }
        std::fs::rename(run_path.join(MANIFEST), dir.join(MANIFEST))
            .context_with(|| format!("moving the new {MANIFEST} into {display}"))?;
        sync_dir(dir);
    }
    remove_all(&old_path)?;
    remove_all(&run_path)?;
    sync_dir(dir);
    Ok(())
}
