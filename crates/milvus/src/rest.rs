//! Bulk import through the REST import-jobs API of Milvus 2.4+ (RESTful v2,
//! `POST /v2/vectordb/jobs/import/{create,get_progress,list}`) and of Zilliz Cloud's control plane
//! (`https://api.cloud.zilliz.com`, the same paths with `clusterId` and object URLs).
//!
//! Written from the published references: milvus.io "RESTful API v2 › Import (v2)" (Create,
//! Describe / Get Progress, List) and milvus's own request type `ImportReq` (`dbName`,
//! `collectionName`, `partitionName`, `files` as a list of file groups, `options` as strings);
//! docs.zilliz.com "Create Import Jobs" / "Get Import Job Progress" / "List Import Jobs" (v2).
//!
//! Every request goes through [`vmig_core::http::Endpoint`]: the token is sent as `Authorization:
//! Bearer <token>`, marked sensitive, and never appears in a message. An answer is a success
//! when HTTP says so *and* its JSON `code` is 0 (or 200, which older servers and Zilliz's
//! control plane use); any other `code` is an error carrying the server's `code` and `message`
//! verbatim. HTTP 404 on a jobs path means the server has no REST import (Milvus before 2.4).
//!
//! `create` is never retried automatically: it is not idempotent, and a retry after a lost
//! answer would import the files twice. `describe` and `list` are retried under the caller's
//! policy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Map, Value};
use vmig_core::http::{base_url, http_client, sensitive, Connection, Endpoint, Product, UrlRules};
use vmig_core::{Error, Result, RetryConfig};

use crate::error::{MilvusError, MilvusErrorKind};

/// The most files one import request may carry: Milvus's `dataCoord.import.maxImportFileNumPerReq`
/// (default 1024; milvus.io "Configure Data Coordinator", `dataCoord.import.maxImportFileNumPerReq`:
/// "The maximum number of files allowed per single import request").
pub const MAX_FILES_PER_JOB: usize = 1024;

/// The path of job creation, below the REST base.
pub const CREATE_PATH: &str = "v2/vectordb/jobs/import/create";
/// The path of one job's progress on Milvus, below the REST base: `get_progress`, which the
/// 2.4 reference documents and later releases keep (2.5 added `describe` as another name for
/// it), and which pymilvus's own `bulk_writer.get_import_progress` calls on every release.
pub const PROGRESS_PATH: &str = "v2/vectordb/jobs/import/get_progress";
/// The path of one job's progress on Zilliz Cloud's control plane ("Get Import Job Progress").
pub const ZILLIZ_PROGRESS_PATH: &str = "v2/vectordb/jobs/import/getProgress";
/// Records per page of Zilliz Cloud's job list.
const ZILLIZ_PAGE: u64 = 100;
/// The path of the job list, below the REST base.
pub const LIST_PATH: &str = "v2/vectordb/jobs/import/list";

/// The plugin name used in configuration errors.
const PLUGIN: &str = "milvus";

/// The bucket credentials Zilliz Cloud reads the user's own objects with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BucketCredentials {
    /// The object store's access key.
    pub access_key: String,
    /// The object store's secret key.
    pub secret_key: String,
}

impl fmt::Debug for BucketCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BucketCredentials { .. }")
    }
}

/// Which form of the API the server speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportApi {
    /// A Milvus 2.4+ server (its own port, 19530 by default): files are paths in Milvus's
    /// bucket, in groups.
    Milvus {
        /// The database (`None`: the default one).
        db: Option<String>,
    },
    /// Zilliz Cloud's control plane: files are object URLs in the user's bucket, read with
    /// `credentials`.
    ZillizCloud {
        /// The cluster the collection is in (`inxx-…`).
        cluster_id: String,
        /// The database (`None`: the default one).
        db: Option<String>,
        /// The bucket credentials (`None`: the objects are readable without them).
        credentials: Option<BucketCredentials>,
    },
}

/// Where and how to reach the import-jobs API.
#[derive(Debug, Clone)]
pub struct RestOptions {
    /// The REST base URL (`http://host:19530`, or `https://api.cloud.zilliz.com`).
    pub base: String,
    /// The configuration key `base` came from, for messages (`rest_uri`, `uri`).
    pub base_option: String,
    /// The token sent as `Authorization: Bearer …`: `user:password` or an API key.
    pub token: Option<String>,
    /// Timeout of one request, in seconds.
    pub request_timeout_secs: u64,
    /// A PEM file of CAs to trust besides the system's.
    pub ca_cert: Option<String>,
    /// The retry policy of `describe` and `list` (`create` is never retried).
    pub retry: RetryConfig,
    /// The API's form.
    pub api: ImportApi,
}

