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
