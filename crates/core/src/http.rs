//! The TLS trust settings of HTTP plugins (feature `http`): `ca_cert` (a PEM bundle of CAs to
//! trust besides the system's) and `insecure` (no certificate verification, loudly), applied the
//! same way, with the same messages, by every source that speaks HTTP through reqwest; and the
//! one rendering of a reqwest transport error ([`transport_message`]), and the test for a refused
//! server certificate ([`refused_certificate`]).
//!
//! An HTTP source speaking JSON uses [`Endpoint`] (module [`client`]) rather than a reqwest
//! client of its own: one base-URL check, credentials as sensitive headers, one send / classify
//! / retry loop and one set of messages for every product.

pub mod client;

pub use client::{
    base_url, basic_auth, http_client, sensitive, BaseUrl, Connection, Endpoint, Failure, Pacer,
    Product, Request, UrlRules,
};

use crate::{Error, Result};

/// `builder` trusting the CAs of the PEM file `ca_cert` (when given) and, with `insecure`,
/// verifying no certificate (a warning says so). `plugin` names the plugin in errors.
///
/// # Errors
/// [`Error::Config`] when `ca_cert` cannot be read or holds no PEM certificate, naming the file.
pub fn trust(
    mut builder: reqwest::ClientBuilder,
    plugin: &str,
    ca_cert: Option<&str>,
    insecure: bool,
) -> Result<reqwest::ClientBuilder> {
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| Error::config(plugin, format!("cannot read `ca_cert` `{path}`: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::config(
                plugin,
                format!("`ca_cert` `{path}` holds no PEM certificate: {e}"),
            )
        })?;
        if certs.is_empty() {
            return Err(Error::config(
                plugin,
                format!("`ca_cert` `{path}` holds no PEM certificate (no `-----BEGIN CERTIFICATE-----` block)"),
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    if insecure {
        tracing::warn!(message = "TLS certificate verification is OFF (`insecure = true`).");
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// A reqwest transport error with every cause in its chain (`error sending request: … :
/// Connection refused`), since reqwest's own message stops at the outermost one. The URL it names
/// never holds credentials: reqwest strips them.
pub fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// When `e` (or an error it wraps) is rustls refusing the server's certificate, the reason
/// (`UnknownIssuer`, `NotValidForName…`, `Expired…`): a configuration problem that no retry
/// mends, unlike an unreachable server.
pub fn refused_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("{c:?}"));
        }
        // A handshake failure arrives as an `io::Error` wrapping rustls's error;
        // `io::Error::source()` skips the wrapped error itself, `get_ref` does not.
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|i| i as &(dyn std::error::Error + 'static));
        next = wrapped.or_else(|| err.source());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let e = trust(
            reqwest::Client::builder(),
            "x",
            Some("/nonexistent/ca.pem"),
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("cannot read `ca_cert` `/nonexistent/ca.pem`"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("vmig-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate").unwrap_or_default();
        let path = empty.display().to_string();
        let e = trust(reqwest::Client::builder(), "x", Some(&path), false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains(&format!("`ca_cert` `{path}` holds no PEM certificate")),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap_or_default();
    }
}
