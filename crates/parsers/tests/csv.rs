//! The `csv` and `tsv` parsers through the registry: files written by Python's `csv` module
//! read back exactly (quoting, line breaks in cells, vectors as JSON-array cells); both formats
//! pass the parser conformance check (any chunking, resume after every batch, quoted line
//! breaks included); bad input fails naming file, line and column.
#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, SchemaRef};
use serde_json::json;
use vmig_core::parse::{parse_all, ParseInput, ParsePosition};
use vmig_core::registry;
use vmig_core::types::milvus_field;
use vmig_parsers as _;

/// Every row of `bytes` as `name`, in batches of at most `batch_rows`: the same in 1-byte,
/// 5-byte and whole chunks.
fn read(name: &str, bytes: &[u8], options: &serde_json::Value, batch_rows: usize) -> RecordBatch {
    let mut reference: Option<RecordBatch> = None;
    for chunk in [1, 5, bytes.len()] {
        let input = ParseInput::new(name, batch_rows);
        let all = common::read(bytes, options.clone(), input, chunk);
        match &reference {
            Some(r) => assert_eq!(&all, r, "{chunk}-byte chunks"),
            None => reference = Some(all),
        }
    }
    reference.unwrap()
}

fn error(name: &str, bytes: &[u8], options: &serde_json::Value) -> String {
    common::error(bytes, options.clone(), ParseInput::new(name, 100), 3)
}

/// `name:Type` for each field (`?` when nullable), as Milvus types.
fn types(schema: &SchemaRef) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let t = milvus_field(f).unwrap();
            format!("{}:{t}{}", f.name(), if f.is_nullable() { "?" } else { "" })
        })
        .collect()
}

#[test]
fn quoting_line_breaks_and_inferred_types() {
    let text = concat!(
        "\u{feff}id,text,score,flag,vector,tags,doc\r\n",
        "1,plain,0.5,true,\"[0.1, 1e-45, -0.0]\",\"[1, 2]\",\"{\"\"a\"\": 1}\"\r\n",
        "\r\n",
        "2,\"with, comma and \"\"quotes\"\"\",,False,\"[3.4028235e38,0,1]\",[3],{}\r\n",
        "3,\"two\nlines\",-2,TRUE,\"[1.000000059604644775390625000001, 2, 3]\",[],\r\n",
        "4,,1e3,false,\"[1,2,3]\",[4],\" {\"\"b\"\": [1]} \""
    );
    let got = read("t.csv", text.as_bytes(), &json!({}), 10);
    assert_eq!(
        types(&got.schema()),
        [
            "id:Int64",
            "text:VarChar",
            "score:Double?",
            "flag:Bool",
            "vector:FloatVector(3)",
            "tags:Array<Int64>",
            "doc:JSON?",
        ]
    );
    assert_eq!(got.num_rows(), 4);
    let text = got.column(1).as_string::<i32>();
    assert_eq!(text.value(1), "with, comma and \"quotes\"");
    assert_eq!(text.value(2), "two\nlines");
    assert_eq!(
        text.value(3),
        "",
        "an empty VarChar cell is the empty string"
    );
    assert!(!text.is_null(3));
    let score = got.column(2).as_primitive::<Float64Type>();
    assert!(score.is_null(1));
    assert_eq!(score.value(3), 1000.0);
    assert_eq!(
        common::f32_bits(got.column(4).as_ref(), 0),
        [0x3dcc_cccd, 1, 0x8000_0000]
    );
    assert_eq!(common::f32_bits(got.column(4).as_ref(), 1)[0], 0x7f7f_ffff);
    assert_eq!(common::f32_bits(got.column(4).as_ref(), 2)[0], 0x3f80_0001);
    let doc = got.column(6).as_string::<i32>();
    assert_eq!(doc.value(0), "{\"a\": 1}");
    assert!(doc.is_null(2));
    assert_eq!(doc.value(1), "{}");
    assert_eq!(
        doc.value(3),
        " {\"b\": [1]} ",
        "JSON text is kept as written"
    );
    let flags = got.column(3).as_boolean();
    assert_eq!(
        (0..4).map(|i| flags.value(i)).collect::<Vec<_>>(),
        [true, false, true, false]
    );
}

