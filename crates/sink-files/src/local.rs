//! A local target: the lock, the check of what is there, the commit swap and its completion
//! after an interruption. Everything here is blocking; the sink runs it in `spawn_blocking`.
//!
//! Every function touches only: `.vmig.lock` when it holds a vmig lock record, the run
//! directories `.vmig-<run>` / `.vmig-<run>.old` of a run named by such a lock (or by the
//! resume record of this job), and the files a vmig `manifest.json` in the target lists.

use std::path::{Path, PathBuf};

use vmig_core::{Error, Result, ResultExt};

use crate::guard::{self, unit_name, LiveRun, LockInfo, Previous, LOCK, LOCK_TMP};
use crate::manifest::MANIFEST;
use crate::overwrite::check_partition_name;
use crate::resume::{unit_of, RecordUnit, ResumeRecord};
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
pub(crate) fn read_manifest(dir: &Path, relative: &str, display: &str) -> Result<Option<Previous>> {
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
        match create_lock(dir, me) {
            Ok(true) => {
                let mut dead_runs: Vec<(LockInfo, PathBuf)> = stale.into_iter().collect();
                dead_runs.extend(orphaned_runs(dir, &me.run_id));
                let mut notes = Vec::new();
                for (dead, aside) in dead_runs {
                    match recover(dir, &dead, display) {
                        Ok(note) => {
                            let _ = std::fs::remove_file(aside);
                            notes.push(note);
                        }
                        Err(e) => {
                            // The dead run's lock goes back (over ours), so that the next run
                            // tries again; its directory, if made only to hold it, goes too.
                            let _ = std::fs::rename(&aside, &path);
                            if let Some(dead_dir) = aside.parent() {
                                let _ = std::fs::remove_dir(dead_dir);
                            }
                            // This run's directory, made with its lock, holds nothing yet.
                            let _ = std::fs::remove_dir(dir.join(guard::run_dir(&me.run_id)));
                            return Err(e);
                        }
                    }
                }
                return Ok((!notes.is_empty()).then(|| notes.join(" ")));
            }
            Ok(false) => {
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
                // Move the dead run's lock aside under a name of our own; only one run can. Into
                // the dead run's directory (made if it has none): a kill before our lock is
                // written leaves that directory with the lock that proves whose it is
                // ([`orphaned_runs`]), and nothing else in the target.
                let dead_dir = dir.join(guard::run_dir(&other.run_id));
                std::fs::create_dir_all(&dead_dir)
                    .context_with(|| format!("creating {}", dead_dir.display()))?;
                let aside = dead_dir.join(guard::lock_aside(std::process::id()));
                if !move_aside(&path, &aside, &other)? {
                    continue;
                }
                stale = Some((other, aside));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::config(
        PLUGIN,
        format!("could not take {display}/{LOCK}: other runs keep taking it; try again"),
    ))
}

/// Creates `dir`'s lock as `lock` unless one exists (`false`), whole or not at all: written in
/// full as `<run directory>/.lock.tmp` and hard-linked into place, which fails when a lock is
/// there. A kill at any instant leaves no lock or a complete one, never a partial
/// `.vmig.lock`; a kill before the link leaves the run's directory with that file only, which
/// proves whose it is ([`orphaned_runs`]).
///
/// # Errors
/// I/O errors other than an existing lock.
fn create_lock(dir: &Path, lock: &LockInfo) -> Result<bool> {
    let path = dir.join(LOCK);
    let run_path = dir.join(guard::run_dir(&lock.run_id));
    let made_dir = !run_path.exists();
    std::fs::create_dir_all(&run_path)
        .context_with(|| format!("creating {}", run_path.display()))?;
    let tmp = run_path.join(LOCK_TMP);
    std::fs::write(&tmp, lock.to_bytes()?)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .context_with(|| format!("writing {}", tmp.display()))?;
    sync_dir(&run_path);
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if made_dir {
                let _ = std::fs::remove_dir(&run_path);
            }
            Ok(false)
        }
        Err(e) => Err(Error::from(e).context(format!("creating {}", path.display()))),
    }
}

