//! The `milvus2` sink against a real Milvus 2.3.5 (`scripts/milvus start`, then
//! `eval "$(scripts/milvus env)"`). Each test uses its own collection and drops it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use arrow::compute::{concat_batches, filter_record_batch, is_not_null};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_core::{Result, Sink};
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2::{Milvus2Sink, Milvus2SinkConfig};
use vmig_source_faiss as _;
use vmig_testing::compare::float_bits;

struct Env {
    uri: String,
    user: String,
    password: String,
    stage: String,
}

fn env() -> Option<Env> {
    let m = vmig_testing::service::milvus()?;
    Some(Env {
        uri: m.uri,
        user: m.user,
        password: m.password,
        stage: std::env::var("VMIG_MILVUS_STAGE").unwrap_or_else(|_| "/tmp/vmig-stage".into()),
    })
}

impl Env {
    fn options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new(self.uri.clone());
        o.user = Some(self.user.clone());
        o.password = Some(self.password.clone());
        o
    }

    async fn client(&self) -> MilvusClient {
        MilvusClient::connect(&self.options()).await.unwrap()
    }

    fn sink(&self, collection: &str, extra: Value) -> Value {
        let mut v = json!({
            "uri": self.uri,
            "user": self.user,
            "password": self.password,
            "collection": collection,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }
}

mod common;
use common::{assert_same_as_fixture, expected, migrate, read_all, unique};

fn index_for(fixture: &str) -> Value {
    if fixture.starts_with("binary") {
        json!({ "type": "BIN_FLAT", "metric": "HAMMING" })
    } else {
        json!({ "type": "FLAT", "metric": "L2" })
    }
}

#[tokio::test]
async fn faiss_fixtures_arrive_bit_exact_by_insert_and_bulk() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    for fixture in ["ivf_full", "idmap2_flat", "binary_idmap2"] {
        for mode in ["insert", "bulk"] {
            let name = unique(&format!("vmig_{mode}"));
            let mut extra = json!({ "mode": mode, "index": index_for(fixture), "load": true });
            if mode == "bulk" {
                extra["stage"] = json!(env.stage);
            } else {
                extra["batch_bytes"] = json!("4KiB");
            }
            let report = migrate(fixture, env.sink(&name, extra)).await;
            let check = async {
                let report = report?;
                let (ids, _) = expected(fixture);
                assert_eq!(report.rows_written, ids.len() as u64, "{fixture} {mode}");
                assert!(
                    report.target.ends_with(&format!("/default/{name}")),
                    "{}",
                    report.target
                );
                assert_eq!(client.count(&name).await?, ids.len() as u64);
                assert_same_as_fixture(&client, &name, fixture).await;
                Ok::<_, vmig_core::Error>(())
            }
            .await;
            let _ = client.drop_collection(&name).await;
            check?;
        }
    }
    // Bulk mode removed what it staged: no staging folder of this test's collections is left
    // (the stage is shared by every test run on the machine: folders of other runs, such as
    // an interrupted one, are not this test's business).
    let ours = format!("vmig_bulk_{}_", std::process::id());
    let leftovers: Vec<_> = std::fs::read_dir(&env.stage)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|p| !p.to_string_lossy().contains(&ours)),
        "{leftovers:?}"
    );
    Ok(())
}

