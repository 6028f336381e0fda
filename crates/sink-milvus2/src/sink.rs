//! The runtime `milvus2` sink.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::ObjectStoreExt;
use tokio::task::JoinSet;
use vmig_core::store::{upload_file, StoreLocation};
use vmig_core::vector::{self, VectorType};
use vmig_core::{AbortReport, CommitReport, Error, FlushReport, Result, RetryConfig, Sink};
use vmig_formats::staging::{
    FinishedFile, RotatedFile, RotatingWriter, StagingFormat, StagingOptions,
};
use vmig_milvus::convert::estimate_request_bytes;
use vmig_milvus::meta::{CollectionSettings, IndexSpec};
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::schema::{check_compatible, collection_schema, primary_key_name};
use vmig_milvus::{is_too_large, MilvusClient, SchemaOptions};

use crate::{IfExists, Milvus2SinkConfig, WriteMode, LONG_WAIT, NAME};

/// How long `abort` waits for insert requests in flight, so the rows they carried are counted.
const ABORT_WAIT: Duration = Duration::from_secs(60);

/// Writes into a Milvus 2.x collection (see the crate docs).
#[derive(Debug)]
pub struct Milvus2Sink {
    config: Milvus2SinkConfig,
    client: MilvusClient,
    collection: String,
    /// The columns sent (the pk is left out with `auto_id`).
    send_schema: Option<SchemaRef>,
    drop_pk: Option<String>,
    /// Batches are relabelled with `send_schema` (a `milvus.nullable` tag the target did not
    /// take was removed from it).
    relabel: bool,
    /// Insert mode: batches waiting to fill one request, all for `pending_partition`.
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    pending_partition: Option<String>,
    /// Partitions known to exist (created or checked once).
    known_partitions: HashSet<String>,
    /// The target has a partition key: Milvus routes rows itself and refuses partition names.
    partition_key: bool,
    /// Properties of the source collection carried in the schema metadata.
    settings: CollectionSettings,
    /// Insert requests in flight: each yields the rows it carried and its outcome.
    inflight: JoinSet<(u64, Result<u64>)>,
    /// A new collection to create (and an existing one to drop first) when the first batch is
    /// ready, so a run that fails before it leaves the target as it was.
    pending_create: Option<Creation>,
    /// This run created the collection.
    created: bool,
    /// With `if_exists = "drop"` over an existing collection: its name. Rows go into a new
    /// collection under a name of this run (`collection`), which replaces it only at commit.
    replaces: Option<String>,
    /// Rows go into a collection that existed before (`if_exists = "append"`).
    appending: bool,
    /// Bulk mode: the staging files of this run.
    stage: Option<BulkStaging>,
    rows_since_flush: u64,
    bytes_since_flush: u64,
    rows_total: u64,
    bytes_total: u64,
    files: Vec<String>,
}

/// What `prepare` decided to create, done by [`Milvus2Sink::ensure_created`].
#[derive(Debug)]
struct Creation {
    wanted: vmig_milvus::proto::schema::CollectionSchema,
    /// The source's schema (after transforms), for the nullable check once the collection exists.
    schema: SchemaRef,
    /// A collection of this name exists and is to be replaced at commit.
    replace_existing: bool,
}

/// Bulk mode: where this run's staging files are written, where they are uploaded, and the
/// files waiting to be imported.
#[derive(Debug)]
struct BulkStaging {
    /// Where files are written locally (the stage itself, or a temporary dir for `s3://`).
    local_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// For `s3://` stages: where to upload, and the bucket-relative key prefix.
    remote: Option<(StoreLocation, String)>,
    format: StagingFormat,
    options: StagingOptions,
    /// Splits rows into files; made by the first write, with the schema of its batch (the
    /// columns sent, settled once the collection exists). `None` also while a write runs.
    files: Option<RotatingWriter>,
    /// The number of the next file (`part-NNNNN`, counted over all partitions).
    next: Arc<AtomicU32>,
    /// Finished files not imported yet, oldest first.
    to_import: VecDeque<RotatedFile>,
}

