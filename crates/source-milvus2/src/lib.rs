//! vmig-source-milvus2: the `milvus2` source, copying collections out of Milvus 2.3+ exactly.
//!
//! ```toml
//! [source]
//! type = "milvus2"
//! uri = "http://old-milvus:19530"
//! user = "root"
//! password = "${MILVUS_PASSWORD}"
//! collection = "books"
//! # partitions = ["2023", "2024"]      # default: all
//! # filter = "year >= 2020"            # a Milvus boolean expression
//! # load = true                         # load the collection if it is not loaded
//! # ids = "keep"                        # or "regenerate" (see below)
//! # [source.retry]                      # transient failures (vmig_core::retry)
//! # max_attempts = 7
//! ```
//!
//! **Main design decision:** rows are read by primary key, never by offset. Each page is the
//! next `batch_size` rows with `pk > last` in primary-key order (the query mode the official SDK
//! iterators use), so there is no 16384-row window to hit and no row is skipped or repeated
//! when segments are compacted between pages, and a page that fails transiently is asked for
//! again (by the `retry` policy, [`vmig_core::retry`]) after the same key; the page size follows from the row width so a
//! reply stays far below the 64 MiB message limit. Every Milvus partition is its own work
//! partition (read in parallel by the runner, resumable after the last key of the last
//! flushed page) and its rows go into the partition of the same name in the target. A
//! partition-key collection is read as one unit (Milvus routes the rows itself on insert).
//!
//! The schema comes from `DescribeCollection` — every 2.x type, the dynamic field as a `$meta`
//! JSON column — with the collection's properties carried in Arrow metadata
//! ([`vmig_milvus::meta`]): field descriptions, partition key, `max_length`, `max_capacity`,
//! nullable/default, clustering key, the analyzer/match/`mmap.enabled` type parameters, the
//! collection description, shards, consistency level, dynamic field, partitions, indexes,
//! collection properties and schema functions (e.g. BM25). The `milvus2` sink uses them to
//! recreate the collection faithfully when the job does not say otherwise, and refuses, naming
//! each, what an older target lacks.
//!
//! **Functions (2.5+):** a function's output field (BM25's sparse vector) is not read — the
//! target computes it from the input field, as the source did. **Refused by name, never
//! dropped:** field types vmig does not map (e.g. `Int8Vector` of 2.6), `type_params` keys
//! outside the ones it copies, function types it does not know, Array-of-Struct fields.
//!
//! **Nulls (2.5+):** a nullable field is a nullable Arrow column; the reply's `valid_data` marks
//! its null rows (decoded in `vmig_milvus::convert`). Unit-tested with constructed replies only:
//! the test server (Milvus 2.3.5) has no nullable fields.
//!
//! **Snapshot:** the first request (at build time) reads with Strong consistency, so every row
//! acknowledged before the job started is seen. Servers that report a `session_ts` (2.4+) then
//! get it back as the guarantee timestamp of every page, which they use as the MVCC snapshot of
//! iterator queries: the copy is a consistent snapshot even while the source takes writes.
//! Milvus 2.3 reports none, so each page reads the latest data (Strong): rows written or deleted
//! during the copy may or may not be in it — stop writes to a 2.3 source while copying.
//! Deleted rows are never copied.
//!
//! **Primary keys:** `ids = "keep"` (default) copies the key values, also from an `auto_id`
//! collection (the target is then created without `auto_id`, so the copy is verifiable key by
//! key); `ids = "regenerate"` lets the target generate new keys (schema metadata
//! `vmig.auto_id`; the key column is not sent).
//!
//! **Loading:** Milvus can query only loaded collections. A collection that is not loaded is an
//! error saying so, unless `load = true`: vmig then loads it and releases it again once every
//! partition has been read (only a collection vmig loaded itself is released; a resumed run that
//! skips finished partitions leaves it loaded).
//!
//! `collections = ["a", "b"]` reads several collections with the same fields into one target
//! (the first one's name and properties); run one job per collection to copy them separately.
//!
//! Version notes: tested against Milvus 2.3.5. Float16, bfloat16 and sparse vectors (2.4+) are
//! converted per milvus-proto and unit-tested; their paging and decoding (`vmig_milvus::scan`,
//! what this source runs per partition) are also tested against milvus-lite 2.5.1, the Milvus
//! 2.5 engine (`crates/sink-milvus2/tests/lite.rs`). This source itself cannot open a lite
//! collection: lite does not implement `ShowPartitions`.
#![warn(missing_docs)]

mod source;

use serde::{Deserialize, Serialize};
use vmig_core::registry::{BuildContext, SourceConfig};
use vmig_core::{Error, Result, RetryConfig, Source};
use vmig_milvus::{ConnectOptions, MilvusClient, MAX_QUERY_WINDOW};

pub use source::Milvus2Source;

/// What happens to primary-key values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdPolicy {
    /// Copy the source's key values (also from an `auto_id` collection).
    #[default]
    Keep,
    /// Let the target generate new keys (asks the sink for `auto_id`).
    Regenerate,
}

