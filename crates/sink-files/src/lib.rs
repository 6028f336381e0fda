//! vmig-sink-files: the `files` sink, writing the staging files Milvus 2.x bulk import reads, to a
//! local directory or an object store (`s3://`, `gs://`, `az://`).
//!
//! Layout of the target directory:
//!
//! ```text
//! part-00000.parquet   part-00001.parquet   …   manifest.json      (format = "parquet")
//! part-00000.json      part-00001.json      …   manifest.json      (format = "json")
//! part-00000/<field>.npy …  part-00001/<field>.npy … manifest.json  (format = "numpy")
//! ```
//!
//! Each `part-NNNNN` is one Milvus import unit (one file, or one set of `.npy` files) of at most
//! `max_file_size` bytes; `manifest.json`, written on commit, lists every unit with its files,
//! row count and size, the schema (field names, Arrow and Milvus types, vector dimensions) and
//! the total row count.
//!
//! Rows whose source names a target partition (e.g. a Milvus 1.x partition tag) go to a
//! folder of that name with the same layout, numbered from `part-00000` in each folder
//! (`<path>/p2023/part-00000.parquet`, …; import each folder into its Milvus partition); rows of
//! unnamed partitions stay at the top. Manifest entries carry `partition` and the
//! folder-relative `path`. The name must be a plain folder name (no `/`, `\`, `:`, leading `.`
//! or vmig file name). Earlier vmig output one level down counts as existing output
//! (`overwrite`).
//!
//! The main design decision: a unit is *either complete or absent*. The encoders in
//! [`vmig_formats::staging`] run in `spawn_blocking` on a file under a temporary name
//! (`.part-00000.parquet.tmp`), and the unit gets its final name only when it is finished — by
//! a rename, or by a single PUT / completed multipart upload. A flush closes the open unit, so
//! everything accepted before a successful flush is in complete, durable files; the next write
//! opens a new unit. Writers size units exactly (NumPy, JSON) or by an upper-bound estimate
//! (Parquet) *before* appending rows, so no file ever has to be rewritten or split after the
//! fact. Memory stays at about one batch (Parquet: one row group).
//!
//! Modules: `sink` (the [`vmig_core::Sink`] contract: claim, publish, commit swap, abort),
//! `writer` (the blocking side: a [`vmig_formats::staging::RotatingWriter`], shared with the
//! `milvus2` sink's bulk mode, plus the renames into place), `manifest`, `overwrite` (previous
//! output, conflicts, vmig's own names), `guard` (run ids, lock, reading a previous manifest),
//! `local` and `remote` (the two kinds of target). Object-store uploads go through
//! [`vmig_core::store::upload_file`], the one upload path of the workspace.
//!
//! # What a run may touch
//!
//! A run removes, replaces or moves only what it can prove vmig wrote: the files of this run,
//! and the files that the vmig `manifest.json` already in `path` lists (plus that manifest).
//! Nothing is ever matched by name pattern.
//!
//! * **Run directory.** Each run has a random id; everything it writes goes to the hidden
//!   `<path>/.vmig-<run>/` (same file system, so renames work; for object stores the prefix
//!   `<path>/.vmig-<run>/`, uploaded from a local staging directory), laid out as the final
//!   output. Until commit nothing of the run is outside it, so neither a failure nor a
//!   `SIGKILL` ever leaves anything that looks like complete output, and the previous output
//!   stays exactly as it was. `abort` removes that directory and the lock, nothing else, and
//!   reports what the target holds ([`vmig_core::AbortReport`]).
//! * **Lock.** `<path>/.vmig.lock`, created only if absent (`O_EXCL`; on object stores a
//!   create-only PUT where the store offers it, else best-effort), holds JSON `{run_id, pid,
//!   host, started}`. A second run into the same `path` is refused naming the holder. A lock
//!   whose process is gone (same host, no `/proc/<pid>`) is stale: the next run takes it over
//!   and deals with the dead run's leftovers (below). A lock of another host never counts as
//!   stale: the message says to remove it by hand if that run is truly gone.
//! * **What is there.** `prepare` reads `<path>/manifest.json`: it must be a vmig manifest
//!   (`vmig_manifest` key, paths inside `path`). Earlier output without `overwrite` is
//!   refused; a non-empty `path` without a vmig manifest is refused whatever `overwrite`
//!   says, listing what is there. `prepare` removes nothing.
//! * **Commit = swap.** New files never go over a file the old manifest does not list (checked
//!   before anything moves; such a conflict is refused, and this run's files removed). The new
//!   manifest is written into the run directory first; from then on the commit is completed,
//!   never undone: the old manifest's files go to `<path>/.vmig-<run>.old/` (the old manifest
//!   last), the new files are renamed into place, the new manifest goes in place, then the
//!   `.old` and run directories and the lock are removed. Unit folders and partition folders
//!   of the old output are removed only when that leaves them empty. On object stores, which
//!   cannot rename, a copy of the old manifest is saved in the run prefix, the old manifest is
//!   deleted, the new objects are copied into place (server-side; S3 copies at most 5 GiB per
//!   request, so `max_file_size` is limited to that for `s3://`), then the new manifest; then
//!   the old objects the new output did not replace and the run prefix are deleted. Keys are
//!   checked for foreign objects before the first copy; one written there during the copies
//!   would be replaced (copies must be allowed to replace old objects of the same name).
//! * **Interrupted commit.** Every step is idempotent. A run that finds a stale lock whose run
//!   had staged its manifest finishes that commit (roll-forward) before starting; a stale run
//!   that had not got that far only has its run directory, which is removed.
//!
//! The manifest records the writing run's `run_id`; readers ignore keys they do not know.
//!
//! # Several workers on one job
//!
//! With `[state] lease` several processes write one job ([`vmig_core::lease`]). The worker
//! that sets the job up claims the target as above and marks the lock `"shared": true`: it then
//! belongs to the job, not to a process, and never counts as stale (a run of another job is
//! refused while it is there). The other workers join through the record it published: they
//! check the lock is that run's and take over or remove nothing. Every worker writes its own
//! units into the one run directory under names carrying a worker tag of its own,
//! `part-3f2a91c0-00000.parquet`, so no two workers ever write one name. A stopping worker
//! keeps the units its last checkpoint names and removes only what it wrote after. The worker
//! that finishes the job gets every worker's last record
//! ([`vmig_core::Sink::commit_shared`]), checks that each unit they name is in the run
//! directory with its recorded size, writes one manifest listing them all and commits as one
//! process does; whatever a dead worker wrote after its last record is in no record and goes
//! with the run directory.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vmig_core::registry::{BuildContext, SinkConfig};
use vmig_core::{Error, Result, Sink};
use vmig_formats::staging::{ParquetCompression, ParquetOptions, StagingFormat, StagingOptions};

