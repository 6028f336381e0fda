//! The `files` sink end to end: every format written, read back with independent readers
//! (parquet, npyz, serde_json; numpy and pyarrow when `VMIG_PYTHON` is set; S3 when
//! `VMIG_S3_ENDPOINT` is set) and compared value by value, bit-exactly.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, RecordBatch, StringArray,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    SchemaRef, UInt8Type,
};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vmig_core::registry::{BuildContext, SinkConfig};
use vmig_core::{vector, CommitReport, Error, Sink};
use vmig_formats::staging::StagingFormat;
use vmig_sink_files::{ByteSize, FilesSinkConfig};

#[path = "it/resume.rs"]
mod resume;
#[path = "it/shared.rs"]
mod shared;
#[path = "it/sparse.rs"]
mod sparse;

const DIM: usize = 16;
const BIN_BYTES: usize = 4;
const FORMATS: [StagingFormat; 3] = [
    StagingFormat::Parquet,
    StagingFormat::Numpy,
    StagingFormat::Json,
];

// ------------------------------------------------------------------ data

pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn f32(&mut self) -> f32 {
        loop {
            let v = f32::from_bits(self.next() as u32);
            if v.is_finite() {
                return v;
            }
        }
    }
}

const EDGE_F32: [f32; 10] = [
    -0.0,
    0.0,
    1e-45,         // smallest subnormal
    1.1754942e-38, // largest subnormal
    f32::MIN_POSITIVE,
    f32::MAX,
    f32::MIN,
    0.1,
    16_777_217.0,
    -3.0e-39,
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vec", DIM),
            vector::binary_vector_field("bin", BIN_BYTES * 8).unwrap(),
            Field::new("name", DataType::Utf8, false),
            vector::json_field("meta", false),
            Field::new("flag", DataType::Boolean, false),
            Field::new("i8", DataType::Int8, false),
            Field::new("i16", DataType::Int16, false),
            Field::new("i32", DataType::Int32, false),
            Field::new("i64", DataType::Int64, false),
            Field::new("f32", DataType::Float32, false),
            Field::new("f64", DataType::Float64, false),
        ],
        HashMap::from([
            (vector::META_PRIMARY_KEY.to_string(), "id".to_string()),
            (vector::META_METRIC.to_string(), "L2".to_string()),
        ]),
    ))
}

fn name(i: usize) -> String {
    match i % 4 {
        0 => format!("naïve café {i} — ✓"),
        1 => "日本語テキスト 🚀".to_string(),
        2 => String::new(),
        _ => format!("\"q\" \\ {}", "z".repeat(i % 23)),
    }
}

fn meta(i: usize) -> String {
    match i % 3 {
        0 => format!("{{\"n\": {i}, \"tags\": [\"a\", \"ü\"], \"big\": 9007199254740993}}"),
        1 => "{\"nested\": {\"x\": 1.5, \"y\": null}}".to_string(),
        _ => "{}".to_string(),
    }
}

