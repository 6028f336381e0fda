//! The `json` parser through the registry: vmig's own JSON staging output reads back to the
//! batch it was written from; files written by Python's `json` module in all three layouts read
//! to identical batches with exact float32 bits; every layout passes the parser conformance
//! check (any chunking, resume after every batch); bad input fails naming file, line, byte and
//! field.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, ListArray, ListBuilder, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Float16Type, Float32Type, Int64Type, Schema, SchemaRef};
use serde_json::json;
use vmig_core::parse::{parse_all, ParseInput};
use vmig_core::registry;
use vmig_core::vector::{
    binary_vector_array, binary_vector_field, float_vector_array, float_vector_field, json_field,
};
use vmig_formats::staging::JsonWriter;
use vmig_parsers as _;

/// Every row of `bytes` as `name`, fed 7 bytes at a time in batches of at most `batch_rows`.
fn read(name: &str, bytes: &[u8], options: &serde_json::Value, batch_rows: usize) -> RecordBatch {
    common::read(bytes, options.clone(), ParseInput::new(name, batch_rows), 7)
}

/// The error of reading `bytes` as `name`.
fn error(name: &str, bytes: &[u8], options: &serde_json::Value, chunk: usize) -> String {
    common::error(bytes, options.clone(), ParseInput::new(name, 100), chunk)
}