/// A job's state, as the server names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, not started.
    Pending,
    /// Running (also `PreImporting`, `Sorting`, `IndexBuilding` and other running stages).
    Importing,
    /// Done: every row is in the collection.
    Completed,
    /// Failed: `reason` says why; nothing of it is visible.
    Failed,
}

impl JobState {
    /// The state named `s`: the four documented names, any other name a running stage.
    pub fn parse(s: &str) -> JobState {
        match s {
            "Pending" | "" => JobState::Pending,
            "Completed" | "ImportCompleted" => JobState::Completed,
            "Failed" | "ImportFailed" => JobState::Failed,
            _ => JobState::Importing,
        }
    }

    /// Whether the job has ended (completed or failed).
    pub fn finished(&self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

/// One file's part of a job ([`ImportJob::details`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    /// The file (as the server describes it).
    pub file_name: String,
    /// Its state.
    pub state: JobState,
    /// Percent done.
    pub progress: u32,
    /// Why it failed (empty otherwise).
    pub reason: String,
    /// Rows imported from it (`None`: not reported).
    pub imported_rows: Option<u64>,
    /// Rows in it.
    pub total_rows: u64,
}

/// An import job as `describe` (or `list`, with fewer figures) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    /// The job's id.
    pub job_id: String,
    /// The collection.
    pub collection: String,
    /// Its state.
    pub state: JobState,
    /// The state as the server named it.
    pub state_name: String,
    /// Percent done.
    pub progress: u32,
    /// Why it failed, verbatim (empty otherwise).
    pub reason: String,
    /// Rows imported so far: the job's `importedRows`, else the sum of its files' when every
    /// file reports one (Zilliz Cloud's "Get Import Job Progress" example gives them per file
    /// only); `None` when the server reports no such figure.
    pub imported_rows: Option<u64>,
    /// Rows in the job's files.
    pub total_rows: u64,
    /// Per-file figures (`describe` only).
    pub details: Vec<FileProgress>,
}

/// What one `create` submits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest<'a> {
    /// The collection.
    pub collection: &'a str,
    /// The partition (`None`: the default one, or the partition key decides).
    pub partition: Option<&'a str>,
    /// File groups: one group per Parquet or JSON file, or one NumPy directory's files (paths in
    /// Milvus's bucket; object URLs for Zilliz Cloud).
    pub files: &'a [Vec<String>],
    /// Import options (`timeout`, …), sent as strings.
    pub options: BTreeMap<String, String>,
}

/// The import-jobs API of one server.
#[derive(Clone)]
pub struct ImportJobs {
    /// `describe` and `list`, retried under the caller's policy.
    retried: Endpoint,
    /// `create`, tried once.
    once: Endpoint,
    api: ImportApi,
}

impl fmt::Debug for ImportJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match &self.api {
            ImportApi::Milvus { .. } => "Milvus",
            ImportApi::ZillizCloud { .. } => "Zilliz Cloud",
        };
        f.debug_struct("ImportJobs")
            .field("url", &self.retried.display_url())
            .field("form", &form)
            .finish_non_exhaustive()
    }
}

/// What the REST server's error answers read as: the JSON `message` (with its `code`), else the
/// raw text.
fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("message").is_some() => {
            let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
            match v.get("code") {
                Some(code) => format!("code {code}: {message}"),
                None => message.to_string(),
            }
        }
        _ => vmig_core::http::client::raw_text(body),
    }
}

