//! The routes, their response types and the OpenAPI document utoipa generates from them.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use futures::StreamExt as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};
use vmig::config::{Job, JobConfig, JobFormat};
use vmig::registry;

use crate::jobs::{
    Interrupted, JobKind, JobPage, JobRefusal, JobState, JobText, JobView, Jobs, PartitionView,
    Request,
};
use crate::{auth, compat, paths, ServeOptions};

/// The OpenAPI 3.1 document of the server, generated from the handlers below.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "vmig",
        description = "Move vector data into Milvus 2.x: the REST API of `vmig serve`."
    ),
    paths(
        healthz, readyz, plugins, plan, submit, list_jobs, get_job, delete_job, cancel_job,
        resume_job, verify_job, job_events, all_events, metrics, openapi, compat::healthy,
        compat::start, compat::dump, compat::load, compat::get_job
    ),
    components(schemas(
        Health, PluginList, PluginEntry, ApiError, JobView, JobState, JobKind, PartitionView,
        JobPage, Submitted, JobBody, Component, ServerEvent, EventName, compat::StartParam,
        compat::DumpParam, compat::JobResponse, compat::JobStatus, compat::JobInfo,
        compat::HealthyAnswer, compat::JobAnswer, compat::JobInfoAnswer
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme the protected routes name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answer of the health and readiness probes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
    /// The vmig version serving.
    pub version: String,
}

/// A plugin this server contains.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginEntry {
    /// Its name: the `type` of a job's `[source]`, `[[transform]]` or `[sink]` table (a
    /// parser's: its `format`).
    pub name: String,
    /// One line on what it does.
    pub summary: String,
    /// An example configuration (the table's other keys).
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
}

/// The plugins this server contains, by kind, each sorted by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Sources.
    pub sources: Vec<PluginEntry>,
    /// Transformers.
    pub transforms: Vec<PluginEntry>,
    /// Sinks.
    pub sinks: Vec<PluginEntry>,
    /// Parsers of data files.
    pub parsers: Vec<PluginEntry>,
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong and, where there is one, what to do.
    pub error: String,
}

/// A request refused, with its status and message.
#[derive(Debug)]
pub(crate) struct Refusal(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Answers in JSON (`{"error": …}`, as every other error) what axum and tower-http answer in
/// plain text or with an empty body: a path or query that cannot be decoded (`400`), a method
/// the route does not take (`405`, its `Allow` header kept), a body over `--max-body` (`413`).
async fn json_errors(method: axum::http::Method, response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("this route does not take {method}; the `Allow` header and /openapi.json say which methods it takes")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is over this server's limit (`--max-body`)".to_string()
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or_default().to_string(),
        _ => text,
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = error(status, message);
    answer.headers_mut().extend(parts.headers);
    answer
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub(crate) data_root: Option<PathBuf>,
    allow_env: Arc<Vec<String>>,
    pub(crate) jobs: Arc<Jobs>,
    /// Fires when the server stops: event streams end then (a stream that never ends would
    /// keep a graceful shutdown waiting).
    pub(crate) closing: CancellationToken,
    /// The milvus-migration config of the `/api/v1` routes (`--compat-config`).
    pub(crate) compat: Option<Arc<PathBuf>>,
}

fn app(options: &ServeOptions, jobs: Arc<Jobs>, closing: CancellationToken) -> App {
    App {
        data_root: options.data_root.clone(),
        allow_env: Arc::new(options.allow_env.clone()),
        jobs,
        closing,
        compat: options
            .compat_config
            .clone()
            .map(|p| Arc::new(std::path::absolute(&p).unwrap_or(p))),
    }
}

/// Runs again the jobs an earlier server left unfinished, each checked again as a new
/// submission is (the data root and allowed variables of this server).
pub(crate) async fn recover(
    options: &ServeOptions,
    jobs: &Arc<Jobs>,
    interrupted: Vec<Interrupted>,
) {
    let app = app(options, Arc::clone(jobs), CancellationToken::new());
    for Interrupted { id, text } in interrupted {
        let checked = job_of(&app, &text)
            .await
            .map(|mut job| {
                if !id.ends_with(VERIFY_SUFFIX) {
                    job.name = id.clone();
                }
                job
            })
            .map_err(|Refusal(_, message)| message);
        jobs.restart(&id, checked).await;
    }
}

pub(crate) fn router(
    options: &ServeOptions,
    jobs: Arc<Jobs>,
    closing: CancellationToken,
) -> Router {
    let app = app(options, jobs, closing);
    let protected = Router::new()
        .route("/v1/plugins", get(plugins))
        .route("/v1/plan", post(plan))
        .route("/v1/jobs", post(submit).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/resume", post(resume_job))
        .route("/v1/jobs/{id}/verify", post(verify_job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/events", get(all_events))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(compat::routes(app.compat.is_some()))
        .route_layer(middleware::from_fn_with_state(
            options.tokens.clone(),
            auth::require_token,
        ))
        .with_state(app);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(crate::page::index))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; see /openapi.json") })
        .layer(RequestBodyLimitLayer::new(options.max_body))
        .layer(middleware::map_response(json_errors))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the server takes requests.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Health)))]
