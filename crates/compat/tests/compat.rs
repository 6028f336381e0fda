//! milvus-migration configs written as its README files and `testfiles/` show them (paths
//! pointed at test directories), translated into vmig jobs.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::json;
use vmig_compat::{parse, render, translate, OutputFormat, Section, Translation};

/// The shape of README_FAISS.md's example.
const FAISS_README: &str = "
dumper:
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
    faissFile: /data/faiss.index

target:
  mode: remote
  remote:
    outputDir: output/ # don't start with /
    cloud: aws
    endpoint: 127.0.0.1:9000
    region: ap-southeast-1
    bucket: a-bucket
    ak: minioadmin-ak
    sk: s3cr3t-sk-value
    useIAM: false
    useSSL: false
    checkBucket: true

  milvus2x: # milvus2x connect info
    endpoint: milvus.example:19530
    username: root
    password: pa55w0rd-milvus

  create:           # create collection info:
    collection:
      name: test
      shardsNum: 2
      dim: 256
      metricType: L2
";

/// The shape of README_1X.md's MySQL example.
const MILVUS1_MYSQL: &str = r#"
dumper:
  worker:
    limit: 20 # dumper thread concurrency
    workMode: milvus1x
    reader:
      bufferSize: 1024 # unit is KB
    writer:
      bufferSize: 1024 # unit is KB

loader:
  worker:
    limit: 20 # loader thread concurrency

meta:
  mode: mysql
  mysqlUrl: "user:my-sql-pw@tcp(localhost:3306)/milvus?charset=utf8mb4&parseTime=True&loc=Local"

source:
  mode: local
  local:
    tablesDir: /db/tables/

target:
  mode: remote
  remote:
    outputDir: output/ # don't start with /
    cloud: aws
    endpoint: 127.0.0.1:9000
    region: ap-southeast-1
    bucket: a-bucket
    ak: minioadmin-ak
    sk: s3cr3t-sk-value
    useIAM: false
    useSSL: false
    checkBucket: true

  milvus2x: # milvus2x connect info
    endpoint: xxxxxx:19530
    username: xxxxx
    password: pa55w0rd-milvus
"#;

fn tr(text: &str) -> Translation {
    translate(&parse(text).unwrap(), Path::new("/work")).unwrap()
}

