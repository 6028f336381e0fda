//! The `parquet` parser through the registry: vmig's own Parquet staging files, files written by
//! parquet's `ArrowWriter` and by pyarrow read back bit-exactly (vectors as fixed-size lists);
//! every batch resumable; broken or mismatched files fail naming the file, field and row.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float16Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, ListArray, RecordBatch, StringArray, UInt8Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use half::f16;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use vmig_core::parse::{parse_bytes, ParseInput, ParsePosition, Parser, Wanted};
use vmig_core::registry;
use vmig_core::vector::{
    binary_vector_array, binary_vector_field, float16_vector_field, float_vector_array,
    float_vector_field, json_field, META_PRIMARY_KEY,
};
use vmig_formats::staging::{ParquetCompression, ParquetOptions, ParquetWriter};
use vmig_parsers::{row_group_spans, ParquetParser, ParquetParserConfig};

/// A parser from the registry, chosen by `name`'s extension, with `options`.
fn parser(options: serde_json::Value, input: &ParseInput) -> vmig_core::Result<Box<dyn Parser>> {
    let plugin = registry::parser_for_path(&input.name)
        .unwrap()
        .expect("a parser claims .parquet");
    assert_eq!(plugin.name, "parquet");
    plugin.parse(options)?.build(input)
}

/// Every row of `bytes` read as `input` (the input's size set), as one batch of the parser's
/// schema.
fn read_input(
    options: serde_json::Value,
    input: ParseInput,
    bytes: &[u8],
) -> vmig_core::Result<RecordBatch> {
    let input = input.with_size(bytes.len() as u64);
    let mut p = parser(options, &input)?;
    let bytes = Bytes::copy_from_slice(bytes);
    let batches = parse_bytes(p.as_mut(), &bytes, 4096)?;
    let schema = p.schema().expect("schema known after the whole file");
    for b in &batches {
        assert!(b.num_rows() <= input.batch_rows, "{} rows", b.num_rows());
        assert_eq!(b.schema(), schema);
    }
    Ok(concat_batches(&schema, &batches).unwrap())
}

fn read(name: &str, bytes: &[u8], batch_rows: usize) -> RecordBatch {
    read_input(
        serde_json::json!({}),
        ParseInput::new(name, batch_rows),
        bytes,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error text of reading `bytes` as `input` with `options`.
fn error(options: serde_json::Value, input: ParseInput, bytes: &[u8]) -> String {
    read_input(options, input, bytes)
        .expect_err("must fail")
        .to_string()
}

/// Float32 values covering the awkward bit patterns: NaN with a payload, a signalling NaN,
/// -0.0, subnormals, infinities, extremes.
fn awkward_f32(i: usize) -> f32 {
    match i % 13 {
        0 => -0.0,
        1 => f32::from_bits(1), // smallest subnormal
        2 => f32::from_bits(0x7fc0_1234),
        3 => f32::from_bits(0xff80_0001), // signalling NaN, negative
        4 => f32::MAX,
        5 => f32::NEG_INFINITY,
        6 => f32::MIN_POSITIVE / 3.0,
        _ => (i as f32).sqrt() * if i.is_multiple_of(2) { 1.0 } else { -1.0 },
    }
}

fn awkward_f16(i: usize) -> f16 {
    match i % 7 {
        0 => f16::from_bits(0x8000), // -0.0
        1 => f16::from_bits(0x0001), // subnormal
        2 => f16::from_bits(0x7e01), // NaN with payload
        3 => f16::MAX,
        _ => f16::from_f32(i as f32 / 7.0 - 3.0),
    }
}

const SAMPLE_ROWS: usize = 61;
const DIM: usize = 7;

/// A batch with every field kind vmig's Parquet staging writer supports, with nulls where
/// Milvus allows them.
fn sample() -> RecordBatch {
    sample_rows(SAMPLE_ROWS)
}

fn sample_rows(rows: usize) -> RecordBatch {
    let vectors = Float32Array::from_iter_values((0..rows * DIM).map(awkward_f32));
    let bits: Vec<u8> = (0..rows * 2).map(|i| (i * 37 % 256) as u8).collect();
    let tags = ListArray::from_iter_primitive::<Int64Type, _, _>((0..rows).map(|i| {
        (i % 4 != 3).then(|| {
            (0..i % 5)
                .map(|k| Some((i * 10 + k) as i64 - 50))
                .collect::<Vec<_>>()
        })
    }));
    let names_values = StringArray::from_iter_values((0..rows * 2).map(|i| format!("n{i}")));
    let names = ListArray::new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::from_lengths((0..rows).map(|_| 2)),
        Arc::new(names_values),
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| i * 1_000_000_007 - (1 << 40)),
        )),
        Arc::new(float_vector_array(vectors, DIM).unwrap()),
        Arc::new(binary_vector_array(bits.into(), 2).unwrap()),
        Arc::new(StringArray::from_iter((0..rows).map(|i| {
            (i % 5 != 4).then(|| format!("título {i} ✓ 𝄞").repeat(i % 3))
        }))),
        Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 0)))),
        Arc::new(Int8Array::from_iter_values(
            (0..rows).map(|i| ((i % 200) as i16 - 100) as i8),
        )),
        Arc::new(Int16Array::from_iter_values(
            (0..rows).map(|i| (i as i16).wrapping_mul(-311)),
        )),
        Arc::new(Int32Array::from_iter(
            (0..rows).map(|i| (i % 6 != 0).then_some(i as i32 * 70_001)),
        )),
        Arc::new(Float32Array::from_iter_values(
            (0..rows).map(|i| awkward_f32(i + 3)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| 1.0 / (i as f64 + 0.5)),
        )),
        Arc::new(tags),
        Arc::new(names),
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| {
            format!(r#"{{"k": {i}, "s": "x{i}", "nested": {{"a": [1, 2, {i}]}}}}"#)
        }))),
    ];
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", DIM),
        binary_vector_field("bits", 16).unwrap(),
        Field::new("title", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, false),
        Field::new("tiny", DataType::Int8, false),
        Field::new("small", DataType::Int16, false),
        Field::new("mid", DataType::Int32, true),
        Field::new("ratio", DataType::Float32, false),
        Field::new("score", DataType::Float64, false),
        Field::new_list("tags", Field::new_list_field(DataType::Int64, true), true),
        Field::new_list("names", Field::new_list_field(DataType::Utf8, true), false),
        json_field("$meta", false),
    ])
    .with_metadata(arrow::datatypes::Metadata::from([(META_PRIMARY_KEY, "id")]));
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// `batch` written by vmig's Parquet staging writer.
fn staging(batch: &RecordBatch, compression: ParquetCompression, row_group_bytes: u64) -> Vec<u8> {
    let options = ParquetOptions {
        row_group_bytes,
        compression,
    };
    let mut w = ParquetWriter::try_new(Vec::new(), &batch.schema(), &options).unwrap();
    // In slices, so the writer sees several batches.
    for start in (0..batch.num_rows()).step_by(17) {
        let len = 17.min(batch.num_rows() - start);
        w.write(&batch.slice(start, len)).unwrap();
    }
    w.finish().unwrap()
}