impl BulkStaging {
    /// The writer of this run's files, all in `local_dir` as `part-NNNNN[.ext]`.
    fn rotating_writer(&self, schema: SchemaRef, max_file_size: u64) -> RotatingWriter {
        let (dir, next, ext) = (
            self.local_dir.clone(),
            Arc::clone(&self.next),
            self.format.extension(),
        );
        let namer = move |_: Option<&str>, _: u32| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            Ok(dir.join(match ext {
                Some(ext) => format!("part-{n:05}.{ext}"),
                None => format!("part-{n:05}"),
            }))
        };
        RotatingWriter::new(
            NAME,
            self.format,
            schema,
            self.options.clone(),
            max_file_size,
            namer,
        )
    }
}

impl Milvus2Sink {
    /// A sink writing through `client`.
    ///
    /// # Errors
    /// When a temporary staging directory cannot be created.
    pub fn new(config: Milvus2SinkConfig, client: MilvusClient) -> Result<Self> {
        Ok(Milvus2Sink {
            config,
            client,
            collection: String::new(),
            send_schema: None,
            drop_pk: None,
            relabel: false,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_partition: None,
            known_partitions: HashSet::new(),
            partition_key: false,
            settings: CollectionSettings::default(),
            inflight: JoinSet::new(),
            pending_create: None,
            created: false,
            replaces: None,
            appending: false,
            stage: None,
            rows_since_flush: 0,
            bytes_since_flush: 0,
            rows_total: 0,
            bytes_total: 0,
            files: Vec::new(),
        })
    }

    fn target(&self) -> String {
        let hostport = self
            .client
            .uri()
            .split("://")
            .nth(1)
            .unwrap_or(self.client.uri())
            .trim_end_matches('/')
            .to_string();
        let db = if self.client.db().is_empty() {
            "default"
        } else {
            self.client.db()
        };
        format!("milvus://{hostport}/{db}/{}", self.collection)
    }

    fn project(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = match &self.drop_pk {
            Some(pk) => {
                let schema = batch.schema();
                let keep: Vec<usize> = (0..schema.fields().len())
                    .filter(|&i| schema.field(i).name() != pk)
                    .collect();
                batch.project(&keep)?
            }
            None => batch,
        };
        match (&self.send_schema, self.relabel) {
            (Some(send), true) => Ok(RecordBatch::try_new(
                send.clone(),
                batch.columns().to_vec(),
            )?),
            _ => Ok(batch),
        }
    }

