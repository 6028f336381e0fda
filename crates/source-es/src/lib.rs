//! vmig source plugins `elasticsearch` and `opensearch`: read every document of an Elasticsearch
//! (7.x–9.x) or OpenSearch (1.x–3.x) index, alias or pattern, with the index mapping as the
//! schema.
//!
//! The main design decisions:
//!
//! * **The server decides the read method.** `GET /` names the product and version. On
//!   Elasticsearch 7.12+ vmig opens a point in time and pages with `search_after` sorted by
//!   `_shard_doc` (the cheapest full traversal, and resumable: a position is the last hit's sort
//!   values). Elsewhere (older Elasticsearch, and OpenSearch, which has no `_shard_doc`
//!   tie-breaker) it uses a scroll sorted by `_doc`, where a position is the number of documents
//!   read. `slices = N` splits the read into N sliced partitions read in parallel. Scrolls and
//!   PITs are always closed, also on error or when the reader is dropped.
//! * **Expiry is recovered, not restarted.** A PIT that expires is reopened and paging continues
//!   after the last sort values; a scroll that expires (or whose answer was lost) is reopened and
//!   the documents already read are skipped. Both are exact for an index that is not written to
//!   during the migration — the only case where any full read is exact.
//! * **The mapping is the schema** ([`mapping`]): vectors become Milvus vector columns of the
//!   mapped dimension, scalar types their Milvus equivalents, objects JSON.
//! * **Hits are decoded from raw JSON text** ([`decode`]): vector elements are parsed with
//!   `f32::from_str` straight into the column buffer (bit-exact and without a `serde_json::Value`
//!   per element), which keeps vmig's CPU well below the server's.
//!
//! ```toml
//! [source]
//! type = "elasticsearch"
//! url = "https://es.example.com:9200"
//! index = "products"
//! username = "elastic"
//! password = "${ES_PASSWORD}"
//! slices = 2
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod dates;
pub mod decode;
pub mod mapping;
pub mod pin;
mod source;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, RetryConfig, Source, SourceConfig};

pub use source::{EsPosition, EsSource, ReadMethod};

/// One URL or several (tried in turn when a node cannot be reached).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Urls {
    /// A single URL.
    One(String),
    /// Several URLs of the same cluster.
    Many(Vec<String>),
}

impl Urls {
    /// The URLs as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Urls::One(u) => std::slice::from_ref(u),
            Urls::Many(v) => v,
        }
    }
}

impl Default for Urls {
    fn default() -> Self {
        Urls::Many(Vec::new())
    }
}

/// How `date` and `date_nanos` fields are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateMode {
    /// Int64 epoch milliseconds (`date_nanos`: epoch nanoseconds). Values are read with the
    /// field's mapping `format` as Elasticsearch reads them ([`dates`]; default
    /// `strict_date_optional_time||epoch_millis`); no zone or offset means UTC.
    #[default]
    EpochMillis,
    /// The text (or number) the client sent, as VarChar.
    String,
}

/// What to do with a mapped field whose type vmig cannot read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknownType {
    /// Fail at plan time naming the field and its type.
    #[default]
    Error,
    /// Leave the field out, with a warning.
    Skip,
}

/// What to do with a document whose value does not fit its column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Fail naming the index, the document `_id` and the field.
    #[default]
    Error,
    /// Skip the document; skipped documents are counted and logged.
    Skip,
}

/// How the string tokens of `sparse_vector` / `rank_features` become Milvus's u32 indices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseTokens {
    /// Tokens must be decimal u32 numbers (vocabulary ids, as written by most sparse encoders);
    /// any other token is an error naming the document and token.
    #[default]
    Numeric,
    /// Index = FNV-1a 32-bit hash of the token's UTF-8 bytes. Two tokens of one document with the
    /// same hash are an error; collisions across documents cannot be detected.
    Hash,
}

/// Which read method to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodChoice {
    /// PIT + `search_after` on Elasticsearch 7.12+, scroll elsewhere.
    #[default]
    Auto,
    /// Point in time + `search_after` sorted by `_shard_doc` (Elasticsearch 7.12+ only).
    Pit,
    /// Scroll sorted by `_doc`.
    Scroll,
}

