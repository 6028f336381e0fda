//! Finding the input files: one file, a directory (recursively) or a glob, local or in an
//! object store, in sorted order, each with the size and version it had when it was listed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use globset::{GlobBuilder, GlobMatcher};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use vmig_core::store::{resolve, StorageOptions, StoreLocation};
use vmig_core::{Error, Result};
use vmig_formats::staging::manifest::{ManifestListing, MANIFEST};

/// What identifies one version of a file: its size and, when the store gives them, its ETag
/// (object stores; for local files object_store derives one from inode, mtime and size) and
/// modification time. A file whose version differs from the one planned is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVersion {
    /// Bytes.
    pub size: u64,
    /// The store's ETag, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// Last modification, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_ns: Option<i64>,
}

impl FileVersion {
    pub(crate) fn of(meta: &ObjectMeta) -> Self {
        FileVersion {
            size: meta.size,
            e_tag: meta.e_tag.clone(),
            modified_ns: meta.last_modified.timestamp_nanos_opt(),
        }
    }

    /// What changed from `planned` to `self`, in words; `None` when nothing did. A field one
    /// side lacks (an S3 listing may carry no ETag where a HEAD does) is not compared.
    pub(crate) fn change_from(&self, planned: &FileVersion) -> Option<String> {
        if self.size != planned.size {
            return Some(format!(
                "its size changed from {} to {} bytes",
                planned.size, self.size
            ));
        }
        if let (Some(now), Some(then)) = (&self.e_tag, &planned.e_tag) {
            if now != then {
                return Some(format!("it was rewritten (version {then} → {now})"));
            }
        }
        // Whole seconds: an S3 listing gives milliseconds where a HEAD (an HTTP date) gives
        // seconds.
        const NS: i64 = 1_000_000_000;
        if let (Some(now), Some(then)) = (self.modified_ns, planned.modified_ns) {
            if now.div_euclid(NS) != then.div_euclid(NS) {
                return Some(format!(
                    "it was rewritten (modified {} s after the planned version)",
                    now.div_euclid(NS) - then.div_euclid(NS)
                ));
            }
        }
        None
    }
}

/// One input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Where it is.
    pub location: StoreLocation,
    /// Its path relative to the listed directory or the glob's fixed prefix (its own name for
    /// a single file): partition ids are made of it.
    pub rel: String,
    /// Its version when listed.
    pub version: FileVersion,
}

/// The characters that make a path a glob.
const GLOB_CHARS: &[char] = &['*', '?', '[', '{'];

/// Lists what `path` names: the file itself; every file under a directory, recursively; or the
/// files a glob matches (`*` and `?` stay within one path segment, `**` crosses them,
/// `{a,b}` and `[…]` as usual), sorted by path. `keep` filters directory listings (not an
/// explicitly named file, nor a glob's matches). Hidden files and directories (a segment
/// starting with `.` or `_`, such as `_SUCCESS` or `.crc`) are skipped in directory
/// listings.
///
/// # Errors
/// When nothing exists at `path`, a glob matches nothing, or the store cannot be listed.
pub async fn list(
    path: &str,
    options: &StorageOptions,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Listing> {
    let (base, pattern) = split_glob(path);
    let base_location = resolve(base, options)?;
    let mut manifest_format = None;
    let mut manifest_partitions = None;
    let mut files = match &pattern {
        Some(pattern) => {
            let glob = matcher(pattern)?;
            list_under(&base_location)
                .await?
                .into_iter()
                .filter(|(rel, _)| glob.is_match(rel.as_str()))
                .collect::<Vec<_>>()
        }
        // A path ending in `/` is a directory: listed without asking the store whether an
        // object has that name (some S3 servers answer that question with an error).
        None => match if base.ends_with('/') {
            None
        } else {
            head(&base_location).await?
        } {
            Some(meta) => {
                let rel = base_location
                    .display
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                vec![(rel, meta)]
            }
            None => {
                let all = list_under(&base_location).await?;
                match manifest_of(&base_location, &all).await? {
                    Some(found) => {
                        manifest_format = Some(found.format);
                        manifest_partitions = Some(found.partitions);
                        found.files
                    }
                    None => all
                        .into_iter()
                        .filter(|(rel, _)| !rel.split('/').any(hidden) && keep(rel))
                        .collect(),
                }
            }
        },
    };
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        let shown = &base_location.display;
        return Err(Error::config(
            "files",
            match &pattern {
                Some(p) => format!("no file under `{shown}` matches `{p}`"),
                None => format!("`{shown}` holds no input file (hidden files and files of other formats are skipped; set `format` or name the files with a glob)"),
            },
        ));
    }
    Ok(Listing {
        files: files
            .into_iter()
            .map(|(rel, meta)| InputFile {
                location: child(&base_location, &rel, &meta.location),
                version: FileVersion::of(&meta),
                rel,
            })
            .collect(),
        manifest_format,
        manifest_partitions,
    })
}