/// Rows `start..start + rows`, the same on every call.
fn batch(start: usize, rows: usize) -> RecordBatch {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ start as u64);
    let mut vals = Vec::with_capacity(rows * DIM);
    for r in start..start + rows {
        for d in 0..DIM {
            let k = r * DIM + d;
            vals.push(if k < EDGE_F32.len() {
                EDGE_F32[k]
            } else {
                rng.f32()
            });
        }
    }
    let bins: Vec<u8> = (0..rows * BIN_BYTES).map(|_| rng.next() as u8).collect();
    let idx = || start..start + rows;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(idx().map(|i| i as i64))),
        Arc::new(vector::float_vector_array(Float32Array::from(vals), DIM).unwrap()),
        Arc::new(vector::binary_vector_array(Buffer::from_vec(bins), BIN_BYTES).unwrap()),
        Arc::new(StringArray::from_iter_values(idx().map(name))),
        Arc::new(StringArray::from_iter_values(idx().map(meta))),
        Arc::new(BooleanArray::from_iter(idx().map(|i| Some(i % 3 == 1)))),
        Arc::new(Int8Array::from_iter_values(
            idx().map(|i| (i as u8).wrapping_mul(37) as i8),
        )),
        Arc::new(Int16Array::from_iter_values(
            idx().map(|i| (i as i16).wrapping_mul(-331)),
        )),
        Arc::new(Int32Array::from_iter_values(
            idx().map(|i| (i as i32).wrapping_mul(-70_001)),
        )),
        Arc::new(Int64Array::from_iter_values(idx().map(|i| {
            if i == 3 {
                i64::MIN
            } else {
                (i as i64) * 0x1_0000_0001
            }
        }))),
        Arc::new(Float32Array::from_iter_values(
            idx().map(|i| EDGE_F32[i % EDGE_F32.len()]),
        )),
        Arc::new(Float64Array::from_iter_values(
            idx().map(|i| [-0.0, 5e-324, f64::MAX, 0.1, i as f64 / 3.0][i % 5]),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

// ------------------------------------------------------------------ canonical values

/// A column as plain values: floats as bit patterns so comparisons are bit-exact.
#[derive(Debug, Clone, PartialEq)]
enum Canon {
    Int(Vec<i64>),
    F32(Vec<u32>),
    F64(Vec<u64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
    /// JSON values (JSON fields of the JSON format).
    Json(Vec<serde_json::Value>),
    /// Flattened vectors.
    Vec32(Vec<u32>),
    Bytes(Vec<u8>),
}

impl Canon {
    fn extend(&mut self, other: Canon) {
        match (self, other) {
            (Canon::Int(a), Canon::Int(b)) => a.extend(b),
            (Canon::F32(a), Canon::F32(b)) | (Canon::Vec32(a), Canon::Vec32(b)) => a.extend(b),
            (Canon::F64(a), Canon::F64(b)) => a.extend(b),
            (Canon::Bool(a), Canon::Bool(b)) => a.extend(b),
            (Canon::Text(a), Canon::Text(b)) => a.extend(b),
            (Canon::Json(a), Canon::Json(b)) => a.extend(b),
            (Canon::Bytes(a), Canon::Bytes(b)) => a.extend(b),
            (a, b) => panic!("mismatched columns {a:?} / {b:?}"),
        }
    }
}

type Table = BTreeMap<String, Canon>;

fn append(table: &mut Table, name: &str, c: Canon) {
    match table.get_mut(name) {
        Some(t) => t.extend(c),
        None => {
            table.insert(name.to_string(), c);
        }
    }
}

fn f32_bits(a: &dyn Array) -> Vec<u32> {
    a.as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Canonical form of an Arrow column (input batches and Parquet read back).
fn canon_arrow(field: &Field, a: &ArrayRef) -> Canon {
    match a.data_type() {
        DataType::Int8 => Canon::Int(
            a.as_primitive::<Int8Type>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        DataType::Int16 => Canon::Int(
            a.as_primitive::<Int16Type>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        DataType::Int32 => Canon::Int(
            a.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        DataType::Int64 => Canon::Int(a.as_primitive::<Int64Type>().values().to_vec()),
        DataType::Float32 => Canon::F32(f32_bits(a.as_ref())),
        DataType::Float64 => Canon::F64(
            a.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|v| v.to_bits())
                .collect(),
        ),
        DataType::Boolean => Canon::Bool(a.as_boolean().iter().map(|v| v.unwrap()).collect()),
        DataType::Utf8 => Canon::Text(
            a.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect(),
        ),
        DataType::FixedSizeList(_, _) => {
            Canon::Vec32(f32_bits(a.as_fixed_size_list().values().as_ref()))
        }
        DataType::FixedSizeBinary(_) => {
            Canon::Bytes(a.as_fixed_size_binary().value_data().to_vec())
        }
        DataType::List(item) if item.data_type() == &DataType::Float32 => {
            Canon::Vec32(f32_bits(a.as_list::<i32>().values().as_ref()))
        }
        DataType::List(item) if item.data_type() == &DataType::UInt8 => Canon::Bytes(
            a.as_list::<i32>()
                .values()
                .as_primitive::<UInt8Type>()
                .values()
                .to_vec(),
        ),
        other => panic!("field {}: unexpected type {other}", field.name()),
    }
}

fn expected(batches: &[RecordBatch]) -> Table {
    let mut t = Table::new();
    for b in batches {
        for (f, a) in b.schema().fields().iter().zip(b.columns()) {
            append(&mut t, f.name(), canon_arrow(f, a));
        }
    }
    t
}

/// The expected table as the JSON format represents it (JSON fields as parsed values).
fn expected_json(batches: &[RecordBatch]) -> Table {
    let mut t = expected(batches);
    if let Some(Canon::Text(texts)) = t.remove("meta") {
        t.insert(
            "meta".into(),
            Canon::Json(
                texts
                    .iter()
                    .map(|s| serde_json::from_str(s).unwrap())
                    .collect(),
            ),
        );
    }
    t
}

// ------------------------------------------------------------------ readers

fn units(dir: &Path, format: StagingFormat) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("part-")
                && match format.extension() {
                    Some(ext) => n.ends_with(&format!(".{ext}")),
                    None => p.is_dir(),
                }
        })
        .collect();
    v.sort();
    v
}

fn read_parquet_bytes(data: bytes::Bytes, t: &mut Table) -> usize {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = 0;
    for b in reader {
        let b = b.unwrap();
        rows += b.num_rows();
        for (f, a) in b.schema().fields().iter().zip(b.columns()) {
            append(t, f.name(), canon_arrow(f, a));
        }
    }
    rows
}

fn read_npy_dir(dir: &Path, t: &mut Table) -> usize {
    let mut rows = None;
    for f in schema().fields() {
        let file =
            npyz::NpyFile::new(std::fs::File::open(dir.join(format!("{}.npy", f.name()))).unwrap())
                .unwrap();
        let n = file.shape()[0] as usize;
        assert!(
            rows.is_none_or(|r| r == n),
            "npy files of {} differ in length",
            dir.display()
        );
        rows = Some(n);
        let descr = match file.dtype() {
            npyz::DType::Plain(t) => t.to_string(),
            other => panic!("{other:?}"),
        };
        let c = match descr.as_str() {
            "|b1" => Canon::Bool(file.into_vec::<bool>().unwrap()),
            "|i1" => Canon::Int(
                file.into_vec::<i8>()
                    .unwrap()
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ),
            "<i2" => Canon::Int(
                file.into_vec::<i16>()
                    .unwrap()
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ),
            "<i4" => Canon::Int(
                file.into_vec::<i32>()
                    .unwrap()
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ),
            "<i8" => Canon::Int(file.into_vec::<i64>().unwrap()),
            "<f4" if file.shape().len() == 2 => {
                assert_eq!(file.shape()[1], DIM as u64);
                Canon::Vec32(
                    file.into_vec::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect(),
                )
            }
            "<f4" => Canon::F32(
                file.into_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            ),
            "<f8" => Canon::F64(
                file.into_vec::<f64>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            ),
            "|u1" => {
                assert_eq!(file.shape(), &[n as u64, BIN_BYTES as u64]);
                Canon::Bytes(file.into_vec::<u8>().unwrap())
            }
            d if d.starts_with("<U") => Canon::Text(file.into_vec::<String>().unwrap()),
            d => panic!("unexpected dtype {d}"),
        };
        append(t, f.name(), c);
    }
    rows.unwrap_or(0)
}

fn read_json_bytes(data: &[u8], t: &mut Table) -> usize {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap();
    let rows = v["rows"].as_array().unwrap();
    for f in schema().fields() {
        let col: Vec<&serde_json::Value> = rows.iter().map(|r| &r[f.name().as_str()]).collect();
        let ints = || {
            col.iter()
                .map(|x| x.as_i64().expect("an integer"))
                .collect()
        };
        let c = match f.name().as_str() {
            "id" | "i8" | "i16" | "i32" | "i64" => Canon::Int(ints()),
            "vec" => Canon::Vec32(
                col.iter()
                    .flat_map(|x| {
                        x.as_array()
                            .unwrap()
                            .iter()
                            .map(|v| (v.as_f64().unwrap() as f32).to_bits())
                    })
                    .collect(),
            ),
            "bin" => Canon::Bytes(
                col.iter()
                    .flat_map(|x| {
                        x.as_array()
                            .unwrap()
                            .iter()
                            .map(|v| u8::try_from(v.as_u64().unwrap()).unwrap())
                    })
                    .collect(),
            ),
            "name" => Canon::Text(
                col.iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
            ),
            "meta" => Canon::Json(col.iter().map(|&x| x.clone()).collect()),
            "flag" => Canon::Bool(col.iter().map(|x| x.as_bool().unwrap()).collect()),
            "f32" => Canon::F32(
                col.iter()
                    .map(|x| (x.as_f64().unwrap() as f32).to_bits())
                    .collect(),
            ),
            "f64" => Canon::F64(col.iter().map(|x| x.as_f64().unwrap().to_bits()).collect()),
            other => panic!("{other}"),
        };
        append(t, f.name(), c);
    }
    rows.len()
}

/// Reads every unit in `dir` in order; returns the table and the rows per unit.
fn read_dir(dir: &Path, format: StagingFormat) -> (Table, Vec<usize>) {
    let mut t = Table::new();
    let mut counts = Vec::new();
    for unit in units(dir, format) {
        counts.push(match format {
            StagingFormat::Parquet => {
                read_parquet_bytes(std::fs::read(&unit).unwrap().into(), &mut t)
            }
            StagingFormat::Numpy => read_npy_dir(&unit, &mut t),
            StagingFormat::Json => read_json_bytes(&std::fs::read(&unit).unwrap(), &mut t),
        });
    }
    (t, counts)
}

fn unit_size(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    } else {
        std::fs::metadata(path).unwrap().len()
    }
}

// ------------------------------------------------------------------ driving the sink

pub(crate) fn config(path: &Path, format: StagingFormat) -> FilesSinkConfig {
    FilesSinkConfig::new(path.to_string_lossy(), format)
}

pub(crate) async fn open(
    config: &FilesSinkConfig,
    schema: &SchemaRef,
) -> vmig_core::Result<Box<dyn Sink>> {
    let mut sink = config.build(&BuildContext::default()).await?;
    sink.prepare(schema).await?;
    Ok(sink)
}

/// Writes `batches`, flushing after the indices in `flush_after`, then commits.
async fn run(
    config: &FilesSinkConfig,
    batches: &[RecordBatch],
    flush_after: &[usize],
) -> CommitReport {
    let mut sink = open(config, &schema()).await.unwrap();
    let mut flushed = 0;
    for (i, b) in batches.iter().enumerate() {
        sink.write(b.clone(), None).await.unwrap();
        if flush_after.contains(&i) {
            flushed += sink.flush().await.unwrap().rows;
        }
    }
    let last = sink.flush().await.unwrap();
    flushed += last.rows;
    assert_eq!(
        flushed,
        batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
    );
    sink.commit().await.unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn every_format_round_trips_bit_exactly() {
    let batches = [batch(0, 200), batch(200, 1), batch(201, 300)];
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let report = run(&config(&out, format), &batches, &[0]).await;
        assert_eq!(report.rows, 501, "{format}");

        let (got, counts) = read_dir(&out, format);
        // The flush after the first batch closed a unit.
        assert_eq!(counts, [200, 301], "{format}");
        let want = if format == StagingFormat::Json {
            expected_json(&batches)
        } else {
            expected(&batches)
        };
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (k, v) in &want {
            assert!(got[k] == *v, "{format}: column {k} differs");
        }

        // Manifest and report agree with the files.
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["format"], format.as_str());
        assert_eq!(manifest["total_rows"], 501);
        let files = manifest["files"].as_array().unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0]["rows"], 200);
        let first = files[0]["path"].as_str().unwrap();
        assert_eq!(
            first,
            match format {
                StagingFormat::Parquet => "part-00000.parquet",
                StagingFormat::Numpy => "part-00000",
                StagingFormat::Json => "part-00000.json",
            }
        );
        assert_eq!(
            files[0]["bytes"].as_u64().unwrap(),
            unit_size(&out.join(first))
        );
        let fields = manifest["schema"]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 12);
        assert_eq!(fields[1]["name"], "vec");
        assert_eq!(fields[1]["dim"], DIM);
        assert_eq!(fields[1]["milvus_type"], format!("FloatVector({DIM})"));
        assert_eq!(fields[2]["dim"], BIN_BYTES * 8);
        assert_eq!(fields[4]["milvus_type"], "JSON");
        assert_eq!(manifest["schema"]["primary_key"], "id");
        let expected_files = if format == StagingFormat::Numpy {
            2 * 12
        } else {
            2
        };
        assert_eq!(
            report.files.len(),
            expected_files,
            "{format}: {:?}",
            report.files
        );
        assert!(
            report.files.iter().all(|f| Path::new(f).exists()),
            "{:?}",
            report.files
        );
        // Nothing temporary is left.
        assert!(
            names_in(&out).iter().all(|n| !n.starts_with('.')),
            "{:?}",
            names_in(&out)
        );
    }
}

