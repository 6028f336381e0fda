//! What a run of the `files` sink may touch in its target: its run id and names, the lock
//! record, and the previous output as its `manifest.json` lists it.
//!
//! Shared by local ([`crate::local`]) and object-store ([`crate::remote`]) targets, so both
//! apply the same rules and say the same things.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use vmig_core::process::{is_gone, this_host, utc};
use vmig_core::{Error, Result};
use vmig_formats::staging::manifest::ManifestListing;

use crate::manifest::MANIFEST;
use crate::resume::{RecordUnit, ResumeRecord};
use crate::sink::PLUGIN;

/// The lock of a target, `<path>/.vmig.lock`.
pub(crate) const LOCK: &str = ".vmig.lock";
/// Inside a run directory: a copy of the previous manifest (object stores), kept until commit
/// ends so that an interrupted commit can be finished.
pub(crate) const OLD_MANIFEST: &str = ".old-manifest.json";
/// Inside a run directory: where a new version of the lock is written before it is renamed over
/// `.vmig.lock`.
pub(crate) const LOCK_TMP: &str = ".lock.tmp";
/// Inside a run directory: where a process that takes over the run's lock moves the old one
/// (`.lock.<pid>.stale`) until its own is written.
pub(crate) fn lock_aside(pid: u32) -> String {
    format!(".lock.{pid}.stale")
}

