//! End to end: a generated Milvus 1.x data directory into a real Milvus 2.3.5
//! (`scripts/milvus start`, then `eval "$(scripts/milvus env)"`). The 1.x partitions must exist
//! in the target and hold exactly their rows, bit for bit; the metric reaches the index (a
//! binary collection's HAMMING index is only accepted with a binary metric).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{build, expected, rows_of, unique};
use serde_json::json;
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_core::Result;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2 as _;
use vmig_source_milvus1 as _;
use vmig_testing::milvus1::{standard, Row};

async fn rows_in(
    client: &MilvusClient,
    collection: &str,
    partition: &str,
    schema: &arrow::datatypes::SchemaRef,
) -> Vec<Row> {
    let r = client
        .query_in(
            collection,
            &[partition.to_string()],
            "id >= 0",
            &["id".to_string(), "vector".to_string()],
            None,
            ConsistencyLevel::Strong,
            Vec::new(),
        )
        .await
        .unwrap();
    let b = vmig_milvus::convert::field_data_to_batch(schema, &r.fields_data).unwrap();
    let mut rows = rows_of(&b);
    rows.sort();
    rows
}

#[tokio::test]
async fn milvus1_partitions_land_in_milvus2_partitions_bit_exactly() -> Result<()> {
    let Some(vmig_testing::service::MilvusServer {
        uri,
        user,
        password,
        ..
    }) = vmig_testing::service::milvus()
    else {
        return Ok(());
    };
    let mut options = ConnectOptions::new(uri.clone());
    options.user = Some(user.clone());
    options.password = Some(password.clone());
    let client = MilvusClient::connect(&options).await?;

    let g = standard(77);
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    for (source_collection, index) in [("books", "FLAT"), ("codes", "BIN_FLAT")] {
        let target = unique(&format!("milvus1_{source_collection}"));
        let check = async {
            let source = build(json!({
                "path": dir.path().display().to_string(),
                "collections": [source_collection],
            }))
            .await?;
            let schema = source.schema();
            let sink = parse_sink(
                "milvus2",
                json!({
                    "uri": uri, "user": user, "password": password, "collection": target,
                    "mode": "insert", "index": { "type": index }, "load": true,
                }),
            )?
            .build(&BuildContext::default())
            .await?;
            let report = Pipeline::new(source, sink)
                .run(Arc::new(NoProgress))
                .await?;
            let want = expected(&g, source_collection);
            let total: usize = want.values().map(Vec::len).sum();
            assert_eq!(report.rows_written, total as u64);
            for (tag, rows) in &want {
                let partition = if tag.is_empty() { "_default" } else { tag };
                assert!(
                    client.has_partition(&target, partition).await?,
                    "{partition}"
                );
                let got = rows_in(&client, &target, partition, &schema).await;
                assert_eq!(&got, rows, "{source_collection}: partition {partition}");
            }
            assert_eq!(client.count(&target).await?, total as u64);
            // The dropped 1.x partition was not created.
            assert!(!client.has_partition(&target, "p2019").await?);
            Ok::<_, vmig_core::Error>(())
        }
        .await;
        let _ = client.drop_collection(&target).await;
        check.map_err(|e| e.context(format!("collection {source_collection}")))?;
    }
    Ok(())
}
