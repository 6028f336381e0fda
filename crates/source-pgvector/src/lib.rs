//! vmig source plugin `pgvector`: reads a PostgreSQL table (or a read-only query) whose columns
//! include pgvector's `vector`, `halfvec`, `sparsevec` or `bit`, with the catalog as the schema.
//!
//! The main design decisions:
//!
//! * **Keyset paging on a key, never OFFSET.** Rows are read in key order,
//!   `WHERE key > $last ORDER BY key LIMIT n`, so a page costs one index range scan however deep
//!   into the table it is, and a position is simply the last key read: reopening after it yields
//!   exactly the rest. The key is the table's single-column primary key (or `pk`); an integer key
//!   is split into `partitions` key ranges by its min/max, read in parallel. A table without a
//!   primary key is read by `ctid` (TID range scans, split into block ranges), which is exact
//!   only while nobody writes to the table (an `UPDATE` moves a row to a new ctid).
//! * **The binary protocol, decoded here.** Every page is a prepared statement whose results come
//!   in PostgreSQL's binary format; pgvector's `vector`/`halfvec`/`sparsevec` and `bit` values
//!   are decoded by [`decode`] straight into Arrow buffers (bit-exact, no text round trip).
//!   Types without a direct binary mapping are converted by the server in the select list
//!   (`json`/`jsonb`/`uuid` → text, `numeric` → `float8`), so the decoders stay few.
//! * **The catalog is the schema** ([`schema`]): `vector(n)` → FloatVector(n), `halfvec(n)` →
//!   Float16Vector(n), `sparsevec` → SparseFloatVector, `bit(n)` → BinaryVector(n), scalars and
//!   scalar arrays their Milvus equivalents, nullable unless `NOT NULL`. The metric comes from an
//!   existing ivfflat/hnsw index's operator class.
//! * **Read-only sessions.** Every connection runs `SET SESSION CHARACTERISTICS AS TRANSACTION
//!   READ ONLY` and `TimeZone = UTC`; a `query` is wrapped as a subquery and identifiers are
//!   quoted, values are always bound parameters.
//!
//! ```toml
//! [source]
//! type = "pgvector"
//! url = "postgres://vmig:${PGPASSWORD}@db.example.com:5432/shop?sslmode=require"
//! table = "items"
//! partitions = 4
//! ```

#![warn(missing_docs)]

pub mod decode;
pub mod schema;
mod source;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, RetryConfig, Source, SourceConfig};

pub use source::{PgPosition, PgvectorSource};

/// How `halfvec` columns are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HalfvecMode {
    /// Float16Vector (the exact half-precision bits).
    #[default]
    Float16,
    /// FloatVector: every half converted to float32 (exact; doubles the size).
    Float32,
}

/// How `numeric` columns are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumericMode {
    /// Double: the server's `numeric::float8` (rounded to the nearest double; values beyond the
    /// double range fail the read; `NaN` stays NaN).
    #[default]
    Double,
    /// VarChar: the exact decimal text (`numeric::text`).
    String,
}

/// How `timestamp`, `timestamptz` and `date` columns are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeMode {
    /// Int64 microseconds since 1970-01-01 00:00 UTC (PostgreSQL's own resolution: lossless).
    /// `timestamp` without zone is taken as UTC; a `date` is its midnight UTC. `±infinity` is
    /// an error naming the row.
    #[default]
    EpochMicros,
    /// VarChar: the server's text form in time zone UTC (`2024-05-01 12:00:00+00`).
    String,
}

/// What to do with a column whose type vmig cannot read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknownType {
    /// Fail when the source is built, naming the column and its type.
    #[default]
    Error,
    /// Leave the column out, with a warning.
    Skip,
}

/// Configuration of the `pgvector` source. `Debug` and `Serialize` show no secret (the URL's
/// user-info is masked; see [`vmig_core::redact`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgvectorSourceConfig {
    /// `postgres://user:${PGPASSWORD}@host:5432/db`, with libpq's URL parameters such as
    /// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`.
    #[serde(serialize_with = "vmig_core::redact::serialize_redacted")]
    pub url: String,
    /// The table (or view) to read. Give `table` or `query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The table's schema; default: the first on the server's `search_path` that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The columns to read (default all); the key is read in any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// An SQL condition on the table's rows (`lang = 'en'`), added as `AND (…)`.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A read-only `SELECT` instead of `table`; it is wrapped as a subquery and needs `pk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The key column to page by: unique and not null, an integer, text/varchar or uuid. Default:
    /// the table's primary key (ctid when it has none). `pk = "ctid"` forces ctid ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    /// Key ranges (or block ranges for ctid) read in parallel, one partition each. Default 2: one
    /// range's rows are decoded while the other's are served, which a single connection cannot do
    /// (1 reaches about half of `psql \copy`'s speed, 2 about 0.9×). More help only where
    /// both the server and vmig have the cores.
    /// Text and uuid keys are always read as one partition.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// `float16` (default) or `float32`.
    #[serde(default)]
    pub halfvec: HalfvecMode,
    /// `double` (default) or `string`.
    #[serde(default)]
    pub numeric: NumericMode,
    /// `epoch_micros` (default) or `string`.
    #[serde(default)]
    pub timestamps: TimeMode,
    /// `error` (default) or `skip`.
    #[serde(default)]
    pub on_unknown_type: OnUnknownType,
    /// Seconds to wait for a connection. Default 30.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Retry policy of connections and pages failing transiently (connection lost, server
    /// restarting): a `[source.retry]` table ([`vmig_core::retry`]). A retried page reconnects
    /// and asks again after the same key.
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
}

