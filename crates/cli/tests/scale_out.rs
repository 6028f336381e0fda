//! Several `vmig migrate` workers on one job (#13, docs/scale-out.md): three worker processes
//! share a Faiss → Milvus insert job of 16 partitions (the sample IVF index's lists) through a PostgreSQL state store (the real
//! PostgreSQL of `scripts/postgres`, a database of its own) with a 3 s lease; one is killed
//! with `SIGKILL` while it holds partitions. The other two take its partitions over, replay its
//! unconfirmed window as upserts, and one of them finishes the job (index, load) once. `vmig
//! verify` then finds no missing, extra, changed or duplicate key, and the collection read back
//! holds the sample index's rows bit for bit. Skips loudly without Milvus or PostgreSQL; fails
//! under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    assert_verify_clean, parquet_rows, sample, sample_rows, vmig_milvus as vmig,
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
    fn start(job: &str, m: &MilvusServer) -> Worker {
        let mut c = vmig_cmd(&["migrate", job, "--json", "--progress", "log"], m);
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

#[test]
fn three_workers_one_killed_finish_the_job_exactly_once() {
    let Some(m) = milvus() else { return };
    let Some(pg) = postgres_url() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(&pg, "vmig_scale"));
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_scale_out");
    let name = unique("scale_out");
    // 2000 rows in 16 partitions (inverted lists); each worker writes at most 150 rows/s, so the job
    // takes several seconds and the killed worker dies holding partitions.
    let job = write_job(
        dir.path(),
        "shared",
        &format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\npartition_rows = 200\n\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"insert\"\nindex = {{ type = \"FLAT\" }}\nload = true\n\n[pipeline]\nbatch_rows = 25\nflush_rows = 100\nmax_rows_per_second = 150\ncheckpoint_interval = \"1s\"\n\n[state]\nurl = \"{}\"\nname = \"{name}\"\nlease = \"3s\"\n",
            sample().display(),
            m.uri,
            m.user,
            db.url
        ),
    );
    let job_arg = job.to_str().unwrap().to_string();
    let started = Instant::now();
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(&job_arg, &m)).collect();
    // Kill the second worker with SIGKILL 1.5 s after it claimed its first partition.
    let mut workers = workers.into_iter();
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

    let (code1, out1, err1) = first.wait(Duration::from_secs(90));
    let (code3, out3, err3) = third.wait(Duration::from_secs(90));
    assert_eq!(code1, Some(0), "{err1}");
    assert_eq!(code3, Some(0), "{err3}");
    assert!(started.elapsed() < Duration::from_secs(100));
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
    let o = vmig(&["status", &job_arg, "--json"], &m);
    assert!(o.status.success(), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["workers"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["finished_by_a_worker"], true, "{status}");
    assert_eq!(status["partitions_done"], 16, "{status}");
    for w in status["workers"].as_array().unwrap() {
        assert_eq!(w["holds"], serde_json::json!([]), "{status}");
    }
    // A fourth worker is refused: the job is finished.
    let o = vmig(&["migrate", &job_arg], &m);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already finished"), "{}", text(&o));

    assert_verify_clean(&vmig(&["verify", &job_arg, "--json"], &m), 2000);

    // The collection read back equals the sample index, ids and vectors bit for bit.
    let back = dir.path().join("back");
    let read_back = write_job(
        dir.path(),
        "back",
        &format!(
            "[source]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
            m.uri,
            m.user,
            back.display()
        ),
    );
    let o = vmig(
        &["migrate", read_back.to_str().unwrap(), "--state", "none"],
        &m,
    );
    assert!(o.status.success(), "{}", text(&o));
    // The rows of the collection's `_default` partition are in that folder.
    let (got, want) = (
        parquet_rows(&back.join("_default")),
        sample_rows(dir.path()),
    );
    assert_eq!(want.len(), 2000);
    assert_eq!(got.len(), 2000);
    assert!(got == want, "the collection's rows differ from the index's");

    m.drop_collection(&collection);
    rt.block_on(db.drop_now());
}
