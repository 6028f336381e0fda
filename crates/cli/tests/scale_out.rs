//! Several `vmig migrate` workers on one job (#13, docs/scale-out.md): three worker processes
//! share a Faiss job of 16 partitions (the sample IVF index's lists) through a PostgreSQL state
//! store (the real PostgreSQL of `scripts/postgres`, a database of its own) with a 3 s lease;
//! one is killed with `SIGKILL` while it holds partitions. The other two take its partitions
//! over and one of them finishes the job once. Each sink mode that can share a job is run:
//! Milvus insert (the dead worker's unconfirmed window replayed as upserts; index and load
//! once), Milvus bulk import (the files workers left staged imported by the finisher, each once)
//! and the `files` sink (every worker's tagged files in one manifest). `vmig verify` then finds
//! no missing, extra, changed or duplicate key, and the output read back holds the sample
//! index's rows bit for bit. Skips loudly without Milvus or PostgreSQL; fails under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    assert_verify_clean, parquet_rows, sample, sample_rows, to_parquet, vmig_milvus as vmig,
    vmig_milvus_cmd as vmig_cmd, write_job,
};
use vmig_testing::database::TempDatabase;
use vmig_testing::process::output_text as text;
use vmig_testing::service::{milvus, postgres_url, unique, MilvusServer};

/// A running worker whose stderr is collected line by line.
struct Worker {
    child: std::process::Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start(job: &str, m: Option<&MilvusServer>) -> Worker {
        let args = ["migrate", job, "--json", "--progress", "log"];
        let mut c = match m {
            Some(m) => vmig_cmd(&args, m),
            None => common::vmig_cmd(&args),
        };
        c.env("VMIG_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Worker {
            child,
            stderr,
            reader,
        }
    }

    fn said(&self, what: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(what))
    }

    /// Waits for the process (at most `limit`); its exit code, stdout and stderr.
    fn wait(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "worker still running after {limit:?}:\n{}",
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        self.reader.join().unwrap();
        let stderr = self.stderr.lock().unwrap().join("\n");
        (status.code(), stdout, stderr)
    }
}

/// What three workers of one job, one of them killed, left: the job file, the two survivors'
/// stderr, and the job's scratch directory.
struct Shared {
    dir: tempfile::TempDir,
    job: String,
    survivors: [String; 2],
}

