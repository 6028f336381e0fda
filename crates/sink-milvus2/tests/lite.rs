//! The `milvus2` sink and the `milvus2` source against a real Milvus 2.5 storage engine:
//! milvus-lite 2.5.1 (PyPI `milvus-lite==2.5.1`, a C++ server built from Milvus 2.5; started by
//! `scripts/milvus-lite start`, variables `VMIG_MILVUS_LITE_URI` and `VMIG_MILVUS_LITE_PYTHON`).
//! It serves a subset of the gRPC API (no `GetVersion`, `Import` or iterators), so the sink
//! writes by `Insert` and the source reads by primary-key paging (its only mode).
//!
//! What 2.3.5 cannot show and lite can: several vector fields in one collection, float16,
//! bfloat16 and sparse vectors, and default values. Each is written by vmig, read back by
//! pymilvus 2.5.18 (an independent client) and by vmig's `milvus2` source, and compared bit for
//! bit, and copied by the `milvus2` source into a second collection. Nullable fields: lite 2.5.1 refuses them at `CreateCollection` ("MilvusLite doesn't
//! support nullable"), so the test pins that the refusal reaches the user verbatim. A default
//! value is checked as a schema property with every value present: lite 2.5.1 does not fill the
//! default into rows that omit the field (pymilvus 2.5.18 inserting `None` or leaving the key out
//! reads back the next row's value or garbage), so "missing → default" cannot be tested here. Lite
//! does not serve `ShowPartitions`: the source then reads the collection as one unit.
//!
//! A Milvus 2.5 full-text collection (created and filled by pymilvus: a VarChar with an analyzer
//! and `enable_match`, its BM25 function writing a sparse vector, a clustering key, a field with
//! `mmap.enabled`) is copied by the source and the sink: the function, its output field, the
//! type parameters and the clustering key arrive, the rows arrive bit-exactly, and a BM25 search
//! on the copy (whose sparse vectors lite computed itself) ranks like one on the original.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float32Array,
    Int64Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Float16Type, Float32Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use half::f16;
use serde_json::{json, Value};
use vmig_core::pipeline::{NoProgress, Pipeline, RunReport};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_core::vector;
use vmig_core::Result;
use vmig_milvus::meta;
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2 as _;
use vmig_source_milvus2 as _;
use vmig_testing::mock::MockSource;
use vmig_testing::service::{milvus_lite, unique, MilvusServer};

const DIM: usize = 4;
const ROWS: i64 = 40;
/// The default value of field `d`.
const DEFAULT_D: i64 = -77;

fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `id`, four vector fields of four kinds, and `d` with a default value; indexes for every
/// vector field (lite loads only collections whose vector fields are all indexed, and indexes
/// sparse vectors only with `SPARSE_INVERTED_INDEX`/`SPARSE_WAND`).
fn schema() -> SchemaRef {
    let indexes = json!([
        { "field": "v", "index_type": "FLAT", "metric_type": "L2" },
        { "field": "h", "index_type": "FLAT", "metric_type": "L2" },
        { "field": "b", "index_type": "FLAT", "metric_type": "IP" },
        { "field": "sp", "index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP",
          "params": { "drop_ratio_build": 0.0 } },
    ]);
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("v", DIM),
            vector::float16_vector_field("h", DIM),
            vector::bfloat16_vector_field("b", DIM),
            vector::sparse_float_vector_field("sp"),
            Field::new("d", DataType::Int64, false)
                .with_metadata(tags(&[(meta::DEFAULT_VALUE, &DEFAULT_D.to_string())])),
        ])
        .with_metadata(tags(&[
            (vector::META_PRIMARY_KEY, "id"),
            (meta::CONSISTENCY, "Strong"),
            (meta::INDEXES, &indexes.to_string()),
        ])),
    )
}

/// Bits of float16 element `k` of row `i`: every exponent range, signs, subnormals and -0.
fn h_bits(i: i64, k: usize) -> u16 {
    let x = (i as u16)
        .wrapping_mul(2654)
        .wrapping_add((k as u16).wrapping_mul(40503));
    // Keep finite (no all-ones exponent: no inf/NaN, which compare as bits anyway but
    // would make the search index's input meaningless).
    if x & 0x7c00 == 0x7c00 {
        x & !0x4000
    } else {
        x
    }
}

