//! The resume record of the `files` sink ([`vmig_core::Sink::resume_record`]): which run wrote
//! which complete units as of the last flush, so that a later process can adopt the run
//! directory and continue. Reading a record checks every name in it, so that nothing a record
//! says can make the sink touch anything outside its own run directory and unit names.

use std::collections::{BTreeMap, BTreeSet};

use arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};
use vmig_core::{Error, Result};
use vmig_formats::staging::StagingFormat;

use crate::guard::{self, unit_name};
use crate::manifest::ManifestEntry;
use crate::overwrite::check_partition_name;
use crate::sink::PLUGIN;

/// The version of the record layout.
const VERSION: u32 = 1;

/// The record (JSON, saved in the checkpoint next to the source positions):
///
/// ```json
/// { "vmig_files_resume": 1, "run_id": "3f2a…", "format": "parquet", "schema": "9c41d2e0",
///   "units": [ { "path": "part-00000.parquet", "rows": 4096, "bytes": 1234567 },
///              { "path": "p2023/part-00000", "rows": 10, "bytes": 900,
///                "files": ["id.npy", "vector.npy"] } ],
///   "next": { "": 1, "p2023": 1 } }
/// ```
///
/// `units` are the complete units of the run in the order they were finished, with what the
/// manifest needs (`path` relative to the target, under `<partition>/` for a named target
/// partition; `files` only for NumPy, the `.npy` names inside the unit folder); `next` is the
/// number of the next unit per folder (`""`: the top). `schema` is a hash of the field names
/// and types the units were written with. No paths outside the target, no options, no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeRecord {
    vmig_files_resume: u32,
    pub(crate) run_id: String,
    pub(crate) format: StagingFormat,
    pub(crate) schema: String,
    pub(crate) units: Vec<RecordUnit>,
    #[serde(default)]
    next: BTreeMap<String, u32>,
    /// The run is a job shared between workers: `units` are the writing worker's own (tagged)
    /// units, and the run directory and lock belong to the job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) shared: bool,
}

/// One complete unit in a [`ResumeRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordUnit {
    /// Relative to the target (and to the run directory): `[<partition>/]part-NNNNN[.ext]`.
    pub(crate) path: String,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    /// NumPy: the files inside the unit folder; empty for single-file units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) files: Vec<String>,
}

/// The hash of `schema`'s field names, types and nullability that a record keeps.
pub(crate) fn schema_id(schema: &Schema) -> String {
    let text: String = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}:{};", f.name(), f.data_type(), f.is_nullable()))
        .collect();
    format!("{:08x}", vmig_core::ids::fnv1a_32(text.as_bytes()))
}

/// The key of a folder in `next`: the partition name, `""` for the top.
fn folder_key(partition: Option<&str>) -> String {
    partition.unwrap_or_default().to_string()
}

impl RecordUnit {
    /// The record's entry of a unit the manifest lists as `entry`.
    pub(crate) fn of(entry: &ManifestEntry) -> RecordUnit {
        let files = if entry.files.len() == 1 && entry.files[0] == entry.path {
            Vec::new()
        } else {
            let prefix = format!("{}/", entry.path);
            entry
                .files
                .iter()
                .map(|f| f.strip_prefix(&prefix).unwrap_or(f).to_string())
                .collect()
        };
        RecordUnit {
            path: entry.path.clone(),
            rows: entry.rows,
            bytes: entry.bytes,
            files,
        }
    }

    /// The target partition (the folder) of the unit.
    pub(crate) fn partition(&self) -> Option<&str> {
        self.path.split_once('/').map(|(p, _)| p)
    }

    /// Every file of the unit, relative to the target.
    pub(crate) fn file_paths(&self) -> Vec<String> {
        if self.files.is_empty() {
            vec![self.path.clone()]
        } else {
            self.files
                .iter()
                .map(|f| format!("{}/{f}", self.path))
                .collect()
        }
    }

    /// The unit as the manifest lists it.
    pub(crate) fn entry(&self) -> ManifestEntry {
        ManifestEntry {
            path: self.path.clone(),
            partition: self.partition().map(str::to_string),
            files: self.file_paths(),
            rows: self.rows,
            bytes: self.bytes,
        }
    }
}

impl ResumeRecord {
    /// The record of run `run_id` with the complete units `units` (written in `format`, with a
    /// schema of hash `schema`) and the next unit number of each folder; `shared` for a job
    /// shared between workers.
    pub(crate) fn new(
        run_id: &str,
        format: StagingFormat,
        schema: &str,
        units: &[ManifestEntry],
        next: &BTreeMap<Option<String>, u32>,
        shared: bool,
    ) -> ResumeRecord {
        ResumeRecord {
            vmig_files_resume: VERSION,
            run_id: run_id.to_string(),
            format,
            schema: schema.to_string(),
            units: units.iter().map(RecordUnit::of).collect(),
            next: next
                .iter()
                .map(|(p, n)| (folder_key(p.as_deref()), *n))
                .collect(),
            shared,
        }
    }