/// Whether `name` is a [`lock_aside`] name.
pub(crate) fn is_lock_aside(name: &str) -> bool {
    name.strip_prefix(".lock.")
        .and_then(|n| n.strip_suffix(".stale"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// How many entries a refusal names.
const SHOWN: usize = 5;

/// `.vmig-<run>`: the hidden directory (prefix) holding everything of run `run` until commit.
pub(crate) fn run_dir(run: &str) -> String {
    format!(".vmig-{run}")
}

/// `.vmig-<run>.old`: where a local commit moves the previous output before removing it.
pub(crate) fn old_dir(run: &str) -> String {
    format!(".vmig-{run}.old")
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The runs of this process that hold a lock now (from taking it until commit, suspend, abort
/// or drop), with how many sinks registered each (two sinks may try to resume the same run at
/// once; one of them then gives up). A lock naming this process's pid but a run not in here is
/// left over by a sink that is gone (dropped, or suspended) — in a long-lived process (a
/// server, a test) as good as a dead process's.
static LIVE_RUNS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Registration of a run in [`LIVE_RUNS`] while its sink holds (or is taking) the lock;
/// dropping it ends the registration.
#[derive(Debug)]
pub(crate) struct LiveRun(String);

impl LiveRun {
    /// Registers `run` as running in this process.
    pub(crate) fn register(run: &str) -> LiveRun {
        *LIVE_RUNS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(run.to_string())
            .or_insert(0) += 1;
        LiveRun(run.to_string())
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let mut live = LIVE_RUNS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = live.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.0);
            }
        }
    }
}

fn is_live_here(run: &str) -> bool {
    LIVE_RUNS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(run)
}

/// What the run holding a lock is doing, as far as it got to say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LockState {
    /// Writing (also what a killed run's lock says).
    #[default]
    Writing,
    /// Stopped so that `vmig migrate` with the same job resumes it ([`vmig_core::Sink::suspend`]).
    Suspended,
    /// Being aborted: its run directory is going away and may be incomplete.
    Aborting,
}

impl LockState {
    fn is_writing(&self) -> bool {
        *self == LockState::Writing
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The content of `.vmig.lock`: who writes into the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockInfo {
    /// Marks the file as vmig's; version of this layout.
    pub(crate) vmig_lock: u32,
    /// The writing run's id (its files are under `.vmig-<run_id>`).
    pub(crate) run_id: String,
    /// Process id of the writing vmig.
    pub(crate) pid: u32,
    /// Host name of the machine it runs on.
    pub(crate) host: String,
    /// Start of the run, seconds since the Unix epoch.
    pub(crate) started: u64,
    /// Whether a flush of this run made complete units durable — then a checkpoint may name
    /// them, and the run directory is resumable work that no other run removes. Written at the
    /// first such flush, before the flush returns (so before any checkpoint names a unit).
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) flushed: bool,
    /// What the run is doing (absent: writing).
    #[serde(default, skip_serializing_if = "LockState::is_writing")]
    pub(crate) state: LockState,
    /// The run is a job shared between workers (`[state] lease`): the lock belongs to the job,
    /// not to the process that took it, so it never counts as stale; the job's workers write
    /// into its run directory, and the worker that finishes the job removes it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) shared: bool,
}

impl LockInfo {
    /// The lock of a run starting now in this process.
    pub(crate) fn mine(run_id: &str) -> LockInfo {
        LockInfo {
            vmig_lock: 1,
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: this_host(),
            started: u64::try_from(now_nanos() / 1_000_000_000).unwrap_or(u64::MAX),
            flushed: false,
            state: LockState::Writing,
            shared: false,
        }
    }

    /// This lock, as taken over by this process for the same run (resuming it): this pid and
    /// host, writing, and its other fields kept.
    pub(crate) fn adopted_by_me(&self) -> LockInfo {
        let me = LockInfo::mine(&self.run_id);
        LockInfo {
            pid: me.pid,
            host: me.host,
            state: LockState::Writing,
            ..self.clone()
        }
    }

    /// Whether this is the lock `me` wrote (same run, same process).
    pub(crate) fn is_held_by(&self, me: &LockInfo) -> bool {
        self.run_id == me.run_id && self.pid == me.pid && self.host == me.host
    }

    /// Parses a lock file; `None` when it is not a vmig lock.
    pub(crate) fn parse(bytes: &[u8]) -> Option<LockInfo> {
        serde_json::from_slice::<LockInfo>(bytes)
            .ok()
            .filter(|l| l.vmig_lock >= 1 && !l.run_id.is_empty() && is_plain(&l.run_id))
    }

    /// The file's content.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut body = serde_json::to_vec_pretty(self).map_err(|e| Error::External(Box::new(e)))?;
        body.push(b'\n');
        Ok(body)
    }

    /// `run 0123… (pid 42 on host h, started 2026-12-02 15:50:00 UTC)`; a shared run's lock
    /// says `run 0123… (a job shared between workers, set up by pid 42 …)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "run {} ({}pid {} on host {}, started {})",
            self.run_id,
            if self.shared {
                "a job shared between workers, set up by "
            } else {
                ""
            },
            self.pid,
            self.host,
            utc(self.started)
        )
    }

    /// Whether the run that holds this lock is provably gone: it ran on this host and its
    /// process no longer exists, or it is this process and no sink of it holds the run any
    /// more ([`LiveRun`]). Elsewhere (another host, or no `/proc`) it counts as alive.
    pub(crate) fn is_stale(&self) -> bool {
        if self.shared || self.host != this_host() {
            return false;
        }
        if self.pid == std::process::id() {
            return !is_live_here(&self.run_id);
        }
        is_gone(&self.host, self.pid)
    }

    /// Whether this dead run's directory, holding `complete` complete units, is resumable work
    /// that must be kept: a flush made units durable (a checkpoint may name them) or the run
    /// was suspended — unless it was being aborted.
    pub(crate) fn keeps_resumable(&self, complete: usize) -> bool {
        complete > 0
            && self.state != LockState::Aborting
            && (self.flushed || self.state == LockState::Suspended)
    }

    /// The refusal for a target whose dead run holds resumable work (`complete` units in
    /// `run_path`): it is kept, and the message says how to resume or discard it.
    pub(crate) fn resumable_refusal(&self, target: &str, run_path: &str, complete: usize) -> Error {
        let how = match self.state {
            LockState::Suspended => "was suspended",
            _ => "stopped without finishing",
        };
        Error::config(
            PLUGIN,
            format!(
                "{target} holds the unfinished {}, which {how}: {run_path} holds {} of it that `vmig migrate` with that run's job resumes; vmig will not remove them: resume that job, or remove {run_path} by hand to discard it, then run again",
                self.describe(),
                units_phrase(complete),
            ),
        )
    }

    /// Whether a manifest was written by this lock's run.
    pub(crate) fn wrote(&self, manifest: Option<&Previous>) -> bool {
        manifest.is_some_and(|p| p.run_id.as_deref() == Some(self.run_id.as_str()))
    }

    /// The context of an error while completing this dead run's commit.
    pub(crate) fn completing(&self, target: &str) -> String {
        format!(
            "completing the interrupted commit of the earlier {} into {target}",
            self.describe()
        )
    }

    /// What the next run did about this dead run: completed its commit, or removed
    /// `leftovers` (its run directory or prefix).
    pub(crate) fn recovered(&self, committed: bool, leftovers: &str) -> String {
        let note = if committed {
            format!(
                "found the lock of the earlier {}, which died while committing, and completed its commit",
                self.describe()
            )
        } else {
            format!(
                "found the lock of the earlier {}, which died before committing, and removed its unfinished files ({leftovers}); the output it was to replace is untouched",
                self.describe()
            )
        };
        tracing::warn!(message = "Took over a stale lock.", note = note.as_str());
        note
    }

    /// The refusal for a resume of run `run` when this lock, of another run, holds the target.
    pub(crate) fn other_run_refusal(&self, target: &str, run: &str) -> Error {
        let what = if self.is_stale() {
            format!("the lock of the earlier {}, which is gone", self.describe())
        } else {
            format!("the lock of another vmig {}", self.describe())
        };
        Error::config(
            PLUGIN,
            format!(
                "cannot resume run {run} in {target}: {target}/{LOCK} is {what}, not of run {run} that this job's checkpoint continues; vmig leaves both runs' files alone: let that run finish (or, if it is gone for good, remove {target}/{LOCK}) and run this job again"
            ),
        )
    }

    /// The refusal for a resume of this lock's run while its process is alive.
    pub(crate) fn running_refusal(&self, target: &str) -> Error {
        Error::config(
            PLUGIN,
            format!(
                "another vmig process (pid {} on host {}) is running this job (run {}, started {}) into {target}; wait for it to finish or stop it, then run again (if that process is gone for good, remove {target}/{LOCK})",
                self.pid,
                self.host,
                self.run_id,
                utc(self.started)
            ),
        )
    }

    /// The refusal for a live lock held by another run.
    pub(crate) fn refusal(&self, target: &str) -> Error {
        Error::config(
            PLUGIN,
            format!(
                "{target} is being written by another vmig {}; wait for it to finish, or, if that run is gone for good, remove {target}/{LOCK} and run again (vmig leaves that run's files alone)",
                self.describe()
            ),
        )
    }
}

