//! `vmig` on milvus-migration config files (`migration.yaml`): run end to end where no server is
//! needed, and `vmig convert`'s output.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmig_testing::process::output_text as text;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.faiss")
}

fn vmig_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmig"))
        .args(args)
        .current_dir(dir)
        .env_remove("VMIG_LOG")
        .output()
        .unwrap()
}

/// README_FAISS.md's example with `target.mode: local` (milvus-migration's `dump` to a local
/// directory) and a relative `faissFile`, resolved against the working directory as
/// milvus-migration resolves it.
fn faiss_local(dir: &Path) -> PathBuf {
    std::fs::copy(sample(), dir.join("faiss.index")).unwrap();
    let path = dir.join("migration.yaml");
    std::fs::write(
        &path,
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
  mode: local   # local or remote
  local:
    faissFile: ./faiss.index

target:
  mode: local
  local:
    outputDir: output/

  milvus2x: # milvus2x connect info
    endpoint: xxxxxx:19530
    username: xxxxx
    password: n0t-shown-pw

  create:           # create collection info:
    collection:
      name: test
      shardsNum: 2
      dim: 64
      metricType: L2
",
    )
    .unwrap();
    path
}

#[test]
fn faiss_local_mode_runs_end_to_end_into_numpy_files() {
    let dir = tempfile::tempdir().unwrap();
    faiss_local(dir.path());
    let out = vmig_in(
        dir.path(),
        &["migrate", "migration.yaml", "--json", "--progress", "none"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows_read"], 2000, "{summary}");
    assert_eq!(summary["rows_written"], 2000, "{summary}");
    let staged = dir.path().join("output/migration");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&staged).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            for f in std::fs::read_dir(&entry).unwrap() {
                names.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    assert!(names.contains(&"id.npy".to_string()), "{names:?}");
    assert!(names.contains(&"data.npy".to_string()), "{names:?}");
    // The job is known to the state store under the file's name.
    let status = vmig_in(dir.path(), &["status", "migration.yaml", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
}

#[test]
fn convert_prints_the_job_with_notes_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    faiss_local(dir.path());
    let out = vmig_in(dir.path(), &["convert", "migration.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(!printed.contains("n0t-shown-pw"), "{printed}");
    assert!(printed.contains("type = \"files\""), "{printed}");
    assert!(printed.contains("format = \"numpy\""), "{printed}");
    assert!(
        printed.contains("# target.milvus2x: target.mode is local: nothing is loaded into Milvus"),
        "{printed}"
    );
    let yaml = vmig_in(
        dir.path(),
        &["convert", "migration.yaml", "--format", "yaml"],
    );
    assert!(yaml.status.success(), "{}", text(&yaml));
    assert!(String::from_utf8(yaml.stdout)
        .unwrap()
        .contains("type: rename"));
}

#[test]
fn a_typo_is_an_error_naming_the_key_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = faiss_local(dir.path());
    let text_in = std::fs::read_to_string(&path)
        .unwrap()
        .replace("shardsNum: 2", "shardsNums: 2");
    std::fs::write(&path, text_in).unwrap();
    let out = vmig_in(dir.path(), &["plan", "migration.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid `migration.yaml` configuration: migration.yaml: unknown key `target.create.collection.shardsNums` (did you mean `shardsNum`?)"),
        "{stderr}"
    );
}

/// The S3-backed Milvus 2.3.5 (`VMIG_MILVUS_S3_*`, started by scripts/services): the one whose
/// bucket a `target.remote` can stage in, as milvus-migration's users point it at Milvus's own.
struct S3Milvus {
    server: vmig_testing::service::MilvusServer,
    endpoint: String,
    bucket: String,
    ak: String,
    sk: String,
}

fn s3_milvus() -> Option<S3Milvus> {
    let uri = vmig_testing::service::endpoint(
        "VMIG_MILVUS_S3_URI",
        "Milvus 2.3.5 with S3 storage (scripts/services start)",
    )?;
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some(S3Milvus {
        server: vmig_testing::service::MilvusServer {
            uri,
            user: get("VMIG_MILVUS_S3_USER", "root"),
            password: get("VMIG_MILVUS_S3_PASSWORD", "Milvus"),
            python: std::env::var("VMIG_MILVUS_PYTHON")
                .ok()
                .filter(|p| !p.is_empty()),
        },
        endpoint: get("VMIG_MILVUS_S3_ENDPOINT", "http://127.0.0.1:19100"),
        bucket: get("VMIG_MILVUS_S3_BUCKET", "milvus-bucket"),
        ak: get("VMIG_MILVUS_S3_ACCESS_KEY", "test"),
        sk: get("VMIG_MILVUS_S3_SECRET_KEY", "testsecret"),
    })
}

impl S3Milvus {
    /// `host:port` of the Milvus gRPC endpoint, as milvus-migration's configs write it.
    fn host_port(&self) -> &str {
        self.server
            .uri
            .trim_start_matches("http://")
            .trim_end_matches('/')
    }

    /// README_1X.md's `target` block: bulk import staged under `out` in this server's bucket.
    fn remote_target(&self, out: &str) -> String {
        format!(
            "target:
  mode: remote
  remote:
    outputDir: {out}
    cloud: aws
    endpoint: {endpoint}
    region: us-east-1
    bucket: {bucket}
    ak: {ak}
    sk: {sk}
    useIAM: false
    useSSL: false
    checkBucket: true
  milvus2x:
    endpoint: {milvus}
    username: {user}
    password: {password}
",
            endpoint = self.endpoint.trim_start_matches("http://"),
            bucket = self.bucket,
            ak = self.ak,
            sk = self.sk,
            milvus = self.host_port(),
            user = self.server.user,
            password = self.server.password,
        )
    }

    /// An IVF_FLAT index on `field` and a load, so that `vmig verify` can query `collection`
    /// (milvus-migration builds no index either).
    fn index_and_load(&self, collection: &str, field: &str) {
        self.server.pymilvus(&format!(
            "c = Collection('{collection}')\nc.create_index('{field}', {{'index_type': 'IVF_FLAT', 'metric_type': 'L2', 'params': {{'nlist': 16}}}})\nc.load()\nprint(c.num_entities)"
        ));
    }

    /// (id, first vector component bits, other_field) of every row of `collection`.
    fn describe(&self, collection: &str) -> String {
        self.server.pymilvus(&format!(
            "c = Collection('{collection}')\nprint([(f.name, f.dtype.name, f.is_primary, f.params) for f in c.schema.fields], c.schema.enable_dynamic_field, c.description, c.num_shards if hasattr(c, 'num_shards') else '')"
        ))
    }
}

/// README_ES.md's example with hosts, bucket and index pointed at the test services.
fn es_config(es: &str, m: &S3Milvus, index: &str, collection: &str, output: &str) -> String {
    format!(
        "dumper:
  worker:
    workMode: elasticsearch   # migration mode: elasticsearch, faiss, milvus1x
    reader:
      bufferSize: 250      # es data total rows in each time read from es.
meta:
  mode: config            #config: will read meta config from this config itself.
  index: {index}    #es index
  fields:                 # es index fields of need migrate to milvus2x
    - name: id            #field name
      type: long
      pk: true            #set pk=true will use this field as milvus collection primary key
    - name: data
      type: dense_vector  #dense_vector field have to migrate field.
      dims: 16           #vector dims
    - name: other_field
      type: keyword
      maxLen: 60          #as milvus collection Varchar type filed maxLen property.
  milvus:               #optional configuration
    collection: {collection}  #if not exits, will use es index as collection name.
    closeDynamicField: false
    shardNum: 2
    consistencyLevel: Customized
source:               # es connect configuration
  es:
    urls:
      - {es}
target:
  mode: remote
  remote:
    outputDir: {output}   # temp storage source data, cannot start with '/'
    cloud: aws                    #cloud includes: aws(s3,minio), gcp, ali(oss)
    endpoint: {endpoint}     # here is the minio server endpoint
    region: us-east-1       # region, if local server needn't it
    bucket: {bucket}      # bucket name, need same with milvus2.x bucket name
    ak: {ak}        # ak/sk, if useIAM=false, need ak/sk
    sk: {sk}
    useIAM: false         #if useIAM=true, not need ak/sk.
    useSSL: false
    checkBucket: true     #if bucket not exits will create bucket when set checkBucket=true

  milvus2x:
    endpoint: {milvus}
    username: {user}
    password: {password}
",
        endpoint = m.endpoint.trim_start_matches("http://"),
        bucket = m.bucket,
        ak = m.ak,
        sk = m.sk,
        milvus = m.host_port(),
        user = m.server.user,
        password = m.server.password,
    )
}

/// README_2X.md's example (with its optional `meta.fields` and `meta.milvus`) copying
/// `collection` into `target` on the same server.
fn milvus2x_config(m: &S3Milvus, collection: &str, target: &str) -> String {
    format!(
        "dumper:
  worker:
    workMode: milvus2x      # work mode：milvus2x->milvus2x
    reader:
      bufferSize: 500       # Read source data rows in each time read from Source Milvus.

meta:                       # meta part
  mode: config              # 'config' mode means will get meta config from this config file itself.
  version: 2.3.0            #  Source Milvus version
  collection: {collection} # migrate data from this source collection
  fields:
    - name: id
    - name: data
  milvus:
    collection: {target}
    shardNum: 1
    consistencyLevel: Strong

source:                     # source milvus connection info
  milvus2x:
    endpoint: {milvus}
    username: {user}
    password: {password}

target:                    # target milvus collection info
  milvus2x:
    endpoint: {milvus}
    username: {user}
    password: {password}
",
        milvus = m.host_port(),
        user = m.server.user,
        password = m.server.password,
    )
}

#[test]
fn es_and_milvus2x_configs_run_end_to_end_into_real_milvus_and_verify() {
    let (Some(es), Some(m)) = (vmig_testing::service::elasticsearch(), s3_milvus()) else {
        return;
    };
    let index = vmig_testing::service::unique("compat_es").to_lowercase();
    let mapping = serde_json::json!({
        "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
        "mappings": { "properties": {
            "id": { "type": "long" },
            "data": { "type": "dense_vector", "dims": 16, "index": true, "similarity": "l2_norm" },
            "other_field": { "type": "keyword" },
            "not_migrated": { "type": "text" }
        }}
    });
    let rows = 600;
    let vectors = vmig_testing::gen::vectors(16, rows, 16);
    let docs = vectors.chunks(16).enumerate().map(|(i, v)| {
        let v: Vec<String> = v.iter().map(|f| format!("{f}")).collect();
        (
            format!("doc-{i}"),
            format!(
                "{{\"id\":{},\"data\":[{}],\"other_field\":\"k{}\",\"not_migrated\":\"x\"}}",
                1_000_000 + i,
                v.join(","),
                i % 13
            ),
        )
    });
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vmig_testing::es::create_and_load(
            &es, &index, &mapping, docs,
        ));

    let dir = tempfile::tempdir().unwrap();
    let started = vmig_testing::service::unique("compat_es_start");
    let out = vmig_testing::service::unique("compat-out");
    std::fs::create_dir(dir.path().join("configs")).unwrap();
    // `vmig start` without -c reads ./configs/migration.yaml, as milvus-migration does.
    std::fs::write(
        dir.path().join("configs/migration.yaml"),
        es_config(&es, &m, &index, &started, &out),
    )
    .unwrap();
    let o = vmig_in(dir.path(), &["start", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], rows as u64, "{summary}");
    assert!(
        !text(&o).contains(&m.sk),
        "the stage's secret key is never printed"
    );
    let described = m.describe(&started);
    for want in [
        "('id', 'INT64', True",
        "('data', 'FLOAT_VECTOR', False, {'dim': 16})",
        "('other_field', 'VARCHAR', False, {'max_length': 60})",
        "True Migration from Elasticsearch 2",
    ] {
        assert!(described.contains(want), "{want} not in {described}");
    }
    assert!(!described.contains("not_migrated"), "{described}");
    m.index_and_load(&started, "data");
    let v = vmig_in(dir.path(), &["verify", "configs/migration.yaml", "--json"]);
    common::assert_verify_clean(&v, rows as u64);

    // dump, then load, into another collection: the same rows.
    let split = vmig_testing::service::unique("compat_es_split");
    let split_out = vmig_testing::service::unique("compat-split");
    std::fs::write(
        dir.path().join("split.yaml"),
        es_config(&es, &m, &index, &split, &split_out),
    )
    .unwrap();
    let o = vmig_in(dir.path(), &["dump", "-c", "split.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let described = m
        .server
        .pymilvus(&format!("print(utility.has_collection('{split}'))"));
    assert_eq!(described.trim(), "False", "dump imports nothing");
    let o = vmig_in(dir.path(), &["load", "--config", "split.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], rows as u64, "{summary}");
    m.index_and_load(&split, "data");
    let v = vmig_in(dir.path(), &["verify", "split.yaml", "--json"]);
    common::assert_verify_clean(&v, rows as u64);

    // milvus2x: the first collection's id and data into a third.
    let copied = vmig_testing::service::unique("compat_m2_copy");
    std::fs::write(
        dir.path().join("m2.yaml"),
        milvus2x_config(&m, &started, &copied),
    )
    .unwrap();
    let o = vmig_in(dir.path(), &["start", "-c", "m2.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let described = m.describe(&copied);
    assert!(!described.contains("other_field"), "{described}");
    assert!(
        described.contains("('data', 'FLOAT_VECTOR', False, {'dim': 16})"),
        "{described}"
    );
    m.index_and_load(&copied, "data");
    let v = vmig_in(dir.path(), &["verify", "m2.yaml", "--json"]);
    common::assert_verify_clean(&v, rows as u64);

    for c in [&started, &split, &copied] {
        m.server.drop_collection(c);
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .delete(format!("{es}/{index}"))
                .send()
                .await
        })
        .unwrap();
}

#[test]
fn faiss_remote_config_bulk_imports_into_real_milvus_and_verifies() {
    let Some(m) = s3_milvus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let local = faiss_local(dir.path());
    let collection = vmig_testing::service::unique("compat_faiss");
    let out = vmig_testing::service::unique("compat-faiss");
    // README_FAISS.md's remote target, pointed at the S3-backed Milvus and its bucket.
    let config = std::fs::read_to_string(&local)
        .unwrap()
        .replace(
            "target:
  mode: local
  local:
    outputDir: output/

  milvus2x: # milvus2x connect info
    endpoint: xxxxxx:19530
    username: xxxxx
    password: n0t-shown-pw
",
            &format!(
                "target:
  mode: remote
  remote:
    outputDir: {out}
    cloud: aws
    endpoint: {endpoint}
    region: us-east-1
    bucket: {bucket}
    ak: {ak}
    sk: {sk}
    useIAM: false
    useSSL: false
    checkBucket: true

  milvus2x: # milvus2x connect info
    endpoint: {milvus}
    username: {user}
    password: {password}
",
                endpoint = m.endpoint.trim_start_matches("http://"),
                bucket = m.bucket,
                ak = m.ak,
                sk = m.sk,
                milvus = m.host_port(),
                user = m.server.user,
                password = m.server.password,
            ),
        )
        .replace("name: test", &format!("name: {collection}"));
    std::fs::write(&local, config).unwrap();
    let o = vmig_in(dir.path(), &["start", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let described = m.describe(&collection);
    for want in [
        "('id', 'INT64', True",
        "('data', 'FLOAT_VECTOR', False, {'dim': 64})",
        "Migration from Milvus1.x 2",
    ] {
        assert!(described.contains(want), "{want} not in {described}");
    }
    m.index_and_load(&collection, "data");
    let v = vmig_in(dir.path(), &["verify", "migration.yaml", "--json"]);
    let report = common::assert_verify_clean(&v, 2000);
    assert_eq!(report["target_rows"], 2000);

    // A dimension that is not the index's is refused before anything is written.
    let wrong = std::fs::read_to_string(&local)
        .unwrap()
        .replace("dim: 64", "dim: 128");
    std::fs::write(&local, wrong).unwrap();
    let o = vmig_in(dir.path(), &["plan", "migration.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "`dims` gives field `vector` 128 dimensions, but it is a fixed-size list of 64 values"
        ),
        "{}",
        text(&o)
    );
    m.server.drop_collection(&collection);
}

/// Two Milvus 1.x collections under `dir/milvus` — `books_<unique>` (dim 8, L2; segments with
/// deletes, and partition `p2023`: 30 rows, 1 deleted) and `films_<unique>` (dim 16, IP) — and
/// `dir/migration.yaml`, README_1X.md's sqlite form pointed at them and at the S3-backed Milvus.
/// Returns the generator (whose `expected` gives the rows) and the two collection names.
fn milvus1x_two_collections(
    m: &S3Milvus,
    dir: &Path,
) -> (vmig_testing::milvus1::Milvus1Gen, String, String) {
    use vmig_testing::milvus1::{FileType, Metric, Milvus1Gen};
    let suffix = vmig_testing::service::unique("c");
    let (books, films) = (format!("books_{suffix}"), format!("films_{suffix}"));
    let mut g = Milvus1Gen::new(5);
    let b = g.collection(&books, 8, Metric::L2);
    g.segment(b, 60, &[4, 9, 4], FileType::Raw);
    let p = g.partition(b, "p2023");
    g.segment(p, 30, &[0], FileType::ToIndex);
    let f = g.collection(&films, 16, Metric::Ip);
    g.segment(f, 45, &[], FileType::Raw);
    let root = dir.join("milvus");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(g.write_dir(&root))
        .unwrap();
    let out = vmig_testing::service::unique("compat-1x");
    // README_1X.md's sqlite form, pointed at the generated 1.x root and the S3-backed Milvus.
    std::fs::write(
        dir.join("migration.yaml"),
        format!(
            "dumper:
  worker:
    limit: 2
    workMode: milvus1x
    reader:
      bufferSize: 1024
    writer:
      bufferSize: 1024
loader:
  worker:
    limit: 2
meta:
  mode: sqlite
  sqliteFile: ./milvus/db/meta.sqlite
source:
  mode: local
  local:
    tablesDir: ./milvus/db/tables/
{target}",
            target = m.remote_target(&out),
        ),
    )
    .unwrap();
    (g, books, films)
}

/// The two collections of [`milvus1x_two_collections`] in Milvus: their vector fields, `vmig
/// verify` clean for each, and `books`' 1.x partition `p2023` as a Milvus partition of 29 rows.
fn assert_two_milvus1x_collections_verify(m: &S3Milvus, dir: &Path, books: &str, films: &str) {
    for (name, rows, dim) in [(books, 60 - 2 + 30 - 1, 8), (films, 45, 16)] {
        let described = m.describe(name);
        assert!(
            described.contains(&format!(
                "('data', 'FLOAT_VECTOR', False, {{'dim': {dim}}})"
            )),
            "{described}"
        );
        m.index_and_load(name, "data");
        let v = vmig_in(
            dir,
            &["verify", "migration.yaml", "--collection", name, "--json"],
        );
        common::assert_verify_clean(&v, rows);
    }
    let partitions = m.server.pymilvus(&format!(
        "print(sorted(p.name for p in Collection('{books}').partitions), Collection('{books}').partition('p2023').num_entities)"
    ));
    assert_eq!(partitions.trim(), "['_default', 'p2023'] 29");
}

#[test]
fn milvus1x_config_over_two_collections_migrates_each_into_its_own_and_verifies() {
    let Some(m) = s3_milvus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, books, films) = milvus1x_two_collections(&m, dir.path());
    // One job per collection: plan names them and asks for one.
    let o = vmig_in(dir.path(), &["plan", "migration.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "is 2 jobs, one per target collection ({books}, {films})"
        )),
        "{}",
        text(&o)
    );
    let o = vmig_in(dir.path(), &["start", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_two_milvus1x_collections_verify(&m, dir.path(), &books, &films);
    // A second start finds both jobs finished and skips them.
    let o = vmig_in(dir.path(), &["start", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "job `migration-{films}` already finished; skipped"
        )),
        "{}",
        text(&o)
    );
    for c in [&books, &films] {
        m.server.drop_collection(c);
    }
}

/// Writes `bytes` to `s3://<bucket>/<key>` on the S3 test server (pyarrow's S3 filesystem).
fn put_s3(m: &S3Milvus, key: &str, bytes: &[u8]) {
    let python = vmig_testing::service::python().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("object");
    std::fs::write(&local, bytes).unwrap();
    let script = r#"
import sys
from pyarrow import fs
endpoint, key, secret, bucket, name, local = sys.argv[1:7]
s3 = fs.S3FileSystem(access_key=key, secret_key=secret, endpoint_override=endpoint, scheme="http", region="us-east-1")
with s3.open_output_stream(f"{bucket}/{name}") as out, open(local, "rb") as f:
    out.write(f.read())
"#;
    vmig_testing::process::python(
        &python,
        script,
        &[
            m.endpoint.trim_start_matches("http://"),
            &m.ak,
            &m.sk,
            &m.bucket,
            key,
            local.to_str().unwrap(),
        ],
    );
}

#[test]
fn es_meta_file_in_the_bucket_runs_one_job_per_index_into_real_milvus_and_verifies() {
    let (Some(es), Some(m)) = (vmig_testing::service::elasticsearch(), s3_milvus()) else {
        return;
    };
    // Two indexes: `books` keyed by its `id` field into a collection named in the meta file,
    // `notes` keyed by `_id` into the collection of its own name.
    let books = vmig_testing::service::unique("cm_books").to_lowercase();
    let notes = vmig_testing::service::unique("cm_notes").to_lowercase();
    let books_target = vmig_testing::service::unique("cm_lib");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (book_rows, note_rows) = (240, 130);
    let book_vectors = vmig_testing::gen::vectors(21, book_rows, 16);
    let note_vectors = vmig_testing::gen::vectors(22, note_rows, 8);
    let floats = |v: &[f32]| {
        v.iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    rt.block_on(vmig_testing::es::create_and_load(
        &es,
        &books,
        &serde_json::json!({ "mappings": { "properties": {
            "id": { "type": "long" },
            "data": { "type": "dense_vector", "dims": 16, "similarity": "l2_norm" },
            "title": { "type": "keyword" }
        }}}),
        book_vectors.chunks(16).enumerate().map(|(i, v)| {
            (
                format!("b{i}"),
                format!(
                    "{{\"id\":{},\"data\":[{}],\"title\":\"t{i}\"}}",
                    5_000 + i,
                    floats(v)
                ),
            )
        }),
    ));
    rt.block_on(vmig_testing::es::create_and_load(
        &es,
        &notes,
        &serde_json::json!({ "mappings": { "properties": {
            "emb": { "type": "dense_vector", "dims": 8, "similarity": "l2_norm" },
            "n": { "type": "integer" }
        }}}),
        note_vectors.chunks(8).enumerate().map(|(i, v)| {
            (
                format!("note-{i}"),
                format!("{{\"emb\":[{}],\"n\":{i}}}", floats(v)),
            )
        }),
    ));
    // As Go's json.Marshal writes milvus-migration's estype.MetaJSON: every key, zero values
    // and its bookkeeping included.
    let meta = serde_json::json!({
        "indexs": [
            {
                "index": books, "rows": book_rows,
                "fields": [
                    { "type": "long", "name": "id", "dims": 0, "maxLen": 0, "pk": true },
                    { "type": "dense_vector", "name": "data", "dims": 16, "maxLen": 0, "pk": false },
                    { "type": "keyword", "name": "title", "dims": 0, "maxLen": 32, "pk": false }
                ],
                "milvus": { "collection": books_target, "dims": 0, "shardNum": 1,
                    "closeDynamicField": true, "consistencyLevel": "Strong", "loadData": false,
                    "createIndex": false, "autoId": "", "pkName": "" },
                "InnerPkField": null, "InnerPkType": null
            },
            {
                "index": notes, "rows": note_rows,
                "fields": [
                    { "type": "dense_vector", "name": "emb", "dims": 8, "maxLen": 0, "pk": false },
                    { "type": "integer", "name": "n", "dims": 0, "maxLen": 0, "pk": false }
                ],
                "milvus": null,
                "InnerPkField": null, "InnerPkType": null
            }
        ],
        "version": "8.11.0"
    });
    let meta_key = format!("{}/es-meta.json", vmig_testing::service::unique("cm-meta"));
    put_s3(&m, &meta_key, meta.to_string().as_bytes());
    let out = vmig_testing::service::unique("cm-out");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("migration.yaml"),
        format!(
            "dumper:
  worker:
    workMode: elasticsearch
meta:
  mode: remote
  remoteMetaFile: {meta_key}
source:
  es:
    urls:
      - {es}
  remote:
    cloud: aws
    endpoint: {endpoint}
    region: us-east-1
    bucket: {bucket}
    ak: {ak}
    sk: {sk}
    useIAM: false
{target}",
            endpoint = m.endpoint.trim_start_matches("http://"),
            bucket = m.bucket,
            ak = m.ak,
            sk = m.sk,
            target = m.remote_target(&out),
        ),
    )
    .unwrap();
    // Two jobs: plan names them and asks for one; convert prints the one asked for.
    let o = vmig_in(dir.path(), &["plan", "migration.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "is 2 jobs, one per target collection ({books_target}, {notes})"
        )),
        "{}",
        text(&o)
    );
    let o = vmig_in(
        dir.path(),
        &["convert", "migration.yaml", "--collection", &notes],
    );
    assert!(o.status.success(), "{}", text(&o));
    let converted = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        converted.contains(&format!("index = \"{notes}\"")),
        "{converted}"
    );
    assert!(converted.contains("indexs[1].fields"), "{converted}");
    assert!(!converted.contains(&m.sk), "{converted}");

    let o = vmig_in(dir.path(), &["start", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(&m.sk), "{}", text(&o));
    let described = m.describe(&books_target);
    for want in [
        "('id', 'INT64', True",
        "('data', 'FLOAT_VECTOR', False, {'dim': 16})",
        "('title', 'VARCHAR', False, {'max_length': 32})",
        "False Migration from Elasticsearch 1",
    ] {
        assert!(described.contains(want), "{want} not in {described}");
    }
    let described = m.describe(&notes);
    for want in [
        "('_id', 'VARCHAR', True, {'max_length': 65535})",
        "('emb', 'FLOAT_VECTOR', False, {'dim': 8})",
        "('n', 'INT32', False",
        "True Migration from Elasticsearch 2",
    ] {
        assert!(described.contains(want), "{want} not in {described}");
    }
    for (collection, vector, rows) in [
        (&books_target, "data", book_rows),
        (&notes, "emb", note_rows),
    ] {
        m.index_and_load(collection, vector);
        let v = vmig_in(
            dir.path(),
            &[
                "verify",
                "migration.yaml",
                "--collection",
                collection,
                "--json",
            ],
        );
        common::assert_verify_clean(&v, rows as u64);
    }
    // A second start finds both finished.
    let o = vmig_in(dir.path(), &["start", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "job `migration-{notes}` already finished; skipped"
        )),
        "{}",
        text(&o)
    );
    for c in [&books_target, &notes] {
        m.server.drop_collection(c);
    }
    for index in [&books, &notes] {
        rt.block_on(async {
            reqwest::Client::new()
                .delete(format!("{es}/{index}"))
                .send()
                .await
        })
        .unwrap();
    }
}

/// milvus-migration's `dump` then `load` over the same two 1.x collections: `dump` stages each
/// collection and imports nothing; `load` imports what it staged, and the rows of 1.x partition
/// `p2023` arrive in Milvus partition `p2023` — exactly those rows, ids and vector bits — and
/// the collection's own rows in `_default`, as `start` puts them.
#[test]
fn milvus1x_dump_then_load_keeps_the_partition() {
    let Some(m) = s3_milvus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (g, books, films) = milvus1x_two_collections(&m, dir.path());
    let o = vmig_in(dir.path(), &["dump", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let exists = m.server.pymilvus(&format!(
        "print(utility.has_collection('{books}'), utility.has_collection('{films}'))"
    ));
    assert_eq!(exists.trim(), "False False", "dump imports nothing");
    let o = vmig_in(dir.path(), &["load", "-c", "migration.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_two_milvus1x_collections_verify(&m, dir.path(), &books, &films);
    // Each Milvus partition holds exactly the rows of its 1.x partition (tag `""`: the
    // collection's own segments): ids and the bytes of every vector.
    let expected = g.expected(&books);
    for (partition, tag, rows) in [("p2023", "p2023", 29), ("_default", "", 58)] {
        let got = m.server.pymilvus(&format!(
            "import struct\nrows = Collection('{books}').query(expr='id >= 0', partition_names=['{partition}'], output_fields=['id', 'data'], consistency_level='Strong')\nfor r in sorted(rows, key=lambda r: r['id']):\n    print(r['id'], struct.pack('<%df' % len(r['data']), *r['data']).hex())"
        ));
        let got: Vec<&str> = got.lines().collect();
        let mut want: Vec<(i64, String)> = expected[tag]
            .iter()
            .map(|r| {
                let hex: String = r.vector.iter().map(|b| format!("{b:02x}")).collect();
                (r.id, hex)
            })
            .collect();
        want.sort();
        let want: Vec<String> = want.iter().map(|(id, v)| format!("{id} {v}")).collect();
        assert_eq!(want.len(), rows, "{partition}");
        assert_eq!(got, want, "rows of partition {partition}");
    }
    for c in [&books, &films] {
        m.server.drop_collection(c);
    }
}
