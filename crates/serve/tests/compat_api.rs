//! milvus-migration's REST routes (`--compat-config`) over real HTTP: a `migration.yaml` in
//! `faiss` mode with `target.mode: local` (the shipped sample index to NumPy files, no service
//! needed) run through `POST /api/v1/start|dump`, synchronously and not, watched through
//! `GET /api/v1/get_job`, its output read back and compared with the index; the refusals in the envelope
//! (`load` with nothing to import, collections that cannot be honoured, a typo in the config,
//! an unknown job, a bad body); the token; the config's secrets in no answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use vmig as _; // links every plugin, as the `vmig` binary does
use vmig_serve::{ServeOptions, Tokens};

const TOKEN: &str = "test-token-0123456789abcdef";
/// Secrets of the config, which no answer may show.
const SECRETS: [&str; 2] = ["s3cr3t-sk-n0t-shown", "m1lvus-pw-n0t-shown"];

/// milvus-migration's `faiss` config with `target.mode: local` (as its README shows it), the
/// index and output dir in `root`, and secrets it does not use in local mode.
fn config(root: &Path, output: &str) -> String {
    format!(
        "dumper:
  worker:
    limit: 20
    workMode: faiss
    reader:
      bufferSize: 1024 # unit is KB
    writer:
      bufferSize: 1024 # unit is KB

loader:
  worker:
    limit: 20

source:
  mode: local
  local:
    faissFile: {root}/data/sample.faiss

target:
  mode: local
  local:
    outputDir: {root}/{output}/
  remote:
    outputDir: output/
    cloud: aws
    endpoint: 127.0.0.1:9000
    region: ap-southeast-1
    bucket: a-bucket
    ak: minioadmin
    sk: {sk}
    useIAM: false
    useSSL: false
    checkBucket: true

  milvus2x:
    endpoint: milvus.example:19530
    username: root
    password: {pw}

  create:
    collection:
      name: test
      shardsNum: 2
      dim: 64
      metricType: L2
",
        root = root.display(),
        sk = SECRETS[0],
        pw = SECRETS[1],
    )
}

/// A client that keeps every answer, to look for the secrets in them at the end.
struct Client {
    base: String,
    http: reqwest::Client,
    seen: Vec<String>,
}

impl Client {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = request.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        self.seen.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        self.send(r).await
    }

    async fn post(&mut self, path: &str, body: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(r).await
    }

    /// `get_job` until the job is neither `init` nor `running` (at most 60 s): its JobInfo.
    async fn until_stopped(&mut self, id: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, answer) = self.get(&format!("/api/v1/get_job?jobId={id}")).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["code"], 0, "{answer}");
            let info = answer["data"].clone();
            if info["jobStatus"] != "init" && info["jobStatus"] != "running" {
                return info;
            }
            assert!(Instant::now() < until, "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The values of a little-endian `.npy` file: its shape and the bytes of its data.
fn npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
    let descr = header
        .split("'descr':")
        .nth(1)
        .unwrap()
        .split('\'')
        .nth(1)
        .unwrap()
        .to_string();
    let shape = header.split("'shape': (").nth(1).unwrap();
    let shape: Vec<usize> = shape[..shape.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr, shape, bytes[start + len..].to_vec())
}