/// `<target>/<relative>`, without doubling a `/` that ends `target` (object-store URLs).
pub(crate) fn at(target: &str, relative: &str) -> String {
    format!("{}/{relative}", target.trim_end_matches('/'))
}

/// The error for a worker joining the shared run `run` whose lock is not there (or not shared).
pub(crate) fn lost_shared_lock(target: &str, run: &str) -> Error {
    Error::config(
        PLUGIN,
        format!(
            "cannot join run {run} of this job in {target}: {} is gone or is no longer that shared run's, so its files cannot be trusted to be complete; start the job over (`vmig migrate --restart`)",
            at(target, LOCK)
        ),
    )
}

/// The error for a recorded file of the interrupted run `run` that is gone.
pub(crate) fn missing_unit(target: &str, run: &str, unit: &RecordUnit, file: &str) -> Error {
    let run_path = at(target, &format!("{}/", run_dir(run)));
    Error::data(
        at(target, &format!("{}/{file}", run_dir(run))),
        format!(
            "this file of the interrupted run {run} (unit {}, {} rows), which the checkpoint lists as complete, is missing, so the run cannot be resumed: remove {run_path} and start the job over (`--restart`)",
            unit.path,
            thousands(unit.rows)
        ),
    )
}

/// The error for a recorded unit of the interrupted run `run` whose size changed.
pub(crate) fn changed_unit(target: &str, run: &str, unit: &RecordUnit, found: u64) -> Error {
    let run_path = at(target, &format!("{}/", run_dir(run)));
    Error::data(
        at(target, &format!("{}/{}", run_dir(run), unit.path)),
        format!(
            "this unit of the interrupted run {run} holds {found} bytes, but the checkpoint recorded {} when it was complete, so the run cannot be resumed: remove {run_path} and start the job over (`--restart`)",
            unit.bytes
        ),
    )
}

/// The error when this run's lock was replaced or removed by someone else.
pub(crate) fn lost_lock(target: &str, run: &str) -> Error {
    Error::config(
        PLUGIN,
        format!(
            "{} is no longer the lock of this run ({run}): it was removed or replaced while the run was writing; vmig changes nothing more in {target}",
            at(target, LOCK)
        ),
    )
}

