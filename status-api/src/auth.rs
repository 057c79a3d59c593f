//! The optional bearer token (`--token`/`STATUS_API_TOKEN`) that guards every route but
//! `/healthz`. Compared in constant time; never logged, never echoed.

use std::sync::Arc;

use crate::errors::ApiError;

/// Challenge sent with a 401 when no token was presented.
const CHALLENGE: &str = "Bearer realm=\"dockwarden\"";
/// Challenge sent with a 401 when a wrong token was presented (RFC 6750 §3).
const CHALLENGE_INVALID: &str = "Bearer realm=\"dockwarden\", error=\"invalid_token\"";

/// The expected token. Its `Debug` hides the value.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    /// `None` for an empty value: `STATUS_API_TOKEN=` (as compose writes `${VAR:-}`) means
    /// no token. Surrounding whitespace (a newline from a secret file) is not part of it.
    pub fn new(value: &str) -> Option<Token> {
        let value = value.trim();
        (!value.is_empty()).then(|| Token(Arc::from(value.as_bytes())))
    }

    /// The token itself, for sending to the fleet's peers (which share it). Never log it.
    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Checks an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), ApiError> {
        let presented = authorization.and_then(bearer);
        match presented {
            None => Err(ApiError::unauthorized(
                "missing bearer token: send \"Authorization: Bearer <token>\"",
                CHALLENGE,
            )),
            Some(p) if constant_time_eq(&self.0, p) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("invalid bearer token", CHALLENGE_INVALID)),
        }
    }
}

/// The credentials of a `Bearer` authorization value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    if value.len() < 7 || !value[..6].eq_ignore_ascii_case(b"bearer") || value[6] != b' ' {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Compares without an early exit: the time depends on the expected token's length only,
/// not on where a presented token first differs or how long it is.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != presented.len());
    for (i, e) in expected.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= e ^ p;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bearer_tokens() {
        let t = Token::new("s3cret").unwrap();
        assert!(t.check(Some(b"Bearer s3cret")).is_ok());
        assert!(t.check(Some(b"bearer   s3cret ")).is_ok());
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer S3CRET",
            b"Basic s3cret",
            b"Bearer",
            b"s3cret",
        ] {
            let e = t.check(Some(bad)).unwrap_err();
            assert_eq!(e.status, 401, "{:?}", String::from_utf8_lossy(bad));
        }
        let missing = t.check(None).unwrap_err();
        assert!(missing.message.contains("missing"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(Token::new("").is_none());
        assert!(Token::new(" \n").is_none());
        assert!(
            Token::new("s3cret\n")
                .unwrap()
                .check(Some(b"Bearer s3cret"))
                .is_ok()
        );
    }

    #[test]
    fn constant_time_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
