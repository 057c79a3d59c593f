//! Every error the API gives: one rejection type, [`ApiError`], and the one [`recover`] that
//! turns any rejection into JSON `{"error", "message"}` with the right status.

use std::convert::Infallible;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::models::ErrorBody;

/// The routes, for messages that tell a lost client where to go.
pub const ROUTES: &str = "/containers, /containers/{id}, /containers/{id}/logs, /healthz, /readyz, /metrics";

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

impl warp::reject::Reject for ApiError {}

/// A missing or wrong token. Its own type so that [`recover`] ranks it below any other
/// error: the token filter runs on every route but `/healthz`, so for `POST /healthz` both
/// `/healthz`'s 405 and the token's 401 are in the rejection, and the 405 is the answer.
#[derive(Debug, Clone)]
pub struct Unauthorized(pub ApiError);

impl warp::reject::Reject for Unauthorized {}

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
        Self::not_found(format!("no such route; the routes are {ROUTES}"))
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
        crate::handlers::common_headers(&mut resp);
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

/// The one place rejections become answers. Our own [`ApiError`] first (paths are matched
/// before anything else, so at most one route produces one), then [`Unauthorized`], then
/// warp's own rejections; anything else is a 500, logged.
pub async fn recover(err: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = err.find::<ApiError>() {
        return Ok(e.clone().into_response());
    }
    if let Some(Unauthorized(e)) = err.find::<Unauthorized>() {
        return Ok(e.clone().into_response());
    }
    let e = if err.is_not_found() {
        ApiError::no_route()
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::method_not_allowed()
    } else if err.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("the query string is malformed")
    } else if let Some(h) = err.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(format!("header {} is malformed", h.name()))
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::bad_request("request body too large")
    } else {
        tracing::error!(rejection = ?err, "unhandled rejection");
        ApiError::internal("internal error")
    };
    Ok(e.into_response())
}
