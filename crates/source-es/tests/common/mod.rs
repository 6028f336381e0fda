//! Shared by this crate's integration tests: loading seeded indices into the stand-ins (cached
//! across runs when the document count matches) and reading a source completely.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use vmig_core::registry::{parse_source, BuildContext};
use vmig_core::{Result, Source};
// Links the plugin so its registration survives (dtolnay/inventory#7).
use vmig_source_es as _;

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Documents in the cached vector index.
pub const BIG_DOCS: usize = 100_000;
/// Dimensions of its vectors.
pub const BIG_DIM: usize = 128;

/// The vector of document `i` of the big index: seeded, so every test can rebuild it.
pub fn big_vector(i: usize, dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0xE5_0000 + i as u64);
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Document `i` of the big index.
pub fn big_doc(i: usize, dim: usize) -> Value {
    // `{}` prints an f32's shortest round-trip decimal, so the text parses back to the same bits.
    let v: Vec<String> = big_vector(i, dim).iter().map(|f| format!("{f}")).collect();
    let text = format!(r#"{{"n":{i},"tag":"t{}","v":[{}]}}"#, i % 7, v.join(","));
    serde_json::from_str(&text).unwrap()
}

/// Held while one test checks or loads a shared index: tests of one binary run in parallel
/// threads (and under nextest in parallel processes), and one that finds an index half-loaded
/// by another would otherwise delete it under the other's reads. A directory is the lock
/// (`create_dir` is atomic across processes); one older than ten minutes is a dead test's.
struct LoadLock(std::path::PathBuf);

impl LoadLock {
    async fn acquire(base: &str, index: &str) -> LoadLock {
        let server: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = std::env::temp_dir().join(format!("vmig-test-load-{server}-{index}.lock"));
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return LoadLock(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(&path);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for LoadLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Creates `index` with `body` and loads `docs` (`(id, source JSON text)`) unless it already
/// holds exactly that many documents.
pub async fn ensure_index(
    base: &str,
    index: &str,
    body: Value,
    n: usize,
    doc: impl Fn(usize) -> (String, String),
) {
    let _lock = LoadLock::acquire(base, index).await;
    let c = http();
    let count = c
        .get(format!("{base}/{index}/_count"))
        .send()
        .await
        .unwrap();
    if count.status().is_success() {
        let v: Value = count.json().await.unwrap();
        if v["count"].as_u64() == Some(n as u64) {
            return;
        }
        c.delete(format!("{base}/{index}")).send().await.unwrap();
    }
    vmig_testing::es::create_and_load(base, index, &body, (0..n).map(doc)).await;
}

/// The big vector index (`BIG_DOCS` × `BIG_DIM`, 2 shards) on an Elasticsearch-style server.
pub async fn ensure_big_es(base: &str) -> &'static str {
    let index = "vmig_es_big128";
    let body = json!({
        "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
        "mappings": { "properties": {
            "n": { "type": "long" },
            "tag": { "type": "keyword" },
            "v": { "type": "dense_vector", "dims": BIG_DIM, "index": true, "similarity": "l2_norm" }
        }}
    });
    ensure_index(base, index, body, BIG_DOCS, |i| {
        (format!("d{i}"), big_doc(i, BIG_DIM).to_string())
    })
    .await;
    index
}

/// Builds a source of plugin `plugin` from `config`.
pub async fn source(plugin: &str, config: Value) -> Result<Box<dyn Source>> {
    parse_source(plugin, config)?
        .build(&BuildContext::default())
        .await
}

/// Reads every partition (the conformance kit's reader, which checks each batch's schema) and
/// returns all batches.
pub async fn read_all(source: &dyn Source, batch_rows: usize) -> Result<Vec<RecordBatch>> {
    Ok(vmig_testing::conformance::read_all(source, batch_rows)
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

#[allow(unused_imports)]
pub use vmig_testing::conformance::{open_partition, read_partition};

/// Unique names for what a test creates (re-exported for the test files using `common::unique`).
#[allow(unused_imports)]
pub use vmig_testing::service::unique;

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
