//! Sparse float vectors through the `files` sink: written in Parquet and JSON across several
//! files, read back by pyarrow and Python's `json` (as Milvus reads them: the JSON numbers parsed
//! as float64 and rounded to float32), every (index, value) pair compared bit-exactly, and the
//! layout checked against what Milvus 2.4.3+ bulk import reads (`internal/util/importutilv2`:
//! a Parquet `string` column of JSON objects `{"indices": [...], "values": [...]}`, in row-based
//! JSON the object itself). NumPy, which Milvus cannot import sparse vectors from, is refused
//! by `prepare`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, MapArray, StructArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use vmig_core::vector;
use vmig_formats::staging::StagingFormat;
use vmig_sink_files::ByteSize;

use super::{config, open, Rng};

/// One row: its id and its (index, value bits) pairs.
type Row = (i64, Vec<(u32, u32)>);

fn sparse_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::sparse_float_vector_field("sp"),
    ]))
}

/// Values that test the float text: extremes, subnormals, integers, negative zero.
const EDGES: [f32; 8] = [
    f32::MAX,
    f32::MIN_POSITIVE,
    1e-45,
    -0.0,
    1.0,
    16_777_217.0,
    0.1,
    -3.3e38,
];

/// `n` rows from `start`: 0 to 40 entries each, indices ascending over the whole u32 range
/// below `u32::MAX` (0 and `u32::MAX - 1` included), random finite values and the edge values.
fn sparse_rows(start: i64, n: usize, rng: &mut Rng) -> Vec<Row> {
    (0..n)
        .map(|r| {
            let id = start + r as i64;
            let len = (rng.next() % 41) as usize;
            let mut keys: Vec<u32> = (0..len)
                .map(|_| (rng.next() % u64::from(u32::MAX)) as u32)
                .collect();
            if r % 7 == 0 {
                keys.push(0);
                keys.push(u32::MAX - 1);
            }
            keys.sort_unstable();
            keys.dedup();
            let entries = keys
                .into_iter()
                .enumerate()
                .map(|(j, k)| {
                    let v = if j < EDGES.len() && r % 5 == 0 {
                        EDGES[j]
                    } else {
                        rng.f32()
                    };
                    (k, v.to_bits())
                })
                .collect();
            (id, entries)
        })
        .collect()
}

fn sparse_batch(rows: &[Row]) -> RecordBatch {
    let DataType::Map(entries, sorted) = vector::sparse_float_vector_type() else {
        unreachable!("a sparse vector is a map")
    };
    let DataType::Struct(parts) = entries.data_type().clone() else {
        unreachable!("map entries are a struct")
    };
    let keys: ArrayRef = Arc::new(UInt32Array::from_iter_values(
        rows.iter().flat_map(|r| r.1.iter().map(|e| e.0)),
    ));
    let values: ArrayRef = Arc::new(Float32Array::from_iter_values(
        rows.iter()
            .flat_map(|r| r.1.iter().map(|e| f32::from_bits(e.1))),
    ));
    let map = MapArray::new(
        entries,
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.1.len())),
        StructArray::new(parts, vec![keys, values], None),
        None,
        sorted,
    );
    RecordBatch::try_new(
        sparse_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(map),
        ],
    )
    .unwrap()
}

/// Reads every unit of `dir` (sorted by name) and prints, per row, `[id, [[index, f32 bits]…]]`,
/// after checking each sparse value has exactly the layout Milvus imports; also the Parquet
/// column type. The float32 bits come from rounding the parsed float64, as Milvus's Go reader
/// does.
const PY_SPARSE: &str = r#"
import json, sys, pathlib, struct
import pyarrow.parquet as pq

def pairs(obj, where):
    assert isinstance(obj, dict), f"{where}: {type(obj).__name__}, not an object"
    assert sorted(obj) == ["indices", "values"], f"{where}: keys {sorted(obj)}"
    ind, val = obj["indices"], obj["values"]
    assert len(ind) == len(val), f"{where}: {len(ind)} indices, {len(val)} values"
    assert all(type(i) is int and 0 <= i < 2**32 - 1 for i in ind), f"{where}: indices {ind}"
    assert all(type(v) in (int, float) for v in val), f"{where}: values {val}"
    return [[i, struct.unpack("<I", struct.pack("<f", float(v)))[0]] for i, v in zip(ind, val)]

