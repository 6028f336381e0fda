//! The REST import-jobs client against a local stand-in, NOT a real Milvus 2.4+ server or Zilliz
//! Cloud (neither runs here). Every exchange is written from the published API reference:
//! * milvus.io, RESTful API v2 › Import (v2): "Create Import Jobs"
//!   (`POST /v2/vectordb/jobs/import/create`: `dbName`, `collectionName`, `partitionName`,
//!   `files` as a list of file groups, `options`; answer `{"code":0,"data":{"jobId":"…"}}`),
//!   "Describe Import Job" / "Get Import Job Progress" (`jobId`; answer `data` with `jobId`,
//!   `collectionName`, `state` Pending/Importing/Completed/Failed, `progress`, `reason`,
//!   `importedRows`, `totalRows`, `details[]`), "List Import Jobs" (`collectionName`; answer
//!   `data.records[]`), and the error form `{"code":…,"message":…}`; milvus's request type
//!   `ImportReq` (internal/distributed/proxy/httpserver/request_v2.go) for the field names;
//! * docs.zilliz.com, RESTful API › Import (v2): "Create Import Jobs" (`clusterId`,
//!   `collectionName`, `partitionName`, `objectUrls`, `accessKey`, `secretKey`), "Get Import Job
//!   Progress" (`/getProgress`: `clusterId`, `jobId`), "List Import Jobs" (`clusterId`,
//!   `pageSize`, `currentPage`; answer `count`, `records[]`).
//!
//! One test talks to the real Milvus 2.3.5 (`scripts/milvus start`): it has no REST import.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use vmig_core::RetryConfig;
use vmig_milvus::rest::{
    BucketCredentials, ImportApi, ImportJobs, ImportRequest, JobState, RestOptions,
};
use vmig_testing::http_stub::{HttpStub, Recorded};

const TOKEN: &str = "root:S3cret-T0ken";

fn retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(10),
    }
}