/// Checks that the manifest `manifest` of run `record.run_id` (staged or in place) lists
/// every file of the record, before its commit is completed for a resume.
///
/// # Errors
/// When one is missing from it: the manifest and the checkpoint disagree.
pub(crate) fn check_lists_record(
    manifest: &Previous,
    record: &ResumeRecord,
    target: &str,
) -> Result<()> {
    for unit in &record.units {
        for file in unit.file_paths() {
            if !manifest.files.contains(&file) {
                return Err(Error::data(
                    at(target, &format!("{}/{MANIFEST}", run_dir(&record.run_id))),
                    format!(
                        "the manifest the interrupted run {} staged for its commit does not list {file}, which the checkpoint lists as complete; vmig does not complete that commit: remove {} and start the job over (`--restart`)",
                        record.run_id,
                        at(target, &format!("{}/", run_dir(&record.run_id)))
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `1 complete file` / `12 complete files`.
pub(crate) fn units_phrase(n: usize) -> String {
    match n {
        1 => "1 complete file".to_string(),
        n => format!("{} complete files", thousands(n as u64)),
    }
}

/// `409,600`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The length of a worker tag in unit names (see [`unit_name`]).
pub(crate) const TAG_LEN: usize = 8;

/// A new worker tag: [`TAG_LEN`] lowercase hex digits, random per sink.
pub(crate) fn new_tag() -> String {
    vmig_core::ids::new_run_id()[..TAG_LEN].to_string()
}

/// Whether `tag` is a worker tag as [`new_tag`] makes them.
pub(crate) fn is_tag(tag: &str) -> bool {
    tag.len() == TAG_LEN && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A name of this sink's unit scheme (see [`unit_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnitName<'a> {
    /// The tag of the worker that wrote it, in a job shared between workers.
    pub(crate) worker: Option<&'a str>,
    /// The unit's number in its folder (among the units of its worker).
    pub(crate) index: u32,
    /// `parquet` or `json`; `None` for a NumPy unit (a directory).
    pub(crate) ext: Option<&'a str>,
    /// Whether it is the temporary name of an unfinished unit (`.part-00012.parquet.tmp`).
    pub(crate) temporary: bool,
}

/// Parses a file or directory name of this sink's unit scheme, exactly as the writer spells
/// it: `part-00012.parquet`, `part-00012.json`, `part-00012` (NumPy), and their temporary names
/// `.part-00012.parquet.tmp`, `.part-00012.tmp`; in a job shared between workers each name
/// carries its worker's tag, `part-3f2a91c0-00012.parquet`. `None` for anything else.
pub(crate) fn unit_name(name: &str) -> Option<UnitName<'_>> {
    let (inner, temporary) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        Some(inner) => (inner, true),
        None => (name, false),
    };
    let rest = inner.strip_prefix("part-")?;
    let (worker, rest) = match rest.split_once('-') {
        Some((tag, rest)) if is_tag(tag) => (Some(tag), rest),
        Some(_) => return None,
        None => (None, rest),
    };
    let (digits, ext) = match rest.split_once('.') {
        Some((d, e)) => (d, Some(e)),
        None => (rest, None),
    };
    if !matches!(ext, None | Some("parquet" | "json"))
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let index: u32 = digits.parse().ok()?;
    (format!("{index:05}") == digits).then_some(UnitName {
        worker,
        index,
        ext,
        temporary,
    })
}

/// Output of an earlier vmig run, as its manifest lists it: the only files a run may replace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Previous {
    /// The run that wrote it (manifests before run ids: `None`).
    pub(crate) run_id: Option<String>,
    /// Every file, relative to the target, in manifest order.
    pub(crate) files: Vec<String>,
    /// Unit directories (NumPy) and partition folders, deepest first: removed when emptied.
    pub(crate) dirs: Vec<String>,
    /// Its units, as many as it lists.
    pub(crate) units: usize,
    /// The rows and bytes it says it holds.
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

impl Previous {
    /// Reads `bytes` of `<target>/<name>` as a vmig manifest.
    ///
    /// # Errors
    /// When it is not one (it is then not vmig's), or when it lists a path outside the target.
    pub(crate) fn parse(bytes: &[u8], target: &str, name: &str) -> Result<Previous> {
        let m = ManifestListing::parse(bytes).map_err(|e| {
            Error::config(
                PLUGIN,
                format!(
                    "{target}/{name} is not a vmig manifest ({e}); vmig will not replace or remove output it cannot prove it wrote: move it away or choose another `path`"
                ),
            )
        })?;
        let _version = m.vmig_manifest;
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        for unit in &m.files {
            for f in unit.files.iter().chain(std::iter::once(&unit.path)) {
                if !is_relative_inside(f) {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "{target}/{name} lists `{f}`, which is not a plain path inside {target}; vmig will not touch it: fix or remove that manifest"
                        ),
                    ));
                }
            }
            files.extend(unit.files.iter().cloned());
            if !unit.files.iter().any(|f| f == &unit.path) {
                dirs.insert(unit.path.clone());
            }
            if let Some(p) = &unit.partition {
                dirs.insert(p.clone());
            }
        }
        let mut dirs: Vec<String> = dirs.into_iter().filter(|d| is_relative_inside(d)).collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        Ok(Previous {
            run_id: m.run_id,
            files,
            dirs,
            units: m.files.len(),
            rows: m.total_rows,
            bytes: m.total_bytes,
        })
    }

    /// `3 files and manifest.json`.
    pub(crate) fn summary(&self) -> String {
        match self.files.len() {
            1 => format!("1 file and {MANIFEST}"),
            n => format!("{n} files and {MANIFEST}"),
        }
    }

    /// The refusal when `overwrite` is off.
    pub(crate) fn refusal(&self, target: &str) -> Error {
        let names: Vec<&str> = self.files.iter().map(String::as_str).collect();
        Error::config(
            PLUGIN,
            format!(
                "{target} already holds vmig output ({MANIFEST}, {}); choose another `path` or set `overwrite = true` to replace it",
                listing(&names)
            ),
        )
    }
}

/// A path of `/`-separated plain names: no `.`/`..`, no leading `/`, no `\` or `:`, and not a
/// vmig-internal (`.vmig…`) name.
fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with(".vmig")
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', ':'])
        })
}

