//! `vmig migrate` and `vmig verify` into the real Milvus 2.3.5 started by `scripts/milvus`
//! (skipped loudly on a developer machine without it; mandatory when `CI=true`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Milvus {
    uri: String,
    password: String,
    stage: String,
    python: Option<String>,
}

fn milvus() -> Option<Milvus> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match std::env::var("VMIG_MILVUS_URI") {
        Ok(uri) if !uri.is_empty() => Some(Milvus {
            uri,
            password: std::env::var("VMIG_MILVUS_PASSWORD").unwrap_or_else(|_| "Milvus".into()),
            stage: std::env::var("VMIG_MILVUS_STAGE").unwrap_or_default(),
            python: std::env::var("VMIG_MILVUS_PYTHON").ok(),
        }),
        _ if ci => {
            panic!("VMIG_MILVUS_URI is not set but CI=true: scripts/milvus start must run first")
        }
        _ => {
            eprintln!(
                "SKIPPED: VMIG_MILVUS_URI is not set; start Milvus with scripts/milvus start"
            );
            None
        }
    }
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.faiss")
}

fn vmig(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmig"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

use vmig_testing::process::output_text as text;

use vmig_testing::service::unique;

/// Job options for inserts slow enough (small requests, 400 rows/s) that a signal lands after
/// some requests were acknowledged and before the end.
const SLOW_INSERTS: &str = "mode = \"insert\"\nbatch_bytes = \"20KiB\"\n\n[pipeline]\nbatch_rows = 50\nmax_rows_per_second = 400\n";

/// `vmig migrate JOB --progress log --state none` plus `extra` arguments, with the test
/// Milvus's password in the environment: a command to stop with a signal.
fn stoppable_migrate(m: &Milvus, job: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmig"));
    c.args(["migrate", job.to_str().unwrap()])
        .args(extra)
        .args(["--progress", "log", "--state", "none"])
        .env("VMIG_TEST_MILVUS_PASSWORD", &m.password)
        .env_remove("VMIG_LOG");
    c
}

/// A job file: the shipped sample into `collection`, the password from the environment.
fn job(dir: &Path, m: &Milvus, collection: &str, extra: &str) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"[source]
type = "faiss"
path = "{}"

[sink]
type = "milvus2"
uri = "{}"
user = "root"
password = "${{VMIG_TEST_MILVUS_PASSWORD}}"
collection = "{collection}"
if_exists = "drop"
index = {{ type = "IVF_FLAT", params = {{ nlist = 16 }} }}
load = true
{extra}
"#,
            sample().display(),
            m.uri
        ),
    )
    .unwrap();
    path
}

/// Runs `body` with pymilvus connected to `m` (`VMIG_MILVUS_PYTHON`) and returns its output.
fn pymilvus(m: &Milvus, body: &str) -> String {
    let py = m
        .python
        .as_deref()
        .expect("VMIG_MILVUS_PYTHON (pymilvus) is set by scripts/milvus");
    let script = format!(
        "from pymilvus import connections, utility, Collection\nconnections.connect(uri='{}', user='root', password='{}')\n{body}",
        m.uri, m.password
    );
    vmig_testing::process::python(py, &script, &[] as &[&str])
}

fn drop_collection(m: &Milvus, collection: &str) {
    if m.python.is_some() {
        pymilvus(m, &format!("utility.drop_collection('{collection}')"));
    }
}

#[test]
fn insert_then_verify_then_catch_a_deleted_row() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_insert");
    let cfg = job(dir.path(), &m, &collection, "mode = \"insert\"");
    let env = [("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())];

    let o = vmig(&["migrate", cfg.to_str().unwrap(), "--json"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], 2000);

    let ok = vmig(&["verify", cfg.to_str().unwrap(), "--json"], &env);
    assert!(ok.status.success(), "{}", text(&ok));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["target_rows"], 2000);

    // Delete one row on the server; verify must fail and name it.
    pymilvus(
        &m,
        &format!("c = Collection('{collection}')\nc.delete('id in [1000060]')\nc.flush()"),
    );
    let bad = vmig(&["verify", cfg.to_str().unwrap()], &env);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("1 missing") && err.contains("id = 1000060: Missing"),
        "{err}"
    );
    drop_collection(&m, &collection);
}

