//! The `npy` parser through the registry: vmig's own NumPy staging output and arrays written by
//! real NumPy read back bit-exactly, fed in chunks of every awkward size; broken files fail
//! naming the file and the byte.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use vmig_core::parse::{parse_all, ParseInput};
use vmig_core::registry;
use vmig_core::vector::{binary_vector_array, binary_vector_field, float_vector_array};
use vmig_formats::staging::NumpyWriter;
use vmig_parsers as _;

/// Every batch of `bytes` fed `chunk` bytes at a time, concatenated.
fn read(name: &str, bytes: &[u8], chunk: usize, batch_rows: usize) -> RecordBatch {
    common::read(
        bytes,
        serde_json::json!({}),
        ParseInput::new(name, batch_rows),
        chunk,
    )
}

/// The error text of reading `bytes` as `name`.
fn error(name: &str, bytes: &[u8], chunk: usize) -> String {
    common::error(
        bytes,
        serde_json::json!({}),
        ParseInput::new(name, 10),
        chunk,
    )
}

fn sample() -> RecordBatch {
    let rows = 53;
    let dim = 7;
    let vectors: Vec<f32> = (0..rows * dim)
        .map(|i| match i % 11 {
            0 => -0.0,
            1 => f32::MIN_POSITIVE / 2.0, // subnormal
            2 => f32::MAX,
            _ => (i as f32).sqrt() * if i % 2 == 0 { 1.0 } else { -1.0 },
        })
        .collect();
    let bits: Vec<u8> = (0..rows * 2).map(|i| (i * 37 % 256) as u8).collect();
    let (mut fields, mut columns) = common::id_and_int_columns(rows);
    let more: Vec<ArrayRef> = vec![
        Arc::new(float_vector_array(Float32Array::from(vectors), dim).unwrap()),
        Arc::new(binary_vector_array(bits.into(), 2).unwrap()),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("título {i} ✓ 𝄞").repeat(i % 3)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| 1.0 / (i as f64 + 0.5)),
        )),
    ];
    columns.extend(more);
    fields.extend([
        vmig_core::vector::float_vector_field("vector", dim),
        binary_vector_field("bits", 16).unwrap(),
        Field::new("title", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// [`sample`] written by vmig's NumPy staging writer to `dir` (one `.npy` file a column).
fn write_sample(dir: &std::path::Path) -> RecordBatch {
    let batch = sample();
    let mut w = NumpyWriter::create(dir, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    batch
}

/// The stored bytes of one value of `col` at `row` (floats by their bits, little-endian).
fn raw(col: &dyn Array, row: usize) -> Vec<u8> {
    match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).as_bytes().to_vec(),
        DataType::Binary => col.as_binary::<i32>().value(row).to_vec(),
        DataType::Boolean => vec![u8::from(col.as_boolean().value(row))],
        DataType::FixedSizeBinary(_) => col.as_fixed_size_binary().value(row).to_vec(),
        DataType::FixedSizeList(..) => {
            let values = col.as_fixed_size_list().value(row);
            (0..values.len()).flat_map(|i| raw(&values, i)).collect()
        }
        dt => {
            let width = dt.primitive_width().expect("a primitive column");
            let data = col.to_data();
            let start = (data.offset() + row) * width;
            data.buffers()[0][start..start + width].to_vec()
        }
    }
}

fn cell(col: &dyn Array, row: usize) -> String {
    common::hex(&raw(col, row))
}

#[test]
fn vmig_numpy_staging_reads_back_bit_exactly_in_any_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("unit");
    let batch = write_sample(&unit);
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let path = unit.join(format!("{}.npy", field.name()));
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        for (chunk, batch_rows) in [(1, 10), (3, 1), (7, 53), (4096, 20), (bytes.len(), 1000)] {
            let got = read(&name, &bytes, chunk, batch_rows);
            let got_field = got.schema().field(0).clone();
            assert_eq!(
                got_field.name(),
                field.name(),
                "column named after the file"
            );
            assert_eq!(got_field.data_type(), field.data_type(), "{name}");
            assert_eq!(got.num_rows(), batch.num_rows(), "{name} chunk {chunk}");
            let (want, have) = (batch.column(i), got.column(0));
            for row in 0..batch.num_rows() {
                assert_eq!(
                    cell(have.as_ref(), row),
                    cell(want.as_ref(), row),
                    "{name} row {row} chunk {chunk}"
                );
            }
        }
    }
}

#[test]
fn the_field_option_names_the_column() {
    let dir = tempfile::tempdir().unwrap();
    write_sample(dir.path());
    let path = dir.path().join("vector.npy");
    let mut p = common::parser(
        serde_json::json!({"field": "embedding"}),
        &ParseInput::new(path.display().to_string(), 100),
    );
    let batches = parse_all(p.as_mut(), [std::fs::read(&path).unwrap().as_slice()]).unwrap();
    assert_eq!(batches[0].schema().field(0).name(), "embedding");
    let bad = registry::parse_parser("npy", serde_json::json!({"field": ""})).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "invalid `npy` configuration: `field` may not be empty"
    );
    let unknown = registry::parse_parser("npy", serde_json::json!({"feild": "x"})).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `feild`"),
        "{unknown}"
    );
}

