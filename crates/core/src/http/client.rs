//! One HTTP client of JSON sources ([`Endpoint`]): the base URL and its checks, credentials as
//! sensitive default headers, timeouts and TLS trust, and the send / classify / retry loop, with
//! the same messages for every product. A source supplies what is its own: a [`Product`] (its
//! name, the options to name in messages, how its error bodies read, statuses it treats
//! specially) and, per request, an optional status hook and [`Pacer`].
//!
//! The classification of an answer, the same for every product unless a hook says otherwise:
//!
//! | what happened | error | retried | exit code |
//! |---|---|---|---|
//! | the server's certificate is refused | [`Error::Config`] naming `ca_cert` / `insecure` | no | 2 |
//! | no connection, timeout, broken answer | [`Error::Transient`] "cannot reach …" | yes | 1 |
//! | 401, 403 | [`Error::External`] with the product's credential hint | no | 1 |
//! | 429, 502–504 (and every 5xx with [`Product::retry_server_errors`]) | [`Error::Transient`], after a `Retry-After` wait (≤ 60 s) | yes | 1 |
//! | 404 | [`Error::Config`] with the product's not-found hint | no | 2 |
//! | any other status | [`Error::Data`] | no | 1 |

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Error, Result, RetryConfig};

/// The longest `Retry-After` honoured (a longer one is cut to this; the retry policy's own
/// back-off follows it).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What a source tells the shared client about its product, for every request's messages.
#[derive(Debug, Clone)]
pub struct Product {
    /// The plugin name (`chroma`), in configuration errors.
    pub plugin: &'static str,
    /// The product's name (`Chroma`), naming retried operations in logs.
    pub name: &'static str,
    /// What to check when the server refuses the credentials (401/403), e.g.
    /// "check `api_key`".
    pub auth_hint: &'static str,
    /// What to check when the server answers 404, e.g. "check `collection` and `url`".
    pub not_found_hint: &'static str,
    /// The readable text of an error answer's body (at most 400 characters); default
    /// [`raw_text`].
    pub error_text: fn(&[u8]) -> String,
    /// Statuses the product treats specially everywhere (after a request's own hook); `None`
    /// for the general rules only.
    pub on_status: Option<fn(&Failure) -> Option<Error>>,
    /// Whether every 5xx is transient (some services answer 500 for an overloaded moment), not
    /// only 502–504.
    pub retry_server_errors: bool,
}

impl Product {
    /// A product with the general rules and no hints beyond the two given.
    pub fn new(
        plugin: &'static str,
        name: &'static str,
        auth_hint: &'static str,
        not_found_hint: &'static str,
    ) -> Product {
        Product {
            plugin,
            name,
            auth_hint,
            not_found_hint,
            error_text: raw_text,
            on_status: None,
            retry_server_errors: false,
        }
    }
}

/// The first 400 characters of a body, as text.
pub fn raw_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(400).collect()
}

/// A non-success answer, for status hooks.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status.
    pub status: u16,
    /// The readable text of the body ([`Product::error_text`]).
    pub text: String,
    /// The whole message: "{doing}: {server} answered HTTP {status}: {text}".
    pub message: String,
}

/// The connection options every HTTP source has (its own TOML keys map onto them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Connection<'a> {
    /// Timeout of one request, in seconds (at least 1).
    pub request_timeout_secs: u64,
    /// A PEM file of CAs to trust besides the system's ([`super::trust`]).
    pub ca_cert: Option<&'a str>,
    /// No certificate verification ([`super::trust`]).
    pub insecure: bool,
}

/// The reqwest client of a source: `headers` sent with every request (credentials among them
/// must be [`sensitive`]), a 10 s connect timeout, the request timeout and the TLS trust.
///
/// # Errors
/// [`Error::Config`] for an unreadable `ca_cert` or a client reqwest cannot build.
pub fn http_client(
    plugin: &str,
    headers: HeaderMap,
    conn: &Connection<'_>,
) -> Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(conn.request_timeout_secs.max(1)));
    super::trust(builder, plugin, conn.ca_cert, conn.insecure)?
        .build()
        .map_err(|e| Error::config(plugin, format!("HTTP client: {e}")))
}

