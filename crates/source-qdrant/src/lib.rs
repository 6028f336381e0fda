//! vmig source plugin `qdrant`: read one collection of a Qdrant server (point ids, dense, uint8
//! and sparse vectors, payload) over Qdrant's REST API, as its OpenAPI document describes it.
//!
//! The main design decisions:
//!
//! * **Scroll, keyed by point id.** Points are read with `POST /collections/{name}/points/scroll`
//!   (`offset` = the previous page's `next_page_offset`, no `order_by`), which returns them in
//!   id order: unsigned integers first, then UUIDs in byte order. A position is the **last id
//!   delivered**; a resumed read scrolls from that id and drops it, so it continues exactly
//!   after it, whatever was deleted in between.
//! * **Partitions are id ranges**, found by probes, not guessed: a one-point scroll gives the
//!   first id, a scroll from the nil UUID tells whether UUIDs exist, and a binary search of
//!   one-point scrolls (≤ 64) finds the largest integer id. `partitions = N` splits the integer
//!   range evenly and the UUID space by its leading bits (even for random UUIDs, uneven but
//!   correct for time-based ones); each partition scrolls from its start and stops at the first
//!   id of the next. The same probes decide the primary key: Int64 when every id is an integer
//!   ≤ 2^63−1, else VarChar (integers in decimal, UUIDs hyphenated as Qdrant prints them).
//! * **Vectors from the collection's configuration** (`GET /collections/{name}`): the unnamed
//!   vector becomes `vector`, each named one a field of its name (`vector`/`vectors` pick; Milvus
//!   2.3 takes one vector field), `uint8` vectors float or binary (`uint8`), sparse vectors
//!   SparseFloatVector; multivectors are refused. The distance becomes `vmig.metric` (Cosine →
//!   COSINE, Euclid → L2, Dot → IP; Manhattan has no Milvus metric and is left unset).
//! * **Payload keys are learned by a scan** at build time (vectors not fetched), typed by
//!   [`vmig_core::metadata`] as the Chroma source's metadata: one typed column per key of one
//!   scalar type, the rest (nested objects, lists, mixed types) in the JSON column `payload`;
//!   `payload_mode = "json"` or `"dynamic"` puts everything in `payload` or Milvus's `$meta`.
//!
//! gRPC is not used: Qdrant's REST API carries everything the copy needs, and no Rust gRPC
//! client of Qdrant is part of this workspace.
//!
//! ```toml
//! [source]
//! type = "qdrant"
//! url = "https://xyz.cloud.qdrant.io:6333"
//! api_key = "${QDRANT_API_KEY}"
//! collection = "docs"
//! partitions = 4
//! ```

#![warn(missing_docs)]

mod client;
mod source;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, RetryConfig, Source, SourceConfig};

pub use source::{PointId, QdrantPosition, QdrantSource};
/// Where the payload goes (the type shared with other sources: [`vmig_core::metadata`]).
pub use vmig_core::metadata::MetadataMode as PayloadMode;

/// The plugin name, in messages.
pub(crate) const PLUGIN: &str = "qdrant";

/// What a `uint8` vector becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uint8Mode {
    /// A FloatVector of the same dimension, each byte as its float value.
    #[default]
    Float,
    /// A BinaryVector of 8 × the dimension bits, the bytes as they are.
    Binary,
}

/// Configuration of the `qdrant` source. `Debug` and `Serialize` show no secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QdrantSourceConfig {
    /// The REST URL, e.g. `http://localhost:6333`.
    #[serde(serialize_with = "vmig_core::redact::serialize_redacted")]
    pub url: String,
    /// The API key, sent as the `api-key` header; never printed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub api_key: Option<String>,
    /// The collection's name. One collection per job.
    pub collection: String,
    /// A Qdrant filter (JSON object with `must`/`should`/`must_not`/`min_should`) selecting the
    /// points; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// The one named vector to copy (a collection with the unnamed vector has only that one).
    /// Milvus 2.3 takes one vector field per collection: pick it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    /// The vectors to copy, each a field; default every dense and sparse vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<Vec<String>>,
    /// `float` (default) or `binary`; see [`Uint8Mode`].
    #[serde(default)]
    pub uint8: Uint8Mode,
    /// Points per scroll request. Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Id ranges read in parallel. Default 1.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// `columns` (default), `json` or `dynamic`; see [`PayloadMode`].
    #[serde(default)]
    pub payload_mode: PayloadMode,
    /// Points whose payload the key scan reads when the source is built; default every point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_scan_rows: Option<u64>,
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

