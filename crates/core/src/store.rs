//! Opening local paths and object-store URLs (`s3://`, `gs://`, `az://`, `file://`) uniformly.
//!
//! Credentials and endpoints come from the standard environment variables of each cloud
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …), overridden by the `storage` options of a
//! plugin's config (same keys as object_store, e.g. `aws_endpoint`, `aws_access_key_id`). An
//! `http://` endpoint turns on plain HTTP, since that is the only way it can be reached.
//! Credentials are never part of [`StoreLocation::display`].
//!
//! [`upload_file`] is the one way a local file goes to an object store (the `files` sink's
//! object-store targets, the `milvus2` sink's bulk-import stage): object_store's own
//! [`BufWriter`], which sends a small file as one PUT and a larger one as a multipart upload,
//! so the object appears only complete.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::BufWriter;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{Error, Result, ResultExt};

/// Extra object-store options from a plugin config (`storage = { aws_endpoint = "…" }`).
///
/// Declare the field with `#[serde(default, serialize_with = "vmig_core::redact::serialize_redacted")]`
/// so secret values never appear when the configuration is printed, and call [`check_options`]
/// in the plugin's `validate` so an unknown key fails when the job file is loaded.
pub type StorageOptions = BTreeMap<String, String>;

/// The object stores a location can be on, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    S3,
    Gcs,
    Azure,
}

impl Backend {
    /// The backend of `path_or_url`, or `None` for an unsupported scheme.
    fn of(path_or_url: &str) -> Option<Backend> {
        let Some((scheme, _)) = path_or_url.split_once("://") else {
            return Some(Backend::Local);
        };
        match scheme {
            "file" => Some(Backend::Local),
            "s3" | "s3a" => Some(Backend::S3),
            "gs" | "gcs" => Some(Backend::Gcs),
            "az" | "azure" | "abfs" | "abfss" => Some(Backend::Azure),
            _ => None,
        }
    }

    /// Whether object_store knows `key` for this backend; a local path accepts the keys of any
    /// cloud (they are unused, so a job can switch `path` between local and cloud unchanged).
    fn knows(self, key: &str) -> bool {
        match self {
            Backend::S3 => key.parse::<AmazonS3ConfigKey>().is_ok(),
            Backend::Gcs => key.parse::<GoogleConfigKey>().is_ok(),
            Backend::Azure => key.parse::<AzureConfigKey>().is_ok(),
            Backend::Local => [Backend::S3, Backend::Gcs, Backend::Azure]
                .iter()
                .any(|b| b.knows(key)),
        }
    }

    /// The common keys of this backend, for messages (object_store accepts aliases too).
    fn common_keys(self) -> String {
        let s3 = "aws_access_key_id, aws_secret_access_key, aws_session_token, aws_region, aws_endpoint, aws_bucket, aws_virtual_hosted_style_request, aws_allow_http, aws_skip_signature";
        let gcs = "google_service_account, google_service_account_key, google_application_credentials, google_bucket";
        let azure = "azure_storage_account_name, azure_storage_account_key, azure_storage_sas_key, azure_storage_token, azure_storage_client_id, azure_storage_client_secret, azure_storage_tenant_id, azure_storage_endpoint, azure_container_name, azure_storage_use_emulator";
        match self {
            Backend::S3 => format!("s3://: {s3}"),
            Backend::Gcs => format!("gs://: {gcs}"),
            Backend::Azure => format!("az://: {azure}"),
            Backend::Local => format!("s3://: {s3}; gs://: {gcs}; az://: {azure}"),
        }
    }
}

/// The local path `path_or_url` names: a plain path, or a `file://` URL's path; `None` for an
/// object-store or any other URL (`s3://…`, `http://…`).
///
/// ```
/// use std::path::Path;
/// use vmig_core::store::local_path;
/// assert_eq!(local_path("data/x.faiss").as_deref(), Some(Path::new("data/x.faiss")));
/// assert_eq!(local_path("file:///srv/x.faiss").as_deref(), Some(Path::new("/srv/x.faiss")));
/// assert_eq!(local_path("s3://bucket/x.faiss"), None);
/// ```
pub fn local_path(path_or_url: &str) -> Option<PathBuf> {
    match path_or_url.split_once("://") {
        None => Some(PathBuf::from(path_or_url)),
        Some(("file", rest)) => Some(PathBuf::from(rest)),
        Some(_) => None,
    }
}

/// Checks that every `storage` option is one object_store knows for `path_or_url`'s store; a
/// local path accepts the keys of any cloud store and nothing else. No I/O.
///
/// # Errors
/// [`Error::Config`] naming the first unknown key and listing the common valid ones.
pub fn check_options(path_or_url: &str, options: &StorageOptions) -> Result<()> {
    let Some(backend) = Backend::of(path_or_url) else {
        return Ok(()); // `resolve` reports the unsupported scheme
    };
    match options.keys().find(|k| !backend.knows(k)) {
        None => Ok(()),
        Some(key) => Err(Error::config(
            "storage",
            format!(
                "unknown `storage` option `{key}`; valid options are object_store's keys, e.g. for {}",
                backend.common_keys()
            ),
        )),
    }
}

