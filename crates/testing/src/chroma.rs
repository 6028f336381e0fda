//! Collections on the real Chroma server (`scripts/chroma start`, `VMIG_CHROMA_URL`), created and
//! filled through Chroma's own HTTP API v2, and migrated rows (batches of the `chroma` source, or
//! its Parquet output read back) turned into [`Row`]s for a row-by-row comparison with what the
//! test inserted.

use std::collections::BTreeMap;

use arrow::array::{
    Array, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
};
use serde_json::{json, Map, Value};

/// Rows per `add` request: under the `max_batch_size` of 5461 that Chroma 1.5.9 reports.
pub const ADD_CHUNK: usize = 5000;

/// The Chroma server (`VMIG_CHROMA_URL`), or `None` after a loud `SKIPPED` line (fails on CI).
pub fn url() -> Option<String> {
    crate::service::endpoint("VMIG_CHROMA_URL", "Chroma server")
}

/// The collections endpoint of the default tenant and database.
pub fn collections(url: &str) -> String {
    format!("{url}/api/v2/tenants/default_tenant/databases/default_database/collections")
}

/// Deletes collection `name` if it exists and creates it with distance `space` (`l2`, `ip`,
/// `cosine`); returns its id.
///
/// # Panics
/// When Chroma refuses: the test fails there.
pub async fn recreate(url: &str, name: &str, space: &str) -> String {
    let http = reqwest::Client::new();
    let base = collections(url);
    let _ = http.delete(format!("{base}/{name}")).send().await;
    let r = http
        .post(&base)
        .json(&json!({"name": name, "configuration": {"hnsw": {"space": space}}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "create {name}: {status} {body}");
    body["id"].as_str().unwrap_or_default().to_string()
}

/// One Chroma record.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The id.
    pub id: String,
    /// The embedding.
    pub embedding: Vec<f32>,
    /// The document, if any.
    pub document: Option<String>,
    /// Non-null metadata values (empty: no metadata).
    pub meta: BTreeMap<String, Value>,
}

/// Adds `rows` to collection `id` in requests of [`ADD_CHUNK`] rows (embeddings serialized as
/// shortest round-trip f32 decimals, so Chroma parses the exact floats).
///
/// # Panics
/// When a request fails.
pub async fn add(url: &str, id: &str, rows: &[Row]) {
    let http = reqwest::Client::new();
    for chunk in rows.chunks(ADD_CHUNK) {
        let body = json!({
            "ids": chunk.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            "embeddings": chunk.iter().map(|r| r.embedding.as_slice()).collect::<Vec<_>>(),
            "documents": chunk.iter().map(|r| r.document.as_deref()).collect::<Vec<_>>(),
            "metadatas": chunk.iter().map(|r| if r.meta.is_empty() { Value::Null } else {
                Value::Object(r.meta.clone().into_iter().collect()) }).collect::<Vec<_>>(),
        });
        let r = http
            .post(format!("{}/{id}/add", collections(url)))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("add: {e}"));
        let status = r.status();
        assert!(
            status.is_success(),
            "add: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
}

/// The number of rows in collection `id`.
///
/// # Panics
/// When the request fails.
pub async fn count(url: &str, id: &str) -> u64 {
    reqwest::get(format!("{}/{id}/count", collections(url)))
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("count: {e}"))
        .json::<u64>()
        .await
        .unwrap_or_else(|e| panic!("count: {e}"))
}

/// Batches as rows, columns found by name: `id`, `embedding` (fixed-size or variable lists, so
/// Parquet files and a Milvus read-back work too), `document`, typed metadata columns and the
/// JSON column (`metadata` or `$meta`) merged back into one map.
///
/// # Panics
/// When a batch lacks `id` or `embedding`, or a JSON column holds no JSON object.
pub fn batch_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let ids = b.column_by_name("id").expect("an `id` column");
        let ids = ids.as_string::<i32>();
        let vecs = b
            .column_by_name("embedding")
            .expect("an `embedding` column");
        let docs = b.column_by_name("document");
        for r in 0..b.num_rows() {
            let v = match vecs.as_fixed_size_list_opt() {
                Some(f) => f.value(r),
                None => vecs.as_list::<i32>().value(r),
            };
            let v = v
                .as_any()
                .downcast_ref::<Float32Array>()
                .expect("float32 embeddings");
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
                        serde_json::from_str(col.as_string::<i32>().value(r))
                            .expect("a JSON object");
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

/// Asserts equal rows in the same order, embeddings compared bit for bit, naming the first
/// difference.
///
/// # Panics
/// On the first difference.
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

/// Sorts both by id, checks no id is there twice, and compares them with [`assert_rows_eq`].
///
/// # Panics
/// On a duplicate id or the first difference.
pub fn assert_same_rows(mut got: Vec<Row>, mut want: Vec<Row>, what: &str) {
    got.sort_by(|a, b| a.id.cmp(&b.id));
    want.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = got.windows(2).find(|w| w[0].id == w[1].id) {
        panic!("{what}: id {} is there twice", w[0].id);
    }
    assert_rows_eq(&got, &want, what);
}

/// A local HTTP server answering every request `401 Unauthorized` as Chroma does with
/// authentication on and a wrong token (the test Chroma runs without authentication, and Chroma
/// 1.5.9 has none of its own). Returns its base URL and the last request it received (head and
/// body as text), for checking which credentials were sent. It lives as long as the process.
///
/// # Panics
/// When no local port can be bound.
pub fn unauthorized_server() -> (String, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let addr = listener.local_addr().expect("its address");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let last = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            let mut buf = vec![0u8; 16384];
            let n = s.read(&mut buf).unwrap_or(0);
            *last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                String::from_utf8_lossy(&buf[..n]).to_string();
            let body = r#"{"error":"Unauthorized","message":"Unauthorized"}"#;
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (format!("http://{addr}"), seen)
}
