//! Behaviour the stand-ins cannot show, tested against a tiny HTTP server answering with
//! responses written from Elasticsearch's REST specification and YAML tests:
//!
//! * ES 9.2+ leaves vectors out of `_source` unless `_source.exclude_vectors = false` is sent
//!   (`search.vectors/230_source_exclude_vectors.yml`); 9.0/9.1 may refuse the key;
//! * refused credentials (HTTP 401 `security_exception`), with the secret never in the error;
//! * a vector of the wrong length, which real Elasticsearch rejects at index time, so only a
//!   recorded answer can carry it;
//! * 429 answers retried with back-off; the PIT closed also when reading fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::Float32Type;
use common::{read_all, source};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

type Handler = Arc<dyn Fn(&Req, usize) -> (u16, Value) + Send + Sync>;

/// Serves `handler` on a loopback port; returns the base URL and the log of requests.
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Req>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let log2 = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            let log = Arc::clone(&log2);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
                let req = Req {
                    method,
                    path,
                    headers,
                    body,
                };
                let nth = {
                    let mut l = log.lock().unwrap();
                    l.push(req.clone());
                    l.iter()
                        .filter(|r| r.path == req.path && r.method == req.method)
                        .count()
                };
                let (status, answer) = handler(&req, nth);
                let text = answer.to_string();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), log)
}

fn root(version: &str) -> Value {
    json!({ "name": "node", "cluster_name": "c", "version": { "number": version, "build_flavor": "default" }, "tagline": "You Know, for Search" })
}

const V1: [f32; 3] = [0.1, -2.5, 3.4028235e38];
const V2: [f32; 3] = [1e-45, 0.0, -0.33333334];

/// A 9.2 cluster with index `vec` (one dense_vector and one keyword field, two documents).
fn es92(req: &Req, nth: usize, refuse_key: bool) -> (u16, Value) {
    let p = req.path.as_str();
    match (req.method.as_str(), p) {
        ("GET", "/") => (200, root(if refuse_key { "9.1.0" } else { "9.2.1" })),
        ("GET", "/vec/_mapping") => (
            200,
            json!({ "vec": { "mappings": { "properties": {
                "emb": { "type": "dense_vector", "dims": 3, "index": true, "similarity": "cosine",
                         "index_options": { "type": "bbq_hnsw" } },
                "name": { "type": "keyword" }
            }}}}),
        ),
        ("POST", "/vec/_count") => (
            200,
            json!({ "count": 2, "_shards": { "total": 1, "successful": 1, "failed": 0 } }),
        ),
        ("POST", p) if p.starts_with("/vec/_pit") => (200, json!({ "id": "pit-1" })),
        ("DELETE", "/_pit") => (200, json!({ "succeeded": true, "num_freed": 1 })),
        ("POST", "/_search") => {
            let asked = req.body.pointer("/_source/exclude_vectors") == Some(&json!(false));
            if refuse_key && asked {
                return (
                    400,
                    json!({ "error": { "root_cause": [{ "type": "x_content_parse_exception", "reason": "[1:40] [_source] unknown field [exclude_vectors]" }], "type": "x_content_parse_exception", "reason": "[1:40] [_source] unknown field [exclude_vectors]" }, "status": 400 }),
                );
            }
            if req.body.get("search_after").is_some() {
                return (
                    200,
                    json!({ "pit_id": "pit-1", "_shards": { "total": 1, "successful": 1, "failed": 0 }, "hits": { "hits": [] } }),
                );
            }
            let _ = nth;
            // 9.2: without the flag, `_source` has no vectors (230_source_exclude_vectors.yml).
            let with = |name: &str, v: &[f32]| {
                let mut s = json!({ "name": name });
                if asked || refuse_key {
                    s["emb"] = json!(v
                        .iter()
                        .map(|f| f.to_string().parse::<f64>().unwrap())
                        .collect::<Vec<_>>());
                }
                s
            };
            (
                200,
                json!({
                    "pit_id": "pit-1", "took": 1, "timed_out": false,
                    "_shards": { "total": 1, "successful": 1, "failed": 0 },
                    "hits": { "hits": [
                        { "_index": "vec", "_id": "1", "_score": null, "_source": with("a", &V1), "sort": [0] },
                        { "_index": "vec", "_id": "2", "_score": null, "_source": with("b", &V2), "sort": [1] }
                    ]}
                }),
            )
        }
        _ => (
            404,
            json!({ "error": { "type": "no_handler", "reason": format!("no handler for {} {p}", req.method) }, "status": 404 }),
        ),
    }
}

