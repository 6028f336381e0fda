//! What the parser tests share: parsers from the registry, whole inputs read (or failed) in
//! chunks, the conformance check with resuming after every batch, Python-written fixtures, and
//! a few value helpers. Each test file includes it with `mod common;` and uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int16Array, Int32Array, Int64Array, Int8Array,
    RecordBatch,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Float32Type};
use vmig_core::parse::{parse_all, ParseInput, Parser};
use vmig_core::registry;
use vmig_testing::parsers::{check_parser, ParserReport};

/// A parser for `input` from the registry, chosen by its name's extension (one of this
/// crate's), with `options`.
pub fn parser(options: serde_json::Value, input: &ParseInput) -> Box<dyn Parser> {
    let plugin = registry::parser_for_path(&input.name)
        .unwrap()
        .unwrap_or_else(|| panic!("no parser claims {}", input.name));
    assert_eq!(plugin.package, "vmig-parsers");
    plugin.parse(options).unwrap().build(input).unwrap()
}

/// Every row of `bytes` read as `input` with `options`, fed `chunk` bytes at a time, as one
/// batch; every batch has the parser's schema and at most `batch_rows` rows.
pub fn read(
    bytes: &[u8],
    options: serde_json::Value,
    input: ParseInput,
    chunk: usize,
) -> RecordBatch {
    let batch_rows = input.batch_rows;
    let mut p = parser(options, &input);
    let batches = parse_all(p.as_mut(), bytes.chunks(chunk.max(1))).unwrap();
    let schema = p.schema().expect("schema known at the end");
    for b in &batches {
        assert!(b.num_rows() <= batch_rows, "batch of {} rows", b.num_rows());
        assert_eq!(b.schema(), schema);
    }
    concat_batches(&schema, &batches).unwrap()
}

/// The error text of reading `bytes` as `input` with `options`, fed `chunk` bytes at a time.
pub fn error(bytes: &[u8], options: serde_json::Value, input: ParseInput, chunk: usize) -> String {
    let mut p = parser(options, &input);
    parse_all(p.as_mut(), bytes.chunks(chunk.max(1)))
        .expect_err("must fail")
        .to_string()
}

/// The build function [`check_parser`] needs: the `format` parser with `options`.
pub fn builder(
    format: &str,
    options: serde_json::Value,
) -> impl Fn(&ParseInput) -> Box<dyn Parser> {
    let format = format.to_string();
    move |input: &ParseInput| {
        registry::parse_parser(&format, options.clone())
            .unwrap()
            .build(input)
            .unwrap()
    }
}

/// The conformance check of `bytes`, named `name`, read by the `format` parser with `options`
/// in batches of `batch_rows`: it must hold `rows` rows and resume by itself (at a byte
/// offset) after every batch but the last.
pub fn check(
    format: &str,
    options: serde_json::Value,
    name: &str,
    bytes: &[u8],
    (batch_rows, rows): (usize, usize),
) -> ParserReport {
    let report = check_parser(&builder(format, options), name, bytes, batch_rows);
    assert!(report.seeks, "{name}: {format} resumes at a byte offset");
    assert_eq!(report.rows.num_rows(), rows, "{name}");
    assert_eq!(
        report.resumed_at.len(),
        rows.div_ceil(batch_rows) - 1,
        "{name}: resumed after every batch but the last"
    );
    report
}

/// The components of the float vector at `row` of `col`, as bits.
pub fn f32_bits(col: &dyn Array, row: usize) -> Vec<u32> {
    col.as_fixed_size_list()
        .value(row)
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Columns `id` (Int64, large and negative), `flag` (Bool), `tiny` (Int8), `small` (Int16) and
/// `mid` (Int32) of `rows` rows, negative values included.
pub fn id_and_int_columns(rows: usize) -> (Vec<Field>, Vec<ArrayRef>) {
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, false),
        Field::new("tiny", DataType::Int8, false),
        Field::new("small", DataType::Int16, false),
        Field::new("mid", DataType::Int32, false),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| i * 1_000_000_007 - (1 << 40)),
        )),
        Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 0)))),
        Arc::new(Int8Array::from_iter_values((0..rows).map(|i| i as i8 - 20))),
        Arc::new(Int16Array::from_iter_values(
            (0..rows).map(|i| i as i16 * -311),
        )),
        Arc::new(Int32Array::from_iter_values(
            (0..rows).map(|i| i as i32 * 70_001),
        )),
    ];
    (fields, columns)
}

/// A Python 3 that can `import module`: `VMIG_PYTHON`, else `python3`. Missing, the test is
/// skipped loudly — or fails when `CI=true`.
pub fn python(module: &str) -> Option<String> {
    let candidates = std::env::var("VMIG_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        !vmig_testing::service::is_ci(),
        "CI=true but neither $VMIG_PYTHON nor python3 can import {module} (see scripts/pyenv)"
    );
    eprintln!(
        "SKIPPED: neither $VMIG_PYTHON nor python3 can import {module}, so the Python fixture \
         test cannot run (see scripts/pyenv)"
    );
    None
}

/// Runs `script` with a new temporary directory as `sys.argv[1]` in a Python that can
/// `import module` ([`python`]): the directory, with what the script wrote there, and its
/// output. `None` when the test is skipped.
pub fn python_fixture(module: &str, script: &str) -> Option<(tempfile::TempDir, String)> {
    let python = python(module)?;
    let dir = tempfile::tempdir().unwrap();
    let out = vmig_testing::process::python(&python, script, &[dir.path()]);
    Some((dir, out))
}
