//! The work behind each route. Everything but the logs comes from the view cache
//! ([`crate::views`]): a request costs no Docker call, and the unfiltered list costs no
//! rendering either.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::informer::store::Lookup;
use futures_util::StreamExt;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::errors::{ApiError, show};
use crate::models::Probe;
use crate::query::{self, ListFilter};
use crate::reply::{self, Rendered, Wants};
use crate::stream::LogStream;
use crate::views::{self, Entry, JSON, Snapshot};
use crate::{AppState, decisions, html, metrics};

/// Longest reference accepted in a path (a full ID is 64 characters).
pub const MAX_KEY_LEN: usize = 256;
/// Most log bytes returned; the rest is cut with a marker line.
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;
/// Waiting for a logs slot and for Docker's first answer takes at most this long (504).
pub const LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// A reader that takes no log chunk for this long is cut off: the Docker stream is closed
/// and the slot freed.
pub const LOG_STALL: Duration = Duration::from_secs(10);
/// Log chunks queued per response: a stalled reader holds this many, never the whole log.
pub const LOG_QUEUE: usize = 4;

/// True when the client prefers HTML to JSON (a browser): `text/html` (or XHTML) with a
/// higher q-value than `application/json`. `*/*` alone (curl) gets JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
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

/// Resolves `{id}` (full ID, name, or unique ID prefix) to its entry in the current
/// snapshot.
fn resolve(state: &AppState, key: &str) -> Result<(Arc<Snapshot>, Arc<Entry>), ApiError> {
    check_key(key)?;
    let c = state.store.resolve(key).map_err(|e| match e {
        Lookup::NotFound => {
            ApiError::not_found(format!("no container with ID, name or ID prefix {}", show(key)))
        }
        Lookup::Ambiguous(ids) => ApiError::ambiguous(key, ids),
    })?;
    let mut snap = state.views.snapshot(state);
    if snap.get(&c.id).is_none() {
        // In the store before the informer's notice reached the cache (or a build is in
        // progress): take it in now.
        state.views.touch();
        snap = state.views.snapshot_fresh(state);
    }
    let e = snap
        .get(&c.id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("container {} is gone", show(key))))?;
    Ok((snap, e))
}

/// `GET /containers`
pub fn list(
    state: &AppState,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let snap = state.views.snapshot(state);
    let filter = ListFilter::parse(params, snap.policy.is_some())?;
    let wants = Wants::from_headers(headers);
    let html = wants_html(headers);
    if filter.is_empty() {
        let r = if html {
            html::list(&snap)
        } else {
            snap.json.clone()
        };
        return Ok(reply::send(&r, wants));
    }
    let shown: Vec<&Arc<Entry>> = snap
        .entries
        .iter()
        .filter(|e| filter.matches(&e.c, e.verdict.as_ref()))
        .collect();
    let r = if html {
        Rendered::new(
            html::list_page(&snap, &shown, Some(&filter)).into(),
            html::CONTENT_TYPE,
        )
    } else {
        Rendered::new(views::list_json(shown.iter().map(|e| &e.json), snap.synced), JSON)
    };
    Ok(reply::send(&r, wants))
}

/// `GET /containers/{id}`
pub fn detail(
    state: &AppState,
    key: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    query::parse_none(params)?;
    let (snap, e) = resolve(state, key)?;
    let r = if wants_html(headers) {
        Rendered::new(html::detail_page(&snap, &e).into(), html::CONTENT_TYPE)
    } else {
        Rendered::new(e.json.clone(), JSON)
    };
    Ok(reply::send(&r, Wants::from_headers(headers)))
}

/// `GET /decisions?container=`: the controller's recent decisions, as it serves them.
pub fn decisions(state: &AppState, params: &[(String, String)]) -> Result<Response, ApiError> {
    let key = query::parse_container(params)?;
    let d = state.decisions.current();
    if !d.configured() {
        return Err(ApiError::unavailable(
            "status-api runs without --controller-url (DOCKWARDEN_CONTROLLER_URL), so it cannot tell what the controller did",
        ));
    }
    let (Some(feed), Some(body)) = (&d.feed, &d.body) else {
        return Err(ApiError::unavailable(format!(
            "the controller has not answered yet: {}",
            d.error.as_deref().unwrap_or("first fetch pending")
        )));
    };
    let body = match key {
        None => body.clone(),
        Some(k) => views::to_json(&decisions::Feed {
            capacity: feed.capacity,
            decisions: feed.about(&k).cloned().collect(),
        }),
    };
    let mut resp = Response::new(body.into());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    if let Some(e) = &d.error {
        // Last known answer; say why it may be stale.
        if let Ok(v) = HeaderValue::from_str(&format!("controller unreachable, last known answer: {e}")) {
            resp.headers_mut().insert("x-dockwarden-stale", v);
        }
    }
    Ok(resp)
}