/// An NPY v1.0 file with `descr`, `shape` and `fortran_order`, whose data is `data`.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

#[test]
fn broken_and_unsupported_files_fail_naming_file_and_byte() {
    let rows: Vec<u8> = (0..24u8).collect(); // three rows of 2 x <f4
    let good = npy("<f4", false, "(3, 2)", &rows);
    assert_eq!(read("v.npy", &good, 5, 2).num_rows(), 3);
    let data_start = good.len() - rows.len();

    // Truncated in the body: the error names the byte where the data stops and the rows.
    let cut = &good[..good.len() - 3];
    assert_eq!(
        error("d/v.npy", cut, 4),
        format!(
            "invalid data at d/v.npy at byte {}: the file ends after 2 of the 3 rows its header \
             declares (rows are 8 bytes); it is truncated",
            data_start + 21
        )
    );
    // Truncated in the header.
    assert_eq!(
        error("v.npy", &good[..40], 7),
        "invalid data at v.npy at byte 40: the file ends inside its NumPy header; it is truncated"
    );
    // Not NumPy at all.
    assert_eq!(
        error("v.npy", b"PAR1\x00\x00\x00\x00\x00\x00\x00\x00", 3),
        "invalid data at v.npy at byte 0: not a NumPy .npy file: it does not start with the magic `\\x93NUMPY`"
    );
    // Trailing bytes the header does not account for.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 4]);
    assert_eq!(
        error("v.npy", &long, 1000),
        format!(
            "invalid data at v.npy at byte {}: the file holds more bytes than its header's 3 rows \
             of 8 bytes; it is not a valid .npy file",
            data_start + 24
        )
    );
    // A bool that is not 0 or 1.
    let bools = npy("|b1", false, "(3,)", &[0, 1, 2]);
    assert_eq!(
        error("b.npy", &bools, 100),
        format!(
            "invalid data at b.npy at byte {}: bool value 2 is neither 0 nor 1",
            bools.len() - 1
        )
    );
    for (descr, fortran, shape, says) in [
        ("<f4", false, "(2, 2, 2)", "an array of shape [2, 2, 2]"),
        (
            "<i8",
            false,
            "(2, 3)",
            "a 2-D `<i8` array has no Milvus vector type",
        ),
        ("|O", false, "(2,)", "dtype `|O"),
        ("<c8", false, "(2,)", "dtype `<c8`"),
    ] {
        let text = error("x.npy", &npy(descr, fortran, shape, &[0; 64]), 64);
        assert!(
            text.starts_with("unsupported input at x.npy at byte 0: ") && text.contains(says),
            "{descr} {shape}: {text}"
        );
    }
}

#[test]
fn fortran_order_is_fine_for_one_dimension_and_single_rows() {
    let data: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let got = read("s.npy", &npy("<f8", true, "(2,)", &data), 3, 10);
    assert_eq!(
        got.column(0)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values(),
        &[1.5, -2.0]
    );
}