#[test]
fn fields_separators_and_delimiters() {
    // Vectors as space-separated numbers; `fields` for what text cannot show.
    let text = "id;v;h;b\n7;0.1  0.2 0.3;[1,2];[255, 1]\n8; 1 2 3 ;[0.5, 0.25];[0,0]\n";
    let options = json!({
        "delimiter": ";",
        "vector_separator": " ",
        "fields": {"id": "int32", "h": "float16_vector", "b": "binary_vector(16)"},
    });
    let got = read("v.csv", text.as_bytes(), &options, 10);
    assert_eq!(
        types(&got.schema()),
        [
            "id:Int32",
            "v:FloatVector(3)",
            "h:Float16Vector(2)",
            "b:BinaryVector(16)"
        ]
    );
    assert_eq!(
        common::f32_bits(got.column(1).as_ref(), 0),
        [0.1f32.to_bits(), 0.2f32.to_bits(), 0.3f32.to_bits()]
    );
    assert_eq!(got.column(3).as_fixed_size_binary().value(0), &[255, 1]);
    // A column typed by `fields` with empty cells in the sample is nullable, as inferred ones.
    let got = read(
        "x.csv",
        b"a,b\n1,\n,2\n",
        &json!({"fields": {"a": "int32"}}),
        10,
    );
    assert_eq!(types(&got.schema()), ["a:Int32?", "b:Int64?"]);
    // Every column typed by `fields`: no sample (nullable only with `?`).
    let options = json!({"fields": {"a": "int64", "b": "varchar", "c": "double?"}});
    let mut p = common::parser(options, &ParseInput::new("w.tsv", 10));
    p.decode(b"a\tb\tc\n").unwrap();
    assert_eq!(
        types(&p.schema().expect("known after the header")),
        ["a:Int64", "b:VarChar", "c:Double?"]
    );
    p.decode(b"1\tx y\t\n2\t\t2.5").unwrap();
    let b = p.finish().unwrap().unwrap();
    assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
    assert!(b.column(2).is_null(0));
}

#[test]
fn python_csv_and_tsv_files_read_back_exactly() {
    let script = r#"
import csv, json, random, struct, sys
d = sys.argv[1]
random.seed(11)
def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]
rows = []
for i in range(31):
    vec = [f32(random.uniform(-3, 3)) for _ in range(3)]
    if i == 0:
        vec = [0.1, 1e-45, -0.0]
    name = ['a, b', 'say "hi"', 'two\nlines', '', 'tab\there', 'ünï 𝄞'][i % 6] + str(i)
    score = None if i % 4 == 1 else i / 3
    rows.append([i * 7919, name, score, i % 2 == 0, json.dumps(vec), vec])
for fname, delim in (("t.csv", ","), ("t.tsv", "\t")):
    with open(d + "/" + fname, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delim)
        w.writerow(["id", "name", "score", "flag", "vector"])
        for r in rows:
            w.writerow(["" if v is None else v for v in r[:5]])
for r in rows:
    print(r[0], r[1].encode("utf-8").hex(), repr(r[2]), r[3], " ".join(struct.pack("<f", v).hex() for v in r[5]))
"#;
    let Some((dir, out)) = common::python_fixture("csv", script) else {
        return;
    };
    let read_file = |file: &str| {
        let path = dir.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        read(&path.display().to_string(), &bytes, &json!({}), 8)
    };
    let csv = read_file("t.csv");
    assert_eq!(read_file("t.tsv"), csv);
    assert_eq!(
        types(&csv.schema()),
        [
            "id:Int64",
            "name:VarChar",
            "score:Double?",
            "flag:Bool",
            "vector:FloatVector(3)"
        ]
    );
    assert_eq!(csv.num_rows(), 31);
    for (row, line) in out.lines().enumerate() {
        let parts: Vec<&str> = line.splitn(5, ' ').collect();
        let id = csv.column(0).as_primitive::<Int64Type>().value(row);
        assert_eq!(id.to_string(), parts[0]);
        let name = csv.column(1).as_string::<i32>().value(row);
        assert_eq!(common::hex(name.as_bytes()), parts[1], "row {row}");
        let score = csv.column(2).as_primitive::<Float64Type>();
        if parts[2] == "None" {
            assert!(score.is_null(row));
        } else {
            assert_eq!(score.value(row), parts[2].parse::<f64>().unwrap());
        }
        let flag = csv.column(3).as_boolean().value(row);
        assert_eq!(if flag { "True" } else { "False" }, parts[3]);
        let have: Vec<String> = common::f32_bits(csv.column(4).as_ref(), row)
            .iter()
            .map(|b| common::hex(&b.to_le_bytes()))
            .collect();
        assert_eq!(have.join(" "), parts[4], "row {row}");
    }
    assert_eq!(
        common::f32_bits(csv.column(4).as_ref(), 0),
        [0x3dcc_cccd, 1, 0x8000_0000]
    );
}

