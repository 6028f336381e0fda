//! Real-service endpoints for integration tests.
//!
//! The project's `scripts/` start each service and export its variables (see
//! `scripts/services.env`); `.ci/run` starts them all.
//!
//! | variable              | service                                   |
//! |-----------------------|-------------------------------------------|
//! | `VMIG_S3_ENDPOINT`    | S3 server (`scripts/s3 start`), e.g. `http://127.0.0.1:19100` |
//! | `VMIG_S3_ACCESS_KEY`  | its access key                            |
//! | `VMIG_S3_SECRET_KEY`  | its secret key                            |
//! | `VMIG_S3_BUCKET`      | a bucket that exists (`vmig-test`)        |
//! | `VMIG_PYTHON`         | a Python with faiss-cpu, numpy, pyarrow and schemathesis (`scripts/pyenv`) |
//! | `VMIG_MARIADB_URL`    | MariaDB (`scripts/mariadb start`): `mysql://vmig:vmigpass@127.0.0.1:13306/vmig`; the user may create databases named `vmig*` |
//! | `VMIG_POSTGRES_URL`   | PostgreSQL 15 (`scripts/postgres start`): `postgres://postgres@127.0.0.1:15432/postgres`; trust auth, the user may create databases |
//! | `VMIG_ES_URL`         | Elasticsearch-compatible server (`scripts/es start`) |
//! | `VMIG_OPENSEARCH_URL` | OpenSearch-compatible server (`scripts/es start`) |
//! | `VMIG_CHROMA_URL`     | the real Chroma 1.5.9 server (`scripts/chroma start`), e.g. `http://127.0.0.1:18000` |
//! | `VMIG_MILVUS_URI`, `VMIG_MILVUS_USER`, `VMIG_MILVUS_PASSWORD` | Milvus 2.x ([`milvus`]; user and password default to `root` / `Milvus`) |
//! | `VMIG_MILVUS_PYTHON`  | a Python with pymilvus ([`MilvusServer::pymilvus`]) |
//! | `VMIG_MILVUS_LITE_URI`, `VMIG_MILVUS_LITE_PYTHON` | milvus-lite 2.5.1 (`scripts/milvus-lite start`; [`milvus_lite`]): Milvus 2.5's storage engine in a reduced gRPC subset, no authentication, and a Python with pymilvus 2.5 |

/// Whether this run is CI (`CI=true`), where every service must be present.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reads the environment variable that points at a service.
///
/// Returns `None` — after printing a loud `SKIPPED` line — when it is unset on a developer's
/// machine.
///
/// # Panics
/// When the variable is unset and `CI=true`: CI starts every service, so a missing one is a
/// failure, never a silent skip.
pub fn endpoint(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if is_ci() => panic!(
            "{var} is not set but CI=true: {what} must be running (start it with the project's scripts/)"
        ),
        _ => {
            eprintln!("SKIPPED: {var} is not set, so the {what} test cannot run (see scripts/)");
            None
        }
    }
}

/// S3 connection details for tests.
#[derive(Debug, Clone)]
pub struct S3 {
    /// `http://host:port`.
    pub endpoint: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// An existing bucket.
    pub bucket: String,
}

impl S3 {
    /// The S3 server from the environment, or `None` (see [`endpoint`]).
    pub fn from_env() -> Option<S3> {
        let endpoint = endpoint("VMIG_S3_ENDPOINT", "S3 server")?;
        let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Some(S3 {
            endpoint,
            access_key: get("VMIG_S3_ACCESS_KEY", "test"),
            secret_key: get("VMIG_S3_SECRET_KEY", "testsecret"),
            bucket: get("VMIG_S3_BUCKET", "vmig-test"),
        })
    }

