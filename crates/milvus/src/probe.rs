//! What answers at a `uri` that fails the gRPC handshake.
//!
//! A Milvus `uri` pointing at the wrong port (9091, Milvus's HTTP port for metrics and health
//! checks; a REST gateway; any web server) or at a TLS port with `http://` fails deep inside
//! HTTP/2 with `h2 protocol error: frame with invalid size`, because the first bytes of the
//! answer (`HTTP/1.1 …` or a TLS record) are read as an HTTP/2 frame header. When a connection
//! check fails that way (or with a transport error), [`not_grpc`] opens one plain TCP connection,
//! sends the HTTP/2 connection preface and an empty SETTINGS frame — what any gRPC client sends
//! first — and looks at the first bytes of the answer: an HTTP/2 server (Milvus, also when it
//! serves its REST API on the same port) answers with a SETTINGS frame and is left alone; an
//! HTTP/1.x server answers with a status line, a TLS server with a TLS record, and the error
//! says so and what to change.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codegen::http::Uri;
use vmig_core::Error;

/// How long the probe may take in all (connect, write, first bytes).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `detail` (an error chain's text) is an HTTP/2 protocol failure, the symptom of a
/// server that does not speak HTTP/2 (gRPC) on this port.
pub(crate) fn is_protocol_error(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("h2 protocol error")
        || d.contains("http2 error")
        || d.contains("frame with invalid size")
        || d.contains("invalid http version")
}

/// What the probe found at the address.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// An HTTP/1.x server; its status line.
    Http(String),
    /// A TLS server (the answer is a TLS record).
    Tls,
    /// Something that is neither an HTTP/2 frame nor the above, e.g. an HTTP/0.9-style error page
    /// (Python's `http.server` answers the preface so); its first printable characters.
    Other(String),
}

/// The HTTP/2 client connection preface followed by an empty SETTINGS frame (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Sends [`H2_PREFACE`] to the host and port of `uri` and classifies the first bytes of the
/// answer; `None` when nothing conclusive came back (or an HTTP/2 server answered).
async fn probe(uri: &str) -> Option<Found> {
    let parsed: Uri = uri.parse().ok()?;
    if parsed.scheme_str() != Some("http") {
        return None;
    }
    let host = parsed.host()?;
    let port = parsed.port_u16().unwrap_or(80);
    let exchange = async {
        let mut sock = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .ok()?;
        sock.write_all(H2_PREFACE).await.ok()?;
        let mut buf = vec![0u8; 512];
        let mut len = 0;
        // Read until a status line or a 9-byte frame header is complete, the buffer is full or
        // the server closes.
        while len < buf.len() && !complete(&buf[..len]) {
            let n = sock.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        buf.truncate(len);
        Some(buf)
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()?;
    classify(&answer)
}

/// Whether `answer` is enough to classify: a whole status line, or 9 bytes of anything else.
fn complete(answer: &[u8]) -> bool {
    if answer.starts_with(b"HTTP/") {
        answer.contains(&b'\n')
    } else {
        answer.len() >= 9
    }
}

fn classify(answer: &[u8]) -> Option<Found> {
    if answer.starts_with(b"HTTP/") {
        let line = answer.split(|&b| b == b'\r' || b == b'\n').next()?;
        return Some(Found::Http(String::from_utf8_lossy(line).into_owned()));
    }
    // A TLS record: content type 21 (alert) or 22 (handshake), version 3.x.
    if matches!(answer, [21 | 22, 3, ..]) {
        return Some(Found::Tls);
    }
    // An HTTP/2 server answers with a frame on stream 0: SETTINGS (4) or GOAWAY (7).
    if let [_, _, _, 4 | 7, _, s0, s1, s2, s3, ..] = answer {
        if [s0, s1, s2, s3].iter().all(|b| **b & 0x7f == 0) {
            return None;
        }
    }
    // Text that is no frame: an HTTP/0.9-style page or another protocol's greeting.
    let text: String = String::from_utf8_lossy(answer)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let printable = answer
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if answer.len() >= 9 && printable * 10 >= answer.len() * 9 {
        return Some(Found::Other(text.chars().take(60).collect()));
    }
    None
}

/// When the server at `uri` turns out not to speak gRPC over plain HTTP/2, the error that says
/// what it is and what to change; `None` when the probe finds nothing conclusive (the caller
/// keeps its own error).
pub(crate) async fn not_grpc(uri: &str) -> Option<Error> {
    let message = match probe(uri).await? {
        Found::Http(status) => format!(
            "the server at {uri} does not speak gRPC: it answered the HTTP/2 connection preface \
             with `{status}`, so it is an HTTP/1 server, not Milvus's gRPC endpoint. Check the \
             port in `uri`: Milvus serves gRPC on port 19530 by default, while 9091 is its HTTP \
             port (metrics and health checks) and a RESTful gateway or web proxy cannot take \
             gRPC calls"
        ),
        Found::Other(start) => format!(
            "the server at {uri} does not speak gRPC: it answered the HTTP/2 connection preface \
             with text (`{start}…`), not HTTP/2, so it is not Milvus's gRPC endpoint. Check the \
             port in `uri`: Milvus serves gRPC on port 19530 by default"
        ),
        Found::Tls => format!(
            "the server at {uri} expects TLS: it answered a plain-text HTTP/2 connection preface \
             with a TLS record. Use an `https://` uri (and `ca_cert` when its certificate is not \
             signed by a public CA)"
        ),
    };
    Some(Error::config("milvus", message))
}

/// `err`, a failed connection check of `uri`, or — when it is an HTTP/2 protocol failure or a
/// retryable failure (transport error, no answer) and [`not_grpc`] finds an HTTP/1 or TLS
/// server there — the error saying so. Refused credentials and other non-retryable answers are
/// returned as they are without a probe; so is anything when an HTTP/2 server answers the probe.
pub(crate) async fn explain(err: Error, uri: &str) -> Error {
    if !err.is_retryable() && !is_protocol_error(&format!("{err} {err:?}")) {
        return err;
    }
    not_grpc(uri).await.unwrap_or(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            Some(Found::Http("HTTP/1.1 404 Not Found".into()))
        );
        assert_eq!(classify(&[21, 3, 1, 0, 2, 2, 80]), Some(Found::Tls));
        // An HTTP/2 server's SETTINGS frame: gRPC is spoken there.
        assert_eq!(classify(b"\0\0\x12\x04\0\0\0\0\0"), None);
        // Python's http.server answers the preface with a bare HTML error page.
        assert_eq!(
            classify(b"<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>"),
            Some(Found::Other(
                "<!DOCTYPE HTML> <html lang=\"en\"> <head>".into()
            ))
        );
        assert!(complete(b"\0\0\x12\x04\0\0\0\0\0") && !complete(b"HTTP/1.1 404"));
        assert!(is_protocol_error(
            "h2 protocol error: http2 error: connection error detected: frame with invalid size"
        ));
        assert!(!is_protocol_error("connection refused"));
    }

    /// Milvus 2.3+ also serves its REST API on the gRPC port: a `GET /` there gets
    /// `HTTP/1.1 401`, so only the HTTP/2 preface tells it apart from a web server. Needs the
    /// test Milvus (`VMIG_MILVUS_URI`); skipped without it.
    #[tokio::test]
    async fn a_real_milvus_port_is_not_called_http() {
        let Ok(uri) = std::env::var("VMIG_MILVUS_URI") else {
            eprintln!("SKIPPED: VMIG_MILVUS_URI is not set");
            return;
        };
        assert_eq!(probe(&uri).await, None, "{uri}");
    }
}
