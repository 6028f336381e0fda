//! What the `vmig` binary's integration tests share: the binary, the shipped sample index, job
//! files, and the check of a clean `vmig verify` report.
// Each test crate includes this module and uses its own subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmig_testing::process::output_text;
use vmig_testing::service::MilvusServer;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped sample index (`examples/data/sample.faiss`: 2,000 rows of dimension 128).
pub fn sample() -> PathBuf {
    repo().join("examples/data/sample.faiss")
}

/// `vmig ARGS`, with the caller's `VMIG_LOG` removed (the binary's quiet default).
pub fn vmig_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmig"));
    c.args(args).env_remove("VMIG_LOG");
    c
}

/// [`vmig_cmd`] with the test Milvus's password in `VMIG_TEST_MILVUS_PASSWORD`, which the
/// tests' job files name (`password = "${VMIG_TEST_MILVUS_PASSWORD}"`).
pub fn vmig_milvus_cmd(args: &[&str], m: &MilvusServer) -> Command {
    let mut c = vmig_cmd(args);
    c.env("VMIG_TEST_MILVUS_PASSWORD", &m.password);
    c
}

/// Runs [`vmig_milvus_cmd`] to the end.
pub fn vmig_milvus(args: &[&str], m: &MilvusServer) -> Output {
    vmig_milvus_cmd(args, m).output().unwrap()
}

/// Writes `dir/<name>.toml` with `body` and returns its path.
pub fn write_job(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

/// Checks the output of `vmig verify JOB --json`: it succeeded, its status is `ok`, the source
/// and the target both hold `rows` rows, and no key is missing, extra, changed or twice in
/// either. Returns the report.
pub fn assert_verify_clean(o: &Output, rows: u64) -> serde_json::Value {
    assert!(o.status.success(), "{}", output_text(o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["status"], "ok", "{report}");
    for key in [
        "missing",
        "extra",
        "changed",
        "duplicate_in_source",
        "duplicate_in_target",
    ] {
        assert_eq!(report[key], 0, "{key}: {report}");
    }
    assert_eq!(report["source_rows"], rows, "{report}");
    assert_eq!(report["target_rows"], rows, "{report}");
    report
}

/// id → vector bits (column `vector`) of every row of the Parquet output under `dir`; panics on
/// an id seen twice.
pub fn parquet_rows(dir: &Path) -> BTreeMap<i64, Vec<u32>> {
    vmig_testing::compare::id_vector_bits(
        &vmig_testing::compare::parquet_dir_batches(dir),
        "vector",
    )
}

/// Migrates the `[source]` table `source` (its body) to Parquet files in `dir/<name>` with
/// `vmig migrate --state none` (job file `dir/<name>.toml`, environment `env` added) and gives
/// that directory; the run must succeed.
pub fn to_parquet(dir: &Path, name: &str, source: &str, env: &[(&str, &str)]) -> PathBuf {
    let out = dir.join(name);
    let job = write_job(
        dir,
        name,
        &format!(
            "[source]\n{source}\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
            out.display()
        ),
    );
    let mut c = vmig_cmd(&["migrate", job.to_str().unwrap(), "--state", "none"]);
    c.envs(env.iter().copied());
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    out
}

/// The shipped sample's 2,000 rows as an uninterrupted `vmig migrate --state none` writes them
/// to Parquet (under `dir/reference`): id → vector bits.
pub fn sample_rows(dir: &Path) -> BTreeMap<i64, Vec<u32>> {
    let source = format!("type = \"faiss\"\npath = \"{}\"", sample().display());
    let rows = parquet_rows(&to_parquet(dir, "reference", &source, &[]));
    assert_eq!(rows.len(), 2000);
    rows
}

/// The rows `vmig status JOB --json` (environment `env` added, for the job file's `${…}`) says
/// are committed (written and checkpointed) for the job (0 before its first checkpoint, or when
/// the state store cannot be read yet).
pub fn committed_rows(job: &Path, env: &[(&str, &str)]) -> u64 {
    let o = vmig_cmd(&["status", job.to_str().unwrap(), "--json"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v["rows_written"].as_u64())
        .unwrap_or(0)
}

/// Runs `vmig migrate JOB` (environment `env` added) and kills it with `SIGKILL` once the state
/// store has at least each of `kill_at` rows committed (one run per threshold, each resuming
/// the last), then runs it to the end. Returns the final run's `--json` summary, whose
/// `resumed.rows_written` must be more than 0.
pub fn migrate_killed_at(job: &Path, env: &[(&str, &str)], kill_at: &[u64]) -> serde_json::Value {
    let job_arg = job.to_str().unwrap();
    let cmd = || {
        let mut c = vmig_cmd(&["migrate", job_arg, "--json"]);
        c.envs(env.iter().copied());
        c
    };
    for &rows in kill_at {
        let killed = vmig_testing::process::kill_when(cmd(), || committed_rows(job, env) >= rows);
        assert_eq!(killed.status.code(), None, "{}", output_text(&killed));
        let now = committed_rows(job, env);
        assert!(now >= rows, "killed with {now} rows committed");
    }
    let o = cmd().output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        summary["resumed"]["rows_written"].as_u64().unwrap_or(0)
            >= kill_at.last().copied().unwrap_or(0),
        "{summary}"
    );
    summary
}