    /// The fields of `schema` tagged `milvus.nullable` whose target field is not nullable.
    async fn not_nullable_in_target(&self, schema: &Schema) -> Result<HashSet<String>> {
        let tagged: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| vmig_milvus::meta::is_nullable(f))
            .map(|f| f.name().as_str())
            .collect();
        if tagged.is_empty() {
            return Ok(HashSet::new());
        }
        let info = self.client.describe_collection(&self.collection).await?;
        let untag: HashSet<String> = info
            .schema
            .fields
            .iter()
            .filter(|f| !f.nullable && tagged.contains(&f.name.as_str()))
            .map(|f| f.name.clone())
            .collect();
        if !untag.is_empty() {
            tracing::warn!(
                collection = self.collection,
                server = self.client.server_version(),
                fields = ?untag,
                "the target has these source-nullable fields as not nullable (nullable fields need Milvus 2.5+); a null in them stops the job"
            );
        }
        Ok(untag)
    }

    /// Sends the pending batches as one request (in the background, bounded).
    async fn send_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let schema = self.pending[0].schema();
        let batch = arrow::compute::concat_batches(&schema, &self.pending)?;
        self.pending.clear();
        self.pending_bytes = 0;
        while self.inflight.len() >= self.config.concurrency {
            self.join_one().await?;
        }
        let client = self.client.clone();
        let collection = self.collection.clone();
        let partition = self.pending_partition.clone();
        let upsert = self.config.mode == WriteMode::Upsert;
        let retry = self.config.retry_policy()?;
        let rows = batch.num_rows() as u64;
        self.inflight.spawn(async move {
            let sent = send_with_split(
                &client,
                &collection,
                partition.as_deref(),
                batch,
                upsert,
                &retry,
            )
            .await;
            (rows, sent)
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(done) = self.inflight.join_next().await {
            let (_, acked) =
                done.map_err(|e| Error::External(Box::new(e)).context("an insert task failed"))?;
            self.rows_since_flush += acked?;
        }
        Ok(())
    }

    async fn write_insert(&mut self, batch: RecordBatch) -> Result<()> {
        let target = self.config.batch_bytes.bytes_usize();
        let bytes = estimate_request_bytes(&batch);
        self.bytes_since_flush += bytes as u64;
        if bytes <= target.saturating_sub(self.pending_bytes) {
            self.pending_bytes += bytes;
            self.pending.push(batch);
            if self.pending_bytes * 10 >= target * 9 {
                self.send_pending().await?;
            }
            return Ok(());
        }
        self.send_pending().await?;
        // Split a big batch into chunks of about `target` bytes.
        let rows = batch.num_rows().max(1);
        let per_row = bytes.div_ceil(rows).max(1);
        let chunk = (target / per_row).max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = chunk.min(batch.num_rows() - offset);
            let part = batch.slice(offset, len);
            self.pending_bytes = estimate_request_bytes(&part);
            self.pending.push(part);
            self.send_pending().await?;
            offset += len;
        }
        Ok(())
    }

    /// Creates `partition` unless it is known to exist.
    async fn ensure_partition(&mut self, partition: &str) -> Result<()> {
        if self.known_partitions.contains(partition) {
            return Ok(());
        }
        let collection = &self.collection;
        if !self.client.has_partition(collection, partition).await? {
            tracing::info!(collection, partition, "creating partition");
            self.client
                .create_partition(collection, partition)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "creating partition `{partition}` of `{collection}`"
                    ))
                })?;
        }
        self.known_partitions.insert(partition.to_string());
        Ok(())
    }

    async fn write_bulk(&mut self, batch: RecordBatch, partition: Option<String>) -> Result<()> {
        let max = self.config.max_file_size.bytes();
        let Some(stage) = self.stage.as_mut() else {
            return Err(Error::config(NAME, "bulk stage not prepared"));
        };
        let mut files = match stage.files.take() {
            Some(files) => files,
            None => stage.rotating_writer(batch.schema(), max),
        };
        let (files, written) = blocking(move || {
            let written = files.write(&batch, partition.as_deref());
            Ok((files, written))
        })
        .await?;
        stage.files = Some(files);
        written
    }

    async fn flush_bulk(&mut self) -> Result<()> {
        let Some(stage) = self.stage.as_mut() else {
            return Ok(());
        };
        if let Some(mut files) = stage.files.take() {
            let (files, finished, result) = blocking(move || {
                let result = files.finish_all();
                let finished = files.take_finished();
                Ok((files, finished, result))
            })
            .await?;
            stage.files = Some(files);
            stage.to_import.extend(finished);
            result?;
        }
        while let Some(RotatedFile {
            partition,
            file: unit,
            ..
        }) = stage.to_import.pop_front()
        {
            let label = unit.path.display().to_string();
            let mut paths = Vec::new();
            let mut imported = async {
                for f in &unit.files {
                    paths.push(match &stage.remote {
                        None => f.display().to_string(),
                        Some((loc, prefix)) => upload(loc, prefix, &stage.local_dir, f).await?,
                    });
                }
                let tasks = self
                    .client
                    .import(&self.collection, partition.as_deref(), &paths)
                    .await?;
                self.client.wait_import(&tasks, LONG_WAIT).await
            }
            .await
            .map_err(|e| e.context(format!("importing staged file {label}")));
            // Uploaded objects go whether the import succeeded or not: a failed import leaves
            // nothing in the collection (Milvus imports are atomic per task), so nothing of
            // this run is left anywhere.
            if let Some((loc, prefix)) = &stage.remote {
                delete_uploaded(loc, prefix, &paths).await;
            }
            if let Ok(rows) = imported {
                if rows != unit.rows {
                    imported = Err(Error::data(
                        label.clone(),
                        format!(
                            "Milvus imported {rows} rows from a file of {} rows",
                            unit.rows
                        ),
                    ));
                }
            }
            let rows = match imported {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = remove_unit(&unit);
                    return Err(e);
                }
            };
            self.rows_since_flush += rows;
            self.bytes_since_flush += unit.bytes;
            self.files.push(paths.join(","));
            remove_unit(&unit)?;
        }
        Ok(())
    }

    /// The configured index, else the source collection's indexes (carried in the schema).
    fn indexes_to_build(&self) -> Result<Vec<IndexSpec>> {
        let Some(index) = self.config.index.clone() else {
            return Ok(self.settings.indexes.clone());
        };
        let schema = self
            .send_schema
            .clone()
            .ok_or_else(|| Error::config(NAME, "commit before prepare"))?;
        let field = match &index.field {
            Some(f) => f.clone(),
            None => schema
                .fields()
                .iter()
                .find(|f| vector::vector_info(f).is_some())
                .map(|f| f.name().clone())
                .ok_or_else(|| Error::schema("no vector field to index"))?,
        };
        let metric = index
            .metric
            .clone()
            .unwrap_or_else(|| self.default_metric(&schema, &field));
        Ok(vec![IndexSpec {
            field,
            index_type: index.index_type,
            metric_type: metric,
            params: index.params,
        }])
    }

    fn default_metric(&self, schema: &Schema, field: &str) -> String {
        if let Some(m) = schema.metadata().get(vector::META_METRIC) {
            return m.clone();
        }
        let binary = schema
            .field_with_name(field)
            .ok()
            .and_then(vector::vector_info)
            .is_some_and(|i| i.kind == VectorType::Binary);
        if binary { "HAMMING" } else { "L2" }.to_string()
    }
}

