//! Issue #13's proof "Milvus 2.3.5 stopped and restarted during an insert migration: the job
//! completes, verify clean", and its other half: a server that stays down past the `[sink]
//! retry` deadline fails the run resumably, and the next `vmig migrate` resumes it.
//!
//! The test stops and starts a Milvus of its own — never the shared ones other tests use: a
//! third real Milvus 2.3.5 standalone (base port [`PORT`], data in `$VMIG_WORK/milvus-restart`,
//! the binaries `scripts/milvus` already extracted for the first instance), started and stopped
//! by `scripts/milvus` with `VMIG_MILVUS_PORT`/`VMIG_MILVUS_DIR`. It starts the instance when it
//! is not running and stops it when it ends, also when it fails. Without the installed binaries
//! (`scripts/milvus start` installs them) it is skipped loudly; with `CI=true` that is a
//! failure. Both cases run in one test, one after the other, so that the instance starts and
//! stops once per run of this file (a restarted 2.3.5 needs about 30 s before it can flush
//! again, see [`Milvus::settle`]).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{repo, sample};
use vmig_testing::process::output_text;

/// The dedicated instance's base port (it uses `PORT..=PORT + 11`).
const PORT: u16 = 19730;

/// The services' work directory: `VMIG_WORK` (set by `scripts/test` and `.ci/run`), else the
/// one holding `VMIG_MILVUS_PYTHON`'s venv (`services.env` names it), else the repository's
/// `.vmig-work`.
fn work_dir() -> PathBuf {
    if let Some(w) = std::env::var_os("VMIG_WORK").filter(|w| !w.is_empty()) {
        return PathBuf::from(w);
    }
    std::env::var_os("VMIG_MILVUS_PYTHON")
        .map(PathBuf::from)
        .and_then(|py| py.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| repo().join(".vmig-work"))
}

/// The dedicated Milvus instance.
struct Milvus {
    work: PathBuf,
    dir: PathBuf,
    python: PathBuf,
}

impl Milvus {
    /// The instance, when the Milvus 2.3.5 binaries and pymilvus are installed; otherwise
    /// `None` after a loud `SKIPPED` line (a failure when `CI=true`).
    fn find() -> Option<Milvus> {
        let work = work_dir();
        let binary = work.join("milvus/bin/milvus");
        let python = work.join("venv-milvus/bin/python");
        if binary.is_file() && python.is_file() {
            return Some(Milvus {
                dir: work.join("milvus-restart"),
                work,
                python,
            });
        }
        let why = format!(
            "the Milvus 2.3.5 binaries ({}) or pymilvus ({}) are not installed; `scripts/milvus start` installs them",
            binary.display(),
            python.display()
        );
        assert!(
            !vmig_testing::service::is_ci(),
            "CI=true but {why}, so the Milvus restart tests cannot run"
        );
        eprintln!("SKIPPED: {why}");
        None
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{PORT}")
    }

    /// Runs `scripts/milvus action` for this instance.
    fn script(&self, action: &str) {
        let o = Command::new(repo().join("scripts/milvus"))
            .arg(action)
            .env("VMIG_WORK", &self.work)
            .env("VMIG_MILVUS_PORT", PORT.to_string())
            .env("VMIG_MILVUS_DIR", &self.dir)
            .env_remove("VMIG_MILVUS_S3")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "scripts/milvus {action} (port {PORT}, {}): {}",
            self.dir.display(),
            output_text(&o)
        );
    }

    fn start(&self) {
        self.script("start");
    }

    fn stop(&self) {
        self.script("stop");
    }

    /// Runs `body` with pymilvus connected to this instance and returns its output.
    fn pymilvus(&self, body: &str) -> String {
        let script = format!(
            "from pymilvus import connections, utility, Collection\nconnections.connect(uri='{}', user='root', password='Milvus')\n{body}",
            self.uri()
        );
        vmig_testing::process::python(self.python.to_str().unwrap(), &script, &[] as &[&str])
    }

    /// Waits (at most 90 s) until the restarted server can flush `collection` again. Measured
    /// on 2.3.5: after a restart, `Flush` fails with `session not found->datanode-1: node not
    /// found` / `node not match` for about 30 s, until the coordinators drop the stopped data
    /// node's session (`common.session.ttl` = 30 s) — longer than the short retry deadline of
    /// the run that is resumed next, which would give up on its final flush.
    fn settle(&self, collection: &str) {
        let out = self.pymilvus(&format!(
            "import time\nc = Collection('{collection}')\nstart = time.time()\nwhile True:\n    try:\n        c.flush(timeout=10)\n        break\n    except Exception as e:\n        if time.time() - start > 90:\n            raise\n        time.sleep(1)\nprint(round(time.time() - start))"
        ));
        eprintln!("the restarted Milvus flushes again after {}s", out.trim());
    }
}