/// Whether `name` is a plain id: ASCII letters, digits, `-` and `_`.
pub(crate) fn is_plain(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `a, b, c, d, e and 7 more (12 entries)`.
pub(crate) fn listing(names: &[&str]) -> String {
    let shown = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        format!(
            "{shown} and {} more ({} entries)",
            names.len() - SHOWN,
            names.len()
        )
    } else {
        shown
    }
}

/// The refusal for a target that holds things but no vmig manifest.
pub(crate) fn foreign_refusal(target: &str, entries: &[String]) -> Error {
    let names: Vec<&str> = entries.iter().map(String::as_str).collect();
    Error::config(
        PLUGIN,
        format!(
            "{target} is not empty and holds no vmig output ({MANIFEST}): {}; vmig writes only into an empty directory or over output whose {MANIFEST} it wrote, and never removes what it did not write: choose another `path` or move these away",
            listing(&names)
        ),
    )
}

/// The refusal for new files whose names are taken by files the previous manifest does not list.
pub(crate) fn conflict_refusal(target: &str, taken: &[String]) -> Error {
    let names: Vec<&str> = taken.iter().map(String::as_str).collect();
    Error::config(
        PLUGIN,
        format!(
            "cannot put the new output in place: {target} already holds {}, which vmig did not write (no previous {MANIFEST} lists it); nothing was changed: move these away and run again",
            listing(&names)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_must_be_vmig_and_stay_inside() {
        let ok = br#"{"vmig_manifest":1,"run_id":"ab","files":[
            {"path":"part-00000","files":["part-00000/id.npy","part-00000/vec.npy"]},
            {"path":"p1/part-00000.parquet","partition":"p1","files":["p1/part-00000.parquet"]}]}"#;
        let p = Previous::parse(ok, "/t", "manifest.json").unwrap();
        assert_eq!(p.run_id.as_deref(), Some("ab"));
        assert_eq!(p.files.len(), 3);
        assert_eq!(p.dirs, ["p1", "part-00000"]);
        assert_eq!(p.summary(), "3 files and manifest.json");

        let foreign = Previous::parse(br#"{"files": []}"#, "/t", "manifest.json").unwrap_err();
        assert!(
            foreign
                .to_string()
                .contains("/t/manifest.json is not a vmig manifest"),
            "{foreign}"
        );
        for bad in ["../x", "/etc/passwd", "a//b", ".vmig.lock", "a/./b"] {
            let text =
                format!(r#"{{"vmig_manifest":1,"files":[{{"path":"x","files":["{bad}"]}}]}}"#);
            let err = Previous::parse(text.as_bytes(), "/t", "manifest.json").unwrap_err();
            assert!(
                err.to_string().contains(&format!(
                    "lists `{bad}`, which is not a plain path inside /t"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn locks_parse_and_describe() {
        let l = LockInfo::mine("00ff");
        let back = LockInfo::parse(&l.to_bytes().unwrap()).unwrap();
        assert_eq!(back, l);
        // This process: alive while a sink of it holds the run, gone after.
        assert!(l.is_stale(), "no sink of this process holds run 00ff");
        let live = LiveRun::register("00ff");
        let again = LiveRun::register("00ff");
        assert!(!l.is_stale(), "a sink of this process holds run 00ff");
        drop(live);
        assert!(!l.is_stale(), "the second registration still holds it");
        drop(again);
        assert!(l.is_stale());
        // The lock layout: `flushed` and `state` only when set.
        assert_eq!(
            serde_json::to_value(&l).unwrap().as_object().unwrap().len(),
            5,
            "{l:?}"
        );
        let suspended = LockInfo {
            flushed: true,
            state: LockState::Suspended,
            ..l.clone()
        };
        let json = serde_json::to_value(&suspended).unwrap();
        assert_eq!(
            (json["flushed"].clone(), json["state"].clone()),
            (true.into(), "suspended".into())
        );
        assert_eq!(
            LockInfo::parse(&suspended.to_bytes().unwrap()).unwrap(),
            suspended
        );
        assert!(suspended.keeps_resumable(1) && !suspended.keeps_resumable(0));
        assert!(LockInfo {
            state: LockState::Writing,
            ..suspended.clone()
        }
        .keeps_resumable(3));
        assert!(!LockInfo {
            state: LockState::Aborting,
            ..suspended.clone()
        }
        .keeps_resumable(3));
        assert!(
            !l.keeps_resumable(3),
            "never flushed: nothing a checkpoint names"
        );
        assert!(LockInfo::parse(b"pid 12").is_none());
        assert!(LockInfo::parse(
            br#"{"vmig_lock":1,"run_id":"../x","pid":1,"host":"h","started":0}"#
        )
        .is_none());
        let other = LockInfo {
            host: "elsewhere".into(),
            pid: 7,
            started: 0,
            ..l
        };
        assert!(!other.is_stale(), "another host's run counts as alive");
        assert_eq!(
            other.describe(),
            "run 00ff (pid 7 on host elsewhere, started 1970-01-01 00:00:00 UTC)"
        );
        assert_eq!(listing(&["a", "b"]), "a, b");
        assert_eq!(thousands(409_600), "409,600");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(units_phrase(1), "1 complete file");
        assert_eq!(units_phrase(1200), "1,200 complete files");
        assert_eq!(
            listing(&["1", "2", "3", "4", "5", "6", "7"]),
            "1, 2, 3, 4, 5 and 2 more (7 entries)"
        );
    }

    #[test]
    fn unit_names_are_parsed_exactly_as_the_writer_spells_them() {
        let u = |index, ext, temporary| {
            Some(UnitName {
                worker: None,
                index,
                ext,
                temporary,
            })
        };
        assert_eq!(
            unit_name("part-3f2a91c0-00012.parquet"),
            Some(UnitName {
                worker: Some("3f2a91c0"),
                index: 12,
                ext: Some("parquet"),
                temporary: false
            })
        );
        assert_eq!(
            unit_name(".part-3f2a91c0-00000.tmp").map(|u| (u.worker, u.temporary)),
            Some((Some("3f2a91c0"), true))
        );
        assert!(is_tag(&new_tag()));
        assert_eq!(
            unit_name("part-00012.parquet"),
            u(12, Some("parquet"), false)
        );
        assert_eq!(unit_name("part-00012.json"), u(12, Some("json"), false));
        assert_eq!(unit_name("part-00012"), u(12, None, false));
        assert_eq!(unit_name("part-123456"), u(123_456, None, false));
        assert_eq!(
            unit_name(".part-00012.parquet.tmp"),
            u(12, Some("parquet"), true)
        );
        assert_eq!(unit_name(".part-00000.tmp"), u(0, None, true));
        for no in [
            "part-12.parquet",
            "part-012345",
            "part-00012.csv",
            "part-.json",
            ".part-00012",
            "part-00012.parquet.tmp",
            "xpart-00012",
            "part-99999999999",
            "part-3F2A91C0-00012.parquet",
            "part-3f2a91c-00012.parquet",
            "part-3f2a91c0-12.parquet",
            "part-3f2a91c0.parquet",
            "part-3f2a91c0-00012-00001.parquet",
        ] {
            assert_eq!(unit_name(no), None, "{no}");
        }
        assert_eq!(at("s3://b/p/", ".vmig.lock"), "s3://b/p/.vmig.lock");
        assert_eq!(at("/data/out", "x"), "/data/out/x");
    }
}
