//! The `milvus2` sink's bulk import staged in S3 (`stage = "s3://bucket/prefix"`), against a real
//! Milvus 2.3.5 whose storage is that bucket: `scripts/services start` (or `scripts/s3 start` and
//! `VMIG_MILVUS_PORT=19630 VMIG_MILVUS_S3=http://127.0.0.1:19100 VMIG_MILVUS_DIR=.vmig-work/milvus-s3
//! scripts/milvus start`), then source the printed `VMIG_MILVUS_S3_*` exports.
//!
//! The sink uploads its staging files under the stage prefix, passes their bucket-relative keys to
//! `Import`, and deletes them once imported. Each case uses its own collection and prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use vmig_core::store::StoreLocation;
use vmig_core::Result;
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2 as _;
use vmig_source_faiss as _;

/// The S3-backed Milvus and its bucket, from `scripts/milvus`'s `VMIG_MILVUS_S3_*` exports.
struct Env {
    uri: String,
    user: String,
    password: String,
    bucket: String,
    storage: BTreeMap<String, String>,
}

fn env() -> Option<Env> {
    let uri = vmig_testing::service::endpoint(
        "VMIG_MILVUS_S3_URI",
        "Milvus 2.3.5 with S3 storage (scripts/services start)",
    )?;
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let storage = [
        (
            "aws_endpoint",
            get("VMIG_MILVUS_S3_ENDPOINT", "http://127.0.0.1:19100"),
        ),
        (
            "aws_access_key_id",
            get("VMIG_MILVUS_S3_ACCESS_KEY", "test"),
        ),
        (
            "aws_secret_access_key",
            get("VMIG_MILVUS_S3_SECRET_KEY", "testsecret"),
        ),
        ("aws_region", "us-east-1".to_string()),
        ("aws_allow_http", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Some(Env {
        uri,
        user: get("VMIG_MILVUS_S3_USER", "root"),
        password: get("VMIG_MILVUS_S3_PASSWORD", "Milvus"),
        bucket: get("VMIG_MILVUS_S3_BUCKET", "milvus-bucket"),
        storage,
    })
}

impl Env {
    async fn client(&self) -> MilvusClient {
        let mut o = ConnectOptions::new(self.uri.clone());
        o.user = Some(self.user.clone());
        o.password = Some(self.password.clone());
        MilvusClient::connect(&o).await.unwrap()
    }

    /// The bucket (or a prefix of it) through object_store, with the sink's own options.
    fn bucket_at(&self, prefix: &str) -> StoreLocation {
        vmig_core::store::resolve(&format!("s3://{}/{prefix}", self.bucket), &self.storage).unwrap()
    }
}

async fn list(loc: &StoreLocation) -> Vec<String> {
    loc.store
        .list(Some(&loc.path))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

mod common;
use common::{assert_same_as_fixture, expected, migrate, unique};

/// Migrates `fixture` by bulk import staged in `s3://<bucket>/import/<unique>/` as `format`, then
/// checks rows, keys, bit-exactness and that the staged objects were removed.
async fn bulk_via_s3(env: &Env, client: &MilvusClient, fixture: &str, format: &str) -> Result<()> {
    // Small files: several uploads, imports and deletions for the float fixture (the binary one's
    // 300 rows fit in one file unless files get so small that there are dozens).
    let index = if fixture.starts_with("binary") {
        json!({ "type": "BIN_FLAT", "metric": "HAMMING" })
    } else {
        json!({ "type": "FLAT", "metric": "L2" })
    };
    let name = unique(&format!("vmig_s3_{format}"));
    let prefix = format!("import/{name}");
    let sink = json!({
        "uri": env.uri,
        "user": env.user,
        "password": env.password,
        "collection": name,
        "mode": "bulk",
        "bulk_format": format,
        "stage": format!("s3://{}/{prefix}", env.bucket),
        "storage": env.storage,
        "max_file_size": "16KiB",
        "index": index,
        "load": true,
    });
    let report = migrate(fixture, sink).await;
    let check = async {
        let report = report?;
        let (ids, _) = expected(fixture);
        let what = format!("{fixture} as {format}");
        assert_eq!(report.rows_written, ids.len() as u64, "{what}");
        assert!(
            report.target.ends_with(&format!("/default/{name}")),
            "{}",
            report.target
        );
        // What the sink passed to Import: bucket-relative keys under the stage prefix (no
        // scheme, no bucket, no leading slash), in several files.
        let keys: Vec<&str> = report.files.iter().flat_map(|f| f.split(',')).collect();
        let several = if fixture.starts_with("binary") { 1 } else { 2 };
        assert!(report.files.len() >= several, "{what}: {keys:?}");
        for key in &keys {
            assert!(key.starts_with(&format!("{prefix}/")), "{what}: {key}");
        }
        assert_eq!(client.count(&name).await?, ids.len() as u64, "{what}");
        assert_same_as_fixture(client, &name, fixture).await;
        // The staged objects are gone once imported.
        let left = list(&env.bucket_at(&prefix)).await;
        assert!(left.is_empty(), "{what}: staged objects left: {left:?}");
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    // Never leave a case's objects behind, whatever happened.
    let stage = env.bucket_at(&prefix);
    for key in list(&stage).await {
        let _ = stage.store.delete(&key.as_str().into()).await;
    }
    check
}

#[tokio::test]
async fn bulk_import_staged_in_the_servers_bucket_is_bit_exact_and_cleaned_up() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    for fixture in ["idmap2_flat", "binary_idmap2"] {
        bulk_via_s3(&env, &client, fixture, "parquet").await?;
    }
    // The server really keeps its data in the bucket (under its rootPath `files/`).
    let written = list(&env.bucket_at("files/insert_log")).await;
    assert!(
        !written.is_empty(),
        "Milvus wrote no insert logs into bucket {}: is it the S3-backed instance?",
        env.bucket
    );
    Ok(())
}

#[tokio::test]
async fn bulk_import_staged_in_s3_as_numpy_is_bit_exact_and_cleaned_up() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    bulk_via_s3(&env, &client, "idmap2_flat", "numpy").await
}
