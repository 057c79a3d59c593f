//! The work behind each route. Everything but the logs comes from the in-memory picture
//! (store, resource samples, policy in force): a request costs no Docker call.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::query_parameters::LogsOptionsBuilder;
use common::container::Container;
use common::store::Lookup;
use futures_util::StreamExt;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::errors::{ApiError, show};
use crate::models::{self, ContainerList, ContainerView, Probe};
use crate::query::{self, ListFilter};
use crate::{AppState, html, metrics};

/// Longest reference accepted in a path (a full ID is 64 characters).
pub const MAX_KEY_LEN: usize = 256;
/// Most log bytes returned; the rest is cut with a marker line.
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;
/// A logs request that takes longer is abandoned with 504.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers every answer carries: nothing is cacheable (it is live state), nothing sniffed.
pub fn common_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn html_response(body: String) -> Response {
    let mut resp = warp::reply::html(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

fn negotiated(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    common_headers(&mut resp);
    resp
}

/// True when the client prefers HTML to JSON (a browser): `text/html` (or XHTML) with a
/// higher q-value than `application/json`. `*/*` alone (curl) gets JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut html_q, mut json_q) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html_q = html_q.max(q),
            "application/json" => json_q = json_q.max(q),
            _ => {}
        }
    }
    html_q > 0.0 && html_q > json_q
}

/// Checks a path reference before any lookup: Docker IDs and names use `[a-zA-Z0-9_.-]`
/// and start with a letter or digit, so anything else (`..`, `%2e`, control characters)
/// cannot name a container.
fn check_key(key: &str) -> Result<(), ApiError> {
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::bad_request(format!(
            "container reference too long ({} bytes; at most {MAX_KEY_LEN})",
            key.len()
        )));
    }
    let ok = key.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "invalid container reference {}: use a full or unique partial ID, or a name \
             ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
            show(key)
        )));
    }
    Ok(())
}

/// Resolves `{id}`: full ID, name, or unique ID prefix.
fn resolve(state: &AppState, key: &str) -> Result<Arc<Container>, ApiError> {
    check_key(key)?;
    state.store.resolve(key).map_err(|e| match e {
        Lookup::NotFound => {
            ApiError::not_found(format!("no container with ID, name or ID prefix {}", show(key)))
        }
        Lookup::Ambiguous(ids) => ApiError::ambiguous(key, ids),
    })
}

/// `GET /containers`
pub async fn list(
    params: Vec<(String, String)>,
    accept: Option<String>,
    state: AppState,
) -> Result<Response, Rejection> {
    let policy = state.policy.as_ref().map(|p| p.current());
    let filter = ListFilter::parse(&params, policy.is_some())?;
    let now = SystemTime::now();
    let all = state.store.list();
    let samples = state.resources.snapshot();
    let me = state.identity();
    let views: Vec<ContainerView> = all
        .iter()
        .filter_map(|c| {
            let verdict = policy.as_ref().map(|p| models::verdict(&p.policy, c, &me));
            filter
                .matches(c, verdict.as_ref())
                .then(|| ContainerView::new(c, samples.get(&c.id), verdict, now))
        })
        .collect();
    let synced = state.store.is_ready();
    if wants_html(accept.as_deref()) {
        let page = html::Page {
            synced,
            policy_generation: policy.as_ref().map(|p| p.generation),
            filter: &filter,
            total: all.len(),
            now,
        };
        return Ok(negotiated(html_response(html::list_page(&views, &page))));
    }
    let body = ContainerList {
        count: views.len(),
        containers: views,
        synced,
    };
    Ok(negotiated(warp::reply::json(&body).into_response()))
}

