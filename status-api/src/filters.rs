//! The request filter. Routing is warp's: each route is a `warp::path!` filter that yields
//! its [`Route`] (and the percent-decoded `{id}`), tried in the order of the table
//! ([`crate::routes::TABLE`]); a path no filter matches is `None`. What follows a match is
//! one function for every route, in this order: the token (before anything but
//! `/healthz`: without it a client learns nothing, not even which paths exist, so an
//! unknown path is 401 too), then the method (a known path is GET or HEAD, anything else is
//! 405 with `Allow`; an unknown one is 404), then the handler. Per-route method filters and
//! a `recover` would order these by warp's rejection ranking instead (it prefers a custom
//! 401 over a 405 and a 405 over a 404 from any branch), which reorders the answers above;
//! so no route ever rejects after its path matched. Every answer, errors included, leaves
//! through [`secure`], the one place security headers are added, and is counted under its
//! route's template (`other` for no route).

use std::convert::Infallible;
use std::str::FromStr;
use std::time::Instant;

use warp::filters::path::FullPath;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::Response;
use warp::{Filter, Rejection, path};

use crate::errors::ApiError;
use crate::routes::{Matched, Route};
use crate::{AppState, fleet, handlers, html};

/// The whole API, JSON errors and request metrics included.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let route = matched().map(Some).or(warp::any().map(|| None)).unify();
    route
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::any().map(move || state.clone()))
        .then(handle)
}

/// A `{id}` path segment, percent-decoded; a result that is not UTF-8 keeps replacement
/// characters, which the key check later refuses (`handlers::check_key`).
struct Key(String);

impl FromStr for Key {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Key(percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()))
    }
}

/// The route a request path names: one path filter per route of the table.
pub fn matched() -> impl Filter<Extract = (Matched,), Error = Rejection> + Clone {
    let at = |route: Route| move || Matched { route, id: None };
    let with = |route: Route| move |k: Key| Matched { route, id: Some(k.0) };
    path!("containers")
        .map(at(Route::Containers))
        .or(path!("containers" / Key).map(with(Route::Container)))
        .unify()
        .or(path!("containers" / Key / "logs").map(with(Route::Logs)))
        .unify()
        .or(path!("decisions").map(at(Route::Decisions)))
        .unify()
        .or(path!("healthz").map(at(Route::Healthz)))
        .unify()
        .or(path!("readyz").map(at(Route::Readyz)))
        .unify()
        .or(path!("metrics").map(at(Route::Metrics)))
        .unify()
        .or(path!("node").map(at(Route::Node)))
        .unify()
        .or(path!("fleet").map(at(Route::Fleet)))
        .unify()
        .or(path!("fleet" / "containers").map(at(Route::FleetContainers)))
        .unify()
        .or(path!("fleet" / "nodes").map(at(Route::FleetNodes)))
        .unify()
        .or(path!("fleet" / "decisions").map(at(Route::FleetDecisions)))
        .unify()
}

async fn handle(
    matched: Option<Matched>,
    method: Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    state: AppState,
) -> Response {
    let started = Instant::now();
    let label = matched.as_ref().map_or("other", |m| m.route.template());
    let resp = match answer(&method, matched, &query, &headers, &state).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let resp = secure(resp);
    let elapsed = started.elapsed();
    state
        .metrics
        .observe(label, &method, resp.status().as_u16(), elapsed.as_secs_f64());
    tracing::debug!(
        %method,
        path = path.as_str(),
        status = resp.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        "request"
    );
    resp
}

async fn answer(
    method: &Method,
    matched: Option<Matched>,
    query: &str,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.token
        && matched.as_ref().is_none_or(|m| m.route.needs_token())
    {
        token.check(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))?;
    }
    let Some(Matched { route, id }) = matched else {
        return Err(ApiError::no_route());
    };
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let id = id.unwrap_or_default();
    match route {
        Route::Containers => handlers::list(state, &params, headers),
        Route::Container => handlers::detail(state, &id, &params, headers),
        Route::Logs => handlers::logs(state, &id, &params).await,
        Route::Decisions => handlers::decisions(state, &params),
        Route::Healthz => Ok(handlers::healthz()),
        Route::Readyz => handlers::readyz(state),
        Route::Metrics => handlers::metrics(state),
        Route::Node => fleet::node(state, &params, headers),
        Route::Fleet | Route::FleetContainers => fleet::containers(state, &params, headers),
        Route::FleetNodes => fleet::nodes(state, &params, headers),
        Route::FleetDecisions => fleet::decisions(state, &params, headers),
    }
}

