//! Round trips of the staging writers through independent readers (parquet's Arrow reader,
//! npyz's reader, serde_json), comparing every value bit-exactly.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, ListArray, RecordBatch, StringArray,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Schema, SchemaRef, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vmig_core::vector;
use vmig_formats::staging::{
    check_schema, JsonWriter, NumpyWriter, ParquetCompression, ParquetOptions, ParquetWriter,
    StagingFormat, StagingOptions, StagingWriter,
};

const DIM: usize = 16;
const BIN_BYTES: usize = 4;

fn edge_f32() -> Vec<f32> {
    vec![
        -0.0,
        0.0,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        0.1,
        1.0 / 3.0,
        -1.5e-30,
        16_777_217.0,
    ]
}

/// xorshift, so tests need no RNG dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        // Any finite bit pattern.
        loop {
            let v = f32::from_bits(self.next() as u32);
            if v.is_finite() {
                return v;
            }
        }
    }
}

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
            Field::new("f32", DataType::Float32, false),
            Field::new("f64", DataType::Float64, false),
        ],
        HashMap::from([(vector::META_PRIMARY_KEY.to_string(), "id".to_string())]),
    ))
}

fn text(i: usize) -> String {
    match i % 5 {
        0 => format!("héllo wörld {i}"),
        1 => "日本語 🚀 \"quoted\" \\ back".to_string(),
        2 => String::new(),
        3 => "x".repeat(i % 37),
        _ => format!("tab\tnew\nline {i}"),
    }
}

fn json_text(i: usize) -> String {
    match i % 4 {
        0 => format!("{{\"k\": {i}, \"big\": 12345678901234567890, \"s\": \"ü\"}}"),
        1 => "  {\"nested\": {\"a\": [1, 2.5, null]}}  ".to_string(),
        2 => "[1, 2]".to_string(),
        _ => "{}".to_string(),
    }
}

