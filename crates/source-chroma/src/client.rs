//! The HTTP side: base URL, authentication, TLS, retries and error classification.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use vmig_core::{Error, Result, RetryConfig};

use crate::{AuthHeader, ChromaSourceConfig, PLUGIN};

/// A connection to one Chroma server. Credentials live only in the client's default headers.
pub(crate) struct Client {
    http: reqwest::Client,
    base: url::Url,
    retry: RetryConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.display_url())
            .finish_non_exhaustive()
    }
}

fn header(value: String) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        Error::config(
            PLUGIN,
            "a credential contains characters that cannot be sent in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    /// Builds the client (no I/O).
    pub(crate) fn new(cfg: &ChromaSourceConfig) -> Result<Client> {
        let mut base = url::Url::parse(cfg.url.trim())
            .map_err(|e| Error::config(PLUGIN, format!("`url` does not parse: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::config(
                PLUGIN,
                "`url` must start with http:// or https://",
            ));
        }
        let mut basic = None;
        if !base.username().is_empty() {
            basic = Some((
                base.username().to_string(),
                base.password().unwrap_or("").to_string(),
            ));
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        if let Some(u) = &cfg.username {
            basic = Some((u.clone(), cfg.password.clone().unwrap_or_default()));
        }
        let mut headers = HeaderMap::new();
        if let Some((u, p)) = basic {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            headers.insert(AUTHORIZATION, header(format!("Basic {b}"))?);
        }
        if let Some(t) = &cfg.token {
            match cfg.auth_header {
                AuthHeader::Authorization => {
                    headers.insert(AUTHORIZATION, header(format!("Bearer {t}"))?);
                }
                AuthHeader::XChromaToken => {
                    headers.insert(
                        HeaderName::from_static("x-chroma-token"),
                        header(t.clone())?,
                    );
                }
            }
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(cfg.request_timeout_secs.max(1)));
        builder = vmig_core::http::trust(builder, PLUGIN, cfg.ca_cert.as_deref(), cfg.insecure)?;
        let http = builder
            .build()
            .map_err(|e| Error::config(PLUGIN, format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            retry: cfg.retry,
        })
    }

    /// The server URL for messages (never with credentials).
    pub(crate) fn display_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// Sends a request (retrying transient failures) and parses the JSON answer. `what` says
    /// what was being done, for the error.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        let bytes = self.bytes(method, path, body, what).await?;
        serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            Error::data(
                what.to_string(),
                format!(
                    "{} answered with something that is not JSON: {e}",
                    self.display_url()
                ),
            )
        })
    }

    /// As [`Client::json`], returning the body of the success unparsed.
    pub(crate) async fn bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Vec<u8>> {
        let payload = body.map(|b| b.to_string());
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::config(PLUGIN, format!("cannot build the URL of `{path}`: {e}")))?;
        let server = self.display_url();
        let attempt = || async {
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(p) = &payload {
                req = req.header(CONTENT_TYPE, "application/json").body(p.clone());
            }
            let resp = req.send().await.map_err(|e| {
                match vmig_core::http::refused_certificate(&e) {
                    // Not transient: no retry trusts the certificate.
                    Some(why) => Error::config(
                        PLUGIN,
                        format!(
                            "{what}: the TLS certificate of the Chroma server at {server} is refused ({why}); give the PEM file of its CA as `ca_cert` (or, for a test server only, `insecure = true`)"
                        ),
                    ),
                    None => Error::Transient {
                        message: format!(
                            "{what}: cannot reach the Chroma server at {server} ({}); is it running, and is `url` right?",
                            vmig_core::http::transport_message(&e)
                        ),
                        source: None,
                    },
                }
            })?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| Error::Transient {
                message: format!(
                    "{what}: reading the answer of {server}: {}",
                    vmig_core::http::transport_message(&e)
                ),
                source: None,
            })?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let text: String = String::from_utf8_lossy(&bytes).chars().take(400).collect();
            let msg = format!("{what}: {server} answered HTTP {status}: {text}");
            Err(match status.as_u16() {
                // The server's verdict on the credentials: not retried, and (unlike a job
                // file vmig itself finds wrong) exit code 1, as for an unreachable server.
                401 | 403 => Error::External(Box::new(std::io::Error::other(format!(
                    "{msg} (check `token` and `auth_header`, or `username`/`password`)"
                )))),
                429 | 502..=504 => Error::Transient {
                    message: msg,
                    source: None,
                },
                404 => Error::config(
                    PLUGIN,
                    format!("{msg} (check `collection`, `tenant` and `database`)"),
                ),
                _ => Error::data(
                    what.to_string(),
                    format!("{server} answered HTTP {status}: {text}"),
                ),
            })
        };
        self.retry.run(&format!("Chroma {what}"), attempt).await
    }
}
