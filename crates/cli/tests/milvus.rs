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

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

use vmig_testing::service::unique;

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

fn drop_collection(m: &Milvus, collection: &str) {
    if let Some(py) = &m.python {
        let _ = Command::new(py)
            .arg("-c")
            .arg(format!(
                "from pymilvus import connections, utility\nconnections.connect(uri='{}', user='root', password='{}')\nutility.drop_collection('{collection}')",
                m.uri, m.password
            ))
            .output();
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
    let py = m
        .python
        .as_deref()
        .expect("VMIG_MILVUS_PYTHON (pymilvus) deletes the row");
    let del = Command::new(py)
        .arg("-c")
        .arg(format!(
            "from pymilvus import connections, Collection\nconnections.connect(uri='{}', user='root', password='{}')\nc = Collection('{collection}')\nc.delete('id in [1000060]')\nc.flush()",
            m.uri, m.password
        ))
        .output()
        .unwrap();
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
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
    let o = vmig(&["migrate", cfg.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", text(&o));
    let ok = vmig(&["verify", cfg.to_str().unwrap()], &env);
    assert!(ok.status.success(), "{}", text(&ok));
    let staged: Vec<_> = std::fs::read_dir(&stage)
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
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