/// The rows of the NumPy units under `dir` (`part-*/id.npy`, `part-*/<vector>.npy`), by id.
fn rows(dir: &Path, vector: &str) -> Vec<(i64, Vec<f32>)> {
    let mut out = Vec::new();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    parts.sort();
    assert!(!parts.is_empty(), "no unit in {}", dir.display());
    for part in parts {
        let (id_type, id_shape, ids) = npy(&part.join("id.npy"));
        let (vec_type, vec_shape, vecs) = npy(&part.join(format!("{vector}.npy")));
        assert_eq!((id_type.as_str(), vec_type.as_str()), ("<i8", "<f4"));
        assert_eq!(id_shape.len(), 1);
        assert_eq!(vec_shape, vec![id_shape[0], 64]);
        for (i, id) in ids.chunks_exact(8).enumerate() {
            let id = i64::from_le_bytes(id.try_into().unwrap());
            let v = vecs[i * 256..(i + 1) * 256]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            out.push((id, v));
        }
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

/// A server with the config `config(root, "output")` in `root` (its data root too).
async fn server(root: &Path) -> (common::Server, PathBuf) {
    let file = root.join("migration.yaml");
    std::fs::write(&file, config(root, "output")).unwrap();
    let data_root = root.to_path_buf();
    let compat = file.clone();
    let server = common::start(|addr| ServeOptions {
        data_root: Some(data_root),
        compat_config: Some(compat),
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;
    (server, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_dump_run_the_config_as_jobs_answered_in_milvus_migrations_envelope() {
    let root = common::sample_root();
    let root_path = root.path().canonicalize().unwrap();
    let (server, file) = server(&root_path).await;
    let mut c = Client {
        base: server.base.clone(),
        http: reqwest::Client::new(),
        seen: Vec::new(),
    };

    // healthy: the envelope, the RequestId header echoed, else a new `req-…`.
    let r = c
        .http
        .get(format!("{}/api/v1/healthy", c.base))
        .bearer_auth(TOKEN)
        .header("RequestId", "my-request-7");
    let (status, answer) = c.send(r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"code": 0, "msg": "success", "data": "ok", "requestId": "my-request-7"})
    );
    let (_, answer) = c.get("/api/v1/healthy").await;
    let rid = answer["requestId"].as_str().unwrap();
    assert!(rid.starts_with("req-") && rid.len() == 25, "{answer}");

    // The document lists the routes this server serves.
    let (_, doc) = c.get("/openapi.json").await;
    for path in [
        "/api/v1/healthy",
        "/api/v1/start",
        "/api/v1/dump",
        "/api/v1/load",
        "/api/v1/get_job",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not in the document");
    }

    // start, synchronously: answered once the job is done, with its id.
    let (status, answer) = c
        .post("/api/v1/start", r#"{"async": false, "requestId": "x"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["code"], &answer["msg"]),
        (&json!(0), &json!("success")),
        "{answer}"
    );
    let id = answer["data"]["jobId"].as_str().unwrap().to_string();
    assert!(id.starts_with("start_") && id.len() == 27, "{answer}");
    assert!(id[6..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");

    // get_job: milvus-migration's JobInfo, done, every task finished.
    let (status, answer) = c.get(&format!("/api/v1/get_job?jobId={id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["code"], 0, "{answer}");
    let info = &answer["data"];
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "finishTasks",
            "jobId",
            "jobProcess",
            "jobStatus",
            "msg",
            "totalTasks"
        ],
        "{answer}"
    );
    assert_eq!(info["jobId"], id.as_str());
    assert_eq!(info["jobStatus"], "success", "{answer}");
    assert_eq!(info["jobProcess"], 100, "{answer}");
    assert_eq!(info["msg"], "", "{answer}");
    let total = info["totalTasks"].as_u64().unwrap();
    assert!(total > 0, "{answer}");
    assert_eq!(info["finishTasks"].as_u64(), Some(total), "{answer}");

    // The staged NumPy files hold the index's rows: its ids (1,000,000 + 3·i) once each, with
    // the vectors vmig's Faiss reader reads for them (the same index into NumPy files through
    // `/v1/jobs`, vector `vector` there); the job is one of /v1/jobs.
    let out = rows(&root_path.join("output/migration"), "data");
    let ids: Vec<i64> = out.iter().map(|(id, _)| *id).collect();
    let expected: Vec<i64> = (0..2000).map(|i| 1_000_000 + 3 * i).collect();
    assert_eq!(ids, expected);
    assert!(out.windows(2).all(|w| w[0].1 != w[1].1), "vectors repeat");
    let reference = "[source]\ntype = \"faiss\"\npath = \"data/sample.faiss\"\n\n[sink]\ntype = \"files\"\npath = \"reference\"\nformat = \"numpy\"\n";
    let r = c
        .http
        .post(format!("{}/v1/jobs?name=reference", c.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/toml")
        .body(reference);
    let (status, answer) = c.send(r).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(c.until_stopped("reference").await["jobStatus"], "success");
    assert_eq!(rows(&root_path.join("reference"), "vector"), out);
    let (_, view) = c.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (&view["kind"], &view["state"]),
        (&json!("migrate"), &json!("done")),
        "{view}"
    );
    assert_eq!(view["rows_written"], 2000, "{view}");

    // dump, asynchronously, after the config changed (read again per request): answered at
    // once; get_job follows it to the end; the files are where the new config says.
    std::fs::write(&file, config(&root_path, "output2")).unwrap();
    let (_, answer) = c.post("/api/v1/dump", r#"{"async": true}"#).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let dump = answer["data"]["jobId"].as_str().unwrap().to_string();
    assert!(dump.starts_with("dump_") && dump.len() == 26, "{answer}");
    let info = c.until_stopped(&dump).await;
    assert_eq!(info["jobStatus"], "success", "{info}");
    assert_eq!(info["jobProcess"], 100, "{info}");
    assert_eq!(rows(&root_path.join("output2/migration"), "data"), out);

    // load: nothing to import in local mode; vmig-compat's message, no job.
    let (status, answer) = c.post("/api/v1/load", r#"{"async": false}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["code"], 500, "{answer}");
    assert_eq!(answer["data"], Value::Null, "{answer}");
    let msg = answer["msg"].as_str().unwrap();
    assert_eq!(
        msg,
        format!(
            "invalid `migration.yaml` configuration: {}: target.mode is `local`: milvus-migration's `load` has nothing to import there (use `target.mode: remote` with target.milvus2x)",
            file.display()
        )
    );

    // collectionNames cannot be honoured in faiss mode: refused, not ignored.
    let (_, answer) = c
        .post("/api/v1/dump", r#"{"collectionNames": ["a"]}"#)
        .await;
    assert_eq!(answer["code"], 500, "{answer}");
    assert_eq!(
        answer["msg"],
        "invalid `migration.yaml` configuration: collectionNames: it selects Milvus 1.x collections (workMode `milvus1x`); workMode `faiss` has none to select (milvus-migration ignored it there): send the request without it"
    );

    // A typo in the config: the key named, in the envelope.
    let typo = config(&root_path, "output3").replace("shardsNum: 2", "shardsNums: 2");
    std::fs::write(&file, typo).unwrap();
    let (_, answer) = c.post("/api/v1/start", r#"{"async": true}"#).await;
    assert_eq!(answer["code"], 500, "{answer}");
    assert!(
        answer["msg"].as_str().unwrap().ends_with(
            "unknown key `target.create.collection.shardsNums` (did you mean `shardsNum`?)"
        ),
        "{answer}"
    );

    // An unknown job; no jobId; a body that is not the documented JSON.
    let (status, answer) = c.get("/api/v1/get_job?jobId=start_nope").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&answer["code"], &answer["msg"], &answer["data"]),
        (
            &json!(500),
            &json!("no job `start_nope` on this server"),
            &Value::Null
        )
    );
    let (status, answer) = c.get("/api/v1/get_job").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], 500);
    assert_eq!(
        answer["msg"],
        "`jobId` is empty: give the id `start`, `dump` or `load` answered"
    );
    let (status, answer) = c.post("/api/v1/start", r#"{"async": "yes"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (&answer["code"], &answer["msg"]),
        (&json!(500), &json!("`async` is true or false"))
    );

    // The token: every one of these routes needs it.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/healthy"),
        (reqwest::Method::POST, "/api/v1/start"),
        (reqwest::Method::POST, "/api/v1/dump"),
        (reqwest::Method::POST, "/api/v1/load"),
        (reqwest::Method::GET, "/api/v1/get_job?jobId=x"),
    ] {
        let r = c
            .http
            .request(method, format!("{}{path}", c.base))
            .body("{}");
        let (status, answer) = c.send(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
    }

    // The config's secrets are in no answer (the job views and plans included).
    let (_, list) = c.get("/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3, "{list}");
    for id in [&id, &dump] {
        c.get(&format!("/v1/jobs/{id}")).await;
    }
    for answer in &c.seen {
        for secret in SECRETS {
            assert!(!answer.contains(secret), "a secret in an answer: {answer}");
        }
    }
    server.stop.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_compat_config_the_routes_are_not_served_nor_documented() {
    let server = common::start(|addr| ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/v1/healthy", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let doc: Value = http
        .get(format!("{}/openapi.json", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/jobs"));
    assert!(
        !paths.keys().any(|p| p.starts_with("/api/")),
        "{:?}",
        paths.keys()
    );
    server.stop.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_compat_config_that_is_not_one_refuses_the_start() {
    let root = tempfile::tempdir().unwrap();
    let job = root.path().join("job.yaml");
    std::fs::write(&job, "source:\n  type: faiss\n").unwrap();
    for (file, expected) in [
        (
            job.clone(),
            format!(
                "invalid `serve` configuration: the milvus-migration config {} is not one (a `.yaml` file with a top-level `dumper`)",
                job.display()
            ),
        ),
        (
            root.path().join("missing.yaml"),
            format!(
                "invalid `serve` configuration: the milvus-migration config: cannot read {}",
                root.path().join("missing.yaml").display()
            ),
        ),
    ] {
        let options = ServeOptions {
            compat_config: Some(file),
            ..ServeOptions::new("127.0.0.1:0".parse().unwrap(), Tokens::new([TOKEN]).unwrap())
        };
        let e = options.check().unwrap_err().to_string();
        assert!(e.contains(&expected), "{e}");
    }
}

/// `(id, vector bytes)` of every row of the NumPy units (`part-*/id.npy`, `part-*/data.npy`)
/// under `dir`, by id.
fn id_and_data(dir: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    parts.sort();
    assert!(!parts.is_empty(), "no unit in {}", dir.display());
    for part in parts {
        let (_, id_shape, ids) = npy(&part.join("id.npy"));
        let (vec_type, vec_shape, vecs) = npy(&part.join("data.npy"));
        assert_eq!(vec_type, "<f4");
        assert_eq!(vec_shape[0], id_shape[0]);
        let width = vec_shape[1] * 4;
        for (i, id) in ids.chunks_exact(8).enumerate() {
            let id = i64::from_le_bytes(id.try_into().unwrap());
            out.push((id, vecs[i * width..(i + 1) * width].to_vec()));
        }
    }
    out.sort();
    out
}

/// README_1X.md's sqlite form over the 1.x root `root/milvus`, staging to `root/<output>`.
fn config_1x(root: &Path, output: &str) -> String {
    format!(
        "dumper:
  worker:
    workMode: milvus1x
meta:
  mode: sqlite
  sqliteFile: {root}/milvus/db/meta.sqlite
source:
  mode: local
  local:
    tablesDir: {root}/milvus/db/tables/
target:
  mode: local
  local:
    outputDir: {root}/{output}/
",
        root = root.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_of_two_collections_is_two_jobs_under_one_id_each_cancellable_and_resumable() {
    use vmig_testing::milvus1::{FileType, Metric, Milvus1Gen};
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let mut g = Milvus1Gen::new(11);
    let books = g.collection("books", 32, Metric::L2);
    g.segment(books, 60_000, &[5, 70], FileType::Raw);
    let films = g.collection("films", 8, Metric::Ip);
    g.segment(films, 500, &[], FileType::Raw);
    g.write_dir(&root_path.join("milvus")).await.unwrap();
    let expected = |name: &str| -> Vec<(i64, Vec<u8>)> {
        let mut rows: Vec<(i64, Vec<u8>)> = g.expected(name)[""]
            .iter()
            .map(|r| (r.id, r.vector.clone()))
            .collect();
        rows.sort();
        rows
    };
    let file = root_path.join("migration.yaml");
    std::fs::write(&file, config_1x(&root_path, "out")).unwrap();
    // One job at a time: `films` waits behind `books`.
    let (data_root, compat) = (root_path.clone(), file.clone());
    let server = common::start(|addr| ServeOptions {
        data_root: Some(data_root),
        compat_config: Some(compat),
        max_jobs: 1,
        ..ServeOptions::new(addr, Tokens::new([TOKEN]).unwrap())
    })
    .await;
    let mut c = Client {
        base: server.base.clone(),
        http: reqwest::Client::new(),
        seen: Vec::new(),
    };

    let (_, answer) = c.post("/api/v1/start", r#"{"async": true}"#).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let id = answer["data"]["jobId"].as_str().unwrap().to_string();
    // The queued part is cancelled through /v1/jobs, as any job.
    let (status, view) = c.post(&format!("/v1/jobs/{id}-films/cancel"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["state"], "queued", "{view}");
    assert_eq!(
        c.until_stopped(&format!("{id}-films")).await["jobStatus"],
        "fail"
    );
    // The request's job fails as soon as a part did, saying which and how to go on.
    let (_, answer) = c.get(&format!("/api/v1/get_job?jobId={id}")).await;
    let info = &answer["data"];
    assert_eq!(info["jobId"], id.as_str(), "{answer}");
    assert_eq!(info["jobStatus"], "fail", "{answer}");
    assert!(
        info["msg"].as_str().unwrap().contains(&format!(
            "{id}-films: job `{id}-films` was cancelled (POST /v1/jobs/{id}-films/cancel); POST /v1/jobs/{id}-films/resume runs it on"
        )),
        "{answer}"
    );
    assert_eq!(
        c.until_stopped(&format!("{id}-books")).await["jobStatus"],
        "success"
    );
    assert_eq!(
        id_and_data(&root_path.join("out/migration/books")),
        expected("books")
    );
    assert!(!root_path.join("out/migration/films").exists());
    // Resumed, it runs (translated again from the config, as the part it is).
    let (status, view) = c.post(&format!("/v1/jobs/{id}-films/resume"), "").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(
        view["plan"]["source"]["config"]["collections"],
        json!(["films"]),
        "{view}"
    );
    let info = c.until_stopped(&id).await;
    assert_eq!(info["jobStatus"], "success", "{info}");
    assert_eq!(info["jobProcess"], 100, "{info}");
    assert_eq!(info["msg"], "", "{info}");
    let total = info["totalTasks"].as_u64().unwrap();
    assert!(total >= 2, "{info}");
    assert_eq!(info["finishTasks"].as_u64(), Some(total), "{info}");
    assert_eq!(
        id_and_data(&root_path.join("out/migration/films")),
        expected("films")
    );

    // dump with collectionNames: only those, synchronously; a name the meta lacks is refused.
    std::fs::write(&file, config_1x(&root_path, "out2")).unwrap();
    let (_, answer) = c
        .post(
            "/api/v1/dump",
            r#"{"async": false, "collectionNames": ["films"]}"#,
        )
        .await;
    assert_eq!(
        (&answer["code"], &answer["msg"]),
        (&json!(0), &json!("success")),
        "{answer}"
    );
    assert_eq!(
        id_and_data(&root_path.join("out2/migration/films")),
        expected("films")
    );
    assert!(!root_path.join("out2/migration/books").exists());
    let (_, answer) = c
        .post("/api/v1/dump", r#"{"collectionNames": ["films", "nope"]}"#)
        .await;
    assert_eq!(answer["code"], 500, "{answer}");
    assert_eq!(
        answer["msg"],
        "collectionNames: `nope` is not a live collection of the Milvus 1.x meta (it has books, films)",
        "{answer}"
    );
    assert!(answer["data"].is_null(), "{answer}");
    server.stop.cancel();
    server.task.await.unwrap().unwrap();
}