fn err(text: &str) -> String {
    match parse(text).and_then(|c| translate(&c, Path::new("/work"))) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn kinds(t: &Translation) -> Vec<&str> {
    t.job.transform.iter().map(|c| c.kind.as_str()).collect()
}

#[test]
fn faiss_readme_config_becomes_a_bulk_import_of_id_and_data() {
    let t = tr(FAISS_README);
    assert_eq!(t.work_mode, "faiss");
    assert_eq!(t.job.source.kind, "faiss");
    assert_eq!(
        json!(t.job.source.options),
        json!({"path": "/data/faiss.index"})
    );
    assert_eq!(kinds(&t), ["cast", "rename", "collection"]);
    // The dimension is checked against the index at plan time.
    assert_eq!(
        json!(t.job.transform[0].options),
        json!({"fields": {"vector": "float_vector"}, "dims": {"vector": 256}})
    );
    assert_eq!(
        json!(t.job.transform[1].options),
        json!({"fields": {"vector": "data"}})
    );
    assert_eq!(json!(t.job.transform[2].options), json!({"name": "test"}));
    assert_eq!(t.job.sink.kind, "milvus2");
    assert_eq!(
        json!(t.job.sink.options),
        json!({
            "uri": "http://milvus.example:19530",
            "user": "root",
            "password": "pa55w0rd-milvus",
            "mode": "bulk",
            "bulk_format": "numpy",
            "stage": "s3://a-bucket/output/migration",
            "storage": {
                "aws_endpoint": "http://127.0.0.1:9000",
                "aws_region": "ap-southeast-1",
                "aws_access_key_id": "minioadmin-ak",
                "aws_secret_access_key": "s3cr3t-sk-value",
            },
            "if_exists": "append",
            "consistency_level": "Bounded",
            "description": "Migration from Milvus1.x",
            "shards": 2,
        })
    );
    let ignored: Vec<&str> = t.ignored().map(|n| n.key.as_str()).collect();
    assert_eq!(
        ignored,
        [
            "dumper.worker.limit",
            "dumper.worker.reader.bufferSize",
            "dumper.worker.writer.bufferSize",
            "loader.worker.limit",
            "target.create.collection.metricType",
            "target.remote.useSSL",
            "target.remote.checkBucket",
        ]
    );
    let limit = t.ignored().next().unwrap();
    assert_eq!(
        limit.text,
        "vmig reads partitions in parallel as [pipeline] concurrency says"
    );
}

#[test]
fn milvus1x_mysql_readme_config_reads_the_storage_root_with_a_mysql_url() {
    let t = tr(MILVUS1_MYSQL);
    assert_eq!(t.job.source.kind, "milvus1");
    assert_eq!(
        json!(t.job.source.options),
        json!({"path": "/", "meta": "mysql://user:my%2Dsql%2Dpw@localhost:3306/milvus"})
    );
    assert_eq!(kinds(&t), ["rename"]);
    assert_eq!(t.job.sink.kind, "milvus2");
    assert!(t.job.sink.options.get("shards").is_none());
    assert!(t.job.sink.options.get("collection").is_none());
    let mysql = t.notes.iter().find(|n| n.key == "meta.mysqlUrl").unwrap();
    assert_eq!(mysql.section, Section::Source);
    assert_eq!(
        mysql.text,
        "meta, as a mysql:// URL (the DSN's parameters are connection settings vmig chooses itself)"
    );
}

#[test]
fn milvus1x_sqlite_with_relative_paths_resolves_them_against_the_working_directory() {
    let text = MILVUS1_MYSQL
        .replace(
            "  mode: mysql\n  mysqlUrl: \"user:my-sql-pw@tcp(localhost:3306)/milvus?charset=utf8mb4&parseTime=True&loc=Local\"",
            "  mode: sqlite    # mode set sqlite will get meta info from sqlite\n  sqliteFile: ./milvus/db/meta.sqlite",
        )
        .replace("tablesDir: /db/tables/", "tablesDir: ./milvus/db/tables/");
    let t = tr(&text);
    assert_eq!(
        json!(t.job.source.options),
        json!({"path": "/work/milvus", "meta": "/work/milvus/db/meta.sqlite"})
    );
}

#[test]
fn testfiles_faiss_config_has_a_typo_that_is_now_reported() {
    // testfiles/faiss/config/migration.yaml writes `shardsNums`, which milvus-migration ignored.
    let text = FAISS_README.replace("shardsNum: 2", "shardsNums: 2");
    assert_eq!(
        err(&text),
        "invalid `migration.yaml` configuration: unknown key `target.create.collection.shardsNums` (did you mean `shardsNum`?)"
    );
    let text = FAISS_README.replace(
        "  mode: local   # local or remote",
        "  mode: local\n  colour: red",
    );
    assert_eq!(
        err(&text),
        "invalid `migration.yaml` configuration: unknown key `source.colour`; milvus-migration reads `mode`, `local`, `remote`, `es`, `milvus2x`"
    );
    let text = FAISS_README.replace("dumper:\n  worker:", "dumper:\n  wroker:");
    assert_eq!(
        err(&text),
        "invalid `migration.yaml` configuration: unknown key `dumper.wroker` (did you mean `worker`?)"
    );
}

#[test]
fn keys_match_without_regard_to_case_as_viper_reads_them() {
    let text = FAISS_README
        .replace("shardsNum: 2", "shardsnum: 3")
        .replace("useSSL: false", "usessl: true");
    let t = tr(&text);
    assert_eq!(t.job.sink.options["shards"], 3);
    assert_eq!(
        t.job.sink.options["storage"]["aws_endpoint"],
        "https://127.0.0.1:9000"
    );
}

#[test]
fn what_milvus_migration_refuses_is_refused_naming_the_key() {
    assert_eq!(
        err(&FAISS_README.replace("metricType: L2", "metricType: COSINE")),
        "invalid `migration.yaml` configuration: target.create.collection.metricType: `COSINE` is not L2 or IP"
    );
    assert_eq!(
        err(&FAISS_README.replace("workMode: faiss", "workMode: fiass")),
        "invalid `migration.yaml` configuration: dumper.worker.workMode: `fiass` is not one of faiss, milvus1x, elasticsearch, milvus2x"
    );
    assert_eq!(
        err(&FAISS_README.replace("  mode: local   # local or remote\n", "")),
        "invalid `migration.yaml` configuration: source.mode: missing (milvus-migration needs `local` or `remote`)"
    );
    assert_eq!(
        err(&MILVUS1_MYSQL.replace("tablesDir: /db/tables/", "tablesDir: /data/tables")),
        "invalid `migration.yaml` configuration: source.local.tablesDir: vmig reads the Milvus 1.x storage root, so the tables directory must be its `db/tables`"
    );
    assert_eq!(
        err(&MILVUS1_MYSQL.replace("mode: mysql", "mode: mock")),
        "invalid `migration.yaml` configuration: meta.mockFile: missing (meta.mode is `mock`)"
    );
    assert_eq!(
        err(&MILVUS1_MYSQL.replace("mode: mysql", "mode: remote\n  remoteMetaFile: meta/meta.json")),
        "invalid `migration.yaml` configuration: meta.remoteMetaFile: needs source.mode `remote` (the file is read from source.remote's bucket)"
    );
    assert_eq!(
        err(&FAISS_README.replace("limit: 20\n    workMode", "limit: twenty\n    workMode")),
        "invalid `migration.yaml` configuration: dumper.worker.limit: invalid type: string \"twenty\", expected i64"
    );
}

#[test]
fn remote_source_and_iam_target() {
    let text = MILVUS1_MYSQL
        .replace(
            "source:\n  mode: local\n  local:\n    tablesDir: /db/tables/",
            "source:\n  mode: remote\n  remote:\n    cloud: aws\n    region: us-west-2\n    bucket: old-milvus\n    ak: src-ak-value\n    sk: src-sk-value\n    useIAM: false\n    tablesDir: /backup/db/tables/",
        )
        .replace("    useIAM: false\n    useSSL: false\n    checkBucket: true\n\n  milvus2x", "    useIAM: true\n    useSSL: true\n    checkBucket: false\n\n  milvus2x");
    let t = tr(&text);
    assert_eq!(
        json!(t.job.source.options),
        json!({
            "path": "s3://old-milvus/backup",
            "storage": {"aws_region": "us-west-2", "aws_access_key_id": "src-ak-value", "aws_secret_access_key": "src-sk-value"},
            "meta": "mysql://user:my%2Dsql%2Dpw@localhost:3306/milvus",
        })
    );
    assert_eq!(
        t.job.sink.options["storage"],
        json!({"aws_endpoint": "https://127.0.0.1:9000", "aws_region": "ap-southeast-1"})
    );
    let iam = t
        .notes
        .iter()
        .find(|n| n.key == "target.remote.useIAM")
        .unwrap();
    assert_eq!(
        iam.text,
        "no keys: the cloud's ambient credentials (instance role, workload identity, environment)"
    );
    assert!(t
        .ignored()
        .any(|n| n.key == "target.remote.sk" && n.text == "useIAM is true"));
}

#[test]
fn convert_output_names_every_key_and_never_a_secret() {
    for (text, fmt) in [
        (FAISS_README, OutputFormat::Toml),
        (FAISS_README, OutputFormat::Yaml),
        (MILVUS1_MYSQL, OutputFormat::Toml),
        (MILVUS1_MYSQL, OutputFormat::Yaml),
    ] {
        let t = tr(text);
        let out = render(&t, "migration.yaml", fmt).unwrap();
        for secret in [
            "s3cr3t-sk-value",
            "minioadmin-ak",
            "pa55w0rd-milvus",
            "my-sql-pw",
            "my%2Dsql%2Dpw",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        assert!(out.contains("${VMIG_TARGET_SK}"), "{out}");
        assert!(
            out.contains("#   VMIG_MILVUS_PASSWORD  (its target.milvus2x.password)"),
            "{out}"
        );
        assert!(
            out.contains("# dumper.worker.limit: vmig reads partitions in parallel"),
            "{out}"
        );
        // The printed job is a job vmig reads, with the secrets as references.
        let job = match fmt {
            OutputFormat::Toml => vmig_core::config::JobConfig::parse(
                &out,
                vmig_core::config::JobFormat::Toml,
                &|_| Some("x".into()),
            ),
            OutputFormat::Yaml => vmig_core::config::JobConfig::parse(
                &out,
                vmig_core::config::JobFormat::Yaml,
                &|_| Some("x".into()),
            ),
        }
        .unwrap();
        assert_eq!(job.transform.len(), t.job.transform.len());
        assert_eq!(job.sink.options["password"], "x");
    }
    let out = render(&tr(MILVUS1_MYSQL), "migration.yaml", OutputFormat::Toml).unwrap();
    assert!(out.contains("meta = \"${VMIG_META_MYSQL_URL}\""), "{out}");
    assert!(
        out.contains("#   VMIG_META_MYSQL_URL  (its meta.mysqlUrl as a mysql:// URL)"),
        "{out}"
    );
}

#[test]
fn detection_needs_a_top_level_dumper() {
    assert!(vmig_compat::is_migration_config(FAISS_README));
    assert!(!vmig_compat::is_migration_config(
        "source: {type: faiss}\nsink: {type: files}\n"
    ));
    assert!(!vmig_compat::is_migration_config(
        "[source]\ntype = 'faiss'\n"
    ));
}

/// README_ES.md's example, as it stands (its comments too).
const ES_README: &str = "
dumper:
  worker:
    workMode: elasticsearch   # migration mode: elasticsearch, faiss, milvus1x
    reader:
      bufferSize: 2500      # es data total rows in each time read from es.
meta:
  mode: config            #config: will read meta config from this config itself.
  index: test_es_index    #es index
  fields:                 # es index fields of need migrate to milvus2x
    - name: id            #field name
      type: long
      pk: true            #set pk=true will use this field as milvus collection primary key
    - name: data
      type: dense_vector  #dense_vector field have to migrate field.
      dims: 512           #vector dims
    - name: other_field
      type: keyword
      maxLen: 60          #as milvus collection Varchar type filed maxLen property.
  milvus:               #optional configuration
    collection: rename_test_name  #if not exits, will use es index as collection name.
    closeDynamicField: false
    shardNum: 2
    consistencyLevel: Customized
source:               # es connect configuration
  es:
    urls:
      - http://localhost:9200
    username: elastic
    password: es-pa55w0rd
target:
  mode: remote
  remote:
    outputDir: migration/test/xx   # temp storage source data, cannot start with '/'
    cloud: aws                    #cloud includes: aws(s3,minio), gcp, ali(oss)
    endpoint: localhost:9000     # here is the minio server endpoint
    region: ap-southeast-1       # region, if local server needn't it
    bucket: a-bucket      # bucket name, need same with milvus2.x bucket name
    ak: minioadmin        # ak/sk, if useIAM=false, need ak/sk
    sk: minioadmin-sk
    useIAM: false         #if useIAM=true, not need ak/sk.
    useSSL: false
    checkBucket: true     #if bucket not exits will create bucket when set checkBucket=true

  milvus2x:
    endpoint: localhost:19530
    username: root
    password: milvus-pw
";

/// README_2X.md's example, with its optional `meta.fields` and `meta.milvus`.
const MILVUS2X_README: &str = "
dumper:
  worker:
    workMode: milvus2x      # work mode：milvus2x->milvus2x
    reader:
      bufferSize: 500       # Read source data rows in each time read from Source Milvus.

meta:                       # meta part
  mode: config              # 'config' mode means will get meta config from this config file itself.
  version: 2.3.0            #  Source Milvus version
  collection: src_coll_name # migrate data from this source collection
  fields:
    - name: id
    - name: title_vector
    - name: reading_time
  milvus:
    collection: target_coll_name
    closeDynamicField: false
    shardNum: 2
    consistencyLevel: Customized
    autoId: \"false\"

source:                     # source milvus connection info
  milvus2x:
    endpoint: old-milvus:19530
    username: root
    password: old-pw-secret
    grpc:
      maxCallRecvMsgSize: 67108864
      maxCallSendMsgSize: 268435456

target:                    # target milvus collection info
  milvus2x:
    endpoint: new-milvus:19530
    username: root
    password: new-pw-secret
";

#[test]
fn es_readme_config_selects_casts_and_keys_the_fields_as_milvus_migration_creates_them() {
    let t = tr(ES_README);
    assert_eq!(t.work_mode, "elasticsearch");
    assert_eq!(t.job.source.kind, "elasticsearch");
    assert_eq!(
        json!(t.job.source.options),
        json!({
            "index": "test_es_index",
            "fields": ["id", "data", "other_field"],
            "pk": "id",
            "id_column": "_id",
            "batch_size": 2500,
            "url": ["http://localhost:9200"],
            "username": "elastic",
            "password": "es-pa55w0rd",
        })
    );
    assert_eq!(kinds(&t), ["select", "cast", "collection"]);
    assert_eq!(
        json!(t.job.transform[0].options),
        json!({"fields": ["id", "data", "other_field"]})
    );
    assert_eq!(
        json!(t.job.transform[1].options),
        json!({
            "fields": {"id": "int64", "data": "float_vector", "other_field": "varchar"},
            "dims": {"data": 512},
            "max_length": {"other_field": 60},
        })
    );
    assert_eq!(
        json!(t.job.transform[2].options),
        json!({"name": "rename_test_name"})
    );
    assert_eq!(t.job.sink.kind, "milvus2");
    let sink = json!(t.job.sink.options);
    assert_eq!(sink["bulk_format"], "json");
    assert_eq!(sink["stage"], "s3://a-bucket/migration/test/xx/migration");
    assert_eq!(sink["description"], "Migration from Elasticsearch");
    assert_eq!(sink["consistency_level"], "Customized");
    assert_eq!(sink["shards"], 2);
    assert_eq!(sink["dynamic_field"], true);
    assert_eq!(sink["primary_key"], "id");
    assert_eq!(sink["if_exists"], "append");
    let secrets: Vec<&str> = t.secrets.iter().map(|s| s.env.as_str()).collect();
    assert_eq!(
        secrets,
        [
            "VMIG_ES_PASSWORD",
            "VMIG_TARGET_AK",
            "VMIG_TARGET_SK",
            "VMIG_MILVUS_PASSWORD"
        ]
    );
    let out = render(&t, "migration.yaml", OutputFormat::Toml).unwrap();
    for secret in ["es-pa55w0rd", "minioadmin-sk", "milvus-pw"] {
        assert!(!out.contains(secret), "{secret} in\n{out}");
    }
}

#[test]
fn es_without_a_pk_field_keys_on_underscore_id_and_defaults_as_milvus_migration() {
    let text = ES_README
        .replace("      pk: true            #set pk=true will use this field as milvus collection primary key\n", "")
        .replace("  milvus:               #optional configuration\n    collection: rename_test_name  #if not exits, will use es index as collection name.\n    closeDynamicField: false\n    shardNum: 2\n    consistencyLevel: Customized\n", "");
    let t = tr(&text);
    assert_eq!(t.job.source.options["pk"], "_id");
    assert_eq!(
        json!(t.job.transform[0].options),
        json!({"fields": ["_id", "id", "data", "other_field"]})
    );
    assert_eq!(t.job.transform[1].options["max_length"]["_id"], 65535);
    assert_eq!(
        json!(t.job.transform[2].options),
        json!({"name": "test_es_index"})
    );
    let sink = json!(t.job.sink.options);
    assert_eq!(sink["primary_key"], "_id");
    assert_eq!(sink["shards"], 2, "milvus-migration's default");
    assert_eq!(sink["dynamic_field"], true);
    assert_eq!(sink.get("consistency_level"), None);
}

#[test]
fn es_configs_milvus_migration_refuses_are_refused_naming_the_key() {
    let e = |from: &str, to: &str| err(&ES_README.replace(from, to));
    assert_eq!(
        e("dims: 512", "dims: 0"),
        "invalid `migration.yaml` configuration: meta.fields[1].dims: missing or not between 1 and 32768 (dense_vector `data`)"
    );
    assert!(e("type: long", "type: date")
        .contains("meta.fields[0].type: `date` is not a type milvus-migration migrates"));
    assert_eq!(
        e("type: long", "type: double"),
        "invalid `migration.yaml` configuration: meta.fields[0].pk: the primary key must be of type keyword or long, not double"
    );
    assert_eq!(
        e("maxLen: 60", "maxLen: 70000"),
        "invalid `migration.yaml` configuration: meta.fields[2].maxLen: 70000; Milvus allows at most 65535"
    );
    assert_eq!(
        e("shardNum: 2", "shardNum: 17"),
        "invalid `migration.yaml` configuration: meta.milvus.shardNum: 17; milvus-migration allows at most 16"
    );
    assert!(e("consistencyLevel: Customized", "consistencyLevel: Eventual")
        .contains("meta.milvus.consistencyLevel: `Eventual` is not one of Strong, Session, Bounded, Eventually, Customized"));
    assert_eq!(
        e(
            "    username: elastic\n",
            "    username: elastic\n    fingerprint: AB:CD\n"
        ),
        "invalid `migration.yaml` configuration: source.es.fingerprint: not a SHA-256 certificate fingerprint (64 hex digits, colons allowed, as Elasticsearch prints it at first start)"
    );
    assert!(e("collection: rename_test_name", "collection: rename-test")
        .contains("meta.milvus.collection: `rename-test` is not a Milvus collection name"));
    assert!(e("    - name: data\n      type: dense_vector  #dense_vector field have to migrate field.\n      dims: 512           #vector dims\n", "")
        .contains("meta.fields: no dense_vector field"));
}

#[test]
fn es_cloud_and_service_token_auth_follow_milvus_migrations_precedence() {
    let cloud = tr(&ES_README.replace(
        "    urls:\n      - http://localhost:9200\n",
        "    cloudId: my-deployment:ZXUtY2VudHJhbC0x\n    apiKey: a2V5LWlkOmtleQ==\n    urls:\n      - http://localhost:9200\n",
    ));
    let o = json!(cloud.job.source.options);
    assert_eq!(o["cloud_id"], "my-deployment:ZXUtY2VudHJhbC0x");
    assert_eq!(o["api_key"], "a2V5LWlkOmtleQ==");
    assert_eq!(o.get("url"), None);
    assert_eq!(o.get("username"), None);
    let ignored: Vec<&str> = cloud.ignored().map(|n| n.key.as_str()).collect();
    assert!(ignored.contains(&"source.es.urls") && ignored.contains(&"source.es.password"));

    let token = tr(&ES_README.replace(
        "    username: elastic\n",
        "    serviceToken: AAEAAWVsYXN0aWMvZmxlZXQtc2VydmVyL3Rva2VuMTo\n    username: elastic\n    cert: certs/http_ca.crt\n",
    ));
    let o = json!(token.job.source.options);
    assert_eq!(
        o["bearer_token"],
        "AAEAAWVsYXN0aWMvZmxlZXQtc2VydmVyL3Rva2VuMTo"
    );
    assert_eq!(o.get("username"), None);
    assert_eq!(o.get("ca_cert"), None);

    let cert = tr(&ES_README.replace(
        "    username: elastic\n",
        "    username: elastic\n    cert: certs/http_ca.crt\n",
    ));
    assert_eq!(
        cert.job.source.options["ca_cert"],
        "/work/certs/http_ca.crt"
    );
    assert_eq!(cert.job.source.options.get("ca_fingerprint"), None);
}

#[test]
fn es_fingerprint_becomes_the_pin_and_like_go_elasticsearch_overrides_cert() {
    const FP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let pinned = tr(&ES_README.replace(
        "    username: elastic\n",
        &format!("    username: elastic\n    fingerprint: {FP}\n"),
    ));
    let o = json!(pinned.job.source.options);
    assert_eq!(o["ca_fingerprint"], FP);
    assert_eq!(o["username"], "elastic");
    assert_eq!(o.get("ca_cert"), None);
    let note = pinned
        .notes
        .iter()
        .find(|n| n.key == "source.es.fingerprint")
        .expect("a note for the fingerprint");
    assert!(note.text.starts_with("ca_fingerprint ("), "{}", note.text);

    // As Elasticsearch prints it: upper case with colons.
    let colons = FP
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let both = tr(&ES_README.replace(
        "    username: elastic\n",
        &format!("    username: elastic\n    cert: certs/http_ca.crt\n    fingerprint: {colons}\n"),
    ));
    let o = json!(both.job.source.options);
    assert_eq!(o["ca_fingerprint"], colons.as_str());
    assert_eq!(o.get("ca_cert"), None, "go-elasticsearch ignores cert then");
    let ignored: Vec<&str> = both
        .ignored()
        .map(|n| n.key.as_str())
        .filter(|k| k.starts_with("source."))
        .collect();
    assert_eq!(ignored, ["source.es.cert"]);

    // serviceToken still wins over cert and fingerprint, as before.
    let token = tr(&ES_README.replace(
        "    username: elastic\n",
        &format!("    serviceToken: AAEAAWVsYXN0aWMvZmxlZXQtc2VydmVyL3Rva2VuMTo\n    fingerprint: {FP}\n"),
    ));
    assert_eq!(token.job.source.options.get("ca_fingerprint"), None);
    assert!(token.ignored().any(|n| n.key == "source.es.fingerprint"));
}

#[test]
fn milvus2x_readme_config_copies_the_selected_fields_straight_into_the_target() {
    let t = tr(MILVUS2X_README);
    assert_eq!(t.job.source.kind, "milvus2");
    assert_eq!(
        json!(t.job.source.options),
        json!({
            "collection": "src_coll_name",
            "uri": "http://old-milvus:19530",
            "user": "root",
            "password": "old-pw-secret",
            "batch_size": 500,
            "ids": "keep",
        })
    );
    assert_eq!(kinds(&t), ["select", "collection"]);
    assert_eq!(
        json!(t.job.transform[0].options),
        json!({"fields": ["id", "title_vector", "reading_time"]})
    );
    assert_eq!(t.job.transform[1].options["name"], "target_coll_name");
    assert_eq!(
        json!(t.job.sink.options),
        json!({
            "uri": "http://new-milvus:19530",
            "user": "root",
            "password": "new-pw-secret",
            "mode": "insert",
            "if_exists": "append",
            "consistency_level": "Customized",
            "shards": 2,
            "dynamic_field": true,
            "auto_id": false,
        })
    );
    let ignored: Vec<&str> = t.ignored().map(|n| n.key.as_str()).collect();
    assert!(ignored.contains(&"meta.version"), "{ignored:?}");
    assert!(ignored.contains(&"source.milvus2x.grpc"), "{ignored:?}");
    let secrets: Vec<&str> = t.secrets.iter().map(|s| s.env.as_str()).collect();
    assert_eq!(
        secrets,
        ["VMIG_SOURCE_MILVUS_PASSWORD", "VMIG_MILVUS_PASSWORD"]
    );
    let up = tr(&MILVUS2X_README.replace(
        "    password: new-pw-secret\n",
        "    password: new-pw-secret\n    writeMode: upsert\n",
    ));
    assert_eq!(up.job.sink.options["mode"], "upsert");
    assert!(
        err(&MILVUS2X_README.replace("autoId: \"false\"", "autoId: \"maybe\""))
            .contains("meta.milvus.autoId: `maybe`")
    );
}

#[test]
fn steps_dump_and_load_split_a_remote_job_at_its_stage() {
    use vmig_compat::Step;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("migration.yaml");
    std::fs::write(&file, ES_README).unwrap();
    let dump = vmig_compat::translate_file_step(&file, dir.path(), Step::Dump).unwrap();
    assert_eq!(dump.job.source.kind, "elasticsearch");
    assert_eq!(dump.job.sink.kind, "files");
    assert_eq!(
        dump.job.sink.options["path"],
        "s3://a-bucket/migration/test/xx/migration"
    );
    assert_eq!(dump.job.sink.options["format"], "json");
    assert_eq!(kinds(&dump), ["select", "cast", "collection"]);
    let envs: Vec<&str> = dump.secrets.iter().map(|s| s.env.as_str()).collect();
    assert_eq!(
        envs,
        ["VMIG_ES_PASSWORD", "VMIG_TARGET_AK", "VMIG_TARGET_SK"]
    );

    let load = vmig_compat::translate_file_step(&file, dir.path(), Step::Load).unwrap();
    assert_eq!(load.job.source.kind, "files");
    assert_eq!(
        load.job.source.options["path"],
        "s3://a-bucket/migration/test/xx/migration/"
    );
    assert_eq!(load.job.source.options["format"], "json");
    assert_eq!(kinds(&load), ["collection"]);
    assert_eq!(load.job.sink.kind, "milvus2");
    assert_eq!(
        load.job.sink.options["stage"],
        "s3://a-bucket/migration/test/xx/migration-load"
    );
    assert_eq!(load.job.sink.options["primary_key"], "id");
    let envs: Vec<&str> = load.secrets.iter().map(|s| s.env.as_str()).collect();
    assert_eq!(
        envs,
        [
            "VMIG_TARGET_AK",
            "VMIG_TARGET_SK",
            "VMIG_MILVUS_PASSWORD",
            "VMIG_TARGET_AK",
            "VMIG_TARGET_SK"
        ]
    );

    std::fs::write(&file, MILVUS2X_README).unwrap();
    let e = vmig_compat::translate_file_step(&file, dir.path(), Step::Dump).unwrap_err();
    assert!(e.to_string().contains("workMode `milvus2x` copies straight into Milvus: there is nothing to dump; use `start`"), "{e}");
}

/// `vmig convert`'s output for each work mode's README config, checked into
/// `tests/golden/`: a change of the translation shows up as a diff there. `VMIG_BLESS=1`
/// rewrites the files.
#[test]
fn convert_output_of_each_work_mode_matches_its_golden_file() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var("VMIG_BLESS").is_ok_and(|v| v == "1");
    let mut translations: Vec<(&str, Translation)> = [
        ("faiss", FAISS_README),
        ("milvus1x-mysql", MILVUS1_MYSQL),
        ("elasticsearch", ES_README),
        ("milvus2x", MILVUS2X_README),
    ]
    .into_iter()
    .map(|(name, config)| (name, tr(config)))
    .collect();
    // The first index of an Elasticsearch meta file (`meta.mode: local`).
    let config = parse(&es_meta_config("  mode: local\n  localFile: meta.json")).unwrap();
    let mut jobs =
        vmig_compat::translate_es_meta(&config, Path::new("/work"), "meta.json", ES_META_FILE)
            .unwrap();
    translations.push(("elasticsearch-meta-file", jobs.remove(0)));
    for (name, t) in translations {
        for (ext, format) in [("toml", OutputFormat::Toml), ("yaml", OutputFormat::Yaml)] {
            let out = render(&t, "migration.yaml", format).unwrap();
            let path = golden.join(format!("{name}.{ext}"));
            if bless {
                std::fs::create_dir_all(&golden).unwrap();
                std::fs::write(&path, &out).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (VMIG_BLESS=1 writes it)", path.display()));
            assert_eq!(out, want, "{name}.{ext} differs; VMIG_BLESS=1 rewrites it");
            // What it says parses as a vmig job.
            match format {
                OutputFormat::Toml => {
                    let _: toml::Value = toml::from_str(&out).unwrap();
                }
                OutputFormat::Yaml => {
                    let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
                }
            }
        }
    }
}

#[test]
fn milvus1x_meta_json_modes_read_milvus_migrations_meta_file() {
    let mock =
        tr(&MILVUS1_MYSQL.replace("mode: mysql", "mode: mock\n  mockFile: testfiles/meta.json"));
    assert_eq!(mock.job.source.options["meta"], "/work/testfiles/meta.json");
    let local = tr(&MILVUS1_MYSQL.replace(
        "mode: mysql",
        "mode: local\n  localFile: /exports/meta.json",
    ));
    assert_eq!(local.job.source.options["meta"], "/exports/meta.json");
    let remote = tr(&MILVUS1_MYSQL
        .replace("mode: mysql", "mode: remote\n  remoteMetaFile: exports/meta.json")
        .replace(
            "  mode: local\n  local:\n    tablesDir: /db/tables/\n",
            "  mode: remote\n  remote:\n    cloud: aws\n    endpoint: 127.0.0.1:9000\n    region: us-east-1\n    bucket: old-milvus\n    ak: src-ak\n    sk: src-sk-secret\n    useIAM: false\n    tablesDir: milvus/db/tables/\n",
        ));
    assert_eq!(remote.job.source.options["path"], "s3://old-milvus/milvus");
    assert_eq!(
        remote.job.source.options["meta"],
        "s3://old-milvus/exports/meta.json"
    );
}

#[test]
fn collection_names_select_1x_collections_at_dump_and_are_refused_elsewhere() {
    use vmig_compat::{select_collections, Step};
    let names = vec!["books".to_string(), "films".to_string()];

    let mut dump = tr(MILVUS1_MYSQL);
    select_collections(&mut dump, Step::Dump, &names).unwrap();
    assert_eq!(dump.job.source.kind, "milvus1");
    assert_eq!(
        dump.job.source.options["collections"],
        json!(["books", "films"])
    );

    // None given: the translation is untouched (every live collection, as milvus-migration).
    let mut all = tr(MILVUS1_MYSQL);
    select_collections(&mut all, Step::Dump, &[]).unwrap();
    assert!(!all.job.source.options.contains_key("collections"));

    let refused = |text: &str, step: Step, names: &[String]| {
        let mut t = tr(text);
        match select_collections(&mut t, step, names) {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        refused(MILVUS1_MYSQL, Step::Load, &names),
        "invalid `migration.yaml` configuration: collectionNames: vmig's `load` imports everything `dump` staged: choose the collections at `dump`"
    );
    assert_eq!(
        refused(FAISS_README, Step::Dump, &names),
        "invalid `migration.yaml` configuration: collectionNames: it selects Milvus 1.x collections (workMode `milvus1x`); workMode `faiss` has none to select (milvus-migration ignored it there): send the request without it"
    );
    assert!(refused(MILVUS1_MYSQL, Step::Start, &names).contains("`start` takes no collections"));
    assert!(refused(MILVUS1_MYSQL, Step::Dump, &[" ".to_string()]).ends_with("an empty name"));
}

/// ES_README with its meta in a local file: `meta.mode: local` + `localFile`.
fn es_meta_config(mode_lines: &str) -> String {
    let start = ES_README.find("meta:").unwrap();
    let end = ES_README.find("source:").unwrap();
    format!(
        "{}meta:\n{mode_lines}\n{}",
        &ES_README[..start],
        &ES_README[end..]
    )
}

/// A meta file as Go's json.Marshal writes milvus-migration's estype.MetaJSON.
const ES_META_FILE: &str = r#"{"indexs":[
 {"index":"books","rows":10,"fields":[
   {"type":"long","name":"id","dims":0,"maxLen":0,"pk":true},
   {"type":"dense_vector","name":"data","dims":16,"maxLen":0,"pk":false},
   {"type":"keyword","name":"title","dims":0,"maxLen":32,"pk":false}],
  "milvus":{"collection":"library","dims":0,"shardNum":1,"closeDynamicField":true,"consistencyLevel":"Strong","loadData":true,"createIndex":false,"autoId":"","pkName":""},
  "InnerPkField":null,"InnerPkType":null},
 {"index":"notes","rows":0,"fields":[
   {"type":"dense_vector","name":"emb","dims":8,"maxLen":0,"pk":false}],
  "milvus":null,"InnerPkField":null,"InnerPkType":null}],
 "version":"8.11.0"}"#;

fn es_meta_jobs(meta: &str) -> vmig_core::Result<Vec<Translation>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meta.json"), meta).unwrap();
    let file = dir.path().join("migration.yaml");
    std::fs::write(
        &file,
        es_meta_config("  mode: local\n  localFile: ./meta.json"),
    )
    .unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vmig_compat::translate_file_jobs(&file, dir.path()))
}