/// What [`list`] found.
#[derive(Debug)]
pub struct Listing {
    /// The files, sorted by path.
    pub files: Vec<InputFile>,
    /// When the directory is vmig's staging output: the parser of the format its manifest names.
    pub manifest_format: Option<String>,
    /// When the directory is vmig's staging output: the target partition of each listed file
    /// (by its `rel`) whose manifest unit names one (`"partition": "<name>"`); files of units
    /// without one are absent.
    pub manifest_partitions: Option<BTreeMap<String, String>>,
}

/// What [`manifest_of`] found in vmig's `manifest.json`.
struct ManifestFound {
    /// Exactly the files it lists, with their listings.
    files: Vec<(String, ObjectMeta)>,
    /// The parser of the format it names.
    format: String,
    /// The target partition of each file (by its path relative to the directory) whose unit
    /// names one.
    partitions: BTreeMap<String, String>,
}

/// When `all` (a directory's listing) holds vmig's `manifest.json`: exactly the files it lists
/// (a directory of vmig's staging output holds nothing else worth reading, and its manifest is
/// what says which files are complete), the parser of its format and the target partition of
/// each unit's files.
///
/// # Errors
/// When the manifest lists a file that is missing, lists one file in two units of different
/// partitions, or names an unknown format.
async fn manifest_of(
    base: &StoreLocation,
    all: &[(String, ObjectMeta)],
) -> Result<Option<ManifestFound>> {
    let Some((_, meta)) = all.iter().find(|(rel, _)| rel == MANIFEST) else {
        return Ok(None);
    };
    let bytes = base
        .store
        .get(&meta.location)
        .await
        .map_err(|e| Error::from(e).context(format!("cannot read `{}/{MANIFEST}`", base.display)))?
        .bytes()
        .await?;
    // Not vmig's: an ordinary JSON file among the others.
    let Ok(manifest) = ManifestListing::parse(&bytes) else {
        return Ok(None);
    };
    let format = match manifest.format.as_deref() {
        Some("parquet") => "parquet",
        Some("numpy") => "npy",
        Some("json") => "json",
        other => {
            return Err(Error::config(
                "files",
                format!(
                    "`{}/{MANIFEST}` is vmig's but names the format {other:?}, which this version does not read; set `format` and name the files with a glob",
                    base.display
                ),
            ))
        }
    };
    let mut partitions: BTreeMap<String, String> = BTreeMap::new();
    for unit in &manifest.files {
        let Some(p) = &unit.partition else {
            continue;
        };
        for file in &unit.files {
            if let Some(other) = partitions.insert(file.clone(), p.clone()) {
                if &other != p {
                    return Err(Error::data(
                        format!("{}/{MANIFEST}", base.display),
                        format!("it lists `{file}` in partition `{other}` and in partition `{p}`: one file's rows belong in one partition"),
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    for file in manifest.all_files() {
        match all.iter().find(|(rel, _)| rel == file) {
            Some(found) => out.push(found.clone()),
            None => {
                return Err(Error::data(
                    format!("{}/{MANIFEST}", base.display),
                    format!("it lists `{file}`, which is missing: the output is incomplete (was it moved or partly deleted?)"),
                ))
            }
        }
    }
    tracing::info!(
        message = "Reading vmig staging output as its manifest lists it.",
        path = %base.display,
        files = out.len(),
    );
    Ok(Some(ManifestFound {
        files: out,
        format: format.to_string(),
        partitions,
    }))
}

/// The fixed prefix of `path` before its first glob segment, and the glob (relative to it).
fn split_glob(path: &str) -> (&str, Option<String>) {
    let Some(first) = path.find(GLOB_CHARS) else {
        return (path, None);
    };
    match path[..first].rfind('/') {
        Some(slash) => (&path[..slash.max(1)], Some(path[slash + 1..].to_string())),
        None => (".", Some(path.to_string())),
    }
}

fn matcher(pattern: &str) -> Result<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::config("files", format!("`path` holds a bad glob `{pattern}`: {e}")))
}

fn hidden(segment: &str) -> bool {
    segment.starts_with('.') || segment.starts_with('_')
}

/// The object at `location`, or `None` when there is none (it may be a directory).
async fn head(location: &StoreLocation) -> Result<Option<ObjectMeta>> {
    if let Some(local) = &location.local {
        let local = local.clone();
        let is_dir =
            tokio::task::spawn_blocking(move || std::fs::metadata(&local).map(|m| m.is_dir()))
                .await
                .map_err(|e| Error::External(Box::new(e)))?;
        match is_dir {
            Ok(true) => return Ok(None),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::config(
                    "files",
                    format!("`{}` does not exist", location.display),
                ))
            }
            Err(e) => {
                return Err(Error::from(e).context(format!("cannot read `{}`", location.display)))
            }
        }
    }
    match location.store.head(&location.path).await {
        Ok(meta) => Ok(Some(meta)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("cannot read `{}`", location.display))),
    }
}

/// The current version of `file`.
///
/// # Errors
/// When it is gone or cannot be read.
pub(crate) async fn version(file: &InputFile) -> Result<FileVersion> {
    match file.location.store.head(&file.location.path).await {
        Ok(meta) => Ok(FileVersion::of(&meta)),
        Err(object_store::Error::NotFound { .. }) => Err(Error::data(
            file.location.display.clone(),
            "the file is gone since the job was planned; restore it, or plan the job again",
        )),
        Err(e) => Err(Error::from(e).context(format!("cannot read `{}`", file.location.display))),
    }
}

/// Every object under `location` (recursively), with its path relative to it.
async fn list_under(location: &StoreLocation) -> Result<Vec<(String, ObjectMeta)>> {
    let prefix = location.path.clone();
    let objects: Vec<ObjectMeta> = location
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::from(e).context(format!("cannot list `{}`", location.display)))?;
    let base: Vec<_> = prefix.parts().collect();
    Ok(objects
        .into_iter()
        .filter_map(|meta| {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() <= base.len() || parts[..base.len()] != base[..] {
                return None;
            }
            let rel = parts[base.len()..]
                .iter()
                .map(|p| decode(p.as_ref()))
                .collect::<Vec<_>>()
                .join("/");
            Some((rel, meta))
        })
        .collect())
}

