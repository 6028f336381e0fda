//! vmig source plugin `pinecone`: read the namespaces of a **serverless** Pinecone index (ids,
//! dense values, sparse values, metadata) over Pinecone's REST API, version
//! [`API_VERSION`] (sent as the `X-Pinecone-Api-Version` header on every request).
//!
//! The main design decisions:
//!
//! * **List, then fetch — never query.** Each namespace is one partition. Its ids come from
//!   `GET /vectors/list` (pages of `list_limit` ids, in the bitwise order the API documents,
//!   chained by `paginationToken`); their records from `GET /vectors/fetch` (`fetch_batch` ids
//!   per call, `fetch_concurrency` calls in flight, paced under the documented per-index request
//!   rates `fetch_rate` and `list_rate`). Pod-based indexes have no list endpoint: they are
//!   refused with a message saying so. Other tools crawl them with random query vectors, which
//!   cannot prove every record was seen; vmig does not.
//! * **Positions are a page boundary: the token of the next list page and the last id copied.**
//!   Resuming asks for that page again; ids at or before the last copied id are skipped (the
//!   order is documented, so a token that rewinds costs nothing). A token the server refuses on
//!   resume (Pinecone tokens are opaque and their lifetime is not documented) makes the reader
//!   list the namespace again from the start and skip every id up to the last copied one, which
//!   is exact as long as the namespace was not written to.
//! * **Metadata types come from a sample** (`metadata_scan_rows` records of each namespace read
//!   when the source is built, so `vmig plan` shows them): keys with one type become typed
//!   nullable columns (string → VarChar, number → Double — Pinecone keeps every number as a
//!   64-bit float —, boolean → Bool); lists of strings, keys with several types, names that
//!   cannot be Milvus fields, keys the sample did not see and values that do not fit their
//!   column go into the JSON column `metadata` (`{}` when nothing is left), so no value is lost
//!   and no key met late stops a long copy. `metadata_mode = "json"` puts all metadata in that
//!   column, `"dynamic"` in Milvus's dynamic field `$meta`.
//! * **Namespaces go to Milvus partitions of the same name**; the default namespace `""` goes
//!   to `_default` (Milvus's default partition). `namespace_mode = "column"` instead puts the
//!   namespace in a VarChar column `namespace` and every row in the collection's default
//!   partition.
//!
//! ```toml
//! [source]
//! type = "pinecone"
//! index = "docs"                      # resolved through the control plane; or index_host = "…"
//! api_key = "${PINECONE_API_KEY}"
//! namespaces = ["", "en"]             # default: every namespace of describe_index_stats
//! ```

#![warn(missing_docs)]

mod client;
mod meta;
mod source;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, RetryConfig, Source, SourceConfig};

pub use source::{PineconePosition, PineconeSource};

/// The plugin name, in messages.
pub(crate) const PLUGIN: &str = "pinecone";

/// The version of Pinecone's API the code follows (`X-Pinecone-Api-Version`), from
/// `pinecone-io/pinecone-api` `2025-10/db_data_2025-10.oas.yaml` and
/// `2025-10/db_control_2025-10.oas.yaml`.
pub const API_VERSION: &str = "2025-10";

/// The Milvus partition that receives the default namespace `""`.
pub const DEFAULT_NAMESPACE_PARTITION: &str = "_default";

/// Where the metadata goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// One typed column per key of one type in the sample; the rest in the JSON column
    /// `metadata`.
    #[default]
    Columns,
    /// All metadata in one JSON column `metadata` (`{}` when a record has none).
    Json,
    /// All metadata in Milvus's dynamic field (`$meta`).
    Dynamic,
}

/// Where the namespace of a record goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceMode {
    /// The Milvus partition of the same name (`""` → `_default`).
    #[default]
    Partition,
    /// A VarChar column `namespace`; the target's default partition.
    Column,
}

/// Configuration of the `pinecone` source. `Debug` and `Serialize` show no secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PineconeSourceConfig {
    /// The API key, sent as the `Api-Key` header; never printed. Use `${PINECONE_API_KEY}`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub api_key: Option<String>,
    /// The index's name, resolved to its host (and checked to be serverless) through the
    /// control plane's `GET /indexes/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The index's data-plane host (`https://docs-abc123.svc.aped-1234.pinecone.io`, or without
    /// the scheme); with `index` too, used instead of the host the control plane names.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_redacted"
    )]
    pub index_host: Option<String>,
    /// The control plane. Default `https://api.pinecone.io`.
    #[serde(
        default = "default_control_url",
        serialize_with = "vmig_core::redact::serialize_redacted"
    )]
    pub control_url: String,
    /// The namespaces to copy, one partition each (`""` is the default namespace). Default:
    /// every namespace `describe_index_stats` reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// `partition` (default) or `column`; see [`NamespaceMode`].
    #[serde(default)]
    pub namespace_mode: NamespaceMode,
    /// `columns` (default), `json` or `dynamic`; see [`MetadataMode`].
    #[serde(default)]
    pub metadata_mode: MetadataMode,
    /// Records of each namespace sampled when the source is built to learn the metadata keys
    /// and whether there are sparse values. Default 1000; 0 = no sample.
    #[serde(default = "default_scan_rows")]
    pub metadata_scan_rows: u64,
    /// Copy sparse values into a SparseFloatVector column `sparse_vector`: default when the
    /// index is sparse or the sample holds sparse values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<bool>,
    /// Ids per `list` page. Default 100 (the API's default).
    #[serde(default = "default_list_limit")]
    pub list_limit: u32,
    /// Ids per `fetch` call, 1–1000. Default 200 (ids travel in the URL).
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: usize,
    /// `fetch` calls in flight per namespace. Default 4.
    #[serde(default = "default_fetch_concurrency")]
    pub fetch_concurrency: usize,
    /// Most `fetch` requests per second to the index, over all namespaces (Pinecone documents
    /// 100 per index). Default 100; 0 = unpaced.
    #[serde(default = "default_fetch_rate")]
    pub fetch_rate: u32,
    /// Most `list` requests per second to the index (documented: 200 per index). Default 200;
    /// 0 = unpaced.
    #[serde(default = "default_list_rate")]
    pub list_rate: u32,
    /// A PEM file with the CA certificate(s) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Accept any TLS certificate (never in production). Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Retry policy of requests failing transiently (429, 5xx, connection errors, timeouts):
    /// a `[source.retry]` table ([`vmig_core::retry`]). A `Retry-After` header is waited for
    /// before the policy's own back-off.
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
    /// Timeout of one request, in seconds. Default 60.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
}

