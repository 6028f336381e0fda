//! `migration.yaml` → vmig job: what milvus-migration would have done, in vmig's plugins.
//!
//! Faiss and Milvus 1.x (`dumper.worker.workMode` `faiss`, `milvus1x`):
//!
//! * source: the `faiss` source on `source.{local,remote}.faissFile`; the `milvus1` source on the
//!   storage root above `source.{local,remote}.tablesDir` (which is `<root>/db/tables`), its meta
//!   from `meta.sqliteFile` or `meta.mysqlUrl` (a Go DSN, rewritten as a `mysql://` URL).
//!   `source.remote` becomes an object-store URL and `storage` options.
//! * transforms: for Faiss a `cast` checking `target.create.collection.dim` against the index at
//!   plan time; `rename` `vector` → `data`, and for Faiss `collection` =
//!   `target.create.collection.name`: the collection milvus-migration creates has `id` (Int64
//!   primary key) and `data` (the vector).
//! * sink: `target.mode: remote` → the `milvus2` sink in bulk mode, NumPy files (milvus-migration's
//!   format, which Milvus 2.2 imports) staged under `<bucket>/<outputDir>/migration` with
//!   `target.remote`'s credentials; the collection as milvus-migration creates it (description
//!   "Migration from Milvus1.x", consistency Bounded, `shardsNum` shards, appended to when it
//!   exists). `target.mode: local` → the `files` sink writing the same NumPy files to
//!   `<target.local.outputDir>/migration`: what milvus-migration's `dump` writes there.
//!
//! Elasticsearch (`meta.mode: config`): the `elasticsearch` source reading `meta.index`'s listed
//! fields with `source.es`'s connection; `select` (milvus-migration's order: `_id` first when no
//! field has `pk: true`), `cast` to each field's type (`dims`, `maxLen` as `max_length`),
//! `collection`; JSON files staged (as milvus-migration's ES dump writes them); the collection
//! described "Migration from Elasticsearch", 2 shards, dynamic field on unless closed.
//!
//! Milvus 2.x (`meta.mode: config`): the `milvus2` source on `meta.collection` of
//! `source.milvus2x`, `select` of `meta.fields`' names, `collection`; the `milvus2` sink
//! inserting (or upserting: `target.milvus2x.writeMode`) straight into `target.milvus2x`.
//!
//! [`for_step`] cuts a translation into milvus-migration's `dump` and `load` at its stage.
//!
//! Relative local paths resolve against the working directory given, as milvus-migration's do.

use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};
use vmig_core::config::{ComponentConfig, JobConfig};
use vmig_core::{Error, Result};

use crate::model::{
    EsMetaIndex, Meta, MetaMilvus, MigrationConfig, Milvus2x, SourceRemote, Target, TargetRemote,
};
use crate::{Note, Secret, Section, Step, Translation, COMPONENT};

/// What the notes say about work vmig does better than milvus-migration did.
const FAISS_BETTER: &str = "vmig reads every index type's vectors, Flat included (milvus-migration dumped Flat indexes empty)";
const MILVUS1_BETTER: &str = "vmig leaves out exactly the rows deleted_docs marks deleted (milvus-migration mishandled 1.x deletes)";

const ES_BETTER: &str = "vmig retries failed requests (429, 5xx, timeouts) and reopens an expired scroll or point in time where it stopped (milvus-migration read without retries)";

/// The translation under way.
struct Builder {
    notes: Vec<Note>,
    secrets: Vec<Secret>,
    source: Map<String, Value>,
    transforms: Vec<ComponentConfig>,
}

impl Builder {
    fn note(&mut self, key: &str, section: Section, text: impl Into<String>) {
        self.notes.push(Note {
            key: key.to_string(),
            section,
            text: text.into(),
        });
    }

    fn ignore(&mut self, key: &str, present: bool, why: &str) {
        if present {
            self.note(key, Section::Ignored, why);
        }
    }

    fn secret(
        &mut self,
        key: &str,
        section: Section,
        option: &[&str],
        env: &str,
        rendered: String,
    ) {
        self.secrets.push(Secret {
            key: key.to_string(),
            section,
            option: option.iter().map(|s| s.to_string()).collect(),
            env: env.to_string(),
            rendered,
        });
    }
}

/// The collection milvus-migration creates in a work mode, and the files it stages.
#[derive(Debug, Default)]
struct Props {
    /// The staging format: `numpy` (Faiss, 1.x) or `json` (Elasticsearch).
    format: &'static str,
    /// The new collection's description; `None`: the source collection's.
    description: Option<&'static str>,
    /// Its shards; `None`: the source collection's (else 1).
    shards: Option<i32>,
    /// Its consistency level (vmig's spelling); `None`: the source's (else Bounded).
    consistency: Option<&'static str>,
    /// Its dynamic field; `None`: as the source's.
    dynamic: Option<bool>,
    /// The primary-key field, when it is not `id`.
    primary_key: Option<String>,
    /// `Some(true)`: Milvus generates the keys; `Some(false)`: the source's are kept.
    auto_id: Option<bool>,
}

/// The staging format of Faiss and Milvus 1.x: milvus-migration's NumPy files.
const NUMPY: &str = "numpy";

/// `meta.milvus.consistencyLevel` → the `milvus2` sink's `consistency_level`.
fn consistency(key: &str, level: &str) -> Result<&'static str> {
    Ok(match level {
        "Strong" => "Strong",
        "Session" => "Session",
        "Bounded" => "Bounded",
        "Eventually" => "Eventually",
        "Customized" => "Customized",
        other => {
            return Err(bad(format!(
                "{key}: `{other}` is not one of Strong, Session, Bounded, Eventually, Customized"
            )))
        }
    })
}

/// `meta.milvus.shardNum`: 1..=16 as milvus-migration allows; `None` when not positive (then
/// the mode's default applies).
fn shard_num(n: Option<i64>) -> Result<Option<i32>> {
    match n {
        Some(n) if n > 16 => Err(bad(format!(
            "meta.milvus.shardNum: {n}; milvus-migration allows at most 16"
        ))),
        Some(n) if n > 0 => Ok(Some(n as i32)),
        _ => Ok(None),
    }
}

