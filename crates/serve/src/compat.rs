//! milvus-migration's REST routes (`--compat-config FILE`): `GET /api/v1/healthy`,
//! `POST /api/v1/start|dump|load`, `GET /api/v1/get_job?jobId=`, with its request bodies, its
//! answer envelope `{"code", "msg", "data", "requestId"}` and its `JobInfo`
//! (zilliztech/milvus-migration `server/`, `starter/param/`, `core/data/job_info.go`), so that a
//! client of its server works against `vmig serve` unchanged — apart from the bearer token,
//! which these routes need as every other but `/healthz` and `/readyz`.
//!
//! `start`, `dump` and `load` translate the config file again on each request (as
//! milvus-migration reads it again in each `starter.Start|Dump|Load`), with the matching
//! [`Step`], and submit the translation as a job of this server: it is checked as any
//! submitted job (the data root), planned, recorded in the state store, listed by `/v1/jobs`,
//! cancellable and resumable. Its id is milvus-migration's: `start_`, `dump_` or `load_` and 21
//! letters and digits. `async: false` answers once the job stopped, as milvus-migration's
//! server does. A config of several jobs (one per Milvus 1.x collection or per index of an
//! Elasticsearch meta file: [`vmig::compat::translations`]) is queued as jobs `<id>-<collection>`,
//! all planned before any is queued, and `get_job` answers for them as one.
//!
//! Every answer is HTTP 200 with the envelope, `code` 0 or 500 and the error in `msg`, as
//! milvus-migration answers; a body that is not the documented JSON, and a `get_job` without a
//! `jobId`, get HTTP 400 with the envelope (milvus-migration's gin answers 400 to a body it
//! cannot bind, too). A refusal of the bearer-token check stays vmig's `401` `{"error": …}`.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use vmig::config::Job;
use vmig_compat::{Step, Translation};

use crate::jobs::{JobState, JobText, JobView};
use crate::paths;
use crate::routes::{enqueue, App, Refusal};

/// A step of the server's milvus-migration config, as a job keeps it: translated again from
/// `file` each time it runs (a resumed or restarted job too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CompatJob {
    /// The config file (`--compat-config`).
    pub file: PathBuf,
    /// `start`, `dump` or `load`.
    pub step: String,
    /// The request's `collectionNames` ([`vmig_compat::select_collections`]).
    #[serde(default)]
    pub collection_names: Vec<String>,
    /// Which of the config's jobs this is, when it is several (one per Milvus 1.x collection
    /// or per index of an Elasticsearch meta file): its [`vmig_compat::Translation::part`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl CompatJob {
    fn step(&self) -> Result<Step, String> {
        [Step::Start, Step::Dump, Step::Load]
            .into_iter()
            .find(|s| s.as_str() == self.step)
            .ok_or_else(|| format!("`{}` is not a milvus-migration step", self.step))
    }
}

/// The jobs of the config `file` for `step` and the request's `names` (`collectionNames`):
/// every part of the config ([`vmig::compat::translations`]) translated for `step`, those of
/// the named Milvus 1.x collections only when `names` are given. Errors are messages, secrets
/// masked.
async fn parts(file: &Path, step: Step, names: &[String]) -> Result<Vec<Translation>, String> {
    let masked = |e: &vmig::Error| vmig::redact::text(&e.to_string());
    let in_file = |e: vmig::Error| match e {
        vmig::Error::Config { message, .. } => masked(&vmig::Error::config(
            vmig_compat::COMPONENT,
            format!("{}: {message}", file.display()),
        )),
        other => masked(&other),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| format!("reading the server's working directory: {e}"))?;
    let mut all = vmig::compat::translations(file, &cwd)
        .await
        .map_err(|e| masked(&e))?;
    if !names.is_empty() {
        let split = all.len() > 1 && all.iter().all(|t| t.part.is_some());
        if split {
            // One job per 1.x collection already: keep the named ones (the rules of
            // `select_collections`, checked on one of them, say whether names may be given).
            let mut probe = all[0].clone();
            vmig_compat::select_collections(&mut probe, step, names).map_err(|e| masked(&e))?;
            let have: Vec<String> = all.iter().filter_map(|t| t.part.clone()).collect();
            if let Some(missing) = names.iter().find(|n| !have.contains(n)) {
                return Err(format!(
                    "collectionNames: `{missing}` is not a live collection of the Milvus 1.x meta (it has {})",
                    have.join(", ")
                ));
            }
            all.retain(|t| t.part.as_ref().is_some_and(|p| names.contains(p)));
        } else {
            for t in &mut all {
                vmig_compat::select_collections(t, step, names).map_err(|e| masked(&e))?;
            }
        }
    }
    all.into_iter()
        .map(|t| vmig_compat::for_step(t, step).map_err(in_file))
        .collect()
}

