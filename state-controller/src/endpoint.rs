//! The controller's small HTTP endpoint on its metrics address: `/metrics`, `/healthz` and
//! `/decisions`, on the hardened server ([`common::http::server`]): it is reachable by
//! whatever can reach that port.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use common::informer::store::Store;
use common::reload::PolicyHandle;
use warp::Filter;

use crate::decisions::{DECISIONS_KEPT, Decisions};
use crate::metrics::Metrics;

/// Everything the endpoint reads.
#[derive(Clone)]
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub policy: PolicyHandle,
    pub decisions: Decisions,
}

/// `GET /metrics`, `GET /healthz`, `GET /decisions[?container=]`.
pub fn routes(ep: Endpoint) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let with = warp::any().map(move || ep.clone());
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with.clone())
        .map(|ep: Endpoint| {
            warp::reply::with_header(ep.metrics.render(), "content-type", common::metrics::CONTENT_TYPE)
        });
    // Liveness: answers while the process serves. Whether Docker is reachable is in the
    // body (and in dockwarden_informer_synced), not in the status: a restart would not fix
    // Docker.
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with.clone())
        .map(|ep: Endpoint| {
            warp::reply::json(&serde_json::json!({
                "status": "ok",
                "synced": ep.store.is_ready(),
                "policy_generation": ep.policy.current().generation,
            }))
        });
    let decisions = warp::path!("decisions")
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and(with)
        .map(|q: std::collections::HashMap<String, String>, ep: Endpoint| {
            let filter = q.get("container").map(String::as_str).filter(|s| !s.is_empty());
            warp::reply::json(&serde_json::json!({
                "capacity": DECISIONS_KEPT,
                "decisions": ep.decisions.list(filter),
            }))
        });
    metrics.or(healthz).or(decisions).recover(|_r: warp::Rejection| async {
        Ok::<_, Infallible>(warp::reply::with_status(
            warp::reply::json(
                &serde_json::json!({"error": "not_found", "message": "try /metrics, /healthz or /decisions"}),
            ),
            warp::http::StatusCode::NOT_FOUND,
        ))
    })
}

/// Serves [`routes`] on `listener` until `shutdown` resolves: HTTP/1.1 with a header-read
/// timeout and a connection cap (common::http): this listener is reachable by whatever can
/// reach the metrics port.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ep: Endpoint,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    common::http::serve_warp(
        listener,
        routes(ep),
        common::http::Limits::default(),
        Arc::default(),
        shutdown,
    )
    .await;
}