/// A Milvus collection name: letters, digits and `_`, not starting with a digit.
fn check_collection_name(key: &str, name: &str) -> Result<()> {
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.is_empty();
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{key}: `{name}` is not a Milvus collection name (letters, digits, `_`; not starting with a digit); set meta.milvus.collection"
        )))
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::config(COMPONENT, message)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Translates a parsed `migration.yaml` into a vmig job; relative local paths resolve against
/// `cwd` (milvus-migration's working directory).
///
/// # Errors
/// [`Error::Config`] for what milvus-migration itself refuses (an unknown `workMode`, a
/// missing `source.mode`, …; the same key named), and for what vmig does not translate yet
/// (the `elasticsearch` and `milvus2x` work modes, `meta.mode` `mock`/`local`/`remote`).
pub fn translate(config: &MigrationConfig, cwd: &Path) -> Result<Translation> {
    let mut b = Builder {
        notes: Vec::new(),
        secrets: Vec::new(),
        source: Map::new(),
        transforms: Vec::new(),
    };
    let worker = &config.dumper.worker;
    let mode = worker.work_mode.trim().to_string();
    b.note(
        "dumper.worker.workMode",
        Section::Source,
        format!("`{mode}`: the source plugin below"),
    );
    b.ignore(
        "dumper.worker.limit",
        worker.limit.is_some(),
        "vmig reads partitions in parallel as [pipeline] concurrency says",
    );
    if matches!(mode.as_str(), "faiss" | "milvus1x") {
        b.ignore(
            "dumper.worker.reader.bufferSize",
            worker
                .reader
                .as_ref()
                .is_some_and(|r| r.buffer_size.is_some()),
            "vmig sizes its reads itself (bounded memory)",
        );
    }
    b.ignore(
        "dumper.worker.writer.bufferSize",
        worker
            .writer
            .as_ref()
            .is_some_and(|w| w.buffer_size.is_some()),
        "vmig sizes its staging files with max_file_size",
    );
    b.ignore(
        "loader.worker.limit",
        config
            .loader
            .as_ref()
            .and_then(|l| l.worker.as_ref())
            .is_some_and(|w| w.limit.is_some()),
        "vmig imports each staged file as soon as it is complete, one import at a time per flush",
    );
    let (source_kind, props) = match mode.as_str() {
        "faiss" => ("faiss", faiss(config, cwd, &mut b)?),
        "milvus1x" => ("milvus1", milvus1x(config, cwd, &mut b)?),
        "elasticsearch" => ("elasticsearch", elasticsearch(config, cwd, &mut b)?),
        "milvus2x" => ("milvus2", milvus2x(config, &mut b)?),
        other => {
            return Err(bad(format!(
                "dumper.worker.workMode: `{other}` is not one of faiss, milvus1x, elasticsearch, milvus2x"
            )))
        }
    };
    let target = config.target.as_ref().ok_or_else(|| {
        bad(if mode == "milvus2x" {
            "target.milvus2x: missing (the Milvus 2.x to copy into)"
        } else {
            "target.mode: missing (milvus-migration needs `local` or `remote`)"
        })
    })?;
    let sink = if mode == "milvus2x" {
        milvus2x_sink(target, &props, &mut b)?
    } else {
        sink(target, &props, cwd, &mut b)?
    };
    let source = ComponentConfig {
        kind: source_kind.into(),
        options: std::mem::take(&mut b.source),
    };
    Ok(Translation {
        job: JobConfig {
            source,
            transform: b.transforms,
            sink,
            pipeline: Default::default(),
            state: Default::default(),
        },
        notes: b.notes,
        secrets: b.secrets,
        work_mode: mode,
        part: None,
    })
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `p` as an absolute path: relative ones joined to `cwd` (a leading `./` dropped).
fn local_path(cwd: &Path, p: &str) -> String {
    let path = Path::new(p);
    if path.is_absolute() {
        return p.to_string();
    }
    let p = p.strip_prefix("./").unwrap_or(p);
    cwd.join(p).display().to_string()
}

/// `source.mode`: `local` or `remote`.
fn source_mode(config: &MigrationConfig, b: &mut Builder) -> Result<String> {
    let mode = config
        .source
        .as_ref()
        .and_then(|s| non_empty(&s.mode))
        .unwrap_or_default()
        .to_string();
    match mode.as_str() {
        "local" | "remote" => {
            b.note(
                "source.mode",
                Section::Source,
                format!("`{mode}`: a local path or an object-store URL"),
            );
            Ok(mode)
        }
        "" => Err(bad(
            "source.mode: missing (milvus-migration needs `local` or `remote`)",
        )),
        other => Err(bad(format!(
            "source.mode: `{other}` is not `local` or `remote`"
        ))),
    }
}

/// The transforms that give Faiss and 1.x data milvus-migration's schema: `vector` → `data`
/// (checked to have `dim` dimensions when given, at plan time), and the collection name.
fn id_and_data(b: &mut Builder, collection: Option<&str>, dim: Option<usize>) {
    if let Some(dim) = dim {
        b.transforms.push(ComponentConfig {
            kind: "cast".into(),
            options: map(
                json!({ "fields": { "vector": "float_vector" }, "dims": { "vector": dim } }),
            ),
        });
        b.note(
            "target.create.collection.dim",
            Section::Transform,
            "checked against the index's dimension before anything is written (milvus-migration trusted it)",
        );
    }
    b.transforms.push(ComponentConfig {
        kind: "rename".into(),
        options: map(json!({ "fields": { "vector": "data" } })),
    });
    b.note(
        "(milvus-migration's schema)",
        Section::Transform,
        "the collection milvus-migration creates has `id` (Int64 primary key) and `data` (the vector)",
    );
    if let Some(name) = collection {
        b.transforms.push(ComponentConfig {
            kind: "collection".into(),
            options: map(json!({ "name": name })),
        });
        b.note(
            "target.create.collection.name",
            Section::Transform,
            "the target collection",
        );
    }
}

/// What milvus-migration creates for Faiss and 1.x data: described "Migration from
/// Milvus1.x", Bounded, NumPy files staged.
fn id_and_data_props(shards: Option<i32>) -> Props {
    Props {
        format: NUMPY,
        description: Some("Migration from Milvus1.x"),
        shards,
        consistency: Some("Bounded"),
        ..Props::default()
    }
}

fn faiss(config: &MigrationConfig, cwd: &Path, b: &mut Builder) -> Result<Props> {
    let mode = source_mode(config, b)?;
    let source = config.source.as_ref();
    if mode == "local" {
        let file = source
            .and_then(|s| s.local.as_ref())
            .and_then(|l| non_empty(&l.faiss_file))
            .ok_or_else(|| bad("source.local.faissFile: missing"))?;
        b.source.insert("path".into(), local_path(cwd, file).into());
        b.note(
            "source.local.faissFile",
            Section::Source,
            format!("path; {FAISS_BETTER}"),
        );
    } else {
        let remote = source
            .and_then(|s| s.remote.as_ref())
            .ok_or_else(|| bad("source.remote: missing (source.mode is `remote`)"))?;
        let file =
            non_empty(&remote.faiss_file).ok_or_else(|| bad("source.remote.faissFile: missing"))?;
        source_store(remote, file, b)?;
        b.note(
            "source.remote.faissFile",
            Section::Source,
            format!("path, in the bucket; {FAISS_BETTER}"),
        );
    }
    if let Some(meta) = &config.meta {
        if meta.mode.is_some() {
            b.note(
                "meta",
                Section::Ignored,
                "milvus-migration reads no meta in faiss mode",
            );
        }
    }
    let create = config
        .target
        .as_ref()
        .and_then(|t| t.create.as_ref())
        .map(|c| &c.collection);
    let name = create.and_then(|c| non_empty(&c.name)).ok_or_else(|| {
        bad("target.create.collection.name: missing (faiss mode creates this collection)")
    })?;
    let create = create.ok_or_else(|| bad("target.create.collection: missing"))?;
    let dim = match create.dim {
        Some(d) if d > 0 && d <= 32_768 => d as usize,
        _ => return Err(bad("target.create.collection.dim: missing or not between 1 and 32768 (it must be the index's dimension)")),
    };
    match non_empty(&create.metric_type) {
        Some("L2" | "IP") => b.note(
            "target.create.collection.metricType",
            Section::Ignored,
            "milvus-migration creates the collection without an index, so the metric is only checked (L2 or IP); vmig builds no index either",
        ),
        Some(other) => {
            return Err(bad(format!(
                "target.create.collection.metricType: `{other}` is not L2 or IP"
            )))
        }
        None => return Err(bad("target.create.collection.metricType: missing (L2 or IP)")),
    }
    let shards = create
        .shards_num
        .filter(|s| *s > 0)
        .map(|s| i32::try_from(s).map_err(|_| bad("target.create.collection.shardsNum: too large")))
        .transpose()?;
    if shards.is_some() {
        b.note(
            "target.create.collection.shardsNum",
            Section::Sink,
            "shards (of a new collection)",
        );
    }
    id_and_data(b, Some(name), Some(dim));
    Ok(id_and_data_props(shards))
}

fn milvus1x(config: &MigrationConfig, cwd: &Path, b: &mut Builder) -> Result<Props> {
    let mode = source_mode(config, b)?;
    let source = config.source.as_ref();
    let root = |dir: &str, key: &str| -> Result<String> {
        let trimmed = dir.trim_end_matches('/');
        match trimmed.strip_suffix("db/tables") {
            Some(root) => Ok(root.trim_end_matches('/').to_string()),
            None => Err(bad(format!(
                "{key}: vmig reads the Milvus 1.x storage root, so the tables directory must be its `db/tables`"
            ))),
        }
    };
    if mode == "local" {
        let dir = source
            .and_then(|s| s.local.as_ref())
            .and_then(|l| non_empty(&l.tables_dir))
            .ok_or_else(|| bad("source.local.tablesDir: missing"))?;
        let root = root(dir, "source.local.tablesDir")?;
        let root = if root.is_empty() {
            "/".to_string()
        } else {
            root
        };
        b.source
            .insert("path".into(), local_path(cwd, &root).into());
        b.note(
            "source.local.tablesDir",
            Section::Source,
            format!("path: the storage root above db/tables; {MILVUS1_BETTER}"),
        );
    } else {
        let remote = source
            .and_then(|s| s.remote.as_ref())
            .ok_or_else(|| bad("source.remote: missing (source.mode is `remote`)"))?;
        let dir =
            non_empty(&remote.tables_dir).ok_or_else(|| bad("source.remote.tablesDir: missing"))?;
        let root = root(dir, "source.remote.tablesDir")?;
        source_store(remote, &root, b)?;
        b.note(
            "source.remote.tablesDir",
            Section::Source,
            format!("path: the storage root above db/tables, in the bucket; {MILVUS1_BETTER}"),
        );
    }
    let meta = config.meta.as_ref();
    let meta_mode = meta.and_then(|m| non_empty(&m.mode)).unwrap_or_default();
    match meta_mode {
        "sqlite" => {
            let file = meta
                .and_then(|m| non_empty(&m.sqlite_file))
                .ok_or_else(|| bad("meta.sqliteFile: missing (meta.mode is `sqlite`)"))?;
            b.source.insert("meta".into(), local_path(cwd, file).into());
            b.note("meta.sqliteFile", Section::Source, "meta");
        }
        "mysql" => {
            let dsn = meta
                .and_then(|m| non_empty(&m.mysql_url))
                .ok_or_else(|| bad("meta.mysqlUrl: missing (meta.mode is `mysql`)"))?;
            let dsn = GoDsn::parse(dsn)?;
            b.source.insert("meta".into(), dsn.url(dsn.password.as_deref().map(encode)).into());
            if dsn.password.is_some() {
                // The whole URL: printed output masks every URL user-info, a reference too.
                let env = "VMIG_META_MYSQL_URL";
                b.secret("meta.mysqlUrl", Section::Source, &["meta"], env, format!("${{{env}}}"));
            }
            let mut text = "meta, as a mysql:// URL".to_string();
            if !dsn.params.is_empty() {
                text.push_str(" (the DSN's parameters are connection settings vmig chooses itself)");
            }
            b.note("meta.mysqlUrl", Section::Source, text);
        }
        "mock" | "local" => {
            let (key, file) = if meta_mode == "mock" {
                ("meta.mockFile", meta.and_then(|m| non_empty(&m.mock_file)))
            } else {
                ("meta.localFile", meta.and_then(|m| non_empty(&m.local_file)))
            };
            let file = file.ok_or_else(|| bad(format!("{key}: missing (meta.mode is `{meta_mode}`)")))?;
            b.source.insert("meta".into(), local_path(cwd, file).into());
            b.note(key, Section::Source, "meta: milvus-migration's meta.json (the collections and segments its `export` listed)");
        }
        "remote" => {
            let file = meta
                .and_then(|m| non_empty(&m.remote_meta_file))
                .ok_or_else(|| bad("meta.remoteMetaFile: missing (meta.mode is `remote`)"))?;
            let path = b.source.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
            // The bucket of source.remote: `path` is `s3://<bucket>/<root>` (or `az://`).
            let bucket = ["s3://", "az://"].iter().find_map(|scheme| {
                let rest = path.strip_prefix(scheme)?;
                Some(format!("{scheme}{}", rest.split('/').next().unwrap_or_default()))
            });
            let Some(bucket) = bucket else {
                return Err(bad("meta.remoteMetaFile: needs source.mode `remote` (the file is read from source.remote's bucket)"));
            };
            let url = format!("{bucket}/{}", file.trim_start_matches('/'));
            b.source.insert("meta".into(), url.into());
            b.note("meta.remoteMetaFile", Section::Source, "meta: milvus-migration's meta.json, in source.remote's bucket");
        }
        "" => return Err(bad("meta.mode: missing (milvus1x mode needs `sqlite`, `mysql`, `mock`, `local` or `remote`)")),
        other => {
            return Err(bad(format!(
                "meta.mode: `{other}` is not one of sqlite, mysql, mock, local, remote"
            )))
        }
    }
    b.note("meta.mode", Section::Source, format!("`{meta_mode}`"));
    if config.target.as_ref().is_some_and(|t| t.create.is_some()) {
        b.note(
            "target.create",
            Section::Ignored,
            "milvus-migration reads it in faiss mode only; each 1.x collection keeps its name",
        );
    }
    id_and_data(b, None, None);
    Ok(id_and_data_props(None))
}

/// The object-store options of a `remote` block, milvus-migration's way: `aws` (MinIO too),
/// `ali`, `tc` and `gcp` through their S3 APIs with `ak`/`sk`, `azure` with the account name and
/// key; `useIAM` uses the cloud's ambient credentials.
struct Store<'a> {
    prefix: &'a str,
    cloud: Option<&'a str>,
    endpoint: Option<&'a str>,
    region: Option<&'a str>,
    bucket: Option<&'a str>,
    ak: Option<&'a str>,
    sk: Option<&'a str>,
    use_ssl: Option<bool>,
    use_iam: Option<bool>,
    check_bucket: Option<bool>,
}

