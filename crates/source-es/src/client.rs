//! The HTTP side: connection settings, authentication, retries, error classification and server
//! detection. Nothing here knows about Arrow.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use vmig_core::retry::GaveUp;
use vmig_core::{Error, Result, RetryConfig};

use crate::EsSourceConfig;

/// Which product answered `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Elastic's Elasticsearch.
    Elasticsearch,
    /// OpenSearch (reports `version.distribution = "opensearch"`).
    OpenSearch,
}

/// The server's product and version, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    /// Elasticsearch or OpenSearch.
    pub distribution: Distribution,
    /// `(major, minor, patch)`.
    pub version: (u32, u32, u32),
}

impl ServerInfo {
    /// Parses the body of `GET /`.
    ///
    /// # Errors
    /// When the body has no `version.number` (not an Elasticsearch-compatible server).
    pub fn from_root(body: &Value) -> Result<ServerInfo> {
        let number = body
            .pointer("/version/number")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::unsupported(
                    "GET /",
                    "the server's answer has no `version.number`; is this Elasticsearch or OpenSearch?",
                )
            })?;
        let mut parts = number
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        let distribution = match body
            .pointer("/version/distribution")
            .and_then(Value::as_str)
        {
            Some(d) if d.eq_ignore_ascii_case("opensearch") => Distribution::OpenSearch,
            _ => Distribution::Elasticsearch,
        };
        Ok(ServerInfo {
            distribution,
            version,
        })
    }

    /// Whether point-in-time + `search_after` sorted by `_shard_doc` is available: Elasticsearch
    /// 7.12+ (PIT came in 7.10, the `_shard_doc` sort in 7.12). OpenSearch has PIT since 2.4 but
    /// no `_shard_doc` tie-breaker (opensearch-project/OpenSearch#17064), so vmig reads it with
    /// scroll.
    pub fn has_pit_shard_doc(&self) -> bool {
        self.distribution == Distribution::Elasticsearch && self.version >= (7, 12, 0)
    }

    /// Whether the server knows `_source.exclude_vectors` (Elasticsearch 9.x).
    pub fn knows_exclude_vectors(&self) -> bool {
        self.distribution == Distribution::Elasticsearch && self.version.0 >= 9
    }
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        match self.distribution {
            Distribution::Elasticsearch => write!(f, "Elasticsearch {a}.{b}.{c}"),
            Distribution::OpenSearch => write!(f, "OpenSearch {a}.{b}.{c}"),
        }
    }
}

/// An HTTP failure the caller may want to look at before it becomes an [`Error`].
#[derive(Debug)]
pub enum HttpError {
    /// The server answered with a non-success status.
    Status {
        /// The base URL of the node that answered (one of `url`, without credentials): with
        /// several URLs, not necessarily the first.
        node: String,
        /// HTTP status.
        status: StatusCode,
        /// `error.type` from the body, when it has one.
        kind: String,
        /// The server's reason (root cause first), or the start of the body.
        reason: String,
    },
    /// No answer (connection refused/reset, timeout), after all retries.
    Transport(String),
    /// The server's TLS certificate was refused (not trusted, or not the one `ca_fingerprint`
    /// pins): not retried, trying again cannot change it.
    Certificate(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status {
                node,
                status,
                kind,
                reason,
            } => write!(f, "{node} answered HTTP {status}: {kind}: {reason}"),
            HttpError::Transport(m) | HttpError::Certificate(m) => f.write_str(m),
        }
    }
}