fn vectors(batches: &[arrow::record_batch::RecordBatch]) -> Vec<u32> {
    batches
        .iter()
        .flat_map(|b| {
            let v = b.column_by_name("emb").unwrap().as_fixed_size_list();
            v.values()
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|f| f.to_bits())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn want_vectors() -> Vec<u32> {
    V1.iter().chain(V2.iter()).map(|f| f.to_bits()).collect()
}

#[tokio::test]
async fn es_9_2_vectors_are_requested_explicitly() {
    let (url, log) = serve(Arc::new(|r, n| es92(r, n, false))).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "vec" }))
        .await
        .unwrap();
    assert_eq!(src.schema().metadata()["vmig.metric"], "COSINE");
    let batches = read_all(src.as_ref(), 100).await.unwrap();
    assert_eq!(vectors(&batches), want_vectors());
    let log = log.lock().unwrap();
    let searches: Vec<&Req> = log.iter().filter(|r| r.path == "/_search").collect();
    assert!(searches
        .iter()
        .all(|r| r.body["_source"]["exclude_vectors"] == json!(false)));
    assert_eq!(searches[0].body["sort"], json!([{ "_shard_doc": "asc" }]));
    assert_eq!(searches[0].body["pit"]["id"], "pit-1");
    assert!(
        log.iter()
            .any(|r| r.method == "DELETE" && r.path == "/_pit"),
        "PIT closed"
    );
}

#[tokio::test]
async fn a_9_1_server_refusing_exclude_vectors_is_asked_again_without_it() {
    let (url, log) = serve(Arc::new(|r, n| es92(r, n, true))).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "vec" }))
        .await
        .unwrap();
    let batches = read_all(src.as_ref(), 100).await.unwrap();
    assert_eq!(vectors(&batches), want_vectors());
    let log = log.lock().unwrap();
    let last = log.iter().rfind(|r| r.path == "/_search").unwrap();
    assert!(last.body["_source"].get("exclude_vectors").is_none());
}

#[tokio::test]
async fn refused_credentials_are_a_clear_error_without_the_secret() {
    let handler: Handler = Arc::new(|_r, _n| {
        (
            401,
            json!({ "error": { "root_cause": [{ "type": "security_exception", "reason": "unable to authenticate user [elastic] for REST request [/]" }], "type": "security_exception", "reason": "unable to authenticate user [elastic] for REST request [/]" }, "status": 401 }),
        )
    });
    let (url, log) = serve(handler).await;
    let secret = "hunter2-very-secret";
    for auth in [
        json!({ "username": "elastic", "password": secret }),
        json!({ "api_key": secret }),
        json!({ "bearer_token": secret }),
    ] {
        let mut cfg = json!({ "url": url, "index": "vec" });
        for (k, v) in auth.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let err = source("elasticsearch", cfg).await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("401") && text.contains("unable to authenticate"),
            "{text}"
        );
        assert!(!text.contains(secret), "the secret leaked: {text}");
    }
    // Credentials in the URL are used as basic auth and never shown.
    let with_user = url.replace("http://", &format!("http://elastic:{secret}@"));
    let err = source("elasticsearch", json!({ "url": with_user, "index": "vec" }))
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret));
    let log = log.lock().unwrap();
    let auths: Vec<&str> = log
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("elastic:{secret}"));
    assert_eq!(auths[0], format!("Basic {basic}"));
    assert_eq!(auths[1], format!("ApiKey {secret}"));
    assert_eq!(auths[2], format!("Bearer {secret}"));
    assert_eq!(auths[3], format!("Basic {basic}"));
}