impl Store<'_> {
    /// The URL of `path` in the bucket and the `storage` options; notes and secrets go to `b`
    /// under `section` with environment names starting `env`.
    fn resolve(
        &self,
        path: &str,
        section: Section,
        env: &str,
        b: &mut Builder,
    ) -> Result<(String, Map<String, Value>)> {
        let p = self.prefix;
        let bucket = self
            .bucket
            .ok_or_else(|| bad(format!("{p}.bucket: missing")))?;
        let cloud = self.cloud.unwrap_or("aws");
        let azure = match cloud {
            "aws" | "ali" | "tc" | "gcp" => false,
            "azure" | "az" => true,
            other => {
                return Err(bad(format!(
                    "{p}.cloud: `{other}` is not one of aws, gcp, ali, tc, azure"
                )))
            }
        };
        let path = path.trim_start_matches('/');
        let url = format!("{}://{bucket}/{path}", if azure { "az" } else { "s3" });
        let url = url.trim_end_matches('/').to_string();
        b.note(&format!("{p}.bucket"), section, "the bucket in the URL");
        b.note(
            &format!("{p}.cloud"),
            section,
            format!(
                "`{cloud}`: {}",
                if azure {
                    "an az:// URL"
                } else {
                    "an s3:// URL (the cloud's S3 API)"
                }
            ),
        );
        let mut storage = Map::new();
        let iam = self.use_iam.unwrap_or(false);
        let (id_key, secret_key) = if azure {
            ("azure_storage_account_name", "azure_storage_account_key")
        } else {
            ("aws_access_key_id", "aws_secret_access_key")
        };
        if !azure {
            let ssl = self.use_ssl.unwrap_or(false);
            let endpoint = match (self.endpoint, cloud) {
                (Some(e), _) if e.contains("://") => Some(e.to_string()),
                (Some(e), _) => Some(format!("{}://{e}", if ssl { "https" } else { "http" })),
                (None, "gcp") => Some("https://storage.googleapis.com".to_string()),
                (None, _) => None,
            };
            if let Some(e) = endpoint {
                storage.insert("aws_endpoint".into(), e.into());
                b.note(&format!("{p}.endpoint"), section, "storage.aws_endpoint");
            }
            b.ignore(
                &format!("{p}.useSSL"),
                self.use_ssl.is_some(),
                "the endpoint's scheme (https or http) says it",
            );
            if let Some(r) = self.region {
                storage.insert("aws_region".into(), r.into());
                b.note(&format!("{p}.region"), section, "storage.aws_region");
            }
            if matches!(cloud, "ali" | "tc") {
                storage.insert("aws_virtual_hosted_style_request".into(), "true".into());
            }
        } else {
            b.ignore(
                &format!("{p}.endpoint"),
                self.endpoint.is_some(),
                "Azure's endpoint follows from the account",
            );
            b.ignore(
                &format!("{p}.region"),
                self.region.is_some(),
                "Azure needs no region",
            );
            b.ignore(
                &format!("{p}.useSSL"),
                self.use_ssl.is_some(),
                "Azure is always HTTPS",
            );
        }
        if iam {
            b.note(&format!("{p}.useIAM"), section, "no keys: the cloud's ambient credentials (instance role, workload identity, environment)");
            b.ignore(&format!("{p}.ak"), self.ak.is_some(), "useIAM is true");
            b.ignore(&format!("{p}.sk"), self.sk.is_some(), "useIAM is true");
        } else {
            for (key, option, value, suffix) in [
                ("ak", id_key, self.ak, "AK"),
                ("sk", secret_key, self.sk, "SK"),
            ] {
                if let Some(v) = value {
                    storage.insert(option.into(), v.into());
                    let var = format!("{env}_{suffix}");
                    b.secret(
                        &format!("{p}.{key}"),
                        section,
                        &["storage", option],
                        &var,
                        format!("${{{var}}}"),
                    );
                    b.note(&format!("{p}.{key}"), section, format!("storage.{option}"));
                }
            }
        }
        b.ignore(
            &format!("{p}.checkBucket"),
            self.check_bucket.is_some(),
            "vmig never creates buckets; a missing one fails before anything is written",
        );
        Ok((url, storage))
    }
}

