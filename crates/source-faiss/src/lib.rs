//! vmig source plugin `faiss`: reads the exact vectors and ids out of a Faiss index file, from a
//! local path or from object storage (`s3://`, `gs://`, `az://`), without libfaiss.
//!
//! Supported: `IndexFlat*`, `IndexHNSWFlat`, `IndexIVFFlat` (also its legacy `IvFl`/`IvFL`
//! formats), `IndexIVFFlatDedup` (duplicates restored), `IndexRefineFlat` (the refine index's
//! exact vectors; the base index is skipped), `IndexBinaryFlat`, `IndexBinaryHNSW`,
//! `IndexBinaryIVF`, and `IndexIDMap`/`IDMap2` / `IndexBinaryIDMap`/`IDMap2` over any of them —
//! over an IVF index through its id map loaded once as a lookup table (8 bytes per row). Lossy
//! types (PQ, SQ, …) are refused with an error naming the type and why — see
//! [`vmig_formats::faiss`], which does the byte-level work.
//!
//! The main design decision: the file is never loaded. [`FaissSourceConfig::build`] parses
//! only the headers (on a blocking thread, through positioned reads), which yields a list of
//! byte ranges ("blocks") holding the vectors and ids. Partitions are row ranges of those blocks
//! (whole inverted lists grouped together for IVF indexes), and each partition is streamed as
//! a sequence of large ranged reads — several batches per read, one read ahead of decoding
//! ([`vmig_core::ranges::read_ahead`]) — turned into Arrow without copying where the bytes are aligned. Memory therefore stays at a
//! few chunks per open partition, whatever the size of the file, and a resume position is just
//! "block *b*, row *r*".
//!
//! ```toml
//! [source]
//! type = "faiss"
//! path = "s3://bucket/indexes/products.faiss"
//! storage = { aws_region = "eu-west-1" }
//! partition_rows = 1048576
//! ```

#![warn(missing_docs)]

mod io;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vmig_core::ranges::{LocalFile, RangeReader};
use vmig_core::registry::BuildContext;
use vmig_core::{Error, Result, Source, SourceConfig};
use vmig_formats::faiss::{parse_layout, ReadAt};

pub use source::{FaissPosition, FaissSource};

/// The `on_non_finite` choices; defined in [`vmig_core::vector`] (shared with the `milvus1`
/// source) and re-exported here for compatibility.
pub use vmig_core::vector::OnNonFinite;

/// Configuration of the `faiss` source.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaissSourceConfig {
    /// The index file: a local path (relative paths are resolved against the job file's
    /// directory) or an object-store URL (`s3://bucket/key`, `gs://…`, `az://…`, `file://…`).
    pub path: String,
    /// Object-store options (object_store keys such as `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`); they override the cloud's usual environment variables. Secret
    /// values are masked when the configuration is printed.
    #[serde(default, serialize_with = "vmig_core::redact::serialize_redacted")]
    pub storage: BTreeMap<String, String>,
    /// Name of the Int64 id column (the primary key). Default `id`.
    #[serde(default = "vmig_core::vector::default_id_field")]
    pub id_field: String,
    /// Name of the vector column. Default `vector`.
    #[serde(default = "vmig_core::vector::default_vector_field")]
    pub vector_field: String,
    /// Rows per partition (a unit that can be read in parallel and resumed). Flat, HNSW and
    /// id-map indexes are split into row ranges of this size; IVF indexes into groups of whole
    /// inverted lists of about this size (a larger list is split into row ranges), then the
    /// duplicates an `IndexIVFFlatDedup` restores into row ranges of their own. Default
    /// 1 048 576.
    #[serde(default = "default_partition_rows")]
    pub partition_rows: u64,
    /// `error` (default): a NaN or ±Inf in a vector is a data error naming the file, the row's
    /// id and the byte offset; `allow`: such values pass through.
    #[serde(default)]
    pub on_non_finite: OnNonFinite,
}

fn default_partition_rows() -> u64 {
    1 << 20
}

impl FaissSourceConfig {
    /// A configuration reading `path` with every other option at its default.
    pub fn new(path: impl Into<String>) -> Self {
        FaissSourceConfig {
            path: path.into(),
            storage: BTreeMap::new(),
            id_field: vmig_core::vector::default_id_field(),
            vector_field: vmig_core::vector::default_vector_field(),
            partition_rows: default_partition_rows(),
            on_non_finite: OnNonFinite::Error,
        }
    }
}

