//! What the server's integration tests share: a server on a free loopback port, a data root
//! holding the shipped sample index, and the sample job's text.
// Each test crate includes this module and uses its own subset of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use vmig_serve::{serve_on, ServeError, ServeOptions};

/// A server started by [`start`].
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Cancelling it stops the server.
    pub stop: CancellationToken,
    /// The task serving: it ends once the server stopped its jobs.
    pub task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts a server with `options(addr)` on a free loopback port.
pub async fn start(options: impl FnOnce(SocketAddr) -> ServeOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_on(listener, options(addr), stop.clone()));
    Server {
        base: format!("http://{addr}"),
        addr,
        stop,
        task,
    }
}

/// A data root holding the shipped sample index as `data/sample.faiss` (2,000 rows).
pub fn sample_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("data")).unwrap();
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.faiss");
    std::fs::copy(sample, root.path().join("data/sample.faiss")).unwrap();
    root
}

/// The sample index into Parquet files under `out` (in the data root), with the `[pipeline]`
/// table `pipeline`, as TOML.
pub fn sample_job(out: &str, pipeline: &str) -> String {
    format!(
        "[source]\ntype = \"faiss\"\npath = \"data/sample.faiss\"\n\n[sink]\ntype = \"files\"\npath = \"{out}\"\n\n[pipeline]\n{pipeline}\n"
    )
}
