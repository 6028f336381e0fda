//! vmig-sink-milvus2: the `milvus2` sink, writing into a Milvus 2.x collection by insert,
//! upsert or bulk import, through [`vmig_milvus`].
//!
//! ```toml
//! [sink]
//! type = "milvus2"
//! uri = "http://127.0.0.1:19530"
//! user = "root"
//! password = "${MILVUS_PASSWORD}"
//! collection = "books"
//! mode = "insert"              # or "upsert" / "bulk"
//! stage = "/data/vmig-stage"   # bulk only
//! bulk_api = "auto"            # bulk only: or "grpc" / "rest"
//! ```
//!
//! **Main design decision:** durability follows the pipeline's flush contract exactly. In insert
//! and upsert mode, `write` sends requests sized by encoded bytes (`batch_bytes`) with at most
//! `concurrency` in flight (awaiting when full: back-pressure), retrying transient failures by
//! the `retry` policy ([`vmig_core::retry`]: exponential back-off with jitter) and splitting a request the server or client rejects as too large in
//! half (never dropping rows); `flush` waits for every in-flight request: an acknowledged
//! request is durable in Milvus's log, so the rows the runner then checkpoints are durable.
//! Milvus `Flush` (which seals segments) is called once, at commit, so that frequent
//! checkpoints do not fill the collection with small segments. In bulk mode, `write` appends to
//! staging files under `max_file_size` through the same
//! [`vmig_formats::staging::RotatingWriter`] as the `files` sink; `flush` imports the files the
//! previous flush staged and stages (finishes, syncs or uploads) the open ones; commit imports
//! the rest (an `s3://` stage is uploaded by [`vmig_core::store::upload_file`]). Only imported
//! rows are in the collection. The import goes through one of two APIs, chosen at start by
//! [`choose`] from `bulk_api` and the server's version (and logged; `vmig plan` says the rule):
//! Milvus 2.3's gRPC `Import` (one call per file or NumPy set, polled until Completed), or the
//! REST import jobs of Milvus 2.4+ ([`vmig_milvus::rest`]: one job per partition with up to
//! `max_files_per_job` files, polled until Completed, its progress logged). Into Zilliz Cloud
//! the same jobs go to its control plane (`https://api.cloud.zilliz.com`, the cluster id from
//! `cluster_id` or the endpoint's host, the `token` as API key), naming the files by object URL
//! in the user's own `s3://` stage, with the stage's access key pair for Zilliz to read them.
//!
//! Nothing changes in the target before the first batch is ready: the collection is created
//! then (bulk: before the first import; at commit for a source without rows), so a run that
//! fails early leaves the target
//! as it was. `if_exists = "drop"` over an existing collection writes into a new collection named
//! for the run (`<name>__vmig_<8 hex>`), and only `commit` drops the old one and renames the new
//! one to its name (indexes go along); `abort` drops that new collection again.
//!
//! Otherwise `abort` leaves in the collection what was already acknowledged (Milvus has no
//! transaction to roll back; rows acknowledged after the last flush may be sent again on a
//! re-run — use `mode = "upsert"` to make that idempotent), after waiting up to a minute for the
//! requests in flight so that its [`vmig_core::AbortReport`] states the exact number of
//! acknowledged rows and how to go on. A collection this run created and left empty is dropped.
//! Staged files not yet imported are deleted.
//!
//! Partitions: a batch whose source partition names a target partition (`write`, e.g. a
//! Milvus 1.x partition tag) goes into that Milvus partition, which is created on first use
//! (checked once per name); the source's name wins over the `partition` option, which applies
//! only to batches whose source names none (those without either go to `_default`). Insert
//! requests never mix partitions; bulk mode stages one file set per partition and passes the
//! name to `Import`.
//!
//! Nulls: only a field tagged `milvus.nullable` (a Milvus 2.5+ nullable source field) is created
//! nullable and may carry nulls (sent as `valid_data`, see `vmig_milvus::convert`); anywhere else
//! a null value stops the job with an error naming the field and row (fill it in with a
//! transform, or drop the rows, before the sink). Milvus 2.3 ignores `nullable` when creating a
//! collection, so after `prepare` the sink checks the target: a tagged field the target has as not
//! nullable loses the tag (with a warning), and its nulls are refused by vmig, not the server.
//!
//! # Resuming
//!
//! With checkpoints (`vmig migrate` with a state store), every checkpoint carries the sink's
//! resume record: the collection rows go into (with `if_exists = "drop"` over an existing
//! collection, the replacement `<name>__vmig_<run>` and the name it replaces), whether this job
//! created it and whether it exists yet, the mode, where primary keys come from, the rows made
//! durable so far and, in bulk mode, the run's stage directory with its staged and imported
//! files. No secrets. A resumed run continues into that collection whatever `if_exists` says,
//! after checking that it still exists and still fits the data (else it is refused, naming the
//! difference, with `vmig migrate --restart` as the way out); a record of another mode or id
//! policy is refused the same way.
//!
//! * **insert**: the runner saves, before every write, how many rows after each partition's
//!   checkpoint have been sent ([`vmig_core::Sink::needs_sent_marks`]). A resumed run sends
//!   that window again as upserts ([`vmig_core::Sink::write_replay`]), so rows the killed run
//!   had sent are replaced, not duplicated, and switches back to insert once past it. A
//!   retried insert request is sent as an upsert too (its first attempt may have landed; with the
//!   source's ids only).
//! * **insert with ids generated by Milvus** (`auto_id = true`, or a source asking for new ids
//!   with `vmig.auto_id`): rows sent again cannot be told from new ones. A run stopped cleanly
//!   (a signal: it flushes and saves what was acknowledged) resumes exactly; a run killed or
//!   failed with rows sent after its last checkpoint is refused at the first row it would send
//!   again, before writing it ([`Milvus2SinkConfig::resume_note`] says so in `vmig plan`).
//! * **upsert**: idempotent by primary key; rows after the checkpoint are upserted again. Sent
//!   marks are saved as in insert mode so that a checkpoint exists before the first write
//!   creates the collection.
//! * **bulk**: a file goes *open* → *staged* (finished and synced or uploaded at a flush, then
//!   listed in the record the runner saves after that flush) → *imported* (at the next flush or
//!   at commit, so only after a record lists it). Before submitting an import, a marker
//!   `<file>.importing` is written next to the file; a resumed run asks Milvus
//!   (`ListImportTasks`) about every inherited staged file: a completed import is not repeated,
//!   a running one is waited for, a failed one is submitted again, and one with a marker but no
//!   task is submitted only while Milvus would still list it (import tasks are kept 24 hours).
//!   Files the killed process wrote after its last record are removed from the run's directory
//!   (and only there); file names carry the process's attempt number, so no path is written
//!   twice. Imported files are removed unless `keep_staged`. Through REST, the marker holds
//!   the job's id once the server gave it: a resumed run asks that job (completed: not
//!   repeated; running: waited for; failed: submitted again) and refuses to guess about a marker
//!   without an id (the run stopped between submitting and the server's answer). The collection is created before
//!   the first import, so a run killed before its first checkpoint changed nothing in Milvus.
//! * A run killed before its first checkpoint: with sent marks (insert, upsert) there is a
//!   checkpoint without a record, and the resumed run continues into the collection of the
//!   configured name if it exists (with `if_exists = "drop"` it starts a new replacement and
//!   warns about the one the killed run may have created).
//!
//! * **several workers** ([`vmig_core::lease`]): every mode shares a job. The setup worker
//!   creates the collection; in bulk mode every worker stages its own files in the run's
//!   directory as `part-<worker tag>-<n>` and imports them at its next flush. What a worker
//!   leaves staged (its last flush's files, or a dead worker's, which its last record names) is
//!   imported by the worker that finishes the job ([`vmig_core::Sink::commit_shared`]) through
//!   the same inherited-file rules, so each file is imported once; what dead workers wrote after
//!   their last record is then removed from the run's directory.
//!
//! `suspend` (a stopped run) keeps the collection and every staged file a record names, and
//! removes only staging files written since the last flush. `abort` right after `resume` (what
//! `vmig migrate --restart` does with an unfinished run) removes what the interrupted run
//! created: its staged files not imported, and the collection the record proves it created
//! (one that existed when the record was taken, or its `__vmig_` replacement of an existing
//! collection, which stays as it was). A collection the run was still to create at its last
//! checkpoint is left and named, and rows added to a collection that existed before
//! (`if_exists = "append"`) stay: vmig cannot tell them apart.
//!
//! Version notes:
//! * Bulk import uses the 2.3 gRPC `Import` (one Parquet or JSON file, or one NumPy set, per
//!   call; Parquet needs 2.3.4+, use `bulk_format = "numpy"` or `"json"` on older 2.3 servers).
//!   Milvus 2.4/2.5 still accept it; their REST v2 jobs API (`/v2/vectordb/jobs/import/*`,
//!   many files per job) is a TODO.
//! * `stage` is where the server can read the files: an absolute local directory for a server
//!   with local storage on the same host (2.3 standalone), or `s3://bucket/prefix` in the bucket
//!   Milvus itself uses; object keys are then passed bucket-relative, as Milvus expects.
//! * VarChar `max_length` is `varchar_max_length` or else 65535 (the collection is created
//!   before any data is seen, so it cannot be measured).
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmig_core::registry::{BuildContext, SinkConfig};
use vmig_core::{Error, Result, RetryConfig, Sink};
use vmig_formats::staging::{StagingFormat, MILVUS_MAX_FILE_SIZE};
use vmig_milvus::meta::CollectionSettings;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::{ConnectOptions, MilvusClient};