fn client(stub: &HttpStub, api: ImportApi) -> ImportJobs {
    ImportJobs::new(&RestOptions {
        base: stub.url.clone(),
        base_option: "rest_uri".into(),
        token: Some(TOKEN.into()),
        request_timeout_secs: 10,
        ca_cert: None,
        retry: retry(),
        api,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn milvus() -> ImportApi {
    ImportApi::Milvus { db: None }
}

/// Creates a job importing `groups` into collection `docs` (no partition, no options).
async fn create_in_docs(jobs: &ImportJobs, groups: &[Vec<String>]) -> vmig_core::Result<String> {
    jobs.create(&ImportRequest {
        collection: "docs",
        partition: None,
        files: groups,
        options: BTreeMap::new(),
    })
    .await
}

fn files(paths: &[&str]) -> Vec<Vec<String>> {
    paths.iter().map(|p| vec![p.to_string()]).collect()
}

/// The answer to a describe of job `id` in `state` at `progress` percent.
fn describe_answer(id: &str, state: &str, progress: u32, imported: u64, reason: &str) -> String {
    json!({
        "code": 0,
        "data": {
            "jobId": id,
            "collectionName": "docs",
            "state": state,
            "progress": progress,
            "reason": reason,
            "importedRows": imported,
            "totalRows": 2000,
            "fileSize": 3279917,
            "completeTime": "",
            "details": [{
                "fileName": "id:1 paths:\"stage/part-001-00000.parquet\" ",
                "fileSize": 3279917,
                "state": state,
                "progress": progress,
                "reason": reason,
                "importedRows": imported,
                "totalRows": 2000
            }]
        }
    })
    .to_string()
}

#[tokio::test]
async fn create_sends_the_documented_body_with_the_bearer_token_and_returns_the_job_id() {
    let stub = HttpStub::start(|_, _| {
        (
            200,
            json!({"code": 0, "data": {"jobId": "448761313698322011"}}).to_string(),
        )
    })
    .await;
    let jobs = client(
        &stub,
        ImportApi::Milvus {
            db: Some("prod".into()),
        },
    );
    let groups = files(&["/stage/a.parquet", "/stage/b.parquet"]);
    let mut options = BTreeMap::new();
    options.insert("timeout".to_string(), "600s".to_string());
    let id = jobs
        .create(&ImportRequest {
            collection: "docs",
            partition: Some("p1"),
            files: &groups,
            options,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id, "448761313698322011");
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v2/vectordb/jobs/import/create");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(
        reqs[0].body,
        json!({
            "dbName": "prod",
            "collectionName": "docs",
            "partitionName": "p1",
            "files": [["/stage/a.parquet"], ["/stage/b.parquet"]],
            "options": {"timeout": "600s"}
        })
    );
}

#[tokio::test]
async fn describe_follows_a_job_from_pending_to_completed_with_its_progress() {
    let stub = HttpStub::start(|_, before| {
        let answer = match before.len() {
            0 => describe_answer("42", "Pending", 0, 0, ""),
            1 => describe_answer("42", "Importing", 50, 1000, ""),
            _ => describe_answer("42", "Completed", 100, 2000, ""),
        };
        (200, answer)
    })
    .await;
    let jobs = client(&stub, milvus());
    let mut seen = Vec::new();
    let job = jobs
        .wait("42", Duration::from_millis(1), |j| {
            seen.push((j.state.clone(), j.progress, j.imported_rows));
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seen,
        vec![
            (JobState::Pending, 0, Some(0)),
            (JobState::Importing, 50, Some(1000)),
            (JobState::Completed, 100, Some(2000))
        ]
    );
    assert_eq!(job.job_id, "42");
    assert_eq!(job.collection, "docs");
    assert_eq!((job.imported_rows, job.total_rows), (Some(2000), 2000));
    assert_eq!(job.details.len(), 1);
    assert_eq!(job.details[0].total_rows, 2000);
    assert_eq!(job.details[0].state, JobState::Completed);
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.path, "/v2/vectordb/jobs/import/get_progress");
        assert_eq!(r.body, json!({"jobId": "42"}));
    }
}

#[tokio::test]
async fn a_failed_job_reports_the_servers_reason_verbatim_and_never_the_token() {
    let reason = "the field 'vector' dim mismatch: expected 128, got 64, file: stage/a.parquet";
    let stub =
        HttpStub::start(move |_, _| (200, describe_answer("7", "Failed", 30, 0, reason))).await;
    let jobs = client(&stub, milvus());
    let err = jobs
        .wait("7", Duration::from_millis(1), |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Milvus import failed: import job 7 failed: {reason}")
    );
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("S3cret-T0ken"));
}

#[tokio::test]
async fn a_nonzero_code_is_an_error_with_the_servers_code_and_message() {
    let stub = HttpStub::start(|_, _| {
        (
            200,
            json!({"code": 1100, "message": "collection not found[collection=docs]"}).to_string(),
        )
    })
    .await;
    let jobs = client(&stub, milvus());
    let groups = files(&["/stage/a.parquet"]);
    let err = create_in_docs(&jobs, &groups).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Milvus REST jobs/import/create failed: creating an import job into `docs`: {} answered code 1100: collection not found[collection=docs]",
            stub.url
        )
    );
    assert!(!err.to_string().contains("S3cret-T0ken"));
    // The body had no partition and no options.
    assert_eq!(
        stub.requests()[0].body,
        json!({"collectionName": "docs", "files": [["/stage/a.parquet"]]})
    );
}

#[tokio::test]
async fn http_404_says_the_server_has_no_rest_import() {
    let stub = HttpStub::start(|_, _| (404, "404 page not found".into())).await;
    let jobs = client(&stub, milvus());
    let groups = files(&["/stage/a.parquet"]);
    let err = create_in_docs(&jobs, &groups).await.unwrap_err();
    assert!(err.is_config_error(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid `milvus` configuration: creating an import job into `docs`: {} answered HTTP 404 Not Found: 404 page not found (this server has no REST import-jobs API: Milvus serves it from 2.4 on; for Milvus 2.3 use `bulk_api = \"grpc\"`, and check `rest_uri`)",
            stub.url
        )
    );
    assert!(!err.to_string().contains("S3cret-T0ken"));
}