mod guard;
mod local;
mod manifest;
mod overwrite;
mod readback;
mod remote;
mod resume;
mod sink;
mod writer;

pub use sink::FilesSink;
/// The size type of `max_file_size` and `row_group_size` (units: [`vmig_core::size`]).
pub use vmig_core::size::ByteSize;
/// The largest file Milvus imports; `max_file_size` may not exceed it.
pub use vmig_formats::staging::MILVUS_MAX_FILE_SIZE;

/// The largest object S3 copies in one request (`CopyObject`); the commit copies each file
/// from the run prefix into place.
pub const S3_MAX_COPY: ByteSize = ByteSize::gib(5);

/// Configuration of the `files` sink (`[sink] type = "files"`).
///
/// Output goes to `path` as `part-00000.parquet`, `part-00001.parquet`, … (`.json` for JSON,
/// `part-00000/<field>.npy` directories for NumPy) plus `manifest.json`; see the crate docs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSinkConfig {
    /// Output directory: a local path (relative paths resolve against the job file's
    /// directory) or an `s3://bucket/prefix`, `gs://…` or `az://…` URL. For Milvus bulk import
    /// it must be inside the bucket Milvus uses.
    pub path: String,
    /// File format: `parquet` (Milvus 2.3.4+ / 2.4+, recommended), `numpy` (Milvus 2.3 layout:
    /// one directory of `<field>.npy` per unit) or `json` (row-based `{"rows": […]}`).
    #[serde(default)]
    pub format: StagingFormat,
    /// Largest file (for NumPy: set of `.npy` files) to write: a byte count or a size such as
    /// `"512MiB"`, `"1GiB"`, `"64MB"` ([units](vmig_core::size)). Default 1 GiB; Milvus refuses
    /// files over 16 GiB.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Parquet only: target size of a row group (default `"32MiB"`, what pymilvus writes; it
    /// bounds the memory Milvus' reader needs; [units](vmig_core::size)).
    #[serde(default = "default_row_group_size")]
    pub row_group_size: ByteSize,
    /// Parquet only: page compression, `none` (default: float vectors barely compress and
    /// writing stays fast), `snappy`, `zstd` or `lz4`.
    #[serde(default)]
    pub compression: ParquetCompression,
    /// Object-store options (`aws_endpoint`, `aws_region`, `aws_access_key_id`, …); the cloud's
    /// standard environment variables are used otherwise.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "vmig_core::redact::serialize_redacted"
    )]
    pub storage: BTreeMap<String, String>,
    /// Replace earlier vmig output in `path`: exactly the files its `manifest.json` lists, and
    /// that manifest, at commit (the earlier output stays intact until then). When `false`
    /// (default) such output makes the job fail before anything is written. A `path` holding
    /// anything but vmig output is refused either way.
    #[serde(default)]
    pub overwrite: bool,
}