mod bulk;
pub mod path;
mod readback;
mod record;
mod sink;

pub use path::{choose, BulkChoice, BulkPath};
pub use sink::Milvus2Sink;
/// The size type of `max_file_size` and `batch_bytes` (units: [`vmig_core::size`]).
pub use vmig_core::size::ByteSize;

/// The largest `batch_bytes`: the proxy's request limit
/// ([`vmig_milvus::client::MAX_ENCODING_BYTES`], 64MiB).
const MAX_BATCH_BYTES: ByteSize = ByteSize(vmig_milvus::client::MAX_ENCODING_BYTES as u64);

/// How rows get into the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// `Insert` requests (Milvus does not deduplicate primary keys).
    #[default]
    Insert,
    /// `Upsert` requests (idempotent by primary key; not with `auto_id`).
    Upsert,
    /// Staging files plus bulk `Import`.
    Bulk,
}

impl WriteMode {
    /// The name used in job files: `insert`, `upsert` or `bulk`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Upsert => "upsert",
            WriteMode::Bulk => "bulk",
        }
    }
}

/// Which API bulk mode imports through (`bulk_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkApi {
    /// By the server's version ([`choose`]): gRPC `Import` on Milvus 2.3, the REST import jobs
    /// on 2.4+ and Zilliz Cloud, gRPC when the server does not say its release.
    #[default]
    Auto,
    /// Milvus 2.3's gRPC `Import`, one file (or NumPy set) per call.
    Grpc,
    /// The REST import jobs of Milvus 2.4+ (several files per job).
    Rest,
}

impl BulkApi {
    /// The name used in job files: `auto`, `grpc` or `rest`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkApi::Auto => "auto",
            BulkApi::Grpc => "grpc",
            BulkApi::Rest => "rest",
        }
    }

    fn is_auto(&self) -> bool {
        *self == BulkApi::Auto
    }
}

/// What to do when the collection already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Stop with an error (the default: never write into a collection by accident).
    #[default]
    Error,
    /// Add rows to it (its schema must match the data).
    Append,
    /// Replace it: fill a new collection and swap it in (drop the old, rename the new) only
    /// when the run completes.
    Drop,
}

/// The consistency level the collection is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Consistency {
    /// Strong.
    #[serde(alias = "strong")]
    Strong,
    /// Session.
    #[serde(alias = "session")]
    Session,
    /// Bounded staleness (Milvus's default).
    #[default]
    #[serde(alias = "bounded")]
    Bounded,
    /// Eventually.
    #[serde(alias = "eventually")]
    Eventually,
    /// Customized: each search or query gives its own guarantee timestamp.
    #[serde(alias = "customized")]
    Customized,
}