    /// Object-store options (`storage = {…}` in configs) for this server.
    pub fn storage_options(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", self.access_key.as_str()),
            ("aws_secret_access_key", self.secret_key.as_str()),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The Python interpreter with faiss-cpu, numpy, pyarrow and schemathesis, or `None` (see
/// [`endpoint`]).
pub fn python() -> Option<String> {
    endpoint(
        "VMIG_PYTHON",
        "Python (faiss-cpu, numpy, pyarrow, schemathesis)",
    )
}

/// The MariaDB URL (`mysql://user:password@host:port/db`), or `None` (see [`endpoint`]).
pub fn mariadb_url() -> Option<String> {
    endpoint("VMIG_MARIADB_URL", "MariaDB")
}

/// The PostgreSQL URL (`postgres://user@host:port/db`), or `None` (see [`endpoint`]).
pub fn postgres_url() -> Option<String> {
    endpoint("VMIG_POSTGRES_URL", "PostgreSQL")
}

/// The Elasticsearch-compatible server (`scripts/es start`: noida-db, reports 8.15), or `None`
/// (see [`endpoint`]).
pub fn elasticsearch() -> Option<String> {
    endpoint(
        "VMIG_ES_URL",
        "Elasticsearch-compatible server (scripts/es)",
    )
}

/// The OpenSearch-compatible server (`scripts/es start`: osmem-server, reports 3.x), or `None`
/// (see [`endpoint`]).
pub fn opensearch() -> Option<String> {
    endpoint(
        "VMIG_OPENSEARCH_URL",
        "OpenSearch-compatible server (scripts/es)",
    )
}

/// A name unique to this process and moment (`{prefix}_{pid}_{nanoseconds}`), for the
/// collections, indexes and object prefixes a test creates on a shared service.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// A Milvus 2.x server of the integration tests and its credentials: Milvus 2.3.5 ([`milvus`])
/// or milvus-lite 2.5.1 ([`milvus_lite`]).
#[derive(Debug, Clone)]
pub struct MilvusServer {
    /// `VMIG_MILVUS_URI` (e.g. `http://127.0.0.1:19530`) or `VMIG_MILVUS_LITE_URI`.
    pub uri: String,
    /// `VMIG_MILVUS_USER`, default `root`; empty for milvus-lite (no authentication).
    pub user: String,
    /// `VMIG_MILVUS_PASSWORD`, default `Milvus`; empty for milvus-lite.
    pub password: String,
    /// A Python with pymilvus (`VMIG_MILVUS_PYTHON` from `scripts/milvus`, or
    /// `VMIG_MILVUS_LITE_PYTHON` from `scripts/milvus-lite`), if set.
    pub python: Option<String>,
}

impl MilvusServer {
    /// Runs `body` with pymilvus's `connections`, `utility` and `Collection` imported and a
    /// connection to this server open; returns what it printed.
    ///
    /// # Panics
    /// When `VMIG_MILVUS_PYTHON` is not set, or the script fails (its standard error is in the
    /// message).
    pub fn pymilvus(&self, body: &str) -> String {
        let python = self
            .python
            .as_deref()
            .expect("VMIG_MILVUS_PYTHON / VMIG_MILVUS_LITE_PYTHON (pymilvus) is set by scripts/milvus / scripts/milvus-lite");
        let script = format!(
            "from pymilvus import connections, utility, Collection\nconnections.connect(uri='{}', user='{}', password='{}')\n{body}",
            self.uri, self.user, self.password
        );
        crate::process::python(python, &script, &[] as &[&str])
    }

    /// Drops `collection` when pymilvus is configured (a test's clean-up; without pymilvus the
    /// collection stays, under its [`unique`] name).
    pub fn drop_collection(&self, collection: &str) {
        if self.python.is_some() {
            self.pymilvus(&format!("utility.drop_collection('{collection}')"));
        }
    }
}

/// The Milvus 2.x server (`VMIG_MILVUS_URI`, `VMIG_MILVUS_USER`, `VMIG_MILVUS_PASSWORD`), or
/// `None` after a loud `SKIPPED` line when it is not configured ([`endpoint`]; fails on CI).
pub fn milvus() -> Option<MilvusServer> {
    let uri = endpoint("VMIG_MILVUS_URI", "Milvus 2.3.5")?;
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some(MilvusServer {
        uri,
        user: get("VMIG_MILVUS_USER", "root"),
        password: get("VMIG_MILVUS_PASSWORD", "Milvus"),
        python: std::env::var("VMIG_MILVUS_PYTHON")
            .ok()
            .filter(|p| !p.is_empty()),
    })
}

/// milvus-lite 2.5.1 (`VMIG_MILVUS_LITE_URI`, `VMIG_MILVUS_LITE_PYTHON`; `scripts/milvus-lite`):
/// the real Milvus 2.5 storage engine behind a reduced gRPC subset (no `GetVersion`, `Import` or
/// iterators; no authentication, so `user` and `password` are empty). `None` after a loud
/// `SKIPPED` line when it is not configured ([`endpoint`]; fails on CI).
pub fn milvus_lite() -> Option<MilvusServer> {
    let uri = endpoint("VMIG_MILVUS_LITE_URI", "milvus-lite 2.5.1")?;
    Some(MilvusServer {
        uri,
        user: String::new(),
        password: String::new(),
        python: std::env::var("VMIG_MILVUS_LITE_PYTHON")
            .ok()
            .filter(|p| !p.is_empty()),
    })
}

/// The shared test corpus `name` (a folder holding `manifest.json`, e.g. `realworld-es`): the
/// folder `env_var` names when set, else `../shared/<name>` next to the checkout, else
/// `/work/shared/<name>` (where the project's machines keep it, for a checkout elsewhere such
/// as a CI clone in /tmp). `what` names it in messages.
///
/// Returns `None` after a loud `SKIPPED` line when it is missing on a developer's machine.
///
/// # Panics
/// When it is missing and `CI=true`.
pub fn shared_corpus(name: &str, env_var: &str, what: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let candidates: Vec<PathBuf> = match std::env::var_os(env_var) {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => vec![
            // This crate is `crates/testing` of the checkout.
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared")
                .join(name),
            PathBuf::from("/work/shared").join(name),
        ],
    };
    if let Some(dir) = candidates
        .iter()
        .find(|d| d.join("manifest.json").is_file())
    {
        return Some(dir.clone());
    }
    let dir = candidates[0].display();
    assert!(!is_ci(), "{what} is missing at {dir} but CI=true");
    eprintln!("SKIPPED: {what} is not at {dir} (set {env_var}); it was not checked");
    None
}