/// `batch` written by parquet's own `ArrowWriter`, `rows_per_group` rows per row group.
fn arrow_writer(batch: &RecordBatch, rows_per_group: usize, compression: Compression) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_compression(compression)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    out
}

/// The stored bits of the float vectors of a `FixedSizeList<Float32>` column.
fn f32_bits(col: &dyn Array) -> Vec<u32> {
    let list = col.as_fixed_size_list();
    let values = list.values().as_primitive::<Float32Type>();
    values.values().iter().map(|v| v.to_bits()).collect()
}

fn row_groups(bytes: &[u8]) -> Vec<vmig_parsers::RowGroupSpan> {
    let mut p = ParquetParser::new(
        ParseInput::new("x.parquet", 10).with_size(bytes.len() as u64),
        ParquetParserConfig::default(),
    )
    .unwrap();
    while p.metadata().is_none() {
        let Wanted::Ranges(ranges) = p.wanted().unwrap() else {
            panic!("footer first")
        };
        let data = ranges
            .iter()
            .map(|r| Bytes::copy_from_slice(&bytes[r.start as usize..r.end as usize]))
            .collect();
        p.push_ranges(ranges, data).unwrap();
    }
    let spans = p.row_groups().unwrap();
    assert_eq!(spans, row_group_spans(p.metadata().unwrap()));
    spans
}

#[test]
fn vmig_staging_parquet_reads_back_exactly_with_every_compression() {
    let batch = sample();
    for compression in [
        ParquetCompression::None,
        ParquetCompression::Snappy,
        ParquetCompression::Zstd,
        ParquetCompression::Lz4,
    ] {
        // Small row groups: several per file.
        let bytes = staging(&batch, compression, 2_000);
        let groups = row_groups(&bytes);
        assert!(
            groups.len() >= 3,
            "{compression:?}: {} row groups",
            groups.len()
        );
        assert_eq!(
            groups.iter().map(|g| g.rows).sum::<u64>(),
            SAMPLE_ROWS as u64
        );
        let got = read("staged.parquet", &bytes, 5);
        assert_eq!(got.schema(), batch.schema(), "{compression:?}: schema");
        assert_eq!(got, batch, "{compression:?}: rows");
        assert_eq!(
            f32_bits(got.column(1).as_ref()),
            f32_bits(batch.column(1).as_ref()),
            "{compression:?}: vector bits"
        );
        assert_eq!(
            got.column(8)
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            batch
                .column(8)
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            "{compression:?}: float bits"
        );
    }
}

#[test]
fn vmig_staging_parquet_passes_the_conformance_check_and_resumes_at_every_batch() {
    let batch = sample();
    let bytes = staging(&batch, ParquetCompression::Zstd, 1_500);
    let groups = row_groups(&bytes);
    let batch_rows = 4;
    assert!(
        groups.len() >= 3 && groups.iter().any(|g| g.rows % batch_rows as u64 != 0),
        "row groups of {:?} rows",
        groups.iter().map(|g| g.rows).collect::<Vec<_>>()
    );
    let build = common::builder("parquet", serde_json::json!({}));
    let report = vmig_testing::parsers::check_parser(&build, "staged.parquet", &bytes, batch_rows);
    assert!(report.seeks, "parquet resumes by itself");
    assert_eq!(report.rows, batch);
    // Batches never span row groups: each row group gives ceil(rows / batch_rows) batches, and
    // the reader resumed after every one but the last.
    let mut ends = Vec::new();
    for g in &groups {
        let mut at = g.first_row;
        while at < g.first_row + g.rows {
            at = (at + batch_rows as u64).min(g.first_row + g.rows);
            ends.push(ParsePosition {
                rows: at,
                offset: None,
            });
        }
    }
    ends.pop();
    assert_eq!(report.resumed_at, ends);
}

