//! vmig source plugin `milvus1`: reads a Milvus 1.x (0.9 – 1.1) data directory directly — no
//! 1.x server can run any more — from a local directory or an object store (`s3://…`), with its
//! meta in `db/meta.sqlite` or in MySQL.
//!
//! What is read (see `shared/reference/formats.md` §B): live collections from `Tables`
//! (`state = 0`, `owner_table = ''`), their partitions (`owner_table` = the collection; never
//! guessed from names), and one segment per `TableFiles` row of type RAW, TO_INDEX or BACKUP
//! (each `(table, segment)` once, so an INDEX row beside a BACKUP row is not read twice; NEW,
//! NEW_MERGE, NEW_INDEX and TO_DELETE rows are skipped). Each segment directory holds one `*.rv`
//! (raw vectors), one `*.uid` (ids) and `deleted_docs` (row offsets, append-only: unsorted,
//! possibly repeated). Output is `id` (Int64) and `vector` (float or binary); the 1.x metric is
//! carried as `vmig.metric` and a single collection's name as `vmig.collection`; rows of a 1.x
//! partition carry its tag as their target partition, so the Milvus 2.x sink fills the matching
//! partition and the files sink a matching subfolder. A tag that is not a valid 2.x partition
//! name (`2021`, `2023-q1`, `北京`) is renamed by one documented, deterministic rule (`p_2021`,
//! `p_2023_q1`, `u5317u4eac`; a hash suffix on collisions — see [`InvalidPartitionTags`] and the
//! `tags` module), unless `partition_names` names it or `invalid_partition_tags = "error"`; the
//! renamed tags are listed in the schema metadata under [`META_PARTITION_TAGS`], which
//! `vmig plan` prints.
//!
//! The main design decision: **one partition of work per segment, sized from the files' own
//! headers.** The meta's `row_count` is only an estimate (versions disagree on whether it counts
//! deleted rows). Opening a segment lists its directory, checks both headers against the file
//! sizes and each other, loads `deleted_docs` into a bitmap (every offset honoured, wherever it
//! is), then streams `.rv` and `.uid` in aligned ranged reads of a few MiB — one read ahead
//! ([`vmig_core::ranges::read_ahead`]) — so memory stays bounded for multi-GB segments and segments are read in parallel by the
//! runner. A resume position is the next physical row of the segment.
//!
//! Nothing is written before every selected segment has been checked: `build` (and so
//! `vmig plan`) lists each segment directory and reads the headers and `deleted_docs` — 32 at a
//! time, so an object-store directory with thousands of segments is quick — and checks the
//! files are there, the headers agree with the sizes and each other, and every delete offset
//! is in range (a `deleted_docs` over 1 MiB has only its header checked then; its offsets are
//! checked when the segment is read). Opening a segment repeats the checks, since files may
//! change in between. A NaN or ±Inf in a float vector is an error naming the file, row, id and
//! element unless `on_non_finite = "allow"`; the scan (`vmig_formats`' `first_non_finite`) is
//! the faiss source's and the option type is [`vmig_core::vector::OnNonFinite`], both shared.
//!
//! ```toml
//! [source]
//! type = "milvus1"
//! path = "s3://backups/milvus-1.1"          # the storage root holding db/
//! meta = "mysql://milvus:${MYSQL_PASSWORD}@db:3306/milvus"   # default: <path>/db/meta.sqlite
//! collections = ["books"]                   # default: every live collection
//! storage = { aws_region = "eu-west-1" }
//! ```

#![warn(missing_docs)]

mod meta;
mod source;
mod tags;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, Source, SourceConfig};

pub use source::{Milvus1Position, Milvus1Source, META_PARTITION_TAGS};
pub use tags::InvalidPartitionTags;
/// The `on_non_finite` choices, shared with the faiss source (one definition, one meaning).
pub use vmig_core::vector::OnNonFinite;

