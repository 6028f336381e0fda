//! Plan and sink agree on every Arrow type: what `vmig plan` says a field becomes
//! (`vmig_core::vector::milvus_type`, i.e. the `vmig_core::types` table) is what the `milvus2`
//! sink builds (collection schema), sends (`FieldData` conversion) and stages (bulk-import
//! formats' accept check), and what the `milvus2` source reads back. No server needed.

#![allow(clippy::unwrap_used)] // test helpers may panic on a broken sample

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    GenericListArray, Int64Array, MapArray, OffsetSizeTrait, StringArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, Schema, TimeUnit};
use vmig_core::types::{milvus_field, MilvusType};
use vmig_core::vector;
use vmig_formats::staging::{check_schema, StagingFormat};
use vmig_milvus::convert::column_to_field_data;
use vmig_milvus::meta::field_dim;
use vmig_milvus::schema::{arrow_field, collection_schema, to_proto, SchemaOptions};

const ROWS: usize = 2;

/// Every scalar-like Arrow type (the element kinds lists are built from).
fn scalar_types() -> Vec<DataType> {
    let mut v = vec![
        DataType::Null,
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float16,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Binary,
        DataType::LargeBinary,
        DataType::BinaryView,
        DataType::FixedSizeBinary(4),
        DataType::Date32,
        DataType::Date64,
        DataType::Time32(TimeUnit::Second),
        DataType::Time32(TimeUnit::Millisecond),
        DataType::Time64(TimeUnit::Microsecond),
        DataType::Time64(TimeUnit::Nanosecond),
        DataType::Interval(IntervalUnit::YearMonth),
        DataType::Interval(IntervalUnit::DayTime),
        DataType::Interval(IntervalUnit::MonthDayNano),
        DataType::Decimal32(8, 2),
        DataType::Decimal64(12, 2),
        DataType::Decimal128(20, 2),
        DataType::Decimal256(40, 2),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Int64)),
    ];
    for unit in [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ] {
        v.push(DataType::Timestamp(unit, None));
        v.push(DataType::Timestamp(unit, Some("UTC".into())));
        v.push(DataType::Duration(unit));
    }
    v
}

/// Every field the walk checks: each scalar type, `List`/`LargeList`/`FixedSizeList` of each,
/// nested lists, structs, maps, and the vmig vector and JSON shapes.
fn fields() -> Vec<Field> {
    let item = |t: &DataType| Arc::new(Field::new_list_field(t.clone(), true));
    let mut types = Vec::new();
    for t in scalar_types() {
        types.push(DataType::List(item(&t)));
        types.push(DataType::LargeList(item(&t)));
        types.push(DataType::FixedSizeList(item(&t), 3));
        types.push(t);
    }
    types.push(DataType::List(item(&DataType::List(item(
        &DataType::Int64,
    )))));
    types.push(DataType::Struct(Fields::from(vec![Field::new(
        "a",
        DataType::Int32,
        false,
    )])));
    types.push(DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Int32, true),
            ])),
            false,
        )),
        false,
    ));
    // The sparse vector's shape without its tag is just a map.
    types.push(vector::sparse_float_vector_type());
    let mut fields: Vec<Field> = types
        .into_iter()
        .map(|t| Field::new("f", t, false))
        .collect();
    fields.extend([
        vector::float_vector_field("f", 3),
        vector::float16_vector_field("f", 3),
        vector::binary_vector_field("f", 32).unwrap(),
        vector::bfloat16_vector_field("f", 2),
        vector::sparse_float_vector_field("f"),
    ]);
    for t in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
        let json = vector::json_field("f", false);
        fields.push(Field::new("f", t, false).with_metadata(json.metadata().clone()));
    }
    fields
}

/// `n` non-null values of `dt` (nulls only for `Null`).
fn sample(dt: &DataType, n: usize) -> ArrayRef {
    match dt {
        DataType::Null => new_null_array(dt, n),
        DataType::Boolean => Arc::new(BooleanArray::from(vec![true; n])),
        DataType::FixedSizeBinary(w) => Arc::new(
            FixedSizeBinaryArray::try_from_iter((0..n).map(|i| vec![i as u8; *w as usize]))
                .unwrap(),
        ),
        DataType::List(item) => list::<i32>(item, n),
        DataType::LargeList(item) => list::<i64>(item, n),
        DataType::FixedSizeList(item, k) => Arc::new(
            FixedSizeListArray::try_new(
                item.clone(),
                *k,
                sample(item.data_type(), n * *k as usize),
                None,
            )
            .unwrap(),
        ),
        DataType::Struct(parts) => Arc::new(
            StructArray::try_new(
                parts.clone(),
                parts.iter().map(|p| sample(p.data_type(), n)).collect(),
                None,
            )
            .unwrap(),
        ),
        DataType::Map(entries, sorted) => {
            let DataType::Struct(parts) = entries.data_type() else {
                panic!("map entries are a struct")
            };
            // One entry per row; keys ascending within a row (a sparse vector needs that).
            let kv = sample(entries.data_type(), n);
            let kv = kv.as_any().downcast_ref::<StructArray>().unwrap().clone();
            assert_eq!(kv.fields(), parts);
            Arc::new(
                MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::from_lengths(vec![1; n]),
                    kv,
                    None,
                    *sorted,
                )
                .unwrap(),
            )
        }
        DataType::Interval(_) | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_) => {
            // Casts from text; "1" is not an interval or time, so give each its own text.
            let text = match dt {
                DataType::Interval(_) => "1 day",
                DataType::Date64 => "2024-01-02",
                _ => "01:02:03",
            };
            arrow::compute::cast(
                &(Arc::new(StringArray::from(vec![text; n])) as ArrayRef),
                dt,
            )
            .unwrap()
        }
        // JSON fields need valid JSON text: "1", "2", … are.
        _ => {
            let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(1..=n as i64));
            let text: ArrayRef = Arc::new(StringArray::from_iter_values(
                (1..=n).map(|i| i.to_string()),
            ));
            arrow::compute::cast(&ints, dt)
                .or_else(|_| arrow::compute::cast(&text, dt))
                .unwrap_or_else(|e| panic!("no sample for {dt}: {e}"))
        }
    }
}