#[tokio::test]
async fn small_max_file_size_splits_into_complete_ordered_files() {
    let batches: Vec<RecordBatch> = (0..3).map(|i| batch(i * 500, 500)).collect();
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let limit = 24 << 10;
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(limit);
        let report = run(&cfg, &batches, &[]).await;
        assert_eq!(report.rows, 1500);
        let paths = units(&out, format);
        assert!(paths.len() >= 4, "{format}: only {} files", paths.len());
        for p in &paths {
            let size = unit_size(p);
            assert!(
                size <= limit,
                "{format}: {} has {size} bytes > {limit}",
                p.display()
            );
        }
        let (got, counts) = read_dir(&out, format);
        assert_eq!(counts.iter().sum::<usize>(), 1500);
        let ids: Vec<i64> = (0..1500).collect();
        assert_eq!(
            got["id"],
            Canon::Int(ids),
            "{format}: rows not complete and in order"
        );
        let want = if format == StagingFormat::Json {
            expected_json(&batches)
        } else {
            expected(&batches)
        };
        assert!(got == want, "{format}: values differ");
    }
}

#[tokio::test]
async fn a_row_larger_than_the_limit_is_an_error() {
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(100);
        let mut sink = open(&cfg, &schema()).await.unwrap();
        let err = sink.write(batch(0, 3), None).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err.root(), Error::Config { .. }),
            "{format}: {msg}"
        );
        assert!(msg.contains("max_file_size"), "{format}: {msg}");
        sink.abort().await.unwrap();
        assert!(names_in(&out).is_empty(), "{format}: {:?}", names_in(&out));
    }
}

#[tokio::test]
async fn existing_output_needs_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    run(&cfg, &[batch(0, 600)], &[]).await;
    std::fs::write(out.join("notes.txt"), "not vmig's").unwrap();
    let before = units(&out, StagingFormat::Parquet).len();
    assert!(before > 1);

    let again = config(&out, StagingFormat::Parquet);
    let err = open(&again, &schema()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.root(), Error::Config { .. }), "{msg}");
    assert!(
        msg.contains("overwrite = true") && msg.contains("part-00000.parquet"),
        "{msg}"
    );

    // Another format in the same place is refused too.
    let err = open(&config(&out, StagingFormat::Json), &schema())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("overwrite"));

    let mut replace = config(&out, StagingFormat::Json);
    replace.overwrite = true;
    run(&replace, &[batch(0, 5)], &[]).await;
    assert_eq!(
        names_in(&out),
        ["manifest.json", "notes.txt", "part-00000.json"]
    );

    // A directory with only foreign files is refused, and left as it was; an empty one is fine.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("README"), "x").unwrap();
    let err = open(&config(&other, StagingFormat::Numpy), &schema())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "{} is not empty and holds no vmig output (manifest.json): README;",
            other.display()
        )),
        "{err}"
    );
    assert_eq!(names_in(&other), ["README"]);
    std::fs::remove_file(other.join("README")).unwrap();
    run(&config(&other, StagingFormat::Numpy), &[batch(0, 5)], &[]).await;
    assert_eq!(names_in(&other), ["manifest.json", "part-00000"]);
}

#[tokio::test]
async fn named_partitions_go_to_their_own_folders() {
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(24 << 10);
        let mut sink = open(&cfg, &schema()).await.unwrap();
        let writes = [
            (batch(0, 300), Some("p2023")),
            (batch(300, 50), None),
            (batch(350, 80), Some("p2024")),
            (batch(430, 20), Some("p2023")),
        ];
        for (b, p) in &writes {
            sink.write(b.clone(), *p).await.unwrap();
        }
        assert_eq!(sink.flush().await.unwrap().rows, 450, "{format}");
        let report = sink.commit().await.unwrap();
        assert_eq!(report.rows, 450);
        assert!(report.files.iter().all(|f| Path::new(f).exists()));

        let unit0 = match format.extension() {
            Some(ext) => format!("part-00000.{ext}"),
            None => "part-00000".to_string(),
        };
        assert_eq!(
            names_in(&out),
            ["manifest.json", "p2023", "p2024", unit0.as_str()],
            "{format}"
        );
        let want = |batches: &[RecordBatch]| {
            if format == StagingFormat::Json {
                expected_json(batches)
            } else {
                expected(batches)
            }
        };
        let (got, counts) = read_dir(&out.join("p2023"), format);
        assert!(counts.len() > 1, "{format}: 320 rows fit in one unit");
        assert!(got == want(&[batch(0, 300), batch(430, 20)]), "{format}");
        assert!(read_dir(&out.join("p2024"), format).0 == want(&[batch(350, 80)]));
        assert!(read_dir(&out, format).0 == want(&[batch(300, 50)]));

        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["total_rows"], 450);
        let files = manifest["files"].as_array().unwrap();
        let p2024: Vec<_> = files.iter().filter(|f| f["partition"] == "p2024").collect();
        assert_eq!(p2024[0]["path"], format!("p2024/{unit0}"));
        assert!(p2024
            .iter()
            .all(|f| f["path"].as_str().unwrap().starts_with("p2024/part-")));
        assert!(files
            .iter()
            .any(|f| f["path"] == unit0.as_str() && f.get("partition").is_none()));

        // Earlier output in partition folders is vmig output; overwrite removes it, folders
        // and all.
        let err = open(&config(&out, format), &schema()).await.unwrap_err();
        assert!(err.to_string().contains("overwrite"), "{err}");
        let mut replace = config(&out, format);
        replace.overwrite = true;
        run(&replace, &[batch(0, 5)], &[]).await;
        assert_eq!(
            names_in(&out),
            ["manifest.json", unit0.as_str()],
            "{format}"
        );
        // Without the manifest, the folders are not provably vmig's: refused, kept.
        let mut sink = open(&replace, &schema()).await.unwrap();
        sink.write(batch(0, 5), Some("p2023")).await.unwrap();
        sink.commit().await.unwrap();
        std::fs::remove_file(out.join("manifest.json")).unwrap();
        let err = open(&replace, &schema()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("holds no vmig output (manifest.json): p2023/;"),
            "{err}"
        );
        assert_eq!(names_in(&out.join("p2023")), [unit0.as_str()]);
    }
}

#[tokio::test]
async fn partition_names_must_be_plain_folder_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for bad in [
        "",
        "..",
        "../x",
        "a/b",
        ".hidden",
        "manifest.json",
        "part-00001",
    ] {
        let mut sink = open(&config(&out, StagingFormat::Parquet), &schema())
            .await
            .unwrap();
        let err = sink.write(batch(0, 3), Some(bad)).await.unwrap_err();
        assert!(matches!(err.root(), Error::Config { .. }), "{bad}: {err}");
        sink.abort().await.unwrap();
    }
    assert!(!tmp.path().join("x").exists());
}

#[tokio::test]
async fn abort_removes_partition_folders_it_created() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(0, 400), Some("p1")).await.unwrap();
    sink.flush().await.unwrap();
    sink.write(batch(400, 50), Some("p2")).await.unwrap(); // open, unfinished
                                                           // Everything of the run is in its hidden run directory.
    let names = names_in(&out);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with(".vmig-") && names[1] == ".vmig.lock",
        "{names:?}"
    );
    assert_eq!(names_in(&out.join(&names[0])), ["p1", "p2"]);
    let report = sink.abort().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "Nothing of this run remains in {}, which is empty as before.",
            out.display()
        )]
    );
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}

#[tokio::test]
async fn abort_leaves_no_files() {
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(24 << 10);
        let mut sink = open(&cfg, &schema()).await.unwrap();
        sink.write(batch(0, 400), None).await.unwrap();
        sink.flush().await.unwrap();
        sink.write(batch(400, 50), None).await.unwrap(); // an open, unfinished unit
        assert!(!names_in(&out).is_empty());
        let report = sink.abort().await.unwrap();
        assert_eq!(
            report.left,
            [format!(
                "{} was created empty by this run and removed.",
                out.display()
            )]
        );
        assert!(!out.exists(), "{format}: {:?}", names_in(&out));

        // A directory that existed before stays.
        std::fs::create_dir_all(&out).unwrap();
        let mut sink = open(&cfg, &schema()).await.unwrap();
        sink.write(batch(0, 400), None).await.unwrap();
        sink.abort().await.unwrap();
        assert!(
            out.is_dir() && names_in(&out).is_empty(),
            "{format}: {:?}",
            names_in(&out)
        );
    }
}