impl ImportJobs {
    /// The API at `opts.base`.
    ///
    /// # Errors
    /// [`Error::Config`] for a base URL that is not `http(s)://`, a token a header cannot carry
    /// or an unreadable `ca_cert`.
    pub fn new(opts: &RestOptions) -> Result<ImportJobs> {
        let base = base_url(
            PLUGIN,
            &opts.base_option,
            &opts.base,
            UrlRules::BasicAuth,
            " (Milvus 2.4+ serves its REST API on the gRPC port, 19530 by default)",
        )?;
        if base.credentials.is_some() {
            return Err(Error::config(
                PLUGIN,
                format!(
                    "`{}` must not hold credentials; give `token` (or `user` and `password`)",
                    opts.base_option
                ),
            ));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = opts.token.as_deref().filter(|t| !t.is_empty()) {
            headers.insert(
                AUTHORIZATION,
                sensitive(PLUGIN, "the token", &format!("Bearer {token}"))?,
            );
        }
        let conn = Connection {
            request_timeout_secs: opts.request_timeout_secs,
            ca_cert: opts.ca_cert.as_deref(),
            insecure: false,
        };
        let http = http_client(PLUGIN, headers, &conn)?;
        let mut product = Product::new(
            PLUGIN,
            "Milvus REST",
            "check `token` (or `user` and `password`)",
            "this server has no REST import-jobs API: Milvus serves it from 2.4 on; for Milvus 2.3 use `bulk_api = \"grpc\"`, and check `rest_uri`",
        );
        product.error_text = error_text;
        let product = Arc::new(product);
        let target = match opts.api {
            ImportApi::Milvus { .. } => "the Milvus REST API",
            ImportApi::ZillizCloud { .. } => "the Zilliz Cloud control plane",
        };
        let retried = Endpoint::new(
            http.clone(),
            base.url.clone(),
            opts.retry,
            Arc::clone(&product),
            target,
            opts.base_option.clone(),
        );
        let no_retry = RetryConfig {
            max_attempts: 1,
            ..opts.retry
        };
        let once = Endpoint::new(
            http,
            base.url,
            no_retry,
            product,
            target,
            opts.base_option.clone(),
        );
        Ok(ImportJobs {
            retried,
            once,
            api: opts.api.clone(),
        })
    }

    /// Whether jobs name their files by object URL in the user's bucket (Zilliz Cloud), not by
    /// path in the server's own bucket (Milvus).
    pub fn takes_object_urls(&self) -> bool {
        matches!(self.api, ImportApi::ZillizCloud { .. })
    }

    /// The server URL, for messages.
    pub fn display_url(&self) -> String {
        self.retried.display_url()
    }

    /// The request body of `create` for `req`, in this API's form.
    pub fn create_body(&self, req: &ImportRequest<'_>) -> Value {
        let mut body = Map::new();
        match &self.api {
            ImportApi::Milvus { db } => {
                if let Some(db) = db {
                    body.insert("dbName".into(), json!(db));
                }
                body.insert("collectionName".into(), json!(req.collection));
                if let Some(p) = req.partition {
                    body.insert("partitionName".into(), json!(p));
                }
                body.insert("files".into(), json!(req.files));
            }
            ImportApi::ZillizCloud {
                cluster_id,
                db,
                credentials,
            } => {
                body.insert("clusterId".into(), json!(cluster_id));
                if let Some(db) = db {
                    body.insert("dbName".into(), json!(db));
                }
                body.insert("collectionName".into(), json!(req.collection));
                if let Some(p) = req.partition {
                    body.insert("partitionName".into(), json!(p));
                }
                body.insert("objectUrls".into(), json!(req.files));
                if let Some(c) = credentials {
                    body.insert("accessKey".into(), json!(c.access_key));
                    body.insert("secretKey".into(), json!(c.secret_key));
                }
            }
        }
        if !req.options.is_empty() {
            body.insert("options".into(), json!(req.options));
        }
        Value::Object(body)
    }

    /// Submits one import job and returns its id. Tried once: a lost answer is an error that
    /// says the job may exist (a caller asks [`ImportJobs::list`] before submitting again).
    ///
    /// # Errors
    /// The server's refusal (`code` and `message` verbatim), HTTP 404 (no REST import on the
    /// server), or no answer.
    pub async fn create(&self, req: &ImportRequest<'_>) -> Result<String> {
        if req.files.len() > MAX_FILES_PER_JOB {
            return Err(Error::config(
                PLUGIN,
                format!(
                    "an import job may carry at most {MAX_FILES_PER_JOB} files (`dataCoord.import.maxImportFileNumPerReq`), and {} were given",
                    req.files.len()
                ),
            ));
        }
        let body = self.create_body(req);
        let doing = format!("creating an import job into `{}`", req.collection);
        let data = self.call(&self.once, CREATE_PATH, &body, &doing).await?;
        match id_of(data.get("jobId").or_else(|| data.get("jobID"))) {
            Some(id) => Ok(id),
            None => Err(Error::data(
                doing,
                format!(
                    "{} accepted the job but its answer has no `data.jobId`: {}",
                    self.display_url(),
                    vmig_core::http::client::raw_text(data.to_string().as_bytes())
                ),
            )),
        }
    }

    /// The job `job_id` with its figures.
    ///
    /// # Errors
    /// The server's refusal, or no answer after the retry policy.
    pub async fn describe(&self, job_id: &str) -> Result<ImportJob> {
        let mut body = self.scope();
        body.insert("jobId".into(), json!(job_id));
        let doing = format!("describing import job {job_id}");
        let path = match self.api {
            ImportApi::Milvus { .. } => PROGRESS_PATH,
            ImportApi::ZillizCloud { .. } => ZILLIZ_PROGRESS_PATH,
        };
        let data = self
            .call(&self.retried, path, &Value::Object(body), &doing)
            .await?;
        let mut job = job_of(&data);
        if job.job_id.is_empty() {
            job.job_id = job_id.to_string();
        }
        Ok(job)
    }

    /// The import jobs of `collection` the server still knows (Zilliz Cloud lists a cluster's
    /// jobs page by page; those of other collections are left out).
    ///
    /// # Errors
    /// The server's refusal, or no answer after the retry policy.
    pub async fn list(&self, collection: &str) -> Result<Vec<ImportJob>> {
        let doing = format!("listing the import jobs of `{collection}`");
        let mut jobs = Vec::new();
        let mut page = 1u64;
        loop {
            let mut body = self.scope();
            let zilliz = matches!(self.api, ImportApi::ZillizCloud { .. });
            if zilliz {
                body.insert("pageSize".into(), json!(ZILLIZ_PAGE));
                body.insert("currentPage".into(), json!(page));
            } else {
                body.insert("collectionName".into(), json!(collection));
            }
            let data = self
                .call(&self.retried, LIST_PATH, &Value::Object(body), &doing)
                .await?;
            let records = data
                .get("records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = records.len() as u64;
            jobs.extend(
                records
                    .iter()
                    .map(job_of)
                    .filter(|j| j.collection.is_empty() || j.collection == collection),
            );
            let count = num(&data, "count");
            if !zilliz || n < ZILLIZ_PAGE || page * ZILLIZ_PAGE >= count {
                return Ok(jobs);
            }
            page += 1;
        }
    }

    /// Polls `job_id` every `interval` until it completes (returned) or fails; `progress` is
    /// called with every answer.
    ///
    /// # Errors
    /// [`Error::External`] with the job's `reason` verbatim when it fails; `describe`'s errors.
    pub async fn wait(
        &self,
        job_id: &str,
        interval: Duration,
        mut progress: impl FnMut(&ImportJob),
    ) -> Result<ImportJob> {
        loop {
            let job = self.describe(job_id).await?;
            progress(&job);
            match job.state {
                JobState::Completed => return Ok(job),
                JobState::Failed => return Err(job_failed(&job)),
                _ => tokio::time::sleep(interval).await,
            }
        }
    }

    /// The fields naming the cluster and database, for `describe` and `list`.
    fn scope(&self) -> Map<String, Value> {
        let mut body = Map::new();
        let (cluster, db) = match &self.api {
            ImportApi::Milvus { db } => (None, db),
            ImportApi::ZillizCloud { cluster_id, db, .. } => (Some(cluster_id), db),
        };
        if let Some(c) = cluster {
            body.insert("clusterId".into(), json!(c));
        }
        if let Some(db) = db {
            body.insert("dbName".into(), json!(db));
        }
        body
    }

    /// POSTs `body` and returns the answer's `data`, or the server's refusal.
    async fn call(&self, ep: &Endpoint, path: &str, body: &Value, doing: &str) -> Result<Value> {
        let answer = ep.json(Method::POST, path, Some(body), doing).await?;
        // The reference gives `code` as a number; Zilliz's examples also show it as a string.
        let code = match answer.get("code") {
            Some(Value::String(c)) => c.trim().parse().unwrap_or(-1),
            Some(c) => c.as_i64().unwrap_or(-1),
            None => 0,
        };
        if code != 0 && code != 200 {
            let message = answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            return Err(Error::External(Box::new(MilvusError::new(
                MilvusErrorKind::Server,
                format!("REST {}", path.trim_start_matches("v2/vectordb/")),
                format!(
                    "{doing}: {} answered code {code}: {message}",
                    ep.display_url()
                ),
            ))));
        }
        Ok(answer.get("data").cloned().unwrap_or(Value::Null))
    }
}

/// The error of a failed job: its id and the server's `reason`, verbatim.
pub fn job_failed(job: &ImportJob) -> Error {
    let reason = if job.reason.is_empty() {
        "(the server gave no reason)"
    } else {
        job.reason.as_str()
    };
    Error::External(Box::new(MilvusError::new(
        MilvusErrorKind::Server,
        "import",
        format!("import job {} failed: {reason}", job.job_id),
    )))
}

/// A job id: the documented string, or a number as some versions send it.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A figure that the reference gives as a number and some servers send as a string; 0 when
/// absent or unreadable.
fn num(v: &Value, key: &str) -> u64 {
    figure(v, key).unwrap_or(0)
}

/// A figure as [`num`] reads it, `None` when absent or unreadable.
fn figure(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn job_of(v: &Value) -> ImportJob {
    let state_name = text(v, "state");
    let details: Vec<FileProgress> = v
        .get("details")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .map(|f| FileProgress {
                    file_name: text(f, "fileName"),
                    state: JobState::parse(&text(f, "state")),
                    progress: u32::try_from(num(f, "progress")).unwrap_or(100),
                    reason: text(f, "reason"),
                    imported_rows: figure(f, "importedRows"),
                    total_rows: num(f, "totalRows"),
                })
                .collect()
        })
        .unwrap_or_default();
    let imported_rows = figure(v, "importedRows").or_else(|| {
        if details.is_empty() {
            return None;
        }
        details.iter().map(|d| d.imported_rows).sum()
    });
    ImportJob {
        job_id: id_of(v.get("jobId").or_else(|| v.get("jobID"))).unwrap_or_default(),
        collection: text(v, "collectionName"),
        state: JobState::parse(&state_name),
        state_name,
        progress: u32::try_from(num(v, "progress")).unwrap_or(100),
        reason: text(v, "reason"),
        imported_rows,
        total_rows: num(v, "totalRows"),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_by_name() {
        assert_eq!(JobState::parse("Pending"), JobState::Pending);
        assert_eq!(JobState::parse("Importing"), JobState::Importing);
        assert_eq!(JobState::parse("PreImporting"), JobState::Importing);
        assert_eq!(JobState::parse("Completed"), JobState::Completed);
        assert_eq!(JobState::parse("Failed"), JobState::Failed);
        assert!(JobState::Failed.finished() && !JobState::Importing.finished());
    }

    #[test]
    fn figures_read_as_numbers_or_strings() {
        let v = json!({"progress": "45", "importedRows": 10, "totalRows": "20", "jobId": 7});
        let j = job_of(&v);
        assert_eq!(
            (j.progress, j.imported_rows, j.total_rows),
            (45, Some(10), 20)
        );
        assert_eq!(j.job_id, "7");
    }

    /// Zilliz Cloud's "Get Import Job Progress (V2)" example answer gives `totalRows` (rows in
    /// the collection) but no job-level `importedRows`: the files' figures are summed when every
    /// file has one, and none is made up otherwise.
    #[test]
    fn imported_rows_come_from_the_job_else_from_every_file_else_none() {
        let per_file = json!({"jobId": "job-1", "state": "Completed", "totalRows": 100000,
            "details": [{"fileName": "a.parquet", "importedRows": 30}, {"fileName": "b.parquet", "importedRows": "12"}]});
        assert_eq!(job_of(&per_file).imported_rows, Some(42));
        let one_missing = json!({"jobId": "job-1", "state": "Completed",
            "details": [{"fileName": "a.parquet", "importedRows": 30}, {"fileName": "b.parquet"}]});
        assert_eq!(job_of(&one_missing).imported_rows, None);
        let none =
            json!({"jobId": "job-1", "state": "Completed", "totalRows": 100000, "details": []});
        assert_eq!(job_of(&none).imported_rows, None);
        let job_level = json!({"jobId": "job-1", "importedRows": 7,
            "details": [{"fileName": "a.parquet", "importedRows": 30}]});
        assert_eq!(job_of(&job_level).imported_rows, Some(7));
    }

    #[test]
    fn error_bodies_read_code_and_message() {
        assert_eq!(
            error_text(br#"{"code":1100,"message":"invalid parameter"}"#),
            "code 1100: invalid parameter"
        );
        assert_eq!(error_text(b"404 page not found"), "404 page not found");
    }
}