/// Headers every answer carries: nothing sniffed, framed, referred or loaded from elsewhere;
/// caches must revalidate (the ETag makes that cheap) unless the handler said `no-store`.
pub fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::CONTENT_SECURITY_POLICY),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::informer::store::Store;
    use serde_json::Value;
    use warp::http::StatusCode;

    use super::*;
    use crate::Options;
    use crate::auth::Token;

    fn state(token: Option<&str>) -> AppState {
        AppState::new(
            Store::new(),
            None,
            common::engine::HttpEngine::new(Some("unix:///nonexistent/docker.sock")).unwrap(),
            Arc::default(),
            Options {
                token: token.and_then(Token::new),
                ..Default::default()
            },
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
        assert_eq!(h["vary"], "Accept, Accept-Encoding");
        assert_eq!(h["cache-control"], "no-cache");
        assert!(h["etag"].to_str().unwrap().starts_with('"'));
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
            ("/containers/nope/logs", StatusCode::FORBIDDEN, "forbidden"),
            ("/decisions", StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ("/decisions?x=1", StatusCode::BAD_REQUEST, "bad_request"),
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
            "/decisions",
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
            "/decisions",
            "/readyz",
            "/metrics",
            "/node",
            "/fleet/containers",
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
    async fn without_peers_the_fleet_routes_say_how_to_configure_them() {
        let s = state(None);
        for path in ["/fleet", "/fleet/containers", "/fleet/nodes", "/fleet/decisions"] {
            let (st, _, body) = call(&s, "GET", path, &[]).await;
            assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
            assert!(
                body.contains("--peers") && body.contains("DOCKWARDEN_PEERS"),
                "{body}"
            );
        }
        let (st, h, body) = call(&s, "GET", "/fleet", &[("accept", "text/html")]).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(
            body.contains("No fleet view on this node") && body.contains("--peers"),
            "{body}"
        );
        let (st, _, body) = call(&s, "GET", "/fleet/containers?nodee=x", &[]).await;
        assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
        // The node's own summary is always served (peers ask it).
        let (st, h, body) = call(&s, "GET", "/node", &[]).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(h["etag"].to_str().unwrap().starts_with('"'));
        let v = json(&body);
        assert_eq!(
            (v["containers"].as_u64(), v["synced"].as_bool()),
            (Some(0), Some(false))
        );
        assert_eq!(v["instance"].as_str().map(str::len), Some(16), "{v}");
        assert_eq!(
            (v["mode"].clone(), v["policy_sha256"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(v["controller"], "not configured");
        assert!(!v["node"].as_str().unwrap_or("").is_empty(), "{v}");
        let (st, _, body) = call(&s, "GET", "/node?x=1", &[]).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "bad_request");
        let (st, _, body) = call(&s, "POST", "/fleet/nodes", &[]).await;
        assert_error(st, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
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

    #[tokio::test]
    async fn warp_path_filters_route_and_label() {
        let m = |p: &'static str| async move {
            warp::test::request()
                .path(p)
                .filter(&matched())
                .await
                .ok()
                .map(|m| (m.route, m.id))
        };
        assert_eq!(m("/containers").await, Some((Route::Containers, None)));
        assert_eq!(
            m("/containers/abc").await,
            Some((Route::Container, Some("abc".into())))
        );
        assert_eq!(
            m("/containers/abc/logs").await,
            Some((Route::Logs, Some("abc".into())))
        );
        assert_eq!(
            m("/containers/%2e%2e").await,
            Some((Route::Container, Some("..".into())))
        );
        assert_eq!(
            m("/containers/a%2").await,
            Some((Route::Container, Some("a%2".into())))
        );
        for (p, r) in [
            ("/decisions", Route::Decisions),
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/metrics", Route::Metrics),
            ("/node", Route::Node),
            ("/fleet", Route::Fleet),
            ("/fleet/containers", Route::FleetContainers),
            ("/fleet/nodes", Route::FleetNodes),
            ("/fleet/decisions", Route::FleetDecisions),
        ] {
            assert_eq!(m(p).await, Some((r, None)), "{p}");
            assert_eq!(r.template(), p);
        }
        for none in [
            "/",
            "/nope",
            "/fleet/nope",
            "/fleet/nodes/x",
            "/containers/a/b",
            "/containers/a/logs/x",
            "/containers//logs",
            "/containers/../etc",
        ] {
            assert_eq!(m(none).await, None, "{none}");
        }
        // Every route of the table has a filter.
        for (route, template) in crate::routes::TABLE {
            let path = template.replace("{id}", "x");
            let got = warp::test::request().path(&path).filter(&matched()).await;
            assert_eq!(got.ok().map(|m| m.route), Some(route), "{template}");
        }
    }
}
