//! The HTTP side: base URL, the `api-key` header, TLS, retries and error classification.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use vmig_core::{Error, Result, RetryConfig};

use crate::{QdrantSourceConfig, PLUGIN};

/// A connection to one Qdrant server. The API key lives only in the client's default headers.
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

/// The `status.error` text of a Qdrant error answer, or the body itself (at most 400 chars).
fn error_text(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.pointer("/status/error"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).into_owned(),
            str::to_string,
        );
    text.chars().take(400).collect()
}

impl Client {
    /// Builds the client (no I/O).
    pub(crate) fn new(cfg: &QdrantSourceConfig) -> Result<Client> {
        let mut base = url::Url::parse(cfg.url.trim())
            .map_err(|e| Error::config(PLUGIN, format!("`url` does not parse: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::config(
                PLUGIN,
                "`url` must start with http:// or https:// (vmig talks to Qdrant's REST API, port 6333 by default)",
            ));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            let mut v = HeaderValue::from_str(key).map_err(|_| {
                Error::config(
                    PLUGIN,
                    "`api_key` contains characters that cannot be sent in an HTTP header",
                )
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("api-key"), v);
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
        vmig_core::redact::url(self.base.as_str().trim_end_matches('/'))
    }

    /// Sends a request (retrying transient failures) and returns the body of the success. `what`
    /// says what was being done, for the error.
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
            let resp = req.send().await.map_err(|e| Error::Transient {
                message: format!(
                    "{what}: cannot reach the Qdrant server at {server} ({}); is it running, and is `url` right?",
                    vmig_core::http::transport_message(&e)
                ),
                source: None,
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
            let text = error_text(&bytes);
            let msg = format!("{what}: {server} answered HTTP {status}: {text}");
            Err(match status.as_u16() {
                401 | 403 => Error::config(PLUGIN, format!("{msg} (check `api_key`)")),
                429 | 502..=504 => Error::Transient {
                    message: msg,
                    source: None,
                },
                404 => Error::config(PLUGIN, format!("{msg} (check `collection` and `url`)")),
                400 | 422 => Error::config(PLUGIN, format!("{msg} (check `filter`)")),
                _ => Error::data(
                    what.to_string(),
                    format!("{server} answered HTTP {status}: {text}"),
                ),
            })
        };
        self.retry.run(&format!("Qdrant {what}"), attempt).await
    }

    /// As [`Client::bytes`], parsed as JSON and unwrapped from Qdrant's `{"result": …}`.
    pub(crate) async fn result(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        let bytes = self.bytes(method, path, body, what).await?;
        let mut v = serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            Error::data(
                what.to_string(),
                format!(
                    "{} answered with something that is not JSON: {e}",
                    self.display_url()
                ),
            )
        })?;
        match v.get_mut("result") {
            Some(r) => Ok(r.take()),
            None => Err(Error::data(
                what.to_string(),
                format!(
                    "{}'s answer has no `result`; is this Qdrant's REST API?",
                    self.display_url()
                ),
            )),
        }
    }
}
