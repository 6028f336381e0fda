//! The corpus of real-world Elasticsearch/OpenSearch mappings in `../shared/realworld-es/`
//! (`VMIG_REALWORLD_ES`; 27 mappings from Elastic's rally tracks, OpenSearch's benchmark
//! workloads, RAGFlow, Dify, mem0, Haystack, …), read from there at test time — never copied
//! into the repository.
//!
//! Every mapping is created in the Elasticsearch or OpenSearch stand-in (by the product its
//! manifest entry names) with a few documents generated from the mapping itself (every mapped
//! field, one field per dynamic template, dates written in each alternative of their `format`),
//! then migrated with the `vmig` binary:
//!
//! * to Parquet staging files, read back and compared row by row with the generated documents
//!   (vectors bit for bit, dates as the epoch milliseconds the test computed), then `vmig verify`;
//! * into the real Milvus 2.3.5 and `vmig verify` (bit-exact re-read of both sides), where
//!   Milvus 2.3 can hold the schema (one vector field, Milvus field names).
//!
//! Mappings a stand-in cannot load are listed with its answer. Top-level sparse fields
//! (`sparse_vector`, `rank_features`) go to Parquet in Milvus's import layout and are compared
//! pair by pair; [`SPARSE_PENDING`] would name mappings whose sparse fields must be refused
//! instead (none now).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
};
use common::{assert_verify_clean, vmig_cmd, vmig_milvus, write_job};
use serde_json::{json, Value};
use vmig_testing::process::output_text;
use vmig_testing::service::{elasticsearch, milvus, opensearch, unique};

/// Documents per mapping: enough for every alternative of a date format, few enough to stay fast.
const DOCS: usize = 4;

/// Mappings whose top-level `sparse_vector`/`rank_features` fields the files sink must refuse.
/// Empty since the files sink writes sparse vectors in Milvus's import layout (#20): those
/// mappings migrate whole, their sparse fields compared pair by pair.
const SPARSE_PENDING: &[&str] = &[];

/// Example field names for RAGFlow's regex dynamic templates (by template name).
const REGEX_TEMPLATE_FIELDS: &[(&str, &str)] = &[
    ("kwd", "doc_kwd"),
    ("dt", "create_time"),
    ("string", "tag_with_weight"),
];