/// A header value marked sensitive (left out of reqwest's `Debug`). `option` names where it
/// came from for the error ("`api_key`", "a credential"); the value is never in the error.
///
/// # Errors
/// [`Error::Config`] when the value holds characters a header cannot carry.
pub fn sensitive(plugin: &str, option: &str, value: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Error::config(
            plugin,
            format!("{option} contains characters that cannot be sent in an HTTP header"),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// An `Authorization: Basic …` value (sensitive) for `user` and `password`.
///
/// # Errors
/// As [`sensitive`].
pub fn basic_auth(plugin: &str, user: &str, password: &str) -> Result<HeaderValue> {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    sensitive(plugin, "a credential", &format!("Basic {b}"))
}

/// What a base URL may hold besides scheme, host and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRules {
    /// `http://` or `https://` required; `user:password@` becomes basic authentication.
    BasicAuth,
    /// A bare host gets `https://`; credentials are refused (the product authenticates by
    /// key).
    HostOrUrlWithoutCredentials,
}

/// A parsed base URL (ending in `/`, no credentials) and the credentials it held.
#[derive(Clone)]
pub struct BaseUrl {
    /// The URL requests are joined to.
    pub url: url::Url,
    /// `(user, password)` from the URL, for basic authentication.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseUrl")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Parses the base URL given as option `option`. `hint` is added to the message of a wrong
/// scheme (e.g. " (vmig talks to Qdrant's REST API, port 6333 by default)").
///
/// # Errors
/// [`Error::Config`] naming `option` for a URL that does not parse, another scheme, or (with
/// [`UrlRules::HostOrUrlWithoutCredentials`]) credentials.
pub fn base_url(
    plugin: &str,
    option: &str,
    raw: &str,
    rules: UrlRules,
    hint: &str,
) -> Result<BaseUrl> {
    let raw = raw.trim();
    let with_scheme = match rules {
        UrlRules::HostOrUrlWithoutCredentials if !raw.contains("://") => format!("https://{raw}"),
        _ => raw.to_string(),
    };
    let mut url = url::Url::parse(&with_scheme)
        .map_err(|e| Error::config(plugin, format!("`{option}` does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        let also = match rules {
            UrlRules::BasicAuth => "",
            UrlRules::HostOrUrlWithoutCredentials => " (or be a bare host name)",
        };
        return Err(Error::config(
            plugin,
            format!("`{option}` must start with http:// or https://{also}{hint}"),
        ));
    }
    let mut credentials = None;
    if !url.username().is_empty() || url.password().is_some() {
        if rules == UrlRules::HostOrUrlWithoutCredentials {
            return Err(Error::config(
                plugin,
                format!("`{option}` must not hold credentials; give `api_key`"),
            ));
        }
        credentials = Some((
            url.username().to_string(),
            url.password().unwrap_or("").to_string(),
        ));
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(BaseUrl { url, credentials })
}

/// Spaces requests at least `1/rate` seconds apart, over every task sharing it.
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `rate` requests per second; 0 = unpaced.
    pub fn new(rate: u32) -> Pacer {
        Pacer {
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(rate))),
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's slot.
    pub async fn wait(&self) {
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

/// A status hook of one request: a specific error for a failure, or `None` for the general
/// rules.
pub type StatusHook<'a> = &'a (dyn Fn(&Failure) -> Option<Error> + Sync);

/// One request to an [`Endpoint`].
#[derive(Clone)]
pub struct Request<'a> {
    method: Method,
    path: &'a str,
    doing: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a Value>,
    pacer: Option<&'a Pacer>,
    on_status: Option<StatusHook<'a>>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("doing", &self.doing)
            .finish_non_exhaustive()
    }
}

impl<'a> Request<'a> {
    /// `method` on `path` (relative to the base URL); `doing` says what is being done, for
    /// errors ("reading collection `docs`").
    pub fn new(method: Method, path: &'a str, doing: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            doing,
            query: &[],
            body: None,
            pacer: None,
            on_status: None,
        }
    }

    /// With these query parameters.
    #[must_use]
    pub fn query(mut self, query: &'a [(&'a str, &'a str)]) -> Self {
        self.query = query;
        self
    }

    /// With this JSON body.
    #[must_use]
    pub fn body(mut self, body: Option<&'a Value>) -> Self {
        self.body = body;
        self
    }

    /// Each attempt waits for a slot of `pacer` first.
    #[must_use]
    pub fn pacer(mut self, pacer: Option<&'a Pacer>) -> Self {
        self.pacer = pacer;
        self
    }

    /// `hook` may turn a failure into a specific error before the product's and the general
    /// rules.
    #[must_use]
    pub fn on_status(mut self, hook: StatusHook<'a>) -> Self {
        self.on_status = Some(hook);
        self
    }
}

/// One server (or endpoint of a service) a source talks to. Credentials live only in the
/// client's sensitive default headers; `Debug` shows the URL alone.
#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    base: url::Url,
    retry: RetryConfig,
    product: Arc<Product>,
    target: String,
    option: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.display_url())
            .finish_non_exhaustive()
    }
}

