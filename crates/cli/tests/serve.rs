//! `vmig serve` as a process: tokens from VMIG_API_TOKEN and a token file, the routes over real
//! HTTP, a clean stop on SIGTERM (exit 0), and the refusals to start (no token; an open
//! server off loopback; a short token) with exit 2 and the token never printed.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::vmig_cmd;
use vmig_testing::process::output_text as text;

const TOKEN: &str = "cli-serve-token-0123456789";
const FILE_TOKEN: &str = "file-token-abcdefghijklmnop";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET of `url` with an optional bearer token: the status code (0: no answer).
fn status(url: &str, token: Option<&str>) -> u16 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    })
}

/// Waits until `/healthz` answers (at most 30 s).
fn wait_ready(base: &str, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(30);
    while status(&format!("{base}/healthz"), None) != 200 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("vmig serve exited early: {status}");
        }
        assert!(Instant::now() < until, "vmig serve never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_takes_tokens_from_the_environment_and_a_file_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# ops team\n{FILE_TOKEN}\n")).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = vmig_cmd(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--token-file",
        tokens.to_str().unwrap(),
    ])
    .env("VMIG_API_TOKEN", TOKEN)
    .env("VMIG_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_ready(&base, &mut child);
    assert_eq!(status(&format!("{base}/v1/plugins"), None), 401);
    assert_eq!(status(&format!("{base}/v1/plugins"), Some(TOKEN)), 200);
    assert_eq!(status(&format!("{base}/v1/plugins"), Some(FILE_TOKEN)), 200);
    assert_eq!(
        status(&format!("{base}/openapi.json"), Some("nope-nope-nope-nope")),
        401
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("vmig serve: listening"), "{all}");
    assert!(all.contains("2 bearer token(s)"), "{all}");
    assert!(all.contains("vmig serve: stopped by SIGTERM"), "{all}");
    assert!(!all.contains(TOKEN) && !all.contains(FILE_TOKEN), "{all}");
}

#[test]
fn serve_refuses_to_start_open_or_with_a_weak_token() {
    let o = vmig_cmd(&["serve", "--listen", "127.0.0.1:1"])
        .env_remove("VMIG_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "invalid `serve` configuration: no API token: set VMIG_API_TOKEN or `--token-file`"
        ),
        "{}",
        text(&o)
    );
    let o = vmig_cmd(&["serve", "--listen", "0.0.0.0:1", "--insecure-no-auth"])
        .env_remove("VMIG_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o)
            .contains("`--insecure-no-auth` is allowed only on a loopback address, not 0.0.0.0:1"),
        "{}",
        text(&o)
    );
    let o = vmig_cmd(&["serve", "--listen", "127.0.0.1:1"])
        .env("VMIG_API_TOKEN", "hunter2-short")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("VMIG_API_TOKEN: API token #1 is 13 characters long; use at least 16"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("hunter2"), "{}", text(&o));
}

/// `METHOD url` with the token and an optional TOML body: the status code and the JSON answer.
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/toml")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    })
}

/// Polls job `id` until `done(view)` (at most `secs` seconds); its last view.
fn wait_for(
    base: &str,
    id: &str,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, view) = call("GET", &format!("{base}/v1/jobs/{id}"), None);
        assert_eq!(status, 200, "{view}");
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < until, "job {id}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls job `id` until it stopped (at most `secs` seconds); its last view.
fn wait_end(base: &str, id: &str, secs: u64) -> serde_json::Value {
    wait_for(base, id, secs, |v| {
        !matches!(v["state"].as_str(), Some("queued" | "running"))
    })
}

/// `vmig serve` on `port` over the data root `root`, the test Milvus's password allowed as
/// `${VMIG_TEST_MILVUS_PASSWORD}`, once it answers.
fn serve_milvus(
    port: u16,
    root: &std::path::Path,
    m: &vmig_testing::service::MilvusServer,
) -> Child {
    let mut child = vmig_cmd(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-root",
        root.to_str().unwrap(),
        "--allow-env",
        "VMIG_TEST_MILVUS_PASSWORD",
    ])
    .env("VMIG_API_TOKEN", TOKEN)
    .env("VMIG_TEST_MILVUS_PASSWORD", &m.password)
    .env("VMIG_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}"), &mut child);
    child
}

/// SIGTERM to `child`; it must exit 0. Its output.
fn terminate(child: Child) -> String {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    text(&o)
}