fn corpus_dir() -> Option<PathBuf> {
    vmig_testing::service::shared_corpus(
        "realworld-es",
        "VMIG_REALWORLD_ES",
        "the real-world mapping corpus",
    )
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Document `i`'s date written in one `format` alternative, and the epoch milliseconds
/// Elasticsearch reads from it (computed here, independently of vmig).
fn render_date(alt: &str, i: usize) -> (Value, i64) {
    let secs = 1_615_379_477 + i as i64 * 90_061; // 2021-03-10 12:31:17 UTC, + 1d 1h 1m 1s each
    let name = alt.trim().trim_start_matches("strict_");
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let (h, mi, s) = (tod / 3600, tod / 60 % 60, tod % 60);
    match name {
        "epoch_millis" => return (json!(secs * 1000), secs * 1000),
        "epoch_second" => return (json!(secs), secs * 1000),
        "" | "date_optional_time" | "date_time_no_millis" => {
            return (
                json!(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")),
                secs * 1000,
            )
        }
        _ => {}
    }
    // A custom pattern of y M d H m s and literals.
    let chars: Vec<char> = alt.chars().collect();
    let (mut out, mut k) = (String::new(), 0);
    let (mut has_time, mut quoted) = (false, false);
    while k < chars.len() {
        let c = chars[k];
        if c == '\'' {
            quoted = !quoted;
            k += 1;
            continue;
        }
        let mut n = 1;
        while !quoted && c.is_ascii_alphabetic() && chars.get(k + n) == Some(&c) {
            n += 1;
        }
        match (quoted, c) {
            (false, 'y') => out.push_str(&format!("{y:04}")),
            (false, 'M') => out.push_str(&format!("{mo:02}")),
            (false, 'd') => out.push_str(&format!("{d:02}")),
            (false, 'H') => {
                has_time = true;
                out.push_str(&format!("{h:02}"));
            }
            (false, 'm') => out.push_str(&format!("{mi:02}")),
            (false, 's') => out.push_str(&format!("{s:02}")),
            (false, c) if c.is_ascii_alphabetic() => panic!("the test cannot write `{alt}`"),
            (_, c) => out.push(c),
        }
        k += n;
    }
    let ms = if has_time {
        secs * 1000
    } else {
        days_from_civil(y, mo, d) * 86_400_000
    };
    (json!(out), ms)
}

/// A float32 vector of `dim` elements, of unit length when the similarity needs it.
fn float_vector(dim: usize, seed: usize, unit: bool) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|j| ((seed * 7919 + j * 104_729) % 2001) as f32 / 1000.0 - 1.0005)
        .collect();
    if unit {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// What the generator wrote, for the comparison: document id → `_source`, and the epoch
/// milliseconds of every top-level date.
#[derive(Default)]
struct Truth {
    docs: Vec<(String, Value)>,
    dates: BTreeMap<(String, String), i64>,
}

/// A value for the mapping entry `prop` in document `i`; `None` for types the generator
/// leaves out. Top-level dates record their expected epoch milliseconds in `date`.
fn value_of(prop: &Value, i: usize, salt: usize, date: &mut Option<i64>) -> Option<Value> {
    let t =
        prop.get("type")
            .and_then(Value::as_str)
            .unwrap_or(if prop.get("properties").is_some() {
                "object"
            } else {
                ""
            });
    let seed = i * 131 + salt;
    Some(match t {
        "text" | "keyword" | "match_only_text" | "wildcard" | "constant_keyword" => {
            json!(format!("w{seed} ✓"))
        }
        "long" | "integer" | "short" | "byte" | "unsigned_long" => json!((seed % 100) as i64),
        "float" | "half_float" | "scaled_float" | "double" => json!((seed % 64) as f64 * 0.5 + 0.5),
        "rank_feature" => json!((seed % 64) as f64 * 0.25 + 0.25),
        "boolean" => json!(seed.is_multiple_of(2)),
        "binary" => json!("aGVsbG8="),
        "geo_point" => json!({ "lat": 10.5, "lon": (seed % 90) as f64 + 0.25 }),
        "date" | "date_nanos" => {
            let format = prop.get("format").and_then(Value::as_str).unwrap_or("");
            let alts: Vec<&str> = format.split("||").collect();
            let (v, ms) = render_date(alts[i % alts.len()], i);
            *date = Some(ms);
            v
        }
        "dense_vector" | "knn_vector" => {
            let dim = prop
                .get("dims")
                .or_else(|| prop.get("dimension"))
                .and_then(Value::as_u64)
                .unwrap_or(8) as usize;
            let element = prop
                .get("element_type")
                .or_else(|| prop.get("data_type"))
                .and_then(Value::as_str)
                .unwrap_or("float");
            match element {
                "byte" => json!((0..dim)
                    .map(|j| ((seed + j * 37) % 256) as i64 - 128)
                    .collect::<Vec<_>>()),
                "bit" | "binary" => json!((0..dim / 8)
                    .map(|j| ((seed + j * 53) % 256) as i64 - 128)
                    .collect::<Vec<_>>()),
                _ => {
                    let sim = prop
                        .get("similarity")
                        .or_else(|| prop.pointer("/method/space_type"))
                        .or_else(|| prop.get("space_type"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    json!(float_vector(dim, seed, sim == "dot_product"))
                }
            }
        }
        "sparse_vector" | "rank_features" => {
            json!({ format!("{}", 100 + seed % 50): 0.5, format!("{}", 2000 + seed % 7): 1.25, "7": 0.125 })
        }
        "rank_vectors" => json!([[(seed % 100) as i64 - 50, 3], [1, -2]]),
        "object" | "nested" | "flattened" => {
            let mut o = serde_json::Map::new();
            match prop.get("properties").and_then(Value::as_object) {
                Some(props) => {
                    for (k, p) in props {
                        if let Some(v) = value_of(p, i, salt + k.len(), &mut None) {
                            o.insert(k.clone(), v);
                        }
                    }
                }
                None => {
                    o.insert("k".into(), json!(format!("v{seed}")));
                }
            }
            if t == "nested" {
                json!([Value::Object(o)])
            } else {
                Value::Object(o)
            }
        }
        _ => return None,
    })
}

/// Removes `analyzer`/`search_analyzer` settings from every property (they name analyzers the
/// index `settings` define).
fn strip_analyzers(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("analyzer");
            o.remove("search_analyzer");
            o.values_mut().for_each(strip_analyzers);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_analyzers),
        _ => {}
    }
}

/// The create-index body and mapping of a corpus file (a composable index template gives its
/// `template` part).
fn body_and_mapping(file: &Value) -> (Value, Value) {
    let body = match file.get("template") {
        Some(t) => t.clone(),
        None => file.clone(),
    };
    let mapping = body["mappings"].clone();
    (body, mapping)
}

/// Field names that one document per dynamic template creates, with that template's mapping.
fn template_fields(mapping: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for t in mapping["dynamic_templates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (name, def) in t.as_object().into_iter().flatten() {
            let m = def.get("match").and_then(Value::as_str);
            let field = match (def.get("match_pattern").and_then(Value::as_str), m) {
                (Some("regex"), Some(_)) => REGEX_TEMPLATE_FIELDS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f.to_string()),
                (_, Some(glob)) if glob.starts_with('*') && !glob[1..].contains('*') => {
                    Some(format!("g{}", &glob[1..]))
                }
                _ => None,
            };
            if let Some(f) = field {
                out.push((f, def["mapping"].clone()));
            }
        }
    }
    out
}