/// The instance while the test runs: started (if it was not running) when taken, stopped
/// when dropped — at the end of the test or while a failed test unwinds.
struct Running<'a>(&'a Milvus);

impl<'a> Running<'a> {
    fn start(milvus: &'a Milvus) -> Running<'a> {
        milvus.start();
        Running(milvus)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/milvus"))
            .arg("stop")
            .env("VMIG_WORK", &self.0.work)
            .env("VMIG_MILVUS_PORT", PORT.to_string())
            .env("VMIG_MILVUS_DIR", &self.0.dir)
            .status();
    }
}

fn vmig_cmd(args: &[&str]) -> Command {
    let mut c = common::vmig_cmd(args);
    c.env("VMIG_LOG", "info");
    c
}

/// A `vmig` run in the background whose standard error is collected as it comes.
struct Background {
    child: Child,
    stderr: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn spawn(mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let all = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            stderr,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits (at most two minutes) for a line of standard error that `wanted` accepts.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return,
                Ok(_) => {}
                Err(_) => panic!("vmig never logged {what}:\n{}", self.stderr()),
            }
        }
    }

    /// Waits until the run has written rows: the collection exists and inserts are flowing
    /// (the progress line `N of 2000 rows written`, logged every 5 s, with N > 0).
    fn wait_writing(&mut self) {
        self.wait_for("rows written", |line| {
            line.split(" of 2000 rows written")
                .next()
                .filter(|head| head.len() < line.len())
                .and_then(|head| head.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        });
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fails the test when the run has already ended: the outage must land mid-run.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "vmig ended ({status}) before {when}; the throttle is too fast for this machine:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits (at most `limit`) for the run to end and returns its output.
    fn finish(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("vmig did not end within {limit:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_end(&mut out, &mut stdout);
        }
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Output {
            status,
            stdout,
            stderr: self.stderr().into_bytes(),
        }
    }
}

/// `dir/job.toml`: the shipped sample (2000 rows, 64-d) inserted into `collection` of the
/// dedicated instance, 50 rows per batch at 150 rows/s (about 13 s of copying), retried by
/// `retry` (the `[sink.retry]` table's body).
fn job(dir: &Path, m: &Milvus, collection: &str, retry: &str) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"[source]
type = "faiss"
path = "{sample}"

[sink]
type = "milvus2"
uri = "{uri}"
user = "root"
password = "Milvus"
collection = "{collection}"
mode = "insert"
batch_bytes = "20KiB"
index = {{ type = "IVF_FLAT", params = {{ nlist = 16 }} }}
load = true

[sink.retry]
{retry}

[pipeline]
batch_rows = 50
max_rows_per_second = 150
"#,
            sample = sample().display(),
            uri = m.uri(),
        ),
    )
    .unwrap();
    path
}

