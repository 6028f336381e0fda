//! Milvus `Array` fields (and the other lossless Arrow variants of the type table) against a
//! real Milvus 2.3.5 (`scripts/milvus start`; `VMIG_MILVUS_URI` etc.): Arrow lists in, the same
//! lists back, bit for bit.

#![allow(clippy::unwrap_used)] // test helpers may panic on a broken reply

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int32Array, Int64Array, LargeStringArray, ListArray, StringArray, StringViewArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use vmig_core::vector;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::proto::schema::{CollectionSchema, DataType as MDataType};
use vmig_milvus::{collection_schema, ConnectOptions, MilvusClient, SchemaOptions};

fn options() -> Option<ConnectOptions> {
    let m = vmig_testing::service::milvus()?;
    let mut o = ConnectOptions::new(m.uri);
    (o.user, o.password) = (Some(m.user), Some(m.password));
    Some(o)
}

use vmig_testing::service::unique;

/// Creates a collection for `schema` named after `prefix`: its name and schema.
async fn create(
    client: &MilvusClient,
    prefix: &str,
    schema: &Schema,
) -> vmig_core::Result<(String, CollectionSchema)> {
    let name = unique(prefix);
    let opts = SchemaOptions {
        collection: name.clone(),
        ..Default::default()
    };
    let cs = collection_schema(schema, &opts)?;
    client
        .create_collection(&cs, 1, ConsistencyLevel::Bounded)
        .await?;
    Ok((name, cs))
}

fn list_field(name: &str, item: DataType) -> Field {
    Field::new_list(name, Field::new_list_field(item, true), false)
}

fn list(item: DataType, values: ArrayRef, lengths: &[usize]) -> vmig_core::Result<ArrayRef> {
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(item, true)),
        OffsetBuffer::from_lengths(lengths.iter().copied()),
        values,
        None,
    )?))
}

/// Row `i` of a column has `(i * step + shift) % 6` elements: 0 to 5, empty lists included.
fn lengths(n: usize, step: usize, shift: usize) -> Vec<usize> {
    (0..n).map(|i| (i * step + shift) % 6).collect()
}

fn schema() -> Arc<Schema> {
    let mut capped = HashMap::new();
    capped.insert("vmig.max_capacity".to_string(), "8".to_string());
    let mut short = HashMap::new();
    short.insert("vmig.max_length".to_string(), "64".to_string());
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("vector", 4),
        list_field("ints", DataType::Int64),
        list_field("doubles", DataType::Float64),
        list_field("words", DataType::Utf8).with_metadata(short),
        list_field("flags", DataType::Boolean).with_metadata(capped),
    ]))
}

fn batch(schema: &Arc<Schema>, n: usize) -> vmig_core::Result<RecordBatch> {
    let ids: Vec<i64> = (0..n as i64).map(|i| i * 5 - 40).collect();
    let floats: Vec<f32> = (0..n * 4).map(|i| i as f32 * 0.25 - 3.0).collect();

    let int_lens = lengths(n, 1, 0);
    let ints: Vec<i64> = (0..int_lens.iter().sum::<usize>() as i64)
        .map(|i| match i % 4 {
            0 => i64::MIN + i,
            1 => i64::MAX - i,
            2 => -i,
            _ => i * 1_000_003,
        })
        .collect();

    let dbl_lens = lengths(n, 5, 3);
    let specials = [
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        -1.0 / 3.0,
        std::f64::consts::PI,
    ];
    let doubles: Vec<f64> = (0..dbl_lens.iter().sum::<usize>())
        .map(|i| specials[i % specials.len()] * if i % 7 == 0 { -1.0 } else { 1.0 })
        .collect();

    let word_lens = lengths(n, 2, 1);
    let pool = ["", "é", "日本語", "🦀 rust", "a\"b\\c", "naïve café", "x"];
    let words: Vec<String> = (0..word_lens.iter().sum::<usize>())
        .map(|i| format!("{}{}", pool[i % pool.len()], i / pool.len()))
        .collect();

    let flag_lens = lengths(n, 3, 2);
    let flags: Vec<bool> = (0..flag_lens.iter().sum::<usize>())
        .map(|i| i % 3 == 1)
        .collect();

    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                4,
                Arc::new(Float32Array::from(floats)),
                None,
            )?),
            list(DataType::Int64, Arc::new(Int64Array::from(ints)), &int_lens)?,
            list(
                DataType::Float64,
                Arc::new(Float64Array::from(doubles)),
                &dbl_lens,
            )?,
            list(
                DataType::Utf8,
                Arc::new(StringArray::from(words)),
                &word_lens,
            )?,
            list(
                DataType::Boolean,
                Arc::new(BooleanArray::from(flags)),
                &flag_lens,
            )?,
        ],
    )?)
}