/// The job of translation `t`, checked as a submitted job (every local path inside the data
/// root).
fn checked(app: &App, t: Translation) -> Result<Job, String> {
    let masked = |e: vmig::Error| vmig::redact::text(&e.to_string());
    let base = app.data_root.clone().unwrap_or_default();
    let job = Job::from_config(t.job, base).map_err(masked)?;
    paths::check_job(&job, app.data_root.as_deref()).map_err(|m| vmig::redact::text(&m))?;
    Ok(job)
}

/// The job `c` stands for: the config translated again for its step, collections and part,
/// checked as a submitted job. Errors are messages, secrets masked.
pub(crate) async fn job(app: &App, c: &CompatJob) -> Result<Job, String> {
    let step = c.step()?;
    let mut all = parts(&c.file, step, &c.collection_names).await?;
    let t = match &c.part {
        Some(part) => all
            .into_iter()
            .find(|t| t.part.as_ref() == Some(part))
            .ok_or_else(|| {
                format!(
                    "{} no longer has a job into collection `{part}` (its meta changed since the job was submitted)",
                    c.file.display()
                )
            })?,
        None if all.len() == 1 => all.remove(0),
        None => {
            return Err(format!(
                "{} is {} jobs now, one per collection (its meta changed since the job was submitted): submit it again",
                c.file.display(),
                all.len()
            ))
        }
    };
    checked(app, t)
}

/// The routes, when the server has a milvus-migration config; none without (they get `404`).
pub(crate) fn routes(configured: bool) -> Router<App> {
    if !configured {
        return Router::new();
    }
    Router::new()
        .route("/api/v1/healthy", get(healthy))
        .route("/api/v1/start", post(start))
        .route("/api/v1/dump", post(dump))
        .route("/api/v1/load", post(load))
        .route("/api/v1/get_job", get(get_job))
}

/// Whether `path` is one of these routes (left out of the document of a server without them).
pub(crate) fn is_compat_path(path: &str) -> bool {
    path.starts_with("/api/v1/")
}

/// The body of `POST /api/v1/start` (milvus-migration's `param.StartParam`). Other keys are
/// ignored, as milvus-migration ignores them.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case, reason = "the keys as milvus-migration spells them")]
#[expect(
    dead_code,
    reason = "describes the request body in the OpenAPI document only"
)]
pub(crate) struct StartParam {
    /// Answer at once with the job's id (`true`), or once the job stopped (`false`, the
    /// default).
    r#async: Option<bool>,
    /// Not used (milvus-migration ignores it too; the answer's `requestId` is the `RequestId`
    /// header's).
    requestId: Option<String>,
}

/// The body of `POST /api/v1/dump` and `POST /api/v1/load` (milvus-migration's
/// `param.DumpParam` and `param.LoadParam`, which are alike). Other keys are ignored.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case, reason = "the keys as milvus-migration spells them")]
#[expect(
    dead_code,
    reason = "describes the request body in the OpenAPI document only"
)]
pub(crate) struct DumpParam {
    /// As for `start`.
    r#async: Option<bool>,
    /// Only these Milvus 1.x collections (`dump` in `milvus1x` mode); refused (`code` 500)
    /// where vmig cannot honour it: other work modes (milvus-migration ignored it there) and
    /// `load` (which imports all that `dump` staged).
    collectionNames: Option<Vec<String>>,
    /// Not used, as for `start`.
    requestId: Option<String>,
}