/// A batch of every kind of column vmig's JSON staging writer writes.
fn staging_batch() -> RecordBatch {
    let rows = 40;
    let specials = [
        0.1f32,
        1e-45,
        -0.0,
        f32::MAX,
        f32::MIN_POSITIVE / 2.0,
        -3.25,
        1.0 / 3.0,
    ];
    let vectors: Vec<f32> = (0..rows * 5)
        .map(|i| specials[i % 7] * if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let bits: Vec<u8> = (0..rows * 2).map(|i| (i * 37 % 256) as u8).collect();
    let mut names = ListBuilder::new(StringBuilder::new());
    for i in 0..rows {
        for j in 0..i % 3 {
            names.values().append_value(format!("n{i}.{j} \"q\""));
        }
        names.append(true);
    }
    let docs = [
        Some(r#"{"a": 1, "nested": {"x": [1, 2.50]}}"#),
        Some("[1,2]"),
        None,
        Some("3.5"),
        Some(r#""just a string""#),
        Some("{}"),
    ];
    let (mut fields, mut columns) = common::id_and_int_columns(rows);
    let more: Vec<ArrayRef> = vec![
        Arc::new(Float32Array::from_iter_values(
            (0..rows).map(|i| specials[i % 7]),
        )),
        Arc::new(Float64Array::from_iter(
            (0..rows).map(|i| (i % 5 != 1).then(|| 1.0 / (i as f64 + 0.5))),
        )),
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| {
            [
                "",
                "plain",
                "quote \" back\\slash",
                "new\nline\ttab \u{1}",
                "ünï 𝄞 ✓",
            ][i % 5]
                .repeat(1 + i % 2)
        }))),
        Arc::new(StringArray::from_iter(
            (0..rows).map(|i| (i % 4 != 2).then(|| format!("note {i}"))),
        )),
        Arc::new(StringArray::from_iter((0..rows).map(|i| docs[i % 6]))),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!(r#"{{"extra": {i}, "k": "v{i}"}}"#)),
        )),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..rows).map(|i| {
                (i % 4 != 3).then(|| {
                    (0..i % 3)
                        .map(|j| (j != 1).then_some(i as i64 * 10 + j as i64))
                        .collect::<Vec<_>>()
                })
            }),
        )),
        Arc::new(names.finish()),
        Arc::new(float_vector_array(Float32Array::from(vectors), 5).unwrap()),
        Arc::new(binary_vector_array(bits.into(), 2).unwrap()),
    ];
    columns.extend(more);
    let list = |item: DataType| DataType::List(Arc::new(Field::new_list_field(item, true)));
    fields.extend([
        Field::new("score", DataType::Float32, false),
        Field::new("ratio", DataType::Float64, true),
        Field::new("title", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
        json_field("doc", true),
        json_field("$meta", false),
        Field::new("tags", list(DataType::Int64), true),
        Field::new("names", list(DataType::Utf8), false),
        float_vector_field("vector", 5),
        binary_vector_field("bits", 16).unwrap(),
    ]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn staging_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut w = JsonWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap()
}

/// The `fields` that name what JSON cannot show (narrow ints, float32, JSON strings, bytes).
fn staging_fields() -> serde_json::Value {
    json!({"fields": {
        "tiny": "int8", "small": "Int16", "mid": "int_32", "score": "float",
        "doc": "json", "bits": "binary_vector",
    }})
}

#[test]
fn vmig_json_staging_reads_back_to_the_batch_it_was_written_from() {
    let batch = staging_batch();
    let bytes = staging_bytes(&batch);
    assert!(bytes.starts_with(b"{\"rows\":["));
    let name = "/staging/part-0.json";
    for (chunk, batch_rows) in [(1, 3), (7, 16), (4096, 40), (bytes.len(), 1000)] {
        // With the job's schema (as every file after the first is read).
        let input = ParseInput::new(name, batch_rows).with_schema(batch.schema());
        let got = common::read(&bytes, json!({}), input, chunk);
        assert_eq!(got, batch, "planned schema, {chunk}-byte chunks");
        // Inferred, with `fields` for what JSON cannot tell apart: the very same batch.
        let input = ParseInput::new(name, batch_rows.max(16));
        let got = common::read(&bytes, staging_fields(), input, chunk);
        assert_eq!(got.schema(), batch.schema(), "inferred schema");
        assert_eq!(got, batch, "inferred, {chunk}-byte chunks");
    }
    // Float bits survive exactly (assert_eq on arrays compares bytes; say it explicitly too).
    let got = read(name, &bytes, &staging_fields(), 16);
    let score = got.column(5).as_primitive::<Float32Type>();
    assert_eq!(
        score.value(1).to_bits(),
        1,
        "1e-45 is the smallest subnormal"
    );
    assert_eq!(score.value(2).to_bits(), 0x8000_0000, "-0.0 keeps its sign");
    assert_eq!(score.value(3).to_bits(), f32::MAX.to_bits());
    assert_eq!(
        common::f32_bits(got.column(13).as_ref(), 0)[0],
        (-0.1f32).to_bits()
    );
    // The JSON field keeps the object's text exactly as written, and a string's JSON text.
    let doc = got.column(9).as_string::<i32>();
    assert_eq!(doc.value(0), r#"{"a": 1, "nested": {"x": [1, 2.50]}}"#);
    assert_eq!(doc.value(1), "[1,2]");
    assert!(doc.is_null(2));
    assert_eq!(doc.value(4), r#""just a string""#);
}

#[test]
fn inferred_types_follow_the_values() {
    let text = concat!(
        r#"{"id": 1, "v": [1, 2.5, -3], "s": "a", "o": {"k": [1]}, "b": true, "x": 1.5, "tags": [1, 2], "mixed": [1, "a"], "n": null}"#,
        "\n",
        r#"{"id": 2, "v": [0, 0, 1e3], "s": "b", "o": {}, "b": false, "x": 2, "tags": [3], "mixed": [], "n": 5}"#,
        "\n",
    );
    let got = read("t.jsonl", text.as_bytes(), &json!({}), 10);
    let schema = got.schema();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = vmig_core::types::milvus_field(f).unwrap();
            format!("{}:{t}{}", f.name(), if f.is_nullable() { "?" } else { "" })
        })
        .collect();
    assert_eq!(
        types,
        [
            "id:Int64",
            "v:FloatVector(3)",
            "s:VarChar",
            "o:JSON",
            "b:Bool",
            "x:Double",
            "tags:Array<Int64>",
            "mixed:JSON",
            "n:Int64?"
        ]
    );
    assert_eq!(got.column(3).as_string::<i32>().value(0), r#"{"k": [1]}"#);
    assert_eq!(got.column(7).as_string::<i32>().value(0), r#"[1, "a"]"#);
    assert!(got.column(8).is_null(0));
    assert_eq!(got.column(8).as_primitive::<Int64Type>().value(1), 5);
}

#[test]
fn floats_are_the_nearest_f32_to_the_decimal_never_rounded_twice() {
    // 1 + 2^-24 is halfway between two f32s; a hair above it the nearest f32 is 1 + 2^-23.
    // Parsed to f64 first, it would become exactly 1 + 2^-24 and then round (to even) to 1.0.
    let text = concat!(
        r#"{"v": [0.1, 1e-45, -0.0, 3.4028235e38, 1.000000059604644775390625000001], "f": 0.1}"#,
        "\n",
        r#"{"v": [7.1e-46, -1.17549435e-38, 16777217, 7e-46, -0], "f": -0.0}"#,
        "\n"
    );
    let options = json!({"fields": {"f": "float"}});
    let got = read("exact.jsonl", text.as_bytes(), &options, 10);
    assert_eq!(
        common::f32_bits(got.column(0).as_ref(), 0),
        [
            0x3dcc_cccd,
            0x0000_0001,
            0x8000_0000,
            0x7f7f_ffff,
            0x3f80_0001
        ]
    );
    assert_eq!(
        common::f32_bits(got.column(0).as_ref(), 1),
        [
            0x0000_0001, // 7.1e-46 is above half the smallest subnormal (1.4e-45): rounds up
            0x8080_0000, // -FLT_MIN
            0x4b80_0000, // 16777217 is halfway: ties to even, 16777216
            0x0000_0000, // 7e-46 is below half the smallest subnormal: rounds to 0
            0x8000_0000,
        ]
    );
    let f = got.column(1).as_primitive::<Float32Type>();
    assert_eq!(f.value(0).to_bits(), 0x3dcc_cccd);
    assert_eq!(f.value(1).to_bits(), 0x8000_0000);

    let e = error(
        "big.jsonl",
        b"{\"v\": [3.5e38]}\n",
        &json!({"fields": {"v": "float_vector(1)"}}),
        3,
    );
    assert!(
        e.contains("big.jsonl, line 1, byte 6, field `v`")
            && e.contains("3.5e38 is beyond the range of a 32-bit float"),
        "{e}"
    );
}

#[test]
fn float16_bfloat16_and_binary_vectors_are_read_as_milvus_imports_them() {
    let text = concat!(
        r#"{"h": [0.1, -2, 65504, 1e-8], "b": [0.1, -2, 3.4028235e38, 1.0078125], "bits": [255, 0, 128]}"#,
        "\n"
    );
    let options = json!({"fields": {
        "h": "float16_vector(4)", "b": "bfloat16_vector(4)", "bits": "binary_vector(24)",
    }});
    let got = read("h.jsonl", text.as_bytes(), &options, 10);
    let h = got.column(0).as_fixed_size_list().value(0);
    let h: Vec<u16> = h
        .as_primitive::<Float16Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u16> = [0.1f32, -2.0, 65504.0, 1e-8]
        .iter()
        .map(|v| half::f16::from_f32(*v).to_bits())
        .collect();
    assert_eq!(h, want);
    assert_eq!(h[0], 0x2e66, "0.1 → nearest half");
    // bfloat16: the upper 16 bits of the f32 (Milvus's Float32ToBFloat16Bytes truncates).
    let b = got.column(1).as_fixed_size_binary().value(0);
    let want: Vec<u8> = [0.1f32, -2.0, f32::MAX, 1.0078125]
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    assert_eq!(b, want.as_slice());
    assert_eq!(&b[..2], &[0xcc, 0x3d]);
    assert_eq!(
        got.column(2).as_fixed_size_binary().value(0),
        &[255, 0, 128]
    );
    let field = got.schema().field(2).clone();
    assert_eq!(
        vmig_core::types::milvus_field(&field).unwrap().to_string(),
        "BinaryVector(24)"
    );
}

#[test]
fn the_three_layouts_give_identical_batches() {
    let rows: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"id": {i}, "v": [{}, 0.5, -1e-3], "name": "r\u00e9 {i} \"x\"", "meta": {{"i": {i}}}}}"#,
                i as f32 / 3.0
            )
        })
        .collect();
    let lines = rows.join("\n") + "\n";
    let array = format!("[\n  {}\n]\n", rows.join(",\n  "));
    let rows_file = format!("{{ \"rows\" : [{}]}}", rows.join(","));
    let pretty = format!("\u{feff}[{}\r\n]", rows.join(" ,\r\n\t"));
    let a = read("a.jsonl", lines.as_bytes(), &json!({}), 4);
    for (name, text) in [
        ("b.json", &array),
        ("c.json", &rows_file),
        ("d.json", &pretty),
    ] {
        assert_eq!(read(name, text.as_bytes(), &json!({}), 4), a, "{name}");
    }
    assert_eq!(a.num_rows(), 9);
    assert_eq!(a.column(2).as_string::<i32>().value(3), "ré 3 \"x\"");
    // The layout may be named; the wrong one fails.
    let as_lines = read("e.json", lines.as_bytes(), &json!({"layout": "lines"}), 4);
    assert_eq!(as_lines, a);
    let e = error("f.json", lines.as_bytes(), &json!({"layout": "rows"}), 5);
    assert!(
        e.contains("f.json, line 1, byte 0")
            && e.contains("a `rows` file must begin with `{\"rows\": [`"),
        "{e}"
    );
    let e = error("g.json", array.as_bytes(), &json!({"layout": "lines"}), 5);
    assert!(e.contains("g.json, line 1, byte 0"), "{e}");
    // A JSON Lines file whose first key is `rows` holding an object is JSON Lines.
    let got = read(
        "h.jsonl",
        b"{\"rows\": {\"a\": 1}}\n{\"rows\": {}}\n",
        &json!({}),
        4,
    );
    assert_eq!(got.num_rows(), 2);
}