fn source_store(r: &SourceRemote, path: &str, b: &mut Builder) -> Result<()> {
    let (url, storage) = remote_store(r).resolve(path, Section::Source, "VMIG_SOURCE", b)?;
    b.source.insert("path".into(), url.into());
    if !storage.is_empty() {
        b.source.insert("storage".into(), Value::Object(storage));
    }
    Ok(())
}

fn remote_store(r: &SourceRemote) -> Store<'_> {
    Store {
        prefix: "source.remote",
        cloud: non_empty(&r.cloud),
        endpoint: non_empty(&r.endpoint),
        region: non_empty(&r.region),
        bucket: non_empty(&r.bucket),
        ak: non_empty(&r.ak),
        sk: non_empty(&r.sk),
        use_ssl: r.use_ssl,
        use_iam: r.use_iam,
        check_bucket: r.check_bucket,
    }
}

fn target_store(r: &TargetRemote) -> Store<'_> {
    Store {
        prefix: "target.remote",
        cloud: non_empty(&r.cloud),
        endpoint: non_empty(&r.endpoint),
        region: non_empty(&r.region),
        bucket: non_empty(&r.bucket),
        ak: non_empty(&r.ak),
        sk: non_empty(&r.sk),
        use_ssl: r.use_ssl,
        use_iam: r.use_iam,
        check_bucket: r.check_bucket,
    }
}

/// `target.*` → the `[sink]`.
fn sink(target: &Target, props: &Props, cwd: &Path, b: &mut Builder) -> Result<ComponentConfig> {
    let mode = non_empty(&target.mode).unwrap_or_default();
    let mut options = Map::new();
    let kind = match mode {
        "local" => {
            let dir = target
                .local
                .as_ref()
                .and_then(|l| non_empty(&l.output_dir))
                .unwrap_or_default();
            let path = Path::new(&local_path(cwd, dir)).join("migration");
            options.insert("path".into(), path.display().to_string().into());
            options.insert("format".into(), props.format.into());
            b.note("target.mode", Section::Sink, format!("`local`: the `files` sink writes the {} files milvus-migration's `dump` writes, and imports nothing", if props.format == NUMPY { "NumPy" } else { "JSON" }));
            b.note(
                "target.local.outputDir",
                Section::Sink,
                "path, with milvus-migration's `migration` folder",
            );
            if target.milvus2x.is_some() {
                b.note(
                    "target.milvus2x",
                    Section::Ignored,
                    "target.mode is local: nothing is loaded into Milvus",
                );
            }
            if target.remote.is_some() {
                b.note("target.remote", Section::Ignored, "target.mode is local");
            }
            "files"
        }
        "remote" => {
            let remote = target
                .remote
                .as_ref()
                .ok_or_else(|| bad("target.remote: missing (target.mode is `remote`)"))?;
            let out = non_empty(&remote.output_dir).unwrap_or_default();
            let stage_path = format!("{}/migration", out.trim_matches('/'));
            let (stage, storage) =
                target_store(remote).resolve(&stage_path, Section::Sink, "VMIG_TARGET", b)?;
            let milvus = target
                .milvus2x
                .as_ref()
                .ok_or_else(|| bad("target.milvus2x: missing (the Milvus 2.x to load into)"))?;
            connection(milvus, "target.milvus2x", Section::Sink, &mut options, b)?;
            b.ignore(
                "target.milvus2x.writeMode",
                milvus.write_mode.is_some(),
                "milvus-migration reads it in milvus2x mode only; this mode bulk-imports",
            );
            options.insert("mode".into(), "bulk".into());
            options.insert("bulk_format".into(), props.format.into());
            options.insert("stage".into(), stage.into());
            if !storage.is_empty() {
                options.insert("storage".into(), Value::Object(storage));
            }
            b.note("target.mode", Section::Sink, format!("`remote`: the `milvus2` sink bulk-imports {} files staged in target.remote's bucket (as milvus-migration's `load`), resumably", if props.format == NUMPY { "NumPy" } else { "JSON" }));
            b.note(
                "target.remote.outputDir",
                Section::Sink,
                "stage, with milvus-migration's `migration` folder",
            );
            collection_options(&mut options, props, b);
            "milvus2"
        }
        "" => {
            return Err(bad(
                "target.mode: missing (milvus-migration needs `local` or `remote`)",
            ))
        }
        other => {
            return Err(bad(format!(
                "target.mode: `{other}` is not `local` or `remote`"
            )))
        }
    };
    Ok(ComponentConfig {
        kind: kind.into(),
        options,
    })
}

/// The translation of `t` for one of milvus-migration's commands ([`Step`]).
///
/// * `start`: `t` as it is.
/// * `dump`: with a `milvus2` sink in bulk mode, the sink becomes the `files` sink writing the
///   staging format into the stage (`<bucket>/<outputDir>/migration`) with the same storage
///   options; with the `files` sink (`target.mode: local`), `t` as it is — that is all `start`
///   does there too.
/// * `load`: the `files` source reading that stage (the files `dump` wrote, their
///   `manifest.json`) into the `milvus2` sink, which stages its own import files beside it
///   (`…/migration-load`); only the `collection` transform stays (the others ran at `dump`).
///   The files source keeps the target partition the manifest gives each unit (its default
///   `partitions = "manifest"`), so the rows of a Milvus 1.x partition that `dump` staged go
///   into the partition of the same name, as with `start`.
pub(crate) fn for_step(mut t: Translation, step: Step) -> Result<Translation> {
    if step == Step::Start {
        return Ok(t);
    }
    let mode = t.work_mode.clone();
    if t.job.sink.kind == "files" {
        return match step {
            Step::Load => Err(bad(
                "target.mode is `local`: milvus-migration's `load` has nothing to import there (use `target.mode: remote` with target.milvus2x)",
            )),
            _ => Ok(t),
        };
    }
    let Some(stage) = t
        .job
        .sink
        .options
        .get("stage")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(bad(format!(
            "workMode `{mode}` copies straight into Milvus: there is nothing to {}; use `start`",
            step.as_str()
        )));
    };
    let format = t
        .job
        .sink
        .options
        .get("bulk_format")
        .and_then(Value::as_str)
        .unwrap_or("numpy")
        .to_string();
    let storage = t.job.sink.options.get("storage").cloned();
    let mut files = Map::new();
    // The trailing `/` says "a directory" to the files source.
    let dir = if step == Step::Load {
        format!("{}/", stage.trim_end_matches('/'))
    } else {
        stage.clone()
    };
    files.insert("path".into(), dir.into());
    if let Some(s) = &storage {
        files.insert("storage".into(), s.clone());
    }
    match step {
        Step::Dump => {
            files.insert("format".into(), format.into());
            // Only the stage's credentials stay; the Milvus password has no place here.
            t.secrets.retain(|s| {
                s.section != Section::Sink || s.option.first().is_some_and(|o| o == "storage")
            });
            t.job.sink = ComponentConfig {
                kind: "files".into(),
                options: files,
            };
            t.notes.push(Note {
                key: "(dump)".into(),
                section: Section::Sink,
                text: "milvus-migration's `dump`: the files sink stages the files where `load` finds them, and nothing is imported".into(),
            });
        }
        Step::Load => {
            files.insert(
                "format".into(),
                if format == "numpy" {
                    "npy"
                } else {
                    format.as_str()
                }
                .into(),
            );
            // The stage's credentials now serve the source too (the same variables).
            let mut moved: Vec<Secret> = t
                .secrets
                .iter()
                .filter(|s| {
                    s.section == Section::Sink && s.option.first().is_some_and(|o| o == "storage")
                })
                .cloned()
                .map(|mut s| {
                    s.section = Section::Source;
                    s
                })
                .collect();
            t.secrets.retain(|s| s.section != Section::Source);
            t.secrets.append(&mut moved);
            t.job.source = ComponentConfig {
                kind: "files".into(),
                options: files,
            };
            t.job.transform.retain(|c| c.kind == "collection");
            t.job
                .sink
                .options
                .insert("stage".into(), format!("{stage}-load").into());
            t.notes.retain(|n| n.section != Section::Source);
            t.notes.push(Note {
                key: "(load)".into(),
                section: Section::Source,
                text: "milvus-migration's `load`: the files source reads what `dump` staged (its manifest.json), keeping the partition the manifest gives each unit (e.g. a Milvus 1.x partition), so those rows go into the partition of the same name; vmig's milvus2 sink imports them through a stage of its own beside it".into(),
            });
        }
        Step::Start => {}
    }
    Ok(t)
}