#[tokio::test]
async fn a_wrong_length_vector_names_the_document_and_the_pit_is_closed() {
    let handler: Handler = Arc::new(|r, n| {
        if r.path == "/_search" && r.body.get("search_after").is_none() {
            return (
                200,
                json!({
                    "pit_id": "pit-1", "_shards": { "total": 1, "successful": 1, "failed": 0 },
                    "hits": { "hits": [
                        { "_index": "vec", "_id": "short-one", "_source": { "name": "a", "emb": [1.0, 2.0] }, "sort": [0] }
                    ]}
                }),
            );
        }
        es92(r, n, false)
    });
    let (url, log) = serve(handler).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "vec" }))
        .await
        .unwrap();
    let err = read_all(src.as_ref(), 100).await.unwrap_err().to_string();
    assert!(
        err.contains("_id `short-one`")
            && err.contains("field `emb`")
            && err.contains("2 dimensions"),
        "{err}"
    );
    // Give the reader task a moment to close its PIT after the error was delivered.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.method == "DELETE" && r.path == "/_pit"));
}

#[tokio::test]
async fn transient_errors_are_retried_and_others_fail_with_the_reason() {
    // The first two searches answer 429, then the cluster recovers.
    let handler: Handler = Arc::new(|r, n| {
        if r.path == "/_search" && n <= 2 {
            return (
                429,
                json!({ "error": { "type": "es_rejected_execution_exception", "reason": "rejected execution" }, "status": 429 }),
            );
        }
        es92(r, n, false)
    });
    let (url, _log) = serve(handler).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "vec" }))
        .await
        .unwrap();
    let batches = read_all(src.as_ref(), 100).await.unwrap();
    assert_eq!(vectors(&batches), want_vectors());
    let handler: Handler = Arc::new(|r, n| {
        if r.path == "/_search" {
            return (
                400,
                json!({ "error": { "type": "search_phase_execution_exception", "reason": "all shards failed", "root_cause": [{ "type": "query_shard_exception", "reason": "failed to create query: bad field" }] }, "status": 400 }),
            );
        }
        es92(r, n, false)
    });
    let (url, log) = serve(handler).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "vec" }))
        .await
        .unwrap();
    let err = read_all(src.as_ref(), 100).await.unwrap_err().to_string();
    assert!(err.contains("failed to create query: bad field"), "{err}");
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/_search")
            .count(),
        1,
        "a 400 is not retried"
    );
}

/// With several URLs the first may be down and another answer: an error names the node that
/// answered (without the credentials its URL carried), not the first URL.
#[tokio::test]
async fn an_error_names_the_node_that_answered() {
    let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_url = format!("http://{}", down.local_addr().unwrap());
    drop(down); // nothing listens there any more: connection refused
    let handler: Handler = Arc::new(|_r, _n| {
        (
            500,
            json!({ "error": { "root_cause": [{ "type": "illegal_state_exception", "reason": "node is shutting down" }], "type": "illegal_state_exception", "reason": "node is shutting down" }, "status": 500 }),
        )
    });
    let (up_url, log) = serve(handler).await;
    let with_user = up_url.replace("http://", "http://elastic:hunter2@");
    let err = source(
        "elasticsearch",
        json!({ "url": [down_url, with_user], "index": "vec" }),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "opening source `elasticsearch`: invalid data at identifying the server: {up_url} \
             answered HTTP 500 Internal Server Error: illegal_state_exception: node is shutting \
             down"
        )
    );
    assert_eq!(log.lock().unwrap().len(), 1);
}

