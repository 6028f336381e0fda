//! The HTTP side: Chroma's credentials and messages on the shared client
//! ([`vmig_core::http::Endpoint`], which does URL checks, TLS, retries and error
//! classification).

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, AUTHORIZATION};
use vmig_core::http::{self, Connection, Endpoint, Product, UrlRules};
use vmig_core::Result;

use crate::{AuthHeader, ChromaSourceConfig, PLUGIN};

/// A connection to one Chroma server.
pub(crate) type Client = Endpoint;

/// Builds the client of `cfg`'s server (no I/O): `username`/`password` (or credentials in the
/// URL) as basic authentication, `token` in the header `auth_header` names.
pub(crate) fn connect(cfg: &ChromaSourceConfig) -> Result<Client> {
    let mut base = http::base_url(PLUGIN, "url", &cfg.url, UrlRules::BasicAuth, "")?;
    if let Some(u) = &cfg.username {
        base.credentials = Some((u.clone(), cfg.password.clone().unwrap_or_default()));
    }
    let mut headers = HeaderMap::new();
    if let Some((u, p)) = &base.credentials {
        headers.insert(AUTHORIZATION, http::basic_auth(PLUGIN, u, p)?);
    }
    if let Some(t) = &cfg.token {
        match cfg.auth_header {
            AuthHeader::Authorization => {
                let v = http::sensitive(PLUGIN, "a credential", &format!("Bearer {t}"))?;
                headers.insert(AUTHORIZATION, v);
            }
            AuthHeader::XChromaToken => {
                let v = http::sensitive(PLUGIN, "a credential", t)?;
                headers.insert(HeaderName::from_static("x-chroma-token"), v);
            }
        }
    }
    let conn = Connection {
        request_timeout_secs: cfg.request_timeout_secs,
        ca_cert: cfg.ca_cert.as_deref(),
        insecure: cfg.insecure,
    };
    let product = Product::new(
        PLUGIN,
        "Chroma",
        "check `token` and `auth_header`, or `username`/`password`",
        "check `collection`, `tenant` and `database`",
    );
    Ok(Endpoint::new(
        http::http_client(PLUGIN, headers, &conn)?,
        base.url,
        cfg.retry,
        Arc::new(product),
        "the Chroma server",
        "url",
    ))
}