/// A path segment as object_store encodes it, decoded for matching and messages.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// The location of the listed object `path`, `rel` under `base`.
fn child(base: &StoreLocation, rel: &str, path: &Path) -> StoreLocation {
    let local = base.local.as_ref().map(|dir| {
        if rel.is_empty() || base_is_file(base, path) {
            dir.clone()
        } else {
            LocalFileSystem::new()
                .path_to_filesystem(path)
                .unwrap_or_else(|_| dir.join(rel))
        }
    });
    let display = match &local {
        Some(p) => p.display().to_string(),
        None if base_is_file(base, path) => base.display.clone(),
        None => format!("{}/{}", base.display.trim_end_matches('/'), rel),
    };
    StoreLocation {
        store: Arc::clone(&base.store),
        path: path.clone(),
        local,
        display,
    }
}

fn base_is_file(base: &StoreLocation, path: &Path) -> bool {
    &base.path == path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_split_at_their_first_wild_segment() {
        assert_eq!(
            split_glob("s3://b/emb/*.parquet"),
            ("s3://b/emb", Some("*.parquet".into()))
        );
        assert_eq!(
            split_glob("/data/run-1/**/part-?.npy"),
            ("/data/run-1", Some("**/part-?.npy".into()))
        );
        assert_eq!(split_glob("/x/y.fvecs"), ("/x/y.fvecs", None));
        assert_eq!(split_glob("*.json"), (".", Some("*.json".into())));
        assert_eq!(split_glob("/*.json"), ("/", Some("*.json".into())));
    }

    #[test]
    fn stars_stay_in_their_segment() {
        let m = matcher("*.parquet").unwrap();
        assert!(m.is_match("a.parquet"));
        assert!(!m.is_match("sub/a.parquet"));
        let m = matcher("**/*.parquet").unwrap();
        assert!(m.is_match("sub/deeper/a.parquet"));
        assert!(matcher("[").is_err());
    }

    #[test]
    fn versions_say_what_changed() {
        let a = FileVersion {
            size: 10,
            e_tag: Some("x".into()),
            modified_ns: Some(1),
        };
        assert_eq!(a.change_from(&a), None);
        let mut b = a.clone();
        b.size = 12;
        assert_eq!(
            b.change_from(&a).unwrap(),
            "its size changed from 10 to 12 bytes"
        );
        let mut c = a.clone();
        c.e_tag = Some("y".into());
        assert_eq!(
            c.change_from(&a).unwrap(),
            "it was rewritten (version x → y)"
        );
        let mut d = a.clone();
        d.e_tag = None;
        assert_eq!(d.change_from(&a), None, "an unknown ETag is not a change");
        d.modified_ns = Some(999_999_999);
        assert_eq!(d.change_from(&a), None, "times compare in whole seconds");
        d.modified_ns = Some(3_000_000_001);
        assert_eq!(
            d.change_from(&a).unwrap(),
            "it was rewritten (modified 3 s after the planned version)"
        );
    }

    #[test]
    fn object_store_segments_are_decoded() {
        assert_eq!(decode("a%20b%2Fc"), "a b/c");
        assert_eq!(decode("100%"), "100%");
    }
}
