//! The route tree: one function per route, each documented by its route. Paths are matched
//! before methods, so an unknown path is a 404 and a known path with another method a 405
//! (never 405 for a path that does not exist). The token is checked before anything but
//! `/healthz`: without it a client learns nothing, not even which paths exist.

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::errors::{self, ApiError, Unauthorized};
use crate::{AppState, handlers};

/// The whole API, JSON errors and request metrics included.
pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let api = list(state.clone())
        .or(detail(state.clone()))
        .unify()
        .or(logs(state.clone()))
        .unify()
        .or(readyz(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify();
    let observed = state.clone();
    healthz()
        .or(authorized(state).and(api))
        .unify()
        .recover(errors::recover)
        .unify()
        .with(warp::log::custom(move |info| {
            let seconds = info.elapsed().as_secs_f64();
            observed
                .metrics
                .observe(info.path(), info.method(), info.status().as_u16(), seconds);
            tracing::debug!(
                method = %info.method(),
                path = %info.path(),
                status = info.status().as_u16(),
                micros = info.elapsed().as_micros() as u64,
                "request"
            );
        }))
}

/// GET /containers?state=&allowed=&name=&image=
pub fn list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("containers")
        .and(read_only())
        .and(params())
        .and(accept())
        .and(with_state(state))
        .and_then(handlers::list)
        .boxed()
}

/// GET /containers/{id-or-prefix-or-name}
pub fn detail(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("containers" / String)
        .and(read_only())
        .and(params())
        .and(accept())
        .and(with_state(state))
        .and_then(handlers::detail)
        .boxed()
}

/// GET /containers/{id-or-prefix-or-name}/logs?tail=N
pub fn logs(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("containers" / String / "logs")
        .and(read_only())
        .and(params())
        .and(with_state(state))
        .and_then(handlers::logs)
        .boxed()
}

/// GET /healthz (no token needed: liveness probes carry none)
pub fn healthz() -> BoxedFilter<(Response,)> {
    warp::path!("healthz")
        .and(read_only())
        .and_then(handlers::healthz)
        .boxed()
}

/// GET /readyz
pub fn readyz(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("readyz")
        .and(read_only())
        .and(with_state(state))
        .and_then(handlers::readyz)
        .boxed()
}

/// GET /metrics
pub fn metrics(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(read_only())
        .and(with_state(state))
        .and_then(handlers::metrics)
        .boxed()
}

fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// GET and HEAD pass; every other method is a 405 (the API is read-only).
fn read_only() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::method()
        .and_then(|m: Method| async move {
            if m == Method::GET || m == Method::HEAD {
                Ok(())
            } else {
                Err(Rejection::from(ApiError::method_not_allowed()))
            }
        })
        .untuple_one()
}

/// The decoded query pairs, in order (checked by the handler, which names bad ones).
fn params() -> impl Filter<Extract = (Vec<(String, String)>,), Error = Rejection> + Copy {
    warp::query::<Vec<(String, String)>>()
}

/// The `Accept` header, for content negotiation.
fn accept() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Copy {
    warp::header::optional::<String>(header::ACCEPT.as_str())
}