#[tokio::test]
async fn create_is_tried_once_and_describe_is_retried() {
    let stub = HttpStub::start(|req: &Recorded, before| {
        let describes = before
            .iter()
            .filter(|r| r.path.ends_with("/get_progress"))
            .count();
        if req.path.ends_with("/create") || describes == 0 {
            (503, json!({"code": 503, "message": "busy"}).to_string())
        } else {
            (200, describe_answer("9", "Importing", 10, 0, ""))
        }
    })
    .await;
    let jobs = client(&stub, milvus());
    let groups = files(&["/stage/a.parquet"]);
    let err = create_in_docs(&jobs, &groups).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(stub.requests().len(), 1, "create must not be retried");
    let job = jobs.describe("9").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((job.state, job.progress), (JobState::Importing, 10));
    let paths: Vec<String> = stub.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            "/v2/vectordb/jobs/import/create",
            "/v2/vectordb/jobs/import/get_progress",
            "/v2/vectordb/jobs/import/get_progress"
        ]
    );
}

#[tokio::test]
async fn more_files_than_one_request_may_carry_are_refused_before_sending() {
    let stub = HttpStub::start(|_, _| (200, "{}".into())).await;
    let jobs = client(&stub, milvus());
    let groups: Vec<Vec<String>> = (0..1025).map(|i| vec![format!("/s/{i}.parquet")]).collect();
    let err = create_in_docs(&jobs, &groups).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `milvus` configuration: an import job may carry at most 1024 files (`dataCoord.import.maxImportFileNumPerReq`), and 1025 were given"
    );
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn list_reads_the_records_of_the_collection() {
    let stub = HttpStub::start(|_, _| {
        (
            200,
            json!({"code": 0, "data": {"records": [
                {"collectionName": "docs", "jobId": "448761313698322011", "progress": 50, "state": "Importing"},
                {"collectionName": "docs", "jobId": "448761313698322012", "progress": 100, "state": "Completed"}
            ]}})
            .to_string(),
        )
    })
    .await;
    let jobs = client(&stub, milvus());
    let listed = jobs.list("docs").await.unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, JobState, u32)> = listed
        .into_iter()
        .map(|j| (j.job_id, j.state, j.progress))
        .collect();
    assert_eq!(
        got,
        vec![
            ("448761313698322011".into(), JobState::Importing, 50),
            ("448761313698322012".into(), JobState::Completed, 100)
        ]
    );
    let reqs = stub.requests();
    assert_eq!(reqs[0].path, "/v2/vectordb/jobs/import/list");
    assert_eq!(reqs[0].body, json!({"collectionName": "docs"}));
}