    /// The record as JSON.
    pub(crate) fn to_value(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    /// Reads and checks a record given back by the runner. A record of another format than the
    /// sink's is read (its run can still be suspended or discarded); [`ResumeRecord::continues`]
    /// refuses to write on after it.
    ///
    /// # Errors
    /// [`Error::Config`] when it is not a record of this sink's, naming what is wrong.
    pub(crate) fn parse(value: serde_json::Value) -> Result<ResumeRecord> {
        let bad = |what: String| {
            Error::config(
                PLUGIN,
                format!(
                    "the checkpoint's record of the interrupted run is not one the files sink wrote ({what}); start the job over (`--restart`)"
                ),
            )
        };
        let record: ResumeRecord = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if record.vmig_files_resume != VERSION {
            return Err(bad(format!(
                "layout version {}, this vmig reads {VERSION}",
                record.vmig_files_resume
            )));
        }
        if record.run_id.is_empty() || record.run_id.len() > 64 || !guard::is_plain(&record.run_id)
        {
            return Err(bad(format!("run id `{}`", record.run_id)));
        }
        let format = record.format;
        for key in record.next.keys().filter(|k| !k.is_empty()) {
            check_partition_name(key).map_err(|_| bad(format!("folder `{key}`")))?;
        }
        let mut seen = BTreeSet::new();
        for unit in &record.units {
            let (partition, name) = match unit.path.split_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, unit.path.as_str()),
            };
            if let Some(p) = partition {
                check_partition_name(p).map_err(|_| bad(format!("unit `{}`", unit.path)))?;
            }
            let parsed = unit_name(name)
                .filter(|u| !u.temporary && u.ext == format.extension())
                .ok_or_else(|| bad(format!("unit `{}`", unit.path)))?;
            let files_ok = match format {
                StagingFormat::Numpy => {
                    !unit.files.is_empty()
                        && unit.files.iter().all(|f| {
                            !f.is_empty()
                                && !f.starts_with('.')
                                && f.ends_with(".npy")
                                && !f.contains(['/', '\\', ':'])
                        })
                }
                _ => unit.files.is_empty(),
            };
            if !files_ok {
                return Err(bad(format!("the files of unit `{}`", unit.path)));
            }
            if parsed.worker.is_some() != record.shared {
                return Err(bad(format!("unit `{}`", unit.path)));
            }
            if !seen.insert((partition, parsed.worker, parsed.index)) {
                return Err(bad(format!("unit `{}` listed twice", unit.path)));
            }
        }
        Ok(record)
    }

    /// Whether a sink writing `format` can write on after this record.
    ///
    /// # Errors
    /// [`Error::Config`] when the interrupted run wrote another format.
    pub(crate) fn continues(&self, format: StagingFormat) -> Result<()> {
        if self.format == format {
            return Ok(());
        }
        Err(Error::config(
            PLUGIN,
            format!(
                "the interrupted run {} wrote {} files, but this job writes {format}; start the job over (`--restart`)",
                self.run_id, self.format
            ),
        ))
    }

    /// The number of the next unit of every folder that has one: at least the recorded
    /// `next`, and past every listed unit.
    pub(crate) fn next_units(&self) -> BTreeMap<Option<String>, u32> {
        let mut next: BTreeMap<Option<String>, u32> = self
            .next
            .iter()
            .map(|(k, n)| ((!k.is_empty()).then(|| k.clone()), *n))
            .collect();
        for unit in &self.units {
            let name = unit.path.rsplit('/').next().unwrap_or(&unit.path);
            if let Some(u) = unit_name(name) {
                let slot = next
                    .entry(unit.partition().map(str::to_string))
                    .or_insert(0);
                *slot = (*slot).max(u.index.saturating_add(1));
            }
        }
        next
    }

    /// Whether `path` (relative to the run directory) is a unit the record lists.
    pub(crate) fn lists(&self, path: &str) -> bool {
        self.units.iter().any(|u| u.path == path)
    }

    /// Rows in the listed units.
    pub(crate) fn rows(&self) -> u64 {
        self.units.iter().map(|u| u.rows).sum()
    }
}

