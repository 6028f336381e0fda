//! The `milvus2` sink's bulk import staged in S3 (`stage = "s3://bucket/prefix"`), against a real
//! Milvus 2.3.5 whose storage is that bucket: `scripts/services start` (or `scripts/s3 start` and
//! `VMIG_MILVUS_PORT=19630 VMIG_MILVUS_S3=http://127.0.0.1:19100 VMIG_MILVUS_DIR=.vmig-work/milvus-s3
//! scripts/milvus start`), then source the printed `VMIG_MILVUS_S3_*` exports.
//!
//! The sink uploads its staging files under the stage prefix, passes their bucket-relative keys to
//! `Import`, and deletes them once imported. Each case uses its own collection and prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    clean_up(env, client, &name, &prefix).await;
    check
}

/// Drops a case's collection and deletes its objects, whatever happened.
async fn clean_up(env: &Env, client: &MilvusClient, collection: &str, prefix: &str) {
    let _ = client.drop_collection(collection).await;
    let stage = env.bucket_at(prefix);
    for key in list(&stage).await {
        let _ = stage.store.delete(&key.as_str().into()).await;
    }
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

/// One import job of the Zilliz Cloud stand-in: its object URLs, and once the real Milvus has
/// imported them, the rows of each (or why it failed).
type StandInJob = Arc<Mutex<Option<std::result::Result<Vec<(String, u64)>, String>>>>;

/// Bulk import into Zilliz Cloud, end to end except for Zilliz itself: the sink stages the
/// files in the user's bucket (`stage = "s3://…"`) and creates import jobs at a local stand-in
/// of Zilliz Cloud's control plane, NOT Zilliz Cloud, that answers as docs.zilliz.com's "Create
/// Import Jobs (V2)" and "Get Import Job Progress (V2)" document (`data.jobId`; `state`,
/// `progress`, and imported rows per file in `details` only, as in the reference's example).
/// Behind the stand-in the real Milvus 2.3.5, whose storage is that bucket, imports the objects
/// the URLs name, so the collection is then compared with the source bit for bit. Checked as
/// well: the request bodies (cluster id, `s3://<bucket>/<key>` URLs, the bucket's key pair), the
/// API key as Bearer token, each staged file sent once, and no staged object left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_into_zilliz_cloud_sends_object_urls_of_the_users_bucket() -> Result<()> {
    use std::collections::HashSet;
    use vmig_core::pipeline::{NoProgress, Pipeline};
    use vmig_milvus::ServerVersion;
    use vmig_sink_milvus2::{Milvus2Sink, Milvus2SinkConfig};
    use vmig_testing::http_stub::HttpStub;

    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let fixture = "idmap2_flat";
    let name = unique("vmig_zilliz");
    let prefix = format!("import/{name}");
    let cluster = "in01-0123456789abcdef";
    let api_key = "zilliz-API-key-0123";

    let jobs_seen: Arc<Mutex<Vec<StandInJob>>> = Arc::default();
    let stand_in = {
        let jobs_seen = Arc::clone(&jobs_seen);
        let (uri, user, password) = (env.uri.clone(), env.user.clone(), env.password.clone());
        let in_bucket = format!("s3://{}/", env.bucket);
        HttpStub::start(move |req, _| {
            let answer = |data: serde_json::Value| (200, json!({"code": 0, "data": data}).to_string());
            match req.path.as_str() {
                "/v2/vectordb/jobs/import/create" => {
                    let groups: Vec<Vec<String>> =
                        serde_json::from_value(req.body["objectUrls"].clone()).unwrap_or_default();
                    let collection = req.body["collectionName"].as_str().unwrap_or_default().to_string();
                    let partition = req.body["partitionName"].as_str().map(str::to_string);
                    let slot: StandInJob = Arc::default();
                    let done = Arc::clone(&slot);
                    let (uri, user, password, in_bucket) =
                        (uri.clone(), user.clone(), password.clone(), in_bucket.clone());
                    // The real Milvus imports what the URLs name, from its own bucket.
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        let outcome = rt.block_on(async {
                            let mut o = ConnectOptions::new(uri);
                            o.user = Some(user);
                            o.password = Some(password);
                            let c = MilvusClient::connect(&o).await.map_err(|e| e.to_string())?;
                            let mut rows = Vec::new();
                            for group in groups {
                                let keys: Vec<String> = group
                                    .iter()
                                    .map(|u| u.strip_prefix(&in_bucket).map(str::to_string).ok_or(format!("{u} is not in {in_bucket}")))
                                    .collect::<std::result::Result<_, _>>()?;
                                let tasks = c
                                    .import(&collection, partition.as_deref(), &keys)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                let n = c
                                    .wait_import(&tasks, std::time::Duration::from_secs(300))
                                    .await
                                    .map_err(|e| e.to_string())?;
                                rows.push((group.join(","), n));
                            }
                            Ok(rows)
                        });
                        *done.lock().unwrap() = Some(outcome);
                    });
                    let mut seen = jobs_seen.lock().unwrap();
                    seen.push(slot);
                    answer(json!({"jobId": format!("job-{:021}", seen.len() - 1)}))
                }
                "/v2/vectordb/jobs/import/getProgress" => {
                    let id = req.body["jobId"].as_str().unwrap_or_default();
                    let n: usize = id.trim_start_matches("job-").parse().unwrap_or(usize::MAX);
                    let Some(slot) = jobs_seen.lock().unwrap().get(n).cloned() else {
                        return (200, json!({"code": 100, "message": format!("job {id} not found")}).to_string());
                    };
                    let state = slot.lock().unwrap().clone();
                    match state {
                        None => answer(json!({"jobId": id, "state": "Importing", "progress": 50, "reason": "", "details": []})),
                        Some(Err(reason)) => answer(json!({"jobId": id, "state": "Failed", "progress": 0, "reason": reason, "details": []})),
                        Some(Ok(files)) => {
                            let details: Vec<serde_json::Value> = files
                                .iter()
                                .map(|(f, rows)| json!({"fileName": f, "state": "Completed", "progress": 100, "reason": "", "importedRows": rows}))
                                .collect();
                            answer(json!({"jobId": id, "state": "Completed", "progress": 100, "reason": "", "totalRows": 0, "details": details}))
                        }
                    }
                }
                _ => (404, "404 page not found".into()),
            }
        })
        .await
    };

    let cfg: Milvus2SinkConfig = serde_json::from_value(json!({
        "uri": env.uri,
        "user": env.user,
        "password": env.password,
        "collection": name,
        "mode": "bulk",
        "stage": format!("s3://{}/{prefix}", env.bucket),
        "storage": env.storage,
        "max_file_size": "16KiB",
        "max_files_per_job": 2,
        "cluster_id": cluster,
        "rest_uri": stand_in.url,
        "index": { "type": "FLAT", "metric": "L2" },
        "load": true,
    }))
    .unwrap();
    // The import client as the sink builds it for a Zilliz Cloud endpoint and API key.
    let zilliz_uri = format!("https://{cluster}.aws-us-west-2.vectordb.zillizcloud.com:19530");
    let mut zilliz = ConnectOptions::new(zilliz_uri.clone());
    zilliz.token = Some(api_key.into());
    let jobs = cfg.import_jobs(
        &zilliz,
        &ServerVersion::new(&zilliz_uri, Some("Zilliz Cloud")),
    )?;
    assert!(jobs.takes_object_urls());
    let sink = Milvus2Sink::new(cfg, env.client().await)?.with_rest(jobs);
    let source = vmig_core::registry::parse_source(
        "faiss",
        json!({ "path": common::faiss_dir().join(format!("{fixture}.faiss")), "partition_rows": 300 }),
    )?
    .build(&vmig_core::registry::BuildContext::default())
    .await?;
    let report = Pipeline::new(source, Box::new(sink))
        .run(Arc::new(NoProgress))
        .await;

    let check = async {
        let report = report?;
        let (ids, _) = expected(fixture);
        assert_eq!(report.rows_written, ids.len() as u64);
        assert_eq!(client.count(&name).await?, ids.len() as u64);
        assert_same_as_fixture(&client, &name, fixture).await;
        let requests = stand_in.requests();
        let creates: Vec<_> = requests
            .iter()
            .filter(|r| r.path.ends_with("/create"))
            .collect();
        let mut urls = Vec::new();
        for c in &creates {
            assert_eq!(
                c.header("authorization"),
                Some(format!("Bearer {api_key}").as_str())
            );
            let body = c.body.as_object().unwrap();
            let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                [
                    "accessKey",
                    "clusterId",
                    "collectionName",
                    "objectUrls",
                    "secretKey"
                ],
                "{body:?}"
            );
            assert_eq!(body["clusterId"], json!(cluster));
            assert_eq!(body["collectionName"], json!(name));
            assert_eq!(body["accessKey"], json!(env.storage["aws_access_key_id"]));
            assert_eq!(
                body["secretKey"],
                json!(env.storage["aws_secret_access_key"])
            );
            let groups = body["objectUrls"].as_array().unwrap();
            assert!((1..=2).contains(&groups.len()), "{groups:?}");
            for g in groups {
                let url = g[0].as_str().unwrap().to_string();
                assert!(
                    url.starts_with(&format!("s3://{}/{prefix}/", env.bucket)),
                    "{url}"
                );
                urls.push(url);
            }
        }
        let once: HashSet<&String> = urls.iter().collect();
        assert_eq!(once.len(), urls.len(), "a file sent twice: {urls:?}");
        assert!(urls.len() >= 2, "{urls:?}");
        assert_eq!(
            urls.len(),
            report.files.len(),
            "{urls:?} vs {:?}",
            report.files
        );
        for p in requests.iter().filter(|r| r.path.ends_with("/getProgress")) {
            assert_eq!(p.body["clusterId"], json!(cluster));
        }
        let left = list(&env.bucket_at(&prefix)).await;
        assert!(left.is_empty(), "staged objects left: {left:?}");
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    clean_up(&env, &client, &name, &prefix).await;
    check
}