#[test]
fn a_job_interrupted_by_sigterm_resumes_when_the_server_starts_again_and_lands_once_in_milvus() {
    let Some(m) = vmig_testing::service::milvus() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(common::sample(), root.path().join("sample.faiss")).unwrap();
    let collection = vmig_testing::service::unique("serve_restart");
    let job = format!(
        r#"[source]
type = "faiss"
path = "sample.faiss"

[sink]
type = "milvus2"
uri = "{}"
user = "root"
password = "${{VMIG_TEST_MILVUS_PASSWORD}}"
collection = "{collection}"
mode = "insert"
batch_bytes = "20KiB"
index = {{ type = "FLAT", metric = "L2" }}
load = true

[pipeline]
batch_rows = 50
flush_rows = 100
max_rows_per_second = 400
"#,
        m.uri
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first = serve_milvus(port, root.path(), &m);
    let (status, answer) = call("POST", &format!("{base}/v1/jobs?name=restart"), Some(&job));
    assert_eq!(status, 201, "{answer}");
    // Stopped once some rows are durable in Milvus, well before the end.
    let view = wait_for(&base, "restart", 60, |v| {
        v["rows_flushed"].as_u64() > Some(0)
    });
    assert_eq!(view["state"], "running", "{view}");
    let out = terminate(first);
    assert!(out.contains("vmig serve: stopped by SIGTERM"), "{out}");
    assert!(
        !out.contains(&m.password) || m.password == "Milvus",
        "{out}"
    );

    // A new server runs it again by itself, from its saved progress, to the end.
    let second = serve_milvus(port, root.path(), &m);
    let view = wait_end(&base, "restart", 120);
    assert_eq!(view["state"], "done", "{view}");
    let again = view["rows_written"].as_u64().unwrap();
    assert!(again > 0 && again < 2000, "resumed, not restarted: {view}");
    // The CLI sees the same job in the same store (the default one next to a job file in the
    // data root): two runs, the second resumed.
    let file = common::write_job(root.path(), "restart", &job);
    let status_out = vmig_cmd(&["status", file.to_str().unwrap(), "--json"])
        .env("VMIG_TEST_MILVUS_PASSWORD", &m.password)
        .output()
        .unwrap();
    assert!(status_out.status.success(), "{}", text(&status_out));
    let runs: serde_json::Value = serde_json::from_slice(&status_out.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");
    assert_eq!(runs["runs"][1]["resumed"], true, "{runs}");

    // Verified over HTTP, row by row; and Milvus's count(*) (which counts a key twice if it
    // is there twice) is the source's.
    let (status, answer) = call("POST", &format!("{base}/v1/jobs/restart/verify"), None);
    assert_eq!(status, 201, "{answer}");
    let view = wait_end(&base, "restart.verify", 120);
    assert_eq!(view["state"], "done", "{view}");
    for (key, want) in [
        ("status", serde_json::json!("ok")),
        ("source_rows", 2000.into()),
        ("target_rows", 2000.into()),
        ("missing", 0.into()),
        ("extra", 0.into()),
        ("changed", 0.into()),
        ("duplicate_in_target", 0.into()),
    ] {
        assert_eq!(view["report"][key], want, "{key}: {view}");
    }
    if m.python.is_some() {
        let out = m.pymilvus(&format!(
            "c = Collection('{collection}')\nprint(c.query(expr='', output_fields=['count(*)'], consistency_level='Strong')[0]['count(*)'])"
        ));
        assert_eq!(out.trim(), "2000", "count(*) of {collection}");
    }
    terminate(second);
    m.drop_collection(&collection);
}

#[test]
fn an_elasticsearch_index_migrated_and_verified_over_http_into_milvus() {
    let Some(m) = vmig_testing::service::milvus() else {
        return;
    };
    let Some(es) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = vmig_testing::service::unique("serve_es").to_lowercase();
    let docs = (0..600u32).map(|i| {
        let v: Vec<String> = (0..8)
            .map(|d| format!("{}", (i * 8 + d) as f32 / 7.0))
            .collect();
        (
            format!("d{i}"),
            format!(
                "{{\"n\":{i},\"tag\":\"t{}\",\"v\":[{}]}}",
                i % 5,
                v.join(",")
            ),
        )
    });
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vmig_testing::es::create_and_load(
            &es,
            &index,
            &vmig_testing::es::small_index(8),
            docs,
        ));
    let root = tempfile::tempdir().unwrap();
    let collection = vmig_testing::service::unique("serve_es");
    let job = format!(
        "[source]\ntype = \"elasticsearch\"\nurl = \"{es}\"\nindex = \"{index}\"\nslices = 2\nbatch_size = 100\n\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"root\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nindex = {{ type = \"FLAT\", metric = \"L2\" }}\nload = true\n",
        m.uri
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = serve_milvus(port, root.path(), &m);
    let (status, answer) = call("POST", &format!("{base}/v1/jobs?name=es"), Some(&job));
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["plan"]["estimated_rows"], 600, "{answer}");
    let view = wait_end(&base, "es", 120);
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["rows_written"], 600, "{view}");
    assert_eq!(
        view["partitions"].as_array().map(Vec::len),
        Some(2),
        "{view}"
    );
    let (status, answer) = call("POST", &format!("{base}/v1/jobs/es/verify"), None);
    assert_eq!(status, 201, "{answer}");
    let view = wait_end(&base, "es.verify", 120);
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["report"]["status"], "ok", "{view}");
    assert_eq!(view["report"]["target_rows"], 600, "{view}");
    terminate(server);
    m.drop_collection(&collection);
    let url = format!("{es}/{index}");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::Client::new().delete(url).send().await })
        .unwrap();
}