/// Every value of `got` equals `want`'s, floats compared by their bits.
fn assert_same(want: &RecordBatch, got: &RecordBatch) {
    assert_eq!(got.num_rows(), want.num_rows());
    assert_eq!(got.column(0).as_ref(), want.column(0).as_ref());
    let (gv, wv) = (
        got.column(1).as_fixed_size_list(),
        want.column(1).as_fixed_size_list(),
    );
    let bits = |a: &FixedSizeListArray| -> Vec<u32> {
        a.values()
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|f| f.to_bits())
            .collect()
    };
    assert_eq!(bits(gv), bits(wv));
    for row in 0..want.num_rows() {
        let g = got.column(2).as_list::<i32>().value(row);
        let w = want.column(2).as_list::<i32>().value(row);
        assert_eq!(
            g.as_primitive::<Int64Type>().values(),
            w.as_primitive::<Int64Type>().values(),
            "ints row {row}"
        );

        let g = got.column(3).as_list::<i32>().value(row);
        let w = want.column(3).as_list::<i32>().value(row);
        let d = |a: &ArrayRef| -> Vec<u64> {
            a.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|f| f.to_bits())
                .collect()
        };
        assert_eq!(d(&g), d(&w), "doubles row {row}");

        let g = got.column(4).as_list::<i32>().value(row);
        let w = want.column(4).as_list::<i32>().value(row);
        let s = |a: &ArrayRef| -> Vec<String> {
            a.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("<null>").to_string())
                .collect()
        };
        assert_eq!(s(&g), s(&w), "words row {row}");

        let g = got.column(5).as_list::<i32>().value(row);
        let w = want.column(5).as_list::<i32>().value(row);
        assert_eq!(g.as_boolean(), w.as_boolean(), "flags row {row}");
        assert_eq!(g.null_count(), 0);
    }
}

#[tokio::test]
async fn array_fields_round_trip_exactly() -> vmig_core::Result<()> {
    let Some(opts) = options() else { return Ok(()) };
    let client = MilvusClient::connect(&opts).await?;
    let schema = schema();
    let (name, cs) = create(&client, "vmig_array", &schema).await?;
    let result = async {
        let info = client.describe_collection(&name).await?;
        vmig_milvus::schema::check_compatible(&info.schema, &cs)?;
        let flags = info
            .schema
            .fields
            .iter()
            .find(|f| f.name == "flags")
            .ok_or_else(|| vmig_core::Error::schema("no `flags` field"))?;
        assert_eq!(flags.data_type, MDataType::Array as i32);
        assert_eq!(flags.element_type, MDataType::Bool as i32);
        assert_eq!(vmig_milvus::meta::field_max_capacity(flags), Some(8));
        let words = info.arrow.field_with_name("words")?;
        assert_eq!(words.data_type(), schema.field(4).data_type());
        assert_eq!(
            words.metadata().get("vmig.max_length").map(String::as_str),
            Some("64")
        );

        let n = 240;
        let data = batch(&schema, n)?;
        // Two requests, the second from a slice (list offsets not starting at 0).
        assert_eq!(
            client
                .insert(&name, None, &data.slice(0, 101), false)
                .await?,
            101
        );
        assert_eq!(
            client
                .insert(&name, None, &data.slice(101, n - 101), false)
                .await?,
            (n - 101) as u64
        );

        // A null element is refused before anything is sent, naming field and row.
        let mut bad_cols = data.slice(0, 3).columns().to_vec();
        bad_cols[2] = list(
            DataType::Int64,
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])),
            &[1, 0, 3],
        )?;
        let bad = RecordBatch::try_new(schema.clone(), bad_cols)?;
        let msg = client
            .insert(&name, None, &bad, false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("field `ints` row 2") && msg.contains("null"),
            "{msg}"
        );

        client.flush(&name, Duration::from_secs(60)).await?;
        client
            .create_index(&name, "vector", "FLAT", "L2", &serde_json::Value::Null)
            .await?;
        client.load(&name, Duration::from_secs(60)).await?;
        assert_eq!(client.count(&name).await?, n as u64);

        let pages =
            vmig_milvus::scan::read_collection(&client, &name, Some(&info.arrow), &[], 70).await?;
        assert!(pages.len() >= 4, "{} pages", pages.len());
        let all = arrow::compute::concat_batches(&info.arrow, &pages)?;
        // Ids were inserted in ascending order, which is the paging order.
        assert_same(&data, &all);
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    client.drop_collection(&name).await?;
    result
}