vmig_core::redacted_debug!(PgvectorSourceConfig);

fn default_partitions() -> u32 {
    2
}
fn default_connect_timeout() -> u64 {
    30
}

impl PgvectorSourceConfig {
    /// Reads `table` at `url` with every other option at its default.
    pub fn table(url: impl Into<String>, table: impl Into<String>) -> Self {
        PgvectorSourceConfig {
            url: url.into(),
            table: Some(table.into()),
            schema: None,
            columns: None,
            filter: None,
            query: None,
            pk: None,
            partitions: default_partitions(),
            halfvec: HalfvecMode::default(),
            numeric: NumericMode::default(),
            timestamps: TimeMode::default(),
            on_unknown_type: OnUnknownType::default(),
            connect_timeout_secs: default_connect_timeout(),
            retry: RetryConfig::default(),
        }
    }

    /// Reads the rows of `query` at `url`, paged by its column `pk`.
    pub fn query(url: impl Into<String>, query: impl Into<String>, pk: impl Into<String>) -> Self {
        let mut c = PgvectorSourceConfig::table(url, "");
        c.table = None;
        c.query = Some(query.into());
        c.pk = Some(pk.into());
        c
    }

    /// The connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::config(PLUGIN, m));
        self.retry.check(PLUGIN)?;
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return bad("`url` must be a `postgres://user:password@host:port/database` URL");
        }
        match (&self.table, &self.query) {
            (Some(_), Some(_)) => return bad("give `table` or `query`, not both"),
            (None, None) => return bad("give `table` (a table or view name) or `query`"),
            (Some(t), None) if t.trim().is_empty() => return bad("`table` is empty"),
            (None, Some(q)) => {
                if q.trim().is_empty() {
                    return bad("`query` is empty");
                }
                if self.pk.is_none() {
                    return bad("`query` needs `pk`: a unique, non-null column of the query to page and resume by");
                }
                if self.pk.as_deref() == Some("ctid") {
                    return bad(
                        "a `query` has no ctid; give `pk` = a unique, non-null column of the query",
                    );
                }
                if self.schema.is_some() || self.columns.is_some() {
                    return bad(
                        "`schema` and `columns` go with `table`; select the columns in `query`",
                    );
                }
            }
            _ => {}
        }
        if let Some(c) = &self.columns {
            if c.is_empty() {
                return bad("`columns` is empty; leave it out to read every column");
            }
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return bad("`partitions` must be between 1 and 1024");
        }
        if self.connect_timeout_secs == 0 {
            return bad("`connect_timeout_secs` must be at least 1");
        }
        if let Some(f) = &self.filter {
            if f.trim().is_empty() {
                return bad("`where` is empty");
            }
        }
        Ok(())
    }
}

/// The plugin name, for errors.
const PLUGIN: &str = "pgvector";

#[async_trait]
impl SourceConfig for PgvectorSourceConfig {
    const NAME: &'static str = PLUGIN;
    const SUMMARY: &'static str =
        "PostgreSQL table or query with pgvector columns: keyset-paged by the primary key (or ctid), split into key ranges, resumable";

    fn example() -> Self {
        let mut c = PgvectorSourceConfig::table(
            "postgres://vmig:${PGPASSWORD}@localhost:5432/shop",
            "items",
        );
        c.partitions = 4;
        c
    }

    fn validate(&self) -> Result<()> {
        self.check()
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.check()?;
        Ok(Box::new(PgvectorSource::connect(self.clone()).await?))
    }
}

vmig_core::register_source!(PgvectorSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_and_hides_the_password() {
        let c = PgvectorSourceConfig::example();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["url"], "postgres://***@localhost:5432/shop",
            "the user-info is masked"
        );
        let mut back: PgvectorSourceConfig = serde_json::from_value(v).unwrap();
        back.url.clone_from(&c.url);
        assert_eq!(back, c);
        let c = PgvectorSourceConfig::table("postgres://u:hunter2@db:5432/x", "t");
        vmig_testing::secrets::assert_hidden(&c, &["hunter2"], &["postgres://***@db:5432/x"]);
    }

    #[test]
    fn validation_names_the_option() {
        let ok = PgvectorSourceConfig::table("postgres://u@h/db", "t");
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.query = Some("select 1".into());
        assert!(c.validate().unwrap_err().to_string().contains("not both"));
        let mut c = PgvectorSourceConfig::query("postgres://u@h/db", "select 1 as id", "id");
        assert!(c.validate().is_ok());
        c.pk = None;
        assert!(c.validate().unwrap_err().to_string().contains("needs `pk`"));
        let mut c = ok.clone();
        c.partitions = 0;
        assert!(c.validate().unwrap_err().to_string().contains("partitions"));
        let c = PgvectorSourceConfig::table("mysql://h/db", "t");
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("postgres://"));
        let bad: std::result::Result<PgvectorSourceConfig, _> = serde_json::from_value(
            serde_json::json!({"url": "postgres://h/db", "table": "t", "tabel": "x"}),
        );
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown field `tabel`"));
        let w: PgvectorSourceConfig = serde_json::from_value(
            serde_json::json!({"url": "postgres://h/db", "table": "t", "where": "id > 3"}),
        )
        .unwrap();
        assert_eq!(w.filter.as_deref(), Some("id > 3"));
    }
}