fn default_max_file_size() -> ByteSize {
    ByteSize::gib(1)
}

fn default_row_group_size() -> ByteSize {
    ByteSize::mib(32)
}

impl FilesSinkConfig {
    /// A config writing `format` files to `path`, everything else default.
    pub fn new(path: impl Into<String>, format: StagingFormat) -> Self {
        FilesSinkConfig {
            path: path.into(),
            format,
            max_file_size: default_max_file_size(),
            row_group_size: default_row_group_size(),
            compression: ParquetCompression::None,
            storage: BTreeMap::new(),
            overwrite: false,
        }
    }

    pub(crate) fn staging_options(&self) -> StagingOptions {
        StagingOptions {
            parquet: ParquetOptions {
                row_group_bytes: self.row_group_size.bytes(),
                compression: self.compression,
            },
            sync: true,
        }
    }
}

#[async_trait::async_trait]
impl SinkConfig for FilesSinkConfig {
    const NAME: &'static str = "files";
    const SUMMARY: &'static str =
        "Milvus 2.x bulk-import files (Parquet, NumPy or row-based JSON) in a directory or object store";

    fn example() -> Self {
        FilesSinkConfig::new("out/", StagingFormat::Parquet)
    }

    fn validate(&self) -> Result<()> {
        if self.path.trim().is_empty() {
            return Err(Error::config(
                Self::NAME,
                "`path` is empty; name the output directory",
            ));
        }
        vmig_core::store::check_options(&self.path, &self.storage)?;
        if self.max_file_size.bytes() == 0 {
            return Err(Error::config(
                Self::NAME,
                "`max_file_size` must be positive",
            ));
        }
        if self.max_file_size > MILVUS_MAX_FILE_SIZE {
            return Err(Error::config(
                Self::NAME,
                format!(
                    "`max_file_size` = {} is over the {MILVUS_MAX_FILE_SIZE} Milvus imports per file; use at most that (about 1GiB is best)",
                    self.max_file_size
                ),
            ));
        }
        let on_s3 = self.path.starts_with("s3://") || self.path.starts_with("s3a://");
        if on_s3 && self.max_file_size > S3_MAX_COPY {
            return Err(Error::config(
                Self::NAME,
                format!(
                    "`max_file_size` = {} is over the {S3_MAX_COPY} S3 copies in one request, and files are copied into place at commit; use at most that",
                    self.max_file_size
                ),
            ));
        }
        if self.row_group_size.bytes() == 0 {
            return Err(Error::config(
                Self::NAME,
                "`row_group_size` must be positive",
            ));
        }
        Ok(())
    }

    /// Several workers write one job: each its own units (named with its worker tag), one
    /// manifest by the worker that finishes the job.
    fn shares_jobs(&self) -> bool {
        true
    }

    /// The output directory, when it is local.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[("path", Some(&self.path))])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Sink>> {
        self.validate()?;
        let target = vmig_core::store::resolve(&ctx.resolve(&self.path), &self.storage)?;
        Ok(Box::new(FilesSink::new(self, target)))
    }

    /// Parquet output in a local directory can be read back (for `vmig verify`); other formats
    /// and object stores cannot yet.
    async fn open_target(
        &self,
        ctx: &BuildContext,
        _schema: &arrow::datatypes::SchemaRef,
    ) -> Result<Option<Box<dyn vmig_core::Source>>> {
        let target = vmig_core::store::resolve(&ctx.resolve(&self.path), &self.storage)?;
        match (self.format, target.local) {
            (StagingFormat::Parquet, Some(dir)) => Ok(Some(Box::new(
                tokio::task::spawn_blocking(move || readback::ParquetDir::open(dir))
                    .await
                    .map_err(|e| Error::External(Box::new(e)))??,
            ))),
            _ => Ok(None),
        }
    }
}

