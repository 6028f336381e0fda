//! Integration tests against the Elasticsearch stand-in (noida-db, ES 8.15) and the OpenSearch
//! stand-in (osmem-server, OpenSearch 3.x), both started by `scripts/es start`.
//!
//! Every value read is compared with what the test indexed: vectors bit for bit as float32,
//! scalars exactly, missing fields as nulls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt32Type,
};
use common::*;
use serde_json::{json, Value};
use vmig_core::vector::{vector_info, VectorType, META_METRIC, META_PRIMARY_KEY};

const TYPES_DOCS: usize = 600;

/// What document `i` of the every-type index holds, typed as the test expects it back.
#[derive(Debug, Clone)]
struct TypesDoc {
    id: String,
    kw: Option<String>,
    txt: Option<String>,
    mot: Option<String>,
    w: Option<String>,
    l: Option<i64>,
    i: Option<i32>,
    s: Option<i16>,
    b: Option<i8>,
    ul: Option<i64>,
    f: Option<f32>,
    hf: Option<f32>,
    sf: Option<f32>,
    d: Option<f64>,
    bo: Option<bool>,
    o: Option<Value>,
    ne: Option<Value>,
    fl: Option<Value>,
    /// (as sent, expected epoch ms)
    dt: Option<(Value, i64)>,
    v: Vec<f32>,
    vb: Vec<i8>,
    vbit: Vec<i8>,
    sv: Vec<(u32, f32)>,
    rf: Vec<(u32, f32)>,
    tags: Option<Vec<String>>,
}