/// An Elasticsearch 7.1 index whose mapping has no `dims` (as Haystack and 7.0–7.2-era code
/// wrote it); `docs` are the hits of the scroll, `(id, emb)`.
fn es71_no_dims(req: &Req, docs: &[(&str, Vec<f32>)]) -> (u16, Value) {
    let p = req.path.as_str();
    let hit = |(id, v): &(&str, Vec<f32>)| json!({ "_index": "hay", "_id": id, "_score": null, "_source": { "content": format!("c{id}"), "emb": v }, "sort": [0] });
    match (req.method.as_str(), p) {
        ("GET", "/") => (200, root("7.1.1")),
        ("GET", "/hay/_mapping") => (
            200,
            json!({ "hay": { "mappings": { "properties": {
                "emb": { "type": "dense_vector" },
                "content": { "type": "text" }
            }}}}),
        ),
        ("POST", "/hay/_count") => (200, json!({ "count": docs.len() })),
        // The dimension probe: the first document that has the field.
        ("POST", "/hay/_search") => {
            assert_eq!(
                req.body["query"]["bool"]["filter"][0],
                json!({ "exists": { "field": "emb" } })
            );
            assert_eq!(req.body["size"], json!(1));
            (200, json!({ "hits": { "hits": [hit(&docs[0])] } }))
        }
        ("POST", p) if p.starts_with("/hay/_search?scroll=") => (
            200,
            json!({ "_scroll_id": "s1", "_shards": { "total": 1, "successful": 1, "failed": 0 },
                    "hits": { "hits": docs.iter().map(hit).collect::<Vec<_>>() } }),
        ),
        ("POST", "/_search/scroll") => (200, json!({ "_scroll_id": "s1", "hits": { "hits": [] } })),
        ("DELETE", "/_search/scroll") => (200, json!({ "succeeded": true, "num_freed": 1 })),
        _ => (
            404,
            json!({ "error": { "type": "no_handler", "reason": format!("no handler for {} {p}", req.method) }, "status": 404 }),
        ),
    }
}

#[tokio::test]
async fn a_mapping_without_dims_takes_them_from_the_first_document() {
    let docs = vec![("1", V1.to_vec()), ("2", V2.to_vec())];
    let (url, _log) = serve(Arc::new(move |r, _| es71_no_dims(r, &docs))).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "hay" }))
        .await
        .unwrap();
    let schema = src.schema();
    assert_eq!(
        schema.metadata()["es.field.emb"],
        "dense_vector dims=3 element=float (dims 3 inferred from document `1`: the mapping has none)"
    );
    let batches = read_all(src.as_ref(), 100).await.unwrap();
    assert_eq!(vectors(&batches), want_vectors());

    // A later document of another length is an error naming it, the field and the inference.
    let docs = vec![
        ("1", V1.to_vec()),
        ("2", V2.to_vec()),
        ("odd", vec![1.0, 2.0]),
    ];
    let (url, _log) = serve(Arc::new(move |r, _| es71_no_dims(r, &docs))).await;
    let src = source("elasticsearch", json!({ "url": url, "index": "hay" }))
        .await
        .unwrap();
    let err = read_all(src.as_ref(), 100).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid data at index `hay`, document _id `odd`, field `emb`: the vector has 2 dimensions, the mapping says 3 (the dimension was inferred from document `1`: the mapping has no `dims`) (skip such documents with `on_invalid = \"skip\"`)"
    );

    // Given `dims` win, and an empty index cannot tell.
    let (url, log) = serve(Arc::new(move |r, _| es71_no_dims(r, &[("1", V1.to_vec())]))).await;
    let src = source(
        "elasticsearch",
        json!({ "url": url, "index": "hay", "dims": { "emb": 3 } }),
    )
    .await
    .unwrap();
    assert_eq!(
        src.schema().metadata()["es.field.emb"],
        "dense_vector dims=3 element=float"
    );
    assert!(!log.lock().unwrap().iter().any(|r| r.path == "/hay/_search"));
    let (url, _log) = serve(Arc::new(move |r, _| {
        if r.path == "/hay/_search" {
            return (200, json!({ "hits": { "hits": [] } }));
        }
        es71_no_dims(r, &[])
    }))
    .await;
    let err = source("elasticsearch", json!({ "url": url, "index": "hay" }))
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(err, "opening source `elasticsearch`: unsupported input at mapping of `emb`: the dense_vector field has no `dims` in the mapping and no document has a value to infer it from; give it with `dims = { emb = <n> }`");
}
