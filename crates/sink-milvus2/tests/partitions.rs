//! Source-named partitions reach the matching Milvus partitions, against a real Milvus 2.3.5
//! (`scripts/milvus start`, then `eval "$(scripts/milvus env)"`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_core::vector::{float_vector_array, float_vector_field};
use vmig_core::Result;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2 as _;
use vmig_testing::mock::MockSource;

const DIM: usize = 4;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", DIM),
    ]))
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let n = ids.end - ids.start;
    let values: Vec<f32> = (0..n * DIM as i64).map(|v| v as f32 / 7.0).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids)),
        Arc::new(float_vector_array(Float32Array::from(values), DIM).unwrap()),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// Three source partitions: ids 0..30 → `p2023`, 100..150 → `p2024`, 1000..1020 → unnamed.
fn source() -> MockSource {
    let split = |start: i64, end: i64, step: i64| {
        (start..end)
            .step_by(step as usize)
            .map(|s| batch(s..(s + step).min(end)))
            .collect::<Vec<_>>()
    };
    MockSource {
        schema: schema(),
        partitions: vec![split(0, 30, 10), split(100, 150, 10), split(1000, 1020, 5)],
        fail_at: None,
        target_partitions: vec![Some("p2023".into()), Some("p2024".into()), None],
    }
}

use vmig_testing::service::unique;

async fn ids_in(client: &MilvusClient, collection: &str, partition: &str) -> Vec<i64> {
    let r = client
        .query_in(
            collection,
            &[partition.to_string()],
            "id >= 0",
            &["id".to_string()],
            None,
            ConsistencyLevel::Strong,
            Vec::new(),
        )
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let b = vmig_milvus::convert::field_data_to_batch(&schema, &r.fields_data).unwrap();
    let mut ids = b.column(0).as_primitive::<Int64Type>().values().to_vec();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn source_partitions_land_in_named_milvus_partitions() -> Result<()> {
    let Some(vmig_testing::service::MilvusServer {
        uri,
        user,
        password,
        ..
    }) = vmig_testing::service::milvus()
    else {
        return Ok(());
    };
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let stage = get("VMIG_MILVUS_STAGE", "/tmp/vmig-stage");
    let mut options = ConnectOptions::new(uri.clone());
    options.user = Some(user.clone());
    options.password = Some(password.clone());
    let client = MilvusClient::connect(&options).await?;

    // Insert mode without a configured partition (unnamed rows go to `_default`), and bulk mode
    // with one (unnamed rows go there; named ones still go to their own partition).
    let cases: [(&str, Value, &str); 2] = [
        ("insert", json!({ "batch_bytes": "200B" }), "_default"),
        (
            "bulk",
            json!({ "stage": stage, "partition": "fallback" }),
            "fallback",
        ),
    ];
    for (mode, extra, unnamed) in cases {
        let name = unique(&format!("vmig_parts_{mode}"));
        let mut sink = json!({
            "uri": uri, "user": user, "password": password, "collection": name, "mode": mode,
            "index": { "type": "FLAT", "metric": "L2" }, "load": true,
        });
        for (k, v) in extra.as_object().unwrap() {
            sink[k] = v.clone();
        }
        let check = async {
            let sink = parse_sink("milvus2", sink)?
                .build(&BuildContext::default())
                .await?;
            let report = Pipeline::new(Box::new(source()), sink)
                .run(Arc::new(NoProgress))
                .await?;
            assert_eq!(report.rows_written, 100, "{mode}");
            for p in ["p2023", "p2024", unnamed] {
                assert!(client.has_partition(&name, p).await?, "{mode}: {p}");
            }
            assert_eq!(
                ids_in(&client, &name, "p2023").await,
                (0..30).collect::<Vec<_>>()
            );
            assert_eq!(
                ids_in(&client, &name, "p2024").await,
                (100..150).collect::<Vec<_>>()
            );
            assert_eq!(
                ids_in(&client, &name, unnamed).await,
                (1000..1020).collect::<Vec<_>>()
            );
            assert_eq!(client.count_in(&name, &["p2023".into()]).await?, 30);
            assert_eq!(client.count_in(&name, &["p2024".into()]).await?, 50);
            assert_eq!(client.count(&name).await?, 100);
            Ok::<_, vmig_core::Error>(())
        }
        .await;
        let _ = client.drop_collection(&name).await;
        check.map_err(|e| e.context(format!("{mode} mode")))?;
    }
    Ok(())
}