#[tokio::test]
async fn numpy_nulls_name_field_and_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, true),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut sink = open(&config(&out, StagingFormat::Numpy), &schema)
        .await
        .unwrap();
    let titles: StringArray = (0..10).map(|i| (i != 7).then(|| format!("t{i}"))).collect();
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..10)),
            Arc::new(titles),
        ],
    )
    .unwrap();
    let err = sink.write(b, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.root(), Error::Data { .. }), "{msg}");
    assert!(msg.contains("`title`") && msg.contains("row 7"), "{msg}");
    sink.abort().await.unwrap();
    assert!(!out.exists());
}

#[tokio::test]
async fn abort_after_a_failed_write_removes_the_units_it_finished() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, true),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cfg = config(&out, StagingFormat::Numpy);
    cfg.max_file_size = ByteSize(4 << 10);
    let mut sink = open(&cfg, &schema).await.unwrap();
    // Several units fill up before the null in row 900 of the batch stops the write.
    let titles: StringArray = (0..1000)
        .map(|i| (i != 900).then(|| format!("t{i}")))
        .collect();
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..1000)),
            Arc::new(titles),
        ],
    )
    .unwrap();
    let err = sink.write(b, None).await.unwrap_err();
    assert!(err.to_string().contains("`title`"), "{err}");
    let run_dir = names_in(&out)
        .into_iter()
        .find(|n| n.starts_with(".vmig-"))
        .unwrap();
    assert!(
        names_in(&out.join(&run_dir))
            .iter()
            .any(|n| n == "part-00000"),
        "{:?}",
        names_in(&out.join(&run_dir))
    );
    sink.abort().await.unwrap();
    assert!(!out.exists(), "{:?}", names_in(&out));
}

#[tokio::test]
async fn prepare_names_unwritable_fields_and_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let half = Arc::new(Schema::new(vec![Field::new(
        "h",
        DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float16, true)), 8),
        false,
    )]));
    let tags = Arc::new(Schema::new(vec![Field::new_list(
        "tags",
        Field::new_list_field(DataType::Int64, true),
        true,
    )]));
    for (schema, field, format) in [
        (&half, "`h`", StagingFormat::Parquet),
        (&tags, "`tags`", StagingFormat::Numpy),
    ] {
        let out = tmp.path().join(format.as_str());
        let err = open(&config(&out, format), schema)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(field) && err.contains(format.as_str()),
            "{err}"
        );
    }
    // Arrays are fine in Parquet and JSON.
    for format in [StagingFormat::Parquet, StagingFormat::Json] {
        let out = tmp.path().join(format!("ok-{format}"));
        open(&config(&out, format), &tags).await.unwrap();
    }
}

#[tokio::test]
async fn registered_plugin_builds_from_json() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = BuildContext {
        base_dir: tmp.path().to_path_buf(),
    };
    let cfg = vmig_core::registry::parse_sink(
        "files",
        serde_json::json!({"path": "rel", "format": "json", "max_file_size": "1MiB"}),
    )
    .unwrap();
    let mut sink = cfg.build(&ctx).await.unwrap();
    sink.prepare(&schema()).await.unwrap();
    sink.write(batch(0, 10), None).await.unwrap();
    let report = sink.commit().await.unwrap();
    assert_eq!(report.rows, 10);
    assert!(tmp.path().join("rel/part-00000.json").exists());
    assert!(report.target.ends_with("rel"), "{}", report.target);
}

// ------------------------------------------------------------------ real readers

const PY_DUMP: &str = r#"
import json, sys, pathlib
import numpy as np
import pyarrow.parquet as pq

def canon(a):
    a = np.ascontiguousarray(a)
    if a.dtype == np.float32:
        return a.reshape(-1).view('<u4').tolist()
    if a.dtype == np.float64:
        return a.reshape(-1).view('<u8').tolist()
    return a.reshape(-1).tolist()

out = {}
kind, path = sys.argv[1], pathlib.Path(sys.argv[2])
if kind == "numpy":
    for unit in sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("part-")):
        for f in sorted(unit.glob("*.npy")):
            a = np.load(f, allow_pickle=False)
            e = out.setdefault(f.stem, {"dtype": a.dtype.str, "shape": [0] + list(a.shape[1:]), "values": []})
            e["shape"][0] += a.shape[0]
            e["values"] += canon(a)
else:
    for f in sorted(path.glob("part-*.parquet")):
        t = pq.read_table(f)
        for name in t.column_names:
            col = t.column(name).combine_chunks()
            typ = str(col.type)
            if typ.startswith("list<"):
                vals = canon(col.flatten().to_numpy(zero_copy_only=False))
            elif typ in ("float", "double"):
                vals = canon(col.to_numpy())
            else:
                vals = col.to_pylist()
            e = out.setdefault(name, {"type": typ, "values": []})
            e["values"] += vals
        out["__metadata__"] = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items() if not k.startswith(b"ARROW")}
print(json.dumps(out))
"#;

fn python_dump(python: &str, kind: &str, dir: &Path) -> serde_json::Value {
    let o = std::process::Command::new(python)
        .args(["-c", PY_DUMP, kind, &dir.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn canon_to_json(c: &Canon) -> serde_json::Value {
    match c {
        Canon::Int(v) => serde_json::json!(v),
        Canon::F32(v) | Canon::Vec32(v) => serde_json::json!(v),
        Canon::F64(v) => serde_json::json!(v),
        Canon::Bool(v) => serde_json::json!(v),
        Canon::Text(v) => serde_json::json!(v),
        Canon::Json(v) => serde_json::json!(v),
        Canon::Bytes(v) => serde_json::json!(v),
    }
}

#[tokio::test]
async fn numpy_and_pyarrow_read_the_files() {
    let Some(python) = vmig_testing::service::python() else {
        return;
    };
    let batches = [batch(0, 150), batch(150, 100)];
    let want = expected(&batches);
    let tmp = tempfile::tempdir().unwrap();

    let out = tmp.path().join("npy");
    let mut cfg = config(&out, StagingFormat::Numpy);
    cfg.max_file_size = ByteSize(32 << 10);
    run(&cfg, &batches, &[]).await;
    assert!(units(&out, StagingFormat::Numpy).len() > 1);
    let dump = python_dump(&python, "numpy", &out);
    let dtypes: BTreeMap<&str, &str> = [
        ("id", "<i8"),
        ("vec", "<f4"),
        ("bin", "|u1"),
        ("flag", "|b1"),
        ("i8", "|i1"),
        ("i16", "<i2"),
        ("i32", "<i4"),
        ("i64", "<i8"),
        ("f32", "<f4"),
        ("f64", "<f8"),
    ]
    .into();
    for (name, w) in &want {
        let e = &dump[name.as_str()];
        assert_eq!(e["values"], canon_to_json(w), "numpy column {name}");
        let dtype = e["dtype"].as_str().unwrap();
        match dtypes.get(name.as_str()) {
            Some(d) => assert_eq!(dtype, *d, "{name}"),
            None => assert!(dtype.starts_with("<U"), "{name}: {dtype}"),
        }
    }
    assert_eq!(dump["vec"]["shape"], serde_json::json!([250, DIM]));
    assert_eq!(dump["bin"]["shape"], serde_json::json!([250, BIN_BYTES]));

    let out = tmp.path().join("parquet");
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(32 << 10);
    cfg.row_group_size = ByteSize(8 << 10);
    run(&cfg, &batches, &[]).await;
    let dump = python_dump(&python, "parquet", &out);
    for (name, w) in &want {
        assert_eq!(
            dump[name.as_str()]["values"],
            canon_to_json(w),
            "parquet column {name}"
        );
    }
    assert_eq!(dump["vec"]["type"], "list<item: float>");
    assert_eq!(dump["bin"]["type"], "list<item: uint8>");
    assert_eq!(dump["meta"]["type"], "string");
    assert_eq!(dump["id"]["type"], "int64");
}

// ------------------------------------------------------------------ object store

/// `<name>/<pid>-<nanos>`: an object prefix no other test run uses.
pub(crate) fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}/{}-{nanos}", std::process::id())
}

/// The shared upload (`vmig_core::store::upload_file`, used by this sink and the `milvus2`
/// sink's bulk stage) against the real S3 server: a file of several multipart parts, one just
/// over the single-PUT size and a small one arrive byte for byte. (The failure path is tested
/// in `vmig_core::store`.)
#[tokio::test]
async fn s3_uploads_arrive_byte_exact() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let url = format!("s3://{}/{}", s3.bucket, unique_prefix("vmig-upload-it"));
    let target = vmig_core::store::resolve(&url, &s3.storage_options()).unwrap();
    let part = vmig_core::store::UPLOAD_PART_SIZE;
    let dir = tempfile::tempdir().unwrap();
    // Bytes that repeat only after 2^64, so a misplaced part cannot compare equal.
    let data: Vec<u8> = (0..3 * part as u64 + 4321)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as u8)
        .collect();
    for (name, len) in [
        ("parts.bin", data.len()),
        ("one-over.bin", part + 1),
        ("small.bin", 777),
    ] {
        let local = dir.path().join(name);
        std::fs::write(&local, &data[..len]).unwrap();
        let dest = target.path.clone().join(name);
        vmig_core::store::upload_file(&target.store, &local, &dest)
            .await
            .unwrap();
        let got = target
            .store
            .get(&dest)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.len(), len, "{name}");
        assert!(got[..] == data[..len], "{name}: the uploaded bytes differ");
        target.store.delete(&dest).await.unwrap();
    }
}