/// Configuration of the `elasticsearch` (and `opensearch`) source. `Debug` and `Serialize` show
/// no secret (see [`vmig_core::redact`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsSourceConfig {
    /// The cluster URL, or a list of URLs of the same cluster. `user:password@` in a URL is used
    /// as basic auth and removed from the URL (and printed as `***@`). May be empty when
    /// `cloud_id` is given.
    #[serde(default, serialize_with = "vmig_core::redact::serialize_redacted")]
    pub url: Urls,
    /// An Elastic Cloud id (`name:base64…`), instead of or in addition to `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Index name, comma-separated list, alias or pattern (`logs-*`). Several indices must map
    /// their shared fields the same way.
    pub index: String,
    /// An Elasticsearch query (DSL object) selecting the documents; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
    /// Top-level fields to read (default: every mapped field). May be empty when `vectors`
    /// lifts the vector to read: then only the id and the lifted vectors are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Fields that hold arrays of scalars, read as Milvus `Array<T>` (the mapping cannot tell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<String>,
    /// Documents per search request (≤ 10 000). Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Read as N slices in parallel (one partition each). Default 1; the number of primary shards
    /// is the usual best choice.
    #[serde(default = "default_slices")]
    pub slices: u32,
    /// `auto` (default), `pit` or `scroll`.
    #[serde(default)]
    pub method: MethodChoice,
    /// Scroll/PIT keep-alive between two pages (Elasticsearch time unit). Default `5m`.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: String,
    /// The primary key: `_id` (default; a VarChar column named `id_column`) or a top-level string
    /// or integer field.
    #[serde(default = "default_pk")]
    pub pk: String,
    /// Name of the column holding `_id` when `pk = "_id"`. Default `id`.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// `epoch_millis` (default) or `string`.
    #[serde(default)]
    pub dates: DateMode,
    /// How `sparse_vector`/`rank_features` tokens become u32 keys: `numeric` (default) or
    /// `hash`; see [`SparseTokens`]. (Not named `*token*`, which `vmig plan` would redact.)
    #[serde(default)]
    pub sparse_keys: SparseTokens,
    /// `error` (default) or `skip`.
    #[serde(default)]
    pub on_unknown_type: OnUnknownType,
    /// `error` (default) or `skip`.
    #[serde(default)]
    pub on_invalid: OnInvalid,
    /// Values used for missing or null fields (the column is then not nullable).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, serde_json::Value>,
    /// Dimensions of vector fields whose mapping has no `dims` (by field name, or by path for
    /// a lifted vector). Without it, the dimension is inferred from the first document that has
    /// the field, and every other document is checked against it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dims: BTreeMap<String, usize>,
    /// Vectors inside `object` (or single-element `nested`) fields lifted into top-level vector
    /// columns: `{ column = "dotted.path" }`, e.g. `{ embedding = "text_embedding.predicted_value" }`
    /// where an inference processor writes them. The vector is removed from the object's JSON
    /// column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vectors: BTreeMap<String, String>,
    /// Basic-auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic-auth password (use `${ENV_VAR}`); never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub password: Option<String>,
    /// An API key: the encoded form Elasticsearch returns, or `id:api_key`; never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub api_key: Option<String>,
    /// A bearer token (OAuth/JWT/service token); never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub bearer_token: Option<String>,
    /// A PEM file with the CA certificate(s) to trust, for clusters with their own CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The SHA-256 fingerprint of a certificate to trust (64 hex digits, colons allowed: the
    /// `AB:CD:…` Elasticsearch prints for its HTTP CA at first start). The server is accepted
    /// when a certificate of the chain it presents has that fingerprint; this pin *replaces*
    /// chain, host name and date verification, as go-elasticsearch's `CertificateFingerprint`
    /// does (see [`pin`]). Not with `insecure` (contradictory) nor with `ca_cert` (give one way
    /// of trusting the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// Accept any TLS certificate (never in production). Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Retry policy of requests failing transiently (429, 502–504, connection errors,
    /// timeouts): a `[source.retry]` table ([`vmig_core::retry`]; default 7 attempts, waits from
    /// 200 ms doubling up to 10 s with jitter, at most 15 min in all). Also bounds how often a
    /// lost scroll or PIT is reopened.
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
    /// The older spelling of `retry.max_attempts`: `max_retries = n` is `n + 1` attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Timeout of one request, in seconds. Default 120.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
}

vmig_core::redacted_debug!(EsSourceConfig);

fn default_batch_size() -> usize {
    1000
}
fn default_slices() -> u32 {
    1
}
fn default_keep_alive() -> String {
    "5m".into()
}
fn default_pk() -> String {
    "_id".into()
}
fn default_id_column() -> String {
    "id".into()
}
fn default_timeout() -> u64 {
    120
}

