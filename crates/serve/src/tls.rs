//! TLS for `vmig serve` (`--tls-cert FILE --tls-key FILE`): a PEM certificate chain and its
//! private key, loaded into a rustls server configuration with the `ring` crypto provider (the
//! one the rest of the workspace's rustls clients use; named here rather than left to a
//! process default, since the build has more than one provider compiled in).
//!
//! Loading is the check: [`crate::ServeOptions::check`] loads the files, so a missing file, a
//! file without PEM, a key that is not the certificate's, or a key file holding no private key
//! refuses the server at start with a [`ServeError::Config`] naming the file and what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, ServerConfig};

use crate::ServeError;

/// The PEM files of the server's TLS identity (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain in PEM (`-----BEGIN CERTIFICATE-----`), the server's own
    /// certificate first, then any intermediates.
    pub cert: PathBuf,
    /// The private key of the first certificate, in unencrypted PEM: PKCS#8 (`PRIVATE KEY`),
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The certificate chain file `cert` and its private key file `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// From the two command-line options: both (TLS), or neither (plain HTTP).
    ///
    /// # Errors
    /// A message saying which of the two is missing, when only one is given.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(cert), None) => Err(format!(
                "`--tls-cert {}` was given without `--tls-key`: give both (the certificate chain and its private key, PEM) or neither",
                cert.display()
            )),
            (None, Some(key)) => Err(format!(
                "`--tls-key {}` was given without `--tls-cert`: give both (the certificate chain and its private key, PEM) or neither",
                key.display()
            )),
        }
    }
}

/// The rustls server configuration of `files` (HTTP/1.1 by ALPN, as the plain server speaks).
///
/// # Errors
/// [`ServeError::Config`] naming the file that cannot be read or used, and what to do.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ServeError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        config(format!(
            "the TLS key file {} holds a private key that cannot be used ({e}); give an RSA, ECDSA (P-256, P-384) or Ed25519 key",
            files.key.display()
        ))
    })?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(config(format!(
                "the private key in {} is not the key of the certificate in {}: give the key the certificate was issued for (the first certificate in the file must be the server's own)",
                files.key.display(),
                files.cert.display()
            )))
        }
        Err(e) => {
            return Err(config(format!(
                "the first certificate in the TLS certificate file {} cannot be used ({e}); give the server's X.509 certificate in PEM",
                files.cert.display()
            )))
        }
    }
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config(format!("setting up TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Serves `app` over TLS on `listener` (axum-server's rustls acceptor, HTTP/1.1) until
/// `shutdown` fires; then, as `axum::serve`'s graceful shutdown does, stops accepting and
/// waits for the connections in flight to finish.
///
/// # Errors
/// The listener's I/O error. A client's failed TLS handshake is not one: it is logged at debug
/// level and that connection dropped.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<ServerConfig>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let stopper = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(None);
        })
    };
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(config));
    let served = axum_server::Server::from_listener(listener)
        .acceptor(acceptor)
        .http1_only()
        .handle(handle)
        .accept_error_handler(|peer, e| {
            tracing::debug!(?peer, "vmig serve: connection not accepted: {e}")
        })
        .serve(app.into_make_service())
        .await;
    stopper.abort();
    served
}

fn config(message: String) -> ServeError {
    ServeError::Config(message)
}

fn read(path: &Path, what: &str, flag: &str) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| {
        config(format!(
            "cannot read the TLS {what} file {} ({e}); give a readable PEM file with `{flag}`",
            path.display()
        ))
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let bytes = read(path, "certificate", "--tls-cert")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| {
            config(format!(
                "the TLS certificate file {} is not valid PEM ({e}); give the certificate chain in PEM",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        let hint = if contains(&bytes, b"PRIVATE KEY-----") {
            " (it holds a private key: were `--tls-cert` and `--tls-key` swapped?)"
        } else {
            ""
        };
        return Err(config(format!(
            "the TLS certificate file {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`){hint}; give the server's certificate chain in PEM, its own certificate first (a DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`)",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    let bytes = read(path, "key", "--tls-key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
                " (it holds an encrypted key, which is not supported: decrypt it with `openssl pkey -in FILE -out FILE.plain` and keep that file readable only by the server's user)"
            } else if contains(&bytes, b"-----BEGIN CERTIFICATE-----") {
                " (it holds a certificate: were `--tls-cert` and `--tls-key` swapped?)"
            } else {
                ""
            };
            Err(config(format!(
                "the TLS key file {} holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`){hint}; give the unencrypted private key of the certificate in `--tls-cert`",
                path.display()
            )))
        }
        Err(e) => Err(config(format!(
            "the TLS key file {} is not valid PEM ({e}); give the certificate's private key in PEM",
            path.display()
        ))),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