#[tokio::test]
async fn parquet_to_s3_round_trips() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = unique_prefix("vmig-sink-files-it");
    let url = format!("s3://{}/{prefix}/", s3.bucket);
    let mut cfg = FilesSinkConfig::new(&url, StagingFormat::Parquet);
    cfg.storage = s3.storage_options();
    cfg.max_file_size = ByteSize(40 << 20);

    // ~35 MB of rows: one file above the single-PUT size (multipart) and one small one.
    let batches: Vec<RecordBatch> = (0..24).map(|i| batch(i * 10_000, 10_000)).collect();
    let report = run(&cfg, &batches, &[]).await;
    assert_eq!(report.rows, 240_000);
    assert!(report.files.len() >= 2, "{:?}", report.files);
    assert!(
        report.files.iter().all(|f| f.starts_with(&prefix)),
        "{:?}",
        report.files
    );

    let target = vmig_core::store::resolve(&url, &cfg.storage).unwrap();
    let store = target.store.clone();
    let mut t = Table::new();
    let mut sizes = Vec::new();
    for f in &report.files {
        let data = store
            .get(&object_store::path::Path::from(f.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(data.len() as u64 <= cfg.max_file_size.bytes());
        sizes.push(data.len());
        read_parquet_bytes(data, &mut t);
    }
    assert!(
        sizes.iter().any(|&s| s > 16 << 20),
        "no file took the multipart path: {sizes:?}"
    );
    let want = expected(&batches);
    for (k, v) in &want {
        assert!(t[k] == *v, "s3: column {k} differs");
    }
    let manifest_path = object_store::path::Path::from(format!("{prefix}/manifest.json"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &store
            .get(&manifest_path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["total_rows"], 240_000);

    // The same prefix again is refused; an aborted run there leaves nothing new.
    let err = open(&cfg, &schema()).await.unwrap_err();
    assert!(err.to_string().contains("overwrite"), "{err}");
    let mut other = cfg.clone();
    other.path = format!("s3://{}/{prefix}-aborted/", s3.bucket);
    let mut sink = open(&other, &schema()).await.unwrap();
    sink.write(batch(0, 100), None).await.unwrap();
    sink.flush().await.unwrap();
    sink.abort().await.unwrap();
    let aborted = object_store::path::Path::from(format!("{prefix}-aborted"));
    let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&aborted)))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // Clean up.
    let root = object_store::path::Path::from(prefix.as_str());
    let objects: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root)))
        .await
        .unwrap();
    for o in objects {
        store.delete(&o.location).await.unwrap();
    }
}

// ------------------------------------------------------------------ what a run may touch

/// Every file below `dir` (hidden ones too), relative path → content; folders end in `/`.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn lock_json(run: &str, pid: u32, host: &str) -> String {
    format!(
        r#"{{"vmig_lock":1,"run_id":"{run}","pid":{pid},"host":"{host}","started":1796226600}}"#
    )
}

fn overwriting(path: &Path, format: StagingFormat) -> FilesSinkConfig {
    let mut c = config(path, format);
    c.overwrite = true;
    c.max_file_size = ByteSize(24 << 10);
    c
}

/// Earlier vmig output in `out` (Parquet, several units); the overwriting config that wrote it.
async fn earlier_output(out: &Path) -> FilesSinkConfig {
    let cfg = overwriting(out, StagingFormat::Parquet);
    run(&cfg, &[batch(0, 600)], &[]).await;
    cfg
}

/// The output another run writes (into `dir`), to compare with.
async fn new_output(dir: &Path) {
    run(
        &overwriting(dir, StagingFormat::Parquet),
        &[batch(5000, 200)],
        &[],
    )
    .await;
}

/// Opening `cfg` without `overwrite` fails because the target holds vmig output.
async fn assert_refused_as_earlier_output(cfg: &FilesSinkConfig) {
    let mut next = cfg.clone();
    next.overwrite = false;
    let err = open(&next, &schema()).await.unwrap_err();
    assert!(
        err.to_string().contains("already holds vmig output"),
        "{err}"
    );
}

/// The lock a run `run` of this host leaves when it is killed.
fn dead_lock(run: &str) -> String {
    lock_json(run, dead_pid(), &this_host())
}

fn run_id_of(dir: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["run_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_path_holding_other_things_is_refused_listing_them_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    put(&out.join("part-00007/README"), "mine");
    put(&out.join("mydata/part-00000.parquet"), "not vmig's");
    put(&out.join("reports/part-00001.json"), "{}");
    put(&out.join(".part-00000.parquet.tmp"), "someone's temporary");
    let before = snapshot(&out);
    for overwrite in [false, true] {
        let mut cfg = config(&out, StagingFormat::Numpy);
        cfg.overwrite = overwrite;
        let err = open(&cfg, &schema()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid `files` configuration: {} is not empty and holds no vmig output (manifest.json): .part-00000.parquet.tmp, mydata/, part-00007/, reports/; vmig writes only into an empty directory or over output whose manifest.json it wrote, and never removes what it did not write: choose another `path` or move these away",
                out.display()
            )
        );
        assert_eq!(snapshot(&out), before, "overwrite = {overwrite}");
    }
    // A hand-written manifest.json is not vmig's either.
    put(
        &out.join("manifest.json"),
        r#"{"files": [{"path": "part-00007", "files": ["part-00007/README"]}]}"#,
    );
    let before = snapshot(&out);
    let err = open(&overwriting(&out, StagingFormat::Numpy), &schema())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{}/manifest.json is not a vmig manifest (missing field `vmig_manifest`",
            out.display()
        )) && msg.contains("vmig will not replace or remove output it cannot prove it wrote"),
        "{msg}"
    );
    assert_eq!(snapshot(&out), before);
}

#[tokio::test]
async fn overwrite_replaces_exactly_the_files_of_the_old_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = overwriting(&out, StagingFormat::Numpy);
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(0, 400), None).await.unwrap();
    sink.write(batch(400, 30), Some("p1")).await.unwrap();
    sink.write(batch(430, 30), Some("p2")).await.unwrap();
    sink.commit().await.unwrap();
    let old_units = units(&out, StagingFormat::Numpy).len();
    assert!(old_units > 2, "{old_units}");
    // Things vmig did not write, next to and inside its output.
    put(&out.join("notes.txt"), "n");
    put(&out.join("part-00000/README"), "r");
    put(&out.join("p1/keep.txt"), "k");
    put(&out.join("mydata/part-00000.parquet"), "m");
    put(&out.join("part-00099.json"), "{}");
    let theirs = [
        "notes.txt",
        "part-00000/README",
        "p1/keep.txt",
        "mydata/part-00000.parquet",
        "part-00099.json",
    ];

    let report = run(&overwriting(&out, StagingFormat::Json), &[batch(0, 5)], &[]).await;
    assert_eq!(report.rows, 5);
    let after = snapshot(&out);
    for f in theirs {
        assert!(after.contains_key(f), "{f} was removed: {after:?}");
    }
    // Old units are gone (the emptied ones with their folders), p2 too; p1 stays for keep.txt.
    let mut names: Vec<&str> = after.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "manifest.json",
            "mydata/",
            "mydata/part-00000.parquet",
            "notes.txt",
            "p1/",
            "p1/keep.txt",
            "part-00000.json",
            "part-00000/",
            "part-00000/README",
            "part-00099.json",
        ]
    );
    let mut got = Table::new();
    read_json_bytes(
        &std::fs::read(out.join("part-00000.json")).unwrap(),
        &mut got,
    );
    assert!(got == expected_json(&[batch(0, 5)]));
}

