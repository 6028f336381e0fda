//! What a run of the `files` sink may touch in its target: its run id and names, the lock
//! record, and the previous output as its `manifest.json` lists it.
//!
//! Shared by local ([`crate::local`]) and object-store ([`crate::remote`]) targets, so both
//! apply the same rules and say the same things.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use vmig_core::{Error, Result};

use crate::manifest::MANIFEST;
use crate::sink::PLUGIN;

/// The lock of a target, `<path>/.vmig.lock`.
pub(crate) const LOCK: &str = ".vmig.lock";
/// Inside a run directory: a copy of the previous manifest (object stores), kept until commit
/// ends so that an interrupted commit can be finished.
pub(crate) const OLD_MANIFEST: &str = ".old-manifest.json";
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

/// The name of this machine, as the lock records it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
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
        }
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

    /// `run 0123… (pid 42 on host h, started 2026-12-02 15:50:00 UTC)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "run {} (pid {} on host {}, started {})",
            self.run_id,
            self.pid,
            self.host,
            utc(self.started)
        )
    }

    /// Whether the run that holds this lock is provably gone: it ran on this host and its
    /// process no longer exists. Elsewhere (another host, or no `/proc`) it counts as alive.
    pub(crate) fn is_stale(&self) -> bool {
        cfg!(target_os = "linux")
            && self.host == this_host()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
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

/// `2026-12-02 15:50:00 UTC` for seconds since the epoch.
pub(crate) fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A `manifest.json` as far as the sink needs to read it back: which run wrote it and which
/// files it lists. Any other key is ignored, so every manifest version reads.
#[derive(Debug, Clone, Deserialize)]
struct ManifestFiles {
    vmig_manifest: u32,
    #[serde(default)]
    run_id: Option<String>,
    files: Vec<ManifestUnit>,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestUnit {
    path: String,
    #[serde(default)]
    partition: Option<String>,
    files: Vec<String>,
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
}

impl Previous {
    /// Reads `bytes` of `<target>/<name>` as a vmig manifest.
    ///
    /// # Errors
    /// When it is not one (it is then not vmig's), or when it lists a path outside the target.
    pub(crate) fn parse(bytes: &[u8], target: &str, name: &str) -> Result<Previous> {
        let m: ManifestFiles = serde_json::from_slice(bytes).map_err(|e| {
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

fn is_plain(name: &str) -> bool {
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
    fn utc_formats_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_226_600), "2026-12-02 15:50:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

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
        assert!(!l.is_stale(), "this process is alive");
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
        assert_eq!(
            listing(&["1", "2", "3", "4", "5", "6", "7"]),
            "1, 2, 3, 4, 5 and 2 more (7 entries)"
        );
    }
}
