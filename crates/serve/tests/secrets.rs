//! Secrets never leave the server: jobs that carry a value in every kind of secret-holding
//! option the plugins have (passwords, API keys, bearer and Milvus tokens, the user-info of
//! URLs, object-store keys, and a secret brought in by an allowed `${VAR}`) are planned,
//! submitted, run until they fail, verified, listed, watched and counted — and no answer of any
//! route, no event, no metric, nor the plan and error the store keeps, holds any of those
//! values. The masking is `vmig_core::redact`'s (the one list of secret keys).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{ServeOptions, Tokens};

const TOKEN: &str = "secrets-token-0123456789abcdef";

/// One value per secret-holding option; each would show if it were not masked.
const SECRETS: &[&str] = &[
    "EsUrlPass-7f3a",
    "EsPassword-91bd",
    "EsApiKey-c02e",
    "EsBearer-55a1",
    "MvUriPass-3d9c",
    "MvToken-e8f0",
    "MvPassword-4b6a",
    "S3Secret-a1b2c3",
    "S3Session-d4e5f6",
    "FromEnv-Secret-77aa",
];

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secret-carrying jobs: (name, TOML).
fn jobs(port: u16) -> Vec<(&'static str, String)> {
    let faiss = "[source]\ntype = \"faiss\"\npath = \"data/sample.faiss\"\n";
    vec![
        (
            "es",
            format!(
                "[source]\ntype = \"elasticsearch\"\nurl = \"http://elastic:EsUrlPass-7f3a@127.0.0.1:{port}\"\nindex = \"x\"\npassword = \"EsPassword-91bd\"\napi_key = \"EsApiKey-c02e\"\nbearer_token = \"EsBearer-55a1\"\n\n[sink]\ntype = \"files\"\npath = \"es-out\"\n"
            ),
        ),
        (
            "milvus-uri",
            format!(
                "{faiss}\n[sink]\ntype = \"milvus2\"\nuri = \"http://root:MvUriPass-3d9c@127.0.0.1:{port}\"\ncollection = \"c\"\n"
            ),
        ),
        (
            "milvus-token",
            format!(
                "{faiss}\n[sink]\ntype = \"milvus2\"\nuri = \"http://127.0.0.1:{port}\"\ntoken = \"MvToken-e8f0\"\ncollection = \"c\"\n"
            ),
        ),
        (
            "milvus-password",
            format!(
                "{faiss}\n[sink]\ntype = \"milvus2\"\nuri = \"http://127.0.0.1:{port}\"\nuser = \"root\"\npassword = \"${{VMIG_SECRETS_TEST_PASSWORD}}\"\ncollection = \"c\"\n"
            ),
        ),
        (
            "milvus-source",
            format!(
                "[source]\ntype = \"milvus2\"\nuri = \"http://127.0.0.1:{port}\"\nuser = \"root\"\npassword = \"MvPassword-4b6a\"\ncollection = \"c\"\n\n[sink]\ntype = \"files\"\npath = \"m-out\"\n"
            ),
        ),
        (
            "s3",
            format!(
                "{faiss}\n[sink]\ntype = \"files\"\npath = \"s3://bucket/out\"\n[sink.storage]\naws_access_key_id = \"AKIAEXAMPLE\"\naws_secret_access_key = \"S3Secret-a1b2c3\"\naws_session_token = \"S3Session-d4e5f6\"\naws_endpoint = \"http://127.0.0.1:{port}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\n"
            ),
        ),
    ]
}

struct Seen(Vec<(String, String)>);

impl Seen {
    /// Keeps what `route` answered.
    fn add(&mut self, route: impl Into<String>, text: impl Into<String>) {
        self.0.push((route.into(), text.into()));
    }

    /// No answer holds a secret.
    fn check(&self) {
        for (route, text) in &self.0 {
            for s in SECRETS {
                assert!(!text.contains(s), "`{s}` shows in {route}:\n{text}");
            }
        }
    }
}