#[tokio::test]
async fn a_failed_overwrite_leaves_the_previous_output_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = overwriting(&out, StagingFormat::Numpy);
    run(&cfg, &[batch(0, 300)], &[]).await;
    let before = snapshot(&out);
    let files = before.keys().filter(|k| k.ends_with(".npy")).count();

    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(1000, 400), None).await.unwrap();
    sink.flush().await.unwrap();
    sink.write(batch(1400, 100), None).await.unwrap(); // an open unit
                                                       // Mid-run (what a SIGKILL would leave): nothing new outside the hidden run directory.
    let mid = snapshot(&out);
    let new: Vec<&String> = mid.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        new.iter()
            .all(|k| k.starts_with(".vmig-") || k.as_str() == ".vmig.lock"),
        "{new:?}"
    );
    assert!(mid
        .iter()
        .filter(|(k, _)| before.contains_key(*k))
        .all(|(k, v)| before[k] == *v));

    let report = sink.abort().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "Nothing of this run remains in {}; its previous output ({files} files and manifest.json) is untouched.",
            out.display()
        )]
    );
    assert_eq!(snapshot(&out), before);
}

#[tokio::test]
async fn a_failing_source_leaves_the_previous_output_and_says_so() {
    use vmig_core::pipeline::{NoProgress, Pipeline};
    use vmig_testing::gen::{sample_batch, sample_schema};
    use vmig_testing::mock::MockSource;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let source = |fail_at| MockSource {
        schema: sample_schema(8),
        partitions: vec![(0..4).map(|i| sample_batch(3, i * 100, 100, 8)).collect()],
        fail_at,
        target_partitions: vec![],
    };
    let cfg = overwriting(&out, StagingFormat::Parquet);
    let migrate = |fail_at| {
        let cfg = cfg.clone();
        async move {
            let sink = cfg.build(&BuildContext::default()).await.unwrap();
            Pipeline::new(Box::new(source(fail_at)), sink)
                .run(Arc::new(NoProgress))
                .await
        }
    };
    migrate(None).await.unwrap();
    let before = snapshot(&out);
    let parts = before.keys().filter(|k| k.ends_with(".parquet")).count();
    let parts = if parts == 1 {
        "1 file".to_string()
    } else {
        format!("{parts} files")
    };
    let err = migrate(Some((0, 3))).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("injected failure"), "{msg}");
    assert!(
        msg.ends_with(&format!(
            "\nLeft in the target: Nothing of this run remains in {}; its previous output ({parts} and manifest.json) is untouched.",
            out.display()
        )),
        "{msg}"
    );
    assert_eq!(snapshot(&out), before);
}

#[tokio::test]
async fn a_second_run_into_a_path_in_use_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    let mut first = open(&cfg, &schema()).await.unwrap();
    first.write(batch(0, 400), None).await.unwrap();
    first.flush().await.unwrap();
    first.write(batch(400, 50), None).await.unwrap(); // an open unit, under a temporary name
    let during = snapshot(&out);

    let mut second_cfg = cfg.clone();
    second_cfg.overwrite = true;
    let mut second = second_cfg.build(&BuildContext::default()).await.unwrap();
    let err = second.prepare(&schema()).await.unwrap_err();
    let msg = err.to_string();
    let display = out.display();
    assert!(
        msg.contains(&format!("{display} is being written by another vmig run "))
            && msg.contains(&format!(
                "(pid {} on host {}, started ",
                std::process::id(),
                this_host()
            ))
            && msg.contains(&format!(
                "wait for it to finish, or, if that run is gone for good, remove {display}/.vmig.lock and run again"
            )),
        "{msg}"
    );
    let report = second.abort().await.unwrap();
    assert_eq!(
        report.left,
        [format!("Nothing of this run was written to {display}.")]
    );
    assert_eq!(
        snapshot(&out),
        during,
        "the refused run touched the first one's files"
    );

    first.write(batch(450, 50), None).await.unwrap();
    first.flush().await.unwrap();
    let report = first.commit().await.unwrap();
    assert_eq!(report.rows, 500);
    let (got, _) = read_dir(&out, StagingFormat::Parquet);
    assert!(got == expected(&[batch(0, 400), batch(400, 50), batch(450, 50)]));
    assert!(!out.join(".vmig.lock").exists());
}

#[tokio::test]
async fn locks_of_live_or_foreign_runs_are_respected_and_stale_ones_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = overwriting(&out, StagingFormat::Parquet);
    let display = out.display().to_string();
    let lock = out.join(".vmig.lock");
    run(&cfg, &[batch(0, 10)], &[]).await;

    // Not a vmig lock: refused, untouched.
    put(&lock, "busy");
    let err = open(&cfg, &schema()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid `files` configuration: {display}/.vmig.lock exists but is not a vmig lock; vmig will not touch it: remove it if no vmig run is writing into {display}")
    );
    // A live process, and a dead pid on another host: both count as running. (A lock of this
    // process counts as running only while one of its sinks holds that run: see
    // `a_second_run_into_a_path_in_use_is_refused_naming_the_first`.)
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    for (pid, host) in [
        (sleeper.id(), this_host()),
        (dead_pid(), "elsewhere".to_string()),
    ] {
        put(&lock, &lock_json("00000000000000aa", pid, &host));
        let err = open(&cfg, &schema()).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "{display} is being written by another vmig run 00000000000000aa (pid {pid} on host {host}, started 2026-12-02 15:50:00 UTC)"
            )),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            lock_json("00000000000000aa", pid, &host)
        );
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    // A dead run of this host, which did not get to commit: its run directory goes, the rest
    // stays.
    put(
        &lock,
        &lock_json("00000000000000bb", dead_pid(), &this_host()),
    );
    put(
        &out.join(".vmig-00000000000000bb/part-00000.parquet"),
        "half",
    );
    put(
        &out.join(".vmig-00000000000000cc/part-00000.parquet"),
        "no lock names it",
    );
    let mut sink = open(&cfg, &schema()).await.unwrap();
    assert!(!out.join(".vmig-00000000000000bb").exists());
    assert!(out
        .join(".vmig-00000000000000cc/part-00000.parquet")
        .exists());
    sink.write(batch(0, 5), None).await.unwrap();
    let report = sink.abort().await.unwrap();
    assert_eq!(report.left.len(), 2, "{report:?}");
    assert!(
        report.left[0].starts_with("Before writing, this run found the lock of the earlier run 00000000000000bb (pid ")
            && report.left[0].ends_with(&format!(
                "which died before committing, and removed its unfinished files ({display}/.vmig-00000000000000bb); the output it was to replace is untouched."
            )),
        "{report:?}"
    );
    assert!(!lock.exists());
}

/// Puts `out` in the state a run `run` killed during its commit leaves: its files and staged
/// manifest in its run directory, its lock, and part of the previous output moved aside.
fn crash_during_commit(out: &Path, staged_from: &Path, run: &str, moved_aside: usize) {
    let run_dir = out.join(format!(".vmig-{run}"));
    for (rel, data) in snapshot(staged_from) {
        if !rel.ends_with('/') {
            put(&run_dir.join(&rel), "");
            std::fs::write(run_dir.join(&rel), data).unwrap();
        }
    }
    let old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let old_files: Vec<String> = old["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["files"].as_array().unwrap().iter())
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let aside = out.join(format!(".vmig-{run}.old"));
    for f in old_files.iter().take(moved_aside) {
        std::fs::create_dir_all(aside.join(f).parent().unwrap()).unwrap();
        std::fs::rename(out.join(f), aside.join(f)).unwrap();
    }
    put(&out.join(".vmig.lock"), &dead_lock(run));
}

#[tokio::test]
async fn the_next_run_completes_a_commit_that_was_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, staged) = (tmp.path().join("out"), tmp.path().join("staged"));
    let cfg = earlier_output(&out).await;
    put(&out.join("notes.txt"), "theirs");
    // What the interrupted run would have put in place, produced by a real run elsewhere.
    new_output(&staged).await;
    let new_run = run_id_of(&staged);
    crash_during_commit(&out, &staged, &new_run, 2);

    // The next run (even one that is then refused) finishes that commit first, and says so.
    let mut next = cfg.clone();
    next.overwrite = false;
    let mut sink = next.build(&BuildContext::default()).await.unwrap();
    let err = sink.prepare(&schema()).await.unwrap_err();
    assert!(
        err.to_string().contains("already holds vmig output"),
        "{err}"
    );
    let report = sink.abort().await.unwrap();
    assert_eq!(report.left.len(), 2, "{report:?}");
    assert!(
        report.left[0].starts_with(&format!(
            "Before writing, this run found the lock of the earlier run {new_run} (pid "
        )) && report.left[0].ends_with("which died while committing, and completed its commit."),
        "{report:?}"
    );
    assert_eq!(
        report.left[1],
        format!("Nothing of this run was written to {}.", out.display())
    );
    let mut want = snapshot(&staged);
    want.insert("notes.txt".into(), b"theirs".to_vec());
    assert_eq!(snapshot(&out), want);
}