/// `data` of `start`, `dump` and `load` (milvus-migration's `param.JobResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    /// The job's id: `start_`, `dump_` or `load_` and 21 letters and digits; also its id in
    /// `/v1/jobs`.
    #[serde(rename = "jobId")]
    pub job_id: String,
}

/// What milvus-migration calls a job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Queued: waiting for a free slot (`--max-jobs`).
    Init,
    /// Running.
    Running,
    /// Done.
    Success,
    /// Failed, or cancelled (`msg` says which).
    Fail,
}

/// `data` of `get_job` (milvus-migration's `data.JobInfo`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job's id.
    pub job_id: String,
    /// Where it is.
    pub job_status: JobStatus,
    /// Percent done, 0 to 100: source rows read of the estimate (100 once done; at most 99
    /// before; 0 without an estimate).
    pub job_process: u32,
    /// Why it failed or was cancelled, secrets masked; empty otherwise.
    pub msg: String,
    /// The source's partitions in its current or last run on this server.
    pub total_tasks: u64,
    /// Those of them read to their end.
    pub finish_tasks: u64,
}

/// The answer of `GET /api/v1/healthy`.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case, reason = "the keys as milvus-migration spells them")]
#[expect(
    dead_code,
    reason = "describes the answer in the OpenAPI document only"
)]
pub(crate) struct HealthyAnswer {
    /// 0.
    code: i32,
    /// `success`.
    msg: String,
    /// `ok`.
    data: String,
    /// The request's `RequestId` header, else a new `req-…`.
    requestId: String,
}

/// The answer of `POST /api/v1/start|dump|load`.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case, reason = "the keys as milvus-migration spells them")]
#[expect(
    dead_code,
    reason = "describes the answer in the OpenAPI document only"
)]
pub(crate) struct JobAnswer {
    /// 0: accepted (`async: true`) or done (`async: false`); 500: refused or failed.
    code: i32,
    /// `success`, or what went wrong.
    msg: String,
    /// The job's id; null when no job was created (the request or the config was refused).
    data: Option<JobResponse>,
    /// The request's `RequestId` header, else a new `req-…`.
    requestId: String,
}

/// The answer of `GET /api/v1/get_job`.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case, reason = "the keys as milvus-migration spells them")]
#[expect(
    dead_code,
    reason = "describes the answer in the OpenAPI document only"
)]
pub(crate) struct JobInfoAnswer {
    /// 0, or 500 with the reason in `msg` (no such job, no `jobId`).
    code: i32,
    /// `success`, or what went wrong.
    msg: String,
    /// The job; null with code 500.
    data: Option<JobInfo>,
    /// The request's `RequestId` header, else a new `req-…`.
    requestId: String,
}

/// How long apart a waiting (`async: false`) request looks at its job.
const WAIT_TICK: Duration = Duration::from_millis(100);

/// The alphabet of milvus-migration's ids (`core/util/id_util.go`).
const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `prefix` and 21 characters of [`ALPHABET`], as milvus-migration's ids (`start_…`, `req-…`).
/// Not a secret (every route needs the token): the OS-seeded hasher keys, the time and a
/// counter make it unique.
fn new_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = String::from(prefix);
    let mut round = 0u32;
    while out.len() < prefix.len() + 21 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(round);
        h.write_u32(std::process::id());
        let mut v = h.finish();
        // 62^10 < 2^64: ten characters per hash.
        for _ in 0..10 {
            if out.len() == prefix.len() + 21 {
                break;
            }
            out.push(char::from(ALPHABET[(v % 62) as usize]));
            v /= 62;
        }
        round += 1;
    }
    out
}

