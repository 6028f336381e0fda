//! The runtime `files` sink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use vmig_core::store::StoreLocation;
use vmig_core::vector;
use vmig_core::{AbortReport, CommitReport, Error, FlushReport, Result, ResultExt, Sink};
use vmig_formats::staging::{check_schema, StagingFormat, StagingOptions, StagingWriter};

use crate::FilesSinkConfig;

const PLUGIN: &str = "files";
const MANIFEST: &str = "manifest.json";
/// Files up to this size are uploaded with one PUT, larger ones in parts.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// Multipart part size and read buffer.
const PART_SIZE: usize = 16 << 20;
/// Parts in flight during a multipart upload.
const UPLOAD_CONCURRENCY: usize = 4;

/// Writes Milvus bulk-import staging files; built from [`FilesSinkConfig`].
#[derive(Debug)]
pub struct FilesSink {
    target: StoreLocation,
    overwrite: bool,
    /// The blocking side; `None` only while a blocking task runs (or after it panicked).
    core: Option<Core>,
    /// Holds the local staging directory for remote targets.
    staging_dir: Option<tempfile::TempDir>,
    prepared: Option<SchemaRef>,
    /// Whether `prepare` created the local target directory.
    created_dir: bool,
    units: Vec<Unit>,
    /// Objects uploaded by this run (remote targets), for `abort`.
    uploaded: Vec<ObjectPath>,
    rows_since_flush: u64,
    bytes_since_flush: u64,
}

/// A finished import unit in the target.
#[derive(Debug, Clone, Serialize)]
struct Unit {
    /// `part-00000.parquet`, or `part-00000` for NumPy, relative to the target (under
    /// `<partition>/` for a named target partition).
    path: String,
    /// The target partition the rows belong in, when the source named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<String>,
    /// Files relative to the target (the unit itself, or each `.npy`).
    files: Vec<String>,
    rows: u64,
    bytes: u64,
}

/// A unit that was just finished: renamed into place (local) or waiting for upload (remote).
#[derive(Debug)]
struct Closed {
    unit: Unit,
    /// Where each of `unit.files` is on the local disk now.
    local_files: Vec<PathBuf>,
    /// The local file or directory of the unit.
    local_path: PathBuf,
}

/// Everything the blocking encoder needs; moved into `spawn_blocking` and back.
#[derive(Debug)]
struct Core {
    format: StagingFormat,
    max_file_size: u64,
    options: StagingOptions,
    schema: Option<SchemaRef>,
    /// Local target directory, or the local staging directory of a remote target.
    work_dir: PathBuf,
    /// Local target: finished units are renamed into `work_dir`.
    local: bool,
    /// The open unit of each target partition (`None`: no named partition), with its index.
    current: BTreeMap<Option<String>, (StagingWriter, u32)>,
    /// The next unit index of each target partition (each folder counts from 0).
    next_index: BTreeMap<Option<String>, u32>,
    /// Partition folders this run created (local targets), for `abort`.
    created_dirs: BTreeSet<String>,
    /// Units finished by the blocking side and not yet taken by [`FilesSink::publish`]; kept
    /// here so that they are known (and removed by `abort`) even when a later step fails.
    closed: Vec<Closed>,
}

impl FilesSink {
    /// A sink writing to `target` as `config` says. Does no I/O.
    pub fn new(config: &FilesSinkConfig, target: StoreLocation) -> FilesSink {
        let local = target.local.is_some();
        FilesSink {
            overwrite: config.overwrite,
            core: Some(Core {
                format: config.format,
                max_file_size: config.max_file_size.bytes(),
                options: config.staging_options(),
                schema: None,
                work_dir: target.local.clone().unwrap_or_default(),
                local,
                current: BTreeMap::new(),
                next_index: BTreeMap::new(),
                created_dirs: BTreeSet::new(),
                closed: Vec::new(),
            }),
            target,
            staging_dir: None,
            prepared: None,
            created_dir: false,
            units: Vec::new(),
            uploaded: Vec::new(),
            rows_since_flush: 0,
            bytes_since_flush: 0,
        }
    }