/// The wait a `Retry-After` header asks for (delay-seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

impl Endpoint {
    /// The endpoint at `base` through `http` ([`http_client`]). `target` names it in messages
    /// ("the Chroma server", "index `docs`"); `option` is the configuration key of its URL, for
    /// the "is `url` right?" of an unreachable server.
    pub fn new(
        http: reqwest::Client,
        base: url::Url,
        retry: RetryConfig,
        product: Arc<Product>,
        target: impl Into<String>,
        option: impl Into<String>,
    ) -> Endpoint {
        Endpoint {
            http,
            base,
            retry,
            product,
            target: target.into(),
            option: option.into(),
        }
    }

    /// The server URL for messages (never with credentials).
    pub fn display_url(&self) -> String {
        crate::redact::url(self.base.as_str().trim_end_matches('/'))
    }

    /// Sends `req` (retrying transient failures under the retry policy) and returns the body
    /// of the success.
    ///
    /// # Errors
    /// As the module documentation's table says.
    pub async fn send(&self, req: Request<'_>) -> Result<Vec<u8>> {
        let path = req.path;
        let mut url = self.base.join(path.trim_start_matches('/')).map_err(|e| {
            Error::config(
                self.product.plugin,
                format!("cannot build the URL of `{path}`: {e}"),
            )
        })?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query);
        }
        let payload = req.body.map(Value::to_string);
        let attempt = || async {
            if let Some(p) = req.pacer {
                p.wait().await;
            }
            let mut r = self.http.request(req.method.clone(), url.clone());
            if let Some(p) = &payload {
                r = r.header(CONTENT_TYPE, "application/json").body(p.clone());
            }
            let resp = r
                .send()
                .await
                .map_err(|e| self.unreachable(req.doing, &e))?;
            let status = resp.status();
            let wait = retry_after(resp.headers());
            let bytes = resp.bytes().await.map_err(|e| Error::Transient {
                message: format!(
                    "{}: reading the answer of {}: {}",
                    req.doing,
                    self.display_url(),
                    super::transport_message(&e)
                ),
                source: None,
            })?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let err = self.classify(&req, status, &bytes);
            if err.is_retryable() {
                if let Some(w) = wait {
                    tracing::info!(
                        operation = req.doing,
                        wait = ?w,
                        "the server asked to wait (Retry-After)"
                    );
                    tokio::time::sleep(w).await;
                }
            }
            Err(err)
        };
        self.retry
            .run(&format!("{} {}", self.product.name, req.doing), attempt)
            .await
    }

    /// [`Endpoint::send`] of a request without query or pacer.
    ///
    /// # Errors
    /// As [`Endpoint::send`].
    pub async fn bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<Vec<u8>> {
        self.send(Request::new(method, path, doing).body(body))
            .await
    }

    /// [`Endpoint::bytes`] parsed as JSON.
    ///
    /// # Errors
    /// As [`Endpoint::send`], and [`Error::Data`] for an answer that is not JSON.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<Value> {
        let bytes = self.bytes(method, path, body, doing).await?;
        self.parse(&bytes, doing)
    }

    /// `bytes` parsed as JSON; `doing` is the error's location.
    ///
    /// # Errors
    /// [`Error::Data`] for an answer that is not JSON.
    pub fn parse(&self, bytes: &[u8], doing: &str) -> Result<Value> {
        serde_json::from_slice::<Value>(bytes).map_err(|e| {
            Error::data(
                doing.to_string(),
                format!(
                    "{} answered with something that is not JSON: {e}",
                    self.display_url()
                ),
            )
        })
    }

    /// The error of a request that got no answer.
    fn unreachable(&self, doing: &str, e: &reqwest::Error) -> Error {
        let (target, server) = (&self.target, self.display_url());
        match super::refused_certificate(e) {
            // Not transient: no retry trusts the certificate.
            Some(why) => Error::config(
                self.product.plugin,
                format!(
                    "{doing}: the TLS certificate of {target} at {server} is refused ({why}); give the PEM file of its CA as `ca_cert` (or, for a test server only, `insecure = true`)"
                ),
            ),
            None => Error::Transient {
                message: format!(
                    "{doing}: cannot reach {target} at {server} ({}); is it running, and is `{}` right?",
                    super::transport_message(e),
                    self.option
                ),
                source: None,
            },
        }
    }

    /// The error of a non-success answer.
    fn classify(&self, req: &Request<'_>, status: reqwest::StatusCode, body: &[u8]) -> Error {
        let p = &self.product;
        let text = (p.error_text)(body);
        let server = self.display_url();
        let failure = Failure {
            status: status.as_u16(),
            message: format!("{}: {server} answered HTTP {status}: {text}", req.doing),
            text,
        };
        if let Some(e) = req.on_status.and_then(|h| h(&failure)) {
            return e;
        }
        if let Some(e) = p.on_status.and_then(|h| h(&failure)) {
            return e;
        }
        let msg = failure.message;
        match failure.status {
            // The server's verdict on the credentials: not retried, and (unlike a job file
            // vmig itself finds wrong) exit code 1, as for an unreachable server.
            401 | 403 => Error::External(Box::new(std::io::Error::other(format!(
                "{msg} ({})",
                p.auth_hint
            )))),
            429 | 502..=504 => Error::Transient {
                message: msg,
                source: None,
            },
            500..=599 if p.retry_server_errors => Error::Transient {
                message: msg,
                source: None,
            },
            404 => Error::config(p.plugin, format!("{msg} ({})", p.not_found_hint)),
            _ => Error::data(
                req.doing.to_string(),
                format!("{server} answered HTTP {status}: {}", failure.text),
            ),
        }
    }
}

