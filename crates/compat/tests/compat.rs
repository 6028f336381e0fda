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
    assert_eq!(kinds(&t), ["rename", "collection"]);
    assert_eq!(
        json!(t.job.transform[0].options),
        json!({"fields": {"vector": "data"}})
    );
    assert_eq!(json!(t.job.transform[1].options), json!({"name": "test"}));
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
            "consistency_level": "bounded",
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
            "target.create.collection.dim",
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
        "invalid `migration.yaml` configuration: meta.mode `mock` (a meta.json written by milvus-migration) is not translated yet; point vmig at the 1.x meta itself with `sqlite` (meta.sqliteFile) or `mysql` (meta.mysqlUrl)"
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
