//! Milvus failures → [`vmig_core::Error`].
//!
//! | what happened                                             | vmig error                                   |
//! |-----------------------------------------------------------|----------------------------------------------|
//! | rate limit, not ready, time-tick delay, `retriable` status, gRPC `Unavailable`/`DeadlineExceeded`/`Cancelled` | [`Error::Transient`] (retry with back-off) |
//! | a part of the server unreachable, missing or replaced (`failed to connect`, `empty grpc client`, `node not found`, `node not match`, `node offline`, `session not found`, `getSegmentID failed`: a Milvus stopping, or restarted until its coordinators drop the old node's session and reassign its channels) | [`Error::Transient`] |
//! | request larger than the server/client limit               | [`Error::External`] of kind [`MilvusErrorKind::TooLarge`] (split and retry) |
//! | rejected credentials / permission denied                  | [`Error::External`] of kind [`MilvusErrorKind::Auth`] |
//! | gRPC `Unimplemented` (a call the server does not serve, e.g. Milvus Lite's `ShowPartitions`) | [`Error::External`] of kind [`MilvusErrorKind::Unimplemented`] |
//! | anything else the server refuses                          | [`Error::External`] of kind [`MilvusErrorKind::Server`] with the server's reason |
//!
//! Messages never contain credentials (the server's reasons do not echo them either).

use std::fmt;

use milvus::proto::common::{ErrorCode, Status};
use vmig_core::{Error, Result};

/// What kind of failure a [`MilvusError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MilvusErrorKind {
    /// The request was larger than a gRPC message limit; split it.
    TooLarge,
    /// Credentials rejected or permission denied.
    Auth,
    /// The collection (or database) does not exist.
    NotFound,
    /// The server does not serve this call (gRPC `UNIMPLEMENTED`: Milvus Lite, or a release
    /// without it).
    Unimplemented,
    /// Any other refusal; the reason says why.
    Server,
}

/// A failure reported by Milvus (carried in [`Error::External`] or as the source of an
/// [`Error::Transient`]).
#[derive(Debug, Clone)]
pub struct MilvusError {
    /// The kind.
    pub kind: MilvusErrorKind,
    /// The RPC or operation.
    pub operation: String,
    /// The server's reason (or the gRPC message).
    pub reason: String,
}

impl MilvusError {
    /// A new error.
    pub fn new(
        kind: MilvusErrorKind,
        operation: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        MilvusError {
            kind,
            operation: operation.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for MilvusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Milvus {} failed: {}", self.operation, self.reason)
    }
}

impl std::error::Error for MilvusError {}

/// The [`MilvusErrorKind`] of an error built by this crate (below any context), if any.
pub fn kind(e: &Error) -> Option<MilvusErrorKind> {
    match e.root() {
        Error::External(b) => b.downcast_ref::<MilvusError>().map(|m| m.kind),
        Error::Transient {
            source: Some(b), ..
        } => b.downcast_ref::<MilvusError>().map(|m| m.kind),
        _ => None,
    }
}

/// Whether `e` says a request was too large (split it and retry).
pub fn is_too_large(e: &Error) -> bool {
    kind(e) == Some(MilvusErrorKind::TooLarge)
}

fn too_large_text(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("larger than max")
        || r.contains("message length too large")
        || r.contains("too large")
        || r.contains("exceeds the maximum")
}

fn transient(operation: &str, reason: String) -> Error {
    Error::Transient {
        message: format!("Milvus {operation}: {reason}"),
        source: Some(Box::new(MilvusError::new(
            MilvusErrorKind::Server,
            operation,
            reason,
        ))),
    }
}

fn external(kind: MilvusErrorKind, operation: &str, reason: String) -> Error {
    Error::External(Box::new(MilvusError::new(kind, operation, reason)))
}

/// Classifies a gRPC-level failure.
pub fn classify_rpc(operation: &str, s: &tonic::Status) -> Error {
    use tonic::Code;
    let reason = if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_string()
    };
    match s.code() {
        _ if too_large_text(&reason) => external(MilvusErrorKind::TooLarge, operation, reason),
        Code::Unimplemented => external(
            MilvusErrorKind::Unimplemented,
            operation,
            format!("the server does not serve {operation} ({reason}: Milvus Lite and older releases serve only part of the API)"),
        ),
        Code::Unauthenticated | Code::PermissionDenied => {
            external(MilvusErrorKind::Auth, operation, reason)
        }
        Code::Unavailable => transient(
            operation,
            format!("cannot reach the server: {reason} (Unavailable)"),
        ),
        Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            transient(operation, format!("{reason} ({:?})", s.code()))
        }
        Code::ResourceExhausted => transient(operation, reason),
        Code::Unknown if reason.contains("transport") || reason.contains("connection") => {
            transient(operation, format!("cannot reach the server: {reason}"))
        }
        _ => external(MilvusErrorKind::Server, operation, reason),
    }
}

/// What a refusal says about a part of the server that is unreachable, missing or replaced —
/// the answers of a Milvus that is stopping or was just restarted, which the same request gets
/// past once the server is whole again — as the start of the error message; `None` for any
/// other refusal. Measured on 2.3.5 (code 65535, `retriable = false`): while it stops, the
/// proxy answers `empty grpc client: failed to connect 127.0.0.1:…, reason: connection error:
/// … connection refused`; after a restart (or a crash) `Flush` answers `session not
/// found->datanode-1: node not found[node=1]` or `node not
/// match[expectedNodeID=1][actualNodeID=2]` until the coordinators drop the old data node's
/// session and hand its channels to the new one (about 30 s, the session TTL); meanwhile an
/// `Insert` may get `getSegmentID failed: SegmentIDAllocator failRemainRequest unexpected
/// error` (the data coordinator cannot assign a segment on a channel no node watches yet —
/// seen in the restart test on a loaded 2-core machine).
fn server_changing(lower_reason: &str) -> Option<&'static str> {
    let has = |texts: &[&str]| texts.iter().any(|t| lower_reason.contains(t));
    if has(&[
        "empty grpc client",
        "failed to connect",
        "connection refused",
    ]) {
        Some("cannot reach a part of the server (is it stopping?)")
    } else if has(&[
        "node not found",
        "node not match",
        "node offline",
        "session not found",
        "getsegmentid failed",
    ]) {
        Some("a node of the server is missing or was replaced (after a restart, until its old session expires)")
    } else {
        None
    }
}

