//! milvus-migration's `migration.yaml`, key by key.
//!
//! The key set is the one its config code reads (`core/config/resolve*.go`: the `v.GetString(…)`
//! calls and the keys of `meta.milvus` / `meta.fields` items read from `v.Get`), with the
//! spelling of its README files. Every struct refuses keys it does not know; `crate::parse`
//! turns serde's refusal into an error naming the whole key with a "did you mean". Keys are
//! matched as viper matches them: without regard to case (`parse` rewrites `ShardsNum` to
//! `shardsNum` before these types see it).
//!
//! `Debug` of the structs holding secrets (`ak`, `sk`, `password`, `apiKey`, `serviceToken`,
//! `mysqlUrl`) shows them masked.

use serde::{Deserialize, Serialize};
use vmig_core::redact::serialize_secret;

/// A whole `migration.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// `dumper`: the work mode and the reader/writer tuning.
    pub dumper: Dumper,
    /// `loader`: the loader's worker limit.
    #[serde(default)]
    pub loader: Option<Loader>,
    /// `meta`: where the source's schema comes from.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// `source`: where the data is read.
    #[serde(default)]
    pub source: Option<Source>,
    /// `target`: the staging place and the Milvus 2.x to load into.
    #[serde(default)]
    pub target: Option<Target>,
}

/// `dumper`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dumper {
    /// `dumper.worker`.
    pub worker: DumperWorker,
}

/// `dumper.worker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DumperWorker {
    /// `dumper.worker.workMode`: `faiss`, `milvus1x`, `elasticsearch` or `milvus2x`.
    pub work_mode: String,
    /// `dumper.worker.limit`: concurrent dump threads.
    #[serde(default)]
    pub limit: Option<i64>,
    /// `dumper.worker.reader`.
    #[serde(default)]
    pub reader: Option<Buffer>,
    /// `dumper.worker.writer`.
    #[serde(default)]
    pub writer: Option<Buffer>,
}

/// `dumper.worker.reader` / `dumper.worker.writer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Buffer {
    /// `bufferSize`: KB for files; rows per read for Elasticsearch and Milvus 2.x.
    #[serde(default)]
    pub buffer_size: Option<i64>,
}

/// `loader`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loader {
    /// `loader.worker`.
    #[serde(default)]
    pub worker: Option<LoaderWorker>,
}

/// `loader.worker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderWorker {
    /// `loader.worker.limit`: concurrent bulk-insert tasks.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `meta`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Meta {
    /// `meta.mode`: `mock`, `local`, `config`, `sqlite`, `mysql` or `remote`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `meta.mockFile` (mode `mock`): a `meta.json` as its `export` writes.
    #[serde(default)]
    pub mock_file: Option<String>,
    /// `meta.localFile` (mode `local`): the same, under another key.
    #[serde(default)]
    pub local_file: Option<String>,
    /// `meta.sqliteFile` (mode `sqlite`): Milvus 1.x's `meta.sqlite`.
    #[serde(default)]
    pub sqlite_file: Option<String>,
    /// `meta.mysqlUrl` (mode `mysql`): a Go MySQL DSN, `user:pw@tcp(host:port)/db?…`.
    #[serde(default, serialize_with = "serialize_secret")]
    pub mysql_url: Option<String>,
    /// `meta.remoteMetaFile` (mode `remote`): a `meta.json` in the source bucket.
    #[serde(default)]
    pub remote_meta_file: Option<String>,
    /// `meta.version`: the source's version (Elasticsearch, Milvus 2.x).
    #[serde(default)]
    pub version: Option<String>,
    /// `meta.index` (Elasticsearch, mode `config`).
    #[serde(default)]
    pub index: Option<String>,
    /// `meta.collection` (Milvus 2.x, mode `config`).
    #[serde(default)]
    pub collection: Option<String>,
    /// `meta.fields` (mode `config`).
    #[serde(default)]
    pub fields: Option<Vec<MetaField>>,
    /// `meta.milvus`: properties of the target collection (mode `config`).
    #[serde(default)]
    pub milvus: Option<MetaMilvus>,
}

vmig_core::redacted_debug!(Meta);

/// One item of `meta.fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaField {
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `type`: the Elasticsearch type (`long`, `keyword`, `dense_vector`, …).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `dims` of a `dense_vector`.
    #[serde(default)]
    pub dims: Option<i64>,
    /// `maxLen` of a VarChar.
    #[serde(default)]
    pub max_len: Option<i64>,
    /// `pk`: the primary key.
    #[serde(default)]
    pub pk: Option<bool>,
}