fn batch(start: usize, rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng(seed.max(1));
    let edges = edge_f32();
    let ids: Vec<i64> = (start..start + rows)
        .map(|i| {
            if i == 1 {
                i64::MAX
            } else {
                i as i64 * 1_000_003 - 7
            }
        })
        .collect();
    let mut vals = Vec::with_capacity(rows * DIM);
    for r in 0..rows {
        for d in 0..DIM {
            let k = r * DIM + d;
            vals.push(if k < edges.len() { edges[k] } else { rng.f32() });
        }
    }
    let vec = vector::float_vector_array(Float32Array::from(vals), DIM).unwrap();
    let bin_bytes: Vec<u8> = (0..rows * BIN_BYTES).map(|_| rng.next() as u8).collect();
    let bin = vector::binary_vector_array(Buffer::from_vec(bin_bytes), BIN_BYTES).unwrap();
    let idx = start..start + rows;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(vec),
        Arc::new(bin),
        Arc::new(StringArray::from_iter_values(idx.clone().map(text))),
        Arc::new(StringArray::from_iter_values(idx.clone().map(json_text))),
        Arc::new(BooleanArray::from_iter(
            idx.clone().map(|i| Some(i % 3 == 0)),
        )),
        Arc::new(Int8Array::from_iter_values(
            idx.clone().map(|i| (i % 256) as u8 as i8),
        )),
        Arc::new(Int16Array::from_iter_values(
            idx.clone().map(|i| (i * 7919) as i16),
        )),
        Arc::new(Int32Array::from_iter_values(
            idx.clone().map(|i| (i as i32).wrapping_mul(-65_537)),
        )),
        Arc::new(Float32Array::from_iter_values(
            idx.clone().map(|i| edges[i % edges.len()]),
        )),
        Arc::new(Float64Array::from_iter_values(idx.map(|i| {
            [
                -0.0,
                f64::from_bits(1),
                f64::MAX,
                0.1,
                1e300,
                i as f64 / 7.0,
            ][i % 6]
        }))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn f32_bits(a: &dyn Array) -> Vec<u32> {
    a.as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn vector_bits(b: &RecordBatch) -> Vec<u32> {
    f32_bits(b.column(1).as_fixed_size_list().values().as_ref())
}

// ---------------------------------------------------------------- Parquet

fn read_parquet(path: &Path) -> (SchemaRef, Vec<RecordBatch>, usize) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let row_groups = builder.metadata().num_row_groups();
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .unwrap()
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap();
    (schema, batches, row_groups)
}

fn assert_parquet_matches(read: &RecordBatch, want: &RecordBatch) {
    assert_eq!(read.num_rows(), want.num_rows());
    // Vectors come back as List<Float32> / List<UInt8>.
    let vec = read.column(1).as_list::<i32>();
    assert!(vec
        .value_offsets()
        .windows(2)
        .all(|w| w[1] - w[0] == DIM as i32));
    assert_eq!(f32_bits(vec.values().as_ref()), vector_bits(want));
    let bin = read.column(2).as_list::<i32>();
    let got: Vec<u8> = bin.values().as_primitive::<UInt8Type>().values().to_vec();
    assert_eq!(got, want.column(2).as_fixed_size_binary().value_data());
    for c in [0, 3, 4, 5, 6, 7, 8, 10] {
        assert_eq!(
            read.column(c).as_ref(),
            want.column(c).as_ref(),
            "column {c}"
        );
    }
    assert_eq!(
        f32_bits(read.column(9).as_ref()),
        f32_bits(want.column(9).as_ref())
    );
}

#[test]
fn parquet_round_trip_is_exact_and_milvus_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.parquet");
    let data = [batch(0, 300, 1), batch(300, 257, 2)];
    let mut w = StagingWriter::create(
        StagingFormat::Parquet,
        &path,
        &schema(),
        &StagingOptions {
            parquet: ParquetOptions {
                row_group_bytes: 16 << 10,
                compression: ParquetCompression::None,
            },
            sync: true,
        },
    )
    .unwrap();
    for b in &data {
        w.write(b).unwrap();
    }
    assert_eq!(w.rows(), 557);
    let estimate = w.bytes();
    let done = w.finish().unwrap();
    assert_eq!(done.rows, 557);
    assert_eq!(done.bytes, std::fs::metadata(&path).unwrap().len());
    assert!(
        estimate >= done.bytes,
        "estimate {estimate} < actual {}",
        done.bytes
    );

    let (file_schema, batches, row_groups) = read_parquet(&path);
    assert!(
        row_groups > 2,
        "16 KiB row groups should split 557 rows, got {row_groups}"
    );
    let names: Vec<&str> = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        ["id", "vec", "bin", "name", "meta", "flag", "i8", "i16", "i32", "f32", "f64"]
    );
    assert!(
        matches!(file_schema.field(1).data_type(), DataType::List(f) if f.data_type() == &DataType::Float32)
    );
    assert!(
        matches!(file_schema.field(2).data_type(), DataType::List(f) if f.data_type() == &DataType::UInt8)
    );
    assert_eq!(file_schema.field(4).data_type(), &DataType::Utf8);
    assert_eq!(
        file_schema
            .metadata()
            .get(vector::META_PRIMARY_KEY)
            .map(String::as_str),
        Some("id")
    );
    assert_eq!(
        file_schema
            .field(4)
            .metadata()
            .get(vector::META_TYPE)
            .map(String::as_str),
        Some("json")
    );
    let all = arrow::compute::concat_batches(&file_schema, &batches).unwrap();
    let want = arrow::compute::concat_batches(&schema(), &data).unwrap();
    assert_parquet_matches(&all, &want);

    // No statistics or dictionary on the float vector column.
    let reader =
        parquet::file::serialized_reader::SerializedFileReader::new(File::open(&path).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let meta = reader.metadata();
    for rg in meta.row_groups() {
        let vec_chunk = rg.column(1);
        assert!(vec_chunk.statistics().is_none());
        assert!(vec_chunk.dictionary_page_offset().is_none());
        assert!(rg.column(2).statistics().is_none());
        assert!(rg.column(0).statistics().is_some());
    }
}

#[test]
fn parquet_compressions_round_trip() {
    for compression in [
        ParquetCompression::Snappy,
        ParquetCompression::Zstd,
        ParquetCompression::Lz4,
    ] {
        let mut out = Vec::new();
        let mut w = ParquetWriter::try_new(
            &mut out,
            &schema(),
            &ParquetOptions {
                row_group_bytes: 32 << 20,
                compression,
            },
        )
        .unwrap();
        let data = batch(0, 100, 9);
        w.write(&data).unwrap();
        let estimate = w.bytes();
        w.finish().unwrap();
        assert!(estimate >= out.len() as u64);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        assert_parquet_matches(&batches[0], &data);
    }
}

#[test]
fn parquet_keeps_nulls_and_arrays() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::LargeUtf8, true),
        Field::new_list("tags", Field::new_list_field(DataType::Int32, true), true),
    ]));
    let tags = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
    ]);
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(arrow::array::LargeStringArray::from(vec![
                Some("a"),
                None,
                Some("ç"),
            ])),
            Arc::new(tags.clone()),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = ParquetWriter::try_new(&mut out, &schema, &ParquetOptions::default()).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    let read: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out))
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(read[0].column(1).data_type(), &DataType::Utf8);
    assert_eq!(
        read[0]
            .column(1)
            .as_string::<i32>()
            .iter()
            .collect::<Vec<_>>(),
        vec![Some("a"), None, Some("ç")]
    );
    assert_eq!(read[0].column(2).as_list::<i32>(), &tags);
}