fn check(format: &str, name: &str, bytes: &[u8], rows: usize) -> RecordBatch {
    common::check(format, json!({}), name, bytes, (7, rows)).rows
}

fn fixture(delim: char) -> String {
    let mut text = format!("id{delim}text{delim}vec{delim}n\r\n");
    for i in 0..40 {
        let cell = match i % 5 {
            0 => format!("\"line {i}\nnext \"\"q\"\" {delim}\""),
            1 => format!("plain {i}"),
            2 => "\"\"".to_string(),
            3 => format!("\"{i}\r\n\r\n\""),
            _ => format!("ü{i}"),
        };
        let n = if i % 3 == 0 {
            String::new()
        } else {
            i.to_string()
        };
        text += &format!("{i}{delim}{cell}{delim}\"[{i}.5, -0.0, 1e-{i}]\"{delim}{n}\r\n");
        if i % 9 == 4 {
            text += "\r\n";
        }
    }
    text
}

#[test]
fn csv_and_tsv_pass_the_parser_conformance_check_and_resume_at_every_batch() {
    let csv = check("csv", "f.csv", fixture(',').as_bytes(), 40);
    let tsv = check("tsv", "f.tsv", fixture('\t').as_bytes(), 40);
    assert_eq!(
        types(&csv.schema()),
        ["id:Int64", "text:VarChar", "vec:FloatVector(3)", "n:Int64?"]
    );
    assert_eq!(csv.column(0), tsv.column(0));
    assert_eq!(csv.column(2), tsv.column(2));
    let text = csv.column(1).as_string::<i32>();
    assert_eq!(text.value(0), "line 0\nnext \"q\" ,");
    assert_eq!(text.value(3), "3\r\n\r\n");
    assert_eq!(text.value(2), "");
}