#[tokio::test]
async fn a_run_killed_before_its_commit_leaves_the_previous_output_to_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = earlier_output(&out).await;
    let before = snapshot(&out);
    put(
        &out.join(".vmig-00000000000000dd/part-00000.parquet"),
        "unfinished",
    );
    put(
        &out.join(".vmig-00000000000000dd/.part-00001.parquet.tmp"),
        "open",
    );
    put(&out.join(".vmig.lock"), &dead_lock("00000000000000dd"));
    assert_refused_as_earlier_output(&cfg).await;
    assert_eq!(snapshot(&out), before);
}

/// A run killed after it moved a dead run's lock aside (into the dead run's directory) and
/// before it wrote its own leaves no `.vmig.lock`: the lock aside still proves whose the
/// directory is, so the next run recovers it as it would a stale lock. A run directory without
/// such proof is someone's: refused, left alone.
#[tokio::test]
async fn a_lock_moved_aside_by_a_killed_run_still_proves_the_dead_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dead = "00000000000000de";
    put(
        &out.join(format!(".vmig-{dead}/.part-00000.parquet.tmp")),
        "open",
    );
    put(
        &out.join(format!(".vmig-{dead}/.lock.{}.stale", dead_pid())),
        &dead_lock(dead),
    );
    let cfg = config(&out, StagingFormat::Parquet);
    run(&cfg, &[batch(0, 10)], &[]).await;
    let left: Vec<String> = snapshot(&out)
        .into_keys()
        .filter(|k| k.starts_with(".vmig"))
        .collect();
    assert_eq!(left, Vec::<String>::new());

    // The same directory, but the lock aside names another run: no proof, refused.
    let out = tmp.path().join("out2");
    put(
        &out.join(format!(".vmig-{dead}/.part-00000.parquet.tmp")),
        "open",
    );
    put(
        &out.join(format!(".vmig-{dead}/.lock.{}.stale", dead_pid())),
        &dead_lock("00000000000000df"),
    );
    let before = snapshot(&out);
    let err = open(&cfg_at(&cfg, &out), &schema()).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "is not empty and holds no vmig output (manifest.json): .vmig-{dead}/"
        )),
        "{err}"
    );
    assert_eq!(snapshot(&out), before);
}

fn cfg_at(cfg: &FilesSinkConfig, path: &Path) -> FilesSinkConfig {
    let mut c = cfg.clone();
    c.path = path.display().to_string();
    c
}

#[tokio::test]
async fn a_new_file_never_goes_over_a_file_vmig_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = overwriting(&out, StagingFormat::Parquet);
    run(&cfg, &[batch(0, 10)], &[]).await;
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(0, 600), None).await.unwrap();
    // Put where the second new unit goes while the run writes.
    put(&out.join("part-00001.parquet"), "someone's");
    let before = snapshot(&out);
    let err = sink.commit().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid `files` configuration: cannot put the new output in place: {} already holds part-00001.parquet, which vmig did not write (no previous manifest.json lists it); nothing was changed: move these away and run again",
            out.display()
        )
    );
    let after = snapshot(&out);
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(gone.iter().all(|k| k.starts_with(".vmig")), "{gone:?}");
    assert_eq!(after.keys().filter(|k| k.starts_with(".vmig")).count(), 0);
}

/// Every object below `prefix`, relative key → content.
async fn objects(
    store: &Arc<dyn object_store::ObjectStore>,
    prefix: &str,
) -> BTreeMap<String, Vec<u8>> {
    let root = object_store::path::Path::from(prefix);
    let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root)))
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for o in listed {
        let data = store.get(&o.location).await.unwrap().bytes().await.unwrap();
        let rel = o.location.as_ref()[prefix.len() + 1..].to_string();
        out.insert(rel, data.to_vec());
    }
    out
}

#[tokio::test]
async fn s3_keeps_the_previous_output_until_commit_and_replaces_only_its_objects() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = vmig_testing::service::unique("vmig-sink-files-overwrite");
    let url = format!("s3://{}/{prefix}/", s3.bucket);
    let mut cfg = FilesSinkConfig::new(&url, StagingFormat::Parquet);
    cfg.storage = s3.storage_options();
    cfg.max_file_size = ByteSize(24 << 10);
    cfg.overwrite = true;
    let store = vmig_core::store::resolve(&url, &cfg.storage).unwrap().store;
    let display = format!("s3://{}/{prefix}/", s3.bucket);

    // Something else in an empty prefix: refused, kept.
    let notes = object_store::path::Path::from(format!("{prefix}/notes.txt"));
    store.put(&notes, b"theirs".to_vec().into()).await.unwrap();
    let err = open(&cfg, &schema()).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "{display} is not empty and holds no vmig output (manifest.json): notes.txt;"
        )),
        "{err}"
    );
    store.delete(&notes).await.unwrap();

    run(&cfg, &[batch(0, 600)], &[]).await;
    store.put(&notes, b"theirs".to_vec().into()).await.unwrap();
    let before = objects(&store, &prefix).await;
    assert!(before.keys().filter(|k| k.ends_with(".parquet")).count() > 2);

    // A run that fails leaves everything as it was; a second run meanwhile is refused.
    let mut failing = open(&cfg, &schema()).await.unwrap();
    failing.write(batch(1000, 300), None).await.unwrap();
    failing.flush().await.unwrap();
    let during = objects(&store, &prefix).await;
    assert!(
        during
            .keys()
            .filter(|k| !before.contains_key(*k))
            .all(|k| k.starts_with(".vmig-") || k == ".vmig.lock"),
        "{:?}",
        during.keys()
    );
    let err = open(&cfg, &schema()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{display} is being written by another vmig run ")),
        "{err}"
    );
    let report = failing.abort().await.unwrap();
    let files = before.keys().filter(|k| k.ends_with(".parquet")).count();
    assert_eq!(
        report.left,
        [format!(
            "Nothing of this run remains in {display}; its previous output ({files} files and manifest.json) is untouched."
        )]
    );
    assert_eq!(objects(&store, &prefix).await, before);

    // A successful overwrite: the new output, the foreign object, nothing else.
    let mut small = cfg.clone();
    small.format = StagingFormat::Json;
    run(&small, &[batch(0, 5)], &[]).await;
    let after = objects(&store, &prefix).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["manifest.json", "notes.txt", "part-00000.json"]
    );
    assert_eq!(after["notes.txt"], b"theirs");
    for key in after.keys() {
        store
            .delete(&object_store::path::Path::from(format!("{prefix}/{key}")))
            .await
            .unwrap();
    }
}

/// With `aws_conditional_put = "etag"` the lock is a create-only PUT (`If-None-Match: *`), so of
/// two runs starting at the same moment only one gets it; the test S3 server honours it.
#[tokio::test]
async fn s3_lock_is_create_only_with_conditional_put() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = vmig_testing::service::unique("vmig-sink-files-lock");
    let url = format!("s3://{}/{prefix}/", s3.bucket);
    let mut cfg = FilesSinkConfig::new(&url, StagingFormat::Parquet);
    cfg.storage = s3.storage_options();
    cfg.storage
        .insert("aws_conditional_put".into(), "etag".into());
    let store = vmig_core::store::resolve(&url, &cfg.storage).unwrap().store;
    let lock = object_store::path::Path::from(format!("{prefix}/.vmig.lock"));

    let sink = open(&cfg, &schema()).await.unwrap();
    let held = objects(&store, &prefix).await;
    let err = store
        .put_opts(
            &lock,
            b"x".to_vec().into(),
            object_store::PutMode::Create.into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err}"
    );
    assert_eq!(objects(&store, &prefix).await, held);
    let err = open(&cfg, &schema()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is being written by another vmig run"),
        "{err}"
    );
    let report = sink.abort().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "Nothing of this run remains in s3://{}/{prefix}/, which holds no objects, as before.",
            s3.bucket
        )]
    );
    assert!(objects(&store, &prefix).await.is_empty());
}

