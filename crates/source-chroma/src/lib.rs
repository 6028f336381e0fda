//! vmig source plugin `chroma`: read one collection of a Chroma 1.x server (ids, embeddings,
//! documents and metadata) over Chroma's HTTP API v2.
//!
//! The main design decisions:
//!
//! * **Offsets, checked by counts.** Chroma's `get` pages by `limit`/`offset` in its stable
//!   (insertion) order, which is not a snapshot. vmig counts the collection when it connects,
//!   splits `0..count` into `partitions` offset ranges read in parallel, and counts again when a
//!   partition ends: a different count (or a page shorter than asked for) fails the read naming
//!   both counts, because rows may then have been skipped or read twice. Writes must stop during
//!   the copy. A position is the next offset; resuming from it is exact for a collection that
//!   was not written to since. Each range keeps its next page asked for while the previous
//!   one is decoded (on Tokio's blocking pool), and two ranges are read by default: Chroma
//!   1.5.9 serves one `get` at a time on one core, so the server never waits for vmig.
//! * **The metadata keys are learned by a pass over the metadata** when the source is built
//!   (so `vmig plan` pays it and reports it): by default every row's metadata (no embeddings,
//!   no documents, 10,000 rows a request: each request has a fixed cost), or the first
//!   `metadata_scan_rows` rows. Each key with one type becomes a
//!   typed nullable column (int → Int64, float → Double, str → VarChar, bool → Bool); keys with
//!   several types (or lists) go together into one JSON column `metadata`. `metadata_mode =
//!   "json"` puts all metadata in that column, `"dynamic"` in Milvus's dynamic field `$meta`. A
//!   key met during the read that the scan did not see is an error naming it.
//! * **Vectors are copied as Chroma returns them**: its JSON numbers are parsed with
//!   `f32::from_str` (Chroma stores float32 and prints shortest-f32 decimals), so the copy is
//!   bit-exact with what `get` returns (see the README for how that compares with what was
//!   inserted).
//!
//! ```toml
//! [source]
//! type = "chroma"
//! url = "http://localhost:8000"
//! collection = "docs"
//! token = "${CHROMA_TOKEN}"
//! partitions = 2
//! ```

#![warn(missing_docs)]

mod client;
mod source;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, RetryConfig, Source, SourceConfig};

pub use source::{ChromaPosition, ChromaSource};

/// The plugin name, in messages.
pub(crate) const PLUGIN: &str = "chroma";

/// Which header carries `token`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthHeader {
    /// `Authorization: Bearer <token>` (Chroma's default).
    #[default]
    Authorization,
    /// `X-Chroma-Token: <token>`.
    XChromaToken,
}

/// Where the metadata goes (shared with other sources: [`vmig_core::metadata`]).
pub use vmig_core::metadata::MetadataMode;

/// Configuration of the `chroma` source. `Debug` and `Serialize` show no secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromaSourceConfig {
    /// The server URL, e.g. `http://localhost:8000`.
    #[serde(serialize_with = "vmig_core::redact::serialize_redacted")]
    pub url: String,
    /// Tenant. Default `default_tenant`.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Database. Default `default_database`.
    #[serde(default = "default_database")]
    pub database: String,
    /// The collection's name. One collection per job: give several jobs for several collections.
    pub collection: String,
    /// A Chroma `where` filter (JSON object, e.g. `{ lang = "en" }` or
    /// `{ "$and" = [...] }`) selecting the rows; default all. Needs `partitions = 1`.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<serde_json::Value>,
    /// Rows per `get` request. Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Offset ranges of the count read in parallel. Default 2 without `where` (one range's page
    /// is decoded while the other's is served: Chroma 1.5.9 answers one `get` at a time, so more
    /// rarely help), 1 with it; see [`ChromaSourceConfig::partition_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// `columns` (default), `json` or `dynamic`; see [`MetadataMode`].
    #[serde(default)]
    pub metadata_mode: MetadataMode,
    /// Rows whose metadata the key scan reads when the source is built; default every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_scan_rows: Option<u64>,
    /// The dimension to use for a collection with no vectors yet (otherwise learned from the
    /// collection, or its first record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// A static API token; never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub token: Option<String>,
    /// `authorization` (default: `Authorization: Bearer <token>`) or `x_chroma_token`. (Not
    /// named `*token*`, which `vmig plan` would redact.)
    #[serde(default)]
    pub auth_header: AuthHeader,
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
    /// A PEM file with the CA certificate(s) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Accept any TLS certificate (never in production). Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Retry policy of requests failing transiently (429, 502–504, connection errors,
    /// timeouts): a `[source.retry]` table ([`vmig_core::retry`]).
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
    /// Timeout of one request, in seconds. Default 120.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
}