/// Drives `parser` over `bytes` and returns every range it asked for and its rows.
fn drive(parser: &mut dyn Parser, bytes: &[u8]) -> (Vec<Range<u64>>, Vec<RecordBatch>) {
    let mut asked = Vec::new();
    let mut out = Vec::new();
    loop {
        match parser.wanted().unwrap() {
            Wanted::Ranges(ranges) => {
                asked.extend(ranges.iter().cloned());
                let data = ranges
                    .iter()
                    .map(|r| Bytes::copy_from_slice(&bytes[r.start as usize..r.end as usize]))
                    .collect();
                parser.push_ranges(ranges, data).unwrap();
            }
            Wanted::Batch => out.extend(parser.flush().unwrap()),
            Wanted::Done => {
                out.extend(parser.finish().unwrap());
                return (asked, out);
            }
            Wanted::Stream => panic!("parquet is random-access"),
        }
    }
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

#[test]
fn resuming_skips_whole_row_groups_without_reading_them() {
    // Larger than the 64 KiB tail the footer is read with.
    let batch = sample_rows(3000);
    let bytes = staging(&batch, ParquetCompression::None, 60_000);
    assert!(bytes.len() > 4 * 64 * 1024, "{} bytes", bytes.len());
    let groups = row_groups(&bytes);
    assert!(groups.len() >= 4);
    let target = &groups[2];
    let resume_at = target.first_row + 1;
    let input = ParseInput::new("r.parquet", 500)
        .with_size(bytes.len() as u64)
        .with_schema(batch.schema());
    let mut p = parser(serde_json::json!({}), &input).unwrap();
    p.seek(&ParsePosition {
        rows: resume_at,
        offset: None,
    })
    .unwrap();
    let (asked, got) = drive(p.as_mut(), &bytes);
    let got = concat_batches(&batch.schema(), &got).unwrap();
    let from = resume_at as usize;
    assert_eq!(got, batch.slice(from, batch.num_rows() - from));
    for skipped in &groups[..2] {
        assert!(
            !asked.iter().any(|r| overlaps(r, &skipped.bytes)),
            "row group {} ({:?}) was read: {asked:?}",
            skipped.index,
            skipped.bytes
        );
    }
    assert!(asked.iter().any(|r| overlaps(r, &target.bytes)));
    // Resuming after the footer was read works the same, and at the very end gives no rows.
    let small = sample();
    let bytes = staging(&small, ParquetCompression::None, 6_000);
    assert!(row_groups(&bytes).len() >= 2 && bytes.len() <= 64 * 1024);
    let input = ParseInput::new("r.parquet", 8)
        .with_size(bytes.len() as u64)
        .with_schema(small.schema());
    let mut p = parser(serde_json::json!({}), &input).unwrap();
    let Wanted::Ranges(footer) = p.wanted().unwrap() else {
        panic!("footer first")
    };
    assert_eq!(
        footer,
        vec![0..bytes.len() as u64],
        "a small file's tail is all of it"
    );
    let data = vec![Bytes::copy_from_slice(&bytes)];
    p.push_ranges(footer, data).unwrap();
    assert_eq!(p.schema(), Some(small.schema()));
    assert_eq!(p.total_rows(), Some(SAMPLE_ROWS as u64));
    p.seek(&ParsePosition {
        rows: 40,
        offset: None,
    })
    .unwrap();
    // Every byte came with the first request.
    let (asked, rest) = drive(p.as_mut(), &bytes);
    assert_eq!(asked, []);
    assert_eq!(
        concat_batches(&small.schema(), &rest).unwrap(),
        small.slice(40, SAMPLE_ROWS - 40)
    );
    let mut p = parser(serde_json::json!({}), &input).unwrap();
    p.seek(&ParsePosition {
        rows: SAMPLE_ROWS as u64,
        offset: None,
    })
    .unwrap();
    let (_, rest) = drive(p.as_mut(), &bytes);
    assert!(rest.is_empty());
    // Past the end: the file must have changed.
    let mut p = parser(serde_json::json!({}), &input).unwrap();
    p.seek(&ParsePosition {
        rows: 62,
        offset: None,
    })
    .unwrap();
    let Wanted::Ranges(footer) = p.wanted().unwrap() else {
        panic!("footer first")
    };
    let e = p
        .push_ranges(footer, vec![Bytes::copy_from_slice(&bytes)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid data at r.parquet: cannot resume after row 62: the file has 61 rows (was it replaced since?)"
    );
}

#[test]
fn a_projection_reads_only_its_columns_in_its_order() {
    let batch = sample_rows(3000);
    let bytes = staging(&batch, ParquetCompression::None, 8 << 20);
    let groups = row_groups(&bytes);
    assert_eq!(groups.len(), 1);
    let input = ParseInput::new("p.parquet", 1000).with_size(bytes.len() as u64);
    let mut p = parser(serde_json::json!({"columns": ["$meta", "id"]}), &input).unwrap();
    let (asked, got) = drive(p.as_mut(), &bytes);
    let got = concat_batches(&p.schema().unwrap(), &got).unwrap();
    let want = batch.project(&[12, 0]).unwrap();
    assert_eq!(got.schema().fields(), want.schema().fields());
    assert_eq!(got.columns(), want.columns());
    // The footer, then the two column chunks: the vectors' bytes were never asked for.
    let mut p2 = ParquetParser::new(input.clone(), ParquetParserConfig::default()).unwrap();
    let _ = drive(&mut p2, &bytes);
    let metadata = p2.metadata().unwrap();
    let chunk = |i: usize| {
        let (start, len) = metadata.row_group(0).column(i).byte_range();
        start..start + len
    };
    let vector_chunk = chunk(1);
    assert!(
        !asked.iter().any(|r| overlaps(r, &vector_chunk)),
        "{asked:?}"
    );
    let read: u64 = asked.iter().map(|r| r.end - r.start).sum();
    assert!(
        read < bytes.len() as u64 / 2,
        "read {read} of {} bytes",
        bytes.len()
    );
}

/// List<Float32> (not fixed-size) and List<Float16> written by parquet's ArrowWriter in several
/// compressed row groups.
fn list_vectors(rows: usize, dim: usize) -> RecordBatch {
    let f32s = Float32Array::from_iter_values((0..rows * dim).map(awkward_f32));
    let f16s = Float16Array::from_iter_values((0..rows * dim).map(awkward_f16));
    let offsets = || OffsetBuffer::from_lengths((0..rows).map(|_| dim));
    let item = |t: DataType| Arc::new(Field::new("item", t, true));
    let doubles = Float64Array::from_iter_values((0..rows * 2).map(|i| i as f64 / 3.0));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("vector", DataType::List(item(DataType::Float32)), true),
        Field::new("half", DataType::List(item(DataType::Float16)), true),
        Field::new("doubles", DataType::List(item(DataType::Float64)), true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(ListArray::new(
                item(DataType::Float32),
                offsets(),
                Arc::new(f32s),
                None,
            )),
            Arc::new(ListArray::new(
                item(DataType::Float16),
                offsets(),
                Arc::new(f16s),
                None,
            )),
            Arc::new(ListArray::new(
                item(DataType::Float64),
                OffsetBuffer::from_lengths((0..rows).map(|_| 2)),
                Arc::new(doubles),
                None,
            )),
        ],
    )
    .unwrap()
}

#[test]
fn arrow_writer_list_vectors_become_fixed_size_vectors_bit_exactly() {
    let (rows, dim) = (50, 6);
    let batch = list_vectors(rows, dim);
    for compression in [
        Compression::ZSTD(ZstdLevel::default()),
        Compression::SNAPPY,
        Compression::UNCOMPRESSED,
    ] {
        let bytes = arrow_writer(&batch, 8, compression);
        assert_eq!(row_groups(&bytes).len(), 7);
        let got = read("lists.parquet", &bytes, 3);
        let schema = got.schema();
        assert_eq!(schema.field(0), &Field::new("id", DataType::Int64, true));
        assert_eq!(schema.field(1), &float_vector_field("vector", dim));
        assert_eq!(schema.field(2), &float16_vector_field("half", dim));
        // Lists of doubles stay lists (Milvus Array<Double>): narrowing them is a `cast`.
        assert_eq!(schema.field(3), batch.schema().field(3));
        assert_eq!(got.column(3), batch.column(3));
        let want: Vec<u32> = (0..rows * dim).map(|i| awkward_f32(i).to_bits()).collect();
        assert_eq!(f32_bits(got.column(1).as_ref()), want, "{compression:?}");
        let half = got.column(2).as_fixed_size_list();
        assert_eq!(half.value_length(), dim as i32);
        let bits: Vec<u16> = half
            .values()
            .as_primitive::<arrow::datatypes::Float16Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let want: Vec<u16> = (0..rows * dim).map(|i| awkward_f16(i).to_bits()).collect();
        assert_eq!(bits, want, "{compression:?}");
        assert_eq!(got.column(0), batch.column(0));
    }
    // `arrays` keeps a float list a list (Milvus Array<Float>).
    let bytes = arrow_writer(&batch, 8, Compression::SNAPPY);
    let got = read_input(
        serde_json::json!({"arrays": ["vector"]}),
        ParseInput::new("lists.parquet", 100),
        &bytes,
    )
    .unwrap();
    assert_eq!(got.schema().field(1), batch.schema().field(1));
    assert_eq!(got.column(1), batch.column(1));
    assert_eq!(got.schema().field(2), &float16_vector_field("half", dim));
}

#[test]
fn untagged_uint8_lists_are_binary_vectors_and_dollar_meta_is_json() {
    let rows = 9;
    let bytes: Vec<u8> = (0..rows * 4).map(|i| (i * 53 % 256) as u8).collect();
    let schema = Schema::new(vec![
        Field::new("bits", DataType::new_list(DataType::UInt8, true), true),
        Field::new("$meta", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(DataType::UInt8, true)),
                OffsetBuffer::from_lengths((0..rows).map(|_| 4)),
                Arc::new(UInt8Array::from(bytes.clone())),
                None,
            )),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("{{\"a\":{i}}}")),
            )),
        ],
    )
    .unwrap();
    let file = arrow_writer(&batch, 4, Compression::SNAPPY);
    let got = read("u8.parquet", &file, 100);
    assert_eq!(
        got.schema().field(0),
        &binary_vector_field("bits", 32).unwrap()
    );
    assert_eq!(
        got.column(0).as_fixed_size_binary().values().as_slice(),
        &bytes[..]
    );
    assert_eq!(got.schema().field(1), &json_field("$meta", true));
    assert_eq!(got.column(1), batch.column(1));
}