/// `GET /containers/{id}`
pub async fn detail(
    key: String,
    params: Vec<(String, String)>,
    accept: Option<String>,
    state: AppState,
) -> Result<Response, Rejection> {
    query::parse_none(&params)?;
    let c = resolve(&state, &key)?;
    let policy = state.policy.as_ref().map(|p| p.current());
    let verdict = policy
        .as_ref()
        .map(|p| models::verdict(&p.policy, &c, &state.identity()));
    let sample = state.resources.get(&c.id);
    let now = SystemTime::now();
    let view = ContainerView::new(&c, sample.as_ref(), verdict, now);
    if wants_html(accept.as_deref()) {
        let page = html::detail_page(&view, now, policy.as_ref().map(|p| p.generation));
        return Ok(negotiated(html_response(page)));
    }
    Ok(negotiated(warp::reply::json(&view).into_response()))
}

/// `GET /containers/{id}/logs?tail=N`: the one route that calls Docker, bounded in lines,
/// bytes, time and concurrency.
pub async fn logs(
    key: String,
    params: Vec<(String, String)>,
    state: AppState,
) -> Result<Response, Rejection> {
    let tail = query::parse_tail(&params)?;
    let c = resolve(&state, &key)?;
    let docker = state
        .docker
        .borrow()
        .clone()
        .ok_or_else(|| ApiError::unavailable("not connected to Docker yet; try again shortly"))?;
    let work = async {
        let _permit = state
            .log_permits
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = docker.logs(&c.id, Some(opts));
        let mut buf: Vec<u8> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(out) => {
                    buf.extend_from_slice(out.as_ref());
                    if buf.len() > MAX_LOG_BYTES {
                        buf.truncate(MAX_LOG_BYTES);
                        buf.extend_from_slice(b"\n[status-api: output cut at 8 MiB]\n");
                        break;
                    }
                }
                Err(e) if common::docker::status_code(&e) == Some(404) => {
                    return Err(ApiError::not_found(format!(
                        "container {} no longer exists",
                        show(&c.name)
                    )));
                }
                Err(e) => {
                    tracing::warn!(container = %c.name, error = %e, "logs failed");
                    return Err(ApiError::docker(format!("Docker could not give the logs: {e}")));
                }
            }
        }
        Ok(buf)
    };
    let buf = match tokio::time::timeout(LOG_TIMEOUT, work).await {
        Ok(r) => r?,
        Err(_) => {
            let mut e = ApiError::docker(format!("Docker did not give the logs within {LOG_TIMEOUT:?}"));
            e.status = StatusCode::GATEWAY_TIMEOUT;
            return Err(e.into());
        }
    };
    let mut resp = Response::new(buf.into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    common_headers(&mut resp);
    Ok(resp)
}

/// `GET /healthz`
pub async fn healthz() -> Result<Response, Rejection> {
    let mut resp = warp::reply::json(&Probe { status: "ok" }).into_response();
    common_headers(&mut resp);
    Ok(resp)
}

/// `GET /readyz`
pub async fn readyz(state: AppState) -> Result<Response, Rejection> {
    if state.store.is_ready() {
        let mut resp = warp::reply::json(&Probe { status: "ready" }).into_response();
        common_headers(&mut resp);
        Ok(resp)
    } else {
        let mut e = ApiError::unavailable(
            "not synced with Docker: starting, or the event stream broke and is being resumed",
        );
        e.code = "not_ready";
        Err(e.into())
    }
}

/// `GET /metrics`
pub async fn metrics(state: AppState) -> Result<Response, Rejection> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("cannot render metrics: {e}")))?;
    let mut resp = Response::new(text.into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    common_headers(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_html_for_browsers_only() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(wants_html(Some(chrome)));
        assert!(!wants_html(None));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(Some("application/json")));
        assert!(
            !wants_html(Some("application/json, text/html")),
            "a tie goes to JSON"
        );
        assert!(!wants_html(Some("text/html;q=0.5, application/json")));
        assert!(!wants_html(Some("text/html;q=0")));
        assert!(wants_html(Some("TEXT/HTML")));
    }

    #[test]
    fn keys_are_docker_ids_or_names() {
        for ok in ["web-1", "abc123", "my_app.v2", "a"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["..", ".", "%2e%2e", "-x", "a/b", "a b", "a\u{0}", "", "é"] {
            assert_eq!(check_key(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert_eq!(check_key(&"a".repeat(MAX_KEY_LEN + 1)).unwrap_err().status, 400);
    }
}