impl HttpError {
    /// Whether trying again may succeed: 429, 502–504 and failures to get an answer.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => matches!(status.as_u16(), 429 | 502..=504),
            HttpError::Transport(_) => true,
            HttpError::Certificate(_) => false,
        }
    }

    /// Adds why retrying stopped to the message.
    fn gave_up(mut self, why: GaveUp) -> HttpError {
        match &mut self {
            HttpError::Status { reason, .. } => *reason = format!("{reason} ({why})"),
            HttpError::Transport(m) | HttpError::Certificate(m) => *m = format!("{m} ({why})"),
        }
        self
    }

    /// Whether the server said the scroll or PIT context is gone (expired or freed).
    pub fn is_context_missing(&self) -> bool {
        match self {
            HttpError::Status { kind, reason, .. } => {
                kind.contains("search_context_missing")
                    || reason.contains("search_context_missing")
                    || reason.contains("No search context found")
                    || (kind.contains("search_phase_execution")
                        && reason.contains("search context"))
            }
            HttpError::Transport(_) | HttpError::Certificate(_) => false,
        }
    }

    /// Converts into vmig's error, saying what was being done.
    pub fn into_error(self, what: &str) -> Error {
        let answer = self.to_string();
        match self {
            HttpError::Status { status, kind, .. } => {
                let msg = format!("{what}: {answer}");
                match status.as_u16() {
                    401 | 403 => Error::config(
                        "elasticsearch",
                        format!("{msg} (check `username`/`password`, `api_key` or `bearer_token`)"),
                    ),
                    429 | 502..=504 => Error::Transient {
                        message: msg,
                        source: None,
                    },
                    404 if kind.contains("index_not_found") => Error::config(
                        "elasticsearch",
                        format!("{msg} (check `index`; GET /_cat/indices lists the indices)"),
                    ),
                    _ => Error::data(what.to_string(), answer),
                }
            }
            HttpError::Transport(m) => Error::Transient {
                message: format!("{what}: {m}"),
                source: None,
            },
            HttpError::Certificate(m) => Error::config("elasticsearch", format!("{what}: {m}")),
        }
    }
}