/// A file whose vector column is ragged at row `bad` (3 values instead of 4), or null there.
fn broken_vectors(bad: usize, null: bool) -> Vec<u8> {
    let rows = 20;
    let lengths: Vec<usize> = (0..rows)
        .map(|i| if i == bad && !null { 3 } else { 4 })
        .collect();
    let total: usize = lengths.iter().sum();
    let nulls = null.then(|| NullBuffer::from_iter((0..rows).map(|i| i != bad)));
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("vector", DataType::List(item.clone()), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(ListArray::new(
                item,
                OffsetBuffer::from_lengths(lengths),
                Arc::new(Float32Array::from_iter_values((0..total).map(|i| i as f32))),
                nulls,
            )),
        ],
    )
    .unwrap();
    arrow_writer(&batch, 6, Compression::SNAPPY)
}

#[test]
fn errors_name_the_file_field_row_and_lengths() {
    let json = || serde_json::json!({});
    // A ragged vector, the file's rows numbered from 100 among the source's files.
    let bytes = broken_vectors(13, false);
    assert_eq!(
        error(
            json(),
            ParseInput::new("d/ragged.parquet", 5).with_first_row(100),
            &bytes
        ),
        "invalid data at d/ragged.parquet, row 113 (row 13 of this file): float vector `vector` \
         has 3 values in this row, but 4 (from the file's first row); every vector of a field \
         must have the same dimension"
    );
    // The dimension from the planned schema, checked on the first row already.
    let planned = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", 5),
    ]));
    assert_eq!(
        error(
            json(),
            ParseInput::new("second.parquet", 5).with_schema(planned),
            &broken_vectors(99, false)
        ),
        "invalid data at second.parquet, row 0: float vector `vector` has 4 values in this row, \
         but 5 (from the job's schema (planned from its first file)); every vector of a field \
         must have the same dimension"
    );
    assert_eq!(
        error(
            json(),
            ParseInput::new("null.parquet", 50),
            &broken_vectors(7, true)
        ),
        "invalid data at null.parquet, row 7: float vector `vector` is null; Milvus vectors are \
         never null (drop or fill these rows first)"
    );
    // A null inside a vector, and an empty vector.
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let one_column = |lengths: Vec<usize>, values: Float32Array| {
        let schema = Schema::new(vec![Field::new("v", DataType::List(item.clone()), false)]);
        let list = ListArray::new(
            item.clone(),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(values),
            None,
        );
        arrow_writer(
            &RecordBatch::try_new(Arc::new(schema), vec![Arc::new(list)]).unwrap(),
            2,
            Compression::UNCOMPRESSED,
        )
    };
    let holes = Float32Array::from_iter((0..12).map(|i| (i != 9).then_some(i as f32)));
    assert_eq!(
        error(
            json(),
            ParseInput::new("holes.parquet", 5),
            &one_column(vec![4, 4, 4], holes)
        ),
        "invalid data at holes.parquet, row 2: float vector `v` holds a null at position 1 of 4; \
         vectors cannot hold nulls"
    );
    let values = Float32Array::from_iter_values((0..6).map(|i| i as f32));
    assert_eq!(
        error(
            json(),
            ParseInput::new("empty.parquet", 5),
            &one_column(vec![2, 2, 2, 0], values)
        ),
        "invalid data at empty.parquet, row 3: float vector `v` is an empty list; a vector has \
         at least one dimension"
    );
    // Not Parquet at all, or too short to be.
    let mut text = b"id,vector\n1,\"[1, 2]\"\n".repeat(3);
    assert_eq!(
        error(json(), ParseInput::new("a.parquet", 5), &text),
        "invalid data at a.parquet: not a Parquet file (63 bytes): it ends in \"2]\\\"\\n\", not \
         Parquet's magic \"PAR1\""
    );
    text.truncate(5);
    assert_eq!(
        error(json(), ParseInput::new("b.parquet", 5), &text),
        "invalid data at b.parquet: not a Parquet file: it is 5 bytes long, shorter than \
         Parquet's magic numbers and footer length (12 bytes)"
    );
    // The magic is right but the footer is garbage.
    let mut fake = b"PAR1".to_vec();
    fake.extend_from_slice(&[0xff; 20]);
    fake.extend_from_slice(&12u32.to_le_bytes());
    fake.extend_from_slice(b"PAR1");
    let e = error(json(), ParseInput::new("c.parquet", 5), &fake);
    assert!(
        e.starts_with(
            "invalid data at c.parquet: not a Parquet file (32 bytes): its footer cannot be read: "
        ),
        "{e}"
    );
    // No size.
    let e = parser(json(), &ParseInput::new("nosize.parquet", 5))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "unsupported input at nosize.parquet: the parquet parser needs the input's size (Parquet \
         is read from its footer, at the end); the source gave none"
    );
    // An unknown projected column.
    let good = broken_vectors(99, false);
    assert_eq!(
        error(
            serde_json::json!({"columns": ["id", "embedding"]}),
            ParseInput::new("p.parquet", 5),
            &good
        ),
        "invalid `parquet` configuration: `columns` names `embedding`, which p.parquet does not \
         have; its columns are `id`, `vector`"
    );
    assert_eq!(
        error(
            serde_json::json!({"columns": []}),
            ParseInput::new("p.parquet", 5),
            &good
        ),
        "invalid `parquet` configuration: `columns` is empty; leave it out to read every column"
    );
    assert!(error(
        serde_json::json!({"colums": ["id"]}),
        ParseInput::new("p.parquet", 5),
        &good
    )
    .contains("unknown field `colums`"));
}