/// A resolved location: a store and a path inside it.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// The store to read or write through.
    pub store: Arc<dyn ObjectStore>,
    /// The path inside the store.
    pub path: Path,
    /// The local filesystem path, when the location is local.
    pub local: Option<PathBuf>,
    /// A printable name for messages (no credentials).
    pub display: String,
}

impl StoreLocation {
    /// A child location (`self/name`).
    pub fn child(&self, name: &str) -> StoreLocation {
        StoreLocation {
            store: Arc::clone(&self.store),
            path: self.path.clone().join(name),
            local: self.local.as_ref().map(|p| p.join(name)),
            display: format!("{}/{}", self.display.trim_end_matches('/'), name),
        }
    }
}

/// Resolves `path_or_url` to a store and a path.
///
/// # Errors
/// [`Error::Config`] for an unsupported scheme or an unknown option ([`check_options`]),
/// naming them.
pub fn resolve(path_or_url: &str, options: &StorageOptions) -> Result<StoreLocation> {
    check_options(path_or_url, options)?;
    if !path_or_url.contains("://") {
        return local(FsPath::new(path_or_url));
    }
    let url = Url::parse(path_or_url).map_err(|e| {
        Error::config(
            "storage",
            format!(
                "`{}` is not a valid URL: {e}",
                crate::redact::url(path_or_url)
            ),
        )
    })?;
    let display = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.path()
    );
    let path = Path::from_url_path(url.path())
        .map_err(|e| Error::config("storage", format!("bad path in `{display}`: {e}")))?;
    let bad_option = |key: &str, e: object_store::Error| {
        Error::config("storage", format!("option `{key}` is not valid here: {e}"))
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => {
            let p = url
                .to_file_path()
                .map_err(|()| Error::config("storage", format!("`{display}` is not a local path")))?;
            return local(&p);
        }
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad_option(k, e))?, v);
            }
            let endpoint = options
                .iter()
                .find(|(k, _)| k.contains("endpoint"))
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .or_else(|| std::env::var("AWS_ENDPOINT").ok());
            if endpoint.is_some_and(|e| e.starts_with("http://")) {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build()?)
        }
        "gs" | "gcs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad_option(k, e))?, v);
            }
            Arc::new(b.build()?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad_option(k, e))?, v);
            }
            Arc::new(b.build()?)
        }
        other => {
            return Err(Error::config(
                "storage",
                format!("unsupported URL scheme `{other}://` (use a local path, file://, s3://, gs:// or az://)"),
            ))
        }
    };
    Ok(StoreLocation {
        store,
        path,
        local: None,
        display,
    })
}

/// Files up to this size are uploaded with one PUT, larger ones in parts of this size.
pub const UPLOAD_PART_SIZE: usize = 16 << 20;
/// Parts of one multipart upload in flight at a time.
pub const UPLOAD_CONCURRENCY: usize = 4;

/// Uploads the local file `local` to `dest` in `store`: one PUT up to [`UPLOAD_PART_SIZE`],
/// otherwise a multipart upload of parts of that size, [`UPLOAD_CONCURRENCY`] in flight (memory:
/// about that many parts). Either way the object appears only complete; a failed multipart
/// upload is aborted, so no parts are left behind.
///
/// # Errors
/// When `local` cannot be read or the store refuses a request.
pub async fn upload_file(store: &Arc<dyn ObjectStore>, local: &FsPath, dest: &Path) -> Result<()> {
    let file = tokio::fs::File::open(local)
        .await
        .context_with(|| format!("opening {}", local.display()))?;
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
    let mut writer = BufWriter::with_capacity(Arc::clone(store), dest.clone(), UPLOAD_PART_SIZE)
        .with_max_concurrency(UPLOAD_CONCURRENCY);
    if let Err(e) = tokio::io::copy_buf(&mut reader, &mut writer).await {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(message = "Aborting a multipart upload failed.", error = %abort);
        }
        return Err(upload_error(e));
    }
    // Completes the multipart upload (aborting it when that fails), or sends the single PUT.
    writer.shutdown().await.map_err(upload_error)?;
    Ok(())
}

/// The object-store error inside an I/O error of [`BufWriter`], so it keeps its kind
/// (e.g. retryable); any other I/O error as it is.
fn upload_error(e: std::io::Error) -> Error {
    if !e
        .get_ref()
        .is_some_and(|inner| inner.is::<object_store::Error>())
    {
        return Error::Io(e);
    }
    match e
        .into_inner()
        .map(|inner| inner.downcast::<object_store::Error>())
    {
        Some(Ok(store)) => Error::ObjectStore(*store),
        Some(Err(other)) => Error::Io(std::io::Error::other(other)),
        None => Error::Io(std::io::Error::other("the upload failed")),
    }
}