vmig_core::redacted_debug!(ChromaSourceConfig);

fn default_tenant() -> String {
    "default_tenant".into()
}
fn default_database() -> String {
    "default_database".into()
}
fn default_batch_size() -> usize {
    1000
}
fn default_timeout() -> u64 {
    120
}

impl ChromaSourceConfig {
    /// The offset ranges read in parallel: `partitions`, or its default (2, or 1 with `where`).
    pub fn partition_count(&self) -> u32 {
        self.partitions
            .unwrap_or(if self.where_.is_some() { 1 } else { 2 })
    }

    /// Reads `collection` at `url` with every other option at its default.
    pub fn new(url: impl Into<String>, collection: impl Into<String>) -> Self {
        ChromaSourceConfig {
            url: url.into(),
            tenant: default_tenant(),
            database: default_database(),
            collection: collection.into(),
            where_: None,
            batch_size: default_batch_size(),
            partitions: None,
            metadata_mode: MetadataMode::Columns,
            metadata_scan_rows: None,
            dim: None,
            token: None,
            auth_header: AuthHeader::Authorization,
            username: None,
            password: None,
            ca_cert: None,
            insecure: false,
            retry: RetryConfig::default(),
            request_timeout_secs: default_timeout(),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::config(PLUGIN, m));
        self.retry.check(PLUGIN)?;
        if self.url.trim().is_empty() {
            return bad("`url` is empty; give the server URL, e.g. http://localhost:8000");
        }
        if self.collection.trim().is_empty() {
            return bad("`collection` is empty; give the collection's name");
        }
        if self.tenant.is_empty() || self.database.is_empty() {
            return bad("`tenant` and `database` must not be empty");
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return bad("`batch_size` must be between 1 and 100000");
        }
        if self.partitions.is_some_and(|p| p == 0 || p > 1024) {
            return bad("`partitions` must be between 1 and 1024");
        }
        if self.where_.is_some() && self.partitions.is_some_and(|p| p > 1) {
            return bad("`where` needs `partitions = 1` (the filtered count is not known ahead)");
        }
        if let Some(w) = &self.where_ {
            if !w.is_object() {
                return bad("`where` must be a Chroma where object, e.g. { lang = \"en\" }");
            }
        }
        if self.token.is_some() && self.username.is_some() {
            return bad("give either `token` or `username`/`password`, not both");
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("`password` needs `username`");
        }
        if self.dim == Some(0) {
            return bad("`dim` must be at least 1");
        }
        Ok(())
    }
}

#[async_trait]
impl SourceConfig for ChromaSourceConfig {
    const NAME: &'static str = "chroma";
    const SUMMARY: &'static str =
        "Chroma 1.x collection over HTTP: ids, embeddings, documents, metadata as typed columns; offset partitions, resumable";

    fn example() -> Self {
        let mut c = ChromaSourceConfig::new("http://localhost:8000", "docs");
        c.token = Some("${CHROMA_TOKEN}".into());
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
        Ok(Box::new(ChromaSource::connect(self.clone()).await?))
    }
}

vmig_core::register_source!(ChromaSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_validation_names_the_option() {
        let c = ChromaSourceConfig::example();
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["token"], "${CHROMA_TOKEN}");
        let back: ChromaSourceConfig = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, c);
        let mut c = ChromaSourceConfig::new("http://x", "c");
        c.token = Some("hunter2".into());
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap_or_default());
        assert!(!shown.contains("hunter2"), "{shown}");
        c.partitions = Some(2);
        c.where_ = Some(serde_json::json!({"a": 1}));
        let e = c.validate().expect_err("where + partitions");
        assert!(e.to_string().contains("partitions = 1"), "{e}");
        let bad: std::result::Result<ChromaSourceConfig, _> = serde_json::from_value(
            serde_json::json!({"url": "http://x", "collection": "c", "colection": 2}),
        );
        assert!(bad.is_err());
    }
}