impl Consistency {
    pub(crate) fn level(self) -> ConsistencyLevel {
        match self {
            Consistency::Strong => ConsistencyLevel::Strong,
            Consistency::Session => ConsistencyLevel::Session,
            Consistency::Bounded => ConsistencyLevel::Bounded,
            Consistency::Eventually => ConsistencyLevel::Eventually,
            Consistency::Customized => ConsistencyLevel::Customized,
        }
    }
}

/// An index to build at commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Index type (`FLAT`, `IVF_FLAT`, `HNSW`, `BIN_FLAT`, …).
    #[serde(rename = "type")]
    pub index_type: String,
    /// Metric (`L2`, `IP`, `COSINE`, `HAMMING`, `JACCARD`); default: the schema's `vmig.metric`,
    /// else `L2` (`HAMMING` for binary vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Index parameters, e.g. `{ nlist = 128 }` or `{ M = 16, efConstruction = 64 }`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
    /// The vector field; default: the first vector field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Configuration of the `milvus2` sink.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milvus2SinkConfig {
    /// `http://host:port` (or `https://…`); a `user:password@` in it is used as the
    /// credentials when `token` and `user` are not set. Printed without its user-info.
    #[serde(serialize_with = "vmig_core::redact::serialize_redacted")]
    pub uri: String,
    /// API token (or `user:password`); default: env `MILVUS_TOKEN`. Printed as `***`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub token: Option<String>,
    /// User name; default: env `MILVUS_USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password; default: env `MILVUS_PASSWORD`. Use `${VAR}`, never a literal. Printed as
    /// `***`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub password: Option<String>,
    /// Database; default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// PEM file of a CA to trust (turns TLS on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Target collection; default: the schema's `vmig.collection` (set by the source or the
    /// `collection` transform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// `insert` (default), `upsert` or `bulk`.
    #[serde(default)]
    pub mode: WriteMode,
    /// Bulk only: an absolute directory the server can read, or `s3://bucket/prefix` in
    /// Milvus's own bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Object-store options for an `s3://` stage (`aws_endpoint`, `aws_access_key_id`, …).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "vmig_core::redact::serialize_redacted"
    )]
    pub storage: BTreeMap<String, String>,
    /// Bulk only: `parquet` (default; Milvus 2.3.4+), `numpy` or `json`.
    #[serde(default)]
    pub bulk_format: StagingFormat,
    /// Bulk only: largest staging file (or NumPy set); default 1GiB, at most 16GiB
    /// ([units](vmig_core::size)).
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Bulk only: keep each staging file after Milvus confirmed its import (default false:
    /// removed then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_staged: bool,
    /// Bulk only: the import API, `auto` (default), `grpc` or `rest` ([`BulkApi`], [`choose`]).
    #[serde(default, skip_serializing_if = "BulkApi::is_auto")]
    pub bulk_api: BulkApi,
    /// Bulk through REST only: the REST API's base URL (default: `uri`'s scheme, host and port,
    /// where Milvus 2.4+ serves it). Printed without its user-info.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_redacted"
    )]
    pub rest_uri: Option<String>,
    /// Bulk into Zilliz Cloud only: the cluster's id (`in01-…`, on its details page in the
    /// console); default: the first label of `uri`'s host, which is the id on Zilliz's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Bulk through REST only: staged files per import job, 1 to 1024 (default 1024, Milvus's
    /// per-request limit `dataCoord.import.maxImportFileNumPerReq`); a flush with more files
    /// submits several jobs.
    #[serde(
        default = "default_max_files_per_job",
        skip_serializing_if = "is_default_max_files_per_job"
    )]
    pub max_files_per_job: usize,
    /// `error` (default), `append` or `drop`.
    #[serde(default)]
    pub if_exists: IfExists,
    /// Let Milvus generate primary keys (default false: keep the source's ids, also when the
    /// source collection generated them; a source may ask for new ones with schema metadata
    /// `vmig.auto_id = true`).
    #[serde(default)]
    pub auto_id: bool,
    /// Primary-key field; default: the schema's `vmig.primary_key`, else `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// `max_length` of VarChar fields (default 65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varchar_max_length: Option<u32>,
    /// Enable the dynamic field when creating the collection (also on when the data has a
    /// `$meta` field or the source's collection had it).
    #[serde(default)]
    pub dynamic_field: bool,
    /// Shards of a new collection (default: the source collection's, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<i32>,
    /// Consistency level of a new collection (default: the source collection's, else
    /// `Bounded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_level: Option<Consistency>,
    /// Description of a new collection (default: the source collection's).
    #[serde(default)]
    pub description: String,
    /// Target partition (created if missing) for rows whose source names no partition; a
    /// source-named partition wins. Default the collection's `_default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Index to build at commit (default: the indexes of the source collection, when the
    /// source is a Milvus collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexConfig>,
    /// Load the collection at commit (needs an index, configured or carried from the source).
    #[serde(default)]
    pub load: bool,
    /// Target size of one insert request in encoded bytes (default 16MiB, below the 64MiB
    /// request limit; [units](vmig_core::size)).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: ByteSize,
    /// Insert requests in flight at once (default 2).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Retry policy of requests failing transiently: a `[sink.retry]` table
    /// ([`vmig_core::retry`]; default 7 attempts, waits from 200 ms doubling up to 10 s with
    /// jitter, at most 15 min in all).
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
    /// The older spelling of `retry.max_attempts`: `max_retries = n` is `n + 1` attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

vmig_core::redacted_debug!(Milvus2SinkConfig);

fn default_max_file_size() -> ByteSize {
    ByteSize::gib(1)
}
fn default_max_files_per_job() -> usize {
    vmig_milvus::rest::MAX_FILES_PER_JOB
}
fn is_default_max_files_per_job(n: &usize) -> bool {
    *n == default_max_files_per_job()
}
fn default_batch_bytes() -> ByteSize {
    ByteSize::mib(16)
}
fn default_concurrency() -> usize {
    2
}