/// Adds `Authorization: Basic` for credentials taken from the URL, unless `headers` has an
/// `Authorization` already.
///
/// # Errors
/// As [`basic_auth`].
pub fn add_url_credentials(plugin: &str, headers: &mut HeaderMap, base: &BaseUrl) -> Result<()> {
    if let Some((u, p)) = &base.credentials {
        if !headers.contains_key(AUTHORIZATION) {
            headers.insert(AUTHORIZATION, basic_auth(plugin, u, p)?);
        }
    }
    Ok(())
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
    fn base_urls_get_a_slash_and_their_credentials_out() {
        let b = base_url(
            "x",
            "url",
            "http://u:p%40ss@h:8000/api",
            UrlRules::BasicAuth,
            "",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.url.as_str(), "http://h:8000/api/");
        assert_eq!(b.credentials, Some(("u".into(), "p%40ss".into())));
        assert!(!format!("{b:?}").contains("p%40ss"));
        let e = base_url("x", "url", "ftp://h", UrlRules::BasicAuth, " (REST)")
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`url` must start with http:// or https:// (REST)"),
            "{e}"
        );
        let h = UrlRules::HostOrUrlWithoutCredentials;
        let b = base_url("x", "index_host", "idx-1.svc.pinecone.io", h, "")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.url.as_str(), "https://idx-1.svc.pinecone.io/");
        let e = base_url("x", "index_host", "http://u:p@h", h, "")
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("must not hold credentials"), "{e}");
    }

    #[test]
    fn header_values_are_sensitive_and_never_echoed() {
        let v = sensitive("x", "`api_key`", "k3y").unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_sensitive());
        let e = sensitive("x", "`api_key`", "bad\nk3y")
            .map(|_| ())
            .unwrap_err();
        assert!(!e.to_string().contains("k3y"), "{e}");
        assert!(
            e.to_string().contains("`api_key` contains characters"),
            "{e}"
        );
        let b = basic_auth("x", "u", "p").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.to_str().unwrap_or_default(), "Basic dTpw");
    }
}