#[test]
fn parquet_rejects_null_vectors_and_bad_json() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::json_field("meta", true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("{}"), Some("{not json")])),
        ],
    )
    .unwrap();
    let mut w = ParquetWriter::try_new(Vec::new(), &schema, &ParquetOptions::default()).unwrap();
    let err = w.write(&b).unwrap_err().to_string();
    assert!(err.contains("`meta`") && err.contains("row 1"), "{err}");
}

#[test]
fn parquet_write_within_respects_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let data = batch(0, 2000, 5);
    let limit = 48 << 10;
    let mut offset = 0;
    let mut files = Vec::new();
    while offset < data.num_rows() {
        let path = dir.path().join(format!("p{}.parquet", files.len()));
        let mut w = StagingWriter::create(
            StagingFormat::Parquet,
            &path,
            &schema(),
            &StagingOptions::default(),
        )
        .unwrap();
        // Feed in small slices, as a sink does.
        loop {
            if offset >= data.num_rows() {
                break;
            }
            let len = 97.min(data.num_rows() - offset);
            let n = w.write_within(&data.slice(offset, len), limit).unwrap();
            offset += n;
            if n < len {
                break;
            }
        }
        let done = w.finish().unwrap();
        assert!(
            done.bytes <= limit,
            "file {} has {} bytes",
            files.len(),
            done.bytes
        );
        files.push(path);
    }
    assert!(files.len() >= 3, "{} files", files.len());
    let mut all = Vec::new();
    for f in &files {
        let (s, b, _) = read_parquet(f);
        all.push(arrow::compute::concat_batches(&s, &b).unwrap());
        let size = std::fs::metadata(f).unwrap().len();
        assert!(
            size > limit / 2,
            "file is only {size} bytes: the estimate is too loose"
        );
    }
    let s = all[0].schema();
    assert_parquet_matches(&arrow::compute::concat_batches(&s, &all).unwrap(), &data);
}

// ---------------------------------------------------------------- NumPy

fn npy(path: &Path) -> npyz::NpyFile<File> {
    npyz::NpyFile::new(File::open(path).unwrap()).unwrap()
}