/// `(major, minor, patch)` of a Milvus version string such as `v2.3.5-lite` or `2.4.13`.
fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.trim().trim_start_matches('v');
    let mut parts = core
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// Parquet import exists from Milvus 2.3.4: refuse it on older servers before anything is staged.
fn check_bulk_format(config: &Milvus2SinkConfig, server_version: &str) -> Result<()> {
    if config.mode != WriteMode::Bulk || config.bulk_format != StagingFormat::Parquet {
        return Ok(());
    }
    match parse_version(server_version) {
        Some(v) if v < (2, 3, 4) => Err(Error::config(
            NAME,
            format!(
                "Milvus {server_version} cannot import Parquet (that needs 2.3.4 or later); set `bulk_format = \"numpy\"` or `\"json\"`, or use `mode = \"insert\"`"
            ),
        )),
        _ => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::External(Box::new(e)))?
}

fn remove_unit(unit: &FinishedFile) -> Result<()> {
    for f in &unit.files {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    if unit.path.is_dir() {
        let _ = std::fs::remove_dir(&unit.path);
    }
    Ok(())
}

/// Deletes the objects `upload` wrote for `keys` (bucket-relative, as passed to Import).
/// Failures are logged, not returned: the import's own outcome is what the caller reports.
async fn delete_uploaded(loc: &StoreLocation, prefix: &str, keys: &[String]) {
    for key in keys {
        let rel = key
            .strip_prefix(prefix)
            .unwrap_or(key)
            .trim_start_matches('/');
        let path = loc.path.clone().join_all(rel.split('/'));
        if let Err(error) = loc.store.delete(&path).await {
            tracing::warn!(message = "Could not delete a staged object.", object = %path, %error);
        }
    }
}

/// Uploads `file` (below `local_dir`) and returns its bucket-relative key.
async fn upload(
    loc: &StoreLocation,
    prefix: &str,
    local_dir: &Path,
    file: &Path,
) -> Result<String> {
    let rel = file
        .strip_prefix(local_dir)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/");
    let dest = loc.path.clone().join_all(rel.split('/'));
    upload_file(&loc.store, file, &dest)
        .await
        .map_err(|e| e.context(format!("uploading {}", file.display())))?;
    Ok(if prefix.is_empty() {
        rel
    } else {
        format!("{prefix}/{rel}")
    })
}

trait JoinAll {
    fn join_all<'a>(self, parts: impl Iterator<Item = &'a str>) -> Self;
}

impl JoinAll for object_store::path::Path {
    fn join_all<'a>(self, parts: impl Iterator<Item = &'a str>) -> Self {
        parts.fold(self, |p, part| p.join(part))
    }
}

/// Sends one request, retrying transient failures by `retry` and splitting it in half
/// (recursively) when it is too large. Returns the rows acknowledged.
async fn send_with_split(
    client: &MilvusClient,
    collection: &str,
    partition: Option<&str>,
    batch: RecordBatch,
    upsert: bool,
    retry: &RetryConfig,
) -> Result<u64> {
    let mut stack = vec![batch];
    let mut acked = 0u64;
    let what = format!("Milvus insert into `{collection}`");
    while let Some(b) = stack.pop() {
        let sent = retry
            .run(&what, || client.insert(collection, partition, &b, upsert))
            .await;
        match sent {
            Ok(n) => acked += n,
            Err(e) if is_too_large(&e) && b.num_rows() > 1 => {
                let half = b.num_rows() / 2;
                tracing::warn!(
                    rows = b.num_rows(),
                    "Milvus rejected a request as too large; splitting it in half"
                );
                stack.push(b.slice(half, b.num_rows() - half));
                stack.push(b.slice(0, half));
            }
            Err(e) => {
                return Err(e.context(format!("writing {} rows to `{collection}`", b.num_rows())))
            }
        }
    }
    Ok(acked)
}

