//! Every error the API gives: [`ApiError`], answered as JSON `{"error", "message"}` with the
//! right status. The request filter never rejects once a route's path matched (see
//! [`crate::filters`]), so there is no rejection to recover from.

use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use serde::Serialize;

/// A request the API refuses, with everything the answer needs.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine-readable: `not_found`, `ambiguous`, `bad_request`, ...
    pub code: &'static str,
    pub message: String,
    pub candidates: Option<Vec<String>>,
    /// `WWW-Authenticate` for 401, `Allow` for 405.
    pub header: Option<(header::HeaderName, &'static str)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            candidates: None,
            header: None,
        }
    }

    /// 400 for a query parameter: the message names it.
    pub fn bad_param(param: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("query parameter {}: {message}", show(param)),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn no_route() -> Self {
        Self::not_found(format!("no such route; the routes are {}", crate::routes::list()))
    }

    /// 409: a prefix matches several containers.
    pub fn ambiguous(key: &str, ids: Vec<String>) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "{} matches {} containers; give more of the ID or the name",
                show(key),
                ids.len()
            ),
        );
        e.candidates = Some(ids);
        e
    }

    pub fn method_not_allowed() -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this API is read-only: only GET and HEAD are allowed",
        );
        e.header = Some((header::ALLOW, "GET, HEAD"));
        e
    }

    pub fn unauthorized(message: &str, challenge: &'static str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        e.header = Some((header::WWW_AUTHENTICATE, challenge));
        e
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn docker(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "docker_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            candidates: self.candidates.as_deref(),
        };
        let mut resp = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some((name, value)) = self.header {
            resp.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        resp
    }
}

/// A client-given value in a message: quoted, escaped and cut to a sane length.
pub fn show(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() > MAX {
        let cut: String = v.chars().take(MAX).collect();
        format!("{cut:?}… ({} characters)", v.chars().count())
    } else {
        format!("{v:?}")
    }
}

/// Every error: `{"error": "<code>", "message": "<what and why>"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub message: &'a str,
    /// For 409: the IDs an ambiguous prefix matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<&'a [String]>,
}