async fn readyz() -> Json<Health> {
    Json(Health {
        status: "ready".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The plugins of this build (as `vmig plugins --json`).
#[utoipa::path(
    get,
    path = "/v1/plugins",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PluginList),
        (status = 401, body = ApiError, description = "no token, or not one this server accepts"),
        (status = 500, body = ApiError, description = "two plugins of one kind share a name"),
    )
)]
async fn plugins() -> Response {
    match plugin_list() {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn plugin_list() -> vmig::Result<PluginList> {
    fn entries<'a>(
        list: impl Iterator<Item = (&'a str, &'a str, serde_json::Value)>,
    ) -> Vec<PluginEntry> {
        list.map(|(name, summary, example)| PluginEntry {
            name: name.to_string(),
            summary: summary.to_string(),
            example,
        })
        .collect()
    }
    Ok(PluginList {
        sources: entries(
            registry::sources()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        transforms: entries(
            registry::transforms()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        sinks: entries(
            registry::sinks()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
        parsers: entries(
            registry::parsers()?
                .values()
                .map(|p| (p.name, p.summary, p.example_config())),
        ),
    })
}

/// The format of a submitted job, from its `Content-Type` (JSON when there is none).
fn job_format(headers: &HeaderMap) -> Result<JobFormat, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(JobFormat::Json);
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(JobFormat::Json),
        "application/toml" | "text/toml" | "text/x-toml" => Ok(JobFormat::Toml),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Ok(JobFormat::Yaml)
        }
        other => Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a job is sent as application/json, application/toml or application/yaml, not `{other}`"),
        )),
    }
}

/// A job sent in a request, parsed and checked before anything of it is opened: `${VAR}`s
/// only of the allowed variables, every local path inside the data root.
fn submitted_job(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<Job, Refusal> {
    let format = job_format(headers)?;
    let text = std::str::from_utf8(body).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("the job is not UTF-8 text: {e}"),
        )
    })?;
    job_from_text(app, format, text)
}

/// A job as `POST /v1/plan` and `POST /v1/jobs` take it, for the document: the tables of a job
/// file. The body itself is parsed as `vmig plan` parses a job file (`vmig::config`); a job that
/// has this shape can still be refused (`400`): whether its plugins exist, its options are
/// theirs and its files lie in the data root is beyond a schema.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the request body in the OpenAPI document only"
)]
struct JobBody {
    /// Where the rows come from (`GET /v1/plugins`: `sources`).
    source: Component,
    /// Rewrites applied in order (`[[transform]]`; `transforms` is accepted too).
    transform: Option<Vec<Component>>,
    /// Where the rows go (`GET /v1/plugins`: `sinks`).
    sink: Component,
    /// Runner settings (`batch_rows`, `flush_rows`, `max_rows_per_second`, …).
    #[schema(value_type = Option<Object>)]
    pipeline: Option<()>,
    /// `name`: the job's id when `?name=` is not given (a submitted job may not set `url` or
    /// `lease`: it runs in the server's state store).
    #[schema(value_type = Option<Object>)]
    state: Option<()>,
}

