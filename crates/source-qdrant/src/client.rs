//! The HTTP side: the `api-key` header, Qdrant's error bodies and its `{"result": …}` envelope
//! on the shared client ([`vmig_core::http::Endpoint`], which does URL checks, TLS, retries and
//! error classification).

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName};
use reqwest::Method;
use serde_json::Value;
use vmig_core::http::{self, Connection, Endpoint, Failure, Product, UrlRules};
use vmig_core::{Error, Result};

use crate::{QdrantSourceConfig, PLUGIN};

/// A connection to one Qdrant server. The API key lives only in the client's default headers.
#[derive(Debug)]
pub(crate) struct Client(Endpoint);

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

/// Qdrant refuses a filter it cannot use with 400 or 422.
fn bad_request(f: &Failure) -> Option<Error> {
    matches!(f.status, 400 | 422)
        .then(|| Error::config(PLUGIN, format!("{} (check `filter`)", f.message)))
}

impl Client {
    /// Builds the client (no I/O).
    pub(crate) fn new(cfg: &QdrantSourceConfig) -> Result<Client> {
        let base = http::base_url(
            PLUGIN,
            "url",
            &cfg.url,
            UrlRules::BasicAuth,
            " (vmig talks to Qdrant's REST API, port 6333 by default)",
        )?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            headers.insert(
                HeaderName::from_static("api-key"),
                http::sensitive(PLUGIN, "`api_key`", key)?,
            );
        }
        // A reverse proxy in front of Qdrant may want basic authentication.
        http::client::add_url_credentials(PLUGIN, &mut headers, &base)?;
        let conn = Connection {
            request_timeout_secs: cfg.request_timeout_secs,
            ca_cert: cfg.ca_cert.as_deref(),
            insecure: cfg.insecure,
        };
        let mut product = Product::new(
            PLUGIN,
            "Qdrant",
            "check `api_key`",
            "check `collection` and `url`",
        );
        product.error_text = error_text;
        product.on_status = Some(bad_request);
        Ok(Client(Endpoint::new(
            http::http_client(PLUGIN, headers, &conn)?,
            base.url,
            cfg.retry,
            Arc::new(product),
            "the Qdrant server",
            "url",
        )))
    }

    /// The server URL for messages (never with credentials).
    pub(crate) fn display_url(&self) -> String {
        self.0.display_url()
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
        self.0.bytes(method, path, body, what).await
    }

    /// As [`Client::bytes`], parsed as JSON and unwrapped from Qdrant's `{"result": …}`.
    pub(crate) async fn result(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        let mut v = self.0.json(method, path, body, what).await?;
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