#[async_trait]
impl Sink for Milvus2Sink {
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        check_bulk_format(&self.config, self.client.server_version())?;
        let collection = self
            .config
            .collection
            .clone()
            .or_else(|| schema.metadata().get(vector::META_COLLECTION).cloned())
            .ok_or_else(|| {
                Error::config(
                    NAME,
                    "no `collection` configured and the data names none (schema metadata `vmig.collection`); set `collection = \"…\"`",
                )
            })?;
        self.collection = collection.clone();
        let settings = CollectionSettings::from_schema(schema);
        let auto_id = self.config.auto_id || settings.regenerate_ids;
        if auto_id && self.config.mode == WriteMode::Upsert {
            return Err(Error::config(NAME, "the source asks for new primary keys (`vmig.auto_id`), which `mode = \"upsert\"` cannot do; use `mode = \"insert\"`"));
        }
        let opts = SchemaOptions {
            collection: collection.clone(),
            description: self.config.description.clone(),
            primary_key: self.config.primary_key.clone(),
            auto_id,
            varchar_max_length: self.config.varchar_max_length,
            dynamic_field: self.config.dynamic_field || settings.dynamic_field == Some(true),
        };
        let wanted = collection_schema(schema, &opts)?;
        self.partition_key = wanted.fields.iter().any(|f| f.is_partition_key);
        let pk = primary_key_name(schema, self.config.primary_key.as_deref());
        let mut create = true;
        let mut replace_existing = false;
        if self.client.has_collection(&collection).await? {
            match self.config.if_exists {
                IfExists::Error => {
                    return Err(Error::config(
                        NAME,
                        format!("collection `{collection}` already exists at {}; set `if_exists = \"append\"` to add to it or `if_exists = \"drop\"` to replace it", self.client.uri()),
                    ))
                }
                // Replaced only at commit (see `ensure_created` and `commit`).
                IfExists::Drop => replace_existing = true,
                IfExists::Append => {
                    let info = self.client.describe_collection(&collection).await?;
                    check_compatible(&info.schema, &wanted)?;
                    create = false;
                    self.appending = true;
                }
            }
        }
        self.settings = settings;
        self.drop_pk = (auto_id && schema.field_with_name(&pk).is_ok()).then_some(pk);
        if create {
            self.pending_create = Some(Creation {
                wanted,
                schema: schema.clone(),
                replace_existing,
            });
            // Until the collection exists, the source's nullable tags are taken as they are;
            // `ensure_created` checks them against what the server made.
            self.send_schema = Some(self.send_schema_of(schema));
        } else {
            self.check_nullable(schema).await?;
        }
        if self.config.mode == WriteMode::Bulk {
            let stage_cfg = self.config.stage.clone().unwrap_or_default();
            let send = self
                .send_schema
                .clone()
                .ok_or_else(|| Error::config(NAME, "prepare did not settle the schema"))?;
            vmig_formats::staging::check_schema(self.config.bulk_format, &send)?;
            let job = format!(
                "vmig-{}-{}",
                collection,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            );
            let (local_dir, tmp, remote) = if stage_cfg.starts_with("s3://") {
                let tmp = tempfile::tempdir()?;
                let loc = vmig_core::store::resolve(
                    &format!("{}/{job}", stage_cfg.trim_end_matches('/')),
                    &self.config.storage,
                )?;
                let prefix = loc.path.to_string();
                (tmp.path().to_path_buf(), Some(tmp), Some((loc, prefix)))
            } else {
                let dir = Path::new(&stage_cfg).join(&job);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::from(e)
                        .context(format!("creating the stage directory {}", dir.display()))
                })?;
                (dir, None, None)
            };
            self.stage = Some(BulkStaging {
                local_dir,
                _tmp: tmp,
                remote,
                format: self.config.bulk_format,
                options: StagingOptions::default(),
                files: None,
                next: Arc::new(AtomicU32::new(0)),
                to_import: VecDeque::new(),
            });
        }
        Ok(())
    }

    /// The source's partition wins; `partition` in the config is used for batches without one.
    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.ensure_created().await?;
        let batch = self.project(batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // With a partition key Milvus places rows itself (and refuses partition names).
        let target = partition
            .map(str::to_string)
            .or_else(|| self.config.partition.clone())
            .filter(|_| !self.partition_key);
        if let Some(p) = &target {
            self.ensure_partition(p).await?;
        }
        match self.config.mode {
            WriteMode::Bulk => self.write_bulk(batch, target).await,
            _ => {
                if self.pending_partition != target {
                    self.send_pending().await?;
                    self.pending_partition = target;
                }
                self.write_insert(batch).await
            }
        }
    }

    fn name(&self) -> &str {
        NAME
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        if self.config.mode == WriteMode::Bulk {
            self.flush_bulk().await?;
        } else {
            self.send_pending().await?;
            while !self.inflight.is_empty() {
                self.join_one().await?;
            }
            if self.rows_since_flush > 0 {
                self.client.flush(&self.collection, LONG_WAIT).await?;
            }
        }
        let report = FlushReport::new(self.rows_since_flush, self.bytes_since_flush);
        self.rows_total += self.rows_since_flush;
        self.bytes_total += self.bytes_since_flush;
        self.rows_since_flush = 0;
        self.bytes_since_flush = 0;
        Ok(report)
    }

    async fn commit(mut self: Box<Self>) -> Result<CommitReport> {
        // A source without rows still gets its (empty) collection.
        self.ensure_created().await?;
        let extra = self.flush().await?;
        debug_assert_eq!(extra.rows, 0);
        let indexes = self.indexes_to_build()?;
        for index in &indexes {
            self.client
                .create_index(
                    &self.collection,
                    &index.field,
                    &index.index_type,
                    &index.metric_type,
                    &index.params,
                )
                .await?;
        }
        if let Some(existing) = self.replaces.take() {
            self.swap_in(&existing).await?;
        }
        if self.config.load {
            if indexes.is_empty() {
                return Err(Error::config(NAME, "`load = true` needs an index (Milvus 2.3 loads only indexed collections): set `index`, or copy from a Milvus collection that has one"));
            }
            self.client.load(&self.collection, LONG_WAIT).await?;
        }
        if let Some(stage) = &self.stage {
            if stage.remote.is_none() {
                let _ = std::fs::remove_dir(&stage.local_dir);
            }
        }
        Ok(CommitReport::new(
            self.target(),
            self.rows_total,
            self.bytes_total,
            std::mem::take(&mut self.files),
        ))
    }

    /// Waits (a bounded time) for the requests in flight, so the rows they carried are counted
    /// exactly, removes staged files, drops a collection this run created and left empty, and
    /// says what the collection holds.
    async fn abort(mut self: Box<Self>) -> Result<AbortReport> {
        let mut acked = self.rows_total + self.rows_since_flush;
        let mut unknown = 0u64;
        let drained = tokio::time::timeout(ABORT_WAIT, async {
            let mut counts = (0u64, 0u64);
            while let Some(done) = self.inflight.join_next().await {
                match done {
                    Ok((_, Ok(rows))) => counts.0 += rows,
                    // A request that failed after splitting may have landed in part.
                    Ok((rows, Err(_))) => counts.1 += rows,
                    Err(_) => {}
                }
            }
            counts
        })
        .await;
        match drained {
            Ok((ok, maybe)) => {
                acked += ok;
                unknown += maybe;
            }
            Err(_) => {
                self.inflight.abort_all();
                while let Some(done) = self.inflight.join_next().await {
                    match done {
                        Ok((_, Ok(rows))) => acked += rows,
                        Ok((rows, Err(_))) => unknown += rows,
                        Err(_) => {}
                    }
                }
                // The aborted tasks' rows are not known here; say so below.
                unknown = unknown.max(1);
            }
        }
        if let Some(mut stage) = self.stage.take() {
            let mut discarded = Ok(());
            if let Some(mut files) = stage.files.take() {
                let (finished, result) = blocking(move || {
                    let result = files.discard_open();
                    Ok((files.take_finished(), result))
                })
                .await?;
                stage.to_import.extend(finished);
                discarded = result;
            }
            for unit in &stage.to_import {
                remove_unit(&unit.file)?;
            }
            discarded?;
            if stage.remote.is_none() {
                let _ = std::fs::remove_dir(&stage.local_dir);
            }
        }
        let target = self.target();
        let collection = self.collection.clone();
        let mut report = AbortReport::default();
        if let Some(pending) = &self.pending_create {
            let kept = if pending.replace_existing {
                format!(" The existing collection `{collection}` was not dropped and is as it was.")
            } else {
                String::new()
            };
            report.push(format!(
                "Nothing was written to {target}: the collection was not created.{kept}"
            ));
            return Ok(report);
        }
        if let Some(existing) = &self.replaces {
            // Nothing of this run is kept: the old collection stays what it was.
            if self.created {
                self.client.drop_collection(&collection).await.map_err(|e| {
                    e.context(format!(
                        "dropping `{collection}`, the unfinished replacement of `{existing}` that this run created"
                    ))
                })?;
            }
            let what = if self.created {
                format!("this run wrote into `{collection}`, which was dropped again")
            } else {
                format!("`{collection}`, which was to replace it, was not created")
            };
            report.push(format!(
                "The collection `{existing}` that existed before is untouched (`if_exists = \"drop\"` replaces it only when a run completes); {what}."
            ));
            return Ok(report);
        }
        let maybe = if unknown > 0 {
            format!(", and requests cut off by the stop may have added up to {unknown} more")
                .replace("up to 1 more", "more")
        } else {
            String::new()
        };
        if self.created && acked == 0 && unknown == 0 {
            self.client
                .drop_collection(&collection)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "dropping the empty collection `{collection}` this run created"
                    ))
                })?;
            report.push(format!(
                "The collection `{collection}` that this run created held no rows and was dropped again; nothing of this run remains at {target}."
            ));
        } else if self.created {
            report.push(format!(
                "The collection {target} was created by this run and holds {acked} acknowledged rows{maybe}. To start over, drop it or re-run with `if_exists = \"drop\"`; to complete it, re-run with `if_exists = \"append\"` and `mode = \"upsert\"` so that rows already there are not duplicated."
            ));
        } else if !self.appending {
            report.push(format!("Nothing was written to {target}."));
        } else if acked > 0 || unknown > 0 {
            report.push(format!(
                "The existing collection {target} received {acked} acknowledged rows from this run{maybe}. Re-run with `mode = \"upsert\"` to complete it without duplicates, or delete those rows by primary key."
            ));
        } else {
            report.push(format!(
                "Nothing was written to the existing collection {target}."
            ));
        }
        Ok(report)
    }
}