/// `vmig verify --json` of `cfg`: every row of the source in the target with the same values
/// (vectors bit for bit), no key missing, extra or twice.
fn assert_verify_clean(cfg: &Path) {
    let o = vmig_cmd(&["verify", cfg.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    common::assert_verify_clean(&o, 2000);
}

/// The sink's retry warning (`vmig_core::retry`): the run met the outage.
const RETRYING: &str = "transient failure; retrying";

#[test]
fn milvus_stopped_and_restarted_during_insert_migrations() {
    let Some(m) = Milvus::find() else { return };
    let _running = Running::start(&m);
    back_within_the_retry_deadline_the_run_completes(&m);
    down_past_the_retry_deadline_the_run_fails_resumably_and_resumes(&m);
}

/// Starts `vmig migrate` of a new job (a collection named after `name`) whose inserts are
/// retried every second at most until `max_elapsed`, and stops Milvus once rows are being
/// written. Gives the job's directory, the collection, the job file and the running process.
fn stopped_while_inserting(
    m: &Milvus,
    name: &str,
    max_elapsed: &str,
) -> (tempfile::TempDir, String, PathBuf, Background) {
    let dir = tempfile::tempdir().unwrap();
    let collection = vmig_testing::service::unique(name);
    let cfg = job(
        dir.path(),
        m,
        &collection,
        &format!("max_attempts = 1000\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\nmax_elapsed = \"{max_elapsed}\""),
    );
    let mut run = Background::spawn(vmig_cmd(&[
        "migrate",
        cfg.to_str().unwrap(),
        "--json",
        "--progress",
        "log",
    ]));
    run.wait_writing();
    run.assert_running("Milvus was stopped");
    m.stop();
    (dir, collection, cfg, run)
}

/// Milvus stopped while rows are inserted and started again a few seconds later: the sink
/// retries (inserts while it is down, the final flush while the restarted server settles), the
/// run completes and verify is clean.
fn back_within_the_retry_deadline_the_run_completes(m: &Milvus) {
    // A deadline far longer than the outage and the settling after it; steps of at most 1 s,
    // so the run goes on within a second of the server's return.
    let (_dir, collection, cfg, mut run) = stopped_while_inserting(m, "restart_within", "2m");
    std::thread::sleep(Duration::from_secs(2));
    run.assert_running("Milvus was started again");
    m.start();
    let o = run.finish(Duration::from_secs(150));
    assert!(o.status.success(), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(RETRYING) && err.contains("operation=\"Milvus insert into"),
        "the inserts never met the outage:\n{}",
        output_text(&o)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], 2000, "{summary}");
    assert!(summary["resumed"].is_null(), "{summary}");
    assert_verify_clean(&cfg);
    m.pymilvus(&format!("utility.drop_collection('{collection}')"));
}

/// Milvus stopped while rows are inserted and left down past a 5 s retry deadline: the run
/// fails, saying the server could not be reached within the deadline and that the next `vmig
/// migrate` resumes; once Milvus is back, it does, and verify is clean.
fn down_past_the_retry_deadline_the_run_fails_resumably_and_resumes(m: &Milvus) {
    let (_dir, collection, cfg, run) = stopped_while_inserting(m, "restart_past", "5s");
    let cfg_arg = cfg.to_str().unwrap();
    let o = run.finish(Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let error = summary["error"].as_str().unwrap_or_default();
    // The request gave up at the deadline, saying why: the server could not be reached. (A
    // retried insert is sent as an upsert, so the last attempt may be either.)
    assert!(
        error.starts_with(&format!("writing to the sink: writing 50 rows to `{collection}`: gave up after "))
            && (error.contains("(the next retry would end after retry.max_elapsed = 5s): transient failure: Milvus Insert")
                || error.contains("(the next retry would end after retry.max_elapsed = 5s): transient failure: Milvus Upsert"))
            && error.contains("cannot reach"),
        "{}",
        output_text(&o)
    );
    // What the collection holds, and that the next run resumes.
    assert!(
        error.contains(&format!("\nLeft in the target: The collection milvus://127.0.0.1:{PORT}/default/{collection} was created by this job and holds "))
            && error.contains("It is kept. Run `vmig migrate` on the same job again to resume from the last checkpoint: rows sent after it are sent again as upserts, so none is duplicated."),
        "{}",
        output_text(&o)
    );
    assert!(
        err.contains(&format!("The run failed; its progress is saved, and once the cause below is fixed `vmig migrate {cfg_arg}` resumes it.")),
        "{}",
        output_text(&o)
    );

    m.start();
    m.settle(&collection);
    // Resumed at full speed: `[pipeline]` settings are not part of the job's identity.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("max_rows_per_second = 150\n", "")).unwrap();
    let o = vmig_cmd(&["migrate", cfg_arg, "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resuming job: "), "{}", output_text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["resumed"].is_object(), "{summary}");
    assert_verify_clean(&cfg);
    m.pymilvus(&format!("utility.drop_collection('{collection}')"));
}
