//! The status page (`GET /`) in a real headless Chromium, driven over the Chrome DevTools
//! Protocol: a wrong token is forgotten and asked for again; the token form; jobs submitted
//! through the API appear and update live until done at 100 %, with the rows the API reports;
//! the token is nowhere in the DOM nor in session storage but under its key; a job's view shows
//! its plan and partitions and cancels a running job by its button; a server without tokens
//! asks for none. Screenshots go to `$CARGO_TARGET_DIR/vmig-artefacts/`.
//!
//! Chromium comes from `scripts/chromium` (`VMIG_CHROMIUM`, else `/usr/bin/chromium`); without
//! it the test is skipped, loudly, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{ServeOptions, Tokens};

const TOKEN: &str = "browser-token-7f3a9c1e5b2d4086";

/// The Chromium to drive: `VMIG_CHROMIUM`, else Debian's.
fn chromium_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("VMIG_CHROMIUM").filter(|b| !b.is_empty()) {
        return Some(bin.into());
    }
    let debian = Path::new("/usr/bin/chromium");
    debian.exists().then(|| debian.to_path_buf())
}

/// A headless Chromium of this test: killed (its whole process group) when dropped, also when
/// the test fails.
struct Chromium {
    child: Child,
    /// Its profile; removed after the process is gone (fields drop after `drop`).
    profile: tempfile::TempDir,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Chromium's helpers (zygote, renderers) share the group the browser leads.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    fn start(bin: &Path) -> Chromium {
        use std::os::unix::process::CommandExt as _;
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1200,640",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Chromium { child, profile }
    }

    /// The browser's DevTools websocket URL, from `DevToolsActivePort` in its profile.
    fn devtools_url(&mut self) -> String {
        let file = self.profile.path().join("DevToolsActivePort");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromium exited ({status}) before it listened:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < until,
                "no DevToolsActivePort after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

/// A minimal Chrome DevTools Protocol client over the browser's websocket, talking to one
/// page through a flat session.
struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
    /// The page's exceptions and console messages, for failure messages.
    page_log: Vec<String>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut cdp = Cdp {
            ws,
            next_id: 0,
            session: None,
            page_log: Vec::new(),
        };
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        for domain in ["Page.enable", "Runtime.enable"] {
            cdp.call(domain, json!({})).await;
        }
        // `__visible(id)`: whether the element is rendered (not `hidden`, not styled away).
        cdp.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "window.__visible = (id) => document.getElementById(id).checkVisibility();"}),
        )
        .await;
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1200, "height": 640, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        cdp
    }

    /// Sends `method` and waits (at most 30 s) for its answer; events that come first are
    /// kept in `page_log` when they are the page's errors or console output.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            msg["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in 30 s"))
                .unwrap_or_else(|| panic!("{method}: the DevTools connection closed"))
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
            match answer["method"].as_str() {
                Some("Runtime.exceptionThrown") => self.page_log.push(format!(
                    "exception: {}",
                    answer["params"]["exceptionDetails"]
                )),
                Some("Runtime.consoleAPICalled") => self.page_log.push(format!(
                    "console.{}: {}",
                    answer["params"]["type"].as_str().unwrap_or_default(),
                    answer["params"]["args"]
                )),
                _ => {}
            }
        }
    }

    /// The value of the JavaScript expression `expr` in the page (promises awaited).
    async fn eval(&mut self, expr: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expr}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits (at most `limit`) until `expr` is true in the page.
    async fn wait_for(&mut self, what: &str, expr: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while self.eval(expr).await != json!(true) {
            if Instant::now() > until {
                let body = self.eval("document.body.innerText").await;
                panic!(
                    "waited {limit:?} for {what} ({expr}); the page shows:\n{}\npage log:\n{}",
                    body.as_str().unwrap_or_default(),
                    self.page_log.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "the page to load",
            "document.readyState === 'complete' && !!document.getElementById('conn')",
            Duration::from_secs(10),
        )
        .await;
    }

    /// A PNG of the page, written to `vmig-artefacts/<name>` in the target directory.
    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let height = self
            .eval("Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + 24)")
            .await
            .as_f64()
            .unwrap();
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": 1200, "height": height, "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let dir = target.join("vmig-artefacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// A TCP relay to a server, whose connections can be cut: a dropped network, as the page sees
/// it. Counts the connections it accepted.
struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let target: SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (count, tasks) = (Arc::clone(&accepted), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(relay);
            }
        });
        Relay {
            addr,
            accepted,
            conns,
            accept,
        }
    }

    /// Closes every connection relayed so far; new ones are relayed as before.
    fn cut(&self) {
        for relay in self.conns.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A server on a free loopback port; its address and the token that stops it.
async fn start(options: impl FnOnce(SocketAddr) -> ServeOptions) -> (String, CancellationToken) {
    let server = common::start(options).await;
    (server.base, server.stop)
}

/// Submits the sample job `id` writing `files` to `id/`, its `[pipeline]` table `pipeline`.
async fn submit(base: &str, id: &str, pipeline: &str) {
    let body = common::sample_job(id, pipeline);
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/jobs?name={id}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/toml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 201, "{id}: {}", r.text().await.unwrap());
}