impl Milvus2Sink {
    /// The columns sent for `schema`: the primary key is left out when Milvus generates it.
    fn send_schema_of(&self, schema: &SchemaRef) -> SchemaRef {
        match &self.drop_pk {
            Some(pk) => Arc::new(Schema::new_with_metadata(
                schema
                    .fields()
                    .iter()
                    .filter(|f| f.name() != pk)
                    .cloned()
                    .collect::<Vec<_>>(),
                schema.metadata().clone(),
            )),
            None => schema.clone(),
        }
    }

    /// A field tagged nullable that the target does not have as nullable (Milvus before 2.5
    /// ignores the flag; or an existing collection) loses the tag, so a null is refused by the
    /// conversion naming field and row instead of by the server.
    async fn check_nullable(&mut self, schema: &SchemaRef) -> Result<()> {
        let untag = self.not_nullable_in_target(schema).await?;
        self.relabel = !untag.is_empty();
        self.send_schema = Some(self.send_schema_of(&untag_nullable(schema, &untag)));
        Ok(())
    }

    /// Replaces `existing` with the completed collection of this run: drops it, then renames.
    async fn swap_in(&mut self, existing: &str) -> Result<()> {
        let written = self.collection.clone();
        if self.client.has_collection(existing).await? {
            tracing::info!(
                collection = existing,
                "dropping the collection this run replaces (if_exists = drop)"
            );
            self.client.drop_collection(existing).await.map_err(|e| {
                e.context(format!(
                    "replacing `{existing}`: the new data is complete in `{written}`, and `{existing}` is unchanged"
                ))
            })?;
        }
        self.client
            .rename_collection(&written, existing)
            .await
            .map_err(|e| {
                e.context(format!(
                    "replacing `{existing}`: it was dropped, and the new data is complete in `{written}`; rename that collection to `{existing}` (e.g. pymilvus `utility.rename_collection`)"
                ))
            })?;
        self.collection = existing.to_string();
        Ok(())
    }