#[tokio::test]
async fn the_zilliz_cloud_form_sends_cluster_object_urls_and_bucket_credentials() {
    let stub = HttpStub::start(|req: &Recorded, _| {
        let answer = if req.path.ends_with("/create") {
            json!({"code": 0, "data": {"jobId": "job-0123456789abcdef01234"}})
        } else if req.path.ends_with("/getProgress") {
            json!({"code": 0, "data": {
                "jobId": "job-0123456789abcdef01234", "collectionName": "docs",
                "fileName": "a.parquet", "fileSize": 3279917, "state": "Completed",
                "progress": 100, "completeTime": "2024-04-01T06:17:55Z", "reason": "",
                "totalRows": 100000, "details": []
            }})
        } else {
            let page = req.body.get("currentPage").and_then(|p| p.as_u64()).unwrap_or(0);
            let records: Vec<serde_json::Value> = if page == 1 {
                (0..100)
                    .map(|i| json!({"collectionName": if i == 5 { "docs" } else { "other" }, "jobId": format!("job-{i}"), "state": "Completed"}))
                    .collect()
            } else {
                vec![json!({"collectionName": "docs", "jobId": "job-100", "state": "Importing"})]
            };
            json!({"code": 0, "data": {"count": 101, "currentPage": page, "pageSize": 100, "records": records}})
        };
        (200, answer.to_string())
    })
    .await;
    let jobs = client(
        &stub,
        ImportApi::ZillizCloud {
            cluster_id: "in01-0123456789abcde".into(),
            db: None,
            credentials: Some(BucketCredentials {
                access_key: "AKIAEXAMPLE".into(),
                secret_key: "bucket-S3cret".into(),
            }),
        },
    );
    assert!(!format!("{jobs:?}").contains("bucket-S3cret"));
    let groups = files(&["s3://bucket/stage/a.parquet", "s3://bucket/stage/b.parquet"]);
    let id = create_in_docs(&jobs, &groups)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id, "job-0123456789abcdef01234");
    let job = jobs.describe(&id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((job.state, job.total_rows), (JobState::Completed, 100000));
    let listed: Vec<String> = jobs
        .list("docs")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(listed, vec!["job-5", "job-100"]);
    let reqs = stub.requests();
    let bodies: Vec<(String, serde_json::Value)> =
        reqs.into_iter().map(|r| (r.path, r.body)).collect();
    assert_eq!(
        bodies,
        vec![
            (
                "/v2/vectordb/jobs/import/create".to_string(),
                json!({
                    "clusterId": "in01-0123456789abcde",
                    "collectionName": "docs",
                    "objectUrls": [["s3://bucket/stage/a.parquet"], ["s3://bucket/stage/b.parquet"]],
                    "accessKey": "AKIAEXAMPLE",
                    "secretKey": "bucket-S3cret"
                })
            ),
            (
                "/v2/vectordb/jobs/import/getProgress".to_string(),
                json!({"clusterId": "in01-0123456789abcde", "jobId": "job-0123456789abcdef01234"})
            ),
            (
                "/v2/vectordb/jobs/import/list".to_string(),
                json!({"clusterId": "in01-0123456789abcde", "pageSize": 100, "currentPage": 1})
            ),
            (
                "/v2/vectordb/jobs/import/list".to_string(),
                json!({"clusterId": "in01-0123456789abcde", "pageSize": 100, "currentPage": 2})
            ),
        ]
    );
}

/// The real Milvus 2.3.5 serves HTTP on its gRPC port but has no `/v2/vectordb` routes: it
/// answers 404 to an authenticated request, which the error names as "no REST import".
#[tokio::test]
async fn the_real_milvus_2_3_has_no_rest_import_and_the_error_says_so() {
    let Some(m) = vmig_testing::service::milvus() else {
        return;
    };
    let jobs = ImportJobs::new(&RestOptions {
        base: m.uri.clone(),
        base_option: "uri".into(),
        token: Some(format!("{}:{}", m.user, m.password)),
        request_timeout_secs: 10,
        ca_cert: None,
        retry: retry(),
        api: milvus(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let groups = files(&["/stage/a.parquet"]);
    let err = create_in_docs(&jobs, &groups).await.unwrap_err();
    let text = err.to_string();
    assert!(err.is_config_error(), "{err:?}");
    assert!(
        text.ends_with("answered HTTP 404 Not Found: 404 page not found (this server has no REST import-jobs API: Milvus serves it from 2.4 on; for Milvus 2.3 use `bulk_api = \"grpc\"`, and check `rest_uri`)"),
        "{text}"
    );
    // (The test password `Milvus` is also the product's name: look for the whole credential.)
    assert!(
        !text.contains(&format!("{}:{}", m.user, m.password)),
        "{text}"
    );
    // A wrong password is refused before routing (HTTP 401 with code 1800).
    let wrong = ImportJobs::new(&RestOptions {
        base: m.uri.clone(),
        base_option: "uri".into(),
        token: Some("root:Wr0ng-Pa55word".into()),
        request_timeout_secs: 10,
        ca_cert: None,
        retry: retry(),
        api: milvus(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let err = wrong.describe("1").await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("Wr0ng-Pa55word"), "{err}");
}