/// Dead runs that no `.vmig.lock` names but whose directory holds a lock naming them: one a
/// killed taker had moved aside there (`.vmig-<run>/.lock.<pid>.stale`) and died before
/// writing its own, or the run's own lock, written but not yet linked into place when it was
/// killed (`.vmig-<run>/.lock.tmp`, [`create_lock`]). The lock, naming the same run and a
/// process that is gone, proves the directory is that run's, so it is recovered as if its
/// lock had been found. Skips `me`'s own directory and anything else.
fn orphaned_runs(dir: &Path, me: &str) -> Vec<(LockInfo, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(run) = name.strip_prefix(".vmig-") else {
            continue;
        };
        if run == me || !guard::is_plain(run) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(inside) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for file in inside.flatten() {
            let file_name = file.file_name().to_string_lossy().into_owned();
            if !guard::is_lock_aside(&file_name) && file_name != LOCK_TMP {
                continue;
            }
            let dead = std::fs::read(file.path())
                .ok()
                .and_then(|b| LockInfo::parse(&b))
                .filter(|l| l.run_id == run && l.is_stale());
            if let Some(dead) = dead {
                found.push((dead, file.path()));
                break;
            }
        }
    }
    found
}

/// Moves the dead run's lock `other`, read at `path`, to `aside` (a name of this process's):
/// `false` when the caller must look again — the lock was gone, or another run had replaced it
/// between the read and the rename (it is given back).
///
/// # Errors
/// The rename failing for another reason than a missing file.
fn move_aside(path: &Path, aside: &Path, other: &LockInfo) -> Result<bool> {
    match std::fs::rename(path, aside) {
        Ok(()) => {}
        Err(e) if not_found(&e) => return Ok(false),
        Err(e) => return Err(Error::from(e).context(format!("moving {}", path.display()))),
    }
    let moved = std::fs::read(aside).ok().and_then(|b| LockInfo::parse(&b));
    if moved.as_ref() != Some(other) {
        let _ = std::fs::hard_link(aside, path);
        let _ = std::fs::remove_file(aside);
        return Ok(false);
    }
    Ok(true)
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
/// its manifest; keeps its run directory and refuses when it is resumable work
/// ([`LockInfo::keeps_resumable`]); removes its run directory otherwise. Returns a sentence
/// saying which.
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
        let complete = complete_units(&dir.join(&run_dir));
        if dead.keeps_resumable(complete) {
            return Err(dead.resumable_refusal(
                display,
                &format!("{display}/{run_dir}/"),
                complete,
            ));
        }
        remove_all(&dir.join(&run_dir))?;
    }
    Ok(dead.recovered(committed, &format!("{display}/{run_dir}")))
}