#[test]
fn a_file_must_have_the_planned_schema() {
    let good = broken_vectors(99, false);
    let planned = read("first.parquet", &good, 100).schema();
    assert_eq!(planned.field(1), &float_vector_field("vector", 4));
    // The same file with the planned schema: the same rows, the planned schema exactly.
    let again = read_input(
        serde_json::json!({}),
        ParseInput::new("second.parquet", 7).with_schema(planned.clone()),
        &good,
    )
    .unwrap();
    assert_eq!(again.schema(), planned);
    // Another type.
    let other = |fields: Vec<Field>| Arc::new(Schema::new(fields)) as SchemaRef;
    let int32 = other(vec![
        Field::new("id", DataType::Int32, false),
        float_vector_field("vector", 4),
    ]);
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("x.parquet", 5).with_schema(int32),
            &good
        ),
        "invalid data at x.parquet: field `id` is Int64 here, but Int32 in the job's schema; \
         every file of a job must have the fields of the job's schema (planned from its first \
         file), in the same order"
    );
    let renamed = other(vec![
        Field::new("pk", DataType::Int64, false),
        float_vector_field("vector", 4),
    ]);
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("x.parquet", 5).with_schema(renamed),
            &good
        ),
        "invalid data at x.parquet: column 1 is field `id` here, but `pk` in the job's schema; \
         every file of a job must have the fields of the job's schema (planned from its first \
         file), in the same order"
    );
    let longer = other(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", 4),
        Field::new("title", DataType::Utf8, true),
    ]);
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("x.parquet", 5).with_schema(longer),
            &good
        ),
        "invalid data at x.parquet: field `title` of the job's schema is missing; every file of \
         a job must have the fields of the job's schema (planned from its first file), in the \
         same order"
    );
    // A field nullable in this file but not in the plan: accepted while it holds no null.
    let nullable = list_vectors(10, 3);
    let planned = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", 3),
        float16_vector_field("half", 3),
        nullable.schema().field(3).clone(),
    ]));
    let bytes = arrow_writer(&nullable, 4, Compression::SNAPPY);
    let got = read_input(
        serde_json::json!({}),
        ParseInput::new("n.parquet", 4).with_schema(planned.clone()),
        &bytes,
    )
    .unwrap();
    assert_eq!(got.schema(), planned);
    let with_null = RecordBatch::try_new(
        nullable.schema(),
        vec![
            Arc::new(Int64Array::from_iter(
                (0..10).map(|i| (i != 6).then_some(i)),
            )),
            nullable.column(1).clone(),
            nullable.column(2).clone(),
            nullable.column(3).clone(),
        ],
    )
    .unwrap();
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("n.parquet", 4).with_schema(planned),
            &arrow_writer(&with_null, 4, Compression::SNAPPY)
        ),
        "invalid data at n.parquet, row 6: field `id` is null, but it is not nullable in the \
         job's schema (planned from its first file)"
    );
}

