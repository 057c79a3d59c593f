//! Prometheus metrics and the controller's small HTTP endpoint (`/metrics`, `/healthz`).
//! Counters kept elsewhere as atomics (informer, reloader) are mirrored at scrape time.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use common::informer::Stats as InformerStats;
use common::reload::PolicyHandle;
use common::store::Store;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use warp::Filter;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    decisions: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    /// From the engine's event time to the action's completion, in seconds.
    pub latency: Histogram,
    /// Actions on a container name that had been acted on before.
    pub recurring: Counter,
    pub spared: Counter,
    reloads: Family<Labels, Counter>,
    policy_generation: Gauge,
    containers: Family<Labels, Gauge>,
    synced: Gauge,
    events: Counter,
    reconnects: Counter,
    relists: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dockwarden");
        let decisions = Family::<Labels, Counter>::default();
        let actions = Family::<Labels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let recurring = Counter::default();
        let spared = Counter::default();
        let reloads = Family::<Labels, Counter>::default();
        let policy_generation = Gauge::default();
        let containers = Family::<Labels, Gauge>::default();
        let synced = Gauge::default();
        let events = Counter::default();
        let reconnects = Counter::default();
        let relists = Counter::default();
        registry.register("decisions", "Containers judged, by verdict", decisions.clone());
        registry.register(
            "actions",
            "Actions on denied containers, by action and result (ok, error, audit)",
            actions.clone(),
        );
        registry.register(
            "action_latency_seconds",
            "From the container's start event to the action's completion",
            latency.clone(),
        );
        registry.register(
            "recurring",
            "Actions on a container name that was acted on before: it keeps coming back",
            recurring.clone(),
        );
        registry.register(
            "spared",
            "Decisions skipped because the container runs dockwarden's own image",
            spared.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy file reloads, by result (accepted, rejected)",
            reloads.clone(),
        );
        registry.register(
            "policy_generation",
            "Generation of the policy in force (1 = loaded at start)",
            policy_generation.clone(),
        );
        registry.register(
            "containers",
            "Containers in the picture, by state",
            containers.clone(),
        );
        registry.register(
            "synced",
            "1 when the picture is synced with Docker",
            synced.clone(),
        );
        registry.register("docker_events", "Docker events received", events.clone());
        registry.register(
            "docker_reconnects",
            "Breaks of the Docker event stream",
            reconnects.clone(),
        );
        registry.register(
            "docker_relists",
            "Full re-lists of the containers",
            relists.clone(),
        );
        Metrics {
            registry,
            decisions,
            actions,
            latency,
            recurring,
            spared,
            reloads,
            policy_generation,
            containers,
            synced,
            events,
            reconnects,
            relists,
        }
    }

    pub fn decision(&self, verdict: &'static str) {
        self.decisions
            .get_or_create(&vec![("verdict", verdict.to_string())])
            .inc();
    }

    pub fn action(&self, action: &'static str, result: &'static str) {
        self.actions
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// Brings the mirrored values up to date and renders the exposition text.
    pub fn render(&self, store: &Store, policy: &PolicyHandle, informer: &InformerStats) -> String {
        let mirror = |c: &Counter, v: u64| {
            let cur = c.get();
            if v > cur {
                c.inc_by(v - cur);
            }
        };
        mirror(
            &self.reloads.get_or_create(&vec![("result", "accepted".into())]),
            policy.stats.accepted.load(Relaxed),
        );
        mirror(
            &self.reloads.get_or_create(&vec![("result", "rejected".into())]),
            policy.stats.rejected.load(Relaxed),
        );
        mirror(&self.events, informer.events.load(Relaxed));
        mirror(&self.reconnects, informer.reconnects.load(Relaxed));
        mirror(&self.relists, informer.relists.load(Relaxed));
        self.policy_generation
            .set(i64::try_from(policy.current().generation).unwrap_or(i64::MAX));
        self.synced.set(i64::from(store.is_ready()));
        self.containers.clear();
        for c in store.list() {
            self.containers
                .get_or_create(&vec![("state", c.state.as_str().to_string())])
                .inc();
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Everything the endpoint reads.
#[derive(Clone)]
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub policy: PolicyHandle,
    pub informer: Arc<InformerStats>,
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ep: Endpoint,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let with = warp::any().map(move || ep.clone());
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with.clone())
        .map(|ep: Endpoint| {
            let body = ep.metrics.render(&ep.store, &ep.policy, &ep.informer);
            warp::reply::with_header(
                body,
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        });
    // Liveness: answers while the process serves. Whether Docker is reachable is in the
    // body (and in dockwarden_synced), not in the status: a restart would not fix Docker.
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with)
        .map(|ep: Endpoint| {
            warp::reply::json(&serde_json::json!({
                "status": "ok",
                "synced": ep.store.is_ready(),
                "policy_generation": ep.policy.current().generation,
            }))
        });
    let routes = metrics.or(healthz).recover(|_r: warp::Rejection| async {
        Ok::<_, Infallible>(warp::reply::with_status(
            warp::reply::json(
                &serde_json::json!({"error": "not_found", "message": "try /metrics or /healthz"}),
            ),
            warp::http::StatusCode::NOT_FOUND,
        ))
    });
    // HTTP/1.1 with a header-read timeout and a connection cap (common::http): this
    // listener is reachable by whatever can reach the metrics port.
    common::http::serve_warp(
        listener,
        routes,
        common::http::Limits::default(),
        Arc::default(),
        shutdown,
    )
    .await;
}