#[test]
fn resuming_after_quoted_line_breaks_starts_at_the_next_record() {
    let text = fixture(',');
    let bytes = text.as_bytes();
    let mut p = common::parser(json!({}), &ParseInput::new("r.csv", 7));
    let used = p.decode(bytes).unwrap();
    let batch = p.flush().unwrap().unwrap();
    let offset = p.next_row_offset().unwrap() as usize;
    assert!(used >= offset);
    assert!(
        text[offset..].starts_with("7,"),
        "{}",
        &text[offset..offset + 10]
    );
    let mut q = common::parser(
        json!({}),
        &ParseInput::new("r.csv", 7).with_schema(batch.schema()),
    );
    let header = text.find('\n').unwrap() + 1;
    q.decode(&bytes[..header]).unwrap();
    assert!(q.schema().is_some(), "known after the header");
    q.seek(&ParsePosition {
        rows: 7,
        offset: Some(offset as u64),
    })
    .unwrap();
    let rest = parse_all(q.as_mut(), [&bytes[offset..]]).unwrap();
    let first = rest[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(first, 7);
    assert_eq!(rest.iter().map(RecordBatch::num_rows).sum::<usize>(), 33);
}

#[test]
fn bad_input_fails_naming_file_line_and_column() {
    let none = json!({});
    let e = error("r.csv", b"a,b\n1,2\n3,4,5\n", &none);
    assert_eq!(
        e,
        "invalid data at r.csv, line 3, byte 8: the row has 3 cells, but the header has 2 \
         columns (a, b); every row needs one cell per column (quote cells that hold the delimiter)"
    );
    let e = error("h.csv", b"1,0.5,[1, 2]\n2,0.25,[3, 4]\n", &none);
    assert_eq!(
        e,
        "invalid data at h.csv, line 1, byte 0: the first line holds values (`1`), not column \
         names: the csv parser needs a header row naming the columns"
    );
    let e = error("e.csv", b"", &none);
    assert_eq!(
        e,
        "invalid data at e.csv: the file is empty: a CSV file needs a header row naming its columns"
    );
    let e = error("d.tsv", b"a\ta\n", &none);
    assert!(
        e.contains("the header names `a` twice (columns 1 and 2)"),
        "{e}"
    );
    // A later row that does not fit the sampled types.
    let text = b"id,v\n1,\"[1,2]\"\n2,\"[1,2]\"\nx,\"[1,2]\"\n";
    let e = error("s.csv", text, &json!({"sample_rows": 2}));
    assert!(
        e.starts_with(
            "invalid data at s.csv, line 4, byte 25, column `id`: expected an integer, found `x`"
        ),
        "{e}"
    );
    let text = b"id,v\n1,\"[1,2]\"\n2,\"[1,2]\"\n3,\"[1,2,3]\"\n";
    let e = error("v.csv", text, &json!({"sample_rows": 2}));
    assert!(
        e.contains("v.csv, line 4, byte 25, column `v`: the vector has 3 values, but the field is FloatVector(2)"),
        "{e}"
    );
    let text = b"id,v\n1,2\n2,\n";
    let e = error("n.csv", text, &json!({"sample_rows": 1}));
    assert!(
        e.contains("n.csv, line 3, byte 9, column `v`: is null, but the field is not nullable")
            && e.contains("`\"v\" = \"int64?\"`"),
        "{e}"
    );
    // Lines count the line breaks inside quoted cells.
    let text = b"id,t\n1,\"a\nb\r\nc\"\n\n2,x\nthree,y\n";
    let e = error("l.csv", text, &json!({"sample_rows": 2}));
    assert!(
        e.starts_with("invalid data at l.csv, line 7, byte 21, column `id`: expected an integer"),
        "{e}"
    );
    // Quoting errors.
    let e = error("q.csv", b"a,b\n1,\"x\"y\n", &none);
    assert!(
        e.contains("q.csv, line 2, byte 9, column `b`: a quoted cell must end with `\"`")
            && e.contains("but `y` follows it"),
        "{e}"
    );
    let e = error("u.csv", b"a,b\n1,\"open\n\n", &none);
    assert!(
        e.contains("u.csv, line 2, byte 6, column `b`: the file ends inside the quoted cell"),
        "{e}"
    );
    // `fields` must name columns; the planned schema must match the header.
    let e = error("f.csv", b"a,b\n1,2\n", &json!({"fields": {"c": "int64"}}));
    assert!(
        e.contains("`fields` names `c`, which is not a column of the header (a, b)"),
        "{e}"
    );
    let planned = read("p.csv", b"a,b\n1,2\n", &none, 5).schema();
    let mut p = common::parser(
        none.clone(),
        &ParseInput::new("q.csv", 5).with_schema(planned),
    );
    let e = parse_all(p.as_mut(), [&b"a,c\n1,2\n"[..]])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the header's columns (a, c) are not the job's fields (a, b)"),
        "{e}"
    );
    for (format, options, want) in [
        ("csv", json!({"delimiter": "ab"}), "`delimiter` is \"ab\""),
        ("csv", json!({"vector_separator": ""}), "may not be empty"),
        ("tsv", json!({"delimiter": ","}), "unknown field"),
        (
            "csv",
            json!({"fields": {"x": "sparse_float_vector"}}),
            "sparse vectors",
        ),
    ] {
        let e = registry::parse_parser(format, options.clone())
            .and_then(|c| c.build(&ParseInput::new("x", 10)).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{options}: {e}");
    }
}

#[test]
fn the_registry_lists_csv_and_tsv() {
    let parsers = registry::parsers().unwrap();
    for (name, ext) in [("csv", "csv"), ("tsv", "tsv")] {
        let p = parsers.get(name).expect("registered");
        assert_eq!(p.package, "vmig-parsers");
        assert_eq!(p.extensions, &[ext]);
        assert_eq!(
            p.example_config(),
            json!({"fields": {"embedding": "float_vector(768)", "id": "int64"}})
        );
        p.parse(p.example_config())
            .unwrap()
            .build(&ParseInput::new("x", 10))
            .unwrap();
    }
    for (path, want) in [("a.csv", "csv"), ("b/C.TSV", "tsv"), ("d.jsonl", "json")] {
        assert_eq!(
            registry::parser_for_path(path).unwrap().map(|p| p.name),
            Some(want),
            "{path}"
        );
    }
}