/// The complete units (finished names of the unit scheme, at the top or in a partition folder)
/// in the run directory `run_path`; 0 when it does not exist.
fn complete_units(run_path: &Path) -> usize {
    let names = |dir: &Path| -> Vec<(String, bool)> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .map(|e| {
                        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                        (e.file_name().to_string_lossy().into_owned(), is_dir)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let is_complete = |name: &str, is_dir: bool| {
        unit_name(name).is_some_and(|u| !u.temporary && u.ext.is_none() == is_dir)
    };
    let mut count = 0;
    for (name, is_dir) in names(run_path) {
        if is_complete(&name, is_dir) {
            count += 1;
        } else if is_dir && unit_name(&name).is_none() && check_partition_name(&name).is_ok() {
            count += names(&run_path.join(&name))
                .iter()
                .filter(|(n, d)| is_complete(n, *d))
                .count();
        }
    }
    count
}

/// What resuming found: the run to continue, or one whose commit is complete.
#[derive(Debug)]
pub(crate) enum Adoption {
    /// The run directory holds exactly the record's units now; `removed` names what went
    /// (relative to the run directory).
    Writing {
        /// The leftovers removed: partial and unrecorded units, commit scaffolding.
        removed: Vec<String>,
    },
    /// The run had staged its manifest: its commit is now complete and its lock gone; the
    /// manifest now in place.
    Committed(Previous),
    /// A job shared between workers whose manifest is staged: the worker that finishes the
    /// job completes the commit (no other worker touches it, so two never move files at once).
    Staged,
}

/// Joins the job shared between workers whose run `record` names ([`vmig_core::Sink::resume`]
/// of a shared record): its lock must be there, shared and of that run. Nothing is taken over
/// or removed — the run directory holds the other workers' files; this worker writes its own,
/// under its own tag, and the worker that finishes the job lists every worker's units.
///
/// # Errors
/// [`LockInfo::other_run_refusal`] for another run's lock; an error saying the job's lock is
/// gone (or not shared) otherwise; I/O errors.
pub(crate) fn join(dir: &Path, record: &ResumeRecord, display: &str) -> Result<Adoption> {
    let run = record.run_id.as_str();
    let path = dir.join(LOCK);
    let lock = match std::fs::read(&path) {
        Ok(bytes) => Some(LockInfo::parse(&bytes).ok_or_else(|| not_a_lock(display))?),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(Error::from(e).context(format!("reading {}", path.display()))),
    };
    let placed =
        read_manifest(dir, MANIFEST, display)?.filter(|p| p.run_id.as_deref() == Some(run));
    let run_path = dir.join(guard::run_dir(run));
    let staged = placed.is_some() || exists(&run_path.join(MANIFEST));
    match lock {
        Some(l) if l.run_id != run => Err(l.other_run_refusal(display, run)),
        Some(l) if l.shared && staged => Ok(Adoption::Staged),
        Some(l) if l.shared => Ok(Adoption::Writing {
            removed: Vec::new(),
        }),
        _ if staged => Ok(Adoption::Staged),
        _ => Err(guard::lost_shared_lock(display, run)),
    }
}

/// Takes over run `record.run_id` in `dir` to resume it ([`vmig_core::Sink::resume`]): its
/// lock (which must be that run's, and its process gone — or absent), then completes its
/// commit if it got that far, else removes what the run wrote after the record (partial and
/// unrecorded units of the unit scheme, commit scaffolding) and checks that every recorded
/// unit is there with its recorded size. Returns the lock now held (this process's) with what
/// was found. On failure the lock is given back as it was.
///
/// # Errors
/// The refusals of [`LockInfo::other_run_refusal`] and [`LockInfo::running_refusal`]; an
/// [`Error::Data`] naming a recorded file that is missing or changed; I/O errors.
pub(crate) fn adopt(
    dir: &Path,
    record: &ResumeRecord,
    display: &str,
) -> Result<(LockInfo, LiveRun, Adoption)> {
    let (held, live, aside) = take_over(dir, record, display)?;
    match adopted(dir, record, display) {
        Ok(adoption) => {
            if let Some(aside) = aside {
                let _ = std::fs::remove_file(aside);
            }
            Ok((held, live, adoption))
        }
        Err(e) => {
            let path = dir.join(LOCK);
            match aside {
                Some(aside) => {
                    let _ = std::fs::rename(aside, &path);
                }
                None => {
                    let _ = unlock(dir, &record.run_id);
                }
            }
            sync_dir(dir);
            Err(e)
        }
    }
}

/// The lock of `dir` for resuming `record`'s run: created when absent, taken over when it is
/// that run's and its process is gone (moved aside first, so only one process can). Returns
/// the new lock, the run's registration in this process, and where the old lock was moved.
fn take_over(
    dir: &Path,
    record: &ResumeRecord,
    display: &str,
) -> Result<(LockInfo, LiveRun, Option<PathBuf>)> {
    let path = dir.join(LOCK);
    let run = record.run_id.as_str();
    for _ in 0..4 {
        let (held, live, aside) = match std::fs::read(&path) {
            Err(e) if not_found(&e) => {
                let mut mine = LockInfo::mine(run);
                mine.flushed = !record.units.is_empty();
                (mine, LiveRun::register(run), None)
            }
            Err(e) => return Err(Error::from(e).context(format!("reading {}", path.display()))),
            Ok(bytes) => {
                let other = LockInfo::parse(&bytes).ok_or_else(|| not_a_lock(display))?;
                if other.run_id != run {
                    return Err(other.other_run_refusal(display, run));
                }
                if !other.is_stale() {
                    return Err(other.running_refusal(display));
                }
                let live = LiveRun::register(run);
                // Inside the run directory: a kill before the new lock is written leaves no
                // name in the target that another run would take for someone else's file.
                let run_path = dir.join(guard::run_dir(run));
                std::fs::create_dir_all(&run_path)
                    .context_with(|| format!("creating {}", run_path.display()))?;
                let aside = run_path.join(guard::lock_aside(std::process::id()));
                if !move_aside(&path, &aside, &other)? {
                    continue;
                }
                let mut held = other.adopted_by_me();
                held.flushed |= !record.units.is_empty();
                (held, live, Some(aside))
            }
        };
        let created = create_lock(dir, &held);
        if matches!(created, Ok(true)) {
            return Ok((held, live, aside));
        }
        if let Some(aside) = aside {
            let _ = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
        }
        created?;
    }
    Err(Error::config(
        PLUGIN,
        format!("could not take {display}/{LOCK}: other runs keep taking it; try again"),
    ))
}

/// Checks that every file of `units` is in run `run`'s directory with the recorded size.
///
/// # Errors
/// [`guard::missing_unit`] or [`guard::changed_unit`] for the first that is not.
pub(crate) fn check_units(
    dir: &Path,
    run: &str,
    units: &[RecordUnit],
    display: &str,
) -> Result<()> {
    let run_path = dir.join(guard::run_dir(run));
    for unit in units {
        let mut bytes = 0;
        for file in unit.file_paths() {
            match std::fs::metadata(run_path.join(&file)) {
                Ok(m) if m.is_file() => bytes += m.len(),
                _ => return Err(guard::missing_unit(display, run, unit, &file)),
            }
        }
        if bytes != unit.bytes {
            return Err(guard::changed_unit(display, run, unit, bytes));
        }
    }
    Ok(())
}

/// [`adopt`] once the lock is held.
fn adopted(dir: &Path, record: &ResumeRecord, display: &str) -> Result<Adoption> {
    let run = record.run_id.as_str();
    let run_dir = guard::run_dir(run);
    let run_path = dir.join(&run_dir);
    let placed =
        read_manifest(dir, MANIFEST, display)?.filter(|p| p.run_id.as_deref() == Some(run));
    let manifest = match placed {
        Some(p) => Some(p),
        None => read_manifest(&run_path, MANIFEST, display)?,
    };
    if let Some(manifest) = manifest {
        guard::check_lists_record(&manifest, record, display)?;
        finish_commit(dir, run, display)
            .map_err(|e| e.context(format!("completing the commit of run {run} into {display}")))?;
        unlock(dir, run)?;
        return Ok(Adoption::Committed(manifest));
    }
    check_units(dir, run, &record.units, display)?;
    let mut removed = Vec::new();
    if exists(&run_path) {
        // Our own aside holds the lock to give back if this fails; `adopt` removes it after.
        let own_aside = guard::lock_aside(std::process::id());
        let scaffolding = |name: &str| {
            name == format!(".{MANIFEST}.tmp")
                || name == LOCK_TMP
                || (guard::is_lock_aside(name) && name != own_aside)
        };
        let listing = |d: &Path| -> Result<Vec<(String, bool)>> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(d).context_with(|| format!("listing {}", d.display()))? {
                let e = e?;
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
            }
            Ok(out)
        };
        for (name, is_dir) in listing(&run_path)? {
            if scaffolding(&name) {
                remove_all(&run_path.join(&name))?;
                removed.push(name);
            } else if let Some((unit, complete)) = unit_of(&name) {
                if !complete || !record.lists(&unit) {
                    remove_all(&run_path.join(&name))?;
                    removed.push(name);
                }
            } else if is_dir && check_partition_name(&name).is_ok() {
                let folder = run_path.join(&name);
                for (inner, _) in listing(&folder)? {
                    let relative = format!("{name}/{inner}");
                    if let Some((unit, complete)) = unit_of(&relative) {
                        if !complete || !record.lists(&unit) {
                            remove_all(&folder.join(&inner))?;
                            removed.push(relative);
                        }
                    }
                }
                sync_dir(&folder);
                if !record
                    .units
                    .iter()
                    .any(|u| u.partition() == Some(name.as_str()))
                {
                    // Only when emptied: a folder started after the record.
                    let _ = std::fs::remove_dir(&folder);
                }
            }
        }
        sync_dir(&run_path);
    }
    Ok(Adoption::Writing { removed })
}

/// Rewrites `dir`'s lock, held by this process as `held`, as `new` (the same run): written as
/// `<run directory>/.lock.tmp`, then renamed over `.vmig.lock`, so a crash leaves the old or
/// the new lock.
///
/// # Errors
/// When the lock is no longer `held` (naming it), or on I/O errors.
pub(crate) fn mark(dir: &Path, held: &LockInfo, new: &LockInfo, display: &str) -> Result<()> {
    let path = dir.join(LOCK);
    let current = std::fs::read(&path).ok().and_then(|b| LockInfo::parse(&b));
    if !current.as_ref().is_some_and(|c| c.is_held_by(held)) {
        return Err(guard::lost_lock(display, &held.run_id));
    }
    let run_path = dir.join(guard::run_dir(&held.run_id));
    std::fs::create_dir_all(&run_path)
        .context_with(|| format!("creating {}", run_path.display()))?;
    let tmp = run_path.join(LOCK_TMP);
    std::fs::write(&tmp, new.to_bytes()?)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .context_with(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).context_with(|| format!("replacing {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Removes the units `paths` (relative to the run directory of `run`) and their temporary
/// names, if there.
///
/// # Errors
/// When one cannot be removed.
pub(crate) fn remove_units(dir: &Path, run: &str, paths: &[String]) -> Result<()> {
    let run_path = dir.join(guard::run_dir(run));
    for p in paths {
        remove_all(&run_path.join(p))?;
    }
    sync_dir(&run_path);
    Ok(())
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