/// The request's id: its `RequestId` header, else a new `req-…` (milvus-migration's
/// `TraceGinMiddleware`).
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("RequestId")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| new_id("req-"), str::to_string)
}

/// The envelope: `code` 0 with `msg` `success`, or 500 with `error`.
fn envelope(
    status: StatusCode,
    result: Result<Value, (String, Value)>,
    request_id: &str,
) -> Response {
    let (code, msg, data) = match result {
        Ok(data) => (0, "success".to_string(), data),
        Err((msg, data)) => (500, msg, data),
    };
    (
        status,
        Json(json!({ "code": code, "msg": msg, "data": data, "requestId": request_id })),
    )
        .into_response()
}

/// Server health.
#[utoipa::path(
    get,
    path = "/api/v1/healthy",
    tag = "milvus-migration",
    security(("bearer" = [])),
    params(("RequestId" = Option<String>, Header, description = "echoed as `requestId`")),
    responses(
        (status = 200, body = HealthyAnswer),
        (status = 401, body = crate::routes::ApiError),
    )
)]
pub(crate) async fn healthy(headers: HeaderMap) -> Response {
    envelope(StatusCode::OK, Ok(json!("ok")), &request_id(&headers))
}

/// milvus-migration's `start`: the whole migration (the translated job as it is).
#[utoipa::path(
    post,
    path = "/api/v1/start",
    tag = "milvus-migration",
    security(("bearer" = [])),
    params(("RequestId" = Option<String>, Header, description = "echoed as `requestId`")),
    request_body(content = StartParam, content_type = "application/json"),
    responses(
        (status = 200, body = JobAnswer, description = "`code` 0 with the job's id; 500 with why the config or the job was refused (`data` null) or why the job failed (`async: false`)"),
        (status = 400, body = JobAnswer, description = "the body is not the documented JSON (`code` 500)"),
        (status = 401, body = crate::routes::ApiError),
        (status = 413, body = crate::routes::ApiError, description = "the body is over the limit (`--max-body`)"),
    )
)]
pub(crate) async fn start(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    run_step(&app, &headers, &body, Step::Start).await
}

/// milvus-migration's `dump`: only the staging, where `load` finds the files.
#[utoipa::path(
    post,
    path = "/api/v1/dump",
    tag = "milvus-migration",
    security(("bearer" = [])),
    params(("RequestId" = Option<String>, Header, description = "echoed as `requestId`")),
    request_body(content = DumpParam, content_type = "application/json"),
    responses(
        (status = 200, body = JobAnswer, description = "as for `start`"),
        (status = 400, body = JobAnswer, description = "the body is not the documented JSON (`code` 500)"),
        (status = 401, body = crate::routes::ApiError),
        (status = 413, body = crate::routes::ApiError, description = "the body is over the limit (`--max-body`)"),
    )
)]
pub(crate) async fn dump(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    run_step(&app, &headers, &body, Step::Dump).await
}

/// milvus-migration's `load`: only the import of what `dump` staged.
#[utoipa::path(
    post,
    path = "/api/v1/load",
    tag = "milvus-migration",
    security(("bearer" = [])),
    params(("RequestId" = Option<String>, Header, description = "echoed as `requestId`")),
    request_body(content = DumpParam, content_type = "application/json"),
    responses(
        (status = 200, body = JobAnswer, description = "as for `start`"),
        (status = 400, body = JobAnswer, description = "the body is not the documented JSON (`code` 500)"),
        (status = 401, body = crate::routes::ApiError),
        (status = 413, body = crate::routes::ApiError, description = "the body is over the limit (`--max-body`)"),
    )
)]
pub(crate) async fn load(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    run_step(&app, &headers, &body, Step::Load).await
}

/// What a request body of `start`, `dump` or `load` asks.
#[derive(Debug, Default)]
struct Params {
    asynchronous: bool,
    collection_names: Vec<String>,
}

