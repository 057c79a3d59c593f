//! `/metrics` in OpenMetrics text (prometheus-client): requests by route, method and status,
//! their latency, and, read at scrape time, the informer and policy metrics under the names
//! both binaries share ([`common::metrics::SharedMetrics`]), the resource collector's rounds
//! and the denied containers.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

use common::docker::Identity;
use common::informer::Stats as InformerStats;
use common::informer::store::Store;
use common::metrics::{counter, gauge};
use common::reload::PolicyHandle;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resources::CollectorStats;

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The registry and the request metrics the HTTP layer updates.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
}

/// What the scrape-time collector reads.
pub struct Sources {
    pub store: Store,
    pub informer: Arc<InformerStats>,
    pub policy: Option<PolicyHandle>,
    pub resources: Arc<CollectorStats>,
    /// Whose containers are spared (see `models::verdict`).
    pub identity: Arc<RwLock<(Identity, u64)>>,
    /// The HTTP server's connections.
    pub http: Arc<common::http::Stats>,
}

impl Metrics {
    pub fn new(sources: Sources) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "status_api_http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let durations: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "status_api_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            durations.clone(),
        );
        registry.register_collector(Box::new(common::metrics::SharedMetrics {
            store: sources.store.clone(),
            informer: sources.informer.clone(),
            policy: sources.policy.clone(),
        }));
        registry.register_collector(Box::new(sources));
        Metrics {
            registry,
            requests,
            durations,
        }
    }

    /// Counts one answered request (called by the request filter for every response);
    /// `route` is the route table's template, or `other`.
    pub fn observe(&self, route: &'static str, method: &warp::http::Method, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Clients may send any method name; only the standard ones become label values.
fn method_label(m: &warp::http::Method) -> &'static str {
    use warp::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        gauge(
            &mut enc,
            "status_api_http_connections_open",
            "HTTP connections open now",
            i64::try_from(self.http.open.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut enc,
            "status_api_http_connections",
            "HTTP connections accepted",
            self.http.accepted.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "status_api_http_connection_errors",
            "HTTP connections that ended with an error (timeout, reset, malformed request)",
            self.http.errors.load(Relaxed),
        )?;
        let r = &self.resources;
        counter(
            &mut enc,
            "status_api_resource_rounds",
            "Resource collection rounds",
            r.rounds.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "status_api_resource_errors",
            "Failed stats calls",
            r.errors.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "status_api_resource_last_round_microseconds",
            "Duration of the last resource collection round",
            i64::try_from(r.last_round_micros.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        if let Some(p) = &self.policy {
            let loaded = p.current();
            let me = self.identity.read().unwrap_or_else(|e| e.into_inner()).0.clone();
            let denied = self
                .store
                .list()
                .iter()
                .filter(|c| !crate::models::verdict(&loaded.policy, c, &me).allowed)
                .count();
            gauge(
                &mut enc,
                "status_api_containers_denied",
                "Containers the allowlist in force does not allow",
                denied as i64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics() {
        let m = Metrics::new(Sources {
            store: Store::new(),
            informer: Arc::default(),
            policy: None,
            resources: Arc::default(),
            identity: Arc::default(),
            http: Arc::default(),
        });
        m.observe("/containers", &warp::http::Method::GET, 200, 0.001);
        let text = m.render().unwrap();
        assert!(
            text.contains(
                r#"status_api_http_requests_total{route="/containers",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dockwarden_containers{state="running"} 0"#),
            "{text}"
        );
        assert!(text.contains("dockwarden_informer_events_total 0"), "{text}");
        assert!(text.contains("dockwarden_informer_synced 0"), "{text}");
        assert!(text.contains("status_api_http_connections_open 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