fn generate(mapping: &Value) -> Truth {
    let mut fields: Vec<(String, Value)> = mapping["properties"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    fields.extend(template_fields(mapping));
    let mut truth = Truth::default();
    for i in 0..DOCS {
        let id = format!("d{i}");
        let mut src = serde_json::Map::new();
        for (salt, (name, prop)) in fields.iter().enumerate() {
            let mut date = None;
            if let Some(v) = value_of(prop, i, salt, &mut date) {
                src.insert(name.clone(), v);
            }
            if let Some(ms) = date {
                truth.dates.insert((id.clone(), name.clone()), ms);
            }
        }
        truth.docs.push((id, Value::Object(src)));
    }
    truth
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn parquet_batches(dir: &Path) -> Vec<RecordBatch> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .flat_map(|p| {
            let f = std::fs::File::open(&p).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        })
        .collect()
}

/// The value at a dotted `path` of a document (one nested object taken as itself).
fn at_path<'a>(src: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = src;
    for seg in path.split('.') {
        if let Value::Array(a) = v {
            v = a.first()?;
        }
        v = v.get(seg)?;
    }
    Some(v)
}

fn without_path(src: &Value, path: &[&str]) -> Value {
    let mut v = src.clone();
    fn rm(v: &mut Value, path: &[&str]) {
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| rm(x, path)),
            Value::Object(o) if path.len() == 1 => {
                o.remove(path[0]);
            }
            Value::Object(o) => {
                if let Some(c) = o.get_mut(path[0]) {
                    rm(c, &path[1..]);
                }
            }
            _ => {}
        }
    }
    rm(&mut v, path);
    v
}

fn f32_bits(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| (x.as_f64().unwrap() as f32).to_bits())
        .collect()
}

/// Compares every column of every row read back from Parquet with the generated documents.
/// The (index, float32 bits) pairs of a sparse vector in Milvus's import layout
/// (`{"indices": [...], "values": [...]}`), in the written order.
fn sparse_pairs(v: &Value) -> Vec<(u64, u32)> {
    let indices = v["indices"].as_array().unwrap();
    let values = v["values"].as_array().unwrap();
    assert_eq!(indices.len(), values.len(), "{v}");
    indices
        .iter()
        .zip(values)
        .map(|(i, x)| (i.as_u64().unwrap(), (x.as_f64().unwrap() as f32).to_bits()))
        .collect()
}