#[tokio::test]
async fn upsert_twice_is_idempotent_and_if_exists_policies_hold() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_exists");
    let fixture = "idmap2_flat";
    let n = expected(fixture).0.len() as u64;
    let index = index_for(fixture);
    let result = async {
        migrate(
            fixture,
            env.sink(
                &name,
                json!({ "mode": "upsert", "index": index, "load": true }),
            ),
        )
        .await?;
        // Default policy: error, naming the collection and the options.
        let err = migrate(fixture, env.sink(&name, json!({})))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("collection `{name}` already exists"))
                && err.contains("if_exists"),
            "{err}"
        );
        // Upsert again into the existing collection: same count.
        migrate(
            fixture,
            env.sink(&name, json!({ "mode": "upsert", "if_exists": "append" })),
        )
        .await?;
        client.flush(&name, Duration::from_secs(60)).await?;
        assert_eq!(client.count(&name).await?, n);
        // Append by insert: Milvus keeps duplicates, so count doubles.
        migrate(fixture, env.sink(&name, json!({ "if_exists": "append" }))).await?;
        assert_eq!(client.count(&name).await?, 2 * n);
        // Append with a different schema is refused with the difference.
        let err = migrate(
            "binary_idmap2",
            env.sink(&name, json!({ "if_exists": "append" })),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("different schema") && err.contains("`vector`"),
            "{err}"
        );
        // Drop: a fresh collection with exactly the source's rows.
        migrate(
            fixture,
            env.sink(
                &name,
                json!({ "if_exists": "drop", "index": index, "load": true }),
            ),
        )
        .await?;
        assert_eq!(client.count(&name).await?, n);
        assert_same_as_fixture(&client, &name, fixture).await;
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    result
}

/// Issue #11: a `uri` pointing at an HTTP/1.1 server (e.g. Milvus's HTTP port 9091) failed
/// with `h2 protocol error`; it must say the server does not speak gRPC and what to check.
/// Needs no Milvus: a loopback listener answers every connection like a web server.
#[tokio::test]
async fn a_server_that_does_not_speak_grpc_is_named() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    let uri = format!("http://{addr}");
    let err = parse_sink("milvus2", json!({ "uri": uri, "collection": "x" }))?
        .build(&BuildContext::default())
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "opening sink `milvus2`: invalid `milvus` configuration: the server at {uri} does \
             not speak gRPC: it answered the HTTP/2 connection preface with `HTTP/1.1 404 Not \
             Found`, so it is an HTTP/1 server, not Milvus's gRPC endpoint. Check the port in \
             `uri`: Milvus serves gRPC on port 19530 by default, while 9091 is its HTTP port \
             (metrics and health checks) and a RESTful gateway or web proxy cannot take gRPC \
             calls"
        )
    );
    Ok(())
}

#[tokio::test]
async fn down_server_and_wrong_password_fail_clearly() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cfg = env.sink("x", json!({}));
    cfg["uri"] = json!(format!("http://127.0.0.1:{port}"));
    let err = parse_sink("milvus2", cfg)?
        .build(&BuildContext::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot reach Milvus") && err.contains("is it running?"),
        "{err}"
    );

    let mut cfg = env.sink("x", json!({}));
    cfg["password"] = json!("Wr0ng-Pa55word");
    let err = parse_sink("milvus2", cfg)?
        .build(&BuildContext::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rejected the credentials for user `root`"),
        "{err}"
    );
    assert!(!err.contains("Wr0ng-Pa55word"), "{err}");
    Ok(())
}

fn sample_without_nulls(first_id: i64, rows: usize) -> RecordBatch {
    let b = vmig_testing::gen::sample_batch(7, first_id, rows, 16);
    let keep = is_not_null(b.column_by_name("title").unwrap()).unwrap();
    filter_record_batch(&b, &keep).unwrap()
}

async fn direct_sink(opts: ConnectOptions, config: Value) -> Box<dyn Sink> {
    let cfg: Milvus2SinkConfig = serde_json::from_value(config).unwrap();
    let client = MilvusClient::connect(&opts).await.unwrap();
    Box::new(Milvus2Sink::new(cfg, client).unwrap())
}