/// Bits of bfloat16 element `k` of row `i`.
fn b_bits(i: i64, k: usize) -> u16 {
    let x = (i as u16).wrapping_mul(9973).wrapping_add(k as u16 * 7919) ^ 0x3c00;
    if x & 0x7f80 == 0x7f80 {
        x & !0x4000
    } else {
        x
    }
}

/// Sparse row `i`: 1 to 5 pairs, ascending indices (some large), values with odd bits.
fn sparse_row(i: i64) -> Vec<(u32, f32)> {
    (0..(i % 5 + 1) as u32)
        .map(|k| {
            (
                k * 1_000_003 + (i as u32 % 7) * 3 + k,
                f32::from_bits(0x3f80_0001 + (i as u32) * 977 + k),
            )
        })
        .collect()
}

fn dense(i: i64, k: usize) -> f32 {
    f32::from_bits(0x3e00_0000 ^ ((i as u32) * 0x9e37 + k as u32 * 0x85eb))
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let v: Vec<f32> = ids
        .iter()
        .flat_map(|&i| (0..DIM).map(move |k| dense(i, k)))
        .collect();
    let h = Float16Array::from_iter_values(
        ids.iter()
            .flat_map(|&i| (0..DIM).map(move |k| f16::from_bits(h_bits(i, k)))),
    );
    let b = FixedSizeBinaryArray::try_from_iter(ids.iter().map(|&i| {
        (0..DIM)
            .flat_map(|k| b_bits(i, k).to_le_bytes())
            .collect::<Vec<u8>>()
    }))
    .unwrap();
    let rows: Vec<Vec<(u32, f32)>> = ids.iter().map(|&i| sparse_row(i)).collect();
    let sp = vector::sparse_float_vector_array(
        rows.iter().flatten().map(|p| p.0).collect(),
        rows.iter().flatten().map(|p| p.1).collect(),
        rows.iter().map(Vec::len).collect(),
    )
    .unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(vector::float_vector_array(Float32Array::from(v), DIM).unwrap()),
        Arc::new(
            FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float16, true)),
                DIM as i32,
                Arc::new(h),
                None,
            )
            .unwrap(),
        ),
        Arc::new(b),
        sp,
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 3 - 50))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// One row as both readers are compared: vector bits exactly.
#[derive(Debug, PartialEq)]
struct Row {
    id: i64,
    v: Vec<u32>,
    h: Vec<u8>,
    b: Vec<u8>,
    sp: Vec<(u32, u32)>,
    d: i64,
}

fn expected_rows() -> Vec<Row> {
    (0..ROWS)
        .map(|i| Row {
            id: i,
            v: (0..DIM).map(|k| dense(i, k).to_bits()).collect(),
            h: (0..DIM).flat_map(|k| h_bits(i, k).to_le_bytes()).collect(),
            b: (0..DIM).flat_map(|k| b_bits(i, k).to_le_bytes()).collect(),
            sp: sparse_row(i)
                .into_iter()
                .map(|(k, x)| (k, x.to_bits()))
                .collect(),
            d: i * 3 - 50,
        })
        .collect()
}

/// Drops the collection when the test ends, also when an assertion fails (through pymilvus,
/// ignoring its outcome: a panic while unwinding would abort the test binary).
struct DropOnExit<'a>(&'a MilvusServer, &'a str);

impl Drop for DropOnExit<'_> {
    fn drop(&mut self) {
        let Some(python) = &self.0.python else { return };
        let script = format!(
            "from pymilvus import MilvusClient\nMilvusClient(uri='{}').drop_collection('{}')",
            self.0.uri, self.1
        );
        let _ = std::process::Command::new(python)
            .args(["-c", &script])
            .output();
    }
}