/// Configuration of the `milvus1` source. `Debug` and `Serialize` show no secret (see
/// [`vmig_core::redact`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milvus1SourceConfig {
    /// The Milvus 1.x storage root (the server's `storage.path`, which holds `db/`): a local
    /// directory (relative paths resolve against the job file) or an object-store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`).
    pub path: String,
    /// Where the meta lives: a `mysql://user:password@host:port/db` URL, a SQLite file (path
    /// or URL), or milvus-migration's `meta.json` (a path or URL ending in `.json`: the
    /// collections and segments its `export` lists; no partitions). Default:
    /// `<path>/db/meta.sqlite`. The user-info is masked when printed.
    #[serde(default, serialize_with = "vmig_core::redact::serialize_redacted")]
    pub meta: Option<String>,
    /// Collections to read (`Tables.table_id`). Default: every live collection. Several
    /// collections go to one target, so they must share dimension, vector kind and metric.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Target partition names for 1.x partition tags, overriding both a valid tag's own name
    /// and the automatic mapping of an invalid one: `{ "2023-q1" = "q2023_1" }`.
    #[serde(default)]
    pub partition_names: BTreeMap<String, String>,
    /// What a partition tag that is not a valid Milvus 2.x partition name (letters, digits and
    /// `_`, not starting with a digit, at most 255 characters) and is not in `partition_names`
    /// does: `map` (default) gives it a name by the documented rule (`2023-q1` → `p_2023_q1`,
    /// see the crate docs); `error` stops the job naming it.
    #[serde(default)]
    pub invalid_partition_tags: InvalidPartitionTags,
    /// The Milvus 2.x metric to declare, overriding the 1.x one. Required for TANIMOTO (5),
    /// SUBSTRUCTURE (6) and SUPERSTRUCTURE (7) collections, which 2.x may not support.
    #[serde(default)]
    pub metric: Option<String>,
    /// Object-store options (object_store keys such as `aws_endpoint`, `aws_region`); secret
    /// values are masked when printed.
    #[serde(default, serialize_with = "vmig_core::redact::serialize_redacted")]
    pub storage: BTreeMap<String, String>,
    /// Name of the Int64 id column (the primary key). Default `id`.
    #[serde(default = "vmig_core::vector::default_id_field")]
    pub id_field: String,
    /// Name of the vector column. Default `vector`.
    #[serde(default = "vmig_core::vector::default_vector_field")]
    pub vector_field: String,
    /// What a float vector holding NaN or ±Inf does: `error` (default) stops with the file,
    /// row offset, id and dimension; `allow` passes it through unchanged.
    #[serde(default)]
    pub on_non_finite: OnNonFinite,
}

vmig_core::redacted_debug!(Milvus1SourceConfig);

fn is_mysql(meta: &str) -> bool {
    meta.starts_with("mysql://") || meta.starts_with("mariadb://")
}

use tags::valid_partition_name;

/// The Milvus 2.x names a config may give in `metric`.
const METRICS: [&str; 7] = [
    "L2",
    "IP",
    "COSINE",
    "HAMMING",
    "JACCARD",
    "SUBSTRUCTURE",
    "SUPERSTRUCTURE",
];

impl Milvus1SourceConfig {
    /// A configuration reading the data directory at `path` with every other option at its
    /// default.
    pub fn new(path: impl Into<String>) -> Self {
        Milvus1SourceConfig {
            path: path.into(),
            meta: None,
            collections: Vec::new(),
            partition_names: BTreeMap::new(),
            invalid_partition_tags: InvalidPartitionTags::Map,
            metric: None,
            storage: BTreeMap::new(),
            id_field: vmig_core::vector::default_id_field(),
            vector_field: vmig_core::vector::default_vector_field(),
            on_non_finite: OnNonFinite::Error,
        }
    }
}

#[async_trait]
impl SourceConfig for Milvus1SourceConfig {
    const NAME: &'static str = "milvus1";
    const SUMMARY: &'static str =
        "Milvus 1.x data directories (SQLite or MySQL meta; local, S3, GCS or Azure files): ids, float or binary vectors, partitions, deletes honoured";

