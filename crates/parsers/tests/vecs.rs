//! The TEXMEX (`fvecs`, `ivecs`, `bvecs`) and big-ann-benchmarks (`fbin`, `u8bin`, `i8bin`)
//! parsers through the registry: files built byte by byte from known vectors (−0.0, subnormals,
//! NaN payloads, ±∞, integer extremes) and files written by NumPy read back bit for bit in any
//! chunking; ids continue across files; broken files fail naming the file, the byte and the row.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Int32Array, RecordBatch};
use arrow::compute::{cast_with_options, concat_batches, CastOptions};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Int8Type, UInt8Type};
use vmig_core::parse::{parse_all, ParseInput, ParsePosition};
use vmig_core::registry;
use vmig_core::vector::{float_vector_type, vector_info, VectorType, META_PRIMARY_KEY};
use vmig_parsers as _;

/// The six formats: name, TEXMEX framing (a dimension before every record) or not, and the
/// component type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Comp {
    F32,
    I32,
    U8,
    I8,
}

const FORMATS: [(&str, bool, Comp); 6] = [
    ("fvecs", true, Comp::F32),
    ("ivecs", true, Comp::I32),
    ("bvecs", true, Comp::U8),
    ("fbin", false, Comp::F32),
    ("u8bin", false, Comp::U8),
    ("i8bin", false, Comp::I8),
];

impl Comp {
    fn size(self) -> usize {
        match self {
            Comp::F32 | Comp::I32 => 4,
            Comp::U8 | Comp::I8 => 1,
        }
    }

    /// The little-endian bytes of a component given by its bits.
    fn encode(self, bits: u32) -> Vec<u8> {
        match self {
            Comp::F32 | Comp::I32 => bits.to_le_bytes().to_vec(),
            Comp::U8 | Comp::I8 => vec![bits as u8],
        }
    }

    fn arrow_type(self) -> DataType {
        match self {
            Comp::F32 => DataType::Float32,
            Comp::I32 => DataType::Int32,
            Comp::U8 => DataType::UInt8,
            Comp::I8 => DataType::Int8,
        }
    }
}