/// Writes `batches` (one source partition) through the `milvus2` sink in insert mode.
async fn write(
    server: &MilvusServer,
    collection: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<RunReport> {
    let source = MockSource {
        schema,
        partitions: vec![batches],
        fail_at: None,
        target_partitions: vec![None],
    };
    let sink = parse_sink(
        "milvus2",
        json!({ "uri": server.uri, "collection": collection, "mode": "insert", "load": true }),
    )?
    .build(&BuildContext::default())
    .await?;
    Pipeline::new(Box::new(source), sink)
        .run(Arc::new(NoProgress))
        .await
}

/// Copies collection `from` into `to` with the `milvus2` source and sink (insert mode).
async fn copy_collection(server: &MilvusServer, from: &str, to: &str) -> Result<RunReport> {
    let source = parse_source("milvus2", json!({ "uri": server.uri, "collection": from }))?
        .build(&BuildContext::default())
        .await?;
    let sink = parse_sink(
        "milvus2",
        json!({ "uri": server.uri, "collection": to, "mode": "insert", "load": true }),
    )?
    .build(&BuildContext::default())
    .await?;
    Pipeline::new(source, sink).run(Arc::new(NoProgress)).await
}

/// Every row and the schema as pymilvus 2.5 reads them (an independent client): vectors as
/// raw bits, the schema's fields with type, dim, nullable and default value.
fn pymilvus_read(server: &MilvusServer, collection: &str) -> Value {
    let out = server.pymilvus(&format!(
        r#"
import json, struct
c = Collection('{collection}')
rows = c.query('id >= 0', output_fields=['*'], limit=16384)
def bits(x): return struct.unpack('<I', struct.pack('<f', x))[0]
def raw(x): return (x[0] if isinstance(x, list) else x).hex()
out = []
for r in sorted(rows, key=lambda r: r['id']):
    out.append(dict(id=r['id'], v=[bits(x) for x in r['v']], h=raw(r['h']), b=raw(r['b']),
                    sp=sorted([int(k), bits(x)] for k, x in r['sp'].items()), d=r['d']))
def default(f):
    dv = getattr(f, 'default_value', None)  # a milvus-proto ValueField, or None
    kind = dv.WhichOneof('data') if dv is not None else None
    return getattr(dv, kind) if kind else None
fields = []
for f in c.schema.fields:
    fields.append(dict(name=f.name, type=f.dtype.name, dim=f.params.get('dim'),
                       nullable=bool(getattr(f, 'nullable', False)),
                       default=default(f)))
print(json.dumps(dict(rows=out, fields=fields), default=str))
"#
    ));
    serde_json::from_str(out.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("pymilvus printed no JSON ({e}): {out}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pymilvus_rows(read: &Value) -> Vec<Row> {
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    read["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Row {
            id: r["id"].as_i64().unwrap(),
            v: r["v"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            h: unhex(r["h"].as_str().unwrap()),
            b: unhex(r["b"].as_str().unwrap()),
            sp: r["sp"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap() as u32))
                .collect(),
            d: r["d"].as_i64().unwrap(),
        })
        .collect()
}

/// The rows of `batch` (the `milvus2` source's Arrow layout) in the same form.
fn arrow_rows(batch: &RecordBatch) -> Vec<Row> {
    let col = |n: &str| {
        batch
            .column_by_name(n)
            .unwrap_or_else(|| panic!("no column {n}"))
    };
    let ids = col("id").as_primitive::<Int64Type>();
    let v = col("v").as_fixed_size_list();
    let h = col("h").as_fixed_size_list();
    let b = col("b").as_fixed_size_binary();
    let sp = col("sp").as_map();
    let d = col("d").as_primitive::<Int64Type>();
    (0..batch.num_rows())
        .map(|row| {
            let pairs = sp.value(row);
            let keys = pairs
                .column(0)
                .as_primitive::<arrow::datatypes::UInt32Type>();
            let values = pairs.column(1).as_primitive::<Float32Type>();
            Row {
                id: ids.value(row),
                v: v.value(row)
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
                h: h.value(row)
                    .as_primitive::<Float16Type>()
                    .values()
                    .iter()
                    .flat_map(|x| x.to_bits().to_le_bytes())
                    .collect(),
                b: b.value(row).to_vec(),
                sp: (0..keys.len())
                    .map(|k| (keys.value(k), values.value(k).to_bits()))
                    .collect(),
                d: d.value(row),
            }
        })
        .collect()
}

#[tokio::test]
async fn several_vector_kinds_and_a_default_round_trip_through_pymilvus_and_the_source(
) -> Result<()> {
    let Some(server) = milvus_lite() else {
        return Ok(());
    };
    let name = unique("vmig_lite_types");
    let _drop = DropOnExit(&server, &name);
    let result = async {
        let report = write(
            &server,
            &name,
            schema(),
            vec![batch(0..25), batch(25..ROWS)],
        )
        .await?;
        assert_eq!(report.rows_written, ROWS as u64);
        let want = expected_rows();

        // (a) pymilvus 2.5.18 reads what vmig wrote: every row, bits exactly.
        let read = pymilvus_read(&server, &name);
        let got = pymilvus_rows(&read);
        assert_eq!(got.len(), want.len(), "rows pymilvus read");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "row {} as pymilvus reads it ({})", w.id, hex(&w.b));
        }
        // The collection lite describes is the one asked for: types, dims, the default value,
        // nothing nullable.
        let fields: BTreeMap<String, Value> = read["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f.clone()))
            .collect();
        let described: Vec<(&str, &str, Option<String>)> = fields
            .values()
            .map(|f| {
                (
                    f["name"].as_str().unwrap(),
                    f["type"].as_str().unwrap(),
                    f["dim"]
                        .as_str()
                        .map(str::to_string)
                        .or(f["dim"].as_i64().map(|d| d.to_string())),
                )
            })
            .collect();
        assert_eq!(
            described,
            vec![
                ("b", "BFLOAT16_VECTOR", Some("4".to_string())),
                ("d", "INT64", None),
                ("h", "FLOAT16_VECTOR", Some("4".to_string())),
                ("id", "INT64", None),
                ("sp", "SPARSE_FLOAT_VECTOR", None),
                ("v", "FLOAT_VECTOR", Some("4".to_string())),
            ]
        );
        assert!(
            fields.values().all(|f| f["nullable"] == json!(false)),
            "{fields:?}"
        );
        assert_eq!(
            fields["d"]["default"],
            json!(DEFAULT_D),
            "{:?}",
            fields["d"]
        );
        assert_eq!(fields["v"]["default"], Value::Null, "{:?}", fields["v"]);

        // (b) vmig's read path: the `milvus2` source's schema (`DescribeCollection`) and its
        // primary-key paging and reply decoding (`vmig_milvus::scan`, the code the source runs)
        // give the same rows and describe the default and the vector kinds.
        let client = MilvusClient::connect(&ConnectOptions::new(server.uri.clone())).await?;
        // Lite answers `GetVersion` with UNIMPLEMENTED: connecting works, the version is unknown
        // (so version checks say "unknown", never a wrong release).
        assert_eq!(client.server_version(), "");
        assert_eq!(client.server().release(), None);
        assert_eq!(client.server().at_least(2, 5), None);
        let info = client.describe_collection(&name).await?;
        let pages = vmig_milvus::scan::read_collection(&client, &name, None, &[], 7).await?;
        let all = concat_batches(&info.arrow, &pages)?;
        assert!(pages.len() > 1, "{} pages", pages.len());
        assert_eq!(arrow_rows(&all), want, "rows vmig's milvus2 read path read");
        let d = info.arrow.field_with_name("d")?.clone();
        assert_eq!(
            d.metadata().get(meta::DEFAULT_VALUE).map(String::as_str),
            Some(DEFAULT_D.to_string().as_str()),
            "{d:?}"
        );
        assert!(!d.is_nullable(), "{d:?}");
        for (field, kind) in [
            ("h", "float16_vector"),
            ("b", "bfloat16_vector"),
            ("sp", "sparse_float_vector"),
        ] {
            let f = info.arrow.field_with_name(field)?.clone();
            assert_eq!(
                f.metadata().get(vector::META_TYPE).map(String::as_str),
                Some(kind),
                "{f:?}"
            );
        }
        // (c) The `milvus2` source itself (lite has no `ShowPartitions`, so it reads the
        // collection as one unit) into a second collection through the sink: the same rows,
        // and the same schema (default value, vector kinds).
        let copy = format!("{name}_copy");
        let _drop_copy = DropOnExit(&server, &copy);
        let report = copy_collection(&server, &name, &copy).await?;
        assert_eq!(report.rows_written, ROWS as u64);
        let copied = pymilvus_read(&server, &copy);
        assert_eq!(
            pymilvus_rows(&copied),
            want,
            "rows of the copy as pymilvus reads them"
        );
        assert_eq!(copied["fields"], read["fields"], "the copy's schema");
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    result
}

#[tokio::test]
async fn lite_refuses_a_nullable_field_and_the_sink_says_so() -> Result<()> {
    let Some(server) = milvus_lite() else {
        return Ok(());
    };
    let name = unique("vmig_lite_nullable");
    let _drop = DropOnExit(&server, &name);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("v", 2),
        Field::new("n", DataType::Int64, true).with_metadata(tags(&[(meta::NULLABLE, "true")])),
    ]));
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(
                vector::float_vector_array(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5]), 2)
                    .unwrap(),
            ),
            Arc::new(Int64Array::from(vec![Some(5), None])),
        ],
    )?;
    let err = write(&server, &name, schema, vec![rows]).await.err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("MilvusLite doesn't support nullable") && msg.contains(&name),
        "{msg}"
    );
    Ok(())
}