/// One `source`, `transform` or `sink` table of a job: the plugin and its options.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the request body in the OpenAPI document only"
)]
struct Component {
    /// The plugin's name; its other keys are its options (its `example` in `GET /v1/plugins`).
    r#type: String,
}

/// [`submitted_job`] of a job's text.
fn job_from_text(app: &App, format: JobFormat, text: &str) -> Result<Job, Refusal> {
    let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, vmig::redact::text(&message));
    let refused = RefCell::new(Vec::new());
    let lookup = |name: &str| {
        if app.allow_env.iter().any(|a| a == name) {
            std::env::var(name).ok()
        } else {
            refused.borrow_mut().push(name.to_string());
            None
        }
    };
    let config = JobConfig::parse(text, format, &lookup).map_err(|e| {
        match refused.borrow().first() {
            Some(name) => {
                let allowed = if app.allow_env.is_empty() {
                    "none".to_string()
                } else {
                    app.allow_env.join(", ")
                };
                bad(format!(
                    "`${{{name}}}`: this server expands only the environment variables its `--allow-env` names ({allowed}); write the value into the job"
                ))
            }
            None => bad(e.to_string()),
        }
    })?;
    let base = app.data_root.clone().unwrap_or_default();
    let job = Job::from_config(config, base).map_err(|e| bad(e.to_string()))?;
    paths::check_job(&job, app.data_root.as_deref()).map_err(bad)?;
    Ok(job)
}

/// The plan of a job (as `vmig plan --json`): its source is opened and read, nothing is
/// written. The job is JSON, TOML or YAML by `Content-Type`.
#[utoipa::path(
    post,
    path = "/v1/plan",
    security(("bearer" = [])),
    request_body(description = "a job, as a job file's tables: JSON (`application/json`, also without a `Content-Type`), TOML (`application/toml`) or YAML (`application/yaml`)", content(
        (JobBody = "application/json"), (String = "application/toml"), (JobBody = "application/yaml")
    )),
    responses(
        (status = 200, description = "the plan, as `vmig plan --json` prints it", body = Object),
        (status = 400, body = ApiError, description = "the job is not valid, names a local path outside the data root or a variable not allowed, or its source cannot be opened (the message `vmig plan` would print)"),
        (status = 401, body = ApiError),
        (status = 413, body = ApiError, description = "the body is over the limit (`--max-body`)"),
        (status = 415, body = ApiError, description = "not JSON, TOML or YAML"),
    )
)]
async fn plan(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let job = match submitted_job(&app, &headers, &body) {
        Ok(job) => job,
        Err(refusal) => return refusal.into_response(),
    };
    match vmig::plan::plan(&job).await {
        Ok(plan) => Json(plan.to_json(&job)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, vmig::redact::text(&e.to_string())),
    }
}

/// The answer to a submitted job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    /// The job as it stands (queued).
    pub job: JobView,
    /// Its plan, as `POST /v1/plan` answers it (null for a verification).
    #[schema(value_type = Object, nullable)]
    pub plan: serde_json::Value,
}

/// `?name=` of `POST /v1/jobs`.
#[derive(Debug, serde::Deserialize)]
struct SubmitQuery {
    name: Option<String>,
}