/// `meta.milvus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaMilvus {
    /// `collection`: the target collection's name.
    #[serde(default)]
    pub collection: Option<String>,
    /// `closeDynamicField`.
    #[serde(default)]
    pub close_dynamic_field: Option<bool>,
    /// `shardNum`.
    #[serde(default)]
    pub shard_num: Option<i64>,
    /// `consistencyLevel`.
    #[serde(default)]
    pub consistency_level: Option<String>,
    /// `autoId`: `""` (as the source), `"true"` or `"false"` (Milvus 2.x).
    #[serde(default)]
    pub auto_id: Option<String>,
}

/// `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `source.mode`: `local` or `remote` (Faiss, Milvus 1.x).
    #[serde(default)]
    pub mode: Option<String>,
    /// `source.local`.
    #[serde(default)]
    pub local: Option<SourceLocal>,
    /// `source.remote`.
    #[serde(default)]
    pub remote: Option<SourceRemote>,
    /// `source.es`.
    #[serde(default)]
    pub es: Option<Es>,
    /// `source.milvus2x`.
    #[serde(default)]
    pub milvus2x: Option<Milvus2x>,
}

/// `source.local`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceLocal {
    /// `tablesDir`: Milvus 1.x's `db/tables` directory.
    #[serde(default)]
    pub tables_dir: Option<String>,
    /// `faissFile`: the Faiss index.
    #[serde(default)]
    pub faiss_file: Option<String>,
}

/// `source.remote`: a bucket and, in it, the tables directory or the Faiss index.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceRemote {
    /// `cloud`: `aws` (also for MinIO), `gcp`, `ali`, `tc`, `azure`/`az`.
    #[serde(default)]
    pub cloud: Option<String>,
    /// `endpoint`: `host:port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `region`.
    #[serde(default)]
    pub region: Option<String>,
    /// `bucket`.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `ak`: the access key.
    #[serde(default, serialize_with = "serialize_secret")]
    pub ak: Option<String>,
    /// `sk`: the secret key.
    #[serde(default, serialize_with = "serialize_secret")]
    pub sk: Option<String>,
    /// `useSSL`.
    #[serde(default, rename = "useSSL")]
    pub use_ssl: Option<bool>,
    /// `useIAM`: the cloud's ambient credentials instead of `ak`/`sk`.
    #[serde(default, rename = "useIAM")]
    pub use_iam: Option<bool>,
    /// `checkBucket`.
    #[serde(default)]
    pub check_bucket: Option<bool>,
    /// `tablesDir` in the bucket (Milvus 1.x).
    #[serde(default)]
    pub tables_dir: Option<String>,
    /// `faissFile` in the bucket.
    #[serde(default)]
    pub faiss_file: Option<String>,
}

vmig_core::redacted_debug!(SourceRemote);

/// `source.es`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Es {
    /// `urls`.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// `username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`.
    #[serde(default, serialize_with = "serialize_secret")]
    pub password: Option<String>,
    /// `cert`: a CA certificate file.
    #[serde(default)]
    pub cert: Option<String>,
    /// `fingerprint`: the server certificate's SHA-256.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `serviceToken`.
    #[serde(default, serialize_with = "serialize_secret")]
    pub service_token: Option<String>,
    /// `cloudId` (Elastic Cloud).
    #[serde(default)]
    pub cloud_id: Option<String>,
    /// `apiKey` (Elastic Cloud).
    #[serde(default, serialize_with = "serialize_secret")]
    pub api_key: Option<String>,
}

vmig_core::redacted_debug!(Es);

/// `source.milvus2x` / `target.milvus2x`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Milvus2x {
    /// `endpoint`: `host:port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`.
    #[serde(default, serialize_with = "serialize_secret")]
    pub password: Option<String>,
    /// `database`.
    #[serde(default)]
    pub database: Option<String>,
    /// `writeMode` (target, Milvus 2.x mode): `insert` or `upsert`.
    #[serde(default)]
    pub write_mode: Option<String>,
    /// `grpc`: message size limits.
    #[serde(default)]
    pub grpc: Option<Grpc>,
}

vmig_core::redacted_debug!(Milvus2x);

/// `*.milvus2x.grpc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Grpc {
    /// `maxCallRecvMsgSize`.
    #[serde(default)]
    pub max_call_recv_msg_size: Option<i64>,
    /// `maxCallSendMsgSize`.
    #[serde(default)]
    pub max_call_send_msg_size: Option<i64>,
}

/// `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `target.mode`: `local` or `remote`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `target.local`.
    #[serde(default)]
    pub local: Option<TargetLocal>,
    /// `target.remote`.
    #[serde(default)]
    pub remote: Option<TargetRemote>,
    /// `target.milvus2x`.
    #[serde(default)]
    pub milvus2x: Option<Milvus2x>,
    /// `target.create` (Faiss).
    #[serde(default)]
    pub create: Option<Create>,
}

/// `target.local`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetLocal {
    /// `outputDir`: where the dumped files go.
    #[serde(default)]
    pub output_dir: Option<String>,
}