/// Classifies a Milvus `Status` (Ok for success).
///
/// # Errors
/// The classified error (see the module table).
// `error_code` is deprecated in newer protos but is what 2.3 servers fill in.
#[allow(deprecated)]
pub fn classify_status(operation: &str, s: &Status) -> Result<()> {
    if s.error_code == ErrorCode::Success as i32 && s.code == 0 {
        return Ok(());
    }
    let reason = if s.reason.is_empty() {
        format!("error code {} / {}", s.error_code, s.code)
    } else {
        s.reason.clone()
    };
    let lower = reason.to_ascii_lowercase();
    let ec = ErrorCode::try_from(s.error_code).ok();
    // merr codes (2.3+): 1 not ready, 2 unavailable, 3 memory limit, 4 request limit, 8 rate limit.
    let transient_code = matches!(s.code, 1 | 2 | 3 | 4 | 8);
    if too_large_text(&reason) {
        return Err(external(MilvusErrorKind::TooLarge, operation, reason));
    }
    if let Some(what) = server_changing(&lower) {
        return Err(transient(operation, format!("{what}: {reason}")));
    }
    if s.retriable
        || transient_code
        || lower.contains("rate limit")
        || matches!(
            ec,
            Some(
                ErrorCode::RateLimit
                    | ErrorCode::NotReadyServe
                    | ErrorCode::NotReadyCoordActivating
                    | ErrorCode::TimeTickLongDelay
                    | ErrorCode::MemoryQuotaExhausted
            )
        )
    {
        return Err(transient(operation, reason));
    }
    if matches!(ec, Some(ErrorCode::PermissionDenied))
        || lower.contains("auth check failure")
        || lower.contains("permission")
    {
        return Err(external(MilvusErrorKind::Auth, operation, reason));
    }
    if matches!(ec, Some(ErrorCode::CollectionNotExists)) || lower.contains("not found") {
        return Err(external(MilvusErrorKind::NotFound, operation, reason));
    }
    Err(external(MilvusErrorKind::Server, operation, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn statuses_are_classified() {
        let s = |error_code: i32, code: i32, reason: &str| Status {
            error_code,
            code,
            reason: reason.into(),
            ..Default::default()
        };
        assert!(classify_status("x", &s(0, 0, "")).is_ok());
        let e = classify_status("Insert", &s(49, 8, "rate limit exceeded")).err();
        assert!(e.is_some_and(|e| e.is_retryable()));
        let e = classify_status("Insert", &s(1, 0, "grpc: received message larger than max")).err();
        assert!(e.as_ref().is_some_and(is_too_large));
        let e = classify_status("Query", &s(1, 0, "invalid expression"));
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "Milvus Query failed: invalid expression");
        // A restarted server's Flush, until its coordinators forget the old data node, and a
        // stopping server's proxy about its own coordinators: retried, and said so.
        let retried = |operation: &str, reason: &str| {
            let e = classify_status(operation, &s(1, 65535, reason)).unwrap_err();
            assert!(e.is_retryable(), "{e}");
            e.to_string()
        };
        assert_eq!(
            retried("Flush", "attempt #0: session not found->datanode-1: node not found[node=1]: unrecoverable error"),
            "transient failure: Milvus Flush: a node of the server is missing or was replaced (after a restart, until its old session expires): attempt #0: session not found->datanode-1: node not found[node=1]: unrecoverable error"
        );
        assert_eq!(
            retried("Flush", "rpc error: code = Unknown desc = node not match[expectedNodeID=1][actualNodeID=2]"),
            "transient failure: Milvus Flush: a node of the server is missing or was replaced (after a restart, until its old session expires): rpc error: code = Unknown desc = node not match[expectedNodeID=1][actualNodeID=2]"
        );
        assert_eq!(
            retried("Insert", "getSegmentID failed: SegmentIDAllocator failRemainRequest unexpected error"),
            "transient failure: Milvus Insert: a node of the server is missing or was replaced (after a restart, until its old session expires): getSegmentID failed: SegmentIDAllocator failRemainRequest unexpected error"
        );
        assert_eq!(
            retried("Insert", "empty grpc client: failed to connect 127.0.0.1:19733, reason: connection error: desc = \"transport: error while dialing: dial tcp 127.0.0.1:19733: connect: connection refused\""),
            "transient failure: Milvus Insert: cannot reach a part of the server (is it stopping?): empty grpc client: failed to connect 127.0.0.1:19733, reason: connection error: desc = \"transport: error while dialing: dial tcp 127.0.0.1:19733: connect: connection refused\""
        );
        let e = classify_status("Flush", &s(4, 100, "collection not found[collection=9]"));
        assert!(e.as_ref().is_err_and(|e| !e.is_retryable()));
        assert_eq!(
            e.err().and_then(|e| kind(&e)),
            Some(MilvusErrorKind::NotFound)
        );
        let rpc = tonic::Status::unavailable("connection refused");
        let e = classify_rpc("Insert", &rpc);
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "transient failure: Milvus Insert: cannot reach the server: connection refused (Unavailable)"
        );
    }
}
