//! Test helpers for the `qdrant` source. The server is a STAND-IN (no real Qdrant server can run
//! here): `scripts/qdrant` serves Qdrant's documented collection-info and scroll endpoints over
//! collections held by the `qdrant-client` package's local mode, and writes what that local mode's
//! own `scroll` returns to `$VMIG_QDRANT_EXPECTED/<collection>.jsonl`: the truth these tests
//! compare vmig's rows with, row by row.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type, UInt32Type};
use serde_json::{Map, Value};
use vmig_core::Source;
use vmig_source_qdrant::{QdrantSource, QdrantSourceConfig};

/// The shared stand-in (`scripts/qdrant start`): URL, API key, directory of expected points.
pub struct Server {
    pub url: String,
    pub key: String,
    pub expected: PathBuf,
}

/// The stand-in, or `None` after a loud SKIPPED line (a failure when `CI=true`).
pub fn server() -> Option<Server> {
    let url = vmig_testing::service::endpoint(
        "VMIG_QDRANT_URL",
        "Qdrant stand-in (scripts/qdrant, over qdrant-client's local mode)",
    )?;
    Some(Server {
        url,
        key: std::env::var("VMIG_QDRANT_API_KEY").unwrap_or_default(),
        expected: std::env::var("VMIG_QDRANT_EXPECTED").unwrap().into(),
    })
}

impl Server {
    pub fn config(&self, collection: &str) -> QdrantSourceConfig {
        let mut c = QdrantSourceConfig::new(&self.url, collection);
        c.api_key = Some(self.key.clone());
        c
    }
}

pub async fn connect(cfg: QdrantSourceConfig) -> QdrantSource {
    QdrantSource::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A vector value, comparable bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub enum Vector {
    Dense(Vec<u32>),
    Bytes(Vec<u8>),
    Sparse(Vec<u32>, Vec<u32>),
}

/// One point: the id as text, vectors by field name, payload without top-level nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: String,
    pub vectors: BTreeMap<String, Vector>,
    pub payload: Map<String, Value>,
}

fn dense(v: &Value) -> Vector {
    Vector::Dense(
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| (x.as_f64().unwrap() as f32).to_bits())
            .collect(),
    )
}

