//! What Milvus 2.3.5 (the test server, `VMIG_MILVUS_URI` etc.) does with a nullable field, a
//! Milvus 2.5 feature: pins the behaviour the docs describe. The null round trip itself is
//! unit-tested in `convert.rs` with constructed `FieldData` (no 2.5 server here).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{FixedSizeListArray, Float32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use vmig_core::vector;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::{collection_schema, ConnectOptions, MilvusClient, SchemaOptions};

fn options() -> Option<ConnectOptions> {
    let m = vmig_testing::service::milvus()?;
    let mut o = ConnectOptions::new(m.uri);
    (o.user, o.password) = (Some(m.user), Some(m.password));
    Some(o)
}

#[tokio::test]
async fn milvus_2_3_and_a_nullable_field() -> vmig_core::Result<()> {
    let Some(opts) = options() else { return Ok(()) };
    let client = MilvusClient::connect(&opts).await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "nullable_probe_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    let tagged = HashMap::from([(vmig_milvus::meta::NULLABLE.to_string(), "true".to_string())]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("v", 2),
        Field::new("n", DataType::Int64, true).with_metadata(tagged),
    ]));
    let cs = collection_schema(
        &schema,
        &SchemaOptions {
            collection: name.clone(),
            ..Default::default()
        },
    )?;
    assert!(cs.fields[2].nullable, "the tag asks for a nullable field");
    // Milvus 2.3 does not know `nullable`: it creates the field, not nullable, without a word.
    client
        .create_collection(&cs, 1, ConsistencyLevel::Strong)
        .await?;
    let result = async {
        let info = client.describe_collection(&name).await?;
        assert!(info.schema.fields.iter().all(|f| !f.nullable), "{info:?}");
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(FixedSizeListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    2,
                    Arc::new(Float32Array::from(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
                    None,
                )?),
                Arc::new(Int64Array::from(vec![Some(7), None, Some(9)])),
            ],
        )?;
        // It ignores `valid_data` too, so a compacted payload with a null is refused by the
        // row count check (never stored wrong) …
        let msg = client
            .insert(&name, None, &batch, false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("num_rows") && msg.contains("(n)"), "{msg}");
        // … and rows without nulls go in.
        assert_eq!(
            client
                .insert(&name, None, &batch.slice(2, 1), false)
                .await?,
            1
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    client.drop_collection(&name).await?;
    result?;
    Ok(())
}