impl From<JobRefusal> for Refusal {
    fn from(refusal: JobRefusal) -> Refusal {
        match refusal {
            JobRefusal::Unknown(m) => Refusal(StatusCode::NOT_FOUND, m),
            JobRefusal::Conflict(m) => Refusal(StatusCode::CONFLICT, m),
            JobRefusal::Unavailable(m) => Refusal(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

impl IntoResponse for JobRefusal {
    fn into_response(self) -> Response {
        Refusal::from(self).into_response()
    }
}

/// What ends the id of a job's verification: `<id>.verify`.
pub(crate) const VERIFY_SUFFIX: &str = ".verify";

/// Whether `name` may be a submitted job's id: 1 to 100 of `A-Z a-z 0-9 . _ -`, not ending in
/// `.verify` (the ids of verifications).
fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && !name.ends_with(VERIFY_SUFFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Submits a job: validated and planned before it is accepted (nothing is started when it is
/// refused), then queued; it runs when one of `--max-jobs` slots is free, recorded in the
/// server's state store under its id (`?name=`, else `[state] name`, else a new one).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    security(("bearer" = [])),
    params(("name" = Option<String>, Query, min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9._-]+$", description = "the job's id: 1–100 of A–Z a–z 0–9 . _ -, not ending in `.verify`")),
    request_body(description = "a job: JSON, TOML or YAML by Content-Type, as for /v1/plan", content(
        (JobBody = "application/json"), (String = "application/toml"), (JobBody = "application/yaml")
    )),
    responses(
        (status = 201, body = Submitted),
        (status = 400, body = ApiError, description = "the job is not valid or cannot be planned (the message `vmig plan` would print), or `name` is not an id"),
        (status = 401, body = ApiError),
        (status = 409, body = ApiError, description = "a job of that id is queued or running"),
        (status = 413, body = ApiError, description = "the body is over the limit (`--max-body`)"),
        (status = 415, body = ApiError),
        (status = 503, body = ApiError, description = "the server has no state store"),
    )
)]
async fn submit(
    State(app): State<App>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match job_format(&headers) {
        Ok(format) => format,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the job is not UTF-8 text");
    };
    queue(&app, JobText::Sent(format, text), query.name).await
}

/// The job `text` stands for, checked as a new submission is: a sent job's text parsed
/// ([`job_from_text`]), a milvus-migration step translated again from its file
/// ([`compat::job`]).
pub(crate) async fn job_of(app: &App, text: &JobText) -> Result<Job, Refusal> {
    match text {
        JobText::Sent(format, text) => job_from_text(app, *format, text),
        JobText::Compat(c) => compat::job(app, c)
            .await
            .map_err(|message| Refusal(StatusCode::BAD_REQUEST, message)),
    }
}

/// Checks, names, plans and queues the job `text`; the answer of `POST /v1/jobs`.
async fn queue(app: &App, text: JobText, name: Option<String>) -> Response {
    let job = match job_of(app, &text).await {
        Ok(job) => job,
        Err(refusal) => return refusal.into_response(),
    };
    match enqueue(app, job, text, name).await {
        Ok((view, plan)) => {
            (StatusCode::CREATED, Json(Submitted { job: view, plan })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Names (`name`, else `[state] name`, else a new id), plans and queues the checked `job`
/// submitted as `text`: the job as it stands and its plan.
pub(crate) async fn enqueue(
    app: &App,
    mut job: Job,
    text: JobText,
    name: Option<String>,
) -> Result<(JobView, serde_json::Value), Refusal> {
    if job.state.url.is_some() || job.state.lease.is_some() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "a submitted job runs in the server's state store, by one process: drop `[state] url` and `[state] lease`".into(),
        ));
    }
    let name = name
        .or_else(|| job.state.name.clone())
        .unwrap_or_else(|| format!("job-{}", &vmig::ids::new_run_id()[..8]));
    if !valid_name(&name) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("`{name}` cannot be a job's id: use 1 to 100 of A-Z a-z 0-9 . _ -, not ending in `.verify`"),
        ));
    }
    job.name = name;
    let plan = vmig::plan::plan(&job)
        .await
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, vmig::redact::text(&e.to_string())))?;
    let plan = plan.to_json(&job);
    accept(
        app,
        Request {
            job,
            kind: JobKind::Migrate,
            of: None,
            text,
            plan: Some(plan),
        },
    )
    .await
}

/// Queues `request`: the job as it stands and its plan (null for a verification).
async fn accept(app: &App, request: Request) -> Result<(JobView, serde_json::Value), Refusal> {
    let plan = request.plan.clone().unwrap_or(serde_json::Value::Null);
    match app.jobs.submit(request).await {
        Ok(view) => Ok((view, plan)),
        Err(refusal) => Err(Refusal::from(refusal)),
    }
}

/// Checks job `of` again and queues its verification as job `<of>.verify`.
async fn queue_verify(app: &App, of: String, text: JobText) -> Response {
    let mut job = match job_of(app, &text).await {
        Ok(job) => job,
        Err(refusal) => return refusal.into_response(),
    };
    job.name = format!("{of}{VERIFY_SUFFIX}");
    let request = Request {
        job,
        kind: JobKind::Verify,
        of: Some(of),
        text,
        plan: None,
    };
    match accept(app, request).await {
        Ok((view, plan)) => {
            (StatusCode::CREATED, Json(Submitted { job: view, plan })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Verifies a stopped job as a job of its own, `<id>.verify`: reads its source again and its
/// target back and compares them row by row (`vmig verify`); the report is kept with that job
/// (`GET /v1/jobs/<id>.verify`), which fails when they differ.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/verify",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the id of the job to verify")),
    responses(
        (status = 201, body = Submitted, description = "the verification, queued (its `plan` is null)"),
        (status = 400, body = ApiError, description = "the job no longer passes this server's checks, or `id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 409, body = ApiError, description = "the job is queued or running, is a verification, or its verification runs"),
        (status = 503, body = ApiError, description = "the state store failed"),
    )
)]
async fn verify_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.jobs.verifiable(&id) {
        Ok(text) => queue_verify(&app, id, text).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Runs a failed or cancelled job again from its saved progress: the job as it was submitted,
/// checked again (the data root, the allowed variables).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/resume",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 201, body = Submitted, description = "queued again (a verification's `plan` is null)"),
        (status = 400, body = ApiError, description = "the job no longer passes this server's checks, or `id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 409, body = ApiError, description = "not failed or cancelled"),
        (status = 503, body = ApiError, description = "the state store failed"),
    )
)]
async fn resume_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.jobs.resumable(&id) {
        Ok((JobKind::Verify, Some(of), text)) => queue_verify(&app, of, text).await,
        Ok((_, _, text)) => queue(&app, text, Some(id)).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Prometheus text: jobs by state, and rows and bytes written per job.
#[utoipa::path(
    get,
    path = "/metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = ApiError),
    )
)]
async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.jobs.metrics(),
    )
        .into_response()
}