impl Milvus2SinkConfig {
    /// A config for `uri` with every default.
    pub fn new(uri: impl Into<String>) -> Self {
        Milvus2SinkConfig {
            uri: uri.into(),
            token: None,
            user: None,
            password: None,
            db: None,
            ca_cert: None,
            collection: None,
            mode: WriteMode::Insert,
            stage: None,
            storage: BTreeMap::new(),
            bulk_format: StagingFormat::Parquet,
            max_file_size: default_max_file_size(),
            keep_staged: false,
            bulk_api: BulkApi::Auto,
            rest_uri: None,
            cluster_id: None,
            max_files_per_job: default_max_files_per_job(),
            if_exists: IfExists::Error,
            auto_id: false,
            primary_key: None,
            varchar_max_length: None,
            dynamic_field: false,
            shards: None,
            consistency_level: None,
            description: String::new(),
            partition: None,
            index: None,
            load: false,
            batch_bytes: default_batch_bytes(),
            concurrency: default_concurrency(),
            retry: RetryConfig::default(),
            max_retries: None,
        }
    }

    /// The retry policy: the `retry` table with the older `max_retries` applied.
    ///
    /// # Errors
    /// When the two disagree or the table is invalid.
    pub fn retry_policy(&self) -> Result<RetryConfig> {
        self.retry.with_max_retries(NAME, self.max_retries)
    }

    /// What `vmig plan` should say about resuming this sink's checkpointed runs, when there
    /// is a limit to tell (see the crate docs, "Resuming"); `None` when an interrupted run
    /// resumes exactly once whatever stopped it. `schema` is the data's schema after the
    /// transforms, when known: a source asking for new ids (`vmig.auto_id`) counts like
    /// `auto_id = true`.
    ///
    /// ```
    /// use vmig_sink_milvus2::Milvus2SinkConfig;
    /// let mut c = Milvus2SinkConfig::new("http://127.0.0.1:19530");
    /// assert_eq!(c.resume_note(None), None);
    /// c.auto_id = true;
    /// assert!(c.resume_note(None).unwrap().contains("--restart"));
    /// ```
    pub fn resume_note(&self, schema: Option<&arrow::datatypes::Schema>) -> Option<String> {
        let asked = schema.is_some_and(|s| CollectionSettings::from_schema(s).regenerate_ids);
        match self.mode {
            WriteMode::Insert if self.auto_id || asked => {
                let why = if self.auto_id {
                    "`auto_id = true`"
                } else {
                    "the source asks for new ids (`vmig.auto_id`)"
                };
                Some(format!(
                    "{why}: Milvus generates the primary keys, so rows an interrupted run sent after its last checkpoint cannot be told apart from new ones. A run stopped cleanly (Ctrl-C, SIGTERM) resumes exactly; a run killed, or failed, after sending rows past its last checkpoint cannot be resumed without duplicates, and the resumed run stops before sending them again: start over with `vmig migrate --restart` (with `if_exists = \"drop\"` or a new collection)"
                ))
            }
            WriteMode::Bulk => {
                let through = match self.bulk_api {
                    BulkApi::Auto => "imports through gRPC `Import` on Milvus 2.3 and through the REST import jobs on Milvus 2.4+ and Zilliz Cloud (`bulk_api = \"auto\"`: chosen by the server's version at start, and logged)",
                    BulkApi::Grpc => "imports through gRPC `Import` (`bulk_api = \"grpc\"`)",
                    BulkApi::Rest => "imports through the REST import jobs of Milvus 2.4+ and Zilliz Cloud (`bulk_api = \"rest\"`)",
                };
                Some(format!(
                    "bulk {through}: every checkpoint (`checkpoint_interval`, `flush_rows`) closes the open staging files, and each is imported after the checkpoint that lists it, exactly once also across resumed runs; expect one import per partition and checkpoint (REST: one job per partition and up to `max_files_per_job` files), so raise `checkpoint_interval` for fewer, larger imports"
                ))
            }
            _ => None,
        }
    }

    /// The REST import-jobs client of bulk imports through REST. On Milvus: `rest_uri`, else
    /// `uri`'s scheme, host and port, with the credentials of `options`. On Zilliz Cloud
    /// ([`Milvus2SinkConfig::zilliz_import`]): its control plane, with the API key of `token`, the
    /// cluster id and the `s3://` stage's bucket credentials.
    ///
    /// # Errors
    /// [`Milvus2SinkConfig::zilliz_import`]'s refusals, and
    /// [`vmig_milvus::rest::ImportJobs::new`]'s.
    pub fn import_jobs(
        &self,
        options: &ConnectOptions,
        server: &vmig_milvus::ServerVersion,
    ) -> Result<vmig_milvus::rest::ImportJobs> {
        let db = self.db.clone().filter(|d| !d.is_empty());
        let (base, base_option, api) = if server.is_zilliz() {
            // The control plane's URL is `rest_uri`'s (or its default).
            let (base, api) = self.zilliz_import(options, db)?;
            (base, "rest_uri", api)
        } else {
            if let Some(id) = &self.cluster_id {
                return Err(Error::config(
                    NAME,
                    format!(
                        "`cluster_id` = {id:?} names a Zilliz Cloud cluster, and `uri` is not a Zilliz Cloud endpoint ({server}); remove `cluster_id` for a Milvus server"
                    ),
                ));
            }
            let api = vmig_milvus::rest::ImportApi::Milvus { db };
            match &self.rest_uri {
                Some(u) => (u.clone(), "rest_uri", api),
                None => (options.normalized_uri(), "uri", api),
            }
        };
        vmig_milvus::rest::ImportJobs::new(&vmig_milvus::rest::RestOptions {
            base,
            base_option: base_option.into(),
            token: options.rest_token(),
            request_timeout_secs: 60,
            ca_cert: options.ca_cert.as_ref().map(|p| p.display().to_string()),
            retry: self.retry_policy()?,
            api,
        })
    }

    /// The bucket of an `s3://` stage (`None` for a local one).
    pub(crate) fn stage_bucket(&self) -> Option<&str> {
        let rest = self.stage.as_deref()?.strip_prefix("s3://")?;
        rest.split('/').next()
    }