/// Rows of the full-text test: `(id, text, dense, year)`.
fn text_rows() -> Vec<(i64, String, Vec<f32>, i64)> {
    const WORDS: [&str; 12] = [
        "vector",
        "search",
        "milvus",
        "migration",
        "exact",
        "bits",
        "rust",
        "arrow",
        "index",
        "sparse",
        "dense",
        "copy",
    ];
    (0..30i64)
        .map(|i| {
            let n = 3 + (i % 5) as usize;
            let text = (0..n)
                .map(|j| WORDS[(i as usize * 7 + j * j * 3 + j) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ");
            let dense = (0..4).map(|k| i as f32 * 0.375 - k as f32 * 1.25).collect();
            (i, text, dense, 2000 + i % 4)
        })
        .collect()
}

/// A Milvus 2.5 full-text collection: pymilvus creates one, vmig's sink another from Arrow
/// metadata (the BM25 function, analyzer and match on the VarChar, `mmap_enabled` on the dense
/// vector, a clustering key), both with the same rows. Lite then holds the same schema for both
/// and computes the same BM25 vectors: searches rank alike, scores bit for bit. Lite does not
/// list functions in `DescribeCollection`, so the source refuses to copy its collection (the
/// function's output field would otherwise lose its function) — checked too.
#[tokio::test]
async fn a_bm25_function_schema_is_created_and_computed_by_the_target() -> Result<()> {
    let Some(server) = milvus_lite() else {
        return Ok(());
    };
    let reference = unique("vmig_lite_bm25_ref");
    let copy = unique("vmig_lite_bm25_vmig");
    let _drop_ref = DropOnExit(&server, &reference);
    let _drop_copy = DropOnExit(&server, &copy);
    let rows = text_rows();
    let rows_json = json!(rows
        .iter()
        .map(
            |(id, text, dense, year)| json!({"id": id, "text": text, "dense": dense, "year": year})
        )
        .collect::<Vec<_>>());
    let created = server.pymilvus(&format!(
        r#"
import json
from pymilvus import MilvusClient, DataType, Function, FunctionType
c = MilvusClient(uri='{uri}')
s = c.create_schema(auto_id=False, enable_dynamic_field=False)
s.add_field('id', DataType.INT64, is_primary=True)
s.add_field('text', DataType.VARCHAR, max_length=1000, enable_analyzer=True,
            analyzer_params={{'type': 'english'}}, enable_match=True)
s.add_field('sparse', DataType.SPARSE_FLOAT_VECTOR)
s.add_field('dense', DataType.FLOAT_VECTOR, dim=4, mmap_enabled=True)
s.add_field('year', DataType.INT64, is_clustering_key=True)
s.add_function(Function(name='text_bm25', function_type=FunctionType.BM25,
                        input_field_names=['text'], output_field_names=['sparse']))
idx = c.prepare_index_params()
idx.add_index(field_name='sparse', index_type='SPARSE_INVERTED_INDEX', metric_type='BM25')
idx.add_index(field_name='dense', index_type='FLAT', metric_type='L2')
c.create_collection('{reference}', schema=s, index_params=idx, consistency_level='Strong')
c.insert('{reference}', json.loads('{rows}'))
print('created')
"#,
        uri = server.uri,
        rows = rows_json,
    ));
    assert!(created.contains("created"), "{created}");

    // The source refuses the reference: lite reports `sparse` as a function output without
    // the function.
    let opened = parse_source(
        "milvus2",
        json!({ "uri": server.uri, "collection": reference }),
    )?
    .build(&BuildContext::default())
    .await;
    let msg = opened.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("field `sparse`") && msg.contains("lists no function that writes it"),
        "{msg}"
    );

    // vmig's sink creates the same collection from Arrow metadata and inserts the same rows
    // (without the function's output: the target computes it).
    let functions = json!([{
        "name": "text_bm25", "function_type": "BM25", "inputs": ["text"],
        "outputs": [{ "name": "sparse", "data_type": "SparseFloatVector" }]
    }]);
    let indexes = json!([
        { "field": "sparse", "index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25" },
        { "field": "dense", "index_type": "FLAT", "metric_type": "L2" },
    ]);
    let analyzer = json!({
        "enable_analyzer": "true", "analyzer_params": "{\"type\":\"english\"}", "enable_match": "true"
    });
    let schema: SchemaRef = Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false).with_metadata(tags(&[
                (meta::MAX_LENGTH, "1000"),
                (meta::TYPE_PARAMS, &analyzer.to_string()),
            ])),
            vector::float_vector_field("dense", 4).with_metadata({
                let mut m = vector::float_vector_field("dense", 4).metadata().clone();
                // As pymilvus `add_field(mmap_enabled=True)` sends it, and a copy keeps it.
                m.insert(meta::TYPE_PARAMS, r#"{"mmap_enabled":"True"}"#);
                m
            }),
            Field::new("year", DataType::Int64, false)
                .with_metadata(tags(&[(meta::CLUSTERING_KEY, "true")])),
        ])
        .with_metadata(tags(&[
            (vector::META_PRIMARY_KEY, "id"),
            (meta::CONSISTENCY, "Strong"),
            (meta::INDEXES, &indexes.to_string()),
            (meta::FUNCTIONS, &functions.to_string()),
        ])),
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.1.clone()),
            )),
            Arc::new(vector::float_vector_array(
                Float32Array::from_iter_values(rows.iter().flat_map(|r| r.2.clone())),
                4,
            )?),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )?;
    let report = write(&server, &copy, schema, vec![batch]).await?;
    assert_eq!(report.rows_written, rows.len() as u64);

    // Both collections as pymilvus sees them: schema, rows (float bits), BM25 searches.
    let seen = |name: &str| -> Value {
        let out = server.pymilvus(&format!(
            r#"
import json, struct
from pymilvus import MilvusClient
c = MilvusClient(uri='{uri}')
d = c.describe_collection('{name}')
fields = {{f['name']: dict(type=f['type'], params={{k: str(v) for k, v in f.get('params', {{}}).items()}},
                          output=bool(f.get('is_function_output')),
                          clustering=bool(f.get('is_clustering_key'))) for f in d['fields']}}
bits = lambda x: struct.unpack('<I', struct.pack('<f', x))[0]
rows = c.query('{name}', filter='id >= 0', output_fields=['id', 'text', 'dense', 'year'], limit=1000)
rows = sorted([[r['id'], r['text'], [bits(x) for x in r['dense']], r['year']] for r in rows])
hits = []
for q in ['milvus migration', 'exact bits copy', 'sparse vector index']:
    res = c.search('{name}', data=[q], anns_field='sparse', limit=5,
                   search_params={{'metric_type': 'BM25'}}, output_fields=['id'])
    hits.append([[h['id'], bits(h['distance'])] for h in res[0]])
print(json.dumps(dict(fields=fields, rows=rows, hits=hits)))
"#,
            uri = server.uri,
        ));
        serde_json::from_str(out.trim().lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("pymilvus printed no JSON ({e}): {out}"))
    };
    let want = seen(&reference);
    let got = seen(&copy);
    assert_eq!(
        got["fields"], want["fields"],
        "schema vmig created vs pymilvus's"
    );
    assert_eq!(got["fields"]["sparse"]["output"], json!(true));
    assert_eq!(got["fields"]["year"]["clustering"], json!(true));
    assert_eq!(got["rows"], want["rows"], "rows");
    assert_eq!(got["rows"].as_array().map(Vec::len), Some(rows.len()));
    assert_eq!(got["hits"], want["hits"], "BM25 rankings and scores");
    assert!(
        got["hits"].as_array().is_some_and(|h| h
            .iter()
            .all(|q| q.as_array().is_some_and(|q| !q.is_empty()))),
        "every query finds rows: {got}"
    );
    Ok(())
}