/// A written `{token: weight}` object (numeric tokens) as ascending (index, float32 bits).
fn want_sparse(v: &Value) -> Vec<(u64, u32)> {
    let mut pairs: Vec<(u64, u32)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, x)| (k.parse().unwrap(), (x.as_f64().unwrap() as f32).to_bits()))
        .collect();
    pairs.sort_unstable();
    pairs
}

fn check_rows(
    file: &str,
    batches: &[RecordBatch],
    truth: &Truth,
    lifts: &BTreeMap<String, String>,
) {
    let by_id: BTreeMap<&str, &Value> = truth.docs.iter().map(|(i, d)| (i.as_str(), d)).collect();
    let mut seen = 0;
    for b in batches {
        let ids = b.column_by_name("es_id").unwrap().as_string::<i32>();
        for r in 0..b.num_rows() {
            let id = ids.value(r);
            let doc = by_id[id];
            seen += 1;
            for (f, col) in b.schema().fields().iter().zip(b.columns()) {
                let name = f.name().as_str();
                if name == "es_id" {
                    continue;
                }
                let at = format!("{file} {id} {name}");
                let want = match lifts.get(name) {
                    Some(path) => at_path(doc, path).cloned(),
                    None => doc.get(name).cloned(),
                };
                let want = want.map(|w| {
                    // A lifted vector is not repeated in its object's JSON column.
                    lifts.values().fold(w, |w, p| {
                        let segs: Vec<&str> = p.split('.').collect();
                        if segs[0] == name {
                            without_path(&w, &segs[1..])
                        } else {
                            w
                        }
                    })
                });
                if col.is_null(r) {
                    assert_eq!(want, None, "{at}: null");
                    continue;
                }
                let want = want.unwrap_or_else(|| panic!("{at}: a value where none was written"));
                match col.data_type() {
                    DataType::Utf8 => {
                        let got = col.as_string::<i32>().value(r);
                        match &want {
                            Value::String(s) => assert_eq!(got, s, "{at}"),
                            other => {
                                let got: Value = serde_json::from_str(got).unwrap();
                                if got.get("indices").is_some() && got.get("values").is_some() {
                                    // A sparse vector in Milvus's import layout: the written
                                    // `{token: weight}` as ascending (index, float32 bits).
                                    assert_eq!(sparse_pairs(&got), want_sparse(other), "{at}");
                                } else {
                                    assert_eq!(got, *other, "{at}");
                                }
                            }
                        }
                    }
                    DataType::Int64 => {
                        let got = col.as_primitive::<Int64Type>().value(r);
                        match truth.dates.get(&(id.to_string(), name.to_string())) {
                            Some(ms) => assert_eq!(got, *ms, "{at} (date {want})"),
                            None => assert_eq!(Some(got), want.as_i64(), "{at}"),
                        }
                    }
                    DataType::Int32 => assert_eq!(
                        i64::from(col.as_primitive::<Int32Type>().value(r)),
                        want.as_i64().unwrap(),
                        "{at}"
                    ),
                    DataType::Int16 => assert_eq!(
                        i64::from(col.as_primitive::<Int16Type>().value(r)),
                        want.as_i64().unwrap(),
                        "{at}"
                    ),
                    DataType::Int8 => assert_eq!(
                        i64::from(col.as_primitive::<Int8Type>().value(r)),
                        want.as_i64().unwrap(),
                        "{at}"
                    ),
                    DataType::Float32 => assert_eq!(
                        col.as_primitive::<Float32Type>().value(r).to_bits(),
                        (want.as_f64().unwrap() as f32).to_bits(),
                        "{at}"
                    ),
                    DataType::Float64 => assert_eq!(
                        col.as_primitive::<Float64Type>().value(r).to_bits(),
                        want.as_f64().unwrap().to_bits(),
                        "{at}"
                    ),
                    DataType::Boolean => {
                        assert_eq!(Some(col.as_boolean().value(r)), want.as_bool(), "{at}")
                    }
                    DataType::List(_) | DataType::FixedSizeList(_, _) => {
                        let bytes = vmig_testing::compare::vector_bytes(col.as_ref(), r);
                        let got: Vec<u32> = bytes
                            .chunks(4)
                            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        assert_eq!(got, f32_bits(&want), "{at}");
                    }
                    DataType::FixedSizeBinary(_) | DataType::Binary => {
                        let got = match col.as_fixed_size_binary_opt() {
                            Some(a) => a.value(r).to_vec(),
                            None => col.as_binary::<i32>().value(r).to_vec(),
                        };
                        let want: Vec<u8> = want
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_i64().unwrap() as i8 as u8)
                            .collect();
                        assert_eq!(got, want, "{at}");
                    }
                    other => panic!("{at}: the test does not compare {other:?}"),
                }
            }
        }
    }
    assert_eq!(seen, DOCS, "{file}: rows read back");
}