/// Arrays saved by real NumPy: both byte orders, float16 vectors, unsigned ints, `<U`/`|S`,
/// 1-D Fortran order, NPY v2.0 — read back equal to what NumPy itself prints.
#[test]
fn files_written_by_numpy_read_back_exactly() {
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
arrays = {
  "f4be": rng.standard_normal((9, 5)).astype(">f4"),
  "f2": rng.standard_normal((9, 4)).astype("<f2"),
  "u1": rng.integers(0, 256, (9, 3)).astype("u1"),
  "u8be": rng.integers(0, 2**63, 9, dtype=np.uint64).astype(">u8"),
  "u2": rng.integers(0, 2**16, 9).astype("<u2"),
  "i8": rng.integers(-2**62, 2**62, 9).astype("<i8"),
  "ube": np.array(["", "a", "ünï", "𝄞x", "abcdefgh", "q", "r", "s", "t"], dtype=">U8"),
  "s": np.array([b"", b"a", b"\x00b", b"xyz", b"1", b"2", b"3", b"4", b"5"], dtype="S3"),
  "b": np.array([True, False] * 4 + [True]),
}
for k, a in arrays.items():
  np.save(f"{d}/{k}.npy", a)
np.lib.format.write_array(open(f"{d}/v2.npy", "wb"), arrays["i8"], version=(2, 0))
for k, a in list(arrays.items()) + [("v2", arrays["i8"])]:
  flat = a.reshape(-1)
  if a.dtype.kind in "fiu":
    print(k, a.dtype.newbyteorder("<").str, flat.astype(a.dtype.newbyteorder("<")).tobytes().hex())
  elif a.dtype.kind == "U":
    print(k, "U", "|".join(x.encode("utf-8").hex() for x in flat))
  elif a.dtype.kind == "S":
    print(k, "S", "|".join(x.hex() for x in flat))
  else:
    print(k, "b", "".join("1" if x else "0" for x in flat))
"#;
    let Some((dir, out)) = common::python_fixture("numpy", script) else {
        return;
    };
    let mut checked = 0;
    for line in out.lines() {
        let mut parts = line.splitn(3, ' ');
        let (name, kind, want) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
        );
        let path = dir.path().join(format!("{name}.npy"));
        let got = read(
            &path.display().to_string(),
            &std::fs::read(&path).unwrap(),
            13,
            4,
        );
        let col = got.column(0);
        assert_eq!(got.num_rows(), 9, "{name}");
        let have = match kind {
            "U" => (0..9)
                .map(|r| common::hex(col.as_string::<i32>().value(r).as_bytes()))
                .collect::<Vec<_>>()
                .join("|"),
            "S" => (0..9)
                .map(|r| common::hex(col.as_binary::<i32>().value(r)))
                .collect::<Vec<_>>()
                .join("|"),
            "b" => (0..9)
                .map(|r| if col.as_boolean().value(r) { "1" } else { "0" })
                .collect(),
            _ => (0..9).map(|r| cell(col.as_ref(), r)).collect(),
        };
        // numpy strips trailing NULs from `S` values (b"\x00b" keeps its leading NUL).
        assert_eq!(have, want, "{name} ({kind})");
        checked += 1;
    }
    assert_eq!(checked, 10, "{out}");
}

#[test]
fn the_registry_lists_npy_with_its_extension() {
    let parsers = registry::parsers().unwrap();
    let npy = parsers.get("npy").expect("npy registered");
    assert_eq!(npy.extensions, &["npy"]);
    assert_eq!(
        npy.example_config(),
        serde_json::json!({"field": "embedding"})
    );
    assert!(registry::parser_for_path("a/B.NPY").unwrap().is_some());
    assert!(registry::parser_for_path("a/b.npz").unwrap().is_none());
    assert!(registry::parser_for_path("noext").unwrap().is_none());
}

#[test]
fn npy_passes_the_parser_conformance_check_and_resumes_at_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("unit");
    let batch = write_sample(&unit);
    for field in batch.schema().fields() {
        let path = unit.join(format!("{}.npy", field.name()));
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        common::check(
            "npy",
            serde_json::json!({}),
            &name,
            &bytes,
            (7, batch.num_rows()),
        );
    }
}

/// 2-D arrays NumPy saved in Fortran order (column by column) read back equal to the same
/// arrays in C order, by random access (one range per column and batch), in every chunking and
/// resuming after every batch; a truncated one fails naming the file and its size.
#[test]
fn fortran_order_arrays_read_like_c_order_ones() {
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(11)
for name, a in (("f4", rng.standard_normal((23, 6)).astype("<f4")),
                ("f2", rng.standard_normal((23, 4)).astype("<f2")),
                ("u1", rng.integers(0, 256, (23, 2)).astype("u1"))):
    a[0, 0] = -0.0 if a.dtype.kind == "f" else a[0, 0]
    np.save(f"{d}/{name}-c.npy", np.ascontiguousarray(a))
    np.save(f"{d}/{name}-f.npy", np.asfortranarray(a))
    assert np.load(f"{d}/{name}-f.npy").flags.f_contiguous
"#;
    let Some((dir, _)) = common::python_fixture("numpy", script) else {
        return;
    };
    for name in ["f4", "f2", "u1"] {
        let c_bytes = std::fs::read(dir.path().join(format!("{name}-c.npy"))).unwrap();
        let f_bytes = std::fs::read(dir.path().join(format!("{name}-f.npy"))).unwrap();
        let c_rows = read(&format!("{name}.npy"), &c_bytes, 4096, 5);
        let options = serde_json::json!({"field": "v"});
        let report = common::check(
            "npy",
            options.clone(),
            &format!("{name}-f.npy"),
            &f_bytes,
            (5, 23),
        );
        assert_eq!(
            report.rows.column(0).to_data(),
            c_rows.column(0).to_data(),
            "{name}: Fortran order gave other values than C order"
        );
        // Truncated by one byte: its size no longer fits the header.
        let short = bytes::Bytes::copy_from_slice(&f_bytes[..f_bytes.len() - 1]);
        let mut p = common::parser(
            options,
            &ParseInput::new("t.npy", 5).with_size(short.len() as u64),
        );
        let e = vmig_core::parse::parse_bytes(p.as_mut(), &short, 4096)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid data at t.npy at byte ") && e.contains("it is truncated"),
            "{e}"
        );
    }
}
