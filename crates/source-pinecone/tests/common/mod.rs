//! Test helpers: the records (the truth every test compares with), the Pinecone STAND-IN
//! (`tests/standin/pinecone_standin.py`, a Python server written from Pinecone's OpenAPI
//! documents whose every answer is validated against the official SDK's generated models),
//! and the source's batches turned back into rows.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use arrow::array::{Array, AsArray, BooleanArray, Float32Array, Float64Array, RecordBatch};
use serde_json::{json, Map, Value};
use vmig_source_pinecone::{PineconeSource, PineconeSourceConfig};

/// The API key the stand-in accepts.
pub const KEY: &str = "pcsk_test_key_4711";

/// One record as it was put in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ns: String,
    pub id: String,
    pub values: Vec<f32>,
    /// (index, value) pairs; empty = none.
    pub sparse: Vec<(u32, f32)>,
    /// Metadata, numbers as f64 (Pinecone keeps every number as a 64-bit float).
    pub meta: BTreeMap<String, Value>,
}

/// Every number in `v` as an f64.
pub fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

/// A small deterministic generator (xorshift), so the truth needs no RNG crate.
pub struct Gen(u64);
impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// In [-1, 1).
    pub fn f32(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` records of namespace `ns`, dimension `dim` (0: sparse only), sparse values on every
/// third record when `sparse`. Metadata of every type Pinecone allows: strings (unicode),
/// integral and fractional numbers, booleans, lists of strings (also empty), a key `mix` that
/// is a string on even records and a number on odd ones, a key that cannot be a column name;
/// every 7th record has no metadata, every 5th lacks `score`.
pub fn records(ns: &str, n: usize, dim: usize, sparse: bool, seed: u64) -> Vec<Row> {
    let mut g = Gen::new(seed);
    (0..n)
        .map(|i| {
            let values = (0..dim).map(|_| g.f32()).collect();
            let sp = if (sparse && i % 3 == 0) || dim == 0 {
                let k = 1 + (g.next() % 5) as u32;
                let mut idx: Vec<u32> = (0..k).map(|_| (g.next() % 100_000) as u32).collect();
                idx.sort_unstable();
                idx.dedup();
                idx.into_iter().map(|j| (j, g.f32())).collect()
            } else {
                Vec::new()
            };
            let mut meta = BTreeMap::new();
            if i % 7 != 3 {
                meta.insert("genre".into(), json!(format!("genre-{} é中🙂", i % 4)));
                meta.insert("year".into(), json!((1990 + i % 40) as f64));
                if i % 5 != 1 {
                    meta.insert("score".into(), json!(f64::from(g.f32()) * 10.5));
                }
                meta.insert("ok".into(), json!(i % 2 == 0));
                let tags: Vec<String> = (0..i % 3).map(|t| format!("t{t}")).collect();
                meta.insert("tags".into(), json!(tags));
                meta.insert(
                    "mix".into(),
                    if i % 2 == 0 {
                        json!(format!("m{i}"))
                    } else {
                        json!(i as f64)
                    },
                );
                meta.insert("bad key".into(), json!("spaces"));
            }
            Row {
                ns: ns.to_string(),
                // Ids whose bitwise order differs from insertion order.
                id: format!(
                    "{}-{:04}",
                    ["b", "a", "c"][i % 3],
                    (i * 37) % 1000 + i / 1000 * 1000
                ),
                values,
                sparse: sp,
                meta,
            }
        })
        .collect()
}

/// The stand-in's data file for `rows`.
pub fn data_file(
    dir: &Path,
    rows: &[Row],
    index: Value,
    extra: Value,
    namespaces_without_rows: &[&str],
) -> PathBuf {
    let mut spaces: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for n in namespaces_without_rows {
        spaces.entry((*n).to_string()).or_default();
    }
    for r in rows {
        let mut rec = json!({ "id": r.id });
        if !r.values.is_empty() {
            rec["values"] = json!(r.values);
        }
        if !r.sparse.is_empty() {
            rec["sparseValues"] = json!({
                "indices": r.sparse.iter().map(|p| p.0).collect::<Vec<_>>(),
                "values": r.sparse.iter().map(|p| p.1).collect::<Vec<_>>(),
            });
        }
        if !r.meta.is_empty() {
            rec["metadata"] = Value::Object(r.meta.clone().into_iter().collect());
        }
        spaces.entry(r.ns.clone()).or_default().push(rec);
    }
    let mut data = json!({ "api_key": KEY, "index": index, "namespaces": spaces });
    if let Value::Object(e) = extra {
        for (k, v) in e {
            data[k] = v;
        }
    }
    let path = dir.join("standin.json");
    std::fs::write(&path, serde_json::to_vec(&data).unwrap()).unwrap();
    path
}

/// A dense serverless index description for the stand-in.
pub fn dense_index(dim: usize, metric: &str) -> Value {
    json!({"name": "docs", "dimension": dim, "metric": metric, "vector_type": "dense", "kind": "serverless"})
}

/// The stand-in's script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/pinecone_standin.py")
}

/// Python with the `pinecone` SDK (scripts/pyenv), or `None` after a loud SKIPPED line (a
/// failure under `CI=true`).
pub fn python() -> Option<String> {
    let py = vmig_testing::service::python()?;
    let ok = Command::new(&py)
        .args(["-c", "import pinecone.core.openapi.db_data"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("SKIPPED: {py} has no `pinecone` SDK 8.x; run scripts/pyenv");
        assert!(!vmig_testing::service::is_ci(), "{msg}");
        eprintln!("{msg}");
        return None;
    }
    Some(py)
}

/// A running stand-in, stopped (by its own process handle) when dropped.
pub struct StandIn {
    pub url: String,
    pub port: u16,
    child: Child,
}

impl StandIn {
    pub fn start(py: &str, data: &Path, port: u16) -> StandIn {
        let mut child = Command::new(py)
            .arg(script())
            .arg(data)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the stand-in");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening") => break,
                Some(Ok(l)) => eprintln!("stand-in: {l}"),
                _ => panic!("the stand-in did not start"),
            }
        }
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("stand-in: {l}");
            }
        });
        StandIn {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The stand-in's counters (`GET /_standin/stats`).
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/_standin/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Asserts that no answer failed the schema check.
    pub async fn assert_no_drift(&self) {
        let s = self.stats().await;
        assert_eq!(s["drift"], json!([]), "stand-in answers off the spec: {s}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config reading index `docs` through the stand-in's control plane, small pages.
pub fn config(s: &StandIn) -> PineconeSourceConfig {
    let mut c = PineconeSourceConfig::new(KEY, "docs");
    c.control_url = s.url.clone();
    c.list_limit = 7;
    c.fetch_batch = 5;
    c.fetch_rate = 0;
    c.list_rate = 0;
    c
}

pub async fn connect(cfg: PineconeSourceConfig) -> PineconeSource {
    PineconeSource::connect(cfg).await.expect("connect")
}

/// Batches of namespace `ns` as rows (vectors as fixed-size or variable lists, so Parquet
/// files and a Milvus read-back work too): typed metadata columns and the JSON column merged
/// back into one map, numbers as f64.
pub fn batch_rows(batches: &[RecordBatch], ns: &str) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let vecs = b.column_by_name("vector");
        let sparse = b.column_by_name("sparse_vector");
        let nss = b.column_by_name("namespace");
        for r in 0..b.num_rows() {
            let values = vecs.map_or_else(Vec::new, |vecs| {
                let v = match vecs.as_fixed_size_list_opt() {
                    Some(f) => f.value(r),
                    None => vecs.as_list::<i32>().value(r),
                };
                v.as_any()
                    .downcast_ref::<Float32Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            });
            let sp = sparse.map_or_else(Vec::new, |s| {
                let m = s.as_map().value(r);
                let k = m.column(0).as_primitive::<arrow::datatypes::UInt32Type>();
                let v = m.column(1).as_primitive::<arrow::datatypes::Float32Type>();
                (0..m.len()).map(|i| (k.value(i), v.value(i))).collect()
            });
            let mut meta = BTreeMap::new();
            for c in 0..b.num_columns() {
                let name = schema.field(c).name().clone();
                if ["id", "vector", "sparse_vector", "namespace"].contains(&name.as_str()) {
                    continue;
                }
                let col = b.column(c);
                if col.is_null(r) {
                    continue;
                }
                if name == "metadata" || name == "$meta" {
                    let m: Map<String, Value> =
                        serde_json::from_str(col.as_string::<i32>().value(r)).unwrap();
                    meta.extend(m.into_iter().map(|(k, v)| (k, norm(&v))));
                    continue;
                }
                let value = if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                    json!(a.value(r))
                } else if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                    json!(a.value(r))
                } else {
                    json!(col.as_string::<i32>().value(r))
                };
                meta.insert(name, value);
            }
            out.push(Row {
                ns: nss.map_or_else(
                    || ns.to_string(),
                    |c| c.as_string::<i32>().value(r).to_string(),
                ),
                id: ids.value(r).to_string(),
                values,
                sparse: sp,
                meta,
            });
        }
    }
    out
}

/// `rows` sorted as `list` returns them: by namespace, then id bytes.
pub fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| (&a.ns, a.id.as_bytes()).cmp(&(&b.ns, b.id.as_bytes())));
    v
}

/// Asserts equal rows, vectors compared bit for bit, naming the first difference.
pub fn assert_rows_eq(got: &[Row], want: &[Row], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!((&g.ns, &g.id), (&w.ns, &w.id), "{what}: row {i}");
        let wm: BTreeMap<String, Value> =
            w.meta.iter().map(|(k, v)| (k.clone(), norm(v))).collect();
        assert_eq!(g.meta, wm, "{what}: row {i} ({}) metadata", g.id);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&g.values),
            bits(&w.values),
            "{what}: row {i} ({}) values",
            g.id
        );
        let sb = |v: &[(u32, f32)]| v.iter().map(|(k, x)| (*k, x.to_bits())).collect::<Vec<_>>();
        assert_eq!(
            sb(&g.sparse),
            sb(&w.sparse),
            "{what}: row {i} ({}) sparse",
            g.id
        );
    }
}

/// Reads every partition in order; returns (namespace, batches) per partition.
pub async fn read_all(src: &PineconeSource, batch_rows: usize) -> Vec<Row> {
    use vmig_core::Source;
    let mut out = Vec::new();
    for p in src.partitions().await.unwrap() {
        let b = vmig_testing::conformance::read_partition(src, &p.id.0, None, batch_rows)
            .await
            .unwrap();
        let b: Vec<RecordBatch> = b.into_iter().map(|(b, _)| b).collect();
        out.extend(self::batch_rows(&b, &p.id.0));
    }
    out
}