fn types_doc(i: usize) -> TypesDoc {
    use rand::{RngExt, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0x7E_5000 + i as u64);
    let present = !i.is_multiple_of(5); // every fifth document misses its optional fields
    fn opt<T>(present: bool, x: T) -> Option<T> {
        present.then_some(x)
    }
    let unicode = [
        "héllo",
        "世界",
        "🚀 rocket",
        "naïve café",
        "Ωmega",
        "\"quoted\" \\ slash",
    ];
    let dt_ms = 1_600_000_000_000i64 + i as i64 * 3_600_123;
    let dt_sent = if i.is_multiple_of(2) {
        json!(dt_ms)
    } else {
        let d = chrono::DateTime::from_timestamp_millis(dt_ms).unwrap();
        json!(d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    let mut sv: Vec<(u32, f32)> = (0..(1 + i % 4))
        .map(|k| ((i * 7 + k * 1000) as u32 % 30_000, 0.5 + k as f32 * 0.25))
        .collect();
    sv.sort_by_key(|e| e.0);
    sv.dedup_by_key(|e| e.0);
    TypesDoc {
        id: format!("doc-{i}-{}", unicode[i % unicode.len()]),
        kw: opt(present, format!("{} {i}", unicode[i % unicode.len()])),
        txt: opt(
            present,
            format!(
                "text {} with\nnewline {i}",
                unicode[(i + 1) % unicode.len()]
            ),
        ),
        mot: opt(present, format!("mot {i}")),
        w: opt(present, format!("w*{i}")),
        l: opt(present, i as i64 * 1_000_000_007 - 300_000_000_000),
        i: opt(present, i as i32 * 3_000_001 - 900_000_000),
        s: opt(present, (i as i32 * 97 - 30_000) as i16),
        b: opt(present, (i % 256) as i32 as u8 as i8),
        ul: opt(present, i64::MAX - i as i64),
        f: opt(present, r.random_range(-1e6f32..1e6)),
        hf: opt(present, 0.5 * (i % 100) as f32),
        sf: opt(present, (i % 1000) as f32 / 100.0),
        // Stand-in difference: noida-db re-serialises `_source` and its number parser is off by one
        // ulp for some 17-digit doubles, while Elasticsearch returns `_source` byte for byte. So
        // doubles here have few significant digits (exact on every parser path).
        d: opt(
            present,
            r.random_range(-1_000_000_000i64..1_000_000_000) as f64 / 64.0,
        ),
        bo: opt(present, i.is_multiple_of(3)),
        o: opt(present, json!({ "a": i as i64, "b": format!("o{i}") })),
        ne: opt(present, json!([{ "x": i as i64 }, { "x": i as i64 + 1 }])),
        fl: opt(present, json!({ "k": { "deep": format!("v{i}") } })),
        dt: opt(present, (dt_sent, dt_ms)),
        v: (0..16).map(|_| r.random_range(-2.0f32..2.0)).collect(),
        vb: (0..8)
            .map(|_| r.random_range(-128i32..=127) as i8)
            .collect(),
        vbit: (0..2)
            .map(|_| r.random_range(-128i32..=127) as i8)
            .collect(),
        sv: sv.clone(),
        rf: sv.iter().map(|(k, w)| (*k + 1, *w * 2.0)).collect(),
        tags: opt(
            present,
            (0..(i % 3))
                .map(|t| format!("tag{t}-{}", unicode[t]))
                .collect(),
        ),
    }
}

fn types_source(d: &TypesDoc) -> String {
    let mut o = serde_json::Map::new();
    let put = |o: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put(&mut o, "kw", d.kw.clone().map(Value::from));
    put(&mut o, "txt", d.txt.clone().map(Value::from));
    put(&mut o, "mot", d.mot.clone().map(Value::from));
    put(&mut o, "w", d.w.clone().map(Value::from));
    put(&mut o, "ck", Some(json!("constant")));
    put(&mut o, "l", d.l.map(Value::from));
    put(&mut o, "i", d.i.map(Value::from));
    put(&mut o, "s", d.s.map(Value::from));
    put(&mut o, "b", d.b.map(Value::from));
    put(&mut o, "ul", d.ul.map(Value::from));
    put(&mut o, "d", d.d.map(Value::from));
    put(&mut o, "bo", d.bo.map(Value::from));
    put(&mut o, "o", d.o.clone());
    put(&mut o, "ne", d.ne.clone());
    put(&mut o, "fl", d.fl.clone());
    put(&mut o, "dt", d.dt.clone().map(|x| x.0));
    put(&mut o, "vb", Some(json!(d.vb)));
    put(&mut o, "vbit", Some(json!(d.vbit)));
    let sparse = |s: &[(u32, f32)]| {
        Value::Object(
            s.iter()
                .map(|(k, w)| (k.to_string(), json!(*w as f64)))
                .collect(),
        )
    };
    put(&mut o, "sv", Some(sparse(&d.sv)));
    put(&mut o, "rf", Some(sparse(&d.rf)));
    put(&mut o, "tags", d.tags.clone().map(|t| json!(t)));
    // Floats are written as their shortest float32 decimal so the text parses back exactly.
    let mut text = Value::Object(o).to_string();
    text.pop();
    let f32s = |x: Option<f32>| x.map(|v| format!("{v}"));
    for (k, v) in [("f", f32s(d.f)), ("hf", f32s(d.hf)), ("sf", f32s(d.sf))] {
        if let Some(v) = v {
            text.push_str(&format!(r#","{k}":{v}"#));
        }
    }
    let v: Vec<String> = d.v.iter().map(|f| format!("{f}")).collect();
    text.push_str(&format!(r#","v":[{}]}}"#, v.join(",")));
    text
}

fn types_mapping() -> Value {
    json!({
        "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
        "mappings": { "properties": {
            "kw": { "type": "keyword" },
            "txt": { "type": "text", "fields": { "raw": { "type": "keyword" } } },
            "mot": { "type": "match_only_text" },
            "w": { "type": "wildcard" },
            "ck": { "type": "constant_keyword", "value": "constant" },
            "l": { "type": "long" }, "i": { "type": "integer" }, "s": { "type": "short" }, "b": { "type": "byte" },
            "ul": { "type": "unsigned_long" },
            "f": { "type": "float" }, "hf": { "type": "half_float" },
            "sf": { "type": "scaled_float", "scaling_factor": 100 },
            "d": { "type": "double" }, "bo": { "type": "boolean" },
            "o": { "properties": { "a": { "type": "long" }, "b": { "type": "keyword" } } },
            "ne": { "type": "nested" }, "fl": { "type": "flattened" },
            "dt": { "type": "date" },
            "v": { "type": "dense_vector", "dims": 16, "similarity": "l2_norm" },
            "vb": { "type": "dense_vector", "dims": 8, "element_type": "byte" },
            "vbit": { "type": "dense_vector", "dims": 16, "element_type": "bit" },
            "sv": { "type": "sparse_vector" },
            "rf": { "type": "rank_features" },
            "tags": { "type": "keyword" }
        }}
    })
}

async fn ensure_types_es(base: &str) -> &'static str {
    let index = "vmig_es_types";
    ensure_index(base, index, types_mapping(), TYPES_DOCS, |i| {
        let d = types_doc(i);
        (d.id.clone(), types_source(&d))
    })
    .await;
    index
}

fn types_config(base: &str, index: &str) -> Value {
    json!({ "url": base, "index": index, "arrays": ["tags"], "batch_size": 97 })
}

fn json_eq(text: &str, want: &Value) -> bool {
    serde_json::from_str::<Value>(text).unwrap() == *want
}

/// Checks every column of every row against [`types_doc`].
fn check_types(batches: &[RecordBatch]) {
    let by_id: HashMap<String, TypesDoc> = (0..TYPES_DOCS)
        .map(|i| {
            let d = types_doc(i);
            (d.id.clone(), d)
        })
        .collect();
    let mut seen = HashMap::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
        let ids = col("id").as_string::<i32>();
        for r in 0..b.num_rows() {
            let id = ids.value(r).to_string();
            let d = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("unexpected id {id}"));
            *seen.entry(id.clone()).or_insert(0) += 1;
            let s = |n: &str| {
                let a = col(n).as_string::<i32>();
                (!a.is_null(r)).then(|| a.value(r).to_string())
            };
            assert_eq!(s("kw"), d.kw, "{id} kw");
            assert_eq!(s("txt"), d.txt, "{id} txt");
            assert_eq!(s("mot"), d.mot, "{id} mot");
            assert_eq!(s("w"), d.w, "{id} w");
            assert_eq!(s("ck").as_deref(), Some("constant"), "{id} ck");
            macro_rules! prim {
                ($n:literal, $t:ty, $want:expr) => {{
                    let a = col($n).as_primitive::<$t>();
                    let got = (!a.is_null(r)).then(|| a.value(r));
                    assert_eq!(got, $want, "{id} {}", $n);
                }};
            }
            prim!("l", Int64Type, d.l);
            prim!("i", Int32Type, d.i);
            prim!("s", Int16Type, d.s);
            prim!("b", Int8Type, d.b);
            prim!("ul", Int64Type, d.ul);
            prim!("d", Float64Type, d.d);
            prim!("dt", Int64Type, d.dt.as_ref().map(|x| x.1));
            for (n, want) in [("f", d.f), ("hf", d.hf), ("sf", d.sf)] {
                let a = col(n).as_primitive::<Float32Type>();
                let got = (!a.is_null(r)).then(|| a.value(r).to_bits());
                assert_eq!(got, want.map(f32::to_bits), "{id} {n}");
            }
            let bo = col("bo").as_boolean();
            assert_eq!((!bo.is_null(r)).then(|| bo.value(r)), d.bo, "{id} bo");
            for (n, want) in [("o", &d.o), ("ne", &d.ne), ("fl", &d.fl)] {
                match (s(n), want) {
                    (Some(t), Some(w)) => assert!(json_eq(&t, w), "{id} {n}: {t}"),
                    (None, None) => {}
                    (g, w) => panic!("{id} {n}: got {g:?}, want {w:?}"),
                }
            }
            let v = col("v").as_fixed_size_list().value(r);
            let got: Vec<u32> = v
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|f| f.to_bits())
                .collect();
            let want: Vec<u32> = d.v.iter().map(|f| f.to_bits()).collect();
            assert_eq!(got, want, "{id} v");
            let vb = col("vb").as_fixed_size_list().value(r);
            let got: Vec<f32> = vb.as_primitive::<Float32Type>().values().to_vec();
            let want: Vec<f32> = d.vb.iter().map(|x| f32::from(*x)).collect();
            assert_eq!(got, want, "{id} vb");
            let vbit = col("vbit").as_fixed_size_binary().value(r);
            let want: Vec<u8> = d.vbit.iter().map(|x| *x as u8).collect();
            assert_eq!(vbit, &want[..], "{id} vbit");
            for (n, want) in [("sv", &d.sv), ("rf", &d.rf)] {
                let m = col(n).as_map();
                let entries = m.value(r);
                let keys = entries
                    .column(0)
                    .as_primitive::<UInt32Type>()
                    .values()
                    .to_vec();
                let vals = entries
                    .column(1)
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec();
                let got: Vec<(u32, f32)> = keys.into_iter().zip(vals).collect();
                assert_eq!(&got, want, "{id} {n}");
            }
            let tags = col("tags").as_list::<i32>();
            let got = (!tags.is_null(r)).then(|| {
                let t = tags.value(r);
                let t = t.as_string::<i32>();
                (0..t.len())
                    .map(|k| t.value(k).to_string())
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, d.tags, "{id} tags");
        }
    }
    assert_eq!(seen.len(), TYPES_DOCS, "every document once");
    assert!(seen.values().all(|c| *c == 1), "no document twice");
}

#[tokio::test]
async fn every_mapped_type_is_read_exactly() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_types_es(&base).await;
    for (method, slices) in [("auto", 1), ("scroll", 1), ("pit", 2), ("scroll", 3)] {
        let mut cfg = types_config(&base, index);
        cfg["method"] = json!(method);
        cfg["slices"] = json!(slices);
        let src = source("elasticsearch", cfg).await.unwrap();
        let schema = src.schema();
        // The schema comes from the mapping.
        let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(schema.metadata()[META_PRIMARY_KEY], "id");
        assert_eq!(schema.metadata()[META_METRIC], "L2");
        assert_eq!(ty("l"), DataType::Int64);
        assert_eq!(ty("b"), DataType::Int8);
        assert_eq!(ty("ul"), DataType::Int64);
        assert_eq!(ty("hf"), DataType::Float32);
        assert_eq!(ty("dt"), DataType::Int64);
        assert!(matches!(ty("tags"), DataType::List(_)));
        let v = vector_info(schema.field_with_name("v").unwrap()).unwrap();
        assert_eq!((v.kind, v.dim), (VectorType::Float32, 16));
        let vbit = vector_info(schema.field_with_name("vbit").unwrap()).unwrap();
        assert_eq!((vbit.kind, vbit.dim), (VectorType::Binary, 16));
        let sv = vector_info(schema.field_with_name("sv").unwrap()).unwrap();
        assert_eq!(sv.kind, VectorType::SparseFloat);
        assert!(
            schema.field_with_name("txt.raw").is_err(),
            "multi-fields are not columns"
        );
        let parts = src.partitions().await.unwrap();
        assert_eq!(parts.len(), slices);
        let est: u64 = parts.iter().filter_map(|p| p.estimated_rows).sum();
        assert_eq!(est, TYPES_DOCS as u64);
        let batches = read_all(src.as_ref(), 50).await.unwrap();
        check_types(&batches);
    }
}

#[tokio::test]
async fn dates_can_stay_text_and_fields_can_be_chosen() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_types_es(&base).await;
    let mut cfg = types_config(&base, index);
    cfg["dates"] = json!("string");
    cfg["fields"] = json!(["dt", "v"]);
    cfg["arrays"] = json!([]);
    cfg["pk"] = json!("_id");
    cfg["defaults"] = json!({ "dt": "none" });
    let src = source("elasticsearch", cfg).await.unwrap();
    let names: Vec<String> = src
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "dt", "v"]);
    let batches = read_all(src.as_ref(), 1000).await.unwrap();
    let mut n = 0;
    for b in &batches {
        let ids = b.column(0).as_string::<i32>();
        let dt = b.column(1).as_string::<i32>();
        assert_eq!(
            b.column(1).null_count(),
            0,
            "the default fills missing dates"
        );
        for r in 0..b.num_rows() {
            let i: usize = ids.value(r).split('-').nth(1).unwrap().parse().unwrap();
            let want = match types_doc(i).dt {
                Some((Value::String(s), _)) => s,
                Some((v, _)) => v.to_string(),
                None => "none".into(),
            };
            assert_eq!(dt.value(r), want);
            n += 1;
        }
    }
    assert_eq!(n, TYPES_DOCS);
}

