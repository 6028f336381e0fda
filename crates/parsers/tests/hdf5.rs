//! The `hdf5` parser (feature `hdf5`) through the registry: ann-benchmarks files written by h5py
//! (train/test/neighbors/distances and the `distance` attribute) read back bit-exactly and pass
//! the parser conformance check; files written here with hdf5-metno check the errors (missing
//! dataset, wrong rank, wrong type, not HDF5, truncated) and resuming.
#![cfg(feature = "hdf5")]
#![allow(clippy::unwrap_used)]

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use hdf5_metno as h5;
use vmig_core::parse::{parse_bytes, ParseInput, ParsePosition, Parser};
use vmig_core::registry;
use vmig_core::vector::{META_DIM, META_METRIC, META_PRIMARY_KEY, META_TYPE};
use vmig_parsers as _;

/// A parser from the registry (chosen by the extension of `name`) with `options`.
fn parser(input: &ParseInput, options: serde_json::Value) -> Box<dyn Parser> {
    let plugin = registry::parser_for_path(&input.name)
        .unwrap()
        .expect("a parser claims .hdf5 and .h5");
    assert_eq!(plugin.name, "hdf5");
    assert_eq!(plugin.package, "vmig-parsers");
    plugin.parse(options).unwrap().build(input).unwrap()
}

fn input(path: &Path, bytes: &[u8], batch_rows: usize) -> ParseInput {
    ParseInput::new(path.display().to_string(), batch_rows).with_size(bytes.len() as u64)
}

/// Every row of `path` read with `options`, in batches of at most `batch_rows` rows.
fn read(path: &Path, options: serde_json::Value, batch_rows: usize) -> RecordBatch {
    let bytes = std::fs::read(path).unwrap();
    let mut p = parser(&input(path, &bytes, batch_rows), options);
    let batches = parse_bytes(p.as_mut(), &bytes.into(), 4096).unwrap();
    let schema = p.schema().expect("schema known after the file");
    for b in &batches {
        assert!(b.num_rows() <= batch_rows);
        assert_eq!(b.schema(), schema);
    }
    concat_batches(&schema, &batches).unwrap()
}

/// The error text of reading `path` with `options`.
fn error(path: &Path, options: serde_json::Value) -> String {
    let bytes = std::fs::read(path).unwrap();
    let mut p = parser(&input(path, &bytes, 100), options);
    parse_bytes(p.as_mut(), &bytes.into(), 4096)
        .expect_err("must fail")
        .to_string()
}

/// Runs the conformance check on `path` read with `options`; returns all rows.
fn conformance(path: &Path, options: serde_json::Value, batch_rows: usize) -> RecordBatch {
    let bytes = std::fs::read(path).unwrap();
    let build = |input: &ParseInput| parser(input, options.clone());
    let name = path.display().to_string();
    let report = vmig_testing::parsers::check_parser(&build, &name, &bytes, batch_rows);
    assert!(report.seeks, "{name}: hdf5 resumes at a row count");
    assert_eq!(
        report.resumed_at.len(),
        report.rows.num_rows().div_ceil(batch_rows) - 1,
        "{name}: resumed after every batch but the last"
    );
    assert!(report.resumed_at.iter().all(|p| p.offset.is_none()));
    report.rows
}