#[test]
fn python_json_files_in_every_layout_read_identically_and_exactly() {
    let script = r#"
import json, random, struct, sys
d = sys.argv[1]
random.seed(5)
def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]
specials = [0.1, 1e-45, -0.0, 3.4028235e38]
rows = []
for i in range(23):
    vec = [f32(random.uniform(-2, 2)) for _ in range(4)]
    if i < len(specials):
        vec[1] = specials[i]
    rows.append({"id": i * 1000003 - 7, "vector": vec, "name": 'näme "%d"\n\t\\ ✓' % i,
                 "meta": {"k": i, "tags": ["a", "b"][: i % 3]}, "score": i / 7})
with open(d + "/lines.jsonl", "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
with open(d + "/array.json", "w", encoding="utf-8") as f:
    json.dump(rows, f)
with open(d + "/rows.json", "w", encoding="utf-8") as f:
    json.dump({"rows": rows}, f)
with open(d + "/pretty.json", "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=2, ensure_ascii=False)
for r in rows:
    print(" ".join(struct.pack("<f", v).hex() for v in r["vector"]), repr(r["score"]))
"#;
    let Some((dir, out)) = common::python_fixture("json", script) else {
        return;
    };
    let read_file = |file: &str| {
        let path = dir.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        read(&path.display().to_string(), &bytes, &json!({}), 5)
    };
    let lines = read_file("lines.jsonl");
    assert_eq!(read_file("array.json"), lines);
    assert_eq!(read_file("rows.json"), lines);
    // Pretty-printed: the same rows; only the JSON field's text keeps its own layout.
    let pretty = read_file("pretty.json");
    for c in [0, 1, 2, 4] {
        assert_eq!(pretty.column(c), lines.column(c), "column {c}");
    }
    assert_eq!(
        pretty.column(3).as_string::<i32>().value(2),
        "{\n      \"k\": 2,\n      \"tags\": [\n        \"a\",\n        \"b\"\n      ]\n    }"
    );
    assert_eq!(
        lines.column(3).as_string::<i32>().value(2),
        r#"{"k": 2, "tags": ["a", "b"]}"#
    );
    assert_eq!(lines.num_rows(), 23);
    for (row, line) in out.lines().enumerate() {
        let (vector, score) = line.rsplit_once(' ').unwrap();
        let want: Vec<String> = vector.split(' ').map(String::from).collect();
        let have: Vec<String> = common::f32_bits(lines.column(1).as_ref(), row)
            .iter()
            .map(|b| common::hex(&b.to_le_bytes()))
            .collect();
        assert_eq!(have, want, "row {row}");
        let s = lines
            .column(4)
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(s.value(row), score.parse::<f64>().unwrap(), "row {row}");
        assert_eq!(
            lines.column(2).as_string::<i32>().value(row),
            format!("näme \"{row}\"\n\t\\ ✓")
        );
    }
    let v = common::f32_bits(lines.column(1).as_ref(), 0)[1];
    assert_eq!(v, 0x3dcc_cccd, "0.1");
    assert_eq!(common::f32_bits(lines.column(1).as_ref(), 1)[1], 1, "1e-45");
    assert_eq!(
        common::f32_bits(lines.column(1).as_ref(), 2)[1],
        0x8000_0000,
        "-0.0"
    );
    assert_eq!(
        common::f32_bits(lines.column(1).as_ref(), 3)[1],
        0x7f7f_ffff,
        "FLT_MAX"
    );
}

fn check(name: &str, bytes: &[u8], options: serde_json::Value, rows: usize) -> SchemaRef {
    common::check("json", options, name, bytes, (7, rows))
        .rows
        .schema()
}

#[test]
fn every_layout_passes_the_parser_conformance_check_and_resumes_at_every_batch() {
    // Milvus row-based, as vmig writes it.
    let batch = staging_batch();
    let schema = check("s.json", &staging_bytes(&batch), staging_fields(), 40);
    assert_eq!(schema, batch.schema());
    // JSON Lines, array and row-based files written by hand: odd spacing, escapes, braces
    // inside strings, multi-line objects, CRLF.
    let rows: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"v\":[{i}.5,-0.0,1e-{i}],\n \"s\":\"{{[\\\"}}]\\\\\",\"o\":{{\"a\":[{{}}]}},\"n\":{}}}",
                if i % 4 == 0 { "null".to_string() } else { i.to_string() }
            )
        })
        .collect();
    let lines = rows.join("\r\n");
    let array = format!(" [ {} ] ", rows.join(" , "));
    let rows_file = format!("{{\"rows\":[\n{}\n]}}\n", rows.join(",\n"));
    let a = check("a.jsonl", lines.as_bytes(), json!({}), 30);
    assert_eq!(check("b.json", array.as_bytes(), json!({}), 30), a);
    assert_eq!(check("c.json", rows_file.as_bytes(), json!({}), 30), a);
    // A named layout is known at once: the planned schema is then known before any byte.
    check(
        "d.json",
        rows_file.as_bytes(),
        json!({"layout": "rows"}),
        30,
    );
    check("e.json", array.as_bytes(), json!({"layout": "array"}), 30);
}