/// Why Milvus 2.3.5 cannot hold this target schema (from `vmig plan --json`), or `None`.
fn milvus_refusal(plan: &Value) -> Option<String> {
    let fields = plan["target_schema"]["fields"]
        .as_array()
        .or_else(|| plan["source_schema"]["fields"].as_array())?;
    let mut vectors = 0;
    for f in fields {
        let name = f["name"].as_str().unwrap_or("");
        let ty = f.to_string();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Some(format!("field name `{name}` is not a Milvus field name"));
        }
        if f["milvus_type"].is_null() {
            return Some(format!("field `{name}`: {}", f["milvus_error"]));
        }
        if ty.contains("Map(") || ty.contains("SparseFloatVector") {
            return Some("sparse vectors need Milvus 2.4+".into());
        }
        if ty.contains("FloatVector") || ty.contains("BinaryVector") {
            vectors += 1;
        }
    }
    match vectors {
        1 => None,
        0 => Some("no vector field".into()),
        n => Some(format!(
            "{n} vector fields (Milvus 2.3 holds one per collection)"
        )),
    }
}

#[test]
fn every_real_world_mapping_migrates_bit_exact() {
    let Some(dir) = corpus_dir() else { return };
    let (Some(es), Some(os)) = (elasticsearch(), opensearch()) else {
        return;
    };
    let m = milvus();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let work = tempfile::tempdir().unwrap();
    let mut unloadable = Vec::new();
    let mut parquet_ok = Vec::new();
    let mut milvus_ok = Vec::new();
    let mut milvus_not = Vec::new();
    let mut sparse_refused = Vec::new();
    let mut milvus_note = Vec::new();
    for (n, entry) in manifest["files"].as_array().unwrap().iter().enumerate() {
        let file = entry["file"].as_str().unwrap();
        let product = entry["product"].as_str().unwrap();
        let opensearch = product.starts_with("opensearch");
        let (base, plugin) = if opensearch {
            (os.as_str(), "opensearch")
        } else {
            (es.as_str(), "elasticsearch")
        };
        let raw: Value = serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap();
        let (body, mapping) = body_and_mapping(&raw);
        let truth = generate(&mapping);
        let index = format!("rw{n:02}");
        let docs = || {
            truth
                .docs
                .iter()
                .map(|(id, d)| (id.clone(), d.to_string()))
                .collect::<Vec<_>>()
        };
        // Load; a refused body is retried without `settings` and analyzers (the mapping is what is tested).
        let loaded = rt.block_on(async {
            let _ = http.delete(format!("{base}/{index}")).send().await;
            match vmig_testing::es::try_create_and_load(base, &index, &body, docs()).await {
                Ok(()) => Ok(None),
                Err(e) => {
                    let _ = http.delete(format!("{base}/{index}")).send().await;
                    // Analyzers are defined in the settings: leave them out too.
                    let mut bare_mapping = mapping.clone();
                    strip_analyzers(&mut bare_mapping);
                    let bare = json!({ "mappings": bare_mapping });
                    vmig_testing::es::try_create_and_load(base, &index, &bare, docs())
                        .await
                        .map(|()| Some(e.clone()))
                        .map_err(|again| format!("{e}; without settings and analyzers: {again}"))
                }
            }
        });
        match loaded {
            Ok(None) => {}
            Ok(Some(settings)) => eprintln!("{file}: loaded without its settings ({settings})"),
            Err(e) => {
                unloadable.push(format!("{file}: {e}"));
                continue;
            }
        }
        // Vectors inside objects and (single) nested objects are lifted into columns.
        let mut lifts = BTreeMap::new();
        let mut rank_vectors = false;
        for v in entry["vector_fields"].as_array().into_iter().flatten() {
            let path = v["path"].as_str().unwrap_or("");
            let ty = v["type"].as_str().unwrap_or("");
            if path.contains('.')
                && !path.contains('[')
                && matches!(ty, "dense_vector" | "knn_vector")
            {
                lifts.insert(path.replace('.', "_"), path.to_string());
            }
            rank_vectors |= ty == "rank_vectors";
        }
        let lift_toml: Vec<String> = lifts
            .iter()
            .map(|(c, p)| format!("{c} = \"{p}\""))
            .collect();
        let source_toml = |extra: &str| {
            format!(
                "[source]\ntype = \"{plugin}\"\nurl = \"{base}\"\nindex = \"{index}\"\nid_column = \"es_id\"\nbatch_size = 3\nvectors = {{ {} }}\n{extra}",
                lift_toml.join(", ")
            )
        };
        let skip = if rank_vectors {
            "on_unknown_type = \"skip\"\n"
        } else {
            ""
        };
        let out = work.path().join(&index);
        let files_job = |extra: &str| {
            let _ = std::fs::remove_dir_all(&out);
            write_job(
                work.path(),
                &index,
                &format!(
                    "{}\n[sink]\ntype = \"files\"\npath = \"{}\"\nformat = \"parquet\"\n",
                    source_toml(&format!("{skip}{extra}")),
                    out.display()
                ),
            )
        };
        if rank_vectors {
            // Refused by name without `on_unknown_type = "skip"`.
            let job = write_job(
                work.path(),
                &format!("{index}-strict"),
                &format!(
                    "{}\n[sink]\ntype = \"files\"\npath = \"{}\"\nformat = \"parquet\"\n",
                    source_toml(""),
                    out.display()
                ),
            );
            let o = vmig_cmd(&["plan", job.to_str().unwrap()]).output().unwrap();
            let text = output_text(&o);
            assert!(!o.status.success(), "{file}: {text}");
            assert!(
                text.contains("field `col_pali_vectors`: type `rank_vectors` (element_type bit) holds several vectors per document"),
                "{file}: {text}"
            );
        }
        let job = files_job("");
        let plan = vmig_cmd(&["plan", job.to_str().unwrap()]).output().unwrap();
        let plan_text = output_text(&plan);
        assert!(plan.status.success(), "{file}: plan: {plan_text}");
        if mapping.get("dynamic_templates").is_some() {
            assert!(
                plan_text.contains("es.dynamic_templates = "),
                "{file}: {plan_text}"
            );
        }
        let o = vmig_cmd(&[
            "migrate",
            job.to_str().unwrap(),
            "--state",
            "none",
            "--json",
        ])
        .output()
        .unwrap();
        let pending = SPARSE_PENDING.contains(&file);
        let job = if pending {
            let text = output_text(&o);
            assert!(
                !o.status.success(),
                "{file}: sparse fields reached Parquet; empty SPARSE_PENDING: {text}"
            );
            assert!(
                text.contains("cannot be written to parquet staging files"),
                "{file}: {text}"
            );
            sparse_refused.push(file.to_string());
            // The rest of the mapping still migrates.
            let sparse: Vec<String> = plan_text
                .lines()
                .filter(|l| l.contains("SparseFloatVector"))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect();
            let keep: Vec<String> = mapping["properties"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .cloned()
                .chain(template_fields(&mapping).into_iter().map(|(f, _)| f))
                .filter(|f| !sparse.contains(f))
                .map(|f| format!("\"{f}\""))
                .collect();
            let job = files_job(&format!("fields = [{}]\n", keep.join(", ")));
            let o = vmig_cmd(&[
                "migrate",
                job.to_str().unwrap(),
                "--state",
                "none",
                "--json",
            ])
            .output()
            .unwrap();
            assert!(
                o.status.success(),
                "{file} without sparse fields: {}",
                output_text(&o)
            );
            job
        } else {
            assert!(o.status.success(), "{file}: migrate: {}", output_text(&o));
            job
        };
        let batches = parquet_batches(&out);
        check_rows(file, &batches, &truth, &lifts);
        let v = vmig_cmd(&["verify", job.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert_verify_clean(&v, DOCS as u64);
        parquet_ok.push(file.to_string());

        // Into Milvus 2.3.5 where it can hold the schema.
        let Some(m) = &m else { continue };
        let plan_json = vmig_cmd(&["plan", job.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let plan_json: Value = serde_json::from_slice(&plan_json.stdout).unwrap_or(Value::Null);
        if let Some(why) =
            milvus_refusal(&plan_json).or(pending.then(|| "sparse fields".to_string()))
        {
            milvus_not.push(format!("{file}: {why}"));
            continue;
        }
        let binary = plan_json.to_string().contains("BinaryVector");
        // A `nested` field is a JSON array, which Milvus 2.3's JSON type refuses (it holds
        // objects): leave such fields out of the Milvus run.
        let nested: Vec<&String> = mapping["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, p)| p["type"] == "nested")
            .map(|(k, _)| k)
            .collect();
        let milvus_fields = if nested.is_empty() {
            String::new()
        } else {
            let keep: Vec<String> = mapping["properties"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|k| !nested.contains(k))
                .map(|k| format!("\"{k}\""))
                .collect();
            milvus_note.push(format!("{file}: nested {nested:?} left out of Milvus"));
            format!("fields = [{}]\n", keep.join(", "))
        };
        let collection = unique("rw");
        let job_m = write_job(
            work.path(),
            &format!("{index}-milvus"),
            &format!(
                "{}\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nindex = {{ type = \"{}\" }}\nload = true\n",
                source_toml(&format!("{skip}{milvus_fields}")),
                m.uri,
                m.user,
                if binary { "BIN_FLAT" } else { "FLAT" }
            ),
        );
        let job_m = job_m.to_str().unwrap();
        let o = vmig_milvus(&["migrate", job_m, "--state", "none", "--json"], m);
        assert!(o.status.success(), "{file} → Milvus: {}", output_text(&o));
        let v = vmig_milvus(&["verify", job_m, "--json"], m);
        assert_verify_clean(&v, DOCS as u64);
        m.drop_collection(&collection);
        milvus_ok.push(file.to_string());
    }
    eprintln!("Parquet ({}): {}", parquet_ok.len(), parquet_ok.join(", "));
    eprintln!(
        "Milvus 2.3.5 ({}): {}",
        milvus_ok.len(),
        milvus_ok.join(", ")
    );
    eprintln!("not into Milvus 2.3.5:\n  {}", milvus_not.join("\n  "));
    eprintln!(
        "Milvus runs without some fields:\n  {}",
        milvus_note.join("\n  ")
    );
    eprintln!(
        "sparse fields refused by the files sink (SPARSE_PENDING): {}",
        sparse_refused.join(", ")
    );
    eprintln!("the stand-ins cannot load:\n  {}", unloadable.join("\n  "));
    let loaded_pending: Vec<&str> = SPARSE_PENDING
        .iter()
        .copied()
        .filter(|f| !unloadable.iter().any(|u| u.starts_with(&format!("{f}:"))))
        .collect();
    assert_eq!(sparse_refused, loaded_pending, "SPARSE_PENDING is exact");
    assert_eq!(
        parquet_ok.len() + unloadable.len(),
        manifest["files"].as_array().unwrap().len()
    );
}
