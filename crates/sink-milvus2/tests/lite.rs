//! The `milvus2` sink and the `milvus2` source against a real Milvus 2.5 storage engine:
//! milvus-lite 2.5.1 (PyPI `milvus-lite==2.5.1`, a C++ server built from Milvus 2.5; started by
//! `scripts/milvus-lite start`, variables `VMIG_MILVUS_LITE_URI` and `VMIG_MILVUS_LITE_PYTHON`).
//! It serves a subset of the gRPC API (no `GetVersion`, `Import` or iterators), so the sink
//! writes by `Insert` and the source reads by primary-key paging (its only mode).
//!
//! What 2.3.5 cannot show and lite can: several vector fields in one collection, float16,
//! bfloat16 and sparse vectors, and default values. Each is written by vmig, read back by
//! pymilvus 2.5.18 (an independent client) and by vmig's `milvus2` source, and compared bit for
//! bit. Nullable fields: lite 2.5.1 refuses them at `CreateCollection` ("MilvusLite doesn't
//! support nullable"), so the test pins that the refusal reaches the user verbatim. A default
//! value is checked as a schema property with every value present: lite 2.5.1 does not fill the
//! default into rows that omit the field (pymilvus 2.5.18 inserting `None` or leaving the key out
//! reads back the next row's value or garbage), so "missing → default" cannot be tested here. The
//! source's own `open` fails on lite (no `ShowPartitions`), so rows are read back through the
//! code it runs for each partition (`vmig_milvus::scan`).
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
        // The `milvus2` source itself cannot open a lite collection: it lists the partitions
        // first, and lite 2.5.1 does not implement `ShowPartitions`. When that changes, compare
        // through the source here.
        let opened = parse_source("milvus2", json!({ "uri": server.uri, "collection": name }))?
            .build(&BuildContext::default())
            .await;
        let msg = opened.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("ShowPartitions"), "{msg}");
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