    fn format(&self) -> Result<StagingFormat> {
        Ok(self.core()?.format)
    }

    fn core(&self) -> Result<&Core> {
        self.core.as_ref().ok_or_else(lost_core)
    }

    /// Runs `f` on the core in `spawn_blocking` and puts the core back.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Core) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut core = self.core.take().ok_or_else(lost_core)?;
        let (core, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut core);
            (core, result)
        })
        .await
        .map_err(|e| Error::External(format!("the file encoder failed: {e}").into()))?;
        self.core = Some(core);
        result
    }

    fn object_path(&self, relative: &str) -> ObjectPath {
        let mut path = self.target.path.clone();
        path.extend(relative.split('/'));
        path
    }

    /// Takes the units the blocking side finished. After a failure, local ones (already in
    /// place) are recorded so `abort` removes them; remote ones are still in the staging
    /// directory, which goes away with the sink.
    fn take_closed(&mut self, failed: bool) -> Vec<Closed> {
        let closed = self
            .core
            .as_mut()
            .map(|c| std::mem::take(&mut c.closed))
            .unwrap_or_default();
        if failed && self.target.local.is_some() {
            self.units.extend(closed.into_iter().map(|c| c.unit));
            return Vec::new();
        }
        closed
    }

    /// Makes closed units visible: uploads them for remote targets, then records them.
    async fn publish(&mut self, result: Result<()>) -> Result<()> {
        let closed = self.take_closed(result.is_err());
        result?;
        for c in closed {
            if !self.core()?.local {
                for (relative, local) in c.unit.files.iter().zip(&c.local_files) {
                    let dest = self.object_path(relative);
                    upload(&self.target.store, local, &dest)
                        .await
                        .context_with(|| {
                            format!("uploading {relative} to {}", self.target.display)
                        })?;
                    self.uploaded.push(dest);
                }
                remove_path(&c.local_path).await?;
            }
            tracing::debug!(
                message = "Wrote a staging file.",
                file = %c.unit.path,
                rows = c.unit.rows,
                bytes = c.unit.bytes
            );
            self.bytes_since_flush += c.unit.bytes;
            self.units.push(c.unit);
        }
        Ok(())
    }

    /// Finds earlier vmig output in the target; removes it when `overwrite` is set.
    async fn clear_target(&mut self) -> Result<()> {
        let existing = match &self.target.local {
            Some(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || local_vmig_entries(&dir))
                    .await
                    .map_err(|e| {
                        Error::External(format!("listing the target failed: {e}").into())
                    })??
                    .into_iter()
                    .map(Existing::Local)
                    .collect::<Vec<_>>()
            }
            None => {
                let prefix = self.target.path.clone();
                let objects: Vec<_> = self
                    .target
                    .store
                    .list(Some(&prefix))
                    .try_collect()
                    .await
                    .context_with(|| format!("listing {}", self.target.display))?;
                objects
                    .into_iter()
                    .filter(|o| {
                        // vmig names at the top, or one level down (partition folders).
                        o.location.prefix_match(&prefix).is_some_and(|mut parts| {
                            let first = parts.next();
                            let second = parts.next();
                            first.is_some_and(|f| is_vmig_name(f.as_ref()))
                                || second.is_some_and(|s| {
                                    is_vmig_name(s.as_ref()) && s.as_ref() != MANIFEST
                                })
                        })
                    })
                    .map(|o| Existing::Remote(o.location))
                    .collect()
            }
        };
        if existing.is_empty() {
            return Ok(());
        }
        if !self.overwrite {
            let names: Vec<String> = existing.iter().take(3).map(Existing::name).collect();
            return Err(Error::config(
                PLUGIN,
                format!(
                    "{} already holds vmig output ({}{}); choose another `path` or set `overwrite = true` to replace it",
                    self.target.display,
                    names.join(", "),
                    if existing.len() > 3 { ", …" } else { "" }
                ),
            ));
        }
        tracing::info!(
            message = "Removing earlier vmig output (overwrite = true).",
            target = %self.target.display,
            entries = existing.len()
        );
        for e in existing {
            match e {
                Existing::Local(p) => {
                    remove_path(&p).await?;
                    // An emptied partition folder goes too.
                    if let (Some(parent), Some(dir)) = (p.parent(), &self.target.local) {
                        if parent != dir.as_path() {
                            let _ = tokio::fs::remove_dir(parent).await;
                        }
                    }
                }
                Existing::Remote(p) => delete_object(&self.target.store, &p).await?,
            }
        }
        Ok(())
    }

    fn manifest(&self, schema: &SchemaRef, format: StagingFormat) -> Manifest {
        let fields = schema
            .fields()
            .iter()
            .map(|f| ManifestField {
                name: f.name().clone(),
                arrow_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
                milvus_type: vector::milvus_type(f),
                dim: vector::vector_info(f).map(|v| v.dim),
            })
            .collect();
        let meta = schema.metadata();
        Manifest {
            vmig_manifest: 1,
            format: format.as_str(),
            total_rows: self.units.iter().map(|u| u.rows).sum(),
            total_bytes: self.units.iter().map(|u| u.bytes).sum(),
            schema: ManifestSchema {
                fields,
                primary_key: meta.get(vector::META_PRIMARY_KEY).cloned(),
                metric: meta.get(vector::META_METRIC).cloned(),
                collection: meta.get(vector::META_COLLECTION).cloned(),
                metadata: meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            files: self.units.clone(),
        }
    }

    async fn write_manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let mut body =
            serde_json::to_vec_pretty(manifest).map_err(|e| Error::External(Box::new(e)))?;
        body.push(b'\n');
        match &self.target.local {
            Some(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let tmp = dir.join(format!(".{MANIFEST}.tmp"));
                    std::fs::write(&tmp, &body)?;
                    std::fs::File::open(&tmp)?.sync_all()?;
                    std::fs::rename(&tmp, dir.join(MANIFEST))?;
                    sync_dir(&dir);
                    Ok(())
                })
                .await
                .map_err(|e| Error::External(format!("writing the manifest failed: {e}").into()))?
                .context_with(|| format!("writing {}/{MANIFEST}", self.target.display))
            }
            None => {
                let dest = self.object_path(MANIFEST);
                self.target
                    .store
                    .put(&dest, PutPayload::from(body))
                    .await
                    .context_with(|| format!("writing {}/{MANIFEST}", self.target.display))?;
                self.uploaded.push(dest);
                Ok(())
            }
        }
    }

    /// Local path or object key of a target-relative path, for reports.
    fn display_path(&self, relative: &str) -> String {
        match &self.target.local {
            Some(dir) => dir.join(relative).to_string_lossy().into_owned(),
            None => self.object_path(relative).to_string(),
        }
    }
}