    /// Bulk import into Zilliz Cloud: the control plane's URL (`rest_uri`, default
    /// `https://api.cloud.zilliz.com`, or `https://api.cloud.zilliz.com.cn` for a
    /// `*.zilliz.com.cn` endpoint) and the import form: the cluster id (`cluster_id`, else the
    /// first label of `uri`'s host), and the long-term access key pair Zilliz Cloud reads the
    /// `s3://` stage with (`storage`'s `aws_access_key_id` and `aws_secret_access_key`, else
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).
    ///
    /// # Errors
    /// [`Error::Config`] when `token` is no API key (missing, or `user:password`, which the
    /// control plane does not take), the stage is not `s3://`, the bucket keys are missing or
    /// come with a session token, or no cluster id is given or derivable; each says what to set.
    pub fn zilliz_import(
        &self,
        options: &ConnectOptions,
        db: Option<String>,
    ) -> Result<(String, vmig_milvus::rest::ImportApi)> {
        self.zilliz_import_with(options, db, |name| std::env::var(name).ok())
    }

    /// [`Milvus2SinkConfig::zilliz_import`] reading environment variables through `env`.
    fn zilliz_import_with(
        &self,
        options: &ConnectOptions,
        db: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(String, vmig_milvus::rest::ImportApi)> {
        let refuse = |what: String| {
            Err(Error::config(
                NAME,
                format!("bulk import into Zilliz Cloud {what}"),
            ))
        };
        match options.token.as_deref() {
            Some(t) if !t.is_empty() && !t.contains(':') => {}
            _ => {
                return refuse("goes through its control plane, which takes an API key: set `token` (or `MILVUS_TOKEN`) to a Zilliz Cloud API key with access to the cluster; `user` and `password` (or a `user:password` token) reach the cluster only".into())
            }
        }
        let Some(bucket) = self.stage_bucket() else {
            let stage = self.stage.as_deref().unwrap_or_default();
            return refuse(format!(
                "reads the staged files from your own bucket, and `stage` = {stage:?} is a local directory: set `stage = \"s3://<bucket>/<prefix>\"` (a bucket Zilliz Cloud may read) with its credentials in `storage`"
            ));
        };
        let key = |option: &str, var: &str| {
            self.storage
                .get(option)
                .cloned()
                .or_else(|| env(var))
                .filter(|v| !v.is_empty())
        };
        let (Some(access_key), Some(secret_key)) = (
            key("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            key("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ) else {
            return refuse(format!(
                "gives Zilliz Cloud the access key pair it reads `s3://{bucket}` with, and none is set: set `storage.aws_access_key_id` and `storage.aws_secret_access_key` (or `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`) to a long-term key with s3:GetObject, s3:ListBucket and s3:GetBucketLocation on it"
            ));
        };
        if key("aws_session_token", "AWS_SESSION_TOKEN").is_some() {
            return refuse(format!(
                "gives Zilliz Cloud a long-term access key pair to read `s3://{bucket}` with, and a session token is set (`storage.aws_session_token` or `AWS_SESSION_TOKEN`), which vmig does not pass on: use a long-term key with s3:GetObject, s3:ListBucket and s3:GetBucketLocation on the bucket"
            ));
        }
        let host = vmig_milvus::version::host_of(&self.uri);
        let cluster_id = match &self.cluster_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => match vmig_milvus::version::zilliz_cluster_id(&host) {
                Some(id) => id,
                None => {
                    return refuse(format!(
                        "names the cluster by its id, and the host `{host}` does not start with one: set `cluster_id` (`in01-…`, on the cluster's details page)"
                    ))
                }
            },
        };
        let base = match &self.rest_uri {
            Some(u) => u.clone(),
            None if host.ends_with(".zilliz.com.cn") => "https://api.cloud.zilliz.com.cn".into(),
            None => "https://api.cloud.zilliz.com".into(),
        };
        Ok((
            base,
            vmig_milvus::rest::ImportApi::ZillizCloud {
                cluster_id,
                db,
                credentials: Some(vmig_milvus::rest::BucketCredentials {
                    access_key,
                    secret_key,
                }),
            },
        ))
    }

    /// Connection options, with secrets defaulting to `MILVUS_TOKEN`, `MILVUS_USER` and
    /// `MILVUS_PASSWORD`.
    pub fn connect_options(&self, ctx: &BuildContext) -> ConnectOptions {
        ConnectOptions::from_config(
            &self.uri,
            self.token.as_deref(),
            self.user.as_deref(),
            self.password.as_deref(),
            self.db.as_deref(),
            self.ca_cert.as_ref().map(|p| ctx.resolve(p).into()),
        )
    }
}

const NAME: &str = "milvus2";

#[async_trait::async_trait]
impl SinkConfig for Milvus2SinkConfig {
    const NAME: &'static str = NAME;
    const SUMMARY: &'static str =
        "a Milvus 2.x collection (created from the schema), by insert, upsert or bulk import";

    fn example() -> Self {
        let mut c = Milvus2SinkConfig::new("http://127.0.0.1:19530");
        c.user = Some("root".into());
        c.password = Some("${MILVUS_PASSWORD}".into());
        c.collection = Some("books".into());
        c
    }

    fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::config(NAME, m));
        if self.uri.trim().is_empty() {
            return err("`uri` is empty; e.g. uri = \"http://127.0.0.1:19530\"".into());
        }
        if self.batch_bytes.bytes() == 0 || self.batch_bytes > MAX_BATCH_BYTES {
            return err(format!(
                "`batch_bytes` = {} must be between 1 byte and the {MAX_BATCH_BYTES} Milvus request limit (16MiB–32MiB is best)",
                self.batch_bytes
            ));
        }
        if self.concurrency == 0 {
            return err("`concurrency` must be at least 1".into());
        }
        self.retry_policy()?;
        if let Some(shards) = self.shards.filter(|s| !(1..=16).contains(s)) {
            return err(format!("`shards` = {shards} must be 1..=16"));
        }
        if let Some(n) = self.varchar_max_length {
            if n == 0 || n > vmig_milvus::schema::MAX_VARCHAR {
                return err(format!("`varchar_max_length` = {n} must be 1..=65535"));
            }
        }
        if self.mode == WriteMode::Upsert && self.auto_id {
            return err("`mode = \"upsert\"` needs the source's primary keys; it cannot be combined with `auto_id = true`".into());
        }
        match (&self.mode, &self.stage) {
            (WriteMode::Bulk, None) => {
                return err("`mode = \"bulk\"` needs `stage`: an absolute directory the Milvus server can read, or s3://bucket/prefix in Milvus's bucket".into())
            }
            (WriteMode::Bulk, Some(s)) if !s.starts_with("s3://") && !std::path::Path::new(s).is_absolute() => {
                return err(format!("`stage` = {s:?} must be an absolute path (the server resolves relative paths against its own working directory) or s3://bucket/prefix"))
            }
            (WriteMode::Insert | WriteMode::Upsert, Some(_)) => {
                return err("`stage` is only used with `mode = \"bulk\"`".into())
            }
            _ => {}
        }
        if self.mode != WriteMode::Bulk && !self.bulk_api.is_auto() {
            return err("`bulk_api` is only used with `mode = \"bulk\"`".into());
        }
        if self.rest_uri.is_some()
            && (self.mode != WriteMode::Bulk || self.bulk_api == BulkApi::Grpc)
        {
            return err("`rest_uri` is only used by bulk imports through REST (`mode = \"bulk\"` with `bulk_api = \"rest\"` or `\"auto\"`)".into());
        }
        if self.cluster_id.is_some()
            && (self.mode != WriteMode::Bulk || self.bulk_api == BulkApi::Grpc)
        {
            return err("`cluster_id` is only used by bulk imports into Zilliz Cloud (`mode = \"bulk\"` with `bulk_api = \"rest\"` or `\"auto\"`)".into());
        }
        if !(1..=vmig_milvus::rest::MAX_FILES_PER_JOB).contains(&self.max_files_per_job) {
            return err(format!(
                "`max_files_per_job` = {} must be 1..={} (Milvus's `dataCoord.import.maxImportFileNumPerReq`)",
                self.max_files_per_job,
                vmig_milvus::rest::MAX_FILES_PER_JOB
            ));
        }
        if self.max_file_size.bytes() == 0 || self.max_file_size > MILVUS_MAX_FILE_SIZE {
            return err(format!(
                "`max_file_size` = {} must be positive and at most {MILVUS_MAX_FILE_SIZE} (Milvus's per-file import limit)",
                self.max_file_size
            ));
        }
        Ok(())
    }

    /// The CA certificate file and a local bulk-import stage directory, when given.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[
            ("ca_cert", self.ca_cert.as_deref()),
            ("stage", self.stage.as_deref()),
        ])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Sink>> {
        self.validate()?;
        let options = self.connect_options(ctx);
        let client = MilvusClient::connect(&options).await?;
        let mut sink = Milvus2Sink::new(self.clone(), client)?;
        if self.mode == WriteMode::Bulk {
            let choice = choose(self.bulk_api, sink.server())?;
            tracing::info!(
                path = choice.path.as_str(),
                why = choice.why,
                "bulk import path"
            );
            let how = match choice.path {
                BulkPath::Grpc => "gRPC `Import`, one staged file per call",
                BulkPath::Rest => "REST import jobs (`/v2/vectordb/jobs/import/create`)",
            };
            sink = sink.with_note(format!("bulk import through {how}: {}", choice.why));
            if choice.path == BulkPath::Rest {
                let jobs = self.import_jobs(&options, sink.server())?;
                if jobs.takes_object_urls() {
                    sink = sink.with_note(format!(
                        "Zilliz Cloud imports each job's files from {}/… by object URL, reading them with the access key of `storage` (or AWS_ACCESS_KEY_ID); jobs are created at {}",
                        self.stage.as_deref().unwrap_or_default().trim_end_matches('/'),
                        jobs.display_url()
                    ));
                }
                sink = sink.with_rest(jobs);
            }
        }
        Ok(Box::new(sink))
    }

    /// See [`Milvus2SinkConfig::resume_note`].
    fn resume_note(&self, schema: &arrow::datatypes::SchemaRef) -> Option<String> {
        Milvus2SinkConfig::resume_note(self, Some(schema))
    }

    /// Every mode: insert and upsert (rows durable per request, replayed as upserts), bulk
    /// (each worker's staged files imported once, by it or by the worker that finishes the job).
    fn shares_jobs(&self) -> bool {
        true
    }

    /// Reads the collection back in primary-key order (it must be loaded).
    async fn open_target(
        &self,
        ctx: &BuildContext,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<Option<Box<dyn vmig_core::Source>>> {
        let collection = self
            .collection
            .clone()
            .or_else(|| {
                schema
                    .metadata()
                    .get(vmig_core::vector::META_COLLECTION)
                    .cloned()
            })
            .ok_or_else(|| {
                Error::config(
                    NAME,
                    "no `collection` configured and none named by the source or a transformer",
                )
            })?;
        let client = MilvusClient::connect(&self.connect_options(ctx)).await?;
        let reader =
            readback::CollectionReader::open(client, collection, schema, self.retry_policy()?)
                .await?;
        Ok(Some(Box::new(reader)))
    }
}

vmig_core::register_sink!(Milvus2SinkConfig);

