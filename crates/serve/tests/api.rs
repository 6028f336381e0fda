//! The server over real HTTP on a loopback port: which routes need a token and how a missing or
//! wrong one is answered, the plugin list against the registry, the OpenAPI document against
//! the routes that answer, the body limit, the options that refuse to start, and `POST
//! /v1/plan` with what a submitted job may not do (local paths outside the data root, `..`,
//! symlinks out, `${VAR}` not allowed) refused before anything is read, and jobs submitted,
//! watched, cancelled, resumed, and counted in `/metrics`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{ServeError, ServeOptions, Tokens};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A server with `options` on a free loopback port; its address and the token that stops it.
async fn start(options: impl FnOnce(SocketAddr) -> ServeOptions) -> (String, CancellationToken) {
    let (base, stop, _) = start_joined(options).await;
    (base, stop)
}

/// As [`start`], with the task serving (it ends once the server stopped its jobs).
async fn start_joined(
    options: impl FnOnce(SocketAddr) -> ServeOptions,
) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let server = common::start(options).await;
    let task = server.task;
    (
        server.base,
        server.stop,
        tokio::spawn(async move { task.await.unwrap().unwrap() }),
    )
}

fn with_token(addr: SocketAddr) -> ServeOptions {
    ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_but_the_probes_needs_an_accepted_token() {
    let (base, stop) = start(with_token).await;
    for probe in ["/healthz", "/readyz"] {
        let (status, body) = get(&format!("{base}{probe}"), None).await;
        assert_eq!(status, StatusCode::OK, "{probe}");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{probe}");
    }
    for route in ["/v1/plugins", "/openapi.json"] {
        let url = format!("{base}{route}");
        let (status, body) = get(&url, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(
            body["error"],
            "this route needs `Authorization: Bearer <token>`"
        );
        let (status, body) = get(&url, Some("test-token-0123456789abcdeX")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(
            body["error"],
            "the bearer token is not one this server accepts"
        );
        let r = reqwest::Client::new()
            .get(&url)
            .basic_auth("admin", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{route}: basic auth");
        assert_eq!(
            r.headers().get("www-authenticate").unwrap(),
            "Bearer",
            "{route}"
        );
        let (status, _) = get(&url, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{route}");
    }
    let (status, body) = get(&format!("{base}/v2/nothing"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such route; see /openapi.json");
    stop.cancel();
}

#[tokio::test]
async fn plugins_are_the_registry_and_the_document_lists_every_route() {
    let (base, stop) = start(with_token).await;
    let (_, plugins) = get(&format!("{base}/v1/plugins"), Some(TOKEN)).await;
    let names = |kind: &str| -> Vec<String> {
        plugins[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let want = |m: Vec<&str>| m.into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        names("sources"),
        want(vmig::registry::sources().unwrap().keys().copied().collect())
    );
    assert_eq!(
        names("sinks"),
        want(vmig::registry::sinks().unwrap().keys().copied().collect())
    );
    assert!(names("sinks").contains(&"milvus2".to_string()));
    for p in plugins["sources"].as_array().unwrap() {
        assert!(p["summary"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
        assert!(p["example"].is_object(), "{p}");
    }

    // The document is OpenAPI 3.1, and every path in it answers as it says (200 with the token,
    // 401 without where it names the bearer scheme).
    let (_, doc) = get(&format!("{base}/openapi.json"), Some(TOKEN)).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
            "/v1/events",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/{id}/events",
            "/v1/jobs/{id}/resume",
            "/v1/jobs/{id}/verify",
            "/v1/plan",
            "/v1/plugins"
        ]
    );
    assert!(paths["/v1/plan"]["post"]["responses"]["400"].is_object());
    assert!(paths["/v1/jobs"]["post"]["responses"]["201"].is_object());
    let untemplated = paths
        .iter()
        .filter(|(path, ops)| ops.get("get").is_some() && !path.contains('{'));
    for (path, ops) in untemplated {
        let op = &ops["get"];
        // The status only: an event stream does not end.
        let status = |token: Option<&'static str>| {
            let mut req = reqwest::Client::new().get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move { req.send().await.unwrap().status() }
        };
        assert_eq!(status(Some(TOKEN)).await, StatusCode::OK, "{path}");
        let protected = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let status = status(None).await;
        let want = if protected {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want, "{path}");
        if protected {
            assert!(
                op["responses"]["401"].is_object(),
                "{path}: 401 undocumented"
            );
        }
    }
    stop.cancel();
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_any_handler() {
    let (base, stop) = start(|addr| ServeOptions {
        max_body: 64 << 10,
        ..with_token(addr)
    })
    .await;
    let big = vec![b'x'; 10 << 20];
    for token in [Some(TOKEN), None] {
        let mut req = reqwest::Client::new()
            .post(format!("{base}/v1/plugins"))
            .body(big.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "token {token:?}");
    }
    stop.cancel();
}

#[tokio::test]
async fn a_server_without_a_token_starts_only_on_loopback_when_told() {
    let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let open = |addr| ServeOptions {
        insecure_no_auth: true,
        ..ServeOptions::new(addr, Tokens::default())
    };
    let message = |e: ServeError| e.to_string();
    assert_eq!(
        message(ServeOptions::new(loopback, Tokens::default()).check().unwrap_err()),
        "invalid `serve` configuration: no API token: set VMIG_API_TOKEN or `--token-file` (every route but /healthz and /readyz needs `Authorization: Bearer <token>`), or, on a loopback address only, pass `--insecure-no-auth`"
    );
    assert_eq!(
        message(open(everywhere).check().unwrap_err()),
        "invalid `serve` configuration: `--insecure-no-auth` is allowed only on a loopback address, not 0.0.0.0:8080: set VMIG_API_TOKEN or `--token-file` to serve on other addresses"
    );
    assert!(open(loopback).check().is_ok());
    assert!(open("[::1]:8080".parse().unwrap()).check().is_ok());
    let both = ServeOptions {
        insecure_no_auth: true,
        ..with_token(loopback)
    };
    assert!(message(both.check().unwrap_err()).contains("drop one of them"));

    // An open loopback server answers without a token.
    let (base, stop) = start(open).await;
    let (status, _) = get(&format!("{base}/v1/plugins"), None).await;
    assert_eq!(status, StatusCode::OK);
    stop.cancel();
}

/// A data root holding the shipped sample index (`data/sample.faiss`) and a symlink out of it.
fn data_root() -> tempfile::TempDir {
    let root = common::sample_root();
    std::os::unix::fs::symlink("/etc", root.path().join("etc-link")).unwrap();
    root
}

async fn post(url: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn plan_opens_only_what_lies_inside_the_data_root() {
    let root = data_root();
    let root_path = root.path().to_path_buf();
    let (base, stop) = start(move |addr| ServeOptions {
        data_root: Some(root_path),
        allow_env: vec!["VMIG_SERVE_TEST_ALLOWED".into()],
        ..with_token(addr)
    })
    .await;
    let url = format!("{base}/v1/plan");
    let job = |path: &str| {
        format!("[source]\ntype = \"faiss\"\npath = \"{path}\"\n\n[sink]\ntype = \"files\"\npath = \"out\"\n")
    };

    // TOML, JSON and YAML of one job give one plan: the sample's 2000 rows, its schema.
    let (status, toml_plan) = post(&url, "application/toml", &job("data/sample.faiss")).await;
    assert_eq!(status, StatusCode::OK, "{toml_plan}");
    assert_eq!(toml_plan["estimated_rows"], 2000, "{toml_plan}");
    assert_eq!(toml_plan["source"]["type"], "faiss");
    let fields: Vec<&str> = toml_plan["target_schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["id", "vector"]);
    let json = r#"{"source": {"type": "faiss", "path": "data/sample.faiss"}, "sink": {"type": "files", "path": "out"}}"#;
    let (status, json_plan) = post(&url, "application/json", json).await;
    assert_eq!(status, StatusCode::OK, "{json_plan}");
    let yaml =
        "source:\n  type: faiss\n  path: data/sample.faiss\nsink:\n  type: files\n  path: out\n";
    let (status, yaml_plan) = post(&url, "application/yaml; charset=utf-8", yaml).await;
    assert_eq!(status, StatusCode::OK, "{yaml_plan}");
    assert_eq!(toml_plan["partitions"], json_plan["partitions"]);
    assert_eq!(toml_plan["target_schema"], yaml_plan["target_schema"]);
    // Nothing was written: the sink's directory does not exist.
    assert!(!root.path().join("out").exists());

    // Refused before anything is read, naming the option and why.
    let refusals = [
        (job("/etc/passwd"), "[source] path: `/etc/passwd` resolves to /etc/passwd, outside the data root"),
        (job("../../x.faiss"), "[source] path: `../../x.faiss` has a `..` component; name paths inside the data root without it"),
        (job("etc-link/passwd"), "[source] path: `etc-link/passwd` resolves to /etc/passwd, outside the data root"),
        (
            job("data/sample.faiss").replace("path = \"out\"", "path = \"/tmp/vmig-serve-out\""),
            "[sink] path: `/tmp/vmig-serve-out` resolves to /tmp/vmig-serve-out, outside the data root",
        ),
        (
            job("${HOME}/x.faiss"),
            "`${HOME}`: this server expands only the environment variables its `--allow-env` names (VMIG_SERVE_TEST_ALLOWED); write the value into the job",
        ),
    ];
    for (body, want) in refusals {
        let (status, answer) = post(&url, "application/toml", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let got = answer["error"].as_str().unwrap();
        assert!(got.starts_with(want), "{body}:\n{got}\nwanted\n{want}");
    }

    // A bad job gets the message `vmig plan` prints; another media type 415.
    let (status, answer) = post(
        &url,
        "application/toml",
        "[source]\ntype = \"nope\"\n[sink]\ntype = \"files\"\npath = \"out\"\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("[source]: unknown source plugin `nope`"),
        "{answer}"
    );
    let (status, answer) = post(&url, "text/plain", &job("data/sample.faiss")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        answer["error"],
        "a job is sent as application/json, application/toml or application/yaml, not `text/plain`"
    );
    stop.cancel();
}

#[tokio::test]
async fn without_a_data_root_no_local_path_is_allowed() {
    let (base, stop) = start(with_token).await;
    let body = "[source]\ntype = \"faiss\"\npath = \"data/sample.faiss\"\n\n[sink]\ntype = \"files\"\npath = \"s3://bucket/out\"\n";
    let (status, answer) = post(&format!("{base}/v1/plan"), "application/toml", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "[source] path: `data/sample.faiss` is a local path, and this server reads and writes none (it was started without `--data-root`)"
    );
    stop.cancel();
}

/// `GET /metrics` as text.
async fn metrics(base: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn job_view(base: &str, id: &str) -> Value {
    let (status, view) = get(&format!("{base}/v1/jobs/{id}"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

/// Polls job `id` until it leaves the queue and running (at most 60 s); its last view.
async fn wait_end(base: &str, id: &str) -> Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let view = job_view(base, id).await;
        if !matches!(view["state"].as_str(), Some("queued" | "running")) {
            return view;
        }
        assert!(std::time::Instant::now() < until, "{view}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The rows the manifest of the `files` output in `dir` lists.
fn manifest_rows(dir: &std::path::Path) -> u64 {
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["total_rows"].as_u64().unwrap()
}

#[tokio::test]
async fn jobs_run_to_the_end_stop_and_resume_on_request() {
    let root = data_root();
    let root_path = root.path().to_path_buf();
    let (base, stop) = start(move |addr| ServeOptions {
        data_root: Some(root_path),
        ..with_token(addr)
    })
    .await;
    let url = format!("{base}/v1/jobs");
    let job = common::sample_job;

    // A job runs to the end: 201 with its plan, then done with every row, in the data root.
    let (status, answer) = post(
        &format!("{url}?name=books"),
        "application/toml",
        &job("out", ""),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["job"]["id"], "books");
    assert_eq!(answer["plan"]["estimated_rows"], 2000, "{answer}");
    let view = wait_end(&base, "books").await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["rows_written"], 2000, "{view}");
    assert_eq!(manifest_rows(&root.path().join("out")), 2000);
    // Recorded in the state store in the data root, as `vmig migrate` records it.
    let store = vmig::state::StateStore::open("sqlite://.vmig/state.db", root.path())
        .await
        .unwrap();
    let last = store.last_run("books").await.unwrap().unwrap();
    assert_eq!(last.status, vmig::state::RunStatus::Done);

    // A slow job stopped on request: cancelled, progress saved; sent again, it resumes and ends
    // with every row once.
    let slow = job(
        "slow",
        "batch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 400",
    );
    let (status, answer) = post(&format!("{url}?name=slow"), "application/toml", &slow).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, again) = post(&format!("{url}?name=slow"), "application/toml", &slow).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .starts_with("job `slow` is "),
        "{again}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = reqwest::Client::new()
        .post(format!("{url}/slow/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let view = wait_end(&base, "slow").await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let written = view["rows_written"].as_u64().unwrap();
    assert!(written > 0 && written < 2000, "{view}");
    let last = store.last_run("slow").await.unwrap().unwrap();
    assert_eq!(last.status, vmig::state::RunStatus::Cancelled);
    assert!(!root.path().join("slow/manifest.json").exists());
    let (status, answer) = post(&format!("{url}/books/resume"), "application/json", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["error"],
        "job `books` is done: only a failed or cancelled job resumes"
    );
    let (status, answer) = post(&format!("{url}/slow/resume"), "application/json", "").await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let view = wait_end(&base, "slow").await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(manifest_rows(&root.path().join("slow")), 2000);
    assert!(
        view["rows_written"].as_u64().unwrap() < 2000,
        "resumed, not restarted: {view}"
    );

    // Metrics: rows per job, jobs by state.
    let text = metrics(&base).await;
    assert!(
        text.contains("vmig_job_rows_written_total{job=\"books\"} 2000\n"),
        "{text}"
    );
    assert!(text.contains("vmig_jobs{state=\"done\"} 2\n"), "{text}");
    assert!(text.contains("# TYPE vmig_jobs gauge\n"), "{text}");

    // The list; unknown ids; a job's own [state] is refused.
    let (_, list) = get(&url, Some(TOKEN)).await;
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["books", "slow"]);
    let (status, _) = get(&format!("{url}/nope"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let own_state = format!("{}\n[state]\nurl = \"sqlite:///tmp/x.db\"\n", job("x", ""));
    let (status, answer) = post(&url, "application/toml", &own_state).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "a submitted job runs in the server's state store, by one process: drop `[state] url` and `[state] lease`"
    );
    stop.cancel();
}

/// The ids of a page of `GET /v1/jobs` with `query`, and its `next`.
async fn page(base: &str, query: &str) -> (Vec<String>, Value) {
    let (status, page) = get(&format!("{base}/v1/jobs{query}"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    let ids = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    (ids, page["next"].clone())
}

async fn send(method: reqwest::Method, url: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `job` events of a finished stream, as JSON.
fn job_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|e| e.lines().any(|l| l == "event: job"))
        .map(|e| {
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_outlive_their_server_and_are_listed_verified_watched_and_deleted() {
    let root = data_root();
    let options = |root: std::path::PathBuf| {
        move |addr| ServeOptions {
            data_root: Some(root),
            ..with_token(addr)
        }
    };
    let (base, stop, served) = start_joined(options(root.path().to_path_buf())).await;
    let url = format!("{base}/v1/jobs");
    let job = common::sample_job;
    let slow = "batch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 400";
    for (name, body) in [
        ("books", job("books", "")),
        ("slow", job("slow", slow)),
        ("stopped", job("stopped", slow)),
    ] {
        let (status, answer) = post(&format!("{url}?name={name}"), "application/toml", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    assert_eq!(wait_end(&base, "books").await["state"], "done");
    // `slow` has made rows durable; `stopped` is cancelled by a request.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while job_view(&base, "slow").await["rows_flushed"]
        .as_u64()
        .unwrap()
        == 0
    {
        assert!(std::time::Instant::now() < until, "slow never flushed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = send(reqwest::Method::POST, &format!("{url}/stopped/cancel")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(wait_end(&base, "stopped").await["state"], "cancelled");

    // The server stops mid-job (as on SIGTERM), and a new one on the same data root knows every
    // job: the interrupted one runs again by itself from its saved progress and ends with every
    // row once; the one cancelled by a request stays cancelled.
    stop.cancel();
    served.await.unwrap();
    assert!(!root.path().join("slow/manifest.json").exists());
    let (base, stop, served) = start_joined(options(root.path().to_path_buf())).await;
    let url = format!("{base}/v1/jobs");
    let (ids, next) = page(&base, "").await;
    assert_eq!(ids, ["books", "slow", "stopped"]);
    assert_eq!(next, Value::Null);
    assert_eq!(job_view(&base, "stopped").await["state"], "cancelled");
    let view = wait_end(&base, "slow").await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(manifest_rows(&root.path().join("slow")), 2000);
    let again = view["rows_written"].as_u64().unwrap();
    assert!(again > 0 && again < 2000, "resumed, not restarted: {view}");
    assert_eq!(view["progress"], 1.0, "{view}");
    assert!(view["started_at"].is_string(), "{view}");
    assert_eq!(view["plan"]["estimated_rows"], 2000, "{view}");
    let parts = view["partitions"].as_array().unwrap();
    assert!(!parts.is_empty(), "{view}");
    assert!(parts.iter().all(|p| p["state"] == "done"), "{view}");
    let store = vmig::state::StateStore::open("sqlite://.vmig/state.db", root.path())
        .await
        .unwrap();
    let runs = store.runs("slow").await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs[1].resumed, "{runs:?}");

    // Filters and pages, in the order of submission.
    assert_eq!(page(&base, "?state=done").await.0, ["books", "slow"]);
    assert_eq!(page(&base, "?state=cancelled").await.0, ["stopped"]);
    let (ids, next) = page(&base, "?limit=1").await;
    assert_eq!(
        (ids, next),
        (vec!["books".to_string()], Value::from("books"))
    );
    let (ids, next) = page(&base, "?limit=1&after=books").await;
    assert_eq!((ids, next), (vec!["slow".to_string()], Value::from("slow")));
    let (ids, next) = page(&base, "?limit=2&after=slow").await;
    assert_eq!((ids, next), (vec!["stopped".to_string()], Value::Null));
    let (status, answer) = get(&format!("{url}?state=bogus"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("`state` is one of queued, running, done, failed, cancelled"),
        "{answer}"
    );
    let (status, answer) = get(&format!("{url}?limit=0"), Some(TOKEN)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("`limit` is 1 to 1000, not 0"))
    );
    let (status, _) = get(&format!("{url}?after=nope"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A verification is a job of its own that keeps its report.
    let (status, answer) = send(reqwest::Method::POST, &format!("{url}/books/verify")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["job"]["id"], "books.verify");
    assert_eq!(answer["job"]["kind"], "verify");
    assert_eq!(answer["job"]["of"], "books");
    let view = wait_end(&base, "books.verify").await;
    assert_eq!(view["state"], "done", "{view}");
    let report = &view["report"];
    assert_eq!(
        (
            &report["status"],
            &report["source_rows"],
            &report["target_rows"],
            &report["missing"],
            &report["changed"]
        ),
        (
            &Value::from("ok"),
            &Value::from(2000),
            &Value::from(2000),
            &Value::from(0),
            &Value::from(0)
        ),
        "{view}"
    );
    let (status, _) = send(reqwest::Method::POST, &format!("{url}/books.verify/verify")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = post(
        &format!("{url}?name=x.verify"),
        "application/toml",
        &job("x", ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Events of a running job: its state and rows as they change, until it ends.
    let (status, _) = post(
        &format!("{url}?name=watched"),
        "application/toml",
        &job("watched", "batch_rows = 100\nmax_rows_per_second = 2000"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let r = reqwest::Client::new()
        .get(format!("{url}/watched/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = job_events(&r.text().await.unwrap());
    assert!(events.len() >= 3, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["rows_written"].as_u64()),
        (Some("done"), Some(2000)),
        "{last}"
    );
    assert!(events.iter().any(|e| e["state"] == "running"), "{events:?}");
    let rows: Vec<u64> = events
        .iter()
        .map(|e| e["rows_written"].as_u64().unwrap())
        .collect();
    assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
    // Every job's events: each known job once to begin with.
    let mut r = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while job_events(&text).len() < 5 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let ids: Vec<String> = job_events(&text)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["books", "slow", "stopped", "books.verify", "watched"]);
    drop(r);

    // Deleting: not while running; a stopped job leaves the list, its runs stay in the store.
    let (status, answer) = send(reqwest::Method::DELETE, &format!("{url}/books")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (status, _) = get(&format!("{url}/books"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        store.last_run("books").await.unwrap().unwrap().status,
        vmig::state::RunStatus::Done
    );
    let (status, _) = send(reqwest::Method::DELETE, &format!("{url}/books")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &format!("{url}?name=busy"),
        "application/toml",
        &job("busy", slow),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = send(reqwest::Method::DELETE, &format!("{url}/busy")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .ends_with("cancel it before deleting it"),
        "{answer}"
    );

    // Metrics: bytes and failures per job.
    let text = metrics(&base).await;
    assert!(
        text.contains("vmig_job_bytes_written_total{job=\"watched\"} "),
        "{text}"
    );
    assert!(
        !text.contains("vmig_job_bytes_written_total{job=\"watched\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("vmig_job_failures_total{job=\"watched\"} 0\n"),
        "{text}"
    );
    stop.cancel();
    served.await.unwrap();
    // `busy` was running: the store keeps it for the next server.
    let busy = store
        .submissions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "busy")
        .unwrap();
    assert!(
        matches!(busy.status.as_str(), "running" | "queued"),
        "{busy:?}"
    );
    assert!(store
        .submissions()
        .await
        .unwrap()
        .iter()
        .all(|s| s.name != "books"));
}

#[tokio::test]
async fn a_stopping_server_ends_its_event_streams() {
    let (base, stop, served) = start_joined(with_token).await;
    let mut r = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    stop.cancel();
    // The stream ends, and so does the server, without the client letting go.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while r.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream outlived the server");
    tokio::time::timeout(std::time::Duration::from_secs(10), served)
        .await
        .expect("the server waited for an event stream")
        .unwrap();
}
