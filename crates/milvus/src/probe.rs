//! What answers at a `uri` that fails the gRPC handshake.
//!
//! A Milvus `uri` pointing at the wrong port (9091, Milvus's HTTP port for metrics and health
//! checks; a REST gateway; any web server) or at a TLS port with `http://` fails deep inside
//! HTTP/2 with `h2 protocol error: frame with invalid size`, because the first bytes of the
//! answer (`HTTP/1.1 …` or a TLS record) are read as an HTTP/2 frame header. When a connection
//! check fails that way (or gets no answer), [`not_grpc`] opens one plain TCP connection, sends a
//! minimal HTTP/1.1 request and looks at the first bytes of the answer, so the error can say
//! what is really there and what to change.

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
}

/// Sends `GET / HTTP/1.1` to the host and port of `uri` and classifies the first bytes of the
/// answer; `None` when nothing conclusive came back.
async fn probe(uri: &str) -> Option<Found> {
    let parsed: Uri = uri.parse().ok()?;
    if parsed.scheme_str() != Some("http") {
        return None;
    }
    let host = parsed.host()?;
    let port = parsed.port_u16().unwrap_or(80);
    let authority = parsed.authority()?.as_str().to_string();
    let exchange = async {
        let mut sock = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .ok()?;
        let request = format!("GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        sock.write_all(request.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 512];
        let mut len = 0;
        // Read until the status line is complete, the buffer is full or the server closes.
        while len < buf.len() && !buf[..len].contains(&b'\n') {
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

fn classify(answer: &[u8]) -> Option<Found> {
    if answer.starts_with(b"HTTP/") {
        let line = answer.split(|&b| b == b'\r' || b == b'\n').next()?;
        return Some(Found::Http(String::from_utf8_lossy(line).into_owned()));
    }
    // A TLS record: content type 21 (alert) or 22 (handshake), version 3.x.
    if matches!(answer, [21 | 22, 3, ..]) {
        return Some(Found::Tls);
    }
    None
}

/// When the server at `uri` turns out not to speak gRPC over plain HTTP/2, the error that says
/// what it is and what to change; `None` when the probe finds nothing conclusive (the caller
/// keeps its own error).
pub(crate) async fn not_grpc(uri: &str) -> Option<Error> {
    let message = match probe(uri).await? {
        Found::Http(status) => format!(
            "the server at {uri} does not speak gRPC: it answered an HTTP/1.1 request with \
             `{status}`, so it is an HTTP server, not Milvus's gRPC endpoint. Check the port in \
             `uri`: Milvus serves gRPC on port 19530 by default, while 9091 is its HTTP port \
             (metrics and health checks) and a RESTful gateway or web proxy cannot take gRPC \
             calls"
        ),
        Found::Tls => format!(
            "the server at {uri} expects TLS: it answered a plain-text request with a TLS \
             record. Use an `https://` uri (and `ca_cert` when its certificate is not signed \
             by a public CA)"
        ),
    };
    Some(Error::config("milvus", message))
}

/// `err`, a failed connection check of `uri`, or — when it looks like an HTTP/2 protocol
/// failure or a transport failure (no answer, connection closed) and [`not_grpc`] finds an
/// HTTP/1.1 or TLS server there — the error saying so. Refused credentials and other answers
/// from a real Milvus are returned as they are, without a probe.
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
        assert_eq!(classify(b"\0\0\x12\x04"), None);
        assert!(is_protocol_error(
            "h2 protocol error: http2 error: connection error detected: frame with invalid size"
        ));
        assert!(!is_protocol_error("connection refused"));
    }
}
