//! Test helpers: collections created and filled through Chroma's own HTTP API v2, and the
//! source's batches turned back into rows for row-by-row comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use arrow::array::{
    Array, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
};
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};
use vmig_source_chroma::{ChromaSource, ChromaSourceConfig};

/// The Chroma server (`scripts/chroma start`), or `None` after a loud SKIPPED line.
pub fn url() -> Option<String> {
    vmig_testing::service::endpoint("VMIG_CHROMA_URL", "Chroma server")
}

fn base(url: &str) -> String {
    format!("{url}/api/v2/tenants/default_tenant/databases/default_database/collections")
}

/// Deletes `name` if it exists and creates it with `space`; returns its id.
pub async fn recreate(url: &str, name: &str, space: &str) -> String {
    let http = reqwest::Client::new();
    let _ = http.delete(format!("{}/{name}", base(url))).send().await;
    let r = http
        .post(base(url))
        .json(&json!({"name": name, "configuration": {"hnsw": {"space": space}}}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "create {name}: {}",
        r.text().await.unwrap()
    );
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
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

/// One inserted row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub embedding: Vec<f32>,
    pub document: Option<String>,
    /// Non-null metadata values (empty: no metadata).
    pub meta: BTreeMap<String, Value>,
}

/// Adds rows in requests of 500 (the embeddings serialized as shortest f32 decimals).
pub async fn add(url: &str, id: &str, rows: &[Row]) {
    let http = reqwest::Client::new();
    for chunk in rows.chunks(500) {
        let body = json!({
            "ids": chunk.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            "embeddings": chunk.iter().map(|r| r.embedding.clone()).collect::<Vec<_>>(),
            "documents": chunk.iter().map(|r| r.document.clone()).collect::<Vec<_>>(),
            "metadatas": chunk.iter().map(|r| if r.meta.is_empty() { Value::Null } else {
                Value::Object(r.meta.clone().into_iter().collect()) }).collect::<Vec<_>>(),
        });
        let r = http
            .post(format!("{}/{id}/add", base(url)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "add: {}", r.text().await.unwrap());
    }
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

pub async fn count(url: &str, id: &str) -> u64 {
    reqwest::get(format!("{}/{id}/count", base(url)))
        .await
        .unwrap()
        .json::<u64>()
        .await
        .unwrap()
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

/// Batches as rows, columns found by name (vectors as fixed-size or variable lists, so Parquet
/// files and a Milvus read-back work too): typed metadata columns and the JSON column
/// (`metadata` or `$meta`) merged back into one map.
pub fn batch_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let vecs = b.column_by_name("embedding").unwrap();
        let docs = b.column_by_name("document");
        for r in 0..b.num_rows() {
            let v = match vecs.as_fixed_size_list_opt() {
                Some(f) => f.value(r),
                None => vecs.as_list::<i32>().value(r),
            };
            let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
            let mut meta = BTreeMap::new();
            for c in 0..b.num_columns() {
                let name = schema.field(c).name().clone();
                if ["id", "embedding", "document"].contains(&name.as_str()) {
                    continue;
                }
                let col = b.column(c);
                if col.is_null(r) {
                    continue;
                }
                if name == "metadata" || name == "$meta" {
                    let m: Map<String, Value> =
                        serde_json::from_str(col.as_string::<i32>().value(r)).unwrap();
                    meta.extend(m);
                    continue;
                }
                let value = if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
                    json!(a.value(r))
                } else if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                    json!(a.value(r))
                } else if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                    json!(a.value(r))
                } else {
                    json!(col.as_string::<i32>().value(r))
                };
                meta.insert(name, value);
            }
            out.push(Row {
                id: ids.value(r).to_string(),
                embedding: v.values().to_vec(),
                document: docs
                    .filter(|d| !d.is_null(r))
                    .map(|d| d.as_string::<i32>().value(r).to_string()),
                meta,
            });
        }
    }
    out
}

/// Asserts equal rows, embeddings compared bit for bit, naming the first difference.
pub fn assert_rows_eq(got: &[Row], want: &[Row], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.id, w.id, "{what}: row {i} id");
        assert_eq!(
            g.document, w.document,
            "{what}: row {i} ({}) document",
            g.id
        );
        assert_eq!(g.meta, w.meta, "{what}: row {i} ({}) metadata", g.id);
        let gb: Vec<u32> = g.embedding.iter().map(|x| x.to_bits()).collect();
        let wb: Vec<u32> = w.embedding.iter().map(|x| x.to_bits()).collect();
        assert_eq!(gb, wb, "{what}: row {i} ({}) embedding bits", g.id);
    }
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