/// Reads a request body as milvus-migration's gin binds it: a JSON object, its keys exact,
/// other keys ignored; `collectionNames` only where the step has it. (gin also takes `null` for
/// an empty object; the document says an object, so `null` is refused as any other non-object.)
fn params(body: &[u8], step: Step) -> Result<Params, String> {
    let shape = if step == Step::Start {
        r#"{"async": true|false, "requestId": "…"}"#
    } else {
        r#"{"async": true|false, "collectionNames": ["…"], "requestId": "…"}"#
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not JSON ({e}); send {shape}"))?;
    let Value::Object(object) = value else {
        return Err(format!("the body is not a JSON object; send {shape}"));
    };
    let asynchronous = match object.get("async") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`async` is true or false".into()),
    };
    match object.get("requestId") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err("`requestId` is a string".into()),
    }
    let mut collection_names = Vec::new();
    if step != Step::Start {
        match object.get("collectionNames") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => collection_names.push(s.clone()),
                        _ => return Err("`collectionNames` is a list of strings".into()),
                    }
                }
            }
            Some(_) => return Err("`collectionNames` is a list of strings".into()),
        }
    }
    Ok(Params {
        asynchronous,
        collection_names,
    })
}

/// `start`, `dump` or `load`: the config translated for `step` and submitted as a job of this
/// server; with `async: false`, answered once the job stopped.
async fn run_step(app: &App, headers: &HeaderMap, body: &[u8], step: Step) -> Response {
    let request_id = request_id(headers);
    let params = match params(body, step) {
        Ok(p) => p,
        Err(m) => return envelope(StatusCode::BAD_REQUEST, Err((m, Value::Null)), &request_id),
    };
    let Some(file) = app.compat.as_deref() else {
        let m = "this server has no milvus-migration config (`--compat-config`)".to_string();
        return envelope(StatusCode::OK, Err((m, Value::Null)), &request_id);
    };
    let id = new_id(&format!("{}_", step.as_str()));
    let all = match parts(file, step, &params.collection_names).await {
        Ok(all) => all,
        Err(m) => return refused(step, m, &request_id),
    };
    let several = all.len() > 1;
    // Every job checked and planned before any is queued: a refusal queues nothing.
    let mut ready = Vec::new();
    for t in all {
        let part = if several { t.part.clone() } else { None };
        let job = match checked(app, t) {
            Ok(job) => job,
            Err(m) => return refused(step, m, &request_id),
        };
        if several {
            if let Err(e) = vmig::plan::plan(&job).await {
                let m = format!(
                    "collection `{}`: {}",
                    part.as_deref().unwrap_or_default(),
                    vmig::redact::text(&e.to_string())
                );
                return refused(step, m, &request_id);
            }
        }
        let text = CompatJob {
            file: file.clone(),
            step: step.as_str().into(),
            collection_names: params.collection_names.clone(),
            part: part.clone(),
        };
        let name = match &part {
            Some(p) => format!("{id}-{p}"),
            None => id.clone(),
        };
        ready.push((name, job, text));
    }
    let mut queued: Vec<String> = Vec::new();
    for (name, job, text) in ready {
        if let Err(Refusal(_, m)) =
            enqueue(app, job, JobText::Compat(text), Some(name.clone())).await
        {
            let m = if queued.is_empty() {
                m
            } else {
                format!(
                    "{m} (job `{name}`; these of the same request were queued and run: {})",
                    queued.join(", ")
                )
            };
            return refused(step, m, &request_id);
        }
        queued.push(name);
    }
    let data = json!(JobResponse { job_id: id.clone() });
    if params.asynchronous {
        return envelope(StatusCode::OK, Ok(data), &request_id);
    }
    let result = match wait(app, &id).await {
        Ok(info) if info.job_status == JobStatus::Success => Ok(data),
        Ok(info) => Err((info.msg, data)),
        Err(m) => Err((m, data)),
    };
    envelope(StatusCode::OK, result, &request_id)
}