    fn example() -> Self {
        let mut c = Milvus1SourceConfig::new("/var/lib/milvus");
        c.collections = vec!["books".into()];
        c
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(Self::NAME, m));
        if self.path.trim().is_empty() {
            return bad(
                "`path` is empty; give the Milvus 1.x storage root (the directory holding `db/`)"
                    .into(),
            );
        }
        vmig_core::store::check_options(&self.path, &self.storage)?;
        vmig_core::vector::check_id_and_vector_fields(
            Self::NAME,
            &self.id_field,
            &self.vector_field,
        )?;
        if let Some(m) = self.meta.as_deref() {
            if m.trim().is_empty() {
                return bad("`meta` is empty; remove it to use <path>/db/meta.sqlite".into());
            }
            if is_mysql(m) && url::Url::parse(m).is_err() {
                return bad(format!(
                    "`meta` `{}` is not a valid URL",
                    vmig_core::redact::url(m)
                ));
            }
        }
        if let Some(m) = &self.metric {
            if !METRICS.contains(&m.as_str()) {
                return bad(format!(
                    "`metric = \"{m}\"` is not a Milvus 2.x metric (one of {})",
                    METRICS.join(", ")
                ));
            }
        }
        for (tag, name) in &self.partition_names {
            if !valid_partition_name(name) {
                return bad(format!(
                    "`partition_names` maps `{tag}` to `{name}`, which is not a valid Milvus partition \
                     name (letters, digits and _, not starting with a digit)"
                ));
            }
        }
        let unique: BTreeSet<_> = self.collections.iter().collect();
        if unique.len() != self.collections.len() {
            return bad("`collections` names a collection twice".into());
        }
        Ok(())
    }

    /// The storage root when it is local, and a SQLite meta file given apart from it.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        let meta = self
            .meta
            .as_deref()
            .filter(|m| !m.starts_with("mysql://"))
            .map(|m| m.strip_prefix("sqlite://").unwrap_or(m));
        vmig_core::registry::local_paths_of(&[("path", Some(&self.path)), ("meta", meta)])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.validate()?;
        let (root, meta) = self.load_meta(ctx).await?;
        let source = Milvus1Source::new(self, root, meta)?;
        source.check_files().await?;
        Ok(Box::new(source))
    }
}

impl Milvus1SourceConfig {
    /// The live collections (not partitions, not dropped) its meta lists, in meta order —
    /// what a job without `collections` would read, for callers that run one job per
    /// collection (milvus-migration's `milvus1x` mode migrates each to its own collection).
    ///
    /// # Errors
    /// When the meta cannot be read.
    pub async fn live_collections(&self, ctx: &BuildContext) -> Result<Vec<String>> {
        let (_, meta) = self.load_meta(ctx).await?;
        Ok(meta
            .tables
            .into_iter()
            .filter(|t| t.state == 0 && t.owner_table.is_empty())
            .map(|t| t.table_id)
            .collect())
    }

    /// The storage root and the meta, from wherever `meta` says.
    async fn load_meta(
        &self,
        ctx: &BuildContext,
    ) -> Result<(vmig_core::store::StoreLocation, meta::Meta)> {
        let root = vmig_core::store::resolve(&ctx.resolve(&self.path), &self.storage)?;
        let meta = match self.meta.as_deref() {
            Some(m) if is_mysql(m) => {
                let url = m.replacen("mariadb://", "mysql://", 1);
                meta::load_mysql(&url).await?
            }
            Some(m) if m.ends_with(".json") => {
                let loc = vmig_core::store::resolve(&ctx.resolve(m), &self.storage)?;
                meta::load_json(&loc).await?
            }
            Some(m) => {
                let loc = vmig_core::store::resolve(&ctx.resolve(m), &self.storage)?;
                meta::load_sqlite(&loc).await?
            }
            None => meta::load_sqlite(&root.child("db").child("meta.sqlite")).await?,
        };
        Ok((root, meta))
    }
}

vmig_core::register_source!(Milvus1SourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_when_printed() {
        let mut c = Milvus1SourceConfig::new("s3://b/milvus");
        c.meta = Some("mysql://milvus:hunter2@db:3306/milvus".into());
        c.storage
            .insert("aws_secret_access_key".into(), "hunter3".into());
        let v = serde_json::to_string(&c).unwrap();
        assert!(!v.contains("hunter2") && !v.contains("hunter3"), "{v}");
        assert!(v.contains("mysql://***@db:3306/milvus"), "{v}");
        assert!(!format!("{c:?}").contains("hunter"), "{c:?}");
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = Milvus1SourceConfig::new("/data");
        assert!(c.validate().is_ok());
        c.metric = Some("TANIMOTO".into());
        assert!(c.validate().unwrap_err().to_string().contains("metric"));
        let mut c = Milvus1SourceConfig::new("/data");
        c.partition_names.insert("2023".into(), "9x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("partition_names"));
        let mut c = Milvus1SourceConfig::new("/data");
        c.collections = vec!["a".into(), "a".into()];
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid `milvus1` configuration: `collections` names a collection twice"
        );
    }
}