/// Configuration of the `milvus2` source.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milvus2SourceConfig {
    /// `http://host:port` (or `https://…`); a `user:password@` in it is used as the
    /// credentials when `token` and `user` are not set. Printed without its user-info.
    #[serde(serialize_with = "vmig_core::redact::serialize_redacted")]
    pub uri: String,
    /// API token (or `user:password`); default: env `MILVUS_TOKEN`. Printed as `***`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub token: Option<String>,
    /// User name; default: env `MILVUS_USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password; default: env `MILVUS_PASSWORD`. Use `${VAR}`, never a literal. Printed as
    /// `***`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vmig_core::redact::serialize_secret"
    )]
    pub password: Option<String>,
    /// Database; default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// PEM file of a CA to trust (turns TLS on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The collection to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Several collections with the same fields, copied into one target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Only these partitions (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// A Milvus boolean expression; only matching rows are copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Rows per query page (1..=16384); default: as many as fit in 16 MiB by the row width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Load a collection that is not loaded (and release it when done).
    #[serde(default)]
    pub load: bool,
    /// `keep` (default) or `regenerate` primary keys.
    #[serde(default)]
    pub ids: IdPolicy,
    /// Retry policy of query pages failing transiently: a `[source.retry]` table
    /// ([`vmig_core::retry`]; default 7 attempts, waits from 200 ms doubling up to 10 s with
    /// jitter, at most 15 min in all). A retried page asks for the rows after the same key.
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
}

vmig_core::redacted_debug!(Milvus2SourceConfig);

const NAME: &str = "milvus2";

impl Milvus2SourceConfig {
    /// A config reading `collection` at `uri`, every other option at its default.
    pub fn new(uri: impl Into<String>, collection: impl Into<String>) -> Self {
        Milvus2SourceConfig {
            uri: uri.into(),
            token: None,
            user: None,
            password: None,
            db: None,
            ca_cert: None,
            collection: Some(collection.into()),
            collections: Vec::new(),
            partitions: Vec::new(),
            filter: None,
            batch_size: None,
            load: false,
            ids: IdPolicy::Keep,
            retry: RetryConfig::default(),
        }
    }

    /// The collections to read, in order.
    pub fn collection_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.collection.iter().cloned().collect();
        for c in &self.collections {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        names
    }

    /// Connection options (secrets default to `MILVUS_TOKEN`, `MILVUS_USER`, `MILVUS_PASSWORD`).
    pub fn connect_options(&self, ctx: &BuildContext) -> ConnectOptions {
        ConnectOptions::from_config(
            &self.uri,
            self.token.as_deref(),
            self.user.as_deref(),
            self.password.as_deref(),
            self.db.as_deref(),
            self.ca_cert.as_ref().map(|p| ctx.resolve(p).into()),
        )
    }
}

#[async_trait::async_trait]
impl SourceConfig for Milvus2SourceConfig {
    const NAME: &'static str = NAME;
    const SUMMARY: &'static str =
        "Milvus 2.3+ collections (every field type, partitions, dynamic field), read by primary key";

    fn example() -> Self {
        let mut c = Milvus2SourceConfig::new("http://127.0.0.1:19530", "books");
        c.user = Some("root".into());
        c.password = Some("${MILVUS_PASSWORD}".into());
        c
    }

    fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::config(NAME, m));
        if self.uri.trim().is_empty() {
            return err("`uri` is empty; e.g. uri = \"http://127.0.0.1:19530\"".into());
        }
        let names = self.collection_names();
        if names.is_empty() {
            return err(
                "no collection: set `collection = \"…\"` (or `collections = [\"…\"]`)".into(),
            );
        }
        if names.iter().any(|n| n.trim().is_empty()) {
            return err("a collection name is empty".into());
        }
        if let Some(b) = self
            .batch_size
            .filter(|b| !(1..=MAX_QUERY_WINDOW).contains(b))
        {
            return err(format!(
                "`batch_size` = {b} must be 1..={MAX_QUERY_WINDOW} (Milvus's query window)"
            ));
        }
        self.retry.check(NAME)
    }

    /// The CA certificate file, when one is given.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[("ca_cert", self.ca_cert.as_deref())])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.validate()?;
        let client = MilvusClient::connect(&self.connect_options(ctx)).await?;
        Ok(Box::new(Milvus2Source::open(self.clone(), client).await?))
    }
}

vmig_core::register_source!(Milvus2SourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_validates() -> Result<()> {
        let v = serde_json::to_value(Milvus2SourceConfig::example())
            .map_err(|e| Error::External(e.into()))?;
        let mut back: Milvus2SourceConfig =
            serde_json::from_value(v).map_err(|e| Error::External(e.into()))?;
        assert_eq!(back, Milvus2SourceConfig::example());
        back.validate()?;
        // Secrets print as `***`, the URI without its user-info.
        back.uri = "http://root:hunter2@h:19530".into();
        back.password = Some("hunter3".into());
        back.token = Some("hunter4".into());
        vmig_testing::secrets::assert_hidden(&back, &["hunter"], &["http://***@h:19530"]);
        Ok(())
    }

    #[test]
    fn bad_options_are_refused() {
        let mut c = Milvus2SourceConfig::new("http://x:1", "c");
        c.batch_size = Some(16_385);
        assert!(c.validate().unwrap_err().to_string().contains("batch_size"));
        c.batch_size = Some(100);
        c.collection = None;
        assert_eq!(c.validate().unwrap_err().to_string(), "invalid `milvus2` configuration: no collection: set `collection = \"…\"` (or `collections = [\"…\"]`)");
        c.collections = vec!["a".into(), "b".into(), "a".into()];
        assert!(c.validate().is_ok());
        assert_eq!(c.collection_names(), vec!["a", "b"]);
        let parsed: std::result::Result<Milvus2SourceConfig, _> = serde_json::from_value(
            serde_json::json!({"uri": "x", "collection": "c", "ids": "regenerate"}),
        );
        assert_eq!(parsed.map(|c| c.ids).ok(), Some(IdPolicy::Regenerate));
    }
}
