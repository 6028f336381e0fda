//! Arrow variants the type table accepts losslessly, against a real Milvus 2.3.5
//! (`VMIG_MILVUS_URI` etc.): `Utf8View` and `LargeUtf8` VarChar, `Utf8View` JSON and a
//! `FixedSizeList<Int32>` Array go in, and read back (as `Utf8`, JSON text and `List<Int32>`)
//! with the same values, row by row.

#![allow(clippy::unwrap_used)] // test helpers may panic on a broken reply

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, AsArray, FixedSizeListArray, Int32Array, Int64Array, LargeStringArray,
    StringViewArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use vmig_core::vector;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::proto::schema::DataType as MDataType;
use vmig_milvus::{collection_schema, ConnectOptions, MilvusClient, SchemaOptions};
use vmig_testing::service::unique;

fn options() -> Option<ConnectOptions> {
    let m = vmig_testing::service::milvus()?;
    let mut o = ConnectOptions::new(m.uri);
    (o.user, o.password) = (Some(m.user), Some(m.password));
    Some(o)
}

fn schema() -> Arc<Schema> {
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

fn batch(schema: &Arc<Schema>, n: usize) -> vmig_core::Result<RecordBatch> {
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

#[tokio::test]
async fn lossless_variants_round_trip() -> vmig_core::Result<()> {
    let Some(opts) = options() else { return Ok(()) };
    let client = MilvusClient::connect(&opts).await?;
    let name = unique("vmig_variants");
    let schema = schema();
    let cs = collection_schema(
        &schema,
        &SchemaOptions {
            collection: name.clone(),
            ..Default::default()
        },
    )?;
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
    client
        .create_collection(&cs, 1, ConsistencyLevel::Bounded)
        .await?;
    let result = async {
        let info = client.describe_collection(&name).await?;
        let n = 50;
        let data = batch(&schema, n)?;
        assert_eq!(client.insert(&name, None, &data, false).await?, n as u64);
        client.flush(&name, Duration::from_secs(60)).await?;
        client
            .create_index(&name, "vector", "FLAT", "L2", &serde_json::Value::Null)
            .await?;
        client.load(&name, Duration::from_secs(60)).await?;
        let pages = common::read_pages(&client, &name, 20, &info.arrow).await?;
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