fn lost_core() -> Error {
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
        if let Some(dir) = &self.target.local {
            self.created_dir = !tokio::fs::try_exists(dir).await.unwrap_or(false);
            tokio::fs::create_dir_all(dir)
                .await
                .context_with(|| format!("creating {}", dir.display()))?;
        }
        self.clear_target().await?;
        if self.target.local.is_none() {
            let tmp = tempfile::Builder::new()
                .prefix("vmig-files-")
                .tempdir()
                .context_with(|| "creating a local staging directory".to_string())?;
            if let Some(core) = self.core.as_mut() {
                core.work_dir = tmp.path().to_path_buf();
            }
            self.staging_dir = Some(tmp);
        }
        if let Some(core) = self.core.as_mut() {
            core.schema = Some(schema.clone());
        }
        self.prepared = Some(schema.clone());
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.write_to(batch, None).await
    }

    /// Rows of a named target partition go to `<path>/<partition>/part-NNNNN…`.
    async fn write_to(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        if let Some(p) = partition {
            check_partition_name(p)?;
        }
        let partition = partition.map(str::to_string);
        if self.prepared.is_none() {
            return Err(Error::schema(
                "the files sink was written to before `prepare`",
            ));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let written = self
            .blocking(move |core| core.write(&batch, partition))
            .await;
        if written.is_ok() {
            self.rows_since_flush += rows;
        }
        self.publish(written).await
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        let closed = self.blocking(|core| core.close_all()).await;
        self.publish(closed).await?;
        let report = FlushReport::new(self.rows_since_flush, self.bytes_since_flush);
        self.rows_since_flush = 0;
        self.bytes_since_flush = 0;
        Ok(report)
    }

    async fn commit(mut self: Box<Self>) -> Result<CommitReport> {
        self.flush().await?;
        let format = self.format()?;
        let schema = self
            .prepared
            .clone()
            .ok_or_else(|| Error::schema("the files sink was committed before `prepare`"))?;
        let manifest = self.manifest(&schema, format);
        self.write_manifest(&manifest).await?;
        let files = self
            .units
            .iter()
            .flat_map(|u| u.files.iter())
            .map(|f| self.display_path(f))
            .collect();
        tracing::info!(
            message = "Wrote staging files.",
            target = %self.target.display,
            units = self.units.len(),
            rows = manifest.total_rows
        );
        Ok(CommitReport::new(
            self.target.display.clone(),
            manifest.total_rows,
            manifest.total_bytes,
            files,
        ))
    }

    async fn abort(mut self: Box<Self>) -> Result<AbortReport> {
        let mut first_error = None;
        if self.core.is_some() {
            if let Err(e) = self.blocking(|core| core.discard_all()).await {
                first_error.get_or_insert(e);
            }
        }
        let _ = self.take_closed(true);
        match self.target.local.clone() {
            Some(dir) => {
                for unit in std::mem::take(&mut self.units) {
                    if let Err(e) = remove_path(&dir.join(&unit.path)).await {
                        first_error.get_or_insert(e);
                    }
                }
                let created = self.created_dir;
                let created_dirs = self
                    .core
                    .as_ref()
                    .map(|c| c.created_dirs.clone())
                    .unwrap_or_default();
                let cleanup = tokio::task::spawn_blocking(move || -> Result<()> {
                    // Temporary files of this run (also those of a writer lost to a panic).
                    for d in created_dirs.iter().map(|p| dir.join(p)) {
                        remove_temporaries(&d)?;
                        if std::fs::read_dir(&d)?.next().is_none() {
                            std::fs::remove_dir(&d)?;
                        }
                    }
                    remove_temporaries(&dir)?;
                    if created && std::fs::read_dir(&dir)?.next().is_none() {
                        std::fs::remove_dir(&dir)?;
                    }
                    Ok(())
                })
                .await;
                match cleanup {
                    Ok(Err(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Err(e) => {
                        first_error.get_or_insert(Error::External(Box::new(e)));
                    }
                    Ok(Ok(())) => {}
                }
            }
            None => {
                for object in std::mem::take(&mut self.uploaded) {
                    if let Err(e) = delete_object(&self.target.store, &object).await {
                        first_error.get_or_insert(e);
                    }
                }
                // The staging directory goes with `self.staging_dir`.
            }
        }
        match first_error {
            Some(e) => Err(e.context(format!("cleaning up {}", self.target.display))),
            None => Ok(AbortReport::default()),
        }
    }
}

impl Drop for FilesSink {
    fn drop(&mut self) {
        // A sink dropped without commit/abort leaves no temporary file behind.
        if let Some(core) = self.core.as_mut() {
            let _ = core.discard_all();
        }
    }
}

impl Core {
    fn unit_name(&self, index: u32) -> String {
        match self.format.extension() {
            Some(ext) => format!("part-{index:05}.{ext}"),
            None => format!("part-{index:05}"),
        }
    }

    /// The folder of `partition` below the work directory, created if needed.
    fn dir_of(&mut self, partition: Option<&str>) -> Result<PathBuf> {
        let Some(p) = partition else {
            return Ok(self.work_dir.clone());
        };
        let dir = self.work_dir.join(p);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).context_with(|| format!("creating {}", dir.display()))?;
            if self.local {
                self.created_dirs.insert(p.to_string());
            }
        }
        Ok(dir)
    }

    fn open(&mut self, partition: &Option<String>) -> Result<()> {
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| Error::schema("the files sink was written to before `prepare`"))?;
        let next = self.next_index.entry(partition.clone()).or_insert(0);
        let index = *next;
        *next += 1;
        let name = self.unit_name(index);
        let dir = self.dir_of(partition.as_deref())?;
        let path = if self.local {
            dir.join(format!(".{name}.tmp"))
        } else {
            dir.join(&name)
        };
        let writer = StagingWriter::create(self.format, &path, &schema, &self.options)?;
        self.current.insert(partition.clone(), (writer, index));
        Ok(())
    }

    /// Appends `batch` to the unit of `partition`, closing and starting units so none exceeds
    /// `max_file_size`.
    fn write(&mut self, batch: &RecordBatch, partition: Option<String>) -> Result<()> {
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            if !self.current.contains_key(&partition) {
                self.open(&partition)?;
            }
            let Some((writer, _)) = self.current.get_mut(&partition) else {
                return Err(lost_core());
            };
            let rest = batch.slice(offset, n - offset);
            let taken = writer.write_within(&rest, self.max_file_size)?;
            offset += taken;
            if offset < n {
                if writer.rows() == 0 {
                    if let Some((empty, _)) = self.current.remove(&partition) {
                        empty.discard()?;
                    }
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "a single row (row {offset} of a batch) does not fit in a {} file of max_file_size = {} bytes; raise `max_file_size`",
                            self.format, self.max_file_size
                        ),
                    ));
                }
                self.close(&partition)?;
            }
        }
        Ok(())
    }

    /// Finishes every open unit.
    fn close_all(&mut self) -> Result<()> {
        let open: Vec<Option<String>> = self.current.keys().cloned().collect();
        for partition in open {
            self.close(&partition)?;
        }
        Ok(())
    }

    /// Finishes the open unit of `partition`, if any, and (local targets) renames it into place.
    fn close(&mut self, partition: &Option<String>) -> Result<()> {
        let Some((writer, index)) = self.current.remove(partition) else {
            return Ok(());
        };
        let file_name = self.unit_name(index);
        let name = match partition {
            Some(p) => format!("{p}/{file_name}"),
            None => file_name.clone(),
        };
        let dir = self.dir_of(partition.as_deref())?;
        let temp = writer.path().to_path_buf();
        let finished = writer
            .finish()
            .context_with(|| format!("finishing {}", temp.display()))?;
        let final_path = dir.join(&file_name);
        if self.local {
            std::fs::rename(&temp, &final_path).context_with(|| {
                format!("renaming {} to {}", temp.display(), final_path.display())
            })?;
            sync_dir(&dir);
        }
        let mut files = Vec::with_capacity(finished.files.len());
        let mut local_files = Vec::with_capacity(finished.files.len());
        for f in &finished.files {
            let relative = match f.strip_prefix(&temp) {
                Ok(inner) if !inner.as_os_str().is_empty() => {
                    format!("{name}/{}", inner.to_string_lossy())
                }
                _ => name.clone(),
            };
            local_files.push(self.work_dir.join(&relative));
            files.push(relative);
        }
        self.closed.push(Closed {
            unit: Unit {
                path: name,
                partition: partition.clone(),
                files,
                rows: finished.rows,
                bytes: finished.bytes,
            },
            local_files,
            local_path: final_path,
        });
        Ok(())
    }

    fn discard_all(&mut self) -> Result<()> {
        let mut first = Ok(());
        for (_, (w, _)) in std::mem::take(&mut self.current) {
            if let Err(e) = w.discard() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// Removes this sink's temporary files (`.part-*.tmp`) directly in `dir`.
fn remove_temporaries(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".part-") && name.ends_with(".tmp") {
            let p = entry.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    }
    Ok(())
}

/// A target partition name must be one plain folder name.
fn check_partition_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.len() > 255
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
        || is_vmig_name(name);
    if bad {
        return Err(Error::config(
            PLUGIN,
            format!(
                "target partition `{name}` cannot be used as a folder name (it must be non-empty, not start with `.`, not contain `/`, `\\`, `:` or control characters, and not look like a vmig output name)"
            ),
        ));
    }
    Ok(())
}