#[async_trait]
impl SourceConfig for FaissSourceConfig {
    const NAME: &'static str = "faiss";
    const SUMMARY: &'static str =
        "Faiss index files (Flat, IDMap, IVFFlat, IVFFlatDedup, HNSWFlat, RefineFlat, BinaryFlat/HNSW/IVF), local or on S3/GCS/Azure, read exactly without libfaiss";

    fn example() -> Self {
        FaissSourceConfig::new("indexes/products.faiss")
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(Self::NAME, m));
        if self.path.trim().is_empty() {
            return bad("`path` is empty; give the index file's path or URL".into());
        }
        vmig_core::store::check_options(&self.path, &self.storage)?;
        if self.partition_rows == 0 {
            return bad("`partition_rows` must be at least 1".into());
        }
        vmig_core::vector::check_id_and_vector_fields(
            Self::NAME,
            &self.id_field,
            &self.vector_field,
        )?;
        Ok(())
    }

    /// The index file, when it is local.
    fn local_paths(&self) -> Vec<vmig_core::registry::LocalPath> {
        vmig_core::registry::local_paths_of(&[("path", Some(&self.path))])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.validate()?;
        let location =
            vmig_core::store::resolve(&normalize_local(&ctx.resolve(&self.path))?, &self.storage)?;
        let display = location.display.clone();
        let (io, reader): (RangeReader, Arc<dyn ReadAt>) = match &location.local {
            Some(local) => {
                let local = local.clone();
                let shown = display.clone();
                let (header, body) = tokio::task::spawn_blocking(move || {
                    let header = std::fs::File::open(&local)?;
                    let body = std::fs::File::open(&local)?;
                    Ok::<_, std::io::Error>((header, LocalFile::new(local, Some(body))))
                })
                .await
                .map_err(|e| Error::External(Box::new(e)))?
                .map_err(|e| {
                    Error::from(e).context(format!("cannot open Faiss index `{shown}`"))
                })?;
                (RangeReader::Local(Arc::new(body)), Arc::new(header))
            }
            None => {
                let size = io::object_size(&location.store, &location.path)
                    .await
                    .map_err(|e| e.context(format!("cannot open Faiss index `{display}`")))?;
                let reader = io::StoreReadAt::new(
                    Arc::clone(&location.store),
                    location.path.clone(),
                    size,
                    tokio::runtime::Handle::current(),
                );
                (
                    RangeReader::Store {
                        store: Arc::clone(&location.store),
                        path: location.path.clone(),
                    },
                    Arc::new(reader),
                )
            }
        };
        let name = display.clone();
        let name_for_log = display.clone();
        let layout = tokio::task::spawn_blocking(move || parse_layout(reader.as_ref(), &name))
            .await
            .map_err(|e| Error::External(Box::new(e)))??;
        tracing::info!(
            message = "Parsed Faiss index.",
            path = %name_for_log,
            index = %layout.description,
            dim = layout.dim,
            rows = layout.ntotal,
            blocks = layout.blocks.len()
        );
        Ok(Box::new(FaissSource::new(self, display, layout, io)?))
    }
}

/// Makes a local path absolute and removes `.` and `..` components lexically (object-store paths,
/// which the core resolver builds, may not contain them). URLs are returned unchanged.
fn normalize_local(path: &str) -> Result<String> {
    if path.contains("://") {
        return Ok(path.to_string());
    }
    let p = std::path::Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

vmig_core::redacted_debug!(FaissSourceConfig);

vmig_core::register_source!(FaissSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_when_printed() {
        let mut c = FaissSourceConfig::new("s3://b/k");
        c.storage
            .insert("aws_secret_access_key".into(), "hunter2".into());
        c.storage.insert("aws_region".into(), "eu-west-1".into());
        c.storage
            .insert("azure_storage_account_key".into(), "k".into());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["storage"]["aws_secret_access_key"], "***");
        assert_eq!(v["storage"]["azure_storage_account_key"], "***");
        assert_eq!(v["storage"]["aws_region"], "eu-west-1");
    }

    #[test]
    fn local_paths_are_normalised() {
        assert_eq!(
            normalize_local("/a/b/../c/./d.faiss").unwrap(),
            "/a/c/d.faiss"
        );
        assert_eq!(normalize_local("s3://b/../k").unwrap(), "s3://b/../k");
        assert!(normalize_local("x.faiss").unwrap().starts_with('/'));
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = FaissSourceConfig::new("x.faiss");
        assert!(c.validate().is_ok());
        c.partition_rows = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("partition_rows"));
        let mut c = FaissSourceConfig::new("x.faiss");
        c.vector_field = "id".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must differ"));
    }
}