#[test]
fn es_meta_file_is_one_job_per_index_each_translated_as_its_config_mode() {
    let jobs = es_meta_jobs(ES_META_FILE).unwrap();
    assert_eq!(jobs.len(), 2);
    let (books, notes) = (&jobs[0], &jobs[1]);
    assert_eq!(books.part.as_deref(), Some("library"));
    assert_eq!(notes.part.as_deref(), Some("notes"));
    assert_eq!(books.job.source.options["index"], "books");
    assert_eq!(books.job.source.options["pk"], "id");
    assert_eq!(notes.job.source.options["index"], "notes");
    assert_eq!(notes.job.source.options["pk"], "_id");
    assert_eq!(kinds(books), ["select", "cast", "collection"]);
    let cast = &books.job.transform[1].options;
    assert_eq!(cast["dims"]["data"], 16);
    assert_eq!(cast["max_length"]["title"], 32);
    assert_eq!(books.job.transform[2].options["name"], "library");
    assert_eq!(notes.job.transform[2].options["name"], "notes");
    let sink = &books.job.sink.options;
    assert_eq!(sink["shards"], 1, "{sink:?}");
    assert_eq!(sink["consistency_level"], "Strong", "{sink:?}");
    assert_eq!(sink["dynamic_field"], false, "{sink:?}");
    // Each job stages into a folder of its own.
    let stage = |t: &Translation| t.job.sink.options["stage"].as_str().unwrap().to_string();
    assert!(stage(books).ends_with("/library"), "{}", stage(books));
    assert!(stage(notes).ends_with("/notes"), "{}", stage(notes));
    // Notes name the file's keys by their place in it.
    let keys: Vec<&str> = books.notes.iter().map(|n| n.key.as_str()).collect();
    for want in [
        "meta.mode",
        "meta.localFile",
        "indexs[0].fields",
        "indexs[0].milvus.collection",
        "indexs[0].rows",
        "indexs[0].milvus.loadData",
    ] {
        assert!(keys.contains(&want), "{want} not in {keys:?}");
    }
    assert!(
        notes.notes.iter().any(|n| n.key == "indexs[1].index"),
        "{:?}",
        notes.notes
    );
    // Rendered as a job that parses, with no secret.
    let out = render(books, "migration.yaml", OutputFormat::Toml).unwrap();
    let _: toml::Value = toml::from_str(&out).unwrap();
    assert!(
        !out.contains("minioadmin-sk") && !out.contains("es-pa55w0rd"),
        "{out}"
    );
}