kind, path = sys.argv[1], pathlib.Path(sys.argv[2])
rows, types = [], set()
if kind == "parquet":
    for f in sorted(path.glob("part-*.parquet")):
        t = pq.read_table(f)
        types.add(str(t.schema.field("sp").type))
        for i, (id_, text) in enumerate(zip(t.column("id").to_pylist(), t.column("sp").to_pylist())):
            assert isinstance(text, str), f"{f.name} row {i}: {type(text).__name__}"
            rows.append([id_, pairs(json.loads(text), f"{f.name} row {i}")])
else:
    for f in sorted(path.glob("part-*.json")):
        doc = json.loads(f.read_text())
        assert list(doc) == ["rows"], f"{f.name}: top-level keys {list(doc)}"
        for i, row in enumerate(doc["rows"]):
            rows.append([row["id"], pairs(row["sp"], f"{f.name} row {i}")])
print(json.dumps({"types": sorted(types), "rows": rows}))
"#;

#[tokio::test]
async fn sparse_vectors_read_back_by_pyarrow_in_the_layout_milvus_imports() {
    let Some(python) = vmig_testing::service::python() else {
        return;
    };
    let mut rng = Rng(0x5eed_5a55);
    let rows = sparse_rows(0, 400, &mut rng);
    let tmp = tempfile::tempdir().unwrap();
    let want: Vec<serde_json::Value> = rows
        .iter()
        .map(|(id, e)| serde_json::json!([id, e.iter().map(|p| [p.0, p.1]).collect::<Vec<_>>()]))
        .collect();
    for format in [StagingFormat::Parquet, StagingFormat::Json] {
        let out = tmp.path().join(format.as_str());
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(64 << 10);
        cfg.row_group_size = ByteSize(16 << 10);
        let mut sink = open(&cfg, &sparse_schema()).await.unwrap();
        for chunk in rows.chunks(130) {
            sink.write(sparse_batch(chunk), None).await.unwrap();
        }
        assert_eq!(sink.flush().await.unwrap().rows, 400);
        let report = sink.commit().await.unwrap();
        assert!(report.files.len() > 1, "{format}: {:?}", report.files);

        let o = std::process::Command::new(&python)
            .args(["-c", PY_SPARSE, format.as_str(), &out.to_string_lossy()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got_rows = got["rows"].as_array().unwrap();
        assert_eq!(got_rows.len(), want.len(), "{format}");
        for (g, w) in got_rows.iter().zip(&want) {
            assert_eq!(g, w, "{format}");
        }
        if format == StagingFormat::Parquet {
            assert_eq!(got["types"], serde_json::json!(["string"]));
        }
    }
}

/// The exact text of a file Milvus imports, for a small batch: the documented layout, not just
/// something pyarrow can read.
#[tokio::test]
async fn json_staging_holds_sparse_objects_verbatim() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("json");
    let mut sink = open(&config(&out, StagingFormat::Json), &sparse_schema())
        .await
        .unwrap();
    let rows: Vec<Row> = vec![
        (1, vec![(3, 0.5f32.to_bits()), (70_000, 1.25f32.to_bits())]),
        (2, vec![]),
    ];
    sink.write(sparse_batch(&rows), None).await.unwrap();
    sink.flush().await.unwrap();
    sink.commit().await.unwrap();
    let text = std::fs::read_to_string(out.join("part-00000.json")).unwrap();
    assert_eq!(
        text,
        "{\"rows\":[\n{\"id\":1,\"sp\":{\"indices\":[3,70000],\"values\":[0.5,1.25]}},\n{\"id\":2,\"sp\":{\"indices\":[],\"values\":[]}}\n]}\n"
    );
}

#[tokio::test]
async fn numpy_refuses_sparse_vectors_at_prepare() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("npy");
    let err = open(&config(&out, StagingFormat::Numpy), &sparse_schema())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "writing numpy files to {}: unsupported input at field `sp`: a sparse_float_vector (Map(\"entries\": non-null Struct(\"keys\": non-null UInt32, \"values\": non-null Float32), unsorted), Milvus SparseFloatVector) cannot be written to numpy staging files: Milvus imports sparse vectors only from parquet or json files",
            out.display()
        )
    );
    assert!(!out.exists());
}