async fn api_job(base: &str, id: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/jobs/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// What the list shows of job `id`: `null` without a row.
fn row_js(id: &str) -> String {
    format!(
        r#"(() => {{
  const tr = document.querySelector('tr[data-job="{id}"]');
  if (!tr) return null;
  const bar = tr.querySelector('progress[data-role="progress"]');
  const cell = (r) => tr.querySelector(`[data-role="${{r}}"]`);
  return {{
    state: cell('state').textContent,
    value: bar.hasAttribute('value') ? bar.value : null,
    max: bar.max,
    hidden: bar.hidden,
    percent: cell('percent').textContent,
    rows: cell('rows').textContent,
    rows_value: cell('rows').dataset.value,
    rate: cell('rate').textContent,
    eta: cell('eta').textContent,
    error: cell('error').textContent,
  }};
}})()"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_jobs_in_headless_chromium() {
    let Some(bin) = chromium_binary() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Chromium: VMIG_CHROMIUM is unset and /usr/bin/chromium does not exist; run scripts/chromium"
        );
        eprintln!(
            "SKIPPED: the status-page browser test: no Chromium (VMIG_CHROMIUM unset, no /usr/bin/chromium); run scripts/chromium"
        );
        return;
    };
    let root = common::sample_root();
    let root_path = root.path().to_path_buf();
    let (base, stop) = start(move |addr| ServeOptions {
        data_root: Some(root_path),
        max_jobs: 3,
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;
    let (open_base, open_stop) = start(|addr| ServeOptions {
        insecure_no_auth: true,
        ..ServeOptions::new(addr, Tokens::default())
    })
    .await;

    // The page: no token needed, no data in it, nothing it may load from elsewhere.
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    for external in ["://", "\"//", "'//", " src=", "@import", "url("] {
        let outside: Vec<&str> = html.lines().filter(|l| l.contains(external)).collect();
        assert!(outside.is_empty(), "{external}: {outside:?}");
    }

    // The browser reaches the server through a relay that can drop its connections.
    let relay = Relay::start(&base).await;
    let page_base = format!("http://{}", relay.addr);

    let mut chromium = Chromium::start(&bin);
    let url = chromium.devtools_url();
    let mut page = Cdp::connect(&url).await;
    let started = Instant::now();

    // A token the server does not accept is forgotten, and asked for again, saying so.
    page.navigate(&format!("{page_base}/")).await;
    page.wait_for(
        "the token form",
        "__visible('login') && !__visible('list')",
        Duration::from_secs(10),
    )
    .await;
    page.eval(
        "sessionStorage.setItem('vmig-token', 'not-the-token-0123456789'); location.reload(); true",
    )
    .await;
    page.wait_for(
        "the form again, with why",
        "document.readyState === 'complete' && __visible('login') \
         && document.getElementById('login-error').textContent.includes('did not accept') \
         && sessionStorage.getItem('vmig-token') === null",
        Duration::from_secs(10),
    )
    .await;

    // The token, entered once.
    page.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; \
         document.getElementById('login').requestSubmit(); true"
    ))
    .await;
    page.wait_for(
        "the job list",
        "!__visible('login') && __visible('list') \
         && __visible('empty')",
        Duration::from_secs(10),
    )
    .await;

    // Three jobs: `books` throttled to about 2.5 s (to be seen moving), `quick` at full speed,
    // `slow` throttled to 25 s, cancelled from its page below.
    submit(&base, "books", "batch_rows = 50\nmax_rows_per_second = 800").await;
    submit(&base, "slow", "batch_rows = 20\nmax_rows_per_second = 80").await;
    submit(&base, "quick", "").await;

    // The list follows `books` while it runs, and to the end: done, 100 %.
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen_moving = Vec::new();
    let last = loop {
        let row = page.eval(&row_js("books")).await;
        if row["state"] == "running" {
            if let Some(v) = row["value"].as_f64().filter(|v| *v > 0.0 && *v < 1.0) {
                seen_moving.push(v);
            }
        }
        if row["state"] == "done" && row["value"] == json!(1) {
            break row;
        }
        assert!(
            Instant::now() < until,
            "books not done at 100 % after 30 s: {row}\n{}",
            page.page_log.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !seen_moving.is_empty(),
        "the page never showed books running part-way: {last}"
    );
    let api = api_job(&base, "books").await;
    assert_eq!(api["state"], "done", "{api}");
    assert_eq!(api["rows_written"], 2000, "{api}");
    assert_eq!(
        last["rows_value"],
        api["rows_written"].to_string(),
        "{last}"
    );
    assert_eq!(
        last["rows"].as_str().unwrap().replace(',', ""),
        api["rows_written"].to_string(),
        "{last}"
    );
    assert_eq!(last["max"], 1, "{last}");
    assert_eq!(last["hidden"], false, "{last}");
    assert_eq!(last["percent"], "100 %", "{last}");
    assert_eq!(last["error"], "", "{last}");
    page.wait_for(
        "quick done",
        &format!(
            "(r => r && r.state === 'done' && r.value === 1 && r.rows_value === '2000')({})",
            row_js("quick")
        ),
        Duration::from_secs(30),
    )
    .await;
    let order = page
        .eval("[...document.querySelectorAll('#jobs tr')].map(tr => tr.dataset.job)")
        .await;
    assert_eq!(order, json!(["books", "slow", "quick"]), "as submitted");

    // The network drops: the page says so, and reconnects by itself.
    page.eval(
        "window.__conn = []; const conn = document.getElementById('conn'); \
         new MutationObserver(() => __conn.push(conn.textContent)) \
           .observe(conn, {childList: true, characterData: true, subtree: true}); true",
    )
    .await;
    let accepted = relay.accepted.load(Ordering::SeqCst);
    relay.cut();
    page.wait_for(
        "the page to reconnect after a drop",
        "(i => i >= 0 && __conn.slice(i).includes('live'))(__conn.findIndex(s => s.includes('reconnecting')))",
        Duration::from_secs(10),
    )
    .await;
    assert!(relay.accepted.load(Ordering::SeqCst) > accepted);

    // `slow` runs on, with its rate and ETA: the picture of the list.
    page.wait_for(
        "slow running with a rate and an ETA, the list following the event stream",
        &format!(
            "document.getElementById('conn').textContent === 'live' \
             && (r => r && r.state === 'running' && r.value > 0 && r.rate !== '—' && /\\d s$/.test(r.eta))({})",
            row_js("slow")
        ),
        Duration::from_secs(10),
    )
    .await;
    let path = page.screenshot("status-page.png").await;
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);

    // Every bar and field is labelled.
    let unlabelled = page
        .eval(
            "[...document.querySelectorAll('progress:not([aria-label]), input')] \
             .filter(e => e.tagName === 'PROGRESS' || !document.querySelector(`label[for='${e.id}']`)) \
             .map(e => e.outerHTML)",
        )
        .await;
    assert_eq!(unlabelled, json!([]));

    // The token is in session storage under its key, and nowhere else the page keeps things.
    let leaks = page
        .eval(&format!(
            r#"(() => {{
  const t = '{TOKEN}', leaks = [];
  if (document.documentElement.outerHTML.includes(t)) leaks.push('DOM');
  if (document.body.innerText.includes(t) || document.title.includes(t)) leaks.push('text');
  for (const i of document.querySelectorAll('input, textarea')) if (i.value.includes(t)) leaks.push('input ' + i.id);
  for (let k = 0; k < sessionStorage.length; k++) {{
    const key = sessionStorage.key(k);
    if (key !== 'vmig-token' && (key.includes(t) || sessionStorage.getItem(key).includes(t))) leaks.push('sessionStorage ' + key);
  }}
  for (let k = 0; k < localStorage.length; k++) leaks.push('localStorage ' + localStorage.key(k));
  if (document.cookie.includes(t)) leaks.push('cookie');
  if (location.href.includes(t)) leaks.push('URL');
  if (sessionStorage.getItem('vmig-token') !== t) leaks.push('the token is not kept under vmig-token');
  return leaks;
}})()"#
        ))
        .await;
    assert_eq!(leaks, json!([]), "the token leaked");

    // A running job's view: cancelled by its button, then resumable.
    page.eval("location.hash = '#/jobs/slow'; true").await;
    page.wait_for(
        "slow's view, running",
        "__visible('job') \
         && document.querySelector('#job [data-field=id]').textContent === 'slow' \
         && document.querySelector('#job [data-field=state]').textContent === 'running' \
         && !document.getElementById('cancel').disabled && document.getElementById('resume').disabled",
        Duration::from_secs(10),
    )
    .await;
    page.eval("document.getElementById('cancel').click(); true")
        .await;
    page.wait_for(
        "slow cancelled",
        "document.querySelector('#job [data-field=state]').textContent === 'cancelled' \
         && document.getElementById('cancel').disabled && !document.getElementById('resume').disabled",
        Duration::from_secs(15),
    )
    .await;
    let slow = api_job(&base, "slow").await;
    assert_eq!(slow["state"], "cancelled", "{slow}");
    let written = slow["rows_written"].as_u64().unwrap();
    assert!(written > 0 && written < 2000, "{slow}");

    // A finished job's view: its counts, plan and partitions as the API gives them.
    page.eval("location.hash = '#/jobs/books'; true").await;
    page.wait_for(
        "books' view",
        "document.querySelector('#job [data-field=id]').textContent === 'books' \
         && document.querySelector('#job [data-field=state]').textContent === 'done' \
         && document.querySelector('#job progress').value === 1",
        Duration::from_secs(10),
    )
    .await;
    let api = api_job(&base, "books").await;
    let shown = page
        .eval(
            r#"(() => ({
  plan: document.getElementById('plan').textContent,
  rows_written: document.querySelector('#job [data-field=rows_written]').textContent,
  submitted_at: document.querySelector('#job [data-field=submitted_at]').textContent,
  partitions: [...document.querySelectorAll('#partitions tr[data-partition]')].map(tr => ({
    id: tr.dataset.partition,
    state: tr.querySelector('[data-role=state]').textContent,
    rows_read: tr.querySelector('[data-role=rows_read]').textContent.replaceAll(',', ''),
  })),
}))()"#,
        )
        .await;
    assert_eq!(shown["rows_written"], "2,000", "{shown}");
    assert_eq!(shown["submitted_at"], api["submitted_at"], "{shown}");
    let plan: Value = serde_json::from_str(shown["plan"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("the plan shown is not JSON ({e}): {shown}\nAPI: {api}"));
    assert_eq!(plan, api["plan"], "the plan shown is not the API's");
    assert_eq!(plan["estimated_rows"], 2000, "{plan}");
    let partitions = api["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /v1/jobs/books has no partitions: {api}"));
    assert!(!partitions.is_empty(), "{api}");
    let want: Vec<Value> = partitions
        .iter()
        .map(|p| {
            json!({
                "id": p["id"].as_str().map_or_else(|| p["id"].to_string(), str::to_string),
                "state": p["state"],
                "rows_read": p["rows_read"].to_string(),
            })
        })
        .collect();
    assert_eq!(shown["partitions"], json!(want), "{shown}");
    page.screenshot("status-page-job.png").await;

    // Verified from its view: the page opens `books.verify`, which follows to its end, with
    // what the API says of it (its report, or why it failed).
    page.eval("document.getElementById('verify').click(); true")
        .await;
    page.wait_for(
        "books.verify to end",
        "location.hash === '#/jobs/books.verify' \
         && document.querySelector('#job [data-field=id]').textContent === 'books.verify' \
         && ['done', 'failed'].includes(document.querySelector('#job [data-field=state]').textContent)",
        Duration::from_secs(30),
    )
    .await;
    let api = api_job(&base, "books.verify").await;
    let shown = page
        .eval(
            r#"(() => ({
  state: document.querySelector('#job [data-field=state]').textContent,
  kind: document.querySelector('#job [data-field=kind]').textContent,
  of: document.querySelector('#job [data-field=of]').textContent,
  error: document.querySelector('#job [data-field=error]').textContent,
  report: __visible('report-box') ? JSON.parse(document.getElementById('report').textContent) : null,
  verify_button: __visible('verify'),
}))()"#,
        )
        .await;
    assert_eq!(shown["state"], api["state"], "{shown}\n{api}");
    assert_eq!(shown["kind"], "verify", "{shown}");
    assert_eq!(shown["of"], "books", "{shown}");
    assert_eq!(shown["report"], api["report"], "{shown}\n{api}");
    assert_eq!(
        shown["error"],
        api["error"].as_str().unwrap_or("—"),
        "{shown}\n{api}"
    );
    assert_eq!(shown["verify_button"], false, "{shown}");
    eprintln!("books.verify: {}, report {}", api["state"], api["report"]);

    // The list has every job, as it ended.
    page.eval("location.hash = '#/'; true").await;
    page.wait_for(
        "the list again",
        &format!(
            "__visible('list') && document.querySelectorAll('#jobs tr').length === 4 \
             && (r => r && r.state === 'cancelled')({})",
            row_js("slow")
        ),
        Duration::from_secs(10),
    )
    .await;

    // A server without tokens: the page asks for none.
    page.navigate(&format!("{open_base}/")).await;
    page.wait_for(
        "the open server's list, no form",
        "!__visible('login') && __visible('list')",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        page.page_log.iter().all(|l| !l.starts_with("exception")),
        "the page threw:\n{}",
        page.page_log.join("\n")
    );
    eprintln!("browser steps took {:?}", started.elapsed());
    drop(page);
    drop(chromium);
    drop(relay);
    stop.cancel();
    open_stop.cancel();
}