#[test]
fn es_meta_file_errors_name_the_file_and_the_key_in_it() {
    let e = |meta: &str| match es_meta_jobs(meta) {
        Ok(_) => panic!("accepted {meta}"),
        Err(e) => e.to_string(),
    };
    let m = e(&ES_META_FILE.replace("shardNum", "shardsNums"));
    assert!(
        m.contains(
            "meta.json: unknown key `indexs[0].milvus.shardsNums` (did you mean `shardNum`?)"
        ),
        "{m}"
    );
    // Keys match without regard to case, as Go's encoding/json matches them.
    assert_eq!(
        es_meta_jobs(
            &ES_META_FILE
                .replace("\"Index\"", "\"index\"")
                .replace("\"fields\"", "\"Fields\"")
        )
        .unwrap()
        .len(),
        2
    );
    let m = e(&ES_META_FILE.replace("\"dims\":8", "\"dims\":0"));
    assert!(
        m.contains("meta.json: indexs[1].fields[0].dims: missing or not between 1 and 32768 (dense_vector `emb`)"),
        "{m}"
    );
    let m = e(&ES_META_FILE.replace("\"collection\":\"library\"", "\"collection\":\"notes\""));
    assert!(
        m.contains("indexs[1]: its collection `notes` is indexs[0]'s too; give one of them milvus.collection"),
        "{m}"
    );
    let m = e(r#"{"indexs": [], "version": "7"}"#);
    assert!(
        m.contains("meta.json: indexs: missing or empty (the indexes to migrate)"),
        "{m}"
    );
    let m = e("{not json");
    assert!(
        m.contains("meta.json: key must be a string at line 1 column 2"),
        "{m}"
    );
    // A missing file names it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("migration.yaml");
    std::fs::write(&file, es_meta_config("  mode: mock\n  mockFile: gone.json")).unwrap();
    let m = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vmig_compat::translate_file_jobs(&file, dir.path()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        m.contains(&format!(
            "cannot read the meta file {}: No such file or directory",
            dir.path().join("gone.json").display()
        )),
        "{m}"
    );
    // `translate` alone cannot read it and says what does.
    let m = err(&es_meta_config("  mode: local\n  localFile: meta.json"));
    assert!(
        m.contains("meta.mode `local` keeps the indexes in a meta file, one job per index"),
        "{m}"
    );
    // milvus2x has no meta file.
    let m = err(&MILVUS2X_README.replace("mode: config", "mode: local\n  localFile: x.json"));
    assert!(
        m.contains("workMode milvus2x reads meta.mode `config`"),
        "{m}"
    );
}