/// `?state=&after=&limit=` of `GET /v1/jobs`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state.
    state: Option<JobState>,
    /// The page after this job (the `next` of the page before).
    after: Option<String>,
    /// At most this many jobs (1–1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The largest page of `GET /v1/jobs`.
const MAX_PAGE: usize = 1000;

/// The jobs this server knows (those of earlier server processes on the same state store
/// too), in the order they were submitted, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = JobPage),
        (status = 400, body = ApiError, description = "a bad `state` or `limit`"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError, description = "no job `after`"),
    )
)]
async fn list_jobs(
    State(app): State<App>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{}; `state` is one of queued, running, done, failed, cancelled and `limit` 1 to {MAX_PAGE}", e.body_text()),
            )
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`limit` is 1 to {MAX_PAGE}, not {limit}"),
        );
    }
    match app.jobs.list(query.state, query.after.as_deref(), limit) {
        Ok(page) => Json(page).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Forgets a job that is not queued or running: it leaves this server's list. Its runs and
/// saved progress stay in the state store (`vmig status` shows them, `vmig migrate` resumes
/// it) and nothing of its output is touched.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 204, description = "forgotten"),
        (status = 400, body = ApiError, description = "`id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 409, body = ApiError, description = "queued or running: cancel it first"),
        (status = 503, body = ApiError, description = "the state store failed"),
    )
)]
async fn delete_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.jobs.delete(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// One server-sent event of `GET /v1/jobs/{id}/events` and `GET /v1/events`, as an event
/// source reads it (OpenAPI 3.1 describes each event of a `text/event-stream`).
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the event streams in the OpenAPI document only"
)]
struct ServerEvent {
    /// What happened.
    event: EventName,
    /// JSON: the job (a JobView) for `job`, `{"id": …}` for `deleted`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The `event:` of a server-sent event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "describes the event streams in the OpenAPI document only"
)]
enum EventName {
    /// A job as it is now: first each job as it is, then each change.
    Job,
    /// A job was deleted (`GET /v1/events` only).
    Deleted,
}