/// A `milvus2x` block (`source.milvus2x`, `target.milvus2x`) → `uri`, `user`, `password`,
/// `db` of a `milvus2` source or sink. A bare `host:port` endpoint is plain `http://` (as
/// milvus-migration dials it); write `https://host:port` for TLS.
fn connection(
    m: &Milvus2x,
    key: &str,
    section: Section,
    options: &mut Map<String, Value>,
    b: &mut Builder,
) -> Result<()> {
    let endpoint = non_empty(&m.endpoint).ok_or_else(|| bad(format!("{key}.endpoint: missing")))?;
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    options.insert("uri".into(), uri.into());
    b.note(
        &format!("{key}.endpoint"),
        section,
        "uri (a bare host:port is plain http://, as milvus-migration dials it)",
    );
    if let Some(user) = non_empty(&m.username) {
        options.insert("user".into(), user.into());
        b.note(&format!("{key}.username"), section, "user");
    }
    if let Some(pw) = non_empty(&m.password) {
        options.insert("password".into(), pw.into());
        let env = if section == Section::Source {
            "VMIG_SOURCE_MILVUS_PASSWORD"
        } else {
            "VMIG_MILVUS_PASSWORD"
        };
        b.secret(
            &format!("{key}.password"),
            section,
            &["password"],
            env,
            format!("${{{env}}}"),
        );
        b.note(&format!("{key}.password"), section, "password");
    }
    if let Some(db) = non_empty(&m.database) {
        options.insert("db".into(), db.into());
        b.note(&format!("{key}.database"), section, "db");
    }
    b.ignore(
        &format!("{key}.grpc"),
        m.grpc.is_some(),
        "vmig sizes its requests below Milvus's limits itself (batch_bytes, batch_size)",
    );
    Ok(())
}

/// `dumper.worker.reader.bufferSize` → the source's `batch_size`, at most `max`.
fn buffer_size(config: &MigrationConfig, max: i64, b: &mut Builder) {
    let Some(n) = config
        .dumper
        .worker
        .reader
        .as_ref()
        .and_then(|r| r.buffer_size)
        .filter(|n| *n > 0)
    else {
        return;
    };
    let n = n.min(max);
    b.source.insert("batch_size".into(), n.into());
    b.note(
        "dumper.worker.reader.bufferSize",
        Section::Source,
        format!("batch_size (rows per request, at most {max})"),
    );
}

/// `meta.mode` of the work modes that read their meta from this file: `config`.
fn config_meta<'a>(config: &'a MigrationConfig, mode: &str) -> Result<&'a Meta> {
    let meta = config.meta.as_ref().ok_or_else(|| {
        bad(format!(
            "meta: missing (workMode {mode} reads meta.mode `config`)"
        ))
    })?;
    match non_empty(&meta.mode).unwrap_or_default() {
        "config" => Ok(meta),
        "" => Err(bad("meta.mode: missing (`config`)")),
        "mock" | "local" | "remote" if mode == "elasticsearch" => Err(bad(format!(
            "meta.mode `{}` keeps the indexes in a meta file, one job per index: read with vmig_compat::translate_file_jobs (as vmig's commands and server do)",
            non_empty(&meta.mode).unwrap_or_default()
        ))),
        "mock" | "local" | "remote" => Err(bad(format!(
            "meta.mode `{}` (a meta file) is milvus-migration's for workModes milvus1x and elasticsearch; workMode {mode} reads meta.mode `config`",
            non_empty(&meta.mode).unwrap_or_default()
        ))),
        other => Err(bad(format!("meta.mode: `{other}` is not `config` (workMode {mode})"))),
    }
}

/// Where an Elasticsearch config's meta file is (`meta.mode` `mock`, `local` or `remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaFile {
    /// `meta.mockFile` or `meta.localFile`, resolved against the working directory.
    Local(PathBuf),
    /// `meta.remoteMetaFile` in `source.remote`'s bucket: its URL and the storage options
    /// (credentials included) to read it with.
    Remote {
        /// `s3://bucket/key` or `az://container/key`.
        url: String,
        /// The object-store options (`vmig_core::store::StorageOptions`).
        storage: vmig_core::store::StorageOptions,
    },
}

impl MetaFile {
    /// The file's path or URL, for messages (no credentials).
    pub fn display(&self) -> String {
        match self {
            MetaFile::Local(p) => p.display().to_string(),
            MetaFile::Remote { url, .. } => url.clone(),
        }
    }
}

/// The meta file of an `elasticsearch` config whose `meta.mode` is `mock`, `local` or `remote`;
/// `None` for every other config (the meta is in the file itself, or elsewhere).
///
/// # Errors
/// [`Error::Config`] when the mode's key is missing (`meta.localFile`, …), or `remote` has no
/// `source.remote` bucket.
pub fn es_meta_file(config: &MigrationConfig, cwd: &Path) -> Result<Option<MetaFile>> {
    if config.dumper.worker.work_mode.trim() != "elasticsearch" {
        return Ok(None);
    }
    let Some(meta) = config.meta.as_ref() else {
        return Ok(None);
    };
    let local = |key: &str, file: &Option<String>| {
        non_empty(file)
            .map(|f| Some(MetaFile::Local(PathBuf::from(local_path(cwd, f)))))
            .ok_or_else(|| {
                bad(format!(
                    "{key}: missing (meta.mode is `{}`)",
                    non_empty(&meta.mode).unwrap_or_default()
                ))
            })
    };
    match non_empty(&meta.mode).unwrap_or_default() {
        "mock" => local("meta.mockFile", &meta.mock_file),
        "local" => local("meta.localFile", &meta.local_file),
        "remote" => {
            let key = non_empty(&meta.remote_meta_file)
                .ok_or_else(|| bad("meta.remoteMetaFile: missing (meta.mode is `remote`)"))?;
            let remote = config
                .source
                .as_ref()
                .and_then(|s| s.remote.as_ref())
                .ok_or_else(|| bad("meta.remoteMetaFile: needs source.remote (the file is read from its bucket)"))?;
            let mut scratch = Builder {
                notes: Vec::new(),
                secrets: Vec::new(),
                source: Map::new(),
                transforms: Vec::new(),
            };
            let (url, storage) =
                remote_store(remote).resolve(key, Section::Source, "VMIG_SOURCE", &mut scratch)?;
            let storage = storage
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect();
            Ok(Some(MetaFile::Remote { url, storage }))
        }
        _ => Ok(None),
    }
}