fn variants_schema() -> Arc<Schema> {
    let json = vector::json_field("doc", false);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("vector", 2),
        Field::new("view", DataType::Utf8View, false),
        Field::new("large", DataType::LargeUtf8, false),
        Field::new("doc", DataType::Utf8View, false).with_metadata(json.metadata().clone()),
        Field::new_fixed_size_list(
            "triple",
            Field::new_list_field(DataType::Int32, true),
            3,
            false,
        ),
    ]))
}

fn variants_batch(schema: &Arc<Schema>, n: usize) -> vmig_core::Result<RecordBatch> {
    let text = |i: usize| {
        format!(
            "{}-{i}",
            ["", "é", "日本語", "🦀 a string longer than twelve bytes"][i % 4]
        )
    };
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(vector::float_vector_array(
                arrow::array::Float32Array::from_iter_values((0..2 * n).map(|i| i as f32)),
                2,
            )?),
            Arc::new(StringViewArray::from_iter_values((0..n).map(text))),
            Arc::new(LargeStringArray::from_iter_values(
                (0..n).map(|i| text(i + 1)),
            )),
            Arc::new(StringViewArray::from_iter_values(
                (0..n).map(|i| format!(r#"{{"k":{i},"s":"{}"}}"#, text(i))),
            )),
            Arc::new(FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Int32, true)),
                3,
                Arc::new(Int32Array::from_iter_values(
                    (0..3 * n as i32).map(|i| i * 7 - 100),
                )) as ArrayRef,
                None,
            )?),
        ],
    )?)
}

fn texts(a: &ArrayRef) -> Vec<String> {
    let utf8 = arrow::compute::cast(a, &DataType::Utf8).unwrap();
    utf8.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or("<null>").to_string())
        .collect()
}

/// Arrow variants the type table accepts losslessly — `Utf8View` and `LargeUtf8` VarChar,
/// `Utf8View` JSON, a `FixedSizeList<Int32>` Array — go in and read back (as `Utf8`, JSON text
/// and `List<Int32>`) with the same values, row by row.
#[tokio::test]
async fn lossless_variants_round_trip() -> vmig_core::Result<()> {
    let Some(opts) = options() else { return Ok(()) };
    let client = MilvusClient::connect(&opts).await?;
    let schema = variants_schema();
    let (name, cs) = create(&client, "vmig_variants", &schema).await?;
    let types: Vec<(i32, i32)> = cs
        .fields
        .iter()
        .map(|f| (f.data_type, f.element_type))
        .collect();
    assert_eq!(
        types[2..],
        [
            (MDataType::VarChar as i32, 0),
            (MDataType::VarChar as i32, 0),
            (MDataType::Json as i32, 0),
            (MDataType::Array as i32, MDataType::Int32 as i32),
        ]
    );
    let result = async {
        let info = client.describe_collection(&name).await?;
        let n = 50;
        let data = variants_batch(&schema, n)?;
        assert_eq!(client.insert(&name, None, &data, false).await?, n as u64);
        client.flush(&name, Duration::from_secs(60)).await?;
        client
            .create_index(&name, "vector", "FLAT", "L2", &serde_json::Value::Null)
            .await?;
        client.load(&name, Duration::from_secs(60)).await?;
        let pages =
            vmig_milvus::scan::read_collection(&client, &name, Some(&info.arrow), &[], 20).await?;
        let got = arrow::compute::concat_batches(&info.arrow, &pages)?;
        assert_eq!(got.num_rows(), n);
        assert_eq!(got.column(0).as_ref(), data.column(0).as_ref());
        for col in [2, 3] {
            assert_eq!(
                texts(got.column(col)),
                texts(data.column(col)),
                "column {col}"
            );
        }
        // JSON comes back as the same document (Milvus may re-serialise it).
        let docs = |a: &ArrayRef| -> Vec<serde_json::Value> {
            texts(a)
                .iter()
                .map(|t| serde_json::from_str(t).unwrap())
                .collect()
        };
        assert_eq!(docs(got.column(4)), docs(data.column(4)));
        let back = got.column(5).as_list::<i32>();
        let sent = data.column(5).as_fixed_size_list();
        for row in 0..n {
            assert_eq!(
                back.value(row).as_primitive::<Int32Type>().values(),
                sent.value(row).as_primitive::<Int32Type>().values(),
                "triple row {row}"
            );
        }
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    client.drop_collection(&name).await?;
    result
}
