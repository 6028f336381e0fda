//! Resumable runs of the `vmig` binary on the shipped sample index (2,000 rows): a stopped or
//! killed `vmig migrate` resumes from its state store, a finished or changed job is refused
//! until `--restart`, and the output after any number of interruptions is every row exactly
//! once.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn vmig(args: &[&str]) -> Output {
    vmig_cmd(args).output().unwrap()
}

use common::{parquet_rows, sample, sample_rows, vmig_cmd};
use vmig_testing::process::output_text as text;

/// Writes `dir/job.toml`: the sample index into Parquet files under `dir/out`, with `pipeline`
/// as the `[pipeline]` table and `sink_extra` added to `[sink]`.
fn job(dir: &Path, pipeline: &str, sink_extra: &str) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n{sink_extra}\n\n[pipeline]\n{pipeline}\n",
            sample().display(),
            dir.join("out").display()
        ),
    )
    .unwrap();
    path
}

/// 2000 rows at 400 rows/s, a flush every 200: five seconds, so a signal lands mid-run.
const SLOW: &str = "batch_rows = 100\nflush_rows = 200\nmax_rows_per_second = 400";

/// Checks that `out` holds exactly the committed output: a manifest listing each file once,
/// totalling 2000 rows, and no run directory or lock left behind.
fn assert_clean_output(out: &Path) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let text = manifest.to_string();
    let files: Vec<String> = manifest["files"]
        .as_array()
        .or_else(|| manifest["units"].as_array())
        .unwrap_or_else(|| panic!("manifest without a file list: {text}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut unique = files.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        files.len(),
        "a file is listed twice: {files:?}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".vmig"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn a_stopped_run_resumes_and_the_output_is_every_row_once() {
    let want = sample_rows(tempfile::tempdir().unwrap().path());
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), SLOW, "");
    let mut c = vmig_cmd(&[
        "migrate",
        cfg.to_str().unwrap(),
        "--json",
        "--progress",
        "log",
    ]);
    c.env("VMIG_LOG", "info");
    let o = vmig_testing::process::signal_after(c, "Started", Duration::from_millis(1500), "TERM");
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "Its progress is saved: `vmig migrate {}` resumes it.",
            cfg.display()
        )),
        "{}",
        text(&o)
    );

    // `vmig status` shows the stopped run and what it saved.
    let s = vmig(&["status", cfg.to_str().unwrap(), "--json"]);
    assert!(s.status.success(), "{}", text(&s));
    let status: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(status["job"], "job", "{status}");
    assert_eq!(status["status"], "cancelled", "{status}");
    let saved = status["rows_written"].as_u64().unwrap();
    assert!(saved > 0 && saved < 2000, "{status}");
    // Each saved row holds an Int64 id and `dim` float32s, per partition and in all.
    let dim = want.values().next().unwrap().len() as u64;
    let row_bytes = 8 + 4 * dim;
    assert_eq!(status["bytes_written"], saved * row_bytes, "{status}");
    for p in status["partitions"].as_array().unwrap() {
        assert_eq!(
            p["bytes_written"],
            p["rows_written"].as_u64().unwrap() * row_bytes,
            "{status}"
        );
    }
    // Paced at 400 rows/s: the average rate of the saved progress is below that, and not 0.
    let rate = status["rows_per_second"].as_f64().unwrap();
    assert!(rate > 50.0 && rate <= 420.0, "{status}");

    // Resume at full speed: [pipeline] settings are not part of the job's identity.
    let cfg = job(dir.path(), "batch_rows = 100\nflush_rows = 200", "");
    let o = vmig(&["migrate", cfg.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["resumed"]["rows_written"], saved, "{summary}");
    assert_eq!(summary["rows_written"].as_u64().unwrap(), 2000 - saved);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resuming job: "), "{}", text(&o));

    assert_eq!(parquet_rows(&dir.path().join("out")), want);
    assert_clean_output(&dir.path().join("out"));

    // Finished: refused until --restart.
    let o = vmig(&["migrate", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: job `job` already finished (run ")
            && err.contains("`vmig migrate --restart` runs it again from the start"),
        "{}",
        text(&o)
    );
    let s = vmig(&["status", cfg.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&s.stdout);
    assert!(
        out.contains("cancelled") && out.contains("done") && out.contains(", resumed"),
        "{}",
        text(&s)
    );
}

#[test]
fn a_changed_job_is_refused_naming_what_changed_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), SLOW, "");
    let o = vmig_testing::process::signal_after(
        {
            let mut c = vmig_cmd(&["migrate", cfg.to_str().unwrap(), "--progress", "log"]);
            c.env("VMIG_LOG", "info");
            c
        },
        "Started",
        Duration::from_millis(1000),
        "INT",
    );
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    // Another output format: the sink changed.
    let cfg = job(dir.path(), SLOW, "format = \"json\"");
    let o = vmig(&["migrate", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: job `job` changed since its last run ([sink] differ from what ")
            && err.contains(
                "so that run's progress does not apply; `vmig migrate --restart` starts this job over"
            ),
        "{}",
        text(&o)
    );
    // --restart removes what the stopped run left and writes everything.
    let cfg = job(dir.path(), "", "format = \"json\"");
    let o = vmig(&["migrate", cfg.to_str().unwrap(), "--restart", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], 2000, "{summary}");
    assert!(summary["resumed"].is_null(), "{summary}");
    assert_clean_output(&dir.path().join("out"));
}

#[test]
fn without_a_state_store_a_stop_leaves_nothing_and_restart_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = job(dir.path(), SLOW, "");
    let o = vmig(&[
        "migrate",
        cfg.to_str().unwrap(),
        "--state",
        "none",
        "--restart",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "`--restart` needs a state store to forget; without one (`--state none`) every run starts from the beginning"
        ),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join(".vmig").exists());
}

/// kill -9 at seeded random instants — before the state store exists, while the target is
/// prepared, mid-copy, during the commit — then a last run to the end: the output is every
/// row of an uninterrupted run, once.
#[test]
fn killed_at_random_instants_the_job_resumes_to_exactly_the_same_rows() {
    let want = sample_rows(tempfile::tempdir().unwrap().path());
    let dir = tempfile::tempdir().unwrap();
    // 2000 rows at 250 rows/s with a checkpoint every 50 rows: eight seconds of copying, more
    // than twenty kills within 0.8 s of their start can get through.
    let cfg = job(
        dir.path(),
        "batch_rows = 25\nflush_rows = 50\nmax_rows_per_second = 250\ncheckpoint_interval = \"1s\"",
        "",
    );
    let cfg_arg = cfg.to_str().unwrap().to_string();
    let killed = vmig_testing::process::kill_until_done(
        || {
            let mut c = vmig_cmd(&["migrate", &cfg_arg, "--json", "--progress", "log"]);
            c.env("VMIG_LOG", "info");
            c
        },
        20,
        Duration::from_millis(800),
        13,
    );
    assert!(killed.last.status.success(), "{}", text(&killed.last));
    assert_eq!(killed.kills, 20);
    assert_eq!(parquet_rows(&dir.path().join("out")), want);
    assert_clean_output(&dir.path().join("out"));
    // `vmig verify` reads the source again and the output back: nothing missing, extra,
    // changed or twice.
    common::assert_verify_clean(&vmig(&["verify", &cfg_arg, "--json"]), 2000);
}

/// Writes `dir/job.toml`: the sample index into `out`, the state in `state_url` under the job
/// name `name` (`[state]`).
fn shared_job(dir: &Path, out: &Path, state_url: &str, name: &str, pipeline: &str) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[state]\nurl = \"{state_url}\"\nname = \"{name}\"\n\n[pipeline]\n{pipeline}\n",
            sample().display(),
            out.display()
        ),
    )
    .unwrap();
    path
}