/// The jobs of an `elasticsearch` config whose meta is in a file ([`es_meta_file`]), from the
/// file's `text`: one per item of its `indexs`, each translated as `meta.mode: config` with that
/// item's `index`, `fields` and `milvus` (milvus-migration migrates each index to a collection
/// of its own), its [`Translation::part`] the target collection and its staged files in a
/// folder of that name. `file` names the file in messages and notes.
///
/// # Errors
/// [`Error::Config`]: the file's JSON or keys (an unknown one named with its path, e.g.
/// `indexs[0].milvus.shardsNums`), no index, an item [`translate()`] refuses (named
/// `indexs[N].fields[M]…`), two items into one collection.
pub fn translate_es_meta(
    config: &MigrationConfig,
    cwd: &Path,
    file: &str,
    text: &str,
) -> Result<Vec<Translation>> {
    let in_file = |e: Error| match e {
        Error::Config { message, .. } => bad(format!("meta file {file}: {message}")),
        other => other,
    };
    let parsed = crate::parse_es_meta(text).map_err(in_file)?;
    let indexes = parsed.indexs.as_deref().unwrap_or_default();
    if indexes.is_empty() {
        return Err(bad(format!(
            "meta file {file}: indexs: missing or empty (the indexes to migrate)"
        )));
    }
    let meta = config.meta.clone().unwrap_or_default();
    let mode = non_empty(&meta.mode).unwrap_or_default().to_string();
    let mut jobs: Vec<Translation> = Vec::new();
    for (i, index) in indexes.iter().enumerate() {
        let item = format!("indexs[{i}]");
        let mut one = config.clone();
        one.meta = Some(Meta {
            mode: Some("config".into()),
            version: parsed.version.clone(),
            index: index.index.clone(),
            fields: index.fields.clone(),
            milvus: index.milvus.as_ref().map(|m| MetaMilvus {
                collection: m.collection.clone(),
                close_dynamic_field: m.close_dynamic_field,
                shard_num: m.shard_num,
                consistency_level: m.consistency_level.clone(),
                auto_id: m.auto_id.clone(),
            }),
            ..Meta::default()
        });
        let renamed = |key: &str| match key.strip_prefix("meta.") {
            Some("version") => "version".to_string(),
            Some(rest) => format!("{item}.{rest}"),
            None => key.to_string(),
        };
        let mut t = translate(&one, cwd).map_err(|e| match e {
            Error::Config { message, .. } => {
                let message = match message.strip_prefix("meta.") {
                    Some(rest) => format!("{item}.{rest}"),
                    None => format!("{item}: {message}"),
                };
                bad(format!("meta file {file}: {message}"))
            }
            other => other,
        })?;
        t.notes.retain(|n| n.key != "meta.mode");
        for note in &mut t.notes {
            note.key = renamed(&note.key);
        }
        es_meta_notes(&mut t, &mode, file, &item, index);
        let collection = t
            .job
            .transform
            .iter()
            .rev()
            .find(|c| c.kind == "collection")
            .and_then(|c| c.options.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(j) = jobs
            .iter()
            .position(|o| o.part.as_deref() == Some(&collection))
        {
            return Err(bad(format!(
                "meta file {file}: {item}: its collection `{collection}` is indexs[{j}]'s too; give one of them milvus.collection (vmig migrates each index to a collection of its own, as milvus-migration does)"
            )));
        }
        crate::stage_apart(&mut t.job, &collection);
        t.part = Some(collection);
        jobs.push(t);
    }
    Ok(jobs)
}

/// The notes of the meta file's own keys (the translated ones were renamed to `indexs[N].…`).
fn es_meta_notes(t: &mut Translation, mode: &str, file: &str, item: &str, index: &EsMetaIndex) {
    let mut notes = vec![Note {
        key: "meta.mode".into(),
        section: Section::Source,
        text: format!(
            "`{mode}`: the indexes of the meta file {file}, one job each (this is {item})"
        ),
    }];
    let key = match mode {
        "mock" => "meta.mockFile",
        "local" => "meta.localFile",
        _ => "meta.remoteMetaFile",
    };
    notes.push(Note {
        key: key.into(),
        section: Section::Source,
        text: format!("read when the job is translated: {file}"),
    });
    if mode == "remote" {
        notes.push(Note {
            key: "source.remote".into(),
            section: Section::Ignored,
            text: "only the bucket the meta file is read from".into(),
        });
    }
    let mut ignore = |key: &str, present: bool, why: &str| {
        if present {
            notes.push(Note {
                key: format!("{item}.{key}"),
                section: Section::Ignored,
                text: why.into(),
            });
        }
    };
    ignore(
        "rows",
        index.rows.is_some(),
        "vmig counts the rows itself (vmig plan estimates them)",
    );
    ignore(
        "InnerPkField",
        index.inner_pk_field.as_ref().is_some_and(|v| !v.is_null()),
        "milvus-migration's own bookkeeping",
    );
    ignore(
        "InnerPkType",
        index.inner_pk_type.as_ref().is_some_and(|v| !v.is_null()),
        "milvus-migration's own bookkeeping",
    );
    if let Some(m) = &index.milvus {
        ignore(
            "milvus.dims",
            m.dims.is_some_and(|d| d != 0),
            "each dense_vector field's dims is the dimension",
        );
        ignore(
            "milvus.pkName",
            non_empty(&m.pk_name).is_some(),
            "the field with pk: true is the primary key",
        );
        ignore(
            "milvus.loadData",
            m.load_data == Some(true),
            "milvus-migration's elasticsearch mode does not read it; vmig leaves loading to you",
        );
        ignore(
            "milvus.createIndex",
            m.create_index == Some(true),
            "milvus-migration's elasticsearch mode does not read it; vmig copies data, not indexes",
        );
    }
    notes.append(&mut t.notes);
    t.notes = notes;
}

/// The `meta.milvus` block: collection name (else `default`), shards, consistency, dynamic
/// field, autoId.
fn meta_milvus(
    meta: &Meta,
    default_name: Option<&str>,
    b: &mut Builder,
) -> Result<(Option<String>, Props)> {
    let mut props = Props::default();
    let m = meta.milvus.as_ref();
    let name = m.and_then(|m| non_empty(&m.collection));
    let name = match (name, default_name) {
        (Some(n), _) => {
            check_collection_name("meta.milvus.collection", n)?;
            b.note(
                "meta.milvus.collection",
                Section::Transform,
                "the target collection",
            );
            Some(n.to_string())
        }
        (None, Some(d)) => Some(d.to_string()),
        (None, None) => None,
    };
    let Some(m) = m else {
        return Ok((name, props));
    };
    props.shards = shard_num(m.shard_num)?;
    if props.shards.is_some() {
        b.note(
            "meta.milvus.shardNum",
            Section::Sink,
            "shards (of a new collection)",
        );
    }
    if let Some(level) = non_empty(&m.consistency_level) {
        props.consistency = Some(consistency("meta.milvus.consistencyLevel", level)?);
        b.note(
            "meta.milvus.consistencyLevel",
            Section::Sink,
            "consistency_level (of a new collection)",
        );
    }
    if let Some(close) = m.close_dynamic_field {
        props.dynamic = Some(!close);
        b.note(
            "meta.milvus.closeDynamicField",
            Section::Sink,
            "dynamic_field, negated (of a new collection)",
        );
    }
    match non_empty(&m.auto_id) {
        None => {}
        Some("true") => props.auto_id = Some(true),
        Some("false") => props.auto_id = Some(false),
        Some(other) => {
            return Err(bad(format!(
                "meta.milvus.autoId: `{other}` is not \"\", \"true\" or \"false\""
            )))
        }
    }
    if props.auto_id.is_some() {
        b.note(
            "meta.milvus.autoId",
            Section::Sink,
            "auto_id: `true` lets the target generate new keys, `false` keeps the source's",
        );
    }
    Ok((name, props))
}

/// The ES types milvus-migration migrates (`meta.fields[].type`) → the `cast` type.
fn es_cast_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "text" | "string" | "keyword" => "varchar",
        "long" => "int64",
        "integer" => "int32",
        "short" => "int16",
        "byte" => "int8",
        "boolean" => "bool",
        "double" => "float64",
        "float" | "half_float" | "scaled_float" => "float32",
        "dense_vector" => "float_vector",
        "object" => "json",
        _ => return None,
    })
}

