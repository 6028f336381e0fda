//! Test helpers: collections created and filled through Chroma's own HTTP API v2, and the
//! source's batches turned back into rows for row-by-row comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use vmig_source_chroma::{ChromaSource, ChromaSourceConfig};

pub use vmig_testing::chroma::{add, assert_rows_eq, batch_rows, count, recreate, url, Row};

fn base(url: &str) -> String {
    vmig_testing::chroma::collections(url)
}

/// The id of an existing collection.
pub async fn collection_id(url: &str, name: &str) -> String {
    let v: Value = reqwest::get(format!("{}/{name}", base(url)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Every row as Chroma's own `get` returns it (optionally filtered), in its order.
pub async fn get_all(url: &str, id: &str, filter: Option<Value>) -> Vec<Row> {
    let http = reqwest::Client::new();
    let mut body = json!({"include": ["embeddings", "metadatas", "documents"]});
    if let Some(w) = filter {
        body["where"] = w;
    }
    let r = http
        .post(format!("{}/{id}/get", base(url)))
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    // Embeddings parsed from the raw text with f32::from_str, as the source does.
    let v: Value = serde_json::from_str(&text).unwrap();
    let ids = v["ids"].as_array().unwrap();
    (0..ids.len())
        .map(|i| Row {
            id: ids[i].as_str().unwrap().to_string(),
            embedding: v["embeddings"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.to_string().parse::<f32>().unwrap())
                .collect(),
            document: v["documents"][i].as_str().map(str::to_string),
            meta: v["metadatas"][i]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// `n` rows of dimension `dim` from `seed`: int/float/str(unicode)/bool metadata, a key `mix`
/// that is an int on even rows and a string on odd ones, every 7th row without metadata and
/// every 5th without a document.
pub fn rows(n: usize, dim: usize, seed: u64) -> Vec<Row> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let embedding = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut meta = BTreeMap::new();
            if i % 7 != 3 {
                meta.insert("n".into(), json!(i as i64 * 1_000_003 - 7));
                meta.insert("score".into(), json!(rng.random_range(0.0f64..1.0) + 0.5));
                meta.insert("tag".into(), json!(format!("tag-{} é中🙂", i % 4)));
                meta.insert("flag".into(), json!(i % 2 == 0));
                meta.insert(
                    "mix".into(),
                    if i % 2 == 0 {
                        json!(i)
                    } else {
                        json!(format!("s{i}"))
                    },
                );
            }
            Row {
                id: format!("id-{i:05}-ü"),
                embedding,
                document: (i % 5 != 1).then(|| format!("document {i}: naïve café ✓")),
                meta,
            }
        })
        .collect()
}

/// A source config for `collection` with small pages.
pub fn config(url: &str, collection: &str) -> ChromaSourceConfig {
    let mut c = ChromaSourceConfig::new(url, collection);
    c.batch_size = 64;
    c
}

pub async fn connect(cfg: ChromaSourceConfig) -> ChromaSource {
    ChromaSource::connect(cfg).await.expect("connect")
}

/// Reads every partition in order.
pub async fn read_all(src: &ChromaSource, batch_rows: usize) -> Vec<RecordBatch> {
    use vmig_core::Source;
    let mut out = Vec::new();
    for p in src.partitions().await.unwrap() {
        let b = vmig_testing::conformance::read_partition(src, &p.id.0, None, batch_rows)
            .await
            .unwrap();
        out.extend(b.into_iter().map(|(b, _)| b));
    }
    out
}