fn list<O: OffsetSizeTrait>(item: &Arc<Field>, n: usize) -> ArrayRef {
    Arc::new(
        GenericListArray::<O>::try_new(
            item.clone(),
            OffsetBuffer::from_lengths(vec![2; n]),
            sample(item.data_type(), 2 * n),
            None,
        )
        .unwrap(),
    )
}

/// The formats that cannot hold an accepted type, by design (documented in
/// `vmig_formats::staging`): half-precision vectors in every format, Arrays and sparse vectors
/// in NumPy (Milvus imports them only from Parquet and JSON).
fn staging_refuses(t: MilvusType, format: StagingFormat) -> bool {
    matches!(t, MilvusType::Float16Vector | MilvusType::BFloat16Vector)
        || (matches!(t, MilvusType::Array | MilvusType::SparseFloatVector)
            && format == StagingFormat::Numpy)
}

fn names_field_and_type(msg: &str, f: &Field) -> bool {
    msg.contains("`f`") && msg.contains(&f.data_type().to_string())
}

#[test]
fn plan_and_sink_agree_on_every_arrow_type() {
    let formats = [
        StagingFormat::Parquet,
        StagingFormat::Numpy,
        StagingFormat::Json,
    ];
    let (mut accepted, mut refused) = (0, 0);
    for f in fields() {
        let ty = f.data_type().to_string();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("v", 4),
            f.clone(),
        ]);
        let array = sample(f.data_type(), ROWS);
        let planned = milvus_field(&f);
        let plan_text = vector::milvus_type(&f);
        let built = collection_schema(&schema, &SchemaOptions::default());
        let sent = column_to_field_data(&f, &array);
        let only_f = Schema::new(vec![f.clone()]);
        match planned {
            Ok(t) => {
                accepted += 1;
                assert_eq!(plan_text.as_deref(), Some(t.to_string().as_str()), "{ty}");
                let cs = built.unwrap_or_else(|e| panic!("plan accepts {ty} as {t}, sink: {e}"));
                let fs = &cs.fields[2];
                assert_eq!(fs.data_type, to_proto(t.kind) as i32, "{ty}");
                assert_eq!(
                    fs.element_type,
                    t.element.map_or(0, |e| to_proto(e) as i32),
                    "{ty}"
                );
                assert_eq!(field_dim(fs), t.dim as i64, "{ty}");
                let fd = sent.unwrap_or_else(|e| panic!("plan accepts {ty} as {t}, insert: {e}"));
                assert_eq!(fd.r#type, to_proto(t.kind) as i32, "{ty}");
                // The milvus2 source reads the built field back as the same Milvus type.
                let back = arrow_field(fs).unwrap();
                assert_eq!(
                    milvus_field(&back).unwrap(),
                    t,
                    "{ty} read back as {back:?}"
                );
                for format in formats {
                    let staged = check_schema(format, &only_f);
                    if staging_refuses(t.kind, format) {
                        let msg = staged.unwrap_err().to_string();
                        assert!(
                            names_field_and_type(&msg, &f) && msg.contains(format.as_str()),
                            "{format}: {msg}"
                        );
                    } else {
                        staged
                            .unwrap_or_else(|e| panic!("plan accepts {ty} as {t}, {format}: {e}"));
                    }
                }
            }
            Err(e) => {
                refused += 1;
                assert_eq!(plan_text, None, "{ty}");
                let msg = e.to_string();
                assert!(names_field_and_type(&msg, &f), "plan: {msg}");
                let msg = built.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(
                    names_field_and_type(&msg, &f),
                    "sink schema for {ty}: {msg}"
                );
                let msg = sent.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(names_field_and_type(&msg, &f), "insert for {ty}: {msg}");
                for format in formats {
                    let msg = check_schema(format, &only_f)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    assert!(
                        names_field_and_type(&msg, &f) && msg.contains(format.as_str()),
                        "{format} for {ty}: {msg}"
                    );
                }
            }
        }
    }
    // The walk really covered both sides of the table.
    assert!(
        accepted >= 40 && refused >= 80,
        "{accepted} accepted, {refused} refused"
    );
}