#[test]
fn resuming_reads_the_rest_of_the_file_from_the_offset() {
    let text: String = (0..10)
        .map(|i| format!("{{\"id\": {i}, \"v\": [{i}, 1]}}\n"))
        .collect();
    let bytes = text.as_bytes();
    let name = "r.jsonl";
    // Read the first batch and note the offset after it.
    let mut p = common::parser(json!({}), &ParseInput::new(name, 4));
    let used = p.decode(bytes).unwrap();
    let batch = p.flush().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 4);
    let offset = p.next_row_offset().unwrap();
    assert_eq!(
        &bytes[..offset as usize],
        text.lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes()
    );
    assert!(used >= offset as usize);
    // A new parser with the planned schema resumes there.
    let input = ParseInput::new(name, 4).with_schema(batch.schema());
    let mut q = common::parser(json!({}), &input);
    q.decode(&bytes[..1]).unwrap();
    assert!(q.schema().is_none(), "`{{` may still begin `{{\"rows\": [`");
    q.decode(&bytes[1..3]).unwrap();
    assert!(q.schema().is_some(), "`{{\"i` is JSON Lines");
    let pos = vmig_core::parse::ParsePosition {
        rows: 4,
        offset: Some(offset),
    };
    q.seek(&pos).unwrap();
    assert_eq!(q.next_row_offset(), Some(offset));
    let rest = parse_all(q.as_mut(), [&bytes[offset as usize..]]).unwrap();
    let ids: Vec<i64> = rest
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, [4, 5, 6, 7, 8, 9]);
    // Resuming at an offset that is not a row's end fails, naming the resume.
    let mut q = common::parser(
        json!({}),
        &ParseInput::new(name, 4).with_schema(batch.schema()),
    );
    q.decode(&bytes[..3]).unwrap();
    q.seek(&vmig_core::parse::ParsePosition {
        rows: 4,
        offset: Some(offset + 3),
    })
    .unwrap();
    let e = parse_all(q.as_mut(), [&bytes[offset as usize + 3..]])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("r.jsonl, byte {}", offset + 3))
            && e.contains("reading resumed at byte"),
        "{e}"
    );
}