/// Decodes the big index's rows and checks each against the generator; returns rows seen.
fn check_big(batches: &[RecordBatch], dim: usize, seen: &mut [u8]) -> usize {
    let mut rows = 0;
    for b in batches {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        let tag = b.column_by_name("tag").unwrap().as_string::<i32>();
        let v = b.column_by_name("v").unwrap().as_fixed_size_list();
        for r in 0..b.num_rows() {
            let i: usize = ids.value(r)[1..].parse().unwrap();
            assert_eq!(n.value(r), i as i64);
            assert_eq!(tag.value(r), format!("t{}", i % 7));
            let row = v.value(r);
            let got = row.as_primitive::<Float32Type>().values();
            let want = big_vector(i, dim);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "vector of d{i}"
            );
            seen[i] += 1;
            rows += 1;
        }
    }
    rows
}

#[tokio::test]
async fn scroll_pit_and_slices_give_the_same_rows() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_big_es(&base).await;
    for (method, slices) in [("pit", 1), ("scroll", 1), ("pit", 2), ("scroll", 2)] {
        let cfg = json!({ "url": base, "index": index, "method": method, "slices": slices, "batch_size": 2000 });
        let src = source("elasticsearch", cfg).await.unwrap();
        let batches = read_all(src.as_ref(), 4096).await.unwrap();
        let mut seen = vec![0u8; BIG_DOCS];
        let rows = check_big(&batches, BIG_DIM, &mut seen);
        assert_eq!(rows, BIG_DOCS, "{method} × {slices}");
        assert!(
            seen.iter().all(|c| *c == 1),
            "{method} × {slices}: every document exactly once"
        );
    }
}

