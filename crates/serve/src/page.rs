//! The status page (`GET /`): one self-contained HTML document (styles and script inline, no
//! external assets, no build step) compiled into the binary. It holds no job data: the page
//! asks for the API token once, keeps it in the browser's session storage, and reads everything
//! through the API it calls with that token (or without one when the server has no tokens).
//!
//! Its `Content-Security-Policy` lets it load nothing from elsewhere and talk to this server
//! alone, so even a job id or error message that tried to be markup could not send the token
//! anywhere (the page also inserts every value as text, never as HTML).

use axum::http::header;
use axum::response::IntoResponse;

/// The page, as served.
const INDEX: &str = include_str!("../assets/index.html");

/// What the page may load and where it may connect: inline style and script, this server.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the status page.
pub(crate) async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        INDEX,
    )
}