/// `target.remote`: the bucket Milvus 2.x reads bulk-insert files from.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetRemote {
    /// `outputDir`: the prefix in the bucket.
    #[serde(default)]
    pub output_dir: Option<String>,
    /// `cloud`: `aws` (also for MinIO), `gcp`, `ali`, `tc`, `azure`/`az`.
    #[serde(default)]
    pub cloud: Option<String>,
    /// `endpoint`: `host:port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `region`.
    #[serde(default)]
    pub region: Option<String>,
    /// `bucket`: Milvus 2.x's own bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `ak`: the access key.
    #[serde(default, serialize_with = "serialize_secret")]
    pub ak: Option<String>,
    /// `sk`: the secret key.
    #[serde(default, serialize_with = "serialize_secret")]
    pub sk: Option<String>,
    /// `useSSL`.
    #[serde(default, rename = "useSSL")]
    pub use_ssl: Option<bool>,
    /// `useIAM`: the cloud's ambient credentials instead of `ak`/`sk`.
    #[serde(default, rename = "useIAM")]
    pub use_iam: Option<bool>,
    /// `checkBucket`: create the bucket when missing.
    #[serde(default)]
    pub check_bucket: Option<bool>,
}

vmig_core::redacted_debug!(TargetRemote);

/// `target.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// `target.create.collection`.
    pub collection: CreateCollection,
}

/// `target.create.collection`: the collection a Faiss migration creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCollection {
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `shardsNum`.
    #[serde(default)]
    pub shards_num: Option<i64>,
    /// `dim`: must be the index's.
    #[serde(default)]
    pub dim: Option<i64>,
    /// `metricType`: `L2` or `IP`.
    #[serde(default)]
    pub metric_type: Option<String>,
}

/// milvus-migration's Elasticsearch meta file (`meta.mode` `mock`/`local`: `meta.mockFile` or
/// `meta.localFile`; `remote`: `meta.remoteMetaFile` in `source.remote`'s bucket), its
/// `estype.MetaJSON`: `{"indexs": [...], "version": "…"}`, one item per index to migrate.
/// Its keys match without regard to case, as Go's `encoding/json` matches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsMetaFile {
    /// `indexs` (sic): the indexes, each migrated to a collection of its own.
    #[serde(default)]
    pub indexs: Option<Vec<EsMetaIndex>>,
    /// `version`: the Elasticsearch version (vmig asks the server).
    #[serde(default)]
    pub version: Option<String>,
}

/// One item of an [`EsMetaFile`]'s `indexs` (milvus-migration's `estype.IdxCfg`): what
/// `meta.index`, `meta.fields` and `meta.milvus` say in `meta.mode: config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsMetaIndex {
    /// `index`: the Elasticsearch index.
    #[serde(default)]
    pub index: Option<String>,
    /// `rows`: informational (vmig counts the rows itself).
    #[serde(default)]
    pub rows: Option<i64>,
    /// `fields`: as `meta.fields`.
    #[serde(default)]
    pub fields: Option<Vec<MetaField>>,
    /// `milvus`: as `meta.milvus`, plus the keys Go's `milvustype.MilvusCfg` also writes.
    #[serde(default)]
    pub milvus: Option<EsMetaMilvus>,
    /// `InnerPkField`: milvus-migration's own bookkeeping, written by Go's `json.Marshal`
    /// (`null`); ignored.
    #[serde(default, rename = "InnerPkField")]
    pub inner_pk_field: Option<serde_json::Value>,
    /// `InnerPkType`: as `InnerPkField`.
    #[serde(default, rename = "InnerPkType")]
    pub inner_pk_type: Option<serde_json::Value>,
}

/// `milvus` of an [`EsMetaIndex`]: every key of Go's `milvustype.MilvusCfg` (a file written by
/// `json.Marshal` has them all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EsMetaMilvus {
    /// `collection`: the target collection (else the index's name).
    #[serde(default)]
    pub collection: Option<String>,
    /// `dims`: not read for Elasticsearch (each field's `dims` is).
    #[serde(default)]
    pub dims: Option<i64>,
    /// `shardNum`.
    #[serde(default)]
    pub shard_num: Option<i64>,
    /// `closeDynamicField`.
    #[serde(default)]
    pub close_dynamic_field: Option<bool>,
    /// `consistencyLevel`.
    #[serde(default)]
    pub consistency_level: Option<String>,
    /// `loadData`: not read by milvus-migration's Elasticsearch mode.
    #[serde(default)]
    pub load_data: Option<bool>,
    /// `createIndex`: as `loadData`.
    #[serde(default)]
    pub create_index: Option<bool>,
    /// `autoId`: as `meta.milvus.autoId`.
    #[serde(default)]
    pub auto_id: Option<String>,
    /// `pkName`: not read for Elasticsearch (a field's `pk` is).
    #[serde(default)]
    pub pk_name: Option<String>,
}