/// Runs three workers of the job whose `[sink]` table is `sink` (`dir` stands for the scratch
/// directory in it), state in PostgreSQL `state`, kills the second 1.5 s after it claimed its
/// first partition, and checks what every sink mode must show: both survivors exit 0 with
/// `status = ok`, one took partitions over, exactly one finished the job, `vmig status` shows
/// three workers holding nothing and 16 partitions done, and a fourth worker is refused.
fn three_workers(sink: &str, pipeline: &str, state: &str, m: Option<&MilvusServer>) -> Shared {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("scale_out");
    // 2000 rows in 16 partitions (inverted lists); each worker writes at most 150 rows/s, so the job
    // takes several seconds and the killed worker dies holding partitions.
    let job = write_job(
        dir.path(),
        "shared",
        &format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\npartition_rows = 200\n\n[sink]\n{}\n\n[pipeline]\nbatch_rows = 25\nmax_rows_per_second = 150\n{pipeline}\n\n[state]\nurl = \"{state}\"\nname = \"{name}\"\nlease = \"3s\"\n",
            sample().display(),
            sink.replace("{dir}", &dir.path().display().to_string()),
        ),
    );
    let job = job.to_str().unwrap().to_string();
    let started = Instant::now();
    let mut workers = (0..3).map(|_| Worker::start(&job, m));
    let first = workers.next().unwrap();
    let mut victim = workers.next().unwrap();
    let third = workers.next().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !victim.said("claiming partitions") {
        assert!(
            Instant::now() < until,
            "the worker never started:\n{}",
            victim.stderr.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    victim.child.kill().unwrap();
    let (code, _, victim_err) = victim.wait(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal: {victim_err}");

    let (code1, out1, err1) = first.wait(Duration::from_secs(120));
    let (code3, out3, err3) = third.wait(Duration::from_secs(120));
    assert_eq!(code1, Some(0), "{err1}");
    assert_eq!(code3, Some(0), "{err3}");
    assert!(started.elapsed() < Duration::from_secs(130));
    // The survivors took the killed worker's partitions over.
    assert!(
        err1.contains("whose lease expired") || err3.contains("whose lease expired"),
        "no takeover:\n{err1}\n---\n{err3}"
    );
    // Exactly one of them finished the job; the other ended its part.
    let finishers = [&err1, &err3]
        .iter()
        .filter(|e| e.contains("this worker finishes the job"))
        .count();
    assert_eq!(finishers, 1, "{err1}\n---\n{err3}");
    for out in [&out1, &out3] {
        let summary: serde_json::Value = serde_json::from_str(out).unwrap();
        assert_eq!(summary["status"], "ok", "{summary}");
    }

    // Status: three workers, none holding anything, the job finished by a worker.
    let status_cmd = |args: &[&str]| match m {
        Some(m) => vmig(args, m),
        None => common::vmig_cmd(args).output().unwrap(),
    };
    let o = status_cmd(&["status", &job, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["workers"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["finished_by_a_worker"], true, "{status}");
    assert_eq!(status["partitions_done"], 16, "{status}");
    for w in status["workers"].as_array().unwrap() {
        assert_eq!(w["holds"], serde_json::json!([]), "{status}");
    }
    // A fourth worker is refused: the job is finished.
    let o = status_cmd(&["migrate", &job]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already finished"), "{}", text(&o));
    Shared {
        dir,
        job,
        survivors: [err1, err3],
    }
}

/// Reads `collection` back to Parquet and checks it holds the sample index's rows, ids and
/// vectors bit for bit.
fn assert_collection_is_the_sample(m: &MilvusServer, collection: &str, dir: &Path) {
    let source = format!(
        "type = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"",
        m.uri, m.user
    );
    let back = to_parquet(
        dir,
        "back",
        &source,
        &[("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())],
    );
    // The rows of the collection's `_default` partition are in that folder.
    let (got, want) = (parquet_rows(&back.join("_default")), sample_rows(dir));
    assert_eq!(got.len(), 2000);
    assert!(got == want, "the collection's rows differ from the index's");
}

#[test]
fn three_workers_one_killed_finish_the_job_exactly_once() {
    let Some(m) = milvus() else { return };
    let Some(pg) = postgres_url() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(&pg, "vmig_scale"));
    let collection = unique("cli_scale_out");
    let sink = format!(
        "type = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"insert\"\nindex = {{ type = \"FLAT\" }}\nload = true",
        m.uri, m.user
    );
    let run = three_workers(
        &sink,
        "flush_rows = 100\ncheckpoint_interval = \"1s\"",
        &db.url,
        Some(&m),
    );
    assert_verify_clean(&vmig(&["verify", &run.job, "--json"], &m), 2000);
    assert_collection_is_the_sample(&m, &collection, run.dir.path());
    m.drop_collection(&collection);
    rt.block_on(db.drop_now());
}

/// Milvus bulk import: every worker stages its own files (named with its worker tag) and
/// imports them at its flushes; the finisher imports what the others left staged — the dead
/// worker's last files and the other survivor's last flush — asking Milvus first, and the
/// stage directory is left empty.
#[test]
fn three_workers_one_killed_share_a_bulk_import_job() {
    let Some(m) = milvus() else { return };
    let Some(pg) = postgres_url() else { return };
    let Some(stage) =
        vmig_testing::service::endpoint("VMIG_MILVUS_STAGE", "Milvus 2.3.5 import directory")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(&pg, "vmig_scale_bulk"));
    let collection = unique("cli_scale_bulk");
    let stage = Path::new(&stage).join(&collection);
    let sink = format!(
        "type = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"bulk\"\nstage = \"{}\"\nindex = {{ type = \"FLAT\" }}\nload = true",
        m.uri,
        m.user,
        stage.display()
    );
    let run = three_workers(
        &sink,
        "flush_rows = 150\ncheckpoint_interval = \"1s\"",
        &db.url,
        Some(&m),
    );
    assert!(
        run.survivors
            .iter()
            .any(|e| e.contains("importing the files other workers left staged")),
        "the finisher imported nothing of the others:\n{}",
        run.survivors.join("\n---\n")
    );
    assert_verify_clean(&vmig(&["verify", &run.job, "--json"], &m), 2000);
    assert_collection_is_the_sample(&m, &collection, run.dir.path());
    let left: Vec<_> = std::fs::read_dir(&stage)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staged files left behind: {left:?}");
    // The test's own stage directory, empty now (remove_dir refuses a non-empty one): the
    // stage is shared by every test run on this machine.
    let _ = std::fs::remove_dir(&stage);
    m.drop_collection(&collection);
    rt.block_on(db.drop_now());
}

/// The `files` sink: every worker writes its own units (named with its worker tag) into the
/// job's run directory; the finisher lists the units every worker's checkpoint names in one
/// manifest, and what the killed worker wrote after its last checkpoint goes with the run
/// directory.
#[test]
fn three_workers_one_killed_share_a_files_job() {
    let Some(pg) = postgres_url() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(&pg, "vmig_scale_files"));
    let run = three_workers(
        "type = \"files\"\npath = \"{dir}/out\"\nmax_file_size = \"64KiB\"",
        "flush_rows = 100\ncheckpoint_interval = \"1s\"",
        &db.url,
        None,
    );
    let out = run.dir.path().join("out");
    let o = common::vmig_cmd(&["verify", &run.job, "--json"])
        .output()
        .unwrap();
    assert_verify_clean(&o, 2000);
    let (got, want) = (parquet_rows(&out), sample_rows(run.dir.path()));
    assert_eq!(got.len(), 2000);
    assert!(got == want, "the files' rows differ from the index's");
    // Only the listed files, the manifest, and files of at least two workers (tags).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["total_rows"], 2000, "{manifest}");
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["path"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json")
        .collect();
    present.sort();
    assert_eq!(present, listed);
    let tags: std::collections::BTreeSet<&str> = listed
        .iter()
        .map(|p| p.split('-').nth(1).unwrap())
        .collect();
    assert!(tags.len() >= 2, "{listed:?}");
    rt.block_on(db.drop_now());
}

/// A worker of a `files` job stopped by SIGTERM keeps what its checkpoint names (exit 143); a
/// run of the same job without `[state] lease` is refused (the job's files are spread over its
/// workers' records, which only a worker's finish gathers); a new worker continues the job
/// through the job's lock and finishes it: every row once.
#[test]
fn a_stopped_shared_files_job_is_continued_only_by_a_worker() {
    let Some(pg) = postgres_url() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(&pg, "vmig_scale_stop"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let name = unique("scale_stop");
    let body = |lease: &str| {
        format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\npartition_rows = 200\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n\n[pipeline]\nbatch_rows = 25\nflush_rows = 100\nmax_rows_per_second = 400\n\n[state]\nurl = \"{}\"\nname = \"{name}\"\n{lease}",
            sample().display(),
            out.display(),
            db.url
        )
    };
    let job = write_job(dir.path(), "worker", &body("lease = \"3s\"\n"));
    let single = write_job(dir.path(), "single", &body(""));
    let job = job.to_str().unwrap();
    let o = vmig_testing::process::signal_after(
        {
            let mut c = common::vmig_cmd(&["migrate", job]);
            c.env("VMIG_LOG", "info");
            c
        },
        "claiming partitions",
        Duration::from_millis(1500),
        "TERM",
    );
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "of this worker and the other workers' files of this job shared between workers"
        ),
        "{stderr}"
    );
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".vmig.lock")).unwrap()).unwrap();
    assert_eq!(lock["shared"], true, "{lock}");

    let o = common::vmig_cmd(&["migrate", single.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "job `{name}` is shared between workers (1 recorded in "
        )) && text(&o).contains("so only a worker continues it: run it with `--worker` (or `[state] lease`), or start it over with `vmig migrate --restart`"),
        "{}",
        text(&o)
    );

    let o = common::vmig_cmd(&["migrate", job]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_verify_clean(
        &common::vmig_cmd(&["verify", job, "--json"])
            .output()
            .unwrap(),
        2000,
    );
    let (got, want) = (parquet_rows(&out), sample_rows(dir.path()));
    assert!(got == want, "the files' rows differ from the index's");
    assert!(!out.join(".vmig.lock").exists());
    rt.block_on(db.drop_now());
}