/// The answer to a request that queued nothing.
fn refused(step: Step, m: String, request_id: &str) -> Response {
    tracing::info!(step = step.as_str(), "milvus-migration route refused: {m}");
    envelope(StatusCode::OK, Err((m, Value::Null)), request_id)
}

/// Job `id` as milvus-migration's `JobInfo`: a job of this server, or the jobs `<id>-<part>`
/// one request queued for a config of several parts, as one (failed when one failed, running
/// while one runs, done when all are; their tasks summed, the mean of their percents). `None`
/// when there is no such job.
fn info(app: &App, id: &str) -> Option<JobInfo> {
    if let Ok(view) = app.jobs.get(id) {
        return Some(job_info(&view));
    }
    let prefix = format!("{id}-");
    let parts: Vec<JobInfo> = app
        .jobs
        .all()
        .iter()
        .filter(|v| v.id.starts_with(&prefix) && !v.id.ends_with(crate::routes::VERIFY_SUFFIX))
        // The whole view (the list's leaves the partitions out).
        .filter_map(|v| app.jobs.get(&v.id).ok())
        .map(|v| job_info(&v))
        .collect();
    if parts.is_empty() {
        return None;
    }
    let has = |s: JobStatus| parts.iter().any(|p| p.job_status == s);
    let job_status = if has(JobStatus::Fail) {
        JobStatus::Fail
    } else if parts.iter().all(|p| p.job_status == JobStatus::Success) {
        JobStatus::Success
    } else if has(JobStatus::Running) || has(JobStatus::Success) {
        JobStatus::Running
    } else {
        JobStatus::Init
    };
    let msg = parts
        .iter()
        .filter(|p| !p.msg.is_empty())
        .map(|p| format!("{}: {}", p.job_id, p.msg))
        .collect::<Vec<_>>()
        .join("; ");
    let mean = parts.iter().map(|p| u64::from(p.job_process)).sum::<u64>() / parts.len() as u64;
    Some(JobInfo {
        job_id: id.to_string(),
        job_status,
        job_process: if job_status == JobStatus::Success {
            100
        } else {
            (mean as u32).min(99)
        },
        msg,
        total_tasks: parts.iter().map(|p| p.total_tasks).sum(),
        finish_tasks: parts.iter().map(|p| p.finish_tasks).sum(),
    })
}

/// Waits until job `id` ([`info`]: one job, or the jobs of one request) stopped: how it
/// stands then; an error when it was deleted meanwhile or the server stops first.
async fn wait(app: &App, id: &str) -> Result<JobInfo, String> {
    loop {
        match info(app, id) {
            Some(i) if matches!(i.job_status, JobStatus::Success | JobStatus::Fail) => {
                // A failed part ends the wait only once no other part still runs.
                let running = i.job_status == JobStatus::Fail
                    && app
                        .jobs
                        .all()
                        .iter()
                        .any(|v| v.id.starts_with(&format!("{id}-")) && !v.state.is_final());
                if !running {
                    return Ok(i);
                }
            }
            Some(_) => {}
            None => {
                return Err(format!(
                    "job `{id}` was deleted while this request waited for it"
                ))
            }
        }
        tokio::select! {
            () = tokio::time::sleep(WAIT_TICK) => {}
            () = app.closing.cancelled() => {
                return Err(format!(
                    "the server is stopping: job `{id}` stops with it, its progress saved, and runs on when the server starts again"
                ))
            }
        }
    }
}