/// A file written by pyarrow (list and fixed-size-list float32 vectors, float16 and binary
/// vectors, a `$meta` column, strings with nulls, zstd, several row groups) reads back as
/// pyarrow itself reports the values.
#[test]
fn files_written_by_pyarrow_read_back_exactly() {
    let script = r#"
import sys, struct, pyarrow as pa, pyarrow.parquet as pq
path = sys.argv[1] + "/py.parquet"
rows, dim = 23, 5
f32 = [0x80000000, 0x00000001, 0x7fc01234, 0xff800001, 0x7f7fffff, 0xff800000]
def f32_bits(i):
    return f32[i % 6] if i % 4 == 0 else struct.unpack("<I", struct.pack("<f", (i * 0.37) - 4))[0]
vec_raw = b"".join(struct.pack("<I", f32_bits(i)) for i in range(rows * dim))
half_raw = b"".join(struct.pack("<H", (0x8000, 0x0001, 0x7e01, 0x3c00 + i)[i % 4]) for i in range(rows * dim))
bits_raw = bytes((i * 53) % 256 for i in range(rows * 2))
def values(t, raw, n):
    return pa.Array.from_buffers(t, n, [None, pa.py_buffer(raw)])
offsets = pa.array([i * dim for i in range(rows + 1)], pa.int32())
vector = pa.ListArray.from_arrays(offsets, values(pa.float32(), vec_raw, rows * dim))
fixed = pa.FixedSizeListArray.from_arrays(values(pa.float32(), vec_raw, rows * dim), dim)
half = pa.ListArray.from_arrays(offsets, values(pa.float16(), half_raw, rows * dim))
bits = pa.ListArray.from_arrays(pa.array([i * 2 for i in range(rows + 1)], pa.int32()), values(pa.uint8(), bits_raw, rows * 2))
title = pa.array([None if i % 5 == 4 else "t\u00edtulo %d \U0001d11e" % i for i in range(rows)])
meta = pa.array(['{"k": %d}' % i for i in range(rows)])
ids = pa.array([i * 1000003 - 2**40 for i in range(rows)], pa.int64())
table = pa.table({"id": ids, "vector": vector, "fixed": fixed, "half": half, "bits": bits, "title": title, "$meta": meta})
pq.write_table(table, path, row_group_size=6, compression="zstd")
print("vector", vec_raw.hex())
print("half", half_raw.hex())
print("bits", bits_raw.hex())
print("id", b"".join(struct.pack("<q", v) for v in ids.to_pylist()).hex())
print("title", "|".join("-" if v is None else v.encode().hex() for v in title.to_pylist()))
print("meta", "|".join(v.encode().hex() for v in meta.to_pylist()))
print("row_groups", pq.ParquetFile(path).metadata.num_row_groups)
"#;
    let Some((dir, out)) = common::python_fixture("pyarrow", script) else {
        return;
    };
    let path = dir.path().join("py.parquet");
    let want: std::collections::HashMap<&str, &str> =
        out.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(want["row_groups"], "4");
    let bytes = std::fs::read(&path).unwrap();
    let got = read("py.parquet", &bytes, 4);
    let schema = got.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["id", "vector", "fixed", "half", "bits", "title", "$meta"]
    );
    assert_eq!(schema.field(1), &float_vector_field("vector", 5));
    assert_eq!(schema.field(2), &float_vector_field("fixed", 5));
    assert_eq!(schema.field(3), &float16_vector_field("half", 5));
    assert_eq!(schema.field(4), &binary_vector_field("bits", 16).unwrap());
    assert_eq!(schema.field(6), &json_field("$meta", true));
    let raw = |col: &dyn Array| -> Vec<u8> {
        let list = col.as_fixed_size_list();
        let data = list.values().to_data();
        let width = data.data_type().primitive_width().unwrap();
        data.buffers()[0][data.offset() * width..(data.offset() + data.len()) * width].to_vec()
    };
    assert_eq!(common::hex(&raw(got.column(1).as_ref())), want["vector"]);
    assert_eq!(common::hex(&raw(got.column(2).as_ref())), want["vector"]);
    assert_eq!(common::hex(&raw(got.column(3).as_ref())), want["half"]);
    assert_eq!(
        common::hex(got.column(4).as_fixed_size_binary().values()),
        want["bits"]
    );
    let ids: Vec<u8> = got
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(common::hex(&ids), want["id"]);
    let text = |col: &dyn Array| {
        let s = col.as_string::<i32>();
        (0..s.len())
            .map(|i| {
                if s.is_null(i) {
                    "-".to_string()
                } else {
                    common::hex(s.value(i).as_bytes())
                }
            })
            .collect::<Vec<_>>()
            .join("|")
    };
    assert_eq!(text(got.column(5).as_ref()), want["title"]);
    assert_eq!(text(got.column(6).as_ref()), want["meta"]);
    // And it resumes at every batch like vmig's own files.
    let build = |input: &ParseInput| -> Box<dyn Parser> {
        registry::parse_parser("parquet", serde_json::json!({}))
            .unwrap()
            .build(input)
            .unwrap()
    };
    let report = vmig_testing::parsers::check_parser(&build, "py.parquet", &bytes, 4);
    assert!(report.seeks);
    assert_eq!(report.rows, got);
    // 4 row groups of 6, 6, 6, 5 rows: 2 batches each.
    assert_eq!(report.resumed_at.len(), 7);
}