async fn call(method: reqwest::Method, url: &str, body: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/toml")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_event_metric_or_stored_record_shows_a_secret() {
    std::env::set_var("VMIG_SECRETS_TEST_PASSWORD", "FromEnv-Secret-77aa");
    let root = common::sample_root();
    let data_root = root.path().to_path_buf();
    let common::Server {
        base,
        stop,
        task: server,
        ..
    } = common::start(|addr| ServeOptions {
        data_root: Some(data_root),
        allow_env: vec!["VMIG_SECRETS_TEST_PASSWORD".into()],
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;
    let port = closed_port();
    let mut seen = Seen(Vec::new());
    let mut accepted = Vec::new();
    for (name, job) in jobs(port) {
        let (status, text) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/plan"),
            Some(&job),
        )
        .await;
        seen.add(format!("POST /v1/plan ({name}): {status}"), text);
        let (status, text) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/jobs?name={name}"),
            Some(&job),
        )
        .await;
        if status == 201 {
            accepted.push(name);
        } else {
            assert_eq!(status, 400, "{name}: {text}");
        }
        seen.add(format!("POST /v1/jobs ({name}): {status}"), text);
    }
    // The jobs whose source is local were accepted (their sinks are only reached when they
    // run); the others were refused at plan time, their sources unreachable.
    assert_eq!(
        accepted,
        ["milvus-uri", "milvus-token", "milvus-password", "s3"]
    );

    // Every accepted job runs and fails (nothing listens), with an error that names the place
    // but no secret; each one's events end with that.
    for name in &accepted {
        let (status, text) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/jobs/{name}/events"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"state\":\"failed\""), "{name}: {text}");
        assert!(
            text.contains(&format!("127.0.0.1:{port}")),
            "{name}: {text}"
        );
        seen.add(format!("GET /v1/jobs/{name}/events"), text);
        let (_, text) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/jobs/{name}"),
            None,
        )
        .await;
        seen.add(format!("GET /v1/jobs/{name}"), text);
        let (status, text) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/jobs/{name}/verify"),
            None,
        )
        .await;
        assert_eq!(status, 201, "{text}");
        seen.add(format!("POST /v1/jobs/{name}/verify"), text);
    }
    for name in &accepted {
        let id = format!("{name}.verify");
        let (_, text) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/jobs/{id}/events"),
            None,
        )
        .await;
        assert!(text.contains("\"state\":\"failed\""), "{id}: {text}");
        seen.add(format!("GET /v1/jobs/{id}/events"), text);
        let (status, text) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/jobs/{name}/resume"),
            None,
        )
        .await;
        seen.add(format!("POST /v1/jobs/{name}/resume: {status}"), text);
    }
    for route in [
        "/v1/jobs",
        "/v1/jobs?state=failed",
        "/metrics",
        "/openapi.json",
        "/v1/plugins",
    ] {
        let (status, text) = call(reqwest::Method::GET, &format!("{base}{route}"), None).await;
        assert_eq!(status, 200, "{route}: {text}");
        seen.add(format!("GET {route}"), text);
    }
    // The stream of every job, up to the first keep-alive.
    let mut r = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while text.matches("event: job").count() < 2 * accepted.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen.add("GET /v1/events", text);
    drop(r);
    for name in &accepted {
        let (status, text) = call(
            reqwest::Method::DELETE,
            &format!("{base}/v1/jobs/{name}"),
            None,
        )
        .await;
        seen.add(format!("DELETE /v1/jobs/{name}: {status}"), text);
    }
    seen.check();
    assert!(seen.0.len() > 30, "{}", seen.0.len());

    // What the store keeps as the server's output (plans, errors, reports) is masked too; the
    // job text it keeps to resume is the job as sent (docs/serve.md says so).
    stop.cancel();
    server.await.unwrap().unwrap();
    let store = vmig::state::StateStore::open("sqlite://.vmig/state.db", root.path())
        .await
        .unwrap();
    let kept = store.submissions().await.unwrap();
    assert!(!kept.is_empty());
    let mut stored = Seen(Vec::new());
    for s in kept {
        let text = format!("{:?} {:?} {:?}", s.plan, s.error, s.report);
        stored.add(format!("stored {}", s.name), text);
    }
    stored.check();
}