fn descr(f: &npyz::NpyFile<File>) -> String {
    match f.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn numpy_round_trip_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("part-00000");
    let data = [batch(0, 123, 3), batch(123, 77, 4)];
    let mut w = NumpyWriter::create(&dir, &schema()).unwrap();
    for b in &data {
        w.write(b).unwrap();
    }
    let estimate = w.bytes();
    let done = w.finish().unwrap();
    assert_eq!(done.rows, 200);
    assert_eq!(estimate, done.bytes);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bin.npy", "f32.npy", "f64.npy", "flag.npy", "i16.npy", "i32.npy", "i8.npy", "id.npy",
            "meta.npy", "name.npy", "vec.npy"
        ]
    );
    let want = arrow::compute::concat_batches(&schema(), &data).unwrap();

    let f = npy(&dir.join("vec.npy"));
    assert_eq!(
        (descr(&f).as_str(), f.shape()),
        ("<f4", &[200, DIM as u64][..])
    );
    let got: Vec<u32> = f
        .into_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, vector_bits(&want));

    let f = npy(&dir.join("bin.npy"));
    assert_eq!(
        (descr(&f).as_str(), f.shape()),
        ("|u1", &[200, BIN_BYTES as u64][..])
    );
    assert_eq!(
        f.into_vec::<u8>().unwrap(),
        want.column(2).as_fixed_size_binary().value_data()
    );

    let f = npy(&dir.join("id.npy"));
    assert_eq!((descr(&f).as_str(), f.shape()), ("<i8", &[200][..]));
    assert_eq!(
        f.into_vec::<i64>().unwrap(),
        want.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    );

    let f = npy(&dir.join("name.npy"));
    let longest = (0..200).map(|i| text(i).chars().count()).max().unwrap();
    assert_eq!(descr(&f), format!("<U{longest}"));
    assert_eq!(
        f.into_vec::<String>().unwrap(),
        (0..200).map(text).collect::<Vec<_>>()
    );

    let f = npy(&dir.join("meta.npy"));
    assert_eq!(
        f.into_vec::<String>().unwrap(),
        (0..200).map(json_text).collect::<Vec<_>>()
    );

    let f = npy(&dir.join("flag.npy"));
    assert_eq!(descr(&f), "|b1");
    assert_eq!(
        f.into_vec::<bool>().unwrap(),
        (0..200).map(|i| i % 3 == 0).collect::<Vec<_>>()
    );
    let f = npy(&dir.join("i8.npy"));
    assert_eq!(descr(&f), "|i1");
    assert_eq!(
        f.into_vec::<i8>().unwrap(),
        want.column(6)
            .as_primitive::<arrow::datatypes::Int8Type>()
            .values()
            .to_vec()
    );
    let f = npy(&dir.join("i16.npy"));
    assert_eq!(descr(&f), "<i2");
    assert_eq!(
        f.into_vec::<i16>().unwrap(),
        want.column(7)
            .as_primitive::<arrow::datatypes::Int16Type>()
            .values()
            .to_vec()
    );
    let f = npy(&dir.join("i32.npy"));
    assert_eq!(descr(&f), "<i4");
    assert_eq!(
        f.into_vec::<i32>().unwrap(),
        want.column(8).as_primitive::<Int32Type>().values().to_vec()
    );
    let f = npy(&dir.join("f32.npy"));
    assert_eq!(descr(&f), "<f4");
    let got: Vec<u32> = f
        .into_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, f32_bits(want.column(9).as_ref()));
    let f = npy(&dir.join("f64.npy"));
    assert_eq!(descr(&f), "<f8");
    let got: Vec<u64> = f
        .into_vec::<f64>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let exp: Vec<u64> = want
        .column(10)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, exp);

    // Headers are NPY 1.0 and 64-byte aligned.
    for name in &names {
        let raw = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&raw[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([raw[8], raw[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "{name}");
        assert_eq!(raw[10 + header_len - 1], b'\n');
    }
}

#[test]
fn numpy_rejects_nulls_naming_field_and_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let mut w = NumpyWriter::create(&tmp.path().join("u"), &schema).unwrap();
    let ok = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b")])),
        ],
    )
    .unwrap();
    w.write(&ok).unwrap();
    let bad = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![3, 4])),
            Arc::new(StringArray::from(vec![Some("c"), None])),
        ],
    )
    .unwrap();
    let err = w.write(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, vmig_core::Error::Data { .. }), "{msg}");
    assert!(msg.contains("`note`") && msg.contains("row 3"), "{msg}");
    w.discard().unwrap();
    assert!(!tmp.path().join("u").exists());
}

#[test]
fn numpy_write_within_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = batch(0, 500, 8);
    let limit = 40_000;
    let mut offset = 0;
    let mut units = 0;
    let mut ids = Vec::new();
    while offset < data.num_rows() {
        let dir = tmp.path().join(format!("u{units}"));
        let mut w = NumpyWriter::create(&dir, &schema()).unwrap();
        let n = w
            .write_within(&data.slice(offset, data.num_rows() - offset), limit)
            .unwrap();
        assert!(n > 0);
        offset += n;
        let est = w.bytes();
        let done = w.finish().unwrap();
        assert_eq!(est, done.bytes);
        assert!(done.bytes <= limit);
        ids.extend(npy(&dir.join("id.npy")).into_vec::<i64>().unwrap());
        units += 1;
    }
    assert!(units >= 2);
    assert_eq!(
        ids,
        data.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    );
}

