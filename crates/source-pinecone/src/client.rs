//! The HTTP side: `Api-Key` and `X-Pinecone-Api-Version` on the shared client
//! ([`vmig_core::http::Endpoint`]: URL checks, TLS, retries with `Retry-After`, error
//! classification, request pacing), and what is Pinecone's own: every 5xx is retried (its
//! data plane answers 500 for a passing overload), bare host names are `https://`, credentials
//! never go in a URL.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;
use vmig_core::http::{self, Connection, Endpoint, Product, Request, UrlRules};
use vmig_core::{Result, RetryConfig};

use crate::{PineconeSourceConfig, API_VERSION, PLUGIN};

pub(crate) use vmig_core::http::Failure as HttpFailure;
pub(crate) use vmig_core::http::Pacer;

/// A connection to one Pinecone endpoint (the control plane or an index's host).
/// Credentials live only in the client's default headers.
#[derive(Debug)]
pub(crate) struct Client(Endpoint);

/// `host` as a base URL: `https://` added when there is no scheme, a trailing `/`.
pub(crate) fn base_url(host: &str, option: &str) -> Result<url::Url> {
    Ok(http::base_url(
        PLUGIN,
        option,
        host,
        UrlRules::HostOrUrlWithoutCredentials,
        "",
    )?
    .url)
}

/// The reqwest client every endpoint of one source shares.
pub(crate) fn http(cfg: &PineconeSourceConfig) -> Result<reqwest::Client> {
    let key = http::sensitive(
        PLUGIN,
        "`api_key`",
        cfg.api_key.as_deref().unwrap_or_default().trim(),
    )?;
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("api-key"), key);
    headers.insert(
        HeaderName::from_static("x-pinecone-api-version"),
        HeaderValue::from_static(API_VERSION),
    );
    let conn = Connection {
        request_timeout_secs: cfg.request_timeout_secs,
        ca_cert: cfg.ca_cert.as_deref(),
        insecure: cfg.insecure,
    };
    http::http_client(PLUGIN, headers, &conn)
}

impl Client {
    /// A client of the endpoint at `base` (no I/O). `what` names it in messages ("the
    /// Pinecone control plane", "index `docs`"); `option` is the key its URL came from.
    pub(crate) fn new(
        http: reqwest::Client,
        base: url::Url,
        retry: RetryConfig,
        what: String,
        option: &str,
    ) -> Client {
        let mut product = Product::new(
            PLUGIN,
            "Pinecone",
            "check `api_key`: it must be a key of the index's project",
            "check `index`, `index_host` and `namespace`",
        );
        product.retry_server_errors = true;
        Client(Endpoint::new(
            http,
            base,
            retry,
            Arc::new(product),
            what,
            option,
        ))
    }

    /// The endpoint's URL for messages.
    pub(crate) fn display_url(&self) -> String {
        self.0.display_url()
    }

    /// Sends a request (retrying transient failures, after `pacer`'s slot each time) and
    /// returns the answer's body. `doing` says what was being done, for the error; `on_status`
    /// may turn a non-success status into a specific error (else the general rules apply).
    // One call shape for every endpoint; a request struct would only rename these.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        doing: &str,
        pacer: Option<&Pacer>,
        on_status: &(dyn Fn(&HttpFailure) -> Option<vmig_core::Error> + Sync),
    ) -> Result<bytes_json::Body> {
        let req = Request::new(method, path, doing)
            .query(query)
            .body(body)
            .pacer(pacer)
            .on_status(on_status);
        Ok(bytes_json::Body(self.0.send(req).await?))
    }
}

/// The raw body of a successful answer.
pub(crate) mod bytes_json {
    /// Bytes the caller parses into its own types.
    #[derive(Debug)]
    pub(crate) struct Body(pub(crate) Vec<u8>);

    impl Body {
        /// The body as a JSON value.
        pub(crate) fn value(&self, location: &str) -> vmig_core::Result<serde_json::Value> {
            serde_json::from_slice(&self.0).map_err(|e| {
                vmig_core::Error::data(location.to_string(), format!("the answer is not JSON: {e}"))
            })
        }
    }
}