/// A run stopped on one "machine" (a job file in one directory) is resumed from another job
/// file in another directory through the shared state store at `url`; `--state` wins over the
/// job file's `[state] url`; a second process is refused while the first runs; the store's
/// password never shows.
fn shared_state_resumes_elsewhere(url: &str, password: Option<&str>) {
    let want = sample_rows(tempfile::tempdir().unwrap().path());
    let (first, second, out_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let out = out_dir.path().join("out");
    let name = vmig_testing::service::unique("shared");
    let cfg = shared_job(first.path(), &out, url, &name, SLOW);
    let cfg_arg = cfg.to_str().unwrap().to_string();

    let mut c = vmig_cmd(&["migrate", &cfg_arg, "--progress", "log"]);
    c.env("VMIG_LOG", "info");
    let mut running = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has started its run, then keep draining its log.
    let mut log = std::io::BufReader::new(running.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Started") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
        assert!(n > 0, "it ended before starting");
    }
    let drained = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
        rest
    });
    // While it runs, a second process on the same job (from the other directory) is refused.
    let other = shared_job(second.path(), &out, url, &name, "");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let busy = loop {
        let o = vmig(&["migrate", other.to_str().unwrap()]);
        if o.status.code() == Some(1)
            && String::from_utf8_lossy(&o.stderr).contains("is being run by another vmig process")
        {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains(&format!("job `{name}` is being run")),
        "{}",
        text(&busy)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let pid = running.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.wait().unwrap();
    let stopped = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: drained.join().unwrap().into_bytes(),
    };
    assert_eq!(stopped.status.code(), Some(143), "{}", text(&stopped));

    // The other directory's job file names a state store that does not exist: `--state` wins.
    let other = shared_job(
        second.path(),
        &out,
        "sqlite:///nonexistent/dir/state.db",
        &name,
        "",
    );
    let s = vmig(&["status", other.to_str().unwrap(), "--state", url, "--json"]);
    assert!(s.status.success(), "{}", text(&s));
    let status: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(status["status"], "cancelled", "{status}");
    let o = vmig(&["migrate", other.to_str().unwrap(), "--state", url, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let saved = summary["resumed"]["rows_written"].as_u64().unwrap();
    assert!(saved > 0, "{summary}");
    assert_eq!(summary["rows_written"].as_u64().unwrap(), 2000 - saved);
    assert_eq!(parquet_rows(&out), want);
    assert_clean_output(&out);
    if let Some(password) = password {
        for o in [&busy, &stopped, &o, &s] {
            let all = text(o);
            assert!(!all.contains(password), "the password shows: {all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_shared_in_postgres_resumes_from_another_job_file() {
    let Some(base) = vmig_testing::service::postgres_url() else {
        return;
    };
    let db = vmig_testing::database::TempDatabase::create(&base, "vmig_cli_state").await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        shared_state_resumes_elsewhere(&url, None);
    })
    .await
    .unwrap();
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_shared_in_mariadb_resumes_from_another_job_file() {
    let Some(base) = vmig_testing::service::mariadb_url() else {
        return;
    };
    let db = vmig_testing::database::TempDatabase::create(&base, "vmig_cli_state").await;
    let password = url::Url::parse(&db.url)
        .unwrap()
        .password()
        .map(str::to_string);
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    tokio::task::spawn_blocking(move || {
        shared_state_resumes_elsewhere(&url, password.as_deref());
    })
    .await
    .unwrap();
    db.drop_now().await;
}