#[tokio::test]
async fn scalars_round_trip_and_oversized_requests_are_split() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_scalars");
    // A client whose request limit is 64KiB, with 1MiB batches: every request is refused
    // client-side as too large and must be split until it fits.
    let mut opts = env.options();
    opts.max_request_bytes = 64 * 1024;
    let config = env.sink(
        &name,
        json!({ "batch_bytes": "1MiB", "index": { "type": "FLAT", "metric": "IP" }, "load": true }),
    );
    let mut sink = direct_sink(opts, config).await;
    let schema: SchemaRef = vmig_testing::gen::sample_schema(16);
    let batches: Vec<RecordBatch> = (0..3)
        .map(|i| sample_without_nulls(i * 2000, 2000))
        .collect();
    let result = async {
        sink.prepare(&schema).await?;
        for b in &batches {
            sink.write(b.clone(), None).await?;
        }
        let flushed = sink.flush().await?;
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(flushed.rows, total as u64);
        let report = sink.commit().await?;
        assert_eq!(report.rows, total as u64);
        assert_eq!(client.count(&name).await?, total as u64);
        let all = read_all(&client, &name).await;
        let want = concat_batches(&schema, &batches)?;
        assert_eq!(all.num_rows(), want.num_rows());
        for col in ["id", "title", "flag"] {
            assert_eq!(
                all.column_by_name(col).unwrap().as_ref(),
                want.column_by_name(col).unwrap().as_ref(),
                "{col}"
            );
        }
        for col in ["score", "vector"] {
            assert_eq!(float_bits(&all, col), float_bits(&want, col), "{col}");
        }
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    result
}

#[tokio::test]
async fn a_null_names_field_and_row() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_nulls");
    let mut sink = direct_sink(env.options(), env.sink(&name, json!({}))).await;
    let schema = vmig_testing::gen::sample_schema(8);
    let result = async {
        sink.prepare(&schema).await?;
        // ids 1..=20: id 7 has a null title, at row 6 of the batch.
        sink.write(vmig_testing::gen::sample_batch(1, 1, 20, 8), None)
            .await?;
        let err = sink.flush().await.unwrap_err().to_string();
        assert!(
            err.contains("field `title` row 6") && err.contains("not nullable"),
            "{err}"
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    result
}

/// A field the source has as nullable (Milvus 2.5+ metadata) into Milvus 2.3.5, which creates
/// it not nullable: rows without nulls go in, a null is refused naming field and row.
#[tokio::test]
async fn a_nullable_source_field_into_milvus_2_3() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_nullable");
    let mut sink = direct_sink(env.options(), env.sink(&name, json!({}))).await;
    let plain = vmig_testing::gen::sample_schema(16);
    let fields: Vec<arrow::datatypes::Field> = plain
        .fields()
        .iter()
        .map(|f| {
            let mut f = f.as_ref().clone();
            if f.name() == "title" {
                let mut meta = f.metadata().clone();
                meta.insert(vmig_milvus::meta::NULLABLE.to_string(), "true".to_string());
                f = f.with_metadata(meta);
            }
            f
        })
        .collect();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        plain.metadata().clone(),
    ));
    let tagged = |b: RecordBatch| RecordBatch::try_new(schema.clone(), b.columns().to_vec());
    let result = async {
        sink.prepare(&schema).await?;
        assert!(
            !client.has_collection(&name).await?,
            "the collection is created with the first batch, not before"
        );
        let clean = tagged(sample_without_nulls(100, 30))?;
        sink.write(clean.clone(), None).await?;
        let info = client.describe_collection(&name).await?;
        assert!(info.schema.fields.iter().all(|f| !f.nullable), "{info:?}");
        assert_eq!(sink.flush().await?.rows, clean.num_rows() as u64);
        // ids 1..=20: id 7 has a null title, at row 6 of the batch.
        sink.write(tagged(vmig_testing::gen::sample_batch(1, 1, 20, 16))?, None)
            .await?;
        let err = sink.flush().await.unwrap_err().to_string();
        assert!(
            err.contains("field `title` row 6") && err.contains("not nullable"),
            "{err}"
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    result
}

#[tokio::test]
async fn a_collection_created_by_another_run_meanwhile_is_not_written_into() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_race");
    let schema = vmig_testing::gen::sample_schema(16);
    let mut late = direct_sink(env.options(), env.sink(&name, json!({}))).await;
    let mut early = direct_sink(env.options(), env.sink(&name, json!({}))).await;
    let result = async {
        late.prepare(&schema).await?;
        early.prepare(&schema).await?;
        early.write(sample_without_nulls(1, 50), None).await?;
        early.flush().await?;
        early.commit().await?;
        let err = late
            .write(sample_without_nulls(1000, 50), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("collection `{name}` was created at"))
                && err.contains("after this run checked for it"),
            "{err}"
        );
        let left = late.abort().await?;
        let host = env
            .uri
            .split("://")
            .nth(1)
            .unwrap_or(&env.uri)
            .trim_end_matches('/');
        assert_eq!(
            left.left,
            vec![format!(
                "Nothing was written to milvus://{host}/default/{name}."
            )],
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    result
}

/// A Milvus 2.5 schema (a BM25 function, an analyzer on its VarChar input, a clustering key)
/// into the real Milvus 2.3.5: refused before anything is created, naming each feature, the
/// release it needs and the version the server reports.
#[tokio::test]
async fn a_2_5_schema_into_milvus_2_3_is_refused_naming_each_feature() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("vmig_bm25_refused");
    let mut sink = direct_sink(env.options(), env.sink(&name, json!({}))).await;
    let tag = |f: arrow::datatypes::Field, k: &str, v: &str| {
        let mut m = f.metadata().clone();
        m.insert(k.to_string(), v.to_string());
        f.with_metadata(m)
    };
    let text = tag(
        arrow::datatypes::Field::new("text", arrow::datatypes::DataType::Utf8, false),
        vmig_milvus::meta::TYPE_PARAMS,
        r#"{"enable_analyzer":"true"}"#,
    );
    let year = tag(
        arrow::datatypes::Field::new("year", arrow::datatypes::DataType::Int32, false),
        vmig_milvus::meta::CLUSTERING_KEY,
        "true",
    );
    let functions = json!([{
        "name": "text_bm25", "function_type": "BM25", "inputs": ["text"],
        "outputs": [{"name": "sparse", "data_type": "SparseFloatVector"}]
    }]);
    let schema: SchemaRef = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
        vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
            vmig_core::vector::float_vector_field("dense", 4),
            text,
            year,
        ],
        std::collections::HashMap::from([(
            vmig_milvus::meta::FUNCTIONS.to_string(),
            functions.to_string(),
        )]),
    ));
    let err = sink.prepare(&schema).await.unwrap_err().to_string();
    let server = client.server_version().to_string();
    assert!(server.starts_with("v2.3"), "{server}");
    for part in [
        format!("collection `{name}`"),
        format!("several vector fields (dense, sparse) needs Milvus 2.4 or newer, and the target is Milvus {server}"),
        "`enable_analyzer` on field `text` needs Milvus 2.5".to_string(),
        "clustering key `year` needs Milvus 2.4".to_string(),
        "function `text_bm25` (BM25) needs Milvus 2.5".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} not in {err}");
    }
    assert!(!client.has_collection(&name).await?);
    Ok(())
}