    /// Creates the collection `prepare` planned (dropping the old one first with
    /// `if_exists = "drop"`), its partitions and the configured partition; a no-op afterwards.
    async fn ensure_created(&mut self) -> Result<()> {
        let Some(mut plan) = self.pending_create.take() else {
            return Ok(());
        };
        if plan.replace_existing {
            let existing = self.collection.clone();
            self.collection = replacement_name(&existing)?;
            tracing::info!(
                collection = existing,
                replacement = self.collection,
                "writing into a new collection that replaces the existing one when the run completes (if_exists = drop)"
            );
            self.replaces = Some(existing);
            plan.wanted.name = self.collection.clone();
        } else if self.client.has_collection(&self.collection).await? {
            // Milvus 2.3 answers a create of an existing collection with success, so without
            // this check a second run started meanwhile would add its rows to the first's.
            return Err(Error::config(
                NAME,
                format!(
                    "collection `{}` was created at {} after this run checked for it (by another run?); nothing was written by this run: check who writes there, then re-run with `if_exists = \"append\"` or `\"drop\"` if that is what you want",
                    self.collection,
                    self.client.uri()
                ),
            ));
        }
        let settings = &self.settings;
        let shards = self.config.shards.or(settings.shards).unwrap_or(1);
        let consistency = self
            .config
            .consistency_level
            .map(|c| c.level())
            .or(settings.consistency)
            .unwrap_or(ConsistencyLevel::Bounded);
        let num_partitions = if self.partition_key {
            settings.partitions.len() as i64
        } else {
            0
        };
        self.client
            .create_collection_with(&plan.wanted, shards, consistency, num_partitions)
            .await?;
        self.created = true;
        if !self.partition_key {
            // Empty source partitions exist in the copy too.
            let partitions: Vec<String> = self
                .settings
                .partitions
                .iter()
                .filter(|p| *p != "_default")
                .cloned()
                .collect();
            for p in &partitions {
                self.ensure_partition(p).await?;
            }
        }
        if let Some(p) = self.config.partition.clone() {
            self.ensure_partition(&p).await?;
        }
        self.check_nullable(&plan.schema).await
    }
}

