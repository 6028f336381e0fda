//! vmig-milvus against a real Milvus 2.3.5 (`scripts/milvus start`; `VMIG_MILVUS_URI` etc.).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use vmig_core::vector;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::{
    collection_schema, ConnectOptions, MilvusClient, MilvusErrorKind, SchemaOptions,
};

fn options() -> Option<ConnectOptions> {
    let m = vmig_testing::service::milvus()?;
    let mut o = ConnectOptions::new(m.uri);
    (o.user, o.password) = (Some(m.user), Some(m.password));
    Some(o)
}

use vmig_testing::service::unique;

#[tokio::test]
async fn wrong_password_and_closed_port_fail_clearly() {
    let Some(opts) = options() else { return };
    let mut bad = opts.clone();
    bad.password = Some("not-the-Secret-pw".into());
    let err = MilvusClient::connect(&bad).await.expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("rejected the credentials for user `root`"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-Secret-pw"), "{msg}");
    assert_eq!(vmig_milvus::error::kind(&err), Some(MilvusErrorKind::Auth));
    assert!(!format!("{bad:?}").contains("not-the-Secret-pw"));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut down = opts.clone();
    down.uri = format!("http://127.0.0.1:{port}");
    down.timeout = Duration::from_secs(3);
    let err = MilvusClient::connect(&down).await.expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot reach Milvus at http://127.0.0.1:{port}"))
            && msg.contains("is it running?"),
        "{msg}"
    );
}

#[tokio::test]
async fn create_insert_flush_index_load_count_and_page() -> vmig_core::Result<()> {
    let Some(opts) = options() else { return Ok(()) };
    let client = MilvusClient::connect(&opts).await?;
    assert!(
        client.server_version().starts_with("v2."),
        "{}",
        client.server_version()
    );
    // The real server's `GetVersion` (`v2.3.5-lite` here) parses to a release vmig compares.
    let server = client.server();
    assert_eq!(
        server.release().map(|(ma, mi, _)| (ma, mi)),
        Some((2, 3)),
        "{server}"
    );
    assert_eq!(server.at_least(2, 4), Some(false), "{server}");
    assert!(!server.is_zilliz());
    let name = unique("vmig_client");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("vector", 4),
        Field::new("title", DataType::Utf8, false),
    ]));
    let cs = collection_schema(
        &schema,
        &SchemaOptions {
            collection: name.clone(),
            varchar_max_length: Some(64),
            ..Default::default()
        },
    )?;
    client
        .create_collection(&cs, 1, ConsistencyLevel::Bounded)
        .await?;
    let result = async {
        assert!(client.has_collection(&name).await?);
        let info = client.describe_collection(&name).await?;
        assert_eq!(info.primary_key, "id");
        assert_eq!(info.arrow.fields().len(), 3);
        vmig_milvus::schema::check_compatible(&info.schema, &cs)?;

        let n = 1000usize;
        let ids: Vec<i64> = (0..n as i64).rev().map(|i| i * 3 - 700).collect();
        let floats: Vec<f32> = (0..n * 4).map(|i| (i as f32).sqrt() * -1.5e-3).collect();
        let titles: Vec<String> = (0..n).map(|i| format!("t{i}-é日本")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(FixedSizeListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    4,
                    Arc::new(Float32Array::from(floats.clone())),
                    None,
                )?),
                Arc::new(StringArray::from(titles.clone())),
            ],
        )?;
        assert_eq!(client.insert(&name, None, &batch, false).await?, n as u64);
        client.flush(&name, Duration::from_secs(60)).await?;
        client
            .create_index(&name, "vector", "FLAT", "L2", &serde_json::Value::Null)
            .await?;
        client.load(&name, Duration::from_secs(60)).await?;
        assert_eq!(client.count(&name).await?, n as u64);

        let got =
            vmig_milvus::scan::read_collection(&client, &name, Some(&info.arrow), &[], 300).await?;
        let all = arrow::compute::concat_batches(&info.arrow, &got)?;
        assert_eq!(all.num_rows(), n);
        // Expected: the inserted rows sorted by id (ids were inserted in descending order).
        let order: Vec<usize> = (0..n).rev().collect();
        for (row, &src) in order.iter().enumerate() {
            assert_eq!(
                all.column(0).as_primitive::<Int64Type>().value(row),
                ids[src]
            );
            let v = all.column(1).as_fixed_size_list().value(row);
            let v = v.as_primitive::<arrow::datatypes::Float32Type>();
            for d in 0..4 {
                assert_eq!(v.value(d).to_bits(), floats[src * 4 + d].to_bits());
            }
            assert_eq!(all.column(2).as_string::<i32>().value(row), titles[src]);
        }
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    client.drop_collection(&name).await?;
    result
}