/// Passes when no token is configured or the request carries it; else 401.
fn authorized(state: AppState) -> BoxedFilter<()> {
    match state.token.clone() {
        None => warp::any().boxed(),
        Some(token) => warp::header::headers_cloned()
            .and_then(move |headers: HeaderMap| {
                let token = token.clone();
                async move {
                    token
                        .check(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
                        .map_err(|e| warp::reject::custom(Unauthorized(e)))
                }
            })
            .untuple_one()
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::store::Store;
    use serde_json::Value;
    use warp::http::StatusCode;

    use super::*;
    use crate::auth::Token;

    fn state(token: Option<&str>) -> AppState {
        AppState::new(
            Store::new(),
            None,
            tokio::sync::watch::channel(None).1,
            Arc::default(),
            token.and_then(Token::new),
        )
    }

    async fn call(
        s: &AppState,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, warp::http::HeaderMap, String) {
        let mut req = warp::test::request().method(method).path(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.reply(&routes(s.clone())).await;
        (
            resp.status(),
            resp.headers().clone(),
            String::from_utf8_lossy(resp.body()).to_string(),
        )
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    fn assert_error(status: StatusCode, body: &str, want: StatusCode, code: &str) {
        assert_eq!(status, want, "{body}");
        let v = json(body);
        assert_eq!(v["error"], code, "{body}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }

    #[tokio::test]
    async fn health_ready_and_empty_list() {
        let s = state(None);
        let (st, _, body) = call(&s, "GET", "/healthz", &[]).await;
        assert_eq!((st, json(&body)["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (st, _, body) = call(&s, "GET", "/readyz", &[]).await;
        assert_error(st, &body, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
        let (st, h, body) = call(&s, "GET", "/containers", &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["vary"], "Accept");
        assert_eq!(
            json(&body),
            serde_json::json!({"containers": [], "count": 0, "synced": false})
        );
        let (st, h, body) = call(&s, "HEAD", "/containers", &[]).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(h["content-type"], "application/json");
    }

    #[tokio::test]
    async fn browsers_get_a_self_contained_page() {
        let s = state(None);
        let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let (st, h, body) = call(&s, "GET", "/containers", &[("accept", accept)]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(body.contains("<table id=\"containers\">") && body.contains("No containers"));
        for external in ["<script", "<link", "src=", "href=\"http", "@import", "url("] {
            assert!(!body.contains(external), "{external} in the page");
        }
    }

    #[tokio::test]
    async fn bad_requests_are_json_4xx() {
        let s = state(None);
        for (path, want, code) in [
            ("/containers?stat=running", StatusCode::BAD_REQUEST, "bad_request"),
            (
                "/containers?state=sleeping",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            ("/containers?allowed=true", StatusCode::BAD_REQUEST, "bad_request"),
            ("/containers/nope", StatusCode::NOT_FOUND, "not_found"),
            ("/containers/nope?x=1", StatusCode::BAD_REQUEST, "bad_request"),
            ("/containers/nope/logs", StatusCode::NOT_FOUND, "not_found"),
            (
                "/containers/nope/logs?tail=0",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            ("/containers/%2e%2e", StatusCode::BAD_REQUEST, "bad_request"),
            ("/containers/..", StatusCode::BAD_REQUEST, "bad_request"),
            ("/containers/../etc/passwd", StatusCode::NOT_FOUND, "not_found"),
            ("/containers/a/b/c", StatusCode::NOT_FOUND, "not_found"),
            ("/nope", StatusCode::NOT_FOUND, "not_found"),
            ("/", StatusCode::NOT_FOUND, "not_found"),
        ] {
            let (st, _, body) = call(&s, "GET", path, &[]).await;
            assert_error(st, &body, want, code);
        }
        let long = format!("/containers/{}", "a".repeat(5000));
        let (st, _, body) = call(&s, "GET", &long, &[]).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "bad_request");
        let (_, _, body) = call(&s, "GET", "/containers?bogus=1", &[]).await;
        assert!(
            json(&body)["message"].as_str().unwrap().contains("\"bogus\""),
            "{body}"
        );
    }

    #[tokio::test]
    async fn every_other_method_is_405_on_known_routes() {
        let s = state(None);
        for path in [
            "/containers",
            "/containers/x",
            "/containers/x/logs",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
                let (st, h, body) = call(&s, method, path, &[]).await;
                assert_error(st, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
                assert_eq!(h["allow"], "GET, HEAD", "{method} {path}");
            }
        }
        let (st, _, body) = call(&s, "POST", "/nope", &[]).await;
        assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
    }

    #[tokio::test]
    async fn token_guards_everything_but_healthz() {
        let s = state(Some("t0ken"));
        let (st, _, _) = call(&s, "GET", "/healthz", &[]).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _, body) = call(&s, "POST", "/healthz", &[]).await;
        assert_error(st, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        for path in [
            "/containers",
            "/containers/x",
            "/containers/x/logs",
            "/readyz",
            "/metrics",
            "/nope",
        ] {
            for auth in [
                None,
                Some("Bearer wrong"),
                Some("Basic dDBrZW4="),
                Some("Bearer t0ken2"),
            ] {
                let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
                let (st, h, body) = call(&s, "GET", path, &headers).await;
                assert_error(st, &body, StatusCode::UNAUTHORIZED, "unauthorized");
                assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
                assert!(!body.contains("t0ken"), "the token leaked: {body}");
            }
        }
        let (st, _, _) = call(&s, "GET", "/containers", &[("authorization", "Bearer t0ken")]).await;
        assert_eq!(st, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route() {
        let s = state(None);
        call(&s, "GET", "/containers", &[]).await;
        call(&s, "GET", "/containers/abc", &[]).await;
        let (st, h, body) = call(&s, "GET", "/metrics", &[]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(
            body.contains(
                r#"status_api_http_requests_total{route="/containers",method="GET",status="200"} 1"#
            ),
            "{body}"
        );
        assert!(
            body.contains(r#"route="/containers/{id}",method="GET",status="404""#),
            "{body}"
        );
    }
}