#[tokio::test]
async fn a_query_filters_documents() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_big_es(&base).await;
    let cfg = json!({ "url": base, "index": index, "query": { "term": { "tag": "t3" } }, "batch_size": 5000 });
    let src = source("elasticsearch", cfg).await.unwrap();
    let parts = src.partitions().await.unwrap();
    let want = (0..BIG_DOCS).filter(|i| i % 7 == 3).count();
    assert_eq!(parts[0].estimated_rows, Some(want as u64));
    let batches = read_all(src.as_ref(), 8192).await.unwrap();
    let mut seen = vec![0u8; BIG_DOCS];
    assert_eq!(check_big(&batches, BIG_DIM, &mut seen), want);
}

#[tokio::test]
async fn positions_resume_exactly() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_types_es(&base).await;
    for method in ["pit", "scroll"] {
        let mut cfg = types_config(&base, index);
        cfg["method"] = json!(method);
        cfg["slices"] = json!(2);
        let src = source("elasticsearch", cfg).await.unwrap();
        let mut all = Vec::new();
        for part in ["0", "1"] {
            let full = read_partition(src.as_ref(), part, None, 50).await.unwrap();
            assert!(full.len() >= 3, "{method}: several batches");
            // Resume after the second batch: exactly the remaining rows follow.
            let rest = read_partition(src.as_ref(), part, Some(&full[1].1), 50)
                .await
                .unwrap();
            let ids = |bs: &[(RecordBatch, vmig_core::Position)]| -> Vec<String> {
                bs.iter()
                    .flat_map(|(b, _)| {
                        let a = b.column(0).as_string::<i32>();
                        (0..a.len())
                            .map(|i| a.value(i).to_string())
                            .collect::<Vec<_>>()
                    })
                    .collect()
            };
            assert_eq!(ids(&rest), ids(&full[2..]), "{method} partition {part}");
            all.extend(full.into_iter().map(|(b, _)| b));
        }
        check_types(&all);
    }
}