vmig_core::redacted_debug!(QdrantSourceConfig);

fn default_batch_size() -> usize {
    1000
}
fn default_partitions() -> u32 {
    1
}
fn default_timeout() -> u64 {
    120
}

impl QdrantSourceConfig {
    /// Reads `collection` at `url` with every other option at its default.
    pub fn new(url: impl Into<String>, collection: impl Into<String>) -> Self {
        QdrantSourceConfig {
            url: url.into(),
            api_key: None,
            collection: collection.into(),
            filter: None,
            vector: None,
            vectors: None,
            uint8: Uint8Mode::Float,
            batch_size: default_batch_size(),
            partitions: default_partitions(),
            payload_mode: PayloadMode::Columns,
            payload_scan_rows: None,
            ca_cert: None,
            insecure: false,
            retry: RetryConfig::default(),
            request_timeout_secs: default_timeout(),
        }
    }

    /// The vectors asked for, if any.
    pub(crate) fn wanted_vectors(&self) -> Option<Vec<String>> {
        match (&self.vector, &self.vectors) {
            (Some(v), _) => Some(vec![v.clone()]),
            (None, Some(vs)) => Some(vs.clone()),
            (None, None) => None,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::config(PLUGIN, m));
        self.retry.check(PLUGIN)?;
        if self.url.trim().is_empty() {
            return bad("`url` is empty; give the REST URL, e.g. http://localhost:6333");
        }
        if self.collection.trim().is_empty() {
            return bad("`collection` is empty; give the collection's name");
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return bad("`batch_size` must be between 1 and 100000");
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return bad("`partitions` must be between 1 and 1024");
        }
        if self.vector.is_some() && self.vectors.is_some() {
            return bad("give either `vector` (one) or `vectors` (a list), not both");
        }
        if self.vectors.as_ref().is_some_and(Vec::is_empty) {
            return bad("`vectors` is empty; name at least one vector, or leave it out for all");
        }
        if let Some(f) = &self.filter {
            if !f.is_object() {
                return bad("`filter` must be a Qdrant filter object, e.g. { must = [{ key = \"lang\", match = { value = \"en\" } }] }");
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceConfig for QdrantSourceConfig {
    const NAME: &'static str = "qdrant";
    const SUMMARY: &'static str =
        "Qdrant collection over REST: point ids, dense/uint8/sparse vectors, payload as typed columns; id-range partitions, resumable";

    fn example() -> Self {
        let mut c = QdrantSourceConfig::new("http://localhost:6333", "docs");
        c.api_key = Some("${QDRANT_API_KEY}".into());
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
        Ok(Box::new(QdrantSource::connect(self.clone()).await?))
    }
}

vmig_core::register_source!(QdrantSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_validation_names_the_option() {
        let c = QdrantSourceConfig::example();
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["api_key"], "${QDRANT_API_KEY}");
        let back: QdrantSourceConfig = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, c);
        let mut c = QdrantSourceConfig::new("http://x", "c");
        c.api_key = Some("hunter2".into());
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap_or_default());
        assert!(!shown.contains("hunter2"), "{shown}");
        c.vector = Some("a".into());
        c.vectors = Some(vec!["b".into()]);
        let e = c.validate().expect_err("vector + vectors");
        assert!(e.to_string().contains("not both"), "{e}");
        let bad: std::result::Result<QdrantSourceConfig, _> = serde_json::from_value(
            serde_json::json!({"url": "http://x", "collection": "c", "colection": 2}),
        );
        assert!(bad.is_err());
    }
}