/// The name of the collection that replaces `existing` until the run completes:
/// `<existing>__vmig_<8 hex digits of this run>`.
fn replacement_name(existing: &str) -> Result<String> {
    let run = vmig_core::ids::new_run_id();
    let name = format!("{existing}__vmig_{}", &run[..8]);
    if name.len() > 255 {
        return Err(Error::config(
            NAME,
            format!("`if_exists = \"drop\"` writes into a new collection named `{existing}__vmig_<run>` first, which exceeds Milvus's 255 characters; use a shorter collection name"),
        ));
    }
    Ok(name)
}

/// `schema` with the `milvus.nullable` tag removed from the fields named in `untag`.
fn untag_nullable(schema: &SchemaRef, untag: &HashSet<String>) -> SchemaRef {
    if untag.is_empty() {
        return schema.clone();
    }
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut f = f.as_ref().clone();
            if untag.contains(f.name()) {
                let mut meta = f.metadata().clone();
                meta.remove(vmig_milvus::meta::NULLABLE);
                f = f.with_metadata(meta);
            }
            f
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_old_servers_refuse_parquet_bulk() {
        assert_eq!(parse_version("v2.3.5-lite"), Some((2, 3, 5)));
        assert_eq!(parse_version("2.4.13"), Some((2, 4, 13)));
        assert_eq!(parse_version("unknown"), None);
        let mut c = Milvus2SinkConfig::new("http://127.0.0.1:19530");
        c.mode = WriteMode::Bulk;
        c.stage = Some("/tmp/stage".into());
        let err = check_bulk_format(&c, "v2.3.3").unwrap_err().to_string();
        assert!(err.contains("2.3.4") && err.contains("numpy"), "{err}");
        assert!(check_bulk_format(&c, "v2.3.5-lite").is_ok());
        assert!(check_bulk_format(&c, "v2.5.0").is_ok());
        c.bulk_format = StagingFormat::Numpy;
        assert!(check_bulk_format(&c, "v2.3.3").is_ok());
        c.mode = WriteMode::Insert;
        c.bulk_format = StagingFormat::Parquet;
        assert!(check_bulk_format(&c, "v2.3.0").is_ok());
    }
}