impl EsSourceConfig {
    /// Reads `index` at `url` with every other option at its default.
    pub fn new(url: impl Into<String>, index: impl Into<String>) -> Self {
        EsSourceConfig {
            url: Urls::One(url.into()),
            cloud_id: None,
            index: index.into(),
            query: None,
            fields: None,
            arrays: Vec::new(),
            batch_size: default_batch_size(),
            slices: default_slices(),
            method: MethodChoice::Auto,
            keep_alive: default_keep_alive(),
            pk: default_pk(),
            id_column: default_id_column(),
            dates: DateMode::EpochMillis,
            sparse_keys: SparseTokens::Numeric,
            on_unknown_type: OnUnknownType::Error,
            on_invalid: OnInvalid::Error,
            defaults: BTreeMap::new(),
            dims: BTreeMap::new(),
            vectors: BTreeMap::new(),
            username: None,
            password: None,
            api_key: None,
            bearer_token: None,
            ca_cert: None,
            ca_fingerprint: None,
            insecure: false,
            retry: RetryConfig::default(),
            max_retries: None,
            request_timeout_secs: default_timeout(),
        }
    }

    /// The retry policy: the `retry` table with the older `max_retries` applied.
    ///
    /// # Errors
    /// When the two disagree or the table is invalid.
    pub fn retry_policy(&self, plugin: &str) -> Result<RetryConfig> {
        self.retry.with_max_retries(plugin, self.max_retries)
    }