#[tokio::test]
async fn lost_scroll_and_expired_pit_are_recovered() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let index = ensure_types_es(&base).await;
    // Scroll: every scroll context is cleared after the first batch; the reader reopens and skips.
    let mut cfg = types_config(&base, index);
    cfg["method"] = json!("scroll");
    cfg["batch_size"] = json!(40);
    let src = source("elasticsearch", cfg).await.unwrap();
    let mut s = common::open_partition(src.as_ref(), "0", None, 40).unwrap();
    let mut batches = Vec::new();
    use futures::StreamExt;
    while let Some(b) = s.next().await {
        batches.push(b.unwrap().batch);
        if batches.len() == 2 {
            let r = http()
                .delete(format!("{base}/_search/scroll/_all"))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    }
    check_types(&batches);
    // PIT: a keep-alive of 1s and a consumer that pauses 1.5s between batches.
    let mut cfg = types_config(&base, index);
    cfg["method"] = json!("pit");
    cfg["keep_alive"] = json!("1s");
    cfg["batch_size"] = json!(150);
    let src = source("elasticsearch", cfg).await.unwrap();
    let mut s = common::open_partition(src.as_ref(), "0", None, 150).unwrap();
    let mut batches = Vec::new();
    while let Some(b) = s.next().await {
        batches.push(b.unwrap().batch);
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    }
    check_types(&batches);
}

