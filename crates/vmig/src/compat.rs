//! milvus-migration's `migration.yaml` as vmig jobs: [`vmig_compat`] re-exported, and
//! [`translations`], which lists every job of a config — what the CLI's `start|dump|load` and
//! the server's `/api/v1` routes run.
//!
//! It lives here, not in `vmig-compat`, because one config may be one job per Milvus 1.x
//! collection, which only the `milvus1` source can list (from the 1.x meta); `vmig-compat`
//! stays pure data over vmig-core.

use std::path::Path;

pub use vmig_compat::*;

use crate::Result;

/// Every vmig job of the milvus-migration config at `path` (relative paths in it resolved
/// against `cwd`): one per index of an Elasticsearch meta file
/// ([`vmig_compat::translate_file_jobs`]), one per live collection of a Milvus 1.x source that
/// names none and has several ([`vmig_compat::for_collection`]; needs the `source-milvus1`
/// feature), else one. Each job of several has its [`Translation::part`].
///
/// # Errors
/// As [`vmig_compat::translate_file_jobs`]; a 1.x meta that cannot be read.
pub async fn translations(path: &Path, cwd: &Path) -> Result<Vec<Translation>> {
    let base = vmig_compat::base_dir(path);
    let mut jobs = Vec::new();
    for t in vmig_compat::translate_file_jobs(path, cwd).await? {
        let names = live_collections(&t, &base).await?;
        if names.len() > 1 {
            jobs.extend(names.iter().map(|c| vmig_compat::for_collection(&t, c)));
        } else {
            jobs.push(t);
        }
    }
    Ok(jobs)
}

/// The live Milvus 1.x collections a `milvus1x` translation reads (from its 1.x meta), when it
/// does not name them; empty for other work modes.
#[cfg(feature = "source-milvus1")]
async fn live_collections(t: &Translation, base: &Path) -> Result<Vec<String>> {
    if t.job.source.kind != "milvus1" || t.job.source.options.contains_key("collections") {
        return Ok(Vec::new());
    }
    let config: vmig_source_milvus1::Milvus1SourceConfig =
        serde_json::from_value(serde_json::Value::Object(t.job.source.options.clone()))
            .map_err(|e| crate::Error::config("milvus1", e.to_string()))?;
    let ctx = crate::registry::BuildContext {
        base_dir: base.to_path_buf(),
    };
    config.live_collections(&ctx).await
}

/// Without the `milvus1` source there is no 1.x meta to list: a `milvus1x` config stays one job.
#[cfg(not(feature = "source-milvus1"))]
async fn live_collections(_: &Translation, _: &Path) -> Result<Vec<String>> {
    Ok(Vec::new())
}