#[test]
fn the_registry_lists_parquet_with_its_extension() {
    let parsers = registry::parsers().unwrap();
    let pq = parsers.get("parquet").expect("parquet registered");
    assert_eq!(pq.extensions, &["parquet"]);
    assert_eq!(pq.package, "vmig-parsers");
    assert_eq!(
        pq.example_config(),
        serde_json::json!({"columns": ["id", "embedding", "$meta"]})
    );
    let found = registry::parser_for_path("x.parquet").unwrap().unwrap();
    assert_eq!((found.name, found.package), ("parquet", "vmig-parsers"));
    assert_eq!(
        registry::parser_for_path("s3://b/k/Part-0.PARQUET")
            .unwrap()
            .unwrap()
            .name,
        "parquet"
    );
    assert!(registry::parser_for_path("x.parq").unwrap().is_none());
    // Streaming use is refused by name.
    let mut p = parser(
        serde_json::json!({}),
        &ParseInput::new("x.parquet", 5).with_size(100),
    )
    .unwrap();
    assert_eq!(
        p.decode(b"PAR1").unwrap_err().to_string(),
        "unsupported input at x.parquet: Parquet is read by random access (footer, then column \
         chunks): drive the parser with wanted/push_ranges, not decode"
    );
}

/// `batch` written with v2 data pages, small pages, dictionary encoding as asked and `compression`.
fn v2_writer(
    batch: &RecordBatch,
    rows_per_group: usize,
    compression: Compression,
    dictionary: bool,
) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_writer_version(parquet::file::properties::WriterVersion::PARQUET_2_0)
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_compression(compression)
        .set_dictionary_enabled(dictionary)
        .set_data_page_size_limit(200)
        .set_write_batch_size(7)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn v2_dictionary_and_compressed_pages_read_bit_exactly_and_resume() {
    let (rows, dim) = (90, 5);
    let batch = list_vectors(rows, dim);
    let want: Vec<u32> = (0..rows * dim).map(|i| awkward_f32(i).to_bits()).collect();
    for compression in [
        Compression::UNCOMPRESSED,
        Compression::ZSTD(ZstdLevel::default()),
    ] {
        for dictionary in [false, true] {
            let bytes = v2_writer(&batch, 40, compression, dictionary);
            let got = read("v2.parquet", &bytes, 7);
            assert_eq!(f32_bits(got.column(1).as_ref()), want, "{compression:?}");
            assert_eq!(got.column(0), batch.column(0));
            // Resumed inside the second row group.
            let input = ParseInput::new("v2.parquet", 7).with_size(bytes.len() as u64);
            let mut p = parser(serde_json::json!({}), &input).unwrap();
            p.seek(&ParsePosition {
                rows: 47,
                offset: None,
            })
            .unwrap();
            let (_, batches) = drive(p.as_mut(), &bytes);
            let got = concat_batches(&batches[0].schema(), &batches).unwrap();
            assert_eq!(got.num_rows(), rows - 47);
            assert_eq!(f32_bits(got.column(1).as_ref()), want[47 * dim..].to_vec());
        }
    }
}

#[test]
fn ragged_and_null_vectors_in_v2_pages_fail_as_in_v1_pages() {
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let two_columns = |lengths: Vec<usize>, values: Float32Array, nulls: Option<NullBuffer>| {
        let rows = lengths.len();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::List(item.clone()), true),
        ]);
        let list = ListArray::new(
            item.clone(),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(values),
            nulls,
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(list),
            ],
        )
        .unwrap();
        v2_writer(&batch, 6, Compression::SNAPPY, true)
    };
    let mut lengths = vec![4; 20];
    lengths[13] = 3;
    lengths[14] = 5;
    let values = Float32Array::from_iter_values((0..80).map(|i| i as f32));
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("ragged.parquet", 5),
            &two_columns(lengths, values, None)
        ),
        "invalid data at ragged.parquet, row 13: float vector `v` has 3 values in this row, but 4 \
         (from the file's first row); every vector of a field must have the same dimension"
    );
    let mut lengths = vec![4; 20];
    lengths[7] = 0;
    let values = Float32Array::from_iter_values((0..76).map(|i| i as f32));
    let nulls = NullBuffer::from_iter((0..20).map(|i| i != 7));
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("null.parquet", 50),
            &two_columns(lengths, values, Some(nulls))
        ),
        "invalid data at null.parquet, row 7: float vector `v` is null; Milvus vectors are never \
         null (drop or fill these rows first)"
    );
    let holes = Float32Array::from_iter((0..80).map(|i| (i != 41).then_some(i as f32)));
    assert_eq!(
        error(
            serde_json::json!({}),
            ParseInput::new("holes.parquet", 5),
            &two_columns(vec![4; 20], holes, None)
        ),
        "invalid data at holes.parquet, row 10: float vector `v` holds a null at position 1 of 4; \
         vectors cannot hold nulls"
    );
}

