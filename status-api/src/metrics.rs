//! `/metrics` in OpenMetrics text (prometheus-client): requests by route, method and status,
//! their latency, and, read at scrape time, containers by state, the informer's and the
//! policy reloader's counters and the resource collector's rounds.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

use common::container::State;
use common::docker::Identity;
use common::informer::Stats as InformerStats;
use common::reload::PolicyHandle;
use common::store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
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
        let mut registry = Registry::with_prefix("status_api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let durations: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            durations.clone(),
        );
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

const STATES: [State; 8] = [
    State::Created,
    State::Running,
    State::Paused,
    State::Restarting,
    State::Removing,
    State::Exited,
    State::Dead,
    State::Unknown,
];

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let containers = self.store.list();
        let by_state = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        for s in STATES {
            let n = containers.iter().filter(|c| c.state == s).count();
            by_state.get_or_create(&[("state", s.as_str())]).set(n as i64);
        }
        let m = enc.encode_descriptor(
            "containers",
            "Containers in the picture, by state",
            None,
            by_state.metric_type(),
        )?;
        by_state.encode(m)?;
        gauge(
            &mut enc,
            "synced",
            "1 while the picture is synced with Docker",
            i64::from(self.store.is_ready()),
        )?;
        let i = &self.informer;
        counter(
            &mut enc,
            "informer_events",
            "Docker events received",
            i.events.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "informer_reconnects",
            "Breaks of the Docker event stream",
            i.reconnects.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "informer_relists",
            "Full re-lists applied",
            i.relists.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "informer_inspect_errors",
            "Failed container inspects",
            i.inspect_errors.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "http_connections_open",
            "HTTP connections open now",
            i64::try_from(self.http.open.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut enc,
            "http_connections",
            "HTTP connections accepted",
            self.http.accepted.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "http_connection_errors",
            "HTTP connections that ended with an error (timeout, reset, malformed request)",
            self.http.errors.load(Relaxed),
        )?;
        let r = &self.resources;
        counter(
            &mut enc,
            "resource_rounds",
            "Resource collection rounds",
            r.rounds.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "resource_errors",
            "Failed stats calls",
            r.errors.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "resource_last_round_microseconds",
            "Duration of the last resource collection round",
            i64::try_from(r.last_round_micros.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        if let Some(p) = &self.policy {
            let loaded = p.current();
            gauge(
                &mut enc,
                "policy_generation",
                "Generation of the allowlist in force (1 = loaded at start)",
                i64::try_from(loaded.generation).unwrap_or(i64::MAX),
            )?;
            let me = self.identity.read().unwrap_or_else(|e| e.into_inner()).0.clone();
            let denied = containers
                .iter()
                .filter(|c| !crate::models::verdict(&loaded.policy, c, &me).allowed)
                .count();
            gauge(
                &mut enc,
                "containers_denied",
                "Containers the allowlist in force does not allow",
                denied as i64,
            )?;
            counter(
                &mut enc,
                "policy_reloads_accepted",
                "Allowlist reloads applied",
                p.stats.accepted.load(Relaxed),
            )?;
            counter(
                &mut enc,
                "policy_reloads_rejected",
                "Allowlist reloads refused (the last good one stayed)",
                p.stats.rejected.load(Relaxed),
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
            text.contains(r#"status_api_containers{state="running"} 0"#),
            "{text}"
        );
        assert!(text.contains("status_api_informer_events_total 0"), "{text}");
        assert!(text.contains("status_api_synced 0"), "{text}");
        assert!(text.contains("status_api_http_connections_open 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