/// Best-effort `fsync` of a directory, so renames in it are durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `manifest.json`, `part-00012.parquet`, `part-00012.json`, `part-00012` (NumPy) and the
/// temporary names of all of these.
fn is_vmig_name(name: &str) -> bool {
    if name == MANIFEST || name == format!(".{MANIFEST}.tmp") {
        return true;
    }
    if name.starts_with(".part-") && name.ends_with(".tmp") {
        return true;
    }
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let digits = rest.split('.').next().unwrap_or_default();
    let ext = &rest[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "" | ".parquet" | ".json")
}

enum Existing {
    Local(PathBuf),
    Remote(ObjectPath),
}

impl Existing {
    fn name(&self) -> String {
        match self {
            Existing::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Existing::Remote(p) => p.to_string(),
        }
    }
}

fn local_vmig_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::from(e).context(format!("listing {}", dir.display()))),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_vmig_name(&name) {
            found.push(entry.path());
        } else if !name.starts_with('.') && entry.file_type()?.is_dir() {
            // A partition folder: its vmig names count too.
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if is_vmig_name(&inner_name) && inner_name != MANIFEST {
                    found.push(inner.path());
                }
            }
        }
    }
    found.sort();
    Ok(found)
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

async fn delete_object(store: &Arc<dyn ObjectStore>, path: &ObjectPath) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::from(e).context(format!("deleting {path}"))),
    }
}