#[test]
fn bad_input_fails_naming_file_line_byte_and_field() {
    let none = json!({});
    // Invalid JSON on line 3.
    let text = b"{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3, \"v\": [1, 2,, 3]}\n";
    let e = error("bad.jsonl", text, &none, 1);
    assert_eq!(
        e,
        "invalid data at bad.jsonl, line 3, byte 41: invalid JSON: expected value"
    );
    // A row after the sample with a vector of another length.
    let text = concat!(
        "{\"id\": 1, \"v\": [1, 2, 3]}\n",
        "{\"id\": 2, \"v\": [1, 2, 3]}\n",
        "{\"id\": 3, \"v\": [1, 2, 3]}\n",
        "{\"id\": 4,\n \"v\": [1, 2]}\n",
    );
    let e = error("dim.jsonl", text.as_bytes(), &json!({"sample_rows": 2}), 5);
    assert_eq!(
        e,
        "invalid data at dim.jsonl, line 5, byte 94, field `v`: the vector has 2 values, but \
         the field is FloatVector(3), which takes 3; the field's type was inferred from the \
         first 2 rows; if rows differ, give it in `fields` (e.g. `fields = { \"v\" = \"json\" \
         }`)"
    );
    // A string in a number field.
    let text = b"[{\"id\": 1}, {\"id\": 2},\n {\"id\": \"three\"}]";
    let e = error("s.json", text, &json!({"sample_rows": 2}), 4);
    assert!(
        e.starts_with(
            "invalid data at s.json, line 2, byte 31, field `id`: expected an integer, found \
             the string \"three\"; the field's type was inferred from the first 2 rows"
        ),
        "{e}"
    );
    // A key the sample did not have, a null in a field that had values, a repeated key.
    let text = b"{\"a\": 1}\n{\"a\": 2, \"b\": 1}\n";
    let e = error("k.jsonl", text, &json!({"sample_rows": 1}), 3);
    assert!(
        e.contains("k.jsonl, line 2, byte 23: key `b` is not a field of the schema (a)"),
        "{e}"
    );
    let text = b"{\"a\": 1}\n{\"a\": null}\n";
    let e = error("n.jsonl", text, &json!({"sample_rows": 1}), 3);
    assert!(
        e.contains("n.jsonl, line 2, byte 15, field `a`: is null, but the field is not nullable")
            && e.contains("(`\"a\" = \"int64?\"`)"),
        "{e}"
    );
    let e = error("d.jsonl", b"{\"a\": 1, \"a\": 2}\n", &none, 3);
    assert!(e.contains("field `a`: appears twice in this row"), "{e}");
    // Mixed kinds in the sample.
    let e = error("m.jsonl", b"{\"a\": 1}\n{\"a\": \"x\"}\n", &none, 3);
    assert_eq!(
        e,
        "invalid data at m.jsonl, field `a`: holds numbers (first at line 1) and strings (first \
         at line 2); give its type in `fields` (`json` keeps any value as JSON text) (seen in the \
         first 2 rows)"
    );
    // Structure: a row-based file that is not one, a truncated array, junk between rows.
    let e = error("r.json", b"{\"data\": []}", &json!({"layout": "rows"}), 2);
    assert!(
        e.contains("a `rows` file must begin with `{\"rows\": [`"),
        "{e}"
    );
    let e = error("t.json", b"{\"rows\": [{\"a\": 1},\n{\"a\": 2}", &none, 2);
    assert!(
        e.contains("t.json, line 2, byte 28: the file ends before the `]`"),
        "{e}"
    );
    let e = error("u.json", b"[{\"a\": 1} {\"a\": 2}]", &none, 2);
    assert!(
        e.contains("u.json, line 1, byte 10: expected `,` or `]` after a row, found `{`"),
        "{e}"
    );
    let e = error("v.jsonl", b"{\"a\": 1}\n{\"a\": 2", &none, 2);
    assert!(
        e.contains("v.jsonl, line 2, byte 9: the file ends inside the row"),
        "{e}"
    );
    let e = error("w.jsonl", b"{\"a\": 1}\n[1]\n", &none, 2);
    assert!(
        e.contains("w.jsonl, line 2, byte 9: expected the next row (a JSON object)"),
        "{e}"
    );
    // A string in a JSON field must hold JSON text.
    let e = error(
        "j.jsonl",
        b"{\"j\": \"not json\"}\n",
        &json!({"fields": {"j": "json"}}),
        4,
    );
    assert!(
        e.contains("j.jsonl, line 1, byte 6, field `j`: the string \"not json\" is not JSON text"),
        "{e}"
    );
    // Nothing to infer from.
    let e = error("empty.jsonl", b"\n", &none, 1);
    assert!(e.contains("holds no rows"), "{e}");
    // Bad options are configuration errors.
    for (options, want) in [
        (
            json!({"fields": {"v": "vector"}}),
            "`fields.v`: `vector` is not a type",
        ),
        (
            json!({"fields": {"v": "float_vector(0)"}}),
            "not a positive integer",
        ),
        (
            json!({"fields": {"v": "binary_vector(12)"}}),
            "multiple of 8",
        ),
        (
            json!({"fields": {"v": "int64(3)"}}),
            "only vector types take a dimension",
        ),
        (
            json!({"fields": {"v": "float_vector(4)?"}}),
            "a Milvus vector cannot be null",
        ),
        (
            json!({"sample_rows": 0}),
            "`sample_rows` must be at least 1",
        ),
        (json!({"layout": "table"}), "unknown variant"),
        (json!({"delimiter": ","}), "unknown field"),
    ] {
        let e = registry::parse_parser("json", options.clone())
            .and_then(|c| c.build(&ParseInput::new("x.json", 10)).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{options}: {e}");
    }
}

#[test]
fn the_registry_lists_json_with_its_extensions() {
    let parsers = registry::parsers().unwrap();
    let p = parsers.get("json").expect("json registered");
    assert_eq!(p.package, "vmig-parsers");
    assert_eq!(p.extensions, &["json", "jsonl", "ndjson"]);
    assert_eq!(
        p.example_config(),
        json!({"fields": {"embedding": "float_vector(768)", "id": "int64"}})
    );
    for path in ["a.jsonl", "dir/b.JSON", "s3://b/c.ndjson"] {
        assert_eq!(
            registry::parser_for_path(path).unwrap().map(|p| p.name),
            Some("json"),
            "{path}"
        );
    }
    // The example configuration builds.
    p.parse(p.example_config())
        .unwrap()
        .build(&ParseInput::new("x.json", 10))
        .unwrap();
}