/// Where a name found in a run directory stands for resuming: `Some((unit, complete))` when
/// `relative` (a path inside the run directory, `/`-separated) belongs to a unit of this
/// sink's naming scheme — `unit` is the unit's path (`[<partition>/]part-NNNNN[.ext]`),
/// `complete` whether it is a finished unit's name (not a temporary one) — `None` for
/// anything else, which resuming leaves alone.
pub(crate) fn unit_of(relative: &str) -> Option<(String, bool)> {
    let parts: Vec<&str> = relative.split('/').collect();
    let first = *parts.first()?;
    if let Some(u) = unit_name(first) {
        return Some((first.to_string(), !u.temporary));
    }
    let second = *parts.get(1)?;
    let u = unit_name(second)?;
    check_partition_name(first).ok()?;
    Some((format!("{first}/{second}"), !u.temporary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, files: &[&str]) -> ManifestEntry {
        ManifestEntry {
            path: path.to_string(),
            partition: path.split_once('/').map(|(p, _)| p.to_string()),
            files: files.iter().map(|f| f.to_string()).collect(),
            rows: 10,
            bytes: 100,
        }
    }

    #[test]
    fn records_round_trip_and_continue_the_numbering() {
        let units = [
            entry("part-00000", &["part-00000/id.npy", "part-00000/v.npy"]),
            entry("p1/part-00003", &["p1/part-00003/id.npy"]),
        ];
        let next = BTreeMap::from([(None, 1), (Some("p1".to_string()), 4)]);
        let record = ResumeRecord::new("00ab", StagingFormat::Numpy, "s", &units, &next, false);
        let value = record.to_value().unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "vmig_files_resume": 1, "run_id": "00ab", "format": "numpy", "schema": "s",
                "units": [
                    {"path": "part-00000", "rows": 10, "bytes": 100, "files": ["id.npy", "v.npy"]},
                    {"path": "p1/part-00003", "rows": 10, "bytes": 100, "files": ["id.npy"]}
                ],
                "next": {"": 1, "p1": 4}
            })
        );
        let back = ResumeRecord::parse(value).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.units[1].entry().files, ["p1/part-00003/id.npy"]);
        assert_eq!(back.units[1].entry().partition.as_deref(), Some("p1"));
        assert_eq!(back.next_units(), next);
        assert!(back.lists("p1/part-00003") && !back.lists("p1/part-00004"));

        let single = ResumeRecord::new(
            "00ab",
            StagingFormat::Parquet,
            "s",
            &[entry("part-00007.parquet", &["part-00007.parquet"])],
            &BTreeMap::new(),
            false,
        );
        assert!(single.units[0].files.is_empty());
        assert_eq!(single.next_units(), BTreeMap::from([(None, 8)]));
    }

    #[test]
    fn records_that_name_anything_else_are_refused() {
        let good = serde_json::json!({
            "vmig_files_resume": 1, "run_id": "00ab", "format": "parquet", "schema": "s",
            "units": [{"path": "part-00000.parquet", "rows": 1, "bytes": 2}], "next": {"": 1}
        });
        let record = ResumeRecord::parse(good.clone()).unwrap();
        assert!(record.continues(StagingFormat::Parquet).is_ok());
        let err = record.continues(StagingFormat::Json).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `files` configuration: the interrupted run 00ab wrote parquet files, but this job writes json; start the job over (`--restart`)"
        );
        type Break = fn(&mut serde_json::Value);
        let cases: [(Break, &str); 7] = [
            (|r| r["run_id"] = "../x".into(), "run id `../x`"),
            (
                |r| r["units"][0]["path"] = "../part-00000.parquet".into(),
                "unit `../part-00000.parquet`",
            ),
            (
                |r| r["units"][0]["path"] = "notes.parquet".into(),
                "unit `notes.parquet`",
            ),
            (
                |r| r["units"][0]["path"] = ".part-00000.parquet.tmp".into(),
                "unit `.part-00000.parquet.tmp`",
            ),
            (
                |r| r["units"][0]["path"] = "part-0.parquet".into(),
                "unit `part-0.parquet`",
            ),
            (
                |r| r["units"][0]["files"] = serde_json::json!(["x.npy"]),
                "the files of unit `part-00000.parquet`",
            ),
            (
                |r| r["vmig_files_resume"] = 2.into(),
                "layout version 2, this vmig reads 1",
            ),
        ];
        for (change, what) in cases {
            let mut bad = good.clone();
            change(&mut bad);
            let err = ResumeRecord::parse(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid `files` configuration: the checkpoint's record of the interrupted run is not one the files sink wrote ({what}); start the job over (`--restart`)")
            );
        }
        let mut twice = good.clone();
        let unit = twice["units"][0].clone();
        twice["units"].as_array_mut().unwrap().push(unit);
        let err = ResumeRecord::parse(twice).unwrap_err();
        assert!(
            err.to_string()
                .contains("(unit `part-00000.parquet` listed twice)"),
            "{err}"
        );
        let err = ResumeRecord::parse(serde_json::json!({"flushes": 2})).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not one the files sink wrote (unknown field `flushes`"),
            "{err}"
        );
    }

    #[test]
    fn names_in_a_run_directory_are_classified_by_the_unit_scheme() {
        assert_eq!(
            unit_of("part-00001.parquet"),
            Some(("part-00001.parquet".into(), true))
        );
        assert_eq!(
            unit_of(".part-00001.parquet.tmp"),
            Some((".part-00001.parquet.tmp".into(), false))
        );
        assert_eq!(
            unit_of("part-00002/id.npy"),
            Some(("part-00002".into(), true))
        );
        assert_eq!(
            unit_of("p1/part-00002/id.npy"),
            Some(("p1/part-00002".into(), true))
        );
        assert_eq!(
            unit_of("p1/.part-00002.tmp/id.npy"),
            Some(("p1/.part-00002.tmp".into(), false))
        );
        for other in [
            "manifest.json",
            ".old-manifest.json",
            "p1/notes.txt",
            "part-1.parquet",
            "part-00001.csv",
            ".hidden/part-00001.parquet",
        ] {
            assert_eq!(unit_of(other), None, "{other}");
        }
    }
}
