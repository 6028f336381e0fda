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
    if let Err(e) = try_create_and_load(base, index, body, docs).await {
        panic!("{e}");
    }
}

/// [`create_and_load`], returning what went wrong instead of panicking: the server's answer
/// when it refuses the index or a document (for tests that list what a server cannot load).
///
/// # Errors
/// As [`create_and_load`] panics.
pub async fn try_create_and_load(
    base: &str,
    index: &str,
    body: &Value,
    docs: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{base}/{index}"))
        .json(body)
        .send()
        .await
        .map_err(|e| format!("creating {index}: {e}"))?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("creating {index}: {status} {text}"));
    }
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
            .map_err(|e| format!("sending _bulk: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the _bulk answer is not JSON: {e}"))?;
        if v["errors"] != json!(false) {
            let answer = v.to_string();
            return Err(format!(
                "bulk into {index}: {}",
                answer.chars().take(2000).collect::<String>()
            ));
        }
    }
    c.post(format!("{base}/{index}/_refresh"))
        .send()
        .await
        .map_err(|e| format!("refreshing {index}: {e}"))?;
    let v: Value = c
        .get(format!("{base}/{index}/_count"))
        .send()
        .await
        .map_err(|e| format!("counting {index}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("the _count answer is not JSON: {e}"))?;
    if v["count"].as_u64() != Some(n) {
        return Err(format!("{index} count after loading: {v}, want {n}"));
    }
    Ok(())
}