fn local(p: &FsPath) -> Result<StoreLocation> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    // object_store paths have no `.`/`..`; resolve them lexically (`jobs/../data/x` → `data/x`).
    let mut abs = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                abs.pop();
            }
            other => abs.push(other),
        }
    }
    let path = Path::from_absolute_path(&abs).map_err(|e| {
        Error::config(
            "storage",
            format!("`{}` is not a usable path: {e}", abs.display()),
        )
    })?;
    Ok(StoreLocation {
        store: Arc::new(LocalFileSystem::new()),
        path,
        display: abs.display().to_string(),
        local: Some(abs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn local_paths_and_schemes() {
        let l = resolve("/tmp/x/y.faiss", &StorageOptions::new()).unwrap();
        assert_eq!(l.local.as_deref(), Some(FsPath::new("/tmp/x/y.faiss")));
        assert_eq!(l.path.as_ref(), "tmp/x/y.faiss");
        let up = resolve("/tmp/a/./b/../c.faiss", &StorageOptions::new()).unwrap();
        assert_eq!(up.local.as_deref(), Some(FsPath::new("/tmp/a/c.faiss")));
        assert_eq!(up.path.as_ref(), "tmp/a/c.faiss");
        let err = resolve("ftp://h/x", &StorageOptions::new()).unwrap_err();
        assert!(err.to_string().contains("ftp://"), "{err}");
        let err = resolve("s3://key:hunter2@[bad/x", &StorageOptions::new()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid `storage` configuration: `s3://***@[bad/x` is not a valid URL: "
            ),
            "{err}"
        );
    }

    #[test]
    fn s3_display_has_no_credentials() {
        let mut o = StorageOptions::new();
        o.insert("aws_access_key_id".into(), "AKIDSECRET".into());
        o.insert("aws_secret_access_key".into(), "verysecret".into());
        o.insert("aws_endpoint".into(), "http://127.0.0.1:1".into());
        o.insert("aws_region".into(), "us-east-1".into());
        let l = resolve("s3://bucket/a/b.faiss", &o).unwrap();
        assert_eq!(l.display, "s3://bucket/a/b.faiss");
        assert_eq!(l.path.as_ref(), "a/b.faiss");
        assert!(!format!("{:?}", l.display).contains("secret"));
    }

    #[test]
    fn unknown_storage_keys_are_refused_for_every_location() {
        let mut o = StorageOptions::new();
        o.insert("aws_endpont".into(), "http://127.0.0.1:1".into());
        for place in [
            "/tmp/x.faiss",
            "relative/x.faiss",
            "file:///tmp/x",
            "s3://b/x",
        ] {
            let e = resolve(place, &o).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid `storage` configuration: unknown `storage` option `aws_endpont`; valid options are object_store's keys, e.g. for s3://: aws_access_key_id, "),
                "{place}: {e}"
            );
        }
        let e = check_options("gs://b/x", &o).unwrap_err().to_string();
        assert!(
            e.contains("for gs://: google_service_account,") && !e.contains("s3://"),
            "{e}"
        );
        let mut ok = StorageOptions::new();
        ok.insert("aws_region".into(), "eu-west-1".into());
        ok.insert("azure_storage_account_name".into(), "a".into());
        assert!(check_options("/tmp/x", &ok).is_ok());
        assert!(check_options("az://c/x", &ok)
            .unwrap_err()
            .to_string()
            .contains("`aws_region`"));
    }

    /// A file of several parts and a small one arrive byte-exact, through the multipart and
    /// the single-PUT path; a missing file is an error naming it and leaves no object.
    #[tokio::test]
    async fn uploads_arrive_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("bucket");
        std::fs::create_dir(&bucket).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(&bucket).unwrap());
        let big_len = 2 * UPLOAD_PART_SIZE + 12_345;
        // No two parts alike, so a misplaced part cannot compare equal.
        let big: Vec<u8> = (0..big_len as u64)
            .map(|i| (i.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 31) as u8)
            .collect();
        for (name, data) in [
            ("big.bin", big.clone()),
            ("small.bin", big[..1000].to_vec()),
        ] {
            let local = dir.path().join(name);
            std::fs::write(&local, &data).unwrap();
            let dest = Path::from(format!("up/{name}"));
            upload_file(&store, &local, &dest).await.unwrap();
            let got = store.get(&dest).await.unwrap().bytes().await.unwrap();
            assert!(
                got.len() == data.len() && got[..] == data[..],
                "{name} differs"
            );
        }
        let missing = dir.path().join("missing.bin");
        let err = upload_file(&store, &missing, &Path::from("up/missing.bin"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("opening {}: ", missing.display())),
            "{err}"
        );
        let e = store
            .head(&Path::from("up/missing.bin"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(" not found: No such file or directory (os error 2)"),
            "{e}"
        );
    }

    #[test]
    fn listed_keys_are_valid() {
        for backend in [Backend::S3, Backend::Gcs, Backend::Azure] {
            let list = backend.common_keys();
            let (_, keys) = list.split_once(": ").unwrap();
            for key in keys.split(", ") {
                assert!(backend.knows(key), "{backend:?} does not know {key}");
            }
        }
    }
}