/// A connection to one cluster: base URLs (tried in turn), auth headers and the retry policy.
///
/// Credentials live only in the default headers of the HTTP client; URLs never carry them, so
/// no error message (reqwest's include the URL) can show them.
pub struct Client {
    http: reqwest::Client,
    urls: Vec<url::Url>,
    next: AtomicUsize,
    retry: RetryConfig,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field(
                "urls",
                &self.urls.iter().map(url::Url::as_str).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Decodes an Elastic Cloud id (`name:base64(host$es_uuid$kibana_uuid)`) into the HTTPS URL of
/// its Elasticsearch endpoint.
///
/// # Errors
/// When the id is not in that form.
pub fn cloud_id_url(cloud_id: &str) -> Result<String> {
    let bad = || {
        Error::config(
            "elasticsearch",
            "`cloud_id` is not an Elastic Cloud id (`<name>:<base64 of host$es_uuid$kibana_uuid>`)",
        )
    };
    let encoded = cloud_id.rsplit_once(':').map_or(cloud_id, |(_, e)| e);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let mut parts = text.split('$');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let es = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    // The host may carry a port (`host:9243`); the cluster id goes before the host.
    let (host, port) = match host.split_once(':') {
        Some((h, p)) => (h, p),
        None => (host, "443"),
    };
    Ok(format!("https://{es}.{host}:{port}"))
}

fn header(value: String) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        Error::config(
            "elasticsearch",
            "a credential contains characters that cannot be sent in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    /// Builds the client from a validated configuration (no I/O).
    ///
    /// # Errors
    /// When a URL does not parse, the CA certificate cannot be read or `ca_fingerprint` is not a
    /// SHA-256.
    pub fn new(config: &EsSourceConfig) -> Result<Client> {
        let mut raw_urls: Vec<String> = config.url.as_slice().to_vec();
        if let Some(id) = &config.cloud_id {
            raw_urls.push(cloud_id_url(id)?);
        }
        let mut urls = Vec::new();
        let mut basic_from_url: Option<(String, String)> = None;
        for (i, raw) in raw_urls.iter().enumerate() {
            let mut u = url::Url::parse(raw).map_err(|e| {
                Error::config(
                    "elasticsearch",
                    format!("url #{} does not parse: {e}", i + 1),
                )
            })?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(Error::config(
                    "elasticsearch",
                    format!("url #{} must start with http:// or https://", i + 1),
                ));
            }
            if !u.username().is_empty() {
                let user = url_decode(u.username());
                let pass = url_decode(u.password().unwrap_or(""));
                basic_from_url = Some((user, pass));
                // Strip the credentials so they never reach a log line or an error message.
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            if !u.path().ends_with('/') {
                let p = format!("{}/", u.path());
                u.set_path(&p);
            }
            urls.push(u);
        }
        let mut headers = HeaderMap::new();
        let basic = match (&config.username, &config.password) {
            (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            (None, _) => basic_from_url,
        };
        if let Some((u, p)) = basic {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            headers.insert(AUTHORIZATION, header(format!("Basic {token}"))?);
        }
        if let Some(key) = &config.api_key {
            // Either the encoded key as Elasticsearch prints it, or `id:api_key`.
            let encoded = if key.contains(':') {
                base64::engine::general_purpose::STANDARD.encode(key)
            } else {
                key.clone()
            };
            headers.insert(AUTHORIZATION, header(format!("ApiKey {encoded}"))?);
        }
        if let Some(token) = &config.bearer_token {
            headers.insert(AUTHORIZATION, header(format!("Bearer {token}"))?);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(config.request_timeout_secs.max(1)))
            .pool_max_idle_per_host(32);
        builder = vmig_core::http::trust(
            builder,
            "elasticsearch",
            config.ca_cert.as_deref(),
            config.insecure,
        )?;
        if let Some(text) = &config.ca_fingerprint {
            // Validation refuses it next to `ca_cert` and `insecure`, which this configuration
            // would silently override.
            let pin = crate::pin::Fingerprint::parse("elasticsearch", text)?;
            builder =
                builder.use_preconfigured_tls(crate::pin::pinned_tls_config("elasticsearch", pin)?);
        }
        let http = builder
            .build()
            .map_err(|e| Error::config("elasticsearch", format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            urls,
            next: AtomicUsize::new(0),
            retry: config.retry_policy("elasticsearch")?,
        })
    }

    /// The first URL, for messages (never holds credentials).
    pub fn display_url(&self) -> String {
        self.urls.first().map(node_name).unwrap_or_default()
    }

    /// The retry policy of this cluster's requests.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// Sends a request with retries on transient failures (429, 502–504, connection errors,
    /// timeouts; the policy is `retry`, see [`vmig_core::retry`]) and returns the body of a
    /// success, or the classified failure. With several URLs, a connection failure moves on to
    /// the next one.
    ///
    /// `retry` is false for requests that are not idempotent (a scroll continuation: a lost answer
    /// may have advanced the cursor); the caller recovers those itself.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> std::result::Result<bytes::Bytes, HttpError> {
        let payload = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let attempt = || async {
            let i = self.next.load(Ordering::Relaxed) % self.urls.len().max(1);
            let base = &self.urls[i];
            let url = base.join(path.trim_start_matches('/')).map_err(|e| {
                HttpError::Transport(format!("cannot build the URL for `{path}`: {e}"))
            })?;
            let mut req = self.http.request(method.clone(), url);
            if let Some(p) = &payload {
                req = req.header(CONTENT_TYPE, "application/json").body(p.clone());
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(b) if status.is_success() => return Ok(b),
                        Ok(b) => status_error(node_name(base), status, &b),
                        Err(e) => HttpError::Transport(vmig_core::http::transport_message(&e)),
                    }
                }
                Err(e) => match crate::pin::certificate_refusal(&e) {
                    Some(why) => HttpError::Certificate(format!("{}: {why}", node_name(base))),
                    None => HttpError::Transport(vmig_core::http::transport_message(&e)),
                },
            };
            if matches!(err, HttpError::Transport(_) | HttpError::Certificate(_))
                && self.urls.len() > 1
            {
                self.next.fetch_add(1, Ordering::Relaxed);
            }
            Err(err)
        };
        if !retry {
            return attempt().await;
        }
        let what = format!("{method} {path}");
        self.retry
            .run_with(&what, HttpError::is_transient, HttpError::gave_up, attempt)
            .await
    }

    /// [`Client::send`] with the failure converted to an [`Error`] and the body parsed as JSON.
    ///
    /// # Errors
    /// The classified HTTP failure, or a body that is not JSON.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        let bytes = self
            .send(method, path, body, true)
            .await
            .map_err(|e| e.into_error(what))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(what.to_string(), format!("the answer is not JSON: {e}")))
    }

    /// `GET /`: which product and version the cluster runs.
    ///
    /// # Errors
    /// When the cluster cannot be reached, refuses the credentials or is not ES-compatible.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        // No URL here: with several, the error names the node that answered (or failed).
        let what = "identifying the server";
        let body = self.json(Method::GET, "/", None, what).await?;
        ServerInfo::from_root(&body)
    }
}