#[tokio::test]
async fn s3_the_next_run_completes_a_commit_that_was_interrupted() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = vmig_testing::service::unique("vmig-sink-files-resume");
    let staged = format!("{prefix}-staged");
    let cfg_at = |p: &str| {
        let mut cfg =
            FilesSinkConfig::new(format!("s3://{}/{p}/", s3.bucket), StagingFormat::Parquet);
        cfg.storage = s3.storage_options();
        cfg.max_file_size = ByteSize(24 << 10);
        cfg.overwrite = true;
        cfg
    };
    let store = vmig_core::store::resolve(&format!("s3://{}/", s3.bucket), &s3.storage_options())
        .unwrap()
        .store;
    let key = |p: &str, rel: &str| object_store::path::Path::from(format!("{p}/{rel}"));
    run(&cfg_at(&prefix), &[batch(0, 600)], &[]).await;
    run(&cfg_at(&staged), &[batch(5000, 200)], &[]).await;
    let new = objects(&store, &staged).await;
    let run_id = serde_json::from_slice::<serde_json::Value>(&new["manifest.json"]).unwrap()
        ["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Killed after deleting the old manifest and copying one new file into place.
    let run_dir = format!(".vmig-{run_id}");
    for (rel, data) in &new {
        store
            .put(
                &key(&prefix, &format!("{run_dir}/{rel}")),
                data.clone().into(),
            )
            .await
            .unwrap();
    }
    store
        .copy(
            &key(&prefix, "manifest.json"),
            &key(&prefix, &format!("{run_dir}/.old-manifest.json")),
        )
        .await
        .unwrap();
    store.delete(&key(&prefix, "manifest.json")).await.unwrap();
    store
        .put(
            &key(&prefix, "part-00000.parquet"),
            new["part-00000.parquet"].clone().into(),
        )
        .await
        .unwrap();
    store
        .put(
            &key(&prefix, ".vmig.lock"),
            dead_lock(&run_id).into_bytes().into(),
        )
        .await
        .unwrap();

    assert_refused_as_earlier_output(&cfg_at(&prefix)).await;
    assert_eq!(objects(&store, &prefix).await, new);
    for p in [&prefix, &staged] {
        for rel in objects(&store, p).await.keys() {
            store.delete(&key(p, rel)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_commit_that_fails_half_way_says_where_everything_is_and_the_next_run_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, staged) = (tmp.path().join("out"), tmp.path().join("staged"));
    let cfg = earlier_output(&out).await;
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(5000, 200), None).await.unwrap();
    let run_dir = names_in(&out)
        .into_iter()
        .find(|n| n.starts_with(".vmig-") && n != ".vmig.lock")
        .unwrap();
    // A file where the commit puts the previous output aside makes it stop half-way.
    let blocker = out.join(format!("{run_dir}.old"));
    put(&blocker, "in the way");
    let err = sink.commit().await.unwrap_err();
    let display = out.display();
    assert!(
        err.to_string().starts_with(&format!(
            "committing into {display} stopped half-way: the new files not yet in place are in {display}/{run_dir}/, what is left of the previous output is in place or listed in {display}/{run_dir}.old/; {display}/.vmig.lock stays, and the next vmig run into {display} on this machine completes this commit (nothing is lost): "
        )),
        "{err}"
    );
    assert!(out.join(&run_dir).join("manifest.json").exists());
    assert!(out.join(".vmig.lock").exists());

    // Once this process is gone (its lock then names a dead pid), the next run completes it.
    std::fs::remove_file(&blocker).unwrap();
    let run_id = run_dir.trim_start_matches(".vmig-");
    put(&out.join(".vmig.lock"), &dead_lock(run_id));
    assert_refused_as_earlier_output(&cfg).await;
    assert_eq!(run_id_of(&out), run_id);
    let names = names_in(&out);
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    new_output(&staged).await;
    let (got, _) = read_dir(&out, StagingFormat::Parquet);
    assert!(got == read_dir(&staged, StagingFormat::Parquet).0);
}

#[tokio::test]
async fn a_completion_that_cannot_finish_keeps_the_dead_runs_lock_for_the_next_try() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, staged) = (tmp.path().join("out"), tmp.path().join("staged"));
    let cfg = overwriting(&out, StagingFormat::Parquet);
    run(&cfg, &[batch(0, 10)], &[]).await;
    new_output(&staged).await;
    assert!(staged.join("part-00001.parquet").exists());
    let new_run = run_id_of(&staged);
    crash_during_commit(&out, &staged, &new_run, 0);
    // Someone put a file where the dead run's second file goes.
    put(&out.join("part-00001.parquet"), "someone's");
    let lock = std::fs::read_to_string(out.join(".vmig.lock")).unwrap();

    let err = open(&cfg, &schema()).await.unwrap_err();
    let display = out.display();
    assert!(
        err.to_string().starts_with(&format!(
            "completing the interrupted commit of the earlier run {new_run} (pid "
        )) && err.to_string().ends_with(&format!(
            "into {display}: invalid `files` configuration: cannot move part-00001.parquet into place: {display}/part-00001.parquet exists, and vmig did not write it; move it away and run again to complete the commit"
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join(".vmig.lock")).unwrap(),
        lock
    );
    assert_eq!(
        std::fs::read(out.join("part-00001.parquet")).unwrap(),
        b"someone's"
    );

    std::fs::remove_file(out.join("part-00001.parquet")).unwrap();
    assert_refused_as_earlier_output(&cfg).await;
    let mut want = snapshot(&staged);
    want.retain(|k, _| !k.starts_with('.'));
    assert_eq!(snapshot(&out), want);
}

/// Set for the child process of [`a_killed_run_leaves_nothing_that_looks_like_output`]: the
/// target it writes into.
const KILL_ME_ENV: &str = "VMIG_FILES_TEST_KILL_ME";

/// Run only as the child of [`a_killed_run_leaves_nothing_that_looks_like_output`]: writes into
/// the target, flushes, opens another unit, says so, and waits to be killed.
#[tokio::test]
#[ignore = "the child process of a_killed_run_leaves_nothing_that_looks_like_output"]
async fn write_until_killed() {
    let Ok(out) = std::env::var(KILL_ME_ENV) else {
        return;
    };
    let out = PathBuf::from(out);
    let mut sink = open(&overwriting(&out, StagingFormat::Parquet), &schema())
        .await
        .unwrap();
    sink.write(batch(1000, 400), None).await.unwrap();
    sink.flush().await.unwrap();
    sink.write(batch(1400, 100), None).await.unwrap();
    std::fs::write(out.with_extension("ready"), "").unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_killed_run_leaves_nothing_that_looks_like_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = earlier_output(&out).await;
    let before = snapshot(&out);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "write_until_killed",
            "--ignored",
            "--test-threads=1",
        ])
        .env(KILL_ME_ENV, &out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = out.with_extension("ready");
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        assert!(
            started.elapsed().as_secs() < 120,
            "the child never got ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The previous output is intact, and all that is new is hidden and vmig's own.
    let after = snapshot(&out);
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(!new.is_empty());
    assert!(
        new.iter()
            .all(|k| k.starts_with(".vmig-") || *k == ".vmig.lock"),
        "{new:?}"
    );
    assert!(before.iter().all(|(k, v)| after.get(k) == Some(v)));

    // The killed run had flushed, so a checkpoint may name its files: the next run keeps
    // them, refuses, and says how to resume or discard them.
    let run_dir = new
        .iter()
        .find(|k| k.starts_with(".vmig-") && k.ends_with('/'))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let lock: serde_json::Value = serde_json::from_slice(&after[".vmig.lock"]).unwrap();
    assert_eq!(lock["flushed"], true, "{lock}");
    let complete = after
        .keys()
        .filter(|k| k.starts_with(&format!("{run_dir}/part-")) && k.ends_with(".parquet"))
        .count();
    assert!(complete >= 2, "{after:?}");
    let err = open(&cfg, &schema()).await.unwrap_err();
    let display = out.display();
    assert!(
        err.to_string().starts_with(&format!(
            "invalid `files` configuration: {display} holds the unfinished run {} (pid {}",
            run_dir.trim_start_matches(".vmig-"),
            child.id()
        )) && err.to_string().ends_with(&format!(
            "which stopped without finishing: {display}/{run_dir}/ holds {complete} complete files of it that `vmig migrate` with that run's job resumes; vmig will not remove them: resume that job, or remove {display}/{run_dir}/ by hand to discard it, then run again"
        )),
        "{err}"
    );
    assert_eq!(snapshot(&out), after);

    // Removed by hand, the next run sees the killed run's process is gone, takes its lock
    // over, and works.
    std::fs::remove_dir_all(out.join(&run_dir)).unwrap();
    let mut next = open(&cfg, &schema()).await.unwrap();
    assert_eq!(
        snapshot(&out)
            .keys()
            .filter(|k| k.starts_with(".vmig") && !before.contains_key(*k))
            .count(),
        2,
        "only the next run's own lock and run directory: {:?}",
        snapshot(&out).keys()
    );
    next.write(batch(0, 5), None).await.unwrap();
    next.commit().await.unwrap();
    assert_eq!(names_in(&out), ["manifest.json", "part-00000.parquet"]);
}