/// `workMode: elasticsearch` with `meta.mode: config`.
fn elasticsearch(config: &MigrationConfig, cwd: &Path, b: &mut Builder) -> Result<Props> {
    let meta = config_meta(config, "elasticsearch")?;
    b.note(
        "meta.mode",
        Section::Source,
        "`config`: the index and fields below",
    );
    let index = non_empty(&meta.index).ok_or_else(|| bad("meta.index: missing"))?;
    b.source.insert("index".into(), index.into());
    b.note("meta.index", Section::Source, format!("index; {ES_BETTER}"));
    b.ignore(
        "meta.version",
        meta.version.is_some(),
        "vmig asks the server its version",
    );
    let fields = meta
        .fields
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "meta.fields: missing or empty (the fields of `{index}` to migrate)"
            ))
        })?;
    let mut pk: Option<(&str, &str)> = None;
    let mut names = Vec::new();
    let mut casts = Map::new();
    let mut dims = Map::new();
    let mut lengths = Map::new();
    let mut vectors = 0;
    for (i, f) in fields.iter().enumerate() {
        let key = format!("meta.fields[{i}]");
        let name = non_empty(&f.name).ok_or_else(|| bad(format!("{key}.name: missing")))?;
        let kind = non_empty(&f.kind).ok_or_else(|| bad(format!("{key}.type: missing")))?;
        let cast = es_cast_type(kind).ok_or_else(|| {
            bad(format!(
                "{key}.type: `{kind}` is not a type milvus-migration migrates (text, string, keyword, long, integer, short, byte, boolean, double, float, half_float, scaled_float, dense_vector, object); vmig's own elasticsearch source reads more: write a vmig job"
            ))
        })?;
        if names.contains(&name) {
            return Err(bad(format!("{key}.name: `{name}` is given twice")));
        }
        if f.pk == Some(true) {
            if let Some((other, _)) = pk {
                return Err(bad(format!(
                    "{key}.pk: `{other}` is the primary key already; there is one"
                )));
            }
            if !matches!(kind, "keyword" | "long") {
                return Err(bad(format!(
                    "{key}.pk: the primary key must be of type keyword or long, not {kind}"
                )));
            }
            pk = Some((name, kind));
        }
        if cast == "float_vector" {
            vectors += 1;
            match f.dims {
                Some(d) if d > 0 && d <= 32_768 => {
                    dims.insert(name.into(), d.into());
                }
                _ => {
                    return Err(bad(format!(
                        "{key}.dims: missing or not between 1 and 32768 (dense_vector `{name}`)"
                    )))
                }
            }
        }
        if cast == "varchar" {
            let len = match f.max_len {
                None | Some(0) => 65_535,
                Some(n) if (1..=65_535).contains(&n) => n,
                Some(n) => {
                    return Err(bad(format!(
                        "{key}.maxLen: {n}; Milvus allows at most 65535"
                    )))
                }
            };
            lengths.insert(name.into(), len.into());
        }
        casts.insert(name.into(), cast.into());
        names.push(name);
    }
    if vectors == 0 {
        return Err(bad(
            "meta.fields: no dense_vector field; a Milvus collection needs one",
        ));
    }
    b.note("meta.fields", Section::Transform, "the fields, their order and types (cast), dense_vector dims (checked against the mapping at plan time), maxLen (max_length, every value checked)");
    let pk_name = pk.map(|(n, _)| n).unwrap_or("_id");
    let mut selected: Vec<&str> = Vec::new();
    if pk.is_none() {
        selected.push("_id");
        lengths.insert("_id".into(), 65_535.into());
        casts.insert("_id".into(), "varchar".into());
    }
    selected.extend(names.iter().copied());
    let es_fields: Vec<&str> = names.iter().copied().filter(|n| *n != "_id").collect();
    b.source.insert("fields".into(), json!(es_fields));
    b.source.insert(
        "pk".into(),
        if pk_name == "_id" { "_id" } else { pk_name }.into(),
    );
    b.source.insert("id_column".into(), "_id".into());
    b.note(
        "(milvus-migration's primary key)",
        Section::Source,
        if pk.is_none() {
            "no field has pk: true, so `_id` (VarChar, max_length 65535) is the primary key, as milvus-migration makes it".to_string()
        } else {
            format!("`{pk_name}` (pk: true) is the primary key")
        },
    );
    buffer_size(config, 10_000, b);
    b.transforms.push(ComponentConfig {
        kind: "select".into(),
        options: map(json!({ "fields": selected })),
    });
    let mut cast = Map::new();
    cast.insert("fields".into(), Value::Object(casts));
    cast.insert("dims".into(), Value::Object(dims));
    cast.insert("max_length".into(), Value::Object(lengths));
    b.transforms.push(ComponentConfig {
        kind: "cast".into(),
        options: cast,
    });
    let (name, mut props) = meta_milvus(meta, Some(index), b)?;
    if meta
        .milvus
        .as_ref()
        .and_then(|m| non_empty(&m.collection))
        .is_none()
    {
        check_collection_name("meta.index", index)?;
    }
    if props.auto_id == Some(true) {
        return Err(bad("meta.milvus.autoId: milvus-migration keeps Elasticsearch's keys (autoId is a milvus2x setting)"));
    }
    props.auto_id = None;
    if let Some(name) = name {
        b.transforms.push(ComponentConfig {
            kind: "collection".into(),
            options: map(json!({ "name": name })),
        });
    }
    props.format = "json";
    props.description = Some("Migration from Elasticsearch");
    props.shards = props.shards.or(Some(2));
    props.dynamic = Some(props.dynamic.unwrap_or(true));
    props.primary_key = Some(pk_name.to_string());
    es_connection(config, cwd, b)?;
    Ok(props)
}

/// `source.es` → the elasticsearch source's connection options, as milvus-migration reads them:
/// `cloudId` + `apiKey`; else `urls` with `serviceToken`, or else `username`/`password`/`cert`.
fn es_connection(config: &MigrationConfig, cwd: &Path, b: &mut Builder) -> Result<()> {
    let es = config
        .source
        .as_ref()
        .and_then(|s| s.es.as_ref())
        .ok_or_else(|| bad("source.es: missing (the Elasticsearch to read)"))?;
    let ignored_with = |b: &mut Builder, keys: &[(&str, bool)], why: &str| {
        for (k, present) in keys {
            b.ignore(&format!("source.es.{k}"), *present, why);
        }
    };
    if let Some(cloud) = non_empty(&es.cloud_id) {
        let key = non_empty(&es.api_key)
            .ok_or_else(|| bad("source.es.apiKey: missing (cloudId needs it)"))?;
        b.source.insert("cloud_id".into(), cloud.into());
        b.note("source.es.cloudId", Section::Source, "cloud_id");
        b.source.insert("api_key".into(), key.into());
        b.secret(
            "source.es.apiKey",
            Section::Source,
            &["api_key"],
            "VMIG_ES_API_KEY",
            "${VMIG_ES_API_KEY}".into(),
        );
        b.note("source.es.apiKey", Section::Source, "api_key");
        let why = "cloudId is set (milvus-migration then reads only cloudId and apiKey)";
        ignored_with(
            b,
            &[
                ("urls", es.urls.as_ref().is_some_and(|u| !u.is_empty())),
                ("username", non_empty(&es.username).is_some()),
                ("password", non_empty(&es.password).is_some()),
                ("serviceToken", non_empty(&es.service_token).is_some()),
                ("cert", non_empty(&es.cert).is_some()),
                ("fingerprint", non_empty(&es.fingerprint).is_some()),
            ],
            why,
        );
        return Ok(());
    }
    let urls: Vec<&str> = es
        .urls
        .iter()
        .flatten()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(bad("source.es.urls: missing (or give source.es.cloudId)"));
    }
    b.source.insert("url".into(), json!(urls));
    b.note(
        "source.es.urls",
        Section::Source,
        "url (tried in turn when a node is unreachable)",
    );
    b.ignore(
        "source.es.apiKey",
        non_empty(&es.api_key).is_some(),
        "milvus-migration reads apiKey only with cloudId",
    );
    if let Some(token) = non_empty(&es.service_token) {
        b.source.insert("bearer_token".into(), token.into());
        b.secret(
            "source.es.serviceToken",
            Section::Source,
            &["bearer_token"],
            "VMIG_ES_SERVICE_TOKEN",
            "${VMIG_ES_SERVICE_TOKEN}".into(),
        );
        b.note(
            "source.es.serviceToken",
            Section::Source,
            "bearer_token (a service token is sent as `Authorization: Bearer`)",
        );
        let why = "serviceToken is set (milvus-migration then ignores username, password, cert and fingerprint)";
        ignored_with(
            b,
            &[
                ("username", non_empty(&es.username).is_some()),
                ("password", non_empty(&es.password).is_some()),
                ("cert", non_empty(&es.cert).is_some()),
                ("fingerprint", non_empty(&es.fingerprint).is_some()),
            ],
            why,
        );
        return Ok(());
    }
    if let Some(user) = non_empty(&es.username) {
        b.source.insert("username".into(), user.into());
        b.note("source.es.username", Section::Source, "username");
    }
    if let Some(pw) = non_empty(&es.password) {
        b.source.insert("password".into(), pw.into());
        b.secret(
            "source.es.password",
            Section::Source,
            &["password"],
            "VMIG_ES_PASSWORD",
            "${VMIG_ES_PASSWORD}".into(),
        );
        b.note("source.es.password", Section::Source, "password");
    }
    let fingerprint = non_empty(&es.fingerprint);
    if let Some(cert) = non_empty(&es.cert) {
        if fingerprint.is_some() {
            // go-elasticsearch dials TLS itself when CertificateFingerprint is set, and the CA
            // pool built from CACert is then never consulted.
            b.ignore(
                "source.es.cert",
                true,
                "fingerprint is set (go-elasticsearch then trusts the server by the fingerprint alone and does not use the CA file)",
            );
        } else {
            b.source
                .insert("ca_cert".into(), local_path(cwd, cert).into());
            b.note(
                "source.es.cert",
                Section::Source,
                "ca_cert (the CA's PEM file)",
            );
        }
    }
    if let Some(fp) = fingerprint {
        let digits = fp.chars().filter(|c| *c != ':').collect::<Vec<_>>();
        if digits.len() != 64 || !digits.iter().all(char::is_ascii_hexdigit) {
            return Err(bad(
                "source.es.fingerprint: not a SHA-256 certificate fingerprint (64 hex digits, colons allowed, as Elasticsearch prints it at first start)",
            ));
        }
        b.source.insert("ca_fingerprint".into(), fp.into());
        b.note(
            "source.es.fingerprint",
            Section::Source,
            "ca_fingerprint (the server is trusted when a certificate of the chain it presents has this SHA-256; as in go-elasticsearch, chain and host name are then not checked)",
        );
    }
    Ok(())
}