/// How long flush, load and import waits may take before they count as failed.
pub(crate) const LONG_WAIT: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_validates() -> Result<()> {
        let v = serde_json::to_value(Milvus2SinkConfig::example())
            .map_err(|e| Error::External(e.into()))?;
        let mut back: Milvus2SinkConfig =
            serde_json::from_value(v).map_err(|e| Error::External(e.into()))?;
        assert_eq!(back, Milvus2SinkConfig::example());
        back.validate()?;
        // Secrets print as `***`, the URI without its user-info.
        back.uri = "http://root:hunter2@h:19530".into();
        back.password = Some("hunter3".into());
        back.token = Some("hunter4".into());
        vmig_testing::secrets::assert_hidden(&back, &["hunter"], &["http://***@h:19530"]);
        Ok(())
    }

    /// Bulk into Zilliz Cloud: what the import client is built from, and each refusal's text.
    #[test]
    fn zilliz_bulk_takes_an_api_key_an_s3_stage_and_its_key_pair() {
        use vmig_milvus::rest::{BucketCredentials, ImportApi};
        let host = "in01-0123abcd.aws-us-west-2.vectordb.zillizcloud.com";
        let mut c = Milvus2SinkConfig::new(format!("https://{host}:19530"));
        c.mode = WriteMode::Bulk;
        c.stage = Some("s3://my-bucket/vmig".into());
        c.storage = BTreeMap::from([
            ("aws_access_key_id".to_string(), "AKIAEXAMPLE".to_string()),
            (
                "aws_secret_access_key".to_string(),
                "bucket-S3cret".to_string(),
            ),
        ]);
        let mut options = ConnectOptions::new(c.uri.clone());
        options.token = Some("zilliz-api-key".into());
        let no_env = |_: &str| None;
        let made = c.zilliz_import_with(&options, Some("books".into()), no_env);
        let (base, api) = made.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(base, "https://api.cloud.zilliz.com");
        assert_eq!(
            api,
            ImportApi::ZillizCloud {
                cluster_id: "in01-0123abcd".into(),
                db: Some("books".into()),
                credentials: Some(BucketCredentials {
                    access_key: "AKIAEXAMPLE".into(),
                    secret_key: "bucket-S3cret".into(),
                }),
            }
        );
        let refusal =
            |c: &Milvus2SinkConfig, o: &ConnectOptions, env: &dyn Fn(&str) -> Option<String>| {
                c.zilliz_import_with(o, None, env).unwrap_err().to_string()
            };
        // The key pair may come from the environment; a China-region host has its own plane.
        let mut cn = c.clone();
        cn.uri = "https://in05-ab12.api.ali-cn-hangzhou.zilliz.com.cn".into();
        cn.storage.clear();
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIAENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-S3cret".to_string()),
            _ => None,
        };
        let (base, api) = cn
            .zilliz_import_with(&options, None, env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(base, "https://api.cloud.zilliz.com.cn");
        assert!(
            matches!(api, ImportApi::ZillizCloud { ref cluster_id, credentials: Some(ref k), .. } if cluster_id == "in05-ab12" && k.access_key == "AKIAENV")
        );
        assert_eq!(
            refusal(&cn, &options, &no_env),
            "invalid `milvus2` configuration: bulk import into Zilliz Cloud gives Zilliz Cloud the access key pair it reads `s3://my-bucket` with, and none is set: set `storage.aws_access_key_id` and `storage.aws_secret_access_key` (or `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`) to a long-term key with s3:GetObject, s3:ListBucket and s3:GetBucketLocation on it"
        );
        let with_session = |name: &str| {
            (name == "AWS_SESSION_TOKEN")
                .then(|| "FQoGZXIvYXdz".to_string())
                .or_else(|| env(name))
        };
        assert!(refusal(&cn, &options, &with_session).contains("a session token is set (`storage.aws_session_token` or `AWS_SESSION_TOKEN`), which vmig does not pass on"));
        // user:password reaches the cluster, not the control plane.
        let mut pw = options.clone();
        pw.token = Some("db_admin:hunter2".into());
        let e = refusal(&c, &pw, &no_env);
        assert_eq!(e, "invalid `milvus2` configuration: bulk import into Zilliz Cloud goes through its control plane, which takes an API key: set `token` (or `MILVUS_TOKEN`) to a Zilliz Cloud API key with access to the cluster; `user` and `password` (or a `user:password` token) reach the cluster only");
        assert!(!e.contains("hunter2"));
        pw.token = None;
        assert_eq!(refusal(&c, &pw, &no_env), e);
        // A local stage is not readable by Zilliz Cloud.
        let mut local = c.clone();
        local.stage = Some("/data/stage".into());
        assert_eq!(
            refusal(&local, &options, &no_env),
            "invalid `milvus2` configuration: bulk import into Zilliz Cloud reads the staged files from your own bucket, and `stage` = \"/data/stage\" is a local directory: set `stage = \"s3://<bucket>/<prefix>\"` (a bucket Zilliz Cloud may read) with its credentials in `storage`"
        );
        // A host that does not start with the cluster id needs `cluster_id`, which wins.
        let mut proxy = c.clone();
        proxy.uri = "https://vectors.zillizcloud.com".into();
        assert_eq!(
            refusal(&proxy, &options, &no_env),
            "invalid `milvus2` configuration: bulk import into Zilliz Cloud names the cluster by its id, and the host `vectors.zillizcloud.com` does not start with one: set `cluster_id` (`in01-…`, on the cluster's details page)"
        );
        proxy.cluster_id = Some("in02-feed".into());
        proxy.rest_uri = Some("https://api.example.test".into());
        let (base, api) = proxy
            .zilliz_import_with(&options, None, no_env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(base, "https://api.example.test");
        assert!(
            matches!(api, ImportApi::ZillizCloud { ref cluster_id, .. } if cluster_id == "in02-feed")
        );
        // `cluster_id` on a Milvus server is refused, not ignored.
        let mut milvus = c.clone();
        milvus.uri = "http://127.0.0.1:19530".into();
        milvus.cluster_id = Some("in01-0123abcd".into());
        let server = vmig_milvus::ServerVersion::new(&milvus.uri, Some("v2.5.4"));
        assert_eq!(
            milvus.import_jobs(&options, &server).unwrap_err().to_string(),
            "invalid `milvus2` configuration: `cluster_id` = \"in01-0123abcd\" names a Zilliz Cloud cluster, and `uri` is not a Zilliz Cloud endpoint (Milvus v2.5.4); remove `cluster_id` for a Milvus server"
        );
    }

    #[test]
    fn retry_table_and_the_older_max_retries() {
        let mut c = Milvus2SinkConfig::new("http://x:1");
        assert_eq!(c.retry_policy().unwrap(), RetryConfig::default());
        c.max_retries = Some(0);
        assert_eq!(c.retry_policy().unwrap().max_attempts, 1);
        let parsed: Milvus2SinkConfig = serde_json::from_value(serde_json::json!({
            "uri": "http://x:1",
            "retry": { "max_attempts": 2, "max_backoff": "1s", "initial_backoff": "5s" }
        }))
        .unwrap();
        assert_eq!(
            parsed.validate().unwrap_err().to_string(),
            "invalid `milvus2` configuration: `retry.max_backoff` (1s) is below `retry.initial_backoff` (5s)"
        );
    }

    #[test]
    fn bad_combinations_are_refused() {
        let mut c = Milvus2SinkConfig::new("http://x:1");
        c.mode = WriteMode::Bulk;
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: `mode = \"bulk\"` needs `stage`: an absolute directory the Milvus server can read, or s3://bucket/prefix in Milvus's bucket");
        c.stage = Some("relative/dir".into());
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: `stage` = \"relative/dir\" must be an absolute path (the server resolves relative paths against its own working directory) or s3://bucket/prefix");
        c.stage = Some("/abs".into());
        assert!(c.validate().is_ok());
        c.mode = WriteMode::Upsert;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid `milvus2` configuration: `stage` is only used with `mode = \"bulk\"`"
        );
        let mut c = Milvus2SinkConfig::new("http://x:1");
        c.batch_bytes = ByteSize(100 << 20);
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: `batch_bytes` = 100MiB must be between 1 byte and the 64MiB Milvus request limit (16MiB–32MiB is best)");
    }

    #[test]
    fn bulk_api_options_are_checked_and_named_in_the_plan() {
        let mut c = Milvus2SinkConfig::new("http://x:1");
        c.bulk_api = BulkApi::Rest;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid `milvus2` configuration: `bulk_api` is only used with `mode = \"bulk\"`"
        );
        c.mode = WriteMode::Bulk;
        c.stage = Some("/abs".into());
        assert!(c.validate().is_ok());
        assert!(c.resume_note(None).unwrap().starts_with(
            "bulk imports through the REST import jobs of Milvus 2.4+ and Zilliz Cloud (`bulk_api = \"rest\"`)"
        ));
        c.bulk_api = BulkApi::Grpc;
        c.cluster_id = Some("in01-ab".into());
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: `cluster_id` is only used by bulk imports into Zilliz Cloud (`mode = \"bulk\"` with `bulk_api = \"rest\"` or `\"auto\"`)");
        c.cluster_id = None;
        c.rest_uri = Some("http://x:19530".into());
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: `rest_uri` is only used by bulk imports through REST (`mode = \"bulk\"` with `bulk_api = \"rest\"` or `\"auto\"`)");
        c.rest_uri = None;
        assert!(c
            .resume_note(None)
            .unwrap()
            .starts_with("bulk imports through gRPC `Import` (`bulk_api = \"grpc\"`)"));
        c.bulk_api = BulkApi::Auto;
        assert!(c.resume_note(None).unwrap().starts_with("bulk imports through gRPC `Import` on Milvus 2.3 and through the REST import jobs on Milvus 2.4+"));
        for (n, ok) in [(0, false), (1, true), (1024, true), (1025, false)] {
            c.max_files_per_job = n;
            let got = c.validate().map_err(|e| e.to_string());
            if ok {
                assert!(got.is_ok(), "{n}: {got:?}");
            } else {
                assert_eq!(got.unwrap_err(), format!("invalid `milvus2` configuration: `max_files_per_job` = {n} must be 1..=1024 (Milvus's `dataCoord.import.maxImportFileNumPerReq`)"));
            }
        }
        // Parsed from a job file; defaults are left out when printed.
        let parsed: Milvus2SinkConfig = serde_json::from_value(serde_json::json!({
            "uri": "http://x:1", "mode": "bulk", "stage": "/abs", "bulk_api": "rest",
            "rest_uri": "http://u:pw@x:19530", "max_files_per_job": 2
        }))
        .unwrap();
        assert_eq!(
            (parsed.bulk_api, parsed.max_files_per_job),
            (BulkApi::Rest, 2)
        );
        let v = serde_json::to_value(&parsed).unwrap();
        assert_eq!(v["rest_uri"], "http://***@x:19530");
        let v = serde_json::to_value(Milvus2SinkConfig::new("http://x:1")).unwrap();
        assert!(v.get("bulk_api").is_none() && v.get("max_files_per_job").is_none());
    }

    /// `batch_bytes` and `max_file_size` follow [`vmig_core::size`]: `MB` is 10^6, `MiB` 2^20,
    /// `TiB` is known, a bare `m` is refused (it used to mean 10^6 here), and the limits print
    /// canonically.
    #[test]
    fn sizes_have_one_meaning() {
        let c: Milvus2SinkConfig = serde_json::from_value(
            serde_json::json!({ "uri": "http://x:1", "batch_bytes": "16MB", "max_file_size": "2TB" }),
        )
        .unwrap();
        assert_eq!(
            (c.batch_bytes, c.max_file_size),
            (ByteSize(16_000_000), ByteSize(2 * 10u64.pow(12)))
        );
        for (key, value, error) in [
            ("batch_bytes", "16m", Some("`batch_bytes`: `16m` is ambiguous: write \"16MiB\" (16 * 2^20 bytes) or \"16MB\" (16 * 10^6 bytes)")),
            ("max_file_size", "1G", Some("`max_file_size`: `1G` is ambiguous: write \"1GiB\" (1 * 2^30 bytes) or \"1GB\" (1 * 10^9 bytes)")),
            ("max_file_size", "1TiB", Some("`max_file_size` = 1TiB must be positive and at most 16GiB (Milvus's per-file import limit)")),
            ("batch_bytes", "100MB", Some("`batch_bytes` = 100000000B must be between 1 byte and the 64MiB Milvus request limit (16MiB–32MiB is best)")),
            ("batch_bytes", "64MiB", None),
        ] {
            let config = serde_json::json!({ "uri": "http://x:1", key: value });
            let got = vmig_core::registry::parse_sink("milvus2", config).map(|_| ());
            let want = error.map(|e| format!("invalid `milvus2` configuration: {e}"));
            assert_eq!(got.map_err(|e| e.to_string()).err(), want, "{key} = {value}");
        }
        let v = serde_json::to_value(Milvus2SinkConfig::new("http://x:1")).unwrap();
        assert_eq!(v["batch_bytes"], "16MiB");
        assert_eq!(v["max_file_size"], "1GiB");
    }
}
