//! Opening local paths and object-store URLs (`s3://`, `gs://`, `az://`, `file://`) uniformly.
//!
//! Credentials and endpoints come from the standard environment variables of each cloud
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …), overridden by the `storage` options of a
//! plugin's config (same keys as object_store, e.g. `aws_endpoint`, `aws_access_key_id`). An
//! `http://` endpoint turns on plain HTTP, since that is the only way it can be reached.
//! Credentials are never part of [`StoreLocation::display`].

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

use crate::error::{Error, Result};

/// Extra object-store options from a plugin config (`storage = { aws_endpoint = "…" }`).
///
/// Declare the field with `#[serde(default, serialize_with = "vmig_core::store::serialize_redacted")]`
/// so secret values never appear when the configuration is printed (see [`is_secret_option`]).
pub type StorageOptions = BTreeMap<String, String>;

/// Whether the storage option `key` holds a secret that must not be printed: any key naming a
/// secret, token, password, SAS, credential or private part, and any `…_key` / `key` (access
/// keys, account keys). Case-insensitive.
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "sas",
        "credential",
        "private",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k.ends_with("_key")
        || k == "key"
}

/// Serializes storage options with every secret value ([`is_secret_option`]) replaced by `***`;
/// the one serializer every plugin uses for its `storage` field (`serialize_with`), so printed
/// configurations (`vmig plan`, `vmig config`) never show credentials.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize_redacted<S: serde::Serializer>(
    options: &StorageOptions,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    let shown: BTreeMap<&str, &str> = options
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_option(k) {
                "***"
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect();
    shown.serialize(s)
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
/// [`Error::Config`] for an unsupported scheme or a bad option, naming them.
pub fn resolve(path_or_url: &str, options: &StorageOptions) -> Result<StoreLocation> {
    if !path_or_url.contains("://") {
        return local(FsPath::new(path_or_url));
    }
    let url = Url::parse(path_or_url).map_err(|e| {
        Error::config(
            "storage",
            format!("`{path_or_url}` is not a valid URL: {e}"),
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
    fn printed_options_mask_secrets() {
        #[derive(serde::Serialize)]
        struct C {
            #[serde(serialize_with = "serialize_redacted")]
            storage: StorageOptions,
        }
        let mut storage = StorageOptions::new();
        storage.insert("aws_secret_access_key".into(), "verysecret".into());
        storage.insert("azure_storage_account_key".into(), "acct".into());
        storage.insert("AWS_SESSION_TOKEN".into(), "tok".into());
        storage.insert("aws_region".into(), "us-east-1".into());
        let v = serde_json::to_value(C { storage }).unwrap();
        assert_eq!(
            v["storage"],
            serde_json::json!({
                "AWS_SESSION_TOKEN": "***",
                "aws_region": "us-east-1",
                "aws_secret_access_key": "***",
                "azure_storage_account_key": "***",
            })
        );
    }
}