/// The float bits of row `r` of a `FixedSizeList<Float32>` column.
fn f32_bits(column: &dyn Array, r: usize) -> Vec<u32> {
    let row = column.as_fixed_size_list().value(r);
    row.as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `VMIG_PYTHON` with h5py (scripts/pyenv), or `None` with SKIPPED printed (fails on CI).
fn h5py() -> Option<String> {
    let python = vmig_testing::service::python()?;
    let ok = std::process::Command::new(&python)
        .args(["-c", "import h5py"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{python} cannot import h5py; run scripts/pyenv (it pins h5py) and set VMIG_PYTHON"
    );
    Some(python)
}

/// Writes ann-benchmarks files with h5py into `dir` and returns, per line, what was written:
/// `file dataset rows dim hex-of-the-raw-values` (little-endian bytes).
const ANN_BENCHMARKS: &str = r#"
import sys, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
def out(fn, name, a):
    print(fn, name, a.shape[0], a.shape[1], a.astype(a.dtype.newbyteorder("<")).tobytes().hex())
def special(a):
    # -0.0, the smallest subnormal, a quiet NaN with a payload, a signalling NaN, +inf, a subnormal
    a.view("<u4")[0, :6] = [0x80000000, 0x00000001, 0x7fc01234, 0x7f800001, 0x7f800000, 0x007fffff]
    return a
# euclidean, as ann-benchmarks' write_output: float32 train/test, int32 neighbors, float32 distances
train = special(rng.standard_normal((1001, 24)).astype("<f4"))
test = special(rng.standard_normal((37, 24)).astype("<f4"))
neighbors = rng.integers(0, 1001, (37, 10)).astype("<i4")
distances = rng.random((37, 10)).astype("<f4")
with h5py.File(f"{d}/euclid.hdf5", "w") as f:
    f.attrs["distance"] = "euclidean"
    f.attrs["point_type"] = "float"
    f.create_dataset("train", data=train)
    f.create_dataset("test", data=test)
    f.create_dataset("neighbors", data=neighbors)
    f.create_dataset("distances", data=distances)
for name, a in [("train", train), ("test", test), ("neighbors", neighbors), ("distances", distances)]:
    out("euclid.hdf5", name, a)
# hamming: bool train/test (one value per bit)
bits = rng.random((203, 40)) < 0.5
with h5py.File(f"{d}/bits.h5", "w") as f:
    f.attrs["distance"] = "hamming"
    f.attrs["point_type"] = "bit"
    f.create_dataset("train", data=bits)
    f.create_dataset("test", data=bits[:5])
print("bits.h5", "train", bits.shape[0], bits.shape[1], np.packbits(bits, axis=-1).tobytes().hex())
# angular, big-endian float32 train, chunked and gzip-compressed, the attribute as fixed-length ASCII
angular = special(rng.standard_normal((300, 16)).astype(">f4"))
with h5py.File(f"{d}/angular.hdf5", "w") as f:
    f.attrs["distance"] = np.bytes_("angular")
    f.create_dataset("train", data=angular, chunks=(64, 16), compression="gzip")
    f.create_dataset("test", data=rng.standard_normal((3, 8)).astype("<f8"))
out("angular.hdf5", "train", angular)
"#;

/// The ann-benchmarks layout written by h5py: every dataset reads back with its exact values
/// (float bits included, big-endian and compressed too), ids are row numbers, the metric comes
/// from `distance`, and every file passes the conformance check.
#[test]
fn ann_benchmarks_files_written_by_h5py_read_back_exactly() {
    let Some(python) = h5py() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = vmig_testing::process::python(&python, ANN_BENCHMARKS, &[dir.path()]);
    let mut checked = 0;
    for line in out.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [file, dataset, rows, dim, values] = parts[..] else {
            panic!("unexpected line {line}");
        };
        let (rows, dim): (usize, usize) = (rows.parse().unwrap(), dim.parse().unwrap());
        let path = dir.path().join(file);
        let options = serde_json::json!({ "dataset": dataset });
        let got = conformance(&path, options.clone(), 64);
        assert_eq!(got, read(&path, options, 1000), "{file} {dataset}");
        assert_eq!(got.num_rows(), rows, "{file} {dataset}");
        assert_eq!(ids(&got), (0..rows as i64).collect::<Vec<_>>());
        let schema = got.schema();
        assert_eq!(schema.field(0).name(), "id");
        assert_eq!(schema.field(1).name(), "vector");
        assert_eq!(schema.metadata()[META_PRIMARY_KEY], "id");
        let metric = schema.metadata().get(META_METRIC).map(String::as_str);
        let want = hex(values);
        let column = got.column(1);
        let have: Vec<u8> = match (file, dataset) {
            ("euclid.hdf5", "train" | "test") | ("angular.hdf5", "train") => {
                assert_eq!(
                    schema.field(1).data_type(),
                    &vmig_core::vector::float_vector_type(dim)
                );
                let expect = if file == "euclid.hdf5" {
                    "L2"
                } else {
                    "COSINE"
                };
                assert_eq!(metric, Some(expect), "{file}");
                (0..rows)
                    .flat_map(|r| f32_bits(column, r))
                    .flat_map(u32::to_le_bytes)
                    .collect()
            }
            ("euclid.hdf5", "distances") => {
                assert_eq!(metric, None, "ground truth has no metric");
                (0..rows)
                    .flat_map(|r| f32_bits(column, r))
                    .flat_map(u32::to_le_bytes)
                    .collect()
            }
            ("euclid.hdf5", "neighbors") => {
                assert_eq!(metric, None, "ground truth has no metric");
                let DataType::FixedSizeList(item, d) = schema.field(1).data_type() else {
                    panic!("neighbors: {}", schema.field(1).data_type());
                };
                assert_eq!((item.data_type(), *d as usize), (&DataType::Int32, dim));
                let list = column.as_fixed_size_list();
                list.values()
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            ("bits.h5", "train") => {
                assert_eq!(metric, Some("HAMMING"));
                let field = schema.field(1);
                assert_eq!(field.data_type(), &DataType::FixedSizeBinary(5));
                assert_eq!(field.metadata()[META_TYPE], "binary_vector");
                assert_eq!(field.metadata()[META_DIM], "40");
                column.as_fixed_size_binary().values().to_vec()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert!(
            have == want,
            "{file} {dataset}: the values differ from h5py's"
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "{out}");

    // A float64 dataset stays float64 (a list; `cast` narrows it), with the file's metric.
    let f64s = read(
        &dir.path().join("angular.hdf5"),
        serde_json::json!({ "dataset": "test" }),
        2,
    );
    let list = f64s.column(1).as_fixed_size_list();
    assert_eq!(list.value_length(), 8);
    assert_eq!(list.values().as_primitive::<Float64Type>().len(), 24);
    assert_eq!(f64s.schema().metadata()[META_METRIC], "COSINE");
}

/// Writes an HDF5 file with hdf5-metno: each `(name, shape, values)` as an `f32` dataset, and
/// the root attribute `distance` when given. The file stays open for more writes until the
/// returned handle drops: reopening it while this process still holds it fails on HDF5's file
/// lock (errno 11), so callers that add datasets use this handle.
fn write_f32(path: &Path, datasets: &[(&str, &[usize])], distance: Option<&str>) -> h5::File {
    let file = h5::File::create(path).unwrap();
    for (name, shape) in datasets {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        file.new_dataset::<f32>()
            .shape(shape.to_vec())
            .create(*name)
            .unwrap()
            .write_raw(&values)
            .unwrap();
    }
    if let Some(d) = distance {
        let value: h5::types::VarLenUnicode = d.parse().unwrap();
        file.new_attr::<h5::types::VarLenUnicode>()
            .create("distance")
            .unwrap()
            .write_scalar(&value)
            .unwrap();
    }
    file
}

/// A file's rows are numbered from the input's `first_row`; the options rename the columns;
/// `seek` by row count starts there, before or after the file is open, and a row past the end
/// fails; a planned schema of another dimension or metric fails naming the file.
#[test]
fn ids_options_seek_and_planned_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.h5");
    write_f32(
        &path,
        &[("train", &[10, 3]), ("test", &[2, 4])],
        Some("dot"),
    );
    let bytes = std::fs::read(&path).unwrap();
    let options = serde_json::json!({ "id_field": "pk", "vector_field": "emb" });
    let base = input(&path, &bytes, 4).with_first_row(1000);
    let mut p = parser(&base, options.clone());
    p.seek(&ParsePosition {
        rows: 7,
        offset: None,
    })
    .unwrap();
    let batches = parse_bytes(p.as_mut(), &bytes.clone().into(), 1).unwrap();
    let got = concat_batches(&p.schema().unwrap(), &batches).unwrap();
    assert_eq!(ids(&got), vec![1007, 1008, 1009]);
    assert_eq!(p.total_rows(), Some(10));
    let schema = got.schema();
    assert_eq!(schema.field(0).name(), "pk");
    assert_eq!(schema.field(1).name(), "emb");
    assert_eq!(schema.metadata()[META_PRIMARY_KEY], "pk");
    assert_eq!(schema.metadata()[META_METRIC], "IP");
    let values = got.column(1).as_fixed_size_list().value(0);
    assert_eq!(
        values.as_primitive::<Float32Type>().values().to_vec(),
        vec![7.5, 8.0, 8.5]
    );

    // Past the end: refused when the file is open (at once, or when it opens).
    let mut p = parser(&base, options.clone());
    p.seek(&ParsePosition {
        rows: 11,
        offset: None,
    })
    .unwrap();
    let e = parse_bytes(p.as_mut(), &bytes.clone().into(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot resume after row 11") && e.contains("has 10 rows"),
        "{e}"
    );
    // A byte offset is not a position of this format.
    let e = parser(&base, options.clone())
        .seek(&ParsePosition {
            rows: 1,
            offset: Some(10),
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("by row number"), "{e}");

    // The planned schema (from the source's first file) must match: dimension, then metric.
    let planned = schema.clone();
    let mut p = parser(
        &input(&path, &bytes, 4).with_schema(planned.clone()),
        serde_json::json!({ "dataset": "test", "id_field": "pk", "vector_field": "emb" }),
    );
    let e = parse_bytes(p.as_mut(), &bytes.clone().into(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(dataset `test`)") && e.contains("same dimension"),
        "{e}"
    );
    let other = dir.path().join("b.h5");
    write_f32(&other, &[("train", &[2, 3])], Some("euclidean"));
    let other_bytes = std::fs::read(&other).unwrap();
    let mut p = parser(
        &input(&other, &other_bytes, 4).with_schema(planned),
        options,
    );
    let e = parse_bytes(p.as_mut(), &other_bytes.into(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("metric L2") && e.contains("gives IP"), "{e}");
}

/// Errors name the file, the dataset and what to do.
#[test]
fn errors_name_the_file_the_dataset_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.hdf5");
    {
        let file = write_f32(
            &path,
            &[
                ("train", &[4, 2]),
                ("flat", &[8]),
                ("cube", &[2, 2, 2]),
                ("empty_rows", &[3, 0]),
            ],
            None,
        );
        file.new_dataset::<u16>()
            .shape([2, 2])
            .create("u16")
            .unwrap()
            .write_raw(&[1u16, 2, 3, 4])
            .unwrap();
        file.new_dataset::<bool>()
            .shape([1, 12])
            .create("bits12")
            .unwrap()
            .write_raw(&[true; 12])
            .unwrap();
        // ann-benchmarks' sparse jaccard layout: items back to back, and their counts.
        file.new_dataset::<i32>()
            .shape([5])
            .create("sets")
            .unwrap()
            .write_raw(&[1, 2, 3, 4, 5])
            .unwrap();
        file.new_dataset::<i64>()
            .shape([2])
            .create("size_sets")
            .unwrap()
            .write_raw(&[2i64, 3])
            .unwrap();
    }
    let name = path.display().to_string();
    let e = error(&path, serde_json::json!({ "dataset": "nope" }));
    assert!(
        e.contains(&format!("{name} has no dataset `nope`"))
            && e.contains("`train` (4 × 2, float32)")
            && e.contains("`cube` (2 × 2 × 2, float32)")
            && e.contains("Set `dataset`"),
        "{e}"
    );
    let e = error(&path, serde_json::json!({ "dataset": "flat" }));
    assert!(
        e.contains(&format!("{name} (dataset `flat`)"))
            && e.contains("1-D, of shape [8]")
            && e.contains("vmig reads 2-D datasets"),
        "{e}"
    );
    let e = error(&path, serde_json::json!({ "dataset": "cube" }));
    assert!(e.contains("3-D, of shape [2, 2, 2]"), "{e}");
    let e = error(&path, serde_json::json!({ "dataset": "sets" }));
    assert!(
        e.contains("sparse layout") && e.contains("size_sets"),
        "{e}"
    );
    let e = error(&path, serde_json::json!({ "dataset": "empty_rows" }));
    assert!(e.contains("rows have no values"), "{e}");
    let e = error(&path, serde_json::json!({ "dataset": "u16" }));
    assert!(
        e.contains("(dataset `u16`)")
            && e.contains("holds `uint16` values")
            && e.contains("float32"),
        "{e}"
    );
    let e = error(&path, serde_json::json!({ "dataset": "bits12" }));
    assert!(e.contains("12 dimensions cannot be a binary vector"), "{e}");

    // Not HDF5 at all: fails on the first range, naming byte 0.
    let npy = dir.path().join("x.hdf5");
    std::fs::write(&npy, b"\x93NUMPY not hdf5 at all").unwrap();
    let e = error(&npy, serde_json::json!({}));
    assert!(
        e.contains(&format!("{} at byte 0", npy.display())) && e.contains("not an HDF5 file"),
        "{e}"
    );
    let empty = dir.path().join("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    assert!(error(&empty, serde_json::json!({})).contains("not an HDF5 file"));

    // Truncated: the signature is there, the rest is not.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.h5");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = error(&cut, serde_json::json!({}));
    assert!(
        e.contains("cannot open the file") && e.contains("damaged or truncated"),
        "{e}"
    );

    // The input ended before the whole file was given.
    let mut p = parser(&input(&path, &bytes, 10), serde_json::json!({}));
    let e = p.finish().unwrap_err().to_string();
    assert!(e.contains("ended after 0 of its"), "{e}");
    // Without a size there is no random access.
    let mut p = parser(&ParseInput::new(&name, 10), serde_json::json!({}));
    let e = p.wanted().unwrap_err().to_string();
    assert!(e.contains("size must be known"), "{e}");
}

/// The options: an example that round-trips, defaults, and the checks of `validate`.
#[test]
fn options_are_checked() {
    let plugin = registry::parsers().unwrap()["hdf5"];
    assert_eq!(plugin.extensions, ["hdf5", "h5"]);
    plugin.parse(plugin.example_config()).unwrap();
    let bad = |options: serde_json::Value| {
        registry::parse_parser("hdf5", options)
            .and_then(|c| c.build(&ParseInput::new("x.h5", 1)).map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    assert!(bad(serde_json::json!({ "dataset": "" })).contains("`dataset` may not be empty"));
    assert!(bad(serde_json::json!({ "vector_field": "id" })).contains("must differ"));
    assert!(bad(serde_json::json!({ "datasets": "x" })).contains("unknown field"));
}