#[test]
fn numpy_rejects_arrays_and_bad_names() {
    let arr = Arc::new(Schema::new(vec![Field::new_list(
        "tags",
        Field::new_list_field(DataType::Int32, true),
        false,
    )]));
    let msg = check_schema(StagingFormat::Numpy, &arr)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`tags`") && msg.contains("numpy"), "{msg}");
    assert!(check_schema(StagingFormat::Parquet, &arr).is_ok());
    let bad = Arc::new(Schema::new(vec![Field::new("a/b", DataType::Int64, false)]));
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(NumpyWriter::create(&tmp.path().join("x"), &bad).unwrap_err().to_string(), "unsupported input at field `a/b`: this field name cannot be a NumPy file name (`<field>.npy`); rename the field");
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_round_trip_is_exact() {
    let data = [batch(0, 150, 6), batch(150, 50, 7)];
    let mut out = Vec::new();
    let mut w = JsonWriter::try_new(&mut out, &schema()).unwrap();
    for b in &data {
        w.write(b).unwrap();
    }
    let estimate = w.bytes();
    w.finish().unwrap();
    assert_eq!(estimate, out.len() as u64);
    let want = arrow::compute::concat_batches(&schema(), &data).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 200);
    let wvec = vector_bits(&want);
    let wbin = want.column(2).as_fixed_size_binary();
    let wf32 = f32_bits(want.column(9).as_ref());
    let wf64 = want
        .column(10)
        .as_primitive::<arrow::datatypes::Float64Type>();
    let wid = want.column(0).as_primitive::<arrow::datatypes::Int64Type>();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["id"].as_i64(), Some(wid.value(i)), "row {i}");
        assert!(row["id"].is_i64());
        let vec: Vec<u32> = row["vec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x.as_f64().unwrap() as f32).to_bits())
            .collect();
        assert_eq!(vec, wvec[i * DIM..(i + 1) * DIM], "row {i}");
        let bin: Vec<u8> = row["bin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(bin, wbin.value(i));
        assert_eq!(row["name"].as_str(), Some(text(i).as_str()));
        let meta_text = json_text(i);
        let parsed: serde_json::Value = serde_json::from_str(&meta_text).unwrap();
        if parsed.is_object() {
            assert_eq!(row["meta"], parsed);
        } else {
            assert_eq!(row["meta"].as_str(), Some(meta_text.as_str()));
        }
        assert_eq!(row["flag"].as_bool(), Some(i % 3 == 0));
        assert_eq!((row["f32"].as_f64().unwrap() as f32).to_bits(), wf32[i]);
        assert_eq!(
            row["f64"].as_f64().unwrap().to_bits(),
            wf64.value(i).to_bits()
        );
        assert!(row["i32"].is_i64());
    }
    // The big integer inside the JSON field is kept verbatim.
    let text_out = String::from_utf8(out).unwrap();
    assert!(text_out.contains("12345678901234567890"));
    assert!(text_out.starts_with("{\"rows\":[\n{\"id\":"));
    // Floats are the shortest f32 text, never f64 widening noise.
    assert!(
        text_out.contains("\"vec\":[-0.0,0.0,1e-45,"),
        "{}",
        &text_out[..200]
    );
}

#[test]
fn json_nulls_nan_and_invalid_json() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float32, true),
        vector::json_field("meta", true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float32Array::from(vec![None, Some(1.5)])),
            Arc::new(StringArray::from(vec![None, Some("{\"a\":1}")])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = JsonWriter::try_new(&mut out, &schema).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"rows": [{"x": null, "meta": null}, {"x": 1.5, "meta": {"a": 1}}]})
    );

    let nan = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float32Array::from(vec![Some(f32::NAN)])),
            Arc::new(StringArray::from(vec![Some("{}")])),
        ],
    )
    .unwrap();
    let mut w = JsonWriter::try_new(Vec::new(), &schema).unwrap();
    let msg = w.write(&nan).unwrap_err().to_string();
    assert!(msg.contains("`x`") && msg.contains("NaN"), "{msg}");

    let bad = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float32Array::from(vec![Some(1.0), Some(2.0)])),
            Arc::new(StringArray::from(vec![Some("{}"), Some("{\"a\":")])),
        ],
    )
    .unwrap();
    let mut w = JsonWriter::try_new(Vec::new(), &schema).unwrap();
    let err = w.write(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, vmig_core::Error::Data { .. }));
    assert!(msg.contains("`meta`") && msg.contains("row 1"), "{msg}");
}

