//! vmig: move vector data into Milvus 2.x — the library, with its plugins.
//!
//! This is the crate an application embeds. It re-exports [`vmig_core`] (traits, runner, job
//! files, registry) at its root, the job state store [`vmig_state`] as [`state`] (runs and
//! checkpoints in SQLite, MySQL/MariaDB or PostgreSQL, so a job resumes), and links one plugin
//! crate per cargo feature, all on by default:
//!
//! | feature          | plugins                                   | crate                 |
//! |------------------|-------------------------------------------|-----------------------|
//! | `source-faiss`   | source `faiss`                            | `vmig-source-faiss`   |
//! | `source-es`      | sources `elasticsearch`, `opensearch`     | `vmig-source-es`      |
//! | `source-chroma`  | source `chroma`                           | `vmig-source-chroma`  |
//! | `source-qdrant`  | source `qdrant`                           | `vmig-source-qdrant`  |
//! | `source-pinecone`| source `pinecone`                         | `vmig-source-pinecone`|
//! | `source-files`   | source `files` (enables `parsers`)        | `vmig-source-files`   |
//! | `source-milvus1` | source `milvus1`                          | `vmig-source-milvus1` |
//! | `source-milvus2` | source `milvus2`                          | `vmig-source-milvus2` |
//! | `source-pgvector`| source `pgvector`                         | `vmig-source-pgvector`|
//! | `sink-files`     | sink `files`                              | `vmig-sink-files`     |
//! | `sink-milvus2`   | sink `milvus2`                            | `vmig-sink-milvus2`   |
//! | `transforms`     | transformers `select`, `drop`, `rename`, `cast`, `collection`, `filter` | `vmig-transforms` |
//! | `parsers`        | parsers `npy`, `parquet`, `json`, `csv`, `tsv`, `fvecs`, `ivecs`, `bvecs`, `fbin`, `u8bin`, `i8bin` | `vmig-parsers` |
//!
//! ```toml
//! [dependencies]
//! vmig = { version = "0.1", default-features = false, features = ["source-faiss", "sink-files"] }
//! ```
//!
//! [`compat`] turns zilliztech/milvus-migration's `migration.yaml` into vmig jobs.
//!
//! [`jobs`] is the job lifecycle with a state store — which store, resume, refuse or start over,
//! recording the run — that `vmig migrate` follows and any other runner of jobs should follow too.
//!
//! The main design decision: plugins register themselves with `inventory`, which only sees
//! crates the final binary links, and a crate nothing names is not linked. This crate names
//! every plugin crate its features enable (the `pub use` lines below), so depending on `vmig`
//! is enough for a working registry. The rule *feature `x` ⇔ package `vmig-x`* is what
//! [`check_registry`] verifies: the registry holds plugins from exactly the enabled features'
//! packages (the features come from cargo, through the build script; no list of plugin names
//! is kept by hand).
#![warn(missing_docs)]

pub use vmig_core::*;
pub use vmig_state as state;

pub mod compat;
pub mod jobs;
pub mod plan;

#[cfg(feature = "parsers")]
pub use vmig_parsers as parsers;
#[cfg(feature = "sink-files")]
pub use vmig_sink_files as sink_files;
#[cfg(feature = "sink-milvus2")]
pub use vmig_sink_milvus2 as sink_milvus2;
#[cfg(feature = "source-chroma")]
pub use vmig_source_chroma as source_chroma;
#[cfg(feature = "source-es")]
pub use vmig_source_es as source_es;
#[cfg(feature = "source-faiss")]
pub use vmig_source_faiss as source_faiss;
#[cfg(feature = "source-files")]
pub use vmig_source_files as source_files;
#[cfg(feature = "source-milvus1")]
pub use vmig_source_milvus1 as source_milvus1;
#[cfg(feature = "source-milvus2")]
pub use vmig_source_milvus2 as source_milvus2;
#[cfg(feature = "source-pgvector")]
pub use vmig_source_pgvector as source_pgvector;
#[cfg(feature = "source-pinecone")]
pub use vmig_source_pinecone as source_pinecone;
#[cfg(feature = "source-qdrant")]
pub use vmig_source_qdrant as source_qdrant;
#[cfg(feature = "transforms")]
pub use vmig_transforms as transforms;

/// The cargo features this build of `vmig` was compiled with, sorted (`sink-files`, …).
pub fn enabled_features() -> Vec<&'static str> {
    env!("VMIG_ENABLED_FEATURES")
        .split(',')
        .filter(|f| !f.is_empty())
        .collect()
}

/// Checks that the registry holds plugins from exactly the packages the enabled features link
/// (feature `x` links package `vmig-x`): none missing (a plugin crate the linker dropped) and
/// none extra (a plugin crate linked some other way, or registering under the wrong package).
///
/// # Errors
/// [`Error::Config`] naming the missing and unexpected packages; [`Error::DuplicatePlugin`]
/// when two plugins of one kind share a name.
pub fn check_registry() -> Result<()> {
    let want: Vec<String> = enabled_features()
        .into_iter()
        .map(|f| format!("vmig-{f}"))
        .collect();
    let have = registry::packages()?;
    let missing: Vec<&str> = want
        .iter()
        .map(String::as_str)
        .filter(|p| !have.contains(p))
        .collect();
    let extra: Vec<&str> = have
        .iter()
        .copied()
        .filter(|p| !want.iter().any(|w| w == p))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        "vmig",
        format!(
            "the plugin registry does not match the enabled features: no plugins from [{}]; \
             plugins from packages no feature enables: [{}]",
            missing.join(", "),
            extra.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    /// Every enabled feature's plugins are in the registry, and nothing else is.
    #[test]
    fn the_registry_holds_exactly_the_enabled_plugins() {
        super::check_registry().unwrap();
        assert!(!super::enabled_features().is_empty());
    }
}