    fn check(&self, plugin: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(plugin, m));
        self.retry_policy(plugin)?;
        if self.url.as_slice().is_empty() && self.cloud_id.is_none() {
            return bad("give `url` (one or a list) or `cloud_id`".into());
        }
        if self.index.trim().is_empty() {
            return bad("`index` is empty; give an index name, list, alias or pattern".into());
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return bad(format!(
                "`batch_size` = {} must be between 1 and 10000 (index.max_result_window)",
                self.batch_size
            ));
        }
        if self.slices == 0 || self.slices > 1024 {
            return bad(format!(
                "`slices` = {} must be between 1 and 1024",
                self.slices
            ));
        }
        let auths = [
            self.username.is_some(),
            self.api_key.is_some(),
            self.bearer_token.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return bad(
                "give only one of `username`/`password`, `api_key` and `bearer_token`".into(),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("`password` needs `username`".into());
        }
        if let Some(id) = &self.cloud_id {
            client::cloud_id_url(id)?;
        }
        if let Some(fp) = &self.ca_fingerprint {
            pin::Fingerprint::parse(plugin, fp)?;
            if self.insecure {
                return bad("`ca_fingerprint` pins the server's certificate and `insecure = true` accepts any certificate: give only one (the pin)".into());
            }
            if self.ca_cert.is_some() {
                return bad("give either `ca_cert` (verify the server's chain and host name against that CA) or `ca_fingerprint` (trust the server whose chain holds a certificate with that SHA-256, without other checks), not both".into());
            }
        }
        if self.pk.is_empty() || self.id_column.is_empty() {
            return bad("`pk` and `id_column` must not be empty".into());
        }
        if self.keep_alive.is_empty()
            || !self
                .keep_alive
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        {
            return bad(format!(
                "`keep_alive` = `{}` is not a time unit such as `5m`",
                self.keep_alive
            ));
        }
        if let Some(q) = &self.query {
            if !q.is_object() {
                return bad(
                    "`query` must be a query DSL object, e.g. { term = { lang = \"en\" } }".into(),
                );
            }
        }
        if let Some(f) = &self.fields {
            if f.is_empty() && self.vectors.is_empty() {
                return bad("`fields` is empty; leave it out to read every mapped field".into());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceConfig for EsSourceConfig {
    const NAME: &'static str = "elasticsearch";
    const SUMMARY: &'static str =
        "Elasticsearch 7.x–9.x or OpenSearch index: schema from the mapping, PIT/search_after or scroll, sliced, resumable";

    fn example() -> Self {
        let mut c = EsSourceConfig::new("https://localhost:9200", "products");
        c.username = Some("elastic".into());
        c.password = Some("${ES_PASSWORD}".into());
        c.slices = 2;
        c
    }

    fn validate(&self) -> Result<()> {
        self.check(Self::NAME)
    }

    /// The CA certificate file, when one is given.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[("ca_cert", self.ca_cert.as_deref())])
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.check(Self::NAME)?;
        Ok(Box::new(EsSource::connect(self.clone()).await?))
    }
}

/// The `opensearch` source: the same reader and options as `elasticsearch` (the server is
/// identified from `GET /` either way), registered under the name OpenSearch users look for.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpenSearchSourceConfig(pub EsSourceConfig);

#[async_trait]
impl SourceConfig for OpenSearchSourceConfig {
    const NAME: &'static str = "opensearch";
    const SUMMARY: &'static str =
        "OpenSearch 1.x–3.x (or Elasticsearch) index: same options as `elasticsearch`";

    fn example() -> Self {
        let mut c = EsSourceConfig::new("https://localhost:9200", "products");
        c.username = Some("admin".into());
        c.password = Some("${OPENSEARCH_PASSWORD}".into());
        OpenSearchSourceConfig(c)
    }

    fn validate(&self) -> Result<()> {
        self.0.check(Self::NAME)
    }

    /// As `elasticsearch`'s.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        SourceConfig::local_paths(&self.0)
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.0.check(Self::NAME)?;
        Ok(Box::new(EsSource::connect(self.0.clone()).await?))
    }
}

vmig_core::redacted_debug!(OpenSearchSourceConfig);

vmig_core::register_source!(EsSourceConfig);
vmig_core::register_source!(OpenSearchSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_round_trip_and_hide_secrets() {
        let c = EsSourceConfig::example();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["password"], "${ES_PASSWORD}", "a reference is no secret");
        let back: EsSourceConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let o = serde_json::to_value(OpenSearchSourceConfig::example()).unwrap();
        let _: OpenSearchSourceConfig = serde_json::from_value(o).unwrap();
        let mut c = EsSourceConfig::new("https://elastic:hunter2@es:9200", "i");
        c.username = Some("elastic".into());
        c.password = Some("hunter3".into());
        vmig_testing::secrets::assert_hidden(&c, &["hunter"], &["https://***@es:9200"]);
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = EsSourceConfig::new("http://x", "i");
        assert!(c.validate().is_ok());
        c.batch_size = 20_000;
        assert!(c.validate().unwrap_err().to_string().contains("batch_size"));
        let mut c = EsSourceConfig::new("http://x", "i");
        c.api_key = Some("k".into());
        c.bearer_token = Some("t".into());
        assert!(c.validate().unwrap_err().to_string().contains("only one"));
        let bad: std::result::Result<EsSourceConfig, _> = serde_json::from_value(
            serde_json::json!({"url": "http://x", "index": "i", "sliecs": 2}),
        );
        assert_eq!(bad.unwrap_err().to_string(), "unknown field `sliecs`, expected one of `url`, `cloud_id`, `index`, `query`, `fields`, `arrays`, `batch_size`, `slices`, `method`, `keep_alive`, `pk`, `id_column`, `dates`, `sparse_keys`, `on_unknown_type`, `on_invalid`, `defaults`, `dims`, `vectors`, `username`, `password`, `api_key`, `bearer_token`, `ca_cert`, `ca_fingerprint`, `insecure`, `retry`, `max_retries`, `request_timeout_secs`");
        let many: EsSourceConfig = serde_json::from_value(
            serde_json::json!({"url": ["http://a", "http://b"], "index": "i"}),
        )
        .unwrap();
        assert_eq!(many.url.as_slice().len(), 2);
    }

    #[test]
    fn max_retries_still_works_next_to_the_retry_table() {
        let parse = |v: serde_json::Value| serde_json::from_value::<EsSourceConfig>(v).unwrap();
        let plain = parse(serde_json::json!({"url": "http://x", "index": "i"}));
        assert_eq!(
            plain.retry_policy("elasticsearch").unwrap(),
            RetryConfig::default()
        );
        let old = parse(serde_json::json!({"url": "http://x", "index": "i", "max_retries": 2}));
        assert_eq!(old.retry_policy("elasticsearch").unwrap().max_attempts, 3);
        let table = parse(serde_json::json!({"url": "http://x", "index": "i",
            "retry": {"max_attempts": 4, "initial_backoff": "1s", "max_elapsed": "2m"}}));
        let p = table.retry_policy("elasticsearch").unwrap();
        assert_eq!(
            (p.max_attempts, p.initial_backoff, p.max_elapsed),
            (
                4,
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(120)
            )
        );
        let both = parse(
            serde_json::json!({"url": "http://x", "index": "i", "max_retries": 1,
            "retry": {"max_attempts": 4}}),
        );
        assert_eq!(
            both.validate().unwrap_err().to_string(),
            "invalid `elasticsearch` configuration: `max_retries = 1` (the older spelling of `retry.max_attempts = 2`) disagrees with `retry.max_attempts = 4`; keep only `retry.max_attempts`"
        );
        // Defaults are not printed (plans and fingerprints stay as they were).
        let v = serde_json::to_value(&plain).unwrap();
        assert!(
            v.get("retry").is_none() && v.get("max_retries").is_none(),
            "{v}"
        );
    }
}