#[tokio::test]
async fn missing_index_and_unknown_types_are_clear_errors() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    let err = source(
        "elasticsearch",
        json!({ "url": base, "index": "vmig_no_such_index" }),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("vmig_no_such_index") && err.contains("index"),
        "{err}"
    );
    let index = unique("vmig_es_unknown");
    let c = http();
    c.put(format!("{base}/{index}"))
        .json(&json!({ "mappings": { "properties": {
            "k": { "type": "keyword" },
            "loc": { "type": "completion" }
        }}}))
        .send()
        .await
        .unwrap();
    let err = source("elasticsearch", json!({ "url": base, "index": index }))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`loc`") && err.contains("completion"), "{err}");
    let src = source(
        "elasticsearch",
        json!({ "url": base, "index": index, "on_unknown_type": "skip" }),
    )
    .await
    .unwrap();
    assert!(src.schema().field_with_name("loc").is_err());
    c.delete(format!("{base}/{index}")).send().await.unwrap();
}

#[tokio::test]
async fn invalid_values_name_the_document_or_are_skipped() {
    let Some(base) = vmig_testing::service::elasticsearch() else {
        return;
    };
    // The mapping says `short`, but the index was created with `long` values stored: the
    // documents are valid for Elasticsearch (it coerces nothing in `_source`), yet 70000 does not
    // fit the Int16 column.
    let index = unique("vmig_es_invalid");
    let c = http();
    c.put(format!("{base}/{index}"))
        .json(&json!({ "mappings": { "properties": {
            "n": { "type": "long" },
            "v": { "type": "dense_vector", "dims": 2 }
        }}}))
        .send()
        .await
        .unwrap();
    let bulk = "{\"index\":{\"_id\":\"ok\"}}\n{\"n\":1,\"v\":[1,2]}\n{\"index\":{\"_id\":\"bad\"}}\n{\"n\":\"twelve\",\"v\":[1,2]}\n{\"index\":{\"_id\":\"novec\"}}\n{\"n\":3}\n";
    let r: Value = c
        .post(format!("{base}/{index}/_bulk?refresh=true"))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Elasticsearch rejects "twelve" for a long at index time; whatever the stand-in did, read
    // what was stored.
    let stored_bad = r["items"][1]["index"]["status"].as_u64() == Some(201);
    let src = source("elasticsearch", json!({ "url": base, "index": index }))
        .await
        .unwrap();
    let err = read_all(src.as_ref(), 10).await.unwrap_err().to_string();
    assert!(
        err.contains("_id `novec`") && err.contains("field `v`") || err.contains("_id `bad`"),
        "{err}"
    );
    let src = source(
        "elasticsearch",
        json!({ "url": base, "index": index, "on_invalid": "skip" }),
    )
    .await
    .unwrap();
    let batches = read_all(src.as_ref(), 10).await.unwrap();
    let ids: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_string::<i32>();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, ["ok"], "stored_bad={stored_bad}");
    c.delete(format!("{base}/{index}")).send().await.unwrap();
}

fn os_mapping(dim: usize) -> Value {
    json!({
        "settings": { "index": { "knn": true, "number_of_shards": 2, "number_of_replicas": 0 } },
        "mappings": { "properties": {
            "n": { "type": "long" },
            "tag": { "type": "keyword" },
            "v": { "type": "knn_vector", "dimension": dim,
                   "method": { "name": "hnsw", "space_type": "innerproduct", "engine": "lucene" } }
        }}
    })
}

#[tokio::test]
async fn opensearch_knn_vectors_by_scroll_and_slices() {
    let Some(base) = vmig_testing::service::opensearch() else {
        return;
    };
    let index = "vmig_os_big128";
    let docs = 20_000;
    ensure_index(&base, index, os_mapping(BIG_DIM), docs, |i| {
        (format!("d{i}"), big_doc(i, BIG_DIM).to_string())
    })
    .await;
    for slices in [1, 2] {
        let src = source(
            "opensearch",
            json!({ "url": base, "index": index, "slices": slices, "batch_size": 1000 }),
        )
        .await
        .unwrap();
        assert_eq!(src.schema().metadata()[META_METRIC], "IP");
        assert!(src.schema().metadata()["es.read_method"].starts_with("scroll"));
        let batches = read_all(src.as_ref(), 4096).await.unwrap();
        let mut seen = vec![0u8; docs];
        assert_eq!(check_big(&batches, BIG_DIM, &mut seen), docs);
        assert!(seen.iter().all(|c| *c == 1));
    }
    // OpenSearch has no `_shard_doc`, so PIT reads are refused with the reason.
    let err = source(
        "opensearch",
        json!({ "url": base, "index": index, "method": "pit" }),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("OpenSearch") && err.contains("scroll"),
        "{err}"
    );
}