/// One row group of `rows` rows: ids, float32 vectors of `dim` (a null inside row `hole`'s
/// vector, if any), uint8 binary vectors of 4 bytes and float16 vectors of 3, small pages.
fn one_big_row_group(rows: usize, dim: usize, hole: Option<usize>) -> (RecordBatch, Vec<u8>) {
    let item = |t: DataType| Arc::new(Field::new_list_field(t, true));
    let list = |t: DataType, len: usize, values: ArrayRef| -> ArrayRef {
        Arc::new(ListArray::new(
            item(t),
            OffsetBuffer::from_lengths((0..rows).map(|_| len)),
            values,
            None,
        ))
    };
    let floats = Float32Array::from_iter(
        (0..rows * dim).map(|i| (hole.map(|h| h * dim + 2) != Some(i)).then(|| awkward_f32(i))),
    );
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("vector", DataType::List(item(DataType::Float32)), true),
        Field::new("bits", DataType::List(item(DataType::UInt8)), true),
        Field::new("half", DataType::List(item(DataType::Float16)), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            list(DataType::Float32, dim, Arc::new(floats)),
            list(
                DataType::UInt8,
                4,
                Arc::new(UInt8Array::from_iter_values(
                    (0..rows * 4).map(|i| (i * 37 % 256) as u8),
                )),
            ),
            list(
                DataType::Float16,
                3,
                Arc::new(Float16Array::from_iter_values(
                    (0..rows * 3).map(awkward_f16),
                )),
            ),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows))
        .set_data_page_size_limit(16 * 1024)
        // Dictionary pages stay small too: the writer falls back to PLAIN once it is full.
        .set_dictionary_page_size_limit(16 * 1024)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    (batch, out)
}

#[test]
fn a_large_row_group_is_read_in_bounded_windows_and_batches_bit_exactly() {
    let (rows, dim) = (20_000, 16);
    let (batch, bytes) = one_big_row_group(rows, dim, None);
    let spans = row_groups(&bytes);
    assert_eq!(spans.len(), 1);
    let chunk = spans[0].bytes.end - spans[0].bytes.start;
    assert!(chunk > 1_300_000, "a row group of {chunk} bytes");
    for skip in [0u64, 12_345] {
        let input = ParseInput::new("big.parquet", 500).with_size(bytes.len() as u64);
        let mut p = parser(serde_json::json!({}), &input).unwrap();
        if skip > 0 {
            // The footer first, then a resume inside the row group.
            while p.total_rows().is_none() {
                let Wanted::Ranges(ranges) = p.wanted().unwrap() else {
                    panic!("footer first")
                };
                let data = ranges
                    .iter()
                    .map(|r| Bytes::copy_from_slice(&bytes[r.start as usize..r.end as usize]))
                    .collect();
                p.push_ranges(ranges, data).unwrap();
            }
            p.seek(&ParsePosition {
                rows: skip,
                offset: None,
            })
            .unwrap();
        }
        let (asked, batches) = drive(p.as_mut(), &bytes);
        // The vector column (about 1.3 MB) is asked for in windows of about a batch (at least
        // 256 KiB): never whole.
        let largest = asked.iter().map(|r| r.end - r.start).max().unwrap();
        assert!(
            largest < 400 * 1024,
            "a request of {largest} bytes: {asked:?}"
        );
        assert!(batches.iter().all(|b| b.num_rows() <= 500));
        let got = concat_batches(&batches[0].schema(), &batches).unwrap();
        let skip = skip as usize;
        let want = batch.slice(skip, rows - skip);
        assert_eq!(got.num_rows(), rows - skip);
        assert_eq!(got.column(0), want.column(0));
        let want_bits: Vec<u32> = (skip * dim..rows * dim)
            .map(|i| awkward_f32(i).to_bits())
            .collect();
        assert_eq!(f32_bits(got.column(1).as_ref()), want_bits, "skip {skip}");
        assert_eq!(
            got.schema().field(2),
            &binary_vector_field("bits", 32).unwrap()
        );
        let bits: Vec<u8> = (skip * 4..rows * 4).map(|i| (i * 37 % 256) as u8).collect();
        assert_eq!(
            got.column(2).as_fixed_size_binary().values().as_slice(),
            &bits[..]
        );
        let half: Vec<u16> = got
            .column(3)
            .as_fixed_size_list()
            .values()
            .as_primitive::<arrow::datatypes::Float16Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let want_half: Vec<u16> = (skip * 3..rows * 3)
            .map(|i| awkward_f16(i).to_bits())
            .collect();
        assert_eq!(half, want_half);
    }
}

#[test]
fn a_null_late_in_a_row_group_fails_at_its_row_after_the_rows_before_it() {
    // The page-by-page read declines at the page with the null and arrow-rs reads on from the
    // first row not yet returned: the rows before come out, then the error names the row.
    let (rows, dim) = (20_000, 16);
    let (batch, bytes) = one_big_row_group(rows, dim, Some(15_123));
    let input = ParseInput::new("hole.parquet", 500).with_size(bytes.len() as u64);
    let mut p = parser(serde_json::json!({}), &input).unwrap();
    let mut got = Vec::new();
    let err = loop {
        match p.wanted() {
            Ok(Wanted::Ranges(ranges)) => {
                let data = ranges
                    .iter()
                    .map(|r| Bytes::copy_from_slice(&bytes[r.start as usize..r.end as usize]))
                    .collect();
                p.push_ranges(ranges, data).unwrap();
            }
            Ok(Wanted::Batch) => got.extend(p.flush().unwrap()),
            Ok(other) => panic!("ended without the error: {other:?}"),
            Err(e) => break e.to_string(),
        }
    };
    assert_eq!(
        err,
        "invalid data at hole.parquet, row 15123: float vector `vector` holds a null at \
         position 2 of 16; vectors cannot hold nulls"
    );
    let got = concat_batches(&got[0].schema(), &got).unwrap();
    assert_eq!(got.num_rows(), 15_000);
    assert_eq!(got.column(0), batch.slice(0, 15_000).column(0));
    let want: Vec<u32> = (0..15_000 * dim)
        .map(|i| awkward_f32(i).to_bits())
        .collect();
    assert_eq!(f32_bits(got.column(1).as_ref()), want);
}