#[test]
fn json_write_within_is_exact() {
    let data = batch(0, 300, 11);
    let limit = 30_000;
    let mut offset = 0;
    let mut ids = Vec::new();
    while offset < data.num_rows() {
        let mut out = Vec::new();
        let mut w = JsonWriter::try_new(&mut out, &schema()).unwrap();
        let n = w
            .write_within(&data.slice(offset, data.num_rows() - offset), limit)
            .unwrap();
        assert!(n > 0);
        offset += n;
        let est = w.bytes();
        w.finish().unwrap();
        assert_eq!(est, out.len() as u64);
        assert!(out.len() as u64 <= limit);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        ids.extend(
            v["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(
        ids,
        data.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    );
    // A row larger than the limit fits nowhere.
    let mut w = JsonWriter::try_new(Vec::new(), &schema()).unwrap();
    assert_eq!(w.write_within(&data, 100).unwrap(), 0);
}

#[test]
fn unsupported_types_are_named() {
    let s = Schema::new(vec![Field::new("when", DataType::Date32, false)]);
    for format in [
        StagingFormat::Parquet,
        StagingFormat::Numpy,
        StagingFormat::Json,
    ] {
        let msg = check_schema(format, &s).unwrap_err().to_string();
        assert!(
            msg.contains("`when`") && msg.contains(format.as_str()),
            "{msg}"
        );
    }
}

fn wide_batch(rows: usize, dim: usize, bin_bytes: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng(seed);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("vec", dim),
        vector::binary_vector_field("bin", bin_bytes * 8).unwrap(),
        Field::new("s", DataType::Utf8, true),
    ]));
    let vals: Vec<f32> = (0..rows * dim).map(|_| rng.f32()).collect();
    let bins: Vec<u8> = (0..rows * bin_bytes).map(|_| rng.next() as u8).collect();
    let strings: Vec<Option<String>> = (0..rows)
        .map(|i| {
            let n = (rng.next() % 300) as usize;
            (i % 7 != 0).then(|| {
                (0..n)
                    .map(|_| char::from(b'a' + (rng.next() % 26) as u8))
                    .collect()
            })
        })
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i * 31),
            )),
            Arc::new(vector::float_vector_array(Float32Array::from(vals), dim).unwrap()),
            Arc::new(vector::binary_vector_array(Buffer::from_vec(bins), bin_bytes).unwrap()),
            Arc::new(StringArray::from(strings)),
        ],
    )
    .unwrap()
}

#[test]
fn parquet_estimate_is_an_upper_bound() {
    let cases: Vec<(RecordBatch, u64)> = vec![
        (batch(0, 1, 5), 32 << 20),
        (batch(0, 100, 5), 32 << 20),
        (batch(0, 30_000, 5), 32 << 20),
        (batch(0, 30_000, 5), 256 << 10),
        (wide_batch(3000, 768, 128, 3), 32 << 20),
        (wide_batch(3000, 768, 128, 3), 1 << 20),
        (wide_batch(50_000, 1, 1, 4), 4 << 20),
    ];
    for (data, rg) in cases {
        for compression in [
            ParquetCompression::None,
            ParquetCompression::Zstd,
            ParquetCompression::Snappy,
        ] {
            let mut out = Vec::new();
            let options = ParquetOptions {
                row_group_bytes: rg,
                compression,
            };
            let mut w = ParquetWriter::try_new(&mut out, &data.schema(), &options).unwrap();
            for start in (0..data.num_rows()).step_by(1000) {
                w.write(&data.slice(start, 1000.min(data.num_rows() - start)))
                    .unwrap();
            }
            let est = w.bytes();
            w.finish().unwrap();
            let actual = out.len() as u64;
            eprintln!(
                "rows {} cols {} rg {rg} {compression:?}: est {est} actual {actual} ({:.2})",
                data.num_rows(),
                data.num_columns(),
                est as f64 / actual as f64
            );
            assert!(est >= actual, "estimate {est} < actual {actual}");
        }
    }
}

