//! The HTTP side: one reqwest client carrying `Api-Key` and `X-Pinecone-Api-Version`, TLS
//! trust, the shared retry policy (with `Retry-After`), request pacing and error
//! classification.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use vmig_core::{Error, Result, RetryConfig};

use crate::{PineconeSourceConfig, API_VERSION, PLUGIN};

/// The longest `Retry-After` honoured (a longer one is cut to this, then the policy's back-off
/// follows).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Spaces requests at least `1/rate` seconds apart (over every task sharing it).
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `rate` requests per second; 0 = unpaced.
    pub(crate) fn new(rate: u32) -> Pacer {
        Pacer {
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(rate))),
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's slot.
    pub(crate) async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A connection to one Pinecone endpoint (the control plane or an index's host).
/// Credentials live only in the client's default headers.
pub(crate) struct Client {
    http: reqwest::Client,
    base: url::Url,
    retry: RetryConfig,
    /// What the endpoint is, for messages ("the control plane", "index `docs`").
    what: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.display_url())
            .finish_non_exhaustive()
    }
}

/// `host` as a base URL: `https://` added when there is no scheme, a trailing `/`.
pub(crate) fn base_url(host: &str, option: &str) -> Result<url::Url> {
    let host = host.trim();
    let with_scheme = if host.contains("://") {
        host.to_string()
    } else {
        format!("https://{host}")
    };
    let mut base = url::Url::parse(&with_scheme)
        .map_err(|e| Error::config(PLUGIN, format!("`{option}` does not parse: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::config(
            PLUGIN,
            format!("`{option}` must be an http:// or https:// URL (or a bare host name)"),
        ));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(Error::config(
            PLUGIN,
            format!("`{option}` must not hold credentials; give `api_key`"),
        ));
    }
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    Ok(base)
}

/// The reqwest client every endpoint of one source shares.
pub(crate) fn http(cfg: &PineconeSourceConfig) -> Result<reqwest::Client> {
    let mut key = HeaderValue::from_str(cfg.api_key.as_deref().unwrap_or_default().trim())
        .map_err(|_| {
            Error::config(
                PLUGIN,
                "`api_key` contains characters that cannot be sent in an HTTP header",
            )
        })?;
    key.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("api-key"), key);
    headers.insert(
        HeaderName::from_static("x-pinecone-api-version"),
        HeaderValue::from_static(API_VERSION),
    );
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(cfg.request_timeout_secs.max(1)));
    builder = vmig_core::http::trust(builder, PLUGIN, cfg.ca_cert.as_deref(), cfg.insecure)?;
    builder
        .build()
        .map_err(|e| Error::config(PLUGIN, format!("HTTP client: {e}")))
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = v.parse::<f64>() {
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))?
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A failed answer: the status and up to 400 characters of its body.
#[derive(Debug)]
pub(crate) struct HttpFailure {
    pub(crate) status: u16,
    pub(crate) text: String,
}

impl Client {
    /// A client of the endpoint at `base` (no I/O).
    pub(crate) fn new(
        http: reqwest::Client,
        base: url::Url,
        retry: RetryConfig,
        what: String,
    ) -> Client {
        Client {
            http,
            base,
            retry,
            what,
        }
    }

    /// The endpoint's URL for messages.
    pub(crate) fn display_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// Sends a request (retrying transient failures, after `pacer`'s slot each time) and
    /// parses the JSON answer. `doing` says what was being done, for the error; `on_status`
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
        on_status: &(dyn Fn(&HttpFailure) -> Option<Error> + Sync),
    ) -> Result<bytes_json::Body> {
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::config(PLUGIN, format!("cannot build the URL of `{path}`: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let payload = body.map(Value::to_string);
        let server = self.display_url();
        let what = &self.what;
        let attempt = || async {
            if let Some(p) = pacer {
                p.wait().await;
            }
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(p) = &payload {
                req = req.header(CONTENT_TYPE, "application/json").body(p.clone());
            }
            let resp = req.send().await.map_err(|e| Error::Transient {
                message: format!(
                    "{doing}: cannot reach {what} at {server} ({}); is the host right, and reachable?",
                    vmig_core::http::transport_message(&e)
                ),
                source: None,
            })?;
            let status = resp.status();
            let wait = retry_after(resp.headers());
            let bytes = resp.bytes().await.map_err(|e| Error::Transient {
                message: format!(
                    "{doing}: reading the answer of {server}: {}",
                    vmig_core::http::transport_message(&e)
                ),
                source: None,
            })?;
            if status.is_success() {
                return Ok(bytes_json::Body(bytes.to_vec()));
            }
            let failure = HttpFailure {
                status: status.as_u16(),
                text: String::from_utf8_lossy(&bytes).chars().take(400).collect(),
            };
            let msg = format!("{doing}: {server} answered HTTP {status}: {}", failure.text);
            if let Some(e) = on_status(&failure) {
                return Err(e);
            }
            Err(match failure.status {
                401 | 403 => Error::config(
                    PLUGIN,
                    format!("{msg} (check `api_key`: it must be a key of the index's project)"),
                ),
                429 | 500..=599 => {
                    if let Some(w) = wait {
                        tracing::info!(
                            operation = doing,
                            wait = ?w,
                            "the server asked to wait (Retry-After)"
                        );
                        tokio::time::sleep(w).await;
                    }
                    Error::Transient {
                        message: msg,
                        source: None,
                    }
                }
                _ => Error::data(format!("{what} at {server}"), msg),
            })
        };
        self.retry.run(&format!("Pinecone {doing}"), attempt).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn hosts_get_https_and_refuse_credentials() {
        let b = base_url("idx-1.svc.pinecone.io", "index_host").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.as_str(), "https://idx-1.svc.pinecone.io/");
        let e = base_url("http://u:p@h", "index_host")
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("must not hold credentials"), "{e}");
    }
}