/// A base URL as shown in messages: without the trailing `/` (and never with credentials, which
/// [`Client::new`] strips).
fn node_name(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

fn url_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn status_error(node: String, status: StatusCode, body: &[u8]) -> HttpError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut reason = err
        .map(|e| {
            let root = e
                .pointer("/root_cause/0/reason")
                .or_else(|| e.pointer("/caused_by/reason"))
                .and_then(Value::as_str);
            let top = e.get("reason").and_then(Value::as_str);
            match (root, top) {
                (Some(r), Some(t)) if r != t => format!("{r} ({t})"),
                (Some(r), _) => r.to_string(),
                (None, Some(t)) => t.to_string(),
                (None, None) => e.to_string(),
            }
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(300).collect()
        });
    if reason.is_empty() {
        reason = status.canonical_reason().unwrap_or("").to_string();
    }
    HttpError::Status {
        node,
        status,
        kind,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_products_and_features() {
        let es: Value = serde_json::json!({"version": {"number": "8.15.3"}});
        let i = ServerInfo::from_root(&es).unwrap();
        assert_eq!(i.distribution, Distribution::Elasticsearch);
        assert!(i.has_pit_shard_doc());
        assert!(!i.knows_exclude_vectors());
        let old: Value = serde_json::json!({"version": {"number": "7.10.2"}});
        assert!(!ServerInfo::from_root(&old).unwrap().has_pit_shard_doc());
        let nine: Value = serde_json::json!({"version": {"number": "9.2.0-SNAPSHOT"}});
        let nine = ServerInfo::from_root(&nine).unwrap();
        assert_eq!(nine.version, (9, 2, 0));
        assert!(nine.knows_exclude_vectors());
        let os: Value =
            serde_json::json!({"version": {"number": "2.11.0", "distribution": "opensearch"}});
        let os = ServerInfo::from_root(&os).unwrap();
        assert_eq!(os.distribution, Distribution::OpenSearch);
        assert!(!os.has_pit_shard_doc());
        assert_eq!(os.to_string(), "OpenSearch 2.11.0");
        assert_eq!(ServerInfo::from_root(&serde_json::json!({"x": 1})).unwrap_err().to_string(), "unsupported input at GET /: the server's answer has no `version.number`; is this Elasticsearch or OpenSearch?");
    }

    #[test]
    fn cloud_id_decodes() {
        let enc =
            base64::engine::general_purpose::STANDARD.encode("eu-west-1.aws.found.io$abc$def");
        assert_eq!(
            cloud_id_url(&format!("my-deploy:{enc}")).unwrap(),
            "https://abc.eu-west-1.aws.found.io:443"
        );
        let enc = base64::engine::general_purpose::STANDARD.encode("host.io:9243$es1$kb");
        assert_eq!(
            cloud_id_url(&format!("x:{enc}")).unwrap(),
            "https://es1.host.io:9243"
        );
        assert_eq!(cloud_id_url("nonsense:!!").unwrap_err().to_string(), "invalid `elasticsearch` configuration: `cloud_id` is not an Elastic Cloud id (`<name>:<base64 of host$es_uuid$kibana_uuid>`)");
    }

    #[test]
    fn server_reasons_are_kept() {
        let body = br#"{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [x]"}],"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#;
        let e = status_error("http://n2:9200".into(), StatusCode::NOT_FOUND, body);
        let msg = e.into_error("reading x").to_string();
        assert!(msg.contains("no such index [x]"), "{msg}");
        let gone = status_error(
            String::new(),
            StatusCode::NOT_FOUND,
            br#"{"error":{"root_cause":[{"type":"search_context_missing_exception","reason":"No search context found for id [1]"}],"type":"search_phase_execution_exception","reason":"all shards failed"}}"#,
        );
        assert!(gone.is_context_missing());
        let busy = status_error(String::new(), StatusCode::TOO_MANY_REQUESTS, b"busy");
        assert!(busy.into_error("x").is_retryable());
    }
}