#[test]
fn batches_of_another_schema_are_refused_not_panicking() {
    let wrong = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    let right = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let b = RecordBatch::try_new(wrong, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for format in [
        StagingFormat::Parquet,
        StagingFormat::Numpy,
        StagingFormat::Json,
    ] {
        let path = tmp.path().join(format.as_str());
        let mut w =
            StagingWriter::create(format, &path, &right, &StagingOptions::default()).unwrap();
        let err = w.write(&b).unwrap_err();
        assert!(
            matches!(err, vmig_core::Error::Schema(_)),
            "{format}: {err}"
        );
        w.discard().unwrap();
        assert!(!path.exists());
    }
}

/// Reads a whole Parquet file into one batch.
fn read_parquet_bytes(data: Vec<u8>) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data)).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// The float vector fast path of `ParquetWriter` writes the same rows as parquet's own Arrow
/// writer (what `ParquetWriter` used before it), read back by parquet's reader: every id, every
/// float bit pattern (NaN payloads, -0.0, subnormals included), every list boundary, at
/// dimensions below, at and above one column-writer call, from sliced batches, across many row
/// groups and with compression.
#[test]
fn parquet_float_vectors_match_the_arrow_writer() {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;

    for (dim, rows, rg_bytes, compression) in [
        (1, 5_000, 32 << 20, ParquetCompression::None),
        (3, 4_001, 16 << 10, ParquetCompression::None),
        (128, 3_000, 64 << 10, ParquetCompression::None),
        (128, 3_000, 32 << 20, ParquetCompression::Zstd),
        (1536, 300, 1 << 20, ParquetCompression::Snappy),
        (20_000, 40, 256 << 10, ParquetCompression::None),
    ] {
        let mut rng = Rng(dim as u64 * 7 + rows as u64);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("vec", dim),
            Field::new("name", DataType::Utf8, true),
        ]));
        // Any bit pattern, NaNs and infinities included: the writer must not touch them.
        let vals: Vec<f32> = (0..rows * dim)
            .map(|_| f32::from_bits(rng.next() as u32))
            .collect();
        let names: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 5 != 0).then(|| format!("n{}", rng.next() % 1000)))
            .collect();
        let data = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    (0..rows as i64).map(|i| i * 3 - 7),
                )),
                Arc::new(vector::float_vector_array(Float32Array::from(vals), dim).unwrap()),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        // Uneven, sliced batches (non-zero offsets into the vector values).
        let mut cuts = vec![0];
        while *cuts.last().unwrap() < rows {
            let step = 1 + (rng.next() % 997) as usize;
            cuts.push((cuts.last().unwrap() + step).min(rows));
        }
        let pieces: Vec<RecordBatch> = cuts
            .windows(2)
            .map(|w| data.slice(w[0], w[1] - w[0]))
            .collect();

        let options = ParquetOptions {
            row_group_bytes: rg_bytes,
            compression,
        };
        let mut new_out = Vec::new();
        let mut w = ParquetWriter::try_new(&mut new_out, &schema, &options).unwrap();
        let file_schema = w.file_schema().clone();
        for p in &pieces {
            w.write(p).unwrap();
        }
        w.finish().unwrap();

        // Before: every column through parquet's ArrowWriter, vectors cast to List<Float32>.
        let codec = match compression {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Zstd => Compression::ZSTD(Default::default()),
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
        };
        let vec_path = ColumnPath::from(vec![
            "vec".to_string(),
            "list".to_string(),
            "item".to_string(),
        ]);
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_column_dictionary_enabled(vec_path.clone(), false)
            .set_column_statistics_enabled(vec_path, EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from("id"), false)
            .build();
        let mut old_out = Vec::new();
        let mut old = ArrowWriter::try_new(&mut old_out, file_schema.clone(), Some(props)).unwrap();
        for p in &pieces {
            let columns = p
                .columns()
                .iter()
                .zip(file_schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
                .collect();
            old.write(&RecordBatch::try_new(file_schema.clone(), columns).unwrap())
                .unwrap();
        }
        old.close().unwrap();

        let got = read_parquet_bytes(new_out);
        let want = read_parquet_bytes(old_out);
        let case = format!("dim {dim}, rows {rows}, row groups of {rg_bytes} B, {compression:?}");
        assert_eq!(got.schema(), want.schema(), "{case}");
        assert_eq!(got.num_rows(), rows, "{case}");
        assert_eq!(got.num_rows(), want.num_rows(), "{case}");
        assert_eq!(got.column(0).as_ref(), want.column(0).as_ref(), "{case}");
        assert_eq!(got.column(2).as_ref(), want.column(2).as_ref(), "{case}");
        let (g, o) = (
            got.column(1).as_list::<i32>(),
            want.column(1).as_list::<i32>(),
        );
        assert_eq!(g.value_offsets(), o.value_offsets(), "{case}");
        assert_eq!(g.nulls(), o.nulls(), "{case}");
        assert_eq!(g.values().null_count(), 0, "{case}");
        assert_eq!(
            f32_bits(g.values().as_ref()),
            f32_bits(o.values().as_ref()),
            "{case}"
        );
        // And both equal the input, bit for bit.
        assert_eq!(f32_bits(g.values().as_ref()), vector_bits(&data), "{case}");
    }
}