/// A job as milvus-migration's `JobInfo`.
fn job_info(view: &JobView) -> JobInfo {
    let id = &view.id;
    let (job_status, msg) = match view.state {
        JobState::Queued => (JobStatus::Init, String::new()),
        JobState::Running => (JobStatus::Running, String::new()),
        JobState::Done => (JobStatus::Success, String::new()),
        JobState::Failed => (JobStatus::Fail, view.error.clone().unwrap_or_default()),
        JobState::Cancelled => (
            JobStatus::Fail,
            format!("job `{id}` was cancelled (POST /v1/jobs/{id}/cancel); POST /v1/jobs/{id}/resume runs it on from its saved progress"),
        ),
    };
    let job_process = match (view.state, view.progress) {
        (JobState::Done, _) => 100,
        // `progress` is 0 to 1; the floor of its percent, short of 100 until done.
        (_, Some(p)) => ((p.clamp(0.0, 1.0) * 100.0).floor() as u32).min(99),
        (_, None) => 0,
    };
    let parts = view.partitions.as_deref().unwrap_or_default();
    JobInfo {
        job_id: id.clone(),
        job_status,
        job_process,
        msg,
        total_tasks: parts.len() as u64,
        finish_tasks: parts.iter().filter(|p| p.state == "done").count() as u64,
    }
}

/// `?jobId=` of `get_job`.
#[derive(Debug, Deserialize)]
pub(crate) struct JobQuery {
    #[serde(rename = "jobId")]
    job_id: Option<String>,
}

/// A job of this server as milvus-migration's `JobInfo` (any job: those of `/v1/jobs` too).
#[utoipa::path(
    get,
    path = "/api/v1/get_job",
    tag = "milvus-migration",
    security(("bearer" = [])),
    params(
        ("jobId" = String, Query, min_length = 1, description = "the id `start`, `dump` or `load` answered (or any job's id in `/v1/jobs`)"),
        ("RequestId" = Option<String>, Header, description = "echoed as `requestId`"),
    ),
    responses(
        (status = 200, body = JobInfoAnswer, description = "`code` 0 with the job, or 500 for no such job"),
        (status = 400, body = JobInfoAnswer, description = "no `jobId`, or a query that cannot be read (`code` 500)"),
        (status = 401, body = crate::routes::ApiError),
    )
)]
pub(crate) async fn get_job(
    State(app): State<App>,
    headers: HeaderMap,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> Response {
    let request_id = request_id(&headers);
    let bad = |m: String| envelope(StatusCode::BAD_REQUEST, Err((m, Value::Null)), &request_id);
    let id = match query {
        Ok(Query(JobQuery { job_id: Some(id) })) if !id.is_empty() => id,
        Ok(_) => {
            return bad("`jobId` is empty: give the id `start`, `dump` or `load` answered".into())
        }
        Err(e) => return bad(e.body_text()),
    };
    let result = match info(&app, &id) {
        Some(info) => Ok(json!(info)),
        None => Err((format!("no job `{id}` on this server"), Value::Null)),
    };
    envelope(StatusCode::OK, result, &request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_prefix_and_21_letters_or_digits_and_differ() {
        let (a, b) = (new_id("start_"), new_id("start_"));
        assert_eq!(a.len(), 27, "{a}");
        assert!(a.starts_with("start_"));
        assert!(a[6..].bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn bodies_are_read_as_milvus_migration_binds_them() {
        let p = params(
            br#"{"async": true, "collectionNames": ["a"], "x": 1}"#,
            Step::Dump,
        )
        .unwrap_or_default();
        assert!(p.asynchronous);
        assert_eq!(p.collection_names, vec!["a".to_string()]);
        // `start` has no collectionNames: ignored there, as any other key.
        let p = params(br#"{"collectionNames": ["a"]}"#, Step::Start).unwrap_or_default();
        assert!(!p.asynchronous && p.collection_names.is_empty());
        assert!(params(b"{}", Step::Load).is_ok());
        assert!(params(b"null", Step::Load).is_err());
        assert_eq!(
            params(br#"{"async": "yes"}"#, Step::Start).err().as_deref(),
            Some("`async` is true or false")
        );
        assert!(params(b"", Step::Start)
            .err()
            .is_some_and(|m| m.starts_with("the body is not JSON")));
        assert!(params(b"[]", Step::Dump)
            .err()
            .is_some_and(|m| m.starts_with("the body is not a JSON object")));
    }
}