vmig_core::redacted_debug!(FilesSinkConfig);

vmig_core::register_sink!(FilesSinkConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_defaults_apply() {
        let v = serde_json::to_value(FilesSinkConfig::example()).unwrap();
        let back: FilesSinkConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, FilesSinkConfig::example());
        let c: FilesSinkConfig = serde_json::from_value(serde_json::json!({
            "path": "x", "max_file_size": "200KiB", "format": "numpy"
        }))
        .unwrap();
        assert_eq!(c.max_file_size, ByteSize::kib(200));
        assert_eq!(c.row_group_size, ByteSize::mib(32));
        assert_eq!(c.format, StagingFormat::Numpy);
        assert!(!c.overwrite);
        let c: FilesSinkConfig =
            serde_json::from_value(serde_json::json!({"path": "x", "max_file_size": 1000}))
                .unwrap();
        assert_eq!(c.max_file_size, ByteSize(1000));
    }

    #[test]
    fn bad_options_are_config_errors() {
        let unknown = serde_json::from_value::<FilesSinkConfig>(serde_json::json!({
            "path": "x", "formt": "json"
        }));
        assert_eq!(unknown.unwrap_err().to_string(), "unknown field `formt`, expected one of `path`, `format`, `max_file_size`, `row_group_size`, `compression`, `storage`, `overwrite`");
        let bad_format = serde_json::from_value::<FilesSinkConfig>(
            serde_json::json!({"path": "x", "format": "csv"}),
        );
        assert_eq!(
            bad_format.unwrap_err().to_string(),
            "unknown variant `csv`, expected one of `parquet`, `numpy`, `json`"
        );
        let mut c = FilesSinkConfig::example();
        c.max_file_size = ByteSize::gib(17);
        assert!(matches!(c.validate(), Err(Error::Config { .. })));
        c.max_file_size = ByteSize(0);
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid `files` configuration: `max_file_size` must be positive"
        );
    }

    /// `max_file_size` and `row_group_size` follow [`vmig_core::size`]: `MB` is 10^6, `MiB`
    /// 2^20, a bare `m` is refused (it used to mean MiB here), and sizes print canonically.
    #[test]
    fn sizes_have_one_meaning() {
        let c: FilesSinkConfig =
            serde_json::from_value(serde_json::json!({ "path": "x", "row_group_size": "8MB" }))
                .unwrap();
        assert_eq!(c.row_group_size, ByteSize(8_000_000));
        for (key, value, error) in [
            ("max_file_size", "512m", "`max_file_size`: `512m` is ambiguous: write \"512MiB\" (512 * 2^20 bytes) or \"512MB\" (512 * 10^6 bytes)"),
            ("row_group_size", "8M", "`row_group_size`: `8M` is ambiguous: write \"8MiB\" (8 * 2^20 bytes) or \"8MB\" (8 * 10^6 bytes)"),
            ("max_file_size", "1TB", "`max_file_size` = 976562500KiB is over the 16GiB Milvus imports per file; use at most that (about 1GiB is best)"),
        ] {
            let config = serde_json::json!({ "path": "x", key: value });
            let got = vmig_core::registry::parse_sink("files", config).map(|_| ());
            let want = format!("invalid `files` configuration: {error}");
            assert_eq!(got.map_err(|e| e.to_string()), Err(want));
        }
        let v = serde_json::to_value(FilesSinkConfig {
            max_file_size: ByteSize(1000),
            ..FilesSinkConfig::example()
        })
        .unwrap();
        assert_eq!(v["max_file_size"], "1000B");
        assert_eq!(v["row_group_size"], "32MiB");
        let back: FilesSinkConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back.max_file_size, ByteSize(1000));
        assert_eq!(MILVUS_MAX_FILE_SIZE, ByteSize(16 << 30));
        assert_eq!(S3_MAX_COPY, ByteSize(5 << 30));
    }

    #[test]
    fn registered_as_files() {
        let sinks = vmig_core::registry::sinks().unwrap();
        let plugin = sinks.get("files").unwrap();
        let parsed = plugin.parse(plugin.example_config()).unwrap();
        assert_eq!(parsed.plugin(), "files");
    }
}