/// Uploads a local file: one PUT when small, a multipart upload otherwise. Either way the object
/// appears only complete.
async fn upload(store: &Arc<dyn ObjectStore>, local: &Path, dest: &ObjectPath) -> Result<()> {
    let size = tokio::fs::metadata(local).await?.len();
    if size <= SINGLE_PUT_MAX {
        let data = tokio::fs::read(local).await?;
        store.put(dest, PutPayload::from(data)).await?;
        return Ok(());
    }
    let mut parts =
        WriteMultipart::new_with_chunk_size(store.put_multipart(dest).await?, PART_SIZE);
    let copied: Result<()> = async {
        let mut file = tokio::fs::File::open(local).await?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            parts.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
            parts.write(&buf[..n]);
        }
    }
    .await;
    match copied {
        Ok(()) => {
            parts.finish().await?;
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = parts.abort().await {
                tracing::warn!(message = "Aborting a multipart upload failed.", error = %abort);
            }
            Err(e)
        }
    }
}

#[derive(Debug, Serialize)]
struct Manifest {
    /// Version of this manifest layout.
    vmig_manifest: u32,
    format: &'static str,
    schema: ManifestSchema,
    files: Vec<Unit>,
    total_rows: u64,
    total_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ManifestSchema {
    fields: Vec<ManifestField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct ManifestField {
    name: String,
    arrow_type: String,
    nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    milvus_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dim: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_vmig_names() {
        for yes in [
            "manifest.json",
            "part-00000.parquet",
            "part-00012.json",
            "part-00003",
            "part-123456.parquet",
            ".part-00000.parquet.tmp",
            ".part-00001.tmp",
            ".manifest.json.tmp",
        ] {
            assert!(is_vmig_name(yes), "{yes}");
        }
        for no in [
            "part-.parquet",
            "part-0a.json",
            "notes.txt",
            "part-00000.csv",
            "xpart-00000.json",
            "part-1.parquet.bak",
        ] {
            assert!(!is_vmig_name(no), "{no}");
        }
    }
}