/// How often the event streams look for changes.
const EVENT_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// Server-sent events of one job: `event: job` with the job (as `GET /v1/jobs/{id}`) first as
/// it is, then each time it changes; the stream ends after the job stopped (done, failed,
/// cancelled) or was deleted.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "`text/event-stream`: `event: job`, `data:` a JobView", content_type = "text/event-stream", body = ServerEvent),
        (status = 400, body = ApiError, description = "`id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
    )
)]
async fn job_events(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Err(refusal) = app.jobs.get(&id) {
        return refusal.into_response();
    }
    let jobs = Arc::clone(&app.jobs);
    let stream = futures::stream::unfold(
        (jobs, id, String::new(), false),
        |(jobs, id, last, over)| async move {
            if over {
                return None;
            }
            let mut first = last.is_empty();
            loop {
                if !first {
                    tokio::time::sleep(EVENT_TICK).await;
                }
                first = false;
                let Ok(view) = jobs.get(&id) else {
                    return None;
                };
                let data = serde_json::to_string(&view).unwrap_or_default();
                if data != last {
                    let event = Event::default().event("job").data(data.clone());
                    let over = view.state.is_final();
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (jobs, id, data, over),
                    ));
                }
            }
        },
    );
    let stream = stream.take_until(app.closing.clone().cancelled_owned());
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Server-sent events of every job: `event: job` with each job (as in `GET /v1/jobs`) first
/// as it is, then each time one changes or a new one comes; `event: deleted` with `{"id": …}`
/// when one is deleted. It does not end.
#[utoipa::path(
    get,
    path = "/v1/events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `event: job` (a JobView) and `event: deleted`", content_type = "text/event-stream", body = ServerEvent),
        (status = 401, body = ApiError),
    )
)]
async fn all_events(State(app): State<App>) -> Response {
    let jobs = Arc::clone(&app.jobs);
    let seen: BTreeMap<String, String> = BTreeMap::new();
    let stream = futures::stream::unfold(
        (jobs, seen, std::collections::VecDeque::<Event>::new(), true),
        |(jobs, mut seen, mut ready, mut first)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (jobs, seen, ready, first),
                    ));
                }
                if !first {
                    tokio::time::sleep(EVENT_TICK).await;
                }
                first = false;
                let now = jobs.all();
                let ids: std::collections::BTreeSet<&str> =
                    now.iter().map(|v| v.id.as_str()).collect();
                let gone: Vec<String> = seen
                    .keys()
                    .filter(|id| !ids.contains(id.as_str()))
                    .cloned()
                    .collect();
                for id in gone {
                    seen.remove(&id);
                    ready.push_back(
                        Event::default()
                            .event("deleted")
                            .data(serde_json::json!({ "id": id }).to_string()),
                    );
                }
                for view in now {
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    if seen.get(&view.id) != Some(&data) {
                        ready.push_back(Event::default().event("job").data(data.clone()));
                        seen.insert(view.id, data);
                    }
                }
            }
        },
    );
    let stream = stream.take_until(app.closing.clone().cancelled_owned());
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One job: its state, rows so far, rate, ETA, partitions, plan, error (a verification: its
/// report).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, body = JobView),
        (status = 400, body = ApiError, description = "`id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
    )
)]
async fn get_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.jobs.get(&id) {
        Ok(view) => Json(view).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Stops a queued or running job cleanly: its progress is saved, and submitting it again (or
/// `vmig migrate` with the same job and state store) resumes it.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 202, body = JobView, description = "asked to stop; it stops at its next write"),
        (status = 400, body = ApiError, description = "`id` is not UTF-8 text once percent-decoded"),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 409, body = ApiError, description = "not queued or running"),
    )
)]
async fn cancel_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.jobs.cancel(&id) {
        Ok(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// This document. The milvus-migration routes (`/api/v1/…`) are in it only when the server
/// serves them (`--compat-config`).
#[utoipa::path(
    get,
    path = "/openapi.json",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the OpenAPI 3.1 document", body = Object),
        (status = 401, body = ApiError),
    )
)]
async fn openapi(State(app): State<App>) -> Response {
    let mut doc = ApiDoc::openapi();
    if app.compat.is_none() {
        doc.paths
            .paths
            .retain(|path, _| !compat::is_compat_path(path));
    }
    Json(doc).into_response()
}
