//! Bearer-token authentication: the accepted tokens, and the check every protected request
//! goes through.
//!
//! A presented token is compared with *every* configured token in constant time
//! (`subtle::ConstantTimeEq`), and the results are combined without branching, so the time a
//! check takes does not tell which token, or how much of one, matched. Tokens are never
//! printed: [`Tokens`]'s `Debug` shows only how many there are.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

/// The accepted API tokens.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<Vec<u8>>>);

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// The shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// The tokens in `list`, surrounding whitespace trimmed and empty entries skipped.
    ///
    /// # Errors
    /// A message (without the token) when one is shorter than [`MIN_TOKEN_LEN`].
    pub fn new<I, S>(list: I) -> Result<Tokens, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut tokens = Vec::new();
        for (i, t) in list.into_iter().enumerate() {
            let t = t.as_ref().trim();
            if t.is_empty() {
                continue;
            }
            if t.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "API token #{} is {} characters long; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                    i + 1,
                    t.len()
                ));
            }
            tokens.push(t.as_bytes().to_vec());
        }
        Ok(Tokens(Arc::new(tokens)))
    }

    /// The tokens of a token file: one per line; lines starting with `#` are comments.
    ///
    /// # Errors
    /// As [`Tokens::new`].
    pub fn from_file_text(text: &str) -> Result<Tokens, String> {
        Tokens::new(text.lines().filter(|l| !l.trim_start().starts_with('#')))
    }

    /// These tokens and `other`'s.
    pub fn with(&self, other: &Tokens) -> Tokens {
        let mut all = self.0.as_ref().clone();
        all.extend(other.0.iter().cloned());
        Tokens(Arc::new(all))
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `presented` is one of the tokens, compared with each in constant time.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut any = Choice::from(0);
        for token in self.0.iter() {
            any |= token.as_slice().ct_eq(presented);
        }
        bool::from(any)
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let scheme = bytes.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| bytes[7..].trim_ascii())
}

/// Middleware: passes requests that carry an accepted token; answers others `401` with a JSON
/// error and `WWW-Authenticate: Bearer`. With no token configured (a loopback server started
/// with `insecure_no_auth`) every request passes.
pub async fn require_token(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(bearer);
    match presented {
        Some(token) if tokens.accepts(token) => next.run(request).await,
        presented => {
            let why = if presented.is_some() {
                "the bearer token is not one this server accepts"
            } else {
                "this route needs `Authorization: Bearer <token>`"
            };
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({ "error": why })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole_and_never_shown() {
        let t = Tokens::new(["0123456789abcdef", "  fedcba9876543210xyz  ", ""]).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.accepts(b"0123456789abcdef"));
        assert!(t.accepts(b"fedcba9876543210xyz"));
        assert!(!t.accepts(b"0123456789abcde"));
        assert!(!t.accepts(b"0123456789abcdefg"));
        assert!(!t.accepts(b""));
        assert_eq!(format!("{t:?}"), "Tokens(2 configured)");
        assert_eq!(
            Tokens::new(["short"]).unwrap_err(),
            "API token #1 is 5 characters long; use at least 16 (e.g. `openssl rand -hex 32`)"
        );
        let f = Tokens::from_file_text("# ops\n0123456789abcdef\n\n#x\n").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.with(&t).len(), 3);
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&h("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&h("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&h("Bear")), None);
    }
}