/// `bulk_api = "rest"` on the real Milvus 2.3.5 is refused at start, naming its version; `auto`
/// builds (and takes gRPC `Import`, as the CLI's bulk test shows in its log).
#[tokio::test]
async fn bulk_through_rest_is_refused_on_milvus_2_3() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let cfg = env.sink(
        "x",
        json!({ "mode": "bulk", "stage": env.stage, "bulk_api": "rest" }),
    );
    let err = parse_sink("milvus2", cfg)?
        .build(&BuildContext::default())
        .await
        .unwrap_err();
    assert!(err.is_config_error(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "opening sink `milvus2`: invalid `milvus2` configuration: `bulk_api = \"rest\"` (REST import jobs) needs Milvus 2.4 or newer, and the target is Milvus v2.3.5-lite; use `bulk_api = \"grpc\"` or `\"auto\"`"
    );
    let cfg = env.sink("x", json!({ "mode": "bulk", "stage": env.stage }));
    parse_sink("milvus2", cfg)?
        .build(&BuildContext::default())
        .await?;
    Ok(())
}

/// The sink's bulk flushes through REST: the collection and its partition are made on the real
/// Milvus 2.3.5 (gRPC), while the import jobs go to a local stand-in of the Milvus 2.4+ REST
/// API, NOT a real server, answering as milvus.io's RESTful API v2 reference, "Import (v2)",
/// documents (create: `data.jobId`; describe: `state` Completed with `importedRows`). It counts
/// the rows of the staged Parquet files it is sent. Every staged file is sent exactly once,
/// in jobs of at most `max_files_per_job = 2` files of one partition.
#[tokio::test]
async fn bulk_flushes_through_rest_send_every_staged_file_once() -> Result<()> {
    use std::collections::HashMap;
    use vmig_milvus::rest::{ImportApi, ImportJobs, RestOptions};
    use vmig_testing::http_stub::Recorded;

    let Some(env) = env() else { return Ok(()) };
    let rows_of = |path: &str| -> u64 {
        let f = std::fs::File::open(path).unwrap();
        let r = parquet::file::reader::SerializedFileReader::new(f).unwrap();
        parquet::file::reader::FileReader::metadata(&r)
            .file_metadata()
            .num_rows() as u64
    };
    let stub = vmig_testing::http_stub::completing_import_jobs(rows_of).await;
    let name = unique("vmig_rest_bulk");
    let dir = tempfile::tempdir().unwrap();
    let cfg: Milvus2SinkConfig = serde_json::from_value(env.sink(
        &name,
        // `keep_staged`: the test counts the rows of the imported files afterwards.
        json!({ "mode": "bulk", "stage": dir.path(), "max_files_per_job": 2, "keep_staged": true }),
    ))
    .unwrap();
    let jobs = ImportJobs::new(&RestOptions {
        base: stub.url.clone(),
        base_option: "rest_uri".into(),
        token: Some(format!("{}:{}", env.user, env.password)),
        request_timeout_secs: 10,
        ca_cert: None,
        retry: cfg.retry_policy()?,
        api: ImportApi::Milvus { db: None },
    })?;
    let client = env.client().await;
    let mut sink = Milvus2Sink::new(cfg, env.client().await)?.with_rest(jobs);
    let schema: SchemaRef = vmig_testing::gen::sample_schema(16);
    let (mut in_p1, mut in_default) = (0u64, 0u64);
    let run = async {
        sink.prepare(&schema).await?;
        // Three flushes with rows of two partitions each: 3 x 2 staged files, imported at the
        // flush after the one that staged them.
        for i in 0..3 {
            let (a, b) = (
                sample_without_nulls(i * 100, 50),
                sample_without_nulls(i * 100 + 50, 50),
            );
            in_p1 += a.num_rows() as u64;
            in_default += b.num_rows() as u64;
            sink.write(a, Some("p1")).await?;
            sink.write(b, None).await?;
            sink.flush().await?;
        }
        sink.flush().await?;
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    let _ = client.drop_collection(&name).await;
    run?;
    let creates: Vec<Recorded> = stub
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/create"))
        .collect();
    let mut sent: Vec<String> = Vec::new();
    let mut by_partition: HashMap<Option<String>, u64> = HashMap::new();
    for c in &creates {
        assert_eq!(c.body["collectionName"], json!(name));
        let files: Vec<String> = c.body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g[0].as_str().unwrap().to_string())
            .collect();
        assert!((1..=2).contains(&files.len()), "{files:?}");
        let p = c.body["partitionName"].as_str().map(str::to_string);
        *by_partition.entry(p).or_default() += files.iter().map(|f| rows_of(f)).sum::<u64>();
        sent.extend(files);
    }
    let mut unique_sent = sent.clone();
    unique_sent.sort();
    unique_sent.dedup();
    assert_eq!(unique_sent.len(), sent.len(), "a file sent twice: {sent:?}");
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(in_p1 > 0 && in_default > 0);
    assert_eq!(by_partition.get(&Some("p1".into())), Some(&in_p1));
    assert_eq!(by_partition.get(&None), Some(&in_default));
    Ok(())
}
