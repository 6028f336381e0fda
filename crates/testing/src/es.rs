//! Loading test indexes into the Elasticsearch and OpenSearch stand-ins (`scripts/es`) through
//! their REST API: create an index with its mappings, index documents with `_bulk`, refresh, and
//! check the count. Feature `es`.

use serde_json::{json, Value};

/// Documents per `_bulk` request.
const BULK_DOCS: usize = 2000;

/// The body that creates the tests' small index: 2 shards, no replicas, a `long` field `n`, a
/// `keyword` field `tag` and an indexed `dense_vector` `v` of `dims` dimensions (`l2_norm`).
pub fn small_index(dims: usize) -> Value {
    json!({
        "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
        "mappings": { "properties": {
            "n": { "type": "long" },
            "tag": { "type": "keyword" },
            "v": { "type": "dense_vector", "dims": dims, "index": true, "similarity": "l2_norm" }
        }}
    })
}

/// Creates `index` on the server at `base` with `body` (its `settings` and `mappings`), indexes
/// `docs` — `(id, source JSON text)` pairs — with `_bulk` requests, refreshes the index and
/// checks that `_count` finds every document.
///
/// # Panics
/// When the server cannot be reached, refuses the index, reports an error for any document, or
/// counts another number of documents.
pub async fn create_and_load(
    base: &str,
    index: &str,
    body: &Value,
    docs: impl IntoIterator<Item = (String, String)>,
) {
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{base}/{index}"))
        .json(body)
        .send()
        .await
        .expect("creating the index");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "creating {index}: {status} {text}");
    let mut docs = docs.into_iter().peekable();
    let mut n = 0u64;
    while docs.peek().is_some() {
        let mut payload = String::new();
        for (id, source) in docs.by_ref().take(BULK_DOCS) {
            payload.push_str(&json!({ "index": { "_index": index, "_id": id } }).to_string());
            payload.push('\n');
            payload.push_str(&source);
            payload.push('\n');
            n += 1;
        }
        let v: Value = c
            .post(format!("{base}/_bulk"))
            .header("content-type", "application/x-ndjson")
            .body(payload)
            .send()
            .await
            .expect("sending _bulk")
            .json()
            .await
            .expect("the _bulk answer is JSON");
        let answer = v.to_string();
        assert_eq!(
            v["errors"],
            json!(false),
            "bulk into {index}: {}",
            &answer[..answer.len().min(2000)]
        );
    }
    c.post(format!("{base}/{index}/_refresh"))
        .send()
        .await
        .expect("refreshing the index");
    let v: Value = c
        .get(format!("{base}/{index}/_count"))
        .send()
        .await
        .expect("counting the index")
        .json()
        .await
        .expect("the _count answer is JSON");
    assert_eq!(v["count"].as_u64(), Some(n), "{index} count after loading");
}