fn vector_of(v: &Value) -> Vector {
    match v {
        Value::Array(_) => dense(v),
        Value::Object(o) => Vector::Sparse(
            o["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect(),
            o["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x.as_f64().unwrap() as f32).to_bits())
                .collect(),
        ),
        other => panic!("vector {other}"),
    }
}

/// One point of qdrant-client's dump as a [`Point`]; `vectors` limits the vectors kept.
pub fn expected_point(v: &Value, vectors: Option<&[&str]>) -> Point {
    let id = match &v["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("id {other}"),
    };
    let mut out = BTreeMap::new();
    match &v["vector"] {
        Value::Array(_) => {
            out.insert("vector".to_string(), dense(&v["vector"]));
        }
        Value::Object(m) => {
            for (k, x) in m {
                if vectors.is_none_or(|w| w.contains(&k.as_str())) {
                    out.insert(k.clone(), vector_of(x));
                }
            }
        }
        _ => {}
    }
    let mut payload = v["payload"].as_object().cloned().unwrap_or_default();
    payload.retain(|_, x| !x.is_null());
    Point {
        id,
        vectors: out,
        payload,
    }
}

/// Every point of `collection` as qdrant-client's local mode scrolls it, in its order.
pub fn expected(dir: &Path, collection: &str, vectors: Option<&[&str]>) -> Vec<Point> {
    let text = std::fs::read_to_string(dir.join(format!("{collection}.jsonl"))).unwrap();
    text.lines()
        .map(|l| expected_point(&serde_json::from_str(l).unwrap(), vectors))
        .collect()
}

/// The rows of vmig's batches as [`Point`]s (typed payload columns and the JSON column merged).
pub fn points(batches: &[RecordBatch]) -> Vec<Point> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        for r in 0..b.num_rows() {
            let mut p = Point {
                id: String::new(),
                vectors: BTreeMap::new(),
                payload: Map::new(),
            };
            for (i, f) in schema.fields().iter().enumerate() {
                let c = b.column(i);
                let name = f.name().clone();
                if name == "id" {
                    p.id = match c.data_type() {
                        DataType::Int64 => c.as_primitive::<Int64Type>().value(r).to_string(),
                        _ => c.as_string::<i32>().value(r).to_string(),
                    };
                    continue;
                }
                if c.is_null(r) {
                    continue;
                }
                match c.data_type() {
                    DataType::FixedSizeList(_, _) => {
                        let v = c.as_fixed_size_list().value(r);
                        let v = v.as_primitive::<Float32Type>();
                        p.vectors.insert(
                            name,
                            Vector::Dense(v.values().iter().map(|x| x.to_bits()).collect()),
                        );
                    }
                    DataType::List(_) => {
                        // Vectors as Parquet staging files hold them.
                        let v = c.as_list::<i32>().value(r);
                        let v = v.as_primitive::<Float32Type>();
                        p.vectors.insert(
                            name,
                            Vector::Dense(v.values().iter().map(|x| x.to_bits()).collect()),
                        );
                    }
                    DataType::FixedSizeBinary(_) => {
                        p.vectors.insert(
                            name,
                            Vector::Bytes(c.as_fixed_size_binary().value(r).to_vec()),
                        );
                    }
                    DataType::Map(_, _) => {
                        let e = c.as_map().value(r);
                        let k = e.column(0).as_primitive::<UInt32Type>();
                        let v = e.column(1).as_primitive::<Float32Type>();
                        p.vectors.insert(
                            name,
                            Vector::Sparse(
                                k.values().to_vec(),
                                v.values().iter().map(|x| x.to_bits()).collect(),
                            ),
                        );
                    }
                    DataType::Utf8 if name == "payload" || name == "$meta" => {
                        let o: Map<String, Value> =
                            serde_json::from_str(c.as_string::<i32>().value(r)).unwrap();
                        for (k, v) in o {
                            if !v.is_null() {
                                p.payload.insert(k, v);
                            }
                        }
                    }
                    DataType::Utf8 => {
                        p.payload
                            .insert(name, Value::from(c.as_string::<i32>().value(r)));
                    }
                    DataType::Int64 => {
                        p.payload
                            .insert(name, Value::from(c.as_primitive::<Int64Type>().value(r)));
                    }
                    DataType::Float64 => {
                        p.payload
                            .insert(name, Value::from(c.as_primitive::<Float64Type>().value(r)));
                    }
                    DataType::Boolean => {
                        p.payload.insert(name, Value::from(c.as_boolean().value(r)));
                    }
                    other => panic!("column {name}: {other}"),
                }
            }
            out.push(p);
        }
    }
    out
}

/// Asserts two point lists are equal, naming the first difference.
pub fn assert_points_eq(got: &[Point], want: &[Point], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: point #{i} differs");
    }
    assert_eq!(got.len(), want.len(), "{what}: number of points");
}

/// Reads every partition of `src` in order, `batch_rows` per batch.
pub async fn read_all(src: &dyn Source, batch_rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for p in src.partitions().await.unwrap() {
        let b = vmig_testing::conformance::read_partition(src, &p.id.0, None, batch_rows)
            .await
            .unwrap_or_else(|e| panic!("partition {}: {e}", p.id.0));
        out.extend(b.into_iter().map(|(b, _)| b));
    }
    out
}

/// A private stand-in of a few small collections (for a server that dies, or stops), killed on
/// drop. `None` when the Python with qdrant-client is missing (SKIPPED; fails under CI).
pub struct Private {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Private {
    pub fn start(port: u16, collections: &str, extra: &[&str]) -> Option<Private> {
        let py = vmig_testing::service::python()?;
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/qdrant_standin.py");
        let child = Command::new(py)
            .arg(script)
            .args(["--port", &port.to_string(), "--collections", collections])
            .arg("--out")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut me = Private {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        for _ in 0..600 {
            if me.dir.path().join("ready").exists() {
                return Some(me);
            }
            if let Some(status) = me.child.try_wait().unwrap() {
                panic!("the private stand-in exited: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the private stand-in did not start in 60 s");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