/// `GET /containers/{id}/logs?tail=N`: the one route that calls Docker, bounded in lines,
/// bytes, time, concurrency and buffering. Streamed: a reader that stalls holds
/// [`LOG_QUEUE`] chunks, not the whole log, and is cut off after [`LOG_STALL`].
pub async fn logs(state: &AppState, key: &str, params: &[(String, String)]) -> Result<Response, ApiError> {
    if !state.logs_enabled {
        return Err(ApiError::forbidden(
            "the logs route is off: logs often carry secrets. Start status-api with a token \
             (STATUS_API_TOKEN) or with --logs (DOCKWARDEN_LOGS=1) to turn it on",
        ));
    }
    let tail = query::parse_tail(params)?;
    let (_, e) = resolve(state, key)?;
    let id = e.c.id.clone();
    let name = e.c.name.clone();
    let tty = e.c.tty;
    let start = async {
        let permit = state
            .log_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        // The engine's answer tells a missing container (404) from a log, before the 200
        // goes out.
        let stream = match state.engine.logs(&id, tail, tty).await {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => {
                return Err(ApiError::not_found(format!(
                    "container {} no longer exists",
                    show(&name)
                )));
            }
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "logs failed");
                return Err(ApiError::docker(format!("Docker could not give the logs: {e}")));
            }
        };
        Ok::<_, ApiError>((permit, stream))
    };
    let (permit, mut stream) = match tokio::time::timeout(LOG_TIMEOUT, start).await {
        Ok(r) => r?,
        Err(_) => {
            let mut e = ApiError::docker(format!("Docker did not give the logs within {LOG_TIMEOUT:?}"));
            e.status = StatusCode::GATEWAY_TIMEOUT;
            return Err(e);
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(LOG_QUEUE);
    tokio::spawn(async move {
        let _permit = permit;
        let mut sent = 0usize;
        loop {
            let (chunk, broken) = match stream.next().await {
                None => break,
                Some(Ok(out)) => (out, false),
                Some(Err(e)) => {
                    tracing::debug!(container = %name, error = %e, "logs stream broke");
                    let note = format!("\n[status-api: Docker stopped giving the logs: {e}]\n");
                    (Bytes::from(note), true)
                }
            };
            let (chunk, last) = if sent + chunk.len() > MAX_LOG_BYTES {
                let mut cut = chunk.slice(..MAX_LOG_BYTES - sent).to_vec();
                cut.extend_from_slice(b"\n[status-api: output cut at 8 MiB]\n");
                (Bytes::from(cut), true)
            } else {
                (chunk, false)
            };
            sent += chunk.len();
            match tokio::time::timeout(LOG_STALL, tx.send(chunk)).await {
                Ok(Ok(())) => {}
                // The client went away, or stopped reading: drop the Docker stream.
                Ok(Err(_)) | Err(_) => {
                    tracing::debug!(container = %name, "logs reader gone or stalled; closing");
                    break;
                }
            }
            if last || broken {
                break;
            }
        }
    });
    let mut resp = Response::new(Bytes::new().into());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // Logs may hold secrets: no copy anywhere.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut().insert(LogStream::new(rx));
    Ok(resp)
}

/// `GET /healthz`
pub fn healthz() -> Response {
    json(&Probe { status: "ok" })
}

/// `GET /readyz`
pub fn readyz(state: &AppState) -> Result<Response, ApiError> {
    if state.store.is_ready() {
        Ok(json(&Probe { status: "ready" }))
    } else {
        let mut e = ApiError::unavailable(
            "not synced with Docker: starting, or the event stream broke and is being resumed",
        );
        e.code = "not_ready";
        Err(e)
    }
}

/// `GET /metrics`
pub fn metrics(state: &AppState) -> Result<Response, ApiError> {
    // The denied count comes from the decisions the page and the JSON show.
    let snap = state.views.snapshot(state);
    let denied = snap
        .policy
        .is_some()
        .then(|| snap.entries.iter().filter(|e| e.denied_live()).count());
    state.metrics.set_denied_live(denied);
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("cannot render metrics: {e}")))?;
    let mut resp = Response::new(text.into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(resp)
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    let mut resp = Response::new(views::to_json(v).into());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiates_html_for_browsers_only() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(wants_html(&accept(chrome)));
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("application/json")));
        assert!(
            !wants_html(&accept("application/json, text/html")),
            "a tie goes to JSON"
        );
        assert!(!wants_html(&accept("text/html;q=0.5, application/json")));
        assert!(!wants_html(&accept("text/html;q=0")));
        assert!(wants_html(&accept("TEXT/HTML")));
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
