//! The OpenAPI conformance check: every documented route answers as the document says.
//!
//! schemathesis (pinned in `scripts/pyenv`) reads `GET /openapi.json` of a server in this
//! process — with a token, and a data root holding the sample Faiss index in which two jobs were
//! submitted first (`books`, done; `slow`, cancelled), so that the routes of a job answer with
//! real data too — and calls every documented operation with requests it generates from the
//! document, valid and invalid ones, in its phases (coverage, fuzzing, stateful sequences that
//! follow ids from one answer to the next request). All of its checks run: no `5xx`, a documented
//! status, content type, headers and body schema for every answer, invalid requests refused
//! with a `4xx` and valid ones not refused, no route that ignores the token, `405` for methods a
//! route does not take, a deleted job gone. Nothing is excluded; what the document cannot
//! express and the limits that keep the run short and repeatable are in `schemathesis.toml`
//! next to this file, each with its reason.
//!
//! Needs `VMIG_PYTHON` (`scripts/services`): skipped, loudly, without it; failed on CI.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{ServeOptions, Tokens};

const TOKEN: &str = "test-token-0123456789abcdef";

/// The schemathesis settings of this check.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls job `id` until it is neither queued nor running (at most 60 s); its state.
async fn wait_end(base: &str, id: &str) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, view) = send(reqwest::Client::new().get(format!("{base}/v1/jobs/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        let state = view["state"].as_str().unwrap().to_string();
        if state != "queued" && state != "running" {
            return state;
        }
        assert!(Instant::now() < until, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_the_document_says() {
    let Some(python) = vmig_testing::service::python() else {
        return;
    };
    let root = common::sample_root();
    let data_root = root.path().to_path_buf();
    // milvus-migration's routes too, on a config whose index is missing: each `start` and `dump`
    // is translated, checked and refused at its plan (`code` 500) rather than run hundreds of
    // times; `load` is refused by the translation (local mode).
    let compat = root.path().join("migration.yaml");
    std::fs::write(
        &compat,
        format!(
            "dumper:\n  worker:\n    workMode: faiss\nsource:\n  mode: local\n  local:\n    faissFile: {root}/data/missing.faiss\ntarget:\n  mode: local\n  local:\n    outputDir: {root}/output/\n  create:\n    collection:\n      name: test\n      dim: 64\n      metricType: L2\n",
            root = root.path().display()
        ),
    )
    .unwrap();
    let common::Server {
        base,
        stop,
        task: server,
        ..
    } = common::start(|addr| ServeOptions {
        data_root: Some(data_root),
        compat_config: Some(compat),
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;

    // Real data for the routes of a job: `books` runs to the end; `slow` is cancelled before it
    // does (resumed, it runs for about two seconds).
    let client = reqwest::Client::new();
    let books = "[source]\ntype = \"faiss\"\npath = \"data/sample.faiss\"\n\n[sink]\ntype = \"files\"\npath = \"books\"\n";
    let (status, answer) = send(
        client
            .post(format!("{base}/v1/jobs?name=books"))
            .header("content-type", "application/toml")
            .body(books),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(wait_end(&base, "books").await, "done");
    let slow = serde_json::json!({
        "source": {"type": "faiss", "path": "data/sample.faiss"},
        "sink": {"type": "files", "path": "slow"},
        "pipeline": {"batch_rows": 100, "max_rows_per_second": 1000},
    });
    let (status, answer) = send(client.post(format!("{base}/v1/jobs?name=slow")).json(&slow)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = send(client.post(format!("{base}/v1/jobs/slow/cancel"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(wait_end(&base, "slow").await, "cancelled");

    // The compat config translates; its job is refused at the plan, naming the index.
    let (status, answer) = send(
        client
            .post(format!("{base}/api/v1/start"))
            .json(&serde_json::json!({"async": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["code"], 500, "{answer}");
    assert!(
        answer["msg"].as_str().unwrap().contains("missing.faiss"),
        "{answer}"
    );

    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = {
        let url = format!("{base}/openapi.json");
        let cwd = work.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .args([
                    "-m",
                    "schemathesis.cli",
                    "--config-file",
                    CONFIG,
                    "--no-color",
                ])
                .args(["run", &url, "-H", &format!("Authorization: Bearer {TOKEN}")])
                // Every operation: without a filter that selects it, schemathesis leaves out the
                // one that served the document (`GET /openapi.json`).
                .args(["--include-path-regex", "^/"])
                .current_dir(cwd)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let took = started.elapsed();
    stop.cancel();
    server.await.unwrap().unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found answers that are not as the document says ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with `--nocapture`: what was run, and the warnings (operations that got only 404s).
    eprintln!("{stdout}\nschemathesis took {:.1} s", took.as_secs_f64());
}

/// What schemathesis does not send — an id that is not UTF-8 once percent-decoded, a query key
/// given twice, a method a route does not take, a body over the limit — is refused in JSON too
/// (axum and tower-http answer these in plain text or with no body), with a status the document
/// lists for the operation.
#[tokio::test]
async fn the_refusals_of_axum_are_json_and_documented_too() {
    let common::Server {
        base,
        stop,
        task: server,
        ..
    } = common::start(|addr| ServeOptions {
        max_body: 1 << 10,
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;
    let client = reqwest::Client::new();
    let (_, doc) = send(client.get(format!("{base}/openapi.json"))).await;

    let cases = [
        (reqwest::Method::GET, "/v1/jobs/%FF", "/v1/jobs/{id}", 400, "Invalid URL: Invalid UTF-8 in `id`"),
        (reqwest::Method::POST, "/v1/jobs/%FF/cancel", "/v1/jobs/{id}/cancel", 400, "Invalid URL: Invalid UTF-8 in `id`"),
        (reqwest::Method::DELETE, "/v1/jobs/%FF", "/v1/jobs/{id}", 400, "Invalid URL: Invalid UTF-8 in `id`"),
        (reqwest::Method::GET, "/v1/jobs/%FF/events", "/v1/jobs/{id}/events", 400, "Invalid URL: Invalid UTF-8 in `id`"),
        (reqwest::Method::POST, "/v1/jobs?name=a&name=b", "/v1/jobs", 400, "Failed to deserialize query string: duplicate field `name`"),
        (reqwest::Method::PATCH, "/v1/jobs", "", 405, "this route does not take PATCH; the `Allow` header and /openapi.json say which methods it takes"),
        (reqwest::Method::POST, "/v1/plan", "/v1/plan", 413, "the request body is over this server's limit (`--max-body`)"),
        (reqwest::Method::POST, "/v1/jobs", "/v1/jobs", 413, "the request body is over this server's limit (`--max-body`)"),
    ];
    for (method, path, documented, status, message) in cases {
        let what = format!("{method} {path}");
        let r = client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(if status == 413 {
                vec![b' '; 2 << 10]
            } else {
                b"{}".to_vec()
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_eq!(r.headers()["content-type"], "application/json", "{what}");
        if status == 405 {
            assert_eq!(r.headers()["allow"], "POST,GET,HEAD", "{what}");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, serde_json::json!({ "error": message }), "{what}");
        if !documented.is_empty() {
            let op = &doc["paths"][documented][method.as_str().to_ascii_lowercase()];
            let answer = &op["responses"][status.to_string()];
            assert_eq!(
                answer["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ApiError",
                "{what}: {status} is not documented as an ApiError"
            );
        }
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}