/// `rows` × `dim` components (as bits) with the awkward values of each type.
fn sample(comp: Comp, rows: usize, dim: usize) -> Vec<Vec<u32>> {
    let special: &[u32] = match comp {
        Comp::F32 => &[
            (-0.0f32).to_bits(),
            0x0000_0001,        // the smallest subnormal
            0x007f_ffff,        // the largest subnormal
            0x7fc0_1234,        // quiet NaN with a payload
            0x7f80_0001,        // signalling NaN
            0xffc0_0000 | 0x2a, // negative NaN with a payload
            f32::INFINITY.to_bits(),
            f32::NEG_INFINITY.to_bits(),
            f32::MAX.to_bits(),
            f32::MIN_POSITIVE.to_bits(),
        ],
        Comp::I32 => &[
            i32::MIN as u32,
            i32::MAX as u32,
            -1i32 as u32,
            0,
            16_777_217,
        ],
        Comp::U8 => &[0, 255, 128, 127, 1],
        Comp::I8 => &[0x80, 0x7f, 0xff, 0, 1],
    };
    (0..rows)
        .map(|r| {
            (0..dim)
                .map(|c| {
                    let i = r * dim + c;
                    if i.is_multiple_of(3) {
                        special[(i / 3) % special.len()]
                    } else {
                        match comp {
                            Comp::F32 => ((i as f32).sqrt()
                                * if i.is_multiple_of(2) { 1.0 } else { -1.0 })
                            .to_bits(),
                            Comp::I32 => (i as u32).wrapping_mul(2_654_435_761),
                            Comp::U8 | Comp::I8 => (i * 37 % 256) as u32,
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// The file bytes of `rows` in the format: TEXMEX records with their dimension prefix, or the
/// big-ann header then the rows.
fn file(texmex: bool, comp: Comp, rows: &[Vec<u32>], dim: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if !texmex {
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        out.extend_from_slice(&(dim as u32).to_le_bytes());
    }
    for row in rows {
        if texmex {
            out.extend_from_slice(&(row.len() as i32).to_le_bytes());
        }
        for &bits in row {
            out.extend(comp.encode(bits));
        }
    }
    out
}

/// The components of `row` of a vector column, as bits (independent of the machine's byte
/// order, exact for NaN payloads).
fn row_bits(col: &dyn Array, row: usize) -> Vec<u32> {
    let values = col.as_fixed_size_list().value(row);
    match values.data_type() {
        DataType::Float32 => values
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DataType::Int32 => values
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|&v| v as u32)
            .collect(),
        DataType::UInt8 => values
            .as_primitive::<UInt8Type>()
            .values()
            .iter()
            .map(|&v| u32::from(v))
            .collect(),
        DataType::Int8 => values
            .as_primitive::<Int8Type>()
            .values()
            .iter()
            .map(|&v| u32::from(v as u8))
            .collect(),
        other => panic!("unexpected component type {other}"),
    }
}

/// Every batch of `bytes` fed `chunk` bytes at a time, concatenated.
fn read(bytes: &[u8], chunk: usize, input: ParseInput) -> RecordBatch {
    common::read(bytes, serde_json::json!({}), input, chunk)
}

/// The error text of reading `bytes` as `input` (named like a file of the format).
fn error(bytes: &[u8], chunk: usize, input: ParseInput) -> String {
    common::error(bytes, serde_json::json!({}), input, chunk)
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn every_format_reads_back_bit_exactly_in_any_chunking() {
    let (rows, dim) = (23, 5);
    for (format, texmex, comp) in FORMATS {
        let want = sample(comp, rows, dim);
        let bytes = file(texmex, comp, &want, dim);
        let name = format!("data/part.{format}");
        for (chunk, batch_rows, sized) in [
            (1, 4, false),
            (3, 1, true),
            (7, 23, false),
            (13, 5, true),
            (4096, 1000, true),
            (bytes.len(), 6, false),
        ] {
            let mut input = ParseInput::new(&name, batch_rows).with_first_row(1_000_000_007);
            if sized {
                input = input.with_size(bytes.len() as u64);
            }
            let got = read(&bytes, chunk, input);
            let context = format!("{format}, {chunk}-byte chunks, batches of {batch_rows}");
            assert_eq!(got.num_rows(), rows, "{context}");
            assert_eq!(
                ids(&got),
                (0..rows as i64)
                    .map(|r| 1_000_000_007 + r)
                    .collect::<Vec<_>>(),
                "{context}: ids are first_row + row"
            );
            for (r, want_row) in want.iter().enumerate() {
                assert_eq!(
                    &row_bits(got.column(1).as_ref(), r),
                    want_row,
                    "{context}, row {r}"
                );
            }
            let schema = got.schema();
            assert_eq!(schema.field(0).name(), "id");
            assert_eq!(schema.field(0).data_type(), &DataType::Int64);
            assert_eq!(schema.metadata()[META_PRIMARY_KEY], "id");
            let vector = schema.field(1);
            assert_eq!(vector.name(), "vector");
            assert!(!vector.is_nullable());
            match comp {
                Comp::F32 => {
                    let info = vector_info(vector).expect("a float vector");
                    assert_eq!((info.kind, info.dim), (VectorType::Float32, dim));
                }
                c => {
                    assert!(
                        vector_info(vector).is_none(),
                        "{format}: not a Milvus vector"
                    );
                    let DataType::FixedSizeList(item, n) = vector.data_type() else {
                        panic!("{format}: {}", vector.data_type())
                    };
                    assert_eq!((item.data_type(), *n), (&c.arrow_type(), dim as i32));
                }
            }
        }
    }
}

#[test]
fn every_format_passes_the_parser_conformance_check_and_resumes_at_every_batch() {
    let (rows, dim, batch_rows) = (53, 6, 7);
    for (format, texmex, comp) in FORMATS {
        let bytes = file(texmex, comp, &sample(comp, rows, dim), dim);
        let name = format!("x.{format}");
        let report = common::check(
            format,
            serde_json::json!({}),
            &name,
            &bytes,
            (batch_rows, rows),
        );
        let record = dim * comp.size() + if texmex { 4 } else { 0 };
        let start = if texmex { 0 } else { 8 };
        for pos in &report.resumed_at {
            assert_eq!(
                pos.offset,
                Some((start + pos.rows as usize * record) as u64),
                "{format}"
            );
        }
    }
}

#[test]
fn total_rows_comes_from_the_header_or_the_size() {
    let dim = 3;
    for (format, texmex, comp) in FORMATS {
        let bytes = file(texmex, comp, &sample(comp, 9, dim), dim);
        let name = format!("t.{format}");
        for sized in [false, true] {
            let mut input = ParseInput::new(&name, 4);
            if sized {
                input = input.with_size(bytes.len() as u64);
            }
            let mut p = common::parser(serde_json::json!({}), &input);
            assert_eq!(p.total_rows(), None);
            assert_eq!(p.next_row_offset(), None);
            let used = p.decode(&bytes[..9]).unwrap();
            assert_eq!(used, 9);
            let want = if texmex && !sized { None } else { Some(9) };
            assert_eq!(p.total_rows(), want, "{format} sized={sized}");
            assert_eq!(p.next_row_offset(), Some(if texmex { 0 } else { 8 }));
        }
    }
}

#[test]
fn ids_continue_across_files_and_the_columns_are_named_by_options() {
    let dim = 4;
    for (format, texmex, comp) in FORMATS {
        let first = file(texmex, comp, &sample(comp, 5, dim), dim);
        let second = file(texmex, comp, &sample(comp, 3, dim), dim);
        let options = serde_json::json!({"id_field": "pk", "vector_field": "emb"});
        let mut seen = Vec::new();
        let mut first_row = 0;
        for (i, bytes) in [&first, &second].into_iter().enumerate() {
            let name = format!("dir/{i}.{format}");
            let input = ParseInput::new(&name, 2)
                .with_size(bytes.len() as u64)
                .with_first_row(first_row);
            let mut p = common::parser(options.clone(), &input);
            let batches = parse_all(p.as_mut(), [bytes.as_slice()]).unwrap();
            first_row += p.total_rows().unwrap();
            let schema = p.schema().unwrap();
            assert_eq!(schema.field(0).name(), "pk");
            assert_eq!(schema.field(1).name(), "emb");
            assert_eq!(schema.metadata()[META_PRIMARY_KEY], "pk");
            for b in &batches {
                seen.extend(ids(b));
            }
        }
        assert_eq!(seen, (0..8).collect::<Vec<i64>>(), "{format}");
    }
}

#[test]
fn options_are_checked() {
    for (format, _, _) in FORMATS {
        for (options, says) in [
            (
                serde_json::json!({"id_field": ""}),
                format!("invalid `{format}` configuration: `id_field` and `vector_field` must not be empty"),
            ),
            (
                serde_json::json!({"vector_field": "id"}),
                format!("invalid `{format}` configuration: `id_field` and `vector_field` are both `id`; they must differ"),
            ),
        ] {
            let e = registry::parse_parser(format, options).unwrap_err();
            assert_eq!(e.to_string(), says);
        }
        let e = registry::parse_parser(format, serde_json::json!({"dim": 3})).unwrap_err();
        assert!(e.to_string().contains("unknown field `dim`"), "{e}");
    }
}

#[test]
fn the_registry_lists_the_six_formats_with_their_extensions() {
    let parsers = registry::parsers().unwrap();
    for (format, _, _) in FORMATS {
        let plugin = parsers
            .get(format)
            .unwrap_or_else(|| panic!("{format} registered"));
        assert_eq!(plugin.package, "vmig-parsers");
        assert_eq!(plugin.extensions, &[format]);
        assert!(!plugin.summary.is_empty());
        assert_eq!(
            plugin.example_config(),
            serde_json::json!({"id_field": "id", "vector_field": "vector"})
        );
        for path in [
            format!("a/b.{format}"),
            format!("s3://bucket/B.{}", format.to_uppercase()),
        ] {
            let by_path = registry::parser_for_path(&path).unwrap().unwrap();
            assert_eq!(by_path.name, format, "{path}");
        }
    }
    assert!(registry::parser_for_path("a/b.vecs").unwrap().is_none());
}

/// An fvecs file of `rows` records of dimension `dim` (component values do not matter).
fn fvecs(rows: usize, dim: usize) -> Vec<u8> {
    file(true, Comp::F32, &sample(Comp::F32, rows, dim), dim)
}

#[test]
fn a_record_of_another_dimension_fails_naming_file_byte_and_record() {
    let mut bytes = fvecs(6, 4);
    let record = 4 + 4 * 4;
    bytes[3 * record..3 * record + 4].copy_from_slice(&7i32.to_le_bytes());
    let want = format!(
        "invalid data at d/x.fvecs at byte {}: record 3 says dimension 7, but the file's first \
         record says 4: every record of a .fvecs file must have the same dimension",
        3 * record
    );
    for chunk in [1, 5, 4096] {
        assert_eq!(error(&bytes, chunk, ParseInput::new("d/x.fvecs", 2)), want);
        let sized = ParseInput::new("d/x.fvecs", 100).with_size(bytes.len() as u64);
        assert_eq!(error(&bytes, chunk, sized), want);
    }
    // A bvecs record's prefix is checked the same way.
    let mut b = file(true, Comp::U8, &sample(Comp::U8, 3, 2), 2);
    b[12..16].copy_from_slice(&(-2i32).to_le_bytes());
    assert_eq!(
        error(&b, 3, ParseInput::new("x.bvecs", 10)),
        "invalid data at x.bvecs at byte 12: record 2 says dimension -2, but the file's first \
         record says 2: every record of a .bvecs file must have the same dimension"
    );
}

#[test]
fn a_truncated_texmex_file_fails_before_any_row_when_its_size_is_known() {
    let whole = fvecs(5, 3); // records of 16 bytes
    let cut = &whole[..whole.len() - 5];
    // Size known: the first 4 bytes are enough to see it.
    let input = ParseInput::new("v/a.fvecs", 1).with_size(cut.len() as u64);
    let mut p = common::parser(serde_json::json!({}), &input);
    let e = p.decode(&cut[..4]).unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid data at v/a.fvecs at byte 64: the file is truncated: 75 bytes is not a whole \
         number of 16-byte records (4 + 3·4 bytes each, as its first record's dimension 3 \
         says); the last record has only 11 bytes"
    );
    // Size unknown: the rows before the cut are read, then the end fails.
    let mut p = common::parser(serde_json::json!({}), &ParseInput::new("v/a.fvecs", 2));
    let mut rows = 0;
    let mut rest = cut;
    while !rest.is_empty() {
        let used = p.decode(rest).unwrap();
        rest = &rest[used..];
        rows += p.flush().unwrap().map_or(0, |b| b.num_rows());
    }
    assert_eq!(rows, 4);
    assert_eq!(
        p.finish().unwrap_err().to_string(),
        "invalid data at v/a.fvecs at byte 64: the file ends inside row 4: it holds 11 of the \
         row's 16 bytes; it is truncated"
    );
    // A size that holds whole records but more than the input brings.
    let short = ParseInput::new("v/a.fvecs", 2).with_size(whole.len() as u64 + 16);
    assert_eq!(
        error(&whole, 7, short),
        "invalid data at v/a.fvecs at byte 80: the file ends after 5 of the 6 rows its size \
         holds (row 5 is missing); it is truncated"
    );
    // Ending inside the first prefix.
    assert_eq!(
        error(&whole[..3], 1, ParseInput::new("v/a.ivecs", 2)),
        "invalid data at v/a.ivecs at byte 3: the file ends inside its first record's 4-byte \
         dimension; it is not a whole .ivecs file"
    );
}

/// An fbin file of `rows` rows of dimension `dim`.
fn fbin(rows: usize, dim: usize) -> Vec<u8> {
    file(false, Comp::F32, &sample(Comp::F32, rows, dim), dim)
}

#[test]
fn a_big_ann_file_whose_size_disagrees_with_its_header_fails_at_once() {
    let whole = fbin(4, 3); // 8 + 48 bytes
    for (bytes, verdict) in [
        (&whole[..whole.len() - 1], "it is truncated".to_string()),
        (
            &[whole.as_slice(), &[0, 0]].concat()[..],
            "it is not a valid .fbin file".to_string(),
        ),
    ] {
        let input = ParseInput::new("b/x.fbin", 1).with_size(bytes.len() as u64);
        let mut p = common::parser(serde_json::json!({}), &input);
        assert_eq!(
            p.decode(bytes).unwrap_err().to_string(),
            format!(
                "invalid data at b/x.fbin at byte 0: the header says 4 rows of 3 float32 \
                 components, which take 56 bytes with the 8-byte header, but the file has {} \
                 bytes; {verdict}",
                bytes.len()
            )
        );
    }
    let u8 = file(false, Comp::U8, &sample(Comp::U8, 2, 5), 5);
    let input = ParseInput::new("x.u8bin", 1).with_size(u8.len() as u64 - 1);
    assert_eq!(
        error(&u8[..u8.len() - 1], 8, input),
        "invalid data at x.u8bin at byte 0: the header says 2 rows of 5 uint8 components, which \
         take 18 bytes with the 8-byte header, but the file has 17 bytes; it is truncated"
    );
}

#[test]
fn a_big_ann_file_with_fewer_or_more_rows_than_its_header_fails_at_the_end() {
    let whole = fbin(4, 3); // rows of 12 bytes from byte 8
                            // Whole rows missing.
    assert_eq!(
        error(&whole[..8 + 24], 5, ParseInput::new("b/x.fbin", 3)),
        "invalid data at b/x.fbin at byte 32: the file ends after 2 of the 4 rows its header \
         declares (row 2 is missing); it is truncated"
    );
    // A row cut short.
    assert_eq!(
        error(&whole[..8 + 30], 5, ParseInput::new("b/x.fbin", 3)),
        "invalid data at b/x.fbin at byte 32: the file ends inside row 2: it holds 6 of the \
         row's 12 bytes; it is truncated"
    );
    // Bytes after the last row.
    let long = [whole.as_slice(), &[1]].concat();
    assert_eq!(
        error(&long, 1000, ParseInput::new("b/x.fbin", 3)),
        "invalid data at b/x.fbin at byte 56: the file holds more bytes than its header's 4 rows \
         of 12 bytes; it is not a valid .fbin file"
    );
    // A whole row after the last one, however it is chunked.
    let longer = [whole.as_slice(), &whole[8..20]].concat();
    for chunk in [1, 12, 1000] {
        assert_eq!(
            error(&longer, chunk, ParseInput::new("b/x.fbin", 100)),
            "invalid data at b/x.fbin at byte 56: the file holds more bytes than its header's 4 \
             rows of 12 bytes; it is not a valid .fbin file"
        );
    }
    // A damaged header promising absurdly many rows makes no absurd allocation.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&(1u32 << 20).to_le_bytes());
    huge.extend_from_slice(&[0; 100]);
    assert_eq!(
        error(&huge, 64, ParseInput::new("h.fbin", 1 << 30)),
        "invalid data at h.fbin at byte 8: the file ends inside row 0: it holds 100 of the \
         row's 4194304 bytes; it is truncated"
    );
    // Ending inside the header.
    assert_eq!(
        error(&whole[..6], 2, ParseInput::new("b/x.i8bin", 3)),
        "invalid data at b/x.i8bin at byte 6: the file ends inside its 8-byte header (rows, \
         dimension); it is not a whole .i8bin file"
    );
    // A header of 0 rows is a valid, empty file.
    let empty = [0u32.to_le_bytes(), 7u32.to_le_bytes()].concat();
    let got = read(&empty, 3, ParseInput::new("e.fbin", 3).with_size(8));
    assert_eq!(got.num_rows(), 0);
    assert_eq!(vector_info(got.schema().field(1)).unwrap().dim, 7);
}

#[test]
fn zero_negative_and_absurd_dimensions_fail() {
    for (d, chunk) in [(0i32, 1), (-3, 4), (1 << 21, 100)] {
        let mut bytes = d.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            error(&bytes, chunk, ParseInput::new("z.fvecs", 3)),
            format!(
                "invalid data at z.fvecs at byte 0: the first record says dimension {d}; a .fvecs \
                 record starts with its dimension, between 1 and 1048576 (is this a .fvecs file?)"
            )
        );
    }
    for d in [0u32, 1 << 21, u32::MAX] {
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&d.to_le_bytes());
        assert_eq!(
            error(&bytes, 3, ParseInput::new("z.u8bin", 3)),
            format!(
                "invalid data at z.u8bin at byte 4: the header says dimension {d}; a .u8bin \
                 file's dimension (its second u32) is between 1 and 1048576 (is this a .u8bin \
                 file?)"
            )
        );
    }
}

#[test]
fn a_file_of_another_dimension_than_the_planned_schema_fails_naming_both() {
    for (format, texmex, comp) in FORMATS {
        let planned = read(
            &file(texmex, comp, &sample(comp, 2, 5), 5),
            100,
            ParseInput::new(format!("a.{format}"), 10),
        )
        .schema();
        let other = file(texmex, comp, &sample(comp, 2, 6), 6);
        let name = format!("b.{format}");
        let input = ParseInput::new(&name, 10).with_schema(planned.clone());
        assert_eq!(
            error(&other, 3, input),
            format!(
                "invalid data at b.{format} at byte {}: the file's vectors have 6 dimensions, but \
                 the job's schema (planned from its first file) has 5: all files of one source \
                 must have the same dimension",
                if texmex { 0 } else { 4 }
            )
        );
        // The same dimension is fine.
        let same = file(texmex, comp, &sample(comp, 3, 5), 5);
        let input = ParseInput::new(&name, 10).with_schema(planned);
        assert_eq!(read(&same, 3, input).num_rows(), 3);
    }
    // Another format with the same dimension: the columns differ.
    let planned = read(&fvecs(1, 2), 100, ParseInput::new("a.fvecs", 1)).schema();
    let b = file(true, Comp::U8, &sample(Comp::U8, 1, 2), 2);
    assert_eq!(
        error(&b, 100, ParseInput::new("b.bvecs", 1).with_schema(planned)),
        "invalid data at b.bvecs at byte 0: the file's columns are `id` Int64, `vector` \
         FixedSizeList(2 x UInt8), but the job's schema (planned from its first file) has `id` \
         Int64, `vector` FixedSizeList(2 x Float32): all files of one source must have the same \
         format and options"
    );
}

#[test]
fn seek_refuses_a_position_that_is_not_a_record_boundary_of_this_file() {
    let bytes = fvecs(10, 3); // records of 16 bytes
    let planned = read(&bytes, 100, ParseInput::new("a.fvecs", 4)).schema();
    let resumed = |pos: ParsePosition| {
        let input = ParseInput::new("r/a.fvecs", 4)
            .with_size(bytes.len() as u64)
            .with_schema(planned.clone());
        let mut p = common::parser(serde_json::json!({}), &input);
        assert_eq!(p.decode(&bytes[..4]).unwrap(), 4);
        p.seek(&pos).map(|()| p)
    };
    let e = resumed(ParsePosition {
        rows: 4,
        offset: Some(60),
    })
    .err()
    .unwrap()
    .to_string();
    assert_eq!(
        e,
        "invalid data at r/a.fvecs at byte 60: cannot resume after row 4 here: in this file \
         (records of 16 bytes from byte 0) row 4 starts at byte 64 and the file has 10 rows \
         (was the file replaced since?)"
    );
    let e = resumed(ParsePosition {
        rows: 11,
        offset: Some(176),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("r/a.fvecs at byte 176") && e.contains("row 11"),
        "{e}"
    );
    // A row count alone places the row (a source splitting the file into row ranges) ...
    let p = resumed(ParsePosition {
        rows: 4,
        offset: None,
    })
    .unwrap();
    assert_eq!(p.next_row_offset(), Some(64));
    // ... unless it is past the end.
    let e = resumed(ParsePosition {
        rows: 11,
        offset: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("invalid data at r/a.fvecs: cannot resume after row 11"),
        "{e}"
    );
    // The right position reads on from there.
    let mut p = resumed(ParsePosition {
        rows: 4,
        offset: Some(64),
    })
    .unwrap();
    let rest = parse_all(p.as_mut(), bytes[64..].chunks(5)).unwrap();
    let rest = concat_batches(&planned, &rest).unwrap();
    assert_eq!(ids(&rest), (4..10).collect::<Vec<i64>>());

    // An fbin file's rows start after its header.
    let bin = fbin(6, 2);
    let planned = read(&bin, 100, ParseInput::new("a.fbin", 4)).schema();
    let input = ParseInput::new("a.fbin", 4).with_schema(planned);
    let mut p = common::parser(serde_json::json!({}), &input);
    assert!(
        p.seek(&ParsePosition {
            rows: 0,
            offset: Some(8)
        })
        .is_err(),
        "header not read"
    );
    p.decode(&bin[..8]).unwrap();
    let e = p
        .seek(&ParsePosition {
            rows: 2,
            offset: Some(16),
        })
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid data at a.fbin at byte 16: cannot resume after row 2 here: in this file \
         (records of 8 bytes from byte 8) row 2 starts at byte 24 and the file has 6 rows (was \
         the file replaced since?)"
    );
}

#[test]
fn an_empty_texmex_file_has_no_rows_only_when_the_schema_is_planned() {
    assert_eq!(
        error(&[], 1, ParseInput::new("e/0.fvecs", 3).with_size(0)),
        "invalid data at e/0.fvecs at byte 0: the file is empty: a .fvecs file without records \
         has no dimension to plan the job's schema from"
    );
    let planned = read(&fvecs(1, 2), 100, ParseInput::new("a.fvecs", 1)).schema();
    let input = ParseInput::new("e/1.fvecs", 3)
        .with_size(0)
        .with_schema(planned.clone());
    let mut p = common::parser(serde_json::json!({}), &input);
    assert!(parse_all(p.as_mut(), []).unwrap().is_empty());
    assert_eq!(p.schema(), Some(planned));
    assert_eq!(p.total_rows(), Some(0));
    assert_eq!(
        error(&[], 1, ParseInput::new("e/0.fbin", 3)),
        "invalid data at e/0.fbin at byte 0: the file ends inside its 8-byte header (rows, \
         dimension); it is not a whole .fbin file"
    );
}

/// The documented way to make float vectors of integer components: a `cast` to
/// `float_vector` turns the fixed-size list into `FixedSizeList<Float32>` of the same size,
/// which is what the `cast` transform does (a strict Arrow cast).
#[test]
fn integer_components_cast_to_float_vectors() {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    for (format, texmex, comp) in FORMATS.into_iter().filter(|f| f.2 != Comp::F32) {
        let want = sample(comp, 4, 3);
        let got = read(
            &file(texmex, comp, &want, 3),
            100,
            ParseInput::new(format!("c.{format}"), 10),
        );
        let cast = cast_with_options(got.column(1), &float_vector_type(3), &strict).unwrap();
        let values = cast
            .as_fixed_size_list()
            .values()
            .as_primitive::<Float32Type>()
            .clone();
        let expected: Vec<f32> = want
            .iter()
            .flatten()
            .map(|&bits| match comp {
                Comp::I32 => bits as i32 as f32,
                Comp::U8 => bits as f32,
                Comp::I8 => f32::from(bits as u8 as i8),
                Comp::F32 => unreachable!(),
            })
            .collect();
        assert_eq!(values.values().to_vec(), expected, "{format}");
    }
    // int32 values beyond 2^24 round to the nearest float32: the cast does not refuse them.
    let list = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Int32, true)),
        2,
        Arc::new(Int32Array::from(vec![16_777_217, -16_777_219])),
        None,
    )
    .unwrap();
    let cast = cast_with_options(&list, &float_vector_type(2), &strict).unwrap();
    let values = cast
        .as_fixed_size_list()
        .values()
        .as_primitive::<Float32Type>()
        .clone();
    assert_eq!(values.values().to_vec(), vec![16_777_216.0, -16_777_220.0]);
}

/// Files written by NumPy in the layouts the TEXMEX and big-ann-benchmarks pages document
/// (`tofile` of the prefixed records; the `u32` header then the rows) read back equal to the
/// bytes NumPy holds, NaN payloads included.
#[test]
fn files_written_by_numpy_read_back_exactly() {
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(11)
n, dim = 1001, 24
x = rng.standard_normal((n, dim)).astype("<f4")
x.view("<u4")[0, :4] = [0x7fc01234, 0x7f800001, 0x80000000, 0x00000001]
def vecs(path, a, dtype):
    rec = np.empty((a.shape[0], 4 + a.shape[1] * np.dtype(dtype).itemsize), dtype="u1")
    rec[:, :4] = np.full((a.shape[0], 1), a.shape[1], dtype="<i4").view("u1")
    rec[:, 4:] = np.ascontiguousarray(a.astype(dtype)).view("u1")
    rec.tofile(path)
def bin(path, a, dtype):
    with open(path, "wb") as f:
        np.array(a.shape, dtype="<u4").tofile(f)
        a.astype(dtype).tofile(f)
i = rng.integers(-2**31, 2**31, (n, 7), dtype=np.int64).astype("<i4")
u = rng.integers(0, 256, (n, 9)).astype("u1")
s = rng.integers(-128, 128, (n, 9)).astype("i1")
vecs(f"{d}/a.fvecs", x, "<f4"); bin(f"{d}/a.fbin", x, "<f4")
vecs(f"{d}/a.ivecs", i, "<i4")
vecs(f"{d}/a.bvecs", u, "u1"); bin(f"{d}/a.u8bin", u, "u1")
bin(f"{d}/a.i8bin", s, "i1")
for ext, a in [("fvecs", x), ("fbin", x), ("ivecs", i), ("bvecs", u), ("u8bin", u), ("i8bin", s)]:
    print(ext, a.shape[0], a.shape[1], a.tobytes().hex())
"#;
    let Some((dir, out)) = common::python_fixture("numpy", script) else {
        return;
    };
    let mut checked = 0;
    for line in out.lines() {
        let mut parts = line.split(' ');
        let (ext, rows, dim, hex) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse::<usize>().unwrap(),
            parts.next().unwrap().parse::<usize>().unwrap(),
            parts.next().unwrap(),
        );
        let path = dir.path().join(format!("a.{ext}"));
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        let input = ParseInput::new(&name, 100).with_size(bytes.len() as u64);
        let got = read(&bytes, 64 * 1024, input);
        assert_eq!(got.num_rows(), rows, "{ext}");
        let (_, _, comp) = FORMATS.into_iter().find(|f| f.0 == ext).unwrap();
        let want: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut have = Vec::new();
        for r in 0..rows {
            let row = row_bits(got.column(1).as_ref(), r);
            assert_eq!(row.len(), dim, "{ext}");
            for bits in row {
                have.extend(comp.encode(bits));
            }
        }
        assert!(have == want, "{ext}: the values differ from NumPy's");
        assert_eq!(ids(&got), (0..rows as i64).collect::<Vec<_>>(), "{ext}");
        checked += 1;
    }
    assert_eq!(checked, 6, "{out}");
}