#[test]
fn bulk_import_then_verify() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_bulk");
    let stage = Path::new(&m.stage).join(&collection);
    let cfg = job(
        dir.path(),
        &m,
        &collection,
        &format!("mode = \"bulk\"\nstage = \"{}\"", stage.display()),
    );
    let env = [("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())];
    // The plan says which import path the server's version picks, and why.
    let plan = vmig(&["plan", cfg.to_str().unwrap()], &env);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains(
            "sink: bulk import through gRPC `Import`, one staged file per call: `bulk_api = \"auto\"` and the target is Milvus v2.3.5-lite (before 2.4)"
        ),
        "{}",
        text(&plan)
    );
    let o = vmig(&["migrate", cfg.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", text(&o));
    // `bulk_api = "auto"` (the default) takes gRPC `Import` on Milvus 2.3, and says why.
    let log = text(&o);
    let line = log
        .lines()
        .find(|l| l.contains("bulk import path"))
        .unwrap_or_else(|| panic!("no `bulk import path` line in: {log}"));
    assert!(
        line.contains("grpc")
            && line.contains(
                "`bulk_api = \\\"auto\\\"` and the target is Milvus v2.3.5-lite (before 2.4)"
            ),
        "{line}"
    );
    let ok = vmig(&["verify", cfg.to_str().unwrap()], &env);
    assert!(ok.status.success(), "{}", text(&ok));
    let staged: Vec<_> = std::fs::read_dir(&stage)
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
    // The test's own stage directory, empty now (remove_dir refuses a non-empty one): the
    // stage is shared by every test run on this machine.
    let _ = std::fs::remove_dir(&stage);
    drop_collection(&m, &collection);
}

#[test]
fn unreachable_server_and_bad_password_fail_clearly() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let down = Milvus {
        uri: "http://127.0.0.1:1".into(),
        password: m.password.clone(),
        stage: String::new(),
        python: None,
    };
    let cfg = job(dir.path(), &down, "never", "");
    let o = vmig(
        &["migrate", cfg.to_str().unwrap()],
        &[("VMIG_TEST_MILVUS_PASSWORD", "x")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("127.0.0.1:1"),
        "{}",
        text(&o)
    );

    let cfg = job(dir.path(), &m, "never", "");
    let secret = "not-the-Pa55word";
    let o = vmig(
        &["migrate", cfg.to_str().unwrap()],
        &[("VMIG_TEST_MILVUS_PASSWORD", secret)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains(secret), "the password leaked: {err}");
}

/// Rows in `collection` after a flush (`None`: it does not exist), through pymilvus.
fn stored_rows(m: &Milvus, collection: &str) -> Option<u64> {
    let out = pymilvus(
        m,
        &format!("if utility.has_collection('{collection}'):\n    c = Collection('{collection}')\n    c.flush()\n    print(c.num_entities)\nelse:\n    print('none')"),
    );
    let s = out.trim();
    (s != "none").then(|| s.parse().unwrap())
}

/// A Faiss flat index of 100 × 8-d vectors whose row 0 holds a NaN, written by faiss-cpu.
fn faiss_with_nan(dir: &Path) -> PathBuf {
    let python = vmig_testing::service::python().expect("VMIG_PYTHON (faiss-cpu) writes the index");
    let path = dir.join("nan.faiss");
    vmig_testing::process::python(
        &python,
        "import sys, faiss, numpy as np\nx = np.random.default_rng(1).random((100, 8), dtype='float32')\nx[0, 3] = np.nan\ni = faiss.IndexFlatL2(8)\ni.add(x)\nfaiss.write_index(i, sys.argv[1])",
        &[&path],
    );
    path
}

#[test]
fn a_source_error_before_the_first_row_leaves_the_target_as_it_was() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env = [("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())];
    let nan = faiss_with_nan(dir.path());
    let point_at = |cfg: &Path, source: &Path| {
        let text = std::fs::read_to_string(cfg).unwrap();
        let text = text.replace(
            &sample().display().to_string(),
            &source.display().to_string(),
        );
        std::fs::write(
            cfg,
            text.replace("index = {", "# index = {")
                .replace("load = true", ""),
        )
        .unwrap();
    };

    // A new collection is not created when the first batch fails.
    let fresh = unique("cli_nan_fresh");
    let cfg = job(dir.path(), &m, &fresh, "");
    point_at(&cfg, &nan);
    let o = vmig(
        &[
            "migrate",
            cfg.to_str().unwrap(),
            "--json",
            "--state",
            "none",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("NaN"), "{msg}");
    assert!(
        msg.contains("Nothing was written to") && msg.contains("the collection was not created"),
        "{msg}"
    );
    assert_eq!(
        stored_rows(&m, &fresh),
        None,
        "the failed run created `{fresh}`"
    );

    // `if_exists = "drop"` keeps the old collection until the first batch is ready.
    let kept = unique("cli_nan_kept");
    let good = job(dir.path(), &m, &kept, "");
    let o = vmig(&["migrate", good.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", text(&o));
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad = job(&bad_dir, &m, &kept, "");
    point_at(&bad, &nan);
    let o = vmig(&["migrate", bad.to_str().unwrap(), "--state", "none"], &env);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "The existing collection `{kept}` was not dropped and is as it was."
        )),
        "{err}"
    );
    let ok = vmig(&["verify", good.to_str().unwrap(), "--json"], &env);
    assert!(
        ok.status.success(),
        "the old collection changed: {}",
        text(&ok)
    );
    drop_collection(&m, &kept);
}

#[test]
fn sigterm_during_inserts_says_exactly_what_the_collection_holds() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_sigterm");
    // Small requests, 400 rows/s: the signal lands after some requests were acknowledged.
    let cfg = job(dir.path(), &m, &collection, SLOW_INSERTS);
    let c = stoppable_migrate(&m, &cfg, &["--json"]);
    let o = vmig_testing::process::signal_after(
        c,
        "Started",
        std::time::Duration::from_secs(2),
        "TERM",
    );
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "cancelled", "{v}");
    let left = v["left"][0].as_str().unwrap().to_string();
    assert!(
        left.contains(&format!("/{collection} was created by this run and holds ")),
        "{left}"
    );
    assert!(
        left.contains("mode = \\\"upsert\\\"") || left.contains("mode = \"upsert\""),
        "{left}"
    );
    let acked: u64 = left
        .split(" holds ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {left}"));
    assert!(
        acked > 0 && acked < 2000,
        "the signal should land mid-run: {left}"
    );
    assert_eq!(
        stored_rows(&m, &collection),
        Some(acked),
        "the report does not match the collection: {left}"
    );
    drop_collection(&m, &collection);
}

#[test]
fn if_exists_drop_replaces_the_collection_only_when_the_run_completes() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env = [("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())];
    let collection = unique("cli_replace");
    let first = job(dir.path(), &m, &collection, "mode = \"insert\"");
    let o = vmig(&["migrate", first.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", text(&o));
    // Mark the first copy: one row deleted, so a replacement is visible as 2000 rows again.
    pymilvus(
        &m,
        &format!("c = Collection('{collection}')\nc.delete('id in [1000060]')\nc.flush()"),
    );
    let replacements = format!(
        "print(sorted(c for c in utility.list_collections() if c.startswith('{collection}__vmig_')))"
    );

    // A replacing run stopped mid-way leaves the old collection exactly as it was.
    let slow_dir = dir.path().join("slow");
    std::fs::create_dir(&slow_dir).unwrap();
    let slow = job(&slow_dir, &m, &collection, SLOW_INSERTS);
    let c = stoppable_migrate(&m, &slow, &[]);
    let o =
        vmig_testing::process::signal_after(c, "Started", std::time::Duration::from_secs(2), "INT");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "The collection `{collection}` that existed before is untouched"
        )) && err.contains("which was dropped again"),
        "{err}"
    );
    let bad = vmig(&["verify", first.to_str().unwrap()], &env);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let report = String::from_utf8_lossy(&bad.stderr);
    assert!(
        report.contains("1 missing") && report.contains("id = 1000060: Missing"),
        "the old collection changed: {report}"
    );
    assert_eq!(pymilvus(&m, &replacements).trim(), "[]");

    // A completed replacing run swaps the new collection in under the old name (`--restart`:
    // this job finished once already).
    let o = vmig(
        &["migrate", first.to_str().unwrap(), "--json", "--restart"],
        &env,
    );
    assert!(o.status.success(), "{}", text(&o));
    let ok = vmig(&["verify", first.to_str().unwrap(), "--json"], &env);
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(pymilvus(&m, &replacements).trim(), "[]");
    drop_collection(&m, &collection);
}
#[test]
fn credentials_in_the_uri_are_used_and_never_shown() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_uri_auth");
    let cfg = job(dir.path(), &m, &collection, "mode = \"insert\"");
    // The same job with the credentials only in the URI: `http://root:${…}@host:port`.
    let with_auth = m
        .uri
        .replacen("://", "://root:${VMIG_TEST_MILVUS_PASSWORD}@", 1);
    let body = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!(
            "uri = \"{}\"\nuser = \"root\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"",
            m.uri
        ),
        &format!("uri = \"{with_auth}\""),
    );
    assert!(body.contains("@") && !body.contains("user ="), "{body}");
    std::fs::write(&cfg, body).unwrap();
    let secret = format!("root:{}@", m.password);
    let env = [("VMIG_TEST_MILVUS_PASSWORD", m.password.as_str())];

    let o = vmig(&["migrate", cfg.to_str().unwrap(), "--json", "-vv"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let plan = vmig(&["plan", cfg.to_str().unwrap()], &env);
    assert!(plan.status.success(), "{}", text(&plan));
    for out in [&o, &plan] {
        assert!(!text(out).contains(&secret), "{}", text(out));
    }
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("\"uri\":\"http://***@"),
        "{}",
        text(&plan)
    );
    drop_collection(&m, &collection);
}