vmig_core::redacted_debug!(PineconeSourceConfig);

fn default_control_url() -> String {
    "https://api.pinecone.io".into()
}
fn default_scan_rows() -> u64 {
    1000
}
fn default_list_limit() -> u32 {
    100
}
fn default_fetch_batch() -> usize {
    200
}
fn default_fetch_concurrency() -> usize {
    4
}
fn default_fetch_rate() -> u32 {
    100
}
fn default_list_rate() -> u32 {
    200
}
fn default_timeout() -> u64 {
    60
}

impl PineconeSourceConfig {
    /// Reads the index named `index` with `api_key`, every other option at its default.
    pub fn new(api_key: impl Into<String>, index: impl Into<String>) -> Self {
        PineconeSourceConfig {
            api_key: Some(api_key.into()),
            index: Some(index.into()),
            index_host: None,
            control_url: default_control_url(),
            namespaces: None,
            namespace_mode: NamespaceMode::Partition,
            metadata_mode: MetadataMode::Columns,
            metadata_scan_rows: default_scan_rows(),
            sparse: None,
            list_limit: default_list_limit(),
            fetch_batch: default_fetch_batch(),
            fetch_concurrency: default_fetch_concurrency(),
            fetch_rate: default_fetch_rate(),
            list_rate: default_list_rate(),
            ca_cert: None,
            insecure: false,
            retry: RetryConfig::default(),
            request_timeout_secs: default_timeout(),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::config(PLUGIN, m));
        self.retry.check(PLUGIN)?;
        if self.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return bad(
                "`api_key` is empty; give the project's API key, e.g. \"${PINECONE_API_KEY}\"",
            );
        }
        let host = self.index_host.as_deref().map(str::trim);
        let name = self.index.as_deref().map(str::trim);
        if host.is_none_or(str::is_empty) && name.is_none_or(str::is_empty) {
            return bad("give `index` (the index's name) or `index_host` (its data-plane host)");
        }
        if self.list_limit == 0 || self.list_limit > 1000 {
            return bad("`list_limit` must be between 1 and 1000");
        }
        if self.fetch_batch == 0 || self.fetch_batch > 1000 {
            return bad("`fetch_batch` must be between 1 and 1000 (Pinecone fetches at most 1000 ids per call)");
        }
        if self.fetch_concurrency == 0 || self.fetch_concurrency > 64 {
            return bad("`fetch_concurrency` must be between 1 and 64");
        }
        if let Some(ns) = &self.namespaces {
            if ns.is_empty() {
                return bad("`namespaces` is empty; leave it out to copy every namespace");
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in ns {
                if !seen.insert(n) {
                    return Err(Error::config(
                        PLUGIN,
                        format!("`namespaces` names `{n}` twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceConfig for PineconeSourceConfig {
    const NAME: &'static str = "pinecone";
    const SUMMARY: &'static str = "Pinecone serverless index over REST (list + fetch): ids, dense and sparse values, metadata; one partition per namespace, resumable";

    fn example() -> Self {
        let mut c = PineconeSourceConfig::new("${PINECONE_API_KEY}", "docs");
        c.namespaces = Some(vec![String::new(), "en".into()]);
        c
    }

    fn validate(&self) -> Result<()> {
        self.check()
    }

    /// The CA certificate file, when one is given.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[("ca_cert", self.ca_cert.as_deref())])
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.check()?;
        Ok(Box::new(PineconeSource::connect(self.clone()).await?))
    }
}

vmig_core::register_source!(PineconeSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_the_key_is_never_shown() {
        let c = PineconeSourceConfig::example();
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["api_key"], "${PINECONE_API_KEY}");
        let back: PineconeSourceConfig = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, c);
        let c = PineconeSourceConfig::new("pcsk_hunter2_secret", "docs");
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap_or_default());
        assert!(!shown.contains("hunter2"), "{shown}");
        let bad: std::result::Result<PineconeSourceConfig, _> = serde_json::from_value(
            serde_json::json!({"api_key": "k", "index": "i", "namespace": ["a"]}),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = PineconeSourceConfig::new("k", "docs");
        c.index = None;
        let e = c.validate().expect_err("no index");
        assert!(e.to_string().contains("give `index`"), "{e}");
        let mut c = PineconeSourceConfig::new("k", "docs");
        c.fetch_batch = 1001;
        let e = c.validate().expect_err("fetch_batch");
        assert!(e.to_string().contains("at most 1000 ids"), "{e}");
        let mut c = PineconeSourceConfig::new("k", "docs");
        c.namespaces = Some(vec!["a".into(), "a".into()]);
        let e = c.validate().expect_err("twice");
        assert!(e.to_string().contains("names `a` twice"), "{e}");
    }
}