/// `workMode: milvus2x`: `meta.collection` (and `meta.fields`) of `source.milvus2x`.
fn milvus2x(config: &MigrationConfig, b: &mut Builder) -> Result<Props> {
    let meta = config_meta(config, "milvus2x")?;
    b.note(
        "meta.mode",
        Section::Source,
        "`config`: the collection below",
    );
    let collection = non_empty(&meta.collection)
        .ok_or_else(|| bad("meta.collection: missing (the source collection)"))?;
    b.source.insert("collection".into(), collection.into());
    b.note("meta.collection", Section::Source, "collection");
    b.ignore(
        "meta.version",
        meta.version.is_some(),
        "vmig asks the server its version",
    );
    b.ignore(
        "meta.index",
        meta.index.is_some(),
        "milvus-migration reads it in elasticsearch mode only",
    );
    let source = config
        .source
        .as_ref()
        .and_then(|s| s.milvus2x.as_ref())
        .ok_or_else(|| bad("source.milvus2x: missing (the Milvus 2.x to copy from)"))?;
    let mut options = Map::new();
    connection(source, "source.milvus2x", Section::Source, &mut options, b)?;
    b.ignore(
        "source.milvus2x.writeMode",
        source.write_mode.is_some(),
        "a target setting",
    );
    b.source.extend(options);
    buffer_size(config, 16_384, b);
    if let Some(fields) = meta.fields.as_deref().filter(|f| !f.is_empty()) {
        let mut names = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let name =
                non_empty(&f.name).ok_or_else(|| bad(format!("meta.fields[{i}].name: missing")))?;
            if f.kind.is_some() || f.dims.is_some() || f.max_len.is_some() || f.pk.is_some() {
                b.note(&format!("meta.fields[{i}]"), Section::Ignored, "in milvus2x mode only the name counts; the type comes from the source collection (as milvus-migration reads it)");
            }
            names.push(name);
        }
        b.transforms.push(ComponentConfig {
            kind: "select".into(),
            options: map(json!({ "fields": names })),
        });
        b.note(
            "meta.fields",
            Section::Transform,
            "select: only these fields are copied (the primary key and a vector among them)",
        );
    }
    let (name, props) = meta_milvus(meta, None, b)?;
    if let Some(name) = name {
        b.transforms.push(ComponentConfig {
            kind: "collection".into(),
            options: map(json!({ "name": name })),
        });
    }
    if props.auto_id == Some(false) {
        b.source.insert("ids".into(), "keep".into());
    }
    Ok(props)
}

/// `target.milvus2x` of the milvus2x work mode: the `milvus2` sink inserting (or upserting, by
/// `writeMode`) straight into it, as milvus-migration does; no files are staged.
fn milvus2x_sink(target: &Target, props: &Props, b: &mut Builder) -> Result<ComponentConfig> {
    let milvus = target
        .milvus2x
        .as_ref()
        .ok_or_else(|| bad("target.milvus2x: missing (the Milvus 2.x to copy into)"))?;
    let mut options = Map::new();
    connection(milvus, "target.milvus2x", Section::Sink, &mut options, b)?;
    let mode = match non_empty(&milvus.write_mode) {
        None | Some("insert") => "insert",
        Some("upsert") => "upsert",
        Some(other) => {
            return Err(bad(format!(
                "target.milvus2x.writeMode: `{other}` is not `insert` or `upsert`"
            )))
        }
    };
    options.insert("mode".into(), mode.into());
    b.note(
        "target.milvus2x.writeMode",
        Section::Sink,
        format!("mode `{mode}`: rows go straight into the collection (no staged files), as milvus-migration's milvus2x mode does"),
    );
    b.ignore(
        "target.mode",
        target.mode.is_some(),
        "milvus2x mode copies straight into target.milvus2x",
    );
    b.ignore(
        "target.remote",
        target.remote.is_some(),
        "milvus2x mode stages no files",
    );
    b.ignore(
        "target.local",
        target.local.is_some(),
        "milvus2x mode stages no files",
    );
    b.ignore(
        "target.create",
        target.create.is_some(),
        "milvus-migration reads it in faiss mode only",
    );
    collection_options(&mut options, props, b);
    Ok(ComponentConfig {
        kind: "milvus2".into(),
        options,
    })
}

/// The new collection's settings and the append rule, as milvus-migration creates it.
fn collection_options(options: &mut Map<String, Value>, props: &Props, b: &mut Builder) {
    options.insert("if_exists".into(), "append".into());
    let mut said =
        vec!["an existing collection is appended to (as milvus-migration does)".to_string()];
    if let Some(d) = props.description {
        options.insert("description".into(), d.into());
        said.push(format!("a new one is described {d:?}"));
    }
    if let Some(c) = props.consistency {
        options.insert("consistency_level".into(), c.into());
        said.push(format!("consistency {c}"));
    }
    if let Some(n) = props.shards {
        options.insert("shards".into(), n.into());
        said.push(format!("{n} shards"));
    }
    if let Some(d) = props.dynamic {
        options.insert("dynamic_field".into(), d.into());
        said.push(format!("dynamic field {}", if d { "on" } else { "off" }));
    }
    if let Some(pk) = &props.primary_key {
        options.insert("primary_key".into(), pk.clone().into());
        said.push(format!("primary key `{pk}`"));
    }
    if let Some(a) = props.auto_id {
        options.insert("auto_id".into(), a.into());
        said.push(format!("auto_id {a}"));
    }
    b.note(
        "(milvus-migration's collection)",
        Section::Sink,
        said.join("; "),
    );
}

/// Percent-encodes a URL user-info part.
fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A Go MySQL DSN: `[user[:password]@][net[(addr)]]/dbname[?param=value&…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoDsn {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) addr: String,
    pub(crate) db: String,
    pub(crate) params: String,
}

impl GoDsn {
    /// Parses a DSN as go-sql-driver/mysql does: the user-info ends at the last `@` before the
    /// last `/`, the password at the first `:`. Errors never show the DSN (it holds a password).
    pub(crate) fn parse(dsn: &str) -> Result<GoDsn> {
        let (head, tail) = dsn.rsplit_once('/').ok_or_else(|| {
            bad("meta.mysqlUrl: not a Go MySQL DSN (`user:password@tcp(host:port)/db`): no `/db`")
        })?;
        let (db, params) = match tail.split_once('?') {
            Some((db, params)) => (db, params),
            None => (tail, ""),
        };
        let (userinfo, net) = match head.rsplit_once('@') {
            Some((u, n)) => (Some(u), n),
            None => (None, head),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_string()), Some(pw.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        let addr = match net {
            "" | "tcp" => "127.0.0.1:3306".to_string(),
            n => match n.strip_prefix("tcp(").and_then(|a| a.strip_suffix(')')) {
                Some(a) if a.contains(':') => a.to_string(),
                Some(a) => format!("{a}:3306"),
                None => {
                    return Err(bad(
                        "meta.mysqlUrl: only `tcp(host:port)` addresses are supported (not unix sockets)",
                    ))
                }
            },
        };
        Ok(GoDsn {
            user,
            password,
            addr,
            db: db.to_string(),
            params: params.to_string(),
        })
    }

    /// `mysql://user:password@addr/db`, with `password` as given (encoded, or a `${VAR}`).
    pub(crate) fn url(&self, password: Option<String>) -> String {
        let userinfo = match (&self.user, password) {
            (Some(u), Some(p)) => format!("{}:{p}@", encode(u)),
            (Some(u), None) => format!("{}@", encode(u)),
            (None, _) => String::new(),
        };
        format!("mysql://{userinfo}{}/{}", self.addr, self.db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dsns() {
        let d = GoDsn::parse(
            "user:p@ss:w@tcp(localhost:3306)/milvus?charset=utf8mb4&parseTime=True&loc=Local",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.user.as_deref(), Some("user"));
        assert_eq!(d.password.as_deref(), Some("p@ss:w"));
        assert_eq!(d.addr, "localhost:3306");
        assert_eq!(d.db, "milvus");
        assert_eq!(
            d.url(Some(encode("p@ss:w"))),
            "mysql://user:p%40ss%3Aw@localhost:3306/milvus"
        );
        let d = GoDsn::parse("root@/milvus").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.url(None), "mysql://root@127.0.0.1:3306/milvus");
        let e = GoDsn::parse("u:secretpw@unix(/tmp/s)/m")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "invalid `migration.yaml` configuration: meta.mysqlUrl: only `tcp(host:port)` addresses are supported (not unix sockets)");
    }
}
